"""Find image-label pairs in a folder or a datalist, and load a pair onto one grid with its label names.

Layouts, tried in this order:
1. a MONAI-style datalist JSON (``{"training": [{"image": ..., "label": ...}], "validation": [...]}``), paths
   relative to the JSON file; an MSD ``dataset.json`` is one; a file listed under both lists is refused;
2. MSD / nnU-Net folders: ``imagesTr/NAME.nii.gz`` (nnU-Net: ``NAME_0000.nii.gz``) with ``labelsTr/NAME.nii.gz``;
3. suffixes beside the image: ``NAME_label.*``, ``NAME_seg.*``, ``NAME-label.*``, ``NAME.seg.nrrd``;
4. one case per folder: one image (a file or a DICOM series) and one ``label*``/``seg*`` file.
Label names come from a ``.seg.nrrd``'s own segment metadata, else from the nearest ``dataset.json``,
``labels.json``, ``labels.csv`` or Slicer colour table in the label's folder or above.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from pathlib import Path

from sslseg.errors import SSLSegError
from sslseg.io.annotation import Annotation, annotation_from_entry
from sslseg.io.formats import is_volume_file
from sslseg.io.grid_alignment import labels_on_image_grid
from sslseg.io.label_paths import LABEL_STEMS, LABEL_SUFFIXES, is_label_path
from sslseg.io.label_table_io import find_label_table
from sslseg.io.scan import ScanResult, VolumeSource, scan_folder
from sslseg.io.label_map_io import read_label_map
from sslseg.io.patients_csv import with_patients
from sslseg.labels import LabelTable
from sslseg.volume import Volume, display_name

log = logging.getLogger(__name__)

NNUNET_CHANNEL = re.compile(r"^(?P<case>.+)_(?P<channel>\d{4})$")


@dataclass(frozen=True)
class LabelledCase:
    """An image and its label map; ``split`` is ``training``/``validation`` when a datalist says so."""

    name: str
    image: VolumeSource
    label: Path
    split: str = "training"
    table_file: Path | None = None  # label names, unless the label file carries its own (.seg.nrrd)
    patient: str = ""  # a datalist's "patient" or the folder's patients.csv; else the image's DICOM Patient ID
    annotation: Annotation = Annotation()  # what a partially annotated case annotates (a datalist's fields)


def find_labelled_cases(path: str | Path, scanned: ScanResult | None = None) -> tuple[list[LabelledCase],
                                                                                   list[VolumeSource]]:
    """(pairs, images without a label) in a datalist JSON or a folder.

    Args:
        scanned: the folder's :func:`scan_folder` result when the caller has it (scanning again would repeat every
            "skipping FILE" warning).
    """
    path = Path(path)
    if path.is_file() and path.suffix.lower() == ".json":
        return _from_datalist(path), []
    if not path.is_dir():
        raise SSLSegError(f"{path} is neither a folder nor a datalist JSON", "point to a labelled folder")
    if (path / "imagesTr").is_dir() and (path / "labelsTr").is_dir():
        cases, unlabelled = _from_decathlon(path)
    else:
        cases, unlabelled = _from_scan(path, scanned)
    return with_patients(cases, path, path_of=lambda case: case.image.path), unlabelled


def load_case(case: LabelledCase) -> tuple[Volume, Volume, LabelTable]:
    """Image, label map on exactly the image's grid (uint8/int16), and the label names."""
    image = case.image.read()
    labels, table = read_label_map(case.label, None if _has_own_names(case.label) else case.table_file)
    labels = labels_on_image_grid(labels, image, str(case.label), str(case.image))
    if not labels.array.any():  # may be meant (no organ in this scan), but is more often a failed export
        log.warning("the label map %s is empty (all background): case %s teaches only background", case.label,
                    case.name)
    return image, labels, table


def _has_own_names(label: Path) -> bool:
    return label.name.lower().endswith(".seg.nrrd")


def _from_datalist(path: Path) -> list[LabelledCase]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise SSLSegError(f"cannot read the datalist {path}: {error}", "fix the JSON") from error
    cases = []
    table_file = path if isinstance(data, dict) and "labels" in data else None
    for split in ("training", "validation"):
        for entry in data.get(split, []) if isinstance(data, dict) else []:
            if not isinstance(entry, dict) or "image" not in entry or "label" not in entry:
                continue  # MSD lists test images as bare paths
            image, label = ((path.parent / str(entry[k])).resolve() for k in ("image", "label"))
            for file in (image, label):
                if not file.exists():
                    raise SSLSegError(f"{path} lists {file}, which does not exist", "fix the datalist")
            cases.append(LabelledCase(display_name(image), _datalist_image(image, entry, path), label, split,
                                      table_file, str(entry.get("patient", "")).strip(),
                                      annotation_from_entry(entry, path)))
    if not cases:
        raise SSLSegError(f"{path} lists no image-label pairs", 'expected {"training": [{"image": ..., "label": ...}]}')
    _refuse_files_in_both_splits(cases, path)
    return cases


def _datalist_image(image: Path, entry: dict, datalist: Path) -> VolumeSource:
    """A datalist's ``image``: a file, or a folder holding a DICOM series (``series_uid`` in the entry picks one of
    several)."""
    if not image.is_dir():
        return VolumeSource(image)
    from sslseg.io.dicom import find_series

    wanted = entry.get("series_uid")
    uids = [s.series_uid for s in find_series(image)]
    chosen = [u for u in uids if wanted in (None, u)]
    if len(chosen) == 1:
        return VolumeSource(image, chosen[0])
    if not uids:
        raise SSLSegError(f"{datalist} lists {image} as an image: a folder without a DICOM series",
                          "point \"image\" to an image file or a DICOM series folder")
    raise SSLSegError(f"{datalist} lists {image}, a folder with {len(uids)} DICOM series"
                      + (f" and none with series_uid {wanted}" if wanted else ""),
                      f"add \"series_uid\" to the entry: one of {', '.join(uids)}")


def _refuse_files_in_both_splits(cases: list[LabelledCase], datalist: Path) -> None:
    """Refuse a datalist that lists an image or label file under both ``training`` and ``validation``: the model
    would be validated on what it trained on, and no rule could guess which role the user meant."""
    by_split = {split: {f for c in cases if c.split == split for f in (c.image.path, c.label)}
                for split in ("training", "validation")}
    both = sorted(by_split["training"] & by_split["validation"])
    if both:
        raise SSLSegError(f"{datalist} lists {both[0]} under both training and validation"
                          + (f" ({len(both)} files are in both lists)" if len(both) > 1 else ""),
                          "list each case once: under \"training\", or under \"validation\" to hold it out")


def _from_decathlon(folder: Path) -> tuple[list[LabelledCase], list[VolumeSource]]:
    labels = {display_name(p): p for p in sorted((folder / "labelsTr").iterdir()) if is_volume_file(p)}
    cases, unlabelled = [], []
    for image in sorted((folder / "imagesTr").iterdir()):
        if not is_volume_file(image) or image.name.startswith("."):
            continue
        name = display_name(image)
        channel = NNUNET_CHANNEL.match(name)
        if channel and channel["case"] in labels:
            if channel["channel"] != "0000":
                continue  # extra nnU-Net input channels; the engine trains on the first
            name = channel["case"]
        if name in labels:
            cases.append(LabelledCase(name, VolumeSource(image), labels[name], table_file=_table_for(labels[name], folder)))
        else:
            unlabelled.append(VolumeSource(image))
    return cases, unlabelled


def _from_scan(folder: Path, scanned: ScanResult | None) -> tuple[list[LabelledCase], list[VolumeSource]]:
    sources = (scanned or scan_folder(folder)).sources
    label_files = [s.path for s in sources if not s.is_dicom and is_label_path(s.path)]
    images = [s for s in sources if s.is_dicom or not is_label_path(s.path)]
    cases, unlabelled, used = [], [], set()
    for image in images:
        label = _suffix_label(image, label_files) or _folder_label(image, images, label_files)
        if label is None or label in used:
            unlabelled.append(image)
            continue
        used.add(label)
        cases.append(LabelledCase(_case_name(image, label), image, label, table_file=_table_for(label, folder)))
    return cases, unlabelled


def _table_for(label: Path, root: Path) -> Path | None:
    """The nearest label table beside the label file or above it, not above the folder the user named."""
    return find_label_table(label.parent, stop_at=root)


def _suffix_label(image: VolumeSource, label_files: list[Path]) -> Path | None:
    if image.is_dicom:
        return None
    stem = display_name(image.path)
    for label in label_files:
        if label.parent == image.path.parent and display_name(label) in {stem + s for s in LABEL_SUFFIXES} | {stem}:
            return label
    return None


def _folder_label(image: VolumeSource, images: list[VolumeSource], label_files: list[Path]) -> Path | None:
    """The single ``label*`` file of a one-case folder (the image may be a DICOM sub-folder of it)."""
    case_folder = image.path.parent  # a file's folder, or the folder holding the DICOM sub-folder
    if sum(1 for other in images if other.path.parent == case_folder) != 1:
        return None
    candidates = [p for p in label_files if p.parent == case_folder and LABEL_STEMS.match(display_name(p))]
    return candidates[0] if len(candidates) == 1 else None


def _case_name(image: VolumeSource, label: Path) -> str:
    stem = display_name(image.path)
    generic = image.is_dicom or stem.lower() in {"ct", "mr", "image", "img", "volume"}
    return label.parent.name if generic else stem
