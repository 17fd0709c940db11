"""Helpers for the reliability catalogue: real broken files, the CLI as a user runs it, and a user without root."""

from __future__ import annotations

import contextlib
import gzip
import os
import shutil
import struct
import tempfile
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import SimpleITK as sitk
from dicom_series import write_series

from sslseg.cli.main import main

#: One torch thread in subprocess runs: fast and steady on a busy 2-core machine.
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}
#: The tiny pretraining of the engine tests (4 mm phantoms, 32^3 patches) as CLI options.
PRETRAIN_TINY = ["--preset", "tiny", "--patch-size", "32", "--spacing", "4", "--batch-size", "2", "--workers", "0",
                 "--val-every", "0"]
#: The tiny fine-tuning of the engine tests (6 mm phantoms, 32^3 crops) as CLI options.
FINETUNE_TINY = ["--preset", "tiny", "--patch-size", "32", "--feature-size", "8", "--crops-per-volume", "2",
                 "--spacing", "6", "6", "6", "--workers", "0"]
NOBODY = 65534


def run_cli(capsys, *args) -> tuple[int, str, str]:
    """``sslseg ARGS`` in this process: (exit status, stdout, stderr)."""
    capsys.readouterr()
    code = main([str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def assert_refused(result, *fragments) -> tuple[str, str]:
    """Exit status 2, no traceback, and the two-line message: ``error: ...`` holding every fragment, then a hint.
    Returns (error line, hint line)."""
    code, _, err = result
    assert code == 2, err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    error = next(line for line in lines if line.startswith("error: "))
    hint = lines[lines.index(error) + 1] if lines.index(error) + 1 < len(lines) else ""
    assert hint.startswith("hint: ") and len(hint) > len("hint: ") + 5, err
    for fragment in fragments:
        assert fragment in error + "\n" + hint, f"{fragment!r} not in:\n{err}"
    return error, hint


# --- bad volumes ------------------------------------------------------------------------------------------------
RNG = np.random.default_rng(8)
IMAGE = RNG.normal(40.0, 300.0, (12, 10, 8)).astype(np.float32)  # a little CT-like volume with real contrast


def nifti(path: Path, array=IMAGE, affine=None) -> Path:
    nib.save(nib.Nifti1Image(array, np.diag([2.0, 2.0, 3.0, 1.0]) if affine is None else affine), path)
    return path


def truncated_gzip(folder: Path) -> Path:
    path = nifti(folder / "truncated.nii.gz")
    path.write_bytes(path.read_bytes()[:300])
    return path


def garbage_header(folder: Path) -> Path:
    """A .nii.gz whose 348-byte header is noise (valid gzip, nothing a NIfTI reader recognises)."""
    path = folder / "garbage.nii.gz"
    path.write_bytes(gzip.compress(RNG.integers(0, 256, 348 + IMAGE.nbytes, dtype=np.uint8).tobytes()))
    return path


def truncated_data(folder: Path) -> Path:
    """An uncompressed .nii whose voxel data stops half-way."""
    path = nifti(folder / "short.nii")
    path.write_bytes(path.read_bytes()[: 352 + IMAGE.nbytes // 2])
    return path


def with_voxel(value: float, name: str):
    def write(folder: Path) -> Path:
        array = IMAGE.copy()
        array[3, 4, 5] = value
        return nifti(folder / name, array)

    return write


def constant(folder: Path) -> Path:
    return nifti(folder / "blank.nii.gz", np.full(IMAGE.shape, -1024, np.int16))


def two_dimensional(folder: Path) -> Path:
    return nifti(folder / "slice.nii.gz", IMAGE[:, :, 0])


def four_dimensional(folder: Path) -> Path:
    return nifti(folder / "series4d.nii.gz", np.stack([IMAGE, IMAGE], axis=-1))


def zero_size(folder: Path) -> Path:
    """A MetaImage whose header says one axis has no voxels."""
    path = folder / "empty.mha"
    sitk.WriteImage(sitk.GetImageFromArray(IMAGE.transpose(2, 1, 0).copy()), str(path))
    path.write_bytes(path.read_bytes().replace(b"DimSize = 12 10 8", b"DimSize = 0 10 8"))
    return path


def pixdim(value: float, name: str):
    """A NIfTI without sform/qform whose voxel size (pixdim[1]) is ``value``: the only geometry it has."""

    def write(folder: Path) -> Path:
        path = nifti(folder / name)
        raw = bytearray(path.read_bytes())
        raw[80:84] = struct.pack("<f", value)  # pixdim[1]
        raw[252:256] = struct.pack("<hh", 0, 0)  # qform_code, sform_code
        path.write_bytes(bytes(raw))
        return path

    return write


def zero_spacing_nrrd(folder: Path) -> Path:
    path = folder / "flat.nrrd"
    sitk.WriteImage(sitk.GetImageFromArray(IMAGE.transpose(2, 1, 0).copy()), str(path))
    path.write_bytes(path.read_bytes().replace(b"(1,0,0) (0,1,0)", b"(0,0,0) (0,1,0)"))
    return path


def sheared(folder: Path) -> Path:
    affine = np.diag([2.0, 2.0, 3.0, 1.0])
    affine[0, 1] = 1.0
    return nifti(folder / "sheared.nii.gz", affine=affine)


UID_A = "1.2.826.0.1.3680043.2.1125.300"
UID_B = "1.2.826.0.1.3680043.2.1125.400"


def dicom_stack(slices: int = 8) -> np.ndarray:
    return (np.arange(slices)[:, None, None] * 50 + RNG.integers(0, 40, (slices, 6, 5))).astype(np.int16)


def dicom_gap(folder: Path) -> Path:
    write_series(folder / "gap_series", dicom_stack(), UID_A, skip=(4,))
    return folder / "gap_series"


def dicom_interleaved(folder: Path) -> Path:
    write_series(folder / "two_series", dicom_stack(), UID_A, name_prefix="a")
    write_series(folder / "two_series", dicom_stack(6), UID_B, name_prefix="b")
    return folder / "two_series"


#: case -> (writer(folder) -> path, what the message says, what the hint says).
BAD_VOLUMES = {
    "truncated gzip": (truncated_gzip, "cannot read", "corrupt or truncated"),
    "garbage NIfTI header": (garbage_header, "cannot read", "corrupt or truncated"),
    "truncated voxel data": (truncated_data, "could the file be damaged", "corrupt or truncated"),
    "NaN voxels": (with_voxel(np.nan, "nan.nii.gz"), "NaN or infinite", "replace them"),
    "Inf voxels": (with_voxel(np.inf, "inf.nii.gz"), "NaN or infinite", "replace them"),
    "constant volume": (constant, "holds no image: every voxel is -1024", "check the export"),
    "2-D image": (two_dimensional, "is a 2-D image", "use a 3-D volume"),
    "4-D series": (four_dimensional, "is 4-D", "split the series"),
    "zero-size dimension": (zero_size, "has an empty axis", "re-export"),
    "spacing 0": (pixdim(0.0, "spacing0.nii"), "impossible voxel spacing", "fix the voxel spacing"),
    "negative spacing": (pixdim(-2.0, "spacing_negative.nii"), "impossible voxel spacing", "fix the voxel spacing"),
    "spacing 0 in NRRD": (zero_spacing_nrrd, "spacing", "fix the voxel spacing"),
    "non-orthogonal direction": (sheared, "sheared (non-orthogonal)", "resample it"),
    "DICOM missing slice": (dicom_gap, "uneven slice spacing", "re-export the complete series"),
    "DICOM two interleaved series": (dicom_interleaved, "holds 2 DICOM series", "name one series"),
}


# --- a user who is not root -------------------------------------------------------------------------------------
@contextlib.contextmanager
def open_folder():
    """A temporary folder every user may enter and write (pytest's tmp_path is root-only when tests run as root)."""
    folder = Path(tempfile.mkdtemp(prefix="sslseg-reliability-"))
    folder.chmod(0o777)
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@contextlib.contextmanager
def without_root():
    """Run the body as an ordinary user: root reads files whatever their permissions, so a chmod 000 file would not be
    unreadable for it. Real and effective user become ``nobody`` (the saved user id stays root, to come back)."""
    if os.geteuid() != 0:
        yield
        return
    try:
        os.setresuid(NOBODY, NOBODY, 0)
    except OSError as error:
        pytest.skip(f"running as root and cannot drop privileges ({error}): a chmod 000 file stays readable")
    try:
        yield
    finally:
        os.setresuid(0, 0, 0)
