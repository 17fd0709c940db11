"""Validation splits keep a patient's volumes on one side (issue 17: patient-aware splits for every method), and
leave the assignment of volumes without a patient as it was."""

from dataclasses import dataclass

from sslseg.data.fingerprint import stable_key
from sslseg.data.split import split_volumes


@dataclass
class Entry:
    name: str
    sha256: str
    patient: str = ""


def test_without_patients_the_held_out_volumes_are_the_first_by_seeded_hash():
    entries = [Entry(f"case_{i}", f"{i:064x}") for i in range(10)]
    for seed in range(5):
        train, val = split_volumes(entries, 0.2, seed)
        ranked = sorted(entries, key=lambda e: stable_key(seed, e.name, e.sha256))
        assert sorted(e.name for e in val) == sorted(e.name for e in ranked[:2])
        assert len(train) == 8


def test_no_patient_is_in_both_sets():
    # 12 scans of 5 patients (one with 5 scans, follow-ups), and 2 scans without a patient ID
    patients = ["A"] * 5 + ["B"] * 2 + ["C"] * 2 + ["D"] + ["E"] * 2
    entries = [Entry(f"scan_{i}", f"{i:064x}", p) for i, p in enumerate(patients)]
    entries += [Entry("lone_1", "f" * 64), Entry("lone_2", "e" * 64)]
    split_anything = 0
    for seed in range(30):
        train, val = split_volumes(entries, 0.2, seed)
        assert train and val and len(train) + len(val) == len(entries)
        assert not {e.patient for e in train if e.patient} & {e.patient for e in val if e.patient}, seed
        split_anything += any(e.patient == "A" for e in val)
    assert 0 < split_anything < 30  # the large patient is held out for some seeds, not always


def test_the_check_can_fail_when_volumes_are_split_one_by_one():
    """Without the grouping (every scan its own group), some seed puts patient A on both sides."""
    entries = [Entry(f"scan_{i}", f"{i:064x}") for i in range(6)]
    both = 0
    for seed in range(30):
        train, val = split_volumes(entries, 0.5, seed)
        both += bool({e.name for e in train} and {e.name for e in val})
    assert both == 30  # with no patient IDs, the six scans of (secretly) one patient always land on both sides
    one_patient = [Entry(e.name, e.sha256, "A") for e in entries]
    train, val = split_volumes(one_patient, 0.5, 0)
    assert len(train) == 6 and val == []  # one patient: nothing can be held out without crossing


def test_fine_tuning_holds_out_whole_patients_too():
    from pathlib import Path

    import numpy as np

    from sslseg.finetune.cases import CachedCase, split_cases
    from sslseg.labels import LabelTable

    patients = ["A", "A", "A", "B", "B", "C", "D", "D"]
    cases = [CachedCase(f"case_{i}", "training", Path("x"), Path("y"), np.eye(4), (1, 1, 1), LabelTable(), (0,),
                        {"label": f"{i:064x}"}, patient) for i, patient in enumerate(patients)]
    for seed in range(20):
        train, val = split_cases(cases, 0.25, seed)
        assert train and val
        assert not {c.patient for c in train} & {c.patient for c in val}, seed
