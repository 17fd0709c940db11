"""Issue 15, module defects at the level reachable without Slicer's application (its Qt-free command helpers, and
the module files read as code): what a training start needs before the button is enabled, and ticking "Resume"
after a cancelled run. Driving the Widgets' handlers themselves needs the Slicer runtime harness (issue 15 part 1).
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT / "SSLSegmentation"), str(ROOT / "SSLPretrain")]

from SSLPretrainLib import Commands as PretrainCommands  # noqa: E402
from module_code_support import calls, function  # noqa: E402
from SSLSegmentationLib import Commands  # noqa: E402


# --- training from a folder that was never chosen -----------------------------------------------------------------

def test_no_folder_chosen_says_what_to_choose(tmp_path):
    """Training-from-scene off and no folder: the worker was passed the string "None" ("None is neither a folder
    nor a datalist JSON"). Now the start is refused with what to choose, and the button stays disabled."""
    model = tmp_path / "model"
    problem = Commands.trainingProblem(trainFromScene=False, trainingFolder=None, modelOutputFolder=model)
    assert "training folder" in problem.lower()
    assert Commands.trainingProblem(False, Path(""), model) == problem  # an empty path field is "."
    assert Commands.trainingProblem(False, tmp_path, model) == ""
    assert "model" in Commands.trainingProblem(False, tmp_path, None).lower()
    assert "segmentation" in Commands.trainingProblem(True, None, model, sceneCases=0).lower()
    assert Commands.trainingProblem(True, None, model, sceneCases=2) == ""
    with pytest.raises(ValueError, match="training folder"):
        Commands.finetuneArgs(None, model)
    with pytest.raises(ValueError, match="folder"):
        PretrainCommands.pretrainArgs(None, tmp_path / "run")


def test_the_train_button_and_the_start_use_the_same_check():
    assert "Commands.trainingProblem" in calls(function("SSLSegmentation", "SSLSegmentationWidget.updateButtons"))
    assert "Commands.trainingProblem" in calls(function("SSLSegmentation", "SSLSegmentationLogic.startTraining"))
