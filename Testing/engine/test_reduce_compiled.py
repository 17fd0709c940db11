"""The compiled sweeps (numba) equal their definitions: per-slice extremes, grey levels times Pillow's weights."""

from __future__ import annotations

import numpy as np
import pytest

from sslseg.reduce import compiled_sweeps
from sslseg.reduce.axial import grey_level_affine, slice_extremes
from sslseg.reduce.lanczos import resize_matrix

pytestmark = pytest.mark.skipif(not compiled_sweeps.available(), reason="numba is not installed")


def definition(data, summed, slices, a, b, out, flip):
    """floor(v * a + b) in the coefficients' own float type, contracted with Pillow's weights: float64, exact."""
    shape = [1, 1, 1]
    shape[slices] = len(a)
    levels = np.floor(data.astype(a.dtype) * a.reshape(shape) + b.reshape(shape)).astype(np.float64)
    matrix = resize_matrix(data.shape[summed], out)[::-1 if flip else 1]
    return np.moveaxis(np.tensordot(levels, matrix, axes=([summed], [0])), -1, summed)


# (data shape, summed memory axis, slices memory axis): lines along memory (NIfTI), across it with the slices
# innermost (DICOM) or outermost; odd sizes leave a last input without a partner and a last group of lines short
LAYOUTS = [((5, 37, 131), 2, 0), ((37, 7, 131), 2, 1), ((131, 41, 6), 0, 2), ((131, 700, 3), 0, 1),
           ((4, 129, 45), 1, 0), ((23, 130, 3), 1, 2)]


@pytest.mark.parametrize("shape, summed, slices", LAYOUTS)
@pytest.mark.parametrize("wide", [False, True])
@pytest.mark.parametrize("flip", [False, True])
def test_first_pass_equals_grey_levels_times_pillow_weights(shape, summed, slices, wide, flip, monkeypatch):
    rng = np.random.default_rng(sum(shape) + summed)
    data = rng.integers(-1024, 3071, shape).astype(np.int16)
    low, high = slice_extremes(data, slices)
    a, b = grey_level_affine(low, high)
    if not wide:
        a, b = a.astype(np.float32), b.astype(np.float32)
    out = 8 if summed == 1 else 9
    sums = compiled_sweeps.first_pass(data, summed, slices, a, b, out, flip)
    expected = definition(data, summed, slices, a, b, out, flip)
    assert sums.dtype == np.int32 and sums.shape == expected.shape
    assert np.array_equal(sums, expected)
    monkeypatch.setattr(compiled_sweeps, "THREAD_VOXELS", 1)  # small data: split it over threads anyway
    assert np.array_equal(compiled_sweeps.first_pass(data, summed, slices, a, b, out, flip, threads=3), expected)


def test_first_pass_reads_any_voxel_type():
    rng = np.random.default_rng(9)
    for dtype in (np.uint8, np.uint16, np.int32, np.float32, np.float64):
        data = (rng.random((3, 20, 60)) * 200).astype(dtype)
        low, high = slice_extremes(data, 0)
        a, b = grey_level_affine(low, high)
        assert np.array_equal(compiled_sweeps.first_pass(data, 2, 0, a, b, 9, False),
                              definition(data, 2, 0, a, b, 9, False)), dtype


@pytest.mark.parametrize("shape", [(512, 40, 20), (7, 5, 1), (3, 11, 3), (1, 1, 600), (33, 17, 513), (0, 4, 5),
                                   (20, 700, 3)])
@pytest.mark.parametrize("position", [0, 1, 2])
@pytest.mark.parametrize("threads", [1, 2])
def test_slice_extremes_equal_numpy(shape, position, threads, monkeypatch):
    monkeypatch.setattr(compiled_sweeps, "THREAD_VOXELS", 1)
    monkeypatch.setattr(compiled_sweeps, "ONE_READ_SLICE_VOXELS", 1)
    data = np.random.default_rng(shape[2]).integers(-32768, 32767, shape).astype(np.int16)
    low, high = compiled_sweeps.slice_extremes(data, position, threads)
    assert len(low) == len(high) == shape[position]
    others = tuple(axis for axis in range(3) if axis != position)
    if data.size:
        assert np.array_equal(low, data.min(axis=others)) and np.array_equal(high, data.max(axis=others))
    assert low.dtype == data.dtype


def test_int32_sums_cannot_overflow_for_any_realistic_slice():
    for size in (2, 17, 91, 512, 1024, 4096, 20000):
        for out in (8, 9):
            assert compiled_sweeps.exact_in_int32(size, out)


def _child_extremes(data, queue):
    queue.put(compiled_sweeps.slice_extremes(data, 2, 2)[0])


@pytest.mark.skipif(not hasattr(__import__("os"), "fork"), reason="no fork on this platform (Windows)")
def test_a_forked_worker_hashes_after_its_parent_used_threads(monkeypatch):
    """A data-loader worker forked after the parent hashed with threads has none of the parent's pool threads; it
    must start its own instead of waiting forever."""
    import multiprocessing

    monkeypatch.setattr(compiled_sweeps, "THREAD_VOXELS", 1)
    data = np.random.default_rng(0).integers(-100, 100, (50, 40, 20)).astype(np.int16)
    expected = compiled_sweeps.slice_extremes(data, 2, 2)[0]
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    child = context.Process(target=_child_extremes, args=(data, queue))
    child.start()
    child.join(timeout=60)
    if child.is_alive():
        child.kill()
    assert child.exitcode == 0, "the forked worker hung or failed"
    assert np.array_equal(queue.get(timeout=5), expected)


def test_voxels_the_int32_sums_cannot_take_go_to_numpy_with_the_same_hashes():
    """NaN voxels (a float slice whose extremes are NaN) and 'grey' images beyond 8 bits would overflow or poison
    the int32 sums: the compiled kernel hands them to numpy, so both kernels agree."""
    from sslseg.reduce.axial import axial_stack
    from sslseg.reduce.dhash import axial_hashes, stack_hashes
    from sslseg.volume import Volume

    rng = np.random.default_rng(6)
    floats = rng.normal(0.0, 100.0, (40, 30, 6))
    floats[3, 4, 2] = np.nan
    stack = axial_stack(Volume(floats, np.eye(4)))
    assert np.array_equal(axial_hashes(stack, kernel="compiled"), axial_hashes(stack, kernel="numpy"))
    wide = rng.integers(0, 3000, (3, 40, 30)).astype(np.int16)
    assert np.array_equal(stack_hashes(wide, kernel="compiled"), stack_hashes(wide, kernel="numpy"))
    ones = np.ones(3)
    assert np.array_equal(stack_hashes(wide, ones, 0 * ones, kernel="compiled"),
                          stack_hashes(wide, ones, 0 * ones, kernel="numpy"))
