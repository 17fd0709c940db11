"""A picture to check a segmentation by eye: axial, coronal and sagittal slices with coloured organs and a legend.

Slices are shown as radiologists read them (patient's right on the left of the screen, anterior up on axial,
superior up on coronal and sagittal), whatever the file's storage order: the volume is first reoriented to RAS by
pure axis permutation and flips, so a stored flip can never turn into a displayed one.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from sslseg.labels import LabelTable
from sslseg.terminology import load_terminology
from sslseg.volume import Volume

WINDOW_HU = (-160.0, 240.0)  # abdominal soft-tissue window


def as_ras(array: np.ndarray, affine: np.ndarray) -> np.ndarray:
    """``array`` (I, J, K) reordered so axes run R, A, S (index grows toward patient right, anterior, superior)."""
    import nibabel.orientations as nio

    ornt = nio.io_orientation(affine)  # RAS+ target
    return nio.apply_orientation(array, ornt)


def write_overlay_png(image: Volume, labels: Volume, table: LabelTable, path: str | Path, title: str = "",
                      centre_of: Volume | None = None) -> Path:
    """Three orthogonal slices through the labelled region's centre, organs coloured, legend of present organs.

    ``centre_of``: another label map on the same grid whose labelled centre chooses the slices (to show two
    segmentations of one image on the same slices); default ``labels``.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import ListedColormap
    from matplotlib.patches import Patch

    hu, lab = as_ras(image.array, image.affine), as_ras(labels.array, labels.affine)
    spacing = np.abs(np.diag(_ras_linear(image.affine)))
    centre = _centre(lab if centre_of is None else as_ras(centre_of.array, centre_of.affine))
    present = [int(v) for v in np.unique(lab) if v != 0]
    colours = _colour_list(table, present)
    cmap = ListedColormap([(0, 0, 0, 0)] + [(*colours[v], 0.45) for v in present])
    index = np.zeros(int(lab.max(initial=0)) + 1, dtype=np.int32)
    index[present] = np.arange(1, len(present) + 1)
    figure, axes = plt.subplots(1, 3, figsize=(13, 5))
    for axis, (name, picture, overlay, aspect) in zip(axes, _views(hu, index[lab], centre, spacing)):
        axis.imshow(picture, cmap="gray", vmin=WINDOW_HU[0], vmax=WINDOW_HU[1], aspect=aspect, interpolation="nearest")
        axis.imshow(overlay, cmap=cmap, vmin=0, vmax=len(present), aspect=aspect, interpolation="nearest")
        axis.set_title(name)
        axis.set_xticks([]), axis.set_yticks([])
        left, right = ("A", "P") if name == "sagittal" else ("R", "L")
        axis.text(0.01, 0.5, left, color="yellow", transform=axis.transAxes, va="center")
        axis.text(0.97, 0.5, right, color="yellow", transform=axis.transAxes, va="center")
    legend = [Patch(color=colours[v], label=table.name_of(v)) for v in present]
    figure.legend(handles=legend, loc="lower center", ncol=min(len(legend), 8) or 1, frameon=False)
    figure.suptitle(title)
    figure.tight_layout(rect=(0, 0.08, 1, 0.95))
    path = Path(path)
    figure.savefig(path, dpi=90)
    plt.close(figure)
    return path


def _views(hu: np.ndarray, lab: np.ndarray, centre, spacing):
    """(title, image rows x cols, overlay, pixel aspect) in radiological display convention."""
    i, j, k = centre
    sx, sy, sz = spacing
    # axial: rows = A (top) to P, columns = R (left) to L  -> transpose (x, y) to (y, x), flip both
    yield "axial", hu[:, :, k].T[::-1, ::-1], lab[:, :, k].T[::-1, ::-1], sy / sx
    # coronal: rows = S (top) to I, columns = R to L
    yield "coronal", hu[:, j, :].T[::-1, ::-1], lab[:, j, :].T[::-1, ::-1], sz / sx
    # sagittal: rows = S to I, columns = A (left) to P
    yield "sagittal", hu[i, :, :].T[::-1, ::-1], lab[i, :, :].T[::-1, ::-1], sz / sy


def _centre(labels: np.ndarray) -> tuple[int, int, int]:
    points = np.argwhere(labels > 0)
    source = points if len(points) else np.argwhere(np.ones(labels.shape, bool))[[0, -1]]
    return tuple(int(v) for v in np.round(source.mean(axis=0)))


def _ras_linear(affine: np.ndarray) -> np.ndarray:
    import nibabel.orientations as nio

    ornt = nio.io_orientation(affine)
    spacing = np.sqrt((affine[:3, :3] ** 2).sum(axis=0))
    return np.diag(spacing[ornt[:, 0].argsort()])


def _colour_list(table: LabelTable, values: list[int]) -> dict[int, tuple]:
    terminology = load_terminology()
    colours = {}
    for v in values:
        label = table.labels.get(v)
        colours[v] = tuple(label.color) if label and label.color else terminology.color_of(table.name_of(v), v)
    return colours
