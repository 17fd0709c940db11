"""``sslseg info`` on a folder: each warning said once."""

import subprocess
import sys


def test_a_folder_warns_once_about_each_file_it_skips(tmp_path):
    """Issue 14: every "skipping FILE: not a supported image file" warning was printed twice."""
    from sslseg.synth.cohort import write_unlabelled

    write_unlabelled(tmp_path, 1, size=24, spacing=10.0)
    (tmp_path / "weights.bin").write_bytes(b"\0" * 16)
    result = subprocess.run([sys.executable, "-m", "sslseg", "info", str(tmp_path)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stderr.count("skipping") == 1 and f"skipping {tmp_path / 'weights.bin'}" in result.stderr
