"""A generic training loop: epochs and/or a step budget, AMP, gradient clipping, validation every N epochs,
checkpoint hooks every N steps and every epoch, progress events. It knows nothing about models or data beyond
the callables it is given, so pretraining and fine-tuning share it.

Counting: ``state.step`` optimisation steps are done; the current epoch is ``state.epoch`` (0-based) of which
``state.step_in_epoch`` steps are done. A run stopped anywhere between two steps and restored from its checkpoint
continues with the very next batch.

SIGTERM / SIGINT (:mod:`sslseg.training.stop_signal`): the step under way is finished, a checkpoint is written (reason
``"stopped"``; at an epoch end the epoch's own checkpoint serves) and :class:`TrainingStopped` is raised.
"""

from __future__ import annotations

import logging
import math
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Callable, Iterable

import torch

from sslseg.errors import SSLSegError
from sslseg.training.distributed import DistContext, all_reduce_sum
from sslseg.training.events import EventLog, ProgressBar, TrainStats
from sslseg.training.settings import DEFAULT_EPOCHS
from sslseg.training.stop_signal import StopSignal, agreed

log = logging.getLogger(__name__)

#: Step losses kept in train_stats.json (all of them stay in the checkpoint and the events).
RECENT_STEPS = 500


@dataclass
class LoopConfig:
    """How long and how to train.

    Attributes:
        epochs: passes over the training samples (None: as many as ``max_steps`` needs; see :func:`planned_epochs`).
        max_steps: stop after this many optimisation steps in total (None: no limit).
        grad_clip: clip the global gradient norm to this (0: off).
        val_every: validate every this many epochs, and after the last (0: never).
        checkpoint_every: also checkpoint every this many steps (0: only at epoch ends).
        stage: the ``stage`` field of progress events.
        measures: loss parts recorded per reported step in ``TrainState.step_measures`` (e.g. a joint-embedding
            method's ``embedding_std``), kept through resume and plotted beside the loss.
        probe_every: run ``TrainParts.probe`` every this many epochs, and after the last (0: never).
    """

    epochs: int | None
    max_steps: int | None = None
    grad_clip: float = 1.0
    val_every: int = 1
    checkpoint_every: int = 0
    stage: str = "train"
    measures: tuple[str, ...] = ()
    probe_every: int = 0


@dataclass
class TrainState:
    """Counters and history: what, besides model/optimiser tensors, a checkpoint must restore.

    ``step_losses``: ``[[step, loss], ...]`` of every step; ``step_measures``: name -> ``[[step, value], ...]`` of
    each of :attr:`LoopConfig.measures` at the reported steps (those with a ``progress`` event)."""

    epoch: int = 0
    step: int = 0
    step_in_epoch: int = 0
    epoch_loss_sum: float = 0.0
    step_losses: list = field(default_factory=list)
    step_measures: dict = field(default_factory=dict)
    epochs: list = field(default_factory=list)

    def to_dict(self) -> dict:
        return dict(self.__dict__)

    @classmethod
    def from_dict(cls, data: dict) -> "TrainState":
        return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})


@dataclass
class TrainParts:
    """What the loop drives.

    Attributes:
        model: the (possibly DDP-wrapped) module.
        optimizer, scheduler: a scheduler stepped once per optimisation step.
        precision: :class:`~sslseg.training.amp.Precision`.
        compute_loss: ``(model, batch) -> LossOutput`` (see :mod:`sslseg.ssl.base`).
        train_batches: ``(epoch, start_step) -> iterable of batches`` (dicts of CPU tensors).
        steps_per_epoch: optimisation steps per epoch.
        compute_val: ``(model, batch) -> (B,)`` per-sample losses, or None.
        val_batches: ``() -> iterable of batches`` of this process's validation share, or None.
        evaluate: ``() -> dict`` of validation metrics (e.g. Dice) merged into the epoch's record, or None; called
            with the model in eval mode and gradients off, on every process (it gathers its own shares).
        probe: ``() -> dict`` of representation measures (frozen-encoder probes) merged into the epoch's record every
            ``LoopConfig.probe_every`` epochs, or None; called like ``evaluate``.
        on_checkpoint: ``(state, reason)`` with reason ``"step"``, ``"epoch"``, ``"end"`` or ``"stopped"``.
        after_step: ``(steps_done)`` after every optimiser step (a method's EMA or queue update), or None.
    """

    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: object
    precision: object
    compute_loss: Callable
    train_batches: Callable[[int, int], Iterable]
    steps_per_epoch: int
    device: torch.device
    compute_val: Callable | None = None
    val_batches: Callable[[], Iterable] | None = None
    evaluate: Callable[[], dict] | None = None
    probe: Callable[[], dict] | None = None
    on_checkpoint: Callable[[TrainState, str], None] = lambda state, reason: None
    after_step: Callable[[int], None] | None = None


def planned_epochs(config: LoopConfig, steps_per_epoch: int) -> int:
    """Epochs the run lasts: ``epochs`` if given (a ``max_steps`` that ends sooner still ends it), else as many as
    ``max_steps`` needs, else ``DEFAULT_EPOCHS`` (so ``--max-steps 350`` alone is never cut at 100 epochs)."""
    if config.epochs is not None:
        return config.epochs
    if config.max_steps:
        return math.ceil(config.max_steps / steps_per_epoch)
    return DEFAULT_EPOCHS


def planned_steps(config: LoopConfig, steps_per_epoch: int) -> int:
    """Optimisation steps the run lasts in total: the planned epochs' steps, or ``max_steps`` if fewer."""
    total = planned_epochs(config, steps_per_epoch) * steps_per_epoch
    return min(total, config.max_steps) if config.max_steps else total


def _to_device(batch: dict, device) -> dict:
    return {k: v.to(device, non_blocking=True) if torch.is_tensor(v) else v for k, v in batch.items()}


def validate(parts: TrainParts, dist: DistContext) -> float | None:
    """Mean per-sample validation loss over every process's share; None without validation data."""
    if parts.compute_val is None or parts.val_batches is None:
        return None
    parts.model.eval()
    total, count = 0.0, 0
    with torch.no_grad():
        for batch in parts.val_batches():
            with parts.precision.autocast():
                losses = parts.compute_val(parts.model, _to_device(batch, parts.device)).float()
            total, count = total + float(losses.sum()), count + losses.numel()
    parts.model.train()
    total, count = all_reduce_sum([total, count], dist, parts.device)
    return total / count if count else None


def evaluate(parts: TrainParts, measure: Callable[[], dict] | None = None) -> dict:
    """The metrics of ``measure`` (default ``parts.evaluate``) with the model in eval mode and no gradients; {}
    without it."""
    measure = parts.evaluate if measure is None else measure
    if measure is None:
        return {}
    parts.model.eval()
    try:
        with torch.no_grad():
            return measure()
    finally:
        parts.model.train()


def _optimisation_step(parts: TrainParts, batch: dict, grad_clip: float):
    model, optimizer, scaler = parts.model, parts.optimizer, parts.precision.scaler
    with parts.precision.autocast():
        output = parts.compute_loss(model, batch)
    optimizer.zero_grad(set_to_none=True)
    scaler.scale(output.total).backward()
    if grad_clip > 0:
        scaler.unscale_(optimizer)
        torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    scaler.step(optimizer)
    scaler.update()
    if parts.scheduler is not None:
        parts.scheduler.step()
    return output


def train(parts: TrainParts, state: TrainState, config: LoopConfig, dist: DistContext, events: EventLog,
          stats: TrainStats) -> TrainState:
    """Train from ``state`` until the planned steps are done; returns the final state.

    Raises:
        TrainingStopped: on SIGTERM/SIGINT, after the current step and a checkpoint (see the module docstring).
    """
    spe = parts.steps_per_epoch
    total = planned_steps(config, spe)
    if dist.is_main and config.epochs is not None and config.max_steps and total < config.max_steps:
        log.warning("--epochs %d ends the run after %d steps, before --max-steps %d (leave out --epochs to train "
                    "for exactly --max-steps)", config.epochs, total, config.max_steps)
    bar = ProgressBar(total, state.step, config.stage, enabled=dist.is_main)
    timer = _StepTimer()
    last_event = 0.0
    stop = StopSignal(deferred=True)
    parts.model.train()
    try:
        stop.install()
        timer.start()
        while state.step < total:
            for batch in parts.train_batches(state.epoch, state.step_in_epoch):
                output = _optimisation_step(parts, _to_device(batch, parts.device), config.grad_clip)
                loss = float(output.total.detach())
                if not math.isfinite(loss):
                    raise SSLSegError(f"the loss became {loss} at step {state.step + 1}",
                                      "lower --lr, use --amp off, or raise --temperature")
                state.step += 1
                state.step_in_epoch += 1
                if parts.after_step is not None:
                    parts.after_step(state.step)
                state.epoch_loss_sum += loss
                state.step_losses.append([state.step, loss])
                timer.tick()
                bar.update(loss)
                if getattr(output, "warning", None):
                    _report_warning(state, output.warning, config, events, stats)
                end_of_epoch = state.step_in_epoch >= spe
                if end_of_epoch or state.step >= total or time.monotonic() - last_event >= 1.0 or state.step == 1:
                    last_event = time.monotonic()
                    _report_step(parts, state, total, loss, output.parts, timer, config, events, stats)
                saved = bool(config.checkpoint_every) and state.step % config.checkpoint_every == 0
                if saved and not end_of_epoch:
                    parts.on_checkpoint(state, "step")
                if state.step >= total:
                    break
                if agreed(stop, dist, parts.device) and not end_of_epoch:  # at an epoch end: the epoch's checkpoint
                    if not saved:
                        parts.on_checkpoint(state, "stopped")
                    raise stop.stopped(state.step, state.epoch + 1)
            if state.step_in_epoch >= spe:
                _finish_epoch(parts, state, config, dist, events, stats, total)
                if state.step < total and agreed(stop, dist, parts.device):
                    raise stop.stopped(state.step, state.epoch)
            else:
                parts.on_checkpoint(state, "end")
                break
    finally:
        stop.restore()
        bar.close()
    return state


def _report_step(parts, state, total, loss, loss_parts, timer, config, events, stats) -> None:
    lr = parts.optimizer.param_groups[0]["lr"]
    eta = timer.mean * (total - state.step) if timer.mean else None
    fields = dict(stage=config.stage, epoch=state.epoch + 1, epochs=planned_epochs(config, parts.steps_per_epoch),
                  step=state.step, total_steps=total, loss=loss, lr=lr, eta_s=eta, seconds_per_step=timer.mean,
                  **loss_parts)
    events.emit("progress", **fields)
    for name in config.measures:
        value = loss_parts.get(name)
        if isinstance(value, (int, float)):
            state.step_measures.setdefault(name, []).append([state.step, float(value)])
    recent = {name: points[-RECENT_STEPS:] for name, points in state.step_measures.items()}
    stats.update(status="running", **fields, recent_step_losses=state.step_losses[-RECENT_STEPS:],
                 **({"recent_step_measures": recent} if recent else {}))


def _report_warning(state, warning, config, events, stats) -> None:
    """A ``warning`` event (and the warning in ``train_stats.json``) from a step's ``LossOutput.warning``."""
    message, hint = warning
    emit_warning(events, stats, {"stage": config.stage, "epoch": state.epoch + 1, "step": state.step,
                                 "message": message, "hint": hint})


def emit_warning(events, stats, record: dict) -> None:
    """A ``warning`` event, also kept in ``train_stats.json``'s ``warnings``."""
    events.emit("warning", **record)
    stats.update(force=True, warnings=[*stats.data.get("warnings", []), record])


def _finish_epoch(parts, state, config, dist, events, stats, total) -> None:
    epoch_number = state.epoch + 1
    train_loss = state.epoch_loss_sum / max(1, state.step_in_epoch)
    last = epoch_number >= planned_epochs(config, parts.steps_per_epoch) or state.step >= total
    val_loss, metrics = None, {}
    if config.val_every and (epoch_number % config.val_every == 0 or last):
        val_loss = validate(parts, dist)
        metrics = evaluate(parts)
    if parts.probe is not None and config.probe_every and (epoch_number % config.probe_every == 0 or last):
        metrics.update(evaluate(parts, parts.probe))
    record = {"epoch": epoch_number, "step": state.step, "train_loss": train_loss, "val_loss": val_loss, **metrics}
    state.epochs.append(record)
    state.epoch += 1
    state.step_in_epoch = 0
    state.epoch_loss_sum = 0.0
    events.emit("epoch", stage=config.stage, **record)
    stats.update(force=True, epochs_history=state.epochs, epoch=epoch_number, step=state.step)
    parts.on_checkpoint(state, "epoch")


class _StepTimer:
    """Mean wall seconds per step over the last ``WINDOW`` steps of this session, each measured from the end of the
    step before: data waiting and what recurs between steps (an epoch's loader start, validation, checkpoint) count,
    since the ETA has to wait for them too; with one step per epoch a step's time is its epoch's. Only the session's
    first step (start-up: first loader workers, first kernels) is left out, once there are others."""

    WINDOW = 50

    def __init__(self) -> None:
        self.first: float | None = None
        self.durations: deque[float] = deque(maxlen=self.WINDOW)
        self._last = 0.0

    def start(self) -> None:
        """Call once, before the first step."""
        self._last = time.perf_counter()

    def tick(self) -> None:
        """Call at the end of every step."""
        now = time.perf_counter()
        if self.first is None:
            self.first = now - self._last
        else:
            self.durations.append(now - self._last)
        self._last = now

    @property
    def mean(self) -> float | None:
        if self.durations:
            return sum(self.durations) / len(self.durations)
        return self.first
