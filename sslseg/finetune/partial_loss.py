"""DiceCE for partial annotations: only annotated voxels count, and organs a case does not annotate are marginalised.

The marginal loss of Shi, Miao, Xu, Chen and Zhang, "Marginal loss and exclusion loss for partially supervised
multi-organ segmentation" (Medical Image Analysis 70, 2021): for a case that annotates only the organs A, a voxel
labelled background there may be background or any organ outside A, so the probabilities of background and of every
organ outside A are summed into one "merged background" before the loss. Predicting an unannotated organ in that
case's background therefore costs nothing, while the organs of A are learned as usual; the union of the cases teaches
every organ. Both terms are marginal: the cross-entropy of the merged distribution and the Dice of the merged
background and of each organ of A (organs outside A have no Dice term in that case).

Voxels outside the annotated mask (undrawn slices) count in neither term. With every voxel and every organ annotated
this is exactly MONAI's ``DiceCELoss(to_onehot_y=True, softmax=True)`` (cross-entropy averaged over the voxels of the
batch, Dice per crop and channel with smoothing 1e-5, averaged); a test holds the two equal.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

SMOOTH = 1e-5

DESCRIPTION = ("DiceCE on annotated voxels, marginal over unannotated organs (Shi et al., MedIA 2021); equal to "
               "monai DiceCELoss(to_onehot_y=True, softmax=True) on fully annotated cases")


def merged_log_probabilities(logits: torch.Tensor, organs: torch.Tensor) -> torch.Tensor:
    """Log-probabilities with background merged with the unannotated organs.

    Args:
        logits: (B, C, X, Y, Z), channel 0 background.
        organs: (B, C) bool, True where the crop's case annotates the channel (channel 0 is always annotated).
    Returns:
        (B, C, X, Y, Z): channel 0 = log(p_background + sum of p over unannotated organs); annotated organs their own
        log p; unannotated organs their own log p (never a target, and left out of the Dice).
    """
    log_p = F.log_softmax(logits, dim=1)
    into_background = ~organs
    into_background[:, 0] = True
    hidden = ~into_background[:, :, None, None, None].expand_as(log_p)
    merged = torch.logsumexp(log_p.masked_fill(hidden, float("-inf")), dim=1, keepdim=True)
    return torch.cat([merged, log_p[:, 1:]], dim=1)


def partial_dice_ce(logits: torch.Tensor, labels: torch.Tensor, annotated: torch.Tensor | None = None,
                    organs: torch.Tensor | None = None) -> torch.Tensor:
    """Marginal DiceCE over the annotated voxels.

    Args:
        logits: (B, C, X, Y, Z) float.
        labels: (B, 1, X, Y, Z) integer in 0..C-1 (an unannotated organ never appears: its voxels are background).
        annotated: (B, 1, X, Y, Z) bool/0-1, the voxels that count; None = all.
        organs: (B, C) bool, the channels each crop's case annotates; None = all.
    Returns:
        scalar: cross-entropy + Dice loss.
    """
    batch, channels = logits.shape[:2]
    logits = logits.float()
    if organs is None:
        organs = torch.ones(batch, channels, dtype=torch.bool, device=logits.device)
    organs = organs.to(device=logits.device, dtype=torch.bool).clone()
    organs[:, 0] = True
    weight = (torch.ones_like(logits[:, :1]) if annotated is None
              else annotated.to(device=logits.device, dtype=logits.dtype))
    log_q = merged_log_probabilities(logits, organs)
    target = labels.long()
    nll = -log_q.gather(1, target)
    cross_entropy = (nll * weight).sum() / weight.sum().clamp_min(1.0)
    probabilities = log_q.exp() * weight
    one_hot = F.one_hot(target[:, 0], channels).movedim(-1, 1).to(logits.dtype) * weight
    spatial = tuple(range(2, logits.ndim))
    intersection = (probabilities * one_hot).sum(spatial)
    denominator = probabilities.sum(spatial) + one_hot.sum(spatial)
    dice = 1.0 - (2.0 * intersection + SMOOTH) / (denominator + SMOOTH)  # (B, C)
    counted = organs.to(logits.dtype)
    return cross_entropy + (dice * counted).sum() / counted.sum()
