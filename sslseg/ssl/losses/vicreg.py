"""VICReg: invariance (MSE), variance (hinge on the standard deviation) and covariance (off-diagonal) terms.

Bardes, Ponce, LeCun, "VICReg: Variance-Invariance-Covariance Regularization for Self-Supervised Learning",
ICLR 2022 (eq. 1-6 and Algorithm 1; lambda = mu = 25, nu = 1, gamma = 1, epsilon = 1e-4).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from sslseg.ssl.losses._float32 import identity, in_float32

#: The paper's epsilon inside the standard deviation.
EPS = 1e-4


def _variance(z: torch.Tensor) -> torch.Tensor:
    return F.relu(1.0 - torch.sqrt(z.var(dim=0) + EPS)).mean()


def _covariance(z: torch.Tensor) -> torch.Tensor:
    z = z - z.mean(dim=0)
    cov = z.T @ z / (z.shape[0] - 1)  # (D, D)
    return (cov.pow(2).sum() - torch.diagonal(cov).pow(2).sum()) / z.shape[1]


@in_float32
def vicreg_loss(z1: torch.Tensor, z2: torch.Tensor, sim: float = 25.0, var: float = 25.0, cov: float = 1.0,
                gather=None) -> torch.Tensor:
    """sim * MSE(z1, z2) + var * (v(z1) + v(z2)) / 2 + cov * (c(z1) + c(z2)).

    Args:
        z1, z2: (B, D) expander outputs of two views; B_global >= 2.
        sim, var, cov: the paper's lambda, mu, nu.
        gather: (B, D) -> (B_global, D) (DDP); identity when None.

    Returns:
        0-d float32; every term over the global batch (the authors gather for the variance and covariance; their
        per-process MSE averages to the global one), so every process holds the one-process value.
        v(z) = mean_j relu(1 - sqrt(Var(z_j) + 1e-4)) (unbiased variance); c(z) = sum_{i != j} Cov(z)_ij^2 / D.
    """
    gather = gather or identity
    z1, z2 = gather(z1), gather(z2)
    invariance = F.mse_loss(z1, z2)
    variance = (_variance(z1) + _variance(z2)) / 2
    covariance = _covariance(z1) + _covariance(z2)
    return sim * invariance + var * variance + cov * covariance
