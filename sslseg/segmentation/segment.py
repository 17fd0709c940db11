"""Segment one volume with a model package: preprocess as trained, sliding window, back onto the input's grid."""

from __future__ import annotations

import logging
import os
import sys
from dataclasses import dataclass

import numpy as np

from sslseg.errors import SSLSegError
from sslseg.inference.components import largest_component_per_label
from sslseg.inference.resample_back import labels_on_target_grid
from sslseg.labels import LabelTable
from sslseg.models.unetr import unetr_from_card
from sslseg.package.model_package import ModelPackage
from sslseg.segmentation.fallback import Attempt, with_fallback
from sslseg.segmentation.preprocess import SegmentationPreprocessing, preprocess_image
from sslseg.segmentation.sliding_window import predict_probabilities
from sslseg.volume import Volume, VolumeMeta

log = logging.getLogger(__name__)


@dataclass
class SegmentOptions:
    device: str = "auto"
    amp: str = "auto"
    overlap: float = 0.25
    sw_batch_size: int = 1
    largest_component: bool = False


class Segmenter:
    """A loaded model, ready to segment volume after volume."""

    def __init__(self, package: ModelPackage, options: SegmentOptions) -> None:
        from sslseg.training.amp import Precision, resolve_amp
        from sslseg.training.device import resolve_device

        self.options = options
        self.table: LabelTable = package.label_table
        self.settings = SegmentationPreprocessing.from_card(package.card["preprocessing"])
        self.model, self.preset = _model_with_weights(package)
        self.device = resolve_device(options.device)
        self.precision = Precision(resolve_amp(options.amp, self.device, "inference"), self.device.type)
        self.precision.prepare(self.model)
        self.model.to(self.device).eval()

    @property
    def compute(self) -> dict:
        """Device, CPU class, torch threads, precision (:func:`sslseg.training.compute.describe_compute`)."""
        from sslseg.training.compute import describe_compute

        return describe_compute(self.device, self.precision.mode)

    def segment(self, volume: Volume) -> Volume:
        """Label map (I, J, K) on exactly ``volume``'s grid; values as in :attr:`table`.

        Out of memory in the sliding window is retried with one window at a time, then on the CPU (see
        :mod:`sslseg.segmentation.fallback`); the device and batch that worked are kept for the next volume.
        """
        image = preprocess_image(volume, self.settings)
        release_free_memory()  # the resampling's temporaries (GBs for a 512^2 CT): before the windows' activations
        source = volume.meta.source or "the volume"
        probabilities = with_fallback(lambda attempt: self._predict(image.array, attempt), self.device,
                                      self.options.sw_batch_size, self.preset.img_size, source)
        release_free_memory()
        labels = labels_on_target_grid(probabilities, image.affine, volume.shape, volume.affine)
        del probabilities
        if self.options.largest_component:
            labels = largest_component_per_label(labels)
        meta = VolumeMeta(source=volume.meta.source, modality="SEG", description="sslseg segmentation")
        return Volume(labels, volume.affine.copy(), meta)

    def _predict(self, array: np.ndarray, attempt: Attempt):
        """Class probabilities computed as ``attempt`` says; moving to its device (the CPU fallback) first."""
        if attempt.device != self.device:
            self._move_to(attempt.device)
        self.options.sw_batch_size = attempt.batch
        return predict_probabilities(self.model, array, self.preset.img_size, self.options.overlap, attempt.batch,
                                     attempt.device, self.precision, foreground=0.0, workers=attempt.workers)

    def _move_to(self, device) -> None:
        from sslseg.training.amp import Precision, resolve_amp

        self.model.to(device)
        self.device = device
        try:
            mode = resolve_amp(self.options.amp, device, "inference")
        except SSLSegError:  # e.g. fp16, a GPU-only mode: full precision on the CPU
            mode = "off"
        self.precision = Precision(mode, device.type)
        self.precision.prepare(self.model)


#: glibc ``mallopt`` parameters (malloc.h) and the values that the ``GLIBC_TUNABLES`` spelling
#: ``glibc.malloc.mmap_max=0:glibc.malloc.trim_threshold=68719476736`` sets at start-up.
_M_TRIM_THRESHOLD, _M_MMAP_MAX = -1, -4
#: Set to ``0`` to keep glibc's default allocator behaviour in ``sslseg segment``.
MALLOC_TUNING_ENV = "SSLSEG_MALLOC_TUNING"


def tune_process_malloc() -> bool:
    """Keep freed memory in the process instead of handing it back to the kernel (glibc only); True if applied.

    Without it, glibc serves every large tensor of a forward pass with a fresh ``mmap`` and unmaps it when freed,
    so each window's activations are page-faulted and zeroed again by the kernel: on a 2-core CPU that was ~40 % of
    the time of UNETR inference. With ``mmap_max=0`` and no trimming, large blocks come from the heap and are reused
    window after window: the same effect as starting the process with ``GLIBC_TUNABLES=glibc.malloc.mmap_max=0:
    glibc.malloc.trim_threshold=68719476736``, applied from inside (``mallopt``), so no re-exec and no wrapper
    script is needed. The price: the process's resident memory stays at its peak until it exits.

    Process-wide and not undoable, so :class:`Segmenter` never calls it: ``sslseg segment`` (one volume, then exit)
    does, and so may a job runner's worker process. A long-lived host (Slicer, a server) should not. Skipped when
    ``SSLSEG_MALLOC_TUNING=0``, when ``GLIBC_TUNABLES`` already sets a malloc parameter (the user's choice wins),
    and on anything but Linux with glibc.
    """
    if os.environ.get(MALLOC_TUNING_ENV, "1").strip().lower() in ("0", "off", "no", "false"):
        return False
    if "glibc.malloc." in os.environ.get("GLIBC_TUNABLES", "") or not sys.platform.startswith("linux"):
        return False
    try:
        import ctypes

        libc = ctypes.CDLL(None)
        libc.gnu_get_libc_version  # absent on musl: its mallopt is a no-op anyway
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    applied = mallopt(_M_MMAP_MAX, 0) == 1 and mallopt(_M_TRIM_THRESHOLD, -1) == 1  # -1: never trim (man mallopt)
    log.debug("glibc malloc tuned for inference: %s", applied)
    return applied


def release_free_memory() -> None:
    """Hand memory that is free inside the process back to the kernel (glibc ``malloc_trim``; elsewhere nothing).

    Between the steps of one segmentation: each step's temporaries are freed when it ends, but with
    :func:`tune_process_malloc` (and often without) glibc keeps them resident, so the next step's allocations would
    add to them instead of replacing them. Measured on a 512 x 512 x 300 CT with ViT-B: peak RSS 4.3 GB without,
    3.1 GB with (the resampling's peak), at no measurable cost in time.
    """
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        ctypes.CDLL(None).malloc_trim(0)
    except (OSError, AttributeError):
        pass


def _model_with_weights(package: ModelPackage):
    """(model, preset) from the card, holding the package's weights.

    The package's tensors become the network's parameters (``assign``): no second copy of the weights (one model's
    size of memory and ~0.5 s for ViT-B). Building on the ``meta`` device to skip the random initialisation was
    tried and is slower: MONAI's ``trunc_normal_`` on meta tensors imports torch's reference ops (~3 s).
    """
    model, preset = unetr_from_card(package.card["architecture"])
    expected = model.state_dict()
    _check_weights(expected, package.state_dict)
    model.load_state_dict({k: v.to(expected[k].dtype) for k, v in package.state_dict.items()}, strict=True,
                          assign=True)
    return model, preset


def _check_weights(expected: dict, state_dict: dict) -> None:
    """Strict: every tensor of the network must come from the package, with its shape."""
    missing = sorted(set(expected) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(expected))
    wrong = [k for k in expected if k in state_dict and tuple(state_dict[k].shape) != tuple(expected[k].shape)]
    if missing or unexpected or wrong:
        detail = (missing or unexpected or wrong)[0]
        raise SSLSegError(f"the model weights do not fit the architecture in the card ({len(missing)} missing, "
                          f"{len(unexpected)} unexpected, {len(wrong)} of another shape; e.g. {detail})",
                          "the package is damaged or was edited; re-export it")


def present_organs(labels: np.ndarray, table: LabelTable) -> list[str]:
    return [table.name_of(int(v)) for v in np.unique(labels) if v != 0]
