"""Does pretraining help here? ``sslseg study`` on the synthetic cohort: random init vs the MONAI recipe vs SimCLR vs
VICReg, N = 1, 2, 4 labelled cases, 3 seeds, 4 held-out cases (issue 18's honest numbers, measured on this CPU).

Everything at 4 mm with the tiny ViT on 32^3 patches (pretraining and fine-tuning at one scale, so the encoder sees
anatomy at the size it learnt it): ``PRETRAIN_CASES`` unlabelled phantoms, ``PRETRAIN_STEPS`` steps of batch 8 per
method (lr 1e-4, float32); ``LABELLED_CASES`` labelled phantoms of another seed; every cell fine-tunes
``FINETUNE_STEPS`` steps (lr 3e-3, UNETR feature size 8, 2 crops: the settings the fine-tuning tests measured to
learn on phantoms) and is scored on the same 4 held-out cases. The study's own report (``report.md``) and plot are
copied to ``benchmarks/results/study/``.

The same commands, by hand (what this runs)::

    sslseg synth --out U --cases 12 --size 60 52 44 --spacing 4 --seed 21
    sslseg synth --out L --cases 8 --size 60 52 44 --spacing 4 --labelled --seed 22
    sslseg pretrain U --out runs/simclr --method simclr --preset tiny --patch-size 32 --spacing 4 \\
        --batch-size 8 --max-steps 400 --amp off   (likewise inpaint-contrastive, vicreg)
    sslseg study L --out STUDY --encoder runs/inpaint-contrastive --encoder runs/simclr --encoder runs/vicreg \\
        --cases 1 2 4 --seeds 3 --test-cases 4 --preset tiny --patch-size 32 --spacing 4 4 4 --max-steps 150 \\
        --lr 3e-3 --feature-size 8 --crops-per-volume 2 --lr-schedule constant --warmup-steps 0 \\
        --crop-centres pos-neg --output-bias random --amp off

Run alone: ``python -m benchmarks.run study`` (about 30 minutes on 2 cores).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from benchmarks.result import BenchResult

METHODS = ("inpaint-contrastive", "simclr", "vicreg")
PRETRAIN_CASES, LABELLED_CASES = 12, 8
GRID, SPACING, PATCH = (60, 52, 44), 4.0, 32
PRETRAIN_STEPS, FINETUNE_STEPS = 400, 150
CASES, SEEDS, TEST_CASES = (1, 2, 4), 3, 4
HERE = Path(__file__).resolve().parent


def run() -> BenchResult:
    from sslseg.pretrain.config import PretrainConfig
    from sslseg.pretrain.run import pretrain
    from sslseg.study.run import StudyConfig, study
    from sslseg.synth.cohort import write_labelled, write_unlabelled
    from sslseg.training.compute import cpu_class

    with tempfile.TemporaryDirectory(prefix="bench_study_") as folder:
        folder = Path(folder)
        write_unlabelled(folder / "unlabelled", PRETRAIN_CASES, size=GRID, spacing=SPACING, seed=21)
        write_labelled(folder / "labelled", LABELLED_CASES, size=GRID, spacing=SPACING, seed=22)
        encoders = []
        for method in METHODS:
            out = folder / "runs" / method
            print(f"  pretraining {method}", flush=True)
            pretrain(PretrainConfig(data_dir=str(folder / "unlabelled"), out_dir=str(out), method=method,
                                    preset="tiny", patch_size=PATCH, spacing=SPACING, batch_size=8,
                                    max_steps=PRETRAIN_STEPS, val_every=0, workers=0, checkpoint_every=0,
                                    events=os.devnull, amp="off", device="cpu", cache_dir=str(folder / "cache")))
            encoders.append(str(out))
        finetune = {"preset": "tiny", "patch_size": PATCH, "spacing": [SPACING] * 3, "max_steps": FINETUNE_STEPS,
                    "lr": 3e-3, "feature_size": 8, "crops_per_volume": 2, "amp": "off", "device": "cpu",
                    # the settings the published table was measured with, not the tiny recipe's later defaults
                    "lr_schedule": "constant", "warmup_steps": 0, "crop_centres": "pos-neg",
                    "output_bias": "random", "workers": 0, "ct_window": [-175.0, 250.0], "modality": "auto"}
        result = study(StudyConfig(data_dir=str(folder / "labelled"), out_dir=str(folder / "study"),
                                   encoders=encoders, case_counts=list(CASES), seeds=SEEDS, test_cases=TEST_CASES,
                                   finetune=finetune))
        kept = HERE / "results" / "study"
        kept.mkdir(parents=True, exist_ok=True)
        for name in ("report.md", "label_efficiency.png", "study.json"):
            shutil.copy2(folder / "study" / name, kept / name)
    return _table(result, cpu_class())


def _table(result: dict, cpu: str) -> BenchResult:
    from sslseg.study.statistics import difference_text

    summary = result["summary"]
    table = BenchResult(f"Label efficiency on the synthetic cohort (CPU class {cpu})",
                        ["initialisation", *[f"N = {n}: mean Dice (min..max)" for n in CASES],
                         *[f"N = {n}: SSL - random [95% CI]" for n in CASES]])
    for init, row in summary["table"].items():
        means = [f"{row[str(n)]['mean']:.3f} ({row[str(n)]['min']:.3f}..{row[str(n)]['max']:.3f})" for n in CASES]
        differences = summary["differences"].get(init, {})
        diffs = [difference_text(differences[str(n)]) if str(n) in differences else "-" for n in CASES]
        table.rows.append([init, *means, *diffs])
    seconds = sum(c["seconds"] for c in result["cells"])
    table.notes += [
        f"{len(result['cells'])} cells ({SEEDS} seeds each), {seconds / 60:.0f} min of fine-tuning and scoring; "
        f"held out: {', '.join(result['plan']['held_out'])}; report and plot in benchmarks/results/study/.",
        f"Pretraining: {PRETRAIN_STEPS} steps of batch 8 on {PRETRAIN_CASES} phantoms; fine-tuning: "
        f"{FINETUNE_STEPS} steps, lr 3e-3, feature size 8, 2 crops; tiny ViT, 32^3 at {SPACING:g} mm, float32.",
        "Pairs for the interval: (seed, held-out case); pairs of one seed share a training run, so with 3 seeds the "
        "interval is optimistic. Synthetic phantoms: what this shows is whether the machinery measures an effect, "
        "not whether pretraining helps on real CT.",
        f"1-minute load average at the end: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores.",
    ]
    return table
