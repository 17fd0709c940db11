"""Validation Dice: sliding-window prediction over whole held-out cases, as inference does it, scored per organ.

Prediction and reference are compared on the model grid (the cached, preprocessed case), with the very windowing
(:func:`sslseg.segmentation.sliding_window.predict_probabilities`: window = the model's ``img_size``, Gaussian
blending, air windows skipped) that ``sslseg segment`` uses. Per organ: the mean over the cases where the organ is in
the reference or the prediction (Dice is undefined where it is in neither); the mean Dice is the mean over organs.
A partially annotated case is scored on what its datalist entry says it annotates: those voxels alone (undrawn
slices are neither prediction nor reference; the run's ``--undrawn-slices unknown`` shapes training only, so a
validation case is otherwise scored whole) and the organs it annotates (another organ has no Dice on that case).
Under DDP each process scores its share of the cases and the sums are all-reduced.
"""

from __future__ import annotations

import math

import numpy as np

from sslseg.evaluation.overlap import dice
from sslseg.finetune.label_set import remap
from sslseg.labels import LabelTable
from sslseg.segmentation.sliding_window import predict_probabilities
from sslseg.training.distributed import all_reduce_sum


def case_dice(prediction: np.ndarray, reference: np.ndarray, organs: int, annotated: np.ndarray | None = None,
              scored: np.ndarray | None = None) -> list[float]:
    """Dice of label values 1..organs between two label maps (X, Y, Z); NaN where neither has the organ.

    Args:
        annotated: (X, Y, Z) mask of the voxels scored (None: all).
        scored: (organs + 1,) bool, the organs scored (None: all); NaN for the others.
    """
    if annotated is not None:
        keep = np.asarray(annotated).astype(bool)
        prediction, reference = prediction[keep], reference[keep]
    return [dice(prediction == value, reference == value) if scored is None or scored[value] else float("nan")
            for value in range(1, organs + 1)]


class DiceValidation:
    """Callable for :class:`~sslseg.training.loop.TrainParts` ``evaluate``: ``() -> {"val_dice",
    "val_dice_per_organ"}``.

    Args:
        model: the network (DDP-wrapped or not; the bare module runs, so processes need not call it equally often).
        cases, luts: this process's validation cases and their lookup tables to the label set.
        organs: per case, (C,) bool of the organs it annotates (None: all, for every case).
    """

    def __init__(self, model, cases: list, luts: list, labels: LabelTable, window: int, overlap: float, device,
                 precision, dist, window_batch: int = 1, organs: list | None = None) -> None:
        self.model, self.cases, self.luts, self.labels = model, cases, luts, labels
        self.organs = organs if organs is not None else [None] * len(cases)
        self.window, self.overlap, self.device, self.precision = window, overlap, device, precision
        self.dist, self.window_batch = dist, window_batch

    def __call__(self) -> dict:
        bare = getattr(self.model, "module", self.model)
        organs = len(self.labels)
        sums, counts = [0.0] * organs, [0.0] * organs
        for case, lut, scored in zip(self.cases, self.luts, self.organs):
            image = np.array(case.image())  # a writable copy of the memory map (torch wants one)
            probabilities = predict_probabilities(bare, image, self.window, self.overlap, self.window_batch,
                                                  self.device, self.precision, foreground=0.0)
            prediction = probabilities.argmax(0).numpy()
            del probabilities
            reference = remap(case.labels(), lut)
            for i, value in enumerate(case_dice(prediction, reference, organs, case.scored_voxels(), scored)):
                if not math.isnan(value):
                    sums[i], counts[i] = sums[i] + float(value), counts[i] + 1
        totals = all_reduce_sum(sums + counts, self.dist, self.device)
        sums, counts = totals[:organs], totals[organs:]
        per_organ = {label.name: (float(s / c) if c else None)
                     for (_, label), s, c in zip(sorted(self.labels.labels.items()), sums, counts)}
        scored = [d for d in per_organ.values() if d is not None]
        return {"val_dice": float(sum(scored) / len(scored)) if scored else None, "val_dice_per_organ": per_organ}
