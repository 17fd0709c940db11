"""The predictor losses of SimSiam (negative cosine) and BYOL (normalised MSE = 2 - 2 cos); z gets no gradient.

Chen, He, "Exploring Simple Siamese Representation Learning", CVPR 2021 (eq. 1 and 3: D(p, stopgrad(z)) = -cos).
Grill et al., "Bootstrap Your Own Latent", NeurIPS 2020 (eq. 2: ||p/|p| - z/|z|||^2 = 2 - 2 cos).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from sslseg.ssl.losses._float32 import in_float32


@in_float32
def negative_cosine_loss(p: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """SimSiam's D(p, stopgrad(z)): mean over B of -cos(p_n, z_n), in [-1, 1].

    Args:
        p: (B, D) predictor outputs (gradients flow).
        z: (B, D) targets (the other view's projection); **detached here** (the stop-gradient is part of the loss).

    The caller symmetrises: ``(negative_cosine_loss(p1, z2) + negative_cosine_loss(p2, z1)) / 2``.
    """
    return -F.cosine_similarity(p, z.detach(), dim=1, eps=1e-8).mean()


@in_float32
def byol_loss(p: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """BYOL's normalised MSE: mean over B of 2 - 2 cos(p_n, z_n), in [0, 4]; ``z`` (the target network's projection)
    is **detached here**. The caller symmetrises by summing both directions, as the paper's L + L~."""
    return 2.0 - 2.0 * F.cosine_similarity(p, z.detach(), dim=1, eps=1e-8).mean()
