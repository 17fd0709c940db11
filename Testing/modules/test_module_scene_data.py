"""The module helpers that need no Qt, against a real slicer-core scene: scene pairs exported to an MSD folder the
engine reads back, the label set, a worker's label map imported under the input's study (new node or replacing
one), the Dice table, the live plots, the worker command lines."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT / "SSLSegmentation"), str(ROOT / "SSLPretrain")]

slicer = pytest.importorskip("slicer")
from sslseg import mrml  # noqa: E402
from sslseg.io.label_map_writer import write_label_map  # noqa: E402
from sslseg.io.pairing import find_labelled_cases, load_case  # noqa: E402
from sslseg.labels import LabelTable  # noqa: E402
from sslseg.volume import Volume  # noqa: E402
from SSLPretrainLib import Commands as PretrainCommands  # noqa: E402
from SSLSegmentationLib import Commands, Plots, SceneData  # noqa: E402


@pytest.fixture
def scene():
    return mrml.setup_scene()


def asymmetric_case(scene, name: str, shift: int = 0):
    """A volume node (12, 10, 8) with an oblique-free, non-identity affine, and a segmentation drawn on it."""
    affine = np.diag([2.0, -1.5, 3.0, 1.0])
    affine[:3, 3] = (-10, 20, 5)
    image = np.arange(12 * 10 * 8, dtype=np.int16).reshape(12, 10, 8)
    volume = mrml.volume_to_node(scene, Volume(image, affine), name)
    labels = np.zeros((12, 10, 8), dtype=np.uint8)
    labels[1 + shift:4 + shift, 2:5, 1:3] = 1
    labels[7:11, 1:3, 4:7] = 2
    table = LabelTable.from_names({1: "liver", 2: "spleen"})
    segmentation = mrml.labelmap_to_segmentation(scene, Volume(labels, affine), table, reference=volume,
                                                 name=f"{name} segmentation")
    segmentation.SetNodeReferenceID(SceneData.REFERENCE_ROLE, volume.GetID())
    return volume, segmentation, labels, affine


def test_scene_pairs_export_to_a_folder_the_engine_pairs_and_names(scene, tmp_path):
    first = asymmetric_case(scene, "ct one")
    second = asymmetric_case(scene, "ct one", shift=1)  # same name: unique file names
    lonely = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", "no source volume")
    pairs = SceneData.trainingPairs([first[1], second[1], lonely])
    assert [v.GetName() for v, _ in pairs] == ["ct one", "ct one"]
    labels = SceneData.exportTrainingPairs(pairs, tmp_path)
    assert labels == {"liver": 1, "spleen": 2}
    assert json.loads((tmp_path / "labels.json").read_text()) == {"1": "liver", "2": "spleen"}
    cases, _ = find_labelled_cases(tmp_path)  # the engine's own reader, as `sslseg finetune` uses it
    assert len(cases) == 2
    image, written, table = load_case(sorted(cases, key=lambda c: str(c.image))[1])
    assert table.names == {"liver": 1, "spleen": 2}
    np.testing.assert_array_equal(written.array, second[2])
    np.testing.assert_allclose(written.affine, second[3], atol=1e-5)
    with pytest.raises(Exception, match="no training cases"):
        SceneData.exportTrainingPairs([], tmp_path / "empty")


def test_worker_label_map_imports_under_the_study_and_replaces_after_confirmation(scene, tmp_path):
    volume, reference, labels, affine = asymmetric_case(scene, "ct")
    hierarchy = slicer.vtkMRMLSubjectHierarchyNode.GetSubjectHierarchyNode(scene)
    patient = hierarchy.CreateSubjectItem(hierarchy.GetSceneItemID(), "patient")
    study = hierarchy.CreateStudyItem(patient, "study")
    hierarchy.CreateItem(study, volume)  # what loading from DICOM does in Slicer
    assert hierarchy.GetItemParent(hierarchy.GetItemByDataNode(volume)) == study
    path = tmp_path / "labels.nii.gz"
    write_label_map(Volume(labels, affine), LabelTable.from_names({1: "liver", 2: "spleen"}), path)

    node = SceneData.importLabelMap(scene, path, volume, "ct organs")
    assert mrml.segment_names(node) == ["liver", "spleen"]
    assert hierarchy.GetItemParent(hierarchy.GetItemByDataNode(node)) == study
    assert SceneData.referenceVolume(node) is volume
    back = mrml.segmentation_to_labelmap(node, volume, ["liver", "spleen"])
    np.testing.assert_array_equal(back.array, labels)
    liver = node.GetSegmentation().GetSegment(mrml.segment_id(node, "liver"))
    assert "Liver" in liver.GetTerminology() and liver.GetColor() != (0.5, 0.5, 0.5)

    replaced = SceneData.importLabelMap(scene, path, volume, "ignored", replaceNode=reference)
    assert replaced is reference and mrml.segment_names(reference) == ["liver", "spleen"]
    assert not [n for n in mrml.nodes_by_class(scene, "vtkMRMLSegmentationNode") if n.GetName() == "ignored"]


def test_dice_table_of_two_segmentations(scene):
    volume, reference, labels, affine = asymmetric_case(scene, "ct")
    _, prediction, _, _ = asymmetric_case(scene, "ct2", shift=1)
    table, scores = SceneData.compareSegmentations(scene, prediction, reference, volume)
    dice = {s.organ: s.dice for s in scores}
    assert dice["spleen"] == pytest.approx(1.0) and dice["liver"] == pytest.approx(2 * 12 / (18 + 18))
    assert table.GetNumberOfRows() == 3 and table.GetCellText(2, 0) == "mean"
    assert table.GetCellText(0, 0) == "liver" and float(table.GetCellText(0, 1)) == pytest.approx(dice["liver"], 1e-3)


def test_live_plots_take_worker_events(scene):
    loss = Plots.lossPlot(scene)
    for step, value in ((1, 0.9), (2, 0.7)):
        assert Plots.addPretrainEvent(loss, {"event": "progress", "step": step, "loss": value})
    assert Plots.addPretrainEvent(loss, {"event": "epoch", "step": 2, "val_loss": 0.5})
    assert not Plots.addPretrainEvent(loss, {"event": "start"})
    assert loss.columns == ["step", "loss", "validation loss"]
    assert loss.values("loss")[:2] == [0.9, 0.7] and np.isnan(loss.values("validation loss")[0])
    assert loss.chartNode.GetNumberOfPlotSeriesNodes() == 2

    assert loss.chartNode.GetYAxisTitle() == "loss"

    joint = Plots.lossPlot(scene, "joint-embedding loss")  # a method with the collapse measures in its events
    progress = {"event": "progress", "step": 1, "loss": 4.2, "embedding_std": 0.8, "effective_rank": 1.9}
    assert Plots.addPretrainEvent(joint, progress)
    assert Plots.addPretrainEvent(joint, {**progress, "step": 2, "loss": 4.0, "embedding_std": 0.3})
    assert joint.columns == ["step", "loss", "embedding std"]
    assert joint.values("embedding std") == [0.8, 0.3] and joint.values("loss") == [4.2, 4.0]
    assert joint.chartNode.GetNumberOfPlotSeriesNodes() == 2
    assert joint.chartNode.GetYAxisTitle() == "loss / embedding std"

    probed = Plots.lossPlot(scene, "probed loss")  # `sslseg pretrain --probe`: the probes' epoch record
    assert Plots.addPretrainEvent(probed, {"event": "epoch", "step": 3, "val_loss": None, "probe_linear_dice": 0.4,
                                           "probe_knn_accuracy": 0.7,
                                           "probe": {"kNN accuracy": 0.7, "random init: linear Dice": 0.1,
                                                     "random init: kNN accuracy": 0.3}})
    assert not Plots.addPretrainEvent(probed, {"event": "epoch", "step": 4, "val_loss": None})
    assert probed.columns == ["step", "probe linear Dice", "probe kNN accuracy", "probe random init: linear Dice",
                              "probe random init: kNN accuracy"]
    assert probed.values("probe kNN accuracy") == [0.7] and probed.values("probe random init: linear Dice") == [0.1]

    dice = Plots.dicePlot(scene)
    assert Plots.addFinetuneEvent(dice, {"event": "progress", "step": 4, "loss": 1.2})
    event = {"event": "epoch", "epoch": 1, "step": 4, "val_dice": 0.6,
             "val_dice_per_organ": {"liver": 0.8, "spleen": None}}
    assert Plots.addFinetuneEvent(dice, event)
    assert dice.columns == ["step", "training loss", "mean Dice", "liver", "spleen"]
    assert dice.values("training loss")[0] == 1.2 and dice.values("liver")[-1] == 0.8
    assert not Plots.addFinetuneEvent(dice, {"event": "epoch", "epoch": 2, "step": 8, "val_dice": None})


def test_worker_command_lines(tmp_path):
    args = PretrainCommands.pretrainArgs("data", "run", preset="tiny", epochs=3, reduceSlices=6)
    assert args[:2] == ["data", "--out"] and args[args.index("--reduce") + 1] == "6" and "--resume" not in args
    assert "--reduce" not in PretrainCommands.pretrainArgs("d", "r", reduceSlices=6, reduceSupported=False)
    probed = PretrainCommands.pretrainArgs("d", "r", probeDir=tmp_path, probeEvery=3)
    assert probed[probed.index("--probe") + 1] == str(tmp_path) and probed[probed.index("--probe-every") + 1] == "3"
    assert "--probe" not in args
    assert PretrainCommands.engineHasOption("pretrain", "--probe")
    assert PretrainCommands.engineHasOption("pretrain", "--epochs")
    assert not PretrainCommands.engineHasOption("pretrain", "--no-such-option")
    assert PretrainCommands.previewFiles(["x/a_original.nii.gz", "x/a_views.png"]) == ["x/a_original.nii.gz"]
    segment = Commands.segmentArgs("ct.nii.gz", "model", "out.nii.gz")
    assert segment[segment.index("--overlap") + 1] == "0.25" and "--largest-component" not in segment
    segment = Commands.segmentArgs("ct.nii.gz", "model", "out.nii.gz", overlap=0.6, largestComponent=True)
    assert segment[segment.index("--overlap") + 1] == "0.6" and segment[-1] == "--largest-component"
    retrain = Commands.finetuneArgs("cases", "model-retrained", "encoder", "tiny", patchSize=64, fromModel="model")
    assert retrain[retrain.index("--from-model") + 1] == "model"
    assert not {"--encoder", "--preset", "--patch-size"} & set(retrain)  # the model package fixes them
    (tmp_path / "liver").mkdir()
    assert Commands.retrainedFolder(tmp_path / "liver") == tmp_path / "liver-retrained"
    (tmp_path / "liver-retrained").mkdir()
    assert Commands.retrainedFolder(tmp_path / "liver") == tmp_path / "liver-retrained-2"
    assert Commands.retrainedFolder(tmp_path / "liver-retrained") == tmp_path / "liver-retrained-2"
    finetune = Commands.finetuneArgs("cases", "model", None, resume=True)
    assert finetune[finetune.index("--encoder") + 1] == "none" and finetune[-1] == "--resume"
    assert Commands.pathOrNone(Path("")) is None and Commands.pathOrNone("a") == Path("a")
    (tmp_path / "model.json").write_text("{}")
    assert Commands.isModelFolder(tmp_path) and not Commands.isEncoderRun(tmp_path)


def test_a_finished_study_shows_as_a_table_and_a_chart(scene, tmp_path):
    """The study's numbers reach the scene unchanged: a row per (initialisation, N) with the paired difference, and
    a chart of mean Dice against N with one series per initialisation; a folder without a study names the fix."""
    from SSLSegmentationLib import StudyView

    from sslseg.study.plan import StudyPlan, initialisations
    from sslseg.study.report import write_report

    def cell(init, n, seed, dice):
        return {"id": f"n{n}-{init}-s{seed}", "init": init, "cases": n, "seed": seed, "mean_dice": dice,
                "held_out": {"a": {"liver": {"dice": dice, "hd95_mm": 2.0}}}, "per_organ": {}}

    cells = [cell("random", n, s, 0.2 * n + 0.01 * s) for n in (1, 2) for s in range(2)]
    cells += [cell("ssl", n, s, 0.2 * n + 0.01 * s + 0.05) for n in (1, 2) for s in range(2)]
    plan = StudyPlan("data", initialisations(["runs/ssl"]), [1, 2], 2, 0, ["a"], ["b", "c"]).to_json()
    write_report(tmp_path, plan, cells, {})
    study = StudyView.readStudy(tmp_path)
    table = StudyView.studyTable(scene, study)
    assert table.GetNumberOfRows() == 4
    assert [table.GetCellText(0, c) for c in range(7)] == ["random", "1", "0.2050", "0.0071", "0.2000", "0.2100", "2"]
    assert table.GetCellText(3, 0) == "ssl" and table.GetCellText(3, 1) == "2"
    assert table.GetCellText(3, 7) == "+0.050 [+0.050, +0.050]" and table.GetCellText(1, 7) == ""
    plot = StudyView.studyPlot(scene, study)
    assert plot.columns == ["labelled cases", "random", "ssl"]
    assert plot.values("labelled cases") == [1, 2] and plot.values("ssl") == pytest.approx([0.255, 0.455])
    with pytest.raises(ValueError, match="holds no finished study"):
        StudyView.readStudy(tmp_path / "nothing")


def liver_on_two_oblique_axial_slices(scene):
    """(volume node, segmentation node): a (14, 9, 11) volume stored with i R->L, j I->S, k A->P, 10 degrees oblique,
    its liver drawn on the axial slices j = 2 and j = 6."""
    angle = np.deg2rad(10)
    rotation = np.array([[np.cos(angle), 0, np.sin(angle)], [0, 1, 0], [-np.sin(angle), 0, np.cos(angle)]])
    affine = np.eye(4)
    affine[:3, :3] = rotation @ np.array([[-1.5, 0, 0], [0, 0, -1.5], [0, 2.5, 0]])  # i: R->L, j: I->S, k: A->P
    affine[:3, 3] = (40, -30, 12)
    volume = mrml.volume_to_node(scene, Volume(np.arange(14 * 9 * 11, dtype=np.int16).reshape(14, 9, 11), affine),
                                 "oblique")
    labels = np.zeros((14, 9, 11), dtype=np.uint8)
    labels[3:9, 2, 2:8] = 1
    labels[4:7, 6, 3:6] = 1
    table = LabelTable.from_names({1: "liver", 2: "spleen"})
    segmentation = mrml.labelmap_to_segmentation(scene, Volume(labels, affine), table, reference=volume, name="drawn")
    segmentation.SetNodeReferenceID(SceneData.REFERENCE_ROLE, volume.GetID())
    return volume, segmentation


def test_slices_drawn_in_slicers_axial_view_are_the_annotated_axial_slices_whatever_the_storage(scene, tmp_path):
    """A volume stored LPS-like with j running inferior-superior and 10 degrees oblique: a segment drawn on two
    axial slices (planes of constant j, the axis closest to S) exports to a case whose annotated mask
    (``--undrawn-slices unknown``, the engine's own code on the exported files) is exactly those two j planes; the
    organ lists of ``listOrgans`` name each segmentation's segments, an empty one (truly absent) included."""
    from sslseg.io.annotation import SliceAnnotation, slices_mask

    volume, segmentation = liver_on_two_oblique_axial_slices(scene)
    if "spleen" not in mrml.segment_names(segmentation):  # an empty segment: the spleen is truly absent here
        segmentation.GetSegmentation().AddEmptySegment("spleen", "spleen")
    SceneData.exportTrainingPairs([(volume, segmentation)], tmp_path, listOrgans=True)
    datalist = json.loads((tmp_path / "datalist.json").read_text())
    assert sorted(datalist["training"][0]["organs"]) == ["liver", "spleen"]
    (case,) = find_labelled_cases(tmp_path / "datalist.json")[0]
    assert set(case.annotation.organs) == {"liver", "spleen"}
    image, exported, _ = load_case(case)
    mask = slices_mask(exported.array, image.affine, SliceAnnotation("axial"), "exported")
    assert np.flatnonzero(mask.any(axis=(0, 2))).tolist() == [2, 6] and mask[:, [2, 6], :].all()
    assert mask.sum() == 2 * 14 * 11


def test_the_partial_annotation_options_reach_the_worker_command_line(tmp_path):
    args = Commands.finetuneArgs(tmp_path, tmp_path / "model", undrawnSlicesUnknown=True, partialOrgans=True)
    assert args[args.index("--undrawn-slices") + 1] == "unknown" and args[args.index("--slice-axis") + 1] == "axial"
    assert "--partial-organs" in args
    plain = Commands.finetuneArgs(tmp_path, tmp_path / "model")
    assert "--undrawn-slices" not in plain and "--partial-organs" not in plain


def test_the_panel_leaves_the_learning_rate_to_the_preset_unless_one_is_set(tmp_path):
    """The panel's "preset's" learning rate (0) sends no --lr, so the engine uses the preset's recipe (tiny: 3e-3
    with its cosine decay); a rate the user sets reaches the worker as given."""
    from sslseg.cli.main import build_parser

    default = Commands.finetuneArgs(tmp_path, tmp_path / "model", preset="tiny")
    assert "--lr" not in default
    assert build_parser().parse_args(["finetune", *default]).lr is None  # left to the recipe
    chosen = Commands.finetuneArgs(tmp_path, tmp_path / "model", learningRate=5e-4)
    assert chosen[chosen.index("--lr") + 1] == "0.0005"


def test_a_slice_marked_annotated_in_the_scene_teaches_background_and_is_no_organ(scene, tmp_path):
    """The liver drawn on the axial slices j = 2 and 6 of the oblique LPS-like volume, and the "Annotated slices"
    segment painted (a few voxels) on j = 4, where no organ is: the exported case is annotated on exactly the three
    whole axial planes 2, 4 and 6 (the engine's reading of the datalist), the marker is not a label, and slice 4
    is all background."""
    from sslseg.io.annotation import annotated_mask

    volume, segmentation = liver_on_two_oblique_axial_slices(scene)
    affine = mrml.node_to_volume(volume).affine
    marker = np.zeros((14, 9, 11), dtype=np.uint8)
    marker[5:7, 4, 5] = 1
    painted = mrml.labelmap_to_segmentation(scene, Volume(marker, affine),
                                            LabelTable.from_names({1: "Annotated slices"}), reference=volume)
    segmentation.GetSegmentation().CopySegmentFromSegmentation(
        painted.GetSegmentation(), painted.GetSegmentation().GetNthSegmentID(0))
    assert SceneData.labelSet([segmentation]) == {"liver": 1}
    SceneData.exportTrainingPairs([(volume, segmentation)], tmp_path, annotatedSlices=True)
    (entry,) = json.loads((tmp_path / "datalist.json").read_text())["training"]
    assert entry["annotated_slices"] == {"axis": "axial", "indices": [2, 4, 6]}
    assert json.loads((tmp_path / "labels.json").read_text()) == {"1": "liver"}
    (case,) = find_labelled_cases(tmp_path / "datalist.json")[0]
    image, exported, _ = load_case(case)
    mask = annotated_mask(case.annotation, image, exported, case.name)
    assert np.flatnonzero(mask.any(axis=(0, 2))).tolist() == [2, 4, 6] and mask[:, [2, 4, 6], :].all()
    assert not exported.array[:, 4, :].any() and exported.array[:, [2, 6], :].any()
