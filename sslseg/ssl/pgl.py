"""PGL: BYOL plus a local consistency loss between the tokens of two views that see the same place.

Xie, Zhang, Xia, Shen, Wang, "PGL: Prior-Guided Local Self-supervised Learning for 3D Medical Image Segmentation",
arXiv 2011.12640 (2020): two augmented views of a volume, the spatial transform between them known (the prior);
besides BYOL's global loss, the feature maps' vectors at corresponding positions of the two views are projected,
predicted and pulled together, so the encoder learns features that are consistent *per location* — what a
segmentation decoder reads — and not only per patch.

Here, per sample: two crops of the region (:func:`sslseg.ssl.views3d.cropped_view`: random box, resized to the
patch, own intensity changes) with their boxes ``box1``, ``box2`` (2, 3) in region voxels. Online: tokens
(B, N, hidden) of each view; global: mean-pooled -> projector -> predictor, against the momentum network's pooled
projection (BYOL, symmetric); local: every token -> local projector -> local predictor (B, N, D), against the momentum
network's local projection of the other view *at the same region position*, found through the boxes on the token grid
(:mod:`sslseg.ssl.token_matching`: trilinear between token centres) — only tokens whose centre the other view sees
count. Loss = BYOL(global) + ``local_weight`` * mean over matched tokens of 2 - 2 cos, both directions.

The paper's views also flip and rotate; here the views keep the body's sides (no flips or rotations: see
:mod:`sslseg.ssl.views3d`), so ``flip_axes`` and ``rotate90`` are refused and the transform between the views is
a scaling and a shift per axis. DDP: the local loss is the sum over the gathered batch's matched tokens divided by
their count, so 2 processes equal one.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from sslseg.ssl.base import StepContext
from sslseg.ssl.byol import symmetric_byol_loss
from sslseg.ssl.heads import predictor, projector
from sslseg.ssl.momentum import cosine_momentum, target_copy, update_momentum
from sslseg.ssl.momentum_pair import MomentumPairModule, MomentumPairOptions
from sslseg.ssl.token_matching import match, sample
from sslseg.ssl.two_view_method import TwoViewMethod, patch_edge, second_region
from sslseg.ssl.views3d import cropped_view


@dataclass(frozen=True)
class PGLOptions(MomentumPairOptions):
    local_weight: float = 1.0

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.flip_axes or self.rotate90:
            raise ValueError("PGL matches the views' tokens through their crop boxes only: flip_axes and rotate90 "
                             "are not supported")
        if self.local_weight < 0:
            raise ValueError(f"local_weight must be >= 0, got {self.local_weight}")


def per_token(call, tokens: torch.Tensor) -> torch.Tensor:
    """``call`` (a head) applied to every token: (B, N, in) -> (B, N, out) (flattened so batch norms see tokens)."""
    return call(tokens.flatten(0, 1)).reshape(*tokens.shape[:2], -1)


def matched_token_loss(p: torch.Tensor, z: torch.Tensor, seen: torch.Tensor, ctx: StepContext) -> torch.Tensor:
    """Mean over the gathered batch's seen tokens of 2 - 2 cos(p, z); p, z (B, N, D), seen (B, N) bool; z detached."""
    cost = 2.0 - 2.0 * F.cosine_similarity(p.float(), z.detach().float(), dim=-1, eps=1e-8)  # (B, N)
    sums = ctx.gather((cost * seen).sum(dim=1))
    counts = ctx.gather(seen.sum(dim=1).float())
    return sums.sum() / counts.sum().clamp_min(1.0)


class PGLModule(MomentumPairModule):
    def __init__(self, preset, opts: PGLOptions) -> None:
        super().__init__(preset, opts)
        self.local_projector = projector(self.backbone.out_dim, opts.proj_hidden, opts.proj_dim, norm=opts.head_norm)
        self.local_predictor = predictor(opts.proj_dim, opts.pred_hidden, norm=opts.head_norm)
        self.target_local_projector = target_copy(self.local_projector)
        self.local_weight = opts.local_weight

    def local_loss(self, q: torch.Tensor, z_target: torch.Tensor, batch: dict, ctx: StepContext) -> torch.Tensor:
        """Both directions of the matched-token loss; q, z_target (2B, N, D), view 1's tokens first."""
        n, tokens = batch["box1"].shape[0], q.shape[1]
        grid = round(tokens ** (1 / 3))
        loss = q.new_zeros(())
        for mine, other, boxes_from, boxes_to in ((slice(0, n), slice(n, None), batch["box1"], batch["box2"]),
                                                  (slice(n, None), slice(0, n), batch["box2"], batch["box1"])):
            index, seen = match(boxes_from, boxes_to, grid)
            target_grid = z_target[other].transpose(1, 2).reshape(n, -1, grid, grid, grid)  # (B, D, g, g, g)
            loss = loss + matched_token_loss(q[mine], sample(target_grid, index), seen, ctx)
        return loss

    def forward(self, batch: dict, ctx: StepContext):
        views = torch.cat([batch["view1"], batch["view2"]])  # (2B, 1, S, S, S)
        tokens = self.backbone.tokens(views)  # (2B, N, hidden)
        p = self.predictor(self.projector(tokens.mean(dim=1)))
        q = per_token(lambda t: self.local_predictor(self.local_projector(t)), tokens)
        with torch.no_grad():
            target_tokens = self.target_backbone.tokens(views)
            z_target = self.target_projector(target_tokens.mean(dim=1))
            local_target = per_token(self.target_local_projector, target_tokens)
        global_loss = symmetric_byol_loss(p, z_target, ctx)
        local = self.local_loss(q, local_target, batch, ctx)
        total = global_loss + self.local_weight * local
        return self.with_collapse(total, {"byol": float(global_loss.detach()), "local": float(local.detach())},
                                  p, ctx.step)

    def after_step(self, ctx: StepContext) -> None:
        super().after_step(ctx)
        update_momentum(self.local_projector, self.target_local_projector,
                        cosine_momentum(ctx.step, ctx.total_steps, self.base_momentum))


class PGL(TwoViewMethod):
    name = "pgl"
    Options = PGLOptions

    def make_views(self, region, random_state, partner=None) -> dict:
        """Two views and their crop boxes; the second from ``partner`` when given (the same place, so the boxes
        still match tokens)."""
        size = patch_edge(region.shape[-1], self.opts.region_scale)
        views = {}
        for i in (1, 2):
            view, box = cropped_view(second_region(region, partner, i - 1), random_state, size,
                                     scale=(self.opts.min_crop_volume, 1.0))
            views[f"view{i}"], views[f"box{i}"] = torch.from_numpy(view), torch.from_numpy(box)
        return views

    def build_model(self, preset):
        return PGLModule(preset, self.opts)
