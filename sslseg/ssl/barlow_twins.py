"""Barlow Twins: the cross-correlation of the two views' batch-standardised projections is pushed to the identity.

Zbontar, Jing, Misra, LeCun, Deny, "Barlow Twins: Self-Supervised Learning via Redundancy Reduction", ICML 2021.

Per sample: views v1, v2 (1, S, S, S); z = projector(mean-pooled ViT tokens) (B, proj_dim). Loss: C = BN(z1)^T
BN(z2) / N over the gathered global batch (D, D); sum_i (1 - C_ii)^2 + lambda * sum_{i != j} C_ij^2
(:func:`sslseg.ssl.losses.barlow_twins_loss`).

Defaults: lambda 5e-3 (the paper's), projector 3 layers 1024 -> 1024 (the paper's 8192-wide head needs batches of
hundreds to estimate an 8192^2 correlation; ours hold a few patches per step, so the head is narrower).
DDP: the batch statistics are those of the global batch, so 2 processes of batch B equal one of 2B.
"""

from __future__ import annotations

from dataclasses import dataclass

from sslseg.ssl.base import StepContext
from sslseg.ssl.losses import barlow_twins_loss
from sslseg.ssl.projected_pair import ProjectedPairModule, ProjectedPairOptions
from sslseg.ssl.two_view_method import TwoViewMethod


@dataclass(frozen=True)
class BarlowTwinsOptions(ProjectedPairOptions):
    lambda_offdiag: float = 5e-3


class BarlowTwinsModule(ProjectedPairModule):
    min_batch = 2  # batch statistics

    def __init__(self, preset, opts: BarlowTwinsOptions) -> None:
        super().__init__(preset, opts)
        self.lambda_offdiag = opts.lambda_offdiag

    def forward(self, batch: dict, ctx: StepContext):
        z1, z2 = self.projections(batch)
        loss = barlow_twins_loss(z1, z2, self.lambda_offdiag, ctx.gather)
        return self.with_collapse(loss, {"barlow_twins": float(loss.detach())}, z1, ctx.step)


class BarlowTwins(TwoViewMethod):
    name = "barlow-twins"
    Options = BarlowTwinsOptions

    def build_model(self, preset):
        return BarlowTwinsModule(preset, self.opts)
