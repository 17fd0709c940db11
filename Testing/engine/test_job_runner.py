"""The engine job runner with real worker processes (``python -m sslseg ...``): events, progress, states, failure
messages, cancel of the whole process tree (no orphans), SIGKILL after the grace period, resume after a cancel."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import pytest

from sslseg.jobs import Job, JobFailed, JobState
from sslseg.jobs.events import describe_progress, parse_event, progress_fraction
from sslseg.jobs.failure import failure_message
from sslseg.jobs.worker_env import MALLOC_TUNABLES, engine_root, worker_environment

posix_only = pytest.mark.skipif(os.name != "posix" or not Path("/proc/self/stat").exists(), reason="needs /proc")


def tiny_pretrain_args(data: Path, out: Path, cache: Path, *extra: str) -> list[str]:
    """A pretraining of ~0.05 s per step (see Testing/pretrain_support.py's TINY)."""
    return [str(data), "--out", str(out), "--cache", str(cache), "--preset", "tiny", "--patch-size", "32",
            "--spacing", "4", "--batch-size", "2", "--checkpoint-every", "0", "--val-every", "0", "--device", "cpu",
            *extra]


def group_members(pgid: int) -> list[int]:
    """PIDs of the live processes in process group ``pgid`` (zombies do not count: they hold nothing)."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()  # after "pid (comm) ": state, ppid, pgrp, ...
        if int(fields[2]) == pgid and fields[0] != "Z":
            members.append(int(entry.name))
    return members


def wait_for(predicate, job: Job, timeout: float = 60.0) -> None:
    start = time.monotonic()
    while not predicate():
        job.poll()
        assert not job.state.finished, f"the job ended early: {job.state.value} {job.message}\n{job.log_text}"
        assert time.monotonic() - start < timeout, f"gave up waiting\n{job.log_text}"
        time.sleep(0.05)


@pytest.fixture
def kill_leftovers():
    """Kills the process groups a test started if it failed before they ended (never any other process)."""
    groups: list[int] = []
    yield groups.append
    for pgid in groups:
        if group_members(pgid):
            os.killpg(pgid, 9)


def test_a_short_command_runs_to_done_with_its_output_in_the_log(tmp_path):
    states = []
    job = Job("synth", ["--out", tmp_path / "cases", "--cases", "1", "--size", "24"], on_state=states.append)
    with pytest.raises(RuntimeError, match="start"):
        job.wait()
    assert job.argv[:4] == [sys.executable, "-m", "sslseg", "synth"] and "--events" not in job.argv
    assert job.start().wait(timeout=120) is JobState.DONE
    assert states == [JobState.STARTING, JobState.RUNNING, JobState.IMPORTING, JobState.DONE]
    assert job.exit_code == 0 and "wrote 1 unlabelled case" in job.log_text
    assert (tmp_path / "cases" / "case_000.nii.gz").is_file()


def test_pretraining_events_progress_and_importer(tmp_path, unlabelled_dir, pretrain_cache, kill_leftovers):
    seen, imported = [], []
    job = Job("pretrain", tiny_pretrain_args(unlabelled_dir, tmp_path / "run", pretrain_cache, "--epochs", "2",
                                             "--workers", "0"),
              on_event=seen.append, importer=lambda j: imported.append(j.state) or "encoder!").start()
    kill_leftovers(job.pid)
    assert job.argv[-2:] == ["--events", "-"]
    assert job.wait(timeout=120) is JobState.DONE
    kinds = [e["event"] for e in seen]
    assert kinds[0] == "stage" and "start" in kinds and kinds[-1] == "done" and kinds.count("epoch") == 2
    assert seen == job.events
    progress = job.events_of("progress")
    assert progress and progress_fraction(progress[-1]) == 1.0
    assert "epoch 2/2" in describe_progress(progress[-1]) and "loss" in describe_progress(progress[-1])
    assert imported == [JobState.IMPORTING] and job.imported == "encoder!"
    assert job.result["encoder"].endswith("encoder.safetensors") and Path(job.result["encoder"]).is_file()


def test_a_failing_worker_surfaces_its_message_and_hint(tmp_path):
    job = Job("pretrain", [tmp_path / "missing", "--out", tmp_path / "run"]).start()
    with pytest.raises(JobFailed) as failure:
        job.wait(timeout=120)
    assert job.state is JobState.FAILED and job.exit_code == 2
    assert "is not a folder" in failure.value.message and failure.value.hint  # from the worker's error event
    assert job.events_of("error")[-1]["message"] == job.message

    # a command without events: the CLI's "error:" / "hint:" lines on stderr
    segment = Job("segment", [tmp_path / "ct.nii.gz", "--model", tmp_path, "--out", tmp_path / "a.seg.nrrd"]).start()
    assert segment.wait(timeout=120, raise_on_failure=False) is JobState.FAILED
    assert "no model.json" in segment.message and "sslseg finetune" in segment.hint


def test_an_importer_that_raises_fails_the_job(tmp_path):
    def importer(job):
        raise JobFailed("the segmentation file is unreadable", "run it again")

    job = Job("synth", ["--out", tmp_path / "c", "--cases", "1", "--size", "24"], importer=importer).start()
    assert job.wait(timeout=120, raise_on_failure=False) is JobState.FAILED
    assert job.message == "the result could not be loaded: the segmentation file is unreadable"
    assert job.hint == "run it again"


def test_a_worker_that_cannot_start_fails_at_once(tmp_path):
    job = Job("synth", [], python=str(tmp_path / "no-python")).start()
    assert job.state is JobState.FAILED and "cannot start the worker" in job.message


@posix_only
def test_cancel_stops_the_process_tree_and_the_run_resumes(tmp_path, unlabelled_dir, pretrain_cache, kill_leftovers):
    run = tmp_path / "run"
    # one data-loading process: the worker has a child, which must not outlive the cancel
    job = Job("pretrain", tiny_pretrain_args(unlabelled_dir, run, pretrain_cache, "--epochs", "50", "--workers", "1"),
              grace_s=60).start()
    kill_leftovers(job.pid)
    wait_for(lambda: job.progress is not None and job.progress["step"] >= 2, job)
    assert len(group_members(job.pid)) >= 2, "expected the worker and its data-loading process"
    environ = Path(f"/proc/{job.pid}/environ").read_bytes().split(b"\0")
    # glibc parses the tunables in place (a NUL after the first one shows in /proc): compare the start
    assert any(v.startswith(b"GLIBC_TUNABLES=glibc.malloc.mmap_max=0") for v in environ), environ
    job.cancel()
    assert job.wait(timeout=90) is JobState.CANCELLED
    assert job.exit_code == 143  # SIGTERM: clean stop after the step, checkpoint written
    assert group_members(job.pid) == []
    stopped = job.events_of("stopped")[-1]
    assert stopped["step"] >= 2 and "resumed" in job.message
    assert (run / "checkpoint.pt").is_file()

    resumed = Job("pretrain", tiny_pretrain_args(unlabelled_dir, run, pretrain_cache, "--epochs", "50", "--workers", "0",
                                                 "--resume", "--max-steps", str(stopped["step"] + 2))).start()
    kill_leftovers(resumed.pid)
    assert resumed.wait(timeout=120) is JobState.DONE
    assert resumed.events_of("start")[-1]["resumed_at_step"] == stopped["step"]
    assert resumed.events_of("progress")[0]["step"] == stopped["step"] + 1
    assert resumed.result["steps"] == stopped["step"] + 2


@posix_only
@pytest.mark.slow
def test_cancel_escalates_to_sigkill_after_the_grace_period(tmp_path, unlabelled_dir, pretrain_cache, kill_leftovers):
    job = Job("pretrain", tiny_pretrain_args(unlabelled_dir, tmp_path / "run", pretrain_cache,
                                             "--epochs", "50", "--workers", "1")).start()
    kill_leftovers(job.pid)
    wait_for(lambda: job.progress is not None, job)
    job.cancel(grace_s=0)
    assert job.wait(timeout=30) is JobState.CANCELLED
    assert job.exit_code in (-9, -15, 143)  # SIGKILL, unless SIGTERM won the race
    assert group_members(job.pid) == []


def test_worker_environment_tunes_malloc_unless_the_user_did_and_finds_the_engine():
    env = worker_environment({"PATH": "/bin", "PYTHONPATH": "/elsewhere"})
    assert env["GLIBC_TUNABLES"] == MALLOC_TUNABLES and env["PYTHONUNBUFFERED"] == "1"
    assert env["PYTHONPATH"].split(os.pathsep) == [str(engine_root()), "/elsewhere"]
    assert (engine_root() / "sslseg" / "__init__.py").is_file()
    mine = worker_environment({"GLIBC_TUNABLES": "glibc.malloc.arena_max=2"})
    assert mine["GLIBC_TUNABLES"] == "glibc.malloc.arena_max=2"
    assert "GLIBC_TUNABLES" not in worker_environment({}, malloc_tuning=False)
    assert env["OMP_WAIT_POLICY"] == "PASSIVE"  # torch threads sleep, not spin, beside Slicer's GUI
    assert worker_environment({"OMP_WAIT_POLICY": "ACTIVE"})["OMP_WAIT_POLICY"] == "ACTIVE"


def test_event_lines_and_failure_messages():
    assert parse_event('{"event": "done", "steps": 3}') == {"event": "done", "steps": 3}
    assert parse_event("segmented ct.nii.gz in 3.1 s") is None and parse_event('{"no": "event"}') is None
    assert parse_event("{broken") is None
    crash = ["Traceback (most recent call last):", '  File "x.py", line 1', "RuntimeError: boom"]
    message, hint = failure_message(1, [], crash)
    assert message == "the worker exited with code 1: RuntimeError: boom" and "Traceback" in hint
    assert failure_message(-9, [], [])[0] == "the worker was killed by SIGKILL"
    events = [{"event": "error", "message": "out of memory", "hint": "use a smaller --patch-size"}]
    assert failure_message(2, events, crash) == ("out of memory", "use a smaller --patch-size")
