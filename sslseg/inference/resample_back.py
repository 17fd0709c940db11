"""Map class scores computed on the model's grid back onto the input volume's exact grid, as one label map.

Choice: the label of a target voxel is the argmax of the class probabilities linearly interpolated at its centre
(smoother than nearest-neighbour on labels, the same where the grids coincide). Memory stays bounded: channels are
resampled one at a time into a running maximum, so the peak is a few float32 arrays of the target's size, never one
per organ.

The model grid comes from reorienting (axis permutation and flips) and rescaling the input grid, so target index ->
model index is a scaled signed permutation plus an offset: the interpolation is separable, done axis by axis.
"""

from __future__ import annotations

import numpy as np
import torch


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
        uint8 (or int16 for more than 255 classes) label map (I, J, K); target voxels outside the model grid are 0.
    """
    axes, scale, offset = separable_mapping(target_affine, model_affine)
    samples = [_linear_weights(scale[a] * np.arange(target_shape[a]) + offset[a], probabilities.shape[1 + axes[a]])
               for a in range(3)]
    best_score = torch.full(tuple(target_shape), -1.0)
    best_label = torch.zeros(tuple(target_shape), dtype=torch.int16)
    for channel in range(probabilities.shape[0]):
        score = _resample(probabilities[channel].float().permute(*axes.tolist()), samples)
        better = score > best_score
        best_score = torch.where(better, score, best_score)
        best_label[better] = channel
        del score, better
    outside = _outside_mask(samples)
    best_label[outside] = 0
    labels = best_label.numpy()
    return labels.astype(np.uint8) if probabilities.shape[0] <= 256 else labels


def _linear_weights(positions: np.ndarray, size: int):
    """(low index, high index, high weight, inside) per target position along one axis of a model of ``size``."""
    inside = (positions >= -0.5) & (positions <= size - 0.5)  # within the model grid's outer voxel faces
    clamped = np.clip(positions, 0, size - 1)
    low = np.floor(clamped).astype(np.int64)
    high = np.minimum(low + 1, size - 1)
    weight = (clamped - low).astype(np.float32)
    return torch.from_numpy(low), torch.from_numpy(high), torch.from_numpy(weight), torch.from_numpy(inside)


def _resample(volume: torch.Tensor, samples) -> torch.Tensor:
    """Linear interpolation of a (X, Y, Z) tensor (already in target axis order) along each axis in turn."""
    for axis, (low, high, weight, _) in enumerate(samples):
        shape = [1, 1, 1]
        shape[axis] = -1
        w = weight.view(shape)
        volume = volume.index_select(axis, low) * (1 - w) + volume.index_select(axis, high) * w
    return volume


def _outside_mask(samples) -> torch.Tensor:
    inside = [s[3] for s in samples]
    return ~(inside[0][:, None, None] & inside[1][None, :, None] & inside[2][None, None, :])
