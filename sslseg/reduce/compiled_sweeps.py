"""Compiled sweeps over the voxels for the slice hash (optional: numba): per-slice extremes, and grey levels fused
with Pillow's first LANCZOS pass.

The numpy path (:mod:`~sslseg.reduce.dhash`) makes ~5 passes over every voxel (convert, scale, shift, floor, a
BLAS product with the weights split in two); on a 512 x 512 slice that is ~0.5-0.7 ms of memory traffic. Here
each voxel is read once, turned into its grey level (the same float map as the numpy path: float32 where
:func:`~sslseg.reduce.axial.float32_grey_levels` proved it equal to the definition, else float64; two roundings,
no fused multiply-add) and multiplied into the outputs whose LANCZOS taps reach it while it is in a register.

The sums are int32, as in Pillow itself (``ImagingResampleHorizontal_8bpc``): grey level (0..255) times integer
weight (below 2**23); every sum is exact when ``255 * sum(|weights|)`` of each output is below 2**31
(:func:`exact_in_int32`, true for every LANCZOS downscale; checked anyway). Integer addition is associative, so the
compiler may spread the taps over SIMD lanes without changing a bit.

numba is optional (``pip install sslseg[fast]``): :func:`available` says whether this path can run;
``SSLSEG_HASH_KERNEL=numpy`` turns it off. The kernels themselves are in :mod:`~sslseg.reduce.compiled_kernels`,
imported on first use. Each is compiled once per machine and argument types (voxel type, float32 or float64 grey-level
map; ~1 s each) and loaded from numba's disk cache by later processes, in a per-user folder
(:mod:`~sslseg.reduce.numba_cache`: ``NUMBA_CACHE_DIR``, else e.g. ``~/.cache/sslseg/numba``), never in the package.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from functools import lru_cache

import numpy as np

from sslseg.reduce import numba_cache
from sslseg.reduce.axial import slice_extremes as numpy_slice_extremes
from sslseg.reduce.lanczos import resize_matrix
from sslseg.reduce.thread_pool import in_parallel

#: Slices stored outermost with fewer voxels than this stay in cache between numpy's min and max: numpy is faster
#: there (measured on 126 x 120 slices: 0.014 against 0.017 ms per slice for the whole hash).
ONE_READ_SLICE_VOXELS = 1 << 16
#: Voxels per worker thread, at least (~0.3 ms of work; handing a part to a pool thread and waiting costs ~0.05 ms).
THREAD_VOXELS = 1 << 20
_INT32_LIMIT = float(1 << 31)


def available() -> bool:
    """True when numba is installed and ``SSLSEG_HASH_KERNEL`` is not ``numpy``."""
    return os.environ.get("SSLSEG_HASH_KERNEL", "").lower() != "numpy" and _numba_installed()


def loaded() -> bool:
    """True when this process has already paid numba's start-up: the kernels are imported."""
    return "sslseg.reduce.compiled_kernels" in sys.modules


@lru_cache(maxsize=1)
def _numba_installed() -> bool:
    """Imported once (a failed import is not cached by Python, it would search sys.path on every volume); any
    failure counts as absent: numba refuses to import beside a numpy newer than it supports."""
    try:
        if importlib.util.find_spec("numba") is not None:
            numba_cache.configure()  # before numba's import, which reads NUMBA_CACHE_DIR
        import numba  # noqa: F401
    except Exception:  # noqa: BLE001 - ImportError, or numba's own version check
        return False
    return True


def exact_in_int32(size: int, out: int) -> bool:
    """Whether int32 sums of grey levels times Pillow's ``size`` -> ``out`` weights cannot overflow."""
    return bool(255.0 * np.abs(resize_matrix(size, out)).sum(axis=0).max() < _INT32_LIMIT)


def _weights(size: int, out: int, flip: bool) -> np.ndarray:
    """(size, out) float64 integer weights of Pillow's pass, rows reversed when the axis runs backwards."""
    matrix = resize_matrix(size, out)
    return matrix[::-1] if flip else matrix


def _kernels():
    """The numba kernels (:mod:`~sslseg.reduce.compiled_kernels`): imported on first use, numba being optional."""
    from sslseg.reduce import compiled_kernels

    return compiled_kernels


def slice_extremes(data: np.ndarray, position: int, threads: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Per-slice (min, max), each (N,), of integer ``data`` (d0, d1, d2) C-contiguous whose slices run along memory
    axis ``position``, in one read of each voxel (numpy's reductions, :func:`~sslseg.reduce.axial.slice_extremes`,
    need two, and with slices innermost, a DICOM series, run over rows of only N values). Slices in the middle
    axis, and small slices outermost (in cache for numpy's second read): numpy's. ``threads``: parts of the rows
    (innermost) or of the slices (outermost)."""
    count = data.shape[position]
    if data.size == 0:
        empty = np.zeros(count, dtype=data.dtype)
        return empty, empty.copy()
    if position == 1 or (position == 0 and data.size // count < ONE_READ_SLICE_VOXELS):
        return numpy_slice_extremes(data, position)
    kernels = _kernels()
    parts_at_most = count if position == 0 else data.size // count  # slices, or rows of slices
    workers = max(1, min(threads, parts_at_most, data.size // THREAD_VOXELS))
    if position == 0:
        flat = data.reshape(count, -1)
        low, high = flat[:, 0].copy(), flat[:, 0].copy()
        bounds = [count * k // workers for k in range(workers + 1)]
        in_parallel([lambda k=k: kernels.slice_after_slice(flat[bounds[k]:bounds[k + 1]], low[bounds[k]:bounds[k + 1]],
                                                    high[bounds[k]:bounds[k + 1]]) for k in range(workers)])
        return low, high
    parts = np.array_split(data.reshape(-1, count), workers)
    lows, highs = [part[0].copy() for part in parts], [part[0].copy() for part in parts]
    in_parallel([lambda k=k: kernels.rows_of_slices(parts[k], lows[k], highs[k]) for k in range(workers)])
    return np.minimum.reduce(lows), np.maximum.reduce(highs)


@lru_cache(maxsize=64)
def _bands(size: int, out: int, flip: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per output of the pass: first tap, tap count (both (out,) uint64) and (out, max count) int32 weights, the
    zeros at either end of each band trimmed."""
    matrix = _weights(size, out, flip)
    first = np.zeros(out, dtype=np.uint64)
    count = np.zeros(out, dtype=np.uint64)
    for o in range(out):
        taps = np.flatnonzero(matrix[:, o])
        if len(taps):
            first[o], count[o] = taps[0], taps[-1] + 1 - taps[0]
    weights = np.zeros((out, max(int(count.max()), 1)), dtype=np.int32)
    for o in range(out):
        weights[o, :count[o]] = matrix[int(first[o]):int(first[o] + count[o]), o]
    return first, count, weights


@lru_cache(maxsize=64)
def _reach(size: int, out: int, flip: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per input x of the pass: outputs low[x] .. high[x] - 1 have its nonzero weights (both (size,) int64), and
    the (size, out) int32 weights."""
    matrix = _weights(size, out, flip)
    nonzero = matrix != 0
    any_output = nonzero.any(axis=1)
    low = np.where(any_output, nonzero.argmax(axis=1), 0)
    high = np.where(any_output, out - nonzero[:, ::-1].argmax(axis=1), 0)
    return low.astype(np.int64), high.astype(np.int64), np.ascontiguousarray(matrix, dtype=np.int32)


def _spread(kernel, arguments: tuple, total: int, step: int, threads: int, voxels: int) -> None:
    """Run ``kernel(*arguments, start, stop)`` over 0..total in up to ``threads`` contiguous parts, cut at
    multiples of ``step`` (GROUP or BLOCK: parts never share a group); the kernels release the GIL. At most one
    thread per :data:`THREAD_VOXELS` of the ``voxels`` swept: starting a thread costs more than a small volume."""
    units = -(-total // step)
    workers = max(1, min(threads, units, voxels // THREAD_VOXELS))
    bounds = [min(total, step * (units * k // workers)) for k in range(workers + 1)]
    in_parallel([lambda k=k: kernel(*arguments, bounds[k], bounds[k + 1]) for k in range(workers)])


def first_pass(data: np.ndarray, summed: int, slices: int, a: np.ndarray, b: np.ndarray, out: int, flip: bool,
               threads: int = 1) -> np.ndarray:
    """int32 sums of the grey levels of ``data`` times Pillow's weights along memory axis ``summed``.

    Args:
        data: (d0, d1, d2) C-contiguous voxels, any real dtype.
        summed: memory axis the pass sums over (an image axis); slices: memory axis of the slices (another one).
        a, b: (d[slices],) grey-level coefficients per slice, both float32 or both float64: the grey level of v is
            ``floor(v * a + b)`` computed in that type.
        out: the pass's output size (``d[summed]`` -> ``out``, :func:`exact_in_int32`); flip: whether the image
            axis runs backwards along memory.
        threads: worker threads (parts of the lines or columns).

    Returns:
        int32 array of ``data``'s shape with ``out`` on axis ``summed``.
    """
    kernels = _kernels()
    coefficient = np.float64 if np.asarray(a).dtype == np.float64 else np.float32
    size = data.shape[summed]
    shape = [1, 1, 1]
    shape[slices] = len(a)

    def per_line(values: np.ndarray) -> np.ndarray:  # data's shape without ``summed``: each line's coefficient
        full = np.broadcast_to(np.asarray(values, dtype=coefficient).reshape(shape), data.shape)
        return np.ascontiguousarray(full[(slice(None),) * summed + (0,)])  # a view first: np.take would copy all

    out_shape = list(data.shape)
    out_shape[summed] = out
    if summed == 2:  # lines contiguous in memory: a dot product per output and line
        lines = data.reshape(-1, size)
        sums = np.empty((len(lines), out), dtype=np.int32)
        arguments = (lines, per_line(a).ravel(), per_line(b).ravel(), *_bands(size, out, flip), sums)
        _spread(kernels.along_lines, arguments, len(lines), kernels.GROUP, threads, data.size)
        return sums.reshape(out_shape)
    d0, d1, d2 = data.shape
    planes, columns = (1, d1 * d2) if summed == 0 else (d0, d2)
    sums = np.empty((planes, out, columns), dtype=np.int32)
    arguments = (data.reshape(planes, size, columns), per_line(a).reshape(planes, columns),
                 per_line(b).reshape(planes, columns), *_reach(size, out, flip), sums)
    _spread(kernels.across_lines, arguments, columns, kernels.BLOCK, threads, data.size)
    return sums.reshape(out_shape)
