"""``sslseg info PATH``: what a file or folder holds (cases, shapes, spacing, orientation, modality, label names)."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from sslseg.cli.info_package import describe_package, package_folder
from sslseg.errors import SSLSegError
from sslseg.io.label_map_io import read_label_map
from sslseg.io.label_paths import LABEL_FOLDERS, is_label_path
from sslseg.io.label_table_io import find_label_table, has_labels
from sslseg.io.pairing import LabelledCase, find_labelled_cases, load_case
from sslseg.io.scan import VolumeSource, scan_folder
from sslseg.labels import LabelTable
from sslseg.volume import Volume, display_name


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
        print(_describe_source(VolumeSource(path)))
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
        print(_describe_source(source))
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


def _describe_source(source: VolumeSource) -> str:
    """A label map (named like one, a ``.seg.nrrd``, or with a ``NAME.json`` sidecar as ``sslseg segment`` writes)
    with its label names; any other volume as an image."""
    if not source.is_dicom and _is_label_map(source.path):
        labels, table = read_label_map(source.path, _names_above(source.path))
        return _describe(labels, str(source), table)
    return _describe(source.read(), str(source))


def _is_label_map(path: Path) -> bool:
    return is_label_path(path) or has_labels(_sidecar(path))


def _sidecar(path: Path) -> Path:
    return path.with_name(display_name(path) + ".json")


def _names_above(path: Path) -> Path | None:
    """The label table of a ``labelsTr``-style folder's parent (MSD ``dataset.json``), for a map with no names of
    its own (no ``.seg.nrrd`` segments, no sidecar, no table beside it); None leaves the choice to read_label_map."""
    if path.name.lower().endswith(".seg.nrrd") or _sidecar(path).is_file() or path.parent.name not in LABEL_FOLDERS:
        return None
    return find_label_table(path.parent, stop_at=path.parent.parent)


def _describe(volume: Volume, title: str, table: LabelTable | None = None) -> str:
    """Grid, type and DICOM details; then the labels (value, name, voxels) of a label map, else the intensity range."""
    meta = volume.meta
    lines = [title, f"  grid: {volume.grid_description()}", f"  type: {volume.array.dtype}"]
    details = [f"modality {meta.modality}" if meta.modality else "", f"patient {meta.patient_id}" if meta.patient_id else "",
               f"series {meta.series_uid}" if meta.series_uid else "",
               f"frame of reference {meta.frame_of_reference}" if meta.frame_of_reference else "", meta.description]
    if any(details):
        lines.append("  " + ", ".join(d for d in details if d))
    if table is not None:
        lines += _label_lines(volume.array, table)
    else:
        lines.append(f"  intensity: {float(volume.array.min()):g} .. {float(volume.array.max()):g}")
    return "\n".join(lines)


def _label_lines(array: np.ndarray, table: LabelTable, most: int = 60) -> list[str]:
    """Every named label and every value present, with its voxel count (0: the organ is absent from this map)."""
    counts = _voxel_counts(array, max(table.labels, default=0))
    values = sorted(set(table.labels) | {v for v in range(1, len(counts)) if counts[v]})
    if not values:
        return ["  labels: none (every voxel is background)"]
    width = max(len(table.name_of(v)) for v in values[:most])
    lines = [f"  labels ({len(values)}): value, name, voxels"]
    lines += [f"    {v:>3} {table.name_of(v):<{width}}  {counts[v]}" for v in values[:most]]
    return lines + ([f"    ... {len(values) - most} more"] if len(values) > most else [])


def _voxel_counts(array: np.ndarray, highest_named: int) -> np.ndarray:
    """Voxels per value 0..max, one slice at a time: bincount of the whole map would copy it as int64 (3 GB for a
    512 x 512 x 800 CT's labels). Values are whole numbers >= 0 (checked by read_label_map)."""
    counts = np.zeros(max(int(array.max(initial=0)), highest_named) + 1, np.int64)
    for k in range(array.shape[-1]):
        counts += np.bincount(array[..., k].ravel(), minlength=len(counts))
    return counts
