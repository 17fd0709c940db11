"""Projector and predictor MLP heads (after lightly's ``lightly/models/modules/heads.py``).

A head maps (B, in_dim) to (B, out_dim) through ``layers`` linear layers; every hidden layer is followed by a
normalisation and ReLU. ``norm``: ``"layer"`` (default here), ``"batch"`` (the papers' choice) or ``"none"``.

Why LayerNorm by default: a 3-D batch holds 2-4 patches per process; BatchNorm over 2 samples turns each feature
into +-1, while LayerNorm is per sample, so the head behaves the same at
any batch size and DDP equals one process. BYOL works without batch statistics (Richemond et al. 2020, "BYOL works
even without batch statistics"), with group/layer normalisation instead. With ``"batch"`` the statistics are over
the global batch under DDP (:mod:`sslseg.ssl.global_batch_norm`).
"""

from __future__ import annotations

import torch
from torch import nn

from sslseg.ssl.global_batch_norm import GlobalBatchNorm1d

NORMS = ("layer", "batch", "none")


def _norm(kind: str, dim: int) -> nn.Module:
    if kind == "layer":
        return nn.LayerNorm(dim)
    if kind == "batch":
        return GlobalBatchNorm1d(dim)
    if kind == "none":
        return nn.Identity()
    raise ValueError(f"unknown head normalisation {kind!r}; choose one of {', '.join(NORMS)}")


class MLPHead(nn.Sequential):
    """Linear(-norm-ReLU-Linear)*: (B, in_dim) -> (B, out_dim). ``out_norm``: a final norm without affine (SimSiam's
    projector ends with BN)."""

    def __init__(self, in_dim: int, hidden_dim: int, out_dim: int, layers: int = 2, norm: str = "layer",
                 out_norm: bool = False) -> None:
        dims = [in_dim] + [hidden_dim] * (layers - 1) + [out_dim]
        modules: list[nn.Module] = []
        for i in range(layers):
            last = i == layers - 1
            modules.append(nn.Linear(dims[i], dims[i + 1], bias=last and not out_norm or norm == "none"))
            if not last:
                modules += [_norm(norm, dims[i + 1]), nn.ReLU(inplace=True)]
        if out_norm and norm != "none":
            modules.append(_norm(norm, out_dim))
        super().__init__(*modules)


def projector(in_dim: int, hidden_dim: int, out_dim: int, layers: int = 2, norm: str = "layer",
              out_norm: bool = False) -> MLPHead:
    """The projection head g: backbone features -> embedding space."""
    return MLPHead(in_dim, hidden_dim, out_dim, layers, norm, out_norm)


def predictor(dim: int, hidden_dim: int, norm: str = "layer") -> MLPHead:
    """The prediction head q (BYOL, SimSiam, MoCo v3): embedding -> embedding, two layers."""
    return MLPHead(dim, hidden_dim, dim, 2, norm)


def has_no_weight_decay(name: str, parameter: torch.nn.Parameter) -> bool:
    """Biases, norm weights and position embeddings (every tensor of < 2 dimensions, and position embeddings)."""
    return parameter.ndim < 2 or "position_embeddings" in name
