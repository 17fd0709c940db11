"""Write a label map with its organ names, in the format the file name asks for."""

from __future__ import annotations

import json
from pathlib import Path

from sslseg.errors import SSLSegError
from sslseg.io.formats import volume_extension
from sslseg.io.segnrrd import write_seg_nrrd
from sslseg.io.volume_io import write_volume
from sslseg.labels import LabelTable
from sslseg.volume import Volume, display_name


def write_label_map(labels: Volume, table: LabelTable, path: str | Path, overwrite: bool = False) -> list[Path]:
    """``.seg.nrrd``: names and colours in the header (Slicer). Other formats: the map plus a ``NAME.json`` sidecar
    (``{"labels": {"1": "liver"}, "colors": {...}}``) that ``sslseg evaluate`` and the readers pick up."""
    path = Path(path)
    ext = volume_extension(path)
    if ext == ".seg.nrrd":
        return [write_seg_nrrd(labels, table, path, overwrite=overwrite)]
    if ext not in (".nii.gz", ".nii", ".nrrd", ".mha"):
        raise SSLSegError(f"cannot write a label map to {path}", "use .seg.nrrd, .nii.gz, .nrrd or .mha")
    sidecar = path.with_name(display_name(path) + ".json")
    if sidecar.exists() and not overwrite:
        raise SSLSegError(f"{sidecar} already exists", "choose another name, or pass --overwrite")
    written = write_volume(labels, path, overwrite=overwrite)
    colors = {str(v): list(label.color) for v, label in table.labels.items() if label.color}
    sidecar.write_text(json.dumps({"labels": table.to_json(), "colors": colors}, indent=1) + "\n", encoding="utf-8")
    return [written, sidecar]
