"""The encoder card's content (``encoder.json``): architecture, preprocessing, provenance."""

from __future__ import annotations

import platform
from importlib import metadata

from sslseg.training.events import now_iso

LIBRARIES = ("sslseg", "torch", "monai", "numpy", "nibabel", "SimpleITK", "safetensors")


def library_versions() -> dict:
    versions = {"python": platform.python_version()}
    for name in LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def encoder_card(preset, preprocessing: dict, method: dict, training: dict, data: dict, results: dict,
                 selection: dict, trained_in: str = "monai.networks.nets.ViTAutoEnc") -> dict:
    """The card sections (the weights section is added by ``save_encoder``).

    Args:
        preset: the :class:`~sslseg.models.presets.ViTPreset` trained (``img_size`` = the patch size used).
        preprocessing: :meth:`PreprocessSettings.to_dict` plus orientation/intensity notes.
        method: :meth:`SSLMethod.describe`.
        training: epochs, steps, batch sizes, optimiser, seed, precision, processes.
        data: ``{"train": [{"name", "sha256"}], "val": [...], "skipped": [...]}``.
        results: the losses when these weights were saved.
        trained_in: the module the encoder was trained in (:attr:`SSLMethod.trained_in`).
        selection: why these weights (best by validation loss, or last): rule, step, epoch, val_loss (see
            :mod:`sslseg.pretrain.encoders`).
    """
    return {
        "architecture": {
            "name": "ViT",
            "trained_in": trained_in,
            "loads_into": "monai.networks.nets.UNETR (tensors under vit.)",
            "in_channels": 1,
            "preset": preset.name,
            "config": preset.to_dict(),
        },
        "preprocessing": preprocessing,
        "provenance": {
            "ssl_method": method,
            "training": training,
            "data_fingerprint": data,
            "results": results,
            "selection": selection,
            "versions": library_versions(),
            "date": now_iso(),
        },
    }
