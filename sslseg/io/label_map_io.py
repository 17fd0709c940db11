"""Read a label map together with its names, whatever file it came in."""

from __future__ import annotations

from pathlib import Path

from sslseg.io.label_table_io import find_label_table, read_label_table
from sslseg.io.segnrrd import read_seg_nrrd
from sslseg.io.volume_io import read_volume
from sslseg.labels import LabelTable, check_label_values
from sslseg.volume import Volume, display_name


def read_label_map(path: str | Path, table_file: Path | None = None) -> tuple[Volume, LabelTable]:
    """Label map (I, J, K, uint8/int16) and names: a ``.seg.nrrd``'s own segments, else ``table_file``, else a
    sidecar ``NAME.json`` or a label table in the same folder; values without a name are called ``label_N``."""
    path = Path(path)
    if path.name.lower().endswith(".seg.nrrd") and table_file is None:
        return read_seg_nrrd(path)
    labels = read_volume(path)
    labels = labels.with_array(check_label_values(labels.array, str(path)))
    sidecar = path.with_name(display_name(path) + ".json")
    table_file = table_file or (sidecar if sidecar.is_file() else find_label_table(path.parent, stop_at=path.parent))
    return labels, read_label_table(table_file) if table_file else LabelTable()
