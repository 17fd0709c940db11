"""``sslseg info PATH``: what a file or folder holds (cases, shapes, spacing, orientation, modality, label names)."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from sslseg.cli.info_package import describe_package, package_folder
from sslseg.errors import SSLSegError
from sslseg.io.label_paths import is_label_path
from sslseg.io.pairing import LabelledCase, find_labelled_cases, load_case
from sslseg.io.scan import VolumeSource, scan_folder
from sslseg.volume import Volume


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "info",
        help="describe a volume file, a DICOM folder, a folder of cases, a model or a pretrained encoder",
        description="Print shape, voxel spacing, orientation, modality and label names of a file or of every case "
        "in a folder (recursive; labelled layouts are recognised); for a model folder (sslseg finetune) or a "
        "pretraining run folder (sslseg pretrain), what its card says.",
    )
    parser.add_argument("path", type=Path, help="an image file, a DICOM series folder, a folder, a datalist JSON, a "
                        "MODEL_DIR or a pretraining RUN_DIR")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    path: Path = args.path
    if not path.exists():
        raise SSLSegError(f"{path} does not exist", "check the path")
    package = package_folder(path)
    if package:
        print(describe_package(package))
        return 0
    if path.is_file() and path.suffix.lower() != ".json":
        print(_describe(VolumeSource(path).read(), str(path)))
        return 0
    result = scan_folder(path) if path.is_dir() else None  # once: each scan warns about every non-image file
    cases, unlabelled = find_labelled_cases(path, result)
    if cases:
        print(f"{len(cases)} labelled case(s)" + (f", {len(unlabelled)} image(s) without labels" if unlabelled else ""))
        return _summary(sum(not _print_case(case) for case in cases), len(cases), "case(s)", unlabelled)
    if not result.sources:
        raise SSLSegError(f"{path} holds no volumes", "put NIfTI, NRRD, MetaImage files or DICOM series in it")
    print(f"{path}: {len(result.sources)} volume(s)")
    return _summary(sum(not _print_source(source) for source in result.sources), len(result.sources), "volume(s)")


def _summary(problems: int, total: int, what: str, unlabelled: list[VolumeSource] = ()) -> int:
    """Images without labels, then a problem count; exit code 1 when something is unusable (for scripts)."""
    for source in unlabelled:
        print(f"{source}: no label map found")
    if problems:
        print(f"{problems} of {total} {what} unusable: training skips them with a warning; fix or remove them")
    return 1 if problems else 0


def _print_source(source: VolumeSource) -> bool:
    try:
        print(_describe(source.read(), str(source)))
        return True
    except SSLSegError as error:
        print(f"{source}\n  unreadable: {error.message}" + (f"\n  hint: {error.hint}" if error.hint else ""))
        return False


def _print_case(case: LabelledCase) -> bool:
    try:
        image, labels, table = load_case(case)
    except SSLSegError as error:
        print(f"{case.name}: {case.image} + {case.label}\n  unusable: {error.message}"
              + (f"\n  hint: {error.hint}" if error.hint else ""))
        return False
    print(_describe(image, f"{case.name} [{case.split}]: {case.image} + {case.label.name}"))
    present = [int(v) for v in np.unique(labels.array) if v != 0]
    names = ", ".join(f"{v} {table.name_of(v)}" for v in present) or "none (empty label map)"
    print(f"  labels: {names}")
    return True


def _describe(volume: Volume, title: str) -> str:
    meta = volume.meta
    lines = [title, f"  grid: {volume.grid_description()}", f"  type: {volume.array.dtype}"]
    details = [f"modality {meta.modality}" if meta.modality else "", f"patient {meta.patient_id}" if meta.patient_id else "",
               f"series {meta.series_uid}" if meta.series_uid else "", meta.description]
    if any(details):
        lines.append("  " + ", ".join(d for d in details if d))
    if is_label_path(meta.source):
        values = [int(v) for v in np.unique(volume.array) if v != 0]
        lines.append(f"  label values: {values[:40]}{' ...' if len(values) > 40 else ''}")
    else:
        lines.append(f"  intensity: {float(volume.array.min()):g} .. {float(volume.array.max()):g}")
    return "\n".join(lines)
