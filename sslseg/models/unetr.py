"""MONAI ``UNETR`` built from a ViT preset, and its description in a model card.

``UNETR`` maps (B, 1, S, S, S) to logits (B, C, S, S, S) with S = ``preset.img_size`` (the sliding-window size at
inference). Its ViT lives under ``vit.`` with the same tensor names as the pretraining ``ViTAutoEnc``.
"""

from __future__ import annotations

from sslseg.errors import SSLSegError
from sslseg.models.presets import ViTPreset, preset_from_dict
from sslseg.models.vit_autoenc import freeze_unused

ARCHITECTURE = "UNETR"
DEFAULT_FEATURE_SIZE = 16


def build_unetr(preset: ViTPreset, out_channels: int, feature_size: int = DEFAULT_FEATURE_SIZE):
    """A freshly initialised ``monai.networks.nets.UNETR``; ``out_channels`` counts background as class 0."""
    from monai.networks.nets import UNETR

    if preset.num_layers != 12 or preset.patch_size != 16:
        raise SSLSegError(f"preset {preset.name!r} has {preset.num_layers} layers / patch {preset.patch_size}",
                          "MONAI's UNETR needs 12 layers and 16^3 tokens")
    model = UNETR(
        in_channels=1,
        out_channels=out_channels,
        img_size=preset.img_size,
        feature_size=feature_size,
        hidden_size=preset.hidden_size,
        mlp_dim=preset.mlp_dim,
        num_heads=preset.num_heads,
        proj_type=preset.proj_type,
        norm_name="instance",
        res_block=True,
        dropout_rate=preset.dropout_rate,
        qkv_bias=preset.qkv_bias,
    )
    freeze_unused(model)
    return model


def architecture_card(preset: ViTPreset, out_channels: int, feature_size: int = DEFAULT_FEATURE_SIZE) -> dict:
    """The ``architecture`` section of a model card."""
    return {"name": ARCHITECTURE, "preset": preset.name,
            "config": {"vit": preset.to_dict(), "out_channels": out_channels, "feature_size": feature_size}}


def unetr_from_card(architecture: dict):
    """(model, preset) rebuilt from a card's ``architecture`` section; unknown architectures are refused."""
    if architecture.get("name") != ARCHITECTURE:
        raise SSLSegError(f"unknown architecture {architecture.get('name')!r}", "this sslseg runs UNETR models")
    config = architecture["config"]
    try:
        preset = preset_from_dict(config["vit"])
        return build_unetr(preset, int(config["out_channels"]), int(config["feature_size"])), preset
    except (KeyError, TypeError, ValueError) as error:
        raise SSLSegError(f"the model card's architecture is incomplete: {error}", "re-export the model") from error
