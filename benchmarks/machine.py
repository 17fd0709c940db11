"""A description of the machine a benchmark ran on, for the results table."""

from __future__ import annotations

import os
import platform
from importlib import metadata

from sslseg.training.compute import cpu_class, cpu_model


def torch_threads() -> int | str:
    try:
        import torch
    except ImportError:
        return "no torch"
    return torch.get_num_threads()


def memory_gib() -> float:
    try:
        for line in open("/proc/meminfo", encoding="utf-8"):
            if line.startswith("MemTotal"):
                return int(line.split()[1]) / 2**20
    except OSError:
        pass
    return float("nan")


def gpu() -> str:
    try:
        import torch

        if torch.cuda.is_available():
            return ", ".join(torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count()))
    except ImportError:
        pass
    return "none"


def versions() -> dict[str, str]:
    found = {}
    for name in ("torch", "monai", "numpy", "nibabel", "SimpleITK", "imagehash"):
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return found


def describe() -> list[str]:
    """Markdown bullet lines."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    libraries = ", ".join(f"{k} {v}" for k, v in versions().items())
    return [
        f"- CPU: {cpu_model()} (class {cpu_class()}), {cores} cores available, {torch_threads()} torch threads, "
        f"{memory_gib():.0f} GiB RAM",
        f"- GPU: {gpu()}",
        f"- Python {platform.python_version()}, {platform.system()} {platform.release()}",
        f"- Libraries: {libraries}",
    ]
