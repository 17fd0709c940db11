"""The main job (`make demo` runs `sslseg demo`) on small settings: every artefact, the scene re-loads into a fresh
slicer-core scene with the segment names of the segmentation, the report scores the unseen case, safe re-runs."""

import json

import pytest
import slicerio

from sslseg import mrml
from sslseg.cli.main import main
from sslseg.demo.pipeline import MARKER, prepare_output
from sslseg.synth.anatomy import ORGAN_LABELS

SMALL = ["--unlabelled-cases", "3", "--labelled-cases", "3", "--size", "32", "--spacing", "10",
         "--pretrain-epochs", "2", "--finetune-epochs", "30", "--device", "cpu"]
ARTEFACTS = ["report.md", "segmentation.seg.nrrd", "scene.mrb", "overlay.png", "overlay_truth.png", "dice.json",
             "pretrain/loss_curve.png", "pretrain/encoder.safetensors", "model/loss_curve.png", "model/dice_curve.png",
             "model/model.safetensors", "model/model.json", "data/unseen/ct.nii.gz", "data/unseen/truth.nii.gz"]


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo") / "demo-output"
    assert main(["demo", "--out", str(out), *SMALL]) == 0
    return out


@pytest.mark.parametrize("name", ARTEFACTS)
def test_artefact_exists(demo, name):
    assert (demo / name).is_file() and (demo / name).stat().st_size > 0


def test_the_scene_reloads_with_the_segmentations_segments(demo):
    """The .mrb opens in a fresh scene: the CT volume and one segmentation whose segment names are exactly the
    organs in segmentation.seg.nrrd (read with the independent slicerio package)."""
    written = {segment["name"] for segment in slicerio.read_segmentation(str(demo / "segmentation.seg.nrrd"),
                                                                          skip_voxels=True)["segments"]}
    assert written and written <= set(ORGAN_LABELS)
    scene = mrml.setup_scene()
    mrml.load_mrb(scene, demo / "scene.mrb")
    [segmentation] = mrml.nodes_by_class(scene, "vtkMRMLSegmentationNode")
    assert set(mrml.segment_names(segmentation)) == written
    assert [n.GetName() for n in mrml.nodes_by_class(scene, "vtkMRMLScalarVolumeNode")] == ["unseen CT"]


def test_report_scores_every_organ_and_times_every_stage(demo):
    report = (demo / "report.md").read_text()
    assert "3 unlabelled volumes, 3 labelled cases" in report
    for organ in ORGAN_LABELS:
        assert f"| {organ} |" in report
    for stage in ("synthesise", "pretrain", "finetune", "segment", "evaluate", "scene", "overlay", "total"):
        assert f"| {stage} |" in report
    scores = json.loads((demo / "dice.json").read_text())
    assert {o["organ"] for o in scores["organs"]} == set(ORGAN_LABELS)
    assert "(scene.mrb)" in report and "(overlay.png)" in report  # links relative to the report


def test_a_rerun_replaces_only_what_the_demo_wrote(tmp_path):
    out = tmp_path / "demo-output"
    prepare_output(out)
    (out / "old-result.txt").write_text("from the last run")
    prepare_output(out)
    assert sorted(p.name for p in out.iterdir()) == [MARKER]


def test_demo_never_replaces_a_folder_it_did_not_write(tmp_path, capsys):
    (tmp_path / "precious.txt").write_text("user data")
    assert main(["demo", "--out", str(tmp_path)]) == 2
    assert "not written by the demo" in capsys.readouterr().err
    assert (tmp_path / "precious.txt").read_text() == "user data"
