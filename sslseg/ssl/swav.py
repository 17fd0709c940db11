"""SwAV: the codes (soft cluster assignments) of each global crop are predicted from every other crop.

Caron, Misra, Mairal, Goyal, Bojanowski, Joulin, "Unsupervised Learning of Visual Features by Contrasting Cluster
Assignments", NeurIPS 2020 (eq. 1-3, Algorithm 1) and the authors' ``main_swav.py``.

Per sample: multi-crop views (:func:`sslseg.ssl.views3d.multi_crop`) of a region larger than the patch: ``global1``,
``global2`` (1, S, S, S) and ``local1`` .. ``localN`` (1, L, L, L), L = the multiple of 16 nearest
S * ``local_fraction`` (at least 16; 48 for a 96 patch, 16 for 32). z = L2-normalised projector(mean-pooled ViT
tokens) (B, proj_dim); the global crops run through the ViT together, the local crops together
(:func:`sslseg.ssl.backbone.vit_tokens` resamples the position embeddings to their smaller token grid). Scores
s = z C^T against K prototypes C (unit rows). Codes q of each global crop: Sinkhorn-Knopp (epsilon 0.05, 3 iterations)
over the gathered global batch (and the queue, when on); loss: the cross-entropy of q against softmax(s / T) of every
other crop, T 0.1 (:func:`sslseg.ssl.losses.swav_loss`).

Prototypes: a bias-free Linear whose rows are L2-normalised at construction and after every optimiser step
(:meth:`SwAVModule.after_step`) — the paper normalises them before each step, which is the same sequence of weights:
every forward, training or validation, sees unit rows, and so does a checkpoint. They are frozen for the first
``freeze_prototypes_steps`` steps (the authors' ``freeze_prototypes_niters``): their gradient is exactly zero (they stay
in the graph, so DDP without ``find_unused_parameters`` still sees every parameter used). They are left out of weight
decay: their rows are put back on the unit sphere after every step, so decay has nothing to regularise.

Defaults, scaled to 3-D batches of 2-8 patches:
    * K = 128 prototypes (the paper: 3000 for ImageNet's 1000 classes, with little change from 300 to 30000). An
      abdominal patch holds a handful of tissues and organs at a few scales, tens of "classes", and the equipartition
      spreads each sample's code over K / B_global prototypes, so thousands would give codes close to uniform;
    * 4 local crops (the paper: 6 of 96^2 beside 2 of 224^2). A local crop of half the edge has 1/8 of the tokens, so
      4 cost about a quarter of the two global passes (the paper's 6 add about half);
    * prototypes frozen for 100 steps (the paper: one epoch, 313 or 5005 iterations; here the steps in which a fresh
      ViT's pooled features are still nearly equal for every patch, as :data:`sslseg.ssl.module.COLLAPSE_GRACE_STEPS`);
    * projector Linear-LayerNorm-ReLU-Linear 512 -> 128 (the paper: 2048 -> 128 with BatchNorm; LayerNorm, see
      :mod:`sslseg.ssl.heads`);
    * no queue. With ``queue_size`` Q > 0, each global crop keeps a FIFO of the last Q projections of the gathered
      global batch (buffers: checkpoints hold it), filled from step ``queue_start_step`` on and used once full: scored
      against the current prototypes, it joins the Sinkhorn batch (the authors' queue, which they start at epoch 15
      of 200 — early features go stale too fast to be worth keeping). Every process holds the same queue (it is filled
      with the gathered batch), so DDP's buffer broadcast changes nothing.

DDP: the projections are gathered, and the codes and the cross-entropy are computed on the global batch in every
process, so 2 processes of batch B equal 1 process of batch 2B.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from sslseg.ssl.base import SSLMethod, StepContext
from sslseg.ssl.heads import NORMS, projector
from sslseg.ssl.losses import swav_loss
from sslseg.ssl.module import MethodModule
from sslseg.ssl.queue import FeatureQueue
from sslseg.ssl.two_view_method import patch_edge, region_edge, token_multiple
from sslseg.ssl.views3d import IntensitySettings, multi_crop

GLOBAL_VIEWS = ("global1", "global2")


@dataclass(frozen=True)
class SwAVOptions:
    temperature: float = 0.1
    epsilon: float = 0.05
    sinkhorn_iterations: int = 3
    n_prototypes: int = 128
    freeze_prototypes_steps: int = 100
    proj_hidden: int = 512
    proj_dim: int = 128
    proj_layers: int = 2
    proj_norm: str = "layer"
    n_local: int = 4
    local_fraction: float = 0.5
    region_scale: float = 1.5
    queue_size: int = 0
    queue_start_step: int = 500

    def __post_init__(self) -> None:
        if not self.temperature > 0:
            raise ValueError(f"temperature must be > 0, got {self.temperature}")
        if not self.epsilon > 0:
            raise ValueError(f"epsilon must be > 0, got {self.epsilon}")
        if self.sinkhorn_iterations < 1 or self.n_prototypes < 2:
            raise ValueError("SwAV needs sinkhorn_iterations >= 1 and n_prototypes >= 2")
        if self.n_local < 0 or self.queue_size < 0 or self.freeze_prototypes_steps < 0 or self.queue_start_step < 0:
            raise ValueError("n_local, queue_size, freeze_prototypes_steps and queue_start_step must be >= 0")
        if not 0 < self.local_fraction <= 1:
            raise ValueError(f"local_fraction must be in (0, 1], got {self.local_fraction}")
        if self.region_scale < 1:
            raise ValueError(f"region_scale must be >= 1, got {self.region_scale}")
        if self.proj_norm not in NORMS:
            raise ValueError(f"proj_norm must be one of {', '.join(NORMS)}, got {self.proj_norm!r}")


def local_edge(patch_size: int, fraction: float) -> int:
    """L: the multiple of the token size nearest ``patch_size * fraction``, at least one token, at most the patch."""
    return min(patch_size, token_multiple(patch_size * fraction))


def local_names(n_local: int) -> list[str]:
    return [f"local{i + 1}" for i in range(n_local)]


class SwAVModule(MethodModule):
    def __init__(self, preset, opts: SwAVOptions) -> None:
        super().__init__(preset)
        self.opts = opts
        self.projector = projector(self.backbone.out_dim, opts.proj_hidden, opts.proj_dim, layers=opts.proj_layers,
                                   norm=opts.proj_norm)
        self.prototypes = torch.nn.Linear(opts.proj_dim, opts.n_prototypes, bias=False)
        self.normalise_prototypes()
        self.queues = None
        if opts.queue_size:
            self.queues = torch.nn.ModuleList(FeatureQueue(opts.queue_size, opts.proj_dim) for _ in GLOBAL_VIEWS)
            self.register_buffer("queue_filled", torch.zeros((), dtype=torch.long))
        self._pending: list[torch.Tensor] | None = None  # the last training step's gathered global projections

    @torch.no_grad()
    def normalise_prototypes(self) -> None:
        self.prototypes.weight.copy_(F.normalize(self.prototypes.weight, dim=1))

    def embed(self, views: list[torch.Tensor]) -> list[torch.Tensor]:
        """L2-normalised projections (B, proj_dim) of same-sized views, in one ViT pass."""
        n = views[0].shape[0]
        z = F.normalize(self.projector(self.backbone(torch.cat(views))), dim=1)
        return list(z.split(n))

    def queue_in_use(self) -> bool:
        return self.queues is not None and int(self.queue_filled) >= self.opts.queue_size

    def forward(self, batch: dict, ctx: StepContext):
        crops = self.embed([batch[k] for k in GLOBAL_VIEWS])
        if self.opts.n_local:
            crops += self.embed([batch[k] for k in local_names(self.opts.n_local)])
        crops = [ctx.gather(z.float()) for z in crops]  # the global batch's projections, global crops first
        weight = self.prototypes.weight.float()
        if ctx.step < self.opts.freeze_prototypes_steps:
            weight = weight.detach() + 0.0 * weight  # frozen: in the graph with an exactly zero gradient
        scores = [z @ weight.T for z in crops]
        queue_scores = None
        if self.queue_in_use():
            queue_scores = [queue.features.float() @ weight.detach().T for queue in self.queues]
        o = self.opts
        loss = swav_loss(scores, [0, 1], o.temperature, o.epsilon, o.sinkhorn_iterations, queue_scores=queue_scores)
        if self.training and self.queues is not None:
            self._pending = [z.detach() for z in crops[:len(GLOBAL_VIEWS)]]
        parts = {"swav": float(loss.detach())}
        if self.queues is not None:
            parts["queue_in_use"] = float(queue_scores is not None)
        return self.with_collapse(loss, parts, torch.cat(crops[:len(GLOBAL_VIEWS)]), ctx.step)

    def after_step(self, ctx: StepContext) -> None:
        """Prototype rows back to unit length; the step's global projections into the queue (from step
        ``queue_start_step`` + 1 on)."""
        self.normalise_prototypes()
        pending, self._pending = self._pending, None
        if self.queues is not None and pending is not None and ctx.step > self.opts.queue_start_step:
            for queue, z in zip(self.queues, pending):
                queue.enqueue(z)
            self.queue_filled.copy_((self.queue_filled + pending[0].shape[0]).clamp(max=self.opts.queue_size))

    def param_groups(self, lr: float, weight_decay: float) -> list[dict]:
        groups = super().param_groups(lr, weight_decay)
        prototypes = self.prototypes.weight
        groups[0]["params"] = [p for p in groups[0]["params"] if p is not prototypes]
        groups[1]["params"] = [*groups[1]["params"], prototypes]
        return groups


class SwAV(SSLMethod):
    """Multi-crop views (``global1``, ``global2``, ``local1`` .. ``localN``) and :class:`SwAVModule`."""

    name = "swav"
    Options = SwAVOptions

    def __init__(self, options=None) -> None:
        super().__init__(options)
        #: Each view's intensity changes (None: crops only, e.g. to look at the geometry).
        self.intensity: IntensitySettings | None = IntensitySettings()

    def region_size(self, patch_size: int) -> int:
        return region_edge(patch_size, self.opts.region_scale)

    def make_views(self, region, random_state) -> dict:
        patch = patch_edge(region.shape[-1], self.opts.region_scale)
        crops = multi_crop(region, random_state, patch, len(GLOBAL_VIEWS), local_edge(patch, self.opts.local_fraction),
                           self.opts.n_local, intensity=self.intensity)
        names = [*GLOBAL_VIEWS, *local_names(self.opts.n_local)]
        return {name: torch.from_numpy(np.ascontiguousarray(crop, dtype=np.float32))
                for name, crop in zip(names, crops)}

    def build_model(self, preset):
        return SwAVModule(preset, self.opts)
