"""``sslseg study LABELLED_DIR --encoder RUN_DIR ... --cases 1 2 4 --seeds 3 --out STUDY_DIR``: the label-efficiency
study (does pretraining help?), resumable and shardable; ``--collect`` merges shards."""

from __future__ import annotations

import argparse
from pathlib import Path

from sslseg.cli.finetune_command import millimetres
from sslseg.cli.training_options import add_intensity_options, non_negative_int, positive_int
from sslseg.errors import SSLSegError
from sslseg.finetune.config import CROP_CENTRES, OUTPUT_BIASES, FinetuneConfig
from sslseg.finetune.recipes import describe
from sslseg.training.lr_schedule import SCHEDULES

DEFAULT_STEPS = 500
#: The fine-tuning options a study passes to every cell.
FINETUNE_OPTIONS = ("preset", "patch_size", "feature_size", "crops_per_volume", "max_steps", "lr", "spacing",
                    "ct_window", "modality", "device", "amp", "workers", "lr_schedule", "warmup_steps", "crop_centres",
                    "output_bias")

EPILOG = f"""\
every cell (N, initialisation, seed) is a fine-tuning with the same budget (--max-steps, default {DEFAULT_STEPS}) on
the first N cases of one fixed order (nested subsets), scored on the same held-out cases (Dice and HD95 per organ,
as `sslseg segment` + `sslseg evaluate`). Outputs in STUDY_DIR: study.json (every cell), report.md (mean Dice per
initialisation and N, spread over seeds, paired difference SSL - random with a bootstrap interval),
label_efficiency.png, cells/<id>/ (each a MODEL_DIR), plan.json. A killed study continues where it stopped.

a cluster: run shard i of n (1-based) in each job of an array, e.g. SLURM (sbatch --array=1-4):
  sslseg study DATA --encoder RUN --out STUDY --shard $SLURM_ARRAY_TASK_ID/$SLURM_ARRAY_TASK_COUNT
then `sslseg study --collect --out STUDY` (add --from DIR for shards written to other folders)."""


def register(subparsers) -> None:
    from sslseg.models.presets import PRESETS

    parser = subparsers.add_parser(
        "study", help="measure whether pretraining helps: fine-tune with 1, 2, 4... labelled cases from random "
        "and from each encoder, several seeds, one held-out set",
        description="The label-efficiency study of MONAI's self-supervised tutorial, automated: mean Dice on a fixed "
        "held-out set for each number of labelled cases N and each initialisation, over seeds.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    d = FinetuneConfig(data_dir="", out_dir="")
    parser.add_argument("data_dir", nargs="?", metavar="LABELLED_DIR", help="labelled cases, as for `sslseg finetune`")
    parser.add_argument("--out", required=True, metavar="STUDY_DIR", help="folder of the study (resumed if it holds it)")
    parser.add_argument("--encoder", dest="encoders", action="append", default=[], metavar="RUN_DIR|FILE",
                        help="an encoder to compare with random initialisation (repeat for several)")
    parser.add_argument("--cases", dest="case_counts", type=positive_int, nargs="+", default=[1, 2, 4], metavar="N",
                        help="numbers of labelled training cases (default 1 2 4)")
    parser.add_argument("--seeds", type=positive_int, default=3, help="fine-tunings per N and initialisation (default 3)")
    parser.add_argument("--test-cases", type=positive_int, default=2, metavar="K",
                        help="held-out cases every cell is scored on (default 2)")
    parser.add_argument("--subset-seed", type=int, default=0, help="draws the held-out set and the subsets (default 0)")
    parser.add_argument("--shard", metavar="i/n", help="run the i-th of n shares of the cells (cluster job arrays)")
    parser.add_argument("--collect", action="store_true", help="only merge finished cells and write the report")
    parser.add_argument("--from", dest="shard_dirs", action="append", default=[], type=Path, metavar="DIR",
                        help="with --collect: another shard's STUDY_DIR to merge (repeat)")
    group = parser.add_argument_group("fine-tuning of every cell")
    group.add_argument("--max-steps", type=positive_int, default=DEFAULT_STEPS,
                       help=f"optimisation steps per cell, the same for every initialisation (default {DEFAULT_STEPS})")
    group.add_argument("--preset", choices=sorted(PRESETS), help="ViT size (default: the encoders'; vit-b for random)")
    group.add_argument("--patch-size", type=positive_int, metavar="S", help="crop edge (default: the encoders')")
    for option, field, kind, text in (("--feature-size", "feature_size", positive_int, "UNETR decoder width"),
                                      ("--crops-per-volume", "crops_per_volume", positive_int, "crops per case, step"),
                                      ("--lr", "lr", float, "AdamW learning rate")):
        group.add_argument(option, type=kind, metavar="N" if kind is positive_int else None,
                           help=f"{text} (default per preset, {describe(field)})")
    group.add_argument("--spacing", type=millimetres, nargs=3, metavar=("X", "Y", "Z"),
                       help=f"voxel size in mm (default per preset, {describe('spacing')})")
    group.add_argument("--lr-schedule", choices=SCHEDULES,
                       help=f"as for `sslseg finetune` (default per preset, {describe('lr_schedule')})")
    group.add_argument("--warmup-steps", type=non_negative_int, metavar="N",
                       help=f"as for `sslseg finetune` (default per preset, {describe('warmup_steps')})")
    group.add_argument("--crop-centres", choices=CROP_CENTRES,
                       help=f"as for `sslseg finetune` (default per preset, {describe('crop_centres')})")
    group.add_argument("--output-bias", choices=OUTPUT_BIASES,
                       help=f"as for `sslseg finetune` (default per preset, {describe('output_bias')})")
    add_intensity_options(group, d, "MONAI's UNETR tutorial")
    group.add_argument("--device", default=d.device, help="auto, cuda, cuda:N, mps or cpu (default auto)")
    group.add_argument("--amp", default=d.amp, choices=("auto", "bf16", "fp16", "off"),
                       help="mixed precision (default auto: off on CPUs)")
    group.add_argument("--workers", type=non_negative_int, metavar="N", help="data-loading processes per cell")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from sslseg.study.plan import parse_shard
    from sslseg.study.report import REPORT
    from sslseg.study.run import StudyConfig, collect, study

    if args.collect:
        result = collect(Path(args.out), args.shard_dirs)
    else:
        if not args.data_dir:
            raise SSLSegError("LABELLED_DIR is missing", "sslseg study LABELLED_DIR --out STUDY_DIR ... (or --collect)")
        if args.shard_dirs:
            raise SSLSegError("--from merges shards and goes with --collect", "add --collect, or leave out --from")
        finetune = {name: getattr(args, name) for name in FINETUNE_OPTIONS}
        result = study(StudyConfig(data_dir=args.data_dir, out_dir=args.out, encoders=args.encoders,
                                   case_counts=args.case_counts, seeds=args.seeds, test_cases=args.test_cases,
                                   subset_seed=args.subset_seed,
                                   shard=parse_shard(args.shard) if args.shard else None, finetune=finetune))
    print((Path(args.out) / REPORT).read_text(encoding="utf-8"))
    print(f"cells done: {result['cells_done']} of {result['cells_planned']}")
    return 0
