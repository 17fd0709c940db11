"""Partial annotations: ignoring undrawn slices and marginalising undrawn organs, against treating both as background.

The two experiments of ``Testing/partial_support.py`` (the cohorts the tests train on), over several seeds, with the
held-out Dice at every validation: (1) the liver drawn on every 10th axial slice of 8 training phantoms,
``--undrawn-slices unknown`` vs ``background``; (2) two training phantoms, one drawing liver and spleen, the other the
two kidneys, ``--partial-organs`` (marginal loss, Shi et al. 2021) vs the naive loss, at 8 mm so that a crop shows
the whole phantom (``partial_support.HALVES_SPACING_MM``). Tiny UNETR, 32^3 crops, lr 3e-3 constant, feature size 8,
2 crops, float32, random initialisation, one torch thread (as the tests); 2 fully labelled held-out phantoms.

Run alone: ``python -m benchmarks.run partial`` (about 25 minutes on 2 cores); ``BENCH_PARTIAL="organ halves"``
runs one experiment (about 6 minutes).
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
from pathlib import Path

from benchmarks.result import BenchResult
from benchmarks.run_events import read_events, validations

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "Testing"))  # the tests' cohorts and settings: the experiments are theirs
import partial_support  # noqa: E402
from finetune_support import FINETUNE_GRID, FINETUNE_SPACING_MM, FINETUNE_TINY, LEARNING  # noqa: E402
from pretrain_support import one_torch_thread  # noqa: E402

SEEDS = (0, 1, 2, 3, 4)
EXPERIMENTS = {
    # name: (cohort builder, training cases, steps, voxel size (mm), {variant: extra FinetuneConfig fields})
    "slices": ("slices_cohort", 8, 200, FINETUNE_SPACING_MM, {
        "undrawn slices = background": {}, "--undrawn-slices unknown": {"undrawn_slices": "unknown"}}),
    "organ halves": ("organ_halves_cohort", 2, 150, partial_support.HALVES_SPACING_MM, {
        "naive (undrawn organs = background)": {}, "--partial-organs (marginal)": {"partial_organs": True}}),
}
VALIDATE_EVERY_STEPS = 50


def run() -> BenchResult:
    with one_torch_thread():  # as the tests train (finetune_side_by_side): their seed-0 figures are these runs'
        return _run()


def _run() -> BenchResult:
    from sslseg.finetune.config import FinetuneConfig
    from sslseg.finetune.run import finetune
    from sslseg.synth.cohort import write_labelled
    from sslseg.training.compute import cpu_class

    table = BenchResult(f"Partial annotations: held-out Dice (mean over {len(SEEDS)} seeds, min..max; CPU class "
                        f"{cpu_class()})", ["experiment", "variant", "steps", "organ", "held-out Dice"])
    with tempfile.TemporaryDirectory(prefix="bench_partial_") as folder:
        folder = Path(folder)
        source = folder / "phantoms"
        write_labelled(source, 10, size=FINETUNE_GRID, spacing=FINETUNE_SPACING_MM, seed=5)
        names = [f"case_{i:03d}" for i in range(10)]
        chosen = os.environ.get("BENCH_PARTIAL", ",".join(EXPERIMENTS)).split(",")
        for experiment, (builder, train, steps, millimetres, variants) in EXPERIMENTS.items():
            if experiment not in chosen:
                continue
            datalist = getattr(partial_support, builder)(source, folder / builder, names[:train], names[8:])
            for number, (variant, extra) in enumerate(variants.items()):
                curves = []
                for seed in SEEDS:
                    out = folder / f"{builder}_variant{number}_seed{seed}"
                    settings = {**FINETUNE_TINY, **LEARNING, "spacing": (millimetres,) * 3, "events": os.devnull}
                    finetune(FinetuneConfig(
                        data_dir=str(datalist), out_dir=str(out), encoder="none", max_steps=steps,
                        val_every=VALIDATE_EVERY_STEPS // train, seed=seed, device="cpu", **settings, **extra))
                    curves.append(validations(read_events(out)))
                    print(f"  {experiment} / {variant} / seed {seed}: {curves[-1][-1]}", flush=True)
                table.rows += _rows(experiment, variant, curves)
    table.notes += [
        "Each row: the Dice of one organ on the 2 held-out phantoms at that step (mean over seeds, min..max over "
        "seeds); tiny UNETR, 32^3 crops (6 mm for the slices, 8 mm for the organ halves), lr 3e-3 constant, "
        "feature 8, 2 crops per step (organ/body centres), float32, random init, one torch thread.",
        f"1-minute load average at the end: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores.",
    ]
    return table


def _rows(experiment: str, variant: str, curves: list) -> list[list]:
    rows = []
    for index, (step, organs) in enumerate(curves[0]):
        if step % 100 and index != len(curves[0]) - 1:
            continue  # the table keeps every 100 steps and the last
        for organ in organs:
            values = [curve[index][1][organ] or 0.0 for curve in curves]
            rows.append([experiment, variant, step, organ,
                         f"{statistics.mean(values):.2f} ({min(values):.2f}..{max(values):.2f})"])
    return rows
