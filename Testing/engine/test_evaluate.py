"""Dice and HD95 against hand-computed values; organs matched by name across differently numbered files."""

import json
import math

import numpy as np
import pytest
from geometry_cases import GRIDS

from sslseg.cli.main import main
from sslseg.evaluation.overlap import dice
from sslseg.evaluation.surface_distance import hausdorff_distance
from sslseg.io import write_volume
from sslseg.io.segnrrd import write_seg_nrrd
from sslseg.labels import LabelTable
from sslseg.volume import Volume


def box(shape, low, high):
    mask = np.zeros(shape, bool)
    mask[tuple(slice(a, b) for a, b in zip(low, high))] = True
    return mask


def test_dice_by_hand():
    a = box((10, 10, 10), (0, 0, 0), (4, 5, 5))  # 100 voxels
    b = box((10, 10, 10), (2, 0, 0), (6, 5, 5))  # 100 voxels, 50 shared
    assert dice(a, b) == pytest.approx(0.5)
    assert dice(a, a) == 1.0
    assert math.isnan(dice(a & False, b & False))


def test_hausdorff_of_shifted_box_is_the_shift_in_mm():
    """A box shifted by 3 voxels along an axis of 2.5 mm: every surface point of the shifted faces is 7.5 mm off."""
    a = box((30, 20, 20), (5, 5, 5), (15, 15, 15))
    b = box((30, 20, 20), (8, 5, 5), (18, 15, 15))
    spacing = np.array([2.5, 1.0, 1.0])
    assert hausdorff_distance(a, b, spacing) == pytest.approx(7.5)
    assert hausdorff_distance(a, a, spacing) == 0.0
    assert math.isnan(hausdorff_distance(a, a & False, spacing))


def test_evaluate_matches_organs_by_name_not_value(tmp_path):
    shape = (20, 16, 12)
    liver = box(shape, (2, 2, 2), (10, 10, 8))
    spleen = box(shape, (12, 3, 3), (18, 9, 9))
    reference = np.zeros(shape, np.uint8)
    reference[liver], reference[spleen] = 1, 2
    prediction = np.zeros(shape, np.uint8)
    prediction[liver], prediction[box(shape, (12, 3, 3), (18, 9, 6))] = 7, 3  # other numbering, half the spleen
    affine = GRIDS["oblique"]
    write_seg_nrrd(Volume(reference, affine), LabelTable.from_names({1: "liver", 2: "spleen"}), tmp_path / "ref.seg.nrrd")
    write_volume(Volume(prediction, affine), tmp_path / "pred.nii.gz")
    (tmp_path / "pred.json").write_text(json.dumps({"labels": {"7": "liver", "3": "spleen"}}))
    assert main(["evaluate", str(tmp_path / "pred.nii.gz"), str(tmp_path / "ref.seg.nrrd"), "--json", str(tmp_path / "s.json")]) == 0
    scores = {o["organ"]: o for o in json.loads((tmp_path / "s.json").read_text())["organs"]}
    assert scores["liver"]["dice"] == pytest.approx(1.0)
    assert scores["spleen"]["dice"] == pytest.approx(2 * 108 / (216 + 108))
    assert scores["spleen"]["hd95_mm"] == pytest.approx(3 * 3.0, abs=1e-6)  # 3 missing slices of 3 mm along k


def test_prediction_on_another_grid_is_refused(tmp_path, capsys):
    labels = np.ones((6, 6, 6), np.uint8)
    write_volume(Volume(labels, GRIDS["ras"]), tmp_path / "a.nii.gz")
    write_volume(Volume(labels, GRIDS["oblique"]), tmp_path / "b.nii.gz")
    assert main(["evaluate", str(tmp_path / "a.nii.gz"), str(tmp_path / "b.nii.gz")]) == 2
    assert "is not on the grid of" in capsys.readouterr().err
