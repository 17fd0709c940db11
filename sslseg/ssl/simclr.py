"""SimCLR: two views, a shared encoder and projector, NT-Xent over the global batch.

Chen, Kornblith, Norouzi, Hinton, "A Simple Framework for Contrastive Learning of Visual Representations", ICML 2020.

Per sample x: views v1, v2 (:mod:`sslseg.ssl.two_view_method`), each (1, S, S, S); h = mean-pooled ViT tokens (B, hidden);
z = g(h) (B, out_dim), g = Linear-ReLU-Linear (the paper's eq. 2, no normalisation layer, so one process equals DDP).
Loss: NT-Xent(gather(z1), gather(z2); T) over the 2N embeddings of the global batch N (every other sample a negative).

False negatives (``--method-option false_negatives=eliminate`` or ``attract``, :mod:`sslseg.ssl.false_negatives`):
each sample brings ``support_views`` more views (``view3`` ...), projected without gradient; the negatives most like
an anchor's support views (cosine >= ``fn_threshold``, at most ``fn_top_k`` per anchor, over the global batch) leave
its denominator or join its positives.

Defaults: T 0.1 (the paper's best for large batches is 0.1-0.5; with 2-8 patches per global batch the few negatives
need a sharp temperature), projector 2 layers, hidden 512, output 128 (the paper's output dim).
DDP: the loss is defined on the gathered global batch, so 2 processes of batch B equal 1 process of batch 2B.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from sslseg.ssl.base import StepContext
from sslseg.ssl.contrastive import contrastive_loss
from sslseg.ssl.false_negatives import (FalseNegativeOptions, check_options, false_negative_mask, support_count,
                                        support_projections)
from sslseg.ssl.projected_pair import ProjectedPairModule, ProjectedPairOptions
from sslseg.ssl.two_view_method import TwoViewMethod
from sslseg.training.amp import full_precision


@dataclass(frozen=True)
class SimCLROptions(ProjectedPairOptions, FalseNegativeOptions):
    temperature: float = 0.1
    proj_hidden: int = 512
    proj_dim: int = 128
    proj_layers: int = 2
    proj_norm: str = "none"

    def __post_init__(self) -> None:
        super().__post_init__()
        check_options(self)
        if not self.temperature > 0:
            raise ValueError(f"temperature must be > 0, got {self.temperature}")


class SimCLRModule(ProjectedPairModule):
    def __init__(self, preset, opts: SimCLROptions) -> None:
        super().__init__(preset, opts)
        self.temperature = opts.temperature
        self.opts = opts

    def support_projections(self, batch: dict) -> torch.Tensor | None:
        """(B, V, proj_dim) projections of the support views ``view3`` ... (no gradient); None without any."""
        count = support_count(self.opts)
        if not count:
            return None
        return support_projections(lambda views: self.projector(self.backbone(views)), batch, count)

    def forward(self, batch: dict, ctx: StepContext):
        z1, z2 = self.projections(batch)
        support = self.support_projections(batch)
        parts = {}
        with full_precision(z1):
            z1, z2 = ctx.gather(z1.float()), ctx.gather(z2.float())
            found = None
            if support is not None:
                found = false_negative_mask(z1, z2, ctx.gather(support.float().contiguous()),
                                            self.opts.fn_threshold, self.opts.fn_top_k)
                parts["false_negatives"] = float(found.sum(dim=1).float().mean())  # per anchor
            loss = contrastive_loss(z1, z2, self.temperature, found, self.opts.false_negatives == "attract")
        return self.with_collapse(loss, {"ntxent": float(loss.detach()), **parts}, torch.cat([z1, z2]), ctx.step)


class SimCLR(TwoViewMethod):
    name = "simclr"
    Options = SimCLROptions

    def view_count(self) -> int:
        """The two views, plus the support views of false-negative cancellation."""
        return 2 + support_count(self.opts)

    def build_model(self, preset):
        return SimCLRModule(preset, self.opts)
