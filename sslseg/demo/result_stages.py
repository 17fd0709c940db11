"""Demo stages that use the model: segment the unseen case, score it against the phantom's truth, and write what a
radiologist opens (a Slicer scene) and looks at (an overlay picture)."""

from __future__ import annotations

import json
import logging

from sslseg.demo.data_stages import truth_table
from sslseg.demo.pipeline import DemoContext
from sslseg.evaluation.compare import as_json, compare, format_mm, mean_dice
from sslseg.io.label_map_io import read_label_map
from sslseg.io.label_map_writer import write_label_map
from sslseg.io.volume_io import read_volume
from sslseg.reporting.overlay import write_overlay_png
from sslseg.training.compute import compute_summary

log = logging.getLogger(__name__)

SEGMENTATION = "segmentation.seg.nrrd"
SCENE = "scene.mrb"
#: CT display window/level in the scene (abdominal soft tissue).
WINDOW_LEVEL = (400.0, 50.0)


def segment_unseen(context: DemoContext) -> None:
    """``sslseg segment``'s engine on the unseen case: the label map on exactly its (tilted LPS) grid, as .seg.nrrd."""
    from sslseg.package.model_package import load_model_package
    from sslseg.segmentation.segment import SegmentOptions, Segmenter, present_organs

    segmenter = Segmenter(load_model_package(context.artefacts["model"]),
                          SegmentOptions(device=context.options["device"], largest_component=True))
    labels = segmenter.segment(read_volume(context.artefacts["unseen"]))
    path = context.out / SEGMENTATION
    write_label_map(labels, segmenter.table, path)
    organs = present_organs(labels.array, segmenter.table)
    context.artefacts["segmentation"] = path
    context.lines["segment"] = [f"- segmented the unseen case on {compute_summary(segmenter.compute)}: "
                                f"{len(organs)} organ(s) found ({', '.join(organs) or 'none'}), largest component per "
                                "organ kept"]
    context.options["device_used"] = str(segmenter.device)
    print("\n".join(context.lines["segment"]))


def evaluate(context: DemoContext) -> None:
    """Dice and 95 % Hausdorff distance per organ against the phantom's truth, on the unseen case's own grid."""
    prediction, table = read_label_map(context.artefacts["segmentation"])
    truth = read_volume(context.artefacts["truth"])
    scores = compare(prediction, table, truth, truth_table())
    (context.out / "dice.json").write_text(json.dumps(as_json(scores), indent=1) + "\n", encoding="utf-8")
    rows = [f"| {s.organ} | {s.dice:.3f} | {format_mm(s.hd95_mm)} |" for s in scores]
    context.lines["evaluate"] = ["", f"Segmentation of the unseen case against its truth (mean Dice "
                                 f"{mean_dice(scores):.3f}):", "", "| organ | Dice | HD95 mm |", "|---|---|---|", *rows]
    print("\n".join(context.lines["evaluate"]))


def write_scene(context: DemoContext) -> None:
    """``scene.mrb``: the unseen CT and the segmentation (named, coloured, terminology-coded segments on the CT's
    geometry), for Slicer's File -> Open. Needs slicer-core (installed by ``make demo``)."""
    try:
        from sslseg import mrml
    except ModuleNotFoundError as error:  # the engine runs without slicer-core; only this file needs it
        if error.name not in ("slicer", "vtk"):
            raise
        log.warning("no %s: slicer-core is not installed (%s); pip install slicer-core", SCENE, error)
        context.lines["scene"] = [f"- {SCENE} not written: slicer-core is not installed"]
        return
    scene = mrml.setup_scene()
    image_node = mrml.volume_to_node(scene, read_volume(context.artefacts["unseen"]), "unseen CT",
                                     window_level=WINDOW_LEVEL)
    labels, table = read_label_map(context.artefacts["segmentation"])
    mrml.labelmap_to_segmentation(scene, labels, table, reference=image_node, name="sslseg segmentation")
    context.artefacts["scene"] = mrml.write_mrb(scene, context.out / SCENE)


def draw_overlays(context: DemoContext) -> None:
    """``overlay.png`` (the segmentation) and ``overlay_truth.png`` (the phantom's truth), same slices and colours."""
    image = read_volume(context.artefacts["unseen"])
    labels, table = read_label_map(context.artefacts["segmentation"])
    truth = read_volume(context.artefacts["truth"])
    context.artefacts["overlay"] = write_overlay_png(image, labels, table, context.out / "overlay.png",
                                                     title="sslseg segmentation of the unseen case", centre_of=truth)
    context.artefacts["overlay_truth"] = write_overlay_png(image, truth, truth_table(), context.out / "overlay_truth.png",
                                                           title="phantom truth")

