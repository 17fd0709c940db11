"""Which reader and writer handle a path, by its extension."""

from __future__ import annotations

from pathlib import Path

NIFTI_EXTENSIONS = (".nii.gz", ".nii")
ITK_EXTENSIONS = (".seg.nrrd", ".nrrd", ".nhdr", ".mha", ".mhd")
VOLUME_EXTENSIONS = NIFTI_EXTENSIONS + ITK_EXTENSIONS
WRITABLE_EXTENSIONS = (".nii.gz", ".nii", ".seg.nrrd", ".nrrd", ".mha")


def volume_extension(path: str | Path) -> str:
    """The image extension of a file name (``.nii.gz``, ``.seg.nrrd``, ...), or ``""``."""
    name = Path(path).name.lower()
    for ext in VOLUME_EXTENSIONS:
        if name.endswith(ext):
            return ext
    return ""


def is_nifti(path: str | Path) -> bool:
    return volume_extension(path) in NIFTI_EXTENSIONS


def is_volume_file(path: str | Path) -> bool:
    return bool(volume_extension(path))
