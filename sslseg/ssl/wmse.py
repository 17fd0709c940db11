"""W-MSE: k views' projections are whitened over the batch, then the MSE of their L2-normalised positives is
minimised; whitening scatters the batch over the sphere, so no negatives are needed.

Ermolov, Siarohin, Sangineto, Sebe, "Whitening for Self-Supervised Representation Learning", ICML 2021 (eq. 5-7,
Algorithm 1) and the authors' code (github.com/htdt/self-supervised, ``methods/wmse.py``).

Per sample: k views v1..vk (1, S, S, S) (:class:`sslseg.ssl.two_view_method.TwoViewMethod`: k random resized 3-D crops);
z = projector(mean-pooled ViT tokens) (B, proj_dim) per view, all views in one pass. Loss over the gathered global
batch N: each view's (N, proj_dim) embeddings are whitened (Cholesky of the shrunk covariance
(1 - eps) Cov + eps I), and the loss is the mean over the k (k - 1) / 2 view pairs of mean_n (2 - 2 cos) of the
whitened embeddings (:func:`sslseg.ssl.losses.wmse_loss`).

Defaults and the deviation from the paper:
    * views 2 (the paper's W-MSE 2; it also reports k = 4, ``--method-option views=4``);
    * projector 2 layers 1024 -> 64 (the paper's CIFAR head: 1024 hidden, 64 out; LayerNorm instead of its
      BatchNorm, see :mod:`sslseg.ssl.heads`);
    * whitening over the whole gathered global batch (``whitening_size`` 0) with covariance shrinkage ``eps`` 0.1.
      The paper whitens sub-batches of 128 > D = 64 embeddings with eps 0, a full-rank covariance. A 3-D global
      batch holds 2-8 patches, so the covariance of N embeddings has rank N - 1 < D and Cholesky fails without
      shrinkage: eps > 0 makes it positive definite, and whitening then equalises the N - 1 directions the batch
      spans (scaled by 1 / sqrt((1 - eps) lambda + eps)) instead of all D. This is the deviation: the loss still
      centres the batch and spreads it over the directions it spans (a collapsed batch scores 2, the worst), but
      it cannot decorrelate more dimensions than the batch has samples. With batches of more than D patches
      (GPUs), set ``whitening_size`` (a divisor of the global batch, > D) and ``eps`` 0 for the paper's loss.
The loss needs at least 2 samples in the global batch.
DDP: the whitening uses the gathered global batch, so 2 processes of batch B equal one of 2B.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from sslseg.ssl.base import StepContext
from sslseg.ssl.heads import projector
from sslseg.ssl.losses import wmse_loss
from sslseg.ssl.module import MethodModule
from sslseg.ssl.two_view_method import TwoViewMethod, TwoViewOptions


@dataclass(frozen=True)
class WMSEOptions(TwoViewOptions):
    views: int = 2
    proj_hidden: int = 1024
    proj_dim: int = 64
    proj_norm: str = "layer"
    whitening_size: int = 0
    eps: float = 0.1

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.views < 2:
            raise ValueError(f"views must be >= 2, got {self.views}")
        if self.whitening_size < 0 or self.whitening_size == 1:
            raise ValueError(f"whitening_size must be 0 (the global batch) or >= 2, got {self.whitening_size}")
        if not 0.0 <= self.eps < 1.0:
            raise ValueError(f"eps must be in [0, 1), got {self.eps}")


class WMSEModule(MethodModule):
    min_batch = 2  # whitening needs a covariance

    def __init__(self, preset, opts: WMSEOptions) -> None:
        super().__init__(preset)
        self.projector = projector(self.backbone.out_dim, opts.proj_hidden, opts.proj_dim, norm=opts.proj_norm)
        self.views, self.whitening_size, self.eps = opts.views, opts.whitening_size, opts.eps

    def forward(self, batch: dict, ctx: StepContext):
        n = batch["view1"].shape[0]
        views = torch.cat([batch[f"view{i + 1}"] for i in range(self.views)])  # (k B, 1, S, S, S)
        z = self.projector(self.backbone(views))
        z_views = [ctx.gather(chunk) for chunk in z.split(n)]  # k tensors (N, proj_dim)
        loss = wmse_loss(z_views, self.whitening_size or z_views[0].shape[0], self.eps)
        return self.with_collapse(loss, {"wmse": float(loss.detach())}, z[:n], ctx.step)


class WMSE(TwoViewMethod):
    name = "w-mse"
    Options = WMSEOptions

    def view_count(self) -> int:
        return self.opts.views

    def build_model(self, preset):
        return WMSEModule(preset, self.opts)
