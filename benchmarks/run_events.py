"""A training run's events (``RUN_DIR/events.jsonl``), as the benchmarks read them."""

from __future__ import annotations

import json
from pathlib import Path

from sslseg.training.run_dir import EVENTS


def read_events(run_dir: Path) -> list[dict]:
    """Every event a run wrote, in order."""
    return [json.loads(line) for line in (Path(run_dir) / EVENTS).read_text().splitlines()]


def validations(events: list[dict]) -> list[tuple[int, dict]]:
    """(step, Dice per organ) of each validation among a fine-tuning's ``events``."""
    return [(e["step"], e["val_dice_per_organ"]) for e in events
            if e.get("event") == "epoch" and e.get("val_dice") is not None]
