"""Pillow's LANCZOS ("ANTIALIAS") resize of 8-bit images, reproduced exactly as integer matrices.

Pillow (``src/libImaging/Resample.c``) resizes in two separable passes, horizontal then vertical, each an integer
weighted sum per output pixel. Per axis of ``in_size`` pixels resized to ``out_size``:

- ``scale = in_size / out_size``, ``filterscale = max(scale, 1)``, ``support = 3 * filterscale``;
- output pixel ``o`` is centred at ``c = (o + 0.5) * scale`` and reads inputs ``xmin .. xmin + count - 1`` with
  ``xmin = max(int(c - support + 0.5), 0)`` and ``int(c + support + 0.5)`` (at most ``in_size``) as the end;
- weight of input ``x``: ``lanczos((x - c + 0.5) / filterscale)`` with ``lanczos(t) = sinc(t) sinc(t / 3)`` on
  ``-3 <= t < 3``, normalised by their sequential sum, then made integers: ``int(w * 2**22 +/- 0.5)`` (rounded
  half away from zero, 22 = PRECISION_BITS);
- the pass's value is ``(2**21 + sum(pixel * weight)) >> 22`` clipped to 0..255: the intermediate image after the
  horizontal pass is 8-bit again, which is why the passes cannot be merged or reordered;
- an axis whose size does not change is not resampled at all;
- pass order (Pillow 13, ``ImagingResampleInner``): horizontal first, unless the height shrinks by more than twice
  as many pixels as the width does, then vertical first (the 8-bit clip in between makes the order matter).

Weights are computed in scalar Python (``math.sin``: the C library's ``sin``, as Pillow's) once per size pair;
the sums are done as float64 matrix products, exact because every product and partial sum is an integer below
2**53 (255 * 2**23 * in_size).

Faster and still exact (:func:`split_weights`): each weight ``w = 256 * hi + lo`` with ``|lo| <= 128``; the two
float32 products ``pixels @ hi`` and ``pixels @ lo`` are exact when every partial sum stays below 2**24 in
magnitude, which holds when ``255 * sum(|hi|)`` and ``255 * sum(|lo|)`` over each output's taps are below 2**24
(checked per size pair; ~2**22.3 and ~2**21.4 for 512 -> 9). float32 halves the bytes BLAS streams and doubles its
SIMD width; ``256 * hi_sum + lo_sum`` is then formed in float64.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np

PRECISION_BITS = 22
SUPPORT = 3.0


def _sinc(x: float) -> float:
    if x == 0.0:
        return 1.0
    x = x * math.pi
    return math.sin(x) / x


def _lanczos(x: float) -> float:
    if -3.0 <= x < 3.0:
        return _sinc(x) * _sinc(x / 3)
    return 0.0


@lru_cache(maxsize=64)
def _weights(in_size: int, out_size: int) -> np.ndarray:
    scale = float(in_size) / out_size
    filterscale = max(scale, 1.0)
    support = SUPPORT * filterscale
    inverse = 1.0 / filterscale
    matrix = np.zeros((in_size, out_size), dtype=np.float64)
    for o in range(out_size):
        centre = 0.0 + (o + 0.5) * scale
        first = max(int(centre - support + 0.5), 0)
        count = min(int(centre + support + 0.5), in_size) - first
        weights = [_lanczos(((x + first) - centre + 0.5) * inverse) for x in range(count)]
        total = 0.0
        for w in weights:
            total += w
        for x, w in enumerate(weights):
            w = w / total if total != 0.0 else w
            matrix[first + x, o] = int(w * (1 << PRECISION_BITS) + (-0.5 if w < 0 else 0.5))
    matrix.setflags(write=False)
    return matrix


def resize_matrix(in_size: int, out_size: int) -> np.ndarray | None:
    """(in_size, out_size) float64 integer weights of one pass, or None when the axis is not resampled."""
    if in_size == out_size:
        return None
    return _weights(in_size, out_size)


SPLIT = 256.0


@lru_cache(maxsize=64)
def _split(in_size: int, out_size: int) -> np.ndarray | None:
    weights = _weights(in_size, out_size)
    high = np.round(weights / SPLIT)
    low = weights - SPLIT * high  # |low| <= 128
    if 255.0 * max(np.abs(high).sum(axis=0).max(), np.abs(low).sum(axis=0).max()) >= float(1 << 24):
        return None
    pieces = np.stack([high, low], axis=2).reshape(in_size, 2 * out_size).astype(np.float32)
    pieces.setflags(write=False)
    return pieces


def split_weights(in_size: int, out_size: int) -> np.ndarray | None:
    """(in_size, 2 * out_size) float32, columns ``2o`` and ``2o + 1`` the high and low pieces of output o's weights
    (``w = 256 * high + low``), or None when float32 sums could be inexact (very large downscales) or the axis is
    not resampled."""
    if in_size == out_size:
        return None
    return _split(in_size, out_size)


def join_split(sums: np.ndarray, axis: int) -> np.ndarray:
    """float64 ``256 * high + low`` of float32 piece sums; ``sums`` has 2 * out along ``axis`` (pieces of one
    output adjacent); returns the same shape with ``out`` there."""
    sums = np.moveaxis(sums, axis, -1)
    pairs = sums.reshape(*sums.shape[:-1], sums.shape[-1] // 2, 2)
    joined = pairs[..., 0].astype(np.float64)
    joined *= SPLIT
    joined += pairs[..., 1]
    return np.moveaxis(joined, -1, axis)


def finish_pass(sums: np.ndarray) -> np.ndarray:
    """Pillow's rounding and 8-bit clip of integer-valued float64 ``sums`` (any shape), in place."""
    sums += float(1 << (PRECISION_BITS - 1))
    sums *= 1.0 / (1 << PRECISION_BITS)  # a power of two: exact
    np.floor(sums, out=sums)
    return np.clip(sums, 0.0, 255.0, out=sums)


def vertical_first(height: int, width: int, out_height: int, out_width: int) -> bool:
    """Pillow 13's pass order: vertical first when the height shrinks by more than twice the width's shrinkage."""
    return (height - out_height) > 0 and (height - out_height) > (width - out_width) * 2


def resample_axis(values: np.ndarray, axis: int, out: int, flip: bool = False) -> np.ndarray:
    """One of Pillow's passes along ``axis`` of integer-valued float64 ``values`` (any shape): ``size`` -> ``out``
    pixels, rounded and clipped to 0..255, as one matrix product whatever the axis. ``flip``: the axis runs
    backwards in memory (its pixels are read last to first). An axis Pillow does not resample (``size == out``)
    comes back unchanged, but still runs forwards: the hash compares neighbours."""
    size = values.shape[axis]
    matrix = resize_matrix(size, out)
    if matrix is None:
        return np.flip(values, axis=axis) if flip else values
    moved = np.moveaxis(values, axis, 0)
    flat = moved.reshape(size, -1)  # a copy only when the axis was not outermost
    product = matrix[::-1 if flip else 1].T @ flat
    return np.moveaxis(finish_pass(product).reshape(out, *moved.shape[1:]), 0, axis)


def resize_stack(images: np.ndarray, width: int, height: int) -> np.ndarray:
    """``Image.fromarray(img).resize((width, height), LANCZOS)`` for each (H, W) image of ``images`` (n, H, W),
    integer-valued 0..255 (float64 or uint8); returns (n, height, width) float64, integer-valued."""
    out = np.asarray(images, dtype=np.float64)
    if vertical_first(out.shape[1], out.shape[2], height, width):
        return resample_axis(resample_axis(out, 1, height), 2, width)
    return resample_axis(resample_axis(out, 2, width), 1, height)
