"""Labelled cases for fine-tuning: cached once on disk exactly as inference preprocesses, matched by organ NAME
across files that number organs differently, unnamed label maps trained as label_N, the validation split."""

import json
import shutil

import numpy as np
import pytest

from sslseg.errors import SSLSegError
from sslseg.finetune import cases as cases_module
from sslseg.finetune.cases import load_cases
from sslseg.finetune.label_set import remap
from sslseg.io import write_volume
from sslseg.io.pairing import find_labelled_cases, load_case
from sslseg.io.segnrrd import write_seg_nrrd
from sslseg.labels import LabelTable
from sslseg.package.model_package import load_model_package
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


# --- the split is decided per run, never read from the case cache (issue 14) ------------------------------------
def two_case_msd(labelled_dir, folder):
    """``folder``: case_000 and case_001 of ``labelled_dir`` in MSD layout; its dataset.json (also a datalist) names
    case_001 the validation case."""
    for sub in ("imagesTr", "labelsTr"):
        (folder / sub).mkdir(parents=True)
        for name in ("case_000", "case_001"):
            shutil.copy(labelled_dir / sub / f"{name}.nii.gz", folder / sub / f"{name}.nii.gz")
    pair = {name: {"image": f"imagesTr/{name}.nii.gz", "label": f"labelsTr/{name}.nii.gz"}
            for name in ("case_000", "case_001")}
    listed = json.loads((labelled_dir / "dataset.json").read_text())
    (folder / "dataset.json").write_text(json.dumps({"labels": listed["labels"], "training": [pair["case_000"]],
                                                     "validation": [pair["case_001"]]}))
    return pair


def datalist(path, training, validation=()):
    path.write_text(json.dumps({"training": list(training), "validation": list(validation)}))
    return path


def split_of(model_dir) -> tuple[list[str], list[str]]:
    """(training case names, validation case names) as the run's model card records them."""
    cases = load_model_package(model_dir).card["provenance"]["training_cases"]
    return [c["name"] for c in cases["train"]], [c["name"] for c in cases["val"]]


def one_step(run_finetune, data, out, cache, val_fraction):
    run_finetune(data, out, epochs=1, max_steps=1, val_fraction=val_fraction, cache_dir=str(cache))
    return split_of(out)


def test_a_datalists_split_is_not_read_back_by_a_later_datalist_sharing_the_cache(labelled_dir, tmp_path,
                                                                                 run_finetune):
    """Case B validates in the first run; the second datalist trains on A and B: with the shared cache as with a
    fresh one, it trains on both and validates on none."""
    pair = two_case_msd(labelled_dir, tmp_path / "data")
    a, b = (pair["case_000"], pair["case_001"])
    first = datalist(tmp_path / "data" / "first.json", [a], [b])
    both = datalist(tmp_path / "data" / "both.json", [a, b])
    cache = tmp_path / "cache"
    assert one_step(run_finetune, first, tmp_path / "m1", cache, 0) == (["case_000"], ["case_001"])
    assert one_step(run_finetune, both, tmp_path / "m2", cache, 0) == (["case_000", "case_001"], [])
    assert one_step(run_finetune, both, tmp_path / "m3", tmp_path / "fresh", 0) == (["case_000", "case_001"], [])


def test_an_msd_folder_is_split_afresh_after_a_run_on_its_dataset_json(labelled_dir, tmp_path, run_finetune):
    """dataset.json (a datalist naming case_001 for validation) and then the folder itself, sharing one cache (the
    cases' keys agree: same files, same label table): the folder run holds out nothing at --val-fraction 0."""
    two_case_msd(labelled_dir, tmp_path / "msd")
    cache = tmp_path / "cache"
    assert one_step(run_finetune, tmp_path / "msd" / "dataset.json", tmp_path / "m1", cache, 0) == (
        ["case_000"], ["case_001"])
    assert one_step(run_finetune, tmp_path / "msd", tmp_path / "m2", cache, 0) == (["case_000", "case_001"], [])
    assert one_step(run_finetune, tmp_path / "msd", tmp_path / "m3", tmp_path / "fresh", 0) == (
        ["case_000", "case_001"], [])


def test_a_file_listed_for_training_and_validation_is_refused_naming_it(labelled_dir, tmp_path, run_finetune):
    pair = two_case_msd(labelled_dir, tmp_path / "data")
    leaky = datalist(tmp_path / "data" / "leaky.json", [pair["case_000"], pair["case_001"]], [pair["case_001"]])
    with pytest.raises(SSLSegError, match=r"case_001\.nii\.gz under both training and validation") as error:
        run_finetune(leaky, tmp_path / "model", epochs=1, max_steps=1, cache_dir=str(tmp_path / "cache"))
    assert "imagesTr" in str(error.value) and "once" in error.value.hint
