"""Do flips and rotations in the pretraining views help or hurt organ features? A kNN probe of organ patches.

The decision in :mod:`sslseg.ssl.views3d` (no flips, no rotations) rests on one finding of the fine-tuning; this
measures it for the pretraining. Same data, same seeds, four initialisations of the tiny ViT:

* **random init**: the untrained ViT (the baseline every probe reports);
* **SimCLR, default views**: random resized 3-D crops + intensity changes (no flips, no rotations);
* **SimCLR + left-right flips** (``--method-option flip_axes=0``): each view flipped left-right with probability 0.5;
* **SimCLR + axial 90-degree turns** (``--method-option rotate90=true``).

Pretraining: ``PRETRAIN_CASES`` synthetic CTs (2 mm, 88 x 80 x 64 voxels, 32^3 patches, batch 8, ``STEPS`` steps,
float32). At 4 mm a 32^3 patch (and its 48^3 view region) covers the whole phantom, so every patch shows the same
body and SimCLR stays at chance (measured: loss log(15) = 2.708 after 200 steps at lr 1e-4..1e-3, with and without
normalisation in the projector); at 2 mm patches show different organs and it learns. Probe: on
``PROBE_CASES`` other labelled phantoms (same grid), ``PATCHES_PER_ORGAN`` 32^3 patches centred on random voxels of each
of the 8 organs, their mean-pooled ViT features (frozen), and a cosine kNN (k = 5) that labels each patch from the
patches of the *other* cases (leave one case out). Reported: accuracy over all patches, and the share of kidney
patches labelled as the kidney of the other side — what invariance to left-right flips should break. The phantoms'
kidneys are mirror images of each other (``sslseg.synth.anatomy``), so only the context (liver or spleen beside it)
tells the sides apart.

Run alone: ``python -m benchmarks.run views`` (about 10 minutes on 2 cores).
"""

from __future__ import annotations

import os
import statistics
import tempfile
from pathlib import Path

import numpy as np

from benchmarks.result import BenchResult

SEEDS = (0, 1, 2)
STEPS = 400
PRETRAIN_CASES = 10
PROBE_CASES = 6
PATCHES_PER_ORGAN = 6
PATCH = 32
SPACING = 2.0
GRID = (88, 80, 64)
K = 5
VARIANTS = {"random init": None, "SimCLR, default views": {}, "SimCLR + left-right flips": {"flip_axes": "0"},
            "SimCLR + axial 90-degree turns": {"rotate90": "true"}}


def run() -> BenchResult:
    from sslseg.synth.cohort import write_labelled, write_unlabelled
    from sslseg.training.compute import cpu_class

    result = BenchResult(f"Views: kNN organ probe after pretraining with and without flips (CPU class {cpu_class()})",
                         ["initialisation", "kNN accuracy, 8 organs", "kidney side swapped", "liver/spleen swapped",
                          "last-20-step loss"])
    with tempfile.TemporaryDirectory(prefix="bench_views_") as folder:
        folder = Path(folder)
        write_unlabelled(folder / "unlabelled", PRETRAIN_CASES, size=GRID, spacing=SPACING, seed=3)
        write_labelled(folder / "labelled", PROBE_CASES, size=GRID, spacing=SPACING, seed=11)
        patches = probe_patches(folder / "labelled")
        for name, options in VARIANTS.items():
            scores = []
            for seed in SEEDS:
                print(f"  {name}, seed {seed}", flush=True)
                encoder, loss = pretrained_encoder(folder, name, options, seed)
                scores.append((*knn_scores(encoder, patches), loss))
            accuracy, side, liver_spleen, losses = zip(*scores)
            result.rows.append([name, spread(accuracy), spread(side), spread(liver_spleen),
                                "-" if options is None else spread(losses)])
    result.notes += [
        f"{len(SEEDS)} seeds (min..max after the mean); each seed pretrains from its own initial weights, the probe "
        "patches are the same for every row.",
        f"Pretraining: SimCLR defaults (T 0.1, projector 512 -> 128), tiny ViT, {STEPS} steps of batch 8, lr 1e-4, "
        f"{PRETRAIN_CASES} synthetic CTs at {SPACING:g} mm; probe: {PROBE_CASES} other phantoms, "
        f"{PATCHES_PER_ORGAN} patches per organ and case, cosine kNN k={K}, leave one case out.",
        "Synthetic phantoms: a toy for anatomy; the question it answers is whether the views' invariances remove "
        "information the organ labels need, not how good the features are on real CT.",
        f"1-minute load average at the end: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores.",
    ]
    return result


def probe_patches(labelled: Path) -> list:
    """:class:`~sslseg.probes.knn_probe.OrganPatch` es (organ: its name; patch (1, P, P, P) float32 in 0..1) centred on
    random voxels of each organ, on the RAS grid the
    pretraining sees (intensity scaled as pretraining does; no foreground crop, so labels stay aligned)."""
    import json

    from sslseg.data.preprocess import PreprocessSettings, resample_ras, scale_intensity
    from sslseg.io.volume_io import read_volume
    from sslseg.probes.knn_probe import OrganPatch

    names = {int(k): v for k, v in json.loads((labelled / "dataset.json").read_text())["labels"].items() if int(k)}
    rng = np.random.default_rng(0)
    patches = []
    for case, image_path in enumerate(sorted((labelled / "imagesTr").glob("*.nii.gz"))):
        image, _ = resample_ras(read_volume(image_path), SPACING)
        labels, _ = resample_ras(read_volume(labelled / "labelsTr" / image_path.name), SPACING, mode="nearest")
        image, _ = scale_intensity(image, "ct", PreprocessSettings(spacing_mm=SPACING))
        padded = np.pad(image, PATCH // 2)
        for value, organ in names.items():
            voxels = np.argwhere(np.rint(labels) == value)
            for centre in voxels[rng.choice(len(voxels), size=min(PATCHES_PER_ORGAN, len(voxels)), replace=False)]:
                i, j, k = centre  # padded by P/2: the patch centred on the voxel starts at its index
                patches.append(OrganPatch(case, organ, padded[i:i + PATCH, j:j + PATCH, k:k + PATCH][None].copy()))
    return patches


def knn_scores(encoder, patches) -> tuple[float, float, float]:
    """(accuracy, share of kidney patches labelled as the other kidney, share of liver/spleen patches labelled as the
    other of the two) of a leave-one-case-out cosine kNN on the encoder's pooled features."""
    from sslseg.probes.knn_probe import pooled_features

    features = pooled_features(encoder, patches)
    organs = np.array([p.organ for p in patches])
    predicted = knn_labels(features, patches, features, patches)
    return (float(np.mean(predicted == organs)), _swapped(organs, predicted, "right_kidney", "left_kidney"),
            _swapped(organs, predicted, "liver", "spleen"))


def knn_labels(reference_features, reference, query_features, queries) -> np.ndarray:
    """The organ each query patch gets from its K most similar reference patches of *other* cases (majority)."""
    from sslseg.probes.knn_probe import knn_vote

    return knn_vote(reference_features, [p.case for p in reference], [p.organ for p in reference], query_features,
                    [q.case for q in queries], K)


def _swapped(organs, predicted, a: str, b: str) -> float:
    either = (organs == a) | (organs == b)
    swapped = ((organs == a) & (predicted == b)) | ((organs == b) & (predicted == a))
    return float(swapped.sum() / max(1, either.sum()))


def pretrained_encoder(folder: Path, name: str, options: dict | None, seed: int):
    """(pooled-feature ViT in eval mode, mean loss of the last 20 steps or nan)."""
    import torch

    from sslseg.models.encoder_io import read_encoder
    from sslseg.models.presets import get_preset
    from sslseg.pretrain.config import PretrainConfig
    from sslseg.pretrain.run import pretrain
    from sslseg.ssl.backbone import ViTBackbone

    torch.manual_seed(seed)
    backbone = ViTBackbone(get_preset("tiny").with_img_size(PATCH)).eval()
    if options is None:
        return backbone, float("nan")
    out = folder / f"{name}-{seed}".replace(" ", "_").replace(",", "")
    pretrain(PretrainConfig(data_dir=str(folder / "unlabelled"), out_dir=str(out), cache_dir=str(folder / "cache"),
                            method="simclr", method_options=options, preset="tiny", patch_size=PATCH, spacing=SPACING,
                            batch_size=8, patches_per_volume=8, max_steps=STEPS, val_every=0, workers=0,
                            checkpoint_every=0, events=os.devnull, seed=seed, amp="off", device="cpu"))
    _, state = read_encoder(out)
    backbone.vit.load_state_dict(state)
    steps = torch.load(out / "checkpoint.pt", map_location="cpu", weights_only=True)["state"]["step_losses"]
    return backbone, statistics.mean(loss for _, loss in steps[-20:])


def spread(values) -> str:
    values = [v for v in values if v == v]
    if not values:
        return "-"
    return f"{statistics.mean(values):.3f} ({min(values):.3f}..{max(values):.3f})"
