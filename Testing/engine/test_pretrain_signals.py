"""A clean stop on SIGTERM (the Slicer panel's Cancel) and SIGINT (Ctrl-C): the step under way is finished and
checkpointed, ``train_stats.json`` says ``stopped``, a ``stopped`` event and one stderr line give the command that
resumes, the exit status is 143 / 130, and the printed command continues to the same weights as an uninterrupted run.
"""

import json
import os
import shlex
import signal
import subprocess
import sys
import time

import pytest
import torch
from pretrain_support import load_state, one_torch_thread, run_tiny

from sslseg.cli.main import build_parser
from sslseg.pretrain.config import PretrainConfig
from sslseg.pretrain.run import resume_command
from sslseg.training.stop_signal import StopSignal, TrainingStopped

EPOCHS = 8  # 4 steps per epoch (4 training volumes x 2 patches / batch 2): still running after the first step
#: One torch thread in the runs: fast on a busy 2-core machine (two spinning OpenMP threads beside another busy
#: process can be 10-100x slower), and the same summation order as the in-process reference run below.
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def start(unlabelled_dir, pretrain_cache, out, workers=0, stderr=subprocess.PIPE):
    args = [sys.executable, "-m", "sslseg", "pretrain", str(unlabelled_dir), "--out", str(out), "--preset", "tiny",
            "--patch-size", "32", "--spacing", "4", "--batch-size", "2", "--workers", str(workers), "--val-every", "0",
            "--epochs", str(EPOCHS), "--cache", str(pretrain_cache), "--events", "-"]
    return subprocess.Popen(args, stdout=subprocess.PIPE, stderr=stderr, text=True, start_new_session=True, env=ENV)


def events_until_progress(process) -> list[dict]:
    events = []
    while not any(e["event"] == "progress" for e in events):
        line = process.stdout.readline()
        if not line:
            process.kill()
            pytest.fail(f"the run ended before its first step:\n{process.communicate()[1]}")
        events.append(json.loads(line))
    return events


def stop_with(process, signum, whole_group=False):
    """Send ``signum`` (to the process, or to its whole process group as a terminal's Ctrl-C does); its output."""
    (os.killpg if whole_group else os.kill)(process.pid, signum)
    out, err = process.communicate(timeout=120)
    return [json.loads(line) for line in out.splitlines()], err


def test_sigterm_checkpoints_reports_and_resumes_to_the_same_weights(unlabelled_dir, pretrain_cache, tmp_path):
    run = tmp_path / "run"
    process = start(unlabelled_dir, pretrain_cache, run)
    events = events_until_progress(process)
    later, stderr = stop_with(process, signal.SIGTERM)
    events += later

    assert process.returncode == 143, stderr
    stopped = events[-1]
    assert stopped["event"] == "stopped" and stopped["signal"] == "SIGTERM" and stopped["exit_code"] == 143
    total = EPOCHS * 4
    assert 1 <= stopped["step"] < total
    assert "done" not in [e["event"] for e in events]
    stats = json.loads((run / "train_stats.json").read_text())
    assert stats["status"] == "stopped" and stats["step"] == stopped["step"]
    state = load_state(run)["state"]
    assert state["step"] == stopped["step"], "the checkpoint holds the last finished step"
    lines = [line for line in stderr.splitlines() if line.startswith("stopped by SIGTERM")]
    assert len(lines) == 1 and lines[0].endswith(stopped["resume_command"]) and "--resume" in lines[0]

    resumed = subprocess.run(shlex.split(stopped["resume_command"]), capture_output=True, text=True, timeout=120,
                             env=ENV)
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads(resumed.stdout.splitlines()[-1])["event"] == "done"
    assert json.loads((run / "train_stats.json").read_text())["status"] == "done"

    reference = tmp_path / "uninterrupted"
    with one_torch_thread():
        run_tiny(unlabelled_dir, reference, pretrain_cache, epochs=EPOCHS, val_every=0)
    a, b = load_state(run), load_state(reference)
    assert a["state"]["step"] == b["state"]["step"] == total
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in b["model"]), "resumed run differs"
    assert a["state"]["step_losses"] == b["state"]["step_losses"]


@pytest.mark.parametrize("signal_, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)], ids=["SIGINT", "SIGTERM"])
def test_a_signal_to_the_process_group_stops_cleanly_with_workers(unlabelled_dir, pretrain_cache, tmp_path, signal_,
                                                                  code):
    """A terminal's Ctrl-C (or a job runner's SIGTERM to the group) reaches the data-loading workers too: they ignore
    it, the main process stops cleanly."""
    run = tmp_path / "run"
    process = start(unlabelled_dir, pretrain_cache, run, workers=1)
    events_until_progress(process)
    events, stderr = stop_with(process, signal_, whole_group=True)
    assert process.returncode == code, stderr
    assert events[-1]["event"] == "stopped" and events[-1]["signal"] == signal_.name
    assert "Traceback" not in stderr and "exited unexpectedly" not in stderr
    assert json.loads((run / "train_stats.json").read_text())["status"] == "stopped"
    assert load_state(run)["state"]["step"] == events[-1]["step"]


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
        return True
    except ProcessLookupError:
        return False


@pytest.mark.parametrize("stderr_too", [False, True], ids=["events-closed", "events-and-stderr-closed"])
def test_a_closed_event_stream_stops_cleanly_with_a_checkpoint(unlabelled_dir, pretrain_cache, tmp_path, stderr_too):
    """The reader of ``--events -`` goes away (Slicer quits; ``| head``): the worker stops as on a cancel (checkpoint,
    ``stopped``, the data-loading worker shut down), exits 141 (128 + SIGPIPE) without a traceback, and never hangs.
    With stderr closed as well (the whole parent gone), nothing it writes there may fail the stop either."""
    run, log = tmp_path / "run", tmp_path / "stderr.txt"
    with open(log, "w") as log_file:
        process = start(unlabelled_dir, pretrain_cache, run, workers=1,
                        stderr=subprocess.PIPE if stderr_too else log_file)
    events_until_progress(process)
    process.stdout.close()  # the reader goes away
    if stderr_too:
        process.stderr.close()
    try:
        code = process.wait(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        pytest.fail("the worker did not exit after its event stream closed")
    stats = json.loads((run / "train_stats.json").read_text())
    assert stats["status"] == "stopped" and stats["signal"] == "SIGPIPE", stats["status"]
    assert code == 141
    stopped = [json.loads(line) for line in (run / "events.jsonl").read_text().splitlines()][-1]
    assert stopped["event"] == "stopped" and stopped["checkpoint"] and "--resume" in stopped["resume_command"]
    assert load_state(run)["state"]["step"] == stopped["step"] == stats["step"] >= 1
    for _ in range(50):  # the data-loading worker ends with the run (it ignores SIGTERM: nothing else would end it)
        if not group_alive(process.pid):
            break
        time.sleep(0.1)
    assert not group_alive(process.pid), "a data-loading worker outlived the run"
    if not stderr_too:
        text = log.read_text()
        assert "Traceback" not in text and "Exception ignored" not in text, text
        assert "stopped by SIGPIPE" in text


def test_outside_the_loop_a_signal_stops_at_once_with_143():
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(TrainingStopped) as stopped, StopSignal(deferred=False):
        os.kill(os.getpid(), signal.SIGTERM)
        for _ in range(1000):  # the handler runs between bytecodes
            pass
    assert stopped.value.code == 143 and stopped.value.step is None
    assert signal.getsignal(signal.SIGTERM) is before, "the previous handler is back"


def test_a_deferred_stop_waits_for_the_owner_and_a_second_signal_does_not():
    with StopSignal(deferred=True) as stop:
        os.kill(os.getpid(), signal.SIGINT)
        assert stop.requested and stop.stopped(7, 2).code == 130
        with pytest.raises(TrainingStopped):
            os.kill(os.getpid(), signal.SIGINT)
            for _ in range(1000):
                pass


def test_the_resume_command_repeats_every_setting_that_defines_the_run(tmp_path):
    config = PretrainConfig(data_dir=str(tmp_path / "data dir"), out_dir=str(tmp_path / "run"), preset="tiny",
                            patch_size=32, batch_size=2, lr=3e-4, ct_window=(-57.0, 164.0), epochs=5, workers=0)
    words = shlex.split(resume_command(config))
    assert words[-1] == "--resume"
    args = build_parser().parse_args(words[words.index("pretrain"):])
    parsed = PretrainConfig(**{k: tuple(v) if k == "ct_window" else v for k, v in vars(args).items()
                               if k in PretrainConfig.__dataclass_fields__})
    assert parsed.identity() == config.identity()
    assert (parsed.epochs, parsed.workers, parsed.resume) == (5, 0, True)
    assert words[-1] == "--resume" and shlex.split(resume_command(config, resumable=False))[-1] == "--overwrite"
