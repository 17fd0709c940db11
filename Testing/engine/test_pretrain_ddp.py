"""DDP: two CPU processes (gloo, launched by torchrun) of batch 2 train like one process of batch 4.

Each process trains its own half of every global batch; the loss (L1 and contrastive terms) is computed on the
global batch gathered from both, so the gradient is the global batch's. What differs is only floating-point
summation order (two half-batch forward passes, gradient all-reduce): we measured loss differences of ~1e-7
relative and weight differences of ~1e-6 after 6 AdamW steps at lr 1e-4. Tolerances: losses 1e-5 relative, weights
1e-4 absolute (one AdamW step moves a weight by at most about lr, so rounding can never account for more).
"""

import os
import socket
import subprocess
import sys

import torch
from pretrain_support import load_state, run_tiny


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_gloo_processes_match_one_process_with_the_same_global_batch(unlabelled_dir, pretrain_cache, tmp_path):
    common = ["--preset", "tiny", "--patch-size", "32", "--spacing", "4", "--workers", "0", "--epochs", "3",
              "--amp", "off", "--cache", str(pretrain_cache), "--events", os.devnull]
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-addr", "127.0.0.1",
               "--master-port", str(free_port()), "-m", "sslseg", "pretrain", str(unlabelled_dir),
               "--out", str(tmp_path / "two"), "--batch-size", "2", *common]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    run_tiny(unlabelled_dir, tmp_path / "one", pretrain_cache, batch_size=4, epochs=3)

    one, two = load_state(tmp_path / "one"), load_state(tmp_path / "two")
    assert two["world_size"] == 2 and one["world_size"] == 1
    assert one["state"]["step"] == two["state"]["step"] == 6
    losses_one = torch.tensor([v for _, v in one["state"]["step_losses"]])
    losses_two = torch.tensor([v for _, v in two["state"]["step_losses"]])
    torch.testing.assert_close(losses_two, losses_one, rtol=1e-5, atol=0)
    worst = max((one["model"][k] - two["model"][k]).abs().max().item() for k in one["model"])
    assert worst < 1e-4, worst
    val_one, val_two = one["state"]["epochs"][-1]["val_loss"], two["state"]["epochs"][-1]["val_loss"]
    assert abs(val_one - val_two) < 1e-5 * val_one
