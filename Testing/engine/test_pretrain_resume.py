"""Kill-and-resume: a run stopped after an epoch, or in the middle of one, and resumed ends bit-identical (CPU) to
the uninterrupted run with the same seed. Bit-identity holds because every random draw of the data path is a
function of (seed, epoch, sample) and the checkpoint restores every tensor and counter exactly."""

import os
import signal
import subprocess
import sys
import time

import pytest
import torch
from pretrain_support import load_state, run_tiny

from sslseg.errors import SSLSegError


def assert_same_weights(run_a, run_b):
    a, b = load_state(run_a), load_state(run_b)
    assert a["state"]["step"] == b["state"]["step"]
    assert a["model"].keys() == b["model"].keys()
    different = [k for k in a["model"] if not torch.equal(a["model"][k], b["model"][k])]
    assert not different, f"{len(different)} tensors differ, e.g. {different[0]}"
    assert a["state"]["step_losses"] == b["state"]["step_losses"]
    assert a["state"]["epochs"] == b["state"]["epochs"]


@pytest.fixture(scope="module")
def uninterrupted(unlabelled_dir, pretrain_cache, tmp_path_factory):
    folder = tmp_path_factory.mktemp("uninterrupted") / "run"
    run_tiny(unlabelled_dir, folder, pretrain_cache, epochs=3)
    return folder


def test_resume_after_an_epoch_is_bit_identical(unlabelled_dir, pretrain_cache, tmp_path, uninterrupted):
    run_tiny(unlabelled_dir, tmp_path / "run", pretrain_cache, epochs=2)
    run_tiny(unlabelled_dir, tmp_path / "run", pretrain_cache, epochs=3, resume=True)
    assert_same_weights(uninterrupted, tmp_path / "run")


def test_resume_in_the_middle_of_an_epoch_is_bit_identical(unlabelled_dir, pretrain_cache, tmp_path, uninterrupted):
    run_tiny(unlabelled_dir, tmp_path / "run", pretrain_cache, epochs=3, max_steps=5)  # 4 steps per epoch
    assert load_state(tmp_path / "run")["state"]["step_in_epoch"] == 1
    run_tiny(unlabelled_dir, tmp_path / "run", pretrain_cache, epochs=3, resume=True)
    assert_same_weights(uninterrupted, tmp_path / "run")


def test_data_loading_workers_do_not_change_the_run(unlabelled_dir, pretrain_cache, tmp_path, uninterrupted):
    run_tiny(unlabelled_dir, tmp_path / "run", pretrain_cache, epochs=3, workers=2)
    assert_same_weights(uninterrupted, tmp_path / "run")


def test_resume_with_other_settings_is_refused(unlabelled_dir, pretrain_cache, tmp_path):
    run_tiny(unlabelled_dir, tmp_path / "run", pretrain_cache, epochs=1, max_steps=1)
    with pytest.raises(SSLSegError, match=r"other settings \(lr 0.0001 -> 0.001\)"):
        run_tiny(unlabelled_dir, tmp_path / "run", pretrain_cache, epochs=2, lr=1e-3, resume=True)


def test_resume_without_a_checkpoint_is_refused(unlabelled_dir, tmp_path):
    with pytest.raises(SSLSegError, match="no run to resume"):
        run_tiny(unlabelled_dir, tmp_path / "run", epochs=1, resume=True)


def test_the_checkpoint_holds_the_full_state_and_loads_without_unpickling_code(uninterrupted):
    state = load_state(uninterrupted)  # weights_only=True
    assert {"model", "optimizer", "scheduler", "scaler", "state", "rng", "config", "data"} <= set(state)
    assert {"python", "numpy", "torch"} <= set(state["rng"])
    assert state["optimizer"]["state"], "AdamW moments are saved"
    assert state["state"]["epoch"] == 3 and state["state"]["step"] == 12


@pytest.mark.slow
def test_a_killed_process_resumes_to_the_same_weights(unlabelled_dir, pretrain_cache, tmp_path, uninterrupted):
    """SIGKILL at a random moment after the first checkpoint, then --resume."""
    args = [sys.executable, "-m", "sslseg", "pretrain", str(unlabelled_dir), "--out", str(tmp_path / "run"),
            "--preset", "tiny", "--patch-size", "32", "--spacing", "4", "--batch-size", "2", "--workers", "0",
            "--checkpoint-every", "1", "--epochs", "3", "--cache", str(pretrain_cache), "--events", os.devnull]
    process = subprocess.Popen(args)
    while not (tmp_path / "run" / "checkpoint.pt").exists() and process.poll() is None:
        time.sleep(0.05)
    time.sleep(0.3)
    process.send_signal(signal.SIGKILL)
    process.wait()
    subprocess.run(args + ["--resume"], check=True)
    assert_same_weights(uninterrupted, tmp_path / "run")
