""".seg.nrrd through Slicer's storage node (read back by slicerio and by our own reader) and .mrb scene bundles
re-loaded into a fresh scene."""

import zipfile

import numpy as np
import pytest
import slicerio
from geometry_cases import GRIDS, asymmetric_volume

from sslseg import mrml
from sslseg.errors import SSLSegError
from sslseg.io.segnrrd import read_seg_nrrd as read_seg_nrrd_engine
from sslseg.labels import LabelTable
from sslseg.synth.anatomy import ORGAN_LABELS
from sslseg.synth.phantom import make_phantom
from sslseg.terminology import load_terminology
from sslseg.volume import Volume

LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])
COLOUR_STEP = 1 / 255
TABLE = LabelTable.from_names({1: "liver", 2: "left_kidney", 3: "aorta"}, {3: (0.9, 0.1, 0.25)})


@pytest.mark.parametrize("grid", ["lps", "oblique", "permuted"])
def test_seg_nrrd_reads_correctly_with_slicerio(scene, tmp_path, grid, box_labels, place_on):
    labels = Volume(box_labels, GRIDS[grid])
    node = mrml.labelmap_to_segmentation(scene, labels, TABLE, labels, name="organs")
    path = mrml.write_seg_nrrd(node, tmp_path / "organs.seg.nrrd")

    segmentation = slicerio.read_segmentation(str(path))
    by_name = {s["name"]: s for s in segmentation["segments"]}
    assert list(by_name) == ["liver", "left_kidney", "aorta"]
    np.testing.assert_allclose(by_name["aorta"]["color"], (0.9, 0.1, 0.25), atol=COLOUR_STEP)
    np.testing.assert_allclose(by_name["liver"]["color"], load_terminology().color_of("liver"), atol=COLOUR_STEP)
    assert by_name["left_kidney"]["terminology"]["type"] == ["SCT", "64033007", "Kidney"]
    assert by_name["left_kidney"]["terminology"]["typeModifier"] == ["SCT", "7771000", "Left"]

    voxels = np.asarray(segmentation["voxels"])
    assert voxels.ndim == 3  # no overlaps: one layer
    ras = LPS_TO_RAS @ np.asarray(segmentation["ijkToLPS"])
    placed = place_on(voxels, ras, labels)
    for name, value in TABLE.names.items():
        np.testing.assert_array_equal(placed == by_name[name]["labelValue"], labels.array == value, err_msg=name)


def test_seg_nrrd_round_trip_through_the_storage_node(scene, tmp_path, box_labels, place_on):
    labels = Volume(box_labels, GRIDS["oblique"])
    node = mrml.labelmap_to_segmentation(scene, labels, TABLE, labels)
    path = mrml.write_seg_nrrd(node, tmp_path / "a.seg.nrrd")

    fresh = mrml.setup_scene()
    loaded = mrml.read_seg_nrrd(fresh, path)
    assert loaded.GetName() == "a"
    assert mrml.segment_names(loaded) == ["liver", "left_kidney", "aorta"]
    tag = loaded.GetSegmentation().GetSegment(mrml.segment_id(loaded, "liver")).GetTerminology()
    assert tag == load_terminology().tag_of("liver")
    back = mrml.segmentation_to_labelmap(loaded, labels, TABLE)
    np.testing.assert_array_equal(back.array, labels.array)

    # The engine's own (SimpleITK-based) .seg.nrrd reader agrees with Slicer's writer.
    engine_labels, engine_table = read_seg_nrrd_engine(path)
    assert set(engine_table.names) == set(TABLE.names)
    placed = place_on(engine_labels.array, engine_labels.affine, labels)
    for name, value in TABLE.names.items():
        np.testing.assert_array_equal(placed == engine_table.value_of(name), labels.array == value)


def test_bad_file_names_and_missing_files(scene, tmp_path, box_labels):
    node = mrml.labelmap_to_segmentation(scene, Volume(box_labels, GRIDS["ras"]), TABLE)
    with pytest.raises(SSLSegError, match=".seg.nrrd"):
        mrml.write_seg_nrrd(node, tmp_path / "organs.nrrd")
    with pytest.raises(SSLSegError, match="does not exist"):
        mrml.read_seg_nrrd(scene, tmp_path / "missing.seg.nrrd")
    with pytest.raises(SSLSegError, match=".mrb"):
        mrml.write_mrb(scene, tmp_path / "scene.zip")


def test_mrb_reloads_into_a_fresh_scene(scene, tmp_path):
    """Volume + segmentation (from the synthetic phantom) -> .mrb -> a new scene: names, voxels, geometry, codes."""
    grid = GRIDS["lps"] @ np.diag([4.0, 3.0, 2.0, 1.0])
    image, labels = make_phantom(11, size=(48, 40, 36), affine=grid)
    table = LabelTable.from_names({value: name for name, value in ORGAN_LABELS.items()})
    ct = mrml.volume_to_node(scene, image, "CT")
    mrml.labelmap_to_segmentation(scene, labels, table, ct, name="CT organs", closed_surface=True)
    path = mrml.write_mrb(scene, tmp_path / "result.mrb")
    names = zipfile.ZipFile(path).namelist()
    assert any(n.endswith(".mrml") for n in names) and any(n.endswith(".seg.nrrd") for n in names)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["result.mrb"]  # no temporary folders left behind

    fresh = mrml.setup_scene()
    mrml.load_mrb(fresh, path)
    [segmentation] = mrml.nodes_by_class(fresh, "vtkMRMLSegmentationNode")
    [volume] = mrml.nodes_by_class(fresh, "vtkMRMLScalarVolumeNode")
    assert segmentation.GetName() == "CT organs" and volume.GetName() == "CT"
    assert mrml.segment_names(segmentation) == list(ORGAN_LABELS)
    assert segmentation.GetNodeReference(segmentation.GetReferenceImageGeometryReferenceRole()) is volume
    liver = segmentation.GetSegmentation().GetSegment(mrml.segment_id(segmentation, "liver"))
    assert liver.GetTerminology() == load_terminology().tag_of("liver")

    reloaded = mrml.node_to_volume(volume)
    assert reloaded.array.dtype == image.array.dtype
    np.testing.assert_array_equal(reloaded.array, image.array)
    np.testing.assert_allclose(reloaded.affine, image.affine, atol=1e-9)  # through an LPS .nrrd file
    back = mrml.segmentation_to_labelmap(segmentation, volume, table)
    np.testing.assert_array_equal(back.array, labels.array)


def test_mrb_into_a_scene_that_is_not_cleared(scene, tmp_path):
    mrml.volume_to_node(scene, asymmetric_volume(GRIDS["oblique"]), "first")
    path = mrml.write_mrb(scene, tmp_path / "one.mrb")
    mrml.load_mrb(scene, path, clear=False)
    assert [n.GetName() for n in mrml.nodes_by_class(scene, "vtkMRMLScalarVolumeNode")] == ["first", "first"]
    mrml.load_mrb(scene, path, clear=True)
    assert [n.GetName() for n in mrml.nodes_by_class(scene, "vtkMRMLScalarVolumeNode")] == ["first"]


def test_engine_written_seg_nrrd_opens_in_slicer_like_the_glues(scene, tmp_path, box_labels, place_on):
    """``sslseg segment``'s .seg.nrrd (written without Slicer) read by Slicer's storage node: one segment per organ
    present (the table's absent organ gets none), the table's colour or else the terminology's, the terminology
    code, the voxels, and the unknown value 3 as ``label_3``."""
    from sslseg.io.segnrrd import write_seg_nrrd

    volume = asymmetric_volume(GRIDS["oblique"], box_labels.shape).with_array(box_labels)
    table = LabelTable.from_names({1: "liver", 2: "left_kidney", 4: "spleen"}, {2: (0.9, 0.1, 0.25)})
    path = write_seg_nrrd(volume, table, tmp_path / "engine.seg.nrrd")
    node = mrml.read_seg_nrrd(scene, path)
    assert mrml.segment_names(node) == ["liver", "left_kidney", "label_3"]
    terminology = load_terminology()
    segmentation = node.GetSegmentation()
    liver = segmentation.GetSegment(mrml.segment_id(node, "liver"))
    np.testing.assert_allclose(liver.GetColor(), terminology.color_of("liver"), atol=COLOUR_STEP)
    assert liver.GetTerminology() == terminology.tag_of("liver")
    kidney = segmentation.GetSegment(mrml.segment_id(node, "left_kidney"))
    np.testing.assert_allclose(kidney.GetColor(), (0.9, 0.1, 0.25), atol=COLOUR_STEP)
    for name, value in (("liver", 1), ("left_kidney", 2), ("label_3", 3)):
        mask = mrml.segment_mask(node, name)
        np.testing.assert_array_equal(place_on(mask.array, mask.affine, volume) > 0, box_labels == value)
