"""Rubik's cube recovery: put a scrambled 2x2x2 grid of sub-cubes back in order and upright.

Zhuang, Li, Zheng, "Self-supervised Feature Learning for 3D Medical Images by Playing a Rubik's Cube", MICCAI 2019:
the 8 sub-cubes of a region are permuted (one of K permutations of a fixed, maximally distinct set) and each is turned
by 180 degrees or not about two axes; the network predicts the permutation (K classes) and, per cube, the turns.

Here, per sample: the region (1, R, R, R) is a 2x2x2 grid of cells of edge c + g (c = half the patch edge as a
multiple of the 16-voxel token, g = c / 4 the gap); in each cell a cube of edge c, moved by a jitter of up to g / 2
voxels per axis (gap and jitter, as in the relative-position task, so that continuing edges across cube borders does
not solve the puzzle). Slot s of the view ``cubes`` (8, 1, c, c, c) holds cube ``permutation[s]`` turned by
``HALF_TURNS[rotations[s]]`` (:data:`sslseg.ssl.cube_rotations.HALF_TURNS`: identity or 180 degrees about axis
0, 1 or 2 — a group, so the 4 classes are exactly the paper's two independent "turned" bits per cube); labels
``permutation`` (index into :func:`permutations`, K = 100 by default, minimum Hamming distance 6 of 8) and
``rotations`` (8,). :func:`unscramble` inverts it exactly.

Model: a ViT smaller than its input size sees each sub-cube on its own token grid with its position embeddings
resampled (:func:`sslseg.ssl.backbone.vit_tokens`) rather than padded to the full patch: padding would spend 7/8 of
the tokens on nothing and let the padding's border tell the network where the cube is. The 8 pooled features
(B, 8, hidden) go, in slot order, through a puzzle head (:mod:`sslseg.ssl.puzzle_head`: a 2-layer transformer over
the 8 slots) that gives each slot its source cell (8 logits) and its turn (4 logits); the K permutation logits are
the log-likelihoods of the K classes under the per-slot source cells. Loss: the negative log-likelihood of the whole
scramble, -log p(order) - sum over the 8 cubes of -log p(turn) (the turns' cross-entropy summed over the cubes, not
averaged: each cube's turn is as much to recover as the order), over the gathered global batch. The 8 cubes of a
sample cost one patch: 8 (S/2)^3 = S^3 voxels.

Why this head and not the paper's (the 8 features concatenated -> fully connected -> K + 8 x 4 outputs): measured on
the tiny phantom cohort (32^3 patches of 4 mm, so 64 mm cubes of one token each; batch 4, float32; AVX512-BF16 CPU),
the concatenating head learned neither the order nor the turns (held out and in training: chance) in 3000 steps at
lr 1e-3 (order 0.00-0.06, turns 0.23-0.29), nor in 1000 at lr 1e-4 or 1200 at 3e-4, with the turns' loss averaged
or summed; with only 2 permutation classes it learned the turns perfectly. So the turns are learnable once a cube's
cell is known, and a turned cube of symmetric anatomy looks like the upright cube of the mirrored cell: the cell has
to be found from content and neighbours together, which the puzzle head does. Held out with it, 3 seeds at lr 3e-4:
order 0.56-0.70 and turns 0.37 after 1200 steps (chance 0.01 and 0.25; seed 0: 0.75 and 0.42 after 2000); at lr 1e-3
after 3000 steps, 2 seeds: 0.64-0.72 and 0.40; with the turns averaged rather than summed the turns stay at chance
(0.24 after 1500 steps at lr 1e-3). Upright cubes (``turns=false``): order 1.00 after 100 steps (the concatenating
head: 0.94 after 300).

The turns are proper rotations, never mirror images, so, as for rotation prediction, the task needs features that
know the sides of the body rather than features blind to them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from sslseg.ssl.base import SSLMethod, StepContext
from sslseg.ssl.cube_rotations import HALF_TURNS, inverse, rotate
from sslseg.ssl.module import MethodModule
from sslseg.ssl.permutation_set import maximal_hamming_set
from sslseg.ssl.pretext_loss import classification_loss
from sslseg.ssl.puzzle_head import PuzzleHead, order_logits
from sslseg.ssl.relative_position import cut_cube, grid_region
from sslseg.ssl.two_view_method import token_multiple

#: The 2x2x2 cells in slot order (C order: the last axis fastest).
CELLS: tuple[tuple[int, int, int], ...] = tuple((i, j, k) for i in range(2) for j in range(2) for k in range(2))


def cube_layout(region_edge: int) -> tuple[int, int]:
    """(cube edge c, gap g) of a region of edge R = 2 (c + g), g = c / 4."""
    cube = token_multiple(region_edge / 2.5)
    return cube, cube // 4


def permutations(size: int) -> np.ndarray:
    """(size, 8): the permutation classes (:func:`sslseg.ssl.permutation_set.maximal_hamming_set`)."""
    return maximal_hamming_set(len(CELLS), size)


def cut_cubes(region: np.ndarray, random_state) -> np.ndarray:
    """The 8 cubes (8, C, c, c, c) of ``region`` (C, R, R, R) in cell order, each jittered inside its cell."""
    cube, gap = cube_layout(region.shape[-1])
    return np.stack([cut_cube(region, cell, cube, gap, random_state) for cell in CELLS])


def scramble(cubes: np.ndarray, permutation: np.ndarray, rotations: np.ndarray) -> np.ndarray:
    """(8, C, c, c, c): slot s holds ``cubes[permutation[s]]`` turned by ``HALF_TURNS[rotations[s]]``."""
    return np.stack([rotate(cubes[source], HALF_TURNS[turn]) for source, turn in zip(permutation, rotations)])


def unscramble(scrambled: np.ndarray, permutation: np.ndarray, rotations: np.ndarray) -> np.ndarray:
    """The inverse of :func:`scramble`: the cubes (8, C, c, c, c) back in cell order and upright."""
    cubes = np.empty_like(scrambled)
    for slot, (source, turn) in enumerate(zip(permutation, rotations)):
        cubes[source] = rotate(scrambled[slot], inverse(HALF_TURNS[turn]))
    return cubes


def assemble(cubes: np.ndarray) -> np.ndarray:
    """The 8 cubes (8, C, c, c, c) side by side in their slots' cells, without gaps: (C, 2c, 2c, 2c) (previews)."""
    c = cubes.shape[-1]
    grid = np.zeros((cubes.shape[1], 2 * c, 2 * c, 2 * c), dtype=cubes.dtype)
    for (i, j, k), cube in zip(CELLS, cubes):
        grid[:, i * c:(i + 1) * c, j * c:(j + 1) * c, k * c:(k + 1) * c] = cube
    return grid


@dataclass(frozen=True)
class RubiksCubeOptions:
    permutations: int = 100
    #: Token width and transformer layers of the puzzle head (:mod:`sslseg.ssl.puzzle_head`).
    head_hidden: int = 128
    head_layers: int = 2
    #: Turn the cubes (the paper's task); off: every cube upright, only the order is predicted (see the docstring).
    turns: bool = True

    def __post_init__(self) -> None:
        if not 2 <= self.permutations <= 40320:
            raise ValueError(f"permutations must be 2..40320 (8!), got {self.permutations}")


class RubiksCubeModule(MethodModule):
    def __init__(self, preset, opts: RubiksCubeOptions) -> None:
        super().__init__(preset)
        self.head = PuzzleHead(self.backbone.out_dim, len(CELLS), len(HALF_TURNS), opts.head_hidden, opts.head_layers)
        self.register_buffer("classes", torch.from_numpy(permutations(opts.permutations)).long(), persistent=False)
        self.turns = opts.turns

    def logits(self, cubes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(cube features (B*8, hidden), permutation logits (B, K), turn logits (B*8, 4)) of ``cubes``
        (B, 8, 1, c, c, c)."""
        batch = cubes.shape[0]
        features = self.backbone(cubes.flatten(0, 1))  # (B*8, hidden), slot order within a sample
        cells, turns = self.head(features.reshape(batch, len(CELLS), -1))
        return features, order_logits(cells, self.classes), turns.reshape(batch * len(CELLS), -1)

    def forward(self, batch: dict, ctx: StepContext):
        features, order, turns = self.logits(batch["cubes"])
        order_loss, parts = classification_loss(order, batch["permutation"], ctx, "permutation")
        turn_loss, turn_parts = classification_loss(turns, batch["rotations"].flatten(), ctx, "turn")
        turn_loss = len(CELLS) * turn_loss  # summed over the cubes: the scramble's negative log-likelihood
        if not self.turns:  # labels all "upright": kept in the graph (every parameter gets a gradient under DDP)
            turn_loss, turn_parts = 0.0 * turn_loss, {}
        return self.with_collapse(order_loss + turn_loss, {**parts, **turn_parts}, features, ctx.step)


class RubiksCube(SSLMethod):
    name = "rubiks-cube"
    Options = RubiksCubeOptions

    def region_size(self, patch_size: int) -> int:
        return grid_region(patch_size, 2)

    def make_views(self, region, random_state) -> dict:
        label = int(random_state.randint(self.opts.permutations))
        rotations = random_state.randint(len(HALF_TURNS) if self.opts.turns else 1, size=len(CELLS))
        cubes = scramble(cut_cubes(region, random_state), permutations(self.opts.permutations)[label], rotations)
        return {"cubes": torch.from_numpy(cubes), "permutation": torch.tensor(label, dtype=torch.long),
                "rotations": torch.from_numpy(rotations.astype(np.int64))}

    def preview_images(self, views: dict) -> dict:
        return {"scrambled": assemble(np.asarray(views["cubes"]))[0]}

    def build_model(self, preset):
        return RubiksCubeModule(preset, self.opts)
