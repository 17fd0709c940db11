"""Run benchmarks (``benchmarks/bench_*.py``, each with ``run() -> BenchResult``) and rebuild RESULTS.md.

    python -m benchmarks.run            # all
    python -m benchmarks.run synth      # only bench_synth.py

Each benchmark's section is kept in ``benchmarks/results/<name>.md`` with the date and machine of its own run, so
running one benchmark replaces only its section; RESULTS.md is all sections in name order.
"""

from __future__ import annotations

import datetime
import importlib
import sys
import time
from pathlib import Path

from benchmarks.machine import describe
from benchmarks.result import BenchResult

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "RESULTS.md"
SECTIONS = HERE / "results"


def discover(selected: list[str]) -> list[str]:
    names = sorted(p.stem for p in HERE.glob("bench_*.py"))
    return [n for n in names if not selected or n.removeprefix("bench_") in selected or n in selected]


def section(result: BenchResult, seconds: float) -> str:
    """The result's Markdown with when, how long and on what machine it ran."""
    today = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return "\n".join([result.to_markdown(), f"Run {today} ({seconds:.0f} s) on:", "", *describe(), ""])


def rebuild_results() -> None:
    parts = [path.read_text(encoding="utf-8") for path in sorted(SECTIONS.glob("bench_*.md"))]
    text = "\n".join(["# Benchmark results", "", "Written by `make bench` (`python -m benchmarks.run [NAME ...]`).",
                      "", *parts])
    RESULTS.write_text(text, encoding="utf-8")


def main(argv: list[str]) -> int:
    SECTIONS.mkdir(exist_ok=True)
    for name in discover(argv):
        print(f"running {name} ...", flush=True)
        start = time.perf_counter()
        result: BenchResult = importlib.import_module(f"benchmarks.{name}").run()
        seconds = time.perf_counter() - start
        print(f"  done in {seconds:.0f} s", flush=True)
        (SECTIONS / f"{name}.md").write_text(section(result, seconds), encoding="utf-8")
        rebuild_results()
    print(f"wrote {RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
