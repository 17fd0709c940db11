"""Mixed precision: ``--amp auto|bf16|fp16|off`` -> an autocast context and a gradient scaler (fp16 only).

bf16 is a speed option that must not change what a user gets. Under every mode the losses are computed in float32
(:func:`full_precision`) and the attention takes the fused path whose softmax stays in float32
(:mod:`sslseg.training.fp32_islands`); torch's own CPU kernels keep normalisation and softmax statistics in float32;
the matrix products and convolutions run in bf16/fp16.

What ``auto`` resolves to (``SSLSEG_AMP=off|bf16|fp16|auto`` in the environment replaces ``auto`` for every
command, so scripts and CI can force a mode; an explicit ``--amp`` still wins):

============  ==========================================  =========================================================
task          CPU                                         CUDA GPU
============  ==========================================  =========================================================
training      off (float32) on every CPU class            bf16 where supported, else fp16 (not measured here)
inference     bf16 with bf16 instructions (AVX512-BF16,   bf16 where supported, else fp16 (not measured here)
              AMX), else off
============  ==========================================  =========================================================

Measured with ``python -m benchmarks.run precision`` on a 2-core AMD EPYC of class AVX512-BF16 (torch 2.13; same
seed, data and initial weights on both sides; the machine was shared, so the speeds are ratios, not absolutes):

* fine-tuning, tiny UNETR, 800 steps, 3 seeds, best held-out mean Dice over 8 organs: float32 0.915 (0.894..0.930),
  bf16 0.906 (0.873..0.928); bf16 with every op lowered (before the float32 losses and fused attention) 0.869
  (0.843..0.914). Within the seeds' spread but lower on average, and a float32 model is the same model on every CPU
  class: so training stays float32 on CPUs (``--amp bf16`` trains 1.85x faster per step there, 8.0 against 14.9 s
  for a tiny UNETR step at 96^3, batch 2, for whoever accepts that);
* pretraining, MONAI recipe, 40 steps, 3 seeds: mean loss of the last 8 steps 0.958 in float32, 0.953 in bf16;
* segmentation with a float32-trained model: 99.97 % of voxels labelled as in float32 (99.83 % of organ voxels),
  mean Dice 0.8941 against 0.8944, one vit-b window 1.20 s against 2.32 s: so inference uses bf16 where the CPU has
  bf16 instructions. Without them (AVX2) a bf16 vit-b window took over 60 s against 1.3 s, 40-50x slower.
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
#: ``auto`` for segmentation on a CPU with bf16 matrix instructions (AVX512-BF16, AMX), from the parity measurements
#: in the module docstring.
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
