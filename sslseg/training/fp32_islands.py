"""What keeps float32 accumulation under bf16/fp16 autocast, beyond what PyTorch's kernels already do.

Measured on torch 2.13's CPU kernels (``Testing/engine/test_precision.py`` holds each fact as a test):

* normalisation (LayerNorm, InstanceNorm, GroupNorm) and softmax given bf16 input compute their statistics (means,
  variances, the exponentials' sum) in float32 and round only the output to bf16: the result lies within 2 bf16 units
  in the last place of float32's on the same input. Casting their inputs up gains nothing, and cost up to 45 % of a
  vit-b UNETR window in bf16 (the decoder's InstanceNorms on 96^3 maps: 2.0 s against 1.4 s);
* MONAI's self-attention blocks (``SABlock``) compute an einsum, a softmax rounded to bf16, then a second einsum.
  ``scaled_dot_product_attention`` is the same function (dropout 0, our presets) fused, with the softmax kept in
  float32 between the two products; on the CPU it was also the fastest variant measured (1.4 s against 2.1 s for a
  vit-b window in bf16, 4.4 s in float32).

So under a mixed-precision mode the attention blocks take the fused path; the losses are computed in float32 where
they are defined (:func:`sslseg.training.amp.full_precision`). Applied only when a mixed mode is on, so float32 runs
stay bit for bit what they were.
"""

from __future__ import annotations

from torch import nn


def use_fused_attention(model: nn.Module) -> int:
    """Switch every equivalent MONAI attention block of ``model`` to the fused path; returns how many."""
    switched = 0
    for module in model.modules():
        if _is_monai_attention(module) and not module.use_flash_attention:
            module.use_flash_attention = True
            switched += 1
    return switched


def _is_monai_attention(module: nn.Module) -> bool:
    """A MONAI ``SABlock`` whose fused path is equivalent: no dropout, no saved weights, no relative positions."""
    return (type(module).__name__ == "SABlock" and hasattr(module, "use_flash_attention")
            and not getattr(module, "save_attn", False) and getattr(module, "rel_positional_embedding", None) is None
            and getattr(module, "dropout_rate", 0.0) == 0.0 and not getattr(module, "causal", False))
