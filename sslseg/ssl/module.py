"""The model side of a joint-embedding method: a ``torch.nn.Module`` that computes a step's whole loss.

``forward(batch, ctx) -> LossOutput`` runs every network the loss needs (online and target) in one call, so under DDP
there is one forward per backward. The loop then calls ``after_step(ctx)`` (EMA, queue), builds the optimiser from
``param_groups(lr, weight_decay)`` and validates with ``validation_loss(batch)``; fine-tuning gets
``encoder_state()``.

Collapse visibility: :func:`collapse_parts` adds, to every step's logged parts, the standard deviation of the
L2-normalised embeddings (times sqrt(D), so about 1 when they spread over the sphere and 0 when every sample maps to
the same point; Chen & He 2021, SimSiam, section 4.1) and their effective rank (Roy & Vetterli 2007: exp of the entropy
of the normalised singular values; 1 when they lie on a line). When they collapse, a warning is logged once and
handed to the loop in the step's ``LossOutput.warning`` (a ``warning`` event).
"""

from __future__ import annotations

import logging
import math

import torch
import torch.nn.functional as F

from sslseg.ssl.backbone import ViTBackbone
from sslseg.ssl.base import LossOutput, StepContext
from sslseg.ssl.heads import has_no_weight_decay

log = logging.getLogger(__name__)

#: No collapse warning during the first steps: a fresh ViT's pooled features are nearly equal for every input.
COLLAPSE_GRACE_STEPS = 100
#: Below this the embeddings are reported as collapsed (the effective rank is only logged: with N embeddings it is
#: at most N - 1, so a batch of 2 cannot tell).
COLLAPSED_STD = 0.05
#: The collapse measures in every step's parts (recorded per reported step and plotted beside the loss).
COLLAPSE_MEASURES = ("embedding_std", "effective_rank")


@torch.no_grad()
def collapse_parts(z: torch.Tensor) -> dict[str, float]:
    """``embedding_std`` and ``effective_rank`` of embeddings (N, D) (see the module docstring)."""
    z = F.normalize(z.detach().float(), dim=1)
    std = float(z.std(dim=0).mean() * math.sqrt(z.shape[1])) if z.shape[0] > 1 else float("nan")
    singular = torch.linalg.svdvals(z - z.mean(dim=0, keepdim=True))
    p = singular / singular.sum().clamp_min(1e-12)
    entropy = -(p * torch.log(p.clamp_min(1e-12))).sum()
    return {"embedding_std": std, "effective_rank": float(torch.exp(entropy))}


class MethodModule(torch.nn.Module):
    """A backbone (:class:`ViTBackbone`) plus the method's heads. Subclasses implement :meth:`forward`."""

    def __init__(self, preset) -> None:
        super().__init__()
        self.backbone = ViTBackbone(preset)
        self._warned_collapse = False

    def forward(self, batch: dict, ctx: StepContext) -> LossOutput:  # pragma: no cover - abstract
        raise NotImplementedError

    def after_step(self, ctx: StepContext) -> None:
        """After each optimiser step (default: nothing)."""

    def param_groups(self, lr: float, weight_decay: float) -> list[dict]:
        """Two groups: weights with ``weight_decay``, biases / norms / position embeddings without (as BYOL, MoCo v3,
        solo-learn's ``exclude_bias_n_norm``). Each group may set its own ``lr`` (e.g. SimSiam's fixed-lr predictor)."""
        decay, no_decay = [], []
        for name, parameter in self.named_parameters():
            if parameter.requires_grad:
                (no_decay if has_no_weight_decay(name, parameter) else decay).append(parameter)
        return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]

    #: Fewest samples a batch's loss is defined on (losses with batch statistics need 2).
    min_batch = 1

    def validation_loss(self, batch: dict) -> torch.Tensor:
        """(B,) the training loss of the batch, repeated per sample (no momentum or queue update); (0,) — not
        scored — for a batch smaller than :attr:`min_batch` (e.g. one process's shard of one patch under DDP)."""
        batch_size = next(v for v in batch.values() if torch.is_tensor(v)).shape[0]
        if batch_size < self.min_batch:
            return torch.zeros(0)
        output = self(batch, StepContext())
        return output.total.detach().float().expand(batch_size)

    def encoder_state(self) -> dict:
        return self.backbone.encoder_state()

    def with_collapse(self, total: torch.Tensor, parts: dict, embeddings: torch.Tensor, step: int) -> LossOutput:
        """``LossOutput`` with the collapse measures of ``embeddings`` (N, D) added; on collapse (once) a log line and
        the output's ``warning``, which the training loop turns into a ``warning`` event."""
        measures = collapse_parts(embeddings)
        warning = None
        if (self.training and not self._warned_collapse and step >= COLLAPSE_GRACE_STEPS
                and measures["embedding_std"] < COLLAPSED_STD):
            self._warned_collapse = True
            warning = collapse_warning(step, measures)
            log.warning("%s; %s", *warning)
        return LossOutput(total, {**parts, **measures}, warning)


def collapse_warning(step: int, measures: dict) -> tuple[str, str]:
    """(message, hint) of a collapse at ``step``: what happened and what to do."""
    message = (f"the embeddings collapsed at step {step} (embedding std {measures['embedding_std']:.3g} < "
               f"{COLLAPSED_STD:g}, effective rank {measures['effective_rank']:.3g}): the method is learning a "
               "constant and the encoder will not be useful")
    hint = ("stop the run and start it again with a lower --lr (or more --warmup-steps), other method options "
            "(--method-option), or another --method")
    return message, hint
