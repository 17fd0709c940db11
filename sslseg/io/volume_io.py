"""Read any supported file or DICOM folder into a :class:`~sslseg.volume.Volume`; write NIfTI, NRRD, MetaImage.

Every reader ends in :func:`_checked`, so a 2-D image, a 4-D series, an empty axis or a degenerate matrix is refused
the same way whatever the format, with a message that names the file.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from sslseg.errors import SSLSegError, VolumeReadError
from sslseg.io import dicom
from sslseg.io.formats import WRITABLE_EXTENSIONS, is_nifti, volume_extension
from sslseg.io.itk_image import sitk_from_volume, volume_from_sitk
from sslseg.io.nifti import read_nifti, write_nifti
from sslseg.volume import Volume, VolumeMeta

SUPPORTED = "NIfTI (.nii, .nii.gz), NRRD (.nrrd, .nhdr), MetaImage (.mha, .mhd) or a DICOM series folder"
SPACING_HINT = "fix the voxel spacing in the file's header (e.g. re-export it from the scanner software or Slicer)"


def read_volume(path: str | Path, series_uid: str | None = None) -> Volume:
    """Read a 3-D volume from a file or a DICOM folder.

    Args:
        path: an image file, or a folder holding one DICOM series (or several, with ``series_uid`` naming one).
        series_uid: which series to read when the folder holds more than one.
    """
    path = Path(path)
    if not path.exists():
        raise VolumeReadError(f"{path} does not exist", "check the path")
    if not os.access(path, os.R_OK):
        raise VolumeReadError(f"{path} is not readable (permission denied)", "fix the file's permissions")
    if path.is_dir():
        return _read_dicom_folder(path, series_uid)
    if not volume_extension(path):
        raise VolumeReadError(f"{path} is not a supported image file", f"use {SUPPORTED}")
    if is_nifti(path):
        array, affine, meta = _guarded(path, read_nifti)
        return _checked(array, affine, meta, path)
    image = _guarded(path, _read_itk_file)
    return _checked_itk(image, VolumeMeta(source=str(path)), path)


def write_volume(volume: Volume, path: str | Path, overwrite: bool = False, header: dict[str, str] | None = None) -> Path:
    """Write to ``.nii.gz``/``.nii`` (nibabel) or ``.nrrd``/``.seg.nrrd``/``.mha`` (SimpleITK), geometry exact.

    The file is written next to its destination and renamed into place, so a failed write never leaves a
    half-written file under the final name. An existing file is kept unless ``overwrite``. ``header`` adds
    key/value fields to a NRRD or MetaImage header (e.g. Slicer's segment metadata).
    """
    import SimpleITK as sitk

    path = Path(path)
    ext = volume_extension(path)
    if ext not in WRITABLE_EXTENSIONS:
        raise SSLSegError(f"cannot write {path}: unsupported extension", f"use one of {', '.join(WRITABLE_EXTENSIONS)}")
    if path.exists() and not overwrite:
        raise SSLSegError(f"{path} already exists", "choose another name, or pass --overwrite to replace it")
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name[: -len(ext)]}.partial{ext}")
    try:
        if is_nifti(path):
            write_nifti(volume, temporary)
        else:
            image = sitk_from_volume(volume)
            for key, value in (header or {}).items():
                image.SetMetaData(key, value)
            sitk.WriteImage(image, str(temporary), True)
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
    return path


def _read_itk_file(path: Path):
    import SimpleITK as sitk

    return sitk.ReadImage(str(path))


def _read_dicom_folder(folder: Path, series_uid: str | None) -> Volume:
    series = dicom.find_series(folder)
    if not series:
        raise VolumeReadError(f"{folder} holds no DICOM series", f"point to an image file or a DICOM folder ({SUPPORTED})")
    if series_uid is not None:
        series = [s for s in series if s.series_uid == series_uid]
        if not series:
            raise VolumeReadError(f"{folder} has no DICOM series {series_uid}", "run `sslseg info` on it to list them")
    if len(series) > 1:
        uids = ", ".join(s.series_uid for s in series)
        raise VolumeReadError(
            f"{folder} holds {len(series)} DICOM series ({uids})",
            "name one series, or move each series into its own folder",
        )
    image, meta = dicom.read_series(series[0])
    steps = meta.extra.get("slice_steps_mm", [])
    if len(steps) > 1 and max(steps) - min(steps) > 0.01 * max(abs(max(steps)), 1e-6):
        raise VolumeReadError(
            f"{series[0].label} has uneven slice spacing ({', '.join(f'{s:g}' for s in steps)} mm): "
            "a slice is missing or the series mixes stacks",
            "re-export the complete series",
        )
    return _checked_itk(image, meta, folder)


def _checked_itk(image, meta: VolumeMeta, path: Path) -> Volume:
    if image.GetNumberOfComponentsPerPixel() != 1:
        raise VolumeReadError(
            f"{path} has {image.GetNumberOfComponentsPerPixel()} values per voxel (colour or vector image)",
            "use a scalar (grey-level) volume",
        )
    dimension = image.GetDimension()
    if dimension == 4 and image.GetSize()[3] == 1:
        import SimpleITK as sitk

        image = sitk.Extract(image, list(image.GetSize()[:3]) + [0], [0, 0, 0, 0])
        dimension = 3
    if dimension != 3:
        _refuse_dimension(path, image.GetSize())
    volume = volume_from_sitk(image, meta)
    return _checked(volume.array, volume.affine, meta, path)


def _checked(array: np.ndarray, affine: np.ndarray, meta: VolumeMeta, path: Path) -> Volume:
    if array.size == 0:  # before the dimension check: nibabel drops the axes after an empty one
        raise VolumeReadError(f"{path} has an empty axis (shape {array.shape})", "the file is incomplete; re-export it")
    if array.ndim == 4 and array.shape[3] == 1:
        array = array[..., 0]
    if array.ndim != 3:
        _refuse_dimension(path, array.shape)
    if min(array.shape) == 1:
        raise VolumeReadError(
            f"{path} is a single slice (shape {array.shape}): a 2-D image, not a volume", "use a 3-D volume"
        )
    if not np.issubdtype(array.dtype, np.number) or np.issubdtype(array.dtype, np.complexfloating):
        raise VolumeReadError(f"{path} has voxels of type {array.dtype}", "use a real-valued scalar image")
    _check_matrix(affine, path)
    meta.source = meta.source or str(path)
    return Volume(array=array, affine=affine, meta=meta)


def _check_matrix(affine: np.ndarray, path: Path) -> None:
    linear = affine[:3, :3]
    if not np.all(np.isfinite(affine)):
        raise VolumeReadError(f"{path} has a voxel-to-world matrix with NaN or infinite entries", "fix the header")
    spacing = np.sqrt((linear**2).sum(axis=0))
    if np.any(spacing < 1e-6):
        raise VolumeReadError(f"{path} has zero voxel spacing ({spacing.tolist()})", SPACING_HINT)
    cosines = linear / spacing
    if abs(abs(np.linalg.det(cosines)) - 1) > 1e-3 or not np.allclose(cosines.T @ cosines, np.eye(3), atol=1e-3):
        raise VolumeReadError(
            f"{path} has a sheared (non-orthogonal) voxel grid",
            "resample it onto an orthogonal grid (e.g. in Slicer: Resample Scalar/Vector/DWI Volume)",
        )


def _refuse_dimension(path: Path, shape) -> None:
    shape = tuple(int(n) for n in shape)
    if len(shape) == 2:
        raise VolumeReadError(f"{path} is a 2-D image (shape {shape}), not a volume", "use a 3-D volume")
    raise VolumeReadError(
        f"{path} is {len(shape)}-D (shape {shape}); only 3-D volumes are supported",
        "split the series into 3-D volumes (e.g. one file per time point)",
    )


def _guarded(path: Path, reader):
    """Run a format reader, turning library exceptions (truncated gzip, bad header) into one clear message."""
    try:
        return reader(path)
    except SSLSegError:
        raise
    except MemoryError as error:
        raise VolumeReadError(f"{path} does not fit in memory", "crop or downsample it first") from error
    except Exception as error:  # nibabel and ITK raise many types for corrupt files
        detail = _detail(error)
        hint = (SPACING_HINT if "spacing" in detail.lower() else
                "the file is corrupt or truncated; re-export or re-download it")
        raise VolumeReadError(f"cannot read {path}: {detail}", hint) from error


def _detail(error: Exception) -> str:
    """The informative line of a library error: ITK puts it last (after C++ file names); nibabel sometimes ends with
    a ' - could the file be damaged?' afterthought, which alone says nothing."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    if not lines:
        return type(error).__name__
    if len(lines) > 1 and lines[-1].startswith("-"):
        return f"{lines[-2]} {lines[-1]}"
    return lines[-1]
