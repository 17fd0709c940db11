"""The encoder every joint-embedding method trains: MONAI's ``ViT`` (UNETR's encoder), pooled over its tokens.

``ViT`` maps (B, 1, S, S, S) to tokens (B, (S/16)^3, hidden) after its final LayerNorm; the pooled feature is their
mean, (B, hidden). Its state dict names (``patch_embedding.*``, ``blocks.N.*``, ``norm.*``) are exactly the encoder
names of ``ViTAutoEnc`` and, under ``vit.``, of ``UNETR``, so :meth:`ViTBackbone.encoder_state` is what fine-tuning
loads (161 tensors for vit-b).
"""

from __future__ import annotations

import torch

from sslseg.models.presets import ViTPreset
from sslseg.models.vit_autoenc import freeze_unused


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
        """(B, C, S, S, S) -> (B, N, hidden)."""
        return self.vit(x)[0]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.tokens(x).mean(dim=1)

    def encoder_state(self) -> dict:
        """The ViT tensors under ``ViTAutoEnc`` names."""
        return dict(self.vit.state_dict())
