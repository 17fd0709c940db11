"""Sliding-window prediction over a whole preprocessed volume, skipping windows that hold no body.

Windows of the model's input size S^3 step by S * (1 - overlap); overlapping predictions are blended with a Gaussian
importance map (as MONAI's ``sliding_window_inference(mode="gaussian")``). A window whose voxels are all below the
foreground threshold (air around the body) is not computed: it is background.
"""

from __future__ import annotations

import itertools

import numpy as np
import torch


def window_starts(size: int, window: int, overlap: float) -> list[int]:
    """Start indices along one axis of length ``size`` (>= window) covering it with the given overlap."""
    if size <= window:
        return [0]
    step = max(1, int(window * (1 - overlap)))
    starts = list(range(0, size - window, step))
    return starts + [size - window]


def gaussian_importance(window: int, sigma_scale: float = 0.125) -> torch.Tensor:
    """(S, S, S) weights peaking at the window's centre, never zero at its edges."""
    axis = torch.arange(window, dtype=torch.float32) - (window - 1) / 2
    g = torch.exp(-0.5 * (axis / (sigma_scale * window)) ** 2)
    weights = g[:, None, None] * g[None, :, None] * g[None, None, :]
    return (weights / weights.max()).clamp_min(1e-3)


@torch.no_grad()
def predict_probabilities(
    model,
    array: np.ndarray,
    window: int,
    overlap: float = 0.25,
    batch_size: int = 1,
    device=None,
    precision=None,
    foreground: float | None = 0.0,
) -> torch.Tensor:
    """Class probabilities (C, X, Y, Z) float32 on the CPU for a preprocessed image ``array`` (X, Y, Z) in 0..1.

    Args:
        model: maps (B, 1, S, S, S) to logits (B, C, S, S, S); put in eval mode by the caller.
        window: S, the model's input size.
        foreground: windows whose maximum is <= this value are skipped (None: compute every window).
        precision: an ``sslseg.training.amp.Precision`` for autocast, or None.
    """
    device = device or torch.device("cpu")
    image = torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32))
    shape = image.shape
    padded = torch.nn.functional.pad(image, _padding(shape, window))  # zero = air after scaling
    importance = gaussian_importance(window)
    corners = list(itertools.product(*(window_starts(n, window, overlap) for n in padded.shape)))
    if foreground is not None:
        corners = [c for c in corners if padded[_box(c, window)].max() > foreground]
    scores = weights = None
    for first in range(0, len(corners), batch_size):
        chunk = corners[first:first + batch_size]
        batch = torch.stack([padded[_box(c, window)] for c in chunk])[:, None].to(device)
        with precision.autocast() if precision else _nothing():
            logits = model(batch)
        probabilities = torch.softmax(logits.float(), dim=1).cpu()
        if scores is None:
            scores = torch.zeros((probabilities.shape[1], *padded.shape))
            weights = torch.zeros(padded.shape)
        for corner, p in zip(chunk, probabilities):
            box = _box(corner, window)
            scores[(slice(None), *box)] += p * importance
            weights[box] += importance
    return _normalised(scores, weights, shape, model)


def _normalised(scores, weights, shape, model) -> torch.Tensor:
    if scores is None:  # no window held any body
        channels = getattr(model, "out_channels", None) or _channels(model)
        scores, weights = torch.zeros((channels, *shape)), torch.zeros(shape)
    scores = scores[(slice(None), *(slice(0, n) for n in shape))]
    weights = weights[tuple(slice(0, n) for n in shape)]
    computed = weights > 0
    scores[:, computed] /= weights[computed]
    scores[0, ~computed] = 1.0  # skipped windows: background
    return scores


def _channels(model) -> int:
    last = [m for m in model.modules() if isinstance(m, (torch.nn.Conv3d, torch.nn.ConvTranspose3d))][-1]
    return last.out_channels


def _padding(shape, window: int) -> list[int]:
    pads = []
    for n in reversed(shape):  # torch pads the last axis first
        pads += [0, max(0, window - n)]
    return pads


def _box(corner, window: int) -> tuple[slice, ...]:
    return tuple(slice(c, c + window) for c in corner)


class _nothing:
    def __enter__(self):
        return None

    def __exit__(self, *args):
        return False
