"""W-MSE: the MSE of L2-normalised positives after whitening each view's sub-batches (Cholesky).

Ermolov, Siarohin, Sangineto, Sebe, "Whitening for Self-Supervised Representation Learning", ICML 2021 (eq. 5-7,
Algorithm 1) and the authors' code (github.com/htdt/self-supervised, ``methods/wmse.py``, ``methods/whitening.py``):
each view's sub-batch is whitened on its own, and the loss averages 2 - 2 cos over all pairs of the k views.
"""

from __future__ import annotations

import itertools

import torch
import torch.nn.functional as F

from sslseg.ssl.losses._float32 import in_float32


def whiten(x: torch.Tensor, eps: float) -> torch.Tensor:
    """(m, D) -> (m, D): (x - mean) W^T with W = L^-1, L L^T = (1 - eps) Cov(x) + eps I (unbiased covariance); the
    result has (for eps 0) identity covariance. Gradients flow through the whitening matrix, as in the paper."""
    centred = x - x.mean(dim=0)
    dim = x.shape[1]
    eye = torch.eye(dim, dtype=x.dtype, device=x.device)
    covariance = (1 - eps) * (centred.T @ centred) / (x.shape[0] - 1) + eps * eye
    lower, info = torch.linalg.cholesky_ex(covariance)
    if int(info) != 0:
        raise ValueError(f"W-MSE: the covariance of a sub-batch of {x.shape[0]} embeddings of {dim} features is "
                         "singular; use whitening_size > D (the paper uses 2 D) or eps > 0")
    return centred @ torch.linalg.solve_triangular(lower, eye, upper=False).T


@in_float32
def wmse_loss(z_views: list[torch.Tensor], whitening_size: int, eps: float) -> torch.Tensor:
    """W-MSE over k >= 2 views of the same B samples.

    Args:
        z_views: k tensors (B, D), row n of each a view of sample n; B a multiple of ``whitening_size``.
        whitening_size: rows per whitening sub-batch (the paper's m; 2 D or more keeps Cholesky stable). The
            sub-batches are the consecutive rows (the authors draw a random permutation; the data loader's order is
            already random, and this keeps the function free of any global RNG).
        eps: shrinkage of the covariance towards identity (the authors' ``w_eps``, default 0).

    Returns:
        0-d float32: mean over the k (k - 1) / 2 view pairs of mean_n (2 - 2 cos(w_a[n], w_b[n])), w the whitened views.
    """
    if len(z_views) < 2:
        raise ValueError(f"W-MSE needs at least 2 views, got {len(z_views)}")
    batch = z_views[0].shape[0]
    if whitening_size < 2 or batch % whitening_size:
        raise ValueError(f"W-MSE: batch {batch} must be a multiple of whitening_size {whitening_size} (>= 2)")
    whitened = [torch.cat([whiten(chunk, eps) for chunk in z.split(whitening_size)]) for z in z_views]
    pairs = list(itertools.combinations(whitened, 2))
    return sum(2 - 2 * (F.normalize(a, dim=1) * F.normalize(b, dim=1)).sum(dim=1).mean() for a, b in pairs) / len(pairs)
