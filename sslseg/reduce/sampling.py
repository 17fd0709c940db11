"""``sslseg pretrain --reduce K``: pretraining patches only around the slices the Hash-K reduction keeps.

Choice: **patch centres on kept slices**, not slabs stacked from kept slices. A slab glued from kept slices would put
anatomy that is centimetres apart next to each other and break the patch's geometry (its voxel-to-RAS matrix, the
isotropic spacing the ViT learns from); a patch centred on a kept slice is ordinary anatomy, and its neighbourhood is
what makes that slice's context. Per training volume:

- the kept slices (original grid, :mod:`~sslseg.reduce.folder`; the hashes are kept beside the cache,
  :mod:`~sslseg.reduce.hash_cache`) are mapped to the cached grid (RAS, isotropic,
  cropped) **through physical positions**: cache slice k is kept when the original slice nearest to it along the
  superior axis (RAS S of the slice centres) is kept, so no index is assumed to carry over;
- each patch's centre along the cache's k (superior) axis is drawn uniformly among the kept cache slices (clamped so
  the patch stays inside the volume); along i and j the window is drawn as without reduction;
- **epoch length follows the kept data**: volume v gets ``patches_per_volume * kept_v / slices_v`` patches per epoch
  (cache slices), rounded by largest remainder over the training set (at least one patch in all), so an epoch is
  shorter by the kept fraction and the time saved is real. Validation is not reduced, so losses stay comparable.
"""

from __future__ import annotations

import logging

import numpy as np

from sslseg.data.cache import CacheEntry
from sslseg.data.dataset import PatchViewsDataset
from sslseg.data.patches import crop_window, patch_window
from sslseg.reduce.folder import VolumeHashes
from sslseg.reduce.greedy import greedy_reduce
from sslseg.reduce.hash_cache import cached_hashes

log = logging.getLogger(__name__)


def kept_on_cache(entry: CacheEntry, hashed: VolumeHashes, threshold: int) -> np.ndarray:
    """(K,) bool over the cache grid's k axis: is the nearest original slice (by RAS S) kept?"""
    kept = greedy_reduce(hashed.hashes, threshold).kept
    shape = np.asarray(entry.shape, dtype=np.float64)
    points = np.column_stack([np.full(entry.shape[2], (shape[0] - 1) / 2), np.full(entry.shape[2], (shape[1] - 1) / 2),
                              np.arange(entry.shape[2])])
    superior = points @ entry.affine[2, :3] + entry.affine[2, 3]  # (K,) S of each cache slice centre
    original = hashed.superior_mm  # ascending
    right = np.clip(np.searchsorted(original, superior), 1, max(len(original) - 1, 1))
    left = right - 1
    nearest = np.where(np.abs(superior - original[left]) <= np.abs(original[np.minimum(right, len(original) - 1)]
                                                                  - superior), left, right)
    return kept[np.clip(nearest, 0, len(original) - 1)]


def patch_counts(kept: list[np.ndarray], patches_per_volume: int) -> np.ndarray:
    """(V,) patches per epoch per volume: ``patches_per_volume * kept fraction``, largest-remainder rounded."""
    shares = np.array([patches_per_volume * k.sum() / max(len(k), 1) for k in kept], dtype=np.float64)
    total = max(1, int(round(shares.sum())))
    counts = np.floor(shares).astype(np.int64)
    order = np.argsort(-(shares - counts), kind="stable")
    counts[order[:max(0, total - counts.sum())]] += 1
    return counts


class KeptSlicePatches(PatchViewsDataset):
    """:class:`PatchViewsDataset` whose patches are centred (along k) on kept slices; ``len`` = kept share."""

    def __init__(self, entries: list[CacheEntry], kept: list[np.ndarray], patch_size: int, patches_per_volume: int,
                 method, seed: int) -> None:
        super().__init__(entries, patch_size, patches_per_volume, method, seed, "train")
        self.kept_k = [np.flatnonzero(k) for k in kept]
        self.volume_of = np.repeat(np.arange(len(entries)), patch_counts(kept, patches_per_volume))

    def __len__(self) -> int:
        return len(self.volume_of)

    def volume_index(self, index: int) -> int:
        return int(self.volume_of[index])

    def patch(self, epoch: int, index: int):
        crop_seed, view_seed = np.random.SeedSequence([self.seed, self.stream, epoch, index]).generate_state(2)
        volume = self.volume_index(index)
        array, rng = self._array(volume), np.random.default_rng(crop_seed)
        size = self.region_size  # the patch, or the larger region the method asks for
        starts, pads = patch_window(array.shape, size, rng)
        depth = array.shape[2]
        if depth >= size:  # centre on a kept slice, the window kept inside the volume
            centre = int(rng.choice(self.kept_k[volume]))
            starts[2] = min(max(centre - size // 2, 0), depth - size)
        patch, affine = crop_window(array, self.entries[volume].affine, size, starts, pads)
        return patch, affine, np.random.RandomState(view_seed)


def reduced_training_set(entries: list[CacheEntry], threshold: int, patch_size: int, patches_per_volume: int,
                         method, seed: int) -> tuple[KeptSlicePatches, dict]:
    """The reduced training set and a summary (original and cache slices kept) for the run's events."""
    kept, original_total, original_kept = [], 0, 0
    for entry in entries:
        hashed = cached_hashes(entry)
        original_total += len(hashed.hashes)
        original_kept += int(greedy_reduce(hashed.hashes, threshold).kept.sum())
        kept.append(kept_on_cache(entry, hashed, threshold))
    dataset = KeptSlicePatches(entries, kept, patch_size, patches_per_volume, method, seed)
    cache_total, cache_kept = int(sum(len(k) for k in kept)), int(sum(k.sum() for k in kept))
    summary = {"threshold": threshold, "original_slices": original_total, "original_kept": original_kept,
               "cache_slices": cache_total, "cache_kept": cache_kept, "patches_per_epoch": len(dataset),
               "unreduced_patches_per_epoch": len(entries) * patches_per_volume}
    log.info("--reduce %d: %d of %d slices kept; %d patches per epoch instead of %d", threshold, original_kept,
             original_total, len(dataset), len(entries) * patches_per_volume)
    return dataset, summary
