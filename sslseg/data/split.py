"""Holding out validation volumes (or cases) by a seeded hash of their names and contents, whole patients at a time."""

from __future__ import annotations

from sslseg.data.fingerprint import stable_key


def _groups(entries: list, seed: int) -> list[list[int]]:
    """Indices of ``entries`` grouped by patient (an entry without one is its own group), in seeded hash order: a
    patient's group by its ID, a lone entry by its name and content, as before patients were known."""
    by_patient: dict[str, list[int]] = {}
    groups = []
    for i, entry in enumerate(entries):
        patient = getattr(entry, "patient", "")
        if patient:
            by_patient.setdefault(patient, []).append(i)
        else:
            groups.append((stable_key(seed, entry.name, entry.sha256), [i]))
    groups += [(stable_key(seed, "patient", patient), members) for patient, members in by_patient.items()]
    return [members for _, members in sorted(groups)]


def split_volumes(entries: list, fraction: float, seed: int) -> tuple[list, list]:
    """(train, val): about ``round(fraction * n)`` entries held out (at least 1 when fraction > 0 and n >= 2, never
    all), chosen by a seeded hash of their ``name`` and ``sha256``, so adding entries leaves the others' assignment
    mostly unchanged. Entries with the same ``patient`` (when they have one) are held out or kept together, so no
    patient is in both sets: whole patients are held out in hash order until the count is reached (it may be passed
    by the last patient's other volumes), never the last patient of the training set."""
    n = len(entries)
    n_val = 0 if fraction <= 0 or n < 2 else min(n - 1, max(1, round(fraction * n)))
    held_out: set[int] = set()
    for members in _groups(entries, seed):
        if len(held_out) >= n_val:
            break
        if len(held_out) + len(members) < n:  # something must stay to train on
            held_out.update(members)
    return [e for i, e in enumerate(entries) if i not in held_out], [e for i, e in enumerate(entries) if i in held_out]
