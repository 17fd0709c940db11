"""Synthetic abdominal CT phantoms: a random analytic case in RAS millimetres, drawn on any voxel grid.

A *case* (:class:`PhantomCase`) is a list of structures, each a radially deformed ellipsoid (or elliptic cylinder)
in RAS mm with one CT value and one label. :func:`sample_case` draws one from a seeded generator following the
reference layout of :mod:`sslseg.synth.anatomy`; :func:`rasterize` draws it on any grid given by an array shape
(I, J, K) and a (4, 4) voxel (i, j, k, 1) -> RAS mm matrix, so the same case lands on the same anatomy whether the
grid is axial RAS, LPS-stored or oblique. :func:`make_phantom` does both and returns two
:class:`~sslseg.volume.Volume` objects.

Defaults: 128^3 voxels of 2.5 mm, i.e. a 320 mm field of view, RAS-aligned and centred on the body. A case that
does not fit the field of view (small grids) is shrunk uniformly about its centre until it does, so every organ is
present at any grid size; it keeps its shape, only its scale changes.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
from numpy.polynomial import legendre

from sslseg.synth import anatomy
from sslseg.volume import Volume, VolumeMeta

DEFAULT_SIZE = 128
DEFAULT_SPACING_MM = 2.5

#: Share of the field of view the case may fill along each grid axis when it is fitted to a grid.
FIT_FRACTION = 0.92

#: Deformation of soft organs: degrees of the zonal harmonics added to the radius, and the range of |amplitude|
#: of each (relative to the radius). The sum of amplitudes bounds how far a surface moves (here <= 28 %).
HARMONIC_DEGREES = (2, 3, 3, 4)
HARMONIC_AMPLITUDE = (0.03, 0.07)
BODY_HARMONIC_AMPLITUDE = (0.005, 0.02)

ORGAN_JITTER_MM = 5.0
ORGAN_ANGLE_JITTER_DEG = 8.0
ORGAN_RADIUS_FACTOR = (0.85, 1.15)
NOISE_SD_HU = (6.0, 18.0)
BOWEL_GAS_POCKETS = (2, 6)

HU_LIMITS = (-1024, 3071)


@dataclass(frozen=True, eq=False)
class Shape:
    """A radially deformed ellipsoid in RAS mm; an elliptic cylinder along an axis whose radius is ``inf``.

    In the shape's unit coordinates ``q = diag(1 / radii) @ axes.T @ (p - centre)`` (shape (3,)), with ``r = |q|``
    and ``u = q / r``, a point ``p`` is inside when ``r <= 1 + sum_n amplitudes[n] * P_degrees[n](directions[n] . u)``,
    ``P_l`` the Legendre polynomial (|P_l| <= 1): smooth, low-frequency bumps of the surface.

    Attributes:
        centre: (3,) RAS mm.
        axes: (3, 3) unit column vectors of the shape's own axes in RAS.
        radii: (3,) semi-axes in mm along ``axes``; ``inf`` makes a cylinder.
        directions: (H, 3) unit vectors in unit coordinates, one per harmonic.
        amplitudes: (H,) relative amplitude of each harmonic.
        degrees: H Legendre degrees.
    """

    centre: np.ndarray
    axes: np.ndarray
    radii: np.ndarray
    directions: np.ndarray = field(default_factory=lambda: np.zeros((0, 3)))
    amplitudes: np.ndarray = field(default_factory=lambda: np.zeros(0))
    degrees: tuple[int, ...] = ()

    @property
    def reach(self) -> float:
        """The largest ``r`` a surface point can have (1 + the sum of |amplitudes|)."""
        return 1.0 + float(np.abs(self.amplitudes).sum())

    def world_bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """(lo, hi) RAS corners, each (3,), of a box holding the shape; infinite along a cylinder's axis."""
        half = _extent_along(self, np.eye(3))
        return self.centre - half, self.centre + half

    def scaled(self, factor: float, old_origin: np.ndarray, new_origin: np.ndarray) -> "Shape":
        """The shape moved by ``p -> new_origin + factor * (p - old_origin)``."""
        centre = new_origin + factor * (self.centre - old_origin)
        return replace(self, centre=centre, radii=self.radii * factor)


@dataclass(frozen=True, eq=False)
class Structure:
    """One drawable part of a case: a name, a label (0 = unlabelled tissue), a CT value and a shape."""

    name: str
    label: int
    hu: float
    shape: Shape


@dataclass(frozen=True, eq=False)
class PhantomCase:
    """A random abdomen in RAS mm. ``structures`` are in drawing order: where they overlap the later one wins."""

    structures: tuple[Structure, ...]
    noise_sd: float

    def structure(self, name: str) -> Structure:
        for item in self.structures:
            if item.name == name:
                return item
        raise KeyError(name)

    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """(lo, hi) RAS corners (3,) of the finite part of the case: body outline in x and y, organs in z."""
        boxes = np.array([s.shape.world_bounds() for s in self.structures])  # (N, 2, 3)
        finite = np.isfinite(boxes)
        lo = np.where(finite[:, 0], boxes[:, 0], np.inf).min(axis=0)
        hi = np.where(finite[:, 1], boxes[:, 1], -np.inf).max(axis=0)
        return lo, hi

    def scaled(self, factor: float, old_origin: np.ndarray, new_origin: np.ndarray) -> "PhantomCase":
        """The case moved by ``p -> new_origin + factor * (p - old_origin)`` (a uniform shrink or growth)."""
        structures = tuple(replace(s, shape=s.shape.scaled(factor, old_origin, new_origin)) for s in self.structures)
        return replace(self, structures=structures)


# ----------------------------------------------------------------------------------------------------------------
# Sampling


def sample_case(rng: np.random.Generator) -> PhantomCase:
    """Draw a random abdomen (body, spine, bowel gas, 8 organs) centred on RAS x = y = 0 at the pancreas level."""
    half_width = rng.uniform(*anatomy.BODY_HALF_WIDTH_MM)
    half_depth = half_width * rng.uniform(*anatomy.BODY_ASPECT)
    # Per-axis scale of the reference layout; z follows the body's size with its own spread (tall vs short trunks).
    in_plane = np.array([half_width / anatomy.BODY_HALF_AXES[0], half_depth / anatomy.BODY_HALF_AXES[1]])
    scale = np.append(in_plane, np.sqrt(in_plane.prod()) * rng.uniform(0.9, 1.1))
    structures = (
        *_sample_body(rng, half_width, half_depth),
        *(_sample_tissue(rng, tissue, scale) for tissue in anatomy.SPINE),
        *_sample_bowel_gas(rng, scale),
        *(_sample_tissue(rng, _organ(name), scale) for name in anatomy.DRAW_ORDER),
    )
    return PhantomCase(structures=structures, noise_sd=float(rng.uniform(*NOISE_SD_HU)))


def _organ(name: str) -> anatomy.Tissue:
    return next(organ for organ in anatomy.ORGANS if organ.name == name)


def _sample_body(rng: np.random.Generator, half_width: float, half_depth: float) -> tuple[Structure, Structure]:
    """Skin-to-muscle fat, then the soft tissue inside it; one deformation for both keeps the fat layer even."""
    outer = np.array([half_width, half_depth, np.inf])
    thickness = rng.uniform(*anatomy.FAT_THICKNESS_MM)
    inner = outer - np.array([thickness, thickness, 0.0])
    directions, amplitudes, degrees = _sample_harmonics(rng, BODY_HARMONIC_AMPLITUDE)
    body = Shape(np.zeros(3), np.eye(3), outer, directions, amplitudes, degrees)
    fat = Structure("subcutaneous_fat", 0, rng.uniform(*anatomy.FAT_HU), body)
    soft = Structure("soft_tissue", 0, rng.uniform(*anatomy.SOFT_TISSUE_HU), replace(body, radii=inner))
    return fat, soft


def _sample_tissue(rng: np.random.Generator, tissue: anatomy.Tissue, scale: np.ndarray) -> Structure:
    """Jitter one reference structure: position, size, orientation (soft organs), surface bumps, mean HU."""
    blob = tissue.blob
    size = np.cbrt(scale.prod())
    centre = np.asarray(blob.centre) * scale
    radii = np.asarray(blob.radii) * size * rng.uniform(*ORGAN_RADIUS_FACTOR, size=3)
    angles = np.asarray(blob.angles, dtype=np.float64)
    harmonics = (np.zeros((0, 3)), np.zeros(0), ())
    if not tissue.rigid:
        centre = centre + rng.normal(0.0, ORGAN_JITTER_MM * size, size=3)
        angles = angles + rng.normal(0.0, ORGAN_ANGLE_JITTER_DEG, size=3)
        harmonics = _sample_harmonics(rng, HARMONIC_AMPLITUDE)
    shape = Shape(centre, rotation_matrix(angles), radii, *harmonics)
    return Structure(tissue.name, tissue.label, rng.uniform(*tissue.hu_range), shape)


def _sample_bowel_gas(rng: np.random.Generator, scale: np.ndarray) -> list[Structure]:
    lo, hi = (np.asarray(corner) * scale for corner in anatomy.BOWEL_GAS_REGION)
    size = np.cbrt(scale.prod())
    pockets = []
    for _ in range(rng.integers(*BOWEL_GAS_POCKETS)):
        radii = rng.uniform(*anatomy.BOWEL_GAS_RADIUS_MM, size=3) * size
        shape = Shape(rng.uniform(lo, hi), rotation_matrix(rng.uniform(0, 360, 3)), radii, *_sample_harmonics(rng))
        pockets.append(Structure("bowel_gas", 0, rng.uniform(*anatomy.BOWEL_GAS_HU), shape))
    return pockets


def _sample_harmonics(
    rng: np.random.Generator, amplitude: tuple[float, float] = HARMONIC_AMPLITUDE
) -> tuple[np.ndarray, np.ndarray, tuple[int, ...]]:
    """Random unit directions (H, 3), signed amplitudes (H,) and the degrees for :class:`Shape`."""
    count = len(HARMONIC_DEGREES)
    directions = rng.normal(size=(count, 3))
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    amplitudes = rng.uniform(*amplitude, size=count) * rng.choice([-1.0, 1.0], size=count)
    return directions, amplitudes, HARMONIC_DEGREES


def rotation_matrix(angles_deg: np.ndarray) -> np.ndarray:
    """(3, 3) matrix whose columns are a shape's axes in RAS: rotate about x, then y, then z (degrees)."""
    ax, ay, az = np.deg2rad(np.asarray(angles_deg, dtype=np.float64))
    rx = np.array([[1, 0, 0], [0, np.cos(ax), -np.sin(ax)], [0, np.sin(ax), np.cos(ax)]])
    ry = np.array([[np.cos(ay), 0, np.sin(ay)], [0, 1, 0], [-np.sin(ay), 0, np.cos(ay)]])
    rz = np.array([[np.cos(az), -np.sin(az), 0], [np.sin(az), np.cos(az), 0], [0, 0, 1]])
    return rz @ ry @ rx


# ----------------------------------------------------------------------------------------------------------------
# Fitting a case to a grid


def default_affine(shape: tuple[int, int, int], spacing: np.ndarray) -> np.ndarray:
    """(4, 4) RAS-aligned voxel-to-RAS matrix whose grid centre is RAS (0, 0, 0)."""
    affine = np.diag(np.append(np.asarray(spacing, dtype=np.float64), 1.0))
    affine[:3, 3] = -0.5 * (np.asarray(shape) - 1) * affine.diagonal()[:3]
    return affine


def fit_to_grid(case: PhantomCase, shape: tuple[int, int, int], affine: np.ndarray) -> PhantomCase:
    """Move the case's centre to the grid's centre and shrink it (never grow) until its box fits every grid axis.

    The case's box (body outline in x, y; organs in z) is projected on each grid axis (direction cosines from
    ``affine``), so oblique grids are handled; it must fill at most FIT_FRACTION of that axis's field of view.
    """
    lo, hi = case.bounds()
    case_centre, case_half = 0.5 * (lo + hi), 0.5 * (hi - lo)
    affine = np.asarray(affine, dtype=np.float64)
    spacing = np.linalg.norm(affine[:3, :3], axis=0)
    directions = affine[:3, :3] / spacing  # (3 RAS, 3 grid axes)
    projected_half = np.abs(directions).T @ case_half  # (3,) half-size of the case along each grid axis
    field_half = 0.5 * np.asarray(shape) * spacing
    factor = min(1.0, float((FIT_FRACTION * field_half / projected_half).min()))
    grid_centre = affine[:3, :3] @ (0.5 * (np.asarray(shape) - 1)) + affine[:3, 3]
    return case.scaled(factor, case_centre, grid_centre)


# ----------------------------------------------------------------------------------------------------------------
# Rasterizing


def rasterize(
    case: PhantomCase,
    shape: tuple[int, int, int],
    affine: np.ndarray,
    noise_rng: np.random.Generator | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Draw a case on a grid, sampling each voxel at its centre.

    Args:
        case: the analytic phantom (RAS mm).
        shape: (I, J, K) grid size.
        affine: (4, 4) voxel (i, j, k, 1) -> RAS mm matrix.
        noise_rng: when given, Gaussian noise of ``case.noise_sd`` HU is added to the image (never to the labels).

    Returns:
        ``hu``: int16 (I, J, K) Hounsfield units, air (-1000) outside the body; ``labels``: uint8 (I, J, K) organ
        labels of :data:`sslseg.synth.anatomy.ORGAN_LABELS`, 0 elsewhere.
    """
    shape = tuple(int(n) for n in shape)
    affine = np.asarray(affine, dtype=np.float64)
    hu = np.full(shape, anatomy.AIR_HU, dtype=np.float32)
    labels = np.zeros(shape, dtype=np.uint8)
    for structure in case.structures:
        box = index_box(structure.shape, shape, affine)
        if box is None:
            continue
        inside = _inside(structure.shape, box, shape, affine)
        hu[box][inside] = structure.hu
        labels[box][inside] = structure.label
    if noise_rng is not None:
        hu += np.float32(case.noise_sd) * noise_rng.standard_normal(shape, dtype=np.float32)
    np.clip(np.rint(hu, out=hu), *HU_LIMITS, out=hu)
    return hu.astype(np.int16), labels


def index_box(shape: Shape, grid: tuple[int, int, int], affine: np.ndarray) -> tuple[slice, ...] | None:
    """Slices (i, j, k) of the voxels that may lie in ``shape``, one voxel of margin; None when off the grid."""
    inverse = np.linalg.inv(affine)
    centre = inverse[:3, :3] @ shape.centre + inverse[:3, 3]
    half = _extent_along(shape, inverse[:3, :3].T)
    lo = np.maximum(np.floor(centre - half) - 1, 0)
    hi = np.minimum(np.ceil(centre + half) + 2, grid)
    if np.any(lo >= hi):
        return None
    return tuple(slice(int(a), int(b)) for a, b in zip(lo, hi))


def _extent_along(shape: Shape, vectors: np.ndarray) -> np.ndarray:
    """Half-range of ``g . p`` over the shape for each column ``g`` of ``vectors`` (3, M): shape (M,).

    For ``p = centre + axes @ (reach * radii * v)``, |v| <= 1, it is ``|reach * radii * (axes.T @ g)|``; a cylinder
    is unbounded along ``g`` unless ``g`` is (numerically) perpendicular to its axis.
    """
    along_axes = shape.axes.T @ vectors  # (3 shape axes, M)
    along_axes[np.abs(along_axes) < 1e-9] = 0.0
    with np.errstate(invalid="ignore"):
        terms = np.where(along_axes == 0.0, 0.0, (shape.reach * shape.radii)[:, None] * along_axes)
    return np.sqrt((terms**2).sum(axis=0))


def _inside(shape: Shape, box: tuple[slice, ...], grid: tuple[int, int, int], affine: np.ndarray) -> np.ndarray:
    """Boolean mask over ``box`` (its shape) of the voxels whose centres lie in ``shape``."""
    to_unit = np.where(np.isinf(shape.radii), 0.0, 1.0 / shape.radii)[:, None] * shape.axes.T  # RAS -> unit coords
    # Rows: q_x, q_y, q_z, then directions[n] . q for each harmonic: all linear in the voxel index.
    rows = np.vstack([np.eye(3), shape.directions]) @ to_unit
    terms = _linear_terms(rows, shape.centre, box, grid, affine)
    qx, qy, qz = (ti[:, None, None] + tj[None, :, None] + tk[None, None, :] for ti, tj, tk in terms[:3])
    r2 = qx * qx + qy * qy + qz * qz
    if not shape.degrees:
        return r2 <= 1.0
    # Only voxels in the shell the bumps can move the surface through need the harmonics.
    inside = r2 <= np.float32(max(2.0 - shape.reach, 0.0) ** 2)
    shell = np.nonzero((r2 <= np.float32(shape.reach**2)) & ~inside)
    r = np.maximum(np.sqrt(r2[shell]), np.float32(1e-6))
    bump = np.zeros_like(r)
    for (ti, tj, tk), amplitude, degree in zip(terms[3:], shape.amplitudes, shape.degrees):
        along = ti[shell[0]] + tj[shell[1]] + tk[shell[2]]  # same sums, same order as over the whole box
        bump += np.float32(amplitude) * _legendre(along / r, degree)
    inside[shell] = r <= 1.0 + bump
    return inside


def _linear_terms(
    rows: np.ndarray, centre: np.ndarray, box: tuple[slice, ...], grid: tuple[int, int, int], affine: np.ndarray
) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """``rows @ (p - centre)`` at the voxel centres ``p`` of ``box`` as three float32 1-D terms per row.

    The value at voxel (i, j, k) of the box is ``(ti[i] + tj[j]) + tk[k]``, each term taken relative to the grid's
    centre index. This is not only fast: flipping a grid axis (an LPS-stored copy of the grid) negates both the index
    offset and the matrix column exactly, so every term and every float32 sum is bit-identical and the labels are
    exactly the flipped ones.
    """
    grid_centre_index = 0.5 * (np.asarray(grid) - 1)
    at_grid_centre = rows @ (affine[:3, :3] @ grid_centre_index + affine[:3, 3] - centre)  # (R,)
    per_index = rows @ affine[:3, :3]  # (R, 3)
    offsets = [np.arange(s.start, s.stop) - c for s, c in zip(box, grid_centre_index)]
    terms = []
    for row, constant in zip(per_index, at_grid_centre):
        ti = (row[0] * offsets[0] + constant).astype(np.float32)
        tj = (row[1] * offsets[1]).astype(np.float32)
        tk = (row[2] * offsets[2]).astype(np.float32)
        terms.append((ti, tj, tk))
    return terms


def _legendre(t: np.ndarray, degree: int) -> np.ndarray:
    """Legendre polynomial P_degree at ``t`` (float32, Horner's rule)."""
    coefficients = legendre.leg2poly([0] * degree + [1])
    value = np.full_like(t, coefficients[-1])
    for c in coefficients[-2::-1]:
        value = value * t + np.float32(c)
    return value


# ----------------------------------------------------------------------------------------------------------------
# Volumes


def make_phantom(
    seed: int,
    size: int | tuple[int, int, int] = DEFAULT_SIZE,
    spacing: float | tuple[float, float, float] = DEFAULT_SPACING_MM,
    affine: np.ndarray | None = None,
    fit_to: tuple[tuple[int, int, int], np.ndarray] | None = None,
) -> tuple[Volume, Volume]:
    """A random CT phantom and its organ labels.

    Args:
        seed: the case and its noise are a function of the seed alone (the noise also of the grid shape).
        size: grid size (I, J, K), or one int for a cube.
        spacing: voxel size in mm along i, j, k, or one float; ignored when ``affine`` is given.
        affine: (4, 4) voxel-to-RAS matrix of the grid; default RAS-aligned with the grid centre at RAS (0, 0, 0).
        fit_to: (shape, affine) of the grid the case is centred on and sized for (default: the grid drawn on). Gives
            patients of one size on grids of any field of view, e.g. a tilted grid that would otherwise shrink them.

    Returns:
        (image, labels): int16 HU and uint8 label volumes (I, J, K) on the same grid; the case is centred on the
        grid and shrunk if it would not fit (see :func:`fit_to_grid`).
    """
    shape = _triple(size, int)
    if affine is None:
        affine = default_affine(shape, np.asarray(_triple(spacing, float)))
    affine = np.array(affine, dtype=np.float64)  # a copy: the volumes must not share the caller's matrix
    case_seed, noise_seed = np.random.SeedSequence(seed).spawn(2)
    fit_shape, fit_affine = fit_to if fit_to is not None else (shape, affine)
    case = fit_to_grid(sample_case(np.random.default_rng(case_seed)), fit_shape, fit_affine)
    hu, labels = rasterize(case, shape, affine, noise_rng=np.random.default_rng(noise_seed))
    image_meta = VolumeMeta(modality="CT", description="sslseg synthetic phantom", patient_id=f"synth-{seed}")
    label_meta = VolumeMeta(description="sslseg synthetic phantom labels", patient_id=f"synth-{seed}")
    return Volume(hu, affine, image_meta), Volume(labels, affine.copy(), label_meta)


def _triple(value, kind) -> tuple:
    values = np.atleast_1d(np.asarray(value)).tolist()
    if len(values) == 1:
        values = values * 3
    if len(values) != 3:
        raise ValueError(f"expected one value or three, got {value!r}")
    return tuple(kind(v) for v in values)
