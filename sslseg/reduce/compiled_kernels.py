"""The numba kernels of :mod:`~sslseg.reduce.compiled_sweeps` (imported only when numba is installed).

Why every kernel is a plain module-level function, with no closure: numba's on-disk cache (``cache=True``) keys
each compiled version by its signature *and* a hash of the pickled closure variables. A kernel that captures
another compiled function (a dispatcher) in a closure gets a new key in every process, since a pickled dispatcher
holds a per-process id: each run compiled again (~1.3 s) and added one more ``.nbc`` file. Module globals (other
kernels, the constants below) are not part of the key; numba freezes them when it compiles, and a change to this
file invalidates the whole cache (its index holds a hash of the source). The grey-level type (float32 or float64)
follows the coefficients' own dtype (``a.dtype.type``), so the two maps are two signatures of one kernel.

The cache folder is set up by :mod:`~sslseg.reduce.numba_cache` before numba is imported; without a usable folder
the kernels compile in every process instead.
"""

from __future__ import annotations

import numpy as np

from sslseg.reduce.numba_cache import configure

CACHE = configure() is not None  # before numba is imported: it reads NUMBA_CACHE_DIR then

import numba  # noqa: E402 - after the cache folder is set

#: Lines summed together when lines run along memory: one weight load feeds four multiply-adds (s0..s3 below).
GROUP = 4
#: Columns of running sums kept while the summed axis is swept (summed axis not innermost in memory):
#: 9 outputs x 512 int32 = 18 kB, in L1 with the grey levels.
BLOCK = 512

# unsigned indices (np.uint64): no negative-index wraparound test in the inner loops
index = np.uint64
int32 = np.int32


@numba.njit(nogil=True, cache=CACHE)
def along_lines(data, a, b, first, count, weights, sums, start, stop):
    """Lines start..stop of data (L, n) -> sums (L, out): line l's grey levels (a[l], b[l]) times each output's
    taps ``weights[o, :count[o]]`` from ``first[o]``; GROUP lines at a time."""
    cast = a.dtype.type
    n = index(data.shape[1])
    outputs = first.shape[0]
    levels = np.zeros((GROUP, data.shape[1]), dtype=np.int32)
    for line0 in range(start, stop, GROUP):
        rows = min(GROUP, stop - line0)
        for j in range(rows):
            line = index(line0 + j)
            scale, shift = a[line], b[line]
            for x in range(n):
                levels[j, x] = int32(np.floor(cast(data[line, x]) * scale + shift))
        for o in range(outputs):
            s0 = int32(0)
            s1 = int32(0)
            s2 = int32(0)
            s3 = int32(0)
            begin = index(first[o])
            for t in range(index(count[o])):
                w = weights[o, t]
                s0 += int32(levels[0, begin + t] * w)
                s1 += int32(levels[1, begin + t] * w)
                s2 += int32(levels[2, begin + t] * w)
                s3 += int32(levels[3, begin + t] * w)
            sums[index(line0), o] = s0
            if rows > 1:
                sums[index(line0 + 1), o] = s1
            if rows > 2:
                sums[index(line0 + 2), o] = s2
            if rows > 3:
                sums[index(line0 + 3), o] = s3


@numba.njit(nogil=True, cache=CACHE, inline="always")
def grey_row(voxels, scales, shifts, grey):
    """grey[q] = floor(voxels[q] * scales[q] + shifts[q]) in the coefficients' float type."""
    cast = scales.dtype.type
    for q in range(index(len(grey))):
        grey[q] = int32(np.floor(cast(voxels[q]) * scales[q] + shifts[q]))


@numba.njit(nogil=True, cache=CACHE)
def across_lines(data, a, b, low, high, weights, sums, start, stop):
    """Columns start..stop of data (P, n, Q) -> sums (P, out, Q), summed over n: input x feeds outputs
    low[x] .. high[x] - 1 with ``weights[x, o]`` (zero outside); coefficients a/b (P, Q). Columns go in blocks
    of BLOCK so the running sums stay in L1; inputs go in pairs, halving the running sums' loads and stores."""
    planes, n = data.shape[0], data.shape[1]
    outputs = sums.shape[1]
    even = np.empty(BLOCK, dtype=np.int32)
    odd = np.empty(BLOCK, dtype=np.int32)
    running = np.empty((outputs, BLOCK), dtype=np.int32)
    for p in range(planes):
        for q0 in range(start, stop, BLOCK):
            width = index(min(BLOCK, stop - q0))
            base = index(q0)
            running[:, :] = 0
            scales, shifts = a[p, base:base + width], b[p, base:base + width]
            first_grey, second_grey = even[:width], odd[:width]
            for x in range(0, n - 1, 2):
                grey_row(data[p, x, base:base + width], scales, shifts, first_grey)
                grey_row(data[p, x + 1, base:base + width], scales, shifts, second_grey)
                for o in range(index(min(low[x], low[x + 1])), index(max(high[x], high[x + 1]))):
                    w0, w1 = weights[x, o], weights[x + 1, o]
                    row = running[o]  # 1-D views: the loop below vectorises
                    for q in range(width):
                        row[q] += int32(first_grey[q] * w0) + int32(second_grey[q] * w1)
            if n % 2:
                x = n - 1
                grey_row(data[p, x, base:base + width], scales, shifts, first_grey)
                for o in range(index(low[x]), index(high[x])):
                    w0 = weights[x, o]
                    row = running[o]
                    for q in range(width):
                        row[q] += int32(first_grey[q] * w0)
            for o in range(outputs):
                sums[p, o, base:base + width] = running[o, :width]


@numba.njit(nogil=True, cache=CACHE)
def rows_of_slices(data, low, high):
    """data (R, N), slices innermost (a DICOM series): low/high (N,) start as data[0] and take every row's
    min/max. Rows of N are short (20 slices: one SIMD register), so the loop runs over runs of ``repeat``
    rows at once, each voxel against the running extremes of its own slice."""
    rows, count = data.shape
    repeat = max(1, 512 // count)
    width = repeat * count
    flat = data.reshape(rows * count)
    lows = np.empty(width, dtype=data.dtype)
    highs = np.empty(width, dtype=data.dtype)
    for i in range(width):
        lows[i] = low[i % count]
        highs[i] = high[i % count]
    full = (rows // repeat) * width
    for start in range(0, full, width):
        run = flat[start:start + width]
        for i in range(width):
            lows[i] = min(lows[i], run[i])
            highs[i] = max(highs[i], run[i])
    for i in range(full, rows * count):
        s = i % count
        low[s] = min(low[s], flat[i])
        high[s] = max(high[s], flat[i])
    for i in range(width):
        s = i % count
        low[s] = min(low[s], lows[i])
        high[s] = max(high[s], highs[i])


@numba.njit(nogil=True, cache=CACHE)
def slice_after_slice(data, low, high):
    """data (N, M), slices outermost: each slice is one long row, reduced like a one-slice stack above."""
    for s in range(data.shape[0]):
        rows_of_slices(data[s].reshape((data.shape[1], 1)), low[s:s + 1], high[s:s + 1])
