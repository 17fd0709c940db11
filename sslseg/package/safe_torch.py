"""The one way the engine reads ``.pt``/``.pth`` files: ``torch.load(weights_only=True)``, never a full unpickle.

A pickle can name any Python callable to run while it is read (``__reduce__``), so a shared checkpoint or encoder
could run code on the user's machine. ``weights_only=True`` accepts tensors and plain containers only; anything else
is refused here with a message that says why, naming the object the file wanted (and not repeating PyTorch's advice to
load it with ``weights_only=False``, which is exactly what must not be done with a file from elsewhere).
"""

from __future__ import annotations

import pickle
import re
from pathlib import Path

from sslseg.errors import SSLSegError


def load_weights_only(path: str | Path, what: str, hint: str):
    """The content of a torch file, tensors on the CPU.

    Args:
        what: how the file is named in messages (``"the checkpoint"``, ``"the encoder file"``).
        hint: what to do when the file holds code (where a clean file comes from).
    """
    import torch

    path = Path(path)
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        raise SSLSegError(
            f"{what} {path} holds Python objects besides tensors ({_unsafe_object(error)}); reading it would need "
            "full unpickling, which can run arbitrary code, so it is refused", hint) from error
    except Exception as error:  # noqa: BLE001 - torch reports damaged files with many exception types
        raise SSLSegError(f"cannot read {what} {path}: {_first_line(error)}",
                          "it is damaged, truncated or not a torch.save file") from error


def _unsafe_object(error: BaseException) -> str:
    found = re.search(r"Unsupported global: GLOBAL (\S+)", str(error))
    return f"it asks for {found.group(1)}" if found else "not tensors or plain containers"


def _first_line(error: BaseException) -> str:
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return lines[0] if lines else type(error).__name__
