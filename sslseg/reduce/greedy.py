"""The paper's greedy reduction: keep the first remaining slice, drop every remaining slice within Hamming distance
``<= threshold`` of it, repeat.

The order matters (a chain A ~ B ~ C with A far from C keeps A and C, drops B); callers pass slices in anatomical
order (:mod:`~sslseg.reduce.axial`). Cost: one vectorised comparison per kept slice against the slices still left.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sslseg.reduce.dhash import hamming


@dataclass
class Reduction:
    """Result over ``n`` slices, in the order given.

    Attributes:
        kept: (n,) bool.
        keeper: (n,) int64, for a dropped slice the position of the kept slice that dropped it; -1 for kept ones.
        distance: (n,) int64 Hamming distance to that keeper (0 for kept slices).
    """

    kept: np.ndarray
    keeper: np.ndarray
    distance: np.ndarray


def greedy_reduce(hashes: np.ndarray, threshold: int) -> Reduction:
    """Greedy reduction of ``hashes`` (n,) uint64 at Hamming distance ``threshold`` (>= 0)."""
    if threshold < 0:
        raise ValueError("the threshold is a Hamming distance, >= 0")
    hashes = np.asarray(hashes, dtype=np.uint64)
    count = len(hashes)
    kept = np.zeros(count, dtype=bool)
    keeper = np.full(count, -1, dtype=np.int64)
    distance = np.zeros(count, dtype=np.int64)
    remaining = np.arange(count)
    while remaining.size:
        first = remaining[0]
        kept[first] = True
        distances = hamming(hashes[remaining[1:]], hashes[first]).astype(np.int64)
        close = distances <= threshold
        dropped = remaining[1:][close]
        keeper[dropped], distance[dropped] = first, distances[close]
        remaining = remaining[1:][~close]
    return Reduction(kept, keeper, distance)


def neighbour_distances(hashes: np.ndarray) -> np.ndarray:
    """(n - 1,) Hamming distances between consecutive slices."""
    hashes = np.asarray(hashes, dtype=np.uint64)
    return hamming(hashes[1:], hashes[:-1]).astype(np.int64)
