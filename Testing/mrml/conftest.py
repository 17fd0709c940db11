"""Fixtures of the MRML glue tests: a fresh slicer-core scene per test and an asymmetric label map."""

import numpy as np
import pytest

from sslseg import mrml


@pytest.fixture
def scene():
    """A new vtkMRMLScene with the logics Slicer registers (sslseg.mrml.setup_scene)."""
    return mrml.setup_scene()


@pytest.fixture
def box_labels() -> np.ndarray:
    """uint8 (11, 7, 5): values 1 and 2 as boxes of different sizes at different places, and a lone voxel of 3."""
    labels = np.zeros((11, 7, 5), dtype=np.uint8)
    labels[1:4, 2:5, 1:3] = 1
    labels[6:10, 1:3, 2:5] = 2
    labels[9, 6, 0] = 3
    return labels


def _place_on(voxels: np.ndarray, affine: np.ndarray, reference) -> np.ndarray:
    """Put an array whose grid is an integer shift of ``reference``'s grid (a cropped segment, a .seg.nrrd) onto the
    reference grid, zeros elsewhere; fails unless the axes are the reference's and the shift is whole voxels."""
    shift = np.linalg.solve(reference.affine, affine)
    np.testing.assert_allclose(shift[:3, :3], np.eye(3), atol=1e-5)
    start = np.round(shift[:3, 3]).astype(int)
    np.testing.assert_allclose(shift[:3, 3], start, atol=1e-4)
    placed = np.zeros(reference.shape, dtype=voxels.dtype)
    placed[tuple(slice(s, s + n) for s, n in zip(start, voxels.shape))] = voxels
    return placed


@pytest.fixture
def place_on():
    """``place_on(voxels, affine, reference_volume)``: see :func:`_place_on`."""
    return _place_on
