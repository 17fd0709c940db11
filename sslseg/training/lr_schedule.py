"""Learning-rate schedules of the training loops: an optional linear warm-up, then constant or a cosine decay.

A fixed budget of steps (a fine-tuning run's ``--max-steps``) ends where the learning rate leaves it: at a constant
rate the weights keep moving with each step's crops, so the last validation can land anywhere in an oscillation
(measured on a real CT, ``README.md``: liver / spleen / aorta Dice swinging between 0.27 and 0.68 every 25 steps at
lr 3e-3); the cosine decay ends the run at a rate near zero, on weights that have settled. No torch import at module
level: the run configurations import :data:`SCHEDULES` and stay light.
"""

from __future__ import annotations

import math
from functools import partial

SCHEDULES = ("constant", "cosine")


def lr_factor(step: int, warmup: int, total: int, schedule: str) -> float:
    """The multiplier of the base learning rate at optimisation step ``step`` (0-based) of ``total``: linear from
    1 / ``warmup`` to 1 over ``warmup`` steps, then 1 (``constant``) or half a cosine from 1 towards 0 at ``total``."""
    if warmup and step < warmup:
        return (step + 1) / warmup
    if schedule == "constant":
        return 1.0
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return 0.5 * (1.0 + math.cos(math.pi * progress))


def lr_scheduler(optimizer: "torch.optim.Optimizer", warmup: int, total: int = 0,
                 schedule: str = "constant") -> "torch.optim.lr_scheduler.LambdaLR":
    """A ``LambdaLR`` stepping :func:`lr_factor` once per optimisation step (its state dict resumes the count)."""
    import torch

    if schedule not in SCHEDULES:
        raise ValueError(f"unknown learning-rate schedule {schedule!r}; choose one of {', '.join(SCHEDULES)}")
    return torch.optim.lr_scheduler.LambdaLR(optimizer, partial(lr_factor, warmup=warmup, total=total,
                                                                schedule=schedule))
