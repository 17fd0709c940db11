"""Barlow Twins: the cross-correlation of the two views' batch-normalised embeddings pulled towards identity.

Zbontar, Jing, Misra, LeCun, Deny, "Barlow Twins: Self-Supervised Learning via Redundancy Reduction", ICML 2021
(eq. 1 and Algorithm 1; lambda = 5e-3).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from sslseg.ssl.losses._float32 import identity, in_float32


@in_float32
def barlow_twins_loss(z1: torch.Tensor, z2: torch.Tensor, lambda_offdiag: float = 5e-3, gather=None) -> torch.Tensor:
    """sum_i (1 - C_ii)^2 + lambda * sum_{i != j} C_ij^2, C = BN(z1)^T BN(z2) / N (D, D).

    Args:
        z1, z2: (B, D) projections of two views; B_global >= 2.
        lambda_offdiag: weight of the redundancy-reduction (off-diagonal) term.
        gather: (B, D) -> (B_global, D) (DDP); identity when None.

    Returns:
        0-d float32. The batch normalisation (mean 0, biased variance 1, eps 1e-5, no affine: the paper's
        ``BatchNorm1d(affine=False)``) and C are over the global batch N = B_global, as the authors' code with
        SyncBatchNorm and an all-reduced C; every process holds the one-process value.
    """
    gather = gather or identity
    z1, z2 = gather(z1), gather(z2)
    n = z1.shape[0]
    c = F.batch_norm(z1, None, None, training=True).T @ F.batch_norm(z2, None, None, training=True) / n  # (D, D)
    diagonal = torch.diagonal(c)
    on_diagonal = (diagonal - 1).pow(2).sum()
    off_diagonal = c.pow(2).sum() - diagonal.pow(2).sum()
    return on_diagonal + lambda_offdiag * off_diagonal
