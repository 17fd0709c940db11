"""``sslseg pretrain DATA_DIR --out RUN_DIR``: self-supervised pretraining of a 3-D ViT encoder."""

from __future__ import annotations

import argparse

from sslseg.cli.training_options import (add_intensity_options, add_optimiser_options, add_run_options,
                                          config_from_args, non_negative_int, positive_int)
from sslseg.pretrain.config import PretrainConfig

DEFAULTS = PretrainConfig(data_dir="", out_dir="")

EPILOG = """\
outputs in RUN_DIR:
  encoder.safetensors, encoder.json   the encoder with the lowest validation loss and its card (fine-tuning
                                      loads these; without validation data, the last encoder)
  encoder_last.safetensors, .json     the encoder after the last step and its card
  checkpoint.pt                       full training state, for --resume
  events.jsonl, train_stats.json      progress events (JSON lines) and the current state
  loss_curve.png                      training and validation loss
  cache/                              preprocessed volumes (reused by later runs and by --resume)

methods (--method; options with --method-option KEY=VALUE, see each method's module docstring):
{methods}

several GPUs: torchrun --nproc-per-node N -m sslseg pretrain DATA_DIR --out RUN_DIR ...
(--batch-size is per process; rank 0 writes the outputs)"""


def register(subparsers) -> None:
    from sslseg.models.presets import PRESETS
    from sslseg.ssl.table import METHODS, method_help

    parser = subparsers.add_parser(
        "pretrain",
        help="self-supervised pretraining of a 3-D ViT on a folder of unlabelled CT/MR volumes",
        description="Pretrain a 3-D ViT encoder without labels (MONAI's in-/out-painting + contrastive recipe by "
        "default) on every volume under DATA_DIR. Resumable, DDP-ready (torchrun), progress as JSON lines.",
        epilog=EPILOG.format(methods=method_help()),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    d = DEFAULTS
    parser.add_argument("data_dir", metavar="DATA_DIR", help="folder of NIfTI/NRRD/MetaImage files or DICOM series")
    parser.add_argument("--out", dest="out_dir", required=True, metavar="RUN_DIR", help="folder for every output")
    names = [n for name, entry in METHODS.items() for n in (name, *entry.aliases)]
    parser.add_argument("--method", default=d.method, choices=names, metavar="METHOD",
                        help=f"SSL method, one of {', '.join(METHODS)} (default {d.method}, alias 'monai'; listed "
                        "below)")
    parser.add_argument("--method-option", dest="method_options", action="append", type=key_value, default=[],
                        metavar="KEY=VALUE", help="an option of the method (repeatable), e.g. temperature=0.2; part "
                        "of the run's identity and recorded in the encoder card")
    parser.add_argument("--preset", default=d.preset, choices=sorted(PRESETS),
                        help=f"ViT size: tiny for tests and CPU demos, vit-b the paper's ViT-B/16 (default {d.preset})")
    parser.add_argument("--patch-size", type=positive_int, metavar="S",
                        help="training patch edge in voxels, a multiple of 16 (default: the preset's, 64 tiny / 96 vit-b)")
    parser.add_argument("--patches-per-volume", type=positive_int, default=d.patches_per_volume, metavar="N",
                        help=f"random patches per training volume and epoch (default {d.patches_per_volume})")
    parser.add_argument("--batch-size", type=positive_int, default=d.batch_size, metavar="N",
                        help=f"patches per step in each process (default {d.batch_size})")
    parser.add_argument("--warmup-steps", type=non_negative_int, default=d.warmup_steps, metavar="N",
                        help="linear learning-rate warm-up over N steps, constant after (default 0)")
    parser.add_argument("--temperature", type=float, default=d.temperature,
                        help=f"contrastive temperature of the MONAI recipe (default {d.temperature:g}, the MONAI "
                        "tutorial code's value; small values like its README's 0.005 are computed without overflow); "
                        "other methods with a temperature keep their own default unless this is set to another value")
    parser.add_argument("--val-every", type=non_negative_int, default=d.val_every, metavar="N",
                        help=f"validation L1 on held-out volumes every N epochs and at the end, 0 = never "
                        f"(default {d.val_every})")
    parser.add_argument("--val-fraction", type=float, default=d.val_fraction, metavar="F",
                        help=f"share of volumes held out for validation, at least one (default {d.val_fraction:g})")
    parser.add_argument("--spacing", type=float, default=d.spacing, metavar="MM",
                        help=f"resample volumes to this isotropic voxel size (default {d.spacing:g} mm)")
    parser.add_argument("--reduce", type=non_negative_int, metavar="K",
                        help="train only on patches centred on the slices a Hash-K near-duplicate reduction keeps "
                        "(Less is More; the paper's K is 6; see `sslseg reduce`); epochs shrink accordingly")
    parser.add_argument("--probe", metavar="LABELLED_DIR",
                        help="labelled cases (as for `sslseg finetune`) to probe the encoder on while it trains: "
                        "linear voxel Dice and kNN organ accuracy of its frozen features, beside a random "
                        "initialisation's, as epoch events and a panel of loss_curve.png (see `sslseg probe`)")
    parser.add_argument("--probe-every", type=positive_int, default=d.probe_every, metavar="N",
                        help=f"probe every N epochs and after the last (default {d.probe_every})")
    add_intensity_options(parser, d, "every tissue stays distinct; the MONAI tutorial used -57 164")
    add_optimiser_options(parser, d, "data")
    add_run_options(parser, d, "RUN_DIR", seeded="patches, views", cached="volumes")
    parser.set_defaults(run=run)


def key_value(text: str) -> tuple[str, str]:
    """``KEY=VALUE`` -> (key, value)."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"{text!r} is not KEY=VALUE")
    return key.strip().replace("-", "_"), value.strip()


def run(args) -> int:
    from sslseg.pretrain.run import pretrain

    args.method_options = dict(args.method_options or [])
    pretrain(config_from_args(PretrainConfig, args))
    return 0
