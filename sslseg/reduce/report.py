"""``sslseg reduce``'s report folder: ``reduction.json``, ``hamming_histogram.png``, ``examples.png``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from sslseg.errors import SSLSegError
from sslseg.package.files import write_atomically
from sslseg.reduce.axial import axial_stack, slice_image
from sslseg.reduce.dhash import to_hex
from sslseg.reduce.folder import FolderReduction
from sslseg.reduce.greedy import neighbour_distances
from sslseg.volume import display_name

REPORT_FILES = ("reduction.json", "hamming_histogram.png", "examples.png")
#: Dropped slices shown in examples.png, each beside the kept slice that dropped it.
EXAMPLES = 4

DEFINITION = {
    "hash": "imagehash.dhash(PIL.Image.fromarray(u8), hash_size=8), bit for bit; hex as str() of it",
    "slices": "along the voxel axis closest to superior; ordered inferior -> superior by the RAS S coordinate of "
              "each slice centre (not by file or instance order)",
    "image": "rows anterior -> posterior, columns patient right -> left (radiological / DICOM axial layout)",
    "grey_levels": "u8 = floor(v * a + b), a = 255 / (max - min), b = 0.5 - min * a, per slice, float64; "
                   "constant slice = 0",
    "differences_from_paper": [
        "slice order: anatomical (inferior -> superior), not file or instance order",
        "grey-level ties ((v - min) / (max - min) * 255 exactly k + 1/2): float64 decides, mostly up; the paper's "
        "NIfTI code ((v - min) / (max - min + 1e-5) * 255, rounded by OpenCV) rounds every tie down, its DICOM "
        "code rounds ties to even",
    ],
    "greedy": "keep the first remaining slice, drop every remaining slice within Hamming distance <= threshold",
}


def prepare_report_dir(out_dir, overwrite: bool) -> Path:
    """The report folder, refused when it already holds a report (unless ``overwrite``)."""
    out = Path(out_dir)
    existing = [name for name in REPORT_FILES if (out / name).exists()]
    if existing and not overwrite:
        raise SSLSegError(f"{out} already holds a reduction report ({', '.join(existing)})",
                          "choose another --out folder or pass --overwrite")
    out.mkdir(parents=True, exist_ok=True)
    return out


def report_dict(result: FolderReduction) -> dict:
    """The JSON report: definition, totals and per volume the kept / dropped voxel indices."""
    volumes = []
    for volume, reduction, owners in zip(result.volumes, result.reductions, result.keeper_volume):
        dropped = np.flatnonzero(~reduction.kept)
        volumes.append({
            "name": volume.source.name, "source": str(volume.source.path), "series_uid": volume.source.series_uid,
            "slice_axis": "ijk"[volume.axis], "slices": int(len(volume.hashes)),
            "kept": [int(volume.indices[p]) for p in np.flatnonzero(reduction.kept)],
            "dropped": [int(volume.indices[p]) for p in dropped],
            "dropped_by": [{"volume": int(owners[p]),
                            "slice": int(result.volumes[owners[p]].indices[reduction.keeper[p]]),
                            "distance": int(reduction.distance[p])} for p in dropped],
            "order": [int(i) for i in volume.indices],
            "superior_mm": [round(float(s), 3) for s in volume.superior_mm],
            "hashes": to_hex(volume.hashes),
        })
    total, kept = result.total, result.kept
    return {"method": "Hash-k slice reduction (Wolf et al. 2024)", "threshold": result.threshold,
            "scope": result.scope, "definition": DEFINITION,
            "totals": {"volumes": len(volumes), "slices": total, "kept": kept, "dropped": total - kept,
                       "kept_fraction": kept / max(total, 1)},
            "volumes": volumes, "skipped": [{"source": s, "reason": r} for s, r in result.skipped]}


def write_report(result: FolderReduction, out_dir, overwrite: bool = False) -> dict:
    """Write the three report files into ``out_dir``; returns the JSON's ``totals``."""
    out = prepare_report_dir(out_dir, overwrite)
    report = report_dict(result)
    text = json.dumps(report, indent=1)
    write_atomically(out / "reduction.json", lambda p: Path(p).write_text(text, encoding="utf-8"))
    plot_histogram(result, out / "hamming_histogram.png")
    plot_examples(result, out / "examples.png")
    return report["totals"]


def _figure(width: float, height: float):
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=100)


def plot_histogram(result: FolderReduction, path: Path) -> None:
    """Hamming distances between anatomically consecutive slices, and of each dropped slice to its keeper."""
    neighbours = np.concatenate([neighbour_distances(v.hashes) for v in result.volumes] + [np.zeros(0, int)])
    to_keeper = np.concatenate([r.distance[~r.kept] for r in result.reductions] + [np.zeros(0, int)])
    figure = _figure(7, 4)
    axes = figure.add_subplot()
    bins = np.arange(0, 66) - 0.5
    axes.hist(neighbours, bins=bins, color="tab:blue", alpha=0.6, label="consecutive slices")
    axes.hist(to_keeper, bins=bins, color="tab:red", alpha=0.6, label="dropped slice to its keeper")
    axes.axvline(result.threshold + 0.5, color="black", linestyle="--", label=f"threshold {result.threshold}")
    axes.set_xlabel("Hamming distance (bits of 64)")
    axes.set_ylabel("slices")
    axes.set_title(f"{result.kept} of {result.total} slices kept ({result.scope} scope)")
    axes.legend()
    figure.tight_layout()
    figure.savefig(path)


def _example_pairs(result: FolderReduction) -> list[tuple[int, int, int, int, int]]:
    """Up to EXAMPLES (volume, dropped position, keeper volume, keeper position, distance), the most distant
    drops first (they show how different a dropped slice may be)."""
    pairs = []
    for number, (reduction, owners) in enumerate(zip(result.reductions, result.keeper_volume)):
        for p in np.flatnonzero(~reduction.kept):
            pairs.append((number, int(p), int(owners[p]), int(reduction.keeper[p]), int(reduction.distance[p])))
    pairs.sort(key=lambda pair: -pair[4])
    return pairs[:EXAMPLES]


def plot_examples(result: FolderReduction, path: Path) -> None:
    """A row per example: the kept slice, the slice it dropped (as hashed: own min/max grey levels)."""
    pairs = _example_pairs(result)
    stacks = {}

    def image(volume: int, position: int) -> np.ndarray:
        if volume not in stacks:
            stacks[volume] = axial_stack(result.volumes[volume].source.read())
        return slice_image(stacks[volume], position)

    figure = _figure(6, 3 * max(len(pairs), 1))
    if not pairs:
        figure.text(0.5, 0.5, "no slice dropped at this threshold", ha="center")
    for row, (volume, position, owner, keeper, distance) in enumerate(pairs):
        for column, (v, p, label) in enumerate(((owner, keeper, "kept"), (volume, position, "dropped"))):
            axes = figure.add_subplot(len(pairs), 2, 2 * row + column + 1)
            axes.imshow(image(v, p), cmap="gray", vmin=0, vmax=255)
            name = display_name(result.volumes[v].source.path)
            index = int(result.volumes[v].indices[p])
            axes.set_title(f"{label}: {name} slice {index}" + (f"\nHamming {distance}" if label == "dropped" else ""),
                           fontsize=8)
            axes.axis("off")
    figure.tight_layout()
    figure.savefig(path)
