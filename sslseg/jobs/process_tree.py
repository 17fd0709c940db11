"""Start a worker as the leader of a process group of its own, and end that whole group.

A training worker starts data-loading processes (and ``torchrun`` starts one per GPU): killing only the worker would
orphan them, still holding memory and GPUs. On POSIX the worker starts a new session, so its group id is its pid and
every descendant inherits it: :func:`ask_to_stop` asks the worker to stop, :func:`kill_group` ends the group, and
:func:`sweep_group` removes what is left of it after the worker exited. On Windows the worker starts in a new
process group and ``taskkill /T`` ends its tree.
"""

from __future__ import annotations

import os
import signal
import subprocess

POSIX = os.name == "posix"


def spawn(argv: list[str], env: dict, cwd: str | None = None) -> subprocess.Popen:
    """Start ``argv`` with piped stdout/stderr (text, line-buffered) and no stdin, as a new process group."""
    options: dict = {}
    if POSIX:
        options["start_new_session"] = True
    else:  # pragma: no cover - Windows
        options["creationflags"] = subprocess.CREATE_NEW_PROCESS_GROUP | getattr(subprocess, "CREATE_NO_WINDOW", 0)
    return subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env=env, cwd=cwd, text=True, encoding="utf-8", errors="replace", bufsize=1, **options)


def ask_to_stop(process: subprocess.Popen) -> None:
    """SIGTERM to the worker alone: a training worker finishes its step, checkpoints and exits 143, and its
    data-loading processes end with it. Not to the group: a loader process killed by SIGTERM makes torch raise in the
    worker ("DataLoader worker is killed by signal") before the checkpoint is written."""
    if process.poll() is not None:
        return
    if POSIX:
        try:
            os.kill(process.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    else:  # pragma: no cover - Windows: the nearest thing to SIGTERM
        process.send_signal(signal.CTRL_BREAK_EVENT)


def kill_group(process: subprocess.Popen) -> None:
    """SIGKILL to the worker's whole process group (or ``taskkill /T /F`` of its tree on Windows)."""
    if POSIX:
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass  # the group is gone already
        return
    subprocess.run(["taskkill", "/PID", str(process.pid), "/T", "/F"],  # pragma: no cover - Windows
                   capture_output=True, check=False)


def group_alive(pgid: int) -> bool:
    """Whether any process of group ``pgid`` still exists (POSIX; always False elsewhere)."""
    if not POSIX:  # pragma: no cover
        return False
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def sweep_group(process: subprocess.Popen) -> None:
    """After the worker exited, SIGKILL what is left of its group (a stray data-loader process), so nothing
    outlives the job. Done at once after the worker is reaped, while no other group can have its id."""
    if POSIX and group_alive(process.pid):
        kill_group(process)

