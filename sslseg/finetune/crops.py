"""Training samples: the random part of MONAI's UNETR BTCV tutorial, on the cached (preprocessed) cases.

Per volume: zero padding up to the crop size where the volume is smaller (the tutorial's volumes never are),
``RandCropByPosNegLabeld`` (``crops_per_volume`` crops of S^3, centres on organ and on body voxels 1:1),
``RandFlipd`` (p 0.1 per axis, two axes: see below), ``RandRotate90d`` (p 0.1), ``RandShiftIntensityd`` (offsets
0.1, p 0.5). The model card lists these from the transform objects themselves
(:mod:`sslseg.finetune.augmentation_card`).

One deliberate difference from the tutorial: no flip along the left-right axis and 90-degree rotations only in the
sagittal plane (anterior-superior), so a crop never moves the patient's right to the left. The tutorial flips and
rotates in every plane, which shows the model a liver on the left labelled liver and a right kidney labelled right on
the left side: for organs that only their side tells apart (liver/spleen, left/right kidney and adrenal gland, all
in BTCV) that teaches the model to confuse them. Measured on the demo's phantoms: the unseen case's spleen was
labelled liver or stomach with the tutorial's transforms.

``--crop-centres classes`` replaces the positive/negative draw with MONAI's ``RandCropByLabelClassesd``: each crop
centre is a voxel of a class drawn with equal probability among background and the organs the case has, so a small
organ (the aorta is 2 % of a real case's organ voxels) is centred as often as the liver.

Partially annotated runs (:mod:`sslseg.io.annotation`) carry an ``annotated`` mask through the same
transforms (padding is unannotated), and every crop centre lies on an annotated voxel: organ centres on drawn
voxels, the others on annotated body voxels (:class:`AnnotatedCentres`), so crops favour what was drawn.

Item ``(epoch, index)`` draws all its randomness from ``SeedSequence([seed, stream, epoch, index])`` (as the
pretraining dataset does): a sample depends on nothing else, not the worker, the rank or the process history, which
makes runs reproducible and ``--resume`` exact.
"""

from __future__ import annotations

from collections import OrderedDict

import numpy as np
import torch
from torch.utils.data import Dataset

from sslseg.finetune.cases import CachedCase
from sslseg.finetune.label_set import remap

STREAM = 6
#: Memory maps kept open per worker process.
OPEN_MAPS = 16


FG_INDICES, BG_INDICES, CLASS_INDICES = "fg_indices", "bg_indices", "class_indices"


class AnnotatedCentres:
    """Crop centres of a partially annotated sample: organ voxels (``label`` > 0) and annotated body voxels
    (``image`` > 0, label 0), as flat indices under the keys ``RandCropByPosNegLabeld`` reads; with no annotated
    body voxel, any annotated background voxel; with no annotated voxel at all (warned when cached), anywhere: the
    loss gives such crops no weight. With ``classes`` (C): per class 0..C-1 (class 0: the background voxels above)
    under ``CLASS_INDICES``, for ``RandCropByLabelClassesd``."""

    def __init__(self, classes: int | None = None) -> None:
        self.classes = classes

    def __call__(self, data: dict) -> dict:
        label, image, annotated = (np.asarray(data[k])[0] for k in ("label", "image", "annotated"))
        annotated = annotated.astype(bool)
        background = annotated & (label == 0)
        body = background & (image > 0)
        bg = np.flatnonzero(body if body.any() else background)
        if self.classes is not None:
            organs = [np.flatnonzero(annotated & (label == c)) for c in range(1, self.classes)]
            return {**data, CLASS_INDICES: [_anywhere_if_nothing(bg, organs, label.size), *organs]}
        fg = np.flatnonzero(annotated & (label > 0))
        return {**data, FG_INDICES: fg, BG_INDICES: _anywhere_if_nothing(bg, [fg], label.size)}


def _anywhere_if_nothing(background: np.ndarray, organs: list[np.ndarray], size: int) -> np.ndarray:
    """``background``, or every voxel when neither it nor any organ has an annotated voxel."""
    return background if len(background) or any(len(o) for o in organs) else np.arange(size)


def tutorial_transforms(size: int, crops: int, annotated: bool = False, classes: int | None = None):
    """The tutorial's random transforms, keeping sides (dictionary keys ``image``, ``label`` and, when
    ``annotated``, ``annotated``: each (1, X, Y, Z) on the cache's RAS grid, axis 0 from the patient's left to
    right). ``classes`` (C, background included): class-balanced crop centres (``--crop-centres classes``)."""
    from monai.transforms import Compose, RandFlipd, RandRotate90d, RandShiftIntensityd, SpatialPadd

    keys = ["image", "label", "annotated"] if annotated else ["image", "label"]
    return Compose([
        SpatialPadd(keys, spatial_size=(size, size, size), mode="constant"),
        *([AnnotatedCentres(classes)] if annotated else []),
        _crop(keys, size, crops, annotated, classes),
        RandFlipd(keys, prob=0.10, spatial_axis=1),
        RandFlipd(keys, prob=0.10, spatial_axis=2),
        RandRotate90d(keys, prob=0.10, max_k=3, spatial_axes=(1, 2)),
        RandShiftIntensityd(keys="image", offsets=0.10, prob=0.50),
    ])


def _crop(keys: list[str], size: int, crops: int, annotated: bool, classes: int | None):
    """The crop draw: organ/body centres 1:1 (the tutorial), or one class in ``classes`` at a time, equally likely
    (``RandCropByLabelClassesd``; body voxels stand for background, as the tutorial's negatives)."""
    from monai.transforms import RandCropByLabelClassesd, RandCropByPosNegLabeld

    shape = (size, size, size)
    if classes is None:
        centres = {"fg_indices_key": FG_INDICES, "bg_indices_key": BG_INDICES} if annotated else {}
        return RandCropByPosNegLabeld(keys, label_key="label", spatial_size=shape, pos=1, neg=1, num_samples=crops,
                                      image_key="image", image_threshold=0, **centres)
    centres = {"indices_key": CLASS_INDICES} if annotated else {"image_key": "image", "image_threshold": 0}
    return RandCropByLabelClassesd(keys, label_key="label", spatial_size=shape, num_classes=classes,
                                   num_samples=crops, warn=False, **centres)


class LabelledCrops(Dataset):
    """``dataset[(epoch, index)]`` -> ``{"image": (N, 1, S, S, S) float32, "label": (N, 1, S, S, S)}`` (uint8,
    int16 beyond 255 organs), the N crops of case ``index`` with labels renumbered to the run's label set.

    ``classes`` (C, background included): class-balanced crop centres. With ``organs`` (one (C,) bool per case: the
    channels it annotates, see :func:`sslseg.finetune.cases.CaseSet.organ_mask`), items also hold ``"annotated"``
    (N, 1, S, S, S) uint8 (the voxels that count; all 1 for a case annotated throughout) and ``"organs"`` (C,) bool.
    """

    def __init__(self, cases: list[CachedCase], luts: list[np.ndarray], size: int, crops: int, seed: int,
                 organs: list[np.ndarray] | None = None, classes: int | None = None) -> None:
        self.cases, self.luts, self.size, self.crops, self.seed = cases, luts, size, crops, seed
        self.organs, self.classes = organs, classes
        self._transforms = None
        self._maps: OrderedDict[int, tuple] = OrderedDict()

    def __len__(self) -> int:
        return len(self.cases)

    def _arrays(self, index: int) -> tuple:
        if index in self._maps:
            self._maps.move_to_end(index)
        else:
            case = self.cases[index]
            self._maps[index] = (case.image(), case.labels(), case.annotated())
            if len(self._maps) > OPEN_MAPS:
                self._maps.popitem(last=False)
        return self._maps[index]

    def __getitem__(self, item) -> dict:
        epoch, index = item
        partial = self.organs is not None
        if self._transforms is None:
            self._transforms = tutorial_transforms(self.size, self.crops, annotated=partial, classes=self.classes)
        image, labels, annotated = self._arrays(index)
        sample = {"image": np.array(image, dtype=np.float32)[None], "label": remap(labels, self.luts[index])[None]}
        if partial:
            sample["annotated"] = (np.ones(labels.shape, np.uint8) if annotated is None else np.array(annotated))[None]
        seed = int(np.random.SeedSequence([self.seed, STREAM, epoch, index]).generate_state(1)[0])
        crops = self._transforms.set_random_state(seed=seed)(sample)
        item = {key: torch.stack([torch.as_tensor(c[key]) for c in crops]) for key in sample}
        item["image"] = item["image"].float()
        if partial:
            item["organs"] = torch.as_tensor(self.organs[index], dtype=torch.bool)
        return item

    def __getstate__(self):  # memory maps and transforms are rebuilt in each worker process
        state = self.__dict__.copy()
        state["_maps"], state["_transforms"] = OrderedDict(), None
        return state
