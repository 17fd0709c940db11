"""Label tables: which integer value in a label map means which organ (0 is always background)."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np

from sslseg.errors import LabelError

log = logging.getLogger(__name__)

RGB = tuple[float, float, float]


@dataclass(frozen=True)
class Label:
    value: int
    name: str
    color: RGB | None = None  # 0..1


@dataclass
class LabelTable:
    """Organ labels by value; background (0) is implicit and never listed."""

    labels: dict[int, Label] = field(default_factory=dict)

    @classmethod
    def from_names(cls, names: dict[int, str], colors: dict[int, RGB] | None = None) -> "LabelTable":
        table = cls()
        for value, name in sorted(names.items()):
            table.add(value, name, (colors or {}).get(value))
        return table

    def add(self, value: int, name: str, color: RGB | None = None) -> None:
        value, name = int(value), str(name).strip()
        if value == 0:
            return
        if value < 0:
            raise LabelError(f"label value {value} ({name!r}) is negative", "label values are 1..N, 0 = background")
        if not name:
            raise LabelError(f"label value {value} has an empty name", "give every label a name")
        if name in self.names and self.value_of(name) != value:
            raise LabelError(f"label name {name!r} is used for two values", "give each organ one value")
        self.labels[value] = Label(value, name, color)

    @property
    def names(self) -> dict[str, int]:
        return {label.name: value for value, label in sorted(self.labels.items())}

    def value_of(self, name: str) -> int:
        return self.names[name]

    def name_of(self, value: int) -> str:
        return self.labels[value].name if value in self.labels else f"label_{value}"

    def __len__(self) -> int:
        return len(self.labels)

    def __contains__(self, value: int) -> bool:
        return value in self.labels

    def to_json(self) -> dict[str, str]:
        """``{"1": "liver", ...}``, the ``labels`` entry of an MSD ``dataset.json``."""
        return {str(v): label.name for v, label in sorted(self.labels.items())}


def check_label_values(array: np.ndarray, source: str) -> np.ndarray:
    """A label map as int16/uint8, refusing fractional or negative values. Input shape (I, J, K), any dtype."""
    if np.issubdtype(array.dtype, np.floating):
        if not np.all(np.isfinite(array)):
            raise LabelError(f"{source} has NaN or infinite label values", "label maps hold whole numbers 0..N")
        if np.any(array != np.round(array)):
            raise LabelError(
                f"{source} has non-integer values: a probability or intensity image, not a label map",
                "threshold it or export the segmentation as a labelmap",
            )
    if array.size and array.min() < 0:
        raise LabelError(f"{source} has negative label values (min {array.min()})", "label values are 0..N")
    top = int(array.max()) if array.size else 0
    if top > np.iinfo(np.int16).max:
        raise LabelError(f"{source} has label value {top}, above 32767", "renumber the labels")
    return array.astype(np.uint8 if top <= 255 else np.int16, copy=False)


def values_present(array: np.ndarray, chunk_voxels: int = 1 << 22) -> list[int]:
    """Non-zero values of a uint8/int16 (I, J, K) label map, counted in slabs (bincount works in int64)."""
    unsigned = array.view(np.uint16 if array.dtype == np.int16 else np.uint8)
    step = max(1, chunk_voxels // max(1, array.shape[1] * array.shape[2]))
    counts = np.zeros(np.iinfo(unsigned.dtype).max + 1, dtype=np.int64)
    for start in range(0, array.shape[0], step):
        slab = np.bincount(unsigned[start:start + step].ravel())
        counts[: slab.size] += slab
    return [int(v) for v in np.flatnonzero(counts[1:]) + 1]


def warn_about_unnamed(values: list[int], table: LabelTable, source: str) -> list[int]:
    """The label values that ``table`` lacks (their segments will be named ``label_N``), with one warning naming
    them."""
    unknown = [v for v in values if v not in table]
    if unknown:
        log.warning("%s: label value(s) %s are not in the label table; their segments are named label_N", source,
                    ", ".join(map(str, unknown)))
    return unknown
