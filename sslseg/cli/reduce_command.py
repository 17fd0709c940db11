"""``sslseg reduce DATA_DIR --threshold K --out REPORT_DIR``: which axial slices are near-duplicates (Hash-k)."""

from __future__ import annotations

import argparse

from sslseg.cli.training_options import non_negative_int

EPILOG = """\
outputs in REPORT_DIR:
  reduction.json          per volume: kept / dropped slice indices (voxel index along the slice axis), who dropped
                          each, hashes, slice positions; totals
  hamming_histogram.png   Hamming distances between consecutive slices and of each dropped slice to its keeper
  examples.png            the most different dropped slices beside the slice that dropped them

Slices are ordered by anatomy (inferior -> superior, from each volume's geometry), not by file names.
Pretraining on the kept slices only: sslseg pretrain DATA_DIR --out RUN_DIR --reduce K"""


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "reduce",
        help="find near-duplicate axial slices by difference hash (Less is More, Hash-k) and report them",
        description="Hash every axial slice under DATA_DIR (imagehash's dhash, bit for bit, vectorised) and keep "
        "greedily: the first remaining slice is kept, every remaining slice within Hamming distance K is dropped.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("data_dir", metavar="DATA_DIR", help="folder of NIfTI/NRRD/MetaImage files or DICOM series")
    parser.add_argument("--threshold", type=non_negative_int, required=True, metavar="K",
                        help="Hamming distance (bits of 64) at or below which a slice is a duplicate; the paper's 6")
    parser.add_argument("--scope", choices=("volume", "dataset"), default="volume",
                        help="compare slices within each volume (the paper's choice, default) or across all")
    parser.add_argument("--out", dest="out_dir", required=True, metavar="REPORT_DIR", help="folder for the report")
    parser.add_argument("--overwrite", action="store_true", help="replace a report already in REPORT_DIR")
    parser.set_defaults(run=run)


def run(args) -> int:
    from sslseg.reduce.folder import reduce_folder
    from sslseg.reduce.report import write_report

    totals = write_report(reduce_folder(args.data_dir, args.threshold, args.scope), args.out_dir, args.overwrite)
    print(f"kept {totals['kept']} of {totals['slices']} slices ({totals['kept_fraction']:.1%}) in "
          f"{totals['volumes']} volumes; report in {args.out_dir}")
    return 0
