"""MoCo v3's contrastive loss: in-batch keys, no queue, scaled by 2T.

Chen, Xie, He, "An Empirical Study of Training Self-Supervised Vision Transformers", ICCV 2021 (Algorithm 1:
``ctr(q, k) = CrossEntropyLoss(q k^T / T, range(N)) * 2 * T``; the step's loss is ``ctr(q1, k2) + ctr(q2, k1)``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from sslseg.ssl.losses._float32 import identity, in_float32


@in_float32
def moco_v3_loss(q: torch.Tensor, k: torch.Tensor, temperature: float, gather=None) -> torch.Tensor:
    """One direction of MoCo v3's symmetric loss; the caller adds ``moco_v3_loss(q2, k1, ...)``.

    Args:
        q: (B, D) predictions of the query encoder for view 1 (gradients flow).
        k: (B, D) momentum-encoder keys of view 2; detached here. Both are L2-normalised here.
        temperature: > 0 (the paper: 0.2 for ViT).
        gather: (B, D) -> (B_global, D) (DDP); identity when None.

    Returns:
        0-d float32: 2T times the cross-entropy of q_n against all B_global keys with k_n the positive, averaged over
        the global batch (every process holds the one-process value).
    """
    gather = gather or identity
    q = F.normalize(gather(q), dim=1)
    k = F.normalize(gather(k.detach()), dim=1)
    logits = q @ k.T / temperature  # (B_global, B_global)
    labels = torch.arange(q.shape[0], device=q.device)
    return F.cross_entropy(logits, labels) * (2.0 * temperature)
