"""DDP: two CPU processes (gloo, torchrun) of one volume per step train like one process of two volumes per step.

DiceCE is a mean over equally sized crops (cross-entropy over voxels, Dice per crop and class), so DDP's gradient
average over the two halves is the global batch's gradient; what differs is floating-point summation order. The
logged step loss is rank 0's half (so only the weights and the validation Dice are compared). Each process scores
its share of the validation cases and the Dice sums are all-reduced. Tolerances as for pretraining: weights 1e-4
absolute after a few AdamW steps at lr 1e-4; Dice 1e-3 (an argmax can flip on a boundary voxel).
"""

import os
import socket
import subprocess
import sys

import pytest
import torch


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_two_gloo_processes_match_one_process_with_the_same_global_batch(labelled_dir, tmp_path, run_finetune):
    common = ["--encoder", "none", "--preset", "tiny", "--patch-size", "32", "--feature-size", "8",
              "--crops-per-volume", "2", "--spacing", "6", "6", "6", "--workers", "0", "--epochs", "2",
              "--val-fraction", "0.34", "--amp", "off", "--cache", str(tmp_path / "cache"), "--events", os.devnull]
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-addr", "127.0.0.1",
               "--master-port", str(free_port()), "-m", "sslseg", "finetune", str(labelled_dir),
               "--out", str(tmp_path / "two"), "--batch-size", "1", *common]
    result = subprocess.run(command, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    run_finetune(labelled_dir, tmp_path / "one", batch_size=2, epochs=2, val_fraction=0.34,
                 cache_dir=str(tmp_path / "cache"))

    one, two = (torch.load(tmp_path / name / "checkpoint.pt", weights_only=True) for name in ("one", "two"))
    assert two["world_size"] == 2 and one["world_size"] == 1
    assert one["state"]["step"] == two["state"]["step"] == 4  # 4 training cases, global batch 2, 2 epochs
    worst = max((one["model"][k] - two["model"][k]).abs().max().item() for k in one["model"])
    assert worst < 1e-4, worst
    for a, b in zip(one["state"]["epochs"], two["state"]["epochs"]):
        assert abs(a["val_dice"] - b["val_dice"]) < 1e-3
