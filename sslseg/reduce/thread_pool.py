"""One worker pool per process for the slice hash's parallel parts (numpy chunks or compiled sweeps).

Kept alive between volumes: starting threads per call costs about as much as sweeping a small volume. Keyed by the
process id, so a forked data-loader worker, which has none of its parent's threads, starts its own pool instead of
queueing work for threads that do not exist in it.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache


@lru_cache(maxsize=1)
def _pool(pid: int) -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max(2, os.cpu_count() or 2), thread_name_prefix="sslseg-hash")


def in_parallel(calls: list) -> None:
    """Run ``calls`` (argument-less callables), the first on this thread, the others on the pool; re-raise the first
    error."""
    futures = [_pool(os.getpid()).submit(call) for call in calls[1:]]
    calls[0]()
    for future in futures:
        future.result()
