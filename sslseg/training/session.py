"""What every training command does around its loop, so pretraining and fine-tuning share it: the run folder,
events and ``train_stats.json``, errors and stop signals turned into events (with the command that resumes the run),
DDP wrapping, and the checkpoint's common part with the checks a resumed run must pass.
"""

from __future__ import annotations

import os
import shlex
import sys
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Callable

import torch

from sslseg.errors import SSLSegError
from sslseg.training import distributed
from sslseg.training.checkpoint import capture_rng, load_checkpoint, restore_rng
from sslseg.training.device import resolve_device
from sslseg.training.events import EventLog, TrainStats
from sslseg.training.loop import LoopConfig, TrainParts, TrainState, train
from sslseg.training.oom import friendly_out_of_memory, is_out_of_memory
from sslseg.training.run_dir import CHECKPOINT, EVENTS, STATS, prepare_run_dir
from sslseg.training.stop_signal import StopSignal, TrainingStopped, report_stop


@dataclass
class SessionOptions:
    """How to open a run.

    Attributes:
        out_dir: the run folder; run_files: the files whose presence means it holds a run.
        device, resume, overwrite, events: the CLI options of the same names.
        oom_hint: what to suggest when memory runs out outside the training steps.
        stats: first fields of ``train_stats.json`` (besides ``run_dir``).
        resume_command: ``(resumable) -> str``, the shell command that continues the run (see
            :func:`resume_command`), reported when a signal stops it.
    """

    out_dir: str
    run_files: tuple[str, ...]
    device: str = "auto"
    resume: bool = False
    overwrite: bool = False
    events: str | None = None
    oom_hint: str = ""
    stats: dict = field(default_factory=dict)
    resume_command: Callable[[bool], str] = lambda resumable: ""


@dataclass
class Session:
    """An open run: its folder, device, process group and reporters (reporters do nothing off rank 0)."""

    out: Path
    device: torch.device
    dist: distributed.DistContext
    events: EventLog
    stats: TrainStats


def event_sinks(out: Path, events: str | None, resume: bool) -> list:
    """``out/events.jsonl``, plus stdout or the ``--events`` file (emptied first unless resuming)."""
    sinks: list = [out / EVENTS]
    if events == "-" or (events is None and not sys.stdout.isatty()):
        sinks.append(sys.stdout)
    elif events and Path(events).resolve() != (out / EVENTS).resolve():
        if not resume:
            Path(events).parent.mkdir(parents=True, exist_ok=True)
            Path(events).write_text("", encoding="utf-8")
        sinks.append(Path(events))
    return sinks


def run_session(options: SessionOptions, body: Callable[[Session], dict]) -> dict:
    """Open the run (device, process group, folder, reporters), call ``body``, and report how it ended: an
    ``error`` event and ``status: failed`` for errors (out of memory with a hint), ``stopped`` for Ctrl-C."""
    dist = distributed.detect()
    device = resolve_device(options.device, dist.local_rank, dist.enabled)
    distributed.init_process_group(dist, device)
    finished = False
    try:
        if dist.is_main:
            prepare_run_dir(options.out_dir, options.resume, options.overwrite, options.run_files)
        distributed.barrier(dist)
        out = Path(options.out_dir)
        events = EventLog(event_sinks(out, options.events, options.resume) if dist.is_main else [],
                          enabled=dist.is_main)
        stats = TrainStats(out / STATS, enabled=dist.is_main, initial={"run_dir": str(out), **options.stats})
        try:
            with StopSignal(deferred=False):  # outside the training loop (preprocessing, set-up): stop at once
                summary = body(Session(out, device, dist, events, stats))
            finished = True
            return summary
        except TrainingStopped as stop:
            checkpoint = out / CHECKPOINT
            report_stop(stop, events, stats, checkpoint, options.resume_command(checkpoint.is_file()), dist.is_main)
            raise
        except KeyboardInterrupt:
            events.emit("stopped", message="interrupted; continue with --resume")
            stats.update(force=True, status="stopped")
            raise
        except Exception as error:
            if is_out_of_memory(error):
                error = SSLSegError(f"out of memory ({error})".splitlines()[0], options.oom_hint)
            message, hint = (error.message, error.hint) if isinstance(error, SSLSegError) else (str(error), "")
            events.error(message, hint)
            stats.update(force=True, status="failed", error=message, hint=hint)
            raise error
        finally:
            events.close()
    finally:
        distributed.shutdown(dist, finished)


def train_reporting(session: Session, parts: TrainParts, state: TrainState, loop_config: LoopConfig, start: dict,
                    patch_size: int, batch_size: int, on_stop: Callable[[TrainState], None]) -> TrainState:
    """The ``start`` event and status, then the loop; out of memory becomes an actionable error, and on a stop signal
    ``on_stop(state)`` (rank 0) brings the outputs up to date before the stop is reported."""
    session.events.emit("start", **start)
    session.stats.update(force=True, status="running", **start)
    with friendly_out_of_memory(patch_size, batch_size, session.device):
        try:
            return train(parts, state, loop_config, session.dist, session.events, session.stats)
        except TrainingStopped:
            if session.dist.is_main:
                on_stop(state)
            raise


def report_done(session: Session, summary: dict) -> dict:
    """The ``done`` event and status; returns ``summary``."""
    session.events.emit("done", **summary)
    session.stats.update(force=True, status="done", **summary)
    return summary


def resume_command(command: str, config, resumable: bool = True, always: tuple[str, ...] = (),
                   options: dict | None = None, not_options: tuple[str, ...] = ()) -> str:
    """The shell command that continues a run (``--resume``) or, with no checkpoint yet, starts it again
    (``--overwrite``): ``sslseg COMMAND DATA --out OUT`` plus every setting of the config dataclass that differs from
    its default (and those in ``always``), so a resume is not refused for other settings.

    Args:
        config: a dataclass with ``data_dir`` and ``out_dir`` (the other fields are options ``--field-name``).
        options: field -> option where the option is named otherwise (``cache_dir`` is ``--cache``).
        not_options: fields that have no option.
    """
    defaults = type(config)(data_dir="", out_dir="")
    names = {"cache_dir": "--cache", **(options or {})}
    program = ["sslseg"] if Path(sys.argv[0]).name == "sslseg" else [sys.executable, "-m", "sslseg"]
    words = [*program, command, os.path.abspath(config.data_dir), "--out", os.path.abspath(config.out_dir)]
    for item in fields(config):
        value = getattr(config, item.name)
        if item.name in ("data_dir", "out_dir", "resume", "overwrite", *not_options) or value is None or (
                value == getattr(defaults, item.name) and item.name not in always):
            continue
        option = names.get(item.name, "--" + item.name.replace("_", "-"))
        words += [option, *(str(v) for v in value)] if isinstance(value, (list, tuple)) else [option, str(value)]
    words.append("--resume" if resumable else "--overwrite")
    return " ".join(shlex.quote(word) for word in words)


def wrap_ddp(model, device):
    """``DistributedDataParallel`` around ``model`` (on its GPU, or on the CPU with gloo)."""
    import warnings

    # transposed-convolution gradients come in another memory layout than DDP's buckets: slower, not wrong
    warnings.filterwarnings("ignore", message="Grad strides do not match bucket view strides")
    return torch.nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)


def checkpoint_content(model, optimizer, scheduler, precision, state: TrainState, dist, identity: dict,
                       data: dict, **extra) -> dict:
    """What every checkpoint holds: weights (unwrapped from DDP), optimiser, scheduler, AMP scaler, counters and
    history, RNG states, the settings a resume must share (``identity``) and the data fingerprint
    (``{"train": [...], ...}``); ``extra`` adds the run's own fields."""
    bare = getattr(model, "module", model)
    return {"model": bare.state_dict(), "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
            "scaler": precision.scaler.state_dict(), "state": state.to_dict(), "rng": capture_rng(),
            "config": identity, "world_size": dist.world_size, "data": data, **extra}


def restore_checkpoint(path: Path, identity: dict, data: dict, dist, model, optimizer, scheduler, precision,
                       what: str = "volumes") -> TrainState:
    """Load a checkpoint written with :func:`checkpoint_content` into the (unwrapped) model and the optimiser,
    scheduler, scaler and RNGs; refused, saying why, when settings, process count or training data changed."""
    checkpoint = load_checkpoint(path)
    saved = checkpoint["config"]
    changed = [k for k in (*identity, *(k for k in saved if k not in identity)) if saved.get(k) != identity.get(k)]
    if changed:
        described = ", ".join(f"{k} {saved.get(k)!r} -> {identity.get(k)!r}" for k in changed)
        raise SSLSegError(f"cannot resume: the run was started with other settings ({described})",
                          "resume with the original settings, or start a new run (--overwrite or another --out)")
    if checkpoint["world_size"] != dist.world_size:
        raise SSLSegError(f"cannot resume: the run used {checkpoint['world_size']} processes, this one "
                          f"{dist.world_size}", "resume with the same number of processes (global batch)")
    if checkpoint["data"]["train"] != data["train"]:
        raise SSLSegError(f"cannot resume: the training {what} changed since the run started",
                          "restore the original data folder, or start a new run")
    model.load_state_dict(checkpoint["model"])
    optimizer.load_state_dict(checkpoint["optimizer"])
    scheduler.load_state_dict(checkpoint["scheduler"])
    precision.scaler.load_state_dict(checkpoint["scaler"])
    restore_rng(checkpoint["rng"])
    return TrainState.from_dict(checkpoint["state"])
