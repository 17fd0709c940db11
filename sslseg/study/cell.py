"""One study cell: a fine-tuning of the cell's N training cases from its initialisation and seed, then its model
scored on the held-out cases as a user would score it (``sslseg segment`` on the original grid, ``sslseg evaluate``'s
per-organ Dice and HD95, organs matched by name).

A cell lives in ``STUDY_DIR/cells/<id>/`` (a fine-tuning MODEL_DIR); ``cell.json`` is written last, so its presence
means the cell is done and a rerun skips it. A cell killed mid-training resumes from its checkpoint.

Scores per held-out case: every organ of the case's reference; an organ the model does not know (absent from every
training case of a small N) scores Dice 0, as a user would see it. A case's mean Dice is the mean over its organs;
the cell's the mean over cases.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from sslseg.evaluation.compare import compare
from sslseg.finetune.cases import named_table
from sslseg.finetune.config import FinetuneConfig
from sslseg.io.pairing import LabelledCase, load_case
from sslseg.package.files import write_json
from sslseg.study.plan import Cell, StudyPlan

CELL_RESULT = "cell.json"
CELLS = "cells"


def cell_dir(study_dir: Path, cell: Cell) -> Path:
    return Path(study_dir) / CELLS / cell.id


def is_done(study_dir: Path, cell: Cell) -> bool:
    return (cell_dir(study_dir, cell) / CELL_RESULT).is_file()


def run_cell(plan: StudyPlan, cell: Cell, study_dir: Path, held_out: list[LabelledCase]) -> dict:
    """Train (or resume) and score one cell; returns the content of its ``cell.json``."""
    from sslseg.finetune.run import finetune

    out = cell_dir(study_dir, cell)
    started = time.monotonic()
    config = FinetuneConfig(data_dir=plan.data_dir, out_dir=str(out), encoder=cell.init.encoder, seed=cell.seed,
                            only_cases=tuple(plan.training_cases(cell)), val_every=0, val_fraction=0.0,
                            cache_dir=str(Path(study_dir) / "cache"), events=os.devnull,  # MODEL_DIR/events.jsonl
                            **plan.finetune)
    resumable = (out / "checkpoint.pt").is_file()
    summary = finetune(replace(config, resume=resumable, overwrite=not resumable))
    scores = score_model(out, held_out, plan.finetune.get("device", "auto"))
    result = {"id": cell.id, "cases": cell.cases, "init": cell.init.name, "encoder": cell.init.encoder,
              "seed": cell.seed, "training_cases": plan.training_cases(cell), "steps": summary["steps"],
              "seconds": round(time.monotonic() - started, 1), "compute": summary.get("compute"), **scores}
    write_json(out / CELL_RESULT, result)
    return result


def score_model(model_dir: Path, held_out: list[LabelledCase], device: str = "auto") -> dict:
    """``{"held_out": {case: {organ: {"dice", "hd95_mm"}}}, "mean_dice", "per_organ"}`` of the model package."""
    from sslseg.package.model_package import load_model_package
    from sslseg.segmentation.segment import SegmentOptions, Segmenter

    segmenter = Segmenter(load_model_package(model_dir), SegmentOptions(device=device, amp="off"))
    per_case = {}
    for case in held_out:
        image, reference, table = load_case(case)
        values = [int(v) for v in np.unique(reference.array)]
        table = named_table(table, values)  # unnamed label maps: label_N, as fine-tuning names them
        present = {table.name_of(v) for v in values if v}
        organs = {s.organ: s for s in compare(segmenter.segment(image), segmenter.table, reference, table)}
        per_case[case.name] = {organ: {"dice": organs[organ].dice if organs.get(organ) else 0.0,
                                       "hd95_mm": _finite(organs[organ].hd95_mm) if organs.get(organ) else None}
                               for organ in sorted(present)}
    return {"held_out": per_case, **summarise_cases(per_case)}


def summarise_cases(per_case: dict) -> dict:
    """Mean Dice per case over its organs, then over cases; per organ over the cases that have it; HD95 likewise
    over finite values (an organ the model missed has none)."""
    case_means = [float(np.mean([o["dice"] for o in organs.values()])) for organs in per_case.values() if organs]
    names = sorted({organ for organs in per_case.values() for organ in organs})
    per_organ = {n: float(np.mean([c[n]["dice"] for c in per_case.values() if n in c])) for n in names}
    distances = [o["hd95_mm"] for organs in per_case.values() for o in organs.values() if o["hd95_mm"] is not None]
    return {"mean_dice": float(np.mean(case_means)) if case_means else None, "per_organ": per_organ,
            "mean_hd95_mm": float(np.mean(distances)) if distances else None}


def _finite(value: float) -> float | None:
    return None if value is None or math.isnan(value) or math.isinf(value) else float(value)
