"""3-D relative position: where is the second sub-cube relative to the first? (Context prediction carried to volumes.)

Doersch, Gupta, Efros, "Unsupervised Visual Representation Learning by Context Prediction", ICCV 2015 (2-D: 8
neighbours of a 3x3 grid, gaps and jitter against trivial shortcuts); Taleb et al., "3D Self-Supervised Methods for
Medical Imaging", NeurIPS 2020 (3-D: 26 neighbours of a 3x3x3 grid).

Per sample: the region (1, R, R, R) is a 3x3x3 grid of cells of edge c + g (c = half the patch edge as a multiple of
the 16-voxel token, at least 16; g = c / 4, the gap); the centre cell's cube and one of its 26 neighbours' cubes, each
of edge c and moved by a jitter of up to g / 2 voxels per axis inside its cell, are the views ``centre`` and
``neighbour`` (1, c, c, c); the label is the neighbour's index in :data:`OFFSETS` (26 classes, chance 1/26). The gap
and the jitter keep the task from being solved by continuing edges across the cube borders.
Model: the ViT runs each cube on its own token grid (position embeddings resampled, :func:`sslseg.ssl.backbone.
vit_tokens`); the pooled features of both (B, hidden) each are concatenated (B, 2 hidden) -> MLP -> (B, 26) logits;
loss: cross-entropy over the gathered global batch.

The task needs to know directions (left from right, head from foot): it teaches features that keep the side, which
the joint-embedding views avoid removing.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
import torch

from sslseg.ssl.base import SSLMethod, StepContext
from sslseg.ssl.heads import MLPHead
from sslseg.ssl.module import MethodModule
from sslseg.ssl.pretext_loss import classification_loss
from sslseg.ssl.two_view_method import token_multiple

#: The 26 neighbour offsets (cell steps along the three RAS axes), in a fixed order: the class index.
OFFSETS: tuple[tuple[int, int, int], ...] = tuple(o for o in itertools.product((-1, 0, 1), repeat=3) if any(o))


def cube_edge(patch_size: int) -> int:
    """c: half the patch edge as a multiple of the token size, at least one token."""
    return token_multiple(patch_size / 2)


def grid_region(patch_size: int, cells: int) -> int:
    """R: the edge of a region holding ``cells`` x ``cells`` x ``cells`` cells of edge c + g, c = :func:`cube_edge`,
    g = c / 4 (relative position's 3x3x3 grid, Rubik's cube's 2x2x2)."""
    cube = cube_edge(patch_size)
    return cells * (cube + cube // 4)


def cell_layout(region_edge: int) -> tuple[int, int]:
    """(cube edge c, gap g) of a region of edge R = 3 (c + g), g = c / 4 (the inverse of ``RelativePosition
    .region_size``)."""
    cube = token_multiple(region_edge / 3.75)
    return cube, cube // 4


def cut_cube(region: np.ndarray, cell: tuple[int, ...], cube: int, gap: int, random_state) -> np.ndarray:
    """The cube (C, c, c, c) of grid cell ``cell`` of ``region`` (C, R, R, R), cells of edge c + g: the cell's centred
    cube moved by a jitter of up to g / 2 voxels per axis (drawn here, one per axis). Rubik's cube cuts its 2x2x2
    grid the same way."""
    jitter = np.array([random_state.randint(-(gap // 2), gap // 2 + 1) for _ in range(3)])
    x, y, z = np.asarray(cell) * (cube + gap) + gap // 2 + jitter
    return region[:, x:x + cube, y:y + cube, z:z + cube]


@dataclass(frozen=True)
class RelativePositionOptions:
    head_hidden: int = 256


class RelativePositionModule(MethodModule):
    def __init__(self, preset, opts: RelativePositionOptions) -> None:
        super().__init__(preset)
        self.head = MLPHead(2 * self.backbone.out_dim, opts.head_hidden, len(OFFSETS), layers=2)

    def logits(self, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
        """(centre features (B, hidden), logits (B, 26)) of the cube pairs (B, 1, c, c, c) each."""
        n = batch["centre"].shape[0]
        features = self.backbone(torch.cat([batch["centre"], batch["neighbour"]]))  # (2B, hidden)
        return features[:n], self.head(torch.cat([features[:n], features[n:]], dim=1))

    def forward(self, batch: dict, ctx: StepContext):
        features, logits = self.logits(batch)
        loss, parts = classification_loss(logits, batch["position"], ctx, "position")
        return self.with_collapse(loss, parts, features, ctx.step)


class RelativePosition(SSLMethod):
    name = "relative-position"
    Options = RelativePositionOptions

    def region_size(self, patch_size: int) -> int:
        return grid_region(patch_size, 3)

    def make_views(self, region, random_state) -> dict:
        cube, gap = cell_layout(region.shape[-1])
        label = int(random_state.randint(len(OFFSETS)))
        cells = {"centre": (1, 1, 1), "neighbour": tuple(1 + o for o in OFFSETS[label])}
        views = {name: torch.from_numpy(np.ascontiguousarray(cut_cube(region, cell, cube, gap, random_state)))
                 for name, cell in cells.items()}
        return {**views, "position": torch.tensor(label, dtype=torch.long)}

    def build_model(self, preset):
        return RelativePositionModule(preset, self.opts)
