"""Greedy Hash-k semantics on constructed hashes, per volume and over a whole dataset."""

from __future__ import annotations

import numpy as np

from sslseg.reduce.folder import VolumeHashes, reduce_hashes
from sslseg.reduce.greedy import greedy_reduce

A = 0
B = (1 << 4) - 1          # 4 bits from A
C = (1 << 8) - 1          # 4 bits from B, 8 from A
FAR = (1 << 64) - 1


def test_identical_slices_keep_one():
    result = greedy_reduce(np.full(7, 0x1234_5678_9ABC_DEF0, dtype=np.uint64), 0)
    assert result.kept.tolist() == [True] + [False] * 6
    assert result.keeper[1:].tolist() == [0] * 6 and not result.distance.any()


def test_threshold_zero_keeps_exactly_the_distinct_hashes_first_occurrence():
    hashes = np.array([5, 9, 5, 7, 9, 9, 1, 7], dtype=np.uint64)
    kept = greedy_reduce(hashes, 0).kept
    assert hashes[kept].tolist() == [5, 9, 7, 1]
    assert np.flatnonzero(kept).tolist() == [0, 1, 3, 6]


def test_chain_of_near_duplicates_keeps_both_ends():
    result = greedy_reduce(np.array([A, B, C], dtype=np.uint64), 6)
    assert result.kept.tolist() == [True, False, True]
    assert result.keeper.tolist() == [-1, 0, -1] and result.distance.tolist() == [0, 4, 0]


def test_order_decides_which_one_is_kept():
    assert greedy_reduce(np.array([B, A, C], dtype=np.uint64), 6).kept.tolist() == [True, False, False]


def test_threshold_is_inclusive():
    assert greedy_reduce(np.array([A, C], dtype=np.uint64), 8).kept.tolist() == [True, False]
    assert greedy_reduce(np.array([A, C], dtype=np.uint64), 7).kept.tolist() == [True, True]


def _volume(hashes) -> VolumeHashes:
    n = len(hashes)
    return VolumeHashes(None, 2, np.arange(n), np.arange(n, dtype=float), np.array(hashes, dtype=np.uint64))


def test_volume_scope_compares_within_volumes_dataset_scope_across():
    volumes = [_volume([A, FAR, B]), _volume([B, C, FAR])]
    per_volume = reduce_hashes(volumes, 6, "volume")
    assert [r.kept.tolist() for r in per_volume.reductions] == [[True, True, False], [True, False, True]]
    whole = reduce_hashes(volumes, 6, "dataset")
    assert [r.kept.tolist() for r in whole.reductions] == [[True, True, False], [False, True, False]]
    # the second volume's B and FAR were dropped by the first volume's A and FAR
    assert whole.keeper_volume[1].tolist() == [0, 1, 0]
    assert whole.reductions[1].keeper.tolist() == [0, -1, 1]
    assert (whole.kept, whole.total) == (3, 6) and per_volume.kept == 4
