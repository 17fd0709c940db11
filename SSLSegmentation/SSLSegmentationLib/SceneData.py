"""Scene <-> files for the workers, through the engine's MRML glue (:mod:`sslseg.mrml`). MRML only, no Qt: the same
code runs in Slicer (``slicer.mrmlScene``) and against slicer-core in CI.

- training pairs (volume node + segmentation node) -> an MSD folder ``imagesTr/``, ``labelsTr/``, ``labels.json``;
- scene volumes -> a folder of NIfTI files (pretraining on what is loaded);
- a worker's label map file -> a segmentation node on the input's geometry, under the input's study;
- Dice per organ of two segmentation nodes -> a table node.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import slicer

#: Where a segmentation node keeps the volume it was drawn on (Segment Editor's source volume).
REFERENCE_ROLE = "referenceImageGeometryRef"

#: A segment of this name (any case) is no organ: it marks the axial slices it is painted on as annotated, so a
#: slice with no organ on it can be said to be background ("undrawn slices are unknown" counts only the slices
#: something is drawn on). Never trained as a label.
ANNOTATED_SLICES_SEGMENT = "Annotated slices"


def isSliceMarker(segmentName: str) -> bool:
    return segmentName.strip().lower() == ANNOTATED_SLICES_SEGMENT.lower()


def safeName(name: str, taken: set) -> str:
    """A file-name-safe, unique case name for a node name."""
    base = re.sub(r"[^A-Za-z0-9_.-]+", "_", name or "case").strip("._") or "case"
    candidate, number = base, 1
    while candidate in taken:
        number += 1
        candidate = f"{base}_{number}"
    taken.add(candidate)
    return candidate


def referenceVolume(segmentationNode):
    """The volume a segmentation was drawn on (its reference geometry node), or None."""
    role = getattr(segmentationNode, "GetReferenceImageGeometryReferenceRole", lambda: REFERENCE_ROLE)()
    return segmentationNode.GetNodeReference(role)


def trainingPairs(segmentationNodes) -> list[tuple]:
    """(volume node, segmentation node) for each segmentation that has a reference volume; others are skipped."""
    return [(referenceVolume(s), s) for s in segmentationNodes if referenceVolume(s) is not None]


def labelSet(segmentationNodes) -> dict[str, int]:
    """Organ name -> label value over all segmentations: names in first-seen order, values 1..n (what the model
    learns; the same organ name in several segmentations is one label)."""
    from sslseg import mrml

    names: dict[str, int] = {}
    for node in segmentationNodes:
        for name in organNames(node):
            names.setdefault(name, len(names) + 1)
    return names


def organNames(segmentationNode) -> list[str]:
    """The segment names of a segmentation that are organs (the slice marker left out)."""
    from sslseg import mrml

    return [name for name in mrml.segment_names(segmentationNode) if not isSliceMarker(name)]


def annotatedAxialSlices(segmentationNode, labelMap) -> list[int]:
    """The axial slices (indices along the voxel axis closest to S of ``labelMap``'s grid, whatever the storage
    order) on which an organ of ``labelMap`` or the :data:`ANNOTATED_SLICES_SEGMENT` marker is painted."""
    import numpy as np

    from sslseg import mrml
    from sslseg.io.annotation import voxel_axis

    drawn = np.asarray(labelMap.array) > 0
    for name in mrml.segment_names(segmentationNode):
        if isSliceMarker(name):
            drawn |= np.asarray(mrml.segmentation_to_labelmap(segmentationNode, labelMap, {name: 1}).array) > 0
    axis = voxel_axis(labelMap.affine, "axial")
    return np.flatnonzero(drawn.any(axis=tuple(a for a in range(3) if a != axis))).tolist()


def exportTrainingPairs(pairs, folder, validationPairs=None, listOrgans: bool = False,
                        annotatedSlices: bool = False) -> dict[str, int]:
    """Write each (volume node, segmentation node) pair as ``imagesTr/NAME.nii.gz`` + ``labelsTr/NAME.nii.gz`` (the
    label map on the volume's grid, values by segment name) and the label names as ``labels.json``; returns the
    label set. The engine pairs the files by name (MSD layout) and names the labels from ``labels.json``.
    ``validationPairs`` (a list, possibly empty): also written, and ``datalist.json`` says which pairs train and
    which validate (give the engine that file: no case is left to the engine's random split). ``listOrgans``: each
    datalist entry lists its segmentation's segment names as ``"organs"`` (an empty segment says the organ is truly
    absent; an organ without a segment is unknown there: ``--partial-organs``), and ``datalist.json`` is written.
    ``annotatedSlices``: each entry lists the axial slices an organ or the slice marker is painted on
    (:func:`annotatedAxialSlices`) as ``"annotated_slices"``, and ``datalist.json`` is written."""
    from sslseg import mrml
    from sslseg.errors import SSLSegError
    from sslseg.io.volume_io import write_volume

    if not pairs:
        raise SSLSegError("no training cases: no segmentation with a source volume is selected",
                          "select segmentations drawn on a volume (Segment Editor's source volume)")
    folder = Path(folder)
    every = list(pairs) + list(validationPairs or [])
    labels = labelSet([segmentation for _, segmentation in every])
    taken: set = set()
    splits = {"training": [], "validation": []}
    for index, (volumeNode, segmentationNode) in enumerate(every):
        name = safeName(volumeNode.GetName(), taken)
        write_volume(mrml.node_to_volume(volumeNode), folder / "imagesTr" / f"{name}.nii.gz", overwrite=True)
        labelMap = mrml.segmentation_to_labelmap(segmentationNode, volumeNode, labels)
        write_volume(labelMap, folder / "labelsTr" / f"{name}.nii.gz", overwrite=True)
        entry = {"image": f"imagesTr/{name}.nii.gz", "label": f"labelsTr/{name}.nii.gz"}
        if listOrgans:
            entry["organs"] = organNames(segmentationNode)
        if annotatedSlices:
            entry["annotated_slices"] = {"axis": "axial",
                                         "indices": annotatedAxialSlices(segmentationNode, labelMap)}
        splits["training" if index < len(pairs) else "validation"].append(entry)
    names = {str(v): n for n, v in labels.items()}
    (folder / "labels.json").write_text(json.dumps(names, indent=1) + "\n", encoding="utf-8")
    if validationPairs is not None or listOrgans or annotatedSlices:
        (folder / "datalist.json").write_text(json.dumps({"labels": names, **splits}, indent=1) + "\n",
                                              encoding="utf-8")
    return labels


def exportVolumes(volumeNodes, folder) -> list[Path]:
    """Write scene volumes as ``NAME.nii.gz`` into ``folder`` (pretraining on what is loaded)."""
    from sslseg import mrml
    from sslseg.io.volume_io import write_volume

    folder, taken = Path(folder), set()
    return [write_volume(mrml.node_to_volume(node), folder / f"{safeName(node.GetName(), taken)}.nii.gz",
                         overwrite=True) for node in volumeNodes]


def exportVolume(volumeNode, path) -> Path:
    """One volume node as a file (the input of ``sslseg segment``)."""
    from sslseg import mrml
    from sslseg.io.volume_io import write_volume

    return write_volume(mrml.node_to_volume(volumeNode), Path(path), overwrite=True)


def importLabelMap(scene, path, referenceVolumeNode, name: str, replaceNode=None):
    """A label map file written by the engine -> segmentation node with named, coloured, terminology-tagged
    segments on ``referenceVolumeNode``'s geometry, placed under that volume's study. With ``replaceNode`` its
    segments are replaced (the node, and what refers to it, stays)."""
    from sslseg import mrml
    from sslseg.io.label_map_io import read_label_map

    labels, table = read_label_map(path)
    node = mrml.labelmap_to_segmentation(scene, labels, table, reference=referenceVolumeNode, name=name)
    if replaceNode is not None:
        replaceNode.GetSegmentation().DeepCopy(node.GetSegmentation())
        replaceNode.SetReferenceImageGeometryParameterFromVolumeNode(referenceVolumeNode)
        _removeNode(scene, node)
        node = replaceNode
    node.SetNodeReferenceID(REFERENCE_ROLE, referenceVolumeNode.GetID())
    placeUnderStudy(scene, node, referenceVolumeNode)
    return node


def placeUnderStudy(scene, node, volumeNode) -> None:
    """Put ``node`` beside ``volumeNode`` in the subject hierarchy (under its study/patient), not at the root."""
    hierarchy = slicer.vtkMRMLSubjectHierarchyNode.GetSubjectHierarchyNode(scene)
    volumeItem = hierarchy.GetItemByDataNode(volumeNode)
    if not volumeItem:
        return
    parent = hierarchy.GetItemParent(volumeItem)
    nodeItem = hierarchy.GetItemByDataNode(node)
    if not nodeItem:  # Slicer's subject hierarchy plugins add items on their own; a bare scene does not
        hierarchy.CreateItem(parent, node)
    elif parent:
        hierarchy.SetItemParent(nodeItem, parent)


def compareSegmentations(scene, predictionNode, referenceNode, referenceVolumeNode, name: str = "Dice per organ"):
    """Dice and HD95 per organ (the engine's evaluation, organs matched by name) as a table node; returns
    ``(table node, scores)``."""
    from sslseg import mrml
    from sslseg.evaluation.compare import compare, mean_dice
    from sslseg.labels import LabelTable

    names = labelSet([referenceNode, predictionNode])
    table = LabelTable.from_names({v: n for n, v in names.items()})
    prediction = mrml.segmentation_to_labelmap(predictionNode, referenceVolumeNode, table)
    reference = mrml.segmentation_to_labelmap(referenceNode, referenceVolumeNode, table)
    scores = compare(prediction, table, reference, table)
    return scoresTable(scene, scores, mean_dice(scores), name), scores


def scoresTable(scene, scores, meanDice: float, name: str):
    """A table node: organ, Dice, HD95 (mm), reference and predicted voxels; a last row with the mean Dice."""
    tableNode = scene.AddNewNodeByClass("vtkMRMLTableNode", name)
    columns = ("organ", "Dice", "HD95 mm", "reference voxels", "predicted voxels")
    for column in columns:
        tableNode.AddColumn().SetName(column)
    rows = [(s.organ, s.dice, s.hd95_mm, s.reference_voxels, s.predicted_voxels) for s in scores]
    rows.append(("mean", meanDice, "", "", ""))
    for row in rows:
        index = tableNode.AddEmptyRow()
        for column, value in enumerate(row):
            text = f"{value:.4f}" if isinstance(value, float) else str(value)
            tableNode.SetCellText(index, column, text)
    return tableNode


def _removeNode(scene, node) -> None:
    for index in reversed(range(node.GetNumberOfDisplayNodes())):
        scene.RemoveNode(node.GetNthDisplayNode(index))
    scene.RemoveNode(node)
