"""NIfTI-1/2 (``.nii``, ``.nii.gz``) through nibabel, whose voxel-to-RAS affine is already our convention."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from sslseg.volume import Volume, VolumeMeta


def read_nifti(path: Path) -> tuple[np.ndarray, np.ndarray, VolumeMeta]:
    """Array (any ndim, scaling applied), (4, 4) voxel-to-RAS affine, metadata. Shape checks are the caller's."""
    import nibabel as nib

    image = nib.load(str(path))
    array = np.asanyarray(image.dataobj)
    description = image.header.get("descrip", b"")
    description = description.tobytes().decode("latin-1").strip("\x00 ") if hasattr(description, "tobytes") else ""
    return array, np.asarray(image.affine, dtype=np.float64), VolumeMeta(source=str(path), description=description)


def write_nifti(volume: Volume, path: Path) -> None:
    """Write with sform and qform set (code 1, scanner), so every reader finds the same geometry."""
    import nibabel as nib

    array = volume.array.astype(np.uint8) if volume.array.dtype == bool else volume.array
    image = nib.Nifti1Image(array, volume.affine)
    image.header.set_xyzt_units("mm", "sec")
    image.header["descrip"] = volume.meta.description.encode("latin-1", "replace")[:79]
    image.set_sform(volume.affine, code=1)
    image.set_qform(volume.affine, code=1)
    nib.save(image, str(path))
