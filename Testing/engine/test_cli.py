"""The ``sslseg`` command as a user runs it: a real process, its output and its exit code."""

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


def test_info_prints_the_real_dicom_geometry(shared_data):
    result = sslseg("info", shared_data / "ct_upper_abdomen_dicom" / "dicom", check=True)
    assert "512 x 512 x 20 voxels, 0.9766 x 0.9766 x 2 mm, LPS" in result.stdout
    assert "modality CT" in result.stdout


def test_info_on_a_labelled_folder_lists_cases_and_label_names(shared_data):
    result = sslseg("info", shared_data, check=True)
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
