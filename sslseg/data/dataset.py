"""Samples for a self-supervised method: random patches of cached volumes, turned into views by the method.

Item ``(epoch, index)``: volume ``index // patches_per_volume``, one random patch of it and the method's views, all
drawn from ``SeedSequence([seed, stream, epoch, index])``. The result depends on nothing else (not the worker, the
rank or the process history), which is what makes runs bit-reproducible and resumable.

Patient-aware positives (:mod:`sslseg.data.partners`): when the method asks for them (``patient_positive_share`` >
0), a share of the samples whose volume has a partner scan also get that partner's region at the same RAS place,
drawn from a stream of their own, and the method cuts its second view from it.
"""

from __future__ import annotations

from collections import OrderedDict

import numpy as np
from torch.utils.data import Dataset

from sslseg.data.cache import CacheEntry
from sslseg.data.partners import partner_groups, same_place
from sslseg.data.patches import crop_patch

STREAMS = {"train": 2, "val": 3, "preview": 4}
#: Appended to an item's seed for the partner draw, so the crop and the views stay what they are without partners.
PARTNER_DRAW = 1
#: Memory maps kept open per worker process.
OPEN_MAPS = 64


class PatchViewsDataset(Dataset):
    """``dataset[(epoch, index)]`` -> dict of tensors from ``method.make_views``.

    The region cropped for the method is ``method.region_size(patch_size)`` voxels on edge (the patch itself unless
    the method asks for more, e.g. for random resized crops); the method's views are patch-sized.
    """

    def __init__(self, entries: list[CacheEntry], patch_size: int, patches_per_volume: int, method, seed: int,
                 stream: str = "train") -> None:
        self.entries, self.patch_size, self.patches_per_volume = entries, patch_size, patches_per_volume
        self.method, self.seed, self.stream = method, seed, STREAMS[stream]
        self.region_size = method.region_size(patch_size) if hasattr(method, "region_size") else patch_size
        self.partner_share = method.patient_positive_share() if hasattr(method, "patient_positive_share") else 0.0
        self.partners = partner_groups(entries) if self.partner_share > 0 else None
        self._maps: OrderedDict[int, np.ndarray] = OrderedDict()

    def __len__(self) -> int:
        return len(self.entries) * self.patches_per_volume

    def _array(self, volume: int) -> np.ndarray:
        if volume in self._maps:
            self._maps.move_to_end(volume)
        else:
            self._maps[volume] = self.entries[volume].open()
            if len(self._maps) > OPEN_MAPS:
                self._maps.popitem(last=False)
        return self._maps[volume]

    def volume_index(self, index: int) -> int:
        """The volume item ``index`` is cut from."""
        return index // self.patches_per_volume

    def patch(self, epoch: int, index: int):
        """(region float32 (1, R, R, R), its voxel-to-RAS (4, 4), the view random state) of item (epoch, index)."""
        crop_seed, view_seed = np.random.SeedSequence([self.seed, self.stream, epoch, index]).generate_state(2)
        volume = self.volume_index(index)
        patch, affine = crop_patch(self._array(volume), self.entries[volume].affine, self.region_size,
                                   np.random.default_rng(crop_seed))
        return patch, affine, np.random.RandomState(view_seed)

    def __getitem__(self, item):
        epoch, index = item
        patch, affine, random_state = self.patch(epoch, index)
        if self.partners is None:
            return self.method.make_views(patch, random_state)
        partner = self.partner(epoch, index, affine)
        return self.method.make_views(patch, random_state, partner=None if partner is None else partner[1])

    def partner(self, epoch: int, index: int, region_affine: np.ndarray):
        """(partner volume index, its region float32 (1, R, R, R), the region's voxel-to-RAS) for item (epoch, index)
        whose region has voxel-to-RAS ``region_affine``, or None (no partner drawn, or none usable there)."""
        group = self.partners[self.volume_index(index)] if self.partners else ()
        rng = np.random.default_rng([self.seed, self.stream, epoch, index, PARTNER_DRAW])
        if not group or rng.random() >= self.partner_share:
            return None
        volume = int(group[rng.integers(len(group))])
        found = same_place(self._array(volume), self.entries[volume].affine, region_affine, self.region_size)
        return None if found is None else (volume, *found)

    def __getstate__(self):  # memory maps are reopened in each worker process
        state = self.__dict__.copy()
        state["_maps"] = OrderedDict()
        return state
