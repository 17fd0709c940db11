"""Out-of-memory errors (GPU or CPU) turned into an actionable message."""

from __future__ import annotations

import contextlib

from sslseg.errors import SSLSegError


def is_out_of_memory(error: BaseException) -> bool:
    import torch

    if isinstance(error, (torch.OutOfMemoryError, MemoryError)):
        return True
    text = str(error).lower()
    return isinstance(error, RuntimeError) and ("out of memory" in text or "can't allocate memory" in text)


@contextlib.contextmanager
def friendly_out_of_memory(patch_size: int, batch_size: int, device):
    """Re-raise out-of-memory errors as :class:`SSLSegError` suggesting a smaller patch or batch, or the CPU."""
    try:
        yield
    except (RuntimeError, MemoryError) as error:
        if not is_out_of_memory(error):
            raise
        hint = f"try --batch-size {max(1, batch_size // 2)} or --patch-size {max(16, patch_size - 32)}"
        if getattr(device, "type", "cpu") != "cpu":
            hint += ", or --device cpu"
        raise SSLSegError(f"out of memory on {device} (batch {batch_size}, patch {patch_size}^3)", hint) from error
