"""Sample a volume at the voxel centres of another grid related to it by any affine map (rotations included).

The general counterpart of the separable (permutation + scaling) interpolation in
:mod:`sslseg.inference.resample_back`, for grids that are rotated relative to each other: an oblique scan resampled
onto an axis-aligned grid before the model, and the model's scores mapped back onto the oblique scan.

Conventions: an affine maps voxel indices to RAS millimetres, voxel centres at integer indices. A target voxel takes
the source's value at ``inv(source_affine) @ target_affine @ (i, j, k, 1)``, interpolated trilinearly (or nearest);
positions beyond the source's outer voxel faces (index < -0.5 or > n - 0.5) are reported as outside, positions
between the outermost centre and face take the edge value.

Memory stays bounded: the target is produced slab by slab (a few million voxels, whole planes along its first axis),
and for each slab only the block of the source it falls in is converted to float32.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch
import torch.nn.functional as F

#: Target voxels produced at once (whole planes along the target's first axis; at least one plane).
SLAB_VOXELS = 1 << 21


def sample_slabs(source: torch.Tensor, source_affine: np.ndarray, target_shape, target_affine: np.ndarray,
                 mode: str = "bilinear") -> Iterator[tuple[slice, torch.Tensor, torch.Tensor]]:
    """Yield ``(rows, values, inside)`` for consecutive slabs of the target grid.

    Args:
        source: (C, X, Y, Z) tensor on the source grid (any float dtype; read block by block).
        source_affine, target_affine: (4, 4) voxel-to-RAS of the two grids.
        target_shape: (I, J, K) of the target grid.
        mode: ``"bilinear"`` (trilinear) or ``"nearest"``.
    Yields:
        rows: the target planes ``slice(i0, i1)`` along I; values: (C, i1 - i0, J, K) float32; inside:
        (i1 - i0, J, K) bool, False where the target voxel lies outside the source grid (its values are then the
        nearest edge's, to be replaced by the caller).
    """
    index_map = torch.from_numpy(np.linalg.solve(source_affine, target_affine))  # target index -> source index
    size = torch.tensor(source.shape[1:], dtype=torch.float64)
    target_shape = tuple(int(n) for n in target_shape)
    rows = max(1, SLAB_VOXELS // max(1, target_shape[1] * target_shape[2]))
    planes = torch.stack(torch.meshgrid(torch.arange(target_shape[1], dtype=torch.float64),
                                        torch.arange(target_shape[2], dtype=torch.float64), indexing="ij"), dim=-1)
    in_plane = planes @ index_map[:3, 1:3].T + index_map[:3, 3]  # (J, K, 3) source index of plane i = 0
    for first in range(0, target_shape[0], rows):
        part = slice(first, min(first + rows, target_shape[0]))
        i = torch.arange(part.start, part.stop, dtype=torch.float64)
        positions = in_plane[None] + i[:, None, None, None] * index_map[:3, 0]  # (rows, J, K, 3) source indices
        inside = ((positions >= -0.5) & (positions <= size - 0.5)).all(dim=-1)
        yield part, _sample(source, size, positions, mode), inside


def _sample(source: torch.Tensor, size: torch.Tensor, positions: torch.Tensor, mode: str) -> torch.Tensor:
    """(C, rows, J, K) float32 values of ``source`` (C, X, Y, Z) at ``positions`` (rows, J, K, 3), clamped to the
    source's extent ``size`` (X, Y, Z as float64; border values beyond it); only the block the positions fall in is
    read."""
    clamped = torch.minimum(torch.clamp(positions, min=0.0), size - 1)
    start = torch.clamp(torch.floor(clamped.reshape(-1, 3).min(dim=0).values), min=0).long()
    stop = torch.minimum(torch.ceil(clamped.reshape(-1, 3).max(dim=0).values).long() + 1, size.long())
    block = source[:, start[0]:stop[0], start[1]:stop[1], start[2]:stop[2]].to(torch.float32)
    extent = (stop - start).to(torch.float64)
    # grid_sample, align_corners=True: -1 and +1 are the centres of the block's first and last voxels
    normalised = torch.where(extent > 1, 2 * (clamped - start) / torch.clamp(extent - 1, min=1) - 1,
                             torch.zeros_like(clamped))
    grid = normalised.flip(-1).to(torch.float32)[None]  # (1, rows, J, K, 3) as (z, y, x): grid_sample's order
    sampled = F.grid_sample(block[None], grid, mode=mode, padding_mode="border", align_corners=True)
    return sampled[0].reshape(source.shape[0], *positions.shape[:-1])
