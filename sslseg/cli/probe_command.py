"""``sslseg probe ENCODER LABELLED_DIR``: frozen-encoder probes (linear voxel Dice, kNN organ accuracy) beside the
same ViT randomly initialised."""

from __future__ import annotations

import argparse
from pathlib import Path

from sslseg.cli.finetune_command import millimetres
from sslseg.cli.training_options import add_intensity_options, config_from_args, non_negative_int, positive_int
from sslseg.errors import SSLSegError
from sslseg.probes.run import ProbeConfig

DEFAULTS = ProbeConfig(encoder="none", data_dir="")


def register(subparsers) -> None:
    from sslseg.models.presets import PRESETS

    parser = subparsers.add_parser(
        "probe",
        help="measure an encoder's features on labelled cases without fine-tuning (linear and kNN probes)",
        description="Frozen-encoder probes, minutes instead of a fine-tuning: (a) a linear voxel classifier on the "
        "ViT's token features, upsampled to the voxels, fitted on crops of the training split and scored by "
        "sliding window on the held-out cases (per-organ Dice); (b) a cosine kNN of organ-centred patches, leave "
        "one case out (accuracy). Every number is reported for the encoder and for the same ViT randomly "
        "initialised, the baseline.",
    )
    d = DEFAULTS
    parser.add_argument("encoder", metavar="ENCODER", help="a `sslseg pretrain` RUN_DIR, a ViT weights file, or none")
    parser.add_argument("data_dir", metavar="LABELLED_DIR", help="labelled cases, as for `sslseg finetune`")
    parser.add_argument("--json", dest="out", type=Path, help="also write every number to this JSON file")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --json file")
    parser.add_argument("--preset", choices=sorted(PRESETS), help="ViT size (default: the encoder's; vit-b for none)")
    parser.add_argument("--patch-size", type=positive_int, metavar="S",
                        help="crop and window edge, a multiple of 16 (default: the encoder's)")
    parser.add_argument("--spacing", type=millimetres, nargs=3, default=list(d.spacing), metavar=("X", "Y", "Z"),
                        help="resample to this voxel size in mm (default 1.5 1.5 2, as fine-tuning)")
    add_intensity_options(parser, d, "as fine-tuning")
    parser.add_argument("--val-fraction", type=float, default=d.val_fraction, metavar="F",
                        help=f"share of cases the linear probe is scored on (default {d.val_fraction:g})")
    parser.add_argument("--crops-per-case", type=positive_int, default=d.crops_per_case, metavar="N",
                        help=f"crops of each fitting case for the linear probe (default {d.crops_per_case})")
    parser.add_argument("--steps", type=positive_int, default=d.steps, metavar="N",
                        help=f"Adam steps fitting the linear probe (default {d.steps})")
    parser.add_argument("--lr", type=float, default=d.lr, help=f"the linear probe's learning rate (default {d.lr:g})")
    parser.add_argument("--patches-per-organ", type=positive_int, default=d.patches_per_organ, metavar="N",
                        help=f"kNN patches per organ and case (default {d.patches_per_organ})")
    parser.add_argument("--k", type=positive_int, default=d.k, help=f"kNN neighbours (default {d.k})")
    parser.add_argument("--seed", type=int, default=d.seed, help="seeds the baseline's weights, crops and patches")
    parser.add_argument("--workers", type=non_negative_int, default=d.workers, metavar="N",
                        help="processes preprocessing the cases (default 0: this one)")
    parser.add_argument("--cache", dest="cache_dir", metavar="DIR",
                        help="cache of preprocessed cases (a fine-tuning's MODEL_DIR/cache can be shared)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from sslseg.probes.run import as_table, probe

    if args.out and args.out.exists() and not args.overwrite:
        raise SSLSegError(f"{args.out} already exists", "choose another --json file, or pass --overwrite")
    config = config_from_args(ProbeConfig, args)
    config.out = str(args.out) if args.out else None
    print(as_table(probe(config)))
    return 0
