"""The reader of our output went away (``sslseg info DIR | head``): a normal end for a command-line tool, not an error.

Python ignores SIGPIPE, so a write to a pipe whose reader has closed raises ``BrokenPipeError`` instead of ending the
process quietly as a C tool would. The command then ends the way such a tool does: nothing on stderr, exit status
141 (128 + SIGPIPE, what a shell reports for ``ls | head``'s ``ls``). Not 0: the output was cut short, and a script
running with ``set -o pipefail`` (or checking the status) should be able to tell, exactly as it can for other tools.
The signal itself is not restored to its default: it would kill a training worker mid-checkpoint when its reader
(a GUI) goes away, without the cleanup that an exception gets.
"""

from __future__ import annotations

import os
import select
import sys

#: 128 + SIGPIPE (13): the status of a Unix tool stopped by a closed pipe.
EXIT_STATUS = 141


def stdout_reader_gone() -> bool:
    """Whether stdout is a pipe or socket whose reading end is closed (poll flags it as an error or hang-up), so that
    a broken pipe elsewhere (to a worker process) is still reported as a failure."""
    try:
        poller = select.poll()
        poller.register(sys.stdout.fileno(), select.POLLOUT)
        return any(events & (select.POLLERR | select.POLLHUP) for _, events in poller.poll(0))
    except (AttributeError, OSError, ValueError):  # no poll() (Windows), or stdout is no file: most likely stdout's
        return True


def discard_stdout() -> None:
    """Point stdout at the null device, so that flushing what is still buffered at exit does not fail again (which
    Python would report as "Exception ignored ... BrokenPipeError" and exit status 120)."""
    discard_stream(sys.stdout)


def discard_stream(stream) -> None:
    """Point ``stream``'s file descriptor (stdout, stderr) at the null device: its reader is gone, and what is still
    buffered, or written later (a log line, a traceback at exit), must not fail again."""
    null = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(null, stream.fileno())
    except (AttributeError, OSError, ValueError):
        pass  # not a real file: nothing will be flushed to a pipe at exit
    finally:
        os.close(null)
