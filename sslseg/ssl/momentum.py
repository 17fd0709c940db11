"""Target (momentum) networks: copies that get no gradient and follow the online network by EMA.

After lightly's ``models/utils.update_momentum`` and solo-learn's ``BaseMomentumMethod``: after each optimiser step,
``target = m * target + (1 - m) * online``, with m rising from ``base`` to ``final`` on a cosine over the run (BYOL,
Grill et al. 2020, eq. after (2)): ``m = final - (final - base) * (cos(pi * step / total) + 1) / 2``.
"""

from __future__ import annotations

import copy
import math

import torch


def target_copy(module: torch.nn.Module) -> torch.nn.Module:
    """A deep copy of ``module`` whose parameters never get a gradient."""
    target = copy.deepcopy(module)
    for parameter in target.parameters():
        parameter.requires_grad_(False)
    return target


def cosine_momentum(step: int, total_steps: int, base: float, final: float = 1.0) -> float:
    """The EMA momentum after ``step`` of ``total_steps``: ``base`` at 0, ``final`` at the end."""
    progress = min(max(step / max(total_steps, 1), 0.0), 1.0)
    return final - (final - base) * (math.cos(math.pi * progress) + 1) / 2


@torch.no_grad()
def update_momentum(online: torch.nn.Module, target: torch.nn.Module, momentum: float) -> None:
    """``target = momentum * target + (1 - momentum) * online``, parameter by parameter (buffers copied)."""
    for p_target, p_online in zip(target.parameters(), online.parameters()):
        p_target.mul_(momentum).add_(p_online.detach(), alpha=1.0 - momentum)
    for b_target, b_online in zip(target.buffers(), online.buffers()):
        b_target.copy_(b_online)
