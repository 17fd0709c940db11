"""Voxel values an image must have to be worth training on or segmenting: finite, and not all the same.

Checked where a scan is read as an image (:meth:`sslseg.io.scan.VolumeSource.read`), not in ``read_volume``: a label
map may legitimately be all zero (nothing drawn), and label values have their own checks (``sslseg.labels``).
A NaN voxel would turn every loss and probability it touches into NaN; a constant volume (an export that lost its
pixel data, a blank series) has nothing to learn from or segment, and would otherwise give an empty result silently.
"""

from __future__ import annotations

import numpy as np

from sslseg.errors import VolumeReadError
from sslseg.volume import Volume


def check_image_values(volume: Volume, source: str) -> Volume:
    """``volume`` unchanged, or a :class:`VolumeReadError` naming ``source`` and what to do."""
    array = volume.array
    if np.issubdtype(array.dtype, np.floating):
        bad = int(array.size - np.count_nonzero(np.isfinite(array)))
        if bad:
            raise VolumeReadError(
                f"{source} has {bad} voxel(s) that are NaN or infinite",
                "replace them with a real value (e.g. the background: -1000 HU for CT) and save the volume again",
            )
    low, high = array.min(), array.max()
    if low == high:
        raise VolumeReadError(
            f"{source} holds no image: every voxel is {low.item():g}",
            "check the export (the pixel data may be missing or blank) and use the complete volume",
        )
    return volume
