"""Why a worker failed, in the words a user should read in a message box.

Sources, best first: the worker's ``error`` event (its :class:`~sslseg.errors.SSLSegError` message and hint, also
for out of memory), the ``error:`` / ``hint:`` lines the CLI prints on standard error (commands without events), the
``stopped`` event (someone else signalled the worker), the last lines of standard error (a crash: traceback), and
last the exit status.
"""

from __future__ import annotations

import signal

#: How many trailing stderr lines a crash report quotes.
TAIL_LINES = 6


def failure_message(exit_code: int | None, events: list[dict], stderr_lines: list[str]) -> tuple[str, str]:
    """``(message, hint)`` for a worker that ended with ``exit_code`` (not 0)."""
    for event in reversed(events):
        if event.get("event") == "error" and event.get("message"):
            return str(event["message"]), str(event.get("hint") or "")
    message, hint = _cli_error(stderr_lines)
    if message:
        return message, hint
    for event in reversed(events):
        if event.get("event") == "stopped":
            return str(event.get("message") or "the worker was stopped"), "start it again, or resume the run"
    tail = [line for line in stderr_lines if line.strip()][-TAIL_LINES:]
    status = describe_exit(exit_code)
    if tail:
        return f"the worker {status}: {tail[-1].strip()}", "the log shows the details:\n" + "\n".join(tail)
    return f"the worker {status}", "the log may show more"


def describe_exit(exit_code: int | None) -> str:
    if exit_code is None:
        return "did not report an exit status"
    if exit_code < 0:
        return f"was killed by {_signal_name(-exit_code)}"
    if exit_code > 128 and exit_code - 128 in {s.value for s in signal.Signals}:
        return f"exited with code {exit_code} ({_signal_name(exit_code - 128)})"
    return f"exited with code {exit_code}"


def _cli_error(stderr_lines: list[str]) -> tuple[str, str]:
    """The last ``error: ...`` line of the CLI (and the ``hint: ...`` right after it), or ``("", "")``."""
    for index in range(len(stderr_lines) - 1, -1, -1):
        line = stderr_lines[index]
        if line.startswith("error: "):
            following = stderr_lines[index + 1] if index + 1 < len(stderr_lines) else ""
            hint = following[len("hint: "):] if following.startswith("hint: ") else ""
            return line[len("error: "):].strip(), hint.strip()
        if line.startswith("sslseg ") and ": error: " in line:  # argparse: "sslseg pretrain: error: ..."
            return line.split(": error: ", 1)[1].strip(), "check the settings (the log shows the usage)"
    return "", ""


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"
