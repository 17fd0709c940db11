"""A volume as a stack of axial 2-D images, the way the hash sees them.

Definition (the hash depends on it, since dhash compares horizontal neighbours):

- **slices** are taken along the voxel axis closest to superior-inferior (nibabel ``io_orientation``; an oblique
  grid is not resampled, its nearest axis is used), ordered **inferior to superior** by the RAS position of each
  slice's centre (the volume's voxel-to-RAS affine), whatever the file or DICOM instance order;
- **image rows** run anterior -> posterior and **columns** patient right -> left: the radiological display, and the
  pixel layout of an axial DICOM image (LPS). Axes are permuted and flipped only; no voxel is interpolated;
- **grey levels**: per slice, with ``lo``/``hi`` its own min/max (no windowing), ``a = 255 / (hi - lo)``,
  ``b = 0.5 - lo * a`` and ``u = floor(v * a + b)`` evaluated in float64 (numpy, one rounding per operation),
  i.e. (v - lo) / (hi - lo) * 255 rounded half up; a constant slice is all 0. ``lo`` maps to 0 and ``hi`` to 255
  (the 0.5 margin is far above float64 error, so no clipping is needed).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sslseg.volume import Volume

AXIS_NAMES = "ijk"


@dataclass
class AxialStack:
    """Axial slices of a volume, as views of its voxels (nothing copied).

    Attributes:
        images: (N, H, W) view, ``images[n]`` is slice n (inferior first), rows anterior->posterior, columns
            right->left; any dtype.
        axis: the voxel axis the slices are taken along (0, 1, 2 for i, j, k).
        indices: (N,) voxel index along ``axis`` of each slice (the index in the original file).
        superior_mm: (N,) RAS S coordinate (mm) of each slice's centre, ascending.
        source: the volume's (I, J, K) array the views look into.
    """

    images: np.ndarray
    source: np.ndarray
    axis: int
    indices: np.ndarray
    superior_mm: np.ndarray

    @property
    def axis_name(self) -> str:
        return AXIS_NAMES[self.axis]


def axial_stack(volume: Volume) -> AxialStack:
    """The volume's axial slices as an (N, H, W) view (see the module docstring for the exact definition)."""
    import nibabel.orientations as nio

    ornt = nio.io_orientation(volume.affine)  # per voxel axis: (RAS axis it is closest to, +1 towards R/A/S)
    by_ras = {int(ras): (axis, sign) for axis, (ras, sign) in enumerate(ornt)}
    (slice_axis, s_sign), (row_axis, a_sign), (col_axis, r_sign) = by_ras[2], by_ras[1], by_ras[0]
    images = np.transpose(volume.array, (slice_axis, row_axis, col_axis))
    # rows must run towards P (RAS sign -1), columns towards L (sign -1), slices towards S (sign +1)
    images = images[:: int(s_sign), :: -int(a_sign), :: -int(r_sign)]
    count = volume.shape[slice_axis]
    indices = np.arange(count) if s_sign > 0 else np.arange(count)[::-1]
    centre = (np.asarray(volume.shape, dtype=np.float64) - 1) / 2
    points = np.repeat(centre[None], count, axis=0)
    points[:, slice_axis] = indices
    superior = points @ volume.affine[2, :3] + volume.affine[2, 3]
    if np.any(np.diff(superior) < 0):  # cannot happen after the flips above; a copy if it ever did
        order = np.argsort(superior, kind="stable")
        images, indices, superior = images[order], indices[order], superior[order]
    return AxialStack(images, volume.array, slice_axis, indices, superior)


def grey_level_coefficients(stack: AxialStack) -> tuple[np.ndarray, np.ndarray]:
    """(a, b), each (N,) float64: ``u = floor(v * a + b)`` maps each slice's min to 0 and max to 255."""
    source = stack.source
    others = tuple(axis for axis in range(3) if axis != stack.axis)
    # reduce over the stored array, in its own memory order (fast), then put the slices in stack order
    low = source.min(axis=others).astype(np.float64)[stack.indices]
    high = source.max(axis=others).astype(np.float64)[stack.indices]
    span = high - low
    a = np.divide(255.0, span, out=np.zeros_like(span), where=span > 0)  # constant slice: a = 0, b = 0.5 -> 0
    return a, 0.5 - low * a


def scale_into(images: np.ndarray, a: np.ndarray, b: np.ndarray, out: np.ndarray) -> np.ndarray:
    """Grey levels 0..255 of ``images`` (n, H, W) into ``out`` (n, H, W) float64 (integer-valued)."""
    np.multiply(images, a[:, None, None], out=out)
    np.add(out, b[:, None, None], out=out)
    return np.floor(out, out=out)


def slice_image(stack: AxialStack, n: int) -> np.ndarray:
    """Slice ``n`` of ``stack`` as the (H, W) uint8 image that is hashed (one slice at a time: for tests, figures)."""
    images = np.asarray(stack.images[n:n + 1])
    low, high = float(images.min()), float(images.max())
    a = np.array([255.0 / (high - low) if high > low else 0.0])
    out = np.empty(images.shape, dtype=np.float64)
    return scale_into(images, a, 0.5 - np.array([low]) * a, out)[0].astype(np.uint8)
