"""The output folder of a training run (pretraining RUN_DIR, fine-tuning MODEL_DIR): the files every run owns
there, and the refusal to mix two runs in one folder."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

from sslseg.errors import SSLSegError

log = logging.getLogger(__name__)

CHECKPOINT = "checkpoint.pt"
EVENTS = "events.jsonl"
STATS = "train_stats.json"
LOSS_CURVE = "loss_curve.png"
CACHE = "cache"
#: Files every run writes; each kind of run adds its own results (encoder, model package, more curves).
COMMON_RUN_FILES = (CHECKPOINT, EVENTS, STATS, LOSS_CURVE)
#: What a run that ended before its first checkpoint leaves behind: a new start replaces these, since there is
#: nothing to resume (refusing would send the user from "pass --resume" to "no run to resume" and back).
UNFINISHED_LEFTOVERS = (EVENTS, STATS)
#: ``train_stats.json`` statuses of a run that has ended (a run still starting or running says otherwise).
ENDED = ("failed", "stopped")


def prepare_run_dir(out_dir: str | Path, resume: bool, overwrite: bool, run_files: tuple[str, ...]) -> Path:
    """Check (and create) the run folder. A folder holding another run (any of ``run_files``) is refused unless
    ``resume`` or ``overwrite``; ``overwrite`` removes those files (the preprocessed cache is kept: its entries are
    keyed by content). A run that failed or was stopped before its first checkpoint has nothing to resume: a new
    start replaces its events and status, with a warning. Files that are not ``run_files`` are never removed."""
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise SSLSegError(f"{out} is a file, not a folder", "give --out a folder for the run's outputs")
    existing = [name for name in run_files if (out / name).exists()]
    if resume:
        if not (out / CHECKPOINT).is_file():
            raise SSLSegError(f"there is no run to resume in {out} (no {CHECKPOINT})", _new_start_hint(out, existing))
    elif existing:
        if not overwrite and not _ended_before_checkpoint(out, existing):
            raise SSLSegError(f"{out} already holds a run ({', '.join(existing)})", _refusal_hint(out))
        if not overwrite:
            log.warning("%s holds a run that ended before its first checkpoint (nothing to resume): replacing its "
                        "%s", out, " and ".join(existing))
        for name in existing:
            path = out / name
            shutil.rmtree(path) if path.is_dir() else path.unlink()
    out.mkdir(parents=True, exist_ok=True)
    return out


def _ended_before_checkpoint(out: Path, existing: list[str]) -> bool:
    """Whether the run files in ``out`` are only the events and status of a run that failed or was stopped before it
    wrote a checkpoint (or any result)."""
    if not set(existing) <= set(UNFINISHED_LEFTOVERS) or STATS not in existing:
        return False
    try:
        stats = json.loads((out / STATS).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return False  # unreadable: not ours to judge, so not ours to delete
    return isinstance(stats, dict) and stats.get("status") in ENDED


def _refusal_hint(out: Path) -> str:
    """What to do about a folder that holds a run: resume it only where there is a checkpoint to resume."""
    if (out / CHECKPOINT).is_file():
        return "pass --resume to continue it, --overwrite to replace it, or choose another --out"
    return f"it has no {CHECKPOINT} to resume: pass --overwrite to replace it, or choose another --out"


def _new_start_hint(out: Path, existing: list[str]) -> str:
    """How to start anew where there is nothing to resume: a plain start, unless the folder's files would refuse it."""
    if existing and not _ended_before_checkpoint(out, existing):
        return "start it again with --overwrite instead of --resume, or choose another --out"
    return "start a new run without --resume"
