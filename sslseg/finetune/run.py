"""``sslseg finetune``: labelled cases -> cache -> UNETR (+ pretrained ViT) -> training loop -> model package.

Outputs in MODEL_DIR: ``model.safetensors`` + ``model.json`` (the shareable package; the best-validated weights,
rewritten whenever validation Dice improves, or the last weights when nothing was validated), ``checkpoint.pt`` (full
training state, for ``--resume``), ``events.jsonl``, ``train_stats.json``, ``loss_curve.png``, ``dice_curve.png``
and ``cache/`` (preprocessed cases). Under ``torchrun`` every process trains its share of each global batch and
validates its share of the cases; rank 0 alone writes.
"""

from __future__ import annotations

import logging
import time
from dataclasses import replace
from pathlib import Path

import torch

from sslseg.data.loader import default_workers, make_loader
from sslseg.data.sampler import EpochBatches
from sslseg.errors import SSLSegError
from sslseg.finetune.augmentation_card import describe_transforms
from sslseg.finetune.card import model_card, validation_card
from sslseg.finetune.cases import CaseSet, PartialOptions, load_cases
from sslseg.finetune.config import FinetuneConfig
from sslseg.finetune.crops import LabelledCrops, tutorial_transforms
from sslseg.finetune.encoder import EncoderChoice, choose_encoder
from sslseg.finetune.from_model import StartingModel, load_starting_weights, read_starting_model
from sslseg.finetune.output_prior import class_shares, set_prior_bias
from sslseg.finetune.partial_loss import DESCRIPTION as PARTIAL_LOSS, partial_dice_ce
from sslseg.finetune.recipes import with_recipe
from sslseg.finetune.validation import DiceValidation
from sslseg.models.encoder_io import load_encoder_into
from sslseg.models.unetr import build_unetr
from sslseg.package.model_package import CARD_NAME, WEIGHTS_NAME, save_model_package
from sslseg.segmentation.preprocess import SegmentationPreprocessing
from sslseg.ssl.base import LossOutput
from sslseg.training import distributed, run_dir
from sslseg.training.compute import describe_compute
from sslseg.training.amp import Precision, full_precision, resolve_amp
from sslseg.training.checkpoint import save_checkpoint
from sslseg.training.loop import LoopConfig, TrainParts, TrainState, planned_steps
from sslseg.training.lr_schedule import lr_scheduler
from sslseg.training.plots import plot_loss_curve, plot_metric_curve
from sslseg.training.seeding import seed_everything
from sslseg.training.session import (Session, SessionOptions, checkpoint_content, report_done, restore_checkpoint,
                                     resume_command, run_session, train_reporting, wrap_ddp)

log = logging.getLogger(__name__)

#: The curves are redrawn at an epoch end at most this often, and always after a validation, at a stop and at the
#: end: drawing them costs about a second, several tiny-preset epochs on a 2-core CPU.
PLOT_EVERY_S = 30.0

DICE_CURVE = "dice_curve.png"
#: Files whose presence means the folder holds a run.
RUN_FILES = (*run_dir.COMMON_RUN_FILES, WEIGHTS_NAME, CARD_NAME, DICE_CURVE)


def preprocessing_settings(config: FinetuneConfig) -> SegmentationPreprocessing:
    return SegmentationPreprocessing(spacing_mm=tuple(float(s) for s in config.spacing),
                                     ct_window=tuple(float(w) for w in config.ct_window), modality=config.modality)


def finetune(config: FinetuneConfig) -> dict:
    """Run (or resume) a fine-tuning; returns the summary also sent as the ``done`` event."""
    config.check()
    options = SessionOptions(
        out_dir=config.out_dir, run_files=RUN_FILES, device=config.device, resume=config.resume,
        overwrite=config.overwrite, events=config.events,
        oom_hint="use a smaller --patch-size, --batch-size or --crops-per-volume, or --device cpu",
        stats={"stage": "finetune", "encoder": config.encoder},
        resume_command=lambda resumable: resume_command("finetune", config, resumable, always=("encoder",)),
    )
    return run_session(options, lambda session: _run(config, session))


def _run(config: FinetuneConfig, session: Session) -> dict:
    from monai.data import set_track_meta

    out, device, dist, events, stats = session.out, session.device, session.dist, session.events, session.stats
    set_track_meta(False)
    seed_everything(config.seed)
    start = read_starting_model(config.from_model) if config.from_model else None
    choice = starting_choice(config, start) if start else choose_encoder(config.encoder, config.preset,
                                                                          config.patch_size)
    preset = choice.preset
    if start:  # a retrained model keeps its preprocessing and decoder (starting_choice warned of other values)
        config = replace(config, spacing=tuple(start.settings.spacing_mm), ct_window=tuple(start.settings.ct_window),
                         feature_size=start.feature_size)
    config = with_recipe(config, preset.name)  # the settings left out come from the preset's recipe
    settings = start.settings if start else preprocessing_settings(config)
    feature_size = config.feature_size
    workers = default_workers() if config.workers is None else config.workers
    stats.update(force=True, status="preprocessing")
    events.emit("stage", stage="preprocess")
    cases = load_cases(config.data_dir, Path(config.cache_dir) if config.cache_dir else out / run_dir.CACHE,
                       settings, config.val_fraction, config.seed, workers, dist.rank,
                       dist.world_size, barrier=lambda: distributed.barrier(dist), only_cases=config.only_cases,
                       base_labels=start.labels if start else None, partial=partial_options(config))

    model, encoder = _model(config, choice, len(cases.labels) + 1, device, feature_size, start,
                            _output_shares(config, cases, start))
    events.emit("encoder", **encoder)
    if dist.is_main:
        log.info("encoder: %s", encoder["summary"])
    sampler = EpochBatches(len(cases.train), config.batch_size, config.seed, dist.rank, dist.world_size)
    loop_config = LoopConfig(epochs=config.epochs, max_steps=config.max_steps, grad_clip=config.grad_clip,
                             val_every=config.val_every, checkpoint_every=config.checkpoint_every, stage="finetune")
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=config.lr,
                                  weight_decay=config.weight_decay)
    total_steps = planned_steps(loop_config, sampler.steps_per_epoch)
    scheduler = lr_scheduler(optimizer, config.warmup_steps, total_steps, config.lr_schedule)
    precision = Precision(resolve_amp(config.amp, device, "train"), device.type)
    precision.prepare(model)
    identity = {**config.identity(), "encoder": encoder.get("weights_sha256") or encoder.get("sha256") or "random",
                "labels": cases.labels.to_json(),
                # a cosine decays over the planned steps: resuming with another length would bend the curve
                **({"schedule_steps": total_steps} if config.lr_schedule == "cosine" else {})}
    state = TrainState()
    if config.resume:
        state = restore_checkpoint(out / run_dir.CHECKPOINT, identity, cases.fingerprint(), dist, model, optimizer,
                                   scheduler, precision, what="cases")
    if dist.enabled:
        model = wrap_ddp(model, device)

    dataset = LabelledCrops(cases.train, [cases.lut(c) for c in cases.train], preset.img_size,
                            config.crops_per_volume, config.seed,
                            organs=[cases.organ_mask(c) for c in cases.train] if cases.partial else None,
                            classes=crop_classes(config, cases))
    loader = make_loader(dataset, sampler, workers, config.seed, pin_memory=device.type == "cuda")

    def train_batches(epoch: int, start_step: int):
        sampler.set_epoch(epoch, start_step)
        return loader

    outputs = _Outputs(config, out, preset, cases, encoder, precision, dist, sampler, identity, settings, feature_size)
    parts = TrainParts(
        model=model, optimizer=optimizer, scheduler=scheduler, precision=precision,
        compute_loss=_dice_ce_loss(cases.partial),
        train_batches=train_batches, steps_per_epoch=sampler.steps_per_epoch, device=device,
        evaluate=_validation(config, cases, model, preset, device, precision, dist),
        on_checkpoint=lambda st, reason: outputs.checkpoint(st, reason, model, optimizer, scheduler),
    )
    compute = describe_compute(device, precision.mode)
    start = {"stage": "finetune", **compute, "processes": dist.world_size,
             "train_cases": len(cases.train), "val_cases": len(cases.val), "skipped": len(cases.skipped),
             "labels": cases.labels.to_json(), "steps_per_epoch": sampler.steps_per_epoch,
             "total_steps": total_steps, "resumed_at_step": state.step,
             "global_batch_volumes": sampler.global_batch, "crops_per_volume": config.crops_per_volume,
             "patch_size": preset.img_size, "preset": preset.name, "encoder_transferred": encoder["transferred"],
             "partial": partial_summary(cases)}
    # a stop at an epoch end keeps that epoch's checkpoint, whose plots may have been skipped
    state = train_reporting(session, parts, state, loop_config, start, preset.img_size, config.batch_size,
                            on_stop=outputs.plot)
    return report_done(session, {**outputs.finish(state, model), "compute": compute})


def _output_shares(config: FinetuneConfig, cases: CaseSet, start: StartingModel | None):
    """(C,) class shares of the training voxels for the head's starting bias, or None (``--output-bias random``, or a
    ``--from-model`` run, whose head is the package's)."""
    if config.output_bias != "prior" or start is not None:
        return None
    return class_shares(cases.train, [cases.lut(c) for c in cases.train], len(cases.labels) + 1)


def crop_classes(config: FinetuneConfig, cases: CaseSet) -> int | None:
    """The class count for class-balanced crop centres (background included), or None for the tutorial's draw."""
    return len(cases.labels) + 1 if config.crop_centres == "classes" else None


def partial_options(config: FinetuneConfig) -> PartialOptions:
    return PartialOptions(config.slice_axis if config.undrawn_slices == "unknown" else None, config.partial_organs)


def partial_summary(cases: CaseSet) -> dict | None:
    """For the start event and the card: which cases annotate only some slices or organs (None: none does)."""
    scored = [c for c in cases.val if c.scored_voxels() is not None]
    if not cases.partial and not scored:
        return None
    every = cases.train + cases.val
    return {"loss": PARTIAL_LOSS,
            "partial_slices": [c.name for c in cases.train if c.annotated_path is not None] + [c.name for c in scored],
            "partial_organs": {c.name: sorted(cases.organs_of(c)) for c in every if cases.organs_of(c) is not None},
            "validation": "Dice on the voxels and organs each validation case's entry annotates (whole otherwise)"}


def starting_choice(config: FinetuneConfig, start: StartingModel) -> EncoderChoice:
    """The network of ``--from-model``: its preset and patch size (another ``--preset``/``--patch-size`` refused)."""
    for option, given, fixed in (("--preset", config.preset, start.preset.name),
                                 ("--patch-size", config.patch_size, start.preset.img_size)):
        if given is not None and given != fixed:
            raise SSLSegError(f"{option} {given} differs from the model package's {fixed} ({config.from_model})",
                              f"leave out {option}: a retrained model keeps its network")
    defaults, ignored = FinetuneConfig(data_dir="", out_dir=""), []
    for name, kept in (("spacing", start.settings.spacing_mm), ("ct_window", start.settings.ct_window),
                       ("feature_size", start.feature_size)):
        given, default = getattr(config, name), getattr(defaults, name)
        user_set = given is not None and (default is None or _as_tuple(given) != _as_tuple(default))
        if user_set and _as_tuple(given) != _as_tuple(kept):
            ignored.append(f"--{name.replace('_', '-')}")
    if ignored:
        log.warning("%s: the model package's own values are used (%s); a retrained model keeps its preprocessing "
                    "and network", ", ".join(ignored), config.from_model)
    return EncoderChoice(None, start.preset, start.origin)


def _as_tuple(value) -> tuple:
    return tuple(float(v) for v in value) if isinstance(value, (list, tuple)) else (float(value),)


def _model(config: FinetuneConfig, choice: EncoderChoice, out_channels: int, device, feature_size: int,
           start: StartingModel | None = None, shares=None):
    """UNETR (seeded: the same initial weights in every process) with the encoder transferred into its ViT (or the
    whole starting model's weights), its head's bias at log(``shares``) when given ((C,) class shares); and the
    provenance entry saying where the weights came from and what the transfer did."""
    torch.manual_seed(config.seed)
    model = build_unetr(choice.preset, out_channels, feature_size)
    if shares is not None:
        set_prior_bias(model, shares)
    encoder = dict(choice.origin)
    if start is not None:
        report = load_starting_weights(model, start.package.state_dict)
        new = out_channels - 1 - len(start.labels)
        encoder.update(transferred=report["transferred"], grown=report["grown"],
                       summary=f"continued from the model package {config.from_model} ({len(start.labels)} organs "
                               f"kept{f', {new} new' if new else ''}; {report['transferred']} tensors)")
    elif choice.state is None:
        encoder.update(transferred=0, summary="random initialisation (--encoder none)")
    else:
        report = load_encoder_into(model, choice.state, resize_position_embedding_to_fit=True)
        encoder.update(report.to_dict(), summary=report.summary())
    return model.to(device), encoder


def _dice_ce_loss(partial: bool = False):
    """``(model, batch) -> LossOutput``: MONAI ``DiceCELoss`` (one-hot targets, softmax) over every crop; with
    ``partial``, its marginal form on the annotated voxels (:func:`sslseg.finetune.partial_loss.partial_dice_ce`)."""
    from monai.losses import DiceCELoss

    loss = DiceCELoss(to_onehot_y=True, softmax=True)

    def compute(model, batch: dict) -> LossOutput:
        images = batch["image"].flatten(0, 1)  # (B, N, 1, S, S, S) -> (B*N, 1, S, S, S)
        labels = batch["label"].flatten(0, 1).long()
        logits = model(images)
        with full_precision(logits):
            if not partial:
                return LossOutput(loss(logits.float(), labels), {})
            crops = batch["image"].shape[1]
            organs = batch["organs"].repeat_interleave(crops, dim=0)  # (B, C) -> (B*N, C)
            return LossOutput(partial_dice_ce(logits, labels, batch["annotated"].flatten(0, 1), organs), {})

    return compute


def _validation(config: FinetuneConfig, cases: CaseSet, model, preset, device, precision, dist):
    if not cases.val or not config.val_every:
        return None
    mine = cases.val[dist.rank::dist.world_size]
    return DiceValidation(model, mine, [cases.lut(c) for c in mine], cases.labels, preset.img_size, config.overlap,
                          device, precision, dist, window_batch=config.crops_per_volume if device.type == "cuda" else 1,
                          organs=[cases.organ_mask(c) for c in mine])


class _Outputs:
    """Writes the checkpoint, the model package (best validation) and the curves (rank 0 only)."""

    def __init__(self, config, out, preset, cases, encoder, precision, dist, sampler, identity, settings,
                 feature_size) -> None:
        self.config, self.out, self.preset, self.cases, self.encoder = config, out, preset, cases, encoder
        self.settings, self.feature_size = settings, feature_size
        self.precision, self.dist, self.sampler, self.identity = precision, dist, sampler, identity
        self._plotted_at, self._plotted_step = -PLOT_EVERY_S, None

    def checkpoint(self, state: TrainState, reason: str, model, optimizer, scheduler) -> None:
        if not self.dist.is_main:
            return
        if reason == "epoch" and _is_best(state.epochs):
            self.write_package(state, model, state.epochs[-1])
        save_checkpoint(self.out / run_dir.CHECKPOINT, checkpoint_content(
            model, optimizer, scheduler, self.precision, state, self.dist, self.identity, self.cases.fingerprint(),
            preset=self.preset.to_dict(), encoder=self.encoder.get("summary")))
        if reason != "step":
            validated = reason == "epoch" and state.epochs[-1].get("val_dice") is not None
            self.plot(state, force=reason != "epoch" or validated)

    def write_package(self, state: TrainState, model, validated: dict | None) -> None:
        """The package with the model's current weights; ``validated``: the epoch record they were scored in."""
        c = self.config
        training = {"epochs_done": state.epoch, "steps": state.step, "batch_volumes": c.batch_size,
                    "crops_per_volume": c.crops_per_volume, "global_batch_crops": self.sampler.global_batch *
                    c.crops_per_volume, "patch_size": self.preset.img_size, "optimizer": "AdamW", "lr": c.lr,
                    "lr_schedule": c.lr_schedule, "warmup_steps": c.warmup_steps, "weight_decay": c.weight_decay,
                    "grad_clip": c.grad_clip, "output_bias": "package's" if c.from_model else c.output_bias,
                    "loss": PARTIAL_LOSS if self.cases.partial else "monai DiceCELoss(to_onehot_y=True, softmax=True)",
                    "partial_annotations": partial_summary(self.cases),
                    "augmentation": describe_transforms(tutorial_transforms(
                        self.preset.img_size, c.crops_per_volume, annotated=self.cases.partial,
                        classes=crop_classes(c, self.cases))),
                    "seed": c.seed, "amp": self.precision.mode, "processes": self.dist.world_size,
                    "compute": describe_compute(self.precision.device_type, self.precision.mode)}
        validation = validation_card(validated, [case.name for case in self.cases.val], self.preset.img_size,
                                     c.overlap) if validated else None
        card = model_card(self.preset, self.feature_size, self.cases.labels, self.settings, self.encoder,
                          training, self.cases.fingerprint(), validation)
        bare = getattr(model, "module", model)
        save_model_package(self.out, bare.state_dict(), card, overwrite=True)

    def plot(self, state: TrainState, force: bool = True) -> None:
        """Loss and Dice curves, unless drawn less than ``PLOT_EVERY_S`` ago (``force``: unless already current)."""
        if self._plotted_step == state.step or (not force and time.monotonic() - self._plotted_at < PLOT_EVERY_S):
            return
        self._plotted_at, self._plotted_step = time.monotonic(), state.step
        title = f"UNETR {self.preset.name}, patch {self.preset.img_size}"
        plot_loss_curve(self.out / run_dir.LOSS_CURVE, state.step_losses, state.epochs, title=f"DiceCE, {title}")
        plot_metric_curve(self.out / DICE_CURVE, state.epochs, "val_dice", "val_dice_per_organ",
                          label="validation Dice (mean)", title=title)

    def finish(self, state: TrainState, model) -> dict:
        best = _best(state.epochs)
        if self.dist.is_main:
            if best is None or not (self.out / CARD_NAME).is_file():
                self.write_package(state, model, None)  # never validated: the last weights
            self.plot(state)
        last = state.epochs[-1] if state.epochs else {}
        return {"model_dir": str(self.out), "epochs_done": state.epoch, "steps": state.step,
                "train_loss": last.get("train_loss"), "encoder_transferred": self.encoder["transferred"],
                "best_val_dice": best["val_dice"] if best else None,
                "best_val_dice_per_organ": best["val_dice_per_organ"] if best else None,
                "best_step": best["step"] if best else None, "package": str(self.out / CARD_NAME)}


def _best(epochs: list[dict]) -> dict | None:
    """The first epoch record with the highest validation Dice."""
    scored = [e for e in epochs if e.get("val_dice") is not None]
    return max(scored, key=lambda e: e["val_dice"]) if scored else None


def _is_best(epochs: list[dict]) -> bool:
    """Whether the last epoch's validation Dice beats every earlier one."""
    return bool(epochs) and epochs[-1].get("val_dice") is not None and _best(epochs) is epochs[-1]
