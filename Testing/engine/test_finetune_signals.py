"""Fine-tuning stops cleanly on SIGTERM (the Slicer panel's Cancel) as pretraining does: the step under way is
finished and checkpointed, a ``stopped`` event carries the command that resumes, the exit status is 143, and that
command finishes the run."""

import json
import os
import shlex
import signal
import subprocess
import sys

from test_pretrain_signals import ENV, events_until_progress  # one torch thread: fast on a busy 2-core machine


def test_sigterm_checkpoints_reports_and_the_printed_command_resumes(labelled_dir, tmp_path):
    out = tmp_path / "model"
    args = [sys.executable, "-m", "sslseg", "finetune", str(labelled_dir), "--encoder", "none", "--out", str(out),
            "--preset", "tiny", "--patch-size", "32", "--feature-size", "8", "--crops-per-volume", "2",
            "--spacing", "6", "6", "6", "--workers", "0", "--val-every", "0", "--epochs", "20", "--events", "-",
            "--lr-schedule", "constant"]  # the resume below shortens the run: a cosine's length may not change
    process = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV,
                               start_new_session=True)
    events = events_until_progress(process)
    os.kill(process.pid, signal.SIGTERM)
    out_text, stderr = process.communicate(timeout=300)
    events += [json.loads(line) for line in out_text.splitlines()]

    assert process.returncode == 143, stderr
    stopped = events[-1]
    assert stopped["event"] == "stopped" and stopped["signal"] == "SIGTERM" and 1 <= stopped["step"] < 100
    assert json.loads((out / "train_stats.json").read_text())["status"] == "stopped"
    command = stopped["resume_command"]
    assert "--resume" in command and "--encoder none" in command and "--spacing 6.0 6.0 6.0" in command
    assert "--lr-schedule constant" in command
    assert any(line.endswith(command) for line in stderr.splitlines())

    resumed = subprocess.run([*shlex.split(command), "--max-steps", str(stopped["step"] + 2)], capture_output=True,
                             text=True, timeout=300, env=ENV)
    assert resumed.returncode == 0, resumed.stderr
    done = json.loads(resumed.stdout.splitlines()[-1])
    assert done["event"] == "done" and done["steps"] == stopped["step"] + 2
