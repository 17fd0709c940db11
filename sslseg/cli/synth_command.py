"""``sslseg synth``: write a folder of synthetic abdominal CT phantoms, unlabelled or labelled (MSD layout)."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from sslseg.errors import SSLSegError
from sslseg.synth.cohort import DATASET_JSON, IMAGES_DIR, LABELS_DIR, write_labelled, write_unlabelled
from sslseg.synth.phantom import DEFAULT_SIZE, DEFAULT_SPACING_MM, default_affine
from sslseg.volume import describe_grid

#: Below this many voxels along an axis the smallest organs (gallbladder, aorta) may vanish.
MIN_SIZE = 24

LAYOUT = f"""\
layout written:
  without --labelled (for self-supervised pretraining):
    DIR/case_000.nii.gz, case_001.nii.gz, ...      CT images, int16 HU
  with --labelled (Medical Segmentation Decathlon layout):
    DIR/{IMAGES_DIR}/case_000.nii.gz ...                CT images, int16 HU
    DIR/{LABELS_DIR}/case_000.nii.gz ...                label maps, uint8: 1 liver, 2 spleen, 3 right_kidney,
                                                   4 left_kidney, 5 stomach, 6 aorta, 7 pancreas, 8 gallbladder
    DIR/{DATASET_JSON}                               MSD dataset description, also a MONAI datalist

Grids are RAS-aligned and centred on the body; a body that does not fit the field of view is shrunk to fit, so
every organ is present at any size >= {MIN_SIZE}. Case n depends only on --seed and n (and the grid), so
`--cases 10` starts with the same cases as `--cases 3`."""


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "synth",
        help="write synthetic abdominal CT phantoms (unlabelled, or labelled in MSD layout)",
        description="Write random synthetic abdominal CT volumes: body, spine, bowel gas and 8 organs with "
        "plausible CT values and noise. Use them to try pretraining and fine-tuning without real data.",
        epilog=LAYOUT,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--out", type=Path, required=True, metavar="DIR", help="folder to write into (new or empty)")
    parser.add_argument("--cases", type=_positive(int), required=True, metavar="N", help="number of cases to write")
    parser.add_argument(
        "--size",
        type=_positive(int),
        nargs="+",
        default=[DEFAULT_SIZE],
        metavar="S",
        help=f"grid size in voxels: one value for a cube or three for i j k (default {DEFAULT_SIZE})",
    )
    parser.add_argument(
        "--spacing",
        type=_positive(float),
        nargs="+",
        default=[DEFAULT_SPACING_MM],
        metavar="MM",
        help=f"voxel size in mm: one value or three for i j k (default {DEFAULT_SPACING_MM}; "
        f"{DEFAULT_SIZE} x {DEFAULT_SPACING_MM} mm = {DEFAULT_SIZE * DEFAULT_SPACING_MM:g} mm field of view)",
    )
    parser.add_argument(
        "--labelled", action="store_true", help="also write organ label maps, in MSD layout with dataset.json"
    )
    parser.add_argument("--seed", type=_non_negative_int, default=0, metavar="K", help="cohort seed (default 0)")
    parser.add_argument("--overwrite", action="store_true", help="write into a non-empty folder, replacing cases")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    size, spacing = _triple(args.size, "--size"), _triple(args.spacing, "--spacing")
    if min(size) < MIN_SIZE:
        raise SSLSegError(f"--size {min(size)} is too small", f"use at least {MIN_SIZE} voxels per axis")
    write = write_labelled if args.labelled else write_unlabelled
    write(args.out, args.cases, size, spacing, seed=args.seed, overwrite=args.overwrite)
    noun = "case" if args.cases == 1 else "cases"
    kind = f"labelled {noun} (MSD layout)" if args.labelled else f"unlabelled {noun}"
    grid = describe_grid(size, default_affine(size, np.asarray(spacing)))
    print(f"wrote {args.cases} {kind} to {args.out} (seed {args.seed}); grid {grid}")
    return 0


def _triple(values: list, option: str) -> tuple:
    if len(values) == 1:
        return tuple(values) * 3
    if len(values) != 3:
        raise SSLSegError(f"{option} takes one value or three, got {len(values)}", f"e.g. {option} 96 or 96 96 64")
    return tuple(values)


def _positive(kind):
    def parse(text: str):
        value = kind(text)
        if value <= 0:
            raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
        return value

    parse.__name__ = kind.__name__  # argparse names the type in its "invalid int value" message
    return parse


def _non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text}")
    return value
