"""``sslseg segment IMAGE --model MODEL_DIR --out LABELS``: organ segmentation on exactly the input's grid."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from sslseg.errors import SSLSegError
from sslseg.io.formats import volume_extension
from sslseg.io.label_map_writer import write_label_map
from sslseg.io.scan import VolumeSource
from sslseg.package.model_package import load_model_package
from sslseg.training.compute import compute_summary

OUTPUTS = (".seg.nrrd", ".nii.gz", ".nii", ".nrrd")


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "segment",
        help="segment organs of a volume with a fine-tuned model",
        description="Segment IMAGE (a file or a DICOM folder) with the model in MODEL_DIR. The result lies on "
        "exactly the input's voxel grid: .seg.nrrd opens in Slicer with named, coloured segments; .nii.gz/.nrrd "
        "get a NAME.json beside them with the organ names.",
    )
    parser.add_argument("image", type=Path, help="volume file or DICOM series folder")
    parser.add_argument("--model", type=Path, required=True, help="model folder written by `sslseg finetune`")
    parser.add_argument("--out", type=Path, required=True, help=f"output label map ({', '.join(OUTPUTS)})")
    parser.add_argument("--device", default="auto", help="auto (CUDA, then Apple MPS, then CPU), cuda, mps or cpu")
    parser.add_argument("--amp", default="auto", choices=("auto", "bf16", "fp16", "off"),
                        help="mixed precision (default auto: bf16 on GPUs and on CPUs with bf16 matrix instructions "
                             "where it was measured not to change the result, else off; $SSLSEG_AMP replaces auto)")
    parser.add_argument("--overlap", type=float, default=0.25, help="sliding-window overlap 0..<1 (default 0.25)")
    parser.add_argument("--sw-batch-size", type=int, default=1, help="windows per forward pass (default 1)")
    parser.add_argument("--largest-component", action="store_true", help="keep each organ's largest connected piece")
    parser.add_argument("--series-uid", help="which DICOM series, when the folder holds several")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    # torch and MONAI load here, not when the command line starts (`sslseg --help` stays instant)
    from sslseg.segmentation.segment import Segmenter, SegmentOptions, present_organs, tune_process_malloc

    if volume_extension(args.out) not in OUTPUTS:
        raise SSLSegError(f"cannot write the segmentation to {args.out}", f"name it *{' or *'.join(OUTPUTS)}")
    if args.out.exists() and not args.overwrite:
        raise SSLSegError(f"{args.out} already exists", "choose another name, or pass --overwrite")
    if not 0 <= args.overlap < 1:
        raise SSLSegError(f"--overlap {args.overlap} is outside 0..1", "use e.g. --overlap 0.25")
    options = SegmentOptions(args.device, args.amp, args.overlap, max(1, args.sw_batch_size), args.largest_component)
    tune_process_malloc()  # this process segments one volume and exits: see the function for why, and the opt-out
    segmenter = Segmenter(load_model_package(args.model), options)
    volume = VolumeSource(args.image, args.series_uid).read()
    start = time.perf_counter()
    labels = segmenter.segment(volume)
    write_label_map(labels, segmenter.table, args.out, overwrite=args.overwrite)
    organs = present_organs(labels.array, segmenter.table)
    print(f"segmented {args.image} in {time.perf_counter() - start:.1f} s on {compute_summary(segmenter.compute)}: "
          f"{len(organs)} organ(s) ({', '.join(organs) or 'none'}) -> {args.out}")
    return 0
