"""NIfTI-1/2 (``.nii``, ``.nii.gz``) through nibabel, whose voxel-to-RAS affine is already our convention."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from sslseg.errors import VolumeReadError
from sslseg.volume import Volume, VolumeMeta


def read_nifti(path: Path) -> tuple[np.ndarray, np.ndarray, VolumeMeta]:
    """Array (any ndim, scaling applied), (4, 4) voxel-to-RAS affine, metadata. Shape checks are the caller's."""
    import nibabel as nib

    image = nib.load(str(path))
    _check_pixdim(_raw_header(image, path), path)
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


def _raw_header(image, path: Path):
    """The header as stored: ``nib.load`` has already "fixed" it (a zero voxel size becomes 1, a negative one positive)."""
    from nibabel.openers import ImageOpener

    with ImageOpener(str(path)) as handle:
        return type(image.header).from_fileobj(handle, check=False)


def _check_pixdim(header, path: Path) -> None:
    """Refuse a zero, negative or non-finite voxel size when it defines the geometry (no sform).

    nibabel would quietly turn 0 into 1 mm and -2 into 2 mm, giving the volume a size and orientation nobody chose.
    With an sform, pixdim is not used for the geometry, and the sform itself is checked by the caller.
    """
    if int(header.get("sform_code", 0)) > 0:
        return
    dims = int(header["dim"][0])
    pixdim = [float(v) for v in header["pixdim"][1 : 1 + min(max(dims, 0), 3)]]
    if any(not np.isfinite(v) or v <= 0 for v in pixdim):
        raise VolumeReadError(
            f"{path} has an impossible voxel spacing in its header (pixdim {', '.join(f'{v:g}' for v in pixdim)} mm)",
            "fix the voxel spacing in the file's header (e.g. re-export it from the scanner software or Slicer)",
        )
