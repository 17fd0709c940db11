"""MoCo's InfoNCE loss against a queue of negatives (MoCo v2).

He, Fan, Wu, Xie, Girshick, "Momentum Contrast for Unsupervised Visual Representation Learning", CVPR 2020
(Algorithm 1); Chen, Fan, Girshick, He, "Improved Baselines with Momentum Contrastive Learning", arXiv 2003.04297
(MoCo v2: the same loss, T = 0.2, with an MLP head).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from sslseg.ssl.losses._float32 import in_float32


@in_float32
def infonce_queue_loss(q: torch.Tensor, k: torch.Tensor, queue: torch.Tensor, temperature: float,
                       false_negatives: torch.Tensor | None = None, attract: bool = False) -> torch.Tensor:
    """Cross-entropy of the logits [q.k, q.queue^T] / T with the positive at index 0.

    Args:
        q: (B, D) queries (query encoder; gradients flow).
        k: (B, D) keys of the same samples (momentum encoder); detached here.
        queue: (K, D) negatives (past keys); detached here. q, k and the queue are L2-normalised here.
        temperature: > 0.
        false_negatives: optional (B, K) bool (:func:`sslseg.ssl.false_negatives.queue_false_negatives`): queue
            entries left out of the query's softmax or, with ``attract``, counted as further positives (the term is
            then the mean of -log softmax over the positive and them).

    Returns:
        0-d float32: mean over the B local queries. No gather: MoCo's negatives come from the queue, which the caller
        fills with the keys gathered from every process.
    """
    q = F.normalize(q, dim=1)
    k = F.normalize(k.detach(), dim=1)
    queue = F.normalize(queue.detach(), dim=1)
    positive = (q * k).sum(dim=1, keepdim=True)  # (B, 1)
    logits = torch.cat([positive, q @ queue.T], dim=1) / temperature  # (B, 1 + K)
    if false_negatives is None:
        return F.cross_entropy(logits, torch.zeros(q.shape[0], dtype=torch.long, device=q.device))
    # the same per-row form as contrastive_loss's; an all-False mask gives plain InfoNCE
    positives, negatives = logits[:, 0], logits[:, 1:]
    if attract:
        attracted = negatives.masked_fill(~false_negatives, 0.0).sum(dim=1)
        positives = (positives + attracted) / (1 + false_negatives.sum(dim=1))
    else:
        logits = torch.cat([logits[:, :1], negatives.masked_fill(false_negatives, float("-inf"))], dim=1)
    return (torch.logsumexp(logits, dim=1) - positives).mean()
