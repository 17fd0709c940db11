"""MONAI ``ViTAutoEnc`` built from a :class:`~sslseg.models.presets.ViTPreset`.

``ViTAutoEnc`` maps (B, C, S, S, S) to a reconstruction (B, out_channels, S, S, S) plus the 12 hidden states
(B, (S/16)^3, hidden_size). Its ``patch_embedding``, ``blocks`` and ``norm`` tensors are the encoder, with the same
names (under ``vit.``) as in MONAI's ``UNETR``; its ``conv3d_transpose*`` tensors are the reconstruction head.
"""

from __future__ import annotations

from sslseg.models.presets import ViTPreset

#: Parameter name prefixes of the ViT encoder inside ``ViTAutoEnc`` (and, under ``vit.``, inside ``UNETR``).
ENCODER_PREFIXES = ("patch_embedding.", "blocks.", "norm.")


def build_vit_autoenc(preset: ViTPreset, in_channels: int = 1, out_channels: int = 1):
    """A freshly initialised ``monai.networks.nets.ViTAutoEnc`` of the preset's size (torch's global RNG)."""
    from monai.networks.nets import ViTAutoEnc

    model = ViTAutoEnc(
        in_channels=in_channels,
        img_size=preset.img_size,
        patch_size=preset.patch_size,
        out_channels=out_channels,
        deconv_chns=preset.deconv_chns,
        hidden_size=preset.hidden_size,
        mlp_dim=preset.mlp_dim,
        num_layers=preset.num_layers,
        num_heads=preset.num_heads,
        proj_type=preset.proj_type,
        dropout_rate=preset.dropout_rate,
        spatial_dims=3,
        qkv_bias=preset.qkv_bias,
    )
    freeze_unused(model)
    return model


def freeze_unused(model) -> int:
    """Turn off gradients of tensors the forward pass never uses; returns how many.

    MONAI 1.6's ``TransformerBlock`` always creates ``norm_cross_attn`` (a LayerNorm for cross-attention) even
    without cross-attention; it gets no gradient, which DDP treats as an error. Frozen, it is simply skipped; it
    stays in the state dict (``UNETR`` has it too), so the encoder still transfers whole.
    """
    frozen = 0
    for name, parameter in model.named_parameters():
        if ".norm_cross_attn." in name:
            parameter.requires_grad_(False)
            frozen += 1
    return frozen


def encoder_state_dict(state_dict: dict) -> dict:
    """The ViT encoder tensors of a ``ViTAutoEnc`` state dict, names unchanged, reconstruction head left out."""
    return {k: v for k, v in state_dict.items() if k.startswith(ENCODER_PREFIXES)}
