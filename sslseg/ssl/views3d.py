"""3-D views for the joint-embedding methods: random resized crops of a region, intensity changes, multi-crop.

Arrays are numpy float32 (1, X, Y, Z) in 0..1: a region cut around the patch (it may be larger than the patch, so
crops can move and zoom) and the views made from it. Every random draw comes from the ``rng`` passed (a
``numpy.random.Generator`` or a ``RandomState``, as the data set gives ``make_views``), never from a global RNG, so a
sample's views depend only on its seed (worker count, rank and resumption do not matter).

The crops are SimCLR's random resized crop (Chen et al., ICML 2020) in 3-D and SwAV's multi-crop (Caron et al.,
NeurIPS 2020: two global views and several small local ones); the intensity changes stand in for colour jitter and
blur, which a grey CT or MR volume does not have.

Medical decisions: **no flips and no rotations** by default (:func:`random_flips` and :func:`random_axial_rot90`
exist for measuring that decision and for data without a side, e.g. ``--method-option flip_axes=0``). Organs sit on one side of the body (the liver on the right, the
spleen on the left) and the volumes are resampled to one orientation; the fine-tuning found that left-right flips
teach a model that the liver can be on the left, so the views must not make a feature invariant to the side or to
the axes. Scale, position, contrast, gamma, noise and blur vary between scanners and patients, so they may.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class IntensitySettings:
    """Probability and range of each intensity change (ranges of uniform draws; gamma log-uniform)."""

    scale_shift_prob: float = 0.8
    scale: tuple[float, float] = (0.9, 1.1)
    shift: tuple[float, float] = (-0.1, 0.1)
    contrast_prob: float = 0.8
    contrast: tuple[float, float] = (0.75, 1.25)
    gamma_prob: float = 0.5
    gamma: tuple[float, float] = (0.7, 1.5)
    noise_prob: float = 0.5
    noise_std: tuple[float, float] = (0.0, 0.05)
    blur_prob: float = 0.5
    blur_sigma: tuple[float, float] = (0.25, 1.0)


def _integer(rng, high: int) -> int:
    """Uniform in 0 .. high - 1, from a Generator or a RandomState."""
    return int(rng.integers(0, high) if hasattr(rng, "integers") else rng.randint(0, high))


# --- geometry ---------------------------------------------------------------------------------------------------------

def crop_box(shape, rng, scale=(0.25, 1.0), ratio=(3 / 4, 4 / 3), attempts: int = 10):
    """A random box ``(start, size)`` (two int 3-tuples) inside a volume of spatial ``shape`` (X, Y, Z).

    Its volume is a fraction U(``scale``) of the volume's; its edges are cbrt(box volume) * f_i / gmean(f), with three
    factors f_i log-uniform in ``ratio``, rounded; its position is uniform. After ``attempts`` boxes that do not fit,
    the whole volume (torchvision's RandomResizedCrop in 3-D).
    """
    shape = np.asarray(shape[-3:])
    for _ in range(attempts):
        volume = float(np.prod(shape)) * rng.uniform(*scale)
        logs = np.array([rng.uniform(np.log(ratio[0]), np.log(ratio[1])) for _ in range(3)])
        size = np.round(np.cbrt(volume) * np.exp(logs - logs.mean())).astype(int)
        if np.all(size >= 1) and np.all(size <= shape):
            start = tuple(_integer(rng, int(n - s) + 1) for n, s in zip(shape, size))
            return start, tuple(int(s) for s in size)
    return (0, 0, 0), tuple(int(n) for n in shape)


def _resample_axis(x: np.ndarray, axis: int, start: int, size: int, out: int) -> np.ndarray:
    """Linear resampling of the box [start, start + size) of ``axis`` onto ``out`` voxels: output voxel j reads source
    coordinate start + (j + 0.5) * size / out - 0.5 (box extent onto output extent), clamped to the array."""
    n = x.shape[axis]
    coordinate = np.clip(start + (np.arange(out) + 0.5) * (size / out) - 0.5, 0, n - 1)
    low = np.floor(coordinate).astype(np.intp)
    high = np.minimum(low + 1, n - 1)
    weight = (coordinate - low).astype(np.float32).reshape([-1 if a == axis else 1 for a in range(x.ndim)])
    below, above = np.take(x, low, axis=axis), np.take(x, high, axis=axis)
    return below + (above - below) * weight


def resized_crop(region: np.ndarray, start, size, out_size: int) -> np.ndarray:
    """The box (``start``, ``size``) of ``region`` (1, X, Y, Z) resized to (1, S, S, S), S = ``out_size``: trilinear
    (one linear pass per axis); a box of edge S is an exact copy. Samples up to half an output voxel outside the box
    read the region's neighbouring voxels (clamped at its border)."""
    view = region
    for axis in range(3):
        view = _resample_axis(view, axis + 1, start[axis], size[axis], out_size)
    return np.ascontiguousarray(view, dtype=np.float32)


def random_resized_crop(region: np.ndarray, rng, out_size: int, scale=(0.25, 1.0), ratio=(3 / 4, 4 / 3)):
    """A random box of ``region`` (1, X, Y, Z) (:func:`crop_box`) resized to (1, S, S, S)."""
    start, size = crop_box(region.shape, rng, scale, ratio)
    return resized_crop(region, start, size, out_size)


def random_flips(region: np.ndarray, rng, axes) -> np.ndarray:
    """``region`` (1, X, Y, Z) with each spatial axis in ``axes`` (0, 1, 2) reversed with probability 0.5 (one draw
    per axis, in the order given; no draw and the region itself when ``axes`` is empty)."""
    flipped = region
    for axis in axes:
        if rng.uniform() < 0.5:
            flipped = np.flip(flipped, axis=axis + 1)
    return flipped


def random_axial_rot90(region: np.ndarray, rng) -> np.ndarray:
    """``region`` (1, X, Y, Z) on a RAS grid rotated by a uniform multiple of 90 degrees in the axial plane (X, Y)."""
    return np.rot90(region, k=_integer(rng, 4), axes=(1, 2))


# --- intensity (each returns float32 in 0..1 for an input in 0..1) ----------------------------------------------------

def random_scale_shift(x: np.ndarray, rng, scale=(0.9, 1.1), shift=(-0.1, 0.1)) -> np.ndarray:
    """x * U(scale) + U(shift), clipped to 0..1 (brightness)."""
    a, b = rng.uniform(*scale), rng.uniform(*shift)
    return np.clip(x * np.float32(a) + np.float32(b), 0, 1).astype(np.float32)


def random_contrast(x: np.ndarray, rng, factor=(0.75, 1.25)) -> np.ndarray:
    """(x - mean) * U(factor) + mean, clipped to 0..1."""
    mean, f = x.mean(), rng.uniform(*factor)
    return np.clip((x - mean) * np.float32(f) + mean, 0, 1).astype(np.float32)


def random_gamma(x: np.ndarray, rng, gamma=(0.7, 1.5)) -> np.ndarray:
    """x ** g, g log-uniform in ``gamma`` (0..1 stays 0..1)."""
    g = np.exp(rng.uniform(np.log(gamma[0]), np.log(gamma[1])))
    return np.power(np.clip(x, 0, 1), np.float32(g)).astype(np.float32)


def random_noise(x: np.ndarray, rng, std=(0.0, 0.05)) -> np.ndarray:
    """x + N(0, sigma^2) per voxel, sigma ~ U(std), clipped to 0..1."""
    sigma = rng.uniform(*std)
    noise = rng.standard_normal(x.shape).astype(np.float32)
    return np.clip(x + np.float32(sigma) * noise, 0, 1).astype(np.float32)


def random_blur(x: np.ndarray, rng, sigma=(0.25, 1.0)) -> np.ndarray:
    """Gaussian blur of the three spatial axes, sigma ~ U(``sigma``) voxels (a weighted mean: stays in range)."""
    from scipy.ndimage import gaussian_filter

    s = rng.uniform(*sigma)
    return gaussian_filter(x.astype(np.float32), sigma=(0, s, s, s), mode="nearest")


def augment_intensity(x: np.ndarray, rng, settings: IntensitySettings = IntensitySettings()) -> np.ndarray:
    """Scale/shift, contrast, gamma, noise, blur, in this order, each with its probability."""
    s = settings
    steps = [(s.scale_shift_prob, lambda v: random_scale_shift(v, rng, s.scale, s.shift)),
             (s.contrast_prob, lambda v: random_contrast(v, rng, s.contrast)),
             (s.gamma_prob, lambda v: random_gamma(v, rng, s.gamma)),
             (s.noise_prob, lambda v: random_noise(v, rng, s.noise_std)),
             (s.blur_prob, lambda v: random_blur(v, rng, s.blur_sigma))]
    for probability, step in steps:
        if rng.uniform() < probability:
            x = step(x)
    return np.clip(x, 0, 1).astype(np.float32)


# --- views ------------------------------------------------------------------------------------------------------------

def make_view(region: np.ndarray, rng, size: int, scale=(0.25, 1.0), ratio=(3 / 4, 4 / 3),
              intensity: IntensitySettings | None = IntensitySettings()) -> np.ndarray:
    """One view (1, S, S, S) float32 in 0..1: a random resized crop of ``region``, then (unless ``intensity`` is
    None) :func:`augment_intensity`."""
    view, _ = cropped_view(region, rng, size, scale, ratio, intensity)
    return view


def cropped_view(region: np.ndarray, rng, size: int, scale=(0.25, 1.0), ratio=(3 / 4, 4 / 3),
                 intensity: IntensitySettings | None = IntensitySettings()) -> tuple[np.ndarray, np.ndarray]:
    """:func:`make_view` and its box: (view (1, S, S, S), box (2, 3) float32: the crop's start and size in region
    voxels, for methods that relate the views' positions, e.g. PGL). Same draws as :func:`make_view`."""
    start, extent = crop_box(region.shape, rng, scale, ratio)
    view = np.clip(resized_crop(region, start, extent, size), 0, 1)
    box = np.array([start, extent], dtype=np.float32)
    return (view if intensity is None else augment_intensity(view, rng, intensity)), box


def multi_crop(region: np.ndarray, rng, global_size: int, n_global: int, local_size: int, n_local: int,
               global_scale=(0.25, 1.0), local_scale=(0.05, 0.25), ratio=(3 / 4, 4 / 3),
               intensity: IntensitySettings | None = IntensitySettings()) -> list[np.ndarray]:
    """SwAV's multi-crop: ``n_global`` views (1, G, G, G) of a U(``global_scale``) fraction of the region's volume,
    then ``n_local`` views (1, L, L, L) of a U(``local_scale``) fraction; each with its own intensity changes.

    The scales are fractions of the region's volume, i.e. edges of 0.63-1 and 0.37-0.63 of the region's. They are
    larger than SwAV's (its 2-D area fractions 0.14-1 and 0.05-0.14 are edges of 0.37-1 and 0.22-0.37) because the
    region is only a little larger than the patch; a default to revisit once the methods are compared."""
    views = [make_view(region, rng, global_size, global_scale, ratio, intensity) for _ in range(n_global)]
    return views + [make_view(region, rng, local_size, local_scale, ratio, intensity) for _ in range(n_local)]
