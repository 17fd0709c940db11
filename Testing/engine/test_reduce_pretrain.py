"""``pretrain --reduce K``: a few steps on the tiny synthetic cohort, shorter epochs, patches on kept slices only,
and a resume with another K refused."""

from __future__ import annotations

import json

import numpy as np
import pytest
from pretrain_support import run_tiny

from sslseg.data.cache import build_cache
from sslseg.data.preprocess import PreprocessSettings
from sslseg.errors import SSLSegError
from sslseg.io.scan import find_volumes
from sslseg.reduce.folder import hash_volume
from sslseg.reduce.hash_cache import cached_hashes, hash_file, source_of
from sslseg.reduce.sampling import KeptSlicePatches, kept_on_cache, patch_counts
from sslseg.ssl import create_method


def _start_event(run_dir) -> dict:
    lines = (run_dir / "events.jsonl").read_text().splitlines()
    return next(e for e in map(json.loads, lines) if e.get("event") == "start" or "steps_per_epoch" in e)


def test_reduce_shortens_epochs_and_resume_with_other_k_is_refused(unlabelled_dir, pretrain_cache, tmp_path):
    full = run_tiny(unlabelled_dir, tmp_path / "full", pretrain_cache, epochs=1, val_every=0)
    reduced_dir = tmp_path / "reduced"
    reduced = run_tiny(unlabelled_dir, reduced_dir, pretrain_cache, epochs=1, val_every=0, reduce=6)
    start = _start_event(reduced_dir)
    summary = start["reduce"]
    assert 0 < summary["original_kept"] < summary["original_slices"]
    assert summary["patches_per_epoch"] < summary["unreduced_patches_per_epoch"]
    assert 0 < reduced["steps"] < full["steps"]
    assert start["steps_per_epoch"] == reduced["steps"]
    with pytest.raises(SSLSegError, match="reduce"):
        run_tiny(unlabelled_dir, reduced_dir, pretrain_cache, epochs=2, val_every=0, reduce=3, resume=True)


def test_patches_are_centred_on_kept_cache_slices(unlabelled_dir, tmp_path):
    settings = PreprocessSettings(spacing_mm=4.0)
    entries, _ = build_cache(find_volumes(unlabelled_dir), tmp_path / "cache", settings)
    entry = entries[0]
    hashed = hash_volume(source_of(entry))
    kept = kept_on_cache(entry, hashed, 6)
    assert kept.shape == (entry.shape[2],) and kept.any() and not kept.all()
    # physical mapping: the cache slice nearest to each kept original slice is kept
    superior = entry.affine[2, 2] * np.arange(entry.shape[2]) + entry.affine[2, 3] + entry.affine[2, :2] @ (
        (np.asarray(entry.shape[:2]) - 1) / 2)
    for s in hashed.superior_mm[np.flatnonzero(kept_of(hashed))]:
        if superior[0] - 2 <= s <= superior[-1] + 2:
            assert kept[np.argmin(np.abs(superior - s))]
    dataset = KeptSlicePatches([entry], [kept], 16, 8, create_method("inpaint-contrastive"), seed=0)
    assert len(dataset) == patch_counts([kept], 8)[0] == round(8 * kept.mean())
    for index in range(len(dataset)):
        _, affine, _ = dataset.patch(0, index)
        start_k = round((affine[2, 3] - entry.affine[2, 3]) / entry.affine[2, 2])
        window = np.arange(start_k, start_k + 16)
        assert kept[window[(window >= 0) & (window < len(kept))]].any()


def kept_of(hashed):
    from sslseg.reduce.greedy import greedy_reduce

    return greedy_reduce(hashed.hashes, 6).kept


def test_patch_counts_follow_the_kept_share():
    kept = [np.array([1, 0, 0, 0], bool), np.array([1, 1, 1, 1], bool), np.array([1, 1, 0, 0], bool)]
    assert patch_counts(kept, 2).tolist() == [1, 2, 1]  # shares 0.5, 2, 1: 3.5 rounds to 4
    assert patch_counts(kept, 4).tolist() == [1, 4, 2]
    assert patch_counts([np.array([1] + [0] * 99, bool)], 2).tolist() == [1]  # at least one patch


def test_slice_hashes_are_kept_beside_the_cache_and_read_back_without_the_source(unlabelled_dir, tmp_path):
    """A resumed or repeated ``--reduce`` run does not re-read its volumes: the hashes come from the cache folder
    (shown by moving the source away); a damaged or foreign hash file is recomputed, not trusted."""
    import dataclasses
    import shutil

    source_dir = tmp_path / "source"
    shutil.copytree(unlabelled_dir, source_dir)
    entries, _ = build_cache(find_volumes(source_dir), tmp_path / "cache", PreprocessSettings(spacing_mm=4.0))
    entry = entries[0]
    first = cached_hashes(entry)
    fresh = hash_volume(source_of(entry))
    np.testing.assert_array_equal(first.hashes, fresh.hashes)
    assert hash_file(entry).is_file()

    shutil.move(source_dir, tmp_path / "moved")
    again = cached_hashes(entry)
    for field in ("indices", "superior_mm", "hashes"):
        np.testing.assert_array_equal(getattr(again, field), getattr(fresh, field))
    assert again.axis == fresh.axis and again.hashes.dtype == np.uint64

    with pytest.raises(SSLSegError):  # another source content: the stored hashes are not used
        cached_hashes(dataclasses.replace(entry, sha256="0" * 64))
    shutil.move(tmp_path / "moved", source_dir)
    hash_file(entry).write_bytes(b"damaged")
    np.testing.assert_array_equal(cached_hashes(entry).hashes, fresh.hashes)
