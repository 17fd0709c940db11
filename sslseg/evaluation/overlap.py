"""Dice overlap of two binary masks."""

from __future__ import annotations

import numpy as np


def dice(prediction: np.ndarray, reference: np.ndarray) -> float:
    """2|P∩R| / (|P|+|R|) for boolean masks of one shape (I, J, K); NaN when both are empty (nothing to score)."""
    total = int(np.count_nonzero(prediction)) + int(np.count_nonzero(reference))
    if total == 0:
        return float("nan")
    return 2.0 * np.count_nonzero(prediction & reference) / total
