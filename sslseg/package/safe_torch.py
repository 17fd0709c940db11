"""The one way the engine reads ``.pt``/``.pth`` files: ``torch.load(weights_only=True)``, never a full unpickle.

A pickle can name any Python callable to run while it is read (``__reduce__``), so a shared checkpoint or encoder
could run code on the user's machine. ``weights_only=True`` accepts tensors and plain containers only; anything else
is refused here with a message that says why, naming the object the file wanted (and not repeating PyTorch's advice to
load it with ``weights_only=False``, which is exactly what must not be done with a file from elsewhere). A file that
is not a torch file at all (another format, random bytes, an empty file) is called that, not a dangerous pickle.
"""

from __future__ import annotations

import pickle
import re
import warnings
from pathlib import Path

from sslseg.errors import SSLSegError

#: How every ``torch.save`` file starts: a zip archive (torch >= 1.6) or a pickle (the legacy format, protocol 2 by
#: default; 3..5 when asked for). Python's pickle protocols 2..5 begin with the PROTO opcode and the protocol number.
ZIP_MAGIC = b"PK\x03\x04"
PICKLE_HEADERS = tuple(bytes([0x80, protocol]) for protocol in range(2, 6))
#: ``torch.save``'s legacy tar format (before torch 0.4), still read by ``torch.load``: "ustar" at offset 257.
TAR_MAGIC_OFFSET, TAR_MAGIC = 257, b"ustar"
NOT_TORCH_HINT = "check that the path names the file you meant; PyTorch weights are written with torch.save"


def load_weights_only(path: str | Path, what: str, hint: str, not_torch_hint: str = NOT_TORCH_HINT):
    """The content of a torch file, tensors on the CPU.

    Args:
        what: how the file is named in messages (``"the checkpoint"``, ``"the encoder file"``).
        hint: what to do when the file holds code (where a clean file comes from).
        not_torch_hint: what to do when the file is not a torch file at all.
    """
    import torch

    path = Path(path)
    try:
        with warnings.catch_warnings():
            # torch warns before it fails on a foreign file ("Detected pickle protocol 171 ..."); the user gets our
            # one-line error below instead of its multi-line warning above it
            warnings.simplefilter("ignore")
            return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001 - torch reports foreign and damaged files with many exception types
        raise _refusal(path, what, hint, not_torch_hint, error) from error


def _refusal(path: Path, what: str, hint: str, not_torch_hint: str, error: Exception) -> SSLSegError:
    """Why torch could not read ``path``: not a torch file, a pickle wanting code, or a damaged file."""
    if not _looks_like_torch_file(path):
        return SSLSegError(f"{what} {path} is not a PyTorch weights file (neither a zip archive nor a pickle)",
                           not_torch_hint)
    if isinstance(error, pickle.UnpicklingError):
        return SSLSegError(
            f"{what} {path} holds Python objects besides tensors ({_unsafe_object(error)}); reading it would need "
            "full unpickling, which can run arbitrary code, so it is refused", hint)
    return SSLSegError(f"cannot read {what} {path}: {_first_line(error)}",
                       "it is damaged, truncated or not a torch.save file")


def _looks_like_torch_file(path: Path) -> bool:
    """Whether the file starts as ``torch.save`` files do (checked only after torch failed: never refuses a file
    torch can read)."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(TAR_MAGIC_OFFSET + len(TAR_MAGIC))
    except OSError:
        return True  # unreadable here: let the generic message carry the system's reason
    return head.startswith((ZIP_MAGIC, *PICKLE_HEADERS)) or head[TAR_MAGIC_OFFSET:] == TAR_MAGIC


def _unsafe_object(error: BaseException) -> str:
    found = re.search(r"Unsupported global: GLOBAL (\S+)", str(error))
    return f"it asks for {found.group(1)}" if found else "not tensors or plain containers"


def _first_line(error: BaseException) -> str:
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return lines[0] if lines else type(error).__name__
