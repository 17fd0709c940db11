"""SimCLR: two views, a shared encoder and projector, NT-Xent over the global batch.

Chen, Kornblith, Norouzi, Hinton, "A Simple Framework for Contrastive Learning of Visual Representations", ICML 2020.

Per sample x: views v1, v2 (:mod:`sslseg.ssl.two_view_method`), each (1, S, S, S); h = mean-pooled ViT tokens (B, hidden);
z = g(h) (B, out_dim), g = Linear-ReLU-Linear (the paper's eq. 2, no normalisation layer, so one process equals DDP).
Loss: NT-Xent(gather(z1), gather(z2); T) over the 2N embeddings of the global batch N (every other sample a negative).

Defaults: T 0.1 (the paper's best for large batches is 0.1-0.5; with 2-8 patches per global batch the few negatives
need a sharp temperature), projector 2 layers, hidden 512, output 128 (the paper's output dim).
DDP: the loss is defined on the gathered global batch, so 2 processes of batch B equal 1 process of batch 2B.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from sslseg.ssl.base import StepContext
from sslseg.ssl.contrastive import contrastive_loss
from sslseg.ssl.projected_pair import ProjectedPairModule, ProjectedPairOptions
from sslseg.ssl.two_view_method import TwoViewMethod
from sslseg.training.amp import full_precision


@dataclass(frozen=True)
class SimCLROptions(ProjectedPairOptions):
    temperature: float = 0.1
    proj_hidden: int = 512
    proj_dim: int = 128
    proj_layers: int = 2
    proj_norm: str = "none"

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.temperature > 0:
            raise ValueError(f"temperature must be > 0, got {self.temperature}")


class SimCLRModule(ProjectedPairModule):
    def __init__(self, preset, opts: SimCLROptions) -> None:
        super().__init__(preset, opts)
        self.temperature = opts.temperature

    def forward(self, batch: dict, ctx: StepContext):
        z1, z2 = self.projections(batch)
        with full_precision(z1):
            z1, z2 = ctx.gather(z1.float()), ctx.gather(z2.float())
            loss = contrastive_loss(z1, z2, self.temperature)
        return self.with_collapse(loss, {"ntxent": float(loss.detach())}, torch.cat([z1, z2]), ctx.step)


class SimCLR(TwoViewMethod):
    name = "simclr"
    Options = SimCLROptions

    def build_model(self, preset):
        return SimCLRModule(preset, self.opts)
