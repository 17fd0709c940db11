"""One engine job: a worker process ``python -m sslseg COMMAND ARGS... [--events -]`` and everything a GUI needs to
follow it. See :mod:`sslseg.jobs.states` for the state diagram.

Usage from a GUI (a Qt timer calls ``poll`` every ~200 ms on the GUI thread; every callback runs inside ``poll``)::

    job = Job("pretrain", [data, "--out", run], python=PythonSlicer, on_event=plot, importer=load_encoder).start()
    ...
    job.poll()          # -> new events; moves the state; runs the importer on the calling thread after exit 0
    job.cancel()        # SIGTERM to the worker now, SIGKILL to its process group after the grace period

and from a script or test: ``Job(...).start().wait()`` (``waitForCompletion``), which raises :class:`JobFailed`
with the worker's own message when it fails.
"""

from __future__ import annotations

import queue
import sys
import time
from typing import Callable

from sslseg.errors import SSLSegError
from sslseg.jobs import process_tree
from sslseg.jobs.events import parse_event
from sslseg.jobs.failure import failure_message
from sslseg.jobs.states import JobState, check_move
from sslseg.jobs.stream_reader import StreamReader
from sslseg.jobs.worker_env import worker_environment

#: Commands that take ``--events`` (the training commands); the others print plain lines.
EVENT_COMMANDS = frozenset({"pretrain", "finetune"})
#: A training worker needs time after SIGTERM to finish its step and write the checkpoint.
DEFAULT_GRACE_S = 30.0
#: How long to wait for the pipes to close once the worker has exited (a stray child may hold them).
PIPE_DRAIN_S = 5.0
#: Lines of output kept for the log (the worker's own events.jsonl keeps everything).
MAX_LOG_LINES = 5000


class JobFailed(SSLSegError):
    """The worker failed; ``message`` and ``hint`` are the worker's own when it gave them."""


def worker_command(python: str, command: str, args: list, events: bool | None = None) -> list[str]:
    """``[python, -m, sslseg, command, *args, --events, -]`` (``--events -`` only for commands that take it)."""
    argv = [str(python), "-m", "sslseg", command, *(str(a) for a in args)]
    if events if events is not None else command in EVENT_COMMANDS:
        argv += ["--events", "-"]
    return argv


class Job:
    """A worker process and its state. Not thread-safe: call every method from one thread (the GUI's).

    Args:
        command, args: the ``sslseg`` sub-command and its arguments.
        python: the interpreter to run (inside Slicer: ``PythonSlicer``).
        events: add ``--events -`` (default: for pretrain and finetune).
        importer: ``importer(job)`` runs after exit 0, in state ``importing``, on the thread that polls (Slicer:
            the GUI thread, where the scene may be changed); raising fails the job with that message.
        on_event, on_log, on_state: ``(event dict)``, ``(stream "stdout"|"stderr", line)``, ``(JobState)``.
        env: the base environment (default ``os.environ``; Slicer passes its start-up environment);
            ``malloc_tuning`` adds the glibc malloc setting (see :mod:`sslseg.jobs.worker_env`).
        grace_s: seconds between SIGTERM and SIGKILL on cancel.
    """

    def __init__(self, command: str, args: list | tuple = (), python: str | None = None, events: bool | None = None,
                 importer: Callable[["Job"], object] | None = None,
                 on_event: Callable[[dict], None] | None = None, on_log: Callable[[str, str], None] | None = None,
                 on_state: Callable[[JobState], None] | None = None, env: dict | None = None,
                 malloc_tuning: bool = True, cwd: str | None = None, grace_s: float = DEFAULT_GRACE_S) -> None:
        self.command = command
        self.argv = worker_command(python or sys.executable, command, list(args), events)
        self.importer, self.on_event, self.on_log, self.on_state = importer, on_event, on_log, on_state
        self.env = worker_environment(env, malloc_tuning)
        self.cwd, self.grace_s = cwd, grace_s
        self.state = JobState.IDLE
        self.events: list[dict] = []
        self.log: list[tuple[str, str]] = []
        self.stderr_lines: list[str] = []
        self.progress: dict | None = None  # the last progress event
        self.result: dict | None = None  # the done event
        self.imported = None  # what the importer returned
        self.message, self.hint = "", ""
        self.exit_code: int | None = None
        self.cancel_requested = False
        self._process = None
        self._queue: queue.Queue = queue.Queue()
        self._readers: list[StreamReader] = []
        self._kill_at: float | None = None
        self._exited_at: float | None = None
        self._timed_out = False

    # -- control ----------------------------------------------------------------------------------------------

    def start(self) -> "Job":
        """Start the worker (state ``starting``); a worker that cannot start fails the job at once."""
        if self.state is not JobState.IDLE:
            raise RuntimeError(f"this job was started already ({self.state.value})")
        self._move(JobState.STARTING)
        try:
            self._process = process_tree.spawn(self.argv, self.env, self.cwd)
        except OSError as error:
            self._fail(f"cannot start the worker {self.argv[0]!r}: {error.strerror or error}",
                       "check the Python executable and that the engine (sslseg) is installed")
            return self
        self._readers = [StreamReader(self._process.stdout, "stdout", self._queue),
                         StreamReader(self._process.stderr, "stderr", self._queue)]
        return self

    def cancel(self, grace_s: float | None = None) -> None:
        """Ask the worker to stop (SIGTERM: a training run finishes its step and checkpoints); SIGKILL to its whole
        process group follows in ``poll``/``wait`` after ``grace_s``, and whatever is left of the group when the
        worker has exited is killed too. The job ends ``cancelled`` once the worker has exited."""
        if self.state is JobState.IDLE:
            self.cancel_requested = True
            self._move(JobState.CANCELLED)
            return
        if self.state not in (JobState.STARTING, JobState.RUNNING) or self._process is None:
            return  # finished, or importing (which runs synchronously on the polling thread)
        grace = self.grace_s if grace_s is None else grace_s
        if not self.cancel_requested:
            self.cancel_requested = True
            self._log("runner", f"cancelling: SIGTERM to the worker (pid {self._process.pid})")
            process_tree.ask_to_stop(self._process)
        deadline = time.monotonic() + max(0.0, grace)
        self._kill_at = deadline if self._kill_at is None else min(self._kill_at, deadline)

    def poll(self) -> list[dict]:
        """Take in what the worker printed since the last call; move the state; return the new events."""
        new_events = self._drain()
        if self._process is None or self.state.finished:
            return new_events
        if self._kill_at is not None and time.monotonic() >= self._kill_at and self._process.poll() is None:
            self._log("runner", "the worker did not stop in time: SIGKILL to its process group")
            process_tree.kill_group(self._process)
            self._kill_at = float("inf")
        if self._process.poll() is not None:
            if self._exited_at is None:
                self._exited_at = time.monotonic()
                process_tree.sweep_group(self._process)
            drained = all(r.finished for r in self._readers)
            if drained or time.monotonic() - self._exited_at > PIPE_DRAIN_S:
                new_events += self._drain()
                self._finish(self._process.returncode)
        return new_events

    def wait(self, timeout: float | None = None, interval: float = 0.05, raise_on_failure: bool = True) -> JobState:
        """Poll until the job is finished (the ``waitForCompletion`` path). ``timeout``: cancel the job when it is
        over and raise ``TimeoutError``. A failed job raises :class:`JobFailed` unless ``raise_on_failure`` is
        False."""
        if self.state is JobState.IDLE:
            raise RuntimeError("start() the job before waiting for it")
        start = time.monotonic()
        while not self.state.finished:
            self.poll()
            if self.state.finished:
                break
            if timeout is not None and time.monotonic() - start > timeout and not self.cancel_requested:
                self.cancel(grace_s=min(self.grace_s, 10.0))
                self._timed_out = True
            time.sleep(interval)
        if self._timed_out:
            raise TimeoutError(f"sslseg {self.command} did not finish within {timeout} s (cancelled)")
        if self.state is JobState.FAILED and raise_on_failure:
            raise JobFailed(self.message, self.hint)
        return self.state

    # -- what a GUI reads ---------------------------------------------------------------------------------------

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    @property
    def log_text(self) -> str:
        return "\n".join(f"[{stream}] {line}" if stream != "stdout" else line for stream, line in self.log)

    def events_of(self, kind: str) -> list[dict]:
        return [e for e in self.events if e.get("event") == kind]

    # -- internals ----------------------------------------------------------------------------------------------

    def _drain(self) -> list[dict]:
        new_events = []
        while True:
            try:
                stream, line = self._queue.get_nowait()
            except queue.Empty:
                return new_events
            if self.state is JobState.STARTING:
                self._move(JobState.RUNNING)
            event = parse_event(line) if stream == "stdout" else None
            if event is None:
                if stream == "stderr":
                    self.stderr_lines = (self.stderr_lines + [line])[-MAX_LOG_LINES:]
                self._log(stream, line)
                continue
            self._take_event(event)
            new_events.append(event)

    def _take_event(self, event: dict) -> None:
        self.events.append(event)
        kind = event["event"]
        if kind == "progress":
            self.progress = event
        elif kind == "done":
            self.result = event
        if kind != "progress":  # progress is for the bar; the log keeps what a reader wants to scroll back to
            self._log("event", _event_line(event))
        if self.on_event is not None:
            self.on_event(event)

    def _finish(self, exit_code: int) -> None:
        self.exit_code = exit_code
        if self.cancel_requested:
            self.message = "cancelled"
            stopped = self.events_of("stopped")
            if stopped and stopped[-1].get("checkpoint"):
                self.message = "cancelled; the run can be resumed from its checkpoint"
            self._move(JobState.CANCELLED)
            return
        if exit_code != 0:
            self._fail(*failure_message(exit_code, self.events, self.stderr_lines))
            return
        self._move(JobState.IMPORTING)
        if self.importer is not None:
            try:
                self.imported = self.importer(self)
            except Exception as error:  # the import's own message, for the message box
                message, hint = (error.message, error.hint) if isinstance(error, SSLSegError) else (str(error), "")
                self._log("runner", f"import failed: {error!r}")
                self._fail(f"the result could not be loaded: {message}", hint)
                return
        self._move(JobState.DONE)

    def _fail(self, message: str, hint: str) -> None:
        self.message, self.hint = message, hint
        self._log("runner", f"failed: {message}" + (f" ({hint})" if hint else ""))
        self._move(JobState.FAILED)

    def _move(self, state: JobState) -> None:
        check_move(self.state, state)
        self.state = state
        if self.on_state is not None:
            self.on_state(state)

    def _log(self, stream: str, line: str) -> None:
        self.log.append((stream, line))
        if len(self.log) > MAX_LOG_LINES:
            del self.log[: len(self.log) - MAX_LOG_LINES]
        if self.on_log is not None:
            self.on_log(stream, line)


def _event_line(event: dict) -> str:
    """A short log line for a non-progress event."""
    fields = {k: v for k, v in event.items() if k not in ("event", "time") and not isinstance(v, (list, dict))}
    return f"{event['event']}: " + ", ".join(f"{k}={v}" for k, v in fields.items())
