"""What a partially annotated case says it annotates: which voxels (slices) and which organs.

A radiologist in Slicer draws a few organs on a few slices. Treating every undrawn voxel as background would teach
the model that the liver on the undrawn slices is background, and an organ drawn in one case but not in another would
teach "no organ" in the second. A case therefore says what it annotates, and the loss
(:mod:`sslseg.finetune.partial_loss`) learns only from that:

- **slices** (``"annotated_slices"`` in a datalist entry, or ``--undrawn-slices unknown`` for every case): the
  annotated slices along one axis, listed (``{"axis": "axial", "indices": [12, 40]}``) or, without ``indices``, the
  slices on which anything is drawn. The axis is anatomical (``axial``, ``coronal``, ``sagittal``: the voxel axis of
  the image file closest to S, A or R, whatever the storage order, LPS or oblique) or a voxel axis of the file
  (``i``, ``j``, ``k``); indices count from 0 along that voxel axis of the image file.
- **a mask** (``"annotated": "FILE"``): a mask on the image's grid, non-zero where the voxels are annotated.
- **organs** (``"organs": [...]``: the organs the case annotates, drawn or truly absent; or ``"absent": [...]``: the
  organs truly absent, added to those drawn; or ``--partial-organs``: the organs drawn, for every case without a
  list). Without any of these every organ of the run is annotated in every case (an undrawn organ is absent).

The slice part changes what the cache stores (a mask on the model grid) and is part of its key; the organ part is
the run's business and is resolved against the run's label set.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sslseg.errors import SSLSegError
from sslseg.volume import Volume

#: Anatomical axis name -> row of the voxel-to-RAS affine (R, A, S).
ANATOMICAL_ROWS = {"sagittal": 0, "coronal": 1, "axial": 2}
VOXEL_AXES = {"i": 0, "j": 1, "k": 2}
AXES = (*ANATOMICAL_ROWS, *VOXEL_AXES)


@dataclass(frozen=True)
class SliceAnnotation:
    """Annotated slices along one axis: ``indices`` listed (voxel indices of the image file) or, when None, the
    slices on which the label map draws anything."""

    axis: str = "axial"
    indices: tuple[int, ...] | None = None

    def to_json(self) -> dict:
        return {"axis": self.axis, "indices": None if self.indices is None else list(self.indices)}


@dataclass(frozen=True)
class Annotation:
    """What one case annotates (every field None: the whole case, every organ of the run).

    ``slices_by_default``: the slices come from the run's ``--undrawn-slices unknown``, not from the case's own entry;
    they shape training alone (a validation case is scored whole unless its entry says otherwise).
    """

    slices: SliceAnnotation | None = None
    mask: Path | None = None
    organs: tuple[str, ...] | None = None
    absent: tuple[str, ...] = ()
    slices_by_default: bool = False

    @property
    def partial_voxels(self) -> bool:
        return self.slices is not None or self.mask is not None

    def cache_key(self) -> dict | None:
        """What changes the cached annotated mask (None: nothing to cache)."""
        if not self.partial_voxels:
            return None
        return {"slices": self.slices.to_json() if self.slices else None, "mask": str(self.mask) if self.mask else None}


def annotation_from_entry(entry: dict, datalist: Path) -> Annotation:
    """The annotation fields of one datalist entry (paths relative to the datalist), checked."""
    where = f"{datalist} (entry {entry.get('image')})"
    slices = entry.get("annotated_slices")
    mask = entry.get("annotated")
    if slices is not None and mask is not None:
        raise SSLSegError(f"{where} gives both \"annotated\" and \"annotated_slices\"", "give one of them")
    organs, absent = entry.get("organs"), entry.get("absent", [])
    for key, value in (("organs", organs), ("absent", absent)):
        if value is not None and (not isinstance(value, list) or not all(isinstance(v, str) for v in value)):
            raise SSLSegError(f"{where}: \"{key}\" must be a list of organ names", f'e.g. "{key}": ["liver"]')
    if organs is not None and absent:
        raise SSLSegError(f"{where} gives both \"organs\" and \"absent\"",
                          "list the truly absent organs in \"organs\" too, or give only \"absent\"")
    mask_path = None
    if mask is not None:
        mask_path = (datalist.parent / str(mask)).resolve()
        if not mask_path.exists():
            raise SSLSegError(f"{where}: the annotated mask {mask_path} does not exist", "fix the datalist")
    return Annotation(slices=_slice_annotation(slices, where) if slices is not None else None, mask=mask_path,
                      organs=tuple(organs) if organs is not None else None, absent=tuple(absent))


def _slice_annotation(value, where: str) -> SliceAnnotation:
    if not isinstance(value, dict) or set(value) - {"axis", "indices"}:
        raise SSLSegError(f"{where}: \"annotated_slices\" must be {{\"axis\": ..., \"indices\": [...]}}",
                          f"axis one of {', '.join(AXES)}; leave out indices for the slices drawn on")
    axis, indices = str(value.get("axis", "axial")), value.get("indices")
    if axis not in AXES:
        raise SSLSegError(f"{where}: unknown axis {axis!r} in \"annotated_slices\"", f"use one of {', '.join(AXES)}")
    if indices is not None and (not isinstance(indices, list) or not all(isinstance(i, int) for i in indices)):
        raise SSLSegError(f"{where}: \"indices\" must be a list of slice numbers (from 0)", '"indices": [4, 20]')
    return SliceAnnotation(axis, tuple(indices) if indices is not None else None)


def voxel_axis(affine: np.ndarray, axis: str) -> int:
    """The voxel axis (0 = i, 1 = j, 2 = k) that ``axis`` names: itself for i/j/k; for an anatomical name the voxel
    axis whose direction is closest to the plane's normal (S for axial, A for coronal, R for sagittal)."""
    if axis in VOXEL_AXES:
        return VOXEL_AXES[axis]
    directions = np.asarray(affine, dtype=float)[:3, :3]
    directions = directions / np.linalg.norm(directions, axis=0, keepdims=True)
    return int(np.argmax(np.abs(directions[ANATOMICAL_ROWS[axis]])))


def slices_mask(labels: np.ndarray, affine: np.ndarray, slices: SliceAnnotation, source: str) -> np.ndarray:
    """(I, J, K) bool: True on the annotated slices of a label map (I, J, K) with voxel-to-RAS ``affine``."""
    axis = voxel_axis(affine, slices.axis)
    if slices.indices is None:
        other = tuple(a for a in range(3) if a != axis)
        chosen = np.flatnonzero(np.asarray(labels).any(axis=other))
    else:
        chosen = np.asarray(slices.indices, dtype=int)
        outside = chosen[(chosen < 0) | (chosen >= labels.shape[axis])]
        if len(outside):
            raise SSLSegError(f"{source}: annotated slice(s) {outside.tolist()} lie outside the image's "
                              f"{labels.shape[axis]} slices along {slices.axis}", "count slices from 0")
    along = np.zeros(labels.shape[axis], dtype=bool)
    along[chosen] = True
    shape = [1, 1, 1]
    shape[axis] = -1
    return np.broadcast_to(along.reshape(shape), labels.shape).copy()


def annotated_mask(annotation: Annotation, image: Volume, labels: Volume, source: str) -> np.ndarray | None:
    """(I, J, K) bool on the image's grid: the annotated voxels, or None when the whole case is annotated."""
    if annotation.slices is not None:
        return slices_mask(labels.array, image.affine, annotation.slices, source)
    if annotation.mask is None:
        return None
    from sslseg.io.grid_alignment import labels_on_image_grid
    from sslseg.io.volume_io import read_volume

    mask = labels_on_image_grid(read_volume(annotation.mask), image, str(annotation.mask), str(image.meta.source))
    return np.asarray(mask.array) != 0


def annotated_organs(annotation: Annotation, drawn: set[str], partial_organs: bool, case: str) -> set[str] | None:
    """The organ names a case annotates (drawn, or truly absent), or None for "every organ of the run".

    Args:
        drawn: the organs its label map draws.
        partial_organs: ``--partial-organs``: a case without a list annotates what it draws.
    """
    if annotation.organs is not None:
        missing = sorted(drawn - set(annotation.organs))
        if missing:
            raise SSLSegError(f"case {case} draws {', '.join(missing)} but its \"organs\" list leaves them out",
                              "add them to \"organs\" (a drawn organ is annotated)")
        return set(annotation.organs)
    drawn_absent = sorted(drawn & set(annotation.absent))
    if drawn_absent:
        raise SSLSegError(f"case {case} lists {', '.join(drawn_absent)} as absent but draws them",
                          "remove them from \"absent\", or from the label map")
    if annotation.absent or partial_organs:
        return drawn | set(annotation.absent)
    return None
