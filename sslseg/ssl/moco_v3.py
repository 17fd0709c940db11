"""MoCo v3: a query network with a predictor contrasts against a momentum network's keys of the other view, over the
global batch; no queue.

Chen, Xie, He, "An Empirical Study of Training Self-Supervised Vision Transformers", ICCV 2021 (Algorithm 1).

Per sample: views v1, v2 (1, S, S, S). Query q = predictor(projector(ViT(v))) (B, proj_dim); key k = the momentum
copy's projector(ViT(v)) (B, proj_dim), no gradient. Loss (symmetric): ctr(q1, k2) + ctr(q2, k1), ctr = the
InfoNCE of each query against the keys of the gathered global batch, times 2T (:func:`sslseg.ssl.losses.moco_v3_loss`).

Defaults: T 0.2 (the paper's ViT setting), base momentum 0.99 rising to 1 (the paper's for short schedules),
projector and predictor 512 -> 128 with LayerNorm (3-D batches of 2-4 patches; see :mod:`sslseg.ssl.heads`).
DDP: the keys are gathered, so 2 processes of batch B compute the loss of one process of batch 2B.
"""

from __future__ import annotations

from dataclasses import dataclass

from sslseg.ssl.base import StepContext
from sslseg.ssl.losses import moco_v3_loss
from sslseg.ssl.momentum_pair import MomentumPairModule, MomentumPairOptions
from sslseg.ssl.two_view_method import TwoViewMethod


@dataclass(frozen=True)
class MoCoV3Options(MomentumPairOptions):
    temperature: float = 0.2

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.temperature > 0:
            raise ValueError(f"temperature must be > 0, got {self.temperature}")


class MoCoV3Module(MomentumPairModule):
    def __init__(self, preset, opts: MoCoV3Options) -> None:
        super().__init__(preset, opts)
        self.temperature = opts.temperature

    def forward(self, batch: dict, ctx: StepContext):
        n = batch["view1"].shape[0]
        q, k = self.online_and_target(batch)
        loss = (moco_v3_loss(q[:n], k[n:], self.temperature, ctx.gather)
                + moco_v3_loss(q[n:], k[:n], self.temperature, ctx.gather))
        return self.with_collapse(loss, {"moco_v3": float(loss.detach())}, q, ctx.step)


class MoCoV3(TwoViewMethod):
    name = "moco-v3"
    Options = MoCoV3Options

    def build_model(self, preset):
        return MoCoV3Module(preset, self.opts)
