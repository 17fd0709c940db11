"""Issue 15, at the level reachable without Slicer's application (the Qt-free command helpers, and the module files
read as code): "Resume" is ticked after a cancelled run, in both modules, by one shared rule. Driving the
Widgets' handlers themselves needs the Slicer runtime harness (issue 15 part 1).
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT / "SSLSegmentation"), str(ROOT / "SSLPretrain")]

from module_code_support import calls, function  # noqa: E402
from sslseg.training.run_dir import CHECKPOINT  # noqa: E402
from SSLSegmentationLib import Commands  # noqa: E402


def test_resume_is_ticked_after_a_cancel_that_left_a_checkpoint(tmp_path):
    assert Commands.resumeAfter("cancelled", tmp_path, False) is False  # stopped before any checkpoint: start anew
    (tmp_path / "checkpoint.pt").write_bytes(b"")
    assert Commands.resumeAfter("cancelled", tmp_path, False) is True
    assert Commands.resumeAfter("failed", tmp_path, False) is False  # settings may have to change first
    assert Commands.resumeAfter("done", tmp_path, True) is True  # left as the user set it
    assert Commands.resumeAfter("cancelled", None, False) is False
    assert Commands.CHECKPOINT_FILE == CHECKPOINT, "the file the engine resumes from"


@pytest.mark.parametrize(("module", "handler", "parameter"), [
    ("SSLPretrain", "SSLPretrainLogic.startPretraining", "resume"),
    ("SSLSegmentation", "SSLSegmentationLogic._train", "resumeTraining"),  # startTraining and startRetraining run it
])
def test_both_modules_tick_resume_after_a_cancel(module, handler, parameter):
    """SSLSegmentation did not tick "Resume" after a cancelled training, so the next Start failed with "already
    holds a run"; SSLPretrain did. Both now set it from the one shared rule, in the Logic when the job ends (so a
    script's or self-test's cancel ticks it too; the harness's panel story checks the behaviour)."""
    body = function(module, handler)
    assigned = [n for n in ast.walk(body) if isinstance(n, ast.Assign)
                and any(ast.unparse(t).endswith(f".{parameter}") for t in n.targets)]
    assert assigned, f"{handler} never sets {parameter}"
    shared = [n for n in assigned if any(c.endswith("Commands.resumeAfter") for c in calls(n.value))]
    assert shared, f"{handler}: not the shared rule"
