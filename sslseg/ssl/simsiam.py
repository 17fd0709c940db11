"""SimSiam: one network, a predictor, and a stop-gradient on the other view's projection; no momentum, no negatives.

Chen, He, "Exploring Simple Siamese Representation Learning", CVPR 2021.

Per sample: views v1, v2 (1, S, S, S); z = g(h) (B, proj_dim) with h the mean-pooled ViT tokens (B, hidden) and a
projector ending in a normalisation; p = q(z) (B, proj_dim). Loss (eq. 3): D(p1, stopgrad(z2)) / 2 +
D(p2, stopgrad(z1)) / 2, D = -cos; it lies in [-1, 1] and reaches -1 when the predictor maps each view's projection
onto the other's. The stop-gradient is what prevents collapse (section 4.1), so the embedding std is logged.

Defaults: projector 3 layers 512 -> 128 with a final normalisation (the paper's 2048-wide 3-layer BN head scaled to
3-D batches; LayerNorm for the reasons in :mod:`sslseg.ssl.heads`), predictor bottleneck 128 -> 32 -> 128 (the
paper's 4x bottleneck, section 4.4).
DDP: the loss is taken over the gathered global batch, so 2 processes of batch B equal one of 2B.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from sslseg.ssl.base import StepContext
from sslseg.ssl.heads import predictor, projector
from sslseg.ssl.losses import negative_cosine_loss
from sslseg.ssl.module import MethodModule
from sslseg.ssl.two_view_method import TwoViewMethod, TwoViewOptions


@dataclass(frozen=True)
class SimSiamOptions(TwoViewOptions):
    proj_hidden: int = 512
    proj_dim: int = 128
    pred_hidden: int = 32
    head_norm: str = "layer"


class SimSiamModule(MethodModule):
    def __init__(self, preset, opts: SimSiamOptions) -> None:
        super().__init__(preset)
        self.projector = projector(self.backbone.out_dim, opts.proj_hidden, opts.proj_dim, layers=3,
                                   norm=opts.head_norm, out_norm=True)
        self.predictor = predictor(opts.proj_dim, opts.pred_hidden, norm=opts.head_norm)

    def forward(self, batch: dict, ctx: StepContext):
        n = batch["view1"].shape[0]
        z = self.projector(self.backbone(torch.cat([batch["view1"], batch["view2"]])))  # (2B, proj_dim)
        p = self.predictor(z)
        p1, p2, z1, z2 = (ctx.gather(t) for t in (p[:n], p[n:], z[:n], z[n:]))  # the global batch
        loss = (negative_cosine_loss(p1, z2) + negative_cosine_loss(p2, z1)) / 2
        return self.with_collapse(loss, {"negative_cosine": float(loss.detach())}, z, ctx.step)


class SimSiam(TwoViewMethod):
    name = "simsiam"
    Options = SimSiamOptions

    def build_model(self, preset):
        return SimSiamModule(preset, self.opts)
