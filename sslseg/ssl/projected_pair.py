"""The model side shared by the methods that compare the two views' projections directly (SimCLR, Barlow Twins,
VICReg): one ViT + projector applied to both views; the method's loss takes the two (B, proj_dim) projections."""

from __future__ import annotations

import torch

from sslseg.ssl.heads import projector
from sslseg.ssl.module import MethodModule


class ProjectedPairModule(MethodModule):
    """``opts`` gives ``proj_hidden``, ``proj_dim`` and ``proj_norm``; ``proj_layers`` optional (default 2)."""

    def __init__(self, preset, opts) -> None:
        super().__init__(preset)
        self.projector = projector(self.backbone.out_dim, opts.proj_hidden, opts.proj_dim,
                                   layers=getattr(opts, "proj_layers", 2), norm=opts.proj_norm)

    def projections(self, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
        """(z1, z2), each (B, proj_dim): the projections of ``view1`` and ``view2``, in one pass."""
        n = batch["view1"].shape[0]
        z = self.projector(self.backbone(torch.cat([batch["view1"], batch["view2"]])))  # (2B, proj_dim)
        return z[:n], z[n:]
