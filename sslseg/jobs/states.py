"""The states of a job and the moves allowed between them.

::

    idle ──start()──> starting ──first output──> running ──exit 0──> importing ──importer ok──> done
                         │                          │                    └──importer raised──> failed
                         └──────────────┬───────────┘
                                        ├──exit != 0──> failed       (message from the worker's ``error`` event)
                                        └──cancel()───> cancelled    (SIGTERM, then SIGKILL to the group after a grace)

A finished job (done, failed, cancelled) never moves again: start a new :class:`~sslseg.jobs.runner.Job` to retry.
"""

from __future__ import annotations

from enum import Enum


class JobState(str, Enum):
    """Where a job is. A ``str`` so a GUI can show it and JSON can hold it as is."""

    IDLE = "idle"
    STARTING = "starting"
    RUNNING = "running"
    IMPORTING = "importing"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def finished(self) -> bool:
        return self in FINISHED

    @property
    def active(self) -> bool:
        """A worker process may exist (or its result is being imported)."""
        return self in (JobState.STARTING, JobState.RUNNING, JobState.IMPORTING)


FINISHED = frozenset({JobState.DONE, JobState.FAILED, JobState.CANCELLED})

#: state -> states it may move to.
ALLOWED = {
    JobState.IDLE: {JobState.STARTING, JobState.FAILED, JobState.CANCELLED},
    JobState.STARTING: {JobState.RUNNING, JobState.IMPORTING, JobState.FAILED, JobState.CANCELLED},
    JobState.RUNNING: {JobState.IMPORTING, JobState.FAILED, JobState.CANCELLED},
    JobState.IMPORTING: {JobState.DONE, JobState.FAILED},
    JobState.DONE: set(),
    JobState.FAILED: set(),
    JobState.CANCELLED: set(),
}


def check_move(current: JobState, new: JobState) -> None:
    """Raise ``RuntimeError`` for a move the diagram above does not allow (a bug in the caller)."""
    if new not in ALLOWED[current]:
        raise RuntimeError(f"a job cannot go from {current.value} to {new.value}")
