"""Overflow-free contrastive (NT-Xent) loss, numerically the same as MONAI's ``ContrastiveLoss``.

Chen et al., "A Simple Framework for Contrastive Learning of Visual Representations", ICML 2020.

MONAI 1.6 computes ``exp(sim / T)`` directly; a cosine similarity of 1 overflows float32 (max e^88.7) as soon as
T < 1/88.7 = 0.0113, so the 0.005 of the MONAI tutorial's README gives inf/inf = NaN on realistic inputs. The same
loss written with ``logsumexp`` subtracts the row maximum first and is finite for every T > 0.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

#: Below this temperature ``exp(1 / T)`` overflows float32 in MONAI's formulation.
MONAI_OVERFLOW_TEMPERATURE = 1.0 / 88.72


def contrastive_loss(a: torch.Tensor, b: torch.Tensor, temperature: float, false_negatives: torch.Tensor | None = None,
                     attract: bool = False) -> torch.Tensor:
    """NT-Xent loss between two batches of paired features, computed in float32.

    Args:
        a, b: (B, F) features; row n of ``a`` and row n of ``b`` are two views of the same sample, every other row of
            either batch is a negative. With B = 1 there are no negatives and the loss is 0.
        temperature: > 0.
        false_negatives: optional (2B, 2B) bool (rows: ``a`` then ``b``; :mod:`sslseg.ssl.false_negatives`):
            negatives that are not, left out of the row's denominator or, with ``attract``, counted as positives.

    Returns:
        0-d tensor: mean over the 2B rows of ``-log(exp(s_pos / T) / sum_{k != i} exp(s_ik / T))``, with s the
        cosine similarity — MONAI's ``ContrastiveLoss`` exactly, including the positive in the denominator. With
        ``attract``, row i's term is the mean of that over its positive and its false negatives F_i (Huynh et al.
        2022, eq. 4); when eliminating, k runs over the row's other entries except F_i.
    """
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    batch = a.shape[0]
    with torch.autocast(device_type=a.device.type, enabled=False):
        features = F.normalize(torch.cat([a, b], dim=0).float(), dim=1, eps=1e-8)  # (2B, F)
        logits = features @ features.T / temperature  # (2B, 2B)
    self_mask = torch.eye(2 * batch, dtype=torch.bool, device=a.device)
    logits = logits.masked_fill(self_mask, float("-inf"))
    positive_index = torch.cat([torch.arange(batch, 2 * batch), torch.arange(0, batch)]).to(a.device)
    positives = logits[torch.arange(2 * batch, device=a.device), positive_index]  # (2B,)
    if false_negatives is not None:  # an all-False mask changes nothing (and costs no device sync to check)
        if attract:
            positives = ((positives + logits.masked_fill(~false_negatives, 0.0).sum(dim=1))
                         / (1 + false_negatives.sum(dim=1)))
        else:
            logits = logits.masked_fill(false_negatives, float("-inf"))
    return (torch.logsumexp(logits, dim=1) - positives).mean()
