"""Two augmented views of one region for the joint-embedding methods — a stand-in until ``sslseg.ssl.views3d``.

Each view of a region (1, R, R, R), R = ceil(S * ``region_scale``), for a patch edge S:

1. random resized 3-D crop: a cube of edge U(``min_crop``, 1) * R at a uniform position, resized to S^3 (trilinear);
2. intensity: contrast x U(0.75, 1.25) about the view's mean, brightness + U(-0.1, 0.1), then with probability 0.5
   gamma U(0.7, 1.5) on the 0..1 clip, then with probability 0.5 Gaussian noise of sigma U(0, 0.05).

No flips or rotations: a left-right flip would teach invariance to the liver's side, which the organ labels are not
(the fine-tuning's finding). Every draw comes from the ``RandomState`` given, so views are reproducible.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class PairViewSettings:
    region_scale: float = 1.5
    min_crop: float = 0.5


#: Patch edges are multiples of the ViT token size (every preset's: 16).
TOKEN = 16


def region_edge(patch_size: int, settings: PairViewSettings) -> int:
    """R for a patch edge S: ceil(S * region_scale)."""
    return int(math.ceil(patch_size * settings.region_scale))


def patch_edge(region: int, settings: PairViewSettings) -> int:
    """S for a region edge R (the inverse of :func:`region_edge` for multiples of ``TOKEN``)."""
    return max(TOKEN, TOKEN * int(round(region / settings.region_scale / TOKEN)))


def one_view(region: np.ndarray, patch_size: int, settings: PairViewSettings, rng: np.random.RandomState):
    """One view (torch float32 (1, S, S, S)) of ``region`` (numpy (1, R, R, R))."""
    import torch
    import torch.nn.functional as F

    edge = region.shape[-1]
    crop = int(round(edge * rng.uniform(settings.min_crop, 1.0)))
    crop = max(min(crop, edge), 1)
    starts = [int(rng.randint(0, edge - crop + 1)) for _ in range(3)]
    cube = region[0, starts[0]:starts[0] + crop, starts[1]:starts[1] + crop, starts[2]:starts[2] + crop]
    view = torch.as_tensor(np.ascontiguousarray(cube), dtype=torch.float32)[None, None]
    if crop != patch_size:
        view = F.interpolate(view, size=(patch_size,) * 3, mode="trilinear", align_corners=False)
    view = view[0]
    contrast, brightness = rng.uniform(0.75, 1.25), rng.uniform(-0.1, 0.1)
    gamma = rng.uniform(0.7, 1.5) if rng.uniform() < 0.5 else None
    sigma = rng.uniform(0.0, 0.05) if rng.uniform() < 0.5 else None
    view = (view - view.mean()) * contrast + view.mean() + brightness
    if gamma is not None:
        view = view.clamp(0, 1) ** gamma
    if sigma is not None:
        noise = rng.standard_normal(view.shape).astype(np.float32)
        view = view + sigma * torch.from_numpy(noise)
    return view.contiguous()


def two_views(region: np.ndarray, settings: PairViewSettings, rng: np.random.RandomState) -> dict:
    """``view1``, ``view2``: torch float32 (1, S, S, S) each, S = :func:`patch_edge` of the region's edge."""
    patch_size = patch_edge(region.shape[-1], settings)
    return {"view1": one_view(region, patch_size, settings, rng), "view2": one_view(region, patch_size, settings, rng)}


def k_views(region: np.ndarray, settings: PairViewSettings, rng: np.random.RandomState, count: int) -> dict:
    """``view1`` .. ``view{count}``, drawn in that order as :func:`two_views` draws its two (so ``count`` 2 gives
    exactly its views)."""
    patch_size = patch_edge(region.shape[-1], settings)
    return {f"view{i + 1}": one_view(region, patch_size, settings, rng) for i in range(count)}
