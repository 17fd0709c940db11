"""The model card's ``augmentation`` entry, read off the MONAI transform objects that training runs, so the card
cannot drift from the code (a hand-written list once said ``RandFlipd x3`` while two axes were flipped).

Each transform of the ``Compose`` becomes ``{"transform": class name, "keys": [...], "prob": p, ...}`` plus the
settings that say what it does: spatial sizes, crop ratio and count, flip axes, rotation plane, intensity offsets.
Spatial axes are indices into the (X, Y, Z) grid of the cached cases, which is RAS: each is also named
(``left-right``, ``posterior-anterior``, ``inferior-superior``), so a reader sees that sides are never swapped.
"""

from __future__ import annotations

import json

#: Names of the spatial axes of the cases' RAS grid (index 0 runs from the patient's left to right).
RAS_AXES = ("left-right", "posterior-anterior", "inferior-superior")


def describe_transforms(compose) -> list[dict]:
    """One JSON-able description per transform of a MONAI ``Compose``, in the order they run."""
    return [describe_transform(transform) for transform in compose.transforms]


def describe_transform(transform) -> dict:
    """Class name, keys, probability (random transforms) and the settings :data:`SETTINGS` knows for the class."""
    item = {"transform": type(transform).__name__, "keys": list(getattr(transform, "keys", ()))}
    if hasattr(transform, "prob"):
        item["prob"] = transform.prob
    settings = SETTINGS.get(type(transform).__name__)
    if settings:
        item.update(settings(transform))
    return _jsonable(item)


def axis_names(spatial_axis) -> list[str]:
    """The RAS names of a MONAI ``spatial_axis`` / ``spatial_axes`` value (None: every axis)."""
    if spatial_axis is None:
        return list(RAS_AXES)
    axes = [spatial_axis] if isinstance(spatial_axis, int) else list(spatial_axis)
    return [RAS_AXES[axis] for axis in axes]


def _pad(t) -> dict:
    return {"spatial_size": t.padder.spatial_size, "mode": str(t.padder.mode)}


def _crop(t) -> dict:
    c = t.cropper
    return {"spatial_size": c.spatial_size, "pos_ratio": c.pos_ratio, "num_samples": c.num_samples,
            "label_key": t.label_key, "image_threshold": c.image_threshold}


def _class_crop(t) -> dict:
    c = t.cropper
    return {"spatial_size": c.spatial_size, "num_classes": c.num_classes, "num_samples": c.num_samples,
            "ratios": c.ratios, "label_key": t.label_key}


def _flip(t) -> dict:
    return {"spatial_axis": t.flipper.spatial_axis, "axes": axis_names(t.flipper.spatial_axis)}


def _rotate90(t) -> dict:
    return {"spatial_axes": t.spatial_axes, "axes": axis_names(t.spatial_axes), "max_k": t.max_k}


def _shift_intensity(t) -> dict:
    return {"offsets": t.shifter.offsets}


#: Class name -> the settings worth stating for it (an unlisted transform is still named, with keys and prob).
SETTINGS = {"SpatialPadd": _pad, "RandCropByPosNegLabeld": _crop, "RandCropByLabelClassesd": _class_crop,
            "RandFlipd": _flip, "RandRotate90d": _rotate90,
            "RandShiftIntensityd": _shift_intensity}


def _jsonable(item: dict) -> dict:
    """Tuples as lists, numpy scalars as Python numbers (what ``json`` writes and reads back)."""
    return json.loads(json.dumps(item, default=lambda value: value.item() if hasattr(value, "item") else str(value)))
