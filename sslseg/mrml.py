"""MRML glue: the one engine module that speaks Slicer's scene (``slicer`` from the slicer-core wheel, and vtk).

Everything takes the scene (or a node of it) as an argument; nothing here uses ``slicer.app``, ``slicer.util`` or a
global scene, so the same code runs inside Slicer (pass ``slicer.mrmlScene``) and in tests against slicer-core
(:func:`setup_scene`).

Conventions (as in :mod:`sslseg.volume`): a :class:`~sslseg.volume.Volume` is ``array[i, j, k]`` with a (4, 4)
voxel (i, j, k, 1) -> RAS mm ``affine``. A volume node keeps the same geometry as its IJKToRAS matrix, and its
``vtkImageData`` holds the scalars with i fastest in memory, i.e. a C-ordered numpy view of them is (k, j, i).

Label maps -> segments go through ``vtkSlicerSegmentationsModuleLogic.ImportLabelmapToSegmentationNode`` with a colour
table whose entry names are the organ names (one C++ pass over the volume, one shared labelmap, no per-segment
full-resolution copies); segments -> label maps go through the logic's ``GenerateMergedLabelmapInReferenceGeometry``
with explicit label values chosen by segment name (not Slicer's 1..n, nor its colour-table matching, which tries
terminology before names). Segments are always looked up by name: segment IDs are generated.
"""

from __future__ import annotations

import getpass
import json
import logging
import os
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import slicer
import vtk
from vtk.util import numpy_support

from sslseg.errors import LabelError, SSLSegError
from sslseg.labels import LabelTable, check_label_values, values_present, warn_about_unnamed
from sslseg.terminology import Terminology, load_terminology
from sslseg.volume import Volume, VolumeMeta, display_name

log = logging.getLogger(__name__)

#: Attribute of the scene that keeps the logics created by :func:`setup_scene` alive as long as the scene.
_LOGICS_ATTRIBUTE = "_sslseg_logics"


# ----------------------------------------------------------------------------------------------------------------
# Scene


def setup_scene() -> "slicer.vtkMRMLScene":
    """A new scene with the logics Slicer registers at start-up, so segment conversion, storage and .mrb work.

    Created and given the scene, as qSlicerCoreApplication and trame-slicer do: the application logic with the
    colours logic (default colour tables), the volumes, segmentations and subject hierarchy module logics; and a data
    I/O manager whose cache folder is ``<tmp>/sslseg-mrml-cache-<user>`` (``ReadFromMRB`` unpacks there). The logics are
    kept alive by the scene object (``scene._sslseg_logics``). Inside Slicer use ``slicer.mrmlScene`` instead.
    """
    scene = slicer.vtkMRMLScene()
    # .mrb reading unpacks into the data I/O manager's cache folder (Slicer's is set in the application settings).
    cache = slicer.vtkCacheManager()
    cache.SetRemoteCacheDirectory(str(_cache_folder()))
    io_manager = slicer.vtkDataIOManager()
    io_manager.SetCacheManager(cache)
    scene.SetDataIOManager(io_manager)
    app_logic = slicer.vtkSlicerApplicationLogic()
    app_logic.SetMRMLScene(scene)
    app_logic.GetColorLogic().SetMRMLScene(scene)
    app_logic.GetColorLogic().AddDefaultColorNodes()
    logics = {"Application": app_logic, "DataIO": io_manager}
    for module, logic_class in (("Volumes", slicer.vtkSlicerVolumesLogic),
                                ("Segmentations", slicer.vtkSlicerSegmentationsModuleLogic),
                                ("SubjectHierarchy", slicer.vtkSlicerSubjectHierarchyModuleLogic)):
        logic = logic_class()
        logic.SetMRMLScene(scene)
        logic.SetMRMLApplicationLogic(app_logic)
        app_logic.SetModuleLogic(module, logic)
        logics[module] = logic
    setattr(scene, _LOGICS_ATTRIBUTE, logics)
    return scene


def _cache_folder() -> Path:
    """A cache folder of our own (the cache manager scans its folder: never the whole temporary folder), marked with
    the sentinel file the cache manager looks for before it deletes anything there."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no user name in some containers
        user = str(os.getuid()) if hasattr(os, "getuid") else "user"
    folder = Path(tempfile.gettempdir()) / f"sslseg-mrml-cache-{user}"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / ".slicer-cache").touch(exist_ok=True)
    return folder


# ----------------------------------------------------------------------------------------------------------------
# Volumes


def volume_to_node(
    scene,
    volume: Volume,
    name: str = "Volume",
    labelmap: bool = False,
    window_level: tuple[float, float] | None = None,
):
    """Add a volume node holding ``volume`` exactly: same voxels, same dtype, IJKToRAS = ``volume.affine``.

    Args:
        scene: the vtkMRMLScene to add the node to.
        volume: ``array`` (I, J, K), any numeric dtype (bool becomes uint8), ``affine`` (4, 4) voxel -> RAS.
        name: node name.
        labelmap: make a ``vtkMRMLLabelMapVolumeNode`` (integer labels) instead of a scalar volume.
        window_level: display window and level (e.g. ``(400, 50)`` for abdominal CT); default: Slicer's automatic one.

    Returns:
        The new ``vtkMRMLScalarVolumeNode`` or ``vtkMRMLLabelMapVolumeNode``, with display nodes.
    """
    node_class = "vtkMRMLLabelMapVolumeNode" if labelmap else "vtkMRMLScalarVolumeNode"
    node = scene.AddNewNodeByClass(node_class, name)
    node.SetAndObserveImageData(_image_data(volume.array))
    node.SetIJKToRASMatrix(_vtk_matrix(volume.affine))
    node.CreateDefaultDisplayNodes()
    if window_level is not None and not labelmap:
        display = node.GetDisplayNode()
        display.AutoWindowLevelOff()
        display.SetWindowLevel(float(window_level[0]), float(window_level[1]))
    return node


def node_to_volume(node) -> Volume:
    """The voxels (I, J, K) and voxel -> RAS matrix of a volume node (a copy; dtype as stored).

    A parent linear transform is applied to the matrix (the node's world geometry); a non-linear one is refused.
    """
    image = node.GetImageData()
    if image is None:
        raise SSLSegError(f"volume node {node.GetName()!r} has no image data", "load or compute the volume first")
    ijk_to_ras = vtk.vtkMatrix4x4()
    node.GetIJKToRASMatrix(ijk_to_ras)
    affine = _world_matrix(node) @ _numpy_matrix(ijk_to_ras)
    array, offset = _array_from_image(image, node.GetName())
    affine = affine @ _translation(offset)
    meta = VolumeMeta(source=f"mrml:{node.GetID()}", description=node.GetName() or "")
    return Volume(array, affine, meta)


# ----------------------------------------------------------------------------------------------------------------
# Label maps <-> segmentation nodes


def labelmap_to_segmentation(
    scene,
    labels: Volume,
    table: LabelTable,
    reference=None,
    name: str = "Segmentation",
    terminology: Terminology | None = None,
    closed_surface: bool = False,
):
    """A segmentation node with one named, coloured, coded segment per label value present in ``labels``.

    Args:
        scene: the vtkMRMLScene.
        labels: label map (I, J, K), integer values 0..N (0 = background), its own voxel -> RAS matrix.
        table: names (and optional colours) by value. A value present in the map but not in the table still gets a
            segment, named ``label_N`` with a generic colour, and a warning.
        reference: the source image (a volume node or a :class:`Volume`); its grid becomes the segmentation's
            reference geometry (what Slicer's Segment Editor edits on). Default: the label map's own grid.
        name: segmentation node name.
        terminology: organ name -> code/colour mapping (default: the shipped one). Segment colour = the table's
            colour when it has one, else the terminology's recommended colour, else a generic colour.
        closed_surface: also build the closed-surface (3-D) representation.

    Returns:
        The ``vtkMRMLSegmentationNode``; segments in increasing label value, segment name = organ name. An empty
        label map gives a node without segments (and a warning).
    """
    terminology = terminology or load_terminology()
    array = check_label_values(labels.array, f"label map {name!r}")
    present = values_present(array)
    unknown = warn_about_unnamed(present, table, f"label map {name!r}")

    segmentation = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", name)
    segmentation.CreateDefaultDisplayNodes()
    _set_reference_geometry(segmentation, reference if reference is not None else labels)
    if not present:
        log.warning("label map %r is empty (all background): the segmentation %r has no segments", name, name)
        return segmentation

    names = {value: table.name_of(value) for value in sorted(set(table.labels) | set(present))}
    colors = {value: terminology.segment_color(value, table) for value in names}
    color_table = _color_table(scene, names, colors)
    labelmap_node = volume_to_node(scene, labels.with_array(array), f"{name}_import", labelmap=True)
    try:
        labelmap_node.GetDisplayNode().SetAndObserveColorNodeID(color_table.GetID())
        logic = slicer.vtkSlicerSegmentationsModuleLogic
        imported = logic.ImportLabelmapToSegmentationNode(labelmap_node, segmentation)
    finally:
        _remove_node(scene, labelmap_node)
    if not imported:
        raise SSLSegError(f"Slicer could not import the label map {name!r} into a segmentation",
                          "see the VTK messages above")
    _tag_segments(segmentation, terminology, quiet={names[value] for value in unknown})
    if closed_surface:
        segmentation.CreateClosedSurfaceRepresentation()
    return segmentation


def segmentation_to_labelmap(
    segmentation_node,
    reference,
    table: LabelTable | Mapping[str, int] | Sequence[str],
    strict: bool = False,
    terminology: Terminology | None = None,
) -> Volume:
    """A label map of a segmentation node on the reference grid, label value chosen by segment NAME.

    Args:
        segmentation_node: the ``vtkMRMLSegmentationNode``.
        reference: a volume node or a :class:`Volume` (only its grid is used): the output has its exact shape
            (I, J, K) and voxel -> RAS matrix. Segments stored on another grid are resampled (nearest neighbour).
        table: organ names with their values: a :class:`LabelTable`, ``{name: value}``, or a list of names
            (values 1..n in that order). A segment matches an entry when the names are equal, or when both mean
            the same organ in the terminology (``kidney_right`` matches ``right_kidney``).
        strict: a segment matching no entry raises :class:`LabelError`; by default it is skipped with a warning.
        terminology: for name matching (default: the shipped mapping).

    Returns:
        uint8 (int16 above 255) label map (I, J, K); 0 where no exported segment is. Where segments overlap the one
        later in the segmentation wins.
    """
    terminology = terminology or load_terminology()
    values_by_name = _values_by_name(table)
    shape, affine = _grid_of(reference)
    segmentation = segmentation_node.GetSegmentation()
    segment_ids, label_values = vtk.vtkStringArray(), vtk.vtkIntArray()
    for segment_id, segment_name in _segments(segmentation_node):
        value = _match_value(segment_name, values_by_name, terminology)
        if value is None:
            message = f"segment {segment_name!r} of {segmentation_node.GetName()!r} is not in the label table"
            if strict:
                raise LabelError(message, f"label names: {', '.join(values_by_name)}")
            log.warning("%s: skipped", message)
            continue
        segment_ids.InsertNextValue(segment_id)
        label_values.InsertNextValue(value)
    dtype = np.uint8 if max(values_by_name.values(), default=0) <= 255 else np.int16
    meta = VolumeMeta(source=f"mrml:{segmentation_node.GetID()}", description=segmentation_node.GetName() or "")
    if segment_ids.GetNumberOfValues() == 0:
        log.warning("segmentation %r has no segment of the label table: the label map is empty",
                    segmentation_node.GetName())
        return Volume(np.zeros(shape, dtype=dtype), affine, meta)

    if not segmentation.CreateRepresentation(slicer.vtkSegmentationConverter.GetBinaryLabelmapRepresentationName()):
        raise SSLSegError(f"segmentation {segmentation_node.GetName()!r} cannot be converted to a binary labelmap",
                          "check its source representation in Slicer's Segmentations module")
    merged = slicer.vtkOrientedImageData()
    reference_node = reference if _is_node(reference) else _geometry_node(shape, affine)
    slicer.vtkSlicerSegmentationsModuleLogic.GenerateMergedLabelmapInReferenceGeometry(
        segmentation_node, reference_node, segment_ids, slicer.vtkSegmentation.EXTENT_REFERENCE_GEOMETRY, merged,
        label_values)
    array, offset = _array_from_image(merged, segmentation_node.GetName(), dtype)
    if array.shape != tuple(shape) or any(offset):
        raise SSLSegError(f"merged labelmap came out as {array.shape} at offset {offset}, expected {tuple(shape)}",
                          "this is a bug: please report it")
    return Volume(array, affine, meta)


def segment_names(segmentation_node) -> list[str]:
    """Segment names in segmentation order."""
    return [name for _, name in _segments(segmentation_node)]


def segment_id(segmentation_node, name: str) -> str:
    """The ID of the segment called ``name`` (IDs are generated; names are what users see)."""
    for segment_id_, segment_name in _segments(segmentation_node):
        if segment_name == name:
            return segment_id_
    raise LabelError(f"segmentation {segmentation_node.GetName()!r} has no segment {name!r}",
                     f"segments: {', '.join(segment_names(segmentation_node)) or 'none'}")


def segment_mask(segmentation_node, name: str) -> Volume:
    """One segment as a uint8 0/1 mask (I, J, K) on the grid it is stored on (its own binary labelmap geometry)."""
    image = slicer.vtkOrientedImageData()
    segmentation_node.GetBinaryLabelmapRepresentation(segment_id(segmentation_node, name), image)
    matrix = vtk.vtkMatrix4x4()
    image.GetImageToWorldMatrix(matrix)
    array, offset = _array_from_image(image, name)
    affine = _world_matrix(segmentation_node) @ _numpy_matrix(matrix) @ _translation(offset)
    return Volume((array != 0).astype(np.uint8), affine, VolumeMeta(description=name))


# ----------------------------------------------------------------------------------------------------------------
# Files: .seg.nrrd and .mrb


def write_seg_nrrd(segmentation_node, path: str | Path, compress: bool = True) -> Path:
    """Save a segmentation node as ``.seg.nrrd`` through Slicer's own segmentation storage node."""
    path = Path(path).resolve()
    if not path.name.lower().endswith(".seg.nrrd"):
        raise SSLSegError(f"{path.name}: a segmentation file name must end in .seg.nrrd", "rename the output")
    path.parent.mkdir(parents=True, exist_ok=True)
    storage = segmentation_node.GetStorageNode()
    if storage is None:
        segmentation_node.AddDefaultStorageNode()
        storage = segmentation_node.GetStorageNode()
    storage.SetFileName(str(path))
    storage.SetUseCompression(bool(compress))
    if not storage.WriteData(segmentation_node):
        raise SSLSegError(f"Slicer could not write {path}", "check the folder is writable and the disk not full")
    return path


def read_seg_nrrd(scene, path: str | Path, name: str | None = None):
    """Load a ``.seg.nrrd`` into a new segmentation node through Slicer's segmentation storage node."""
    path = Path(path)
    if not path.is_file():
        raise SSLSegError(f"{path} does not exist", "check the path")
    node = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", name or display_name(path))
    storage = scene.AddNewNodeByClass("vtkMRMLSegmentationStorageNode")
    node.SetAndObserveStorageNodeID(storage.GetID())
    storage.SetFileName(str(path.resolve()))
    if not storage.ReadData(node):
        _remove_node(scene, node)
        raise SSLSegError(f"Slicer could not read {path} as a segmentation", "is it a .seg.nrrd written by Slicer?")
    node.CreateDefaultDisplayNodes()
    return node


def write_mrb(scene, path: str | Path) -> Path:
    """Save the whole scene (volumes, segmentations, colour tables...) as a Slicer ``.mrb`` bundle.

    Slicer opens it with File -> Open (or drag and drop). Nodes without a storage node get their default one.
    """
    path = Path(path).resolve()
    if path.suffix.lower() != ".mrb":
        raise SSLSegError(f"{path.name}: a Slicer scene bundle name must end in .mrb", "rename the output")
    path.parent.mkdir(parents=True, exist_ok=True)
    messages = slicer.vtkMRMLMessageCollection()
    if not scene.WriteToMRB(str(path), None, messages):
        raise SSLSegError(f"Slicer could not write the scene bundle {path}: {messages.GetAllMessagesAsString()}",
                          "check the folder is writable and the disk not full")
    return path


def load_mrb(scene, path: str | Path, clear: bool = True) -> None:
    """Read a ``.mrb`` scene bundle into ``scene`` (replacing its content when ``clear``)."""
    path = Path(path)
    if not path.is_file():
        raise SSLSegError(f"{path} does not exist", "check the path")
    messages = slicer.vtkMRMLMessageCollection()
    if not scene.ReadFromMRB(str(path.resolve()), clear, messages):
        raise SSLSegError(f"Slicer could not read the scene bundle {path}: {messages.GetAllMessagesAsString()}",
                          "is it a .mrb saved by Slicer?")


def nodes_by_class(scene, class_name: str) -> list:
    """The scene's nodes of one class (``slicer.util.getNodesByClass`` ignores its ``scene`` argument)."""
    collection = scene.GetNodesByClass(class_name)
    collection.UnRegister(None)  # the C++ method returns a new reference the wrapper does not own (leak otherwise)
    return [collection.GetItemAsObject(i) for i in range(collection.GetNumberOfItems())]


# ----------------------------------------------------------------------------------------------------------------
# Helpers


def _image_data(array: np.ndarray) -> vtk.vtkImageData:
    """vtkImageData with extent (0..I-1, 0..J-1, 0..K-1), origin 0, spacing 1 and the voxels of ``array`` (I, J, K)."""
    dtype = np.dtype(array.dtype.type)  # native byte order (NIfTI arrays may be big-endian)
    if dtype == bool:
        dtype = np.dtype(np.uint8)
    elif dtype == np.float16:
        dtype = np.dtype(np.float32)
    elif dtype.kind not in "iuf":
        raise SSLSegError(f"cannot make a volume node of {dtype} voxels", "convert to an integer or float type")
    image = vtk.vtkImageData()
    image.SetDimensions(*array.shape)
    image.AllocateScalars(numpy_support.get_vtk_array_type(dtype), 1)
    view = numpy_support.vtk_to_numpy(image.GetPointData().GetScalars())  # (K*J*I,), i fastest
    view.reshape(array.shape[::-1])[...] = array.transpose(2, 1, 0)
    return image


def _array_from_image(image, what: str, dtype=None) -> tuple[np.ndarray, tuple[int, int, int]]:
    """A C-contiguous (I, J, K) copy of a one-component vtkImageData's scalars (cast to ``dtype`` when given), and
    the start (i0, j0, k0) of the image's extent."""
    scalars = image.GetPointData().GetScalars()
    extent = image.GetExtent()
    shape = tuple(max(extent[2 * a + 1] - extent[2 * a] + 1, 0) for a in range(3))
    start = (extent[0], extent[2], extent[4])
    if min(shape) == 0 or scalars is None:
        return np.zeros(shape, dtype=dtype or np.uint8), start
    if scalars.GetNumberOfComponents() != 1:
        raise SSLSegError(f"{what!r} has {scalars.GetNumberOfComponents()} components per voxel",
                          "only single-component (scalar) volumes are supported")
    view = numpy_support.vtk_to_numpy(scalars).reshape(shape[::-1]).transpose(2, 1, 0)  # (I, J, K), no copy
    array = np.empty(shape, dtype=dtype or view.dtype)
    array[...] = view
    return array, start


def _remove_node(scene, node) -> None:
    """Remove a displayable/storable node with its display and storage nodes (MRML alone leaves them behind)."""
    for index in reversed(range(node.GetNumberOfDisplayNodes())):
        scene.RemoveNode(node.GetNthDisplayNode(index))
    for index in reversed(range(node.GetNumberOfStorageNodes())):
        scene.RemoveNode(node.GetNthStorageNode(index))
    scene.RemoveNode(node)


def _vtk_matrix(matrix: np.ndarray) -> vtk.vtkMatrix4x4:
    result = vtk.vtkMatrix4x4()
    for row in range(4):
        for column in range(4):
            result.SetElement(row, column, float(matrix[row, column]))
    return result


def _numpy_matrix(matrix: vtk.vtkMatrix4x4) -> np.ndarray:
    return np.array([[matrix.GetElement(r, c) for c in range(4)] for r in range(4)], dtype=np.float64)


def _translation(offset) -> np.ndarray:
    matrix = np.eye(4)
    matrix[:3, 3] = offset
    return matrix


def _world_matrix(node) -> np.ndarray:
    """(4, 4) node -> world (RAS) matrix of a node's parent transforms; identity when it has none."""
    transform = node.GetParentTransformNode()
    if transform is None:
        return np.eye(4)
    if not transform.IsTransformToWorldLinear():
        raise SSLSegError(f"node {node.GetName()!r} is under a non-linear transform",
                          "harden the transform in Slicer (Transforms module) first")
    matrix = vtk.vtkMatrix4x4()
    transform.GetMatrixTransformToWorld(matrix)
    return _numpy_matrix(matrix)


def _is_node(reference) -> bool:
    return hasattr(reference, "GetIJKToRASMatrix")


def _grid_of(reference) -> tuple[tuple[int, int, int], np.ndarray]:
    """(shape (I, J, K), voxel -> RAS (4, 4)) of a volume node or a Volume."""
    if isinstance(reference, Volume):
        return reference.shape, reference.affine
    if _is_node(reference):
        image = reference.GetImageData()
        if image is None:
            raise SSLSegError(f"reference volume {reference.GetName()!r} has no image data", "load it first")
        extent = image.GetExtent()
        shape = tuple(extent[2 * a + 1] - extent[2 * a] + 1 for a in range(3))
        matrix = vtk.vtkMatrix4x4()
        reference.GetIJKToRASMatrix(matrix)
        offset = (extent[0], extent[2], extent[4])
        return shape, _world_matrix(reference) @ _numpy_matrix(matrix) @ _translation(offset)
    raise TypeError(f"a reference is a volume node or a Volume, not {type(reference).__name__}")


def _geometry_node(shape, affine: np.ndarray):
    """A volume node outside any scene carrying only a grid (no voxels allocated), for reference-geometry APIs."""
    image = vtk.vtkImageData()
    image.SetExtent(0, shape[0] - 1, 0, shape[1] - 1, 0, shape[2] - 1)
    node = slicer.vtkMRMLScalarVolumeNode()
    node.SetAndObserveImageData(image)
    node.SetIJKToRASMatrix(_vtk_matrix(affine))
    return node


def _set_reference_geometry(segmentation_node, reference) -> None:
    """Make ``reference``'s grid the segmentation's reference image geometry."""
    if _is_node(reference):
        segmentation_node.SetReferenceImageGeometryParameterFromVolumeNode(reference)
        return
    shape, affine = _grid_of(reference)
    geometry = slicer.vtkOrientedImageData()
    geometry.SetExtent(0, shape[0] - 1, 0, shape[1] - 1, 0, shape[2] - 1)
    geometry.SetGeometryFromImageToWorldMatrix(_vtk_matrix(affine))
    serialized = slicer.vtkSegmentationConverter.SerializeImageGeometry(geometry)
    segmentation_node.GetSegmentation().SetConversionParameter(
        slicer.vtkSegmentationConverter.GetReferenceImageGeometryParameterName(), serialized)


#: Node attribute holding a colour table's label set (values, names, colours), so that imports share it.
LABEL_SET_ATTRIBUTE = "sslseg.LabelSet"


def _color_table(scene, names: dict[int, str], colors: dict[int, tuple]) -> "slicer.vtkMRMLColorTableNode":
    """The user colour table of a label set: entry ``value`` is named after the organ, with its colour; 0 is
    Background. The import keeps it as the segmentation's label-value table (Slicer's "Export to labelmap" then gives
    the model's values), so it stays in the scene; every import of the same label set shares one (issue 15: one new
    table per Segment press)."""
    key = json.dumps([[value, names[value], [round(float(c), 4) for c in colors[value]]] for value in sorted(names)])
    for node in nodes_by_class(scene, "vtkMRMLColorTableNode"):
        if node.GetAttribute(LABEL_SET_ATTRIBUTE) == key:
            return node
    table = scene.AddNewNodeByClass("vtkMRMLColorTableNode", scene.GenerateUniqueName("sslseg_labels"))
    table.SetTypeToUser()
    table.SetNumberOfColors(max(names) + 1)
    table.SetColor(0, "Background", 0.0, 0.0, 0.0, 0.0)
    for value, label_name in names.items():
        table.SetColor(value, label_name, *colors[value], 1.0)
    table.SetAttribute(LABEL_SET_ATTRIBUTE, key)
    return table


def _tag_segments(segmentation_node, terminology: Terminology, quiet: set[str]) -> None:
    """Terminology entry on each segment whose name the mapping knows (a warning for the others, except those in
    ``quiet``); names and colours marked as chosen, not auto-generated."""
    segmentation = segmentation_node.GetSegmentation()
    for segment_id_, segment_name in _segments(segmentation_node):
        segment = segmentation.GetSegment(segment_id_)
        tag = terminology.tag_of(segment_name, warn=segment_name not in quiet)
        if tag is not None:
            segment.SetTerminology(tag)
        else:  # no code rather than Slicer's default "Tissue"
            segment.RemoveTag(segment.GetTerminologyEntryTagName())
        segment.SetNameAutoGenerated(False)
        segment.SetColorAutoGenerated(False)


def _segments(segmentation_node) -> list[tuple[str, str]]:
    """(segment ID, segment name) in segmentation order."""
    segmentation = segmentation_node.GetSegmentation()
    ids = vtk.vtkStringArray()
    segmentation.GetSegmentIDs(ids)
    result = []
    for index in range(ids.GetNumberOfValues()):
        segment_id_ = ids.GetValue(index)
        result.append((segment_id_, segmentation.GetSegment(segment_id_).GetName()))
    return result


def _values_by_name(table) -> dict[str, int]:
    if isinstance(table, LabelTable):
        return table.names
    if isinstance(table, Mapping):
        return {str(name): int(value) for name, value in table.items()}
    if isinstance(table, (str, bytes)):
        raise TypeError("give the label names as a list, not one string")
    return {str(name): value for value, name in enumerate(table, start=1)}


def _match_value(segment_name: str, values_by_name: dict[str, int], terminology: Terminology) -> int | None:
    if segment_name in values_by_name:
        return values_by_name[segment_name]
    for name, value in values_by_name.items():
        if terminology.same_organ(segment_name, name):
            return value
    return None


__all__ = [
    "setup_scene", "volume_to_node", "node_to_volume", "labelmap_to_segmentation", "segmentation_to_labelmap",
    "segment_names", "segment_id", "segment_mask", "write_seg_nrrd", "read_seg_nrrd", "write_mrb", "load_mrb",
    "nodes_by_class",
]
