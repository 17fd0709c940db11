"""DDP for the joint-embedding methods: two CPU processes (gloo) of batch 2 train like one process of batch 4.

Their losses are taken on the gathered global batch and their heads have no batch statistics (LayerNorm), so the
gradient is the global batch's; only summation order differs (tolerances as in test_pretrain_ddp.py)."""

import os
import subprocess
import sys

import pytest
import torch
from pretrain_support import load_state, run_tiny
from test_pretrain_ddp import free_port


#: Barlow Twins and VICReg are left out: their loss is defined on the global batch too (tested with a 2-way gather in
#: test_ssl_losses.py), but their validation loss needs 2 patches and this test's single validation volume gives each
#: process a shard of one, which is not scored, so the two runs' validation losses differ by design.
#: SwAV: the projections are gathered and the Sinkhorn codes and the cross-entropy are computed on the global batch in
#: every process; the prototypes are normalised identically in every process after each step, and the queue is filled
#: with the gathered projections, so every process holds the same one. Run with the prototypes learning from the
#: first step and a queue of one global batch, in use from step 2 on, so both paths are compared.
OPTIONS = {"swav": {"freeze_prototypes_steps": "0", "queue_size": "4", "queue_start_step": "0"}}


@pytest.mark.parametrize("name", ["simclr", "byol", "simsiam", "moco-v3", "swav"])
def test_two_gloo_processes_match_one_process(name, unlabelled_dir, pretrain_cache, tmp_path):
    options = OPTIONS.get(name, {})
    common = ["--preset", "tiny", "--patch-size", "32", "--spacing", "4", "--workers", "0", "--epochs", "2",
              "--amp", "off", "--cache", str(pretrain_cache), "--events", os.devnull, "--method", name,
              *[a for k, v in options.items() for a in ("--method-option", f"{k}={v}")]]
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-addr", "127.0.0.1",
               "--master-port", str(free_port()), "-m", "sslseg", "pretrain", str(unlabelled_dir),
               "--out", str(tmp_path / "two"), "--batch-size", "2", *common]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    run_tiny(unlabelled_dir, tmp_path / "one", pretrain_cache, method=name, batch_size=4, epochs=2,
             method_options=options)
    one, two = load_state(tmp_path / "one"), load_state(tmp_path / "two")
    assert one["state"]["step"] == two["state"]["step"] == 4
    losses_one = torch.tensor([v for _, v in one["state"]["step_losses"]])
    losses_two = torch.tensor([v for _, v in two["state"]["step_losses"]])
    torch.testing.assert_close(losses_two, losses_one, rtol=1e-5, atol=0)
    worst = max((one["model"][k] - two["model"][k]).abs().max().item() for k in one["model"])
    assert worst < 1e-4, worst
    if name == "swav":  # the queue was full, so in use, from step 2 on
        assert int(one["model"]["queue_filled"]) == int(two["model"]["queue_filled"]) == 4
