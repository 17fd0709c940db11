"""Demo stages that make and describe the built-in data: synthetic CT phantoms, nothing downloaded."""

from __future__ import annotations

import numpy as np

from sslseg.demo.pipeline import DemoContext
from sslseg.io.pairing import find_labelled_cases
from sslseg.io.scan import find_volumes
from sslseg.io.volume_io import read_volume, write_volume
from sslseg.labels import LabelTable
from sslseg.synth.anatomy import ORGAN_LABELS
from sslseg.synth.cohort import write_labelled, write_unlabelled
from sslseg.synth.grids import tilted_lps_affine
from sslseg.synth.phantom import make_phantom

#: The unseen case's voxel size relative to the cohort's: anisotropic, as clinical CT often is.
UNSEEN_SPACING_FACTORS = np.array([0.9, 1.0, 1.4])
#: Seeds of the cohorts relative to --seed: disjoint, so no case is seen twice.
LABELLED_SEED, UNSEEN_SEED = 1000, 2000


def synthesise(context: DemoContext) -> None:
    """An unlabelled cohort for pretraining, labelled cases (MSD layout) for fine-tuning, and one unseen case with its
    truth on a grid like a scanner's (LPS-stored, tilted, anisotropic) for segmentation."""
    o = context.options
    data = context.out / "data"
    write_unlabelled(data / "unlabelled", o["unlabelled_cases"], o["size"], o["spacing"], seed=o["seed"])
    write_labelled(data / "labelled", o["labelled_cases"], o["size"], o["spacing"], seed=o["seed"] + LABELLED_SEED)
    image, truth = unseen_case(o["size"], o["spacing"], o["seed"] + UNSEEN_SEED)
    context.artefacts.update(
        unlabelled=data / "unlabelled", labelled=data / "labelled",
        unseen=write_volume(image, data / "unseen" / "ct.nii.gz"),
        truth=write_volume(truth, data / "unseen" / "truth.nii.gz"),
    )


def unseen_case(size, spacing, seed: int):
    """(image, truth) Volumes: a phantom on a tilted LPS grid with the cohort's field of view (``size`` voxels of
    ``spacing`` mm along each axis) and voxels :data:`UNSEEN_SPACING_FACTORS` times the cohort's."""
    field_of_view = np.asarray(size, dtype=float) * np.asarray(spacing, dtype=float)
    unseen_spacing = np.asarray(spacing, dtype=float) * UNSEEN_SPACING_FACTORS
    shape = tuple(int(n) for n in np.round(field_of_view / unseen_spacing))
    return make_phantom(seed, shape, affine=tilted_lps_affine(shape, tuple(unseen_spacing)))


def truth_table() -> LabelTable:
    """Names of the phantom's label values."""
    return LabelTable.from_names({value: name for name, value in ORGAN_LABELS.items()})


def inspect(context: DemoContext) -> None:
    volumes = find_volumes(context.artefacts["unlabelled"])
    cases, _ = find_labelled_cases(context.artefacts["labelled"])
    first = volumes[0].read()
    unseen = read_volume(context.artefacts["unseen"])
    context.lines["data"] = [
        f"- {len(volumes)} unlabelled volumes, {len(cases)} labelled cases (synthetic CT phantoms), grid "
        f"{first.grid_description()}",
        f"- unseen case (segmented and scored): grid {unseen.grid_description()}",
    ]
    print("\n".join(context.lines["data"]))
