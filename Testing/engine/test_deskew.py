"""Oblique scans reach the model on an axis-aligned RAS grid, every value where it was in the patient.

Trilinear interpolation reproduces a linear function exactly, so a scan whose voxels hold a linear function of
their own RAS position must come out of deskewing holding the same function of the new voxels' RAS positions:
any flip, transposition or offset of the new grid breaks that equality.
"""

import numpy as np
import pytest
from geometry_cases import make_affine, rotation

from sslseg.data.deskew import MAX_ALIGNED_TILT_DEG, deskew, ras_aligned_grid, tilt_degrees
from sslseg.data.preprocess import resample_ras
from sslseg.volume import Volume

SHAPE = (23, 17, 11)
# LPS-stored, tilted about three axes, anisotropic
OBLIQUE = make_affine(np.diag([-1.0, -1.0, 1.0]) @ rotation("z", 20) @ rotation("x", -12) @ rotation("y", 7),
                      (2.1, 2.6, 4.0), (30.0, 25.0, -18.0))
GRADIENT = np.array([0.7, -1.9, 3.1])  # value per mm along R, A, S: every axis different, one negative


def ras_of(affine, shape):
    index = np.stack(np.meshgrid(*[np.arange(n) for n in shape], indexing="ij"), -1).astype(float)
    return index @ affine[:3, :3].T + affine[:3, 3]


def linear_scan(affine, shape) -> np.ndarray:
    return (ras_of(affine, shape) @ GRADIENT + 500.0).astype(np.float32)


def test_tilt_is_measured_from_the_nearest_ras_axis():
    assert tilt_degrees(make_affine(np.diag([-1.0, -1.0, 1.0]), (0.7, 0.7, 3.0), (0, 0, 0))) == pytest.approx(0)
    permuted = np.array([[0, 0, 1.0], [-1.0, 0, 0], [0, -1.0, 0]])
    assert tilt_degrees(make_affine(permuted @ rotation("x", 12), (1, 2, 3), (0, 0, 0))) == pytest.approx(12)
    assert tilt_degrees(OBLIQUE) > MAX_ALIGNED_TILT_DEG


def test_the_aligned_grid_covers_the_scan():
    shape, affine = ras_aligned_grid(OBLIQUE, SHAPE, (1.5, 2.0, 2.5))
    np.testing.assert_array_equal(affine[:3, :3], np.diag([1.5, 2.0, 2.5]))
    corners = ras_of(OBLIQUE, SHAPE)[[0, -1]][:, [0, -1]][:, :, [0, -1]].reshape(-1, 3)
    index = (corners - affine[:3, 3]) / np.diag(affine)[:3]
    assert (index > -1e-6).all() and (index < np.array(shape) - 1 + 1e-6).all()


def test_every_value_stays_where_it_was_in_the_patient():
    scan = linear_scan(OBLIQUE, SHAPE)
    array, affine = deskew(scan, OBLIQUE, (1.5, 2.0, 2.5))
    expected = linear_scan(affine, array.shape)
    inside = _inside(affine, array.shape)
    assert inside.mean() > 0.15  # a thin rotated slab: much of its bounding grid is outside
    np.testing.assert_allclose(array[inside], expected[inside], atol=2e-3 * np.abs(scan).max())
    outside = ~_inside(affine, array.shape, margin=-0.5)
    assert outside.any() and (array[outside] == scan.min()).all()  # beyond the scan: its minimum (air)


def test_resample_ras_deskews_oblique_scans_only():
    oblique, affine = resample_ras(Volume(linear_scan(OBLIQUE, SHAPE), OBLIQUE), (1.5, 2.0, 2.5))
    np.testing.assert_array_equal(affine[:3, :3], np.diag([1.5, 2.0, 2.5]))
    inside = _inside(affine, oblique.shape)
    np.testing.assert_allclose(oblique[inside], linear_scan(affine, oblique.shape)[inside], rtol=0, atol=0.5)

    lps = make_affine(np.diag([-1.0, -1.0, 1.0]), (2.1, 2.6, 4.0), (30.0, 25.0, -18.0))
    straight, affine = resample_ras(Volume(linear_scan(lps, SHAPE), lps), (2.1, 2.6, 4.0))  # MONAI's path
    np.testing.assert_allclose(affine[:3, :3], np.diag([2.1, 2.6, 4.0]), atol=1e-9)
    np.testing.assert_allclose(straight, linear_scan(affine, straight.shape), atol=1e-2)


def test_labels_stay_labels():
    rng = np.random.default_rng(3)
    labels = rng.integers(0, 5, size=SHAPE).astype(np.float32)
    array, affine = deskew(labels, OBLIQUE, (1.0, 1.0, 1.0), mode="nearest")
    assert set(np.unique(array).tolist()) == {0.0, 1.0, 2.0, 3.0, 4.0}
    # each label value sits at the RAS position of a scan voxel holding that value (nearest neighbour)
    inside = np.argwhere(_inside(affine, array.shape))[:: 97]
    ras = inside @ affine[:3, :3].T + affine[:3, 3]
    source = np.rint((ras - OBLIQUE[:3, 3]) @ np.linalg.inv(OBLIQUE[:3, :3]).T).astype(int)
    source = np.clip(source, 0, np.array(SHAPE) - 1)
    agree = array[tuple(inside.T)] == labels[tuple(source.T)]
    assert agree.mean() > 0.97  # half-way ties may round either way


def _inside(affine, shape, margin: float = 1.0) -> np.ndarray:
    """Voxels of the (affine, shape) grid whose centre lies at least ``margin`` voxels inside the oblique scan's
    outermost voxel centres (-0.5: anywhere within its outer faces)."""
    index = (ras_of(affine, shape) - OBLIQUE[:3, 3]) @ np.linalg.inv(OBLIQUE[:3, :3]).T
    return ((index >= margin) & (index <= np.array(SHAPE) - 1 - margin)).all(axis=-1)
