"""Helpers for the pretraining tests: a tiny, fast configuration and checkpoint comparison."""

from __future__ import annotations

from pathlib import Path

import torch

from sslseg.pretrain.config import PretrainConfig
from sslseg.pretrain.run import pretrain

#: Tiny preset on 32^3 patches of 4 mm volumes: about 0.05 s per step on 2 CPU cores.
TINY = dict(preset="tiny", patch_size=32, spacing=4.0, batch_size=2, workers=0, checkpoint_every=0, events=None,
            amp="off")


def tiny_config(data_dir: Path, out_dir: Path, cache_dir: Path | None = None, **overrides) -> PretrainConfig:
    settings = {**TINY, "cache_dir": str(cache_dir) if cache_dir else None, **overrides}
    return PretrainConfig(data_dir=str(data_dir), out_dir=str(out_dir), **settings)


def run_tiny(data_dir: Path, out_dir: Path, cache_dir: Path | None = None, **overrides) -> dict:
    return pretrain(tiny_config(data_dir, out_dir, cache_dir, **overrides))


def load_state(run_dir: Path) -> dict:
    """The checkpoint of a run, read the safe way (no code unpickled)."""
    return torch.load(Path(run_dir) / "checkpoint.pt", map_location="cpu", weights_only=True)


def step_losses(run_dir: Path) -> list[float]:
    return [loss for _, loss in load_state(run_dir)["state"]["step_losses"]]
