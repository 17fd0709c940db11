"""OpenMP threads that sleep while they wait, for every process the engine starts.

libgomp (torch's CPU threads) spins by default while a thread waits for the others. On a machine whose cores are
shared with anything else (Slicer's GUI, a data-loading worker, another job) the spinning threads take the cores from
the thread that has work, and a training step becomes 4-40x slower (measured on the 2-core development machine: a
tiny-preset step 0.2 s passive, 0.8-8.8 s spinning, under load). ``OMP_WAIT_POLICY`` is read once when torch loads,
so it is set in the environment before that: by the command line at start-up and by the job runner for its workers.
A value the user set wins.
"""

from __future__ import annotations

import os
from collections.abc import MutableMapping

VARIABLE, PASSIVE = "OMP_WAIT_POLICY", "PASSIVE"


def prefer_passive_waits(env: MutableMapping[str, str] | None = None) -> None:
    """Set ``OMP_WAIT_POLICY=PASSIVE`` in ``env`` (default: this process's environment) unless it is set."""
    (os.environ if env is None else env).setdefault(VARIABLE, PASSIVE)
