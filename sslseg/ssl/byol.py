"""BYOL: an online network predicts a momentum (target) network's projection of the other view; no negatives.

Grill et al., "Bootstrap Your Own Latent: A New Approach to Self-Supervised Learning", NeurIPS 2020.

Per sample: views v1, v2 (1, S, S, S). Online: h = mean-pooled ViT tokens (B, hidden), z = g(h) (B, proj_dim),
p = q(z) (B, proj_dim). Target: the momentum copy of ViT + g gives z' (B, proj_dim), no gradient. Loss (symmetric,
eq. 2 and L + L~): byol(p1, z'2) + byol(p2, z'1), byol = 2 - 2 cos. After each optimiser step the target follows
the online ViT + g by EMA, momentum rising from ``base_momentum`` to 1 on a cosine over the run.

Defaults: base momentum 0.99 (the paper's 0.996 is for 300-1000 epochs; our runs are far shorter), projector and
predictor 512 -> 128 with LayerNorm (:mod:`sslseg.ssl.heads`: BatchNorm over 2-4 patches is degenerate; BYOL works
without batch statistics, Richemond et al. 2020).
DDP: the loss is taken over the gathered global batch, so 2 processes of batch B equal one of 2B.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from sslseg.ssl.base import StepContext
from sslseg.ssl.losses import byol_loss
from sslseg.ssl.momentum_pair import MomentumPairModule, MomentumPairOptions
from sslseg.ssl.two_view_method import TwoViewMethod


@dataclass(frozen=True)
class BYOLOptions(MomentumPairOptions):
    """The momentum pair's options, defaults as stated in the module docstring."""


def symmetric_byol_loss(p: torch.Tensor, z_target: torch.Tensor, ctx: StepContext) -> torch.Tensor:
    """byol(p1, z'2) + byol(p2, z'1) over the gathered global batch; p, z_target (2B, D), view 1's rows first."""
    n = p.shape[0] // 2
    p1, p2, z1, z2 = (ctx.gather(t) for t in (p[:n], p[n:], z_target[:n], z_target[n:]))
    return byol_loss(p1, z2) + byol_loss(p2, z1)


class BYOLModule(MomentumPairModule):
    def forward(self, batch: dict, ctx: StepContext):
        p, z_target = self.online_and_target(batch)
        loss = symmetric_byol_loss(p, z_target, ctx)
        return self.with_collapse(loss, {"byol": float(loss.detach())}, p, ctx.step)


class BYOL(TwoViewMethod):
    name = "byol"
    Options = BYOLOptions

    def build_model(self, preset):
        return BYOLModule(preset, self.opts)
