"""The pluggable self-supervised method: its views, its model (backbone + heads) and its loss.

The training loop knows nothing of a method beyond this interface, so a new one (SimCLR, MoCo, BYOL, SimSiam,
Barlow Twins, VICReg, SwAV, rotation, Rubik's cube, ...) is one new file with one ``@register_method`` class.

Where each part runs:
    * :meth:`SSLMethod.make_views` in DataLoader worker processes, on one un-augmented patch (1, S, S, S) float32 in
      0..1, with a ``numpy.random.RandomState`` derived from (seed, epoch, sample) — never from a global RNG, so a
      sample's views do not depend on worker count, rank or resumption;
    * :meth:`SSLMethod.build_model` once, in the training process;
    * :meth:`SSLMethod.loss` per step on the collated batch (every tensor gains a leading batch axis B).
"""

from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, ClassVar

from sslseg.errors import SSLSegError

if TYPE_CHECKING:
    import torch

#: ``gather(t)``: (B_local, ...) -> (B_global, ...), differentiable; identity in a single process.
Gather = Callable[["torch.Tensor"], "torch.Tensor"]


@dataclass
class LossOutput:
    """A step's loss: ``total`` (0-d tensor, what is back-propagated) and named float parts for logs."""

    total: "torch.Tensor"
    parts: dict[str, float]


class SSLMethod(ABC):
    """One self-supervised method. Subclasses set ``name`` and implement the four abstract methods.

    ``options`` (a JSON-able dict) is recorded in the encoder card and the checkpoint.
    """

    name: ClassVar[str] = ""
    aliases: ClassVar[tuple[str, ...]] = ()

    def __init__(self, **options) -> None:
        self.options = dict(options)

    @abstractmethod
    def make_views(self, patch, random_state) -> dict:
        """Views of one patch for training. ``patch``: numpy (1, S, S, S) float32. Returns name -> array/tensor."""

    @abstractmethod
    def build_model(self, preset):
        """The trainable ``torch.nn.Module`` (encoder + the method's heads) for a ViT preset."""

    @abstractmethod
    def loss(self, model, batch: dict, gather: Gather) -> LossOutput:
        """The training loss of a batch of views; ``gather`` collects a tensor over all processes (DDP)."""

    @abstractmethod
    def encoder_state(self, model) -> dict:
        """The ViT encoder tensors of ``model`` under ``ViTAutoEnc`` names (what ``encoder.safetensors`` holds)."""

    def validation_loss(self, model, batch: dict) -> "torch.Tensor":
        """Per-sample validation loss (B,), summed over processes by the loop; default: the training parts' total."""
        import torch

        with torch.no_grad():
            return self.loss(model, batch, lambda t: t).total.detach().expand(next(iter(batch.values())).shape[0])

    def describe(self) -> dict:
        """What the encoder card records about the method."""
        return {"name": self.name, "options": self.options}


_REGISTRY: dict[str, type[SSLMethod]] = {}


def register_method(cls: type[SSLMethod]) -> type[SSLMethod]:
    """Class decorator: make ``cls`` available to :func:`create_method` under its name and aliases."""
    for key in (cls.name, *cls.aliases):
        if key in _REGISTRY and _REGISTRY[key] is not cls:
            raise ValueError(f"two SSL methods are called {key!r}")
        _REGISTRY[key] = cls
    return cls


#: Modules whose import registers the built-in methods.
BUILTIN_METHOD_MODULES = ("sslseg.ssl.monai_recipe",)


def _load_builtin_methods() -> None:
    for name in BUILTIN_METHOD_MODULES:
        importlib.import_module(name)


def available_methods() -> list[str]:
    """The canonical names of the registered methods."""
    _load_builtin_methods()
    return sorted({cls.name for cls in _REGISTRY.values()})


def create_method(name: str, **options) -> SSLMethod:
    """The method called ``name`` (or one of its aliases) with ``options``."""
    _load_builtin_methods()
    if name not in _REGISTRY:
        raise SSLSegError(f"unknown SSL method {name!r}", f"choose one of {', '.join(available_methods())}")
    return _REGISTRY[name](**options)
