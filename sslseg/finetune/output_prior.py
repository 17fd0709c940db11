"""The segmentation head's starting bias: each class's share of the training voxels (``--output-bias prior``).

A new UNETR's output convolution starts with PyTorch's random bias, so every class starts near 1/C of every voxel,
and the first steps are spent pushing the organs down everywhere. For a small organ that push overshoots: measured
on the real CT of ``benchmarks/bench_real_fit.py`` (tiny recipe, random bias), the aorta (0.3 % of the voxels) kept
a probability of about 0.2 on its own voxels, the rest spread over background, liver and spleen, and was never the
argmax in 800 steps in two seeds of three (README, "Fitting a real CT on a CPU"). Starting the bias at
log(share) (RetinaNet's prior initialisation, Lin et al. 2017) makes the untrained network predict the class
frequencies instead, so the gradient goes into telling organs apart from the first step.

Shares are counted on the cached training cases (the model grid, labels renumbered to the run's label set), on their
annotated voxels only where a case is partially annotated. A class without any voxel counts as one voxel, so its bias
is finite.
"""

from __future__ import annotations

import numpy as np
import torch

from sslseg.finetune.label_set import remap


def class_shares(cases: list, luts: list[np.ndarray], classes: int) -> np.ndarray:
    """(C,) float64, summing to 1: each class's share of the voxels of ``cases`` (background = class 0).

    Args:
        cases: :class:`~sslseg.finetune.cases.CachedCase` objects (labels (X, Y, Z) with the case's own values).
        luts: per case, case value -> run class (:meth:`~sslseg.finetune.cases.CaseSet.lut`).
    """
    counts = np.zeros(classes, dtype=np.float64)
    for case, lut in zip(cases, luts):
        labels = remap(np.asarray(case.labels()), lut)
        annotated = case.annotated()
        counted = labels[np.asarray(annotated).astype(bool)] if annotated is not None else labels
        counts += np.bincount(counted.ravel().astype(np.int64), minlength=classes)[:classes]
    counts = np.maximum(counts, 1.0)
    return counts / counts.sum()


def set_prior_bias(model: torch.nn.Module, shares: np.ndarray) -> None:
    """Set the bias of the UNETR's output convolution (``model.out``) to log(``shares``), shape (C,)."""
    convolution = [m for m in model.out.modules() if isinstance(m, torch.nn.Conv3d)][-1]
    with torch.no_grad():
        convolution.bias.copy_(torch.as_tensor(np.log(shares), dtype=convolution.bias.dtype))
