"""Synthetic phantom generation: sampling a case, drawing it on axial and oblique grids, writing a cohort."""

from __future__ import annotations

import tempfile

import numpy as np

from benchmarks.result import BenchResult, median_seconds
from sslseg.synth.cohort import write_labelled
from sslseg.synth.phantom import default_affine, fit_to_grid, make_phantom, rasterize, rotation_matrix, sample_case


def oblique_affine(size: int, spacing: np.ndarray) -> np.ndarray:
    """A grid rotated 20 degrees about z and 10 about x, centred on RAS (0, 0, 0)."""
    affine = np.eye(4)
    affine[:3, :3] = rotation_matrix([10.0, 0.0, 20.0]) * spacing
    affine[:3, 3] = -affine[:3, :3] @ np.full(3, (size - 1) / 2)
    return affine


def run() -> BenchResult:
    result = BenchResult("Synthetic phantoms", ["step", "grid", "median s"])
    result.rows.append(["sample_case", "-", median_seconds(lambda: sample_case(np.random.default_rng(0)), 20)])
    for size in (64, 128, 256):
        seconds = median_seconds(lambda: make_phantom(0, size), 5 if size < 256 else 3)
        result.rows.append(["make_phantom (image + labels + noise)", f"{size}^3 x 2.5 mm RAS", seconds])
    spacing = np.array([2.0, 2.5, 3.0])
    oblique = oblique_affine(128, spacing)
    case = fit_to_grid(sample_case(np.random.default_rng(0)), (128,) * 3, default_affine((128,) * 3, spacing))
    seconds = median_seconds(lambda: rasterize(case, (128,) * 3, oblique), 5)
    result.rows.append(["rasterize, no noise", "128^3 oblique 2 x 2.5 x 3 mm", seconds])
    with tempfile.TemporaryDirectory() as folder:
        seconds = median_seconds(lambda: write_labelled(folder, 4, 128, overwrite=True), 3)
    result.rows.append(["write_labelled, 4 cases (.nii.gz)", "128^3 x 2.5 mm RAS", seconds])
    result.notes.append("make_phantom must stay under 1 s at 128^3 on a 2-core CPU; writing is dominated by gzip.")
    return result
