"""The two partial-annotation experiments of the tests and of ``benchmarks/bench_partial.py``, on the labelled
phantoms (6 mm, ``FINETUNE_GRID``; the organ halves resampled to ``HALVES_SPACING_MM``): the same cases annotated
partially, trained once as if undrawn meant background and once with the partial options, scored on fully labelled
held-out cases.

- **slices**: only the liver, drawn on every 10th axial slice of each training case (a different offset per case);
  ``--undrawn-slices unknown`` against ``background``.
- **organ halves**: the first training case draws liver and spleen only, the second the two kidneys only (their
  other organs erased); ``--partial-organs`` against the naive loss that calls the undrawn organs background.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from sslseg.io import read_volume
from sslseg.io.volume_io import write_volume

EVERY_NTH_SLICE = 10
LIVER = 1
HALVES = ({"liver": 1, "spleen": 2}, {"right_kidney": 3, "left_kidney": 4})
#: The organ-halves experiment's voxel size: a 32^3 crop at 8 mm spans 256 mm, nearly the whole phantom (312 x 240 x
#: 204 mm), as a whole-abdomen crop would on a GPU, so each training case's crops show the other case's organs (at
#: 6 mm a crop spans 192 mm and a case's crops often miss them: the naive loss then learned some of them anyway).
HALVES_SPACING_MM = 8.0


def _write_case(source: Path, name: str, out: Path, keep_values: dict[int, int], slice_filter=None) -> dict:
    """Copy case ``name``: labels renumbered by ``keep_values`` (others erased), optionally only on some axial
    slices (``slice_filter(k) -> bool``); returns its datalist entry."""
    image = read_volume(source / "imagesTr" / f"{name}.nii.gz")
    labels = read_volume(source / "labelsTr" / f"{name}.nii.gz")
    kept = np.zeros(labels.shape, dtype=np.uint8)
    for old, new in keep_values.items():
        kept[np.asarray(labels.array) == old] = new
    if slice_filter is not None:  # phantoms are RAS-aligned: k is the axial axis
        kept[:, :, [k for k in range(kept.shape[2]) if not slice_filter(k)]] = 0
    write_volume(image, out / "images" / f"{name}.nii.gz", overwrite=True)
    write_volume(labels.with_array(kept), out / "labels" / f"{name}.nii.gz", overwrite=True)
    return {"image": f"images/{name}.nii.gz", "label": f"labels/{name}.nii.gz"}


def _datalist(out: Path, names: dict[int, str], training: list[dict], validation: list[dict]) -> Path:
    path = out / "datalist.json"
    path.write_text(json.dumps({"labels": {str(v): n for v, n in names.items()}, "training": training,
                                "validation": validation}, indent=1))
    return path


def slices_cohort(source: Path, out: Path, train: list[str], held_out: list[str]) -> Path:
    """Liver only; training cases drawn on every ``EVERY_NTH_SLICE``-th axial slice; held-out cases whole."""
    liver = {LIVER: 1}
    training = [_write_case(source, name, out, liver, lambda k, o=i: k % EVERY_NTH_SLICE == o % EVERY_NTH_SLICE)
                for i, name in enumerate(train)]
    validation = [_write_case(source, name, out, liver) for name in held_out]
    return _datalist(out, {1: "liver"}, training, validation)


def organ_halves_cohort(source: Path, out: Path, train: list[str], held_out: list[str]) -> Path:
    """Training case i draws the organs of ``HALVES[i % 2]`` alone; held-out cases draw all four."""
    every = {**HALVES[0], **HALVES[1]}
    values = {old: new for new, old in enumerate(every.values(), start=1)}
    training = [_write_case(source, name, out, {v: values[v] for v in HALVES[i % 2].values()})
                for i, name in enumerate(train)]
    validation = [_write_case(source, name, out, values) for name in held_out]
    return _datalist(out, {values[v]: n for n, v in every.items()}, training, validation)
