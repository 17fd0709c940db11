"""Sliding-window prediction over a whole preprocessed volume, skipping windows that hold no body.

Windows of the model's input size S^3 step by S * (1 - overlap); overlapping predictions are blended with a Gaussian
importance map (as MONAI's ``sliding_window_inference(mode="gaussian")``). A window whose voxels are all below the
foreground threshold (air around the body) is not computed: it is background. An axis shorter than the window is
padded on both sides, centred, as training pads it (a thin volume padded at one end only sat at window depths the
model never saw in training).
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
    workers: int | None = None,
) -> torch.Tensor:
    """Class probabilities (C, X, Y, Z) float32 on the CPU for a preprocessed image ``array`` (X, Y, Z) in 0..1.

    Args:
        model: maps (B, 1, S, S, S) to logits (B, C, S, S, S); put in eval mode by the caller.
        window: S, the model's input size.
        foreground: windows whose maximum is <= this value are skipped (None: compute every window).
        precision: an ``sslseg.training.amp.Precision`` for autocast, or None.
        workers: windows computed at the same time on the CPU, each with its share of torch's threads (None: see
            :func:`cpu_workers`; 1: one window after the other, each using all threads). Ignored on GPUs.
    """
    device = device or torch.device("cpu")
    image = torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32))
    shape = image.shape
    before = [max(0, window - n) // 2 for n in shape]  # centred, as training's SpatialPadd places a thin volume
    padded = torch.nn.functional.pad(image, _padding(shape, window))  # zero = air after scaling
    importance = gaussian_importance(window)
    corners = list(itertools.product(*(window_starts(n, window, overlap) for n in padded.shape)))
    if foreground is not None:
        corners = [c for c in corners if padded[_box(c, window)].max() > foreground]
    chunks = [corners[first:first + batch_size] for first in range(0, len(corners), batch_size)]

    def forward(chunk):
        with torch.no_grad():  # grad mode and autocast are per thread: set them in the worker
            batch = torch.stack([padded[_box(c, window)] for c in chunk])[:, None].to(device)
            with precision.autocast() if precision else _nothing():
                logits = model(batch)
            probabilities = torch.softmax(logits.float(), dim=1).cpu()
            probabilities *= importance  # in place: no temporary of the window's size per class
            return probabilities

    scores = weights = None
    for chunk, probabilities in _in_order(forward, chunks, _workers(workers, device, len(chunks))):
        if scores is None:
            scores = torch.zeros((probabilities.shape[1], *padded.shape))
            weights = torch.zeros(padded.shape)
        for corner, p in zip(chunk, probabilities):
            box = _box(corner, window)
            scores[(slice(None), *box)] += p
            weights[box] += importance
        del probabilities
    return _normalised(scores, weights, shape, before, model)


#: At most this many windows at once on the CPU (each holds its activations: ~1 GB for ViT-B at 96^3).
MAX_CPU_WORKERS = 2


def cpu_workers(threads: int | None = None) -> int:
    """How many windows to compute at once on a CPU with ``threads`` torch threads (default: torch's setting).

    Two windows side by side, each on its own thread(s), beat one window on all threads: a UNETR forward pass is
    hundreds of small operations (ViT tokens, norms, activations) that parallelise poorly inside, and every one of
    them ends in a barrier. Measured on 2 cores (vit-b, 96^3, 4 windows): 14-18 s instead of 28-32 s, with a third
    less CPU time; the cost is a second window's activations in memory.
    """
    threads = threads or torch.get_num_threads()
    return max(1, min(MAX_CPU_WORKERS, threads))


def _workers(requested: int | None, device, chunks: int) -> int:
    if torch.device(device).type != "cpu" or chunks < 2:
        return 1
    return max(1, min(chunks, requested if requested is not None else cpu_workers()))


def _in_order(function, items, workers: int):
    """(item, function(item)) in the items' order, computed by ``workers`` threads that split torch's CPU threads.

    Results are consumed in order, so blending is deterministic, and at most ``workers + 1`` are held at once.
    """
    if workers <= 1:
        for item in items:
            yield item, function(item)
        return
    from collections import deque
    from concurrent.futures import ThreadPoolExecutor

    threads = torch.get_num_threads()
    share = max(1, threads // workers)

    def in_worker(item):
        torch.set_num_threads(share)  # OpenMP's thread count is per calling thread: set it in each worker
        return function(item)

    torch.set_num_threads(share)  # also torch's process-wide default, restored below
    try:
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="sslseg-window") as pool:
            pending = deque()
            for item in items:
                pending.append((item, pool.submit(in_worker, item)))
                if len(pending) > workers:
                    done, future = pending.popleft()
                    yield done, future.result()
            while pending:
                done, future = pending.popleft()
                yield done, future.result()
    finally:
        torch.set_num_threads(threads)


def _normalised(scores, weights, shape, before, model) -> torch.Tensor:
    """Blended probabilities of the volume (``shape``, at offset ``before`` in the padded grid), contiguous
    (C, X, Y, Z); voxels no window computed are background (1, 0, ...)."""
    if scores is None:  # no window held any body
        channels = getattr(model, "out_channels", None) or _channels(model)
        scores = torch.zeros((channels, *shape))
        scores[0] = 1.0
        return scores
    inside = tuple(slice(b, b + n) for b, n in zip(before, shape))
    scores = scores[(slice(None), *inside)]
    weights = weights[inside]
    skipped = weights == 0
    weights.masked_fill_(skipped, 1.0)
    scores /= weights  # in place, broadcast over classes: no masked copies of the (C, X, Y, Z) array
    scores[0].masked_fill_(skipped, 1.0)  # skipped windows: background
    return scores if scores.is_contiguous() else scores.contiguous()


def _channels(model) -> int:
    last = [m for m in model.modules() if isinstance(m, (torch.nn.Conv3d, torch.nn.ConvTranspose3d))][-1]
    return last.out_channels


def _padding(shape, window: int) -> list[int]:
    """``torch.nn.functional.pad`` widths bringing each axis shorter than ``window`` up to it, centred (the smaller
    half first): exactly where MONAI's ``SpatialPadd`` puts a volume thinner than the training crop, so a model with
    absolute position embeddings sees it at the depth it was trained at."""
    pads = []
    for n in reversed(shape):  # torch pads the last axis first
        missing = max(0, window - n)
        pads += [missing // 2, missing - missing // 2]
    return pads


def _box(corner, window: int) -> tuple[slice, ...]:
    return tuple(slice(c, c + window) for c in corner)


class _nothing:
    def __enter__(self):
        return None

    def __exit__(self, *args):
        return False
