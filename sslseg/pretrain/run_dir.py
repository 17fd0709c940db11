"""RUN_DIR: the files a pretraining run owns there (the folder rules are :mod:`sslseg.training.run_dir`'s)."""

from __future__ import annotations

from pathlib import Path

from sslseg.pretrain import encoders
from sslseg.training import run_dir as common
from sslseg.training.run_dir import CACHE, CHECKPOINT, EVENTS, LOSS_CURVE, STATS

__all__ = ["CACHE", "CHECKPOINT", "EVENTS", "LOSS_CURVE", "STATS", "RUN_FILES", "prepare_run_dir"]

#: Files whose presence means the folder holds a run.
RUN_FILES = (*common.COMMON_RUN_FILES, *encoders.FILES)


def prepare_run_dir(out_dir: str | Path, resume: bool, overwrite: bool) -> Path:
    """See :func:`sslseg.training.run_dir.prepare_run_dir`."""
    return common.prepare_run_dir(out_dir, resume, overwrite, RUN_FILES)
