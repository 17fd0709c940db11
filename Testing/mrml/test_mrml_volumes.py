"""Volume <-> volume node against the real slicer-core scene: voxels, dtype and IJKToRAS exact, on asymmetric grids."""

import gc

import numpy as np
import pytest
import slicer
import vtk
from geometry_cases import GRIDS, asymmetric_volume, make_affine

from sslseg import mrml
from sslseg.volume import Volume

#: A left-handed grid (one axis mirrored): the determinant of its direction matrix is -1.
LEFT_HANDED = make_affine(np.diag([1.0, -1.0, 1.0]), (0.6, 1.7, 3.1), (1.0, 2.0, 3.0))



def test_setup_scene_registers_what_slicer_registers(scene):
    gc.collect()  # the logics must outlive the Python references to them
    assert scene.GetFirstNodeByClass("vtkMRMLSubjectHierarchyNode") is not None
    assert scene.GetNodeByID("vtkMRMLColorTableNodeGrey") is not None  # default colour tables
    for class_name in ("vtkMRMLSegmentationNode", "vtkMRMLSegmentationStorageNode", "vtkMRMLLabelMapVolumeNode"):
        assert scene.CreateNodeByClass(class_name) is not None, class_name
    assert set(scene._sslseg_logics) >= {"Application", "Volumes", "Segmentations", "SubjectHierarchy"}


@pytest.mark.parametrize("grid", [*GRIDS, "left_handed"])
def test_round_trip_is_exact(scene, grid):
    affine = LEFT_HANDED if grid == "left_handed" else GRIDS[grid]
    volume = asymmetric_volume(affine)
    node = mrml.volume_to_node(scene, volume, grid)
    back = mrml.node_to_volume(node)
    assert back.array.dtype == volume.array.dtype
    np.testing.assert_array_equal(back.array, volume.array)
    np.testing.assert_array_equal(back.affine, volume.affine)


def test_node_matrix_and_memory_order(scene):
    """IJKToRAS is the affine itself, and vtkImageData holds i fastest: a C-ordered view of it is (k, j, i)."""
    volume = asymmetric_volume(GRIDS["oblique"])
    node = mrml.volume_to_node(scene, volume)
    matrix = vtk.vtkMatrix4x4()
    node.GetIJKToRASMatrix(matrix)
    np.testing.assert_array_equal([[matrix.GetElement(r, c) for c in range(4)] for r in range(4)], volume.affine)
    image = node.GetImageData()
    assert image.GetDimensions() == volume.shape
    i, j, k = 3, 5, 2
    assert image.GetScalarComponentAsDouble(i, j, k, 0) == volume.array[i, j, k]


@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.uint16, np.int16, np.int32, np.float32, np.float64])
def test_dtypes_are_kept(scene, dtype):
    volume = asymmetric_volume(GRIDS["lps"], dtype=np.int64)
    volume = volume.with_array((volume.array % 100).astype(dtype))
    back = mrml.node_to_volume(mrml.volume_to_node(scene, volume))
    assert back.array.dtype == dtype
    np.testing.assert_array_equal(back.array, volume.array)


def test_big_endian_and_non_contiguous_arrays(scene):
    base = asymmetric_volume(GRIDS["permuted"], shape=(6, 9, 4))
    swapped = Volume(base.array.astype(">i2"), base.affine)
    strided = Volume(np.asfortranarray(base.array)[:, ::-1][:, ::-1], base.affine)
    for volume in (swapped, strided):
        back = mrml.node_to_volume(mrml.volume_to_node(scene, volume))
        np.testing.assert_array_equal(back.array, base.array)


def test_bool_becomes_uint8_and_labelmap_nodes(scene):
    mask = asymmetric_volume(GRIDS["ras"]).array > 0
    node = mrml.volume_to_node(scene, Volume(mask, GRIDS["ras"]), "mask", labelmap=True)
    assert node.IsA("vtkMRMLLabelMapVolumeNode")
    back = mrml.node_to_volume(node)
    assert back.array.dtype == np.uint8
    np.testing.assert_array_equal(back.array, mask)


def test_parent_linear_transform_is_applied(scene):
    volume = asymmetric_volume(GRIDS["oblique"])
    node = mrml.volume_to_node(scene, volume)
    transform = scene.AddNewNodeByClass("vtkMRMLLinearTransformNode")
    shift = np.eye(4)
    shift[:3, 3] = (10.0, -20.0, 5.0)
    transform.SetMatrixTransformToParent(mrml._vtk_matrix(shift))
    node.SetAndObserveTransformNodeID(transform.GetID())
    np.testing.assert_allclose(mrml.node_to_volume(node).affine, shift @ volume.affine, atol=1e-12)


def test_nodes_by_class_uses_the_given_scene(scene):
    other = mrml.setup_scene()
    mrml.volume_to_node(scene, asymmetric_volume(GRIDS["ras"]), "here")
    assert [n.GetName() for n in mrml.nodes_by_class(scene, "vtkMRMLScalarVolumeNode")] == ["here"]
    assert mrml.nodes_by_class(other, "vtkMRMLScalarVolumeNode") == []
    assert isinstance(scene, slicer.vtkMRMLScene)


def test_window_level(scene):
    node = mrml.volume_to_node(scene, asymmetric_volume(GRIDS["ras"]), "CT", window_level=(400, 50))
    display = node.GetDisplayNode()
    assert not display.GetAutoWindowLevel()
    assert (display.GetWindow(), display.GetLevel()) == (400, 50)
