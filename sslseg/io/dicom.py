"""DICOM series: found per folder through GDCM, told apart by SeriesInstanceUID, slices ordered by position."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sslseg.errors import VolumeReadError
from sslseg.volume import VolumeMeta

#: DICOM tags we keep, as SimpleITK names them.
TAGS = {"modality": "0008|0060", "series_uid": "0020|000e", "patient_id": "0010|0020", "description": "0008|103e",
        "study_uid": "0020|000d", "frame_of_reference": "0020|0052"}


@dataclass(frozen=True)
class DicomSeries:
    """One series in one folder; ``files`` are ordered by slice position along the stack normal."""

    folder: Path
    series_uid: str
    files: tuple[Path, ...]

    @property
    def label(self) -> str:
        """How the series is named in messages and listings."""
        return f"{self.folder} [DICOM series {self.series_uid}]" if self.series_uid else f"{self.folder} [DICOM]"


def find_series(folder: Path) -> list[DicomSeries]:
    """Every DICOM series stored directly in ``folder`` (not in its sub-folders)."""
    import SimpleITK as sitk

    sitk.ProcessObject.SetGlobalWarningDisplay(False)  # "No Series were found" is an answer here, not a warning
    reader = sitk.ImageSeriesReader()
    series = []
    for uid in reader.GetGDCMSeriesIDs(str(folder)) or ():
        files = reader.GetGDCMSeriesFileNames(str(folder), uid, False, False, False)
        series.append(DicomSeries(folder=folder, series_uid=uid, files=tuple(Path(f) for f in files)))
    return series


def read_series(series: DicomSeries):
    """Read one series as a ``SimpleITK.Image`` plus its metadata (modality, UIDs, patient ID)."""
    import SimpleITK as sitk

    if len(series.files) < 2:
        raise VolumeReadError(
            f"{series.label} has a single slice: a 2-D image, not a volume",
            "export the whole series, or use a 3-D file (NIfTI, NRRD)",
        )
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames([str(f) for f in series.files])
    reader.MetaDataDictionaryArrayUpdateOn()
    try:
        image = reader.Execute()
    except RuntimeError as error:
        raise VolumeReadError(f"cannot read DICOM {series.label}: {_first_line(error)}", "check the files") from error
    meta = VolumeMeta(source=str(series.folder), series_uid=series.series_uid)
    for name, tag in TAGS.items():
        if reader.HasMetaDataKey(0, tag):
            setattr(meta, name, reader.GetMetaData(0, tag).strip())
    meta.extra["slice_steps_mm"] = _slice_steps(reader, image, len(series.files))
    return image, meta


def _slice_steps(reader, image, count: int) -> list[float]:
    """Distinct distances (mm, rounded to 0.01) between consecutive slices along the stack normal.

    One value for a regular series; several reveal a missing slice or mixed spacing.
    """
    tag = "0020|0032"  # Image Position (Patient)
    if not all(reader.HasMetaDataKey(n, tag) for n in range(count)):
        return []
    positions = np.array([[float(v) for v in reader.GetMetaData(n, tag).split("\\")] for n in range(count)])
    normal = np.asarray(image.GetDirection()).reshape(3, 3)[:, 2]
    return sorted({round(float(step), 2) for step in np.diff(positions @ normal)})


def _first_line(error: Exception) -> str:
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return lines[-1] if lines else type(error).__name__
