"""Reduce every volume under a folder: hashes per volume, then the greedy pass per volume or over the whole dataset.

:func:`preview_reduction` is the light entry point for a GUI ("how much of this folder would be kept?").
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np

from sslseg.errors import SSLSegError
from sslseg.io.scan import VolumeSource, find_volumes
from sslseg.reduce.axial import axial_stack
from sslseg.reduce.dhash import axial_hashes
from sslseg.reduce.greedy import Reduction, greedy_reduce

log = logging.getLogger(__name__)

SCOPES = ("volume", "dataset")


@dataclass
class VolumeHashes:
    """One volume's axial slices in anatomical order (inferior first).

    Attributes:
        source: where it was read from.
        axis: voxel axis of the slices (0, 1, 2 = i, j, k); indices: (N,) their voxel index along it.
        superior_mm: (N,) RAS S coordinate of each slice centre; hashes: (N,) uint64 dhash.
    """

    source: VolumeSource
    axis: int
    indices: np.ndarray
    superior_mm: np.ndarray
    hashes: np.ndarray


@dataclass
class FolderReduction:
    """Per volume (same order as ``volumes``): the :class:`Reduction` of its slices; ``keeper`` is a position in
    that volume (scope volume) or ``(volume, position)`` pairs in ``keeper_volume`` (scope dataset)."""

    threshold: int
    scope: str
    volumes: list[VolumeHashes]
    reductions: list[Reduction]
    keeper_volume: list[np.ndarray]
    skipped: list[tuple[str, str]] = field(default_factory=list)

    @property
    def total(self) -> int:
        return int(sum(len(v.hashes) for v in self.volumes))

    @property
    def kept(self) -> int:
        return int(sum(r.kept.sum() for r in self.reductions))


def hash_volume(source: VolumeSource) -> VolumeHashes:
    """Read one volume and hash its axial slices."""
    stack = axial_stack(source.read())
    return VolumeHashes(source, stack.axis, stack.indices, stack.superior_mm, axial_hashes(stack))


def hash_folder(data_dir) -> tuple[list[VolumeHashes], list[tuple[str, str]]]:
    """Hashes of every volume under ``data_dir`` (scan order); unreadable volumes are skipped with a warning."""
    hashed, skipped = [], []
    for source in find_volumes(data_dir):
        try:
            hashed.append(hash_volume(source))
        except SSLSegError as error:
            log.warning("skipping %s: %s", source, error.message)
            skipped.append((str(source), error.message))
    if not hashed:
        raise SSLSegError(f"none of the volumes under {data_dir} could be read", skipped[0][1] if skipped else "")
    return hashed, skipped


def reduce_hashes(volumes: list[VolumeHashes], threshold: int, scope: str = "volume") -> FolderReduction:
    """The greedy reduction of already hashed volumes, per volume or over all of them in order."""
    if scope not in SCOPES:
        raise SSLSegError(f"unknown scope {scope!r}", f"use one of {', '.join(SCOPES)}")
    if threshold < 0 or threshold > 64:
        raise SSLSegError(f"threshold {threshold} is not a Hamming distance of 64-bit hashes", "use 0..64, e.g. 6")
    if scope == "volume":
        reductions = [greedy_reduce(v.hashes, threshold) for v in volumes]
        owners = [np.full(len(v.hashes), i) for i, v in enumerate(volumes)]
        return FolderReduction(threshold, scope, volumes, reductions, owners)
    sizes = [len(v.hashes) for v in volumes]
    starts = np.concatenate([[0], np.cumsum(sizes)])
    whole = greedy_reduce(np.concatenate([v.hashes for v in volumes]), threshold)
    owner_of = np.repeat(np.arange(len(volumes)), sizes)
    reductions, owners = [], []
    for i in range(len(volumes)):
        part = slice(starts[i], starts[i + 1])
        keeper = whole.keeper[part]
        owner = np.where(keeper >= 0, owner_of[np.maximum(keeper, 0)], i)
        local = np.where(keeper >= 0, keeper - starts[owner], -1)
        reductions.append(Reduction(whole.kept[part], local, whole.distance[part]))
        owners.append(owner)
    return FolderReduction(threshold, scope, volumes, reductions, owners)


def reduce_folder(data_dir, threshold: int, scope: str = "volume") -> FolderReduction:
    """Hash every volume under ``data_dir`` and reduce (see :func:`reduce_hashes`)."""
    volumes, skipped = hash_folder(data_dir)
    result = reduce_hashes(volumes, threshold, scope)
    result.skipped = skipped
    return result


def preview_reduction(data_dir, threshold: int = 6, scope: str = "volume") -> dict:
    """For a GUI preview: ``{"kept", "total", "fraction", "volumes", "skipped"}`` of a reduction of ``data_dir``."""
    result = reduce_folder(data_dir, threshold, scope)
    return {"kept": result.kept, "total": result.total, "fraction": result.kept / max(result.total, 1),
            "volumes": len(result.volumes), "skipped": len(result.skipped)}
