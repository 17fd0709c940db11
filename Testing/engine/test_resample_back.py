"""Predictions made on a RAS-reoriented, resampled model grid land on the right anatomy of an oblique LPS input.

The "prediction" is the phantom drawn analytically on the model grid (so it is right by construction, independent
of our resampling code); mapping it back must agree with the phantom drawn directly on the input grid.
"""

import nibabel.orientations as nio
import numpy as np
import pytest
import torch
from geometry_cases import make_affine, rotation

from sslseg.evaluation.overlap import dice
from sslseg.inference.resample_back import labels_on_target_grid, separable_mapping
from sslseg.synth.anatomy import ORGAN_LABELS
from sslseg.synth.phantom import fit_to_grid, rasterize, sample_case

TARGET_SHAPE = (70, 60, 26)
# stored LPS-like (i -> patient left, j -> posterior), tilted, anisotropic: the hardest ordinary case
TARGET_AFFINE = make_affine(np.diag([-1.0, -1.0, 1.0]) @ rotation("z", 12) @ rotation("x", 8), (4.1, 4.6, 9.0), (150.0, 130.0, -110.0))


def model_grid(target_shape, target_affine, spacing):
    """RAS-reoriented (axis permutation/flips only, as MONAI's Orientation) and resampled grid covering the target."""
    ornt = nio.io_orientation(target_affine)
    transform = nio.inv_ornt_aff(ornt, target_shape)  # reoriented index -> original index
    reoriented = target_affine @ transform
    old_spacing = np.sqrt((reoriented[:3, :3] ** 2).sum(axis=0))
    shape_reoriented = np.array(target_shape)[ornt[:, 0].astype(int)]
    extent = shape_reoriented * old_spacing
    new_shape = tuple(int(n) for n in np.ceil(extent / spacing))
    affine = reoriented.copy()
    affine[:3, :3] = reoriented[:3, :3] / old_spacing * spacing
    # keep the field of view centred: corner-aligned grids as Spacing does
    affine[:3, 3] = (reoriented @ np.append((np.array(spacing) / old_spacing - 1) / 2, 1))[:3]
    return new_shape, affine


def one_hot(labels, classes):
    return torch.nn.functional.one_hot(torch.from_numpy(labels.astype(np.int64)), classes).permute(3, 0, 1, 2).float()


def phantom_scene(shape, affine) -> tuple:
    """(truth on TARGET, one-hot "prediction" on the model grid ``shape``/``affine``, that affine): the phantom drawn
    on both grids."""
    case = fit_to_grid(sample_case(np.random.default_rng(11)), TARGET_SHAPE, TARGET_AFFINE)
    _, truth = rasterize(case, TARGET_SHAPE, TARGET_AFFINE)
    _, on_model = rasterize(case, shape, affine)
    return truth, one_hot(on_model, len(ORGAN_LABELS) + 1), affine


@pytest.fixture(scope="module")
def scene():
    return phantom_scene(*model_grid(TARGET_SHAPE, TARGET_AFFINE, (3.0, 3.0, 5.0)))


def test_model_grid_is_ras_and_separable(scene):
    _, _, affine = scene
    assert "".join(nio.aff2axcodes(affine)) == "RAS"
    axes, scale, _ = separable_mapping(TARGET_AFFINE, affine)
    assert sorted(axes.tolist()) == [0, 1, 2]
    assert (scale[:2] < 0).all()  # the input's i and j run opposite to RAS


def test_every_organ_lands_on_its_anatomy(scene):
    truth, probabilities, affine = scene
    labels = labels_on_target_grid(probabilities, affine, TARGET_SHAPE, TARGET_AFFINE)
    assert labels.shape == TARGET_SHAPE and labels.dtype == np.uint8
    for name, value in ORGAN_LABELS.items():
        assert dice(labels == value, truth == value) > 0.75, name
    assert dice(labels > 0, truth > 0) > 0.9


def test_a_flipped_prediction_fails_the_same_check(scene):
    """The check above can fail: the same prediction flipped left-right misses the lateral organs."""
    truth, probabilities, affine = scene
    labels = labels_on_target_grid(probabilities.flip(1), affine, TARGET_SHAPE, TARGET_AFFINE)
    assert dice(labels == ORGAN_LABELS["liver"], truth == ORGAN_LABELS["liver"]) < 0.5
    assert dice(labels == ORGAN_LABELS["spleen"], truth == ORGAN_LABELS["spleen"]) < 0.2


def test_identical_grids_give_the_labels_back_exactly():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 4, size=(9, 7, 5)).astype(np.uint8)
    affine = make_affine(rotation("y", 30), (1.2, 0.7, 2.0), (1.0, 2.0, 3.0))
    back = labels_on_target_grid(one_hot(labels, 4), affine, labels.shape, affine)
    np.testing.assert_array_equal(back, labels)


def test_a_rotated_model_grid_is_refused():
    with pytest.raises(ValueError, match="rotated"):
        separable_mapping(make_affine(rotation("z", 10), (1, 1, 1), (0, 0, 0)), np.eye(4))


def reference_labels(probabilities, model_affine, target_shape, target_affine):
    """Plain trilinear interpolation of every class at every target voxel centre (scipy), then argmax."""
    from scipy.ndimage import map_coordinates

    index = np.stack(np.meshgrid(*[np.arange(n) for n in target_shape], indexing="ij"), 0).reshape(3, -1)
    points = (np.linalg.inv(model_affine) @ target_affine @ np.vstack([index, np.ones(index.shape[1])]))[:3]
    shape = np.array(probabilities.shape[1:])
    clamped = np.clip(points, 0, shape[:, None] - 1)
    scores = np.stack([map_coordinates(p.numpy().astype(np.float64), clamped, order=1) for p in probabilities])
    labels = scores.argmax(0)
    outside = ((points < -0.5) | (points > shape[:, None] - 0.5)).any(0)
    labels[outside] = 0
    return labels.reshape(target_shape)


@pytest.mark.parametrize("slab", [1 << 22, 97])  # whole target at once; many slabs of a single plane
def test_matches_plain_trilinear_interpolation_on_a_flipped_permuted_grid(slab, monkeypatch):
    """Random (noisy) probabilities on a permuted, flipped, anisotropic model grid that overhangs the target."""
    import sslseg.inference.resample_back as resample_back

    monkeypatch.setattr(resample_back, "SLAB_VOXELS", slab)
    rng = np.random.default_rng(5)
    probabilities = torch.from_numpy(rng.random((5, 13, 9, 11)).astype(np.float32))
    model_affine = make_affine(np.array([[0, 1.0, 0], [0, 0, -1.0], [1.0, 0, 0]]), (2.0, 3.0, 1.5), (-4.0, 9.0, 2.0))
    target_shape = (17, 29, 23)
    target_affine = make_affine(np.eye(3), (0.9, 1.1, 1.3), (-3.0, -6.0, -4.0))
    labels = labels_on_target_grid(probabilities, model_affine, target_shape, target_affine)
    expected = reference_labels(probabilities, model_affine, target_shape, target_affine)
    assert (labels == 0).any() and (labels != 0).any()
    assert (labels != expected).mean() < 1e-3  # float rounding may flip a near-tie, nothing more


# ------------------------------------------------------------------------------------------------------------------
# a model grid rotated relative to the input: an oblique input deskewed onto the RAS-aligned grid


@pytest.fixture(scope="module")
def deskewed_scene():
    """The phantom drawn on the RAS-aligned grid that covers the oblique TARGET (what deskewing gives the model)."""
    from sslseg.data.deskew import ras_aligned_grid

    return phantom_scene(*ras_aligned_grid(TARGET_AFFINE, TARGET_SHAPE, (3.0, 3.0, 5.0)))


def test_organs_land_on_their_anatomy_from_a_rotated_model_grid(deskewed_scene):
    truth, probabilities, affine = deskewed_scene
    assert "".join(nio.aff2axcodes(affine)) == "RAS" and np.count_nonzero(affine[:3, :3] - np.diag(np.diag(affine[:3, :3]))) == 0
    labels = labels_on_target_grid(probabilities, affine, TARGET_SHAPE, TARGET_AFFINE)
    assert labels.shape == TARGET_SHAPE and labels.dtype == np.uint8
    for name, value in ORGAN_LABELS.items():
        assert dice(labels == value, truth == value) > 0.75, name
    flipped = labels_on_target_grid(probabilities.flip(1), affine, TARGET_SHAPE, TARGET_AFFINE)  # can fail
    assert dice(flipped == ORGAN_LABELS["liver"], truth == ORGAN_LABELS["liver"]) < 0.5


@pytest.mark.parametrize("slab", [1 << 22, 97])
def test_a_rotated_model_grid_matches_plain_trilinear_interpolation(slab, monkeypatch):
    """Random probabilities on an anisotropic RAS grid; the target is rotated about all three axes, LPS-stored, and
    partly outside the model grid."""
    import sslseg.data.affine_sampling as affine_sampling

    monkeypatch.setattr(affine_sampling, "SLAB_VOXELS", slab)
    rng = np.random.default_rng(6)
    probabilities = torch.from_numpy(rng.random((4, 14, 10, 12)).astype(np.float32))
    model_affine = make_affine(np.eye(3), (2.0, 3.0, 1.5), (-4.0, -9.0, 2.0))
    target_shape = (19, 23, 17)
    rotated = np.diag([-1.0, -1.0, 1.0]) @ rotation("z", 25) @ rotation("x", -15) @ rotation("y", 10)
    target_affine = make_affine(rotated, (0.9, 1.1, 1.3), (12.0, 8.0, 3.0))
    labels = labels_on_target_grid(probabilities, model_affine, target_shape, target_affine)
    expected = reference_labels(probabilities, model_affine, target_shape, target_affine)
    assert (labels == 0).any() and (labels != 0).any()
    assert (expected == 0).mean() > 0.05  # some of the target lies outside the model grid
    assert (labels != expected).mean() < 1e-3
