"""``sslseg study``: plan the cells, run this shard's unfinished ones, write the report from every finished cell.

``STUDY_DIR`` holds ``plan.json`` (checked by every later run and shard: one study per folder), ``cells/<id>/`` (one
fine-tuning MODEL_DIR per cell, ``cell.json`` when done), ``cache/`` (the cases, preprocessed once for all cells) and
the report. Shards running on one shared file system write into the same STUDY_DIR; shards run elsewhere are merged
with ``--collect --from``.
"""

from __future__ import annotations

import json
import logging
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from sslseg.errors import SSLSegError
from sslseg.finetune.config import NEW_FIELD_DEFAULTS
from sslseg.io.pairing import find_labelled_cases
from sslseg.package.files import write_json
from sslseg.study.cell import CELL_RESULT, CELLS, is_done, run_cell
from sslseg.study.plan import StudyPlan, initialisations, shard_cells, split_for_study
from sslseg.study.report import write_report

log = logging.getLogger(__name__)

PLAN = "plan.json"


@dataclass
class StudyConfig:
    """Attributes:
        data_dir: labelled cases (folder or datalist); out_dir: STUDY_DIR.
        encoders: pretraining RUN_DIRs or weights files, each compared with random initialisation.
        case_counts: the numbers N of labelled training cases; seeds: runs per (N, initialisation).
        test_cases: held-out cases every cell is scored on; subset_seed: draws held-out set and subsets.
        shard: (i, n) to run every n-th cell from the i-th, or None for all.
        finetune: FinetuneConfig settings every cell shares (preset, patch_size, max_steps, lr, ...).
    """

    data_dir: str
    out_dir: str
    encoders: list[str] = field(default_factory=list)
    case_counts: list[int] = field(default_factory=lambda: [1, 2, 4])
    seeds: int = 3
    test_cases: int = 2
    subset_seed: int = 0
    shard: tuple[int, int] | None = None
    finetune: dict = field(default_factory=dict)


def make_plan(config: StudyConfig) -> tuple[StudyPlan, list]:
    """(the plan, every labelled case) from the data and the options."""
    if not config.case_counts or min(config.case_counts) < 1 or config.seeds < 1 or config.test_cases < 1:
        raise SSLSegError("--cases, --seeds and --test-cases must be at least 1", "e.g. --cases 1 2 4 --seeds 3")
    for encoder in config.encoders:
        if not Path(encoder).exists():
            raise SSLSegError(f"--encoder {encoder}: no such folder or file", "give a pretraining RUN_DIR or weights file")
    cases, _ = find_labelled_cases(config.data_dir)
    names = [c.name for c in cases]
    held_out, pool = split_for_study(names, config.test_cases, config.case_counts, config.subset_seed,
                                     config.data_dir)
    inits, network = resolved_initialisations(config)
    plan = StudyPlan(data_dir=str(Path(config.data_dir).resolve()), inits=inits,
                     case_counts=sorted(set(config.case_counts)), seeds=config.seeds, subset_seed=config.subset_seed,
                     held_out=held_out, pool=pool, finetune={**config.finetune, **network})
    return plan, cases


def resolved_initialisations(config: StudyConfig) -> tuple[list, dict]:
    """(initialisations with their weights' hashes, {"preset", "patch_size"} every cell uses): the encoders must
    agree on the network, and random initialisation gets the same one (else SSL - random would measure the
    architecture)."""
    from dataclasses import replace

    from sslseg.finetune.encoder import choose_encoder

    preset, patch = config.finetune.get("preset"), config.finetune.get("patch_size")
    choices = [choose_encoder(encoder, preset, patch) for encoder in config.encoders]
    networks = {(c.preset.name, c.preset.img_size) for c in choices}
    if len(networks) > 1:
        listed = "; ".join(f"{e}: {c.preset.name} at {c.preset.img_size}" for e, c in zip(config.encoders, choices))
        raise SSLSegError(f"the encoders differ in network ({listed}): their comparison would measure that",
                          "compare encoders pretrained with one --preset and --patch-size, or give --patch-size")
    if choices:
        preset, patch = choices[0].preset.name, choices[0].preset.img_size
    inits = initialisations(config.encoders)
    for index, choice in enumerate(choices, 1):
        inits[index] = replace(inits[index], weights=choice.origin.get("weights_sha256") or choice.origin.get("sha256"))
    return inits, {"preset": preset, "patch_size": patch}


#: Settings of how a cell runs, not of what it measures: shards may differ in them (one GPU each).
MACHINE_SETTINGS = ("device", "workers", "amp")


def checked_plan(study_dir: Path, plan: StudyPlan) -> None:
    """Write ``plan.json``, or refuse when the folder holds another study."""
    path = study_dir / PLAN
    if path.is_file():
        stored, wanted = _compared(json.loads(path.read_text(encoding="utf-8"))), _compared(plan.to_json())
        differing = sorted(k for k in set(stored) | set(wanted) if stored.get(k) != wanted.get(k))
        if differing:
            raise SSLSegError(f"{study_dir} holds a study planned differently ({', '.join(differing)} differ)",
                              "rerun with the options it was started with (see its plan.json), or choose "
                              "another --out")
    else:
        write_json(path, plan.to_json())


def _compared(plan: dict) -> dict:
    """A plan as flat JSON (``finetune.lr``, ...), without the machine settings (a shard may run on another device);
    a fine-tuning setting a plan predates counts as its value from before it existed."""
    plan = json.loads(json.dumps(plan))
    finetune = {**NEW_FIELD_DEFAULTS, **plan.pop("finetune", {})}
    return {**plan, **{f"finetune.{k}": v for k, v in finetune.items() if k not in MACHINE_SETTINGS}}


def study(config: StudyConfig) -> dict:
    """Run this shard's unfinished cells, then write the report from every finished cell; returns ``study.json``."""
    study_dir = Path(config.out_dir)
    plan, cases = make_plan(config)
    study_dir.mkdir(parents=True, exist_ok=True)
    checked_plan(study_dir, plan)
    held_out = [c for c in cases if c.name in set(plan.held_out)]
    plan.finetune.update({k: v for k, v in config.finetune.items() if k in MACHINE_SETTINGS})  # this shard's
    mine = shard_cells(plan.cells(), config.shard)
    todo = [cell for cell in mine if not is_done(study_dir, cell)]
    log.info("study: %d cells planned, %d in this shard, %d to run (%d done before)", len(plan.cells()), len(mine),
             len(todo), len(mine) - len(todo))
    for number, cell in enumerate(todo, 1):
        log.info("cell %d/%d: %s (training cases: %s)", number, len(todo), cell.id, ", ".join(plan.training_cases(cell)))
        result = run_cell(plan, cell, study_dir, held_out)
        log.info("cell %s: mean Dice %.3f on %d held-out case(s), %.0f s", cell.id, result["mean_dice"] or 0.0,
                 len(held_out), result["seconds"])
    return collect(study_dir)


def collect(study_dir: Path, shard_dirs: list[Path] = ()) -> dict:
    """Copy finished cells of ``shard_dirs`` (same plan) into ``study_dir`` and write the report from every finished
    cell."""
    study_dir = Path(study_dir)
    if not (study_dir / PLAN).is_file():
        raise SSLSegError(f"{study_dir} holds no study ({PLAN} missing)", "give the --out folder of `sslseg study`")
    plan = StudyPlan.from_json(json.loads((study_dir / PLAN).read_text(encoding="utf-8")))
    for other in shard_dirs:
        checked_plan_of(Path(other), plan)
        for result in sorted((Path(other) / CELLS).glob(f"*/{CELL_RESULT}")):
            target = study_dir / CELLS / result.parent.name / CELL_RESULT
            if not target.is_file():
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(result, target)
    planned = {cell.id for cell in plan.cells()}
    cells = [json.loads(p.read_text(encoding="utf-8")) for p in sorted((study_dir / CELLS).glob(f"*/{CELL_RESULT}"))]
    return write_report(study_dir, plan.to_json(), [c for c in cells if c["id"] in planned], _machine())


def checked_plan_of(other: Path, plan: StudyPlan) -> None:
    if not (other / PLAN).is_file():
        raise SSLSegError(f"--from {other}: no {PLAN} there", "give the --out folder of a shard of this study")
    checked_plan(other, plan)


def _machine() -> dict:
    import platform

    import torch

    from sslseg.training.compute import cpu_class, cpu_model

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"
    return {"cpu": cpu_model(), "cpu class": cpu_class(), "torch threads": torch.get_num_threads(), "gpu": gpu,
            "torch": torch.__version__, "python": platform.python_version()}
