"""Command-line options every training command shares (``pretrain``, ``finetune``), with the same names, checks and
help, so the two commands read alike and a GUI can drive both the same way."""

from __future__ import annotations

import argparse

from sslseg.training.settings import DEFAULT_EPOCHS


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


def add_optimiser_options(parser, d, samples: str, lr_default: str = "") -> None:
    """``--epochs --max-steps --lr --weight-decay --grad-clip`` (``d``: the config's defaults; ``samples``: what an
    epoch passes over; ``lr_default``: the learning rate's default in words, where it is not ``d.lr``)."""
    parser.add_argument("--epochs", type=positive_int, default=d.epochs,
                        help=f"passes over the {samples} (default: as many as --max-steps needs, else "
                        f"{DEFAULT_EPOCHS}); given with --max-steps, the run ends at whichever comes first")
    parser.add_argument("--max-steps", type=positive_int, metavar="N",
                        help="stop after N optimisation steps in total (default: no limit; without --epochs, "
                        "the run lasts exactly N steps)")
    parser.add_argument("--lr", type=float, default=d.lr,
                        help=f"AdamW learning rate (default {lr_default or format(d.lr, 'g')})")
    parser.add_argument("--weight-decay", type=float, default=d.weight_decay,
                        help=f"AdamW weight decay (default {d.weight_decay:g})")
    parser.add_argument("--grad-clip", type=float, default=d.grad_clip, metavar="NORM",
                        help=f"clip the gradient norm to NORM, 0 to disable (default {d.grad_clip:g})")


def add_intensity_options(parser, d, window_note: str) -> None:
    """``--ct-window LOW HIGH`` (help: the default and ``window_note``) and ``--modality``."""
    low, high = d.ct_window
    parser.add_argument("--ct-window", type=float, nargs=2, default=list(d.ct_window), metavar=("LOW", "HIGH"),
                        help=f"CT HU mapped to 0..1, clipped (default {low:g} {high:g}: {window_note})")
    parser.add_argument("--modality", default=d.modality, choices=("auto", "ct", "mr"),
                        help="intensity handling: ct window or mr percentiles; auto reads DICOM modality or "
                        "guesses from the values (default auto)")


def add_run_options(parser, d, folder: str, seeded: str, cached: str) -> None:
    """``--device --amp --seed --workers --checkpoint-every --cache --resume --overwrite --events``.

    Args:
        d: the config's defaults; folder: the run folder's name in help (RUN_DIR, MODEL_DIR); seeded: what the seed
            decides besides initialisation and order; cached: what the cache holds.
    """
    parser.add_argument("--device", default=d.device,
                        help="auto (CUDA, then Apple MPS, then CPU), cuda, cuda:N, mps or cpu (default auto)")
    parser.add_argument("--amp", default=d.amp, choices=("auto", "bf16", "fp16", "off"),
                        help="mixed precision: auto = bf16 on recent GPUs, fp16 on older ones, off (float32) on every "
                        "CPU, where bf16 training was measured to change the result; $SSLSEG_AMP replaces auto "
                        "(default auto)")
    parser.add_argument("--seed", type=int, default=d.seed,
                        help=f"seeds initialisation, {seeded} and order: same seed, same run (default {d.seed})")
    parser.add_argument("--workers", type=non_negative_int, metavar="N",
                        help="data-loading processes; 0 loads in the training process (default: cores - 1, max 4)")
    parser.add_argument("--checkpoint-every", type=non_negative_int, default=d.checkpoint_every, metavar="N",
                        help=f"checkpoint every N steps besides every epoch, 0 = epochs only "
                        f"(default {d.checkpoint_every})")
    parser.add_argument("--cache", dest="cache_dir", metavar="DIR",
                        help=f"cache of preprocessed {cached} (default {folder}/cache); share it between runs")
    parser.add_argument("--resume", action="store_true",
                        help=f"continue the run in {folder} from its checkpoint (raise --epochs or --max-steps to "
                        "train longer)")
    parser.add_argument("--overwrite", action="store_true",
                        help=f"replace the run in {folder} (its cache is kept and reused)")
    parser.add_argument("--events", metavar="FILE",
                        help="write JSON-lines progress events to FILE ('-' = stdout); default stdout unless it is a "
                        f"terminal (then a progress bar); always also {folder}/events.jsonl")


def config_from_args(config_class, args: argparse.Namespace):
    """``config_class`` (a training config dataclass) from the parsed options of the same names; ``nargs`` options
    (lists) become the tuples the dataclass holds."""
    fields = {k: v for k, v in vars(args).items() if k in config_class.__dataclass_fields__}
    return config_class(**{k: tuple(v) if isinstance(v, list) else v for k, v in fields.items()})
