"""The study's artefacts: ``study.json`` (plan, every cell, the summary), ``report.md`` (ASCII; MONAI's label-efficiency
table with spreads and the paired differences) and ``label_efficiency.png`` (Dice vs N, one line per
initialisation, error bars: the standard deviation over seeds)."""

from __future__ import annotations

from pathlib import Path

from sslseg.package.files import write_atomically, write_json
from sslseg.study.plan import RANDOM
from sslseg.study.statistics import CONFIDENCE, difference_text, summarise

STUDY_JSON = "study.json"
REPORT = "report.md"
PLOT = "label_efficiency.png"


def write_report(study_dir: Path, plan: dict, cells: list[dict], machine: dict) -> dict:
    """All three files from the finished cells; returns the ``study.json`` content."""
    order = [init["name"] for init in plan["inits"]]
    summary = summarise(cells, order) if cells else {"table": {}, "hd95_mm": {}, "differences": {}}
    total = len(plan_cells(plan))
    study = {"plan": plan, "machine": machine, "cells_done": len(cells), "cells_planned": total,
             "summary": summary, "cells": sorted(cells, key=lambda c: (c["cases"], c["init"], c["seed"]))}
    write_json(Path(study_dir) / STUDY_JSON, study)
    write_atomically(Path(study_dir) / REPORT, lambda p: p.write_text(markdown(study), encoding="utf-8"))
    if cells:
        plot(Path(study_dir) / PLOT, summary)
    return study


def plan_cells(plan: dict) -> list:
    from sslseg.study.plan import StudyPlan

    return StudyPlan.from_json(plan).cells()


def markdown(study: dict) -> str:
    plan, summary = study["plan"], study["summary"]
    counts = [str(n) for n in plan["case_counts"]]
    lines = ["# Label efficiency: does pretraining help?", "",
             f"Data: `{plan['data_dir']}`; held out (every cell scored on them): {', '.join(plan['held_out'])}; "
             f"{plan['seeds']} seed(s); cells done {study['cells_done']} of {study['cells_planned']}.",
             f"Fine-tuning (same for every cell): {_settings(plan['finetune'])}.", "",
             "## Mean Dice on the held-out cases (mean +/- sd over seeds, min..max)", "",
             "| initialisation | " + " | ".join(f"N = {n}" for n in counts) + " |",
             "|---|" + "---|" * len(counts)]
    for init, row in summary["table"].items():
        cells = [_spread(row[n]) if n in row else "-" for n in counts]
        lines.append(f"| {init} | " + " | ".join(cells) + " |")
    if summary.get("hd95_mm"):
        lines += ["", "## Mean HD95 (mm) on the held-out cases (organs the model found; mean +/- sd over seeds)", "",
                  "| initialisation | " + " | ".join(f"N = {n}" for n in counts) + " |", "|---|" + "---|" * len(counts)]
        for init, row in summary["hd95_mm"].items():
            lines.append(f"| {init} | " + " | ".join(f"{row[n]['mean']:.1f} +/- {row[n]['sd']:.1f}" if n in row else "-"
                                                    for n in counts) + " |")
    if summary["differences"]:
        lines += ["", f"## Paired difference SSL - random (mean, {CONFIDENCE:.0%} bootstrap interval over "
                  "(seed, held-out case) pairs)", "",
                  "| initialisation | " + " | ".join(f"N = {n}" for n in counts) + " |", "|---|" + "---|" * len(counts)]
        for init, row in summary["differences"].items():
            cells = [difference_text(row[n]) if n in row else "-" for n in counts]
            lines.append(f"| {init} | " + " | ".join(cells) + " |")
        lines += ["", "An interval that contains 0 shows no effect at this size; pairs of one seed share a training "
                  "run, so with few seeds the interval is optimistic."]
    machine = study.get("machine") or {}
    if machine:
        lines += ["", "Machine: " + ", ".join(f"{k} {v}" for k, v in machine.items()) + "."]
    return "\n".join(lines) + "\n"


def plot(path: Path, summary: dict) -> None:
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    figure = Figure(figsize=(6, 4.2), dpi=110)
    axes = figure.add_subplot()
    rows = summary["table"]
    every = sorted({int(n) for row in rows.values() for n in row})
    for index, (init, row) in enumerate(rows.items()):
        counts = sorted(int(n) for n in row)
        dodge = 2 ** (0.04 * (index - (len(rows) - 1) / 2))  # side by side, so the error bars stay readable
        axes.errorbar([n * dodge for n in counts], [row[str(n)]["mean"] for n in counts],
                      yerr=[row[str(n)]["sd"] for n in counts], marker="o", capsize=3, label=init,
                      color="black" if init == RANDOM else None, linestyle="--" if init == RANDOM else "-")
    axes.set_xscale("log", base=2)
    axes.set_xticks(every, [str(n) for n in every])
    axes.minorticks_off()
    axes.set_xlabel("labelled training cases N")
    axes.set_ylabel("mean Dice, held-out cases")
    axes.set_title("Label efficiency (error bars: sd over seeds)")
    axes.grid(alpha=0.3)
    axes.legend()
    figure.tight_layout()
    write_atomically(path, lambda p: figure.savefig(p, format="png"))


def _spread(s: dict) -> str:
    return f"{s['mean']:.3f} +/- {s['sd']:.3f} ({s['min']:.3f}..{s['max']:.3f})"


def _settings(finetune: dict) -> str:
    return ", ".join(f"{k} {v}" for k, v in sorted(finetune.items()) if v is not None) or "defaults"
