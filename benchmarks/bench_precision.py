"""Precision parity and speed: bf16 against fp32 on the same seed, on this machine's CPU (class in every row).

What decides ``--amp auto`` (:mod:`sslseg.training.amp`). Three modes, each from the same seed and data:

* **fp32**: ``--amp off``;
* **bf16**: ``--amp bf16`` as the engine runs it: matrix products and convolutions in bf16, losses in float32, fused
  attention whose softmax stays in float32 (:mod:`sslseg.training.fp32_islands`);
* **bf16, all ops** (the engine before this policy): everything autocast lowers on a CPU, including the attention
  softmax's output and the fine-tuning's DiceCE.

Measured:

1. pretraining (MONAI recipe, tiny ViTAutoEnc, 32^3 patches of 4 mm synthetic CTs, batch 4, 40 steps, 3 seeds): mean
   loss of the first and the last 8 steps;
2. fine-tuning (tiny UNETR, 8 training + 2 held-out 6 mm organ phantoms, the test suite's learning settings,
   ``FINETUNE_STEPS`` steps, validated every 80, 3 seeds): best held-out mean Dice over 8 organs;
3. segmentation with the fp32-trained model of 2 (seed 0: a *trained* model): share of voxels whose label equals
   fp32's, on both held-out cases, and the mean Dice against the truth per mode;
4. speed: a tiny UNETR training step (96^3, batch 2) and one vit-b UNETR window forward (96^3), median of 3.

Run alone: ``python -m benchmarks.run precision`` (about 35 minutes on 2 cores with bf16 instructions; on an AVX2-only
CPU the bf16 rows take far longer).
"""

from __future__ import annotations

import contextlib
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.result import BenchResult, median_seconds

SEEDS = (0, 1, 2)
FINETUNE_STEPS = 800
MODES = {"fp32": ("off", True), "bf16": ("bf16", True), "bf16, all ops": ("bf16", False)}


def run() -> BenchResult:
    from sslseg.training.compute import cpu_class

    result = BenchResult(f"Precision parity, bf16 against fp32 (CPU class {cpu_class()})",
                         ["measure", "fp32", "bf16", "bf16, all ops", "notes"])
    with tempfile.TemporaryDirectory(prefix="bench_precision_") as folder:
        folder = Path(folder)
        result.rows += _pretraining_rows(folder)
        models, finetune_rows = _finetuning(folder)
        result.rows += finetune_rows
        result.rows += _segmentation_rows(folder, models)
    result.rows += _speed_rows()
    result.notes += [
        "bf16 = the engine's bf16 (losses in float32, fused attention); 'bf16, all ops' = "
        "everything autocast lowers on a CPU, as the engine did before this policy.",
        "Same seed, same data, same initial weights in every column; spreads are over seeds (min..max).",
        "agreement: voxels of the two held-out cases whose label equals the fp32 segmentation's (same fp32-trained "
        "model), over all voxels and over the voxels fp32 labels as an organ.",
        f"1-minute load average at the end: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores (above that, other "
        "work shared the CPU and the s/step rows are inflated; the parity rows do not depend on it).",
    ]
    return result


@contextlib.contextmanager
def precision_mode(name: str):
    """``--amp`` for ``name``; for 'bf16, all ops' the float32 islands are switched off for the duration."""
    import sslseg.finetune.run as finetune_run
    import sslseg.ssl.monai_recipe as recipe
    from sslseg.training import amp

    amp_mode, islands = MODES[name]
    saved = (amp.Precision.prepare, finetune_run.full_precision, recipe.full_precision)
    if not islands:
        amp.Precision.prepare = lambda self, model: model
        finetune_run.full_precision = recipe.full_precision = lambda tensor: contextlib.nullcontext()
    try:
        yield amp_mode
    finally:
        amp.Precision.prepare, finetune_run.full_precision, recipe.full_precision = saved


# ------------------------------------------------------------------------------------------------------------------
# 1. pretraining


def _pretraining_rows(folder: Path) -> list[list]:
    from sslseg.synth.cohort import write_unlabelled

    data = folder / "unlabelled"
    write_unlabelled(data, 5, size=(44, 40, 32), spacing=4.0, seed=3)
    first, last, speed = {}, {}, {}
    for name in MODES:
        for seed in SEEDS:
            print(f"  pretraining, {name}, seed {seed}", flush=True)
            losses, seconds = _pretrain(data, folder / f"pretrain-{name}-{seed}", folder / "cache", name, seed)
            first.setdefault(name, []).append(statistics.mean(losses[:8]))
            last.setdefault(name, []).append(statistics.mean(losses[-8:]))
            speed.setdefault(name, []).append(seconds / len(losses))
    return [["pretraining loss, first 8 steps (mean, seeds min..max)", *(_spread(first[m]) for m in MODES), ""],
            ["pretraining loss, last 8 of 40 steps", *(_spread(last[m]) for m in MODES),
             "last / first: " + ", ".join(f"{m} {statistics.mean(last[m]) / statistics.mean(first[m]):.3f}"
                                          for m in MODES)],
            ["pretraining s/step (tiny, 32^3, batch 4)", *(f"{statistics.median(speed[m]):.3f}" for m in MODES), ""]]


def _pretrain(data: Path, out: Path, cache: Path, name: str, seed: int):
    import torch

    from sslseg.pretrain.config import PretrainConfig
    from sslseg.pretrain.run import pretrain

    with precision_mode(name) as amp:
        start = time.perf_counter()
        pretrain(PretrainConfig(data_dir=str(data), out_dir=str(out), cache_dir=str(cache), preset="tiny",
                                patch_size=32, spacing=4.0, batch_size=4, patches_per_volume=8, epochs=5, val_every=0,
                                workers=0, checkpoint_every=0, events=os.devnull, seed=seed, amp=amp, device="cpu"))
        seconds = time.perf_counter() - start
    state = torch.load(out / "checkpoint.pt", map_location="cpu", weights_only=True)["state"]
    return [loss for _, loss in state["step_losses"]], seconds


# ------------------------------------------------------------------------------------------------------------------
# 2. fine-tuning


def _finetuning(folder: Path):
    from sslseg.synth.cohort import write_labelled

    data = folder / "organs"
    write_labelled(data, 10, size=(52, 40, 34), spacing=6.0, seed=5)
    dice, speed = {}, {}
    for name in MODES:
        for seed in SEEDS:
            print(f"  fine-tuning, {name}, seed {seed}", flush=True)
            best, seconds = _finetune(data, folder, name, seed)
            dice.setdefault(name, []).append(best)
            speed.setdefault(name, []).append(seconds)
    rows = [[f"fine-tuning: best held-out mean Dice, {FINETUNE_STEPS} steps (seeds min..max)",
             *(_spread(dice[m]) for m in MODES), "8 organs, 2 held-out phantoms"],
            ["fine-tuning s/step incl. validation (tiny, 32^3)", *(f"{statistics.median(speed[m]):.3f}" for m in MODES),
             ""]]
    return {"model": folder / f"finetune-fp32-{SEEDS[0]}", "data": data}, rows


def _finetune(data: Path, folder: Path, name: str, seed: int):
    """(best held-out mean Dice, seconds per step) of one fine-tuning."""
    from sslseg.finetune.config import FinetuneConfig
    from sslseg.finetune.run import finetune

    with precision_mode(name) as amp:
        start = time.perf_counter()
        summary = finetune(FinetuneConfig(
            data_dir=str(data), out_dir=str(folder / f"finetune-{name}-{seed}"), cache_dir=str(folder / "organ-cache"),
            encoder="none", preset="tiny", patch_size=32, feature_size=8, crops_per_volume=2, spacing=(6.0, 6.0, 6.0),
            lr=3e-3, epochs=100, max_steps=FINETUNE_STEPS, val_every=10, val_fraction=0.2, workers=0,
            checkpoint_every=0, events=os.devnull, seed=seed, amp=amp, device="cpu"))
        return summary["best_val_dice"], (time.perf_counter() - start) / summary["steps"]


# ------------------------------------------------------------------------------------------------------------------
# 3. segmentation with a trained model


def _segmentation_rows(folder: Path, models: dict) -> list[list]:
    from sslseg.io import read_volume
    from sslseg.package.model_package import load_model_package
    from sslseg.segmentation.segment import SegmentOptions, Segmenter

    package = load_model_package(models["model"])
    cases = package.card["validation"]["cases"]
    images = [read_volume(models["data"] / "imagesTr" / f"{c}.nii.gz") for c in cases]
    truths = [read_volume(models["data"] / "labelsTr" / f"{c}.nii.gz").array for c in cases]
    labels, seconds = {}, {}
    for name in MODES:
        with precision_mode(name) as amp:
            segmenter = Segmenter(package, SegmentOptions(device="cpu", amp=amp))
            start = time.perf_counter()
            labels[name] = [segmenter.segment(image).array for image in images]
            seconds[name] = time.perf_counter() - start
    reference = np.concatenate([a.ravel() for a in labels["fp32"]])
    organ = reference > 0
    agreement, organ_agreement, dice = {}, {}, {}
    for name in MODES:
        mine = np.concatenate([a.ravel() for a in labels[name]])
        agreement[name] = float((mine == reference).mean())
        organ_agreement[name] = float((mine[organ] == reference[organ]).mean())
        dice[name] = float(np.mean([_mean_dice(p, t) for p, t in zip(labels[name], truths)]))
    return [["segmentation: voxels labelled as fp32 labels them (all)", *(f"{agreement[m]:.5f}" for m in MODES),
             "fp32-trained model, 2 held-out cases"],
            ["segmentation: same, voxels fp32 calls an organ", *(f"{organ_agreement[m]:.5f}" for m in MODES), ""],
            ["segmentation: mean Dice against the truth", *(f"{dice[m]:.4f}" for m in MODES), ""]]


def _mean_dice(predicted: np.ndarray, truth: np.ndarray) -> float:
    from sslseg.evaluation.overlap import dice

    return float(np.nanmean([dice(predicted == v, truth == v) for v in np.unique(truth) if v]))


# ------------------------------------------------------------------------------------------------------------------
# 4. speed


def _speed_rows() -> list[list]:
    tiny = {m: _training_step_seconds(m) for m in MODES}
    vitb = {m: _window_seconds(m) for m in MODES}
    return [["tiny UNETR training step s (96^3, batch 2)", *(f"{tiny[m]:.2f}" for m in MODES), "median of 3"],
            ["vit-b UNETR one window forward s (96^3)", *(f"{vitb[m]:.2f}" for m in MODES), "median of 3"]]


def _training_step_seconds(name: str) -> float:
    import torch
    from monai.losses import DiceCELoss

    from sslseg.models.presets import get_preset
    from sslseg.models.unetr import build_unetr
    from sslseg.training.amp import Precision, full_precision

    with precision_mode(name) as amp:
        torch.manual_seed(0)
        model = build_unetr(get_preset("tiny").with_img_size(96), 9, 16)
        precision = Precision(amp, "cpu")
        precision.prepare(model)
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
        loss = DiceCELoss(to_onehot_y=True, softmax=True)
        images, labels = torch.rand(2, 1, 96, 96, 96), torch.randint(0, 9, (2, 1, 96, 96, 96))

        def step():
            with precision.autocast():
                logits = model(images)
                with full_precision(logits) if MODES[name][1] else contextlib.nullcontext():
                    value = loss(logits.float() if MODES[name][1] else logits, labels)
            optimizer.zero_grad()
            value.backward()
            optimizer.step()

        step()  # warm-up
        return median_seconds(step, repeats=3)


def _window_seconds(name: str) -> float:
    import torch

    from sslseg.models.presets import get_preset
    from sslseg.models.unetr import build_unetr
    from sslseg.training.amp import Precision

    with precision_mode(name) as amp:
        torch.manual_seed(0)
        model = build_unetr(get_preset("vit-b"), 9, 16).eval()
        precision = Precision(amp, "cpu")
        precision.prepare(model)
        window = torch.rand(1, 1, 96, 96, 96)

        def forward():
            with torch.no_grad(), precision.autocast():
                model(window)

        forward()  # warm-up
        return median_seconds(forward, repeats=3)


def _spread(values: list[float]) -> str:
    return f"{statistics.mean(values):.3f} ({min(values):.3f}..{max(values):.3f})"
