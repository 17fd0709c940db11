"""``sslseg info`` on what training writes: a model package (``model.json`` + ``model.safetensors``, from ``sslseg
finetune``) or a pretraining run folder (``encoder.json`` + ``encoder.safetensors``, from ``sslseg pretrain``).

The card is read and validated as ``segment``/``finetune`` would read it (an edited card is an error here too), the
weights are not loaded: describing a folder should be instant, whatever the model's size.
"""

from __future__ import annotations

from pathlib import Path

from sslseg.models.encoder_io import ENCODER_CARD, ENCODER_WEIGHTS, read_encoder_card
from sslseg.package.model_package import CARD_NAME, read_card


def package_folder(path: Path) -> Path | None:
    """The model or encoder folder ``path`` names (the folder, or its ``model.json``/``encoder.json``), else None."""
    if path.is_file() and path.name in (CARD_NAME, ENCODER_CARD):
        return path.parent
    if path.is_dir() and ((path / CARD_NAME).is_file() or (path / ENCODER_CARD).is_file()):
        return path
    return None


def describe_package(folder: Path) -> str:
    """What the folder's card says, as ``sslseg info`` prints it (a model package wins over an encoder)."""
    if (folder / CARD_NAME).is_file():
        return "\n".join(_model_lines(folder, read_card(folder)))
    return "\n".join(_encoder_lines(folder, read_encoder_card(folder)))


def _model_lines(folder: Path, card: dict) -> list[str]:
    architecture, preprocessing = card["architecture"], card["preprocessing"]
    config = architecture["config"]
    provenance = card.get("provenance", {})
    encoder, training = provenance.get("encoder", {}), provenance.get("training", {})
    lines = [f"{folder}: model package ({card['format']} v{card['format_version']}, from sslseg finetune)",
             f"  architecture: {architecture['name']}, {_vit(architecture['preset'], config.get('vit', {}))}"
             + (f", feature size {config['feature_size']}" if "feature_size" in config else ""),
             f"  input: {_window(preprocessing)}",
             *_labels(card["labels"], card.get("validation"))]
    if encoder:
        lines.append(f"  encoder: {encoder.get('summary') or encoder.get('description') or encoder.get('kind')}")
    if isinstance(encoder.get("ssl_method"), dict):
        lines.append(f"  SSL method: {_method(encoder['ssl_method'])}")
    if training:
        lines.append(f"  training: {_training(training, provenance.get('training_cases', {}), 'case')}")
    lines += _validation(card.get("validation"))
    return [*lines, f"  weights: {_weights(folder / card['weights']['file'])}"]


def _encoder_lines(folder: Path, card: dict) -> list[str]:
    architecture, preprocessing = card["architecture"], card.get("preprocessing", {})
    config = architecture["config"]
    provenance = card.get("provenance", {})
    lines = [f"{folder}: pretrained encoder ({card['format']} v{card['format_version']}, from sslseg pretrain)",
             f"  architecture: {architecture['name']}, {_vit(architecture['preset'], config)}"
             + (f", trained on {config['img_size']}^3-voxel patches" if "img_size" in config else ""),
             f"  input: {_spacing(preprocessing.get('spacing_mm'))}, "
             f"orientation {preprocessing.get('orientation', '?')}"]
    if isinstance(provenance.get("ssl_method"), dict):
        lines.append(f"  SSL method: {_method(provenance['ssl_method'])}")
    if provenance.get("training"):
        data = provenance.get("data_fingerprint", {})
        lines.append(f"  training: {_training(provenance['training'], data, 'volume')}")
    results = provenance.get("results") or {}
    losses = [f"{name.replace('_', ' ')} {value:.4g}" for name, value in results.items() if isinstance(value, float)]
    if losses:
        lines.append(f"  results: {', '.join(losses)}")
    tensors = card["weights"].get("tensors")
    return [*lines, f"  weights: {_weights(folder / ENCODER_WEIGHTS)}" + (f", {tensors} tensors" if tensors else "")]


def _vit(preset: str, vit: dict) -> str:
    """``preset tiny (hidden 96, 12 layers, 4 heads, 16^3-voxel tokens)``, as much as the config says."""
    parts = [f"hidden size {vit['hidden_size']}"] if "hidden_size" in vit else []
    parts += [f"{vit[key]} {label}" for key, label in (("num_layers", "layers"), ("num_heads", "heads")) if key in vit]
    if "patch_size" in vit:
        parts.append(f"{vit['patch_size']}^3-voxel tokens")
    return f"preset {preset}" + (f" ({', '.join(parts)})" if parts else "")


def _window(preprocessing: dict) -> str:
    """Sliding window (= training crop), voxel size, orientation and CT window of a model."""
    parts = [f"{preprocessing['window']}^3-voxel window (training patch size)"] if "window" in preprocessing else []
    parts.append(_spacing(preprocessing.get("spacing_mm")))
    parts.append(f"orientation {preprocessing.get('orientation', '?')}")
    if isinstance(preprocessing.get("ct_window"), list):
        low, high = preprocessing["ct_window"]
        parts.append(f"CT window {low:g}..{high:g} HU")
    return ", ".join(parts)


def _spacing(spacing) -> str:
    if isinstance(spacing, list):
        return " x ".join(f"{s:g}" for s in spacing) + " mm voxels"
    return f"{spacing:g} mm voxels" if isinstance(spacing, (int, float)) else "voxel size not recorded"


def _method(method: dict) -> str:
    """The SSL method's name and its plain (number, text) options."""
    options = [f"{key} {value}" for key, value in (method.get("options") or {}).items()
               if isinstance(value, (int, float, str)) and not isinstance(value, bool)]
    return str(method.get("name", "?")) + (f" ({', '.join(options)})" if options else "")


def _training(training: dict, cases: dict, unit: str) -> str:
    parts = [f"{training[key]} {label}" for key, label in (("epochs_done", "epoch(s)"), ("steps", "step(s)"))
             if key in training]
    if cases.get("train") is not None:
        parts.append(f"{len(cases['train'])} training / {len(cases.get('val') or [])} validation {unit}(s)")
    parts.append(f"amp {training.get('amp', 'not recorded')}")
    return ", ".join(parts)


def _labels(labels: list[dict], validation: dict | None) -> list[str]:
    """One line per label, value and name, with its validation Dice when the model was validated."""
    dice = (validation or {}).get("per_organ_dice") or {}
    width = max(len(item["name"]) for item in labels) if labels else 0
    title = f"  labels ({len(labels)})" + (": value, name, validation Dice" if dice else ": value, name")
    return [title, *(f"    {item['value']:>3} {item['name']:<{width}}"
                     + (f"  {_number(dice.get(item['name']))}" if dice else "") for item in labels)]


def _validation(validation: dict | None) -> list[str]:
    if not validation:
        return ["  validation: none (never validated)"]
    where = ", ".join(f"{key} {validation[key]}" for key in ("epoch", "step") if key in validation)
    return [f"  validation: mean Dice {_number(validation.get('mean_dice'))}"
            + (f" ({where}, {len(validation.get('cases', []))} case(s))" if where else "")]


def _number(value) -> str:
    """A score to three decimals; ``n/a`` where the card holds none (an organ absent from the validation cases)."""
    return f"{value:.3f}" if isinstance(value, (int, float)) and not isinstance(value, bool) else "n/a"


def _weights(path: Path) -> str:
    if not path.is_file():
        return f"{path.name} MISSING (copy the whole folder)"
    return f"{path.name} ({path.stat().st_size / 1e6:.1f} MB)"
