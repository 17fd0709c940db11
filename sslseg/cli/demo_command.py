"""``sslseg demo``: the main job on built-in synthetic data, start to finish, with a report."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from sslseg.demo.pipeline import DemoContext, prepare_output, run_stages
from sslseg.demo.report import write_report
from sslseg.demo.stages import STAGES


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="run the whole pipeline on built-in synthetic data",
        description="Generate synthetic CT phantoms and run every stage of the pipeline on them; the results and "
        "report.md land in --out (a folder the demo wrote before is replaced).",
    )
    parser.add_argument("--out", type=Path, default=Path("demo-output"), help="output folder (default demo-output)")
    parser.add_argument("--unlabelled-cases", type=int, default=8, help="unlabelled volumes for pretraining")
    parser.add_argument("--labelled-cases", type=int, default=8,
                        help="labelled volumes for fine-tuning, a quarter held out for validation (default 8)")
    parser.add_argument("--size", type=int, default=64, help="phantom grid size in voxels (default 64)")
    parser.add_argument("--spacing", type=float, default=5.0, help="phantom voxel size in mm (default 5)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the synthetic cohort and of training")
    parser.add_argument("--preset", default="tiny", help="model size: tiny (CPU demo) or vit-b (the paper's, GPU)")
    parser.add_argument("--patch-size", type=int, default=32, help="training patch / sliding window edge (voxels)")
    parser.add_argument("--pretrain-epochs", type=int, default=30, help="self-supervised pretraining epochs")
    parser.add_argument("--finetune-epochs", type=int, default=150,
                        help="fine-tuning epochs, one step per training case each (default 150)")
    parser.add_argument("--device", default="auto", help="auto (GPU when there is one), cuda, mps or cpu")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    prepare_output(args.out)
    options = {
        "unlabelled_cases": args.unlabelled_cases,
        "labelled_cases": args.labelled_cases,
        "size": (args.size,) * 3,
        "spacing": (args.spacing,) * 3,
        "seed": args.seed,
        "preset": args.preset,
        "patch_size": args.patch_size,
        "pretrain_epochs": args.pretrain_epochs,
        "finetune_epochs": args.finetune_epochs,
        "device": args.device,
    }
    context = DemoContext(out=args.out, options=options)
    start = time.perf_counter()
    run_stages(context, STAGES)
    write_report(context)
    print(f"demo finished in {time.perf_counter() - start:.0f} s; report: {context.artefacts['report']}")
    return 0
