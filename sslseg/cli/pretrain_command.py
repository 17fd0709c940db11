"""``sslseg pretrain DATA_DIR --out RUN_DIR``: self-supervised pretraining of a 3-D ViT encoder."""

from __future__ import annotations

import argparse

from sslseg.pretrain.config import PretrainConfig

DEFAULTS = PretrainConfig(data_dir="", out_dir="")

EPILOG = """\
outputs in RUN_DIR:
  encoder.safetensors, encoder.json   the pretrained ViT encoder and its card (fine-tuning loads these)
  checkpoint.pt                       full training state, for --resume
  events.jsonl, train_stats.json      progress events (JSON lines) and the current state
  loss_curve.png                      training and validation loss
  cache/                              preprocessed volumes (reused by later runs and by --resume)

several GPUs: torchrun --nproc-per-node N -m sslseg pretrain DATA_DIR --out RUN_DIR ...
(--batch-size is per process; rank 0 writes the outputs)"""


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


def register(subparsers) -> None:
    from sslseg.models.presets import PRESETS

    parser = subparsers.add_parser(
        "pretrain",
        help="self-supervised pretraining of a 3-D ViT on a folder of unlabelled CT/MR volumes",
        description="Pretrain a 3-D ViT encoder without labels (MONAI's in-/out-painting + contrastive recipe by "
        "default) on every volume under DATA_DIR. Resumable, DDP-ready (torchrun), progress as JSON lines.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    d = DEFAULTS
    parser.add_argument("data_dir", metavar="DATA_DIR", help="folder of NIfTI/NRRD/MetaImage files or DICOM series")
    parser.add_argument("--out", dest="out_dir", required=True, metavar="RUN_DIR", help="folder for every output")
    parser.add_argument("--method", default=d.method,
                        help=f"SSL method (default {d.method}, alias 'monai'; see sslseg.ssl)")
    parser.add_argument("--preset", default=d.preset, choices=sorted(PRESETS),
                        help=f"ViT size: tiny for tests and CPU demos, vit-b the paper's ViT-B/16 (default {d.preset})")
    parser.add_argument("--patch-size", type=_positive_int, metavar="S",
                        help="training patch edge in voxels, a multiple of 16 (default: the preset's, 64 tiny / 96 vit-b)")
    parser.add_argument("--patches-per-volume", type=_positive_int, default=d.patches_per_volume, metavar="N",
                        help=f"random patches per training volume and epoch (default {d.patches_per_volume})")
    parser.add_argument("--epochs", type=_positive_int, default=d.epochs, help=f"passes over the data (default {d.epochs})")
    parser.add_argument("--max-steps", type=_positive_int, metavar="N",
                        help="stop after N optimisation steps in total (default: no limit)")
    parser.add_argument("--batch-size", type=_positive_int, default=d.batch_size, metavar="N",
                        help=f"patches per step in each process (default {d.batch_size})")
    parser.add_argument("--lr", type=float, default=d.lr, help=f"AdamW learning rate (default {d.lr:g})")
    parser.add_argument("--weight-decay", type=float, default=d.weight_decay,
                        help=f"AdamW weight decay (default {d.weight_decay:g})")
    parser.add_argument("--warmup-steps", type=_non_negative_int, default=d.warmup_steps, metavar="N",
                        help="linear learning-rate warm-up over N steps, constant after (default 0)")
    parser.add_argument("--grad-clip", type=float, default=d.grad_clip, metavar="NORM",
                        help=f"clip the gradient norm to NORM, 0 to disable (default {d.grad_clip:g})")
    parser.add_argument("--temperature", type=float, default=d.temperature,
                        help=f"contrastive temperature (default {d.temperature:g}, the MONAI tutorial code's value; "
                        "small values like its README's 0.005 are computed without overflow)")
    parser.add_argument("--device", default=d.device,
                        help="auto (CUDA, then Apple MPS, then CPU), cuda, cuda:N, mps or cpu (default auto)")
    parser.add_argument("--amp", default=d.amp, choices=("auto", "bf16", "fp16", "off"),
                        help="mixed precision: auto = bf16 on recent GPUs, fp16 on older ones, off on CPUs without "
                        "bf16 instructions (where bf16 is far slower) (default auto)")
    parser.add_argument("--seed", type=int, default=d.seed,
                        help="seeds initialisation, patches, views and order: same seed, same run (default 0)")
    parser.add_argument("--workers", type=_non_negative_int, metavar="N",
                        help="data-loading processes; 0 loads in the training process (default: cores - 1, max 4)")
    parser.add_argument("--val-every", type=_non_negative_int, default=d.val_every, metavar="N",
                        help=f"validation L1 on held-out volumes every N epochs and at the end, 0 = never "
                        f"(default {d.val_every})")
    parser.add_argument("--val-fraction", type=float, default=d.val_fraction, metavar="F",
                        help=f"share of volumes held out for validation, at least one (default {d.val_fraction:g})")
    parser.add_argument("--checkpoint-every", type=_non_negative_int, default=d.checkpoint_every, metavar="N",
                        help=f"checkpoint every N steps besides every epoch, 0 = epochs only "
                        f"(default {d.checkpoint_every})")
    parser.add_argument("--spacing", type=float, default=d.spacing, metavar="MM",
                        help=f"resample volumes to this isotropic voxel size (default {d.spacing:g} mm)")
    parser.add_argument("--ct-window", type=float, nargs=2, default=list(d.ct_window), metavar=("LOW", "HIGH"),
                        help="CT HU mapped to 0..1, clipped (default -1000 1000: every tissue stays distinct; "
                        "the MONAI tutorial used -57 164)")
    parser.add_argument("--modality", default=d.modality, choices=("auto", "ct", "mr"),
                        help="intensity handling: ct window or mr percentiles; auto reads DICOM modality or "
                        "guesses from the values (default auto)")
    parser.add_argument("--cache", dest="cache_dir", metavar="DIR",
                        help="cache of preprocessed volumes (default RUN_DIR/cache); share it between runs")
    parser.add_argument("--resume", action="store_true",
                        help="continue the run in RUN_DIR from its checkpoint (raise --epochs to train longer)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace the run in RUN_DIR (its cache is kept and reused)")
    parser.add_argument("--events", metavar="FILE",
                        help="write JSON-lines progress events to FILE ('-' = stdout); default stdout unless it is a "
                        "terminal (then a progress bar); always also RUN_DIR/events.jsonl")
    parser.set_defaults(run=run)


def run(args) -> int:
    from sslseg.pretrain.run import pretrain

    fields = {k: v for k, v in vars(args).items() if k in PretrainConfig.__dataclass_fields__}
    fields["ct_window"] = tuple(fields["ct_window"])
    pretrain(PretrainConfig(**fields))
    return 0
