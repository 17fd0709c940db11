"""The labelled cases of a fine-tuning run, preprocessed once into a disk cache, split, and given one label set.

Each case is read (:func:`sslseg.io.pairing.load_case`), preprocessed exactly as inference will
(:func:`sslseg.segmentation.preprocess.preprocess_image`, float32 kept as is) and its labels brought onto the same
grid (:func:`~sslseg.segmentation.preprocess.labels_on_model_grid`, case values kept). Both arrays go to
``<key>.image.npy`` / ``<key>.labels.npy`` and the case's names to ``<key>.json`` (through
:mod:`sslseg.data.cache`'s machinery: atomic files, DDP sharding, unreadable cases skipped with a warning). Training
memory-maps them: nothing holds the dataset in RAM.

The cache holds what the files contain, never how this run uses them: the key covers the files and the
preprocessing, not the split, so a case's name and its training/validation role come from this run's data
(datalist or folder) and never from a record another run wrote.

A partially annotated case (:mod:`sslseg.io.annotation`) also stores ``<key>.annotated.npy``, its annotated
voxels brought onto the model grid exactly as its labels are (nearest neighbour), and the run gives each case the
organ channels it annotates (:meth:`CaseSet.organ_mask`).

A case whose label file names nothing gets ``label_N`` for each value present, so a dataset numbered consistently but
without names still trains. The label set is the union of names over the training cases; each case is renumbered
through a lookup table.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from sslseg.data.cache import CacheJob, fill_cache, write_npy, write_record
from sslseg.data.fingerprint import content_sha256, source_signature, stable_key
from sslseg.data.split import split_volumes
from sslseg.errors import SSLSegError
from sslseg.finetune.label_set import remap_lookup, union_of_names
from sslseg.io.annotation import Annotation, SliceAnnotation, annotated_mask, annotated_organs
from sslseg.io.pairing import LabelledCase, find_labelled_cases, load_case
from sslseg.io.scan import VolumeSource
from sslseg.labels import LabelTable
from sslseg.segmentation.preprocess import SegmentationPreprocessing, labels_on_model_grid, preprocess_image
from sslseg.volume import display_name

log = logging.getLogger(__name__)

#: Bumped whenever a cached case's content changes, so old entries are recomputed.
CASE_CACHE_VERSION = 2  # 2: oblique cases deskewed
ANNOTATED_SUFFIX = ".annotated.npy"


@dataclass(frozen=True)
class CachedCase:
    """One preprocessed labelled case on disk.

    Attributes:
        name: case name; split: ``training`` or ``validation`` as this run's data say (a datalist), else
            ``training`` (both from the run's :class:`LabelledCase`, not from the cache).
        image_path: ``.npy`` (X, Y, Z) float32 in 0..1 on the model grid; labels_path: ``.npy`` (X, Y, Z) uint8/int16
            with the case's own values.
        affine: (4, 4) voxel-to-RAS of that grid; table: the case's label names (and colours).
        sha256: content hashes of the image and label files (``image``, ``label``).
        patient: the image's DICOM Patient ID, else "" (validation splits keep a patient's cases together).
        annotated_path: ``.npy`` (X, Y, Z) uint8, 1 on the annotated voxels; None when the whole case is annotated.
        annotation: what the case says it annotates (:class:`sslseg.io.annotation.Annotation`).
    """

    name: str
    split: str
    image_path: Path
    labels_path: Path
    affine: np.ndarray
    shape: tuple[int, int, int]
    table: LabelTable
    present: tuple[int, ...]
    sha256: dict
    patient: str = ""
    annotated_path: Path | None = None
    annotation: Annotation = Annotation()

    def image(self) -> np.ndarray:
        return np.load(self.image_path, mmap_mode="r")

    def labels(self) -> np.ndarray:
        return np.load(self.labels_path, mmap_mode="r")

    def annotated(self) -> np.ndarray | None:
        """(X, Y, Z) uint8 memory map, 1 on the annotated voxels; None when the case is annotated throughout."""
        return None if self.annotated_path is None else np.load(self.annotated_path, mmap_mode="r")

    def scored_voxels(self) -> np.ndarray | None:
        """The voxels validation scores: those its own entry annotates (None: all; the run's ``--undrawn-slices``
        default shapes training only)."""
        return None if self.annotation.slices_by_default else self.annotated()

    def fingerprint(self) -> dict:
        return {"name": self.name, "image_sha256": self.sha256["image"], "label_sha256": self.sha256["label"]}


def _signature(path: Path | None) -> dict | None:
    return source_signature(VolumeSource(path)) if path is not None and path.is_file() else None


def case_key(case: LabelledCase, settings: SegmentationPreprocessing) -> str:
    sidecar = case.label.with_name(display_name(case.label) + ".json")
    parts = [CASE_CACHE_VERSION, source_signature(case.image), _signature(case.label), _signature(case.table_file),
             _signature(sidecar), settings.to_card()]
    partial = case.annotation.cache_key()
    if partial is not None:  # only then: keys of fully annotated cases stay those of earlier versions
        parts.append({**partial, "mask": _signature(case.annotation.mask)})
    return stable_key(*parts)


def named_table(table: LabelTable, present) -> LabelTable:
    """``table``, or ``label_N`` for every present value when it names nothing."""
    if len(table):
        return table
    return LabelTable.from_names({int(v): f"label_{int(v)}" for v in present if v != 0})


def build_case(case: LabelledCase, key: str, cache_dir: Path, settings: SegmentationPreprocessing) -> None:
    """Read, preprocess and store one case (the record last, so a record means a complete entry)."""
    image, labels, table = load_case(case)
    preprocessed = preprocess_image(image, settings)
    on_grid = labels_on_model_grid(labels, preprocessed, settings)
    present = [int(v) for v in np.unique(on_grid)]
    write_npy(cache_dir / f"{key}.image.npy", np.ascontiguousarray(preprocessed.array, dtype=np.float32))
    write_npy(cache_dir / f"{key}.labels.npy", on_grid)
    annotated = _annotated_on_grid(case, image, labels, preprocessed, settings)
    if annotated is not None:
        write_npy(cache_dir / f"{key}{ANNOTATED_SUFFIX}", annotated)
    table = named_table(table, present)
    record = {
        "name": case.name, "image": str(case.image.path), "label": str(case.label),  # no split: a run's choice
        "shape": list(preprocessed.array.shape), "affine": preprocessed.affine.tolist(),
        "modality": preprocessed.modality, "present": present,
        "labels": [{"value": v, "name": label.name, "color": label.color} for v, label in sorted(table.labels.items())],
        "sha256": {"image": content_sha256(case.image), "label": content_sha256(VolumeSource(case.label))},
        "original_shape": list(image.shape), "settings": settings.to_card(),
        "patient_id": image.meta.patient_id.strip(),
    }
    if annotated is not None:
        record["annotated_fraction"] = float(annotated.mean())
    write_record(cache_dir / f"{key}.json", record)


def _annotated_on_grid(case: LabelledCase, image, labels, preprocessed, settings) -> np.ndarray | None:
    """The case's annotated voxels on the model grid (X, Y, Z) uint8, or None when it is annotated throughout."""
    mask = annotated_mask(case.annotation, image, labels, f"{case.name} ({case.label})")
    if mask is None:
        return None
    if not mask.any():
        log.warning("case %s: no annotated voxel (%s): it teaches nothing", case.name,
                    "no slice is drawn on" if case.annotation.slices else "its annotated mask is empty")
    return labels_on_model_grid(labels.with_array(mask.astype(np.uint8)), preprocessed, settings).astype(np.uint8)


def _case_from_record(path: Path, case: LabelledCase) -> CachedCase:
    """The cached content at ``path``, named and split as ``case`` (this run's view of the same files)."""
    data = json.loads(path.read_text(encoding="utf-8"))
    table = LabelTable()
    for item in data["labels"]:
        table.add(item["value"], item["name"], tuple(item["color"]) if item["color"] else None)
    stem = path.name[: -len(".json")]
    annotated = path.with_name(f"{stem}{ANNOTATED_SUFFIX}") if "annotated_fraction" in data else None
    return CachedCase(name=case.name, split=case.split, image_path=path.with_name(f"{stem}.image.npy"),
                      labels_path=path.with_name(f"{stem}.labels.npy"), affine=np.asarray(data["affine"]),
                      shape=tuple(data["shape"]), table=table, present=tuple(data["present"]), sha256=data["sha256"],
                      patient=case.patient or data.get("patient_id", ""), annotated_path=annotated,
                      annotation=case.annotation)


@dataclass
class CaseSet:
    """Training and validation cases, the label set, each case's lookup table to it and, for cases that annotate
    only some organs, the organ names they annotate."""

    train: list[CachedCase]
    val: list[CachedCase]
    labels: LabelTable
    luts: dict[str, np.ndarray]
    skipped: list
    organs: dict[str, set[str]] = field(default_factory=dict)

    def lut(self, case: CachedCase) -> np.ndarray:
        return self.luts[_case_id(case)]

    def organs_of(self, case: CachedCase) -> set[str] | None:
        """The organ names ``case`` annotates, or None for every organ of the run."""
        return self.organs.get(_case_id(case))

    def organ_mask(self, case: CachedCase) -> np.ndarray:
        """(C,) bool over the model's channels (0 = background, always True): True where ``case`` annotates the
        organ (drawn, or truly absent)."""
        names = self.organs_of(case)
        mask = np.ones(len(self.labels) + 1, dtype=bool)
        if names is not None:
            mask[1:] = [label.name in names for _, label in sorted(self.labels.labels.items())]
        return mask

    @property
    def partial(self) -> bool:
        """Whether some training case annotates only some voxels or some organs (the partial loss applies)."""
        return any(c.annotated_path is not None or _case_id(c) in self.organs for c in self.train)

    def fingerprint(self) -> dict:
        return {"train": [c.fingerprint() for c in self.train], "val": [c.fingerprint() for c in self.val],
                "skipped": [{"source": f.source, "reason": f.message} for f in self.skipped]}


def cache_cases(cases: list[LabelledCase], cache_dir: Path, settings: SegmentationPreprocessing, workers: int = 0,
                rank: int = 0, world_size: int = 1, barrier=None) -> tuple[list[CachedCase], list]:
    """Every case preprocessed into ``cache_dir`` (reused when cached); returns (cases, failures)."""
    cache_dir = Path(cache_dir)
    jobs = []
    for case in cases:
        key = case_key(case, settings)
        jobs.append(CacheJob(key, cache_dir, f"{case.name} ({case.image.path})", build_case,
                             (case, key, cache_dir, settings)))
    records, failures = fill_cache(jobs, workers, rank, world_size, barrier, what="labelled cases")
    return [_case_from_record(record, case) for record, case in zip(records, cases) if record is not None], failures


def split_cases(cases: list[CachedCase], val_fraction: float, seed: int) -> tuple[list, list]:
    """A datalist's ``validation`` cases if it names any, else ``val_fraction`` held out by a seeded hash, whole
    patients at a time (:func:`sslseg.data.split.split_volumes`)."""
    named = [c for c in cases if c.split == "validation"]
    if named:
        return [c for c in cases if c.split != "validation"], named

    class _Keyed:  # split_volumes ranks by name and content hash, and groups by patient
        def __init__(self, case):
            self.case, self.name, self.sha256, self.patient = case, case.name, case.sha256["label"], case.patient

    train, val = split_volumes([_Keyed(c) for c in cases], val_fraction, seed)
    return [k.case for k in train], [k.case for k in val]


def validation_lookup(case: CachedCase, labels: LabelTable) -> np.ndarray:
    """Lookup table for a validation case: organs outside the training label set become background (warned)."""
    outside = sorted({case.table.name_of(v) for v in case.present if v} - set(labels.names))
    if outside:
        log.warning("validation case %s has organ(s) %s that no training case has: scored as background",
                    case.name, ", ".join(outside))
    kept = [v for v in case.present if v == 0 or case.table.name_of(v) in labels.names]
    lut = remap_lookup(case.table, labels, kept, case.name)
    return np.pad(lut, (0, max(0, max(case.present, default=0) + 1 - len(lut))))


def only(cases: list[LabelledCase], names, data_dir) -> list[LabelledCase]:
    """The cases named ``names``, every one as a training case; an error naming any name not found."""
    missing = sorted(set(names) - {c.name for c in cases})
    if missing:
        raise SSLSegError(f"{data_dir} has no case named {', '.join(missing)}",
                          f"the cases are: {', '.join(sorted(c.name for c in cases))}")
    return [replace(c, split="training") for c in cases if c.name in set(names)]


def _case_id(case: CachedCase) -> str:
    return case.name + case.sha256["label"]


@dataclass(frozen=True)
class PartialOptions:
    """The run's defaults for cases that do not say what they annotate.

    Attributes:
        slice_axis: ``--undrawn-slices unknown``: the axis along which undrawn slices are unknown (None: undrawn
            voxels are background).
        partial_organs: ``--partial-organs``: a case annotates the organs it draws (others unknown, not absent).
    """

    slice_axis: str | None = None
    partial_organs: bool = False

    def apply(self, case: LabelledCase) -> LabelledCase:
        """``case`` with the undrawn-slices default when it gives no annotated slices or mask of its own."""
        if self.slice_axis is None or case.annotation.partial_voxels:
            return case
        return replace(case, annotation=replace(case.annotation, slices=SliceAnnotation(self.slice_axis),
                                                slices_by_default=True))


def organ_sets(cases: list[CachedCase], partial_organs: bool) -> dict[str, set[str]]:
    """Case id -> the organ names it annotates, for the cases that annotate only some organs."""
    sets = {}
    for case in cases:
        drawn = {case.table.name_of(v) for v in case.present if v}
        names = annotated_organs(case.annotation, drawn, partial_organs, case.name)
        if names is not None:
            sets[_case_id(case)] = names
    return sets


def load_cases(data_dir: str | Path, cache_dir: Path, settings: SegmentationPreprocessing, val_fraction: float,
               seed: int, workers: int = 0, rank: int = 0, world_size: int = 1, barrier=None,
               only_cases=None, base_labels: LabelTable | None = None,
               partial: PartialOptions = PartialOptions()) -> CaseSet:
    """Find, cache and split the labelled cases (``only_cases``: those names alone, all for training); the label set
    is the union of names over the training cases (``base_labels``: those, extended by the cases' new names; see
    :func:`sslseg.finetune.from_model.extended_labels`); ``partial``: what cases that say nothing annotate."""
    found, unlabelled = find_labelled_cases(data_dir)
    found = [partial.apply(case) for case in found]
    if only_cases is not None:
        found, unlabelled, val_fraction = only(found, only_cases, data_dir), [], 0.0
    if not found:
        raise SSLSegError(f"no image-label pairs found in {data_dir}" +
                          (f" ({len(unlabelled)} images without labels)" if unlabelled else ""),
                          "see `sslseg info` for the layouts understood (MSD imagesTr/labelsTr, NAME_label files, "
                          ".seg.nrrd, a datalist JSON)")
    if unlabelled and rank == 0:
        log.info("%d image(s) without a label are not used", len(unlabelled))
    cached, failures = cache_cases(found, cache_dir, settings, workers, rank, world_size, barrier)
    train, val = split_cases(cached, val_fraction, seed)
    if not train:
        raise SSLSegError(f"no training cases: all {len(val)} readable cases are in the validation split",
                          "list some cases under \"training\" in the datalist")
    if val_fraction > 0 and not val and rank == 0:
        log.warning("only one labelled case: no validation")
    labels = union_of_names([c.table for c in train])
    if base_labels is not None:
        from sslseg.finetune.from_model import extended_labels

        labels = extended_labels(base_labels, labels)
    if not len(labels) or not any(value for case in train for value in case.present):
        # named organs that no label map draws would train a model that only ever answers "background"
        raise SSLSegError(f"the training cases' label maps hold no organ (all background): "
                          f"{', '.join(c.name for c in train[:5])}{' ...' if len(train) > 5 else ''}",
                          "check the label files (each empty one is named in a warning above)")
    luts = {}
    for case in train:
        luts[_case_id(case)] = remap_lookup(case.table, labels, case.present, case.name)
    for case in val:
        luts[_case_id(case)] = validation_lookup(case, labels)
    organs = organ_sets(train + val, partial.partial_organs)
    for case in train + val:
        unknown = sorted(organs.get(_case_id(case), set()) - set(labels.names))
        if unknown and rank == 0:
            log.warning("case %s lists organ(s) %s that no training case draws: ignored (check the spelling)",
                        case.name, ", ".join(unknown))
    return CaseSet(train, val, labels, luts, failures, organs)
