"""The synthetic abdomen's anatomy as data: organ labels, CT intensities and a reference layout in RAS millimetres.

Label values follow the order of the organs below (1 liver ... 8 gallbladder) and are what every model trained on
synthetic data predicts. Names are snake_case, one word per side as written here (``right_kidney``, not
``kidney_right``).

The layout describes one reference adult (body half-width 150 mm, half-depth 110 mm) in RAS: +x = patient Right,
+y = Anterior, +z = Superior, body axis on z, origin at the body centre at the level of the pancreas. It is
deliberately asymmetric (liver right, spleen left, aorta left of the midline) so that a flipped axis shows. The
phantom generator (:mod:`sslseg.synth.phantom`) scales it to each random body and jitters every entry.
"""

from __future__ import annotations

from dataclasses import dataclass

#: Hounsfield units of air; also the value outside the body.
AIR_HU = -1000.0


@dataclass(frozen=True)
class Blob:
    """A nominal ellipsoid, or an elliptic cylinder along z when ``radii[2]`` is infinite.

    Attributes:
        centre: (x, y, z) RAS mm in the reference body.
        radii: semi-axes (mm) along the blob's own axes, before rotation.
        angles: rotation (degrees) about x, then y, then z (RAS), applied to the blob's axes.
    """

    centre: tuple[float, float, float]
    radii: tuple[float, float, float]
    angles: tuple[float, float, float] = (0.0, 0.0, 0.0)


@dataclass(frozen=True)
class Tissue:
    """A structure the phantom draws: its label (0 = background tissue), its CT intensity and its shape.

    Attributes:
        hu_range: (low, high) range of the structure's mean intensity; each case draws its mean uniformly from it.
        rigid: True for structures whose shape is not randomly deformed (bone, vessels, the spinal canal).
    """

    name: str
    label: int
    hu_range: tuple[float, float]
    blob: Blob
    rigid: bool = False

    @property
    def hu_mean(self) -> float:
        return 0.5 * (self.hu_range[0] + self.hu_range[1])


INFINITE = float("inf")

#: The organs, in label order. Intensities are portal-venous contrast CT values.
ORGANS: tuple[Tissue, ...] = (
    Tissue("liver", 1, (90.0, 130.0), Blob((58.0, 5.0, 45.0), (70.0, 68.0, 68.0), (0.0, 0.0, 10.0))),
    Tissue("spleen", 2, (100.0, 140.0), Blob((-85.0, -35.0, 55.0), (22.0, 48.0, 50.0), (0.0, 0.0, 35.0))),
    Tissue("right_kidney", 3, (150.0, 200.0), Blob((65.0, -55.0, -15.0), (28.0, 22.0, 52.0), (0.0, 10.0, -30.0))),
    Tissue("left_kidney", 4, (150.0, 200.0), Blob((-65.0, -52.0, -5.0), (28.0, 22.0, 52.0), (0.0, -10.0, 30.0))),
    Tissue("stomach", 5, (15.0, 45.0), Blob((-48.0, 42.0, 50.0), (42.0, 32.0, 50.0), (0.0, -20.0, -25.0))),
    Tissue("aorta", 6, (160.0, 240.0), Blob((-15.0, -14.0, 0.0), (12.0, 12.0, INFINITE)), rigid=True),
    Tissue("pancreas", 7, (80.0, 120.0), Blob((-12.0, 14.0, 8.0), (68.0, 14.0, 13.0), (0.0, 12.0, 18.0))),
    Tissue("gallbladder", 8, (0.0, 25.0), Blob((48.0, 38.0, 2.0), (15.0, 15.0, 32.0), (25.0, 0.0, 0.0))),
)

#: Organs in drawing order: where two overlap the later one wins (the gallbladder lies in the liver's fossa, the
#: pancreas against the stomach, the aorta against everything near the spine).
DRAW_ORDER = ("liver", "spleen", "right_kidney", "left_kidney", "stomach", "pancreas", "gallbladder", "aorta")

#: Organ name -> label value, ordered by value.
ORGAN_LABELS: dict[str, int] = {organ.name: organ.label for organ in ORGANS}

#: Organ name -> nominal mean HU (middle of its range).
ORGAN_HU_MEAN: dict[str, float] = {organ.name: organ.hu_mean for organ in ORGANS}

#: Organ name -> (low, high) range of a case's mean HU. Voxel values scatter around it by the case's noise.
ORGAN_HU_RANGE: dict[str, tuple[float, float]] = {organ.name: organ.hu_range for organ in ORGANS}

#: Reference body outline (elliptic cylinder along z): half-width (x) and half-depth (y), mm. Cases vary the
#: half-width in BODY_HALF_WIDTH_MM and the depth/width ratio in BODY_ASPECT; organs scale with the body.
BODY_HALF_AXES = (150.0, 110.0)
BODY_HALF_WIDTH_MM = (135.0, 165.0)
BODY_ASPECT = (0.68, 0.80)

#: Subcutaneous fat between skin and muscle, mm.
FAT_THICKNESS_MM = (8.0, 30.0)

#: Intensity ranges of the unlabelled tissues.
FAT_HU = (-120.0, -80.0)
SOFT_TISSUE_HU = (30.0, 55.0)
BOWEL_GAS_HU = (-1000.0, -900.0)

#: Spine, drawn in this order (later wins): the posterior arch around the canal, the vertebral body with its
#: cortical shell, its cancellous core, then the spinal canal cut out of the arch.
SPINE: tuple[Tissue, ...] = (
    Tissue("posterior_arch", 0, (600.0, 900.0), Blob((0.0, -76.0, 0.0), (20.0, 17.0, INFINITE)), rigid=True),
    Tissue("vertebral_cortex", 0, (800.0, 1000.0), Blob((0.0, -44.0, 0.0), (23.0, 19.0, INFINITE)), rigid=True),
    Tissue("vertebral_body", 0, (400.0, 600.0), Blob((0.0, -44.0, 0.0), (19.0, 15.0, INFINITE)), rigid=True),
    Tissue("spinal_canal", 0, (10.0, 30.0), Blob((0.0, -74.0, 0.0), (9.0, 8.0, INFINITE)), rigid=True),
)

#: Where bowel gas pockets may sit: a box (RAS mm, reference body) anterior and below the liver.
BOWEL_GAS_REGION = ((-80.0, 0.0, -60.0), (80.0, 75.0, 10.0))
BOWEL_GAS_RADIUS_MM = (7.0, 18.0)
