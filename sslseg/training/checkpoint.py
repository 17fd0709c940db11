"""Full training state on disk: written atomically, read back without unpickling code (``weights_only=True``).

A checkpoint holds model, optimiser, scheduler and AMP-scaler state, step/epoch counters, the loss history, the
python/numpy/torch (and CUDA) RNG states, and the run's configuration. Everything is a tensor or a plain Python
value, so ``torch.load(weights_only=True)`` reads it.
"""

from __future__ import annotations

import os
import random
from pathlib import Path

import numpy as np
import torch

from sslseg.errors import SSLSegError
from sslseg.package.safe_torch import load_weights_only

FORMAT = "sslseg-checkpoint"
FORMAT_VERSION = 1


def capture_rng() -> dict:
    """Python, numpy, torch CPU (and CUDA) generator states as tensors and plain values."""
    kind, keys, position, has_gauss, cached = np.random.get_state()
    state = {
        "python": random.getstate(),
        "numpy": {"kind": kind, "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)), "position": int(position),
                  "has_gauss": int(has_gauss), "cached_gaussian": float(cached)},
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict) -> None:
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    n = state["numpy"]
    np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), n["position"], n["has_gauss"],
                         n["cached_gaussian"]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(path: str | Path, state: dict) -> None:
    """``torch.save`` to a temporary file beside ``path``, then rename: a reader never sees half a checkpoint."""
    path = Path(path)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.partial")
    try:
        torch.save({"format": FORMAT, "format_version": FORMAT_VERSION, **state}, temporary)
        os.replace(temporary, path)
    except (OSError, RuntimeError) as error:
        # torch reports a full disk (or a file-size limit) as an opaque RuntimeError of its zip writer
        kept = "the previous checkpoint is intact" if path.is_file() else "no checkpoint was written yet"
        raise SSLSegError(
            f"could not write the checkpoint {path} ({_first_line(error)}); the disk may be full ({kept})",
            "free some disk space (or move the run folder), then continue with --resume" if path.is_file() else
            "free some disk space (or choose another --out), then start again",
        ) from error
    finally:
        temporary.unlink(missing_ok=True)


def load_checkpoint(path: str | Path) -> dict:
    """The checkpoint at ``path``, tensors on the CPU; an error naming the file when it is not one of ours."""
    path = Path(path)
    if not path.is_file():
        raise SSLSegError(f"there is no checkpoint to resume from: {path} does not exist",
                          "start without --resume")
    state = load_weights_only(path, "the checkpoint",
                              "it was not written by sslseg; start the run again with --overwrite",
                              "it was replaced or damaged since sslseg wrote it; start the run again with --overwrite")
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise SSLSegError(f"{path} is not an sslseg checkpoint", "start again with --overwrite")
    if not isinstance(state.get("format_version"), int) or state["format_version"] > FORMAT_VERSION:
        raise SSLSegError(f"{path} was written by a newer sslseg", "update sslseg to resume this run")
    return state


def _first_line(error: BaseException) -> str:
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return lines[0] if lines else type(error).__name__
