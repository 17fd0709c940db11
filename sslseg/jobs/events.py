"""The worker's standard output: JSON-lines events (see :mod:`sslseg.training.events`) mixed with plain lines.

A line that is a JSON object with an ``event`` field is an event; anything else (``sslseg segment``'s summary,
``sslseg preview-views``'s file names) is a log line. Nothing here raises on odd output: a worker's print must not
stop the GUI.
"""

from __future__ import annotations

import json


def parse_event(line: str) -> dict | None:
    """The event on ``line``, or None when the line is not one."""
    text = line.strip()
    if not (text.startswith("{") and text.endswith("}")):
        return None
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return value if isinstance(value, dict) and isinstance(value.get("event"), str) else None


def describe_progress(event: dict) -> str:
    """One line for a progress bar: ``epoch 3/10 · step 120/400 · loss 0.4123 · ETA 13 min``."""
    parts = []
    if event.get("epoch") is not None:
        parts.append(f"epoch {event['epoch']}" + (f"/{event['epochs']}" if event.get("epochs") else ""))
    if event.get("step") is not None:
        parts.append(f"step {event['step']}" + (f"/{event['total_steps']}" if event.get("total_steps") else ""))
    if isinstance(event.get("loss"), (int, float)):
        parts.append(f"loss {event['loss']:.4f}")
    if isinstance(event.get("eta_s"), (int, float)):
        parts.append(f"ETA {format_seconds(event['eta_s'])}")
    return " · ".join(parts)


def progress_fraction(event: dict) -> float | None:
    """Done share 0..1 of a progress event (step / total_steps), or None without totals."""
    step, total = event.get("step"), event.get("total_steps")
    if isinstance(step, (int, float)) and isinstance(total, (int, float)) and total > 0:
        return max(0.0, min(1.0, step / total))
    return None


def format_seconds(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"
