"""SimpleITK image <-> Volume, the one place where ITK's LPS geometry and (k, j, i) arrays are converted.

ITK: physical point (LPS) = origin + direction @ diag(spacing) @ (i, j, k); ``GetArrayFromImage`` returns (k, j, i).
Volume: RAS = affine @ (i, j, k, 1) with ``array[i, j, k]``. RAS = diag(-1, -1, 1) @ LPS.
"""

from __future__ import annotations

import numpy as np

from sslseg.volume import Volume, VolumeMeta, spacing_of

LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0])


def affine_from_itk(origin, spacing, direction) -> np.ndarray:
    """(4, 4) voxel-to-RAS matrix from ITK origin (3,), spacing (3,) and row-major direction (9,)."""
    direction = np.asarray(direction, dtype=np.float64).reshape(3, 3)
    affine = np.eye(4)
    affine[:3, :3] = LPS_TO_RAS @ direction @ np.diag(np.asarray(spacing, dtype=np.float64))
    affine[:3, 3] = LPS_TO_RAS @ np.asarray(origin, dtype=np.float64)
    return affine


def itk_geometry_from_affine(affine: np.ndarray) -> tuple[tuple, tuple, tuple]:
    """(origin, spacing, row-major direction) in ITK's LPS convention from a voxel-to-RAS matrix."""
    affine = np.asarray(affine, dtype=np.float64)
    spacing = spacing_of(affine)
    direction = LPS_TO_RAS @ affine[:3, :3] / spacing
    origin = LPS_TO_RAS @ affine[:3, 3]
    return tuple(origin.tolist()), tuple(spacing.tolist()), tuple(direction.ravel().tolist())


def volume_from_sitk(image, meta: VolumeMeta | None = None) -> Volume:
    """Convert a 3-D scalar ``SimpleITK.Image``; the array is a view-free copy in (i, j, k) order."""
    import SimpleITK as sitk

    array = sitk.GetArrayFromImage(image)  # (k, j, i)
    array = np.ascontiguousarray(array.transpose(2, 1, 0))
    affine = affine_from_itk(image.GetOrigin(), image.GetSpacing(), image.GetDirection())
    return Volume(array=array, affine=affine, meta=meta or VolumeMeta())


def sitk_from_volume(volume: Volume):
    """A ``SimpleITK.Image`` with the same voxels and geometry (bool arrays become uint8)."""
    import SimpleITK as sitk

    array = volume.array.astype(np.uint8) if volume.array.dtype == bool else volume.array
    image = sitk.GetImageFromArray(np.ascontiguousarray(array.transpose(2, 1, 0)))
    origin, spacing, direction = itk_geometry_from_affine(volume.affine)
    image.SetOrigin(origin)
    image.SetSpacing(spacing)
    image.SetDirection(direction)
    return image
