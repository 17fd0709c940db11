"""What identifies a source volume: a cheap signature (path, sizes, mtimes) for cache keys and a content hash.

The content hash of a file is the SHA-256 of its bytes; of a DICOM series (many files, often re-exported with new
bytes but the same images), the SHA-256 of its sorted file names and sizes.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from sslseg.io.scan import VolumeSource


def _series_files(source: VolumeSource) -> list[Path]:
    from sslseg.io import dicom

    for series in dicom.find_series(source.path):
        if series.series_uid == source.series_uid:
            return sorted(series.files)
    return []


def source_signature(source: VolumeSource) -> dict:
    """``{"path", "series_uid", "files", "bytes", "mtime_ns"}``: changes whenever the source's files change."""
    files = _series_files(source) if source.is_dicom else [source.path]
    stats = [f.stat() for f in files]
    return {
        "path": str(Path(source.path).resolve()),
        "series_uid": source.series_uid,
        "files": len(files),
        "bytes": sum(s.st_size for s in stats),
        "mtime_ns": max((s.st_mtime_ns for s in stats), default=0),
    }


def content_sha256(source: VolumeSource, chunk: int = 1 << 20) -> str:
    """SHA-256 of the file, or for a DICOM series of its sorted ``name size`` lines."""
    digest = hashlib.sha256()
    if source.is_dicom:
        for path in _series_files(source):
            digest.update(f"{path.name} {path.stat().st_size}\n".encode())
        return digest.hexdigest()
    with open(source.path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def stable_key(*parts) -> str:
    """A short hex key of JSON-able parts (for cache file names)."""
    text = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:24]
