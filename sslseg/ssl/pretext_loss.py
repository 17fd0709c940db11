"""The loss of a pretext task that classifies each sample (which rotation, which neighbour): cross-entropy over the
gathered global batch, so every process logs the one-process value and DDP's averaging gives its gradient."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from sslseg.ssl.base import StepContext


def classification_loss(logits: torch.Tensor, labels: torch.Tensor, ctx: StepContext,
                        name: str) -> tuple[torch.Tensor, dict[str, float]]:
    """(0-d loss, ``{name}_ce`` and ``{name}_accuracy`` for the logs) of logits (B, classes) and labels (B,) long."""
    logits, labels = ctx.gather(logits.float()), ctx.gather(labels)
    loss = F.cross_entropy(logits, labels)
    accuracy = float((logits.argmax(dim=1) == labels).float().mean())
    return loss, {f"{name}_ce": float(loss.detach()), f"{name}_accuracy": accuracy}
