"""A FIFO queue of past embeddings (MoCo's dictionary; SwAV's optional queue), after lightly's ``MemoryBankModule``.

The queue (K, D) and its write position are buffers, so they are in the model's ``state_dict``: checkpoints hold
them and a resume needs nothing new. Under DDP the keys are gathered before :meth:`FeatureQueue.enqueue`, so every
process holds the same queue.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


class FeatureQueue(torch.nn.Module):
    """``size`` L2-normalised embeddings of ``dim`` features, initialised random (as MoCo)."""

    def __init__(self, size: int, dim: int) -> None:
        super().__init__()
        self.register_buffer("features", F.normalize(torch.randn(size, dim), dim=1))
        self.register_buffer("position", torch.zeros((), dtype=torch.long))

    @torch.no_grad()
    def enqueue(self, keys: torch.Tensor) -> None:
        """Overwrite the oldest entries with ``keys`` (B, D) (normalised here)."""
        size = self.features.shape[0]
        keys = F.normalize(keys.detach().float(), dim=1)[-size:]
        index = (self.position + torch.arange(keys.shape[0], device=keys.device)) % size
        self.features[index] = keys.to(self.features.dtype)
        self.position.copy_((self.position + keys.shape[0]) % size)
