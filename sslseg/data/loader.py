"""DataLoaders for training and validation: workers, per-worker setup, pinned memory on CUDA."""

from __future__ import annotations

import os


def default_workers() -> int:
    """One core for the model's own threads, the rest (at most 4) for data: 1 on a 2-core machine."""
    return max(0, min(4, (os.cpu_count() or 1) - 1))


def ignore_interrupts(_worker_id: int = 0) -> None:
    """In a worker process: ignore SIGINT and SIGTERM. A terminal's Ctrl-C, or a job runner's SIGTERM to the process
    group, reaches every process; the main process stops the run cleanly (``sslseg.training.stop_signal``) and shuts
    its workers down, which must not die first (a worker killed under the DataLoader is an error, not a stop). Workers
    still end with the main process: torch's worker loop exits when its parent is gone."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


def worker_init(worker_id: int) -> None:
    """Worker process setup: no MetaTensor bookkeeping, one torch thread (the main process has the cores), SIGINT
    and SIGTERM left to the main process."""
    import torch
    from monai.data import set_track_meta

    set_track_meta(False)
    torch.set_num_threads(1)
    ignore_interrupts(worker_id)


def make_loader(dataset, batch_sampler, workers: int, seed: int, pin_memory: bool = False):
    """A ``torch.utils.data.DataLoader`` over ``(epoch, index)`` batches; persistent workers when ``workers > 0``.

    A private generator keeps the loader from drawing on torch's global RNG (which the checkpoint restores).
    """
    import torch
    from torch.utils.data import DataLoader

    return DataLoader(
        dataset, batch_sampler=batch_sampler, num_workers=workers, worker_init_fn=worker_init,
        persistent_workers=workers > 0, pin_memory=pin_memory,
        generator=torch.Generator().manual_seed(seed), prefetch_factor=2 if workers > 0 else None,
    )
