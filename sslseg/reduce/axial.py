"""A volume as a stack of axial 2-D images, the way the hash sees them.

Definition (the hash depends on it, since dhash compares horizontal neighbours):

- **slices** are taken along the voxel axis closest to superior-inferior (nibabel ``io_orientation``; an oblique
  grid is not resampled, its nearest axis is used), ordered **inferior to superior** by the RAS position of each
  slice's centre (the volume's voxel-to-RAS affine), whatever the file or DICOM instance order;
- **image rows** run anterior -> posterior and **columns** patient right -> left: the radiological display, and the
  pixel layout of an axial DICOM image (LPS). Axes are permuted and flipped only; no voxel is interpolated;
- **grey levels**: per slice, with ``lo``/``hi`` its own min/max (no windowing), ``a = 255 / (hi - lo)``,
  ``b = 0.5 - lo * a`` and ``u = floor(v * a + b)`` evaluated in float64 (numpy, one rounding per operation),
  i.e. ``t = (v - lo) / (hi - lo) * 255`` rounded to the nearest level; a constant slice is all 0. ``lo`` maps to 0
  and ``hi`` to 255 (the 0.5 margin is far above float64 error, so no clipping is needed);
- **ties** (``t`` exactly k + 1/2, possible only for an even span ``hi - lo``): float64's rounding of
  ``v * a + b`` decides, mostly upwards. Integer voxels are otherwise mapped exactly to the nearest level (checked
  on every pixel of the three real test scans: 7.9 M pixels, 4952 of them ties, 4647 of those rounded up, 305 down).

**Difference from the paper's code** (github.com/Wolfda95/Less_is_More): it writes each slice as a PNG through
OpenCV, which converts the float image to 8 bits by rounding to nearest, ties to even (``cvRound``). Its NIfTI
script maps ``(v - lo) / (hi - lo + 1e-5) * 255``: the 1e-5 (a guard against constant slices) pulls every tie just
below k + 1/2, so ties round **down**, and, for integer voxels with spans below 2**16, nothing else changes (the
pull is below 0.003 / span, a non-tie lies at least 0.5 / span from a level boundary; on the real scans it equals
exact round-half-down on every pixel). Its DICOM script has no 1e-5: ties (as float64 computes them) go to even.
Measured on the three real scans (204 slices): ties rounded down instead change 4647 pixels (0.059 %) and 1 bit
of the 13,056 hash bits (MR, voxel slice 11); ties to even change no bit. The kept slices at k = 6 are the same;
over k = 0..12 only the MR differs, keeping one slice more (k = 2, 7) or another slice of a run (k = 1, 8).
We keep our rule: the paper's is a side effect of a division guard and an implicit conversion rather than a
stated method (its two scripts disagree), its effect is one bit on a fraction of a percent of slices, and
``floor(v * a + b)`` is what every fast path is proven or tested against bit for bit (:func:`float32_grey_levels`,
the compiled kernels); another rule would need its own variant of each.

Speed (:func:`memory_layout`, :func:`slice_extremes`, :func:`float32_grey_levels`): the hash works on the voxels
in their stored memory order (a DICOM series is often stored with slices innermost), and for integer voxels the
float64 formula is replaced, per slice, by a float32 one that is *checked* to give the same grey level for every
integer of the slice's range (a slice that fails the check, or a non-integer volume, keeps the float64 formula).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sslseg.volume import Volume

AXIS_NAMES = "ijk"


@dataclass
class AxialStack:
    """Axial slices of a volume, as views of its voxels (nothing copied).

    Attributes:
        images: (N, H, W) view, ``images[n]`` is slice n (inferior first), rows anterior->posterior, columns
            right->left; any dtype.
        axis: the voxel axis the slices are taken along (0, 1, 2 for i, j, k).
        indices: (N,) voxel index along ``axis`` of each slice (the index in the original file).
        superior_mm: (N,) RAS S coordinate (mm) of each slice's centre, ascending.
        source: the volume's (I, J, K) array the views look into.
    """

    images: np.ndarray
    source: np.ndarray
    axis: int
    indices: np.ndarray
    superior_mm: np.ndarray

    @property
    def axis_name(self) -> str:
        return AXIS_NAMES[self.axis]


def axial_stack(volume: Volume) -> AxialStack:
    """The volume's axial slices as an (N, H, W) view (see the module docstring for the exact definition)."""
    import nibabel.orientations as nio

    ornt = nio.io_orientation(volume.affine)  # per voxel axis: (RAS axis it is closest to, +1 towards R/A/S)
    by_ras = {int(ras): (axis, sign) for axis, (ras, sign) in enumerate(ornt)}
    (slice_axis, s_sign), (row_axis, a_sign), (col_axis, r_sign) = by_ras[2], by_ras[1], by_ras[0]
    images = np.transpose(volume.array, (slice_axis, row_axis, col_axis))
    # rows must run towards P (RAS sign -1), columns towards L (sign -1), slices towards S (sign +1)
    images = images[:: int(s_sign), :: -int(a_sign), :: -int(r_sign)]
    count = volume.shape[slice_axis]
    indices = np.arange(count) if s_sign > 0 else np.arange(count)[::-1]
    centre = (np.asarray(volume.shape, dtype=np.float64) - 1) / 2
    points = np.repeat(centre[None], count, axis=0)
    points[:, slice_axis] = indices
    superior = points @ volume.affine[2, :3] + volume.affine[2, 3]
    if np.any(np.diff(superior) < 0):  # cannot happen after the flips above; a copy if it ever did
        order = np.argsort(superior, kind="stable")
        images, indices, superior = images[order], indices[order], superior[order]
    return AxialStack(images, volume.array, slice_axis, indices, superior)


def grey_level_affine(low: np.ndarray, high: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(a, b), each (N,) float64, from per-slice ``low``/``high`` (N,): the definition's ``a = 255 / (hi - lo)``,
    ``b = 0.5 - lo * a`` (a constant slice: a = 0, b = 0.5)."""
    low = np.asarray(low, dtype=np.float64)
    span = np.asarray(high, dtype=np.float64) - low
    a = np.divide(255.0, span, out=np.zeros_like(span), where=span > 0)
    return a, 0.5 - low * a


def memory_layout(images: np.ndarray) -> tuple[np.ndarray, tuple[int, int, int], tuple[bool, bool, bool]]:
    """``images`` (N, H, W), any strides, as a C-contiguous array in memory order (no copy when it already is one).

    Returns ``(data, order, flips)``: ``data`` (d0, d1, d2) with ``data`` = ``images`` un-flipped along the axes
    where ``flips`` is True, then transposed by ``order`` (``order[p]`` = the images axis at memory position p).
    """
    flips = tuple(bool(stride < 0) for stride in images.strides)
    base = images[tuple(slice(None, None, -1) if flip else slice(None) for flip in flips)]
    # outermost first; a size-1 axis has a meaningless stride, put it outermost so it never splits a run
    order = tuple(sorted(range(3), key=lambda ax: (base.shape[ax] != 1, -abs(base.strides[ax]))))
    data = np.transpose(base, order)
    if not data.flags.c_contiguous:  # a strided or sliced view: one copy, then every pass below reads contiguously
        data = np.ascontiguousarray(data)
    return data, order, flips


def _block_reduce(reduce, flat: np.ndarray) -> np.ndarray:
    """``reduce(flat, axis=0)`` of ``flat`` (R, n), done on wide blocks: numpy reduces (R, n) over axis 0 one short
    row of n at a time, (R / k, k * n) runs over rows of k * n values (SIMD), then k rows of n are left."""
    rows, n = flat.shape
    k = 1
    for candidate in range(max(1, 4096 // max(n, 1)), 0, -1):
        if rows % candidate == 0:
            k = candidate
            break
    return reduce(reduce(flat.reshape(rows // k, k * n), axis=0).reshape(k, n), axis=0)


def slice_extremes(data: np.ndarray, position: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-slice (min, max), each (N,), of ``data`` (d0, d1, d2) C-contiguous whose slices run along memory axis
    ``position``: each reduction reads memory in order (no strided gather)."""
    if data.shape[position] == 0:
        empty = np.zeros(0, dtype=data.dtype)
        return empty, empty
    if position == 0:
        flat = data.reshape(data.shape[0], -1)
        return flat.min(axis=1), flat.max(axis=1)
    if position == 1:
        return data.min(axis=2).min(axis=0), data.max(axis=2).max(axis=0)
    flat = data.reshape(-1, data.shape[2])
    return _block_reduce(np.minimum.reduce, flat), _block_reduce(np.maximum.reduce, flat)


#: Integers up to 2**24 are exact in float32.
_FLOAT32_INTEGERS = 1 << 24


def float32_grey_levels(low: np.ndarray, high: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-slice float32 ``(a32, b32, exact)``, each (N,), for integer slices with extremes ``low``/``high`` (N,).

    ``floor(float32(float32(v) * a32) + b32)`` (numpy float32, one rounding per operation) equals the definition's
    float64 ``floor(v * a + b)`` for **every** integer ``lo <= v <= hi`` of slice n where ``exact[n]``.

    Why a few points prove all of them: both maps are non-decreasing step functions of v (IEEE rounding is
    monotone, a > 0), from 0 at ``lo`` to 255 at ``hi``; such a function is fixed by where it first reaches each
    k = 1..255. That step lies in a window of three integers around ``t_k = lo + (k - 1/2) * span / 255``, where
    the exact (v - lo) * 255 / span + 1/2 crosses k. For each k we check that both maps are below k at the window's
    left end, at least k at its right end, and equal on the window: then both first reach k at the same integer.
    A tie (t_k an integer, possible for an even span) can round either way in float64; the float32 offset b32 is
    nudged by a quarter step either way to follow it. ``exact`` is False where no candidate passes.
    """
    low = np.asarray(low).astype(np.int64)
    high = np.asarray(high).astype(np.int64)
    a, b = grey_level_affine(low, high)
    span = (high - low).astype(np.float64)
    count = len(low)
    a32 = a.astype(np.float32)
    b32 = b.astype(np.float32)
    exact = np.zeros(count, dtype=bool)
    representable = (np.abs(low) < _FLOAT32_INTEGERS) & (np.abs(high) < _FLOAT32_INTEGERS)
    exact[(span == 0) & representable] = True  # v * 0 + 0.5 -> 0 in both
    todo = np.flatnonzero((span > 0) & representable)
    if len(todo) == 0:
        return a32, b32, exact
    k = np.arange(1, 256, dtype=np.float64)
    # (2k - 1) * span is an exact integer and the division is correctly rounded: t_k is exact when it is an integer
    centre = np.ceil(low[todo, None] + ((2 * k - 1) * span[todo, None]) / 510.0)
    points = np.clip(centre[:, :, None] + np.array([-1.0, 0.0, 1.0]), low[todo, None, None],
                     high[todo, None, None])  # (n, 255, 3) float64, integers
    points = np.concatenate([points.reshape(len(todo), -1), low[todo, None], high[todo, None]], axis=1)
    reference = np.floor(points * a[todo, None] + b[todo, None])  # the definition, float64
    windows = reference[:, :765].reshape(len(todo), 255, 3)
    brackets = np.all(windows[:, :, 0] < k, axis=1) & np.all(windows[:, :, 2] >= k, axis=1)
    brackets &= (reference[:, 765] == 0) & (reference[:, 766] == 255)
    points32 = points.astype(np.float32)
    quarter = 0.25 / span[todo]
    for nudge in (0.0, -1.0, 1.0):
        left = np.flatnonzero(~exact[todo] & brackets)
        if len(left) == 0:
            break
        rows = todo[left]
        offset = (b[rows] + nudge * quarter[left]).astype(np.float32)
        ours = np.floor(points32[left] * a32[rows, None] + offset[:, None])
        good = np.all(ours == reference[left], axis=1)
        exact[rows[good]] = True
        b32[rows[good]] = offset[good]
    return a32, b32, exact


def scale_into(images: np.ndarray, a: np.ndarray, b: np.ndarray, out: np.ndarray) -> np.ndarray:
    """Grey levels 0..255 of ``images`` (n, H, W) into ``out`` (n, H, W) float64 (integer-valued)."""
    np.multiply(images, a[:, None, None], out=out)
    np.add(out, b[:, None, None], out=out)
    return np.floor(out, out=out)


def slice_image(stack: AxialStack, n: int) -> np.ndarray:
    """Slice ``n`` of ``stack`` as the (H, W) uint8 image that is hashed (one slice at a time: for tests, figures)."""
    images = np.asarray(stack.images[n:n + 1])
    low, high = float(images.min()), float(images.max())
    a = np.array([255.0 / (high - low) if high > low else 0.0])
    out = np.empty(images.shape, dtype=np.float64)
    return scale_into(images, a, 0.5 - np.array([low]) * a, out)[0].astype(np.uint8)
