"""The model side shared by the momentum methods with a predictor (BYOL, MoCo v3): an online ViT + projector +
predictor, a momentum copy of ViT + projector, and the EMA after each step (solo-learn's ``BaseMomentumMethod``)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from sslseg.ssl.base import StepContext
from sslseg.ssl.heads import predictor, projector
from sslseg.ssl.module import MethodModule
from sslseg.ssl.momentum import cosine_momentum, target_copy, update_momentum
from sslseg.ssl.two_view_method import TwoViewOptions


@dataclass(frozen=True)
class MomentumPairOptions(TwoViewOptions):
    """Heads (LayerNorm: see :mod:`sslseg.ssl.heads`) and the EMA's starting momentum (rising to 1 over the run)."""

    base_momentum: float = 0.99
    proj_hidden: int = 512
    proj_dim: int = 128
    pred_hidden: int = 512
    head_norm: str = "layer"

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 0.0 <= self.base_momentum <= 1.0:
            raise ValueError(f"base_momentum must be in 0..1, got {self.base_momentum}")


class MomentumPairModule(MethodModule):
    def __init__(self, preset, opts: MomentumPairOptions) -> None:
        super().__init__(preset)
        self.projector = projector(self.backbone.out_dim, opts.proj_hidden, opts.proj_dim, norm=opts.head_norm)
        self.predictor = predictor(opts.proj_dim, opts.pred_hidden, norm=opts.head_norm)
        self.target_backbone = target_copy(self.backbone)
        self.target_projector = target_copy(self.projector)
        self.base_momentum = opts.base_momentum

    def online_and_target(self, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
        """(p, z'): predictions of the online network and projections of the target network, each (2B, proj_dim),
        rows 0..B-1 from ``view1``, B..2B-1 from ``view2``."""
        views = torch.cat([batch["view1"], batch["view2"]])  # (2B, 1, S, S, S)
        p = self.predictor(self.projector(self.backbone(views)))
        with torch.no_grad():
            z_target = self.target_projector(self.target_backbone(views))
        return p, z_target

    def after_step(self, ctx: StepContext) -> None:
        momentum = cosine_momentum(ctx.step, ctx.total_steps, self.base_momentum)
        update_momentum(self.backbone, self.target_backbone, momentum)
        update_momentum(self.projector, self.target_projector, momentum)
