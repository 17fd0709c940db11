"""BatchNorm over the global batch for the heads of methods that use batch statistics (``head_norm=batch``).

A 3-D batch holds 2-4 patches per process, so per-process BatchNorm statistics are noise and make DDP train another
model than one process on the same global batch. ``torch.nn.SyncBatchNorm`` fixes that on GPUs only (it refuses CPU
tensors, so gloo runs could not use it); this layer gathers the features of every process with the differentiable
gather of :mod:`sslseg.training.distributed` and normalises them together, on any device. Its parameters and buffers
are those of ``torch.nn.BatchNorm1d`` (same state-dict names), so checkpoints do not depend on the process count.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
import torch.nn.functional as F

from sslseg.training.distributed import gather_with_grad


def _world() -> int:
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


class GlobalBatchNorm1d(torch.nn.BatchNorm1d):
    """``BatchNorm1d`` of (B, D) features whose training statistics are over the B * world rows of all processes.

    Every process must hold the same B (the samplers give every process equal batches). The gradient follows the
    convention of :func:`sslseg.training.distributed.make_gather`: with DDP's averaging it is the global batch's.
    In evaluation mode, or in one process, it is exactly ``BatchNorm1d``.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or _world() == 1:
            return super().forward(x)
        rows = x.shape[0]
        features = gather_with_grad(x)  # (world * B, D), rank order
        self.num_batches_tracked.add_(1)
        factor = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked)
        normalised = F.batch_norm(features, self.running_mean, self.running_var, self.weight, self.bias, True, factor,
                                  self.eps)
        return normalised[dist.get_rank() * rows:(dist.get_rank() + 1) * rows]
