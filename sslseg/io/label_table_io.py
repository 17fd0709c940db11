"""Read label names from JSON (MSD, nnU-Net v2, TotalSegmentator-style), CSV, or a Slicer colour table."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from sslseg.errors import LabelError
from sslseg.labels import LabelTable

TABLE_FILE_NAMES = ("dataset.json", "labels.json", "labels.csv", "labels.txt", "labels.ctbl")


def read_label_table(path: str | Path) -> LabelTable:
    path = Path(path)
    suffix = path.suffix.lower()
    try:
        if suffix == ".json":
            return _from_json(json.loads(path.read_text(encoding="utf-8")), path)
        if suffix == ".csv":
            return _from_csv(path)
        if suffix in (".txt", ".ctbl"):
            return _from_color_table(path)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, ValueError) as error:
        raise LabelError(f"cannot read label names from {path}: {error}", "fix or remove the file") from error
    raise LabelError(f"{path} is not a label table", "use a .json, .csv or Slicer colour table (.txt, .ctbl)")


def find_label_table(folder: Path, stop_at: Path | None = None) -> Path | None:
    """The nearest label-table file in ``folder`` or its parents (not above ``stop_at``)."""
    folder = folder.resolve()
    stop_at = stop_at.resolve() if stop_at else None
    for directory in (folder, *folder.parents):
        for name in TABLE_FILE_NAMES:
            candidate = directory / name
            if candidate.is_file() and (name != "dataset.json" or has_labels(candidate)):
                return candidate
        if directory == stop_at:
            break
    return None


def has_labels(path: Path) -> bool:
    """Whether a JSON file holds a ``labels`` entry (a label table or sidecar, not some other JSON)."""
    try:
        return "labels" in json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False


def _from_json(data, path: Path) -> LabelTable:
    """``{"labels": {...}}`` or a bare mapping, either value->name (MSD) or name->value (nnU-Net v2)."""
    mapping = data.get("labels", data) if isinstance(data, dict) else None
    if not isinstance(mapping, dict):
        raise LabelError(f"{path} has no label mapping", 'expected {"labels": {"1": "liver", ...}}')
    colors = data.get("colors", {}) if isinstance(data, dict) and "labels" in data else {}
    table = LabelTable()
    for key, item in mapping.items():
        if _is_int(key) and isinstance(item, str):
            color = colors.get(str(key))
            table.add(int(key), item, tuple(float(c) for c in color[:3]) if isinstance(color, list) else None)
        elif isinstance(item, int) and not isinstance(item, bool):
            if str(key).lower() != "background":
                table.add(item, key)
        elif isinstance(item, list):
            raise LabelError(f"{path}: label {key!r} is a region (list of values)", "use one value per organ")
        else:
            raise LabelError(f"{path}: cannot read label entry {key!r}: {item!r}", 'use {"1": "liver"} or {"liver": 1}')
    table.labels.pop(0, None)
    return table


def _from_csv(path: Path) -> LabelTable:
    """Rows ``value,name[,r,g,b]`` (colours 0..255), with or without a header row."""
    table = LabelTable()
    with path.open(newline="", encoding="utf-8") as handle:
        for row in csv.reader(handle):
            if not row or not _is_int(row[0]):
                continue  # header or blank
            table.add(int(row[0]), row[1], _color(row[2:5]))
    return table


def _from_color_table(path: Path) -> LabelTable:
    """Slicer colour table: ``value name r g b a`` per line (0..255), ``#`` comments."""
    table = LabelTable()
    for line in path.read_text(encoding="utf-8").splitlines():
        parts = line.split()
        if len(parts) >= 2 and not line.lstrip().startswith("#") and _is_int(parts[0]):
            table.add(int(parts[0]), parts[1], _color(parts[2:5]))
    return table


def _color(parts: list[str]):
    if len(parts) < 3:
        return None
    return tuple(float(p) / 255.0 for p in parts[:3])


def _is_int(text) -> bool:
    try:
        int(str(text).strip())
        return True
    except ValueError:
        return False
