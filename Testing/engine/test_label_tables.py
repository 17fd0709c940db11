"""Label names from JSON (both orders), CSV, Slicer colour tables and .seg.nrrd headers."""

import json

import numpy as np
import pytest
import slicerio
from geometry_cases import GRIDS

from sslseg.errors import LabelError
from sslseg.io.label_table_io import find_label_table, read_label_table
from sslseg.io.segnrrd import read_seg_nrrd, write_seg_nrrd
from sslseg.labels import LabelTable
from sslseg.volume import Volume


@pytest.mark.parametrize(
    "content",
    [
        {"labels": {"0": "background", "1": "liver", "3": "kidney_left"}},
        {"labels": {"background": 0, "liver": 1, "kidney_left": 3}},
        {"1": "liver", "3": "kidney_left"},
    ],
)
def test_json_tables(tmp_path, content):
    path = tmp_path / "labels.json"
    path.write_text(json.dumps(content))
    assert read_label_table(path).names == {"liver": 1, "kidney_left": 3}


def test_csv_with_colours(tmp_path):
    path = tmp_path / "labels.csv"
    path.write_text("value,name,r,g,b\n2,spleen,0,0,255\n1,liver,255,0,0\n")
    table = read_label_table(path)
    assert table.names == {"liver": 1, "spleen": 2}
    assert table.labels[2].color == (0.0, 0.0, 1.0)


def test_slicer_colour_table(tmp_path):
    path = tmp_path / "labels.txt"
    path.write_text("# Color table file\n0 Background 0 0 0 0\n4 aorta 255 0 0 255\n")
    assert read_label_table(path).names == {"aorta": 4}


def test_region_labels_are_refused(tmp_path):
    path = tmp_path / "dataset.json"
    path.write_text(json.dumps({"labels": {"background": 0, "whole": [1, 2]}}))
    with pytest.raises(LabelError, match="region"):
        read_label_table(path)


def test_a_name_used_twice_is_refused():
    with pytest.raises(LabelError, match="used for two values"):
        LabelTable.from_names({1: "liver", 2: "liver"})


def test_nearest_table_wins_and_search_stops_at_the_root(tmp_path):
    (tmp_path / "labels.json").write_text(json.dumps({"1": "outer"}))
    inner = tmp_path / "root" / "case"
    inner.mkdir(parents=True)
    assert find_label_table(inner, stop_at=tmp_path / "root") is None
    assert find_label_table(inner) == tmp_path / "labels.json"
    (inner / "labels.csv").write_text("1,inner\n")
    assert find_label_table(inner) == inner / "labels.csv"


def test_seg_nrrd_round_trip_reads_in_slicerio(tmp_path):
    labels = np.zeros((9, 7, 5), np.uint8)
    labels[1:4, 2:5, 1:3] = 1
    labels[5:8, 1:3, 2:4] = 3
    volume = Volume(labels, GRIDS["oblique"])
    table = LabelTable.from_names({1: "liver", 3: "spleen"}, {1: (0.8, 0.2, 0.1), 3: (0.1, 0.3, 0.9)})
    path = write_seg_nrrd(volume, table, tmp_path / "s.seg.nrrd")
    back, back_table = read_seg_nrrd(path)
    np.testing.assert_array_equal(back.array, labels)
    np.testing.assert_allclose(back.affine, volume.affine, atol=1e-6)
    assert back_table.names == {"liver": 1, "spleen": 3}
    segmentation = slicerio.read_segmentation(str(path))
    by_name = {s["name"]: s for s in segmentation["segments"]}
    assert by_name["spleen"]["labelValue"] == 3
    np.testing.assert_allclose(by_name["liver"]["color"], (0.8, 0.2, 0.1), atol=1e-6)
    # slicerio keeps the file's own (k, j, i)? it returns voxels in file (i, j, k) order with ijkToLPS
    voxels = segmentation["voxels"]
    np.testing.assert_array_equal(voxels, labels)
    ijk_to_lps = segmentation["ijkToLPS"]
    np.testing.assert_allclose(np.diag([-1, -1, 1, 1]) @ ijk_to_lps, volume.affine, atol=1e-6)


def test_multi_layer_seg_nrrd_is_merged_by_segment(tmp_path):
    """Slicer writes overlapping segments as layers: a 4-D NRRD with a leading 'list' axis."""
    layers = np.zeros((2, 6, 5, 4), np.uint8)
    layers[0, 1:3, 1:3, 1:3] = 1  # liver in layer 0
    layers[1, 2:5, 2:4, 1:3] = 1  # tumour in layer 1, overlapping the liver
    header = (
        "NRRD0004\ntype: unsigned char\ndimension: 4\nspace: left-posterior-superior\nsizes: 2 6 5 4\n"
        "space directions: none (1,0,0) (0,1,0) (0,0,1)\nkinds: list domain domain domain\nencoding: raw\n"
        "space origin: (0,0,0)\n"
        "Segment0_Name:=liver\nSegment0_LabelValue:=1\nSegment0_Layer:=0\nSegment0_Color:=1 0 0\n"
        "Segment1_Name:=tumour\nSegment1_LabelValue:=1\nSegment1_Layer:=1\nSegment1_Color:=0 1 0\n\n"
    )
    path = tmp_path / "layers.seg.nrrd"
    # NRRD raw data is fastest along the first axis: (layer, i, j, k) -> memory order k, j, i, layer
    path.write_bytes(header.encode() + np.ascontiguousarray(layers.transpose(3, 2, 1, 0)).tobytes())
    volume, table = read_seg_nrrd(path)
    assert table.names == {"liver": 1, "tumour": 2}
    assert volume.shape == (6, 5, 4)
    expected = np.where(layers[1] == 1, 2, layers[0])
    np.testing.assert_array_equal(volume.array, expected)
