"""The model card's content (``model.json`` of MODEL_DIR), written by :func:`sslseg.package.model_package.
save_model_package`::

    architecture   UNETR, preset, config {vit: preset incl. img_size, out_channels, feature_size}
    labels         [{value, name, color, terminology?}]  (terminology: Slicer TerminologyEntry tag, SNOMED-CT)
    preprocessing  SegmentationPreprocessing.to_card() + window (sliding-window edge = vit.img_size) + notes
    provenance     encoder {kind random|sslseg-pretraining|file, path, hashes, ssl_method, data_fingerprint,
                   transfer counts, position-embedding resize}, training {..., augmentation: the transforms as
                   run, see sslseg.finetune.augmentation_card}, training_cases {train, val},
                   versions, date
    validation     mean_dice, per_organ_dice, epoch, step, cases, window, overlap   (absent if never validated)
"""

from __future__ import annotations

from sslseg.labels import LabelTable
from sslseg.models.unetr import architecture_card
from sslseg.package.model_package import labels_to_card
from sslseg.pretrain.card import library_versions
from sslseg.segmentation.preprocess import SegmentationPreprocessing
from sslseg.terminology import load_terminology
from sslseg.training.events import now_iso


def coloured_labels(labels: LabelTable) -> tuple[LabelTable, dict[str, str]]:
    """(the label set with display colours, name -> Slicer terminology tag). Colours: the terminology's for organs
    it knows (consistent across models), else the colour the label files gave, else a generic colour per value."""
    terminology = load_terminology()
    coloured, tags = LabelTable(), {}
    for value, label in sorted(labels.labels.items()):
        term = terminology.lookup(label.name, warn=True)
        color = term.color if term else (label.color or terminology.unknown_color(value))
        coloured.add(value, label.name, tuple(float(c) for c in color))
        if term:
            tags[label.name] = term.tag()
    return coloured, tags


def preprocessing_card(settings: SegmentationPreprocessing, window: int) -> dict:
    """What ``segment`` must do to an image before the network (and with which window)."""
    return {**settings.to_card(), "window": window,
            "intensity": "CT: ct_window HU -> 0..1, clipped; MR: 0.5..99.5 percentiles -> 0..1",
            "crop": "to the body (voxels above foreground_hu), before the sliding window"}


def model_card(preset, feature_size: int, labels: LabelTable, settings: SegmentationPreprocessing, encoder: dict,
               training: dict, cases: dict, validation: dict | None) -> dict:
    """The card sections (format and weights are added by ``save_model_package``).

    Args:
        preset: the UNETR's :class:`~sslseg.models.presets.ViTPreset` (``img_size`` = training crop = window).
        labels: the run's label set (values 1..N as trained).
        encoder: where the ViT came from and what the transfer did (see ``sslseg.finetune.encoder``).
        training: epochs, steps, optimiser, batch, seed, precision, processes.
        cases: ``{"train": [{"name", "image_sha256", "label_sha256"}], "val": [...], "skipped": [...]}``.
        validation: the best validation (see :func:`validation_card`), or None.
    """
    coloured, tags = coloured_labels(labels)
    card = {
        "architecture": architecture_card(preset, len(labels) + 1, feature_size),
        "labels": labels_to_card(coloured, tags),
        "preprocessing": preprocessing_card(settings, preset.img_size),
        "provenance": {"encoder": encoder, "training": training, "training_cases": cases,
                       "versions": library_versions(), "date": now_iso()},
    }
    if validation:
        card["validation"] = validation
    return card


def validation_card(record: dict, cases: list[str], window: int, overlap: float) -> dict:
    """The ``validation`` section from an epoch record holding ``val_dice`` and ``val_dice_per_organ``."""
    return {"mean_dice": record["val_dice"], "per_organ_dice": record["val_dice_per_organ"],
            "epoch": record["epoch"], "step": record["step"], "cases": cases, "window": window, "overlap": overlap,
            "scored_on": "the preprocessed (model) grid, sliding window as in sslseg segment"}
