"""``--device auto|cuda|mps|cpu`` (or ``cuda:N``) -> a ``torch.device``, with clear errors for unavailable ones."""

from __future__ import annotations

from sslseg.errors import SSLSegError

CHOICES = ("auto", "cuda", "mps", "cpu")


def _has_mps() -> bool:
    import torch

    backend = getattr(torch.backends, "mps", None)
    return bool(backend and backend.is_available())


def resolve_device(request: str = "auto", local_rank: int = 0, distributed: bool = False):
    """The device to train on. ``auto``: CUDA, then Apple MPS (single process only), then CPU.

    Under ``torchrun`` a bare ``cuda`` means this process's GPU, ``cuda:<LOCAL_RANK>``.
    """
    import torch

    request = (request or "auto").lower()
    if request == "auto":
        if torch.cuda.is_available():
            request = "cuda"
        elif _has_mps() and not distributed:
            request = "mps"
        else:
            request = "cpu"
    if request.startswith("cuda"):
        if not torch.cuda.is_available():
            raise SSLSegError("--device cuda was requested, but this PyTorch sees no CUDA GPU",
                              "use --device cpu (or auto), or install a CUDA build of PyTorch and a GPU driver")
        if request == "cuda":
            request = f"cuda:{local_rank % torch.cuda.device_count()}"
        device = torch.device(request)
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise SSLSegError(f"--device {request}: there are only {torch.cuda.device_count()} CUDA devices",
                              "use --device cuda")
        torch.cuda.set_device(device)
        return device
    if request == "mps":
        if not _has_mps():
            raise SSLSegError("--device mps was requested, but Apple's Metal backend is not available",
                              "use --device cpu (or auto)")
        if distributed:
            raise SSLSegError("multi-process training (torchrun) is not supported on MPS", "use --device cpu or CUDA")
        return torch.device("mps")
    if request == "cpu":
        return torch.device("cpu")
    raise SSLSegError(f"unknown device {request!r}", f"use one of {', '.join(CHOICES)} (or cuda:N)")
