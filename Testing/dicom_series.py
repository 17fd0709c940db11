"""Write small DICOM series with SimpleITK for tests: known geometry, file names that do not follow slice order."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import SimpleITK as sitk


def write_series(
    folder: Path,
    array_kji: np.ndarray,
    series_uid: str,
    spacing=(0.7, 0.9, 2.5),
    origin=(-120.0, -80.0, 300.0),
    row_col=((1, 0, 0), (0, 1, 0)),
    name_prefix: str = "img",
    skip: tuple[int, ...] = (),
    modality: str = "CT",
    patient: str = "PATIENT-7",
    frame_uid: str = "1.2.826.0.1.3680043.2.1125.9",
) -> list[Path]:
    """One file per slice k (slice positions along the row x column normal, in LPS mm).

    Files are named in reverse slice order, so a reader that sorts by name gets the stack upside down.
    """
    folder.mkdir(parents=True, exist_ok=True)
    row, col = np.asarray(row_col[0], float), np.asarray(row_col[1], float)
    normal = np.cross(row, col)
    count = array_kji.shape[0]
    paths = []
    for k in range(count):
        if k in skip:
            continue
        image = sitk.GetImageFromArray(array_kji[k : k + 1].astype(np.int16))
        position = np.asarray(origin) + k * spacing[2] * normal
        image.SetSpacing(spacing)
        tags = {
            "0008|0060": modality,
            "0010|0020": patient,
            "0020|0052": frame_uid,
            "0020|000d": "1.2.826.0.1.3680043.2.1125.1",
            "0020|000e": series_uid,
            "0020|0013": str(k + 1),
            "0020|0032": "\\".join(f"{v:.6f}" for v in position),
            "0020|0037": "\\".join(f"{v:.6f}" for v in (*row, *col)),
            "0028|0030": f"{spacing[1]:.6f}\\{spacing[0]:.6f}",
            "0018|0050": f"{spacing[2]:.6f}",
            "0008|0016": "1.2.840.10008.5.1.4.1.1.2",
            "0008|0018": f"{series_uid}.{k + 1}",
        }
        for tag, value in tags.items():
            image.SetMetaData(tag, value)
        path = folder / f"{name_prefix}{count - k:03d}.dcm"
        writer = sitk.ImageFileWriter()
        writer.KeepOriginalImageUIDOn()
        writer.SetFileName(str(path))
        writer.Execute(image)
        paths.append(path)
    return paths
