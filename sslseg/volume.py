"""The one in-memory representation of an image: voxel array + exact voxel-to-RAS matrix + metadata.

Axis convention (used everywhere in the engine): ``array[i, j, k]`` is the voxel whose homogeneous index
``(i, j, k, 1)`` maps through ``affine`` to RAS millimetres. This is nibabel's and MONAI's order; ITK/SimpleITK
arrays are ``(k, j, i)`` and ITK geometry is LPS, so every conversion lives in ``sslseg.io`` and nowhere else.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

#: Two grids are "the same" when their matrices differ by less than this (mm and direction cosines).
GRID_TOLERANCE = 1e-4


@dataclass
class VolumeMeta:
    """What we know about where a volume came from. Every field is optional."""

    source: str = ""
    modality: str = ""
    series_uid: str = ""
    patient_id: str = ""
    description: str = ""
    study_uid: str = ""
    #: DICOM Frame of Reference UID: series that share it share one patient coordinate system (MedAug's partners).
    frame_of_reference: str = ""
    extra: dict = field(default_factory=dict)


@dataclass
class Volume:
    """A 3-D image.

    Attributes:
        array: voxel values, shape (I, J, K), any numeric dtype.
        affine: float64 (4, 4) matrix, voxel index (i, j, k, 1) -> RAS mm.
        meta: provenance and DICOM-level information.
    """

    array: np.ndarray
    affine: np.ndarray
    meta: VolumeMeta = field(default_factory=VolumeMeta)

    def __post_init__(self) -> None:
        self.affine = np.asarray(self.affine, dtype=np.float64)
        if self.affine.shape != (4, 4):
            raise ValueError(f"affine must be 4x4, got {self.affine.shape}")
        if self.array.ndim != 3:
            raise ValueError(f"a Volume is 3-D, got an array of shape {self.array.shape}")

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(int(n) for n in self.array.shape)  # type: ignore[return-value]

    @property
    def spacing(self) -> np.ndarray:
        """Voxel size in mm along i, j, k: shape (3,)."""
        return spacing_of(self.affine)

    @property
    def direction(self) -> np.ndarray:
        """Unit column vectors of the i, j, k axes in RAS: shape (3, 3)."""
        return self.affine[:3, :3] / self.spacing

    @property
    def origin(self) -> np.ndarray:
        """RAS position (mm) of the centre of voxel (0, 0, 0): shape (3,)."""
        return self.affine[:3, 3].copy()

    @property
    def orientation(self) -> str:
        """Anatomical direction each index axis points to, e.g. ``"LPS"`` or ``"RAS"``."""
        return orientation_of(self.affine)

    def with_array(self, array: np.ndarray) -> "Volume":
        """The same grid and metadata with other voxel values (shape must match)."""
        if array.shape != self.array.shape:
            raise ValueError(f"shape {array.shape} does not match the grid {self.array.shape}")
        return replace(self, array=array)

    def grid_description(self) -> str:
        """One line naming shape, spacing, orientation and origin, for messages."""
        return describe_grid(self.shape, self.affine)


def spacing_of(affine: np.ndarray) -> np.ndarray:
    return np.sqrt((np.asarray(affine, dtype=np.float64)[:3, :3] ** 2).sum(axis=0))


def orientation_of(affine: np.ndarray) -> str:
    """Closest anatomical axis codes of a voxel-to-RAS matrix (as nibabel's ``aff2axcodes``)."""
    import nibabel.orientations as nio

    return "".join(nio.aff2axcodes(np.asarray(affine)))


def describe_grid(shape: tuple[int, ...], affine: np.ndarray) -> str:
    spacing = " x ".join(f"{s:.4g}" for s in spacing_of(affine))
    origin = ", ".join(f"{o:.2f}" for o in np.asarray(affine)[:3, 3])
    dims = " x ".join(str(n) for n in shape)
    return f"{dims} voxels, {spacing} mm, {orientation_of(affine)}, origin ({origin}) RAS"


def same_grid(shape_a, affine_a, shape_b, affine_b, tolerance: float = GRID_TOLERANCE) -> bool:
    """True when two (shape, voxel-to-RAS) grids put every voxel at the same place."""
    if tuple(shape_a) != tuple(shape_b):
        return False
    return bool(np.allclose(np.asarray(affine_a), np.asarray(affine_b), atol=tolerance, rtol=0))


def display_name(path: str | Path) -> str:
    """A file or folder name without its image extension, e.g. ``case_01.nii.gz`` -> ``case_01``."""
    name = Path(path).name
    for ext in (".seg.nrrd", ".nii.gz", ".nii", ".nrrd", ".nhdr", ".mha", ".mhd"):
        if name.lower().endswith(ext):
            return name[: -len(ext)]
    return name
