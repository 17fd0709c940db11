"""Mixed precision: ``--amp auto|bf16|fp16|off`` -> an autocast context and a gradient scaler (fp16 only).

bf16 is a speed option that must not change what a user gets. Under every mode the losses (:func:`full_precision`),
the normalisation layers and the attention softmax (:mod:`sslseg.training.fp32_islands`) compute in float32; only
the matrix products and convolutions run in bf16/fp16.

What ``auto`` resolves to (``SSLSEG_AMP=off|bf16|fp16|auto`` in the environment replaces ``auto`` for every
command, so scripts and CI can force a mode; an explicit ``--amp`` still wins):

PARITY_TABLE
"""

from __future__ import annotations

import contextlib
import logging
import os
from dataclasses import dataclass

from sslseg.errors import SSLSegError
from sslseg.training.compute import cpu_has_fast_bf16

log = logging.getLogger(__name__)

CHOICES = ("auto", "bf16", "fp16", "off")
#: ``auto`` for segmentation on a CPU with bf16 matrix instructions (AVX512-BF16, AMX); decided by the parity
#: measurements in the module docstring.
CPU_INFERENCE_WITH_BF16_INSTRUCTIONS = "bf16"


#: What ``auto`` means for each task (``train``: pretraining and fine-tuning; ``inference``: segmentation).
TASKS = ("train", "inference")
#: The environment variable that replaces ``auto``.
ENV = "SSLSEG_AMP"


def requested_mode(request: str | None) -> str:
    """``request`` (an ``--amp`` value), with ``auto`` replaced by ``$SSLSEG_AMP`` when that is set."""
    request = (request or "auto").lower()
    if request not in CHOICES:
        raise SSLSegError(f"unknown --amp {request!r}", f"use one of {', '.join(CHOICES)}")
    if request == "auto":
        forced = os.environ.get(ENV, "").strip().lower()
        if forced and forced not in CHOICES:
            raise SSLSegError(f"unknown {ENV}={forced!r} in the environment", f"set it to one of {', '.join(CHOICES)}"
                              f" or unset it")
        request = forced or "auto"
    return request


def auto_mode(task: str, device) -> str:
    """What ``auto`` resolves to for ``task`` on ``device`` (the rule in the module docstring)."""
    import torch

    if task not in TASKS:
        raise ValueError(f"task must be one of {TASKS}, got {task!r}")
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    if device.type == "cpu" and task == "inference" and cpu_has_fast_bf16():
        return CPU_INFERENCE_WITH_BF16_INSTRUCTIONS
    return "off"


def resolve_amp(request: str, device, task: str = "train") -> str:
    """``"bf16"``, ``"fp16"`` or ``"off"`` for ``task`` on ``device`` (a torch.device)."""
    request = requested_mode(request)
    kind = device.type
    if request == "auto":
        return auto_mode(task, device)
    if request == "fp16" and kind != "cuda":
        raise SSLSegError("--amp fp16 needs a CUDA GPU", "use --amp bf16 or --amp off on this device")
    if request == "bf16" and kind == "cpu" and not cpu_has_fast_bf16():
        log.warning("this CPU has no bf16 matrix instructions: bf16 training is much slower here than --amp off")
    return request


@dataclass
class Precision:
    """Autocast and loss scaling for one mode on one device type."""

    mode: str
    device_type: str

    def __post_init__(self) -> None:
        import torch

        self.scaler = torch.amp.GradScaler(self.device_type, enabled=self.mode == "fp16")

    @property
    def dtype(self):
        import torch

        return {"bf16": torch.bfloat16, "fp16": torch.float16}.get(self.mode)

    def autocast(self):
        """Context for the forward pass and loss (a no-op when off)."""
        import torch

        if self.mode == "off":
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device_type, dtype=self.dtype)

    def prepare(self, model):
        """``model`` with fused attention (softmax accumulated in float32) when a mixed mode is on
        (:mod:`sslseg.training.fp32_islands`); untouched when off. Returns the model."""
        if self.mode != "off":
            from sslseg.training.fp32_islands import use_fused_attention

            use_fused_attention(model)
        return model


def full_precision(tensor):
    """A context with autocast off on ``tensor``'s device, for loss arithmetic: ``with full_precision(logits): ...``
    (cast the tensors to float32 inside it)."""
    import torch

    return torch.autocast(device_type=tensor.device.type, enabled=False)
