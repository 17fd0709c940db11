"""The rotations of a cubic patch, exactly (no interpolation): signed permutations of the three spatial axes.

A rotation of the voxel grid that maps the cube onto itself permutes the axes and reverses some of them; it is a
proper rotation (no mirror image) when the permutation's sign times the product of the reversals is +1. There are
24: the rotation group of the cube. ``AXIAL`` are the 4 of them about the inferior-superior axis (axis 2 of a
RAS-oriented patch), i.e. turns of the axial plane.

Arrays are (C, X, Y, Z); a rotation ``(perm, reverse)`` makes output axis i from input axis ``perm[i]``, then reverses
the output axes where ``reverse[i]``.
"""

from __future__ import annotations

import itertools
from typing import NamedTuple

import numpy as np


class Rotation(NamedTuple):
    perm: tuple[int, int, int]
    reverse: tuple[bool, bool, bool]

    def matrix(self) -> np.ndarray:
        """The 3x3 signed permutation matrix (integer) of the rotation: output axis i = +-input axis perm[i]."""
        m = np.zeros((3, 3), dtype=int)
        for i, (axis, flip) in enumerate(zip(self.perm, self.reverse)):
            m[i, axis] = -1 if flip else 1
        return m


def _proper(rotation: Rotation) -> bool:
    return round(np.linalg.det(rotation.matrix())) == 1


#: The 24 rotations of the cube, identity first, in a fixed order (the class index of the rotation task).
CUBE: tuple[Rotation, ...] = tuple(
    r for r in (Rotation(p, f) for p in itertools.permutations(range(3))
                for f in itertools.product((False, True), repeat=3)) if _proper(r))
#: The 4 turns of the axial plane (axis 2 kept, in its direction), identity first.
AXIAL: tuple[Rotation, ...] = tuple(r for r in CUBE if r.perm[2] == 2 and not r.reverse[2])

#: The 4 half turns that keep every axis in place (identity, then 180 degrees about axis 0, 1, 2): a group (two of
#: them make the third), so per cube "turned about the first axis" and "about the second" are two independent bits.
HALF_TURNS: tuple[Rotation, ...] = (Rotation((0, 1, 2), (False, False, False)),
                                    *(Rotation((0, 1, 2), tuple(i != axis for i in range(3))) for axis in range(3)))

SETS = {"axial": AXIAL, "cube": CUBE}


def rotate(volume: np.ndarray, rotation: Rotation) -> np.ndarray:
    """``volume`` (C, X, Y, Z) rotated: exact, a view of the input made contiguous. Non-cubic volumes only for
    rotations that keep each axis's length."""
    turned = np.transpose(volume, (0, *(1 + a for a in rotation.perm)))
    axes = tuple(1 + i for i, flip in enumerate(rotation.reverse) if flip)
    return np.ascontiguousarray(np.flip(turned, axis=axes) if axes else turned)


def inverse(rotation: Rotation) -> Rotation:
    """The rotation that undoes ``rotation`` (the transposed matrix)."""
    m = rotation.matrix().T
    perm = tuple(int(np.flatnonzero(row)[0]) for row in m)
    return Rotation(perm, tuple(bool(m[i, perm[i]] < 0) for i in range(3)))
