"""How fast could ``sslseg segment`` with vit-b be on this CPU at best? A compute bound for the issue's 4x target.

The model's own arithmetic sets a floor no pipeline can go under: each 96^3 window of UNETR ViT-B is a fixed number
of floating-point operations (counted with ``torch.utils.flop_counter``), and this CPU cannot multiply faster than
its fp32 matrix-product peak (measured here as the best of large ``torch.mm`` calls, all cores). For each benchmark
volume: the plain MONAI baseline's time (run here, as in ``bench_segment``), the 4x target it implies, the windows
our path must compute (air-only windows already skipped), and what start-up plus those windows cost at the measured
per-window rate and at the matrix-product peak: a floor under any end-to-end time.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

from benchmarks.bench_segment import VOLUMES, _make_model, _make_volume, _measure, _window_counts, window_model
from benchmarks.result import BenchResult

PRESET = "vit-b"
TARGET_SPEEDUP = 4.0
MATMUL_SIZE = 2048
#: What ``sslseg segment`` imports before its first window (MONAI for reorientation and resampling).
IMPORTS = "import torch, monai.data, monai.transforms, sslseg.cli.main, sslseg.io, sslseg.segmentation.segment"


def run() -> BenchResult:
    result = BenchResult(
        "Compute bound of vit-b segmentation on this CPU (against the 4x target)",
        ["volume", "plain MONAI s", "4x target s", "windows computed (ours)", "start-up + imports s",
         "start-up + windows at measured rate s", "start-up + windows at matmul peak s", "target reachable"],
    )
    peak = matmul_peak_gflops()
    with tempfile.TemporaryDirectory(prefix="bench_bound_") as folder:
        folder = Path(folder)
        model = _make_model(folder / "model", PRESET)
        gflop, conv_share, window_s = _window_cost(model)
        imports = _measure([sys.executable, "-c", IMPORTS], {})["wall"]
        for name, (shape, spacing) in VOLUMES.items():
            image = _make_volume(folder / f"ct-{name}.nii.gz", shape, spacing)
            windows = _window_counts(image)[96][2]
            out = folder / f"out-{name}"
            out.mkdir()
            print(f"  {name}: plain MONAI fp32", flush=True)
            plain = _measure([sys.executable, "-m", "benchmarks.bench_segment", "plain", str(image), str(model),
                              str(out)], {})["wall"]
            target = plain / TARGET_SPEEDUP
            at_rate, at_peak = imports + windows * window_s, imports + windows * gflop / peak
            verdict = "no" if at_peak > target else ("only near the peak" if at_rate > target else "yes")
            result.rows.append([name, plain, target, windows, imports, at_rate, at_peak, verdict])
    result.notes += [
        f"this CPU's fp32 matrix-product peak: {peak:.0f} GFLOP/s (best of {MATMUL_SIZE}^3 torch.mm, all cores).",
        f"one vit-b UNETR window (96^3, 9 classes): {gflop:.0f} GFLOP ({100 * conv_share:.0f} % in convolutions, "
        f"nearly all the decoder's 3-D ones; the rest the ViT's matrix products), {window_s:.2f} s fp32 = {gflop / window_s:.0f} GFLOP/s, "
        f"{100 * gflop / window_s / peak:.0f} % of the matrix-product peak.",
        "start-up + windows: start-up + imports (a fresh Python importing torch, MONAI and our segmentation code, "
        "nothing else) plus the windows' compute; reading, resampling and writing the volume come on top (together "
        "5-13 s in bench_segment), so these are lower bounds of an end-to-end run.",
        "the issue's 4x counted on bf16 being 2-3x faster than fp32, which this CPU (no bf16 matrix instructions) "
        "is not.",
    ]
    return result


def matmul_peak_gflops(repeats: int = 5) -> float:
    import torch

    a, b = torch.rand(MATMUL_SIZE, MATMUL_SIZE), torch.rand(MATMUL_SIZE, MATMUL_SIZE)
    torch.mm(a, b)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        torch.mm(a, b)
        best = min(best, time.perf_counter() - start)
    return 2 * MATMUL_SIZE**3 / best / 1e9


def _window_cost(model: Path) -> tuple[float, float, float]:
    """(GFLOP, share in convolutions, seconds) of one fp32 window, measured in a fresh process as our path runs it."""
    import subprocess

    output = subprocess.run([sys.executable, "-m", "benchmarks.bench_segment_bound", "window", str(model)],
                            check=True, capture_output=True, text=True, cwd=Path(__file__).resolve().parents[1])
    gflop, conv_share, seconds = output.stdout.split()[-3:]
    return float(gflop), float(conv_share), float(seconds)


def window_cost(model_dir: str) -> None:
    """Print ``GFLOP CONV_SHARE SECONDS`` of one window (median of 3 after a warm-up), malloc tuned as ``sslseg segment``."""
    import statistics

    import torch
    from torch.utils.flop_counter import FlopCounterMode

    model, batch = window_model(model_dir)
    with torch.no_grad():
        counter = FlopCounterMode(display=False)
        with counter:
            model(batch)
        times = []
        for _ in range(3):
            start = time.perf_counter()
            model(batch)
            times.append(time.perf_counter() - start)
    total = counter.get_total_flops()
    conv = sum(n for op, n in counter.get_flop_counts()["Global"].items() if "convolution" in str(op))
    print(f"{total / 1e9:.3f} {conv / total:.4f} {statistics.median(times):.4f}", flush=True)


if __name__ == "__main__":
    if sys.argv[1] == "window":
        window_cost(sys.argv[2])
    else:
        sys.exit(f"unknown mode {sys.argv[1]!r}")
