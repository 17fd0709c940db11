"""Preprocessed volumes cached on disk, one ``.npy`` (float16, memory-mapped when read) + one ``.json`` per volume.

A cache entry is keyed by the source's signature (path, sizes, mtimes) and the preprocessing settings, so a changed
file or setting is recomputed and everything else is reused: epoch 2, a resumed run, or a new run pointed at the same
``--cache`` folder never re-reads or resamples a volume. Nothing holds the whole dataset in memory: training reads only
the voxels of each random patch from the memory map.

float16 keeps 11 significant bits: 0.0005 of the 0..1 range at the top, under 1 HU in the default 2000 HU window.

Under DDP every process builds the entries ``rank::world`` and waits for the others; unreadable volumes are skipped
with a warning (an ``.error.json`` marker tells the other processes), and all unreadable is an error.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sslseg.data.fingerprint import content_sha256, source_signature, stable_key
from sslseg.data.preprocess import PreprocessSettings, preprocess_volume
from sslseg.errors import SSLSegError
from sslseg.io.scan import VolumeSource

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
    """

    name: str
    array_path: Path
    affine: np.ndarray
    shape: tuple[int, int, int]
    modality: str
    source: str
    series_uid: str | None
    sha256: str

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


def _write_atomic(path: Path, write) -> None:
    temporary = path.with_name(f".{path.name}.{os.getpid()}.partial")
    try:
        write(temporary)
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def _save_npy(path: Path, array: np.ndarray) -> None:
    with open(path, "wb") as handle:  # a handle: np.save would append ".npy" to a temporary name
        np.save(handle, array)


def _entry_from_json(path: Path) -> CacheEntry:
    data = json.loads(path.read_text(encoding="utf-8"))
    return CacheEntry(name=data["name"], array_path=path.with_suffix(".npy"), affine=np.asarray(data["affine"]),
                      shape=tuple(data["shape"]), modality=data["modality"], source=data["source"],
                      series_uid=data["series_uid"], sha256=data["sha256"])


def build_entry(source: VolumeSource, key: str, cache_dir: Path, settings: PreprocessSettings) -> CacheEntry:
    """Read, preprocess and store one volume (overwrites a stale entry of the same key)."""
    volume = source.read()
    array, affine, modality = preprocess_volume(volume, settings)
    array_path = cache_dir / f"{key}.npy"
    _write_atomic(array_path, lambda p: _save_npy(p, array.astype(CACHE_DTYPE)))
    record = {
        "name": source.name, "source": str(source.path), "series_uid": source.series_uid,
        "shape": list(array.shape), "affine": affine.tolist(), "modality": modality,
        "sha256": content_sha256(source), "original_shape": list(volume.shape),
        "original_spacing": volume.spacing.tolist(), "signature": source_signature(source),
        "settings": settings.to_dict(),
    }
    _write_atomic(cache_dir / f"{key}.json", lambda p: p.write_text(json.dumps(record, indent=1), encoding="utf-8"))
    return _entry_from_json(cache_dir / f"{key}.json")


def _build_or_mark(item) -> None:
    source, key, cache_dir, settings = item
    marker = cache_dir / f"{key}.error.json"
    marker.unlink(missing_ok=True)
    try:
        build_entry(source, key, cache_dir, settings)
    except MemoryError:
        raise
    except Exception as error:  # noqa: BLE001 - any unreadable or broken file is skipped, not fatal
        message = error.message if isinstance(error, SSLSegError) else f"{type(error).__name__}: {error}"
        marker.write_text(json.dumps({"source": str(source), "message": message}), encoding="utf-8")


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

    for _ in DataLoader(_Jobs(), batch_size=None, num_workers=min(workers, len(items))):
        pass


def build_cache(sources: list[VolumeSource], cache_dir: str | Path, settings: PreprocessSettings,
                workers: int = 0, rank: int = 0, world_size: int = 1, barrier=None):
    """Cache every source; returns (entries in source order, failures). Entries already cached are reused.

    Args:
        workers: processes that preprocess in parallel (0: in this process).
        rank, world_size, barrier: DDP sharding; ``barrier()`` is called once every share is done.
    """
    cache_dir = Path(cache_dir)
    cache_dir.mkdir(parents=True, exist_ok=True)
    keys = [entry_key(s, settings) for s in sources]
    # shard over all sources, not over the missing ones: ranks look at the folder at different moments
    mine = [(sources[i], keys[i], cache_dir, settings) for i in range(rank, len(sources), world_size)
            if not (cache_dir / f"{keys[i]}.json").is_file()]
    if mine:
        log.info("preprocessing %d of %d volumes into %s", len(mine), len(sources), cache_dir)
    _run_parallel(mine, workers)
    if barrier is not None:
        barrier()
    entries, failures = [], []
    for source, key in zip(sources, keys):
        record, marker = cache_dir / f"{key}.json", cache_dir / f"{key}.error.json"
        if record.is_file():
            entries.append(_entry_from_json(record))
        else:
            message = json.loads(marker.read_text())["message"] if marker.is_file() else "not preprocessed"
            failures.append(CacheFailure(str(source), message))
    if rank == 0:
        for failure in failures:
            log.warning("skipping %s: %s", failure.source, failure.message)
    if not entries:
        raise SSLSegError(f"none of the {len(sources)} volumes could be read",
                          f"first problem: {failures[0].source}: {failures[0].message}" if failures else "")
    return entries, failures
