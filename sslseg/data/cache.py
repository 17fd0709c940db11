"""Preprocessed volumes cached on disk, one ``.npy`` (float16, memory-mapped when read) + one ``.json`` per volume.

A cache entry is keyed by the source's signature (path, sizes, mtimes) and the preprocessing settings, so a changed
file or setting is recomputed and everything else is reused: epoch 2, a resumed run, or a new run pointed at the same
``--cache`` folder never re-reads or resamples a volume. Nothing holds the whole dataset in memory: training reads only
the voxels of each random patch from the memory map.

float16 keeps 11 significant bits: 0.0005 of the 0..1 range at the top, under 1 HU in the default 2000 HU window.

Under DDP every process builds the entries ``rank::world`` and waits for the others; unreadable volumes are skipped
with a warning (an ``.error.json`` marker tells the other processes), and all unreadable is an error.

The machinery (:class:`CacheJob`, :func:`fill_cache`, :func:`write_npy`, :func:`write_record`) is not tied to
pretraining's volumes: fine-tuning caches its labelled cases (image + label map) with it
(:mod:`sslseg.finetune.cases`).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from sslseg.data.fingerprint import content_sha256, source_signature, stable_key
from sslseg.data.preprocess import PreprocessSettings, preprocess_volume
from sslseg.errors import SSLSegError
from sslseg.io.scan import VolumeSource
from sslseg.package.files import write_atomically

log = logging.getLogger(__name__)

CACHE_DTYPE = np.float16


@dataclass(frozen=True)
class CacheEntry:
    """One preprocessed volume on disk.

    Attributes:
        name: the source's case name.
        array_path: ``.npy`` holding (I, J, K) float16 in 0..1 on a RAS grid.
        affine: (4, 4) voxel-to-RAS of that grid.
        shape: (I, J, K).
        modality: ``"ct"`` or ``"mr"``.
        source: the source file or DICOM folder, and ``series_uid`` for DICOM.
        sha256: content hash of the source (see :mod:`sslseg.data.fingerprint`).
        patient: the DICOM Patient ID (0010,0020) when the source has one, else "" (entries cached before it was
            recorded have "" until rebuilt); validation splits keep a patient's volumes together.
        study: the DICOM Study Instance UID, else "".
        frame: the DICOM Frame of Reference UID, else "": volumes of one patient that share it lie in one coordinate
            system, so one RAS point is one place in each (patient-aware positives, :mod:`sslseg.data.partners`).
        A folder's ``patients.csv`` sets these three for files without DICOM tags (:mod:`sslseg.io.patients_csv`).
    """

    name: str
    array_path: Path
    affine: np.ndarray
    shape: tuple[int, int, int]
    modality: str
    source: str
    series_uid: str | None
    sha256: str
    patient: str = ""
    study: str = ""
    frame: str = ""

    def open(self) -> np.ndarray:
        """The voxels as a read-only memory map, (I, J, K) float16."""
        return np.load(self.array_path, mmap_mode="r")

    def fingerprint(self) -> dict:
        item = {"name": Path(self.source).name, "sha256": self.sha256}
        if self.series_uid:
            item["series_uid"] = self.series_uid
        return item


@dataclass(frozen=True)
class CacheFailure:
    source: str
    message: str


def entry_key(source: VolumeSource, settings: PreprocessSettings) -> str:
    return stable_key(source_signature(source), settings.to_dict())


def _save_npy(path: Path, array: np.ndarray) -> None:
    with open(path, "wb") as handle:  # a handle: np.save would append ".npy" to a temporary name
        np.save(handle, array)


def _entry_from_json(path: Path) -> CacheEntry:
    data = json.loads(path.read_text(encoding="utf-8"))
    return CacheEntry(name=data["name"], array_path=path.with_suffix(".npy"), affine=np.asarray(data["affine"]),
                      shape=tuple(data["shape"]), modality=data["modality"], source=data["source"],
                      series_uid=data["series_uid"], sha256=data["sha256"], patient=data.get("patient_id", ""),
                      study=data.get("study_uid", ""), frame=data.get("frame_of_reference", ""))


def build_entry(source: VolumeSource, key: str, cache_dir: Path, settings: PreprocessSettings) -> CacheEntry:
    """Read, preprocess and store one volume (overwrites a stale entry of the same key)."""
    volume = source.read()
    array, affine, modality = preprocess_volume(volume, settings)
    array_path = cache_dir / f"{key}.npy"
    write_npy(array_path, array.astype(CACHE_DTYPE))
    record = {
        "name": source.name, "source": str(source.path), "series_uid": source.series_uid,
        "shape": list(array.shape), "affine": affine.tolist(), "modality": modality,
        "sha256": content_sha256(source), "original_shape": list(volume.shape),
        "original_spacing": volume.spacing.tolist(), "signature": source_signature(source),
        "settings": settings.to_dict(), "patient_id": volume.meta.patient_id.strip(),
        "study_uid": volume.meta.study_uid.strip(), "frame_of_reference": volume.meta.frame_of_reference.strip(),
    }
    write_record(cache_dir / f"{key}.json", record)
    return _entry_from_json(cache_dir / f"{key}.json")


@dataclass(frozen=True)
class CacheJob:
    """One cache entry to make: ``build(*args)`` writes ``cache_dir/<key>.json`` (last, atomically) and whatever
    arrays it refers to. ``build`` is a module-level function (worker processes call it); ``source`` names the input
    in warnings."""

    key: str
    cache_dir: Path
    source: str
    build: Callable
    args: tuple

    @property
    def record(self) -> Path:
        return self.cache_dir / f"{self.key}.json"

    @property
    def marker(self) -> Path:
        return self.cache_dir / f"{self.key}.error.json"


def write_npy(path: Path, array: np.ndarray) -> None:
    """``array`` as a ``.npy`` file, written atomically (readers memory-map it)."""
    write_atomically(path, lambda p: _save_npy(p, array))


def write_record(path: Path, record: dict) -> None:
    """A cache entry's JSON record, written atomically (its presence marks the entry complete)."""
    write_atomically(path, lambda p: p.write_text(json.dumps(record, indent=1), encoding="utf-8"))


def _build_or_mark(job: CacheJob) -> None:
    job.marker.unlink(missing_ok=True)
    try:
        job.build(*job.args)
    except MemoryError:
        raise
    except Exception as error:  # noqa: BLE001 - any unreadable or broken file is skipped, not fatal
        message = error.message if isinstance(error, SSLSegError) else f"{type(error).__name__}: {error}"
        job.marker.write_text(json.dumps({"source": job.source, "message": message}), encoding="utf-8")


def _run_parallel(items: list, workers: int) -> None:
    if workers <= 0 or len(items) <= 1:
        for item in items:
            _build_or_mark(item)
        return
    from torch.utils.data import DataLoader

    class _Jobs:
        def __len__(self):
            return len(items)

        def __getitem__(self, index):
            _build_or_mark(items[index])
            return index

    from sslseg.data.loader import ignore_interrupts

    jobs = DataLoader(_Jobs(), batch_size=None, num_workers=min(workers, len(items)), worker_init_fn=ignore_interrupts)
    for _ in jobs:
        pass


def fill_cache(jobs: list[CacheJob], workers: int = 0, rank: int = 0, world_size: int = 1, barrier=None,
               what: str = "volumes") -> tuple[list[Path | None], list[CacheFailure]]:
    """Make every job's entry that is not cached yet; returns (each job's record path, or None where it failed;
    the failures, also logged on rank 0).

    Args:
        workers: processes that preprocess in parallel (0: in this process).
        rank, world_size, barrier: DDP sharding; ``barrier()`` is called once every share is done.
        what: what the jobs are, for the log.
    """
    for folder in {job.cache_dir for job in jobs}:
        folder.mkdir(parents=True, exist_ok=True)
    # shard over all jobs, not over the missing ones: ranks look at the folder at different moments
    mine = [jobs[i] for i in range(rank, len(jobs), world_size) if not jobs[i].record.is_file()]
    if mine:
        log.info("preprocessing %d of %d %s into %s", len(mine), len(jobs), what, mine[0].cache_dir)
    _run_parallel(mine, workers)
    if barrier is not None:
        barrier()
    records, failures = [], []
    for job in jobs:
        if job.record.is_file():
            records.append(job.record)
        else:
            message = json.loads(job.marker.read_text())["message"] if job.marker.is_file() else "not preprocessed"
            records.append(None)
            failures.append(CacheFailure(job.source, message))
    if rank == 0:
        for failure in failures:
            log.warning("skipping %s: %s", failure.source, failure.message)
    if not any(records):
        raise SSLSegError(f"none of the {len(jobs)} {what} could be read",
                          f"first problem: {failures[0].source}: {failures[0].message}" if failures else "")
    return records, failures


def build_cache(sources: list[VolumeSource], cache_dir: str | Path, settings: PreprocessSettings,
                workers: int = 0, rank: int = 0, world_size: int = 1, barrier=None):
    """Cache every source; returns (entries in source order, failures). Entries already cached are reused.

    Args:
        workers: processes that preprocess in parallel (0: in this process).
        rank, world_size, barrier: DDP sharding; ``barrier()`` is called once every share is done.
    """
    cache_dir = Path(cache_dir)
    jobs = []
    for source in sources:
        key = entry_key(source, settings)
        jobs.append(CacheJob(key, cache_dir, str(source), build_entry, (source, key, cache_dir, settings)))
    records, failures = fill_cache(jobs, workers, rank, world_size, barrier)
    return [_entry_from_json(record) for record in records if record is not None], failures
