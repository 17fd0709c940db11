"""`sslseg segment` plumbing with an untrained model: output on the input's exact grid, names, refusals.

Whether the organs land on the right anatomy is tested with a fine-tuned model in test_segment_geometry.py.
"""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from geometry_cases import make_affine, rotation

from sslseg.cli.main import main
from sslseg.io import read_volume, write_volume
from sslseg.io.label_map_io import read_label_map
from sslseg.labels import LabelTable
from sslseg.models.presets import get_preset
from sslseg.models.unetr import architecture_card, build_unetr
from sslseg.package.model_package import labels_to_card, save_model_package
from sslseg.segmentation.preprocess import SegmentationPreprocessing
from sslseg.segmentation.segment import tune_process_malloc
from sslseg.synth.phantom import make_phantom


@pytest.fixture(autouse=True)
def untuned_malloc(monkeypatch):
    """In-process runs leave pytest's allocator alone; the tuned path runs in a subprocess below."""
    monkeypatch.setenv("SSLSEG_MALLOC_TUNING", "0")


@pytest.fixture(scope="module")
def random_model(tmp_path_factory):
    torch.manual_seed(0)
    preset = get_preset("tiny").with_img_size(32)
    table = LabelTable.from_names({1: "liver", 2: "spleen"})
    card = {"architecture": architecture_card(preset, 3), "labels": labels_to_card(table),
            "preprocessing": SegmentationPreprocessing(spacing_mm=(6.0, 6.0, 6.0)).to_card()}
    return save_model_package(tmp_path_factory.mktemp("m") / "model", build_unetr(preset, 3).state_dict(), card)


@pytest.fixture(scope="module")
def oblique_ct(tmp_path_factory):
    affine = make_affine(np.diag([-1.0, -1.0, 1.0]) @ rotation("z", 15), (5.0, 4.0, 7.0), (120.0, 110.0, -60.0))
    image, _ = make_phantom(3, size=(40, 48, 20), affine=affine)
    return write_volume(image, tmp_path_factory.mktemp("ct") / "ct.nrrd")


@pytest.mark.parametrize("name", ["seg.seg.nrrd", "seg.nii.gz"])
def test_output_lies_on_the_input_grid_with_names(tmp_path, random_model, oblique_ct, name):
    assert main(["segment", str(oblique_ct), "--model", str(random_model), "--out", str(tmp_path / name)]) == 0
    image = read_volume(oblique_ct)
    labels, table = read_label_map(tmp_path / name)
    assert labels.shape == image.shape
    np.testing.assert_allclose(labels.affine, image.affine, atol=1e-6)
    assert set(np.unique(labels.array)) <= {0, 1, 2}
    assert table.names == {"liver": 1, "spleen": 2}


def test_existing_output_is_kept(tmp_path, random_model, oblique_ct, capsys):
    out = tmp_path / "seg.nii.gz"
    out.write_bytes(b"precious")
    assert main(["segment", str(oblique_ct), "--model", str(random_model), "--out", str(out)]) == 2
    assert "already exists" in capsys.readouterr().err
    assert out.read_bytes() == b"precious"


def test_missing_model_says_what_to_do(tmp_path, oblique_ct, capsys):
    assert main(["segment", str(oblique_ct), "--model", str(tmp_path), "--out", str(tmp_path / "s.nii.gz")]) == 2
    assert "is not a model folder" in capsys.readouterr().err


def test_cuda_request_without_cuda(tmp_path, random_model, oblique_ct, capsys):
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    args = ["segment", str(oblique_ct), "--model", str(random_model), "--out", str(tmp_path / "s.nii.gz"), "--device", "cuda"]
    assert main(args) == 2
    assert "no CUDA" in capsys.readouterr().err


@pytest.mark.parametrize("env", [{"SSLSEG_MALLOC_TUNING": "0"}, {"GLIBC_TUNABLES": "glibc.malloc.mmap_max=0"}])
def test_malloc_tuning_steps_aside(monkeypatch, env):
    """Opted out, or the user already tunes glibc malloc: nothing is changed."""
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    assert tune_process_malloc() is False


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc malloc tuning is Linux-only")
def test_tuned_process_gives_the_same_labels(tmp_path, random_model, oblique_ct):
    """`sslseg segment` in its own process with glibc malloc tuned gives exactly the in-process, untuned result."""
    untuned = tmp_path / "untuned.nii.gz"
    assert main(["segment", str(oblique_ct), "--model", str(random_model), "--out", str(untuned)]) == 0
    tuned = tmp_path / "tuned.nii.gz"
    env = {k: v for k, v in os.environ.items() if k not in ("SSLSEG_MALLOC_TUNING", "GLIBC_TUNABLES")}
    code = ("import sys; from sslseg.segmentation.segment import tune_process_malloc; "
            "assert tune_process_malloc(), 'not applied'; from sslseg.cli.main import main; sys.exit(main(sys.argv[1:]))")
    command = [sys.executable, "-c", code, "segment", str(oblique_ct), "--model", str(random_model), "--out", str(tuned)]
    done = subprocess.run(command, env=env, capture_output=True, text=True, cwd=Path(__file__).resolve().parents[2])
    assert done.returncode == 0, done.stderr
    np.testing.assert_array_equal(read_volume(tuned).array, read_volume(untuned).array)
