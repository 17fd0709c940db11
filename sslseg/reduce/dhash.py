"""``imagehash.dhash(image, hash_size=8)`` for whole stacks of 8-bit images at once, bit for bit.

imagehash converts to "L" (a no-op for 8-bit grey), resizes to 9 x 8 with LANCZOS (:mod:`~sslseg.reduce.lanczos`)
and sets bit (r, c) when pixel (r, c + 1) is brighter than pixel (r, c). A hash here is that 8 x 8 boolean array
read row by row into a uint64, first bit most significant: ``int(str(imagehash.dhash(...)), 16)``.

How (:func:`axial_hashes`, :func:`stack_hashes`): the volume is read in its own memory order
(:func:`~sslseg.reduce.axial.memory_layout`; flips are folded into the weights or applied to the small results);
voxels -> grey levels (the float32 map proven equal to the float64 definition, else float64), then Pillow's
first (large) pass, exact integers. The rounding, 8-bit clip and the second (tiny) pass run on the (N, H, 9) or
(N, 8, W) intermediate in float64.

Two kernels give the same bits (``kernel=``; default: see :data:`COMPILED_AFTER_VOXELS`; numba: ``sslseg[fast]``):

- compiled (:mod:`~sslseg.reduce.compiled_sweeps`): one sweep, each voxel read once, its grey level multiplied
  into Pillow's int32 sums while in a register; ~0.15 ms per 512 x 512 slice (benchmarks ``reduce``);
- numpy: chunks of ~2**17 voxels (0.5 MB float32, inside L2) cut along an axis that is not summed over, the first
  pass as one float32 BLAS product with the split weights (:func:`~sslseg.reduce.lanczos.split_weights`). Per
  512 x 512 slice ~262k voxels read once as int16, then 4 float32 passes in L2 (convert, *a, +b, floor; ~0.2 ms), then
  18 x 512 multiply-adds per image row (9 outputs x 2 pieces; 4.7 M per slice, ~0.2 ms in float32 BLAS). Run with
  OMP_NUM_THREADS=1: the products are small, and a multi-threaded OpenBLAS on a busy machine makes them 10-100x
  slower; use ``threads=2`` (chunks on two Python threads) instead.
"""

from __future__ import annotations

import os

import numpy as np

from sslseg.errors import SSLSegError
from sslseg.reduce import compiled_sweeps
from sslseg.reduce.axial import (AxialStack, float32_grey_levels, grey_level_affine, memory_layout,
                                 slice_extremes)
from sslseg.reduce.lanczos import (finish_pass, join_split, resample_axis, resize_matrix, resize_stack,
                                   split_weights, vertical_first)
from sslseg.reduce.thread_pool import in_parallel

HASH_SIZE = 8
#: Voxels per chunk: 2**17 float32 = 0.5 MB, inside L2 with the int16 input.
CHUNK_VOXELS = 1 << 17
#: Slices of at least this many voxels use the float32 grey-level map: its check costs ~770 points per slice, which
#: a smaller slice (e.g. 126 x 120) does not win back (measured: float64 0.030 vs float32 0.035 ms/slice there).
FLOAT32_MAP_VOXELS = 1 << 16
#: Default worker threads: ``SSLSEG_HASH_THREADS``, else the cores (up to 8) for the compiled kernel, which gives a
#: thread only to ~1 M voxels or more (measured: 2 threads 0.10 against 1 thread 0.15 ms per 512 x 512 slice), and
#: 1 for the numpy kernel, whose threads compete with BLAS and gain little (0.48 against 0.49 ms).
THREADS = int(os.environ.get("SSLSEG_HASH_THREADS", "0")) or None


def _threads(threads: int | None, compiled: bool) -> int:
    if threads or THREADS:
        return int(threads or THREADS)
    return min(8, os.cpu_count() or 1) if compiled else 1


def bits_from_small(small: np.ndarray) -> np.ndarray:
    """(n,) uint64 hashes of resized images ``small`` (n, 8, 9)."""
    diff = small[:, :, 1:] > small[:, :, :-1]  # (n, 8, 8): brighter than the left neighbour
    packed = np.packbits(diff.reshape(len(diff), HASH_SIZE * HASH_SIZE), axis=1)  # (n, 8) bytes, MSB first
    return packed.view(">u8")[:, 0].astype(np.uint64)


class _GreyLevels:
    """Raw voxels -> grey levels 0..255, chunk by chunk, for data whose slices run along memory axis ``position``.

    ``kind``: "grey" (voxels already 0..255), "f32" (the verified float32 map ``a32``/``b32``; slices listed in
    ``inexact`` use the float64 ``a``/``b`` instead) or "f64" (the float64 definition everywhere). All (N,) in the
    data's slice order.
    """

    def __init__(self, kind: str, position: int, a32=None, b32=None, a=None, b=None, inexact=()):
        self.kind, self.position = kind, position
        self.a32, self.b32, self.a, self.b = a32, b32, a, b
        self.inexact = np.asarray(inexact, dtype=np.intp)
        self._tiles: dict = {}  # tiled coefficient rows per chunk shape

    def _rows(self, name: str, chunk: np.ndarray, offset: int) -> np.ndarray:
        """``getattr(self, name)[offset:]`` laid out to broadcast against ``chunk`` seen as (chunk.shape[0], rest):
        slices on axis 0: a column; else one tiled row, so every numpy loop runs over ``rest`` contiguous values, not over N
        (a DICOM series stores slices innermost: N = 20 would make 20-long inner loops)."""
        values = getattr(self, name)[offset:offset + chunk.shape[self.position]]
        if self.position == 0:
            return values[:, None]
        key = (name, offset, chunk.shape)
        if key not in self._tiles:
            shape = [1, 1, 1]
            shape[self.position] = len(values)
            tiled = np.broadcast_to(values.reshape(shape), (1, *chunk.shape[1:])).reshape(1, -1)
            self._tiles[key] = np.ascontiguousarray(tiled)
        return self._tiles[key]

    def into(self, chunk: np.ndarray, offset: int, out: np.ndarray) -> None:
        """Grey levels of ``chunk`` (d0, d1, d2), a block of the data whose slices start at slice ``offset``, into
        ``out`` (same shape, C-contiguous float32 or float64)."""
        flat = out.reshape(out.shape[0], -1)
        rows = chunk.reshape(chunk.shape[0], -1)  # a view: chunks are cut along memory axis 0 or 1
        if self.kind == "grey":
            np.copyto(flat, rows, casting="unsafe")
            return
        if self.kind == "f32" and out.dtype == np.float32:
            np.copyto(flat, rows, casting="unsafe")  # int -> float32: exact, |v| < 2**24 was checked
            np.multiply(flat, self._rows("a32", chunk, offset), out=flat)  # one rounding per op, as verified
            np.add(flat, self._rows("b32", chunk, offset), out=flat)
            np.floor(flat, out=flat)
            inexact = self.inexact
        else:  # the definition, in float64 from the raw voxels, then into ``out`` (integers 0..255: exact)
            wide = rows.astype(np.float64)
            np.multiply(wide, self._rows("a", chunk, offset), out=wide)
            np.add(wide, self._rows("b", chunk, offset), out=wide)
            np.floor(wide, out=wide)
            np.copyto(flat, wide)
            inexact = ()
        for n in inexact:  # slices whose float32 map could differ (a float64 tie): the definition, slice by slice
            local = n - offset
            if not 0 <= local < chunk.shape[self.position]:
                continue
            cut = [slice(None)] * 3
            cut[self.position] = local
            out[tuple(cut)] = np.floor(chunk[tuple(cut)] * self.a[n] + self.b[n])


#: Ski rental between the kernels. numba costs ~0.7 s in every fresh process even with its kernels in the disk cache
#: (import, then loading them), what the compiled kernel saves over numpy on ~1,200 slices of 512^2 (0.6 ms a slice;
#: 2-core AMD EPYC). So by default a process hashes with numpy until it has hashed that many voxels, and compiled
#: from then on (or at once when the kernels are already loaded): a default job never costs more than about twice
#: what the better kernel alone would have. ``SSLSEG_HASH_KERNEL=numpy|compiled`` or ``kernel=`` decides instead.
COMPILED_AFTER_VOXELS = 1200 * 512 * 512
_voxels_hashed_with_numpy = 0


def _use_compiled(kernel: str | None, voxels: int) -> bool:
    """``kernel``: "compiled" (numba, an error without it), "numpy", or None (``SSLSEG_HASH_KERNEL``, else the ski
    rental of :data:`COMPILED_AFTER_VOXELS`); ``voxels``: the size of the job at hand."""
    global _voxels_hashed_with_numpy

    chosen = os.environ.get("SSLSEG_HASH_KERNEL", "").lower()
    kernel = kernel or (chosen if chosen in ("numpy", "compiled") else None)
    if kernel == "numpy":
        return False
    if kernel == "compiled":
        if not compiled_sweeps.available():
            raise SSLSegError("The compiled slice hash needs numba, which is not installed.",
                              "pip install 'sslseg[fast]', or hash with the numpy kernel")
        return True
    if kernel is not None:
        raise ValueError(f"kernel must be 'compiled', 'numpy' or None, not {kernel!r}")
    if compiled_sweeps.loaded():
        return True
    if _voxels_hashed_with_numpy < COMPILED_AFTER_VOXELS:  # numba not even imported yet: that is the cost saved
        _voxels_hashed_with_numpy += voxels
        return False
    return compiled_sweeps.available()


def _layout_hashes(data: np.ndarray, order: tuple[int, int, int], flips: tuple[bool, bool, bool],
                   grey: _GreyLevels, threads: int | None = 1, compiled: bool = False) -> np.ndarray:
    """(N,) uint64 hashes (images order) of images stored as ``data`` (d0, d1, d2), ``order`` and ``flips`` as
    returned by :func:`~sslseg.reduce.axial.memory_layout`; ``grey`` turns its voxels into grey levels; the
    first pass runs compiled (:mod:`~sslseg.reduce.compiled_sweeps`) or as chunked BLAS products spread over
    ``threads`` Python threads (run BLAS single-threaded then: OMP_NUM_THREADS=1)."""
    dims = data.shape
    shape = [0, 0, 0]
    for position, axis in enumerate(order):
        shape[axis] = dims[position]
    count, height, width = shape
    if count == 0:
        return np.zeros(0, dtype=np.uint64)
    first = 1 if vertical_first(height, width, HASH_SIZE, HASH_SIZE + 1) else 2  # images axis of Pillow's 1st pass
    first_out = HASH_SIZE if first == 1 else HASH_SIZE + 1
    pf = order.index(first)
    if shape[first] == first_out:  # Pillow skips that pass: no large product, the old whole-volume path
        levels = np.empty(dims, dtype=np.float64)
        grey.into(data, 0, levels)
        images = np.transpose(levels, [order.index(axis) for axis in range(3)])
        images = images[tuple(slice(None, None, -1) if flip else slice(None) for flip in flips)]
        return bits_from_small(resize_stack(images, HASH_SIZE + 1, HASH_SIZE))
    if compiled and compiled_sweeps.exact_in_int32(shape[first], first_out):
        total = _compiled_sums(data, pf, grey, first_out, flips[first], threads or 1)
    else:
        total = _blas_sums(data, order, pf, grey, shape[first], first_out, flips[first], threads or 1)
    finish_pass(total)  # (.., first_out, ..) in memory order, grey levels 0..255
    second = 3 - first
    small = resample_axis(total, order.index(second), HASH_SIZE + 1 if first == 1 else HASH_SIZE, flips[second])
    images = np.transpose(small, [order.index(axis) for axis in range(3)])  # (N, 8, 9)
    hashes = bits_from_small(np.ascontiguousarray(images))
    return hashes[::-1].copy() if flips[0] else hashes


def _compiled_sums(data: np.ndarray, pf: int, grey: _GreyLevels, out: int, flip: bool, threads: int) -> np.ndarray:
    """float64 first-pass sums (``data``'s shape, ``out`` on axis ``pf``, ``flip`` as in :func:`_blas_sums`) by
    the compiled sweep; slices whose float32 grey-level map is not proven exact are redone from the definition."""
    slices = grey.position
    if grey.kind == "grey":
        a, b = np.ones(data.shape[slices], dtype=np.float32), np.zeros(data.shape[slices], dtype=np.float32)
    elif grey.kind == "f32":
        a, b = grey.a32, grey.b32
    else:
        a, b = grey.a, grey.b
    total = compiled_sweeps.first_pass(data, pf, slices, a, b, out, flip, threads).astype(np.float64)
    if grey.kind == "f32" and len(grey.inexact):  # these slices again, the float64 map (the definition)
        redo = np.ascontiguousarray(np.take(data, grey.inexact, axis=slices))
        sums = compiled_sweeps.first_pass(redo, pf, slices, grey.a[grey.inexact], grey.b[grey.inexact], out, flip,
                                          threads)
        cut = [slice(None)] * 3
        cut[slices] = grey.inexact
        total[tuple(cut)] = sums
    return total


def _blas_sums(data: np.ndarray, order: tuple[int, int, int], pf: int, grey: _GreyLevels, size: int, out: int,
               flip: bool, threads: int) -> np.ndarray:
    """float64 first-pass sums (``data``'s shape, ``out`` on axis ``pf``): grey levels chunk by chunk, then exact
    float32 BLAS products with the split weights (float64 when float32 could round); ``size`` -> ``out`` is the
    pass, ``flip`` whether its axis runs backwards in memory."""
    dims = data.shape
    matrix = split_weights(size, out)
    dtype = np.float32
    if matrix is None:  # float32 could round: exact float64 sums (slower, same result)
        matrix, dtype = resize_matrix(size, out), np.float64
    if flip:
        matrix = matrix[::-1]
    columns = matrix.shape[1]
    matrix_t = np.ascontiguousarray(matrix.T)
    matrix = np.ascontiguousarray(matrix)
    sums_shape = list(dims)
    sums_shape[pf] = columns
    sums = np.empty(sums_shape, dtype=dtype)
    pc = 1 if pf == 0 else 0  # chunks along an axis that is not summed over: each chunk's sums are final
    unit = int(np.prod(dims)) // max(dims[pc], 1)
    step = max(1, CHUNK_VOXELS // max(unit, 1))
    starts = list(range(0, dims[pc], step))
    slice_cut = pc == order.index(0)

    def run(part: list[int]) -> None:
        buffer = None  # one per worker
        for start in part:
            stop = min(start + step, dims[pc])
            cut = [slice(None)] * 3
            cut[pc] = slice(start, stop)
            chunk = data[tuple(cut)]
            if buffer is None or buffer.shape != chunk.shape:
                buffer = np.empty(chunk.shape, dtype=dtype)  # C-contiguous: the product reads it as a matrix
            grey.into(chunk, start if slice_cut else 0, buffer)
            if pf == 0:  # (d0 summed, k, d2) -> (columns, k, d2)
                product = matrix_t @ buffer.reshape(dims[0], -1)
                sums[:, start:stop, :] = product.reshape(columns, stop - start, dims[2])
            elif pf == 1:  # (k, d1 summed, d2) -> (k, columns, d2)
                np.matmul(matrix_t, buffer, out=sums[start:stop])
            else:  # (k, d1, d2 summed) -> (k, d1, columns)
                np.matmul(buffer.reshape(-1, dims[2]), matrix, out=sums[start:stop].reshape(-1, columns))

    workers = max(1, min(threads, len(starts)))
    parts = [list(part) for part in np.array_split(np.asarray(starts), workers)]  # contiguous runs of chunks
    in_parallel([lambda part=part: run(part) for part in parts])  # numpy ufuncs and BLAS release the GIL
    return join_split(sums, pf) if dtype == np.float32 else sums


def stack_hashes(images: np.ndarray, a: np.ndarray | None = None, b: np.ndarray | None = None,
                 threads: int | None = None, kernel: str | None = None) -> np.ndarray:
    """(n,) uint64 dhash of each image of ``images`` (n, H, W), any strides.

    Without ``a``/``b`` the images are already 8-bit grey levels (uint8 or integer-valued); with them (each (n,)),
    ``floor(v * a + b)`` in float64 turns raw voxels into grey levels first (:func:`~sslseg.reduce.axial.scale_into`).
    ``threads``: worker threads (default: see :data:`THREADS`); ``kernel``: see :func:`axial_hashes`.
    """
    compiled = _use_compiled(kernel, np.asarray(images).size)
    data, order, flips = memory_layout(np.asarray(images))
    if a is None:
        compiled = compiled and data.dtype == np.uint8  # other types: levels 0..255 not guaranteed (int32 sums)
        grey = _GreyLevels("grey", order.index(0))
        return _layout_hashes(_native(data, compiled), order, flips, grey, _threads(threads, compiled), compiled)
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if flips[0]:
        a, b = a[::-1], b[::-1]
    if compiled:
        low, high = slice_extremes(data, order.index(0))
        compiled = _levels_in_range(low, high, a, b)
    grey = _GreyLevels("f64", order.index(0), a=np.ascontiguousarray(a), b=np.ascontiguousarray(b))
    return _layout_hashes(_native(data, compiled), order, flips, grey, _threads(threads, compiled), compiled)


def _levels_in_range(low: np.ndarray, high: np.ndarray, a: np.ndarray, b: np.ndarray) -> bool:
    """Whether ``floor(v * a + b)`` stays within 0..255 for every slice's extremes ``low``/``high`` (N,), all
    finite: what the compiled kernel's int32 sums assume (NaN voxels or levels beyond 8 bits go to numpy)."""
    with np.errstate(invalid="ignore", over="ignore"):
        ends = np.floor(np.stack([low * a + b, high * a + b]).astype(np.float64))
    return bool(np.all(np.isfinite(ends)) and ends.min(initial=0.0) >= 0 and ends.max(initial=0.0) <= 255)


def _native(data: np.ndarray, compiled: bool) -> np.ndarray:
    """``data`` in the machine's byte order when the compiled kernel will read it (numba refuses e.g. ``>i2``, which
    nibabel gives for big-endian NIfTI files); numpy reads either."""
    if compiled and not data.dtype.isnative:
        return data.astype(data.dtype.newbyteorder("="))
    return data


def axial_hashes(stack: AxialStack, threads: int | None = None, kernel: str | None = None) -> np.ndarray:
    """(N,) uint64 dhash of each axial slice of ``stack``, per :mod:`~sslseg.reduce.axial`'s definition.

    Integer voxels use the float32 grey-level map on the slices where it is proven equal to the definition, the
    float64 one on the others. ``threads``: worker threads (default: see :data:`THREADS`). ``kernel``: "compiled"
    (:mod:`~sslseg.reduce.compiled_sweeps`, needs numba), "numpy", or None (see :data:`COMPILED_AFTER_VOXELS`).
    Both give the same bits."""
    compiled = _use_compiled(kernel, stack.images.size)
    data, order, flips = memory_layout(stack.images)
    position = order.index(0)
    integer = np.issubdtype(data.dtype, np.integer)
    data = _native(data, compiled)
    if compiled and integer:
        low, high = compiled_sweeps.slice_extremes(data, position, _threads(threads, compiled))
    else:
        low, high = slice_extremes(data, position)  # in data's slice order
    a, b = grey_level_affine(low, high)
    compiled = compiled and _levels_in_range(low, high, a, b)  # False only for NaN or infinite voxels
    if integer and data.size >= FLOAT32_MAP_VOXELS * len(low):
        a32, b32, exact = float32_grey_levels(low, high)
        inexact = np.flatnonzero(~exact)
        if len(inexact) <= len(exact) // 4:  # else the slice-by-slice float64 fix-up would cost more
            grey = _GreyLevels("f32", position, a32, b32, a, b, inexact)
            return _layout_hashes(data, order, flips, grey, _threads(threads, compiled), compiled)
    return _layout_hashes(data, order, flips, _GreyLevels("f64", position, a=a, b=b), _threads(threads, compiled),
                          compiled)


def hamming(hash_a: np.ndarray | int, hash_b: np.ndarray | int) -> np.ndarray:
    """Number of differing bits (broadcasting uint64 arrays)."""
    return np.bitwise_count(np.bitwise_xor(np.asarray(hash_a, dtype=np.uint64), np.asarray(hash_b, dtype=np.uint64)))


def to_hex(hashes: np.ndarray) -> list[str]:
    """16-digit hex strings, as ``str(imagehash.dhash(...))``."""
    return [f"{int(h):016x}" for h in hashes]
