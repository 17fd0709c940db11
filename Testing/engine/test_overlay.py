"""The overlay picture shows anatomy the same way whatever the file's storage order."""

import numpy as np
from geometry_cases import GRIDS

from sslseg.labels import LabelTable
from sslseg.reporting.overlay import as_ras, write_overlay_png
from sslseg.synth.anatomy import ORGAN_LABELS
from sslseg.synth.phantom import make_phantom
from sslseg.volume import Volume


def lps_stored(volume: Volume) -> Volume:
    """The same voxels stored with i and j reversed (as NRRD/DICOM exports often are)."""
    n = np.array(volume.shape)
    affine = volume.affine.copy()
    affine[:3, 3] = (volume.affine @ np.array([n[0] - 1, n[1] - 1, 0, 1]))[:3]
    affine[:3, :2] *= -1
    return Volume(volume.array[::-1, ::-1].copy(), affine)


def test_as_ras_undoes_storage_order():
    array = np.arange(11 * 7 * 5).reshape(11, 7, 5)
    volume = Volume(array, GRIDS["ras"])
    np.testing.assert_array_equal(as_ras(lps_stored(volume).array, lps_stored(volume).affine), array)
    assert as_ras(array, GRIDS["permuted"]).shape == (5, 11, 7)  # PIR storage: k runs R, i runs A, j runs S


def test_same_picture_for_ras_and_lps_storage(tmp_path):
    image, labels = make_phantom(5, size=48, spacing=6.0)
    table = LabelTable.from_names({v: k for k, v in ORGAN_LABELS.items()})
    a = write_overlay_png(image, labels, table, tmp_path / "a.png", "case")
    b = write_overlay_png(lps_stored(image), lps_stored(labels), table, tmp_path / "b.png", "case")
    assert a.read_bytes() == b.read_bytes()
    flipped = Volume(labels.array[::-1].copy(), labels.affine)
    c = write_overlay_png(image, flipped, table, tmp_path / "c.png", "case")
    assert c.read_bytes() != a.read_bytes()
