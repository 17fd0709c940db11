"""Named ViT sizes shared by the pretraining ``ViTAutoEnc`` and the fine-tuning ``UNETR``.

MONAI's ``UNETR`` (1.6) always builds 12 transformer layers with 16^3 patches and taps layers 3, 6, 9 and 12 for its
decoder, so every preset has 12 layers and patch 16: otherwise the pretrained encoder could not be transferred whole.
``img_size`` is the default training patch (the position embeddings are sized for it); ``--patch-size`` overrides it
and the encoder card records the value actually used.

Measured on the 2-core CPU of the development machine (torch 2.13, fp32, AdamW step on two views, batch 4):
``tiny`` 0.06 s/step at 32^3, 0.14 s/step at 64^3 (1.8 M parameters); ``vit-b`` (86 M encoder parameters) 3.4 s/step
at 96^3 with batch 2.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

from sslseg.errors import SSLSegError


@dataclass(frozen=True)
class ViTPreset:
    """The ViT hyper-parameters of one size, in MONAI's argument names.

    Attributes:
        name: the preset's name (``tiny``, ``vit-b``).
        img_size: cubic input patch edge in voxels, a multiple of ``patch_size``.
        patch_size: edge of the cubic tokens (16 for UNETR compatibility).
        hidden_size: token width; divisible by ``num_heads``.
        mlp_dim: width of each transformer block's MLP.
        num_layers: transformer blocks (12 for UNETR compatibility).
        num_heads: attention heads.
        proj_type: patch embedding type (``conv`` or ``perceptron``).
        deconv_chns: channels between the ViTAutoEnc's two transposed convolutions (its reconstruction head).
        qkv_bias: bias in the attention's qkv projection.
        dropout_rate: dropout in the transformer blocks.
    """

    name: str
    img_size: int
    patch_size: int = 16
    hidden_size: int = 768
    mlp_dim: int = 3072
    num_layers: int = 12
    num_heads: int = 12
    proj_type: str = "conv"
    deconv_chns: int = 16
    qkv_bias: bool = False
    dropout_rate: float = 0.0

    def with_img_size(self, img_size: int | None) -> "ViTPreset":
        """The same preset trained on ``img_size``^3 patches (checked: a multiple of the token size)."""
        if img_size is None:
            return self
        if img_size <= 0 or img_size % self.patch_size:
            raise SSLSegError(
                f"patch size {img_size} is not a multiple of the ViT token size {self.patch_size}",
                f"use --patch-size {max(self.patch_size, img_size // self.patch_size * self.patch_size)} "
                f"(or another multiple of {self.patch_size})",
            )
        return replace(self, img_size=img_size)

    def to_dict(self) -> dict:
        return asdict(self)


PRESETS: dict[str, ViTPreset] = {
    "tiny": ViTPreset(name="tiny", img_size=64, hidden_size=96, mlp_dim=384, num_heads=4),
    "vit-b": ViTPreset(name="vit-b", img_size=96, hidden_size=768, mlp_dim=3072, num_heads=12),
}


def get_preset(name: str) -> ViTPreset:
    """The preset called ``name``; an error listing the known names otherwise."""
    try:
        return PRESETS[name]
    except KeyError:
        raise SSLSegError(f"unknown model preset {name!r}", f"choose one of {', '.join(PRESETS)}") from None


def preset_from_dict(config: dict) -> ViTPreset:
    """Inverse of :meth:`ViTPreset.to_dict` (as stored in an encoder card); unknown keys are refused."""
    known = set(ViTPreset.__dataclass_fields__)
    unknown = set(config) - known
    if unknown:
        raise SSLSegError(f"unknown ViT settings {sorted(unknown)}", "the encoder card comes from a newer sslseg")
    return ViTPreset(**config)
