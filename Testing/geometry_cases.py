"""Asymmetric test grids: every axis a different length and spacing, oblique and LPS-stored variants."""

from __future__ import annotations

import numpy as np

from sslseg.volume import Volume


def rotation(axis: str, degrees: float) -> np.ndarray:
    """(3, 3) right-handed rotation about x, y or z."""
    c, s = np.cos(np.radians(degrees)), np.sin(np.radians(degrees))
    i, j = {"x": (1, 2), "y": (2, 0), "z": (0, 1)}[axis]
    matrix = np.eye(3)
    matrix[i, i], matrix[i, j], matrix[j, i], matrix[j, j] = c, -s, s, c
    return matrix


def make_affine(directions: np.ndarray, spacing, origin) -> np.ndarray:
    affine = np.eye(4)
    affine[:3, :3] = np.asarray(directions) @ np.diag(spacing)
    affine[:3, 3] = origin
    return affine


GRIDS = {
    "ras": make_affine(np.eye(3), (0.8, 1.3, 2.5), (-40.0, 22.5, 7.25)),
    "lps": make_affine(np.diag([-1.0, -1.0, 1.0]), (0.8, 1.3, 2.5), (60.0, 80.0, -12.0)),
    "oblique": make_affine(rotation("z", 23) @ rotation("x", -11), (0.7, 1.1, 3.0), (12.3, -45.6, 78.9)),
    "permuted": make_affine(np.array([[0, 0, 1.0], [-1.0, 0, 0], [0, -1.0, 0]]), (1.5, 0.9, 2.2), (5.0, 6.0, 7.0)),
}


def asymmetric_volume(affine: np.ndarray, shape=(11, 7, 5), dtype=np.int16) -> Volume:
    """Values that identify each voxel, so any flip or transposition changes the array."""
    array = np.arange(np.prod(shape), dtype=np.int64).reshape(shape) % 3000 - 1000
    return Volume(array.astype(dtype), affine)
