"""VICReg: the two views' projections are made equal (invariance) while each keeps its variance per dimension and
its dimensions decorrelated.

Bardes, Ponce, LeCun, "VICReg: Variance-Invariance-Covariance Regularization for Self-Supervised Learning", ICLR 2022.

Per sample: views v1, v2 (1, S, S, S); z = projector(mean-pooled ViT tokens) (B, proj_dim). Loss over the gathered
global batch: 25 * MSE(z1, z2) + 25 * (v(z1) + v(z2)) / 2 + 1 * (c(z1) + c(z2)), v = mean hinge of the per-dimension
std below 1, c = the squared off-diagonal covariance / D (:func:`sslseg.ssl.losses.vicreg_loss`).

Defaults: the paper's weights 25 / 25 / 1; projector 3 layers 1024 -> 1024 (the paper's 8192 is for batches of
hundreds; see :mod:`sslseg.ssl.barlow_twins`). The variance needs at least 2 samples in the global batch.
"""

from __future__ import annotations

from dataclasses import dataclass

from sslseg.ssl.base import StepContext
from sslseg.ssl.losses import vicreg_loss
from sslseg.ssl.projected_pair import ProjectedPairModule, ProjectedPairOptions
from sslseg.ssl.two_view_method import TwoViewMethod


@dataclass(frozen=True)
class VICRegOptions(ProjectedPairOptions):
    sim_weight: float = 25.0
    var_weight: float = 25.0
    cov_weight: float = 1.0


class VICRegModule(ProjectedPairModule):
    min_batch = 2  # batch statistics

    def __init__(self, preset, opts: VICRegOptions) -> None:
        super().__init__(preset, opts)
        self.weights = (opts.sim_weight, opts.var_weight, opts.cov_weight)

    def forward(self, batch: dict, ctx: StepContext):
        z1, z2 = self.projections(batch)
        loss = vicreg_loss(z1, z2, *self.weights, gather=ctx.gather)
        return self.with_collapse(loss, {"vicreg": float(loss.detach())}, z1, ctx.step)


class VICReg(TwoViewMethod):
    name = "vicreg"
    Options = VICRegOptions

    def build_model(self, preset):
        return VICRegModule(preset, self.opts)
