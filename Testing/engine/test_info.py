"""``sslseg info`` on what sslseg itself writes: a model folder (``sslseg finetune``), a pretraining run folder
(``sslseg pretrain``) and a label map with its names (``sslseg segment``); and a folder's warnings said once."""

import subprocess
import sys

import nibabel as nib
import numpy as np
import pytest

from sslseg.cli.main import main


@pytest.fixture(scope="module")
def model_dir(run_finetune, tmp_path_factory):
    """A model folder as `sslseg finetune` leaves it: the tiny UNETR trained one step on one phantom, validated on a
    second (two cases of the labelled_dir kind, so that the whole epoch, validation included, takes seconds)."""
    from finetune_support import FINETUNE_GRID, FINETUNE_SPACING_MM

    from sslseg.synth.cohort import write_labelled

    folder = tmp_path_factory.mktemp("info_model")
    write_labelled(folder / "cases", 2, size=FINETUNE_GRID, spacing=FINETUNE_SPACING_MM, seed=5)
    run_finetune(folder / "cases", folder / "model", epochs=1, val_every=1, val_fraction=0.5, amp="off")
    return folder / "model"


def info(capsys, path) -> str:
    capsys.readouterr()
    assert main(["info", str(path)]) == 0
    return capsys.readouterr().out


def test_a_model_folder_is_described_by_its_card(model_dir, capsys, caplog):
    """Issue 14: `sslseg info MODEL_DIR` warned twice about every file and ended with "holds no volumes"."""
    out = info(capsys, model_dir)
    assert out.startswith(f"{model_dir}: model package (sslseg-model v1")
    assert "architecture: UNETR, preset tiny (hidden size 96, 12 layers, 4 heads, 16^3-voxel tokens)" in out
    assert "32^3-voxel window (training patch size), 6 x 6 x 6 mm voxels, orientation RAS" in out
    assert "labels (8): value, name, validation Dice\n      1 liver " in out and "      8 gallbladder " in out
    assert "encoder: random initialisation" in out
    assert "training: 1 epoch(s), 1 step(s), 1 training / 1 validation case(s), amp off" in out
    assert "validation: mean Dice 0." in out and "(epoch 1, step 1, 1 case(s))" in out
    assert "weights: model.safetensors (" in out
    assert "skipping" not in caplog.text
    assert info(capsys, model_dir / "model.json") == out  # the card itself names the same folder


def test_a_pretraining_run_is_described_by_its_encoder_card(tiny_encoder_run, capsys, caplog):
    out = info(capsys, tiny_encoder_run)
    assert out.startswith(f"{tiny_encoder_run}: pretrained encoder (sslseg-encoder v1")
    assert "architecture: ViT, preset tiny (hidden size 96, 12 layers, 4 heads, 16^3-voxel tokens), trained on " \
           "32^3-voxel patches" in out
    assert "input: 4 mm voxels, orientation RAS" in out
    assert "SSL method: inpaint-contrastive (temperature 0.05" in out
    assert "training: 1 epoch(s), " in out and " amp " in out
    assert "results: train loss " in out
    assert "weights: encoder.safetensors (" in out and "161 tensors" in out
    assert "skipping" not in caplog.text


def test_a_segmentation_shows_the_names_of_its_sidecar(model_dir, tmp_path, capsys):
    """Issue 14: `sslseg info pred.nii.gz` showed "intensity 0 .. 13" beside the pred.json that names the labels."""
    out_file = tmp_path / "pred.nii.gz"
    assert main(["segment", str(model_dir.parent / "cases" / "imagesTr" / "case_000.nii.gz"), "--model", str(model_dir),
                 "--out", str(out_file)]) == 0
    counts = np.bincount(np.asarray(nib.load(out_file).dataobj).ravel(), minlength=9)
    out = info(capsys, out_file)
    assert "intensity" not in out
    assert "labels (8): value, name, voxels" in out
    for value, name in enumerate(["liver", "spleen", "right_kidney", "left_kidney", "stomach", "aorta", "pancreas",
                                  "gallbladder"], start=1):
        assert f"\n    {value:>3} {name:<12}  {counts[value]}\n" in out + "\n"


def test_a_label_map_of_an_msd_folder_shows_the_names_of_its_dataset_json(model_dir, capsys):
    """A labelsTr/ file alone: its names are in the folder above (dataset.json), as when the folder is read whole."""
    out = info(capsys, model_dir.parent / "cases" / "labelsTr" / "case_000.nii.gz")
    assert "labels (8): value, name, voxels\n      1 liver " in out and "label_1" not in out


def test_a_folder_warns_once_about_each_file_it_skips(tmp_path):
    """Issue 14: every "skipping FILE: not a supported image file" warning was printed twice."""
    from sslseg.synth.cohort import write_unlabelled

    write_unlabelled(tmp_path, 1, size=24, spacing=10.0)
    (tmp_path / "weights.bin").write_bytes(b"\0" * 16)
    result = subprocess.run([sys.executable, "-m", "sslseg", "info", str(tmp_path)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stderr.count("skipping") == 1 and f"skipping {tmp_path / 'weights.bin'}" in result.stderr
