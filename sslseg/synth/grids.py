"""Scanner-like grids for phantoms: stored LPS (as DICOM and most NRRD files are) and tilted, so that code which
ignores the voxel-to-RAS matrix puts organs in the wrong place on them."""

from __future__ import annotations

import numpy as np

from sslseg.synth.phantom import rotation_matrix

#: Storage order of DICOM/ITK: i runs to the patient's left, j to posterior, k to superior.
LPS_STORAGE = np.diag([-1.0, -1.0, 1.0])


def tilted_lps_affine(
    shape: tuple[int, int, int],
    spacing: tuple[float, float, float],
    tilt_deg: tuple[float, float, float] = (3.0, -2.0, 5.0),
) -> np.ndarray:
    """(4, 4) voxel (i, j, k, 1) -> RAS mm matrix of an LPS-stored grid tilted by ``tilt_deg`` (about R, A, then S;
    see :func:`~sslseg.synth.phantom.rotation_matrix`), voxel size ``spacing`` along i, j, k, centred on RAS 0."""
    affine = np.eye(4)
    affine[:3, :3] = rotation_matrix(np.asarray(tilt_deg)) @ LPS_STORAGE @ np.diag(np.asarray(spacing, dtype=float))
    affine[:3, 3] = -affine[:3, :3] @ (0.5 * (np.asarray(shape, dtype=float) - 1))
    return affine
