"""SimCLR's NT-Xent loss over the (gathered) global batch.

Chen, Kornblith, Norouzi, Hinton, "A Simple Framework for Contrastive Learning of Visual Representations", ICML 2020
(eq. 1; the temperature-scaled cross-entropy of each of the 2N views against the other 2N - 1).
"""

from __future__ import annotations

import torch

from sslseg.ssl.contrastive import contrastive_loss
from sslseg.ssl.losses._float32 import identity, in_float32


@in_float32
def ntxent_loss(z1: torch.Tensor, z2: torch.Tensor, temperature: float, gather=None) -> torch.Tensor:
    """NT-Xent of the pairs (z1[n], z2[n]); every other embedding of the global batch is a negative.

    Args:
        z1, z2: (B, D) projections of two views (B local rows); normalised here.
        temperature: > 0.
        gather: (B, D) -> (B_global, D), differentiable (DDP); identity when None.

    Returns:
        0-d float32: mean over the 2 B_global rows of the global batch, so every process holds the loss one process
        would compute on the whole batch (2 processes of B equal 1 process of 2B; with the project's all-reduce
        gather and DDP's averaging the gradient is the global batch's).
    """
    gather = gather or identity
    return contrastive_loss(gather(z1), gather(z2), temperature)
