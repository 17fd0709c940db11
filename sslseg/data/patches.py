"""Random cubic patches of a cached volume, padded when the volume is smaller than the patch.

Only the patch's voxels are read from the memory-mapped cache. The patch keeps its geometry: its voxel-to-RAS
matrix is the volume's, shifted to the patch's first voxel (padding included), so a patch written as NIfTI lies
exactly where it came from.
"""

from __future__ import annotations

import numpy as np


def patch_window(shape: tuple[int, ...], size: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(starts, pads): where the patch begins in the volume along I, J, K, and the zero padding before it.

    Along an axis at least ``size`` long the start is uniform over every position that fits (MONAI
    ``RandSpatialCrop`` with ``random_center``); a shorter axis is taken whole and centred, padded with zeros.
    """
    starts, pads = np.zeros(3, dtype=np.int64), np.zeros(3, dtype=np.int64)
    for axis, n in enumerate(shape):
        if n >= size:
            starts[axis] = rng.integers(0, n - size + 1)
        else:
            pads[axis] = (size - n) // 2
    return starts, pads


def crop_patch(array: np.ndarray, affine: np.ndarray, size: int, rng: np.random.Generator):
    """A random patch: (float32 (1, S, S, S), its (4, 4) voxel-to-RAS matrix). ``array`` is (I, J, K)."""
    starts, pads = patch_window(array.shape, size, rng)
    return crop_window(array, affine, size, starts, pads)


def crop_window(array: np.ndarray, affine: np.ndarray, size: int, starts: np.ndarray, pads: np.ndarray):
    """The patch at ``starts`` with ``pads`` (from :func:`patch_window`): (float32 (1, S, S, S), (4, 4) affine)."""
    patch, shifted, _ = crop_cube(array, affine, size, np.asarray(starts) - np.asarray(pads))
    return patch, shifted


def crop_cube(array: np.ndarray, affine: np.ndarray, size: int, corner: np.ndarray):
    """The S-voxel cube whose first voxel is ``corner`` (integer (I, J, K), anywhere, even outside the volume):
    (float32 (1, S, S, S), zero outside the volume; its (4, 4) voxel-to-RAS; the share of its voxels inside)."""
    corner = np.asarray(corner, dtype=np.int64)
    low = np.clip(corner, 0, array.shape)
    high = np.clip(corner + size, 0, array.shape)
    patch = np.zeros((1, size, size, size), dtype=np.float32)
    inside = float(np.prod(high - low)) / size ** 3
    if inside > 0:
        patch[(0, *(slice(a - c, b - c) for a, b, c in zip(low, high, corner)))] = np.asarray(
            array[tuple(slice(a, b) for a, b in zip(low, high))], dtype=np.float32)
    shifted = np.array(affine, dtype=np.float64)
    shifted[:3, 3] = affine[:3, :3] @ corner.astype(np.float64) + affine[:3, 3]
    return patch, shifted, inside
