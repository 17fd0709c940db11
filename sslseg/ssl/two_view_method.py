"""The data side shared by the two-view joint-embedding methods (SimCLR, BYOL, SimSiam, MoCo, Barlow Twins, VICReg):
two views of one region larger than the patch, each a random resized 3-D crop with its own intensity changes
(:func:`sslseg.ssl.views3d.make_view`; no flips or rotations, see that module for why).

A method's ``Options`` gives ``region_scale`` (region edge / patch edge) and ``min_crop_volume`` (the smallest crop as
a share of the region's volume; crops are U(min_crop_volume, 1) of it with aspect ratios 3/4..4/3 per axis).
Defaults: a region 1.5 patches wide and crops of at least a quarter of its volume (edges 0.63-1 of the region), so a
view is a 0.94x to 1.5x zoom of a patch-sized cube and two views of a region overlap in most of it; SimCLR's
ImageNet crops (8-100 % of the area) would show two views of a 3-D patch that share no organ.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from sslseg.ssl.base import SSLMethod
from sslseg.ssl.views3d import make_view, random_axial_rot90, random_flips

#: Patch edges are multiples of the ViT token size (every preset's: 16).
TOKEN = 16


@dataclass(frozen=True)
class TwoViewOptions:
    """The views' options every two-view method has."""

    region_scale: float = 1.5
    min_crop_volume: float = 0.25
    #: Spatial axes of the RAS-oriented region (0 left-right, 1 posterior-anterior, 2 inferior-superior) each view
    #: flips with probability 0.5; none by default (see :mod:`sslseg.ssl.views3d`, and benchmarks/bench_views.py for
    #: the measurement).
    flip_axes: tuple[int, ...] = ()
    #: Each view rotated by a random multiple of 90 degrees in the axial plane; off by default, as flips.
    rotate90: bool = False
    #: Patient-aware positives (MedAug, :mod:`sslseg.data.partners`): the share of samples whose second view is cut
    #: from another scan of the same patient, at the same RAS place (only volumes with such a partner; 0 = off).
    patient_positives: float = 0.0

    def __post_init__(self) -> None:
        if any(axis not in (0, 1, 2) for axis in self.flip_axes):
            raise ValueError(f"flip_axes are spatial axes 0, 1, 2, got {self.flip_axes}")
        if not self.region_scale >= 1.0:
            raise ValueError(f"region_scale must be >= 1 (the region holds the patch), got {self.region_scale}")
        if not 0.0 < self.min_crop_volume <= 1.0:
            raise ValueError(f"min_crop_volume must be in (0, 1], got {self.min_crop_volume}")
        if not 0.0 <= self.patient_positives <= 1.0:
            raise ValueError(f"patient_positives is a share in [0, 1], got {self.patient_positives}")


def token_multiple(edge: float) -> int:
    """The multiple of ``TOKEN`` nearest ``edge`` voxels, at least one token (every ViT input edge must be one)."""
    return max(TOKEN, TOKEN * int(round(edge / TOKEN)))


def region_edge(patch_size: int, region_scale: float) -> int:
    """R for a patch edge S: ceil(S * region_scale)."""
    return int(math.ceil(patch_size * region_scale))


def patch_edge(region: int, region_scale: float) -> int:
    """S for a region edge R (the inverse of :func:`region_edge` for multiples of ``TOKEN``)."""
    return token_multiple(region / region_scale)


def second_region(region: np.ndarray, partner: np.ndarray | None, view: int) -> np.ndarray:
    """The region view number ``view`` (0-based) is cut from: the partner's for the second view when there is one."""
    return partner if view == 1 and partner is not None else region


class TwoViewMethod(SSLMethod):
    """An :class:`SSLMethod` whose views are ``view1`` and ``view2`` (or more), each float32 (1, S, S, S) in 0..1."""

    def region_size(self, patch_size: int) -> int:
        return region_edge(patch_size, self.opts.region_scale)

    def patient_positive_share(self) -> float:
        return self.opts.patient_positives

    def view(self, region: np.ndarray, random_state):
        """One view (torch float32 (1, S, S, S)) of ``region`` (numpy (1, R, R, R))."""
        import torch

        size = patch_edge(region.shape[-1], self.opts.region_scale)
        region = random_flips(region, random_state, self.opts.flip_axes)
        if self.opts.rotate90:
            region = random_axial_rot90(region, random_state)
        return torch.from_numpy(make_view(region, random_state, size, scale=(self.opts.min_crop_volume, 1.0)))

    def view_count(self) -> int:
        """How many views of a region a sample holds (2; W-MSE may use more)."""
        return 2

    def make_views(self, region, random_state, partner=None) -> dict:
        """``view1`` .. ``view{k}``, k = :meth:`view_count`, drawn in that order (the first two do not depend on k);
        ``view2`` from ``partner`` (a partner scan's region at the same place, (1, R, R, R)) when one is given."""
        return {f"view{i + 1}": self.view(second_region(region, partner, i), random_state)
                for i in range(self.view_count())}
