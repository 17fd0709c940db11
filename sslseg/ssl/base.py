"""The pluggable self-supervised method: typed options, its views, its model (backbone + heads) and its loss.

The training loop knows nothing of a method beyond this interface, so a new one is one new file with one class
(and one row in :mod:`sslseg.ssl.table`).

Where each part runs:
    * :meth:`SSLMethod.make_views` in DataLoader worker processes, on one un-augmented region (1, R, R, R) float32 in
      0..1, R = :meth:`SSLMethod.region_size` (the patch edge unless the method asks for more, e.g. for random
      resized crops), with a ``numpy.random.RandomState`` derived from (seed, epoch, sample) — never from a global
      RNG, so a sample's views do not depend on worker count, rank or resumption;
    * :meth:`SSLMethod.build_model` once, in the training process;
    * :meth:`SSLMethod.step_loss` per step on the collated batch (every tensor gains a leading batch axis B); for
      joint-embedding methods this is one ``forward(batch, ctx)`` of the model (:mod:`sslseg.ssl.module`), so DDP sees
      one forward per backward even with a target network;
    * :meth:`SSLMethod.after_step` after every optimiser step (EMA of a target network, queue update);
    * :meth:`SSLMethod.param_groups` once, for the optimiser.

Options: each method declares an ``Options`` dataclass; :func:`create_method` builds it from keyword options
(``--method-option key=value`` on the CLI, strings converted to the field's type) and refuses unknown keys.
``temperature`` is passed only to methods whose ``Options`` have it.
"""

from __future__ import annotations

import dataclasses
import importlib
import typing
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, ClassVar

from sslseg.errors import SSLSegError
from sslseg.ssl import table

if TYPE_CHECKING:
    import torch

#: ``gather(t)``: (B_local, ...) -> (B_global, ...), differentiable; identity in a single process.
Gather = Callable[["torch.Tensor"], "torch.Tensor"]


@dataclass
class LossOutput:
    """A step's loss: ``total`` (0-d tensor, what is back-propagated) and named float parts for logs; ``warning``:
    ``(message, hint)`` for the user (e.g. collapsed embeddings), which the training loop reports as a ``warning``
    event, so a method tells the user without knowing the event layer."""

    total: "torch.Tensor"
    parts: dict[str, float]
    warning: tuple[str, str] | None = None


@dataclass
class StepContext:
    """What a step's loss and the after-step update may need beyond the batch.

    Attributes:
        gather: collects a tensor over all processes (DDP), differentiably; identity in one process.
        step: optimisation steps done before this one (in :meth:`SSLMethod.after_step`: including it).
        total_steps: the run's planned steps (momentum schedules run over them).
    """

    gather: Gather = None  # type: ignore[assignment]  (None: identity)
    step: int = 0
    total_steps: int = 1

    def __post_init__(self) -> None:
        if self.gather is None:
            self.gather = _identity

    def at(self, step: int) -> "StepContext":
        """The same context at ``step``."""
        return dataclasses.replace(self, step=step)


def _identity(tensor):
    return tensor


@dataclass(frozen=True)
class NoOptions:
    """A method without options."""


class SSLMethod:
    """One self-supervised method. Subclasses set ``name`` and ``Options`` and implement ``make_views``,
    ``build_model`` and either ``loss`` (a plain model) or a model with ``forward(batch, ctx)``
    (:class:`sslseg.ssl.module.MethodModule`).

    ``options`` (a JSON-able dict) is recorded in the encoder card and the checkpoint.
    """

    name: ClassVar[str] = ""
    Options: ClassVar[type] = NoOptions
    #: What the card says the encoder was trained in.
    trained_in: ClassVar[str] = "monai.networks.nets.ViT"

    def __init__(self, options=None) -> None:
        self.opts = options if options is not None else self.Options()
        self.options = dataclasses.asdict(self.opts)

    # --- data workers -------------------------------------------------------------------------------------------
    def region_size(self, patch_size: int) -> int:
        """Edge of the region cropped from a volume for :meth:`make_views` (default: the patch)."""
        return patch_size

    def make_views(self, region, random_state) -> dict:
        """Views of one region for training. ``region``: numpy (1, R, R, R) float32. Returns name -> tensor."""
        raise NotImplementedError

    def patient_positive_share(self) -> float:
        """The share of samples whose second view comes from a partner scan of the same patient
        (:mod:`sslseg.data.partners`); when > 0 the data set passes ``partner=`` (a region, or None) to
        :meth:`make_views`."""
        return 0.0

    def preview_images(self, views: dict) -> dict:
        """name -> (S, S, S) array of each image view, for ``sslseg preview-views`` (default: every 4-D view)."""
        import numpy as np

        return {k: np.asarray(v)[0] for k, v in views.items() if np.ndim(v) == 4 and k != "gt"}

    # --- training process ---------------------------------------------------------------------------------------
    def build_model(self, preset):
        """The trainable ``torch.nn.Module`` (encoder + the method's heads) for a ViT preset."""
        raise NotImplementedError

    def step_loss(self, model, batch: dict, ctx: StepContext) -> LossOutput:
        """The training loss of a batch: the model's ``forward(batch, ctx)`` (through DDP when wrapped)."""
        return model(batch, ctx)

    def loss(self, model, batch: dict, gather: Gather) -> LossOutput:
        """The training loss with a default context (tests, benchmarks)."""
        return self.step_loss(model, batch, StepContext(gather=gather))

    def after_step(self, model, ctx: StepContext) -> None:
        """Called by the loop after each optimiser step (``ctx.step`` steps done)."""
        bare = getattr(model, "module", model)
        if hasattr(bare, "after_step"):
            bare.after_step(ctx)

    def param_groups(self, model, lr: float, weight_decay: float) -> list[dict]:
        """The optimiser's parameter groups (default: every trainable tensor, one group)."""
        bare = getattr(model, "module", model)
        if hasattr(bare, "param_groups"):
            return bare.param_groups(lr, weight_decay)
        return [{"params": [p for p in bare.parameters() if p.requires_grad]}]

    def validation_loss(self, model, batch: dict) -> "torch.Tensor":
        """Per-sample validation loss (B,), summed over processes by the loop."""
        import torch

        bare = getattr(model, "module", model)
        with torch.no_grad():
            if hasattr(bare, "validation_loss"):
                return bare.validation_loss(batch)
            return self.loss(model, batch, lambda t: t).total.detach().expand(next(iter(batch.values())).shape[0])

    def encoder_state(self, model) -> dict:
        """The ViT encoder tensors of ``model`` under ``ViTAutoEnc`` names (what ``encoder.safetensors`` holds)."""
        return getattr(model, "module", model).encoder_state()

    def describe(self) -> dict:
        """What the encoder card records about the method."""
        return {"name": self.name, "options": self.options}


def method_class(name: str) -> type[SSLMethod]:
    """The class of the method called ``name`` (or an alias), imported from the table's target."""
    canonical = table.canonical_name(name)
    if canonical is None:
        raise SSLSegError(f"unknown SSL method {name!r}", f"choose one of {', '.join(table.available_methods())}")
    module, _, cls = table.METHODS[canonical].target.partition(":")
    return getattr(importlib.import_module(module), cls)


def available_methods() -> list[str]:
    """The canonical names of the methods (see :mod:`sslseg.ssl.table`)."""
    return table.available_methods()


def create_method(name: str, temperature: float | None = None, **options) -> SSLMethod:
    """The method called ``name`` (or an alias) with ``options`` (typed or strings, e.g. from the CLI).

    ``temperature`` goes to the method only if its options have one (``--temperature``, kept for the MONAI recipe and
    the contrastive methods).
    """
    cls = method_class(name)
    if getattr(cls, "legacy_options", False):  # the MONAI recipe takes keyword arguments as it always did
        return cls(**({} if temperature is None else {"temperature": temperature}), **options)
    fields = {f.name: f for f in dataclasses.fields(cls.Options)}
    if temperature is not None and "temperature" in fields:
        options = {**options, "temperature": temperature}
    return cls(parse_options(cls, options))


def parse_options(cls: type[SSLMethod], options: dict):
    """``cls.Options`` from a dict of values or strings; unknown keys and unparsable values are refused."""
    fields = {f.name: f for f in dataclasses.fields(cls.Options)}
    unknown = sorted(set(options) - set(fields))
    if unknown:
        known = ", ".join(fields) or "none"
        raise SSLSegError(f"{cls.name} has no option {', '.join(unknown)}", f"its options are: {known}")
    hints = typing.get_type_hints(cls.Options)
    values = {}
    for key, value in options.items():
        try:
            values[key] = _convert(value, hints[key])
        except (TypeError, ValueError) as error:
            raise SSLSegError(f"{cls.name} option {key}={value!r}: {error}",
                              f"give a {getattr(hints[key], '__name__', hints[key])}") from None
    try:
        return cls.Options(**values)
    except (TypeError, ValueError) as error:
        raise SSLSegError(f"{cls.name} options: {error}", "see the method's options in `sslseg pretrain --help`")


def _convert(value, kind):
    if not isinstance(value, str):
        if kind is float and isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        return value
    if kind is bool:
        if value.lower() in ("1", "true", "yes", "on"):
            return True
        if value.lower() in ("0", "false", "no", "off"):
            return False
        raise ValueError("not a yes/no value")
    if kind in (int, float, str):
        return kind(value)
    origin = typing.get_origin(kind)
    if origin is tuple:
        inner = typing.get_args(kind)[0]
        return tuple(inner(v) for v in value.split(",")) if value.strip() else ()
    return value
