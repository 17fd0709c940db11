"""Score a predicted label map against a reference, organ by organ, matched by NAME (values may differ)."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

from sslseg.evaluation.overlap import dice
from sslseg.evaluation.surface_distance import hausdorff_distance
from sslseg.labels import LabelTable
from sslseg.volume import Volume


@dataclass
class OrganScore:
    organ: str
    dice: float
    hd95_mm: float
    reference_voxels: int
    predicted_voxels: int


def compare(prediction: Volume, prediction_table: LabelTable, reference: Volume, reference_table: LabelTable) -> list[OrganScore]:
    """Per-organ scores for every organ named in either table; both maps on one grid (I, J, K)."""
    names = list(reference_table.names) + [n for n in prediction_table.names if n not in reference_table.names]
    scores = []
    for name in names:
        predicted = _mask(prediction.array, prediction_table, name)
        expected = _mask(reference.array, reference_table, name)
        if not predicted.any() and not expected.any():
            continue  # absent from both: nothing to score
        scores.append(
            OrganScore(name, dice(predicted, expected), hausdorff_distance(predicted, expected, reference.spacing),
                       int(expected.sum()), int(predicted.sum()))
        )
    return scores


def mean_dice(scores: list[OrganScore]) -> float:
    values = [s.dice for s in scores if not math.isnan(s.dice)]
    return float(np.mean(values)) if values else float("nan")


def as_table(scores: list[OrganScore]) -> str:
    """A fixed-width text table with a mean row."""
    lines = [f"{'organ':<32} {'Dice':>7} {'HD95 mm':>9} {'ref vox':>9} {'pred vox':>9}"]
    for s in scores:
        lines.append(f"{s.organ:<32} {s.dice:>7.4f} {format_mm(s.hd95_mm):>9} {s.reference_voxels:>9} {s.predicted_voxels:>9}")
    lines.append(f"{'mean':<32} {mean_dice(scores):>7.4f}")
    return "\n".join(lines)


def as_json(scores: list[OrganScore]) -> dict:
    """JSON-safe: NaN (an organ missing from one map) becomes null."""
    organs = [{k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in asdict(s).items()} for s in scores]
    mean = mean_dice(scores)
    return {"organs": organs, "mean_dice": None if math.isnan(mean) else mean}


def _mask(array: np.ndarray, table: LabelTable, name: str) -> np.ndarray:
    return array == table.value_of(name) if name in table.names else np.zeros(array.shape, dtype=bool)


def format_mm(value: float) -> str:
    """A distance in mm for tables; NaN (an organ missing from one map) is ``n/a``."""
    return "n/a" if math.isnan(value) else f"{value:.2f}"
