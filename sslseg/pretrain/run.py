"""``sslseg pretrain``: data -> cache -> SSL method + ViT -> training loop -> encoder files, all in RUN_DIR.

Outputs in RUN_DIR: ``encoder.safetensors`` + ``encoder.json`` (rewritten at every epoch end, so a killed run still
leaves its last encoder), ``checkpoint.pt`` (full training state), ``events.jsonl``, ``train_stats.json``,
``loss_curve.png`` and ``cache/`` (preprocessed volumes). Under ``torchrun`` every process trains its share of each
global batch and rank 0 alone writes.

SIGTERM (a GUI's Cancel) or SIGINT (Ctrl-C) stops a run cleanly: the step under way is finished and checkpointed,
``train_stats.json`` says ``stopped``, a ``stopped`` event carries the command that resumes the run (also printed on
stderr), and the process exits with 143 / 130 (see :mod:`sslseg.training.stop_signal`).
"""

from __future__ import annotations

import logging
import os
import shlex
import sys
import time
from dataclasses import dataclass, fields
from pathlib import Path

import torch

from sslseg.data.cache import build_cache
from sslseg.data.dataset import PatchViewsDataset
from sslseg.data.fingerprint import stable_key
from sslseg.data.loader import default_workers, make_loader
from sslseg.data.preprocess import PreprocessSettings
from sslseg.data.sampler import EpochBatches, ShardedItems
from sslseg.errors import SSLSegError
from sslseg.io.scan import find_volumes
from sslseg.models.encoder_io import save_encoder
from sslseg.models.presets import get_preset
from sslseg.pretrain import run_dir
from sslseg.pretrain.card import encoder_card
from sslseg.pretrain.config import PretrainConfig
from sslseg.ssl import create_method
from sslseg.training import distributed
from sslseg.training.amp import Precision, resolve_amp
from sslseg.training.checkpoint import capture_rng, load_checkpoint, restore_rng, save_checkpoint
from sslseg.training.device import resolve_device
from sslseg.training.events import EventLog, TrainStats
from sslseg.training.loop import LoopConfig, TrainParts, TrainState, planned_steps, train
from sslseg.training.oom import friendly_out_of_memory, is_out_of_memory
from sslseg.training.plots import plot_loss_curve
from sslseg.training.seeding import seed_everything
from sslseg.training.stop_signal import StopSignal, TrainingStopped, report_stop

log = logging.getLogger(__name__)

#: The loss-curve PNG is redrawn at an epoch end at most this often (and always at the end of the run or a stop):
#: drawing it costs about 0.5 s, a quarter of a tiny-preset epoch of 16 patches on a 2-core CPU.
PLOT_EVERY_S = 30.0


@dataclass
class Data:
    """The cached volumes split into training and validation, and what was skipped."""

    train: list
    val: list
    skipped: list

    def fingerprint(self) -> dict:
        return {"train": [e.fingerprint() for e in self.train], "val": [e.fingerprint() for e in self.val],
                "skipped": [{"source": Path(f.source).name, "reason": f.message} for f in self.skipped]}


def preprocess_settings(config: PretrainConfig) -> PreprocessSettings:
    return PreprocessSettings(spacing_mm=config.spacing, ct_window=tuple(config.ct_window),
                              mr_percentiles=tuple(config.mr_percentiles), modality=config.modality)


def split_volumes(entries: list, fraction: float, seed: int) -> tuple[list, list]:
    """(train, val): ``round(fraction * n)`` volumes held out (at least 1 when fraction > 0 and n >= 2, never all),
    chosen by a seeded hash of their names, so adding volumes leaves the others' assignment mostly unchanged."""
    n = len(entries)
    n_val = 0 if fraction <= 0 or n < 2 else min(n - 1, max(1, round(fraction * n)))
    ranked = sorted(range(n), key=lambda i: stable_key(seed, entries[i].name, entries[i].sha256))
    held_out = set(ranked[:n_val])
    return [e for i, e in enumerate(entries) if i not in held_out], [e for i, e in enumerate(entries) if i in held_out]


def load_data(config: PretrainConfig, out: Path, workers: int, dist) -> Data:
    sources = find_volumes(config.data_dir)
    cache_dir = Path(config.cache_dir) if config.cache_dir else out / run_dir.CACHE
    entries, failures = build_cache(sources, cache_dir, preprocess_settings(config), workers=workers,
                                    rank=dist.rank, world_size=dist.world_size,
                                    barrier=lambda: distributed.barrier(dist))
    train_entries, val_entries = split_volumes(entries, config.val_fraction, config.seed)
    if config.val_fraction > 0 and not val_entries and dist.is_main:
        log.warning("only one volume: no validation")
    return Data(train_entries, val_entries, failures)


def event_sinks(config: PretrainConfig, out: Path) -> list:
    """RUN_DIR/events.jsonl, plus stdout or the ``--events`` file (emptied first unless resuming)."""
    sinks: list = [out / run_dir.EVENTS]
    if config.events == "-" or (config.events is None and not sys.stdout.isatty()):
        sinks.append(sys.stdout)
    elif config.events and Path(config.events).resolve() != (out / run_dir.EVENTS).resolve():
        if not config.resume:
            Path(config.events).parent.mkdir(parents=True, exist_ok=True)
            Path(config.events).write_text("", encoding="utf-8")
        sinks.append(Path(config.events))
    return sinks


def pretrain(config: PretrainConfig) -> dict:
    """Run (or resume) a pretraining; returns the summary also sent as the ``done`` event."""
    config.check()
    dist = distributed.detect()
    device = resolve_device(config.device, dist.local_rank, dist.enabled)
    distributed.init_process_group(dist, device)
    try:
        if dist.is_main:
            run_dir.prepare_run_dir(config.out_dir, config.resume, config.overwrite)
        distributed.barrier(dist)
        out = Path(config.out_dir)
        events = EventLog(event_sinks(config, out) if dist.is_main else [], enabled=dist.is_main)
        stats = TrainStats(out / run_dir.STATS, enabled=dist.is_main,
                           initial={"run_dir": str(out), "method": config.method, "preset": config.preset})
        try:
            with StopSignal(deferred=False):  # outside the training loop (preprocessing, set-up): stop at once
                return _run(config, out, device, dist, events, stats)
        except TrainingStopped as stop:
            _report_stop(stop, config, out, events, stats, dist)
            raise
        except KeyboardInterrupt:
            events.emit("stopped", message="interrupted; continue with --resume")
            stats.update(force=True, status="stopped")
            raise
        except Exception as error:
            if is_out_of_memory(error):
                error = _oom_error(error, config)
            message, hint = (error.message, error.hint) if isinstance(error, SSLSegError) else (str(error), "")
            events.error(message, hint)
            stats.update(force=True, status="failed", error=message, hint=hint)
            raise error
        finally:
            events.close()
    finally:
        distributed.shutdown(dist)


#: PretrainConfig fields whose CLI option is not ``--field-name``; fields with no option are left out.
_CLI_OPTIONS = {"out_dir": "--out", "cache_dir": "--cache"}
_NOT_OPTIONS = ("data_dir", "out_dir", "resume", "overwrite", "mr_percentiles", "method_options")


def resume_command(config: PretrainConfig, resumable: bool = True) -> str:
    """The shell command that continues this run (``--resume``) or, with no checkpoint yet, starts it again
    (``--overwrite``): every setting that differs from the default, so a resume is not refused for other settings."""
    defaults = PretrainConfig(data_dir="", out_dir="")
    program = ["sslseg"] if Path(sys.argv[0]).name == "sslseg" else [sys.executable, "-m", "sslseg"]
    words = [*program, "pretrain", os.path.abspath(config.data_dir), "--out", os.path.abspath(config.out_dir)]
    for field in fields(PretrainConfig):
        value = getattr(config, field.name)
        if field.name in _NOT_OPTIONS or value is None or value == getattr(defaults, field.name):
            continue
        option = _CLI_OPTIONS.get(field.name, "--" + field.name.replace("_", "-"))
        words += [option, *(str(v) for v in value)] if isinstance(value, (list, tuple)) else [option, str(value)]
    words.append("--resume" if resumable else "--overwrite")
    return " ".join(shlex.quote(word) for word in words)


def _report_stop(stop: TrainingStopped, config: PretrainConfig, out: Path, events: EventLog, stats: TrainStats,
                 dist) -> None:
    checkpoint = out / run_dir.CHECKPOINT
    report_stop(stop, events, stats, checkpoint, resume_command(config, checkpoint.is_file()), dist.is_main)


def _oom_error(error: Exception, config: PretrainConfig) -> SSLSegError:
    return SSLSegError(f"out of memory ({error})".splitlines()[0],
                       "use a smaller --patch-size or --batch-size, or --device cpu")


def _run(config: PretrainConfig, out: Path, device, dist, events: EventLog, stats: TrainStats) -> dict:
    from monai.data import set_track_meta

    set_track_meta(False)
    seed_everything(config.seed)
    method = create_method(config.method, temperature=config.temperature, **config.method_options)
    preset = get_preset(config.preset).with_img_size(config.patch_size)
    workers = default_workers() if config.workers is None else config.workers
    stats.update(force=True, status="preprocessing")
    events.emit("stage", stage="preprocess")
    data = load_data(config, out, workers, dist)

    model, optimizer, scheduler = _model_and_optimiser(config, method, preset, device)
    precision = Precision(resolve_amp(config.amp, device), device.type)
    state = TrainState()
    if config.resume:
        state = _restore(out / run_dir.CHECKPOINT, config, data, dist, model, optimizer, scheduler, precision)
    if dist.enabled:
        model = _wrap_ddp(model, device)

    train_set = PatchViewsDataset(data.train, preset.img_size, config.patches_per_volume, method, config.seed)
    sampler = EpochBatches(len(train_set), config.batch_size, config.seed, dist.rank, dist.world_size)
    loader = make_loader(train_set, sampler, workers, config.seed, pin_memory=device.type == "cuda")
    loop_config = LoopConfig(epochs=config.epochs, max_steps=config.max_steps, grad_clip=config.grad_clip,
                             val_every=config.val_every, checkpoint_every=config.checkpoint_every, stage="pretrain")
    gather = distributed.make_gather(dist)

    def train_batches(epoch: int, start_step: int):
        sampler.set_epoch(epoch, start_step)
        return loader

    outputs = _Outputs(config, out, preset, method, data, precision, dist, sampler)
    parts = TrainParts(
        model=model, optimizer=optimizer, scheduler=scheduler, precision=precision,
        compute_loss=lambda m, batch: method.loss(m, batch, gather), train_batches=train_batches,
        steps_per_epoch=sampler.steps_per_epoch, device=device,
        compute_val=method.validation_loss if data.val and config.val_every else None,
        val_batches=_val_batches(data.val, preset, config, method, dist, workers, device),
        on_checkpoint=lambda st, reason: outputs.checkpoint(st, reason, model, optimizer, scheduler),
    )
    total = planned_steps(loop_config, sampler.steps_per_epoch)
    start = {"stage": "pretrain", "device": str(device), "amp": precision.mode, "processes": dist.world_size,
             "train_volumes": len(data.train), "val_volumes": len(data.val), "skipped": len(data.skipped),
             "steps_per_epoch": sampler.steps_per_epoch, "total_steps": total, "resumed_at_step": state.step,
             "global_batch": sampler.global_batch, "patch_size": preset.img_size}
    events.emit("start", **start)
    stats.update(force=True, status="running", **start)
    with friendly_out_of_memory(preset.img_size, config.batch_size, device):
        try:
            state = train(parts, state, loop_config, dist, events, stats)
        except TrainingStopped:
            if dist.is_main:  # a stop at an epoch end keeps that epoch's checkpoint, whose plot may have been skipped
                outputs.plot(state)
            raise
    summary = outputs.finish(state, model)
    events.emit("done", **summary)
    stats.update(force=True, status="done", **summary)
    return summary


def _model_and_optimiser(config: PretrainConfig, method, preset, device):
    """The method's model (seeded: the same initial weights in every process), AdamW, warm-up then constant lr."""
    torch.manual_seed(config.seed)
    model = method.build_model(preset).to(device)
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=config.lr, weight_decay=config.weight_decay)
    warmup = config.warmup_steps
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: min(1.0, (s + 1) / warmup) if warmup else 1.0)
    return model, optimizer, scheduler


def _wrap_ddp(model, device):
    import warnings

    # transposed-convolution gradients come in another memory layout than DDP's buckets: slower, not wrong
    warnings.filterwarnings("ignore", message="Grad strides do not match bucket view strides")
    return torch.nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)


def _val_batches(entries, preset, config, method, dist, workers, device):
    if not entries or not config.val_every:
        return None
    val_set = PatchViewsDataset(entries, preset.img_size, config.patches_per_volume, method, config.seed, "val")
    items = ShardedItems(len(val_set), config.batch_size, dist.rank, dist.world_size)
    loader = make_loader(val_set, items, min(workers, 1), config.seed, pin_memory=device.type == "cuda")
    return lambda: loader


def _restore(path: Path, config, data: Data, dist, model, optimizer, scheduler, precision) -> TrainState:
    checkpoint = load_checkpoint(path)
    saved, current = checkpoint["config"], config.identity()
    changed = [k for k in current if saved.get(k) != current[k]]
    if changed:
        described = ", ".join(f"{k} {saved.get(k)!r} -> {current[k]!r}" for k in changed)
        raise SSLSegError(f"cannot resume: the run was started with other settings ({described})",
                          "resume with the original settings, or start a new run (--overwrite or another --out)")
    if checkpoint["world_size"] != dist.world_size:
        raise SSLSegError(f"cannot resume: the run used {checkpoint['world_size']} processes, this one "
                          f"{dist.world_size}", "resume with the same number of processes (global batch)")
    if checkpoint["data"]["train"] != data.fingerprint()["train"]:
        raise SSLSegError("cannot resume: the training volumes changed since the run started",
                          "restore the original data folder, or start a new run")
    model.load_state_dict(checkpoint["model"])
    optimizer.load_state_dict(checkpoint["optimizer"])
    scheduler.load_state_dict(checkpoint["scheduler"])
    precision.scaler.load_state_dict(checkpoint["scaler"])
    restore_rng(checkpoint["rng"])
    return TrainState.from_dict(checkpoint["state"])


class _Outputs:
    """Writes checkpoint, encoder + card and the loss curve (rank 0 only)."""

    def __init__(self, config, out, preset, method, data, precision, dist, sampler) -> None:
        self.config, self.out, self.preset, self.method, self.data = config, out, preset, method, data
        self.precision, self.dist, self.sampler = precision, dist, sampler
        self._plotted_at, self._plotted_step = -PLOT_EVERY_S, None

    def checkpoint(self, state: TrainState, reason: str, model, optimizer, scheduler) -> None:
        if not self.dist.is_main:
            return
        bare = getattr(model, "module", model)
        save_checkpoint(self.out / run_dir.CHECKPOINT, {
            "model": bare.state_dict(), "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
            "scaler": self.precision.scaler.state_dict(), "state": state.to_dict(), "rng": capture_rng(),
            "config": self.config.identity(), "world_size": self.dist.world_size,
            "method": self.method.describe(), "preset": self.preset.to_dict(), "data": self.data.fingerprint(),
        })
        if reason != "step":
            self.write_encoder(state, model, plot=reason != "epoch")

    def plot(self, state: TrainState, force: bool = True) -> None:
        """The loss curve, unless it was drawn less than ``PLOT_EVERY_S`` ago (``force``: unless already current)."""
        if self._plotted_step == state.step or (not force and time.monotonic() - self._plotted_at < PLOT_EVERY_S):
            return
        plot_loss_curve(self.out / run_dir.LOSS_CURVE, state.step_losses, state.epochs,
                        title=f"{self.method.name}, {self.preset.name}, patch {self.preset.img_size}")
        self._plotted_at, self._plotted_step = time.monotonic(), state.step

    def write_encoder(self, state: TrainState, model, plot: bool = True) -> None:
        last = state.epochs[-1] if state.epochs else {}
        preprocessing = {**preprocess_settings(self.config).to_dict(), "orientation": "RAS",
                         "intensity": "0..1 clipped (CT: ct_window HU; MR: mr_percentiles)",
                         "patch_size": self.preset.img_size}
        training = {"epochs_done": state.epoch, "steps": state.step, "batch_size": self.config.batch_size,
                    "global_batch": self.sampler.global_batch, "patches_per_volume": self.config.patches_per_volume,
                    "optimizer": "AdamW", "lr": self.config.lr, "weight_decay": self.config.weight_decay,
                    "warmup_steps": self.config.warmup_steps, "grad_clip": self.config.grad_clip,
                    "seed": self.config.seed, "amp": self.precision.mode, "processes": self.dist.world_size}
        results = {"train_loss": last.get("train_loss"), "val_loss": last.get("val_loss"),
                   "last_step_loss": state.step_losses[-1][1] if state.step_losses else None}
        card = encoder_card(self.preset, preprocessing, self.method.describe(), training, self.data.fingerprint(),
                            results)
        save_encoder(self.out, self.method.encoder_state(model), card)
        self.plot(state, force=plot)

    def finish(self, state: TrainState, model) -> dict:
        if self.dist.is_main and not (self.out / "encoder.json").is_file():
            self.write_encoder(state, model)
        elif self.dist.is_main:
            self.plot(state)
        last = state.epochs[-1] if state.epochs else {}
        return {"run_dir": str(self.out), "epochs_done": state.epoch, "steps": state.step,
                "train_loss": last.get("train_loss"), "val_loss": last.get("val_loss"),
                "encoder": str(self.out / "encoder.safetensors")}
