"""The environment of a worker process: what the engine needs to be found and to run fast, on top of the caller's.

Why each variable:

- ``GLIBC_TUNABLES`` (glibc malloc: no ``mmap`` for large blocks, never trim): 1.5-2x on UNETR training and
  sliding-window inference on CPUs, because the kernel no longer page-faults and zeroes every activation tensor
  again (measured: ~40 % of CPU time). It only works when set before the process starts, which a job runner can do.
  The cost, a higher resident peak, is paid by a process that exits after the job. A user's own malloc setting wins.
- ``OMP_WAIT_POLICY=PASSIVE``: torch's threads sleep instead of spinning while they wait, so a worker sharing the
  cores with Slicer's GUI is not slowed many times over (see :mod:`sslseg.openmp_policy`). A user's own value wins.
- ``PYTHONUNBUFFERED``: events reach the GUI line by line, not in 8 KiB blocks.
- ``PYTHONPATH``: the folder holding the ``sslseg`` package the caller imported, first, so the worker runs the same
  engine (a developer checkout, or the copy a built Slicer extension installs beside its modules).
"""

from __future__ import annotations

import os
from pathlib import Path

from sslseg.openmp_policy import prefer_passive_waits

MALLOC_TUNABLES = "glibc.malloc.mmap_max=0:glibc.malloc.trim_threshold=68719476736"


def engine_root() -> Path:
    """The folder that contains the ``sslseg`` package this process imported."""
    import sslseg

    return Path(sslseg.__file__).resolve().parent.parent


def worker_environment(base: dict | None = None, malloc_tuning: bool = True, extra: dict | None = None) -> dict:
    """A copy of ``base`` (default ``os.environ``) with the variables above set, then ``extra``."""
    env = dict(os.environ if base is None else base)
    if malloc_tuning and "glibc.malloc." not in env.get("GLIBC_TUNABLES", ""):
        env["GLIBC_TUNABLES"] = ":".join(filter(None, [env.get("GLIBC_TUNABLES", ""), MALLOC_TUNABLES]))
    prefer_passive_waits(env)
    env["PYTHONUNBUFFERED"] = "1"
    root = str(engine_root())
    paths = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p and p != root]
    env["PYTHONPATH"] = os.pathsep.join([root, *paths])
    env.update(extra or {})
    return env
