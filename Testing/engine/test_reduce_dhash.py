"""The vectorised dhash equals imagehash.dhash bit for bit; the slice -> image definition (orientation, grey levels)."""

from __future__ import annotations

import imagehash
import numpy as np
import pytest
from PIL import Image

from sslseg.io import read_volume
from sslseg.reduce.axial import axial_stack, slice_image
from sslseg.reduce.dhash import axial_hashes, stack_hashes, to_hex
from sslseg.volume import Volume

#: Shapes (H, W) covering both of Pillow's pass orders, upscaling, and axes that are not resampled (W 9 / H 8).
SHAPES = [(512, 512), (126, 120), (91, 117), (9, 8), (8, 9), (300, 17), (3, 301), (20, 9), (8, 40), (1, 1), (64, 7)]


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
def test_real_slices_hash_like_imagehash(shared_data, name):
    stack = axial_stack(read_volume(shared_data / name))
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
