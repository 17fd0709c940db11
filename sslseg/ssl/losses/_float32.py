"""The precision policy of every SSL loss: float32 arithmetic whatever the input dtype and the autocast state."""

from __future__ import annotations

import functools

import torch


def _as_float32(value):
    if isinstance(value, torch.Tensor) and value.is_floating_point():
        return value.float()
    if isinstance(value, (list, tuple)) and value and all(isinstance(v, torch.Tensor) for v in value):
        return [v.float() if v.is_floating_point() else v for v in value]
    return value


def _device(values) -> torch.device:
    for value in values:
        if isinstance(value, torch.Tensor):
            return value.device
        if isinstance(value, list) and value:
            return value[0].device
    return torch.device("cpu")


def in_float32(loss):
    """Decorator: call ``loss`` with autocast off on its tensors' device and every floating tensor argument (or list of
    tensors) cast to float32, so bf16/fp16 features under ``torch.autocast`` still give a float32 loss."""

    @functools.wraps(loss)
    def wrapper(*args, **kwargs):
        args = [_as_float32(a) for a in args]
        kwargs = {k: _as_float32(v) for k, v in kwargs.items()}
        with torch.autocast(device_type=_device([*args, *kwargs.values()]).type, enabled=False):
            return loss(*args, **kwargs)

    return wrapper


def identity(tensor: torch.Tensor) -> torch.Tensor:
    """The ``gather`` of a single process."""
    return tensor
