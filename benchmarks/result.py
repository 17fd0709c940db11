"""What a benchmark returns: a titled table plus notes, rendered as a Markdown section."""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass, field


@dataclass
class BenchResult:
    title: str
    columns: list[str]
    rows: list[list] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def to_markdown(self) -> str:
        lines = [f"## {self.title}", "", "| " + " | ".join(self.columns) + " |", "|" + "---|" * len(self.columns)]
        lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in self.rows]
        if self.notes:
            lines += [""] + [f"- {note}" for note in self.notes]
        return "\n".join(lines) + "\n"


def median_seconds(function, repeats: int = 5) -> float:
    """Median wall time of ``function()`` over ``repeats`` calls."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _cell(value) -> str:
    if isinstance(value, float):
        return f"{value:.3g}"
    return str(value)
