"""A finished ``sslseg study`` in the scene: its label-efficiency table as a table node and mean Dice against the
number of labelled cases as a chart, one series per initialisation. MRML only (the caller shows them in the layout),
so it runs against slicer-core too."""

from __future__ import annotations

import json
import pathlib

from SSLSegmentationLib.Plots import TrainingPlot

STUDY_JSON = "study.json"
COLUMNS = ("initialisation", "labelled cases", "mean Dice", "sd", "min", "max", "seeds", "SSL - random [95% CI]")


def readStudy(folder) -> dict:
    """``study.json`` of a study folder; a ValueError naming the folder and the fix when there is none."""
    path = pathlib.Path(str(folder)) / STUDY_JSON
    if not path.is_file():
        raise ValueError(f"{folder} holds no finished study ({STUDY_JSON} missing): run `sslseg study` into it, "
                         "or `sslseg study --collect --out FOLDER` after its shards")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except ValueError as error:
        raise ValueError(f"cannot read {path}: {error}") from error


def studyRows(study: dict) -> list[tuple]:
    """One row per (initialisation, N): the columns of :data:`COLUMNS`."""
    from sslseg.study.statistics import difference_text

    summary = study.get("summary", {})
    rows = []
    for init, byCount in summary.get("table", {}).items():
        for count in sorted(byCount, key=int):
            s = byCount[count]
            difference = summary.get("differences", {}).get(init, {}).get(count)
            rows.append((init, int(count), s["mean"], s["sd"], s["min"], s["max"], s["n"],
                         difference_text(difference) if difference else ""))
    return rows


def studyTable(scene, study: dict, name: str = "Label efficiency"):
    """A table node with :func:`studyRows`."""
    tableNode = scene.AddNewNodeByClass("vtkMRMLTableNode", name)
    for column in COLUMNS:
        tableNode.AddColumn().SetName(column)
    for row in studyRows(study):
        index = tableNode.AddEmptyRow()
        for column, value in enumerate(row):
            tableNode.SetCellText(index, column, f"{value:.4f}" if isinstance(value, float) else str(value))
    return tableNode


def studyPlot(scene, study: dict, name: str = "Label efficiency: mean Dice") -> TrainingPlot:
    """Mean Dice on the held-out cases against N, one series per initialisation."""
    plot = TrainingPlot(scene, name, "labelled cases", "labelled training cases N", "mean Dice (held-out cases)")
    table = study.get("summary", {}).get("table", {})
    for count in sorted({int(n) for byCount in table.values() for n in byCount}):
        plot.addRow(count, {init: byCount[str(count)]["mean"] for init, byCount in table.items()
                            if str(count) in byCount})
    return plot
