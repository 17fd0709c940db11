"""The model side shared by the methods that compare the two views' projections directly (SimCLR, Barlow Twins,
VICReg): one ViT + projector applied to both views; the method's loss takes the two (B, proj_dim) projections."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from sslseg.ssl.heads import projector
from sslseg.ssl.module import MethodModule
from sslseg.ssl.two_view_method import TwoViewOptions


@dataclass(frozen=True)
class ProjectedPairOptions(TwoViewOptions):
    """The projector: 3 layers 1024 -> 1024 (Barlow Twins' and VICReg's shape at a width 3-D batches support)."""

    proj_hidden: int = 1024
    proj_dim: int = 1024
    proj_layers: int = 3
    proj_norm: str = "layer"


class ProjectedPairModule(MethodModule):
    def __init__(self, preset, opts: ProjectedPairOptions) -> None:
        super().__init__(preset)
        self.projector = projector(self.backbone.out_dim, opts.proj_hidden, opts.proj_dim, layers=opts.proj_layers,
                                   norm=opts.proj_norm)

    def projections(self, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
        """(z1, z2), each (B, proj_dim): the projections of ``view1`` and ``view2``, in one pass."""
        n = batch["view1"].shape[0]
        z = self.projector(self.backbone(torch.cat([batch["view1"], batch["view2"]])))  # (2B, proj_dim)
        return z[:n], z[n:]
