"""Out of memory while segmenting: try again with fewer windows at once, then on the CPU, else say what to change.

A GPU that runs out of memory on a large volume (or beside another program) should not cost the user the result:
the same prediction is computed again with one window at a time, and then with the computer's memory on the CPU.
Only when even that fails does segmentation stop, with a message that says what to change.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Callable

from sslseg.errors import SSLSegError
from sslseg.training.oom import is_out_of_memory

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Attempt:
    """One way to compute the prediction: on ``device``, ``batch`` windows per forward pass, ``workers`` windows at
    once on a CPU (None: the default, see ``sliding_window.cpu_workers``)."""

    device: object  # torch.device
    batch: int
    workers: int | None = None

    def describe(self) -> str:
        windows = "1 window" if self.batch == 1 else f"{self.batch} windows"
        return f"{windows} at a time on {self.device}"


def attempts(device, batch: int) -> list[Attempt]:
    """As asked; then one window at a time (one CPU worker); then on the CPU."""
    import torch

    plan = [Attempt(device, batch)]
    if batch > 1 or device.type == "cpu":
        plan.append(Attempt(device, 1, 1))
    if device.type != "cpu":
        plan.append(Attempt(torch.device("cpu"), 1, 1))
    return plan


def with_fallback(compute: Callable[[Attempt], object], device, batch: int, window: int, source: str):
    """``compute(attempt)`` for the first attempt that does not run out of memory; an :class:`SSLSegError` saying what
    to change when none fits.

    Args:
        window: the model's window edge (voxels), for the message; source: the volume, for the message.
    """
    plan = attempts(device, batch)
    for index, attempt in enumerate(plan):
        failure = _try(compute, attempt)
        if not isinstance(failure, _OutOfMemory):
            return failure
        _release(attempt.device)
        if index + 1 < len(plan):
            log.warning("out of memory with %s while segmenting %s; trying again with %s", attempt.describe(), source,
                        plan[index + 1].describe())
    raise SSLSegError(
        f"out of memory while segmenting {source}, even with one {window}^3 window at a time on the CPU",
        "close other programs to free memory, or segment on a computer with more memory",
    ) from failure.error


@dataclass
class _OutOfMemory:
    error: BaseException


def _try(compute, attempt: Attempt):
    """The result, or an _OutOfMemory; returning (not retrying inside ``except``) lets the failed attempt's tensors,
    held by the traceback, be freed before the next attempt."""
    try:
        return compute(attempt)
    except (RuntimeError, MemoryError) as error:  # torch.OutOfMemoryError is a RuntimeError
        if not is_out_of_memory(error):
            raise
        return _OutOfMemory(error.with_traceback(None))


def _release(device) -> None:
    import gc

    import torch

    gc.collect()
    if getattr(device, "type", "cpu") == "cuda":
        torch.cuda.empty_cache()
