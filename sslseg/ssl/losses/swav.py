"""SwAV: Sinkhorn-Knopp codes of some crops predicted from every other crop (swapped prediction, multi-crop).

Caron, Misra, Mairal, Goyal, Bojanowski, Joulin, "Unsupervised Learning of Visual Features by Contrasting Cluster
Assignments", NeurIPS 2020 (eq. 1-3, Algorithm 1) and the authors' ``main_swav.py`` (distributed Sinkhorn,
``crops_for_assign``, the queue); epsilon 0.05, 3 iterations, temperature 0.1.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from sslseg.ssl.losses._float32 import identity, in_float32


@torch.no_grad()
@in_float32
def sinkhorn(scores: torch.Tensor, epsilon: float = 0.05, iterations: int = 3, gather=None) -> torch.Tensor:
    """Soft equipartitioned codes Q of prototype scores (no gradient).

    Args:
        scores: (B, K) scores of B embeddings against K prototypes (cosines).
        epsilon: entropy regularisation (the exponent's temperature).
        iterations: alternating normalisations (prototypes to total mass 1/K, samples to 1/B).
        gather: (B, K) -> (B_global, K) (DDP); identity when None.

    Returns:
        (B_global, K) float32 codes of the gathered batch, rows in gather order: each row sums to 1 and every prototype
        receives B_global / K in total (after the last iteration only approximately). exp is shifted by the global
        maximum (it cancels in the first normalisation), so a small epsilon cannot overflow.
    """
    scores = gather(scores) if gather is not None else scores
    q = torch.exp((scores - scores.max()) / epsilon).T  # (K, B)
    prototypes, samples = q.shape
    q = q / q.sum()
    for _ in range(iterations):
        q = q / q.sum(dim=1, keepdim=True) / prototypes
        q = q / q.sum(dim=0, keepdim=True) / samples
    return (q * samples).T


def _codes(scores, queue, epsilon, iterations, gather):
    """Codes (B_global, K) of a crop's (B, K) scores; this process's (Q, K) queue scores join the Sinkhorn batch
    (one chunk of Q + B rows per process after the gather) and are then dropped."""
    if queue is None:
        return sinkhorn(scores, epsilon, iterations, gather)
    codes = sinkhorn(torch.cat([queue, scores]), epsilon, iterations, gather)  # (W (Q + B), K)
    chunks = codes.view(-1, queue.shape[0] + scores.shape[0], codes.shape[1])
    return chunks[:, queue.shape[0]:].reshape(-1, codes.shape[1])


@in_float32
def swav_loss(scores_per_crop: list[torch.Tensor], assign_from: list[int], temperature: float = 0.1,
              epsilon: float = 0.05, iterations: int = 3, gather=None,
              queue_scores: list[torch.Tensor] | None = None) -> torch.Tensor:
    """Swapped prediction: for each crop i in ``assign_from``, its codes q_i are predicted from every other crop v by
    the cross-entropy -sum_k q_ik log softmax(s_v / T)_k.

    Args:
        scores_per_crop: V tensors (B, K_protos): normalised embeddings of crop v times the normalised prototypes
            (global crops first, then local crops: any order, the crops only need to be the same B samples).
        assign_from: indices of the crops whose codes are targets (the paper: the two global crops, [0, 1]).
        temperature: of the predicted softmax; epsilon, iterations: of :func:`sinkhorn`.
        gather: (B, K) -> (B_global, K) (DDP); identity when None. The codes are computed over the global batch (the
            authors' distributed Sinkhorn) and so is the cross-entropy: every process holds the one-process value.
        queue_scores: optional, one (Q, K) per entry of ``assign_from``: this process's queue of past embeddings
            scored against the current prototypes; they join the Sinkhorn batch only (the authors' queue).

    Returns:
        0-d float32: mean over ``assign_from`` of the mean over the V - 1 other crops of the cross-entropy, averaged
        over the global batch.
    """
    if len(scores_per_crop) < 2 or not assign_from:
        raise ValueError("SwAV needs at least 2 crops and one crop to assign codes from")
    gathered = [(gather or identity)(s) for s in scores_per_crop]
    loss = gathered[0].new_zeros(())
    for position, i in enumerate(assign_from):
        queue = None if queue_scores is None else queue_scores[position].detach()
        codes = _codes(scores_per_crop[i].detach(), queue, epsilon, iterations, gather)
        others = [v for v in range(len(gathered)) if v != i]
        for v in others:
            loss = loss - (codes * F.log_softmax(gathered[v] / temperature, dim=1)).sum(dim=1).mean() / len(others)
    return loss / len(assign_from)
