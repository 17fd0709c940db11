"""A clean stop on SIGTERM (a GUI's Cancel) or SIGINT (Ctrl-C): finish the step, checkpoint, report, exit 143 / 130.

Two modes, nested: the training loop runs *deferred* — the first signal only sets :attr:`StopSignal.requested`, the
loop finishes its current step, writes a checkpoint and raises :class:`TrainingStopped`; a second signal raises at
once (the last checkpoint stays valid: checkpoints are written atomically). Around the loop (preprocessing, model
set-up, final outputs) a run uses *immediate* mode: the signal raises :class:`TrainingStopped` where the program is,
as Ctrl-C would (every file the engine writes is written atomically, so nothing is left half-written).

:class:`TrainingStopped` is a ``SystemExit`` with code 128 + signal number (130 for SIGINT, 143 for SIGTERM, the
shell's convention for "ended by that signal"): generic ``except Exception`` handlers (which skip unreadable volumes,
for instance) never swallow it, and the process exits with that status once the run has reported the stop.

Handlers are installed only from the main thread (Python's rule) and the previous ones are restored on exit. Under
DDP every process must stop after the same step: :func:`agreed` all-reduces the request each step. DataLoader workers
ignore SIGINT (``sslseg.data.loader.worker_init``), so a terminal's Ctrl-C, which reaches the whole process group,
does not kill them under the loop.

A closed event stream stops a run the same way (:func:`request_stop` with :data:`PIPE_CLOSED`, from
:class:`~sslseg.training.events.EventLog`): the reader of ``--events -`` is gone (Slicer quit, ``| head``), so the
run checkpoints and ends with 141 (128 + SIGPIPE) instead of failing at the next write with no checkpoint. Lines for
a person go through :func:`say`, which stays quiet when stderr is closed too.
"""

from __future__ import annotations

import signal
import sys
import threading

STOP_SIGNALS = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM") if hasattr(signal, name))
#: The stop reason when the event stream's reader went away: SIGPIPE's number (also where the signal does not exist).
PIPE_CLOSED = 13

#: Installed handlers, innermost last (the one :func:`request_stop` asks).
_active: list["StopSignal"] = []


def signal_name(signum: int) -> str:
    if signum == PIPE_CLOSED:
        return "SIGPIPE"
    return signal.Signals(signum).name


def say(line: str) -> None:
    """One line for a person on stderr; nothing when stderr's reader is gone (a second error would hide the first
    and end the process with a traceback instead of its status)."""
    try:
        print(line, file=sys.stderr, flush=True)
    except (OSError, ValueError):
        from sslseg.closed_pipe import discard_stream

        discard_stream(sys.stderr)


def request_stop(signum: int = PIPE_CLOSED) -> bool:
    """Ask the innermost installed :class:`StopSignal` to stop, as if ``signum`` had arrived (deferred in the
    training loop; at once, by raising :class:`TrainingStopped`, elsewhere). Returns False when none is installed."""
    if not _active:
        return False
    _active[-1]._handle(signum, None)
    return True


class TrainingStopped(SystemExit):
    """Training ended on a signal. ``code`` (the exit status) is 128 + ``signum``.

    Attributes:
        signum, signal_name: the signal (``"SIGTERM"``, ``"SIGINT"``).
        step: optimisation steps done and saved in the checkpoint written for the stop (None: stopped outside the
            loop or at once by a second signal; the last regular checkpoint, if any, holds the state).
        epoch: 1-based epoch in progress at the stop (None as for ``step``).
    """

    def __init__(self, signum: int, step: int | None = None, epoch: int | None = None) -> None:
        super().__init__(128 + int(signum))
        self.signum, self.step, self.epoch = int(signum), step, epoch
        self.signal_name = signal_name(signum)

    def __str__(self) -> str:
        where = f" after step {self.step}" if self.step is not None else ""
        return f"stopped by {self.signal_name}{where}"


class StopSignal:
    """Context manager turning SIGINT/SIGTERM into a stop request (``deferred``) or an immediate stop."""

    def __init__(self, deferred: bool = True) -> None:
        self.deferred = deferred
        self.signum: int | None = None
        self._previous: dict = {}

    @property
    def requested(self) -> bool:
        return self.signum is not None

    def stopped(self, step: int | None = None, epoch: int | None = None) -> TrainingStopped:
        """The exception to raise for the request received."""
        return TrainingStopped(self.signum if self.signum is not None else signal.SIGTERM, step, epoch)

    def _handle(self, signum, _frame) -> None:
        if self.deferred and self.signum is None:
            self.signum = signum
            say(f"{signal_name(signum)} received: stopping after the current step (send it again to stop at once)")
            return
        self.signum = signum
        raise TrainingStopped(signum)

    def install(self) -> None:
        """Handle SIGINT and SIGTERM from now on (main thread only; elsewhere nothing changes)."""
        if threading.current_thread() is threading.main_thread() and not self._previous:
            for signum in STOP_SIGNALS:
                self._previous[signum] = signal.signal(signum, self._handle)
            _active.append(self)

    def restore(self) -> None:
        """Put the previous handlers back."""
        for signum, handler in self._previous.items():
            signal.signal(signum, handler if handler is not None else signal.SIG_DFL)
        if self._previous and self in _active:
            _active.remove(self)
        self._previous = {}

    def __enter__(self) -> "StopSignal":
        self.install()
        return self

    def __exit__(self, *exc) -> None:
        self.restore()


def agreed(stop: StopSignal, dist, device) -> bool:
    """Whether any process was asked to stop (one small all-reduce under DDP; every process must call it)."""
    if not getattr(dist, "enabled", False):
        return stop.requested
    from sslseg.training.distributed import all_reduce_sum

    return all_reduce_sum([1.0 if stop.requested else 0.0], dist, device)[0] > 0


def report_stop(stop: TrainingStopped, events, stats, checkpoint, command: str, is_main: bool = True) -> str:
    """Tell everyone a run stopped: a ``stopped`` event, ``train_stats.json`` status ``stopped`` and one stderr line
    with ``command`` (which resumes the run when ``checkpoint`` exists, else starts it again). Returns that line."""
    from pathlib import Path

    resumable = checkpoint is not None and Path(checkpoint).is_file()
    if stop.step is not None:
        saved = f"after step {stop.step}, checkpoint saved"
    elif resumable:
        saved = "at once, the last checkpoint is kept"
    else:
        saved = "before any checkpoint, nothing to resume"
    line = f"stopped by {stop.signal_name} ({saved}); {'resume' if resumable else 'start again'} with: {command}"
    events.emit("stopped", signal=stop.signal_name, exit_code=stop.code, step=stop.step, epoch=stop.epoch,
                checkpoint=str(checkpoint) if resumable else None, resume_command=command, message=line)
    progress = {"step": stop.step} if stop.step is not None else {}
    stats.update(force=True, status="stopped", signal=stop.signal_name, resume_command=command, **progress)
    if is_main:
        say(line)
    return line
