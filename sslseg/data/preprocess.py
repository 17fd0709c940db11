"""The deterministic part of the pretraining data chain, run once per volume (then cached, see ``cache.py``).

Volume (I, J, K) any dtype -> float32 (I', J', K') in 0..1 on a RAS-oriented grid of ``spacing_mm`` voxels:

1. orientation RAS (MONAI ``Orientation``), 2. resampling, bilinear (MONAI ``Spacing``; the tutorial's 2 mm),
3. intensity to 0..1, clipped: CT through a HU window, MR through its own percentiles,
4. crop to the bounding box of the foreground (body), so random patches rarely fall in air.

Padding to the patch size is left to the patch sampler (``patches.py``), so one cache serves every patch size.

CT window default, -1000..1000 HU (Swin UNETR's pretraining) rather than the tutorial's -57..164: the narrow
soft-tissue window maps air, lung, fat and bone each to a flat 0 or 1, so on chest or whole-body CT most of a patch
is constant and there is nothing to reconstruct there (the tutorial's own data were chest CTs); the wide window keeps
every tissue class distinct, which a pretraining for any organ needs, and the pretrained encoder is not tied to one
clinical window (fine-tuning records its own window in the model card). ``--ct-window -57 164`` gives the tutorial's.

MR gets percentile normalisation (0.5th..99.5th percentile -> 0..1), since MR values have no absolute scale.
"""

from __future__ import annotations

import logging
from contextlib import contextmanager
from dataclasses import asdict, dataclass

import numpy as np

from sslseg.errors import SSLSegError
from sslseg.volume import Volume

log = logging.getLogger(__name__)

#: Bumped whenever the chain's output changes, so old cache entries are recomputed.
PREPROCESS_VERSION = 2  # 2: oblique volumes deskewed
MODALITIES = ("auto", "ct", "mr")


@dataclass(frozen=True)
class PreprocessSettings:
    """What the deterministic chain does; recorded in the encoder card and in every cache key.

    Attributes:
        spacing_mm: isotropic output voxel size.
        ct_window: HU mapped to 0 and 1 (values outside are clipped).
        mr_percentiles: percentiles mapped to 0 and 1 for MR.
        modality: ``auto`` (from the file's DICOM modality, else from its intensities), ``ct`` or ``mr``.
        foreground_hu: CT voxels above this are foreground (body, including lung inside it).
        mr_foreground: MR voxels above this (after scaling to 0..1) are foreground.
    """

    spacing_mm: float = 2.0
    ct_window: tuple[float, float] = (-1000.0, 1000.0)
    mr_percentiles: tuple[float, float] = (0.5, 99.5)
    modality: str = "auto"
    foreground_hu: float = -500.0
    mr_foreground: float = 0.05
    version: int = PREPROCESS_VERSION

    def __post_init__(self) -> None:
        if not self.spacing_mm > 0:
            raise SSLSegError(f"spacing must be > 0 mm, got {self.spacing_mm}", "use --spacing 2")
        if not self.ct_window[1] > self.ct_window[0]:
            raise SSLSegError(f"CT window {self.ct_window} is empty", "give the lower HU first, e.g. --ct-window -1000 1000")
        if self.modality not in MODALITIES:
            raise SSLSegError(f"unknown modality {self.modality!r}", f"use one of {', '.join(MODALITIES)}")

    def to_dict(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}


def detect_modality(volume: Volume, requested: str = "auto") -> str:
    """``"ct"`` or ``"mr"``: as requested, else the DICOM modality, else CT when there are HU-like air values."""
    if requested != "auto":
        return requested
    modality = (volume.meta.modality or "").upper()
    if modality in ("CT", "MR"):
        return modality.lower()
    low = float(np.percentile(volume.array[:: 4, :: 4, :: 4], 1))
    return "ct" if low < -500 else "mr"


@contextmanager
def _tracking_meta():
    from monai.data import get_track_meta, set_track_meta

    previous = get_track_meta()
    set_track_meta(True)
    try:
        yield
    finally:
        set_track_meta(previous)


def resample_ras(volume: Volume, spacing_mm, mode: str = "bilinear") -> tuple[np.ndarray, np.ndarray]:
    """(array (I', J', K') float32, voxel-to-RAS affine) of ``volume`` oriented RAS and resampled to ``spacing_mm``
    (one value or three, mm); ``mode="nearest"`` for label maps. An oblique volume is resampled onto the RAS-aligned
    grid covering it instead (:mod:`~sslseg.data.deskew` says why)."""
    from sslseg.data.deskew import deskew, is_oblique

    pixdim = tuple(float(s) for s in np.broadcast_to(np.asarray(spacing_mm, dtype=np.float64), (3,)))
    if is_oblique(volume.affine):
        return deskew(volume.array, volume.affine, pixdim, mode)
    import torch
    from monai.data import MetaTensor
    from monai.transforms import Orientation, Spacing

    with _tracking_meta():
        image = MetaTensor(torch.from_numpy(np.asarray(volume.array, dtype=np.float32))[None],
                           affine=torch.as_tensor(volume.affine, dtype=torch.float64))
        image = Orientation(axcodes="RAS", labels=(("L", "R"), ("P", "A"), ("I", "S")))(image)
        image = Spacing(pixdim=pixdim, mode=mode, padding_mode="border")(image)
        return image.array[0].astype(np.float32, copy=False), np.asarray(image.affine, dtype=np.float64)


def scale_intensity(array: np.ndarray, modality: str, settings: PreprocessSettings) -> tuple[np.ndarray, float]:
    """(array in 0..1 float32, foreground threshold in the same units) for ``modality``."""
    if modality == "ct":
        low, high = settings.ct_window
        threshold = (settings.foreground_hu - low) / (high - low)
    else:
        low, high = np.percentile(array, settings.mr_percentiles)
        threshold = settings.mr_foreground
        if high <= low:
            high = low + 1.0
    scaled = (array - np.float32(low)) * np.float32(1.0 / (high - low))
    np.clip(scaled, 0.0, 1.0, out=scaled)
    return scaled, float(min(max(threshold, 0.0), 1.0))


def crop_foreground(array: np.ndarray, affine: np.ndarray, threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """Crop to the bounding box of ``array > threshold`` (whole array if none); the affine follows the crop."""
    mask = array > threshold
    if not mask.any():
        return array, affine
    starts, stops = [], []
    for axis in range(3):
        present = np.flatnonzero(mask.any(axis=tuple(a for a in range(3) if a != axis)))
        starts.append(int(present[0]))
        stops.append(int(present[-1]) + 1)
    cropped = array[tuple(slice(a, b) for a, b in zip(starts, stops))]
    shifted = affine.copy()
    shifted[:3, 3] = affine[:3, :3] @ np.asarray(starts, dtype=np.float64) + affine[:3, 3]
    return np.ascontiguousarray(cropped), shifted


def preprocess_volume(volume: Volume, settings: PreprocessSettings) -> tuple[np.ndarray, np.ndarray, str]:
    """The whole deterministic chain: (array (I', J', K') float32 in 0..1, voxel-to-RAS affine, ``"ct"``/``"mr"``)."""
    modality = detect_modality(volume, settings.modality)
    array, affine = resample_ras(volume, settings.spacing_mm)
    array, threshold = scale_intensity(array, modality, settings)
    array, affine = crop_foreground(array, affine, threshold)
    return array, affine, modality
