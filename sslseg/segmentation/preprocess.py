"""The deterministic preprocessing of organ segmentation, shared by fine-tuning and inference so they never differ.

After MONAI's UNETR BTCV tutorial: orientation RAS, spacing 1.5 x 1.5 x 2 mm, intensity -175..250 HU -> 0..1
(clipped), crop to the body. MR uses percentiles instead of a HU window. Settings are recorded in the model card and
read back from it, so a shared model preprocesses exactly as it was trained.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from sslseg.data.preprocess import PreprocessSettings, crop_foreground, detect_modality, resample_ras, scale_intensity
from sslseg.errors import SSLSegError
from sslseg.volume import Volume


@dataclass(frozen=True)
class SegmentationPreprocessing:
    """Attributes:
        spacing_mm: output voxel size along R, A, S.
        ct_window: HU mapped to 0..1.
        modality: ``ct``, ``mr`` or ``auto``.
        foreground_hu: CT voxels above this are body (for the crop).
    """

    spacing_mm: tuple[float, float, float] = (1.5, 1.5, 2.0)
    ct_window: tuple[float, float] = (-175.0, 250.0)
    modality: str = "auto"
    foreground_hu: float = -500.0
    orientation: str = "RAS"

    def to_card(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_card(cls, card: dict) -> "SegmentationPreprocessing":
        try:
            return cls(spacing_mm=tuple(float(s) for s in card["spacing_mm"]),
                       ct_window=tuple(float(w) for w in card["ct_window"]), modality=str(card["modality"]),
                       foreground_hu=float(card["foreground_hu"]), orientation=str(card.get("orientation", "RAS")))
        except (KeyError, TypeError, ValueError) as error:
            raise SSLSegError(f"the model card's preprocessing is incomplete: {error}", "re-export the model") from error

    def intensity_settings(self) -> PreprocessSettings:
        return PreprocessSettings(ct_window=self.ct_window, modality=self.modality, foreground_hu=self.foreground_hu)


@dataclass
class Preprocessed:
    """An image on the model grid: ``array`` (X, Y, Z) float32 in 0..1, ``affine`` voxel-to-RAS, ``modality``."""

    array: np.ndarray
    affine: np.ndarray
    modality: str


def preprocess_image(volume: Volume, settings: SegmentationPreprocessing, crop: bool = True) -> Preprocessed:
    """Reorient, resample, scale and (optionally) crop to the body; the affine follows every step."""
    intensity = settings.intensity_settings()
    modality = detect_modality(volume, settings.modality)
    array, affine = resample_ras(volume, settings.spacing_mm)
    array, threshold = scale_intensity(array, modality, intensity)
    if crop:
        array, affine = crop_foreground(array, affine, threshold)
    return Preprocessed(array=array, affine=affine, modality=modality)


def labels_on_model_grid(labels: Volume, image: Preprocessed, settings: SegmentationPreprocessing) -> np.ndarray:
    """The label map (on its image's grid) resampled nearest-neighbour onto the preprocessed image's grid (X, Y, Z)."""
    array, affine = resample_ras(labels.with_array(labels.array.astype(np.float32)), settings.spacing_mm, mode="nearest")
    offset = np.linalg.solve(affine, image.affine)[:3, 3]  # crop start in the uncropped resampled grid
    start = np.round(offset).astype(int)
    box = tuple(slice(s, s + n) for s, n in zip(start, image.array.shape))
    cropped = array[box]
    if cropped.shape != image.array.shape:
        raise SSLSegError("labels and image did not resample onto the same grid", "report this as a bug")
    return np.rint(cropped).astype(np.uint8 if cropped.max(initial=0) < 256 else np.int16)
