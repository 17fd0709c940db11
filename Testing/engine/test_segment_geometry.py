"""A fine-tuned model segments a tilted, anisotropic, LPS-stored CT onto its own grid, each organ where the phantom's
own label puts it.

The model (``liver_model``) learned the liver on axial RAS phantoms of 6 mm; the test volume is another phantom drawn
on a grid stored LPS (i to the patient's left, j to posterior), tilted by 8, -5 and 15 degrees, with voxels of 4.5 x
5 x 7 mm. The liver is the organ that tells left from right: a result mirrored on any axis, or on the wrong lattice,
fails the check (checked on the same prediction, flipped): the i axis, which runs to the patient's left, moves the
liver to the spleen's side (Dice under 0.3); j and k flips leave the large liver partly overlapping itself (the
truth flipped on j still scores 0.74 against itself, on k 0.29).
"""

import numpy as np
import pytest

from sslseg.cli.main import main
from sslseg.evaluation.overlap import dice
from sslseg.io import read_volume, write_volume
from sslseg.synth.anatomy import ORGAN_LABELS
from sslseg.synth.grids import tilted_lps_affine
from sslseg.synth.phantom import make_phantom

GRID = (70, 50, 30)
SPACING_MM = (4.5, 5.0, 7.0)
LIVER = ORGAN_LABELS["liver"]


@pytest.fixture(scope="module")
def tilted_case(tmp_path_factory):
    """(image path, truth label map) of an unseen phantom on the tilted LPS grid."""
    folder = tmp_path_factory.mktemp("tilted")
    image, truth = make_phantom(seed=4242, size=GRID, affine=tilted_lps_affine(GRID, SPACING_MM))
    return write_volume(image, folder / "tilted ct.nii.gz"), truth


@pytest.fixture(scope="module")
def segmented(tilted_case, liver_model, tmp_path_factory):
    """The label map ``sslseg segment`` wrote for the tilted case (read back from disk)."""
    image_path, _ = tilted_case
    out = tmp_path_factory.mktemp("segmented") / "labels.nii.gz"
    assert main(["segment", str(image_path), "--model", str(liver_model[0]), "--out", str(out), "--device", "cpu"]) == 0
    return read_volume(out)


def test_the_liver_lands_on_the_phantom_liver_in_the_input_grid(tilted_case, segmented):
    _, truth = tilted_case
    assert segmented.shape == truth.shape
    np.testing.assert_allclose(segmented.affine, truth.affine, atol=1e-4)  # NIfTI keeps the matrix as float32
    assert dice(segmented.array == LIVER, truth.array == LIVER) >= 0.8


def test_the_liver_is_on_the_patients_right(tilted_case, segmented):
    """RAS x of the predicted liver's centre > 0: the patient's right, where the phantom (and anatomy) put it."""
    centre_ijk = np.argwhere(segmented.array == LIVER).mean(axis=0)
    centre_ras = segmented.affine[:3, :3] @ centre_ijk + segmented.affine[:3, 3]
    assert centre_ras[0] > 20


@pytest.mark.parametrize("axis", [0, 1, 2])
def test_a_mirrored_result_would_fail(tilted_case, segmented, axis):
    """The check above can fail: the same prediction flipped along one voxel axis scores below 0.8 (left-right: below
    0.3)."""
    _, truth = tilted_case
    flipped = np.flip(segmented.array, axis=axis)
    assert dice(flipped == LIVER, truth.array == LIVER) < (0.3 if axis == 0 else 0.8)
