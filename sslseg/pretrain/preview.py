"""``sslseg preview-views``: one patch and the views a method makes of it, as NIfTI and PNG.

The method is given the region it asks for (``region_size``, the patch or larger) around the centre; every image
view it makes (``preview_images``: ``view1``, ``view2``, or more for multi-crop) is written with the patch's geometry
(a resized crop lies approximately there); a view smaller than the patch (multi-crop's local crops) spans the same box
with larger voxels.

The patch is taken from the centre of the preprocessed volume (so it shows anatomy, not air) and written with its
own voxel-to-RAS matrix: loaded in Slicer beside the original volume it lies exactly where it came from.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from sslseg.data.preprocess import PreprocessSettings, preprocess_volume
from sslseg.errors import SSLSegError
from sslseg.io import write_volume
from sslseg.io.scan import find_volumes
from sslseg.package.files import write_atomically
from sslseg.volume import Volume, VolumeMeta

PREVIEW_STREAM = 4


def centre_patch(array: np.ndarray, affine: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """The (1, S, S, S) float32 patch at the centre of (I, J, K) ``array`` (zero-padded if smaller) and its affine."""
    starts = np.array([max(0, (n - size) // 2) for n in array.shape])
    pads = np.array([max(0, (size - n) // 2) for n in array.shape])
    region = np.asarray(array[tuple(slice(a, a + size) for a in starts)], dtype=np.float32)
    patch = np.zeros((1, size, size, size), dtype=np.float32)
    patch[(0, *(slice(p, p + n) for p, n in zip(pads, region.shape)))] = region
    shifted = np.array(affine, dtype=np.float64)
    shifted[:3, 3] = affine[:3, :3] @ (starts - pads) + affine[:3, 3]
    return patch, shifted


def spanning_affine(affine: np.ndarray, patch_size: int, shape) -> np.ndarray:
    """The voxel-to-RAS matrix of an image of ``shape`` that spans the patch's extent (``affine`` for a patch-sized
    image; a smaller view, e.g. multi-crop's local crops, gets larger voxels over the same box)."""
    factors = np.array([patch_size / n for n in shape[-3:]], dtype=np.float64)
    if np.all(factors == 1):
        return affine
    resized = np.array(affine, dtype=np.float64)
    resized[:3, :3] = affine[:3, :3] * factors
    resized[:3, 3] = affine[:3, :3] @ (0.5 * factors - 0.5) + affine[:3, 3]  # voxel centres stay inside the box
    return resized


def preview_views(data_dir: str | Path, out_dir: str | Path, method, patch_size: int, settings: PreprocessSettings,
                  seed: int = 0, volume_name: str | None = None) -> list[Path]:
    """Write ``NAME_original`` and ``NAME_<view>`` for each view (.nii.gz) and ``NAME_views.png`` into ``out_dir``."""
    from monai.data import set_track_meta

    sources = find_volumes(data_dir)
    if volume_name is not None:
        sources = [s for s in sources if s.name == volume_name]
        if not sources:
            raise SSLSegError(f"{data_dir} has no volume called {volume_name!r}", "use a case name without extension")
    source = sources[0]
    array, affine, _ = preprocess_volume(source.read(), settings)
    set_track_meta(False)
    patch, patch_affine = centre_patch(array, affine, patch_size)
    region_size = method.region_size(patch_size)
    region = patch if region_size == patch_size else centre_patch(array, affine, region_size)[0]
    views = method.make_views(region, np.random.RandomState(np.random.SeedSequence([seed, PREVIEW_STREAM]).generate_state(1)))
    images = {"original": patch[0], **method.preview_images(views)}
    out = Path(out_dir)
    written = []
    for label, image in images.items():
        volume = Volume(image.astype(np.float32), spanning_affine(patch_affine, patch_size, image.shape),
                        VolumeMeta(description=f"{method.name} {label}"))
        written.append(write_volume(volume, out / f"{source.name}_{label}.nii.gz", overwrite=True))
    written.append(plot_views(out / f"{source.name}_views.png", images, title=f"{source.name}: {method.name}"))
    return written


def plot_views(path: Path, images: dict, title: str) -> Path:
    """Mid-slices (axial, coronal, sagittal; radiological: patient right on the left) of each (I, J, K) RAS image."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    planes = {
        "axial": lambda a: a[::-1, :, a.shape[2] // 2].T,
        "coronal": lambda a: a[::-1, a.shape[1] // 2, :].T,
        "sagittal": lambda a: a[a.shape[0] // 2, :, :].T,
    }
    figure = Figure(figsize=(3 * len(images), 3 * len(planes)), dpi=100)
    for row, (plane, cut) in enumerate(planes.items()):
        for column, (label, image) in enumerate(images.items()):
            axes = figure.add_subplot(len(planes), len(images), row * len(images) + column + 1)
            axes.imshow(cut(image), cmap="gray", vmin=0, vmax=1, origin="lower")
            axes.set_xticks([])
            axes.set_yticks([])
            if row == 0:
                axes.set_title(label)
            if column == 0:
                axes.set_ylabel(plane)
    figure.suptitle(title)
    figure.tight_layout()
    write_atomically(path, lambda p: figure.savefig(p, format="png"))
    return path
