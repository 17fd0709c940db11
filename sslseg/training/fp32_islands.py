"""The parts of a model that stay in float32 under bf16/fp16 autocast: normalisation and the attention softmax.

On CUDA, autocast runs ``layer_norm``, ``group_norm`` and ``softmax`` in float32 by itself; on the CPU (torch 2.13)
it does not: a bf16 input gives a bf16 LayerNorm, InstanceNorm and softmax, whose means, variances and probabilities
then carry 8 bits of mantissa. These are what we keep in float32 on every device:

* every normalisation layer (LayerNorm, GroupNorm, InstanceNorm, BatchNorm) computes on a float32 copy of its input
  with autocast off, and returns float32 (the next matrix product casts it down again);
* MONAI's self-attention blocks use ``scaled_dot_product_attention`` (fused attention whose softmax accumulates in
  float32 for bf16 inputs) instead of an einsum followed by a bf16 softmax. With dropout 0 (our presets) both compute
  the same function.

Losses are the third part, handled where they are computed (:func:`sslseg.training.amp.full_precision`).
Applied only when a mixed-precision mode is on, so float32 runs are bit-for-bit what they were.
"""

from __future__ import annotations

import torch
from torch import nn

_NORMS = (nn.LayerNorm, nn.GroupNorm, nn.modules.instancenorm._InstanceNorm, nn.modules.batchnorm._BatchNorm)


def _float32_forward(forward, device_type: str):
    def run(x, *args, **kwargs):
        with torch.autocast(device_type=device_type, enabled=False):
            return forward(x.float(), *args, **kwargs)

    run.sslseg_fp32 = True
    return run


def keep_sensitive_parts_in_fp32(model: nn.Module, device_type: str) -> dict:
    """Patch ``model`` in place (see the module docstring); returns ``{"norms": n, "attention_blocks": m}``."""
    counts = {"norms": 0, "attention_blocks": 0}
    for module in model.modules():
        if isinstance(module, _NORMS) and not getattr(module.forward, "sslseg_fp32", False):
            module.forward = _float32_forward(module.forward, device_type)
            counts["norms"] += 1
        elif _is_monai_attention(module) and not module.use_flash_attention:
            module.use_flash_attention = True
            counts["attention_blocks"] += 1
    return counts


def _is_monai_attention(module: nn.Module) -> bool:
    """A MONAI ``SABlock`` whose fused path is equivalent: no dropout, no saved weights, no relative positions."""
    return (type(module).__name__ == "SABlock" and hasattr(module, "use_flash_attention")
            and not getattr(module, "save_attn", False) and getattr(module, "rel_positional_embedding", None) is None
            and getattr(module, "dropout_rate", 0.0) == 0.0 and not getattr(module, "causal", False))
