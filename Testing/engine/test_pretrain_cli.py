"""``sslseg pretrain`` and ``sslseg preview-views`` as a user meets them: outputs, events, refusals, help."""

import json

import nibabel as nib
import numpy as np
import pytest
import torch
from pretrain_support import run_tiny

from sslseg.cli.main import build_parser, main
from sslseg.cli.training_options import config_from_args
from sslseg.errors import SSLSegError
from sslseg.finetune.config import FinetuneConfig
from sslseg.pretrain.config import PretrainConfig
from sslseg.training.amp import resolve_amp
from sslseg.training.loop import LoopConfig, planned_epochs, planned_steps

TINY = ["--preset", "tiny", "--patch-size", "32", "--spacing", "4", "--batch-size", "2", "--workers", "0"]


@pytest.fixture(scope="module")
def finished_run(unlabelled_dir, pretrain_cache, tmp_path_factory):
    folder = tmp_path_factory.mktemp("cli")
    out, events = folder / "run", folder / "events.jsonl"
    code = main(["pretrain", str(unlabelled_dir), "--out", str(out), *TINY, "--epochs", "2", "--cache",
                 str(pretrain_cache), "--events", str(events)])
    assert code == 0
    return out, events


def test_a_run_leaves_encoder_checkpoint_events_stats_and_curve(finished_run):
    out, _ = finished_run
    for name in ("encoder.safetensors", "encoder.json", "encoder_last.safetensors", "encoder_last.json",
                 "checkpoint.pt", "events.jsonl", "train_stats.json", "loss_curve.png"):
        assert (out / name).is_file(), name
    assert (out / "loss_curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_events_have_progress_epochs_and_done(finished_run):
    _, events_file = finished_run
    events = [json.loads(line) for line in events_file.read_text().splitlines()]
    kinds = [e["event"] for e in events]
    assert kinds[-1] == "done" and "start" in kinds and kinds.count("epoch") == 2
    progress = [e for e in events if e["event"] == "progress"]
    assert progress and progress[-1]["step"] == progress[-1]["total_steps"] == 8
    for field in ("stage", "epoch", "step", "loss", "lr", "eta_s"):
        assert field in progress[-1], field
    assert progress[-1]["eta_s"] == 0


def test_train_stats_are_current(finished_run):
    out, _ = finished_run
    stats = json.loads((out / "train_stats.json").read_text())
    assert stats["status"] == "done" and stats["step"] == stats["total_steps"] == 8
    assert [e["epoch"] for e in stats["epochs_history"]] == [1, 2]
    assert stats["epochs_history"][-1]["val_loss"] > 0


def test_a_folder_with_another_run_is_refused(finished_run, unlabelled_dir, capsys):
    out, _ = finished_run
    code = main(["pretrain", str(unlabelled_dir), "--out", str(out), *TINY, "--epochs", "1"])
    error = capsys.readouterr().err
    assert code == 2
    assert f"error: {out} already holds a run" in error
    assert "hint: pass --resume to continue it, --overwrite to replace it" in error


def test_a_run_that_failed_before_its_first_checkpoint_is_replaced_by_a_new_start(unlabelled_dir, pretrain_cache,
                                                                                  tmp_path, capsys, caplog):
    """Issue 14: a failed run used to block every retry ("already holds a run: pass --resume", then "no run to
    resume"). Its events and status are replaced, with one warning; the user's own files stay."""
    empty, out = tmp_path / "empty", tmp_path / "run"
    empty.mkdir()
    assert main(["pretrain", str(empty), "--out", str(out), *TINY]) == 2  # fails before any checkpoint
    (out / "notes.txt").write_text("my notes")
    assert main(["pretrain", str(unlabelled_dir), "--out", str(out), *TINY, "--resume"]) == 2
    assert "hint: start a new run without --resume" in capsys.readouterr().err
    caplog.clear()
    run = ["pretrain", str(unlabelled_dir), "--out", str(out), *TINY, "--max-steps", "1", "--val-every", "0",
           "--cache", str(pretrain_cache)]
    assert main(run) == 0, capsys.readouterr().err
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1 and "ended before its first checkpoint" in warnings[0], warnings
    assert (out / "notes.txt").read_text() == "my notes"
    assert [json.loads(line)["event"] for line in (out / "events.jsonl").read_text().splitlines()].count("error") == 0

    # a failed resume leaves a checkpoint: that run still needs --resume or --overwrite
    assert main([*run, "--resume", "--lr", "0.001"]) == 2
    assert json.loads((out / "train_stats.json").read_text())["status"] == "failed"
    capsys.readouterr()
    assert main(run) == 2
    assert "hint: pass --resume to continue it, --overwrite to replace it" in capsys.readouterr().err


def test_an_empty_folder_is_an_error(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert main(["pretrain", str(tmp_path / "empty"), "--out", str(tmp_path / "run"), *TINY]) == 2
    assert f"error: {tmp_path / 'empty'} holds no volumes" in capsys.readouterr().err
    events = (tmp_path / "run" / "events.jsonl").read_text().splitlines()
    assert json.loads(events[-1])["event"] == "error"


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_asking_for_cuda_without_cuda_says_so(unlabelled_dir, tmp_path, capsys):
    assert main(["pretrain", str(unlabelled_dir), "--out", str(tmp_path / "run"), *TINY, "--device", "cuda"]) == 2
    error = capsys.readouterr().err
    assert "--device cuda was requested, but this PyTorch sees no CUDA GPU" in error and "--device cpu" in error


def test_mixed_precision_choice_on_this_cpu(monkeypatch):
    monkeypatch.delenv("SSLSEG_AMP", raising=False)
    cpu = torch.device("cpu")
    assert resolve_amp("auto", cpu) == "off"  # training on a CPU: float32 on every CPU class (see amp.py)
    assert resolve_amp("off", cpu) == "off"
    with pytest.raises(SSLSegError, match="fp16 needs a CUDA GPU"):
        resolve_amp("fp16", cpu)


def test_help_explains_every_option(capsys):
    with pytest.raises(SystemExit):
        main(["pretrain", "--help"])
    text = capsys.readouterr().out
    for option in ("--method", "--preset", "--epochs", "--max-steps", "--batch-size", "--patch-size", "--lr",
                   "--temperature", "--device", "--amp", "--seed", "--resume", "--overwrite", "--events",
                   "--val-every", "--workers"):
        assert option in text, option


@pytest.mark.parametrize("command, config_class, required", [("pretrain", PretrainConfig, []),
                                                             ("finetune", FinetuneConfig, ["--encoder", "none"])])
def test_max_steps_alone_is_not_cut_short_by_the_default_epochs(command, config_class, required, capsys):
    """Issue 14: with one step per epoch, `--max-steps 350` stopped at 100 steps (--epochs defaulted to 100). The
    explicit bound wins; without either, 100 epochs; with both, whichever ends first (and --help says so)."""
    def planned(*options, steps_per_epoch=1):
        args = build_parser().parse_args([command, "DATA", "--out", "OUT", *required, *options])
        config = config_from_args(config_class, args)
        loop = LoopConfig(epochs=config.epochs, max_steps=config.max_steps)
        return planned_epochs(loop, steps_per_epoch), planned_steps(loop, steps_per_epoch)

    assert planned("--max-steps", "350") == (350, 350)
    assert planned("--max-steps", "350", steps_per_epoch=4) == (88, 350)
    assert planned() == (100, 100)
    assert planned("--epochs", "10", "--max-steps", "350") == (10, 10)
    assert planned("--epochs", "200", "--max-steps", "150") == (200, 150)
    with pytest.raises(SystemExit):
        main([command, "--help"])
    assert "as many as --max-steps needs" in " ".join(capsys.readouterr().out.split())


def test_epochs_that_end_before_max_steps_are_said(unlabelled_dir, pretrain_cache, tmp_path, caplog):
    summary = run_tiny(unlabelled_dir, tmp_path / "run", pretrain_cache, epochs=1, max_steps=5, val_every=0)
    assert summary["steps"] == 4  # 4 steps per epoch
    assert any("--epochs 1 ends the run after 4 steps, before --max-steps 5" in r.getMessage() for r in caplog.records)


def test_preview_views_writes_the_patch_and_its_views(unlabelled_dir, tmp_path, capsys):
    assert main(["preview-views", str(unlabelled_dir), "--out", str(tmp_path), "--preset", "tiny",
                 "--patch-size", "32", "--spacing", "4"]) == 0
    images = {name: nib.load(tmp_path / f"case_000_{name}.nii.gz") for name in ("original", "view1", "view2")}
    assert {img.shape for img in images.values()} == {(32, 32, 32)}
    np.testing.assert_allclose(images["view1"].affine, images["original"].affine)
    original = images["original"].get_fdata()
    assert 0 <= original.min() and original.max() <= 1 and original.std() > 0.01
    assert not np.array_equal(original, images["view1"].get_fdata())
    assert (tmp_path / "case_000_views.png").read_bytes()[:4] == b"\x89PNG"


def test_preview_views_of_a_multi_crop_method_writes_views_of_two_sizes(unlabelled_dir, tmp_path, capsys):
    assert main(["preview-views", str(unlabelled_dir), "--out", str(tmp_path), "--preset", "tiny",
                 "--patch-size", "32", "--spacing", "4", "--method", "swav"]) == 0
    original = nib.load(tmp_path / "case_000_original.nii.gz")
    views = {name: nib.load(tmp_path / f"case_000_{name}.nii.gz") for name in ("global1", "global2", "local1")}
    assert views["global1"].shape == (32, 32, 32) and views["local1"].shape == (16, 16, 16)
    np.testing.assert_allclose(views["global1"].affine, original.affine)
    # the local view spans the patch's box: its corners' voxel edges land on the patch's
    corner = np.array([-0.5, -0.5, -0.5, 1.0])
    for affine_l, affine_o, far in [(views["local1"].affine, original.affine, 15.5)]:
        np.testing.assert_allclose(affine_l @ corner, affine_o @ corner, atol=1e-6)
        np.testing.assert_allclose(affine_l @ [far, far, far, 1], affine_o @ [31.5, 31.5, 31.5, 1], atol=1e-6)
    assert (tmp_path / "case_000_views.png").read_bytes()[:4] == b"\x89PNG"


def test_preview_views_takes_the_method_options(unlabelled_dir, tmp_path, capsys):
    """The preview shows what a run with these options would train on (an exact turn of the patch for the rotation
    task: the same voxel values, rearranged), and refuses an option the method does not have, by name."""
    common = ["preview-views", str(unlabelled_dir), "--preset", "tiny", "--patch-size", "32", "--spacing", "4"]
    assert main([*common, "--out", str(tmp_path / "bad"), "--method", "simclr", "--method-option", "momentum=0.9"]) == 2
    assert "simclr has no option momentum" in capsys.readouterr().err
    assert main([*common, "--out", str(tmp_path), "--method", "rotation", "--method-option", "rotations=cube",
                 "--seed", "3"]) == 0
    original = nib.load(tmp_path / "case_000_original.nii.gz").get_fdata()
    view = nib.load(tmp_path / "case_000_view.nii.gz").get_fdata()
    np.testing.assert_array_equal(np.sort(view.ravel()), np.sort(original.ravel()))
    assert not np.array_equal(view, original)


def test_a_run_folder_inside_the_data_folder_is_refused(unlabelled_dir, capsys):
    assert main(["pretrain", str(unlabelled_dir), "--out", str(unlabelled_dir / "run"), *TINY]) == 2
    assert "is inside DATA_DIR" in capsys.readouterr().err
    assert not (unlabelled_dir / "run").exists()
