"""Map class scores computed on the model's grid back onto the input volume's exact grid, as one label map.

Choice: the label of a target voxel is the argmax of the class probabilities linearly interpolated at its centre
(smoother than nearest-neighbour on labels, the same where the grids coincide).

When the model grid comes from reorienting (axis permutation and flips) and rescaling the input grid, target index
-> model index is a scaled signed permutation plus an offset: the interpolation is separable, done axis by axis.
When it was rotated (an oblique input deskewed, :mod:`sslseg.data.deskew`), the general trilinear sampler
(:mod:`sslseg.data.affine_sampling`) does it instead, slab by slab as well.

Memory stays bounded and time short: the target is filled slab by slab (a few million voxels at a time). For each
slab only the model planes it falls between are copied, channels-last, and interpolated along one axis after the
other (the axes that grow least first), so each step copies whole contiguous runs of values; the slab's argmax goes
straight into the uint8 label map. The peak beyond the output is a few slab-sized float buffers, never one float
array per organ or one float array of the target's size.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from sslseg.data.affine_sampling import sample_slabs

#: Target voxels handled at once (a slab of whole planes along the target's first axis; at least one plane).
SLAB_VOXELS = 1 << 22


def separable_mapping(target_affine: np.ndarray, model_affine: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(axes, scale, offset): target axis a samples model axis ``axes[a]`` at ``scale[a] * index + offset[a]``.

    Raises ValueError when the model grid is rotated relative to the target (not a permutation with scaling).
    """
    transform = np.linalg.inv(model_affine) @ target_affine
    linear = transform[:3, :3]
    axes = np.argmax(np.abs(linear), axis=0)
    scale = linear[axes, np.arange(3)]
    residual = linear.copy()
    residual[axes, np.arange(3)] = 0
    if len(set(axes.tolist())) != 3 or np.abs(residual).max() > 1e-6 * np.abs(scale).max():
        raise ValueError("the model grid is rotated relative to the input grid; expected reorientation + scaling only")
    return axes, scale, transform[axes, 3]


def labels_on_target_grid(
    probabilities: torch.Tensor, model_affine: np.ndarray, target_shape: tuple[int, int, int], target_affine: np.ndarray
) -> np.ndarray:
    """Argmax labels on the target grid.

    Args:
        probabilities: (C, X, Y, Z) float class probabilities on the model grid (channel 0 = background).
        model_affine: (4, 4) voxel-to-RAS of the model grid.
        target_shape, target_affine: the input volume's grid (I, J, K) and voxel-to-RAS.
    Returns:
        uint8 (or int16 for more than 256 classes) label map (I, J, K); target voxels outside the model grid are 0.
    """
    target_shape = tuple(int(n) for n in target_shape)
    dtype = torch.uint8 if probabilities.shape[0] <= 256 else torch.int16
    try:
        axes, scale, offset = separable_mapping(target_affine, model_affine)
    except ValueError:  # rotated grids
        return _rotated_labels(probabilities, model_affine, target_shape, target_affine, dtype)
    volume = probabilities.permute(0, *(1 + axes).tolist())  # the model grid in target axis order: a view, no copy
    samples = [_linear_weights(scale[a] * np.arange(target_shape[a]) + offset[a], volume.shape[1 + a])
               for a in range(3)]
    labels = torch.empty(target_shape, dtype=dtype)
    inside12 = samples[1][3][:, None] & samples[2][3][None, :]
    rows = max(1, SLAB_VOXELS // max(1, target_shape[1] * target_shape[2]))
    for first in range(0, target_shape[0], rows):
        part = slice(first, min(first + rows, target_shape[0]))
        slab = _interpolate_slab(volume, samples, part).max(dim=-1).indices.to(dtype)  # first maximum wins
        slab[~(samples[0][3][part][:, None, None] & inside12[None])] = 0
        labels[part] = slab
    return labels.numpy()


def _rotated_labels(probabilities, model_affine, target_shape, target_affine, dtype) -> np.ndarray:
    """:func:`labels_on_target_grid` for a model grid rotated relative to the target (general trilinear sampling)."""
    labels = torch.empty(target_shape, dtype=dtype)
    for rows, values, inside in sample_slabs(probabilities, model_affine, target_shape, target_affine):
        slab = values.max(dim=0).indices.to(dtype)  # first maximum wins, as on the separable path
        slab[~inside] = 0
        labels[rows] = slab
    return labels.numpy()


def _linear_weights(positions: np.ndarray, size: int):
    """(low index, high index, high weight, inside) per target position along one axis of a model of ``size``."""
    inside = (positions >= -0.5) & (positions <= size - 0.5)  # within the model grid's outer voxel faces
    clamped = np.clip(positions, 0, size - 1)
    low = np.floor(clamped).astype(np.int64)
    high = np.minimum(low + 1, size - 1)
    weight = (clamped - low).astype(np.float32)
    return torch.from_numpy(low), torch.from_numpy(high), torch.from_numpy(weight), torch.from_numpy(inside)


def _interpolate_slab(volume: torch.Tensor, samples, part: slice) -> torch.Tensor:
    """(rows, J, K, C) float32 probabilities linearly interpolated at the target planes ``part`` of axis 0.

    Only the model planes those rows fall between are read, copied channels-last so that every step along a spatial
    axis copies whole runs of C values (no element-wise gathers); the axes that grow least go first.
    """
    low, high, weight, _ = samples[0]
    low, high, weight = low[part], high[part], weight[part]
    first, last = int(low.min()), int(high.max())
    block = volume[:, first:last + 1].permute(1, 2, 3, 0).to(torch.float32, memory_format=torch.contiguous_format)
    steps = [(0, (low - first, high - first, weight))] + [(a, samples[a][:3]) for a in (1, 2)]
    steps.sort(key=lambda step: len(step[1][0]) / block.shape[step[0]])
    for axis, (lo, hi, w) in steps:
        shape = [1, 1, 1, 1]
        shape[axis] = -1
        block = torch.lerp(_take(block, axis, lo), _take(block, axis, hi), w.view(shape))
    return block


def _take(block: torch.Tensor, axis: int, index: torch.Tensor) -> torch.Tensor:
    """``block.index_select(axis, index)`` for a contiguous block, done on a 3-D view (outer, n, inner) so that
    whole contiguous runs are copied: several times faster than index_select on the 4-D tensor."""
    shape = block.shape
    picked = block.reshape(math.prod(shape[:axis]), shape[axis], -1).index_select(1, index)  # reshape: a view here
    return picked.view(*shape[:axis], len(index), *shape[axis + 1:])
