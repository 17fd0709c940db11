"""Which samples each step sees: a seeded permutation per epoch, cut into global batches, shared out to ranks.

Deterministic from (seed, epoch) alone, so a resumed run (even mid-epoch) sees the same batches as an uninterrupted
one, and W processes of batch B see, step for step, the same global batch as one process of batch W*B: rank r
takes the r-th contiguous block of B of each global batch. The last global batch of an epoch is completed by
wrapping around the permutation, so every batch is full (a contrastive loss needs its negatives).

Each yielded item is ``(epoch, index)``: the dataset draws the sample's randomness from it, never from worker state.
"""

from __future__ import annotations

import math

import numpy as np
from torch.utils.data import Sampler

SHUFFLE_STREAM = 1


class EpochBatches(Sampler):
    """Batch sampler: lists of ``(epoch, index)`` of length ``batch_size`` (per rank)."""

    def __init__(self, num_items: int, batch_size: int, seed: int, rank: int = 0, world_size: int = 1,
                 shuffle: bool = True) -> None:
        if num_items < 1 or batch_size < 1:
            raise ValueError("need at least one item and a batch size of at least one")
        self.num_items, self.batch_size, self.seed = num_items, batch_size, seed
        self.rank, self.world_size, self.shuffle = rank, world_size, shuffle
        self.global_batch = batch_size * world_size
        self.steps_per_epoch = math.ceil(num_items / self.global_batch)
        self.epoch, self.start_step = 0, 0

    def set_epoch(self, epoch: int, start_step: int = 0) -> None:
        """Iterate epoch ``epoch`` from its step ``start_step`` on (resumption)."""
        self.epoch, self.start_step = epoch, start_step

    def order(self, epoch: int) -> np.ndarray:
        """The epoch's global sample order, wrapped to a whole number of global batches."""
        if self.shuffle:
            order = np.random.default_rng([self.seed, SHUFFLE_STREAM, epoch]).permutation(self.num_items)
        else:
            order = np.arange(self.num_items)
        return np.resize(order, self.steps_per_epoch * self.global_batch)

    def __iter__(self):
        order = self.order(self.epoch)
        for step in range(self.start_step, self.steps_per_epoch):
            begin = step * self.global_batch + self.rank * self.batch_size
            yield [(self.epoch, int(i)) for i in order[begin:begin + self.batch_size]]

    def __len__(self) -> int:
        return self.steps_per_epoch - self.start_step


class ShardedItems(Sampler):
    """Batch sampler over a fixed list of items (validation): rank r gets items r, r+W, ..., in batches."""

    def __init__(self, num_items: int, batch_size: int, rank: int = 0, world_size: int = 1) -> None:
        self.indices = list(range(rank, num_items, world_size))
        self.batch_size = batch_size

    def __iter__(self):
        for begin in range(0, len(self.indices), self.batch_size):
            yield [(0, i) for i in self.indices[begin:begin + self.batch_size]]

    def __len__(self) -> int:
        return math.ceil(len(self.indices) / self.batch_size)
