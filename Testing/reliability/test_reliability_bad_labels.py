"""Catalogue, bad labels: each gives a clear message naming the label file (or case) and what to do; in a
fine-tuning folder run an unusable case is skipped with a warning naming it and the run goes on.

=================================  ========================================================================
label grid != image grid           test_a_finetuning_run_skips_unusable_label_maps_and_goes_on,
                                   test_evaluate_refuses_labels_on_another_grid
                                   (engine/test_pairing.py::test_label_on_another_grid_names_both_files_and_geometries)
non-integer label values           test_a_finetuning_run_skips_unusable_label_maps_and_goes_on
                                   (engine/test_pairing.py::test_label_values_must_be_whole_and_non_negative)
negative label values              test_a_finetuning_run_skips_unusable_label_maps_and_goes_on (same engine test)
value absent from the label table  test_a_label_value_the_table_does_not_name_stops_finetuning_naming_the_case
                                   (engine/test_label_set.py::test_a_value_without_a_name_is_an_error_naming_the_case)
organ not in the training set      test_a_finetuning_run_skips_unusable_label_maps_and_goes_on (a validation case's
                                   extra organ: warned, scored as background); a model never segments an organ it was
                                   not trained on (`sslseg segment` has no organ to ask for); unit:
                                   engine/test_label_set.py::test_an_organ_outside_the_label_set_is_an_error
empty label map                    test_a_finetuning_run_skips_unusable_label_maps_and_goes_on (warned, trains as
                                   background), test_only_empty_label_maps_stop_finetuning
=================================  ========================================================================
"""

import json
import logging

import numpy as np
from reliability_support import FINETUNE_TINY, assert_refused, run_cli

from sslseg.io import read_volume, write_volume
from sslseg.synth.anatomy import ORGAN_LABELS
from sslseg.volume import Volume

NAMES = {str(value): name for name, value in ORGAN_LABELS.items()}


def add_case(folder, labelled_dir, index: int, name: str, change=None, names=None) -> dict:
    """Case ``index`` of ``labelled_dir`` as ``folder/NAME.nii.gz`` + ``NAME_label.nii.gz`` + its names in
    ``NAME_label.json``; ``change(labels Volume) -> Volume`` breaks the label map. A datalist entry."""
    image = read_volume(labelled_dir / "imagesTr" / f"case_{index:03d}.nii.gz")
    labels = read_volume(labelled_dir / "labelsTr" / f"case_{index:03d}.nii.gz")
    write_volume(image, folder / f"{name}.nii.gz")
    write_volume(change(labels) if change else labels, folder / f"{name}_label.nii.gz")
    (folder / f"{name}_label.json").write_text(json.dumps({"labels": names or NAMES}))
    return {"image": f"{name}.nii.gz", "label": f"{name}_label.nii.gz"}


def shifted(labels: Volume) -> Volume:
    affine = labels.affine.copy()
    affine[:3, 3] += 0.4 * np.diag(affine)[:3]  # 0.4 voxel: looks right on screen, is another grid
    return Volume(labels.array, affine)


def fractional(labels: Volume) -> Volume:
    return labels.with_array(labels.array.astype(np.float32) * 0.5)


def negative(labels: Volume) -> Volume:
    array = labels.array.astype(np.int16)
    array[array == 1] = -1
    return labels.with_array(array)


def empty(labels: Volume) -> Volume:
    return labels.with_array(np.zeros_like(labels.array))


def with_tumour(labels: Volume) -> Volume:
    array = labels.array.copy()
    array[array == 1] = 9  # the liver becomes an organ no training case has
    return labels.with_array(array)


def finetune(capsys, datalist, out, *extra):
    return run_cli(capsys, "finetune", datalist, "--encoder", "none", "--out", out, *FINETUNE_TINY,
                   "--events", "-", *extra)


def test_a_finetuning_run_skips_unusable_label_maps_and_goes_on(labelled_dir, tmp_path, capsys, caplog):
    data = tmp_path / "data"
    data.mkdir()
    training = [add_case(data, labelled_dir, 0, "good_a"), add_case(data, labelled_dir, 1, "good_b"),
                add_case(data, labelled_dir, 2, "off_grid", shifted),
                add_case(data, labelled_dir, 3, "fractional", fractional),
                add_case(data, labelled_dir, 4, "negative", negative),
                add_case(data, labelled_dir, 5, "nothing_drawn", empty)]
    validation = [add_case(data, labelled_dir, 2, "val_tumour", with_tumour, {**NAMES, "9": "tumour"})]
    (data / "datalist.json").write_text(json.dumps({"training": training, "validation": validation}))
    with caplog.at_level(logging.WARNING):
        code, out, err = finetune(capsys, data / "datalist.json", tmp_path / "model", "--max-steps", "1",
                                     "--val-every", "0")
    assert code == 0, err
    events = [json.loads(line) for line in out.splitlines()]
    assert events[-1]["event"] == "done"
    start = next(e for e in events if e["event"] == "start")
    assert (start["train_cases"], start["val_cases"], start["skipped"]) == (3, 1, 3)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]

    def warned(*fragments):
        assert any(all(f in w for f in fragments) for w in warnings), (fragments, warnings)

    warned("skipping off_grid", str(data / "off_grid_label.nii.gz"), "is not on the grid of its image",
           str(data / "off_grid.nii.gz"))
    warned("skipping fractional", str(data / "fractional_label.nii.gz"), "non-integer values")
    warned("skipping negative", str(data / "negative_label.nii.gz"), "negative label values")
    warned(str(data / "nothing_drawn_label.nii.gz"), "is empty (all background)")
    warned("validation case val_tumour", "tumour", "no training case has")


def test_only_empty_label_maps_stop_finetuning(labelled_dir, tmp_path, capsys, caplog):
    data = tmp_path / "data"
    data.mkdir()
    training = [add_case(data, labelled_dir, 0, "blank_a", empty), add_case(data, labelled_dir, 1, "blank_b", empty)]
    (data / "datalist.json").write_text(json.dumps({"training": training}))
    with caplog.at_level(logging.WARNING):
        result = finetune(capsys, data / "datalist.json", tmp_path / "model")
    assert_refused(result, "label maps hold no organ (all background)", "check the label files")
    assert str(data / "blank_a_label.nii.gz") in caplog.text and str(data / "blank_b_label.nii.gz") in caplog.text


def test_a_label_value_the_table_does_not_name_stops_finetuning_naming_the_case(labelled_dir, tmp_path, capsys):
    data = tmp_path / "data"
    data.mkdir()
    unnamed = {k: v for k, v in NAMES.items() if k != "2"}  # the label map has 2 (spleen); its table forgot it
    training = [add_case(data, labelled_dir, 0, "good_a"), add_case(data, labelled_dir, 1, "forgot_spleen",
                                                                     names=unnamed)]
    (data / "datalist.json").write_text(json.dumps({"training": training}))
    assert_refused(finetune(capsys, data / "datalist.json", tmp_path / "model"),
                   "forgot_spleen", "label value(s) [2]", "does not name", "add them to the label table")


def test_evaluate_refuses_labels_on_another_grid(labelled_dir, tmp_path, capsys):
    reference = labelled_dir / "labelsTr" / "case_000.nii.gz"
    prediction = write_volume(shifted(read_volume(reference)), tmp_path / "prediction.nii.gz")
    assert_refused(run_cli(capsys, "evaluate", prediction, reference), str(prediction), str(reference),
                   "is not on the grid", "reference geometry")
