"""The 3-D views (sslseg.ssl.views3d): deterministic for a seed, right shapes, values in 0..1, exact crop geometry."""

import numpy as np
import pytest

from sslseg.ssl.views3d import (IntensitySettings, augment_intensity, crop_box, make_view, multi_crop, random_blur,
                                random_contrast, random_gamma, random_noise, random_resized_crop, random_scale_shift,
                                resized_crop)

RNGS = {"Generator": np.random.default_rng, "RandomState": np.random.RandomState}
ALWAYS = IntensitySettings(scale_shift_prob=1, contrast_prob=1, gamma_prob=1, noise_prob=1, blur_prob=1)


def region(shape=(20, 24, 28), seed=0):
    return np.random.default_rng(seed).random((1, *shape), dtype=np.float32)


def positions(shape):
    """(1, X, Y, Z) with value (x Y Z + y Z + z) / (X Y Z): linear in each coordinate, unique per voxel, in 0..1."""
    x, y, z = np.meshgrid(*[np.arange(n) for n in shape], indexing="ij")
    return ((x * shape[1] * shape[2] + y * shape[2] + z) / np.prod(shape)).astype(np.float32)[None]


def expected_positions(shape, start, size, out):
    """The linear resampling of :func:`positions` for a box: per axis, source coordinate
    start + (j + 0.5) size / out - 0.5, clamped to the volume."""
    c = [np.clip(s0 + (np.arange(out) + 0.5) * n / out - 0.5, 0, limit - 1) for s0, n, limit in zip(start, size, shape)]
    x, y, z = np.meshgrid(*c, indexing="ij")
    return ((x * shape[1] * shape[2] + y * shape[2] + z) / np.prod(shape))[None]


@pytest.mark.parametrize("rng", sorted(RNGS))
def test_views_deterministic_for_a_seed(rng):
    make = RNGS[rng]
    r = region()
    first = multi_crop(r, make(5), 16, 2, 8, 3)
    again = multi_crop(r, make(5), 16, 2, 8, 3)
    other = multi_crop(r, make(6), 16, 2, 8, 3)
    assert all(np.array_equal(a, b) for a, b in zip(first, again))
    assert not np.array_equal(first[0], other[0])
    assert not np.array_equal(first[0], first[1])  # two views of one region differ


@pytest.mark.parametrize("rng", sorted(RNGS))
def test_multi_crop_shapes_dtype_and_range(rng):
    views = multi_crop(region(), RNGS[rng](1), global_size=16, n_global=2, local_size=8, n_local=4, intensity=ALWAYS)
    assert [v.shape for v in views] == [(1, 16, 16, 16)] * 2 + [(1, 8, 8, 8)] * 4
    assert all(v.dtype == np.float32 and v.min() >= 0 and v.max() <= 1 for v in views)


@pytest.mark.parametrize("transform", [random_scale_shift, random_contrast, random_gamma, random_noise, random_blur])
def test_intensity_changes_keep_shape_and_range(transform):
    x = region()
    for seed in range(5):
        # wide ranges, so that the clipping is exercised
        kwargs = {random_scale_shift: dict(scale=(0.5, 2.0), shift=(-0.5, 0.5)), random_contrast: dict(factor=(0.2, 3)),
                  random_gamma: dict(gamma=(0.2, 5)), random_noise: dict(std=(0.2, 0.5)),
                  random_blur: dict(sigma=(0.5, 2))}[transform]
        y = transform(x, np.random.default_rng(seed), **kwargs)
        assert y.shape == x.shape and y.dtype == np.float32 and y.min() >= 0 and y.max() <= 1
        assert not np.array_equal(x, y)


def test_augment_intensity_off_is_identity():
    x = region()
    off = IntensitySettings(scale_shift_prob=0, contrast_prob=0, gamma_prob=0, noise_prob=0, blur_prob=0)
    assert np.array_equal(augment_intensity(x, np.random.default_rng(0), off), x)


def test_resized_crop_same_size_is_exact_subarray():
    r = region()
    view = resized_crop(r, (2, 3, 4), (8, 8, 8), 8)
    assert np.array_equal(view, r[:, 2:10, 3:11, 4:12])


def test_resized_crop_halving_averages_voxel_pairs():
    """A box of edge 8 onto 4 voxels: output j reads coordinate start + 2j + 0.5, the mean of voxels 2j and 2j + 1."""
    r = region()
    view = resized_crop(r, (0, 2, 4), (8, 8, 8), 4)
    box = r[:, 0:8, 2:10, 4:12].astype(np.float64)
    pairs = box.reshape(1, 4, 2, 4, 2, 4, 2).mean(axis=(2, 4, 6))
    np.testing.assert_allclose(view, pairs, rtol=0, atol=1e-6)


@pytest.mark.parametrize("seed", range(6))
def test_random_crop_geometry_is_exact(seed):
    """A region whose voxels encode their position: the view is the drawn box, resampled linearly, on the right axes."""
    shape = (20, 24, 28)
    start, size = crop_box(shape, np.random.default_rng(seed), scale=(0.1, 1.0))
    view = random_resized_crop(positions(shape), np.random.default_rng(seed), 12, scale=(0.1, 1.0))
    np.testing.assert_allclose(view, expected_positions(shape, start, size, 12), rtol=0, atol=1e-6)
    assert size != (12, 12, 12) and len(set(size)) > 1  # a real zoom, not a cube: the axes could not be swapped


def test_crop_box_scale_and_ratio():
    shape = (40, 40, 40)
    for seed in range(200):
        start, size = crop_box(shape, np.random.default_rng(seed), scale=(0.2, 0.5), ratio=(3 / 4, 4 / 3))
        assert all(0 <= s and s + n <= 40 for s, n in zip(start, size))
        assert 0.18 < np.prod(size) / 40**3 < 0.53  # the drawn volume fraction, up to the rounding of the edges
        assert max(size) / min(size) <= (4 / 3) / (3 / 4) + 0.1


def test_crop_box_falls_back_to_whole_volume():
    assert crop_box((4, 4, 4), np.random.default_rng(0), scale=(5.0, 6.0)) == ((0, 0, 0), (4, 4, 4))


def test_make_view_without_intensity_is_the_crop():
    r = region()
    assert np.array_equal(make_view(r, np.random.default_rng(3), 16, intensity=None),
                          np.clip(random_resized_crop(r, np.random.default_rng(3), 16), 0, 1))


def test_flips_reverse_exactly_the_named_ras_axes():
    """A region whose voxels encode their (i, j, k) position: a left-right flip (axis 0) sends voxel i to X - 1 - i and
    leaves j, k; no axes, no draw and the region itself."""
    from sslseg.ssl.views3d import random_flips

    shape = (5, 6, 7)
    i, j, k = np.meshgrid(*[np.arange(n) for n in shape], indexing="ij")
    region = (i * 100 + j * 10 + k).astype(np.float32)[None]
    state = np.random.RandomState(0)
    assert random_flips(region, state, ()) is region and state.uniform() == np.random.RandomState(0).uniform()
    flips = [random_flips(region, np.random.RandomState(seed), (0,)) for seed in range(8)]
    flipped = [f for f in flips if not np.array_equal(f, region)]
    assert 0 < len(flipped) < 8
    assert np.array_equal(flipped[0][0, 4 - np.arange(5)], region[0])


def test_axial_rotation_turns_the_axial_plane_only():
    from sslseg.ssl.views3d import random_axial_rot90

    region = np.random.default_rng(0).random((1, 6, 6, 4), dtype=np.float32)
    turns = {random_axial_rot90(region, np.random.RandomState(seed)).tobytes() for seed in range(20)}
    assert len(turns) == 4
    for seed in range(4):
        turned = random_axial_rot90(region, np.random.RandomState(seed))
        assert np.allclose(np.sort(turned[0, :, :, 2].ravel()), np.sort(region[0, :, :, 2].ravel()))  # same slice


def test_views_of_two_view_methods_without_flips_are_unchanged_by_the_flip_options():
    import torch

    from sslseg.ssl import create_method

    region = np.random.default_rng(1).random((1, 48, 48, 48), dtype=np.float32)
    plain = create_method("simclr").make_views(region, np.random.RandomState(5))
    empty = create_method("simclr", flip_axes="").make_views(region, np.random.RandomState(5))
    flipping = create_method("simclr", flip_axes="0", rotate90="yes")
    assert flipping.options["flip_axes"] == (0,) and flipping.options["rotate90"] is True
    assert all(torch.equal(plain[k], empty[k]) for k in plain)
    with pytest.raises(Exception, match="flip_axes"):
        create_method("simclr", flip_axes="3")
