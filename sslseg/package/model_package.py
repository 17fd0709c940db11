"""The model folder users share: ``model.safetensors`` + ``model.json`` (the card).

The card says everything needed to use the weights: architecture, label values with names/colours/terminology,
preprocessing, provenance (encoder origin, SSL method, training-case fingerprint, library versions) and validation
metrics. Loading validates the card against a strict schema and the weights against their SHA-256, and never
unpickles anything (safetensors holds tensors only).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from sslseg.errors import SSLSegError
from sslseg.labels import LabelTable
from sslseg.package.files import inside, sha256_of, write_atomically, write_json
from sslseg.package.schema import CardError, check

CARD_NAME = "model.json"
WEIGHTS_NAME = "model.safetensors"
FORMAT = "sslseg-model"
FORMAT_VERSION = 1

LABEL_SPEC = {"value": int, "name": str, "color?": [float], "terminology?": str}
CARD_SPEC = {
    "format": str,
    "format_version": int,
    "architecture": {"name": str, "preset": str, "config": dict},
    "weights": {"file": str, "sha256": str},
    "labels": [LABEL_SPEC],
    "preprocessing": dict,
    "provenance?": dict,
    "validation?": dict,
}


@dataclass
class ModelPackage:
    card: dict
    state_dict: dict  # name -> torch.Tensor

    @property
    def label_table(self) -> LabelTable:
        return LabelTable.from_names(
            {item["value"]: item["name"] for item in self.card["labels"]},
            {item["value"]: tuple(item["color"]) for item in self.card["labels"] if "color" in item},
        )


def labels_to_card(table: LabelTable, terminology: dict[str, str] | None = None) -> list[dict]:
    """The ``labels`` entry of a card, background excluded."""
    entries = []
    for value, label in sorted(table.labels.items()):
        entry = {"value": value, "name": label.name}
        if label.color:
            entry["color"] = [round(float(c), 6) for c in label.color]
        if terminology and label.name in terminology:
            entry["terminology"] = terminology[label.name]
        entries.append(entry)
    return entries


def save_model_package(folder: str | Path, state_dict: dict, card: dict, overwrite: bool = False) -> Path:
    """Write weights then card (the card last, so a folder with a card always has its weights)."""
    from safetensors.torch import save_file

    folder = Path(folder)
    if (folder / CARD_NAME).exists() and not overwrite:
        raise SSLSegError(f"{folder} already holds a model", "choose another folder, or pass --overwrite")
    tensors = {name: tensor.detach().cpu().contiguous() for name, tensor in state_dict.items()}
    weights = folder / WEIGHTS_NAME
    write_atomically(weights, lambda path: save_file(tensors, str(path)))
    card = {**card, "format": FORMAT, "format_version": FORMAT_VERSION,
            "weights": {"file": WEIGHTS_NAME, "sha256": sha256_of(weights)}}
    check(card, CARD_SPEC, "", str(folder / CARD_NAME))
    write_json(folder / CARD_NAME, card)
    return folder


def read_card(folder: str | Path) -> dict:
    """The validated card of a model folder (weights not loaded)."""
    folder = Path(folder)
    path = folder / CARD_NAME
    if not path.is_file():
        raise SSLSegError(f"{folder} is not a model folder (no {CARD_NAME})", "point to a folder written by sslseg finetune")
    try:
        card = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise CardError(f"cannot read {path}: {error}", "the file is damaged; re-export the model") from error
    check(card, CARD_SPEC, "", str(path))
    if card["format"] != FORMAT or card["format_version"] > FORMAT_VERSION:
        raise CardError(f"{path} is a {card['format']} v{card['format_version']} card",
                        f"this sslseg reads {FORMAT} up to v{FORMAT_VERSION}; update sslseg")
    _check_labels(card["labels"], path)
    return card


def load_model_package(folder: str | Path) -> ModelPackage:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    folder = Path(folder)
    card = read_card(folder)
    weights = inside(folder, card["weights"]["file"], str(folder / CARD_NAME))
    if not weights.is_file():
        raise SSLSegError(f"{weights} is missing", "copy the whole model folder")
    if sha256_of(weights) != card["weights"]["sha256"]:
        raise CardError(f"{weights} does not match the hash in its card", "the weights were changed or damaged")
    try:
        state_dict = load_file(str(weights))
    except (SafetensorError, OSError) as error:
        raise CardError(f"cannot read {weights}: {error}", "re-export the model") from error
    return ModelPackage(card=card, state_dict=state_dict)


def _check_labels(labels: list[dict], path: Path) -> None:
    values = [item["value"] for item in labels]
    names = [item["name"] for item in labels]
    if any(v < 1 for v in values) or len(set(values)) != len(values) or len(set(names)) != len(names):
        raise CardError(f"{path}: label values must be unique and >= 1, names unique", "fix the card's labels")
