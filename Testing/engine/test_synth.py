"""Synthetic CT phantoms: determinism, plausible intensities, asymmetric anatomy on any grid, and `sslseg synth`."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from sslseg.cli.main import main
from sslseg.io import read_volume
from sslseg.synth.anatomy import ORGAN_HU_RANGE, ORGAN_LABELS
from sslseg.synth.cohort import case_seed
from sslseg.synth.phantom import PhantomCase, Shape, Structure, default_affine, fit_to_grid, make_phantom
from sslseg.synth.phantom import rasterize, rotation_matrix, sample_case

REPO = Path(__file__).resolve().parents[2]

# Flip i and j of a grid: voxel (i, j, k) of the flipped grid is voxel (I-1-i, J-1-j, k) of the original.
LPS_FLIP = np.diag([-1.0, -1.0, 1.0, 1.0])


def lps_affine(shape: tuple[int, int, int], ras_affine: np.ndarray) -> np.ndarray:
    """The voxel-to-RAS matrix of the same grid stored LPS (array flipped on i and j)."""
    flip = LPS_FLIP.copy()
    flip[:3, 3] = [shape[0] - 1, shape[1] - 1, 0]
    return ras_affine @ flip


def centroid_ras(labels: np.ndarray, affine: np.ndarray, value: int) -> np.ndarray:
    """RAS mm (3,) of the centre of mass of the voxels equal to ``value``."""
    index = np.argwhere(labels == value).mean(axis=0)
    return affine[:3, :3] @ index + affine[:3, 3]


def present_counts(labels: np.ndarray) -> dict[str, int]:
    counts = np.bincount(labels.ravel(), minlength=len(ORGAN_LABELS) + 1)
    return {name: int(counts[value]) for name, value in ORGAN_LABELS.items()}


@pytest.fixture(scope="module")
def phantom64():
    return make_phantom(11, 64)


def test_organ_table_is_the_published_one():
    assert list(ORGAN_LABELS.items()) == [
        ("liver", 1), ("spleen", 2), ("right_kidney", 3), ("left_kidney", 4),
        ("stomach", 5), ("aorta", 6), ("pancreas", 7), ("gallbladder", 8),
    ]  # fmt: skip


def test_same_seed_same_phantom_other_seed_other_phantom():
    image_a, labels_a = make_phantom(5, 40)
    image_b, labels_b = make_phantom(5, 40)
    image_c, labels_c = make_phantom(6, 40)
    assert np.array_equal(image_a.array, image_b.array) and np.array_equal(labels_a.array, labels_b.array)
    assert not np.array_equal(labels_a.array, labels_c.array)
    assert np.abs(image_a.array.astype(int) - image_c.array).mean() > 5


def test_case_seeds_depend_on_cohort_seed_and_index_only():
    assert case_seed(3, 7) == case_seed(3, 7)
    seeds = {case_seed(seed, index) for seed in range(5) for index in range(50)}
    assert len(seeds) == 250


def test_volumes_carry_grid_types_and_metadata(phantom64):
    image, labels = phantom64
    assert image.shape == labels.shape == (64, 64, 64)
    assert image.array.dtype == np.int16 and labels.array.dtype == np.uint8
    assert np.array_equal(image.affine, labels.affine)
    assert image.orientation == "RAS" and np.allclose(image.spacing, 2.5)
    # The grid is centred on RAS (0, 0, 0), where the case is centred.
    assert np.allclose(image.affine[:3, :3] @ [31.5, 31.5, 31.5] + image.origin, 0)
    assert (image.meta.modality, image.meta.description, image.meta.patient_id) == (
        "CT", "sslseg synthetic phantom", "synth-11"
    )  # fmt: skip


def test_intensities_are_plausible(phantom64):
    image, labels = phantom64
    hu, lab = image.array, labels.array
    faces = np.concatenate([hu[[0, -1]].ravel(), hu[:, [0, -1]].ravel()])  # i and j faces: outside the body
    assert abs(np.median(faces) + 1000) <= 5 and faces.max() < -900
    for name, value in ORGAN_LABELS.items():
        low, high = ORGAN_HU_RANGE[name]
        assert low - 3 <= np.median(hu[lab == value]) <= high + 3, name
    body = hu[(lab == 0) & (hu > -500)]
    assert np.sum(body > 400) > 100, "no bone: the spine is missing"
    assert np.sum(np.abs(body + 100) < 40) > 100, "no subcutaneous fat"
    assert np.sum(np.abs(body - 40) < 20) > 1000, "no soft tissue"


@pytest.mark.parametrize(("size", "spacing"), [(32, 2.5), (64, 2.5), (32, 8.0), (48, (1.0, 1.5, 3.0))])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_every_organ_is_in_the_field_of_view(size, spacing, seed):
    _, labels = make_phantom(seed, size, spacing)
    counts = present_counts(labels.array)
    assert min(counts.values()) >= 5, counts


def test_every_organ_at_default_size():
    start = time.perf_counter()
    _, labels = make_phantom(0)
    print(f"\n128^3 phantom: {time.perf_counter() - start:.3f} s")
    assert labels.shape == (128, 128, 128)
    assert min(present_counts(labels.array).values()) >= 100


@pytest.mark.parametrize("stored", ["RAS", "LPS"])
@pytest.mark.parametrize("seed", [0, 4])
def test_anatomy_is_asymmetric_in_ras(stored, seed):
    shape = (56, 56, 56)
    affine = default_affine(shape, np.full(3, 3.0))
    if stored == "LPS":
        affine = lps_affine(shape, affine)
    image, labels = make_phantom(seed, shape, affine=affine)
    at = {name: centroid_ras(labels.array, affine, value) for name, value in ORGAN_LABELS.items()}
    bone = np.argwhere((image.array > 350) & (labels.array == 0)).mean(axis=0)
    spine = affine[:3, :3] @ bone + affine[:3, 3]
    x, y, z = 0, 1, 2
    # RAS: +x is the patient's right
    assert at["liver"][x] > spine[x] > at["spleen"][x]
    assert at["right_kidney"][x] > spine[x] > at["left_kidney"][x]
    assert at["right_kidney"][y] < 0 and at["left_kidney"][y] < 0
    assert at["aorta"][x] < spine[x] and at["aorta"][y] > spine[y]
    assert at["stomach"][x] < spine[x] and at["stomach"][y] > at["left_kidney"][y]
    assert at["gallbladder"][x] > 0 and at["gallbladder"][z] < at["liver"][z]
    pancreas_x = (affine[:3, :3] @ np.argwhere(labels.array == 7).T)[x] + affine[x, 3]
    assert pancreas_x.min() < spine[x] < pancreas_x.max()
    assert np.sum(labels.array == 1) > 2 * np.sum(labels.array == 2), "the liver is the largest organ"


def test_shapes_follow_their_radial_harmonics_and_cylinders_are_open():
    """A 20 mm sphere bulged by 0.2 * P2 along z reaches 24 mm on z and 18 mm on x and y (P2(0) = -1/2)."""
    bulge = Shape(np.zeros(3), np.eye(3), np.full(3, 20.0), np.array([[0.0, 0.0, 1.0]]), np.array([0.2]), (2,))
    tube = Shape(np.array([0.0, -27.0, 0.0]), rotation_matrix([0, 0, 30]), np.array([6.0, 3.0, np.inf]))
    case = PhantomCase((Structure("bulge", 1, 100.0, bulge), Structure("tube", 2, 200.0, tube)), noise_sd=0.0)
    shape = (71, 71, 71)
    hu, labels = rasterize(case, shape, default_affine(shape, np.ones(3)))
    bulge_mask = labels == 1
    assert bulge_mask[35, 35, :].sum() == 49  # |z| <= 24 mm
    assert bulge_mask[:, 35, 35].sum() == bulge_mask[35, :, 35].sum() == 37  # |x|, |y| <= 18 mm
    tube_slices = (labels == 2).reshape(-1, 71).T  # one row per k
    assert tube_slices[0].sum() > 40 and np.all(tube_slices == tube_slices[0])  # the same section on every slice
    assert set(np.unique(hu)) == {-1000, 100, 200}


@pytest.fixture(scope="module")
def axial_case():
    """A case fitted to an anisotropic axial RAS grid, and that grid."""
    shape = (60, 64, 40)
    affine = default_affine(shape, np.array([2.5, 2.0, 4.0]))
    return fit_to_grid(sample_case(np.random.default_rng(21)), shape, affine), shape, affine


def test_lps_stored_grid_gives_exactly_the_flipped_arrays(axial_case):
    case, shape, affine = axial_case
    hu_ras, labels_ras = rasterize(case, shape, affine)
    hu_lps, labels_lps = rasterize(case, shape, lps_affine(shape, affine))
    assert np.array_equal(labels_lps, labels_ras[::-1, ::-1, :])
    assert np.array_equal(hu_lps, hu_ras[::-1, ::-1, :])
    hu_noisy, labels_noisy = rasterize(case, shape, affine, noise_rng=np.random.default_rng(0))
    assert np.array_equal(labels_noisy, labels_ras), "noise must reach the image only"
    assert 3 < np.std(hu_noisy.astype(float) - hu_ras) < 20


def test_oblique_anisotropic_grid_puts_organs_at_the_same_place(axial_case):
    case, shape, affine = axial_case
    _, labels_axial = rasterize(case, shape, affine)
    spacing = np.array([2.0, 2.5, 3.0])
    oblique_shape = (100, 84, 76)
    linear = rotation_matrix([10.0, 0.0, 20.0]) * spacing  # 10 degrees about x, then 20 about z
    oblique = np.eye(4)
    oblique[:3, :3] = linear
    centre = affine[:3, :3] @ ((np.array(shape) - 1) / 2) + affine[:3, 3]
    oblique[:3, 3] = centre - linear @ ((np.array(oblique_shape) - 1) / 2)
    _, labels_oblique = rasterize(case, oblique_shape, oblique)
    tolerance = 1.0  # mm: a third of a voxel; half a voxel off (corner for centre) would show
    for name, value in ORGAN_LABELS.items():
        if name == "aorta":  # an open tube: the two grids cut it at different heights
            continue
        axial_at = centroid_ras(labels_axial, affine, value)
        drift = np.linalg.norm(centroid_ras(labels_oblique, oblique, value) - axial_at)
        assert drift < tolerance, (name, drift)
    liver_axial_ml = np.sum(labels_axial == 1) * np.prod([2.5, 2.0, 4.0]) / 1000
    liver_oblique_ml = np.sum(labels_oblique == 1) * np.prod(spacing) / 1000
    assert liver_oblique_ml == pytest.approx(liver_axial_ml, rel=0.03)


# ----------------------------------------------------------------------------------------------------------------
# `sslseg synth`


def assert_same_volume(path: Path, expected) -> None:
    volume = read_volume(path)
    assert volume.array.dtype == expected.array.dtype
    assert np.array_equal(volume.array, expected.array)
    assert np.allclose(volume.affine, expected.affine, atol=1e-5)


def test_synth_writes_unlabelled_cases(tmp_path, capsys):
    out = tmp_path / "unlabelled"
    assert main(["synth", "--out", str(out), "--cases", "3", "--size", "32", "--seed", "4"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["case_000.nii.gz", "case_001.nii.gz", "case_002.nii.gz"]
    for index in range(3):
        assert_same_volume(out / f"case_{index:03d}.nii.gz", make_phantom(case_seed(4, index), 32)[0])
    summary = capsys.readouterr().out.strip().splitlines()
    assert len(summary) == 1 and "3 unlabelled cases" in summary[0] and str(out) in summary[0]
    assert "32 x 32 x 32" in summary[0]


def test_synth_writes_msd_layout(tmp_path):
    out = tmp_path / "labelled"
    args = ["synth", "--out", str(out), "--cases", "2", "--size", "32", "30", "28", "--spacing", "3", "--seed", "4"]
    assert main([*args, "--labelled"]) == 0
    assert sorted(str(p.relative_to(out)) for p in out.rglob("*")) == [
        "dataset.json", "imagesTr", "imagesTr/case_000.nii.gz", "imagesTr/case_001.nii.gz",
        "labelsTr", "labelsTr/case_000.nii.gz", "labelsTr/case_001.nii.gz",
    ]  # fmt: skip
    dataset = json.loads((out / "dataset.json").read_text())
    assert dataset["name"] == "sslseg synthetic abdomen" and dataset["description"]
    assert dataset["modality"] == {"0": "CT"}
    assert dataset["labels"] == {"0": "background", **{str(v): name for name, v in ORGAN_LABELS.items()}}
    assert dataset["numTraining"] == 2
    assert dataset["training"] == [
        {"image": f"./imagesTr/case_00{n}.nii.gz", "label": f"./labelsTr/case_00{n}.nii.gz"} for n in range(2)
    ]
    for index in range(2):
        image, labels = make_phantom(case_seed(4, index), (32, 30, 28), 3.0)
        assert_same_volume(out / "imagesTr" / f"case_00{index}.nii.gz", image)
        assert_same_volume(out / "labelsTr" / f"case_00{index}.nii.gz", labels)
    # Case n does not depend on how many cases are written, nor on whether labels are.
    single = tmp_path / "single"
    assert main(["synth", "--out", str(single), "--cases", "1", *args[5:]]) == 0
    assert_same_volume(single / "case_000.nii.gz", read_volume(out / "imagesTr" / "case_000.nii.gz"))


def test_synth_refuses_a_non_empty_folder_unless_overwrite(tmp_path, capsys):
    (tmp_path / "notes.txt").write_text("mine")
    args = ["synth", "--out", str(tmp_path), "--cases", "1", "--size", "24"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "not empty" in err and "--overwrite" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]
    assert main([*args, "--overwrite"]) == 0
    assert (tmp_path / "case_000.nii.gz").is_file() and (tmp_path / "notes.txt").read_text() == "mine"


BAD_NUMBERS = [
    ["--cases", "0"],
    ["--cases", "x"],
    ["--cases", "2", "--spacing", "-1"],
    ["--cases", "2", "--seed", "-3"],
]


@pytest.mark.parametrize("bad", BAD_NUMBERS, ids=" ".join)
def test_synth_rejects_bad_numbers(tmp_path, bad):
    with pytest.raises(SystemExit) as exit_info:
        main(["synth", "--out", str(tmp_path / "x"), *bad])
    assert exit_info.value.code == 2


def test_synth_rejects_too_small_or_badly_shaped_grids(tmp_path, capsys):
    assert main(["synth", "--out", str(tmp_path / "a"), "--cases", "1", "--size", "8"]) == 2
    assert main(["synth", "--out", str(tmp_path / "b"), "--cases", "1", "--size", "32", "32"]) == 2
    assert "--size" in capsys.readouterr().err
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_synth_runs_as_a_module(tmp_path):
    out = tmp_path / "cohort"
    command = [sys.executable, "-m", "sslseg", "synth", "--out", str(out), "--cases", "2", "--size", "24", "--labelled"]
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "2 labelled cases" in result.stdout
    assert_same_volume(out / "labelsTr" / "case_001.nii.gz", make_phantom(case_seed(0, 1), 24)[1])
