"""Which token of one view sees the same place of the region as a token of another view (PGL's prior-guided
matching, on the ViT's token grid).

A view is the box (start s, size z) of the region (region voxels, per axis) resized to S voxels, cut into a grid of
g = S / t tokens of t voxels. Positions are continuous voxel coordinates of the region where voxel i covers
[i, i + 1) (so :func:`sslseg.ssl.views3d.resized_crop`'s output voxel j, read from source coordinate
s + (j + 0.5) z / S - 0.5 in voxel-centre terms, covers [s + j z / S, s + (j + 1) z / S)). Token a's centre is then
s + (a + 0.5) z / g; a point p lies at continuous token index (p - s) g / z - 0.5 of a view (token a's centre at a);
the point is seen by the view when that index is within [-0.5, g - 0.5] on every axis.

Tensors: boxes (B, 2, 3) (start row, size row), token indices (B, N, 3) with N = g^3 in the ViT's flattening order
(the last axis fastest), features on the grid (B, C, g, g, g).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def token_grid(grid: int, device=None) -> torch.Tensor:
    """(N, 3) integer token indices (a, b, c) in flattening order (c fastest), float."""
    axis = torch.arange(grid, dtype=torch.float32, device=device)
    return torch.stack(torch.meshgrid(axis, axis, axis, indexing="ij"), dim=-1).reshape(-1, 3)


def token_centres(boxes: torch.Tensor, grid: int) -> torch.Tensor:
    """(B, N, 3): the region position of each token centre of the views with ``boxes`` (B, 2, 3)."""
    start, size = boxes[:, None, 0], boxes[:, None, 1]
    return start + (token_grid(grid, boxes.device) + 0.5) * size / grid


def token_index(points: torch.Tensor, boxes: torch.Tensor, grid: int) -> torch.Tensor:
    """(B, N, 3): continuous token indices of region positions ``points`` (B, N, 3) in the views with ``boxes``."""
    start, size = boxes[:, None, 0], boxes[:, None, 1]
    return (points - start) * grid / size - 0.5


def match(boxes_from: torch.Tensor, boxes_to: torch.Tensor, grid: int) -> tuple[torch.Tensor, torch.Tensor]:
    """For every token of the views ``boxes_from`` (B, 2, 3): (where its centre lies in the views ``boxes_to``,
    continuous token indices (B, N, 3); whether those views see it, bool (B, N))."""
    index = token_index(token_centres(boxes_from, grid), boxes_to, grid)
    seen = ((index >= -0.5) & (index <= grid - 0.5)).all(dim=-1)
    return index, seen


def sample(features: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """(B, N, C): ``features`` (B, C, g, g, g) interpolated (trilinear between token centres, the nearest edge token
    beyond them) at continuous token indices ``index`` (B, N, 3)."""
    grid = features.shape[-1]
    # grid_sample's last dimension is (W, H, D), i.e. the reverse of the tensor's spatial order; with
    # align_corners=False, -1 and 1 are the outer edges of the first and the last token
    normalised = ((2 * index + 1) / grid - 1).flip(-1)[:, :, None, None, :]  # (B, N, 1, 1, 3)
    sampled = F.grid_sample(features, normalised.to(features.dtype), mode="bilinear", padding_mode="border",
                            align_corners=False)  # (B, C, N, 1, 1)
    return sampled[..., 0, 0].transpose(1, 2)
