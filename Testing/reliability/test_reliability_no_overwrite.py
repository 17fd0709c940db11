"""Catalogue, no overwrite: no command replaces an existing output file or run folder unless told to
(``--overwrite``); the refusal names the file and the option.

=================================  ========================================================================
sslseg synth --out DIR             engine/test_synth.py::test_synth_refuses_a_non_empty_folder_unless_overwrite
sslseg pretrain --out RUN_DIR      engine/test_pretrain_cli.py::test_a_folder_with_another_run_is_refused
sslseg finetune --out MODEL_DIR    engine/test_finetune_run.py::test_the_command_line (CLI),
                                   ::test_an_existing_run_is_refused_unless_resumed_or_overwritten
a failed run's leftovers           replaced, with a warning, when there is no checkpoint (nothing to resume):
                                   engine/test_pretrain_cli.py, engine/test_finetune_run.py::
                                   test_a_run_that_failed_before_its_first_checkpoint_is_replaced_by_a_new_start
sslseg segment --out FILE          engine/test_segment_command.py::test_existing_output_is_kept
sslseg segment, NAME.json sidecar  test_segment_keeps_an_existing_sidecar
sslseg evaluate --json FILE        test_evaluate_keeps_an_existing_json_unless_overwrite
sslseg preview-views --out DIR     test_preview_views_keeps_an_earlier_preview_unless_overwrite
sslseg demo --out DIR              test_demo_keeps_a_folder_it_did_not_write
any file written                   written beside its destination and renamed into place (engine/test_volume_io.py::
                                   test_existing_file_is_not_overwritten checks no temporary file is left)
=================================  ========================================================================

In Slicer, replacing an existing segmentation asks first: that is the Slicer module's behaviour (SSLSegmentation),
outside this engine catalogue.
"""

import json

from reliability_support import assert_refused, run_cli


def test_segment_keeps_an_existing_sidecar(tiny_model, labelled_dir, tmp_path, capsys):
    sidecar = tmp_path / "labels.json"
    sidecar.write_text("my notes")
    out = tmp_path / "labels.nii.gz"
    result = run_cli(capsys, "segment", labelled_dir / "imagesTr" / "case_000.nii.gz", "--model", tiny_model,
                     "--out", out)
    assert_refused(result, f"{sidecar} already exists", "--overwrite")
    assert sidecar.read_text() == "my notes" and not out.exists()


def test_evaluate_keeps_an_existing_json_unless_overwrite(labelled_dir, tmp_path, capsys):
    label = labelled_dir / "labelsTr" / "case_000.nii.gz"
    scores = tmp_path / "scores.json"
    scores.write_text("last week's scores")
    assert_refused(run_cli(capsys, "evaluate", label, label, "--json", scores), f"{scores} already exists",
                   "--overwrite")
    assert scores.read_text() == "last week's scores"
    names = labelled_dir / "dataset.json"
    code, _, err = run_cli(capsys, "evaluate", label, label, "--json", scores, "--overwrite",
                           "--prediction-labels", names, "--reference-labels", names)
    assert code == 0, err
    assert json.loads(scores.read_text())["mean_dice"] == 1.0


def test_preview_views_keeps_an_earlier_preview_unless_overwrite(unlabelled_dir, tmp_path, capsys):
    earlier = tmp_path / "case_000_views.png"
    earlier.write_bytes(b"an earlier preview")
    args = ["preview-views", unlabelled_dir, "--out", tmp_path, "--preset", "tiny", "--patch-size", "32",
            "--spacing", "4"]
    assert_refused(run_cli(capsys, *args), f"{earlier} already exists", "--overwrite")
    assert earlier.read_bytes() == b"an earlier preview"
    code, _, err = run_cli(capsys, *args, "--overwrite")
    assert code == 0, err
    assert earlier.read_bytes()[:4] == b"\x89PNG"


def test_demo_keeps_a_folder_it_did_not_write(tmp_path, capsys):
    (tmp_path / "thesis.tex").write_text("four years of work")
    assert_refused(run_cli(capsys, "demo", "--out", tmp_path), f"{tmp_path} is not empty and was not written by the "
                   "demo", "choose another --out")
    assert [p.name for p in tmp_path.iterdir()] == ["thesis.tex"]
