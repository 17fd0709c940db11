"""Recursive folder scan: every volume file and every DICOM series under a folder, each a :class:`VolumeSource`."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

from sslseg.errors import SSLSegError, VolumeReadError
from sslseg.io import dicom
from sslseg.io.formats import is_volume_file
from sslseg.io.image_values import check_image_values
from sslseg.io.label_paths import is_label_path
from sslseg.io.volume_io import SUPPORTED, read_volume
from sslseg.volume import Volume, display_name

log = logging.getLogger(__name__)

#: Files that are never images and not worth a warning.
QUIET_SUFFIXES = {".json", ".csv", ".tsv", ".txt", ".md", ".mrml", ".mrb", ".png", ".jpg", ".pdf", ".log"}
#: The raw half of a detached header (``.nhdr`` + ``.raw``/``.raw.gz``, ``.mhd`` + ``.raw``/``.zraw``).
DATA_SUFFIXES = {".raw", ".gz", ".zraw", ".img"}


@dataclass(frozen=True)
class VolumeSource:
    """One readable volume: a file, or one DICOM series in a folder."""

    path: Path
    series_uid: str | None = None

    @property
    def name(self) -> str:
        """A short case name (file name without extension; folder name for DICOM)."""
        return display_name(self.path)

    @property
    def is_dicom(self) -> bool:
        return self.series_uid is not None

    def read(self) -> Volume:
        """The volume; as an image (not named like a label map) it must also have finite, varying voxel values."""
        volume = read_volume(self.path, series_uid=self.series_uid)
        return volume if not self.is_dicom and is_label_path(self.path) else check_image_values(volume, str(self))

    def __str__(self) -> str:
        if not self.is_dicom:
            return str(self.path)
        return f"{self.path} [DICOM series {self.series_uid}]" if self.series_uid else f"{self.path} [DICOM]"


@dataclass
class ScanResult:
    sources: list[VolumeSource] = field(default_factory=list)
    skipped: list[tuple[Path, str]] = field(default_factory=list)


def scan_folder(folder: str | Path) -> ScanResult:
    """Every volume under ``folder``, sorted by path; non-image files are skipped with one warning each."""
    folder = Path(folder)
    if not folder.is_dir():
        raise SSLSegError(f"{folder} is not a folder", "point to a folder of volumes")
    result = ScanResult()
    for directory, subdirectories, files in os.walk(folder):
        subdirectories.sort()
        directory = Path(directory)
        candidates = sorted(f for f in files if not f.startswith("."))
        image_files = [directory / f for f in candidates if is_volume_file(f)]
        result.sources += [VolumeSource(p) for p in image_files]
        others = [directory / f for f in candidates if not is_volume_file(f)]
        others = [p for p in others if not _is_quiet(p, image_files)]
        dicom_files = _add_dicom_series(directory, result) if others else set()
        for path in others:
            if path not in dicom_files:
                result.skipped.append((path, "not a supported image file"))
                log.warning("skipping %s: not a supported image file", path)
    result.sources.sort(key=lambda s: (str(s.path), s.series_uid or ""))
    return result


def find_volumes(folder: str | Path, include_labels: bool = False) -> list[VolumeSource]:
    """The volumes under ``folder``, label maps left out unless asked for; an error when there are none."""
    sources = scan_folder(folder).sources
    if not include_labels:
        sources = [s for s in sources if s.is_dicom or not is_label_path(s.path)]
    if not sources:
        raise VolumeReadError(f"{folder} holds no volumes", f"put {SUPPORTED} files in it")
    return sources


def _add_dicom_series(directory: Path, result: ScanResult) -> set[Path]:
    series = dicom.find_series(directory)
    result.sources += [VolumeSource(directory, s.series_uid) for s in series]
    return {f for s in series for f in s.files}


def _is_quiet(path: Path, image_files: list[Path]) -> bool:
    suffix = path.suffix.lower()
    if suffix in QUIET_SUFFIXES:
        return True
    # raw data of a detached header written beside it (case.nhdr + case.raw.gz)
    return suffix in DATA_SUFFIXES and any(path.name.startswith(display_name(i)) for i in image_files)
