"""``sslseg finetune --from-model MODEL_DIR``: continue training from a model package (segment -> correct -> retrain).

The package fixes the network (preset, patch size, decoder width) and the preprocessing (spacing, window: the
corrected cases must be seen as the model saw its own). Its label set is kept, value for value, and extended by name:
organs of the training cases that the model does not know are appended (values K+1, ...). Every tensor of the
package is loaded; the output layer's tensors, whose first axis is the label channel, keep their K+1 rows (background
and the old organs) and get new rows for the new organs, initialised as a new network's.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from sslseg.errors import SSLSegError
from sslseg.labels import LabelTable
from sslseg.models.presets import ViTPreset
from sslseg.models.unetr import unetr_from_card
from sslseg.package.model_package import CARD_NAME, ModelPackage, load_model_package
from sslseg.segmentation.preprocess import SegmentationPreprocessing


@dataclass
class StartingModel:
    """A model package to continue from. labels: its label set; origin: the card's provenance entry."""

    package: ModelPackage
    preset: ViTPreset
    feature_size: int
    labels: LabelTable
    settings: SegmentationPreprocessing
    origin: dict


def read_starting_model(folder: str | Path) -> StartingModel:
    folder = Path(folder)
    if not (folder / CARD_NAME).is_file():
        raise SSLSegError(f"--from-model {folder}: no model package there ({CARD_NAME} missing)",
                          "give the MODEL_DIR of an `sslseg finetune` run")
    package = load_model_package(folder)
    _, preset = unetr_from_card(package.card["architecture"])
    origin = {"kind": "model-package", "path": str(folder.resolve()), "weights_sha256": package.card["weights"]["sha256"],
              "labels": [label.name for _, label in sorted(package.label_table.labels.items())]}
    return StartingModel(package, preset, int(package.card["architecture"]["config"]["feature_size"]),
                         package.label_table, SegmentationPreprocessing.from_card(package.card["preprocessing"]),
                         origin)


def extended_labels(base: LabelTable, training: LabelTable) -> LabelTable:
    """``base`` value for value, then the names of ``training`` it lacks, numbered on from ``len(base)``."""
    labels = LabelTable()
    for value, label in sorted(base.labels.items()):
        labels.add(value, label.name, label.color)
    for _, label in sorted(training.labels.items()):
        if label.name not in labels.names:
            labels.add(max(labels.labels, default=0) + 1, label.name, label.color)
    return labels


def load_starting_weights(model: torch.nn.Module, state: dict) -> dict:
    """Copy ``state`` into ``model``: equal shapes whole; a tensor whose first axis grew (the output layer's label
    channels) into its first rows. Returns ``{"transferred", "grown"}``; anything else that differs is an error."""
    target = model.state_dict()
    grown, problems = [], []
    with torch.no_grad():
        for name, wanted in target.items():
            source = state.get(name)
            if source is None:
                problems.append(f"{name} missing")
            elif tuple(source.shape) == tuple(wanted.shape):
                wanted.copy_(source)
            elif source.ndim == wanted.ndim and source.shape[1:] == wanted.shape[1:] and source.shape[0] < wanted.shape[0]:
                wanted[:source.shape[0]].copy_(source)
                grown.append(name)
            else:
                problems.append(f"{name} {tuple(source.shape)} vs {tuple(wanted.shape)}")
    if problems:
        raise SSLSegError(f"the model package does not fit the network built from its card: {problems[0]}",
                          "the package (--from-model) is damaged or was edited; retrain it or use another")
    model.load_state_dict(target)
    return {"transferred": len(target), "grown": grown}
