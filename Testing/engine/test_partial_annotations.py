"""Training from partial annotations: the loss, the annotated masks' geometry, the datalist fields, and the measured
effect on held-out phantoms (``Testing/partial_support.py``; more seeds in ``benchmarks/bench_partial.py``)."""

import json

import numpy as np
import pytest
import torch

from sslseg.errors import SSLSegError
from sslseg.finetune.partial_loss import partial_dice_ce
from sslseg.finetune.validation import case_dice
from sslseg.io.annotation import (Annotation, SliceAnnotation, annotated_organs, annotation_from_entry, slices_mask,
                                  voxel_axis)


def test_the_partial_loss_is_monais_dice_ce_when_everything_is_annotated():
    """Values and gradients equal MONAI's DiceCELoss(to_onehot_y=True, softmax=True): the partial path changes
    nothing for a fully annotated case."""
    from monai.losses import DiceCELoss

    torch.manual_seed(0)
    logits = torch.randn(3, 5, 8, 7, 6, requires_grad=True)
    labels = torch.randint(0, 5, (3, 1, 8, 7, 6))
    expected = DiceCELoss(to_onehot_y=True, softmax=True)(logits, labels)
    ours = partial_dice_ce(logits, labels, torch.ones_like(labels), torch.ones(3, 5, dtype=torch.bool))
    assert ours.item() == pytest.approx(expected.item(), rel=1e-6)
    (grad_expected,) = torch.autograd.grad(expected, logits)
    (grad_ours,) = torch.autograd.grad(ours, logits)
    assert torch.allclose(grad_ours, grad_expected, atol=1e-8)


def test_unannotated_voxels_neither_count_nor_receive_gradient():
    """Whatever the labels and predictions on unannotated slices are, the loss is the same and no gradient flows
    there (a liver drawn on 1 slice in 10 is not background on the other 9)."""
    torch.manual_seed(1)
    logits = torch.randn(2, 3, 6, 6, 10, requires_grad=True)
    labels = torch.randint(0, 3, (2, 1, 6, 6, 10))
    annotated = torch.zeros_like(labels)
    annotated[..., ::4] = 1  # slices 0, 4, 8 along the last axis
    loss = partial_dice_ce(logits, labels, annotated)
    (gradient,) = torch.autograd.grad(loss, logits)
    assert gradient[..., 1::4].abs().max() == 0 and gradient[..., ::4].abs().max() > 0
    other_labels = labels.clone()
    other_labels[..., 1::4] = (other_labels[..., 1::4] + 1) % 3
    other_logits = logits.detach().clone()
    other_logits[..., 2::4] = torch.randn_like(other_logits[..., 2::4]) * 5
    assert partial_dice_ce(other_logits, other_labels, annotated).item() == pytest.approx(loss.item(), rel=1e-6)
    assert partial_dice_ce(logits, other_labels).item() != pytest.approx(loss.item(), rel=1e-3)


def test_the_marginal_loss_treats_an_unannotated_organ_as_background():
    """In a case that does not annotate organ 2, predicting organ 2 on its background costs exactly what predicting
    background does (its probability joins the background's), while an annotated organ 2 is punished."""
    torch.manual_seed(2)
    labels = torch.zeros(1, 1, 5, 5, 5, dtype=torch.long)
    labels[..., :2] = 1  # organ 1 drawn, organ 2 not annotated in this case
    logits = torch.randn(1, 3, 5, 5, 5)
    says_organ2 = logits.clone()
    says_organ2[:, 2, ..., 2:] += 6.0  # confident organ 2 where the case says background
    says_background = says_organ2.clone()
    says_background[:, [0, 2], ..., 2:] = says_organ2[:, [2, 0], ..., 2:]  # the same mass, on background
    organ2_unknown = torch.tensor([[True, True, False]])
    assert partial_dice_ce(says_organ2, labels, organs=organ2_unknown).item() == pytest.approx(
        partial_dice_ce(says_background, labels, organs=organ2_unknown).item(), rel=1e-5)
    assert partial_dice_ce(says_organ2, labels).item() > partial_dice_ce(says_background, labels).item() + 0.5


def test_validation_scores_only_annotated_voxels_and_organs():
    reference = np.zeros((4, 4, 4), np.uint8)
    reference[:2, :2, :] = 1
    prediction = reference.copy()
    prediction[2:, 2:, 1] = 1  # a false positive on slice k = 1
    prediction[0, 0, :] = 2  # organ 2, which this case does not annotate
    annotated = np.zeros_like(reference)
    annotated[..., [0, 2]] = 1
    whole = case_dice(prediction, reference, 2)
    assert whole[0] < 0.9 and whole[1] == 0.0
    scored = case_dice(prediction, reference, 2, annotated, np.array([True, True, False]))
    assert scored[0] == pytest.approx(2 * 6 / (6 + 8)) and np.isnan(scored[1])  # 3 of 4 voxels of 2 slices


@pytest.mark.parametrize("directions, expected", [
    (np.eye(3), {"sagittal": 0, "coronal": 1, "axial": 2}),  # RAS-stored
    (np.diag([-1.0, -1.0, 1.0]), {"sagittal": 0, "coronal": 1, "axial": 2}),  # LPS-stored (DICOM)
    (np.array([[0, 0, -1.0], [1.0, 0, 0], [0, -1.0, 0]]), {"sagittal": 2, "coronal": 0, "axial": 1}),  # permuted
])
def test_anatomical_axes_name_the_voxel_axis_whatever_the_storage_order(directions, expected):
    affine = np.eye(4)
    affine[:3, :3] = directions * [0.8, 0.8, 3.0]
    assert {name: voxel_axis(affine, name) for name in expected} == expected


def test_axial_slices_of_an_oblique_permuted_volume_are_planes_of_constant_height():
    """A volume stored with j running inferior-superior (and 10 degrees oblique): the 'axial' slices drawn on are
    the j planes (a step along j moves 2.5 mm up, along i 0.17 mm, along k 0), whole."""
    angle = np.deg2rad(10)
    rotation = np.array([[np.cos(angle), 0, np.sin(angle)], [0, 1, 0], [-np.sin(angle), 0, np.cos(angle)]])
    affine = np.eye(4)
    affine[:3, :3] = rotation @ np.array([[-1.0, 0, 0], [0, 0, -1.0], [0, 2.5, 0]])  # i: L, j: S, k: P
    labels = np.zeros((20, 12, 16), np.uint8)
    labels[5:9, 3, 4:10] = 1
    labels[6:8, 7, 5:8] = 2
    mask = slices_mask(labels, affine, SliceAnnotation("axial"), "test")
    assert mask.shape == labels.shape
    assert sorted(np.flatnonzero(mask.any(axis=(0, 2)))) == [3, 7] and mask[:, [3, 7], :].all()
    assert mask.sum() == 2 * 20 * 16
    listed = slices_mask(labels, affine, SliceAnnotation("axial", (0, 11)), "test")
    assert sorted(np.flatnonzero(listed.any(axis=(0, 2)))) == [0, 11]
    with pytest.raises(SSLSegError, match="outside the image's 12 slices along axial"):
        slices_mask(labels, affine, SliceAnnotation("axial", (12,)), "test")


def test_datalist_annotation_fields_are_read_and_checked(tmp_path):
    datalist = tmp_path / "datalist.json"
    (tmp_path / "mask.nii.gz").write_bytes(b"")
    read = annotation_from_entry({"image": "a", "annotated_slices": {"axis": "coronal", "indices": [2, 5]},
                                  "absent": ["spleen"]}, datalist)
    assert read == Annotation(slices=SliceAnnotation("coronal", (2, 5)), absent=("spleen",))
    assert annotation_from_entry({"image": "a", "annotated": "mask.nii.gz"}, datalist).mask == tmp_path / "mask.nii.gz"
    bad = [({"annotated": "mask.nii.gz", "annotated_slices": {"axis": "axial"}}, "both"),
           ({"annotated_slices": {"axis": "transverse"}}, "unknown axis 'transverse'"),
           ({"annotated_slices": {"axis": "axial", "indices": "1-4"}}, "list of slice numbers"),
           ({"annotated": "missing.nii.gz"}, "does not exist"),
           ({"organs": "liver"}, "list of organ names"),
           ({"organs": ["liver"], "absent": ["spleen"]}, "both \"organs\" and \"absent\"")]
    for entry, message in bad:
        with pytest.raises(SSLSegError, match=message):
            annotation_from_entry({"image": "a", **entry}, datalist)


def test_annotated_organs_default_to_those_drawn_plus_those_said_absent():
    drawn = {"liver", "spleen"}
    assert annotated_organs(Annotation(), drawn, partial_organs=False, case="c") is None  # every organ of the run
    assert annotated_organs(Annotation(), drawn, partial_organs=True, case="c") == drawn
    assert annotated_organs(Annotation(absent=("aorta",)), drawn, False, "c") == drawn | {"aorta"}
    assert annotated_organs(Annotation(organs=("liver", "spleen", "aorta")), drawn, False, "c") == drawn | {"aorta"}
    with pytest.raises(SSLSegError, match="case c draws spleen but its \"organs\" list leaves them out"):
        annotated_organs(Annotation(organs=("liver",)), drawn, False, "c")
    with pytest.raises(SSLSegError, match="lists liver as absent but draws"):
        annotated_organs(Annotation(absent=("liver",)), drawn, False, "c")


def test_cached_annotated_mask_follows_the_drawn_slices_onto_the_model_grid(labelled_dir, tmp_path):
    """A phantom's liver drawn on two axial slices: the cache's mask (model grid, here the same 6 mm RAS grid cropped
    to the body) is 1 exactly on two whole axial planes holding liver, and the crops carry it with every centre
    annotated."""
    from partial_support import _write_case
    from sslseg.finetune.cases import PartialOptions, load_cases
    from sslseg.finetune.crops import LabelledCrops
    from sslseg.io import read_volume
    from sslseg.segmentation.preprocess import SegmentationPreprocessing

    liver_slices = np.flatnonzero((read_volume(labelled_dir / "labelsTr" / "case_000.nii.gz").array == 1).any((0, 1)))
    drawn = (liver_slices[2], liver_slices[-3])
    entry = _write_case(labelled_dir, "case_000", tmp_path, {1: 1}, lambda k: k in drawn)
    (tmp_path / "datalist.json").write_text(json.dumps({"labels": {"1": "liver"}, "training": [entry]}))
    settings = SegmentationPreprocessing(spacing_mm=(6.0, 6.0, 6.0))
    cases = load_cases(tmp_path / "datalist.json", tmp_path / "cache", settings, 0.0, 0,
                       partial=PartialOptions(slice_axis="axial"))
    (case,) = cases.train
    mask, labels = case.annotated(), case.labels()
    planes = np.flatnonzero(mask.any(axis=(0, 1)))
    assert len(planes) == 2 and mask[:, :, planes].all() and labels[:, :, planes].any(axis=(0, 1)).all()
    assert not labels[mask == 0].any()
    assert cases.partial and list(cases.organ_mask(case)) == [True, True]
    crops = LabelledCrops(cases.train, [cases.lut(case)], 16, 4, seed=0, organs=[cases.organ_mask(case)])[(0, 0)]
    assert crops["annotated"].shape == crops["label"].shape == (4, 1, 16, 16, 16)
    assert all(crop[0, 8, 8, 8] == 1 for crop in crops["annotated"])  # every crop centred on an annotated voxel


def test_ignoring_undrawn_slices_learns_the_liver_that_background_teaches_away(labelled_dir, tmp_path):
    """The liver drawn on every 10th axial slice of 5 phantoms (about 10 % of their slices), 1 phantom held out
    and labelled whole; 40 steps each way (tiny UNETR, lr 3e-3, float32, one torch thread, the two side by side).
    Measured on an AVX512-BF16 EPYC: undrawn slices as background give a held-out liver Dice of 0.00,
    ``--undrawn-slices unknown`` 0.73 (the same on two threads; 0.51 at 60 steps, 0.67 at 100: the curve is noisy,
    never near 0; ``benchmarks/bench_partial.py``, 8 phantoms, 200 steps, 3 seeds: 0.00 (0.00..0.00) against 0.74
    (0.69..0.81))."""
    from finetune_support import LEARNING, finetune_side_by_side
    from partial_support import slices_cohort

    names = [f"case_{i:03d}" for i in range(6)]
    datalist = slices_cohort(labelled_dir, tmp_path / "cohort", names[:5], names[5:])
    scores = finetune_side_by_side(datalist, tmp_path, {undrawn: {"undrawn_slices": undrawn}
                                                        for undrawn in ("background", "unknown")},
                                   max_steps=40, val_every=1000, **LEARNING)
    liver = {undrawn: organs["liver"] for undrawn, organs in scores.items()}
    assert liver["background"] < 0.2 and liver["unknown"] > 0.4, liver


def test_the_marginal_loss_learns_organs_each_case_draws_half_of(organ_cases, tmp_path):
    """Two training phantoms, one drawing liver and spleen, the other the two kidneys; 2 held out with all four.
    At 8 mm a 32^3 crop spans 256 mm, nearly the whole phantom, so every crop of one training case shows the other
    case's organs and, to the naive loss, calls them background. 150 steps each way (lr 3e-3, float32, one
    torch thread, side by side). Measured on an AVX512-BF16 EPYC: naive loss liver 0.53, spleen and both kidneys 0.00;
    marginal (``--partial-organs``) liver 0.93, spleen 0.88, kidneys 0.89 / 0.88. Over 5 seeds (the same runs
    validated every 36 steps; right + left kidney Dice at step 150): naive 0.00 in every seed, marginal 0.39..1.77
    (mean 0.95); the liver 0.51..0.88 against 0.86..0.93. The naive loss learns the liver the first case draws
    (the second calls it background in every crop), never a kidney in 150 steps; the marginal loss learns the
    kidneys in every seed, the spleen (told from the liver by its side alone) in two."""
    from finetune_support import LEARNING, finetune_side_by_side
    from partial_support import HALVES_SPACING_MM, organ_halves_cohort

    names = [f"case_{i:03d}" for i in range(10)]
    datalist = organ_halves_cohort(organ_cases, tmp_path / "cohort", names[:2], names[8:])
    scores = finetune_side_by_side(datalist, tmp_path, {"naive": {}, "marginal": {"partial_organs": True}},
                                   spacing=(HALVES_SPACING_MM,) * 3, max_steps=150, val_every=1000, **LEARNING)
    kidneys = {loss: (organs["right_kidney"] or 0.0) + (organs["left_kidney"] or 0.0)
               for loss, organs in scores.items()}
    assert kidneys["naive"] < 0.2 and kidneys["marginal"] > max(0.35, kidneys["naive"] + 0.3), scores
    assert scores["marginal"]["liver"] > 0.7, scores


def test_crop_centres_lie_on_annotated_voxels_and_a_case_with_none_still_crops():
    from sslseg.finetune.crops import BG_INDICES, FG_INDICES, AnnotatedCentres

    label = np.zeros((1, 4, 4, 6), np.uint8)
    label[0, 1, 1, 1] = 1
    label[0, 2, 2, 4] = 1  # drawn, but on an unannotated slice: never a centre
    image = np.ones_like(label, dtype=np.float32)
    image[0, 0] = 0  # air
    annotated = np.zeros_like(label)
    annotated[..., :3] = 1
    centres = AnnotatedCentres()({"label": label, "image": image, "annotated": annotated})
    assert np.unravel_index(centres[FG_INDICES], label.shape[1:])[2].tolist() == [1]
    background = np.unravel_index(centres[BG_INDICES], label.shape[1:])
    assert max(background[2]) < 3 and min(background[0]) > 0 and len(centres[BG_INDICES]) == 3 * 4 * 3 - 1
    nothing = AnnotatedCentres()({"label": label, "image": image, "annotated": np.zeros_like(label)})
    assert len(nothing[FG_INDICES]) == 0 and len(nothing[BG_INDICES]) == label.size
