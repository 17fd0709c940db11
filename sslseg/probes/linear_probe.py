"""Linear voxel probe: a linear map of frozen features to organ logits, upsampled to the voxels, fitted on crops of
the fitting cases and scored by sliding window over whole held-out cases, as validation does.

The probe's only trainable part is a 1x1x1 convolution (F -> C, with bias) on the feature grid; its logits are
upsampled trilinearly to the input's voxels (B, C, S, S, S). Loss: MONAI ``DiceCELoss`` (the fine-tuning's), so
small organs count as they do there. Features of the crops are computed once (the encoder is frozen), then the
linear map is fitted by Adam on minibatches of them.
"""

from __future__ import annotations

import numpy as np
import torch

BATCH = 4


class LinearVoxelProbe(torch.nn.Module):
    """(B, 1, S, S, S) -> logits (B, C, S, S, S): ``linear`` on ``features(x)`` (B, F, g, g, g), upsampled."""

    def __init__(self, features: torch.nn.Module, channels: int, classes: int) -> None:
        super().__init__()
        self.features = features
        self.linear = torch.nn.Conv3d(channels, classes, kernel_size=1)

    def logits(self, grid: torch.Tensor, size) -> torch.Tensor:
        """Upsampled logits (B, C, *size) of feature grids (B, F, g, g, g)."""
        coarse = self.linear(grid)
        if tuple(coarse.shape[2:]) == tuple(size):
            return coarse
        return torch.nn.functional.interpolate(coarse, size=tuple(size), mode="trilinear", align_corners=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.logits(self.features(x), x.shape[2:])


def fit_linear_probe(features: torch.nn.Module, crops: list[tuple[torch.Tensor, torch.Tensor]], classes: int,
                     steps: int, lr: float, seed: int) -> tuple[LinearVoxelProbe, list[float]]:
    """The probe fitted on ``crops`` ((N, 1, S, S, S) images, (N, 1, S, S, S) labels 0..classes-1); returns it (eval
    mode) and the loss of every step."""
    from monai.losses import DiceCELoss

    grids, labels = [], []
    with torch.no_grad():
        for image, label in crops:
            grids.append(features(image))
            labels.append(label.long())
    grids, labels = torch.cat(grids), torch.cat(labels)  # (N, F, g, g, g), (N, 1, S, S, S)
    with torch.random.fork_rng(devices=[]):  # seeded here, the caller's random stream untouched (a pretraining's)
        torch.manual_seed(seed)
        probe = LinearVoxelProbe(features, grids.shape[1], classes)
    optimizer = torch.optim.Adam(probe.linear.parameters(), lr=lr)
    loss_fn = DiceCELoss(to_onehot_y=True, softmax=True)
    order = np.random.default_rng(seed)
    losses = []
    with torch.enable_grad():  # also when called from a no-grad evaluation (probes during pretraining)
        for _ in range(steps):
            pick = torch.from_numpy(order.choice(len(grids), size=min(BATCH, len(grids)), replace=False))
            loss = loss_fn(probe.logits(grids[pick], labels.shape[2:]), labels[pick])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
    return probe.eval(), losses
