"""The study's numbers: mean Dice per initialisation and N with its spread over seeds, and the paired difference
SSL - random with a bootstrap confidence interval.

Pairs: an encoder's cell and the random cell of the same N and seed, compared case by case on the held-out set, so a
pair is (seed, held-out case) and shares data, crops and case. The interval resamples those pairs (percentile
bootstrap); pairs of one seed share a training run, so with few seeds the interval is optimistic: read it together
with the per-seed spread.
"""

from __future__ import annotations

import numpy as np

from sslseg.study.plan import RANDOM

BOOTSTRAP_SAMPLES = 10000
CONFIDENCE = 0.95


def case_means(cell: dict) -> dict[str, float]:
    """{held-out case: mean Dice over its organs} of one cell result."""
    return {case: float(np.mean([o["dice"] for o in organs.values()]))
            for case, organs in cell["held_out"].items() if organs}


def spread(values: list[float]) -> dict:
    """mean, sample standard deviation (0 for one value), min, max, n."""
    array = np.asarray(values, dtype=float)
    return {"mean": float(array.mean()), "sd": float(array.std(ddof=1)) if len(array) > 1 else 0.0,
            "min": float(array.min()), "max": float(array.max()), "n": int(len(array))}


def bootstrap_interval(differences: list[float], seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap interval (``CONFIDENCE``) of the mean of ``differences``."""
    values = np.asarray(differences, dtype=float)
    rng = np.random.default_rng(seed)
    means = values[rng.integers(0, len(values), size=(BOOTSTRAP_SAMPLES, len(values)))].mean(axis=1)
    tail = (1 - CONFIDENCE) / 2
    return float(np.quantile(means, tail)), float(np.quantile(means, 1 - tail))


def paired_differences(encoder_cells: list[dict], random_cells: list[dict]) -> list[float]:
    """encoder - random, per (seed, held-out case) present in both."""
    random_by_seed = {c["seed"]: case_means(c) for c in random_cells}
    pairs = []
    for cell in sorted(encoder_cells, key=lambda c: c["seed"]):
        baseline = random_by_seed.get(cell["seed"])
        if baseline is None:
            continue
        mine = case_means(cell)
        pairs += [mine[case] - baseline[case] for case in sorted(mine) if case in baseline]
    return pairs


def difference_text(difference: dict) -> str:
    """``+0.012 [-0.004, +0.030]``: a paired difference of :func:`summarise` with its interval."""
    return f"{difference['mean']:+.3f} [{difference['ci_low']:+.3f}, {difference['ci_high']:+.3f}]"


def summarise(cells: list[dict], order: list[str] | None = None) -> dict:
    """``{"table": {init: {N: spread of mean Dice}}, "hd95_mm": {init: {N: spread of mean HD95}}, "differences":
    {init: {N: {...}}}}`` (N as strings: JSON keys; HD95 over the cells that have one). Initialisations in
    ``order`` (the plan's: random first), then any other in order of appearance."""
    found = set(c["init"] for c in cells)
    inits = [i for i in (order or []) if i in found] + [i for i in dict.fromkeys(c["init"] for c in cells)
                                                         if i not in (order or [])]
    counts = sorted({c["cases"] for c in cells})
    table, distances, differences = {}, {}, {}
    for init in inits:
        mine = {n: [c for c in cells if c["init"] == init and c["cases"] == n] for n in counts}
        table[init] = {str(n): spread([c["mean_dice"] for c in group]) for n, group in mine.items() if group}
        distances[init] = {str(n): spread([c["mean_hd95_mm"] for c in group if c.get("mean_hd95_mm") is not None])
                           for n, group in mine.items() if any(c.get("mean_hd95_mm") is not None for c in group)}
    for init in (i for i in inits if i != RANDOM):
        differences[init] = {}
        for n in counts:
            pairs = paired_differences([c for c in cells if c["init"] == init and c["cases"] == n],
                                       [c for c in cells if c["init"] == RANDOM and c["cases"] == n])
            if pairs:
                low, high = bootstrap_interval(pairs)
                differences[init][str(n)] = {"mean": float(np.mean(pairs)), "ci_low": low, "ci_high": high,
                                             "pairs": len(pairs)}
    return {"table": table, "hd95_mm": distances, "differences": differences}
