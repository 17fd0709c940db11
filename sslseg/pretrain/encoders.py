"""Which encoders a pretraining RUN_DIR keeps: ``encoder.*``, the best by validation loss (what fine-tuning's
``--encoder RUN_DIR`` loads), and ``encoder_last.*``, the weights after the latest step. Without a validation loss
(no validation volumes, ``--val-every 0``, or before the first validation) the best is the last.

The choice is made from the epoch records of the training state (``TrainState.epochs``: epoch, step, val_loss), which
the checkpoint holds, so a resumed run keeps the best of the steps before the interruption. Each card says how its
encoder was chosen (``provenance.selection``: rule, step, epoch, val_loss).
"""

from __future__ import annotations

from sslseg.models.encoder_io import ENCODER_NAME

BEST = ENCODER_NAME
LAST = "encoder_last"
#: Files of both encoders in RUN_DIR.
FILES = tuple(f"{name}.{ext}" for name in (BEST, LAST) for ext in ("safetensors", "json"))

NOT_VALIDATED = ("last: no validation loss yet (no validation volumes, --val-every 0, or before the first "
                 "validation)")


def best_validated(epochs: list[dict]) -> dict | None:
    """The first epoch record with the lowest validation loss; None if no epoch was validated."""
    scored = [e for e in epochs if e.get("val_loss") is not None]
    return min(scored, key=lambda e: e["val_loss"]) if scored else None


def best_selection(state) -> dict | None:
    """The card's selection entry when the current weights are the best encoder: the best-validated epoch just ended
    here, or nothing was validated yet; None when an earlier epoch's weights stay the best.

    Args:
        state: :class:`~sslseg.training.loop.TrainState` after the latest step.
    """
    best = best_validated(state.epochs)
    if best is None:
        return {"rule": NOT_VALIDATED, "step": state.step, "epoch": epoch_of_latest_step(state), "val_loss": None}
    if best["step"] == state.step:
        return {"rule": "lowest validation loss", "step": best["step"], "epoch": best["epoch"],
                "val_loss": best["val_loss"]}
    return None


def last_selection(state) -> dict:
    """The card's selection entry of the last encoder (its validation loss if its epoch just ended validated)."""
    ended_here = state.epochs and state.epochs[-1]["step"] == state.step
    return {"rule": "last", "step": state.step, "epoch": epoch_of_latest_step(state),
            "val_loss": state.epochs[-1].get("val_loss") if ended_here else None}


def epoch_of_latest_step(state) -> int:
    """1-based number of the epoch the latest step belongs to (0 before any step)."""
    return state.epoch + 1 if state.step_in_epoch else state.epoch
