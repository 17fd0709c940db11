"""Patient-aware positives (MedAug in 3-D): does pairing two phases of one patient teach phase-invariant features,
and what does it do to organ features? Same data, same seeds, three initialisations of the tiny ViT:

* **random init** (the baseline every probe reports);
* **SimCLR** (two views of one scan);
* **SimCLR + patient positives** (``--method-option patient_positives=0.5``: half the samples take their second view
  from the patient's other phase, at the same RAS place).

Cohort: ``PATIENTS`` synthetic patients, each "scanned" twice in one frame of reference (``patients.csv``): the
phantom as written ("arterial") and a "venous" phase with organ-specific enhancement changes (``VENOUS_HU``: liver
brighter, aorta and kidneys darker), on a grid starting 3 voxels further along i. Probes on ``PROBE_CASES`` other
phantoms, both phases at the same ``PATCHES_PER_ORGAN`` organ-centred 32^3 patches (bench_views' probe):

* **kNN organ accuracy across phases**: venous patches labelled by their nearest arterial patches of the other cases
  (cosine, k = 5) — a model's features that do not change with the phase recognise the organs of the other phase
  (the invariance MedAug is meant to teach);
* **kNN organ accuracy** within each phase, leave one case out (bench_views' kNN): does the invariance cost organ
  identity?

(A first version scored cross-phase retrieval of the same patch — is the nearest venous patch the arterial patch's
own? — and the random ViT already scored 1.000 on it: the phases differ only in intensity at the same place, so it
measures nothing.)

Run alone: ``python -m benchmarks.run patient_positives`` (about 6 minutes on 2 cores).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np

from benchmarks.bench_views import GRID, PATCH, SPACING, knn_labels, knn_scores, pretrained_encoder, probe_patches, spread
from benchmarks.result import BenchResult

SEEDS = (0, 1, 2)
PATIENTS = 6
PROBE_CASES = 6
#: HU added per organ label in the "venous" phase (the phantom's own values look arterial: a bright aorta).
VENOUS_HU = {1: 50.0, 2: -15.0, 3: -40.0, 4: -40.0, 6: -70.0, 7: -25.0}
VARIANTS = {"random init": None, "SimCLR": {}, "SimCLR + patient positives 0.5": {"patient_positives": "0.5"}}


def run() -> BenchResult:
    from sslseg.synth.cohort import write_labelled
    from sslseg.training.compute import cpu_class

    result = BenchResult(f"Patient-aware positives: kNN organ probe across and within phases (CPU class {cpu_class()})",
                         ["initialisation", "kNN accuracy, venous from arterial", "kNN accuracy, arterial",
                          "kNN accuracy, venous", "last-20-step loss"])
    with tempfile.TemporaryDirectory(prefix="bench_patient_positives_") as folder:
        folder = Path(folder)
        write_labelled(folder / "patients", PATIENTS, size=GRID, spacing=SPACING, seed=3)
        two_phase_folder(folder / "patients", folder / "unlabelled", shift=3)
        write_labelled(folder / "probe", PROBE_CASES, size=GRID, spacing=SPACING, seed=11)
        venous_probe(folder / "probe", folder / "probe_venous")
        arterial, venous = probe_patches(folder / "probe"), probe_patches(folder / "probe_venous")
        for name, options in VARIANTS.items():
            scores = []
            for seed in SEEDS:
                print(f"  {name}, seed {seed}", flush=True)
                encoder, loss = pretrained_encoder(folder, name, options, seed)
                scores.append((cross_phase_accuracy(encoder, arterial, venous), knn_scores(encoder, arterial)[0],
                               knn_scores(encoder, venous)[0], loss))
            cross, knn_arterial, knn_venous, losses = zip(*scores)
            result.rows.append([name, spread(cross), spread(knn_arterial), spread(knn_venous),
                                "-" if options is None else spread(losses)])
    result.notes += [
        f"{len(SEEDS)} seeds (min..max after the mean); each seed pretrains from its own initial weights.",
        f"Pretraining: SimCLR defaults, tiny ViT, batch 8, lr 1e-4, {PATIENTS} patients x 2 phases at {SPACING:g} mm "
        f"(bench_views' settings); probe: {PROBE_CASES} other phantoms, {len(arterial)} patches per phase "
        "(8 organs), cosine kNN k=5, leave one case out.",
        "Synthetic phases: a toy; the organ-specific enhancement differences are larger than SimCLR's intensity "
        "augmentation can imitate, which is what patient positives add.",
        f"1-minute load average at the end: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores.",
    ]
    return result


def venous(image: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """The "venous" phase of an image (HU) with organ labels on its grid."""
    out = image.astype(np.float32)
    for value, change in VENOUS_HU.items():
        out[labels == value] += change
    return out


def two_phase_folder(labelled: Path, out: Path, shift: int) -> None:
    """Each labelled case as two images of one patient and frame: as is, and venous on a grid ``shift`` voxels
    further along i; ``patients.csv`` pairs them."""
    from sslseg.io.volume_io import read_volume, write_volume
    from sslseg.volume import Volume

    out.mkdir(parents=True)
    rows = ["file,patient,study,frame"]
    for image_path in sorted((labelled / "imagesTr").glob("*.nii.gz")):
        image, labels = read_volume(image_path), read_volume(labelled / "labelsTr" / image_path.name)
        affine = image.affine.copy()
        affine[:3, 3] = image.affine[:3, :3] @ (shift, 0, 0) + image.affine[:3, 3]
        phase = venous(image.array, np.rint(labels.array))[shift:].astype(np.int16)
        name = image_path.name.removesuffix(".nii.gz")
        write_volume(image, out / f"{name}_arterial.nii.gz")
        write_volume(Volume(phase, affine), out / f"{name}_venous.nii.gz")
        rows += [f"{name}_arterial.nii.gz,{name},S,F-{name}", f"{name}_venous.nii.gz,{name},S,F-{name}"]
    (out / "patients.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")


def venous_probe(labelled: Path, out: Path) -> None:
    """A copy of a labelled MSD folder with every image in its venous phase (same grids, same labels)."""
    import shutil

    from sslseg.io.volume_io import read_volume, write_volume

    shutil.copytree(labelled, out)
    for image_path in sorted((out / "imagesTr").glob("*.nii.gz")):
        image, labels = read_volume(image_path), read_volume(out / "labelsTr" / image_path.name)
        write_volume(image.with_array(venous(image.array, np.rint(labels.array)).astype(image.array.dtype)),
                     image_path, overwrite=True)


def cross_phase_accuracy(encoder, arterial, venous_patches) -> float:
    """Share of venous patches whose organ the kNN of arterial patches of the other cases gets right."""
    from sslseg.probes.knn_probe import pooled_features

    predicted = knn_labels(pooled_features(encoder, arterial), arterial, pooled_features(encoder, venous_patches),
                           venous_patches)
    return float(np.mean(predicted == np.array([p.organ for p in venous_patches])))
