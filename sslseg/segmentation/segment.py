"""Segment one volume with a model package: preprocess as trained, sliding window, back onto the input's grid."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from sslseg.errors import SSLSegError
from sslseg.inference.components import largest_component_per_label
from sslseg.inference.resample_back import labels_on_target_grid
from sslseg.labels import LabelTable
from sslseg.models.unetr import unetr_from_card
from sslseg.package.model_package import ModelPackage
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
        self.model, self.preset = unetr_from_card(package.card["architecture"])
        _load_weights(self.model, package.state_dict)
        self.device = resolve_device(options.device)
        self.precision = Precision(resolve_amp(options.amp, self.device), self.device.type)
        self.model.to(self.device).eval()

    def segment(self, volume: Volume) -> Volume:
        """Label map (I, J, K) on exactly ``volume``'s grid; values as in :attr:`table`."""
        from sslseg.training.oom import friendly_out_of_memory

        image = preprocess_image(volume, self.settings)
        with friendly_out_of_memory(self.preset.img_size, self.options.sw_batch_size, self.device):
            probabilities = predict_probabilities(
                self.model, image.array, self.preset.img_size, self.options.overlap, self.options.sw_batch_size,
                self.device, self.precision, foreground=0.0,
            )
        labels = labels_on_target_grid(probabilities, image.affine, volume.shape, volume.affine)
        del probabilities
        if self.options.largest_component:
            labels = largest_component_per_label(labels)
        meta = VolumeMeta(source=volume.meta.source, modality="SEG", description="sslseg segmentation")
        return Volume(labels, volume.affine.copy(), meta)


def _load_weights(model, state_dict: dict) -> None:
    """Strict: every tensor of the network must come from the package, with its shape."""
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(expected))
    wrong = [k for k in expected if k in state_dict and tuple(state_dict[k].shape) != tuple(expected[k].shape)]
    if missing or unexpected or wrong:
        detail = (missing or unexpected or wrong)[0]
        raise SSLSegError(f"the model weights do not fit the architecture in the card ({len(missing)} missing, "
                          f"{len(unexpected)} unexpected, {len(wrong)} of another shape; e.g. {detail})",
                          "the package is damaged or was edited; re-export it")
    model.load_state_dict(state_dict, strict=True)


def present_organs(labels: np.ndarray, table: LabelTable) -> list[str]:
    return [table.name_of(int(v)) for v in np.unique(labels) if v != 0]
