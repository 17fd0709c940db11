"""``sslseg finetune LABELLED_DIR --encoder RUN_DIR --out MODEL_DIR``: UNETR organ segmentation from a pretrained ViT."""

from __future__ import annotations

import argparse

from sslseg.cli.training_options import (add_intensity_options, add_optimiser_options, add_run_options,
                                          config_from_args, non_negative_int, positive_int)
from sslseg.finetune.config import CROP_CENTRES, OUTPUT_BIASES, UNDRAWN_SLICES, FinetuneConfig
from sslseg.finetune.recipes import as_options, describe
from sslseg.io.annotation import AXES
from sslseg.training.lr_schedule import SCHEDULES

DEFAULTS = FinetuneConfig(data_dir="", out_dir="")

EPILOG = """\
outputs in MODEL_DIR:
  model.safetensors, model.json       the model package to share: best-validated weights and their card (labels
                                      with colours and terminology, preprocessing and window, provenance, Dice)
  checkpoint.pt                       full training state, for --resume
  events.jsonl, train_stats.json      progress events (JSON lines, validation Dice included) and the current state
  loss_curve.png, dice_curve.png      training loss; validation Dice, mean and per organ
  cache/                              preprocessed cases (reused by later runs and by --resume)

labelled data: MSD/nnU-Net folders (imagesTr + labelsTr), NAME_label / NAME_seg / NAME.seg.nrrd beside each image,
one case per folder, or a MONAI datalist JSON (its "validation" list is the validation split). Organs are matched
by NAME across cases (label tables, dataset.json, .seg.nrrd segment names); unnamed label maps train as label_N.

partially annotated cases (datalist entry fields; see README "Training from partial annotations"):
  "annotated_slices": {"axis": "axial", "indices": [12, 40]}   these slices are annotated (from 0, along the voxel
                                                              axis closest to axial); without indices: those drawn on
  "annotated": "mask.nii.gz"                                  non-zero voxels are annotated (same grid as the image)
  "organs": ["liver", "spleen"]                               the organs annotated (drawn or truly absent)
  "absent": ["spleen"]                                        organs truly absent, besides those drawn

several GPUs: torchrun --nproc-per-node N -m sslseg finetune LABELLED_DIR --encoder RUN_DIR --out MODEL_DIR ...
(--batch-size is per process; rank 0 writes the outputs)

settings per preset, where an option is not given (README "Fitting a real CT on a CPU"):
  vit-b (MONAI's UNETR tutorial, for a GPU): """ + as_options("vit-b") + """
  tiny (the CPU recipe):                     """ + as_options("tiny")


def millimetres(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {value}")
    return value


def register(subparsers) -> None:
    from sslseg.models.presets import PRESETS

    parser = subparsers.add_parser(
        "finetune",
        help="fine-tune UNETR for organ segmentation on labelled volumes, from a pretrained ViT encoder",
        description="Train MONAI's UNETR on labelled CT/MR cases, its ViT initialised from a pretrained encoder, "
        "with the transforms and loss of MONAI's UNETR BTCV tutorial (its settings for vit-b, a CPU recipe for tiny); "
        "validation Dice per organ by sliding window; writes a shareable model package. Resumable, DDP-ready "
        "(torchrun), progress as JSON lines.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    d = DEFAULTS
    parser.add_argument("data_dir", metavar="LABELLED_DIR", help="folder of image + label files, or a datalist JSON")
    parser.add_argument("--out", dest="out_dir", required=True, metavar="MODEL_DIR",
                        help="folder for the model package and every other output")
    parser.add_argument("--encoder", metavar="RUN_DIR|FILE|none",
                        help="the ViT's initial weights: a `sslseg pretrain` RUN_DIR; a .pt/.pth state dict as MONAI's "
                        "SSL tutorial saves ViTAutoEnc (read with weights_only=True: files needing full unpickling "
                        "are refused) or a .safetensors file; or none for random initialisation. The number of "
                        "tensors transferred is reported. Required unless --from-model is given")
    parser.add_argument("--from-model", metavar="MODEL_DIR",
                        help="continue from this model package (segment, correct, retrain): its network, "
                        "preprocessing and organs are kept, organs new in the cases are added as new output "
                        "channels; writes a new package to --out")
    parser.add_argument("--preset", choices=sorted(PRESETS),
                        help="ViT size; default: the encoder card's (RUN_DIR), else vit-b. Must match the encoder")
    parser.add_argument("--patch-size", type=positive_int, metavar="S",
                        help="training crop edge = UNETR img_size = sliding-window size at inference, a multiple "
                        "of 16 (default: the size the encoder was pretrained at; another size resizes its position "
                        "embeddings, trilinear, and says so)")
    parser.add_argument("--feature-size", type=positive_int, metavar="N",
                        help=f"UNETR decoder width (default per preset, {describe('feature_size')}; 8 halves the "
                        "decoder's cost on a CPU)")
    parser.add_argument("--crops-per-volume", type=positive_int, metavar="N",
                        help=f"random crops per volume and step (default per preset, {describe('crops_per_volume')})")
    parser.add_argument("--crop-centres", choices=CROP_CENTRES,
                        help="pos-neg: half the crops centred on organ voxels, half on body voxels (MONAI's "
                        "tutorial); classes: background and each organ equally likely as a centre, so small organs "
                        f"are seen as often as large ones (default per preset, {describe('crop_centres')})")
    parser.add_argument("--output-bias", choices=OUTPUT_BIASES,
                        help="the segmentation head's starting bias: random (PyTorch's, MONAI's tutorial) or prior "
                        "(log of each class's share of the training voxels, so a small organ starts as rare as it "
                        "is; a --from-model run keeps its package's head) "
                        f"(default per preset, {describe('output_bias')})")
    parser.add_argument("--lr-schedule", choices=SCHEDULES,
                        help="constant: --lr throughout (MONAI's tutorial, made for tens of thousands of steps); "
                        "cosine: --lr decaying to 0 at the run's last step (--max-steps / --epochs), so a short "
                        f"run ends on settled weights (default per preset, {describe('lr_schedule')})")
    parser.add_argument("--warmup-steps", type=non_negative_int, metavar="N",
                        help="raise the learning rate linearly over the first N steps (default per preset, "
                        f"{describe('warmup_steps')})")
    parser.add_argument("--batch-size", type=positive_int, default=d.batch_size, metavar="N",
                        help=f"volumes per step in each process, each giving --crops-per-volume crops "
                        f"(default {d.batch_size})")
    parser.add_argument("--val-every", type=non_negative_int, default=d.val_every, metavar="N",
                        help=f"validation Dice (sliding window over whole held-out cases) every N epochs and at the "
                        f"end, 0 = never; the best-validated weights go into the package (default {d.val_every})")
    parser.add_argument("--val-fraction", type=float, default=d.val_fraction, metavar="F",
                        help=f"share of cases held out for validation when a datalist names no validation split, at "
                        f"least one (default {d.val_fraction:g})")
    parser.add_argument("--overlap", type=float, default=d.overlap, metavar="F",
                        help=f"sliding-window overlap for validation (default {d.overlap:g})")
    parser.add_argument("--spacing", type=millimetres, nargs=3, metavar=("X", "Y", "Z"),
                        help=f"resample to this voxel size in mm along R, A, S (default per preset, "
                        f"{describe('spacing')}); recorded in the model card, so segmentation resamples the same way")
    parser.add_argument("--undrawn-slices", choices=UNDRAWN_SLICES, default=d.undrawn_slices,
                        help="background: every undrawn voxel is background (fully labelled cases); unknown: only "
                        "the slices something is drawn on count, along --slice-axis, the others are ignored by the "
                        "loss (organs drawn on a few slices). A datalist entry's \"annotated_slices\" or "
                        "\"annotated\" mask wins (default background)")
    parser.add_argument("--slice-axis", choices=AXES, default=d.slice_axis,
                        help="the slices of --undrawn-slices unknown: axial, coronal, sagittal (the image's voxel "
                        "axis closest to it, whatever the storage order) or the voxel axis i, j or k "
                        f"(default {d.slice_axis})")
    parser.add_argument("--partial-organs", action="store_true",
                        help="each case annotates only the organs it draws: an organ missing from a case is "
                        "unknown there, not absent (marginal loss, Shi et al. 2021; Dice not scored for it there). "
                        "A datalist entry's \"organs\" or \"absent\" list wins")
    add_intensity_options(parser, d, "MONAI's UNETR tutorial, abdominal soft tissue; recorded in the model card")
    add_optimiser_options(parser, d, "training cases", f"per preset, {describe('lr')}")
    add_run_options(parser, d, "MODEL_DIR", seeded="crops, augmentation", cached="cases")
    parser.set_defaults(run=run)


def run(args) -> int:
    from sslseg.errors import SSLSegError
    from sslseg.finetune.run import finetune

    if args.encoder is None and args.from_model is None:
        raise SSLSegError("--encoder is required (or --from-model MODEL_DIR)",
                          "give a pretraining RUN_DIR, a weights file, or none for random initialisation")
    if args.encoder is None:
        args.encoder = "none"
    finetune(config_from_args(FinetuneConfig, args))
    return 0
