"""MoCo v2: a query network contrasts each view against a momentum network's key of the other view and a queue of
past keys.

He, Fan, Wu, Xie, Girshick, "Momentum Contrast for Unsupervised Visual Representation Learning", CVPR 2020
(Algorithm 1); Chen, Fan, Girshick, He, "Improved Baselines with Momentum Contrastive Learning", arXiv 2003.04297
(MoCo v2: an MLP head, T = 0.2, stronger augmentation).

Per sample: views v1, v2 (1, S, S, S). Query q = projector(ViT(v)) (B, proj_dim), projector Linear-ReLU-Linear (the
paper's MLP head, no normalisation, no predictor); key k = the momentum copy's projector(ViT(v)) (B, proj_dim), no
gradient. Queue: K past keys (K, proj_dim), L2-normalised (:class:`sslseg.ssl.queue.FeatureQueue`, a buffer, so it is
in the ``state_dict``: checkpoints hold it and a resume is bit-identical). Loss, symmetrised:
(InfoNCE(q1, k2, queue) + InfoNCE(q2, k1, queue)) / 2, each the cross-entropy of [q.k, q.queue^T] / T with the
positive first (:func:`sslseg.ssl.losses.infonce_queue_loss`), over the gathered global batch. After each optimiser
step the key network follows by EMA, and the step's keys of both views (view1 rows then view2 rows of the global
batch) replace the oldest queue entries. Validation computes the same loss and updates nothing.

Defaults and why:
    * temperature 0.2 (MoCo v2's);
    * symmetric loss (the paper's loss is asymmetric, one query view and one key view per sample; the symmetric form is
      MoCo v3's and solo-learn's ``mocov2plus``): with 2-4 patches per step every sample gives two query/key pairs
      instead of one for the cost of the second key pass; halved so the value stays on the paper's scale
      (chance = log(K + 1));
    * constant momentum 0.99 (the paper's constant 0.999 is for 800 epochs of 256-image batches: the key network
      would hardly move in a few hundred 3-D steps). Constant, not the cosine rise to 1 of BYOL / MoCo v3, because the
      queue relies on the keys' network changing at the same slow pace through the run (MoCo's momentum ablation,
      section 4.1, is of a fixed m);
    * queue size 1024: with a global batch of 4 patches, 8 keys enter per step, so the queue is renewed in 128 steps,
      about the 1 / (1 - m) = 100 steps over which the key network's EMA forgets; a longer queue (the paper's 65536 is
      256 steps of 256 images) would hold keys of a much older encoder, which the paper shows to hurt (the
      "consistency" argument, section 3.2). Raise it with the global batch;
    * projector 2 layers 512 -> 128 without normalisation (the paper's fc-ReLU-fc head, 128 out, at the width of
      this repository's other 3-D heads).
DDP: the queries and keys are gathered, so every process computes the loss of the global batch; the keys entering
the queue are gathered in rank order (rank r's shard is the r-th slice of the global batch), so every process holds
the same queue as one process of the global batch, and 2 processes of batch B equal one of batch 2B.
False negatives (``false_negatives=eliminate|attract``, :mod:`sslseg.ssl.false_negatives`): each sample's support
views' keys pick the queue entries that show its content; they leave both its queries' softmax or join their
positives.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from sslseg.ssl.base import StepContext
from sslseg.ssl.false_negatives import (FalseNegativeOptions, check_options, queue_false_negatives, support_count,
                                        support_projections)
from sslseg.ssl.heads import projector
from sslseg.ssl.losses import infonce_queue_loss
from sslseg.ssl.module import MethodModule
from sslseg.ssl.momentum import target_copy, update_momentum
from sslseg.ssl.queue import FeatureQueue
from sslseg.ssl.two_view_method import TwoViewMethod, TwoViewOptions
from sslseg.training.amp import full_precision


@dataclass(frozen=True)
class MoCoV2Options(TwoViewOptions, FalseNegativeOptions):
    temperature: float = 0.2
    momentum: float = 0.99
    queue_size: int = 1024
    proj_hidden: int = 512
    proj_dim: int = 128
    proj_norm: str = "none"

    def __post_init__(self) -> None:
        super().__post_init__()
        check_options(self)
        if not self.temperature > 0:
            raise ValueError(f"temperature must be > 0, got {self.temperature}")
        if not 0.0 <= self.momentum <= 1.0:
            raise ValueError(f"momentum must be in 0..1, got {self.momentum}")
        if self.queue_size < 1:
            raise ValueError(f"queue_size must be >= 1, got {self.queue_size}")


class MoCoV2Module(MethodModule):
    def __init__(self, preset, opts: MoCoV2Options) -> None:
        super().__init__(preset)
        self.projector = projector(self.backbone.out_dim, opts.proj_hidden, opts.proj_dim, norm=opts.proj_norm)
        self.target_backbone = target_copy(self.backbone)
        self.target_projector = target_copy(self.projector)
        self.queue = FeatureQueue(opts.queue_size, opts.proj_dim)
        self.temperature, self.momentum = opts.temperature, opts.momentum
        self.opts = opts
        #: The last training forward's local keys (view1, view2), each (B, proj_dim), detached: enqueued (gathered)
        #: by :meth:`after_step`. Not a buffer: a checkpoint is written after ``after_step`` has consumed them.
        self._keys: tuple[torch.Tensor, torch.Tensor] | None = None

    def _loss(self, batch: dict, ctx: StepContext):
        """(loss, gathered queries (2N, D), local keys (k1, k2)); N the global batch."""
        n = batch["view1"].shape[0]
        views = torch.cat([batch["view1"], batch["view2"]])  # (2B, 1, S, S, S)
        q = self.projector(self.backbone(views))
        with torch.no_grad():
            k = self.target_projector(self.target_backbone(views))
        count = support_count(self.opts)
        support_keys = support_projections(lambda v: self.target_projector(self.target_backbone(v)), batch,
                                           count) if count else None  # (B, V, D)
        with full_precision(q):
            q1, q2, k1, k2 = (ctx.gather(t.float()) for t in (q[:n], q[n:], k[:n], k[n:]))
            queue = self.queue.features
            found = None
            if support_keys is not None:
                found = queue_false_negatives(ctx.gather(support_keys.float().contiguous()), queue,
                                              self.opts.fn_threshold, self.opts.fn_top_k)
            attract = self.opts.false_negatives == "attract"
            loss = (infonce_queue_loss(q1, k2, queue, self.temperature, found, attract)
                    + infonce_queue_loss(q2, k1, queue, self.temperature, found, attract)) / 2
        return loss, torch.cat([q1, q2]), (k[:n].detach(), k[n:].detach())

    def forward(self, batch: dict, ctx: StepContext):
        loss, q, keys = self._loss(batch, ctx)
        if self.training:
            self._keys = keys
        return self.with_collapse(loss, {"moco_v2": float(loss.detach())}, q, ctx.step)

    @torch.no_grad()
    def after_step(self, ctx: StepContext) -> None:
        update_momentum(self.backbone, self.target_backbone, self.momentum)
        update_momentum(self.projector, self.target_projector, self.momentum)
        if self._keys is not None:
            k1, k2 = self._keys
            self.queue.enqueue(torch.cat([ctx.gather(k1), ctx.gather(k2)]))
            self._keys = None

    def validation_loss(self, batch: dict) -> torch.Tensor:
        """(B,) the loss against the current queue, which it leaves unchanged (no keys kept for :meth:`after_step`)."""
        batch_size = batch["view1"].shape[0]
        with torch.no_grad():
            loss, _, _ = self._loss(batch, StepContext())
        return loss.detach().float().expand(batch_size)


class MoCoV2(TwoViewMethod):
    name = "moco-v2"
    Options = MoCoV2Options

    def view_count(self) -> int:
        """The two views, plus the support views of false-negative cancellation."""
        return 2 + support_count(self.opts)

    def build_model(self, preset):
        return MoCoV2Module(preset, self.opts)
