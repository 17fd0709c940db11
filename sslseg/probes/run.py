"""``sslseg probe ENCODER LABELLED_DIR``: the linear voxel probe and the kNN organ probe, for an encoder and for the
same ViT randomly initialised.

The labelled cases are preprocessed and split as fine-tuning does (:func:`sslseg.finetune.cases.load_cases`, same
cache): the linear probe is fitted on crops of the training split and scored on the validation split (on the fitting
cases themselves when there is only one case, and the result says so); the kNN probe uses organ patches of every
case, leave one case out.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from sslseg.finetune.cases import CaseSet, load_cases
from sslseg.finetune.crops import LabelledCrops
from sslseg.finetune.label_set import remap
from sslseg.finetune.validation import DiceValidation
from sslseg.probes.frozen_encoder import encoder_and_baseline
from sslseg.probes.knn_probe import K, OrganPatch, knn_accuracy, organ_patches
from sslseg.probes.linear_probe import fit_linear_probe
from sslseg.segmentation.preprocess import SegmentationPreprocessing
from sslseg.training.distributed import DistContext

#: Crops each fitting step of the sampler gives per case (pos/neg balanced, as fine-tuning's).
CROPS_PER_DRAW = 4


@dataclass
class ProbeConfig:
    """Attributes:
        encoder: RUN_DIR, weights file, or ``none`` (the random baseline alone).
        data_dir: labelled cases (a folder or a datalist), as for ``sslseg finetune``.
        preset, patch_size: as for fine-tuning (None: the encoder's).
        crops_per_case: crops of each fitting case the linear probe is fitted on.
        steps, lr: Adam steps (minibatches of 4 crops) and learning rate of the linear probe.
        patches_per_organ: kNN patches per organ and case; k: neighbours.
        cache_dir: preprocessed cases (None: a temporary folder, removed at the end).
    """

    encoder: str
    data_dir: str
    out: str | None = None
    preset: str | None = None
    patch_size: int | None = None
    spacing: tuple[float, float, float] = (1.5, 1.5, 2.0)
    ct_window: tuple[float, float] = (-175.0, 250.0)
    modality: str = "auto"
    val_fraction: float = 0.2
    crops_per_case: int = 16
    steps: int = 300
    lr: float = 1e-2
    patches_per_organ: int = 8
    k: int = K
    overlap: float = 0.25
    seed: int = 0
    cache_dir: str | None = None
    workers: int = 0


@dataclass
class ProbeData:
    """What both probes read, prepared once (also for probes during pretraining).

    Attributes:
        cases: the split labelled cases and their label set.
        crops: the linear probe's fitting crops, (images (N, 1, S, S, S), labels (N, 1, S, S, S)) per draw.
        scored, scored_on: the cases the linear probe is scored on, and in words which ones.
        patches: the kNN probe's organ patches.
    """

    cases: CaseSet
    size: int
    crops: list = field(default_factory=list)
    scored: list = field(default_factory=list)
    scored_on: str = ""
    patches: list[OrganPatch] = field(default_factory=list)


def prepare(config: ProbeConfig, size: int, cache_dir: Path) -> ProbeData:
    settings = SegmentationPreprocessing(spacing_mm=tuple(config.spacing), ct_window=tuple(config.ct_window),
                                         modality=config.modality)
    cases = load_cases(config.data_dir, cache_dir, settings, config.val_fraction, config.seed, config.workers)
    data = ProbeData(cases, size)
    crops = LabelledCrops(cases.train, [cases.lut(c) for c in cases.train], size, CROPS_PER_DRAW, config.seed)
    draws = max(1, -(-config.crops_per_case // CROPS_PER_DRAW))
    for draw in range(draws):
        for index in range(len(crops)):
            sample = crops[(draw, index)]
            data.crops.append((sample["image"], sample["label"]))
    data.scored, data.scored_on = (cases.val, "held-out cases") if cases.val else (
        cases.train, "the fitting cases (only one labelled case: no held-out case)")
    every = cases.train + cases.val
    data.patches = organ_patches([(c.image(), remap(c.labels(), cases.lut(c))) for c in every], size,
                                 config.patches_per_organ, config.seed)
    return data


def run_probes(features: torch.nn.Module, data: ProbeData, config: ProbeConfig) -> dict:
    """Both probes on one frozen feature extractor ((B, 1, S, S, S) -> (B, F, g, g, g))."""
    labels = data.cases.labels
    probe, losses = fit_linear_probe(features, data.crops, len(labels) + 1, config.steps, config.lr, config.seed)
    scores = DiceValidation(probe, data.scored, [data.cases.lut(c) for c in data.scored], labels, data.size,
                            config.overlap, torch.device("cpu"), None, DistContext())()
    return {"linear_dice": scores["val_dice"], "linear_dice_per_organ": scores["val_dice_per_organ"],
            "linear_final_loss": float(np.mean(losses[-20:])) if losses else None,
            "knn_accuracy": knn_accuracy(features, data.patches, config.k)}


def probe(config: ProbeConfig) -> dict:
    """Both probes for the encoder and the random baseline; written to ``config.out`` (JSON) when given."""
    import tempfile

    from sslseg.package.files import write_json

    features, preset = encoder_and_baseline(config.encoder, config.preset, config.patch_size, config.seed)
    with tempfile.TemporaryDirectory(prefix="sslseg_probe_") as scratch:
        cache = Path(config.cache_dir) if config.cache_dir else Path(scratch)
        data = prepare(config, preset.img_size, cache)
        results = {name: run_probes(extractor, data, config) for name, extractor in features.items()}
    organs = len(data.cases.labels)
    report = {"encoder": config.encoder, "preset": preset.name, "patch_size": preset.img_size,
              "labels": [label.name for _, label in sorted(data.cases.labels.labels.items())],
              "fit_cases": [c.name for c in data.cases.train],
              "scored_cases": [c.name for c in data.scored], "scored_on": data.scored_on,
              "linear": {"crops": len(data.crops) * CROPS_PER_DRAW, "steps": config.steps, "lr": config.lr},
              "knn": {"patches": len(data.patches), "k": config.k, "chance": 1 / organs if organs else None,
                      "cases": len({p.case for p in data.patches})},
              "results": results}
    if config.out:
        write_json(Path(config.out), report)
    return report


def as_table(report: dict) -> str:
    """The report as a text table: one row per initialisation, then per-organ linear Dice."""
    rows = [f"{'features':<28} {'linear Dice':>11} {'kNN accuracy':>12}"]
    for name, result in report["results"].items():
        rows.append(f"{name:<28} {_number(result['linear_dice']):>11} {_number(result['knn_accuracy']):>12}")
    chance = report["knn"]["chance"]
    rows.append(f"linear Dice scored on {report['scored_on']}; kNN chance {_number(chance)} "
                f"({report['knn']['patches']} organ patches, k={report['knn']['k']}, leave one case out)")
    for organ in report["labels"]:
        cells = " ".join(f"{_number(r['linear_dice_per_organ'].get(organ)):>8}" for r in report["results"].values())
        rows.append(f"  {organ:<26} {cells}")
    return "\n".join(rows)


def _number(value) -> str:
    return "-" if value is None else f"{value:.3f}"
