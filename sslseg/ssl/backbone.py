"""The encoder every joint-embedding method trains: MONAI's ``ViT`` (UNETR's encoder), pooled over its tokens.

``ViT`` maps (B, 1, S, S, S) to tokens (B, (S/16)^3, hidden) after its final LayerNorm; the pooled feature is their
mean, (B, hidden). Its state dict names (``patch_embedding.*``, ``blocks.N.*``, ``norm.*``) are exactly the encoder
names of ``ViTAutoEnc`` and, under ``vit.``, of ``UNETR``, so :meth:`ViTBackbone.encoder_state` is what fine-tuning
loads (161 tensors for vit-b).

Inputs of another size (multi-crop's local views, sub-cubes): :func:`vit_tokens` runs the ViT on any edge that is a
multiple of the token size, with the position embeddings resampled (trilinear, differentiably) to the input's token
grid; at the ViT's own ``img_size`` it is exactly ``ViT.forward``.
"""

from __future__ import annotations

import torch

from sslseg.models.presets import ViTPreset
from sslseg.models.vit_autoenc import freeze_unused


def vit_tokens(vit, x: torch.Tensor) -> torch.Tensor:
    """The final tokens (B, N, hidden) of MONAI ``ViT`` ``vit`` for an input (B, C, X, Y, Z) of any size divisible by
    its patch size, N = (X/16)(Y/16)(Z/16).

    The steps of ``ViT.forward`` (MONAI 1.5/1.6: ``PatchEmbeddingBlock.forward``, the blocks, the final norm) with
    one change: when the token grid is not the one the position embeddings were made for, they are resampled to it
    (:func:`~sslseg.models.encoder_io.interpolate_position_embedding`, trilinear), so gradients reach the stored
    embeddings. At the native size the result equals ``vit(x)[0]`` bit for bit. A ViT with a classification token
    (``classification=True``) is refused: its extra token has no grid position.
    """
    from sslseg.models.encoder_io import interpolate_position_embedding

    if hasattr(vit, "cls_token") or hasattr(vit, "classification_head"):
        raise ValueError("vit_tokens runs ViTs without a classification token (classification=False)")
    embedding = vit.patch_embedding
    tokens = embedding.patch_embeddings(x)
    if embedding.proj_type == "conv":  # (B, hidden, X', Y', Z') -> (B, N, hidden)
        tokens = tokens.flatten(2).transpose(-1, -2)
    position = embedding.position_embeddings
    if tokens.shape[1] != position.shape[1]:
        # cubic tokens (every preset's): token edge = cbrt(input voxels / tokens)
        edge = round((x.shape[2] * x.shape[3] * x.shape[4] / tokens.shape[1]) ** (1 / 3))
        position = interpolate_position_embedding(position, [n // edge for n in x.shape[2:]])
    hidden = embedding.dropout(tokens + position)
    for block in vit.blocks:
        hidden = block(hidden)
    return vit.norm(hidden)


class ViTBackbone(torch.nn.Module):
    """``ViT`` of a preset; ``forward(x)`` -> pooled features (B, hidden)."""

    def __init__(self, preset: ViTPreset, in_channels: int = 1) -> None:
        super().__init__()
        from monai.networks.nets import ViT

        self.vit = ViT(in_channels=in_channels, img_size=preset.img_size, patch_size=preset.patch_size,
                       hidden_size=preset.hidden_size, mlp_dim=preset.mlp_dim, num_layers=preset.num_layers,
                       num_heads=preset.num_heads, proj_type=preset.proj_type, dropout_rate=preset.dropout_rate,
                       spatial_dims=3, qkv_bias=preset.qkv_bias)
        freeze_unused(self.vit)
        self.out_dim = preset.hidden_size

    def tokens(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, X, Y, Z) -> (B, N, hidden), any edges divisible by the token size (:func:`vit_tokens`)."""
        return vit_tokens(self.vit, x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.tokens(x).mean(dim=1)

    def encoder_state(self) -> dict:
        """The ViT tensors under ``ViTAutoEnc`` names."""
        return dict(self.vit.state_dict())
