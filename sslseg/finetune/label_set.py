"""The label set of a fine-tuning run: the union of organ NAMES over the training cases, numbered 1..N.

Cases number their organs however their files do (a Slicer ``.seg.nrrd`` numbers segments in drawing order); each
case is remapped by name through a lookup table. A case may lack some organs. A value that a case's label map uses
but its table does not name is an error: guessing which organ it is would train the wrong thing.
"""

from __future__ import annotations

import numpy as np

from sslseg.errors import LabelError
from sslseg.labels import LabelTable


def union_of_names(tables: list[LabelTable]) -> LabelTable:
    """Names in order of first appearance (case order, then value order), numbered 1..N; colours kept."""
    union = LabelTable()
    for table in tables:
        for value, label in sorted(table.labels.items()):
            if label.name not in union.names:
                union.add(len(union) + 1, label.name, label.color)
    return union


def remap_lookup(case_table: LabelTable, union: LabelTable, present_values, source: str) -> np.ndarray:
    """A lookup array ``lut[case value] = union value`` covering every value present in the case's label map."""
    present = sorted(int(v) for v in present_values if v != 0)
    unnamed = [v for v in present if v not in case_table]
    if unnamed and len(case_table):
        raise LabelError(
            f"{source} uses label value(s) {unnamed} that its label table does not name",
            "add them to the label table (labels.json / dataset.json), or remove them from the label map",
        )
    lut = np.zeros(max(present, default=0) + 1, dtype=np.uint8 if len(union) < 256 else np.int16)
    for value in present:
        name = case_table.name_of(value)
        if name not in union.names:
            raise LabelError(f"{source}: organ {name!r} is not in the model's label set ({', '.join(union.names)})",
                             "train with this organ included, or remove it from the label map")
        lut[value] = union.value_of(name)
    return lut


def remap(labels: np.ndarray, lut: np.ndarray) -> np.ndarray:
    """Label map (I, J, K) renumbered through ``lut``."""
    return lut[labels]
