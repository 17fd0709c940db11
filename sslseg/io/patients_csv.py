"""Patient, study and frame of reference for volumes without DICOM tags: a folder's ``patients.csv``.

NIfTI, NRRD and MHA files carry no patient ID, so patient-disjoint validation splits and patient-aware positives
(:mod:`sslseg.data.partners`) know nothing about them unless the folder says. ``DATA_DIR/patients.csv``::

    file,patient,study,frame
    p01/arterial.nii.gz,P01,S1,F1
    p01/venous.nii.gz,P01,S1,F1
    p01/followup.nii.gz,P01,S2,

``file``: the path relative to the folder (a DICOM folder stands for every series in it); ``patient`` (required,
non-empty); ``study`` and ``frame`` optional. ``frame`` says which files share one coordinate system (DICOM's Frame of
Reference UID): give two files the same frame only when one RAS point is the same anatomy in both (phases of one
acquisition, or scans registered beforehand), since patient-aware positives pair the same point. A row overrides what
the DICOM tags say; volumes without a row keep their tags.
"""

from __future__ import annotations

import csv
import dataclasses
from pathlib import Path

from sslseg.errors import SSLSegError

FILE_NAME = "patients.csv"
COLUMNS = ("file", "patient", "study", "frame")


@dataclasses.dataclass(frozen=True)
class PatientRow:
    patient: str
    study: str = ""
    frame: str = ""


def read_patients_csv(path: Path) -> dict[Path, PatientRow]:
    """Resolved file path -> its row; a missing column, an empty patient or a file listed twice is an error."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as handle:
            rows = list(csv.DictReader(handle))
            header = [name.strip() for name in (rows[0].keys() if rows else [])]
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise SSLSegError(f"cannot read {path}: {error}", f"write it as UTF-8 CSV with columns {', '.join(COLUMNS)}")
    if not rows:
        raise SSLSegError(f"{path} lists no volumes", f"add a header {','.join(COLUMNS)} and one row per file, or "
                                                      "delete it")
    missing = [name for name in ("file", "patient") if name not in header]
    if missing:
        raise SSLSegError(f"{path} has no column {' or '.join(missing)} (its header: {','.join(header)})",
                          f"the header is {','.join(COLUMNS)} (study and frame may be left out)")
    table: dict[Path, PatientRow] = {}
    for line, row in enumerate(rows, start=2):
        row = {(k or "").strip(): (v or "").strip() for k, v in row.items()}
        file = (path.parent / row["file"]).resolve()
        if not row["file"] or not row["patient"]:
            raise SSLSegError(f"{path} line {line}: the file and patient may not be empty", "fill them or drop the row")
        if file in table:
            raise SSLSegError(f"{path} line {line} lists {row['file']} a second time", "keep one row per file")
        table[file] = PatientRow(row["patient"], row.get("study", ""), row.get("frame", ""))
    return table


def with_patients(entries: list, data_dir: str | Path, path_of=lambda entry: entry.source) -> list:
    """``entries`` (dataclasses with ``patient`` and maybe ``study`` and ``frame``; ``path_of(entry)`` their source
    file) with ``data_dir/patients.csv``'s rows applied; unchanged without the file. A row naming no existing file
    is an error (a typo would otherwise silently leave the volume without its patient); a row of a file that was
    skipped as unreadable is not."""
    path = Path(data_dir) / FILE_NAME
    if not path.is_file():
        return entries
    table = read_patients_csv(path)
    used, result = set(), []
    for entry in entries:
        source = Path(path_of(entry)).resolve()
        row = table.get(source)
        if row is not None:
            used.add(source)
            known = {field.name for field in dataclasses.fields(entry)}
            entry = dataclasses.replace(entry, **{k: v for k, v in dataclasses.asdict(row).items() if k in known})
        result.append(entry)
    absent = sorted(file for file in set(table) - used if not file.exists())
    if absent:
        raise SSLSegError(f"{path} lists {absent[0]}, which does not exist"
                          + (f" ({len(absent)} rows name no file)" if len(absent) > 1 else ""),
                          "give each file's path relative to the folder that holds patients.csv")
    return result
