"""The ``sslseg`` command as a user runs it: a real process, its output and its exit code."""

import os
import subprocess
import sys

import nibabel as nib
import numpy as np
import pytest

from sslseg.cli.main import main


def sslseg(*args, check=False):
    return subprocess.run([sys.executable, "-m", "sslseg", *map(str, args)], capture_output=True, text=True, check=check)


def test_help_lists_the_commands():
    result = sslseg("--help", check=True)
    for command in ("synth", "info", "demo"):
        assert command in result.stdout


def test_info_prints_the_real_dicom_geometry(real_data):
    result = sslseg("info", real_data / "ct_upper_abdomen_dicom" / "dicom", check=True)
    assert "512 x 512 x 20 voxels, 0.9766 x 0.9766 x 2 mm, LPS" in result.stdout
    assert "modality CT" in result.stdout


def test_info_on_a_labelled_folder_lists_cases_and_label_names(real_data):
    result = sslseg("info", real_data, check=True)
    assert "3 labelled case(s)" in result.stdout
    assert "1 aorta" in result.stdout and "5 liver" in result.stdout


def test_errors_are_two_lines_without_traceback(tmp_path):
    result = sslseg("info", tmp_path / "absent.nii.gz")
    assert result.returncode == 2
    assert result.stderr.splitlines() == [f"error: {tmp_path / 'absent.nii.gz'} does not exist", "hint: check the path"]


def test_debug_shows_the_traceback(tmp_path):
    result = sslseg("--debug", "info", tmp_path / "absent.nii.gz")
    assert result.returncode != 0
    assert "Traceback" in result.stderr


def test_a_two_dimensional_file_is_named_in_the_message(tmp_path, capsys):
    nib.save(nib.Nifti1Image(np.zeros((9, 8), np.int16), np.eye(4)), tmp_path / "xray.nii.gz")
    assert main(["info", str(tmp_path / "xray.nii.gz")]) == 2
    assert "xray.nii.gz is a 2-D image" in capsys.readouterr().err


@pytest.mark.parametrize("entry", [["-m", "sslseg"], ["-c", "from sslseg.cli.main import main; main()"]])
def test_module_and_entry_point_both_run(entry):
    result = subprocess.run([sys.executable, *entry, "--version"], capture_output=True, text=True)
    assert result.returncode == 0 and result.stdout.startswith("sslseg ")


@pytest.mark.parametrize("given, expected", [(None, "PASSIVE"), ("ACTIVE", "ACTIVE")])
def test_the_command_line_makes_torch_threads_sleep_unless_the_user_chose(given, expected):
    """OMP_WAIT_POLICY is set when the command starts, before anything loads torch (spinning threads are many times
    slower on shared cores); a value the user set is kept. Checked in a fresh process."""
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"} | ({"OMP_WAIT_POLICY": given} if given else {})
    code = ("import os, sys; from sslseg.cli.main import main; torch_before = 'torch' in sys.modules; "
            "main(['info', 'no-such-file.nii.gz']); print(torch_before, os.environ['OMP_WAIT_POLICY'])")
    run = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert run.stdout.split() == ["False", expected], run.stderr


def test_info_on_a_folder_names_each_unreadable_file_with_a_hint_and_exits_1(tmp_path, capsys):
    """A script can tell: exit 1 when a volume of the folder is unusable; each one named with what to do."""
    from sslseg.synth.cohort import write_unlabelled

    write_unlabelled(tmp_path, 1, size=24, spacing=10.0)
    (tmp_path / "broken.nii.gz").write_bytes(b"\x1f\x8b\x08\x00 not really gzip")
    assert main(["info", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert "case_000.nii.gz" in out and "grid: 24 x 24 x 24" in out
    assert "broken.nii.gz\n  unreadable:" in out and "\n  hint: " in out
    assert "1 of 2 volume(s) unusable" in out


@pytest.mark.parametrize("buffering", ["buffered", "unbuffered"])
def test_a_reader_that_stops_early_ends_the_command_quietly(buffering, tmp_path):
    """Issue 14: `sslseg info ... | head` ended with "error: [Errno 32] Broken pipe" and a hint about disk space.
    A closed pipe ends the command as it ends any Unix tool: nothing on stderr, status 141 (128 + SIGPIPE).
    Buffered, the pipe breaks when the output is flushed at the end; unbuffered, in the middle of the command."""
    nib.save(nib.Nifti1Image(np.arange(24, dtype=np.int16).reshape(2, 3, 4), np.eye(4)), tmp_path / "ct.nii.gz")
    env = {**os.environ, "PYTHONUNBUFFERED": "1" if buffering == "unbuffered" else ""}
    read, write = os.pipe()
    os.close(read)  # the reader is gone before the first line, as `head` is once it has read its lines
    try:
        result = subprocess.run([sys.executable, "-m", "sslseg", "info", str(tmp_path / "ct.nii.gz")], stdout=write,
                                stderr=subprocess.PIPE, text=True, env=env)
    finally:
        os.close(write)
    assert (result.returncode, result.stderr) == (141, "")


def test_an_error_with_stderr_closed_too_keeps_its_status(tmp_path):
    """Issue 15: a worker whose parent is gone (Slicer quit) reported its error to a closed stderr, which raised
    again and ended with a traceback's status instead of the error's own (2)."""
    read, write = os.pipe()
    os.close(read)
    try:
        result = subprocess.run([sys.executable, "-m", "sslseg", "info", str(tmp_path / "missing.nii.gz")],
                                stdout=subprocess.DEVNULL, stderr=write)
    finally:
        os.close(write)
    assert result.returncode == 2
