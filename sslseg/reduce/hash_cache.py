"""Slice hashes kept beside the pretraining cache, so ``pretrain --reduce`` reads each source volume only once.

Without it every start and every resume of a reduced run re-read all training volumes just to hash their slices
(reading a CT costs far more than hashing it). The hashes are stored as ``<cache entry>.dhash.npz`` next to the
entry's voxels and belong to the same source content (``sha256``); an unreadable, older or foreign file is recomputed.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from sslseg.data.cache import CacheEntry
from sslseg.io.scan import VolumeSource
from sslseg.package.files import write_atomically
from sslseg.reduce.folder import VolumeHashes, hash_volume

log = logging.getLogger(__name__)

#: Bumped whenever the slice order or the hash definition changes.
HASH_FILE_VERSION = 1


def source_of(entry: CacheEntry) -> VolumeSource:
    return VolumeSource(Path(entry.source), entry.series_uid)


def hash_file(entry: CacheEntry) -> Path:
    return entry.array_path.with_name(entry.array_path.stem + ".dhash.npz")


def cached_hashes(entry: CacheEntry) -> VolumeHashes:
    """The entry's slice hashes: from its hash file when that is current, else hashed from the source and stored."""
    path = hash_file(entry)
    stored = _load(path, entry)
    if stored is not None:
        return stored
    hashed = hash_volume(source_of(entry))
    try:
        write_atomically(path, lambda temporary: _save(temporary, hashed, entry.sha256))
    except OSError as error:  # a read-only cache still trains, it just hashes again next time
        log.warning("could not keep the slice hashes in %s: %s", path, error)
    return hashed


def _save(path: Path, hashed: VolumeHashes, sha256: str) -> None:
    with open(path, "wb") as handle:  # a handle: np.savez would append ".npz" to the temporary name
        np.savez(handle, version=HASH_FILE_VERSION, sha256=sha256, axis=hashed.axis, indices=hashed.indices,
                 superior_mm=hashed.superior_mm, hashes=hashed.hashes)


def _load(path: Path, entry: CacheEntry) -> VolumeHashes | None:
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as stored:
            if int(stored["version"]) != HASH_FILE_VERSION or str(stored["sha256"]) != entry.sha256:
                return None
            return VolumeHashes(source_of(entry), int(stored["axis"]), stored["indices"], stored["superior_mm"],
                                stored["hashes"].astype(np.uint64))
    except (OSError, ValueError, KeyError) as error:
        log.warning("recomputing the slice hashes: %s is unreadable (%s)", path, error)
        return None
