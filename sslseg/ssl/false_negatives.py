"""False-negative cancellation for contrastive losses: find the negatives that are really the anchor's own content
(another patch of the same organ, a near-duplicate slab) and stop pushing them away.

Huynh, Kornblith, Walter, Maire, Khademi, "Boosting Contrastive Self-Supervised Learning with False Negative
Cancellation", WACV 2022: besides the two views, each sample gets a *support set* of further views; a negative's
score for an anchor is its similarity to the anchor's support views, aggregated (here: the maximum); the negatives
scoring highest are false negatives, and are either **eliminated** (left out of the anchor's denominator) or
**attracted** (counted as further positives). In medical volumes the batch's patches come from few patients and the
same organs, so false negatives are common (the joint-embedding survey's point); the support views cost one more
forward pass each, without gradient.

Which negatives: score >= ``threshold`` (cosine similarity of normalised projections) and among the anchor's
``top_k`` highest scores (the paper's top-k, capped by a threshold so a batch without duplicates cancels nothing).
Rows and columns: the 2N anchors are the first views' projections then the second views', as in NT-Xent.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

MODES = ("off", "eliminate", "attract")


@dataclass(frozen=True)
class FalseNegativeOptions:
    """The options a contrastive method gains (SimCLR, MoCo v2): mode, support views per sample, threshold, top-k."""

    false_negatives: str = "off"
    support_views: int = 1
    fn_threshold: float = 0.8
    fn_top_k: int = 1


def check_options(opts: FalseNegativeOptions) -> None:
    if opts.false_negatives not in MODES:
        raise ValueError(f"false_negatives must be one of {', '.join(MODES)}, got {opts.false_negatives!r}")
    if opts.support_views < 1:
        raise ValueError(f"support_views must be >= 1, got {opts.support_views}")
    if not -1.0 <= opts.fn_threshold <= 1.0:
        raise ValueError(f"fn_threshold is a cosine similarity in -1..1, got {opts.fn_threshold}")
    if opts.fn_top_k < 1:
        raise ValueError(f"fn_top_k must be >= 1, got {opts.fn_top_k}")


def support_count(opts: FalseNegativeOptions) -> int:
    """How many support views a sample needs (0 when cancellation is off)."""
    return 0 if opts.false_negatives == "off" else opts.support_views


def support_projections(network, batch: dict, count: int) -> torch.Tensor:
    """(B, V, D): ``network`` ((n, 1, S, S, S) -> (n, D)) of each sample's V = ``count`` support views ``view3`` ...,
    in one pass and without gradient."""
    n = batch["view1"].shape[0]
    with torch.no_grad():
        views = torch.cat([batch[f"view{3 + v}"] for v in range(count)])  # (V B, 1, S, S, S), view-major
        return network(views).reshape(count, n, -1).transpose(0, 1)


def false_negative_mask(z1: torch.Tensor, z2: torch.Tensor, support: torch.Tensor, threshold: float,
                        top_k: int) -> torch.Tensor:
    """(2N, 2N) bool: entry (i, j) says row j is a false negative of anchor i.

    Args:
        z1, z2: (N, D) projections of the two views (rows of the global batch); used without gradient.
        support: (N, V, D) projections of each sample's V support views.
        threshold, top_k: the rule in the module docstring.
    """
    n = z1.shape[0]
    rows = F.normalize(torch.cat([z1, z2]).detach().float(), dim=1)  # (2N, D)
    support = F.normalize(support.detach().float(), dim=-1)
    score = torch.einsum("svd,jd->svj", support, rows).amax(dim=1)  # (N, 2N): sample's best support match per row
    score = torch.cat([score, score])  # anchors of the second views share their sample's support set
    sample = torch.arange(2 * n, device=rows.device) % n
    own = sample[:, None] == sample[None, :]  # the anchor itself and its positive are never negatives
    return select(score.masked_fill(own, float("-inf")), threshold, top_k)


def queue_false_negatives(support: torch.Tensor, queue: torch.Tensor, threshold: float, top_k: int) -> torch.Tensor:
    """(N, K) bool: entry (n, m) says queue entry m is a false negative of sample n's queries (MoCo's negatives are
    the queue's keys). ``support`` (N, V, D) the samples' support keys, ``queue`` (K, D)."""
    support = F.normalize(support.detach().float(), dim=-1)
    entries = F.normalize(queue.detach().float(), dim=1)
    return select(torch.einsum("nvd,kd->nvk", support, entries).amax(dim=1), threshold, top_k)


def select(score: torch.Tensor, threshold: float, top_k: int) -> torch.Tensor:
    """bool like ``score`` (anchors, negatives): the ``top_k`` highest of each row that reach ``threshold``
    (-inf marks what is not a negative)."""
    k = min(top_k, score.shape[1])
    top = torch.zeros(score.shape, dtype=torch.bool, device=score.device)
    if k > 0:
        top.scatter_(1, score.topk(k, dim=1).indices, True)
    return top & (score >= threshold)
