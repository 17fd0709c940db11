"""Image-label pairing in every layout we accept, label names from every source, and grid checks."""

import json

import numpy as np
import pytest
from geometry_cases import GRIDS, asymmetric_volume

from sslseg.errors import LabelError, SSLSegError
from sslseg.io import write_volume
from sslseg.io.pairing import find_labelled_cases, load_case
from sslseg.io.scan import find_volumes, scan_folder
from sslseg.io.segnrrd import write_seg_nrrd
from sslseg.labels import LabelTable
from sslseg.volume import Volume

SHAPE = (12, 9, 6)


def image_and_labels(grid="lps"):
    image = asymmetric_volume(GRIDS[grid], SHAPE)
    labels = np.zeros(SHAPE, np.uint8)
    labels[2:5, 1:4, 1:3] = 1
    labels[7:11, 5:8, 2:5] = 2
    return image, Volume(labels, image.affine)


def names(case_table):
    return case_table.names


def test_decathlon_layout_with_dataset_json(tmp_path):
    image, labels = image_and_labels()
    for name in ("case_a", "case_b"):
        write_volume(image, tmp_path / "imagesTr" / f"{name}.nii.gz")
        write_volume(labels, tmp_path / "labelsTr" / f"{name}.nii.gz")
    write_volume(image, tmp_path / "imagesTr" / "no_label.nii.gz")
    (tmp_path / "dataset.json").write_text(json.dumps({"labels": {"0": "background", "1": "liver", "2": "spleen"}}))
    cases, unlabelled = find_labelled_cases(tmp_path)
    assert [c.name for c in cases] == ["case_a", "case_b"]
    assert [s.name for s in unlabelled] == ["no_label"]
    image_back, labels_back, table = load_case(cases[0])
    np.testing.assert_array_equal(labels_back.array, labels.array)
    assert table.names == {"liver": 1, "spleen": 2}


def test_nnunet_channel_suffix_and_v2_label_order(tmp_path):
    image, labels = image_and_labels()
    write_volume(image, tmp_path / "imagesTr" / "abd_001_0000.nii.gz")
    write_volume(image, tmp_path / "imagesTr" / "abd_001_0001.nii.gz")  # a second input channel
    write_volume(labels, tmp_path / "labelsTr" / "abd_001.nii.gz")
    (tmp_path / "dataset.json").write_text(json.dumps({"labels": {"background": 0, "kidney": 1, "tumour": 2}}))
    cases, unlabelled = find_labelled_cases(tmp_path)
    assert [(c.name, c.image.path.name) for c in cases] == [("abd_001", "abd_001_0000.nii.gz")]
    assert unlabelled == []
    assert load_case(cases[0])[2].names == {"kidney": 1, "tumour": 2}


@pytest.mark.parametrize("label_name", ["ct7_label.nii.gz", "ct7_seg.nrrd", "ct7-label.nrrd", "ct7.seg.nrrd"])
def test_suffix_pairs(tmp_path, label_name):
    image, labels = image_and_labels()
    write_volume(image, tmp_path / "ct7.nii.gz")
    write_volume(image, tmp_path / "other.nii.gz")
    table = LabelTable.from_names({1: "liver", 2: "spleen"})
    if label_name.endswith(".seg.nrrd"):
        write_seg_nrrd(labels, table, tmp_path / label_name)
    else:
        write_volume(labels, tmp_path / label_name)
        (tmp_path / "labels.csv").write_text("value,name,r,g,b\n1,liver,255,0,0\n2,spleen,0,0,255\n")
    cases, unlabelled = find_labelled_cases(tmp_path)
    assert [(c.name, c.label.name) for c in cases] == [("ct7", label_name)]
    assert [s.name for s in unlabelled] == ["other"]
    _, labels_back, table_back = load_case(cases[0])
    np.testing.assert_array_equal(labels_back.array, labels.array)
    assert table_back.names == {"liver": 1, "spleen": 2}


def test_datalist_json_with_splits_and_relative_paths(tmp_path):
    image, labels = image_and_labels()
    write_volume(image, tmp_path / "data" / "x1.nii.gz")
    write_volume(labels, tmp_path / "data" / "y1.nii.gz")
    write_volume(image, tmp_path / "data" / "x2.mha")
    write_volume(labels, tmp_path / "data" / "y2.mha")
    datalist = {
        "labels": {"1": "liver", "2": "spleen"},
        "training": [{"image": "data/x1.nii.gz", "label": "data/y1.nii.gz"}],
        "validation": [{"image": "data/x2.mha", "label": "data/y2.mha"}],
    }
    (tmp_path / "list.json").write_text(json.dumps(datalist))
    cases, _ = find_labelled_cases(tmp_path / "list.json")
    assert [(c.name, c.split) for c in cases] == [("x1", "training"), ("x2", "validation")]
    assert load_case(cases[1])[2].names == {"liver": 1, "spleen": 2}


def test_datalist_naming_a_missing_file(tmp_path):
    (tmp_path / "list.json").write_text(json.dumps({"training": [{"image": "a.nii.gz", "label": "b.nii.gz"}]}))
    with pytest.raises(SSLSegError, match=r"list\.json lists .*a\.nii\.gz, which does not exist"):
        find_labelled_cases(tmp_path / "list.json")


def test_one_case_per_folder_like_the_real_data(real_data):
    cases, unlabelled = find_labelled_cases(real_data)
    assert sorted(c.name for c in cases) == ["ct_thorax_cta", "ct_upper_abdomen_dicom", "mr_abdomen"]
    assert unlabelled == []
    thorax = next(c for c in cases if c.name == "ct_thorax_cta")
    _, labels, table = load_case(thorax)
    assert table.name_of(1) == "aorta" and table.name_of(7) == "vertebrae_T12"
    assert np.count_nonzero(labels.array == 1) == 72810  # voxel count stated in its labels.json


def test_labels_stored_with_flipped_axes_are_reindexed_exactly(tmp_path):
    image, labels = image_and_labels("lps")
    flipped = np.flip(labels.array, axis=1).copy()  # same voxel centres, j reversed (as dcm2niix stores LAS)
    affine = labels.affine.copy()
    affine[:3, 3] += affine[:3, 1] * (SHAPE[1] - 1)
    affine[:3, 1] *= -1
    write_volume(image, tmp_path / "scan.nii.gz")
    write_volume(Volume(flipped, affine), tmp_path / "scan_label.nii.gz")
    _, labels_back, _ = load_case(find_labelled_cases(tmp_path)[0][0])
    np.testing.assert_array_equal(labels_back.array, labels.array)


def test_cropped_seg_nrrd_is_pasted_into_the_image_grid(tmp_path):
    image, labels = image_and_labels("oblique")
    crop = labels.array[2:11, 1:8, 1:5]
    affine = labels.affine.copy()
    affine[:3, 3] = (labels.affine @ (2, 1, 1, 1))[:3]
    write_volume(image, tmp_path / "scan.nrrd")
    write_seg_nrrd(Volume(crop.copy(), affine), LabelTable.from_names({1: "a", 2: "b"}), tmp_path / "scan.seg.nrrd")
    _, labels_back, _ = load_case(find_labelled_cases(tmp_path)[0][0])
    np.testing.assert_array_equal(labels_back.array, labels.array)


def test_label_on_another_grid_names_both_files_and_geometries(tmp_path):
    image, labels = image_and_labels("lps")
    shifted = labels.affine.copy()
    shifted[:3, 3] += 0.4  # less than a voxel: would look fine on screen, but is not the same grid
    write_volume(image, tmp_path / "scan.nii.gz")
    write_volume(Volume(labels.array, shifted), tmp_path / "scan_seg.nii.gz")
    with pytest.raises(LabelError) as error:
        load_case(find_labelled_cases(tmp_path)[0][0])
    message = str(error.value)
    assert "scan_seg.nii.gz" in message and "scan.nii.gz" in message
    assert message.count("12 x 9 x 6 voxels") == 2


@pytest.mark.parametrize(
    "values, match",
    [(np.full(SHAPE, 0.5, np.float32), "non-integer"), (np.full(SHAPE, -1, np.int16), "negative")],
)
def test_label_values_must_be_whole_and_non_negative(tmp_path, values, match):
    image, _ = image_and_labels()
    write_volume(image, tmp_path / "scan.nii.gz")
    write_volume(Volume(values, image.affine), tmp_path / "scan_label.nii.gz")
    with pytest.raises(LabelError, match=match):
        load_case(find_labelled_cases(tmp_path)[0][0])


def test_scan_is_recursive_skips_non_images_with_a_warning_and_leaves_labels_out(tmp_path, caplog):
    image, labels = image_and_labels()
    write_volume(image, tmp_path / "a" / "b" / "deep.nrrd")
    write_volume(image, tmp_path / "top.mha")
    write_volume(labels, tmp_path / "top_label.mha")
    (tmp_path / "a" / "photo.bmp").write_bytes(b"BM not an image")
    (tmp_path / "notes.md").write_text("quiet")
    with caplog.at_level("WARNING"):
        result = scan_folder(tmp_path)
    assert [s.path.name for s in result.sources] == ["deep.nrrd", "top.mha", "top_label.mha"]
    assert [p.name for p, _ in result.skipped] == ["photo.bmp"]
    assert [r.getMessage() for r in caplog.records] == [f"skipping {tmp_path / 'a' / 'photo.bmp'}: not a supported image file"]
    assert [s.path.name for s in find_volumes(tmp_path)] == ["deep.nrrd", "top.mha"]


def test_empty_folder_is_an_error_naming_it(tmp_path):
    with pytest.raises(SSLSegError, match=f"{tmp_path} holds no volumes"):
        find_volumes(tmp_path)


def test_a_datalist_image_may_be_a_dicom_series_folder(tmp_path):
    """The series is read (it was an IsADirectoryError); with two series in the folder, ``series_uid`` picks one and
    its absence is refused with the UIDs to choose from."""
    from dicom_series import write_series

    pixels = np.arange(4 * 6 * 5, dtype=np.int16).reshape(4, 6, 5) * 3 - 200  # (k, j, i)
    write_series(tmp_path / "scan", pixels, "1.2.3.4.1")
    labels = Volume(np.zeros((5, 6, 4), np.uint8), np.eye(4))
    labels.array[1:3, 2:4, 1:3] = 1
    reference = find_volumes(tmp_path / "scan")[0].read()
    write_volume(Volume(labels.array, reference.affine), tmp_path / "labels.nii.gz")
    entry = {"image": "scan", "label": "labels.nii.gz"}
    (tmp_path / "list.json").write_text(json.dumps({"labels": {"1": "liver"}, "training": [entry]}))
    cases, _ = find_labelled_cases(tmp_path / "list.json")
    image, read_labels, table = load_case(cases[0])
    assert cases[0].image.series_uid == "1.2.3.4.1" and table.names == {"liver": 1}
    np.testing.assert_array_equal(image.array, reference.array)
    assert np.count_nonzero(read_labels.array) == 8

    write_series(tmp_path / "scan", pixels, "1.2.3.4.2", name_prefix="second")
    with pytest.raises(SSLSegError, match=r"2 DICOM series") as error:
        find_labelled_cases(tmp_path / "list.json")
    assert "1.2.3.4.1" in error.value.hint and "1.2.3.4.2" in error.value.hint
    (tmp_path / "list.json").write_text(json.dumps({"training": [{**entry, "series_uid": "1.2.3.4.2"}]}))
    assert find_labelled_cases(tmp_path / "list.json")[0][0].image.series_uid == "1.2.3.4.2"
