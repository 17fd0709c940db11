"""One seed for python's, numpy's and torch's global generators."""

from __future__ import annotations

import random

import numpy as np


def seed_everything(seed: int) -> None:
    import torch

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
