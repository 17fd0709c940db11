"""Run every benchmark (``benchmarks/bench_*.py``, each with ``run() -> BenchResult``) and rewrite RESULTS.md.

    python -m benchmarks.run            # all
    python -m benchmarks.run synth      # only bench_synth.py
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


def discover(selected: list[str]) -> list[str]:
    names = sorted(p.stem for p in HERE.glob("bench_*.py"))
    return [n for n in names if not selected or n.removeprefix("bench_") in selected or n in selected]


def main(argv: list[str]) -> int:
    sections = []
    for name in discover(argv):
        print(f"running {name} ...", flush=True)
        start = time.perf_counter()
        result: BenchResult = importlib.import_module(f"benchmarks.{name}").run()
        print(f"  done in {time.perf_counter() - start:.0f} s", flush=True)
        sections.append(result.to_markdown())
    today = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    text = "\n".join(["# Benchmark results", "", f"Run {today} with `make bench` on:", "", *describe(), "", *sections])
    RESULTS.write_text(text + "\n", encoding="utf-8")
    print(f"wrote {RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
