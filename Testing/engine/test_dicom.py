"""DICOM series: real scan geometry, slice order by position, several series per folder, gaps."""

import numpy as np
import pytest
from dicom_series import write_series

from sslseg.errors import VolumeReadError
from sslseg.io import read_volume
from sslseg.io.grid_alignment import labels_on_image_grid
from sslseg.io.scan import scan_folder

UID_A = "1.2.826.0.1.3680043.2.1125.100"
UID_B = "1.2.826.0.1.3680043.2.1125.200"


def ramp(slices=6, rows=5, cols=4):
    """(k, j, i) array whose value encodes the slice, so order errors show."""
    return (np.arange(slices)[:, None, None] * 100 + np.arange(rows)[None, :, None] * 10 + np.arange(cols)).astype(np.int16)


def test_real_series_reads_with_expected_geometry(real_data):
    volume = read_volume(real_data / "ct_upper_abdomen_dicom" / "dicom")
    assert volume.shape == (512, 512, 20)
    np.testing.assert_allclose(volume.spacing, (0.977, 0.977, 2.0), atol=0.001)
    assert volume.meta.modality == "CT"
    assert volume.orientation == "LPS"


def test_real_labels_lie_on_the_series_grid_and_on_the_anatomy(real_data):
    """labels.nii.gz is stored LAS (j reversed) over the same voxel centres; aligned, the liver is liver-dense."""
    case = real_data / "ct_upper_abdomen_dicom"
    image = read_volume(case / "dicom")
    labels = labels_on_image_grid(read_volume(case / "labels.nii.gz"), image, "labels", "dicom")
    liver, spleen = labels.array == 5, labels.array == 1
    assert 40 < image.array[liver].mean() < 200
    assert 40 < image.array[spleen].mean() < 200
    # a flipped overlay would put the "liver" over air/fat: this is what makes the test able to fail
    assert image.array[np.flip(liver, axis=1)].mean() < 0
    # the liver is on the patient's right: RAS x > 0
    centroid = labels.affine @ np.append(np.argwhere(liver).mean(axis=0), 1)
    assert centroid[0] > 0


def test_slices_are_ordered_by_position_not_file_name(tmp_path):
    data = ramp()
    write_series(tmp_path / "s", data, UID_A)
    volume = read_volume(tmp_path / "s")
    np.testing.assert_array_equal(volume.array, data.transpose(2, 1, 0))
    assert volume.meta.series_uid == UID_A
    assert volume.meta.patient_id == "PATIENT-7"
    np.testing.assert_allclose(volume.spacing, (0.7, 0.9, 2.5), atol=1e-4)
    # voxel (0, 0, 0) sits at the LPS origin given, i.e. RAS (120, 80, 300)
    np.testing.assert_allclose(volume.origin, (120.0, 80.0, 300.0), atol=1e-4)


def test_oblique_series_geometry(tmp_path):
    c, s = np.cos(np.radians(30)), np.sin(np.radians(30))
    row, col = (c, s, 0.0), (0.0, 0.0, -1.0)  # a tilted coronal-like stack
    write_series(tmp_path / "s", ramp(), UID_A, row_col=(row, col))
    volume = read_volume(tmp_path / "s")
    normal = np.cross(row, col)
    expected_lps = np.column_stack([row, col, normal]) @ np.diag((0.7, 0.9, 2.5))
    np.testing.assert_allclose(volume.affine[:3, :3], np.diag([-1, -1, 1]) @ expected_lps, atol=1e-5)


def test_two_series_in_one_folder_are_told_apart(tmp_path):
    write_series(tmp_path / "mixed", ramp(), UID_A, name_prefix="a")
    write_series(tmp_path / "mixed", ramp(4) + 1000, UID_B, name_prefix="b")
    sources = scan_folder(tmp_path).sources
    assert sorted(s.series_uid for s in sources) == [UID_A, UID_B]
    shapes = {s.series_uid: s.read().shape for s in sources}
    assert shapes == {UID_A: (4, 5, 6), UID_B: (4, 5, 4)}
    with pytest.raises(VolumeReadError, match=r"holds 2 DICOM series .*" + UID_A.replace(".", r"\.")):
        read_volume(tmp_path / "mixed")


def test_missing_slice_is_an_error(tmp_path):
    write_series(tmp_path / "gap", ramp(8), UID_A, skip=(4,))
    with pytest.raises(VolumeReadError, match=r"uneven slice spacing \(2\.5, 5 mm\).*missing"):
        read_volume(tmp_path / "gap")


def test_single_slice_series_is_two_dimensional(tmp_path):
    write_series(tmp_path / "one", ramp(1), UID_A)
    with pytest.raises(VolumeReadError, match="single slice"):
        read_volume(tmp_path / "one")
