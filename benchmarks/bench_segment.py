"""End-to-end organ segmentation (`sslseg segment`) against plain MONAI sliding-window inference, same model.

Each measurement is one fresh process (``os.wait4`` gives its own wall time, CPU time and peak RSS), so peaks never
mix: read the file, preprocess, sliding window, back onto the input grid, write.

- **ours**: ``python -m sslseg segment CT.nii.gz --model M --out L.seg.nrrd`` (default: fp32 on this CPU, malloc tuned
  in-process); "ours, malloc untuned" sets ``SSLSEG_MALLOC_TUNING=0``; "ours + GLIBC_TUNABLES" starts the process
  with the tunables instead (checks that the in-process setting is the same thing).
- **plain**: what MONAI's tutorials do (``python -m benchmarks.bench_segment plain ...``): ``LoadImaged``,
  ``EnsureChannelFirstd``, ``Orientationd`` RAS, ``Spacingd`` 1.5 x 1.5 x 2 mm bilinear, ``ScaleIntensityRanged``
  -175..250 HU -> 0..1 clipped (no body crop), ``sliding_window_inference(roi=img_size, sw_batch_size=1,
  overlap=0.25, mode="gaussian")`` fp32 under ``no_grad``, then ``Invertd`` (back onto the input grid, bilinear on
  the logits), ``AsDiscreted(argmax=True)``, ``SaveImaged`` (.nii.gz, uint8).
- **bf16** (``--amp bf16``): on a CPU without bf16 matrix instructions it is far slower; where a full run would
  take too long, one window is timed in fp32 and bf16 in a fresh process and the end-to-end time extrapolated as
  ``fp32 end-to-end + windows x (bf16 window - fp32 window)`` (marked "extrapolated").

Models are random-weight UNETR packages (preset defaults: tiny 64^3 windows, vit-b 96^3; 9 classes); volumes are
synthetic CT phantoms (a body surrounded by air) written as .nii.gz.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.result import BenchResult
from sslseg.training.compute import cpu_class, cpu_has_fast_bf16

MALLOC_TUNABLES = "glibc.malloc.mmap_max=0:glibc.malloc.trim_threshold=68719476736"
VOLUMES = {  # name: (shape, spacing mm)
    "256x256x128": ((256, 256, 128), (0.8, 0.8, 2.5)),
    "512x512x300": ((512, 512, 300), (0.7, 0.7, 1.5)),
}
PRESETS = ("tiny", "vit-b")
#: A case whose first run takes less than this (s) is repeated to 3 runs (median reported); slower ones run once.
CHEAP_S = 40.0
#: The row of our command in float32 (``--amp off``: what auto gives on CPUs without bf16 instructions).
OURS_FP32 = "ours fp32 (--amp off)"
#: bf16 runs whose estimate exceeds this (s) are extrapolated from one timed window instead of run in full.
BF16_FULL_RUN_LIMIT_S = 90.0
#: One bf16 window is stopped after this (s): the extrapolation is then a lower bound.
BF16_WINDOW_LIMIT_S = 60.0
OVERLAP = 0.25
SPACING = (1.5, 1.5, 2.0)
CT_WINDOW = (-175.0, 250.0)


def run() -> BenchResult:
    result = BenchResult(
        "Organ segmentation end to end (`sslseg segment` vs plain MONAI sliding window), CPU",
        ["volume", "preset", "path", "windows", "runs", "median s", "CPU s", "peak RSS GB", "speed-up vs plain",
         "agreement with plain"],
    )
    loads = []
    with tempfile.TemporaryDirectory(prefix="bench_segment_") as folder:
        folder = Path(folder)
        models = {name: _make_model(folder / f"model-{name}", name) for name in PRESETS}
        timings = {}
        for name in PRESETS:
            print(f"  {name}: one window, fp32 and bf16 (bf16 stopped after {BF16_WINDOW_LIMIT_S:.0f} s)", flush=True)
            timings[name] = _window_timing(models[name])
        for volume_name, (shape, spacing) in VOLUMES.items():
            image = _make_volume(folder / f"ct-{volume_name}.nii.gz", shape, spacing)
            counts = _window_counts(image)
            for preset in PRESETS:
                rows, load = _bench_case(folder, image, models[preset], preset, volume_name, counts, timings[preset])
                result.rows += rows
                loads += load
    result.notes += _notes(loads)
    return result


# ------------------------------------------------------------------------------------------------------------------
# one volume x one preset


def _bench_case(folder: Path, image: Path, model: Path, preset: str, volume_name: str, counts: dict,
                window_timing: dict):
    from sslseg.models.presets import get_preset

    window = get_preset(preset).img_size
    plain_windows, crop_windows, ours_windows = counts[window]
    out = folder / f"out-{volume_name}-{preset}"
    out.mkdir()
    ours_out = out / "ours.seg.nrrd"
    plain_out = out / f"{image.name[: -len('.nii.gz')]}_seg.nii.gz"
    ours = [sys.executable, "-m", "sslseg", "segment", str(image), "--model", str(model), "--out", str(ours_out),
            "--overwrite"]
    plain = [sys.executable, "-m", "benchmarks.bench_segment", "plain", str(image), str(model), str(out)]
    untuned = ("ours fp32, malloc untuned", ours, {"SSLSEG_MALLOC_TUNING": "0"})
    ours_auto, ours = ours, ours + ["--amp", "off"]  # the bf16 row below adds its own --amp
    variants = [("plain MONAI fp32", plain, {}), (OURS_FP32, ours, {})]  # (label, command, environment)
    variants += {  # what else each case shows, within the time budget
        ("256x256x128", "tiny"): [untuned, ("ours fp32 + GLIBC_TUNABLES", ours, {"GLIBC_TUNABLES": MALLOC_TUNABLES})],
        ("256x256x128", "vit-b"): [untuned, ("plain MONAI fp32 + GLIBC_TUNABLES", plain,
                                             {"GLIBC_TUNABLES": MALLOC_TUNABLES})],
        ("512x512x300", "vit-b"): [untuned],
    }.get((volume_name, preset), [])
    runs: dict[str, list[dict]] = {label: [] for label, _, _ in variants}
    loads = []
    # first round for all, then two more rounds (interleaved) for the cheap ones
    for round_ in range(3):
        for label, command, env in variants:
            if round_ and (runs[label][0]["wall"] >= CHEAP_S):
                continue
            print(f"  {volume_name} {preset}: {label} (run {round_ + 1})", flush=True)
            runs[label].append(_measure(command, env))
            loads.append(runs[label][-1]["load"])
    agreement = _agreement(image, ours_out, plain_out)
    plain_s = _median(runs["plain MONAI fp32"], "wall")
    rows = []
    for label, _, _ in variants:
        windows = plain_windows if label.startswith("plain") else _windows_text(crop_windows, ours_windows)
        rows.append(_row(volume_name, preset, label, windows, runs[label], plain_s,
                         agreement if label == OURS_FP32 else "-"))
    rows.append(_bf16_row(volume_name, preset, window_timing, ours_auto, runs[OURS_FP32], ours_windows,
                          crop_windows, plain_s, loads))
    return rows, loads


def _auto_inference_mode() -> str:
    import torch

    from sslseg.training.amp import resolve_amp

    return {"off": "fp32"}.get(mode := resolve_amp("auto", torch.device("cpu"), "inference"), mode)


def _row(volume_name, preset, label, windows, runs, plain_s, agreement):
    wall = _median(runs, "wall")
    return [volume_name, preset, label, windows, len(runs), wall, _median(runs, "cpu"),
            max(r["rss_gb"] for r in runs), f"{plain_s / wall:.2f}x", agreement]


def _bf16_row(volume_name, preset, timing, ours, fp32_runs, windows, crop_windows, plain_s, loads):
    """``--amp bf16``: run in full when that is affordable, else extrapolated from one timed window."""
    fp32_s = _median(fp32_runs, "wall")
    label = "ours --amp bf16"
    if timing["bf16"] is not None:
        estimate = fp32_s + windows * (timing["bf16"] - timing["fp32"])
        if estimate <= BF16_FULL_RUN_LIMIT_S:
            print(f"  {volume_name} {preset}: {label}", flush=True)
            measured = _measure(ours + ["--amp", "bf16"], {})
            loads.append(measured["load"])
            return _row(volume_name, preset, label, _windows_text(crop_windows, windows), [measured], plain_s, "-")
        window = f"1 window {timing['bf16']:.0f} s bf16 vs {timing['fp32']:.1f} s fp32"
        shown, speed = f"{estimate:.0f}", f"{plain_s / estimate:.2f}x"
    else:  # the bf16 window did not finish within the limit: a lower bound
        estimate = fp32_s + windows * (BF16_WINDOW_LIMIT_S - timing["fp32"])
        window = f"1 window > {BF16_WINDOW_LIMIT_S:.0f} s bf16 (stopped) vs {timing['fp32']:.1f} s fp32"
        shown, speed = f"> {estimate:.0f}", f"< {plain_s / estimate:.2f}x"
    return [volume_name, preset, f"{label} (extrapolated: {window})", _windows_text(crop_windows, windows), 0,
            shown, "-", "-", speed, "-"]


def _window_timing(model: Path) -> dict:
    """{"fp32": s, "bf16": s, or None when the bf16 window was stopped after BF16_WINDOW_LIMIT_S}, fresh process."""
    command = [sys.executable, "-m", "benchmarks.bench_segment", "window", str(model)]
    env = {k: v for k, v in os.environ.items() if k not in ("SSLSEG_MALLOC_TUNING", "GLIBC_TUNABLES")}
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                               cwd=Path(__file__).resolve().parents[1])
    timing = {"fp32": None, "bf16": None}
    first = process.stdout.readline()  # "fp32 S", printed just before the bf16 window starts
    if first.startswith("fp32 "):
        timing["fp32"] = float(first.split()[1])
        try:
            process.wait(timeout=BF16_WINDOW_LIMIT_S)
            rest = process.stdout.read()
            if rest.startswith("bf16 "):
                timing["bf16"] = float(rest.split()[1])
        except subprocess.TimeoutExpired:
            process.kill()
    process.wait()
    process.stdout.close()
    if timing["fp32"] is None:
        raise RuntimeError(f"timing one window of {model} failed ({' '.join(command)})")
    return timing


# ------------------------------------------------------------------------------------------------------------------
# measuring


def _measure(command: list[str], env: dict) -> dict:
    """Wall s, CPU s (user + sys), peak RSS (GB) of one fresh process; raises with its stderr when it fails."""
    full_env = {**os.environ, **env}
    if "SSLSEG_MALLOC_TUNING" not in env:
        full_env.pop("SSLSEG_MALLOC_TUNING", None)
    if "GLIBC_TUNABLES" not in env:
        full_env.pop("GLIBC_TUNABLES", None)
    with tempfile.TemporaryFile() as stdout, tempfile.TemporaryFile() as stderr:
        load = os.getloadavg()[0]
        start = time.perf_counter()
        process = subprocess.Popen(command, env=full_env, stdout=stdout, stderr=stderr,
                                   cwd=Path(__file__).resolve().parents[1])
        _, status, usage = os.wait4(process.pid, 0)
        wall = time.perf_counter() - start
        process.returncode = os.waitstatus_to_exitcode(status)
        stdout.seek(0)
        stderr.seek(0)
        if process.returncode:
            raise RuntimeError(f"{' '.join(command)} failed ({process.returncode}):\n"
                               f"{stderr.read().decode(errors='replace')[-3000:]}")
    return {"wall": wall, "cpu": usage.ru_utime + usage.ru_stime, "rss_gb": usage.ru_maxrss / 2**20,
            "load": (load + os.getloadavg()[0]) / 2}


def _median(runs: list[dict], key: str) -> float:
    return statistics.median(r[key] for r in runs)


def _windows_text(crop_windows: int, windows: int) -> str:
    return f"{windows} of {crop_windows}" if windows != crop_windows else str(windows)


def _notes(loads: list[float]) -> list[str]:
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return [
        "median s: wall time of the whole process (Python start, imports, model load, read, preprocess, inference, "
        "resample back, write), median of `runs` fresh processes (3 where the first run took under "
        f"{CHEAP_S:.0f} s, else 1); CPU s: user + system time of that process; peak RSS: its maximum resident "
        "set (os.wait4), the largest over its runs.",
        "windows: sliding windows computed. plain: on the whole resampled grid. ours: 'N of M' = N computed of M on "
        "the body-cropped grid (the others hold only air and are skipped).",
        "speed-up vs plain = plain median s / this row's median s, same volume and preset, same run.",
        "agreement with plain: share of voxels with the same label inside the body (> -500 HU); random weights, so "
        "this only shows both paths compute the same thing (ours blends probabilities, plain logits).",
        f"bf16: this CPU is of class {cpu_class()} ({'with' if cpu_has_fast_bf16() else 'without'} bf16 matrix "
        f"instructions); `--amp auto` segments in {_auto_inference_mode()} here. Rows marked extrapolated were "
        "not run in full.",
        f"load: mean 1-minute load average during the measurements {statistics.mean(loads):.1f} on {cores} cores "
        f"(max {max(loads):.1f}); above {cores} other processes were competing for the CPU and times are inflated.",
    ]


# ------------------------------------------------------------------------------------------------------------------
# inputs


def _make_model(folder: Path, preset_name: str) -> Path:
    import torch

    from sslseg.labels import LabelTable
    from sslseg.models.presets import get_preset
    from sslseg.models.unetr import architecture_card, build_unetr
    from sslseg.package.model_package import labels_to_card, save_model_package
    from sslseg.segmentation.preprocess import SegmentationPreprocessing
    from sslseg.synth.anatomy import ORGAN_LABELS

    torch.manual_seed(0)
    preset = get_preset(preset_name)
    table = LabelTable.from_names({value: name for name, value in ORGAN_LABELS.items()})
    classes = len(ORGAN_LABELS) + 1
    card = {"architecture": architecture_card(preset, classes), "labels": labels_to_card(table),
            "preprocessing": SegmentationPreprocessing(spacing_mm=SPACING, ct_window=CT_WINDOW).to_card()}
    return save_model_package(folder, build_unetr(preset, classes).state_dict(), card)


def _make_volume(path: Path, shape, spacing) -> Path:
    from sslseg.io import write_volume
    from sslseg.synth.phantom import make_phantom

    image, _ = make_phantom(0, size=shape, spacing=spacing)
    return write_volume(image, path)


def _window_counts(image: Path) -> dict[int, tuple[int, int, int]]:
    """window size -> (plain windows on the whole grid, ours on the cropped grid, ours not skipped as air)."""
    import itertools

    import torch

    from sslseg.io import read_volume
    from sslseg.segmentation.preprocess import SegmentationPreprocessing, preprocess_image
    from sslseg.segmentation.sliding_window import window_starts

    volume = read_volume(image)
    settings = SegmentationPreprocessing(spacing_mm=SPACING, ct_window=CT_WINDOW)
    whole = preprocess_image(volume, settings, crop=False).array.shape
    cropped = preprocess_image(volume, settings).array
    counts = {}
    for window in sorted({64, 96}):
        padded = torch.nn.functional.pad(torch.from_numpy(cropped), [p for n in reversed(cropped.shape)
                                                                     for p in (0, max(0, window - n))])
        starts = [window_starts(n, window, OVERLAP) for n in padded.shape]
        corners = list(itertools.product(*starts))
        body = [c for c in corners if padded[tuple(slice(s, s + window) for s in c)].max() > 0.0]
        plain = int(np.prod([len(window_starts(max(n, window), window, OVERLAP)) for n in whole]))
        counts[window] = (plain, len(corners), len(body))
    return counts


def _agreement(image: Path, ours: Path, plain: Path) -> str:
    from sslseg.io import read_volume
    from sslseg.io.label_map_io import read_label_map

    body = read_volume(image).array > -500
    mine, _ = read_label_map(ours)
    theirs = read_volume(plain)
    same = mine.array[body] == np.asarray(theirs.array)[body]
    return f"{100 * same.mean():.1f} %"


# ------------------------------------------------------------------------------------------------------------------
# the subprocesses


def plain_monai(image: str, model_dir: str, out_dir: str) -> None:
    """MONAI's tutorial pipeline, fp32, on the model package's weights."""
    import torch
    from monai.inferers import sliding_window_inference
    from monai.transforms import (AsDiscreted, Compose, EnsureChannelFirstd, Invertd, LoadImaged, Orientationd,
                                  SaveImaged, ScaleIntensityRanged, Spacingd)
    from safetensors.torch import load_file

    from sslseg.models.presets import preset_from_dict
    from sslseg.models.unetr import build_unetr

    card = json.loads((Path(model_dir) / "model.json").read_text(encoding="utf-8"))
    config = card["architecture"]["config"]
    preset = preset_from_dict(config["vit"])
    model = build_unetr(preset, config["out_channels"], config["feature_size"])  # MONAI UNETR, same arguments
    model.load_state_dict(load_file(str(Path(model_dir) / card["weights"]["file"])))
    model.eval()
    pre = Compose([
        LoadImaged(keys="image"),
        EnsureChannelFirstd(keys="image"),
        Orientationd(keys="image", axcodes="RAS"),
        Spacingd(keys="image", pixdim=SPACING, mode="bilinear"),
        ScaleIntensityRanged(keys="image", a_min=CT_WINDOW[0], a_max=CT_WINDOW[1], b_min=0.0, b_max=1.0, clip=True),
    ])
    data = pre({"image": image})
    roi = (preset.img_size,) * 3
    with torch.no_grad():
        data["pred"] = sliding_window_inference(data["image"][None], roi, 1, model, overlap=OVERLAP,
                                                mode="gaussian")[0]
    post = Compose([
        Invertd(keys="pred", transform=pre, orig_keys="image", nearest_interp=False, to_tensor=True),
        AsDiscreted(keys="pred", argmax=True),
        SaveImaged(keys="pred", output_dir=out_dir, output_postfix="seg", separate_folder=False, resample=False,
                   output_dtype=np.uint8, print_log=False),
    ])
    post(data)


def window_model(model_dir: str):
    """(model, one window batch (1, 1, S, S, S)) on the CPU in fp32, this process's malloc tuned as ``sslseg segment``
    tunes it."""
    import torch

    from sslseg.package.model_package import load_model_package
    from sslseg.segmentation.segment import Segmenter, SegmentOptions, tune_process_malloc

    tune_process_malloc()
    segmenter = Segmenter(load_model_package(model_dir), SegmentOptions(device="cpu", amp="off"))
    size = segmenter.preset.img_size
    return segmenter.model, torch.rand(1, 1, size, size, size)


def time_one_window(model_dir: str) -> None:
    """Print ``fp32 S`` then ``bf16 S``: one window's forward pass (softmax included), as our path runs it."""
    import torch

    from sslseg.training.amp import Precision

    model, batch = window_model(model_dir)
    with torch.no_grad():
        torch.softmax(model(batch), 1)  # warm-up (fp32)
        start = time.perf_counter()
        torch.softmax(model(batch), 1)
        print(f"fp32 {time.perf_counter() - start:.4f}", flush=True)
        precision = Precision("bf16", "cpu")
        precision.prepare(model)  # as `--amp bf16` runs it: norms and attention softmax in float32
        start = time.perf_counter()
        with precision.autocast():
            logits = model(batch)
        torch.softmax(logits.float(), 1)
        print(f"bf16 {time.perf_counter() - start:.4f}", flush=True)


if __name__ == "__main__":
    if sys.argv[1] == "plain":
        plain_monai(*sys.argv[2:5])
    elif sys.argv[1] == "window":
        time_one_window(sys.argv[2])
    else:
        sys.exit(f"unknown mode {sys.argv[1]!r}")
