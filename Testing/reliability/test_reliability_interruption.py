"""Catalogue, interruption: a killed run resumes from its last checkpoint (never a corrupt one), a stop signal ends a
run cleanly and says how to resume, and a full disk while checkpointing keeps the previous checkpoint.

=================================  ========================================================================
SIGKILL during pretraining         test_sigkill_during_pretraining_then_resume_continues
                                   (bit-identity after a kill: engine/test_pretrain_resume.py::
                                   test_a_killed_process_resumes_to_the_same_weights, marked slow)
SIGKILL during fine-tuning         test_sigkill_during_finetuning_then_resume_continues_and_sigint_stops_it
SIGTERM / SIGINT, pretraining      engine/test_pretrain_signals.py::test_sigterm_checkpoints_reports_and_resumes_to_the_
                                   same_weights, ::test_ctrl_c_to_the_process_group_stops_cleanly_with_workers
SIGTERM / SIGINT, fine-tuning      engine/test_finetune_signals.py::test_sigterm_checkpoints_reports_and_the_printed_
                                   command_resumes; SIGINT: test_sigkill_during_finetuning_then_resume_continues_and_sigint_...
disk full while checkpointing      test_a_full_disk_while_checkpointing_keeps_the_previous_checkpoint
=================================  ========================================================================
"""

import json
import os
import signal
import subprocess
import sys
import textwrap

import pytest
from reliability_support import ENV, FINETUNE_TINY, PRETRAIN_TINY, assert_refused, run_cli

from sslseg.training.checkpoint import load_checkpoint


def start(args) -> subprocess.Popen:
    """``python -m sslseg ARGS`` in its own process group (so only what this test started is ever signalled)."""
    return subprocess.Popen([sys.executable, "-m", "sslseg", *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=ENV, start_new_session=True)


def wait_for_progress(process, steps: int = 1) -> list[dict]:
    """Events until the ``steps``-th progress event (the process is killed and the test fails if it ends first)."""
    events = []
    while sum(e["event"] == "progress" for e in events) < steps:
        line = process.stdout.readline()
        if not line:
            os.killpg(process.pid, signal.SIGKILL)
            pytest.fail(f"the run ended before step {steps}:\n{process.communicate()[1]}")
        events.append(json.loads(line))
    return events


def kill(process) -> None:
    """SIGKILL, as the OOM killer or a power cut would: no handler runs, nothing is flushed or cleaned up."""
    os.killpg(process.pid, signal.SIGKILL)
    process.communicate(timeout=60)
    assert process.returncode == -signal.SIGKILL


def test_sigkill_during_pretraining_then_resume_continues(unlabelled_dir, pretrain_cache, tmp_path, capsys):
    run = tmp_path / "run"
    args = ["pretrain", unlabelled_dir, "--out", run, *PRETRAIN_TINY, "--cache", pretrain_cache, "--epochs", "2",
            "--checkpoint-every", "1", "--events", "-"]
    process = start(args)
    wait_for_progress(process, steps=3)  # a checkpoint after every step: the kill may land in the middle of one
    kill(process)
    saved = load_checkpoint(run / "checkpoint.pt")["state"]["step"]  # a complete checkpoint, read the safe way
    assert saved >= 2

    code, out, err = run_cli(capsys, *args, "--resume")
    assert code == 0, err
    events = [json.loads(line) for line in out.splitlines()]
    assert next(e for e in events if e["event"] == "start")["resumed_at_step"] == saved
    assert events[-1]["event"] == "done" and events[-1]["steps"] == 8  # 2 epochs x 4 steps, none lost or repeated
    assert load_checkpoint(run / "checkpoint.pt")["state"]["step"] == 8


def small_datalist(labelled_dir, path, cases: int = 3):
    """A datalist of the first ``cases`` labelled phantoms (fewer cases to preprocess: a faster test)."""
    entries = [{"image": str(labelled_dir / "imagesTr" / f"case_{i:03d}.nii.gz"),
                "label": str(labelled_dir / "labelsTr" / f"case_{i:03d}.nii.gz")} for i in range(cases)]
    names = json.loads((labelled_dir / "dataset.json").read_text())["labels"]
    path.write_text(json.dumps({"labels": names, "training": entries}))
    return path


def test_sigkill_during_finetuning_then_resume_continues_and_sigint_stops_it(labelled_dir, tmp_path):
    model = tmp_path / "model"
    args = ["finetune", small_datalist(labelled_dir, tmp_path / "cases.json"), "--encoder", "none", "--out", model,
            *FINETUNE_TINY, "--epochs", "30", "--val-every", "0", "--val-fraction", "0", "--checkpoint-every", "1",
            "--events", "-"]
    process = start(args)
    wait_for_progress(process, steps=2)
    kill(process)
    saved = load_checkpoint(model / "checkpoint.pt")["state"]["step"]
    assert saved >= 1

    resumed = start([*args, "--resume"])
    events = wait_for_progress(resumed)
    assert next(e for e in events if e["event"] == "start")["resumed_at_step"] == saved
    assert [e["step"] for e in events if e["event"] == "progress"] == [saved + 1]  # continues: nothing lost or redone
    os.killpg(resumed.pid, signal.SIGINT)  # Ctrl-C in the terminal reaches the whole process group
    out, err = resumed.communicate(timeout=120)
    assert resumed.returncode == 130, err
    stopped = json.loads(out.splitlines()[-1])
    assert stopped["event"] == "stopped" and stopped["signal"] == "SIGINT" and stopped["step"] > saved
    command = stopped["resume_command"]
    assert any(line.startswith("stopped by SIGINT") and line.endswith(command) for line in err.splitlines())
    assert "Traceback" not in err and command.endswith("--resume")
    assert load_checkpoint(model / "checkpoint.pt")["state"]["step"] == stopped["step"]


#: Runs the CLI with a file-size limit: every write beyond it fails with EFBIG, as on a full disk (SIGXFSZ, which
#: would otherwise kill the process at the first such write, is ignored so the write returns the error).
LIMITED = textwrap.dedent("""
    import resource, signal, sys
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (int(sys.argv[1]), resource.RLIM_INFINITY))
    from sslseg.cli.main import main
    sys.exit(main(sys.argv[2:]))
""")


def test_a_full_disk_while_checkpointing_keeps_the_previous_checkpoint(unlabelled_dir, pretrain_cache, tmp_path,
                                                                       capsys):
    run = tmp_path / "run"
    args = ["pretrain", unlabelled_dir, "--out", run, *PRETRAIN_TINY, "--cache", pretrain_cache, "--events", "-"]
    code, _, err = run_cli(capsys, *args, "--epochs", "1")
    assert code == 0, err
    before = (run / "checkpoint.pt").read_bytes()
    limit = len(before) // 2  # the log files stay below it; the next checkpoint does not fit

    done = subprocess.run([sys.executable, "-c", LIMITED, str(limit), *map(str, args), "--epochs", "2", "--resume"],
                          capture_output=True, text=True, env=ENV, timeout=300)
    result = (done.returncode, done.stdout, done.stderr)
    assert_refused(result, f"could not write the checkpoint {run / 'checkpoint.pt'}", "the disk may be full",
                   "the previous checkpoint is intact", "free some disk space", "--resume")
    assert (run / "checkpoint.pt").read_bytes() == before
    assert load_checkpoint(run / "checkpoint.pt")["state"]["epoch"] == 1
    assert [p.name for p in run.iterdir() if "partial" in p.name] == []  # no half-written file left behind
    assert json.loads((run / "train_stats.json").read_text())["status"] == "failed"
