"""Labelled cases for fine-tuning: cached once on disk exactly as inference preprocesses, matched by organ NAME
across files that number organs differently, unnamed label maps trained as label_N, the validation split."""

import json

import numpy as np
import pytest

from sslseg.finetune import cases as cases_module
from sslseg.finetune.cases import load_cases
from sslseg.finetune.label_set import remap
from sslseg.io import write_volume
from sslseg.io.pairing import find_labelled_cases, load_case
from sslseg.io.segnrrd import write_seg_nrrd
from sslseg.labels import LabelTable
from sslseg.segmentation.preprocess import SegmentationPreprocessing, labels_on_model_grid, preprocess_image
from sslseg.synth.anatomy import ORGAN_LABELS
from sslseg.synth.phantom import make_phantom

SETTINGS = SegmentationPreprocessing(spacing_mm=(6.0, 6.0, 6.0))


def test_the_cache_holds_exactly_what_inference_computes_memory_mapped(labelled_dir, tmp_path):
    data = load_cases(labelled_dir, tmp_path / "cache", SETTINGS, val_fraction=0.34, seed=0)
    assert len(data.train) == 4 and len(data.val) == 2 and data.labels.names == ORGAN_LABELS
    case = data.train[0]
    image, labels, _ = load_case(next(c for c in find_labelled_cases(labelled_dir)[0] if c.name == case.name))
    expected = preprocess_image(image, SETTINGS)
    assert isinstance(case.image(), np.memmap) and case.image().dtype == np.float32
    np.testing.assert_array_equal(case.image(), expected.array)  # bit for bit: training sees what segment sees
    np.testing.assert_array_equal(case.labels(), labels_on_model_grid(labels, expected, SETTINGS))
    np.testing.assert_allclose(case.affine, expected.affine)


def test_cached_cases_are_reused(labelled_dir, tmp_path, monkeypatch):
    load_cases(labelled_dir, tmp_path / "cache", SETTINGS, val_fraction=0.34, seed=0)
    built = []
    monkeypatch.setattr(cases_module, "build_case", lambda *args: built.append(args))
    again = load_cases(labelled_dir, tmp_path / "cache", SETTINGS, val_fraction=0.34, seed=0)
    assert not built and len(again.train) == 4


def test_cases_numbering_organs_differently_train_into_one_label_set(tmp_path):
    """Case A: NIfTI label map named by a datalist (MSD numbering). Case B: the same anatomy as a Slicer .seg.nrrd
    whose segments come in another order and lack the gallbladder."""
    image, labels = make_phantom(11, (40, 36, 30), 6.0)
    write_volume(image, tmp_path / "a" / "image.nii.gz")
    write_volume(labels, tmp_path / "a" / "labels.nii.gz")
    order = ["aorta", "stomach", "liver", "pancreas", "left_kidney", "spleen", "right_kidney"]  # no gallbladder
    renumbered = np.zeros_like(labels.array)
    for new, name in enumerate(order, start=1):
        renumbered[labels.array == ORGAN_LABELS[name]] = new
    write_volume(image, tmp_path / "b" / "image.nii.gz")
    write_seg_nrrd(labels.with_array(renumbered), LabelTable.from_names(dict(enumerate(order, start=1))),
                   tmp_path / "b" / "labels.seg.nrrd")
    datalist = {"labels": {"0": "background", **{str(v): n for n, v in ORGAN_LABELS.items()}},
                "training": [{"image": "a/image.nii.gz", "label": "a/labels.nii.gz"},
                             {"image": "b/image.nii.gz", "label": "b/labels.seg.nrrd"}]}
    (tmp_path / "datalist.json").write_text(json.dumps(datalist))

    data = load_cases(tmp_path / "datalist.json", tmp_path / "cache", SETTINGS, val_fraction=0, seed=0)
    assert data.labels.names == ORGAN_LABELS  # first case's order; the second adds nothing new
    a, b = data.train
    assert b.table.names == {name: i for i, name in enumerate(order, start=1)}
    remapped_a, remapped_b = remap(a.labels(), data.lut(a)), remap(b.labels(), data.lut(b))
    gallbladder = remapped_a == ORGAN_LABELS["gallbladder"]
    assert gallbladder.any()
    np.testing.assert_array_equal(remapped_b, np.where(gallbladder, 0, remapped_a))


def test_unnamed_but_consistent_label_maps_train_as_label_n(tmp_path):
    for index in range(2):
        image, labels = make_phantom(20 + index, (40, 36, 30), 6.0)
        write_volume(image, tmp_path / f"case{index}.nii.gz")
        write_volume(labels, tmp_path / f"case{index}_label.nii.gz")  # no label table anywhere
    data = load_cases(tmp_path, tmp_path.parent / f"{tmp_path.name}_cache", SETTINGS, val_fraction=0, seed=0)
    assert list(data.labels.names) == [f"label_{v}" for v in range(1, 9)]
    for case in data.train:
        np.testing.assert_array_equal(remap(case.labels(), data.lut(case)), case.labels())


def test_a_datalist_validation_split_is_used(labelled_dir, tmp_path):
    listed = json.loads((labelled_dir / "dataset.json").read_text())
    datalist = {"labels": listed["labels"], "training": listed["training"][:4], "validation": listed["training"][4:]}
    datalist = json.loads(json.dumps(datalist).replace("./", str(labelled_dir) + "/"))
    (tmp_path / "list.json").write_text(json.dumps(datalist))
    data = load_cases(tmp_path / "list.json", tmp_path / "cache", SETTINGS, val_fraction=0.5, seed=0)
    assert [c.name for c in data.val] == ["case_004", "case_005"] and len(data.train) == 4


def test_a_validation_organ_unknown_to_training_is_scored_as_background(tmp_path, caplog):
    image, labels = make_phantom(30, (40, 36, 30), 6.0)
    for name in ("a", "b"):
        write_volume(image, tmp_path / f"{name}.nii.gz")
        write_volume(labels, tmp_path / f"{name}_label.nii.gz")
    (tmp_path / "a_label.json").write_text(json.dumps({"labels": {"1": "liver"}}))  # a names only the liver
    names = {str(v): n for n, v in ORGAN_LABELS.items()}
    (tmp_path / "b_label.json").write_text(json.dumps({"labels": names}))
    masked = labels.with_array(np.where(labels.array == 1, 1, 0).astype(np.uint8))
    write_volume(masked, tmp_path / "a_label.nii.gz", overwrite=True)
    datalist = {"training": [{"image": "a.nii.gz", "label": "a_label.nii.gz"}],
                "validation": [{"image": "b.nii.gz", "label": "b_label.nii.gz"}]}
    (tmp_path / "list.json").write_text(json.dumps(datalist))
    data = load_cases(tmp_path / "list.json", tmp_path / "cache", SETTINGS, val_fraction=0, seed=0)
    assert data.labels.names == {"liver": 1}
    (val,) = data.val
    assert set(np.unique(remap(val.labels(), data.lut(val)))) == {0, 1}
    assert "no training case has" in caplog.text


@pytest.fixture
def caplog(caplog):
    caplog.set_level("WARNING")
    return caplog
