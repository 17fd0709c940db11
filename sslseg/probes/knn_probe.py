"""kNN organ probe: do patches of one organ lie near each other in feature space, across cases?

Patches of edge S centred on random voxels of each organ; their features mean-pooled over the token grid and
L2-normalised; each patch labelled by the majority of its ``k`` most cosine-similar patches of *other* cases (leave
one case out, so a case's own neighbouring patches never answer). Accuracy over all patches; chance is about one over
the number of organs.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

K = 5


@dataclass(frozen=True)
class OrganPatch:
    """case: index of the case; organ: label value (or name); patch: (1, S, S, S) float32."""

    case: int
    organ: int | str
    patch: np.ndarray


def organ_patches(cases: list[tuple[np.ndarray, np.ndarray]], size: int, per_organ: int, seed: int) -> list[OrganPatch]:
    """Up to ``per_organ`` patches (1, S, S, S) per organ and case, centred on random voxels of the organ; ``cases``
    are (image (X, Y, Z), labels (X, Y, Z)) pairs on one grid each, zero (air) beyond their border."""
    rng = np.random.default_rng(seed)
    patches = []
    for index, (image, labels) in enumerate(cases):
        padded = np.pad(np.asarray(image, dtype=np.float32), size // 2)
        for organ in (int(v) for v in np.unique(labels) if v):
            voxels = np.argwhere(labels == organ)
            for i, j, k in voxels[rng.choice(len(voxels), size=min(per_organ, len(voxels)), replace=False)]:
                # padded by S/2: the patch centred on voxel (i, j, k) starts at that index
                patches.append(OrganPatch(index, organ, padded[i:i + size, j:j + size, k:k + size][None].copy()))
    return patches


def pooled_features(features, patches: list, batch: int = 16) -> torch.Tensor:
    """(N, F) L2-normalised features of ``patches`` (each with a ``patch`` (1, S, S, S)), mean-pooled over the grid
    ``features`` gives ((B, 1, S, S, S) -> (B, F, ...) or (B, F))."""
    with torch.no_grad():
        pooled = []
        for start in range(0, len(patches), batch):
            images = torch.from_numpy(np.stack([p.patch for p in patches[start:start + batch]]))
            out = features(images)
            pooled.append(out.flatten(2).mean(dim=2) if out.ndim > 2 else out)
    return torch.nn.functional.normalize(torch.cat(pooled).float(), dim=1)


def knn_vote(reference: torch.Tensor, reference_cases, reference_organs, queries: torch.Tensor, query_cases,
             k: int = K) -> np.ndarray:
    """(Q,) the organ each query (Q, F) gets from its ``k`` most similar references (R, F) of other cases
    (majority; ties to the smaller label)."""
    reference_cases, reference_organs = np.asarray(reference_cases), np.asarray(reference_organs)
    similarity = (queries @ reference.T).numpy()  # (Q, R)
    predicted = []
    for row, case in zip(similarity, query_cases):
        others = np.flatnonzero(reference_cases != case)  # never the query's own case, even with fewer than k others
        nearest = reference_organs[others[np.argsort(-row[others], kind="stable")[:k]]]
        values, counts = np.unique(nearest, return_counts=True)
        predicted.append(values[np.argmax(counts)])
    return np.array(predicted)


def knn_accuracy(features, patches: list[OrganPatch], k: int = K) -> float | None:
    """Leave-one-case-out kNN accuracy over ``patches``; None when they come from fewer than two cases."""
    cases = [p.case for p in patches]
    if len(set(cases)) < 2:
        return None
    organs = np.array([p.organ for p in patches])
    pooled = pooled_features(features, patches)
    return float(np.mean(knn_vote(pooled, cases, organs, pooled, cases, k) == organs))
