"""SSL pretraining throughput: our engine vs a plain loop written the way MONAI's self-supervised tutorial writes it.

Both sides run in the same benchmark run, on the same synthetic CTs, with the same ViTAutoEnc (same initial weights),
the same views (in-/out-painting + local shuffling), the same loss (L1 + contrastive * L1, T = 0.05), AdamW
(lr 1e-4, weight decay 1e-5, no gradient clipping), fp32, the same patches per step and per epoch, and the same number
of data-loading worker processes:

* **ours**: ``sslseg.pretrain.run.pretrain`` as a user runs it (deterministic preprocessing cached on disk once,
  random patches read from the memory-mapped cache, views in persistent workers, ``set_track_meta(False)``, atomic
  checkpoint + encoder + loss curve written at every epoch end; validation off on both sides);
* **plain**: a ``monai.data.Dataset`` re-running the whole transform chain every epoch (load, resample, scale, crop,
  pad, 2 random patches per volume, two views), ``DataLoader(shuffle=True)`` without persistent workers, MetaTensor
  tracking left on, two forward passes per step, ``monai.losses.ContrastiveLoss`` — the loop of
  https://github.com/Project-MONAI/tutorials/blob/main/self_supervised_pretraining/vit_unetr_ssl/ssl_train.ipynb
  with three deliberate differences so that both sides train the same thing: the intensity window and foreground
  threshold are ours (-1000..1000 HU, body > -500 HU; the tutorial's -57..164 is a soft-tissue window), hole sizes
  scale with the patch as ours do (``S / 96``; identical at 96^3), and AdamW instead of Adam.

Each side runs in its own process, so that settings read at process start can be given to it and memory is measured
per side. Every process gets ``OMP_WAIT_POLICY=PASSIVE`` (see ``OMP_PASSIVE``: without it, on a 2-core machine shared
with any other work, both sides are 10-40x slower and the figures mostly measure the neighbours), except one
diagnostic row without it; extra rows show ours with DESIGN.md's malloc setting and with no worker process.
Samples/s = training patches per second of wall time; "epoch 1" is measured from the start of the
run (model construction and, for ours, the cache build included), "steady" over epochs 2.. (what a long run sees).
Peak memory: the process's own peak RSS (``getrusage``) and the peak PSS summed over the process and its data-loading
workers (sampled from ``/proc`` every 0.2 s; PSS counts pages shared between them once).

Run alone: ``python -m benchmarks.run pretrain``.
"""

from __future__ import annotations

import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from benchmarks.result import BenchResult
from benchmarks.run_events import read_events
from sslseg.training.compute import cpu_class
from sslseg.training.run_dir import EVENTS

#: Synthetic CTs: a 256 x 256 x 160 grid of 1.4 x 1.4 x 2.5 mm (about 0.6-0.9 s of load + resample + scale + crop each
#: on this CPU; a real 512^2 CT costs 2-4 times more, which only makes the plain loop slower).
GRID = (256, 256, 160)
SPACING_MM = (1.4, 1.4, 2.5)
CASES = 8
#: DESIGN.md's glibc malloc setting for training workers (must be in the environment when the process starts).
MALLOC_TUNABLES = "glibc.malloc.mmap_max=0:glibc.malloc.trim_threshold=68719476736"
#: libgomp (torch's OpenMP) threads sleep instead of spinning while they wait. Without it, two torch threads on a
#: 2-core machine that also runs anything else (our own data worker, another job) wait on each other for whole
#: scheduler slices: a tiny-preset step measured 0.2 s with it and 0.8-8.8 s without, on this machine under load.
#: Read when torch loads, so it must be in the environment when the process starts (a job runner can set it).
OMP_PASSIVE = {"OMP_WAIT_POLICY": "PASSIVE"}
CHILD_TIMEOUT_S = 600


@dataclass(frozen=True)
class Setting:
    """One preset's comparison: patch edge, patches per step, volumes, epochs, repeats per side."""

    preset: str
    patch: int
    batch: int
    cases: int
    epochs: int
    repeats: int


SETTINGS = (
    Setting("tiny", patch=64, batch=4, cases=CASES, epochs=3, repeats=2),
    # a vit-b step (2 patches of 96^3) takes 3.4 s on this CPU when it is otherwise idle: 3 volumes x 2 patches =
    # 3 steps per epoch, 2 epochs (the first, and one steady-state epoch)
    Setting("vit-b", patch=96, batch=2, cases=3, epochs=2, repeats=1),
)


@dataclass(frozen=True)
class Variant:
    """One pipeline as run: which side, its environment and settings; ``vs``: the row its ratio is taken against;
    ``presets``: where it runs (None: every preset); ``once``: in the first repeat only (a slow diagnostic row)."""

    label: str
    side: str
    env: tuple = ()
    workers: int | None = None
    vs: str = "plain"
    presets: tuple | None = None
    once: bool = False


VARIANTS = (
    Variant("plain", "plain", tuple(OMP_PASSIVE.items())),
    Variant("ours", "ours", tuple(OMP_PASSIVE.items())),
    Variant("ours + malloc setting", "ours", tuple({**OMP_PASSIVE, "GLIBC_TUNABLES": MALLOC_TUNABLES}.items())),
    Variant("ours, 0 workers", "ours", tuple(OMP_PASSIVE.items()), workers=0, presets=("tiny",)),
    Variant("ours, OpenMP spinning (no OMP_WAIT_POLICY)", "ours", (), presets=("tiny",), once=True),
)


# --- the two sides, each run in a child process --------------------------------------------------------------------

def _ours(spec: dict) -> dict:
    from sslseg.pretrain.config import PretrainConfig
    from sslseg.pretrain.run import pretrain

    out = Path(spec["out"])
    start = time.time()
    pretrain(PretrainConfig(
        data_dir=spec["data"], out_dir=str(out), preset=spec["preset"], patch_size=spec["patch"],
        batch_size=spec["batch"], epochs=spec["epochs"], seed=0, grad_clip=0.0, val_every=0, val_fraction=0.0,
        checkpoint_every=0, workers=spec["workers"], events=str(out / EVENTS), overwrite=True, amp="off",
    ))
    events = read_events(out)
    epochs = [e for e in events if e["event"] == "epoch"]
    began, trained = (next(e["time"] for e in events if e["event"] == kind) for kind in ("stage", "start"))
    return {"start": start, "epoch_ends": [e["time"] for e in epochs], "losses": [e["train_loss"] for e in epochs],
            "cache_s": trained - began}


def _fg_body(image):
    """Foreground = body: above -500 HU, i.e. 0.25 on the -1000..1000 HU window (ours; picklable for workers)."""
    return image > 0.25


def _tutorial_model(preset, size: int):
    """The tutorial's ``ViTAutoEnc`` at the preset's size, input ``size``^3."""
    from monai.networks.nets import ViTAutoEnc

    return ViTAutoEnc(in_channels=1, img_size=size, patch_size=16, proj_type="conv", hidden_size=preset.hidden_size,
                      mlp_dim=preset.mlp_dim, num_layers=preset.num_layers, num_heads=preset.num_heads)


def _tutorial_loss():
    """``loss(model, view1, view2, target)`` as the tutorial computes it: L1 reconstruction of view 1 plus MONAI's
    contrastive loss between both reconstructions (T = 0.05), weighted by the L1 term. Tensors (B, 1, S, S, S)."""
    import torch
    from monai.losses import ContrastiveLoss

    l1, contrastive = torch.nn.L1Loss(), ContrastiveLoss(temperature=0.05)

    def loss(model, view1, view2, target):
        out_1, _ = model(view1)
        out_2, _ = model(view2)
        r_loss = l1(out_1, target)
        return r_loss + contrastive(out_1.flatten(1), out_2.flatten(1)) * r_loss

    return loss


def _plain(spec: dict) -> dict:
    """The tutorial's training loop, compactly (see the module docstring for what differs and why)."""
    import torch
    from monai.data import DataLoader, Dataset
    from monai.transforms import (Compose, CopyItemsd, CropForegroundd, EnsureChannelFirstd, LoadImaged, OneOf,
                                  RandCoarseDropoutd, RandCoarseShuffled, RandSpatialCropSamplesd,
                                  ScaleIntensityRanged, Spacingd, SpatialPadd)
    from monai.utils import set_determinism

    from sslseg.models.presets import get_preset

    start = time.time()
    size = spec["patch"]

    def voxels(at_96: int) -> int:  # the tutorial's sizes are for 96^3 patches
        return max(1, round(at_96 * size / 96))

    def two_damages(key: str) -> list:
        return [OneOf([RandCoarseDropoutd(keys=key, prob=1.0, holes=6, spatial_size=voxels(5), dropout_holes=True,
                                          max_spatial_size=voxels(32)),
                       RandCoarseDropoutd(keys=key, prob=1.0, holes=6, spatial_size=voxels(20), dropout_holes=False,
                                          max_spatial_size=voxels(64))]),
                RandCoarseShuffled(keys=key, prob=0.8, holes=10, spatial_size=voxels(8))]

    transforms = Compose([
        LoadImaged(keys="image"), EnsureChannelFirstd(keys="image"),
        Spacingd(keys="image", pixdim=(2.0, 2.0, 2.0), mode="bilinear"),
        ScaleIntensityRanged(keys="image", a_min=-1000, a_max=1000, b_min=0.0, b_max=1.0, clip=True),
        CropForegroundd(keys="image", source_key="image", select_fn=_fg_body),
        SpatialPadd(keys="image", spatial_size=(size,) * 3),
        RandSpatialCropSamplesd(keys="image", roi_size=(size,) * 3, random_size=False, num_samples=2),
        CopyItemsd(keys="image", times=2, names=["gt_image", "image_2"]),
        *two_damages("image"), *two_damages("image_2"),
    ])
    set_determinism(seed=0)
    preset = get_preset(spec["preset"])
    model = _tutorial_model(preset, size)
    files = [{"image": str(p)} for p in sorted(Path(spec["data"]).glob("*.nii.gz"))]
    # num_samples=2 patches per volume: batch_size volumes give 2 x batch_size patches per step
    loader = DataLoader(Dataset(files, transforms), batch_size=spec["batch"] // 2, shuffle=True,
                        num_workers=spec["workers"])
    tutorial_loss = _tutorial_loss()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=1e-5)
    epoch_ends, losses = [], []
    for _ in range(spec["epochs"]):
        model.train()
        epoch_losses = []
        for batch in loader:
            optimizer.zero_grad()
            loss = tutorial_loss(model, batch["image"], batch["image_2"], batch["gt_image"])
            loss.backward()
            optimizer.step()
            epoch_losses.append(loss.item())
        epoch_ends.append(time.time())
        losses.append(sum(epoch_losses) / len(epoch_losses))
    return {"start": start, "epoch_ends": epoch_ends, "losses": losses}


def _child(side: str, spec_path: str) -> None:
    spec = json.loads(Path(spec_path).read_text())
    import torch  # imported before the clock starts, on both sides

    import monai  # noqa: F401

    if spec.get("threads"):
        torch.set_num_threads(spec["threads"])
    result = (_ours if side == "ours" else _plain)(spec)
    result["max_rss"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    Path(spec["result"]).write_text(json.dumps(result))


# --- the parent: runs children, samples their memory, summarises ----------------------------------------------------

def _children_of() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                parent = int(open(f"/proc/{entry}/stat").read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            tree.setdefault(parent, []).append(int(entry))
    return tree


def _tree_pss(root: int) -> int:
    """Bytes of PSS of ``root`` and every descendant (0 where /proc cannot be read)."""
    tree, total, todo = _children_of(), 0, [root]
    while todo:
        pid = todo.pop()
        todo += tree.get(pid, [])
        try:
            for line in open(f"/proc/{pid}/smaps_rollup"):
                if line.startswith("Pss:"):
                    total += int(line.split()[1]) * 1024
                    break
        except OSError:
            continue
    return total


def run_side(side: str, spec: dict, env_extra: dict, folder: Path) -> dict:
    """Run one side in a child process; its result plus ``peak_pss`` (bytes)."""
    spec = {**spec, "result": str(folder / "result.json")}
    (folder / "spec.json").write_text(json.dumps(spec))
    inherited = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GLIBC_TUNABLES")}
    env = {**inherited, **env_extra, "PYTHONPATH": os.pathsep.join(filter(None, [str(Path(__file__).parents[1]),
                                                                                 os.environ.get("PYTHONPATH")]))}
    with open(folder / "stderr.txt", "wb") as stderr:
        process = subprocess.Popen([sys.executable, "-m", "benchmarks.bench_pretrain", side, str(folder / "spec.json")],
                                   env=env, stdout=subprocess.DEVNULL, stderr=stderr)
        peak, began = 0, time.monotonic()
        while process.poll() is None:
            peak = max(peak, _tree_pss(process.pid))
            if time.monotonic() - began > CHILD_TIMEOUT_S:
                process.kill()
            time.sleep(0.2)
    if process.returncode != 0:
        tail = (folder / "stderr.txt").read_text(errors="replace")[-2000:]
        raise RuntimeError(f"{side} failed ({process.returncode}):\n{tail}")
    return {**json.loads((folder / "result.json").read_text()), "peak_pss": peak}


def summarise(result: dict, patches_per_epoch: int) -> dict:
    ends, start = result["epoch_ends"], result["start"]
    first = ends[0] - start
    steady = (ends[-1] - ends[0]) / (len(ends) - 1)
    return {"first_s": first, "first_sps": patches_per_epoch / first, "steady_s": steady,
            "steady_sps": patches_per_epoch / steady, "losses": result["losses"], "cache_s": result.get("cache_s"),
            "max_rss": result["max_rss"], "peak_pss": result["peak_pss"]}


def _median_run(runs: list[dict]) -> dict:
    """Medians of every figure over repeats; the loss trajectory of the run with the median steady rate."""
    middle = sorted(runs, key=lambda r: r["steady_sps"])[len(runs) // 2]
    merged = {k: statistics.median(r[k] for r in runs) if runs[0][k] is not None else None
              for k in runs[0] if k != "losses"}
    return {**merged, "losses": middle["losses"], "repeats": len(runs)}


def _write_data(folder: Path) -> dict[int, Path]:
    from sslseg.synth.cohort import write_unlabelled

    paths = write_unlabelled(folder / f"cases{CASES}", CASES, GRID, SPACING_MM, seed=0)
    folders = {CASES: folder / f"cases{CASES}"}
    for setting in SETTINGS:
        if setting.cases not in folders:  # case n depends only on (seed, n): link the first ones
            subset = folder / f"cases{setting.cases}"
            subset.mkdir()
            for path in paths[:setting.cases]:
                os.link(path, subset / path.name)
            folders[setting.cases] = subset
    return folders


def _gib(n: float) -> str:
    return f"{n / 2**30:.2f}"


def _losses(values: list[float]) -> str:
    return " → ".join(f"{v:.3f}" for v in values)


def run(settings=SETTINGS, variants=VARIANTS) -> BenchResult:
    from sslseg.data.loader import default_workers

    workers = default_workers()
    result = BenchResult(
        "SSL pretraining: ours vs the MONAI tutorial's plain loop",
        ["preset", "pipeline", "epoch 1 s (cache s)", "epoch 1 samples/s", "steady samples/s", "steady ratio",
         "peak PSS GiB (all procs)", "peak RSS GiB (main)", "mean loss per epoch"],
    )
    ratios, loads = {}, []
    with tempfile.TemporaryDirectory(prefix="bench_pretrain_") as temporary:
        folder = Path(temporary)
        data = _write_data(folder)
        for setting in settings:
            loads.append(os.getloadavg()[0])
            spec = {"preset": setting.preset, "patch": setting.patch, "batch": setting.batch, "epochs": setting.epochs,
                    "data": str(data[setting.cases])}
            per_epoch = setting.cases * 2
            mine = [v for v in variants if v.presets is None or setting.preset in v.presets]
            runs: dict[str, list] = {v.label: [] for v in mine}
            for repeat in range(setting.repeats):  # interleaved, so drift of the machine hits every side alike
                for index, variant in enumerate(mine):
                    if variant.once and repeat:
                        continue
                    where = folder / f"{setting.preset}-{index}-{repeat}"
                    where.mkdir()
                    side_spec = {**spec, "out": str(where / "run"),  # a fresh RUN_DIR: ours builds its cache again
                                 "workers": workers if variant.workers is None else variant.workers}
                    runs[variant.label].append(
                        summarise(run_side(variant.side, side_spec, dict(variant.env), where), per_epoch))
            medians = {label: _median_run(r) for label, r in runs.items()}
            for variant in mine:
                m, base = medians[variant.label], medians[variant.vs]
                ratio = m["steady_sps"] / base["steady_sps"]
                if variant.side == "ours":
                    ratios[(setting.preset, variant.label)] = (ratio, m["first_sps"] / base["first_sps"])
                first = f"{m['first_s']:.1f}" + (f" ({m['cache_s']:.1f})" if m["cache_s"] is not None else "")
                result.rows.append([
                    f"{setting.preset} ({setting.patch}^3, {setting.batch}/step)", variant.label, first,
                    m["first_sps"], m["steady_sps"], "1" if variant.side == "plain" else f"{ratio:.2f}x",
                    _gib(m["peak_pss"]), _gib(m["max_rss"]), _losses(m["losses"]),
                ])
            result.notes.append(
                f"{setting.preset}: {setting.cases} volumes x 2 patches = {per_epoch} patches per epoch, "
                f"{setting.epochs} epochs, median of {setting.repeats} run(s) per pipeline (1 for the OpenMP-spinning "
                f"row); 1-minute load average before it: {loads[-1]:.1f}")
    result.notes += _conclusions(ratios, workers, loads + [os.getloadavg()[0]])
    result.notes.append(_same_objective())
    return result


def _same_objective(steps: int = 6, size: int = 32) -> str:
    """Both losses, from the same initial weights, trained on the same batches: the largest difference of the loss."""
    import torch

    from sslseg.models.presets import get_preset
    from sslseg.ssl import create_method

    method = create_method("inpaint-contrastive", temperature=0.05)
    preset = get_preset("tiny").with_img_size(size)
    generator = torch.Generator().manual_seed(1)
    batches = [{k: torch.rand(4, 1, size, size, size, generator=generator) for k in ("gt", "view1", "view2")}
               for _ in range(steps)]
    torch.manual_seed(0)
    ours = method.build_model(preset)
    torch.manual_seed(0)
    plain = _tutorial_model(preset, size)
    optimisers = [torch.optim.AdamW(m.parameters(), lr=1e-4, weight_decay=1e-5) for m in (ours, plain)]
    tutorial_loss, differences = _tutorial_loss(), []
    for batch in batches:
        losses = []
        for model, optimiser in zip((ours, plain), optimisers):
            optimiser.zero_grad()
            if model is ours:
                loss = method.loss(model, batch, lambda t: t).total
            else:
                loss = tutorial_loss(model, batch["view1"], batch["view2"], batch["gt"])
            loss.backward()
            optimiser.step()
            losses.append(float(loss.detach()))
        differences.append(abs(losses[0] - losses[1]))
    return (f"Same objective: from the same initial weights on the same {steps} batches (tiny, {size}^3), our loss "
            f"and the tutorial loop's differ by at most {max(differences):.1e} (loss about {losses[1]:.2f}), step "
            "after step; the per-epoch means in the table differ because each side draws its own random patches "
            "and views, and 2-3 epochs of 3-4 steps are short.")


def _conclusions(ratios: dict, workers: int, loads: list[float]) -> list[str]:
    notes = [f"Data: {CASES} synthetic CTs {GRID[0]}x{GRID[1]}x{GRID[2]} at {SPACING_MM[0]}x{SPACING_MM[1]}x"
             f"{SPACING_MM[2]} mm (int16 .nii.gz), resampled to 2 mm; {workers} data-loading worker(s) on both sides "
             "unless stated (ours' default, cores - 1; the tutorial uses 4); fp32 on both sides (`--amp off`, what "
             f"`--amp auto` trains in on every CPU), CPU class {cpu_class()}; validation off on both sides; every "
             "process with OMP_WAIT_POLICY=PASSIVE unless stated. "
             "'steady ratio': steady-state samples/s over the plain loop's. 'epoch 1 s' counts from the start of the "
             "run: model set-up, and for ours the cache build (in brackets)."]
    notes.append(f"1-minute load average during the runs: {min(loads):.1f} to {max(loads):.1f} on "
                 f"{os.cpu_count()} cores: other jobs shared this machine, so absolute figures are noisy; both sides "
                 "ran interleaved under the same conditions.")
    for (preset, label), (steady, first) in ratios.items():
        verdict = "meets" if steady >= 3 else "misses"
        notes.append(f"{preset}, {label}: {steady:.2f}x the plain loop's steady-state samples/s "
                     f"({first:.2f}x in epoch 1): {verdict} the 3x target")
    return notes


if __name__ == "__main__":
    _child(sys.argv[1], sys.argv[2])
