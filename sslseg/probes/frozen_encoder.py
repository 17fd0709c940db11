"""The frozen ViT a probe reads: a pretrained encoder, and the same ViT randomly initialised (the baseline every
probe reports next to it).

Features are the ViT's final tokens on their grid, (B, hidden, S/16, S/16, S/16), never trained by a probe.
"""

from __future__ import annotations

import torch

from sslseg.finetune.encoder import choose_encoder
from sslseg.models.encoder_io import load_encoder_into
from sslseg.models.presets import ViTPreset
from sslseg.ssl.backbone import ViTBackbone

RANDOM_INIT = "random init"


class TokenGridFeatures(torch.nn.Module):
    """(B, 1, S, S, S) -> (B, hidden, S/p, S/p, S/p): a frozen ViT's final tokens on their grid (p: token edge)."""

    def __init__(self, backbone: ViTBackbone, token_edge: int) -> None:
        super().__init__()
        self.backbone, self.token_edge = backbone.eval(), token_edge
        for parameter in self.backbone.parameters():
            parameter.requires_grad_(False)

    def train(self, mode: bool = True):  # frozen: dropout stays off whatever the probe around it does
        return super().train(False)

    @torch.no_grad()
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tokens = self.backbone.tokens(x)  # (B, N, hidden), N in C order of the token grid (MONAI's conv embedding)
        grid = [n // self.token_edge for n in x.shape[2:]]
        return tokens.transpose(1, 2).reshape(x.shape[0], tokens.shape[2], *grid)


def frozen_features(preset: ViTPreset, state: dict | None, seed: int) -> TokenGridFeatures:
    """The preset's ViT seeded with ``seed``, then given ``state`` (ViTAutoEnc names) unless None."""
    with torch.random.fork_rng(devices=[]):  # the caller's random stream untouched (a pretraining's)
        torch.manual_seed(seed)
        backbone = ViTBackbone(preset)
    if state is not None:
        load_encoder_into(backbone, state, target_prefix="vit.", resize_position_embedding_to_fit=True)
    return TokenGridFeatures(backbone, preset.patch_size)


def encoder_and_baseline(encoder: str, preset_name: str | None, patch_size: int | None,
                         seed: int) -> tuple[dict[str, TokenGridFeatures], ViTPreset]:
    """({"random init": ..., ENCODER: ...}, preset): the encoder (a RUN_DIR, a weights file; ``none`` gives the
    baseline alone) and the same architecture randomly initialised."""
    choice = choose_encoder(encoder, preset_name, patch_size)
    features = {RANDOM_INIT: frozen_features(choice.preset, None, seed)}
    if choice.state is not None:
        features[str(encoder)] = frozen_features(choice.preset, choice.state, seed)
    return features, choice.preset
