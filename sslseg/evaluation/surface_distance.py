"""Symmetric percentile Hausdorff distance between two masks' surfaces, in millimetres.

Definition as in MONAI's ``compute_hausdorff_distance(percentile=95)`` and the BTCV/MSD literature: the larger of
the two directed 95th-percentile distances from one surface's voxels to the other surface.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage


def hausdorff_distance(
    prediction: np.ndarray, reference: np.ndarray, spacing: np.ndarray, percentile: float = 95.0
) -> float:
    """Masks (I, J, K) bool on one grid with voxel size ``spacing`` (3,) mm; NaN when either mask is empty."""
    if not prediction.any() or not reference.any():
        return float("nan")
    box = _joint_box(prediction, reference)
    prediction, reference = prediction[box], reference[box]
    to_reference = _distances_to(_surface(reference), _surface(prediction), spacing)
    to_prediction = _distances_to(_surface(prediction), _surface(reference), spacing)
    return float(max(np.percentile(to_reference, percentile), np.percentile(to_prediction, percentile)))


def _surface(mask: np.ndarray) -> np.ndarray:
    """Voxels of the mask that touch the outside (6-connectivity)."""
    return mask & ~ndimage.binary_erosion(mask, border_value=0)


def _distances_to(target_surface: np.ndarray, source_surface: np.ndarray, spacing: np.ndarray) -> np.ndarray:
    """Distance (mm) from each source-surface voxel to the nearest target-surface voxel."""
    distance = ndimage.distance_transform_edt(~target_surface, sampling=np.asarray(spacing, dtype=np.float64))
    return distance[source_surface]


def _joint_box(a: np.ndarray, b: np.ndarray) -> tuple[slice, ...]:
    """The bounding box of both masks, one voxel wider so surfaces at its edge are still surfaces."""
    coordinates = np.argwhere(a | b)
    low = np.maximum(coordinates.min(axis=0) - 1, 0)
    high = np.minimum(coordinates.max(axis=0) + 2, a.shape)
    return tuple(slice(lo, hi) for lo, hi in zip(low, high))
