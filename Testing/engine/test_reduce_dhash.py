"""The vectorised dhash equals imagehash.dhash bit for bit; the slice -> image definition (orientation, grey levels).

Every test runs twice: with the numpy kernel and with the compiled one (:mod:`sslseg.reduce.compiled_sweeps`,
numba; CI installs it)."""

from __future__ import annotations

import os

import imagehash
import numpy as np
import pytest
from PIL import Image

from sslseg.errors import SSLSegError
from sslseg.io import read_volume
from sslseg.reduce import compiled_sweeps
from sslseg.reduce.axial import axial_stack, float32_grey_levels, grey_level_affine, slice_image
from sslseg.reduce.dhash import axial_hashes, stack_hashes, to_hex
from sslseg.volume import Volume

#: Shapes (H, W) covering both of Pillow's pass orders, upscaling, and axes that are not resampled (W 9 / H 8).
SHAPES = [(512, 512), (126, 120), (91, 117), (9, 8), (8, 9), (300, 17), (3, 301), (20, 9), (8, 40), (1, 1), (64, 7)]


@pytest.fixture(autouse=True, params=["numpy", "compiled"])
def kernel(request, monkeypatch):
    """Which first-pass kernel the hashes below use (chosen the way users choose it: SSLSEG_HASH_KERNEL); threads
    split even the small test volumes."""
    monkeypatch.setattr(compiled_sweeps, "THREAD_VOXELS", 1)
    if request.param == "numpy":
        monkeypatch.setenv("SSLSEG_HASH_KERNEL", "numpy")
    else:
        monkeypatch.setenv("SSLSEG_HASH_KERNEL", "compiled")
        if not compiled_sweeps.available():
            pytest.skip("numba is not installed (pip install 'sslseg[fast]')")
    return request.param


def test_kernel_choice_and_a_clear_error_without_numba(kernel, monkeypatch):
    images = np.random.default_rng(4).integers(0, 256, (3, 40, 30)).astype(np.uint8)
    assert compiled_sweeps.available() == (kernel == "compiled")
    assert to_hex(stack_hashes(images, kernel="numpy")) == reference(images)
    monkeypatch.setenv("SSLSEG_HASH_KERNEL", "numpy")
    with pytest.raises(SSLSegError, match="numba"):
        stack_hashes(images, kernel="compiled")


def test_without_numba_the_numpy_kernel_hashes_and_compiled_is_refused_clearly():
    """A machine without numba (Slicer's Python, a plain install): the same hashes, and a clear message when the
    compiled kernel is asked for by name."""
    import subprocess
    import sys

    code = ("import sys; sys.modules['numba'] = None\n"
            "import numpy as np\n"
            "from sslseg.errors import SSLSegError\n"
            "from sslseg.reduce.dhash import stack_hashes, to_hex\n"
            "images = np.random.default_rng(4).integers(0, 256, (3, 40, 30)).astype(np.uint8)\n"
            "print(' '.join(to_hex(stack_hashes(images))))\n"
            "try:\n    stack_hashes(images, kernel='compiled')\nexcept SSLSegError as error:\n    print(error)\n")
    environment = {k: v for k, v in os.environ.items() if k != "SSLSEG_HASH_KERNEL"}  # the default choice
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=environment)
    assert done.returncode == 0, done.stderr
    hashes, message = done.stdout.splitlines()
    images = np.random.default_rng(4).integers(0, 256, (3, 40, 30)).astype(np.uint8)
    assert hashes.split() == reference(images)
    assert "numba" in message and "sslseg[fast]" in message


def reference(images: np.ndarray) -> list[str]:
    return [str(imagehash.dhash(Image.fromarray(image), hash_size=8)) for image in images]


@pytest.mark.parametrize("shape", SHAPES)
def test_random_images_hash_like_imagehash(shape):
    images = np.random.default_rng(sum(shape)).integers(0, 256, (6, *shape)).astype(np.uint8)
    assert to_hex(stack_hashes(images)) == reference(images)


def test_smooth_and_constant_images_hash_like_imagehash():
    y, x = np.mgrid[0:200, 0:180]
    smooth = (127.5 + 127.5 * np.sin(x / 17.0) * np.cos(y / 23.0)).astype(np.uint8)
    images = np.stack([smooth, np.zeros_like(smooth), np.full_like(smooth, 255), np.full_like(smooth, 77)])
    assert to_hex(stack_hashes(images)) == reference(images)
    assert to_hex(stack_hashes(images[1:]))[0] == "0000000000000000"


@pytest.mark.parametrize("name", ["ct_upper_abdomen_dicom/dicom", "ct_thorax_cta/ct.nii.gz", "mr_abdomen/mr.nii.gz"])
def test_real_slices_hash_like_imagehash(real_data, name):
    stack = axial_stack(read_volume(real_data / name))
    images = np.stack([slice_image(stack, n) for n in range(len(stack.indices))])
    assert to_hex(axial_hashes(stack)) == reference(images)
    assert len(set(to_hex(axial_hashes(stack)))) > 1


def test_grey_levels_map_min_to_0_max_to_255_and_constant_to_0():
    array = np.random.default_rng(0).normal(0, 300, (30, 20, 3))
    array[:, :, 2] = -1000.0
    stack = axial_stack(Volume(array, np.eye(4)))
    first = slice_image(stack, 0)
    assert first.min() == 0 and first.max() == 255
    expected = np.floor((array[:, :, 0] - array[:, :, 0].min()) / np.ptp(array[:, :, 0]) * 255 + 0.5)
    # rows = anterior->posterior (j flipped in RAS), columns = right->left (i flipped)
    assert np.abs(first.astype(int) - expected.T[::-1, ::-1]).max() <= 1
    assert not slice_image(stack, 2).any()


def test_orientation_and_storage_order_do_not_change_the_hashes():
    """The same anatomy stored RAS (i, j, k) and LPS with axes permuted (k, i, j): same images, same hashes."""
    rng = np.random.default_rng(1)
    ras = rng.integers(-1000, 1000, (40, 30, 12)).astype(np.int16)
    affine_ras = np.diag([0.8, 0.9, 2.5, 1.0])
    stored = np.ascontiguousarray(ras[::-1, ::-1, :].transpose(2, 0, 1))  # axes (S, L, P)
    affine = np.zeros((4, 4))
    affine[2, 0], affine[0, 1], affine[1, 2], affine[3, 3] = 2.5, -0.8, -0.9, 1.0
    affine[:3, 3] = [0.8 * 39, 0.9 * 29, 0.0]
    a, b = axial_stack(Volume(ras, affine_ras)), axial_stack(Volume(stored, affine))
    assert b.axis == 0 and a.axis == 2
    assert np.array_equal(a.images, b.images)
    assert np.array_equal(axial_hashes(a), axial_hashes(b))
    assert np.allclose(a.superior_mm, b.superior_mm)


def test_slices_are_ordered_inferior_to_superior_whatever_the_storage():
    array = np.random.default_rng(2).integers(0, 100, (10, 10, 5)).astype(np.int16)
    affine = np.diag([1.0, 1.0, -3.0, 1.0])  # k runs towards inferior
    stack = axial_stack(Volume(array, affine))
    assert list(stack.indices) == [4, 3, 2, 1, 0]
    assert np.all(np.diff(stack.superior_mm) > 0)
    assert np.array_equal(np.asarray(stack.images[0]).T[::-1, ::-1], array[:, :, 4])


# --- the fast paths: memory layouts, the float32 grey-level map, the float32 split weights, threads ---------------

def _reference_volume(stack) -> list[str]:
    return reference(np.stack([slice_image(stack, n) for n in range(len(stack.indices))]))


@pytest.mark.parametrize("permutation", [(0, 1, 2), (2, 1, 0), (1, 2, 0), (2, 0, 1), (0, 2, 1), (1, 0, 2)])
@pytest.mark.parametrize("signs", [(1, 1, 1), (-1, 1, -1), (1, -1, -1)])
def test_every_memory_layout_and_flip_hashes_like_imagehash(permutation, signs, monkeypatch):
    """Slices outermost, middle or innermost in memory (a DICOM series: innermost), any axis flipped; float32 map."""
    monkeypatch.setattr("sslseg.reduce.dhash.FLOAT32_MAP_VOXELS", 1)
    rng = np.random.default_rng(sum(permutation) + 7 * (signs[1] + 1))
    smooth = np.cumsum(np.cumsum(rng.integers(-3, 4, (70, 61, 9)), axis=0), axis=1)
    stored = np.ascontiguousarray(np.transpose(smooth, permutation)).astype(np.int16)
    affine = np.eye(4)
    affine[:3, :3] = np.diag(signs)[:, list(np.argsort(permutation))] * 1.5  # stored axis -> RAS axis, signed
    stack = axial_stack(Volume(stored, affine))
    assert to_hex(axial_hashes(stack)) == _reference_volume(stack)
    assert to_hex(axial_hashes(stack, threads=2)) == _reference_volume(stack)


@pytest.mark.parametrize("shape", [(300, 40), (40, 9), (8, 60), (600, 600)])
def test_tall_skipped_pass_and_large_slices_hash_like_imagehash(shape):
    """Vertical pass first (tall), a pass Pillow skips (W 9 / H 8), and slices stored innermost."""
    rng = np.random.default_rng(shape[0])
    array = rng.integers(-1024, 1500, (3, *shape[::-1])).transpose(1, 2, 0).astype(np.int16)  # (W, H, N), N innermost
    stack = axial_stack(Volume(np.ascontiguousarray(array), np.diag([-1.0, -1.0, 1.0, 1.0])))
    assert to_hex(axial_hashes(stack)) == _reference_volume(stack)


def test_float_volume_and_ties_use_the_float64_definition(monkeypatch):
    """A float volume (float64 path) and int slices full of float64 ties (even spans, float32 map rejected)."""
    rng = np.random.default_rng(5)
    floats = Volume(rng.normal(0.0, 100.0, (50, 40, 6)), np.eye(4))
    stack = axial_stack(floats)
    assert to_hex(axial_hashes(stack)) == _reference_volume(stack)
    monkeypatch.setattr("sslseg.reduce.dhash.FLOAT32_MAP_VOXELS", 1)  # small slices: force the float32 map
    ties = rng.integers(-1000, 900, (50, 40, 8)).astype(np.int16)
    ties[0, 0, 3], ties[1, 1, 3] = -1019, 919  # span 1938 (a real CT slice): float64 ties rounding both ways
    ties[0, 0, 5], ties[1, 1, 5] = -1019, 919
    stack = axial_stack(Volume(ties, np.eye(4)))
    exact = float32_grey_levels(ties.min(axis=(0, 1)), ties.max(axis=(0, 1)))[2]
    assert list(np.flatnonzero(~exact)) == [3, 5]  # float32 elsewhere, the per-slice float64 fix-up on these
    assert to_hex(axial_hashes(stack)) == _reference_volume(stack)
    assert to_hex(axial_hashes(stack, threads=2)) == _reference_volume(stack)


@pytest.mark.parametrize("superior_first", [False, True])
def test_ties_with_slices_outermost_and_stored_superior_first(superior_first, monkeypatch):
    """The per-slice float64 fix-up when the slices are the outermost memory axis, also stored superior-first
    (the hashes' order is then reversed from memory order)."""
    monkeypatch.setattr("sslseg.reduce.dhash.FLOAT32_MAP_VOXELS", 1)
    rng = np.random.default_rng(8)
    ties = rng.integers(-1000, 900, (8, 50, 40)).astype(np.int16)  # (S, R, A): slices outermost
    ties[3, 0, 0], ties[3, 1, 1] = -1019, 919
    ties[6, 0, 0], ties[6, 1, 1] = -1019, 919
    assert list(np.flatnonzero(~float32_grey_levels(ties.min(axis=(1, 2)), ties.max(axis=(1, 2)))[2])) == [3, 6]
    affine = np.zeros((4, 4))
    affine[2, 0] = -2.0 if superior_first else 2.0
    affine[0, 1], affine[1, 2], affine[3, 3] = 1.0, 1.0, 1.0
    stack = axial_stack(Volume(ties, affine))
    assert stack.axis == 0 and (stack.images.strides[0] < 0) == superior_first
    assert to_hex(axial_hashes(stack)) == _reference_volume(stack)
    assert to_hex(axial_hashes(stack, threads=2)) == _reference_volume(stack)


def test_big_endian_voxels_hash_like_little_endian_ones():
    """nibabel returns a big-endian NIfTI's voxels as >i2 (the compiled kernel reads only native order)."""
    voxels = np.random.default_rng(9).integers(-1000, 1000, (60, 50, 5)).astype(np.int16)
    big = axial_stack(Volume(voxels.astype(">i2"), np.eye(4)))
    assert to_hex(axial_hashes(big)) == to_hex(axial_hashes(axial_stack(Volume(voxels, np.eye(4)))))
    assert to_hex(axial_hashes(big)) == _reference_volume(big)


def test_float32_grey_map_equals_the_float64_definition_on_every_integer():
    """Exhaustive over lo..hi, for the real CT ranges and random ones (many even spans, i.e. ties)."""
    rng = np.random.default_rng(11)
    low = np.concatenate([[-1024, -1019, -999, -47, 0, -32768, 5], rng.integers(-3000, 500, 60)])
    high = np.concatenate([[1839, 919, 1143, 823, 255, 32767, 5], low[7:] + rng.integers(1, 6000, 60)])
    a32, b32, exact = float32_grey_levels(low, high)
    a, b = grey_level_affine(low, high)
    assert exact.sum() > len(exact) // 2
    for n in np.flatnonzero(exact):
        v = np.arange(low[n], high[n] + 1)
        ours = np.floor(v.astype(np.float32) * a32[n] + b32[n])
        assert np.array_equal(ours, np.floor(v.astype(np.float64) * a[n] + b[n])), (low[n], high[n])


@pytest.mark.parametrize("size", [512, 2000])
def test_split_weights_sums_are_exact(size):
    """float32 pieces reproduce the float64 integer sums exactly on worst-case pixels (255 where w > 0)."""
    from sslseg.reduce.lanczos import join_split, resize_matrix, split_weights

    pieces, weights = split_weights(size, 9), resize_matrix(size, 9)
    if pieces is None:  # too many taps for float32: the float64 product is used (tested by the 2000-wide hashes)
        assert size > 1000
        return
    assert np.array_equal(256.0 * pieces[:, 0::2] + pieces[:, 1::2], weights)
    pixels = np.vstack([np.where(weights.T > 0, 255, 0), np.where(weights.T < 0, 255, 0),
                        np.random.default_rng(0).integers(0, 256, (50, size))]).astype(np.float32)
    assert np.array_equal(join_split(pixels @ pieces, 1), pixels.astype(np.float64) @ weights)


def test_wide_images_use_exact_float64_weights():
    images = np.random.default_rng(3).integers(0, 256, (3, 12, 2000)).astype(np.uint8)
    assert to_hex(stack_hashes(images)) == reference(images)
