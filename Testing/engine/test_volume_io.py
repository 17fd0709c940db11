"""Geometry round trips for every format, checked against independent readers (SimpleITK, nibabel, the header)."""

import re

import nibabel as nib
import numpy as np
import pytest
import SimpleITK as sitk
from geometry_cases import GRIDS, asymmetric_volume

from sslseg.errors import SSLSegError, VolumeReadError
from sslseg.io import read_volume, write_volume

EXTENSIONS = [".nii.gz", ".nii", ".nrrd", ".mha"]


@pytest.mark.parametrize("grid", sorted(GRIDS))
@pytest.mark.parametrize("ext", EXTENSIONS)
def test_round_trip_keeps_voxels_and_matrix(tmp_path, grid, ext):
    volume = asymmetric_volume(GRIDS[grid])
    back = read_volume(write_volume(volume, tmp_path / f"v{ext}"))
    np.testing.assert_array_equal(back.array, volume.array)
    # NIfTI-1 stores the matrix as float32: 1e-6 mm plus float32 rounding (1.5e-6 mm at 80 mm from the origin).
    rtol = 1e-7 if ext.startswith(".nii") else 0
    np.testing.assert_allclose(back.affine, volume.affine, atol=1e-6, rtol=rtol)


@pytest.mark.parametrize("grid", sorted(GRIDS))
@pytest.mark.parametrize("ext", EXTENSIONS)
def test_simpleitk_finds_each_voxel_where_our_affine_says(tmp_path, grid, ext):
    """Independent of our reader: ITK's physical point (LPS) of voxel (i, j, k) must be our RAS with x, y negated."""
    volume = asymmetric_volume(GRIDS[grid])
    image = sitk.ReadImage(str(write_volume(volume, tmp_path / f"v{ext}")))
    for index in [(0, 0, 0), (10, 0, 0), (0, 6, 0), (0, 0, 4), (7, 2, 3)]:
        ras = (volume.affine @ (*index, 1))[:3]
        lps = image.TransformIndexToPhysicalPoint(index)
        np.testing.assert_allclose(lps, ras * [-1, -1, 1], atol=1e-5)
        # sitk index (i, j, k) -> numpy array [k, j, i]
        assert sitk.GetArrayViewFromImage(image)[index[::-1]] == volume.array[index]


def test_nibabel_written_lps_file_reads_with_its_own_affine(tmp_path):
    """A NIfTI written by nibabel itself (not by us), stored LPS like most scanners' exports."""
    affine = GRIDS["lps"]
    data = asymmetric_volume(affine).array
    nib.save(nib.Nifti1Image(data, affine), tmp_path / "ext.nii.gz")
    volume = read_volume(tmp_path / "ext.nii.gz")
    assert volume.orientation == "LPS"
    np.testing.assert_allclose(volume.affine, affine, atol=1e-6)
    np.testing.assert_array_equal(volume.array, data)


def test_nrrd_header_states_lps_geometry(tmp_path):
    """The NRRD text header itself carries LPS directions and origin (what Slicer and pynrrd read)."""
    volume = asymmetric_volume(GRIDS["oblique"])
    path = write_volume(volume, tmp_path / "v.nrrd")
    header = path.read_bytes().split(b"\n\n", 1)[0].decode()
    assert "space: left-posterior-superior" in header
    directions = re.search(r"space directions: (.*)", header).group(1)
    columns = np.array([[float(x) for x in c.split(",")] for c in re.findall(r"\(([^)]*)\)", directions)])
    lps_linear = np.diag([-1, -1, 1]) @ volume.affine[:3, :3]
    np.testing.assert_allclose(columns.T, lps_linear, atol=1e-6)
    origin = [float(x) for x in re.search(r"space origin: \(([^)]*)\)", header).group(1).split(",")]
    np.testing.assert_allclose(origin, volume.affine[:3, 3] * [-1, -1, 1], atol=1e-6)


def test_orientation_codes(tmp_path):
    assert asymmetric_volume(GRIDS["ras"]).orientation == "RAS"
    assert asymmetric_volume(GRIDS["lps"]).orientation == "LPS"
    assert asymmetric_volume(GRIDS["permuted"]).orientation == "PIR"  # RAS +x is patient right


def test_spacing_is_per_axis():
    np.testing.assert_allclose(asymmetric_volume(GRIDS["oblique"]).spacing, (0.7, 1.1, 3.0))


def test_existing_file_is_not_overwritten(tmp_path):
    volume = asymmetric_volume(GRIDS["ras"])
    path = write_volume(volume, tmp_path / "v.nii.gz")
    before = path.read_bytes()
    with pytest.raises(SSLSegError, match="already exists"):
        write_volume(volume.with_array(volume.array * 0), path)
    assert path.read_bytes() == before
    write_volume(volume.with_array(volume.array * 0), path, overwrite=True)
    assert not read_volume(path).array.any()
    assert [p.name for p in tmp_path.iterdir()] == ["v.nii.gz"]  # no temporary file left behind


def test_two_dimensional_image_is_refused_with_its_name(tmp_path):
    path = tmp_path / "slice.nii.gz"
    nib.save(nib.Nifti1Image(np.zeros((8, 9), np.int16), np.eye(4)), path)
    with pytest.raises(VolumeReadError, match=r"slice\.nii\.gz is a 2-D image"):
        read_volume(path)


def test_single_slice_volume_is_refused(tmp_path):
    path = tmp_path / "flat.nrrd"
    sitk.WriteImage(sitk.GetImageFromArray(np.zeros((1, 9, 8), np.int16)), str(path))
    with pytest.raises(VolumeReadError, match=r"flat\.nrrd is a single slice"):
        read_volume(path)


def test_four_dimensional_series_is_refused(tmp_path):
    path = tmp_path / "series4d.nii.gz"
    nib.save(nib.Nifti1Image(np.zeros((6, 7, 8, 3), np.int16), np.eye(4)), path)
    with pytest.raises(VolumeReadError, match=r"series4d\.nii\.gz is 4-D .*split"):
        read_volume(path)


def test_trailing_singleton_fourth_axis_is_accepted(tmp_path):
    path = tmp_path / "v4.nii.gz"
    nib.save(nib.Nifti1Image(np.ones((6, 7, 8, 1), np.int16), np.eye(4)), path)
    assert read_volume(path).shape == (6, 7, 8)


def test_truncated_gzip_gives_a_clear_message(tmp_path):
    path = write_volume(asymmetric_volume(GRIDS["ras"], shape=(40, 30, 20)), tmp_path / "v.nii.gz")
    path.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2])
    with pytest.raises(VolumeReadError, match=r"cannot read .*v\.nii\.gz.*corrupt or truncated"):
        read_volume(path)


def test_unknown_extension_and_missing_file(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(VolumeReadError, match="not a supported image file"):
        read_volume(tmp_path / "notes.txt")
    with pytest.raises(VolumeReadError, match="does not exist"):
        read_volume(tmp_path / "absent.nii.gz")


def test_sheared_grid_is_refused(tmp_path):
    affine = np.eye(4)
    affine[0, 1] = 0.5
    path = tmp_path / "shear.nii.gz"
    nib.save(nib.Nifti1Image(np.zeros((5, 6, 7), np.int16), affine), path)
    with pytest.raises(VolumeReadError, match="sheared"):
        read_volume(path)


@pytest.mark.parametrize("ext", [".nhdr", ".mhd"])
def test_detached_headers_written_by_itk_read_exactly(tmp_path, ext):
    """``.nhdr``/``.mhd`` keep voxels in a separate file; written here by SimpleITK itself, not by us."""
    volume = asymmetric_volume(GRIDS["oblique"])
    image = sitk.GetImageFromArray(volume.array.transpose(2, 1, 0).copy())
    image.SetSpacing(tuple(volume.spacing))
    image.SetOrigin(tuple(volume.origin * [-1, -1, 1]))
    image.SetDirection(tuple((np.diag([-1, -1, 1]) @ volume.direction).ravel()))
    sitk.WriteImage(image, str(tmp_path / f"v{ext}"))
    assert len(list(tmp_path.iterdir())) == 2  # header + data file
    back = read_volume(tmp_path / f"v{ext}")
    np.testing.assert_array_equal(back.array, volume.array)
    np.testing.assert_allclose(back.affine, volume.affine, atol=1e-6)
