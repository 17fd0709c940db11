"""A study's cells: (number of labelled cases N, initialisation, seed), the nested case subsets and the held-out set.

The labelled cases are ordered by a permutation drawn from ``subset_seed`` alone; the first ``test_cases`` of that
order are the held-out set every cell is scored on, and a cell with N cases trains on the next N, so the subsets are
nested (the 2 cases of N = 2 are among the 4 of N = 4) and the same for every initialisation and seed: a difference
between initialisations is never a difference of data.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from sslseg.errors import SSLSegError

RANDOM = "random"


@dataclass(frozen=True)
class Initialisation:
    """name: short label in tables and cell ids; encoder: what ``--encoder`` gets (``none`` for random); weights: the
    encoder weights' SHA-256 when planned (a shard finding other weights is refused)."""

    name: str
    encoder: str
    weights: str | None = None


@dataclass(frozen=True)
class Cell:
    cases: int
    init: Initialisation
    seed: int

    @property
    def id(self) -> str:
        return f"n{self.cases}-{self.init.name}-s{self.seed}"


@dataclass
class StudyPlan:
    """Everything that defines a study's cells; stored as ``plan.json``, so every shard and every resumed run checks it
    runs the same study.

    Attributes:
        case_names: every labelled case, in the data's order; held_out: the cases every cell is scored on;
        pool: the rest, in subset order (N cases: ``pool[:N]``).
        finetune: the fine-tuning settings every cell shares (the same budget for every initialisation).
    """

    data_dir: str
    inits: list[Initialisation]
    case_counts: list[int]
    seeds: int
    subset_seed: int
    held_out: list[str]
    pool: list[str]
    finetune: dict = field(default_factory=dict)

    def cells(self) -> list[Cell]:
        """Every cell, smallest N first, then initialisation, then seed."""
        return [Cell(n, init, seed) for n in self.case_counts for init in self.inits for seed in range(self.seeds)]

    def training_cases(self, cell: Cell) -> list[str]:
        return self.pool[:cell.cases]

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> "StudyPlan":
        return cls(**{**data, "inits": [Initialisation(**i) for i in data["inits"]]})


def initialisations(encoders: list[str]) -> list[Initialisation]:
    """Random first, then each encoder named by its folder or file name (made unique with a counter)."""
    inits, used = [Initialisation(RANDOM, "none")], {RANDOM}
    for encoder in encoders:
        base = re.sub(r"[^A-Za-z0-9_.]+", "_", Path(encoder).name.removesuffix(".safetensors")) or "encoder"
        name, n = base, 2
        while name in used:
            name, n = f"{base}_{n}", n + 1
        used.add(name)
        inits.append(Initialisation(name, str(encoder)))
    return inits


def split_for_study(case_names: list[str], test_cases: int, case_counts: list[int], subset_seed: int,
                    data_dir: str) -> tuple[list[str], list[str]]:
    """(held-out, pool in subset order); an error naming the numbers when the data are too few."""
    if len(set(case_names)) != len(case_names):
        raise SSLSegError(f"{data_dir} holds several cases of one name; a study names its subsets by case",
                          "give each image a distinct name")
    needed = test_cases + max(case_counts)
    if len(case_names) < needed:
        raise SSLSegError(f"{data_dir} has {len(case_names)} labelled cases; the study needs {needed} "
                          f"({test_cases} held out + up to {max(case_counts)} for training)",
                          "lower --cases or --test-cases, or add labelled cases")
    order = np.random.default_rng(subset_seed).permutation(len(case_names))
    ordered = [case_names[i] for i in order]
    return sorted(ordered[:test_cases]), ordered[test_cases:]


def parse_shard(text: str) -> tuple[int, int]:
    """``i/n`` (1 <= i <= n) -> (i, n)."""
    match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text or "")
    if not match or not 1 <= int(match[1]) <= int(match[2]):
        raise SSLSegError(f"--shard {text!r}: expected i/n with 1 <= i <= n, e.g. 2/4", "e.g. --shard $SLURM_ARRAY_TASK_ID/4")
    return int(match[1]), int(match[2])


def shard_cells(cells: list[Cell], shard: tuple[int, int] | None) -> list[Cell]:
    """Shard i of n: every n-th cell starting at the i-th (in the order of :meth:`StudyPlan.cells`)."""
    if shard is None:
        return cells
    i, n = shard
    return cells[i - 1::n]
