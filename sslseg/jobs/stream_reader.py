"""Read a worker's pipe on a background thread into a queue, so the GUI thread can drain it without blocking.

Threads rather than non-blocking file descriptors: they work the same on Windows (no ``select`` on pipes there),
and they only move text; every callback runs later on the thread that calls :meth:`~sslseg.jobs.runner.Job.poll`.
"""

from __future__ import annotations

import queue
import threading


class StreamReader:
    """Puts ``(name, line)`` for each line of ``stream`` into ``sink``; :attr:`finished` once the pipe closes."""

    def __init__(self, stream, name: str, sink: queue.Queue) -> None:
        self.name, self._stream, self._sink = name, stream, sink
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"sslseg-job-{name}", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            for line in iter(self._stream.readline, ""):
                self._sink.put((self.name, line.rstrip("\r\n")))
        except (OSError, ValueError):
            pass  # the pipe was closed under us: the process is gone
        finally:
            self._done.set()

    @property
    def finished(self) -> bool:
        return self._done.is_set()

    def join(self, timeout: float | None = None) -> bool:
        return self._done.wait(timeout)
