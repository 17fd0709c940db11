"""Per-step cost of every pretraining method in the table: samples/s and peak memory, tiny and vit-b, 96^3 patches.

One training step as the loop runs it (the method's ``step_loss``, backward, AdamW on its parameter groups, its
``after_step``), batch 2, float32 (``--amp off``: the CPU training default) or the CUDA default (``auto``) on a GPU.
Views are made once beforehand: in a run they come from the data-loading workers, in parallel with the step. Each
method runs in its own process, so the peak memory is its own: on the CPU the process's peak RSS (``getrusage``,
model + optimiser + activations + torch itself), on a GPU ``torch.cuda.max_memory_allocated``. Samples/s = 2 / the
median of ``TIMED_STEPS`` steps after one warm-up step. The ratio column compares with SimCLR, the cheapest
two-view method (one network, one projector, both views in one pass).

Run alone: ``python -m benchmarks.run methods`` (about 25 minutes on 2 cores, most of it vit-b).
"""

from __future__ import annotations

import json
import os
import resource
import statistics
import subprocess
import sys
import time

from benchmarks.result import BenchResult

PATCH = 96
BATCH = 2
TIMED_STEPS = {"tiny": 3, "vit-b": 2}
#: Options of a method that change its step (rows beside the table's methods): name -> (method, options).
OPTION_ROWS = {"simclr + false_negatives=eliminate (1 support view)": ("simclr", {"false_negatives": "eliminate"}),
               "moco-v2 + false_negatives=eliminate (1 support view)": ("moco-v2", {"false_negatives": "eliminate"})}
#: Without it, OpenMP threads spin while waiting and on a shared 2-core machine the figures measure the neighbours.
OMP_PASSIVE = {"OMP_WAIT_POLICY": "PASSIVE"}


def run() -> BenchResult:
    from sslseg.ssl.table import METHODS

    result = BenchResult(f"Pretraining methods: one step, batch {BATCH}, {PATCH}^3 ({_device_words()})",
                         ["method", "tiny samples/s", "tiny vs SimCLR", "tiny peak memory GiB",
                          "vit-b samples/s", "vit-b vs SimCLR", "vit-b peak memory GiB"])
    rows = {**{name: (name, {}) for name in METHODS}, **OPTION_ROWS}
    measured = {(name, preset): _child(*rows[name], preset) for name in rows for preset in TIMED_STEPS}
    for name in rows:
        row = [name]
        for preset in TIMED_STEPS:
            mine, simclr = measured[(name, preset)], measured[("simclr", preset)]
            row += [mine["samples_per_s"], f"{mine['samples_per_s'] / simclr['samples_per_s']:.2f}x",
                    mine["peak_bytes"] / 2 ** 30]
        result.rows.append(row)
    result.notes += [
        "Views made beforehand (the data workers' share is not in the step); SwAV's step includes its local crops.",
        "CPU peak memory is the process's peak RSS, torch's own ~0.3-0.5 GiB included; on a GPU it is the allocator's "
        "peak.",
        f"1-minute load average at the end: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores.",
    ]
    return result


def _device_words() -> str:
    import torch

    from sslseg.training.compute import cpu_class

    if torch.cuda.is_available():
        return f"GPU {torch.cuda.get_device_name(0)}, --amp auto"
    return f"CPU class {cpu_class()}, {torch.get_num_threads()} threads, float32"


def _child(name: str, options: dict, preset: str) -> dict:
    print(f"  {name} {options or ''}, {preset}", flush=True)
    output = subprocess.run([sys.executable, "-m", "benchmarks.bench_methods", name, preset, json.dumps(options)],
                            capture_output=True, text=True, env={**os.environ, **OMP_PASSIVE}, check=True)
    return json.loads(output.stdout.strip().splitlines()[-1])


def measure(name: str, preset_name: str, options: dict | None = None) -> dict:
    """One method's (with ``options``) step time and peak memory in this process."""
    import numpy as np
    import torch

    from sslseg.models.presets import get_preset
    from sslseg.ssl import StepContext, create_method
    from sslseg.training.amp import Precision, resolve_amp

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    precision = Precision(resolve_amp("auto" if device.type == "cuda" else "off", device), device.type)
    method = create_method(name, **(options or {}))
    size = method.region_size(PATCH)
    region = np.random.default_rng(0).random((1, size, size, size), dtype=np.float32)
    samples = [method.make_views(region, np.random.RandomState(seed)) for seed in range(BATCH)]
    batch = {k: torch.stack([torch.as_tensor(s[k]) for s in samples]).to(device) for k in samples[0]}
    torch.manual_seed(0)
    model = precision.prepare(method.build_model(get_preset(preset_name).with_img_size(PATCH)).to(device))
    optimizer = torch.optim.AdamW(method.param_groups(model, 1e-4, 1e-5), lr=1e-4)
    times = []
    for step in range(1 + TIMED_STEPS[preset_name]):
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        with precision.autocast():
            loss = method.step_loss(model, batch, StepContext(step=step, total_steps=100)).total
        optimizer.zero_grad(set_to_none=True)
        precision.scaler.scale(loss).backward()
        precision.scaler.step(optimizer)
        precision.scaler.update()
        method.after_step(model, StepContext(step=step + 1, total_steps=100))
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    peak = (torch.cuda.max_memory_allocated() if device.type == "cuda"
            else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
    return {"samples_per_s": BATCH / statistics.median(times[1:]), "peak_bytes": peak}


if __name__ == "__main__":
    print(json.dumps(measure(sys.argv[1], sys.argv[2], json.loads(sys.argv[3]) if len(sys.argv) > 3 else None)))
