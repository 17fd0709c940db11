"""Progress reporting: JSON-lines events for programs, ``train_stats.json`` for reattaching, a bar for humans.

Events (one JSON object per line, flushed at once)::

    {"event": "start", ...}
    {"event": "progress", "stage": "pretrain", "epoch": 3, "step": 120, "total_steps": 400, "loss": 0.41,
     "lr": 1e-4, "eta_s": 812.0, ...}
    {"event": "epoch", "epoch": 3, "train_loss": 0.40, "val_loss": 0.12, ...}
    {"event": "warning", "stage": "pretrain", "epoch": 3, "step": 130, "message": "...", "hint": "..."}
                                                                (e.g. collapsed embeddings; the run goes on)
    {"event": "done", ...}
    {"event": "error", "message": "...", "hint": "..."}
    {"event": "stopped", ...}                                   (Ctrl-C; the last checkpoint can be resumed)

A stream whose reader has gone (a GUI that quit, ``| head``) is dropped and the run is asked to stop as on a cancel
(:func:`sslseg.training.stop_signal.request_stop`): it checkpoints, reports ``stopped`` in the files that remain and
exits 141, rather than failing at the next write with neither a checkpoint nor a final status.

``train_stats.json`` ``status``: starting, preprocessing, running, done, failed or stopped (a killed process leaves
"running" with its ``pid``; a reader checks that the process still exists).

``epoch`` counts from 1 in events (the epoch being trained or just finished). Only rank 0 reports; on other ranks
an :class:`EventLog` with ``enabled=False`` does nothing.
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

from sslseg.package.files import write_atomically


def _clean(value):
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


class EventLog:
    """Writes each event to every sink: open text streams, or paths appended to."""

    def __init__(self, sinks: list, enabled: bool = True) -> None:
        self.enabled = enabled
        self.streams = []
        if not enabled:
            return
        for sink in sinks:
            if isinstance(sink, (str, Path)):
                Path(sink).parent.mkdir(parents=True, exist_ok=True)
                self.streams.append((open(sink, "a", encoding="utf-8"), True))
            else:
                self.streams.append((sink, False))

    def emit(self, event: str, **fields) -> None:
        if not self.enabled:
            return
        line = json.dumps(_clean({"event": event, "time": round(time.time(), 3), **fields}), allow_nan=False)
        gone = []
        for stream, owned in self.streams:
            try:
                stream.write(line + "\n")
                stream.flush()
            except (ConnectionError, ValueError):  # a pipe or socket whose reader has gone, or a stream closed
                if owned:
                    raise
                gone.append((stream, owned))
        if gone:
            from sslseg.closed_pipe import discard_stream
            from sslseg.training.stop_signal import request_stop

            for item in gone:
                self.streams.remove(item)
                discard_stream(item[0])  # what is still buffered there must not fail again at exit
            request_stop()

    def error(self, message: str, hint: str = "") -> None:
        self.emit("error", message=message, hint=hint)

    def close(self) -> None:
        for stream, owned in self.streams:
            if owned:
                stream.close()
        self.streams = []


class TrainStats:
    """``train_stats.json``: the run's current state, rewritten atomically (at most once a second unless forced)."""

    def __init__(self, path: str | Path, enabled: bool = True, initial: dict | None = None) -> None:
        self.path, self.enabled = Path(path), enabled
        self.data: dict = {"status": "starting", "pid": os.getpid(), "started": now_iso(), **(initial or {})}
        self._written = 0.0

    def update(self, force: bool = False, **fields) -> None:
        self.data.update(fields)
        if not self.enabled or (not force and time.monotonic() - self._written < 1.0):
            return
        self.data["updated"] = now_iso()
        text = json.dumps(_clean(self.data), indent=1, allow_nan=False) + "\n"
        write_atomically(self.path, lambda p: p.write_text(text, encoding="utf-8"))
        self._written = time.monotonic()


class ProgressBar:
    """A tqdm bar on stderr when stderr is a terminal (and this is rank 0); silent otherwise."""

    def __init__(self, total: int, initial: int, description: str, enabled: bool = True) -> None:
        self.bar = None
        if enabled and sys.stderr.isatty():
            from tqdm import tqdm

            self.bar = tqdm(total=total, initial=initial, desc=description, unit="step", dynamic_ncols=True)

    def update(self, loss: float) -> None:
        if self.bar is not None:
            self.bar.set_postfix(loss=f"{loss:.4f}", refresh=False)
            self.bar.update(1)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
