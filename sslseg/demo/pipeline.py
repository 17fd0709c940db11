"""The main job on built-in data, as a list of timed stages that each read and extend a shared context.

Stages are added as the engine grows (data -> pretrain -> fine-tune -> segment -> report); every stage's wall time
goes into ``report.md``.
"""

from __future__ import annotations

import logging
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from sslseg.errors import SSLSegError

log = logging.getLogger(__name__)

#: Marks a folder as written by the demo, so a re-run may replace it; any other non-empty folder is left alone.
MARKER = ".sslseg-demo"


@dataclass
class DemoContext:
    out: Path
    options: dict
    artefacts: dict[str, Path] = field(default_factory=dict)
    lines: dict[str, list[str]] = field(default_factory=dict)  # report lines per stage
    seconds: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Stage:
    name: str
    run: Callable[[DemoContext], None]


def prepare_output(out: Path) -> None:
    """Create ``out``; replace it only when an earlier demo wrote it."""
    if out.exists() and any(out.iterdir()):
        if not (out / MARKER).exists():
            raise SSLSegError(f"{out} is not empty and was not written by the demo", "choose another --out folder")
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / MARKER).write_text("written by `sslseg demo`; a re-run replaces this folder\n", encoding="utf-8")


def run_stages(context: DemoContext, stages: list[Stage]) -> None:
    for stage in stages:
        print(f"== {stage.name}", flush=True)
        start = time.perf_counter()
        stage.run(context)
        context.seconds[stage.name] = time.perf_counter() - start
        print(f"   {stage.name}: {context.seconds[stage.name]:.1f} s", flush=True)
