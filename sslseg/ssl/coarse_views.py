"""The MONAI tutorial's view augmentation: in-painting or out-painting, then local voxel shuffling.

One view of a patch (1, S, S, S) is, as in MONAI's ``vit_unetr_ssl`` tutorial:

1. one of, with equal probability (MONAI ``OneOf`` without weights):
   * in-painting: ``RandCoarseDropout`` with 6 holes of 5..32 voxels filled with random values (holes dropped);
   * out-painting: ``RandCoarseDropout`` with 6 holes of 20..64 voxels kept and everything else filled;
2. ``RandCoarseShuffle``: with probability 0.8, voxels shuffled inside 10 blocks of 8^3.

The tutorial's sizes are for 96^3 patches; here they scale with the patch (``S / 96``, at least 1 voxel), so a 32^3
test patch sees the same relative damage, and a 96^3 patch exactly the tutorial's. The transforms run on numpy with
MetaTensor tracking off (set by the data loader), and draw from the ``RandomState`` they are given.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

REFERENCE_PATCH = 96


@dataclass(frozen=True)
class CoarseViewSettings:
    """Hole counts and sizes (voxels at a 96^3 patch) and probabilities of the two augmentation steps."""

    inpaint_holes: int = 6
    inpaint_size: tuple[int, int] = (5, 32)
    outpaint_holes: int = 6
    outpaint_size: tuple[int, int] = (20, 64)
    outpaint_weight: float = 0.5
    shuffle_prob: float = 0.8
    shuffle_holes: int = 10
    shuffle_size: int = 8

    def to_dict(self) -> dict:
        return asdict(self)


def _scaled(size: int, patch: int) -> int:
    return max(1, round(size * patch / REFERENCE_PATCH))


def build_view_transform(settings: CoarseViewSettings, patch_size: int):
    """A MONAI ``Compose`` making one view of a (1, S, S, S) patch, S = ``patch_size``."""
    from monai.transforms import Compose, OneOf, RandCoarseDropout, RandCoarseShuffle

    s = settings
    inpaint = RandCoarseDropout(
        holes=s.inpaint_holes, spatial_size=_scaled(s.inpaint_size[0], patch_size), dropout_holes=True,
        max_spatial_size=_scaled(s.inpaint_size[1], patch_size), prob=1.0,
    )
    outpaint = RandCoarseDropout(
        holes=s.outpaint_holes, spatial_size=_scaled(s.outpaint_size[0], patch_size), dropout_holes=False,
        max_spatial_size=_scaled(s.outpaint_size[1], patch_size), prob=1.0,
    )
    shuffle = RandCoarseShuffle(holes=s.shuffle_holes, spatial_size=_scaled(s.shuffle_size, patch_size),
                                prob=s.shuffle_prob)
    weights = [1.0 - s.outpaint_weight, s.outpaint_weight]
    return Compose([OneOf([inpaint, outpaint], weights=weights), shuffle])


def make_view(transform, patch, seed: int):
    """One view of ``patch`` (numpy (1, S, S, S) float32) drawn with ``seed``; a torch float32 tensor, same shape."""
    import numpy as np
    import torch

    transform.set_random_state(seed=int(seed) % (2**32))
    view = transform(np.array(patch, dtype=np.float32, copy=True))
    return torch.as_tensor(np.asarray(view), dtype=torch.float32)
