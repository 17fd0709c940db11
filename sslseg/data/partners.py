"""Patient-aware positives (MedAug: Vu et al., "MedAug: Contrastive learning leveraging patient metadata improves
representations for chest X-ray interpretation", MLHC 2021), carried to 3-D volumes.

MedAug takes a positive pair from two images of one patient instead of two augmentations of one image. A chest
radiograph shows the whole chest every time; a 3-D patch does not, so a patch of another scan at a random place would
be another organ. Here the second view's region is cut from a *partner* scan at the same RAS point: a partner is a
volume with the same patient and the same frame of reference (DICOM Frame of Reference UID, or a ``frame`` in
``patients.csv``, :mod:`sslseg.io.patients_csv`), where one RAS point is one place in the patient — the phases of
a multiphase CT, a CT and the MR registered to it, a repeat series in one session. Scans of other sessions share no
frame and are never paired (register them first and give them one frame to pair them).

The partner's region is the cached grid's cube nearest the anchor region (cached grids are RAS-oriented at one
spacing, so the cubes match voxel for voxel up to half a voxel of origin offset). A partner cube less than half
inside its volume, or a partner grid with other axes (another deskewed obliquity), gives no pair: the sample keeps two
views of its own region.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np

from sslseg.data.patches import crop_cube

#: A partner's cube must have at least this share of its voxels inside the partner volume.
MIN_INSIDE = 0.5


def partner_groups(entries: list) -> list[tuple[int, ...]]:
    """For each entry (with ``patient`` and ``frame``), the indices of the others of its patient and frame; none for
    an entry without a patient or a frame."""
    members = defaultdict(list)
    for index, entry in enumerate(entries):
        if entry.patient and entry.frame:
            members[(entry.patient, entry.frame)].append(index)
    return [tuple(i for i in members.get((e.patient, e.frame), ()) if i != index) if e.patient and e.frame else ()
            for index, e in enumerate(entries)]


def same_place(array: np.ndarray, affine: np.ndarray, region_affine: np.ndarray, size: int):
    """The S-voxel cube of a partner volume (``array`` (I, J, K), ``affine`` its voxel-to-RAS) over the RAS place of
    an anchor region whose voxel-to-RAS is ``region_affine``: (float32 (1, S, S, S), its (4, 4) voxel-to-RAS), or
    None when the grids' axes differ or the cube lies mostly outside the partner."""
    if not np.allclose(affine[:3, :3], region_affine[:3, :3], atol=1e-4):
        return None
    corner = np.rint(np.linalg.solve(affine[:3, :3], region_affine[:3, 3] - affine[:3, 3])).astype(np.int64)
    cube, cube_affine, inside = crop_cube(array, affine, size, corner)
    return (cube, cube_affine) if inside >= MIN_INSIDE else None


def count_with_partners(entries: list) -> int:
    """How many entries have at least one partner."""
    return sum(bool(group) for group in partner_groups(entries))
