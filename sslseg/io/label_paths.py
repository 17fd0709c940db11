"""How label-map files are named in the layouts we read (so pretraining never mistakes a label map for a scan)."""

from __future__ import annotations

import re
from pathlib import Path

from sslseg.volume import display_name

LABEL_SUFFIXES = ("_label", "_labels", "_seg", "-label", "_mask")
LABEL_STEMS = re.compile(r"^(label|labels|seg|segmentation|mask)([._-].*)?$", re.IGNORECASE)
LABEL_FOLDERS = ("labelsTr", "labelsTs", "labels")


def is_label_path(path: str | Path) -> bool:
    """Whether a file is named like a label map: ``*_label.*``, ``*_seg.*``, ``*.seg.nrrd``, ``labels.*``,
    or lies in a ``labelsTr``/``labelsTs``/``labels`` folder."""
    path = Path(path)
    stem = display_name(path)
    return (
        path.name.lower().endswith(".seg.nrrd")
        or stem.lower().endswith(LABEL_SUFFIXES)
        or bool(LABEL_STEMS.match(stem))
        or path.parent.name in LABEL_FOLDERS
    )
