"""Holding out validation volumes (or cases) by a seeded hash of their names and contents."""

from __future__ import annotations

from sslseg.data.fingerprint import stable_key


def split_volumes(entries: list, fraction: float, seed: int) -> tuple[list, list]:
    """(train, val): ``round(fraction * n)`` entries held out (at least 1 when fraction > 0 and n >= 2, never all),
    chosen by a seeded hash of their ``name`` and ``sha256``, so adding entries leaves the others' assignment mostly
    unchanged."""
    n = len(entries)
    n_val = 0 if fraction <= 0 or n < 2 else min(n - 1, max(1, round(fraction * n)))
    ranked = sorted(range(n), key=lambda i: stable_key(seed, entries[i].name, entries[i].sha256))
    held_out = set(ranked[:n_val])
    return [e for i, e in enumerate(entries) if i not in held_out], [e for i, e in enumerate(entries) if i in held_out]
