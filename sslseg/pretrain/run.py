"""``sslseg pretrain``: data -> cache -> SSL method + ViT -> training loop -> encoder files, all in RUN_DIR.

Outputs in RUN_DIR: ``encoder.safetensors`` + ``encoder.json`` (the encoder with the lowest validation loss so far,
the one fine-tuning loads), ``encoder_last.safetensors`` + ``encoder_last.json`` (rewritten at every epoch end, so a
killed run still leaves its last encoder; see :mod:`sslseg.pretrain.encoders`), ``checkpoint.pt`` (full training
state), ``events.jsonl``, ``train_stats.json``, ``loss_curve.png`` and ``cache/`` (preprocessed volumes). Under
``torchrun`` every process trains its share of each global batch and rank 0 alone writes.

SIGTERM (a GUI's Cancel) or SIGINT (Ctrl-C) stops a run cleanly: the step under way is finished and checkpointed,
``train_stats.json`` says ``stopped``, a ``stopped`` event carries the command that resumes the run (also printed on
stderr), and the process exits with 143 / 130 (see :mod:`sslseg.training.stop_signal`).
"""

from __future__ import annotations

import logging
import shlex
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from sslseg.data.cache import build_cache
from sslseg.data.dataset import PatchViewsDataset
from sslseg.data.loader import default_workers, make_loader
from sslseg.data.preprocess import PreprocessSettings
from sslseg.data.partners import count_with_partners
from sslseg.data.sampler import EpochBatches, ShardedItems
from sslseg.data.split import split_volumes
from sslseg.errors import SSLSegError
from sslseg.io.patients_csv import with_patients
from sslseg.io.scan import find_volumes
from sslseg.models.encoder_io import save_encoder
from sslseg.models.presets import get_preset
from sslseg.pretrain import encoders, run_dir
from sslseg.pretrain.card import encoder_card
from sslseg.pretrain.config import PretrainConfig
from sslseg.ssl import StepContext, create_method
from sslseg.ssl.module import COLLAPSE_MEASURES
from sslseg.training import distributed
from sslseg.training.amp import Precision, resolve_amp
from sslseg.training.checkpoint import save_checkpoint
from sslseg.training.compute import describe_compute
from sslseg.training.loop import LoopConfig, TrainParts, TrainState, emit_warning, planned_epochs, planned_steps
from sslseg.training.lr_schedule import lr_scheduler
from sslseg.training.plots import plot_loss_curve
from sslseg.training.seeding import seed_everything
from sslseg.training.session import (Session, SessionOptions, checkpoint_content, report_done, restore_checkpoint,
                                     run_session, train_reporting, wrap_ddp)
from sslseg.training.session import resume_command as session_resume_command

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


def load_data(config: PretrainConfig, out: Path, workers: int, dist) -> Data:
    sources = find_volumes(config.data_dir)
    cache_dir = Path(config.cache_dir) if config.cache_dir else out / run_dir.CACHE
    entries, failures = build_cache(sources, cache_dir, preprocess_settings(config), workers=workers,
                                    rank=dist.rank, world_size=dist.world_size,
                                    barrier=lambda: distributed.barrier(dist))
    entries = with_patients(entries, config.data_dir)
    train_entries, val_entries = split_volumes(entries, config.val_fraction, config.seed)
    if config.val_fraction > 0 and not val_entries and dist.is_main:
        log.warning("only one volume%s: no validation",
                    "" if len(entries) < 2 else " or one patient (a patient's volumes stay on one side of the split)")
    return Data(train_entries, val_entries, failures)


def pretrain(config: PretrainConfig) -> dict:
    """Run (or resume) a pretraining; returns the summary also sent as the ``done`` event."""
    config.check()
    options = SessionOptions(
        out_dir=config.out_dir, run_files=run_dir.RUN_FILES, device=config.device, resume=config.resume,
        overwrite=config.overwrite, events=config.events,
        oom_hint="use a smaller --patch-size or --batch-size, or --device cpu",
        stats={"method": config.method, "preset": config.preset},
        resume_command=lambda resumable: resume_command(config, resumable),
    )
    return run_session(options, lambda session: _run(config, session))


def resume_command(config: PretrainConfig, resumable: bool = True) -> str:
    """The shell command that continues this run (``--resume``) or, with no checkpoint yet, starts it again
    (``--overwrite``): every setting that differs from the default, so a resume is not refused for other settings."""
    command = session_resume_command("pretrain", config, resumable, not_options=("mr_percentiles", "method_options"))
    options = " ".join(f"--method-option {shlex.quote(f'{k}={_option_text(v)}')}"
                       for k, v in config.method_options.items())
    head, _, last = command.rpartition(" ")
    return f"{head} {options} {last}" if options else command


def _option_text(value) -> str:
    return ",".join(str(v) for v in value) if isinstance(value, (list, tuple)) else str(value)


def _run(config: PretrainConfig, session: Session) -> dict:
    from monai.data import set_track_meta

    out, device, dist, events, stats = session.out, session.device, session.dist, session.events, session.stats
    set_track_meta(False)
    seed_everything(config.seed)
    method = make_method(config)
    identity = run_identity(config, method)
    preset = get_preset(config.preset).with_img_size(config.patch_size)
    workers = default_workers() if config.workers is None else config.workers
    stats.update(force=True, status="preprocessing")
    events.emit("stage", stage="preprocess")
    data = load_data(config, out, workers, dist)

    model, optimizer, scheduler = _model_and_optimiser(config, method, preset, device)
    precision = Precision(resolve_amp(config.amp, device, "train"), device.type)
    precision.prepare(model)
    state = TrainState()
    if config.resume:
        state = restore_checkpoint(out / run_dir.CHECKPOINT, identity, data.fingerprint(), dist, model,
                                   optimizer, scheduler, precision)
    if dist.enabled:
        model = wrap_ddp(model, device)

    train_set, reduction = _training_set(config, data, preset, method)
    sampler = EpochBatches(len(train_set), config.batch_size, config.seed, dist.rank, dist.world_size)
    loader = make_loader(train_set, sampler, workers, config.seed, pin_memory=device.type == "cuda")
    loop_config = LoopConfig(epochs=config.epochs, max_steps=config.max_steps, grad_clip=config.grad_clip,
                             val_every=config.val_every, checkpoint_every=config.checkpoint_every, stage="pretrain",
                             measures=COLLAPSE_MEASURES, probe_every=config.probe_every if config.probe else 0)
    gather = distributed.make_gather(dist)
    total = planned_steps(loop_config, sampler.steps_per_epoch)
    # schedules (momentum) run over the planned epochs: --max-steps cuts a run short without changing its schedule,
    # so a run stopped that way and resumed with a higher bound trains exactly as one never stopped
    ctx = StepContext(gather=gather, step=state.step,
                      total_steps=planned_epochs(loop_config, sampler.steps_per_epoch) * sampler.steps_per_epoch)

    def after_step(steps_done: int) -> None:
        ctx.step = steps_done
        method.after_step(model, ctx)

    def train_batches(epoch: int, start_step: int):
        sampler.set_epoch(epoch, start_step)
        return loader

    outputs = _Outputs(config, identity, out, preset, method, data, precision, dist, sampler)
    parts = TrainParts(
        model=model, optimizer=optimizer, scheduler=scheduler, precision=precision,
        compute_loss=lambda m, batch: method.step_loss(m, batch, ctx), train_batches=train_batches,
        steps_per_epoch=sampler.steps_per_epoch, device=device,
        compute_val=method.validation_loss if data.val and config.val_every else None,
        val_batches=_val_batches(data.val, preset, config, method, dist, workers, device),
        on_checkpoint=lambda st, reason: outputs.checkpoint(st, reason, model, optimizer, scheduler),
        after_step=after_step, probe=_live_probe(config, preset, method, model, out, dist),
    )
    compute = describe_compute(device, precision.mode)
    start = {"stage": "pretrain", **compute, "processes": dist.world_size,
             "train_volumes": len(data.train), "val_volumes": len(data.val), "skipped": len(data.skipped),
             "steps_per_epoch": sampler.steps_per_epoch, "total_steps": total, "resumed_at_step": state.step,
             "global_batch": sampler.global_batch, "patch_size": preset.img_size}
    if reduction:
        start["reduce"] = reduction
    if method.patient_positive_share() > 0:
        start["patient_partners"] = _report_partners(data.train, session, dist)
    # a stop at an epoch end keeps that epoch's checkpoint, whose plot may have been skipped
    state = train_reporting(session, parts, state, loop_config, start, preset.img_size, config.batch_size,
                            on_stop=outputs.plot)
    return report_done(session, {**outputs.finish(state, model), "compute": compute})


def _live_probe(config: PretrainConfig, preset, method, model, out: Path, dist):
    """The probes of ``--probe`` (None without it); their cases are preprocessed now, before training starts."""
    if not config.probe:
        return None
    from sslseg.probes.live import LiveProbe

    cache = Path(config.cache_dir) if config.cache_dir else out / run_dir.CACHE
    return LiveProbe(config.probe, config, preset, method, model, cache, dist.is_main)


def _report_partners(entries, session: Session, dist) -> int:
    """How many training volumes have a partner scan for patient-aware positives; a warning when none has."""
    count = count_with_partners(entries)
    if not count and dist.is_main:
        record = {"stage": "pretrain", "epoch": 0, "step": 0,
                  "message": "patient_positives is set, but no training volume has another scan of its patient in "
                             "its frame of reference: every positive pair comes from one scan",
                  "hint": "DICOM series need Patient ID and Frame of Reference UID; for other files write "
                          "patients.csv (file,patient,study,frame) in the data folder; a cache made before "
                          "sslseg recorded frames needs deleting once"}
        log.warning("%s (%s)", record["message"], record["hint"])
        emit_warning(session.events, session.stats, record)
    return count


def make_method(config: PretrainConfig):
    """The configured method. ``--temperature`` reaches the methods that have one: the MONAI recipe always; the
    others when it is not the default (each keeps its paper's temperature otherwise; ``--method-option
    temperature=T`` sets it exactly). A method without a temperature refuses a ``--temperature`` other than the
    default, rather than silently ignoring it."""
    import dataclasses

    from sslseg.ssl.base import method_class

    cls = method_class(config.method)
    options = dict(config.method_options)
    legacy = getattr(cls, "legacy_options", False)
    given = legacy or config.temperature != PretrainConfig.temperature
    if given and not legacy and "temperature" not in {f.name for f in dataclasses.fields(cls.Options)}:
        raise SSLSegError(f"{cls.name} has no temperature (--temperature {config.temperature:g})",
                          "leave out --temperature; the methods with one are listed in `sslseg pretrain --help`")
    temperature = options.pop("temperature", config.temperature if given else None)  # the method option wins
    return create_method(config.method, temperature=temperature, **options)


def run_identity(config: PretrainConfig, method) -> dict:
    """The settings a resume must share: the config's, and the method's resolved options (for the MONAI recipe only
    when options were given, so its identity is what it always was). For the other methods the temperature is one
    of those options where the method has one, so the config's ``temperature`` is left out: it would otherwise
    refuse a resume over a setting the method never reads."""
    identity = config.identity()
    if not getattr(method, "legacy_options", False):
        identity.pop("temperature", None)
        identity["method_options"] = method.options
    return identity


def _training_set(config: PretrainConfig, data: Data, preset, method):
    """(training dataset, reduction summary or None): all patches, or with ``--reduce K`` only patches centred on
    kept slices, and proportionally fewer (:mod:`sslseg.reduce.sampling`)."""
    if config.reduce is None:
        return PatchViewsDataset(data.train, preset.img_size, config.patches_per_volume, method, config.seed), None
    from sslseg.reduce.sampling import reduced_training_set

    return reduced_training_set(data.train, config.reduce, preset.img_size, config.patches_per_volume, method,
                                config.seed)


def _model_and_optimiser(config: PretrainConfig, method, preset, device):
    """The method's model (seeded: the same initial weights in every process), AdamW, warm-up then constant lr."""
    torch.manual_seed(config.seed)
    model = method.build_model(preset).to(device)
    optimizer = torch.optim.AdamW(method.param_groups(model, config.lr, config.weight_decay), lr=config.lr,
                                  weight_decay=config.weight_decay)
    return model, optimizer, lr_scheduler(optimizer, config.warmup_steps)


def _val_batches(entries, preset, config, method, dist, workers, device):
    if not entries or not config.val_every:
        return None
    val_set = PatchViewsDataset(entries, preset.img_size, config.patches_per_volume, method, config.seed, "val")
    items = ShardedItems(len(val_set), config.batch_size, dist.rank, dist.world_size)
    loader = make_loader(val_set, items, min(workers, 1), config.seed, pin_memory=device.type == "cuda")
    return lambda: loader


class _Outputs:
    """Writes checkpoint, encoder + card and the loss curve (rank 0 only)."""

    def __init__(self, config, identity, out, preset, method, data, precision, dist, sampler) -> None:
        self.config, self.out, self.preset, self.method, self.data = config, out, preset, method, data
        self.identity = identity
        self.precision, self.dist, self.sampler = precision, dist, sampler
        self._plotted_at, self._plotted_step = -PLOT_EVERY_S, None

    def checkpoint(self, state: TrainState, reason: str, model, optimizer, scheduler) -> None:
        if not self.dist.is_main:
            return
        save_checkpoint(self.out / run_dir.CHECKPOINT, checkpoint_content(
            model, optimizer, scheduler, self.precision, state, self.dist, self.identity,
            self.data.fingerprint(), method=self.method.describe(), preset=self.preset.to_dict()))
        if reason != "step":
            self.write_encoder(state, model, plot=reason != "epoch")

    def plot(self, state: TrainState, force: bool = True) -> None:
        """The loss curve, unless it was drawn less than ``PLOT_EVERY_S`` ago (``force``: unless already current)."""
        if self._plotted_step == state.step or (not force and time.monotonic() - self._plotted_at < PLOT_EVERY_S):
            return
        plot_loss_curve(self.out / run_dir.LOSS_CURVE, state.step_losses, state.epochs,
                        title=f"{self.method.name}, {self.preset.name}, patch {self.preset.img_size}",
                        step_measures=state.step_measures)
        self._plotted_at, self._plotted_step = time.monotonic(), state.step

    def write_encoder(self, state: TrainState, model, plot: bool = True) -> None:
        """``encoder_last`` from the current weights, and ``encoder`` too when they are the best so far."""
        tensors = self.method.encoder_state(model)
        best = encoders.best_selection(state)
        if best is not None:
            save_encoder(self.out, tensors, self._card(state, best), encoders.BEST)
        save_encoder(self.out, tensors, self._card(state, encoders.last_selection(state)), encoders.LAST)
        self.plot(state, force=plot)

    def _card(self, state: TrainState, selection: dict) -> dict:
        """The card of the current weights; ``selection`` says why they are kept."""
        last = state.epochs[-1] if state.epochs else {}
        preprocessing = {**preprocess_settings(self.config).to_dict(), "orientation": "RAS",
                         "intensity": "0..1 clipped (CT: ct_window HU; MR: mr_percentiles)",
                         "patch_size": self.preset.img_size}
        training = {"epochs_done": state.epoch, "steps": state.step, "batch_size": self.config.batch_size,
                    "global_batch": self.sampler.global_batch, "patches_per_volume": self.config.patches_per_volume,
                    "optimizer": "AdamW", "lr": self.config.lr, "weight_decay": self.config.weight_decay,
                    "warmup_steps": self.config.warmup_steps, "grad_clip": self.config.grad_clip,
                    "seed": self.config.seed, "amp": self.precision.mode, "processes": self.dist.world_size,
                    "compute": describe_compute(self.precision.device_type, self.precision.mode)}
        results = {"train_loss": last.get("train_loss"), "val_loss": last.get("val_loss"),
                   "last_step_loss": state.step_losses[-1][1] if state.step_losses else None}
        return encoder_card(self.preset, preprocessing, self.method.describe(), training, self.data.fingerprint(),
                            results, selection, trained_in=self.method.trained_in)

    def finish(self, state: TrainState, model) -> dict:
        if self.dist.is_main and not (self.out / f"{encoders.LAST}.json").is_file():
            self.write_encoder(state, model)
        elif self.dist.is_main:
            self.plot(state)
        last = state.epochs[-1] if state.epochs else {}
        best = encoders.best_validated(state.epochs) or {}
        return {"run_dir": str(self.out), "epochs_done": state.epoch, "steps": state.step,
                "train_loss": last.get("train_loss"), "val_loss": last.get("val_loss"),
                "encoder": str(self.out / f"{encoders.BEST}.safetensors"), "best_val_loss": best.get("val_loss"),
                "best_step": best.get("step"), "encoder_last": str(self.out / f"{encoders.LAST}.safetensors")}
