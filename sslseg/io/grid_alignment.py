"""Put a label map onto its image's grid without interpolation, when both grids share the same voxel lattice.

Real files often store the labels of a scan with other axis order or direction (dcm2niix writes LAS for an LPS DICOM
series) or cropped to the labelled region (Slicer ``.seg.nrrd``). Such a label map has every voxel centre on an image
voxel centre, so it can be re-indexed exactly. Anything else (another spacing, a rotation, a shift by a fraction of a
voxel) is an error: silently resampling labels would hide a registration problem.
"""

from __future__ import annotations

import numpy as np

from sslseg.errors import LabelError
from sslseg.volume import GRID_TOLERANCE, Volume


def index_mapping(label_affine: np.ndarray, image_affine: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """(P, t) with image index = P @ label index + t, P a signed permutation and t integral; None otherwise."""
    transform = np.linalg.inv(image_affine) @ label_affine
    linear, offset = transform[:3, :3], transform[:3, 3]
    permutation = np.round(linear)
    if not np.allclose(linear, permutation, atol=GRID_TOLERANCE):
        return None
    if not (np.abs(permutation).sum(axis=0) == 1).all() or not (np.abs(permutation).sum(axis=1) == 1).all():
        return None
    if not np.allclose(offset, np.round(offset), atol=GRID_TOLERANCE):
        return None
    return permutation.astype(int), np.round(offset).astype(int)


def align_to_grid(label: Volume, shape: tuple[int, int, int], affine: np.ndarray) -> np.ndarray | None:
    """The label array re-indexed onto the grid (shape, affine), zero where it has no data; None if impossible.

    Returns None when the lattices differ or when labelled voxels would fall outside the target grid.
    """
    mapping = index_mapping(label.affine, affine)
    if mapping is None:
        return None
    permutation, offset = mapping
    array = label.array
    # Reorder axes so label axis a becomes image axis target(a), then flip the reversed ones.
    target_axis = np.argmax(np.abs(permutation), axis=0)  # label axis a -> image axis
    array = np.transpose(array, np.argsort(target_axis))
    signs = permutation[target_axis, np.arange(3)][np.argsort(target_axis)]
    for axis, sign in enumerate(signs):
        if sign < 0:
            array = np.flip(array, axis=axis)
    # The first voxel of the reordered array sits at the minimum image index along each axis.
    corners = np.array([[0, 0, 0], np.array(label.shape) - 1])
    start = np.min((permutation @ corners.T).T + offset, axis=0)
    return _paste(array, start, shape)


def _paste(array: np.ndarray, start: np.ndarray, shape: tuple[int, int, int]) -> np.ndarray | None:
    result = np.zeros(shape, dtype=array.dtype)
    stop = start + np.array(array.shape)
    low, high = np.maximum(start, 0), np.minimum(stop, shape)
    if np.any(high <= low):
        return None if array.any() else result
    inner = tuple(slice(lo - s, hi - s) for lo, hi, s in zip(low, high, start))
    outside = array.sum(dtype=np.int64) - array[inner].sum(dtype=np.int64)
    if outside != 0:
        return None
    result[tuple(slice(lo, hi) for lo, hi in zip(low, high))] = array[inner]
    return result


def labels_on_image_grid(label: Volume, image: Volume, label_name: str, image_name: str) -> Volume:
    """The label map on exactly the image's grid, or a LabelError that names both files and both geometries."""
    array = align_to_grid(label, image.shape, image.affine)
    if array is None:
        raise LabelError(
            f"the label map {label_name} ({label.grid_description()}) is not on the grid of its image "
            f"{image_name} ({image.grid_description()})",
            "export the segmentation with the image as reference geometry, or resample it onto the image",
        )
    return Volume(np.ascontiguousarray(array), image.affine.copy(), label.meta)
