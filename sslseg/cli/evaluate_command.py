"""``sslseg evaluate PRED REF``: Dice and 95% Hausdorff distance per organ, organs matched by name."""

from __future__ import annotations

import argparse
from pathlib import Path

from sslseg.errors import SSLSegError
from sslseg.evaluation.compare import as_json, as_table, compare
from sslseg.io.grid_alignment import labels_on_image_grid
from sslseg.io.label_map_io import read_label_map
from sslseg.package.files import write_json


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "evaluate",
        help="score a segmentation against a reference (Dice, HD95 per organ)",
        description="Per-organ Dice and 95th-percentile Hausdorff distance (mm) of PRED against REF. Organs are "
        "matched by name (from .seg.nrrd segment names, a NAME.json sidecar, or a label table beside the file), "
        "so the two files may number organs differently. Both must lie on the same voxel lattice.",
    )
    parser.add_argument("prediction", type=Path, help="predicted label map (.nii.gz, .nrrd, .seg.nrrd, ...)")
    parser.add_argument("reference", type=Path, help="reference label map")
    parser.add_argument("--prediction-labels", type=Path, help="label table for PRED (JSON or CSV)")
    parser.add_argument("--reference-labels", type=Path, help="label table for REF (JSON or CSV)")
    parser.add_argument("--json", type=Path, help="also write the scores to this JSON file")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --json file")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    if args.json and args.json.exists() and not args.overwrite:
        raise SSLSegError(f"{args.json} already exists", "choose another --json file, or pass --overwrite")
    prediction, prediction_table = read_label_map(args.prediction, args.prediction_labels)
    reference, reference_table = read_label_map(args.reference, args.reference_labels)
    prediction = labels_on_image_grid(prediction, reference, str(args.prediction), str(args.reference))
    scores = compare(prediction, prediction_table, reference, reference_table)
    print(as_table(scores))
    if args.json:
        write_json(args.json, as_json(scores))
    return 0
