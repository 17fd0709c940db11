"""The head that solves a cube puzzle from its pieces' features: where did each piece come from, and how is it turned?

A small transformer over the P pieces' features (B, P, hidden), one token per slot plus a learned slot embedding,
gives each slot its source-cell logits (B, P, P) and its turn logits (B, P, T). Attention lets a slot compare its
piece with the others: a piece of symmetric anatomy turned by 180 degrees looks like the upright piece of the mirrored
cell, and only its neighbours tell the two apart.

The permutation classes of a fixed set (K, P) are scored from the per-slot source cells, as the log-likelihood of
the class under slot-wise independent choices: ``order[b, k] = sum_s log_softmax(cells[b, s])[perm[k, s]]`` (B, K).
So cross-entropy over the K classes trains the same per-slot classifier for every class (weights shared across
slots), rather than one output per class from the concatenated pieces, which did not learn the turned puzzle at
all (:mod:`sslseg.ssl.rubiks_cube` gives the measurement).
"""

from __future__ import annotations

import torch
from torch import nn


class PuzzleHead(nn.Module):
    """(B, P, hidden) piece features -> (source-cell logits (B, P, P), turn logits (B, P, turns))."""

    def __init__(self, hidden: int, pieces: int, turns: int, width: int = 128, layers: int = 2,
                 heads: int = 4) -> None:
        super().__init__()
        self.embed = nn.Linear(hidden, width)
        self.slots = nn.Parameter(torch.zeros(pieces, width))
        nn.init.trunc_normal_(self.slots, std=0.02)
        block = nn.TransformerEncoderLayer(width, heads, 2 * width, dropout=0.0, batch_first=True, norm_first=True)
        self.blocks = nn.TransformerEncoder(block, layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(width)
        self.cells = nn.Linear(width, pieces)
        self.turns = nn.Linear(width, turns)

    def forward(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        tokens = self.norm(self.blocks(self.embed(features) + self.slots))
        return self.cells(tokens), self.turns(tokens)


def order_logits(cell_logits: torch.Tensor, permutations: torch.Tensor) -> torch.Tensor:
    """(B, K) log-likelihood of each permutation class (K, P) (slot s holds cell ``permutations[k, s]``) under the
    per-slot source-cell logits (B, P, P)."""
    log_p = cell_logits.float().log_softmax(dim=-1)
    slots = torch.arange(permutations.shape[1], device=cell_logits.device)
    return log_p[:, slots[None, :], permutations.to(cell_logits.device)].sum(dim=-1)
