"""The output folder of a training run (pretraining RUN_DIR, fine-tuning MODEL_DIR): the files every run owns
there, and the refusal to mix two runs in one folder."""

from __future__ import annotations

import shutil
from pathlib import Path

from sslseg.errors import SSLSegError

CHECKPOINT = "checkpoint.pt"
EVENTS = "events.jsonl"
STATS = "train_stats.json"
LOSS_CURVE = "loss_curve.png"
CACHE = "cache"
#: Files every run writes; each kind of run adds its own results (encoder, model package, more curves).
COMMON_RUN_FILES = (CHECKPOINT, EVENTS, STATS, LOSS_CURVE)


def prepare_run_dir(out_dir: str | Path, resume: bool, overwrite: bool, run_files: tuple[str, ...]) -> Path:
    """Check (and create) the run folder. A folder holding another run (any of ``run_files``) is refused unless
    ``resume`` or ``overwrite``; ``overwrite`` removes those files (the preprocessed cache is kept: its entries are
    keyed by content)."""
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise SSLSegError(f"{out} is a file, not a folder", "give --out a folder for the run's outputs")
    existing = [name for name in run_files if (out / name).exists()]
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
