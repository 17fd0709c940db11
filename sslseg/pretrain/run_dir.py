"""RUN_DIR: the files a pretraining run owns there, and the refusal to mix two runs in one folder."""

from __future__ import annotations

import shutil
from pathlib import Path

from sslseg.errors import SSLSegError

CHECKPOINT = "checkpoint.pt"
EVENTS = "events.jsonl"
STATS = "train_stats.json"
LOSS_CURVE = "loss_curve.png"
CACHE = "cache"
#: Files whose presence means the folder holds a run.
RUN_FILES = (CHECKPOINT, "encoder.safetensors", "encoder.json", EVENTS, STATS, LOSS_CURVE)


def prepare_run_dir(out_dir: str | Path, resume: bool, overwrite: bool) -> Path:
    """Check (and create) RUN_DIR. A folder holding another run is refused unless ``resume`` or ``overwrite``;
    ``overwrite`` removes that run's files (the preprocessed cache is kept: its entries are keyed by content)."""
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise SSLSegError(f"{out} is a file, not a folder", "give --out a folder for the run's outputs")
    existing = [name for name in RUN_FILES if (out / name).exists()]
    if resume:
        if not (out / CHECKPOINT).is_file():
            raise SSLSegError(f"there is no run to resume in {out} (no {CHECKPOINT})",
                              "start a new run without --resume")
    elif existing:
        if not overwrite:
            raise SSLSegError(f"{out} already holds a run ({', '.join(existing)})",
                              "pass --resume to continue it, --overwrite to replace it, or choose another --out")
        for name in existing:
            path = out / name
            shutil.rmtree(path) if path.is_dir() else path.unlink()
    out.mkdir(parents=True, exist_ok=True)
    return out
