"""What ran a job: the device, its CPU or GPU class, torch's thread count and the resolved precision.

Results move with the CPU class (bf16 is 40x slower than fp32 without bf16 instructions and faster with them), so
every report names it: ``start`` events, model and encoder cards, the demo's report and benchmark rows.

CPU classes, from the strongest matrix instructions the CPU reports (Linux ``/proc/cpuinfo`` flags):
``AMX`` (amx_bf16), ``AVX512-BF16`` (avx512_bf16), ``AVX-512`` (avx512f), ``AVX2``, else the machine name
(e.g. ``arm64``, where no flags are read).
"""

from __future__ import annotations

import functools
import platform
from pathlib import Path

#: (flag in /proc/cpuinfo, class name), strongest first.
_CLASSES = (("amx_bf16", "AMX"), ("avx512_bf16", "AVX512-BF16"), ("avx512f", "AVX-512"), ("avx2", "AVX2"))


@functools.lru_cache(maxsize=1)
def _cpuinfo() -> str:
    try:
        return Path("/proc/cpuinfo").read_text(errors="ignore")
    except OSError:
        return ""


def cpu_flags() -> set[str]:
    """The first CPU's feature flags (empty where /proc/cpuinfo does not exist)."""
    for line in _cpuinfo().splitlines():
        if line.startswith(("flags", "Features")):
            return set(line.split(":", 1)[1].split())
    return set()


def cpu_class() -> str:
    """``AMX``, ``AVX512-BF16``, ``AVX-512``, ``AVX2`` or the machine name (see the module docstring)."""
    flags = cpu_flags()
    for flag, name in _CLASSES:
        if flag in flags:
            return name
    return platform.machine() or "unknown"


def cpu_has_fast_bf16() -> bool:
    """True when the CPU has bf16 matrix instructions (AVX512-BF16 or AMX)."""
    return cpu_class() in ("AMX", "AVX512-BF16")


def cpu_model() -> str:
    for line in _cpuinfo().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine() or "unknown CPU"


def describe_compute(device, amp: str) -> dict:
    """``{"device", "device_name", "cpu_class", "torch_threads", "amp"}`` for a torch.device (or its type name) and
    a resolved ``--amp`` mode."""
    import torch

    device = torch.device(device)
    name = cpu_model()
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device.index if device.index is not None else torch.cuda.current_device())
    return {"device": str(device), "device_name": name, "cpu_class": cpu_class(),
            "torch_threads": torch.get_num_threads(), "amp": amp}


def compute_summary(compute: dict) -> str:
    """One line for a report: ``cpu (AMD EPYC, AVX2, 2 threads), precision fp32``."""
    precision = {"off": "fp32"}.get(compute["amp"], compute["amp"])
    where = compute["device_name"] if compute["device"].startswith("cuda") else \
        f"{compute['device_name']}, {compute['cpu_class']}, {compute['torch_threads']} threads"
    return f"{compute['device']} ({where}), precision {precision}"
