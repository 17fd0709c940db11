"""Catalogue, bad volumes: every broken input gives a clear message naming the file and what to do (through the real
CLI, exit status 2, no traceback); in a folder run the bad file is skipped with a warning naming it and the run goes
on, unless nothing readable is left.

Cases and their tests (the reader-level tests in Testing/engine check the same messages through the API):

=================================  ========================================================================
truncated gzip                     test_a_bad_volume_is_refused_naming_it[truncated gzip]
                                   (also engine/test_volume_io.py::test_truncated_gzip_gives_a_clear_message)
garbage NIfTI header               ...[garbage NIfTI header], ...[truncated voxel data]
NaN / Inf voxels                   ...[NaN voxels], ...[Inf voxels]
all-constant volume                ...[constant volume]
2-D image                          ...[2-D image] (engine/test_volume_io.py::test_two_dimensional_image_is_refused...)
4-D series                         ...[4-D series] (engine/test_volume_io.py::test_four_dimensional_series_is_refused)
zero-size dimension                ...[zero-size dimension]
absurd spacing (0 or negative)     ...[spacing 0], ...[negative spacing], ...[spacing 0 in NRRD]
non-orthogonal direction matrix    ...[non-orthogonal direction] (engine/test_volume_io.py::test_sheared_grid_is_refused)
DICOM folder, missing slice        ...[DICOM missing slice] (engine/test_dicom.py::test_missing_slice_is_an_error)
DICOM folder, interleaved series   ...[DICOM two interleaved series]
                                   (engine/test_dicom.py::test_two_series_in_one_folder_are_told_apart)
file without read permission       test_an_unreadable_file_is_refused_naming_it,
                                   test_an_unreadable_file_is_skipped_in_a_folder_run
path with spaces and non-ASCII     test_paths_with_spaces_and_non_ascii_characters_work
folder run: skip and go on         test_a_pretraining_folder_run_skips_every_bad_file_and_goes_on
                                   (engine/test_pretrain_data.py::test_unreadable_files_are_skipped_with_a_warning)
folder run: nothing readable left  test_a_folder_run_with_nothing_readable_stops_naming_the_first_problem
                                   (engine/test_pretrain_data.py::test_all_unreadable_is_an_error)
=================================  ========================================================================
"""

import json
import logging
import shutil

import numpy as np
import pytest
from reliability_support import (BAD_VOLUMES, IMAGE, PRETRAIN_TINY, UID_A, UID_B, assert_refused, nifti, open_folder,
                                 run_cli, without_root)

from sslseg.data.cache import build_cache
from sslseg.data.preprocess import PreprocessSettings
from sslseg.errors import SSLSegError
from sslseg.io import read_volume
from sslseg.io.scan import find_volumes


@pytest.mark.parametrize("case", sorted(BAD_VOLUMES))
def test_a_bad_volume_is_refused_naming_it(tmp_path, capsys, tiny_model, case):
    """`sslseg segment` (one volume, as a radiologist runs it) refuses it; nothing is written."""
    write, says, hint = BAD_VOLUMES[case]
    path = write(tmp_path)
    out = tmp_path / "labels.seg.nrrd"
    assert_refused(run_cli(capsys, "segment", path, "--model", tiny_model, "--out", out), str(path), says, hint)
    assert not out.exists()


def test_a_pretraining_folder_run_skips_every_bad_file_and_goes_on(unlabelled_dir, pretrain_cache, tmp_path, capsys,
                                                                     caplog):
    data = tmp_path / "data"
    data.mkdir()
    shutil.copy(unlabelled_dir / "case_000.nii.gz", data / "good_a.nii.gz")
    shutil.copy(unlabelled_dir / "case_001.nii.gz", data / "good_b.nii.gz")
    bad = {case: write(data) for case, (write, _, _) in BAD_VOLUMES.items()}
    with caplog.at_level(logging.WARNING):
        code, out, err = run_cli(capsys, "pretrain", data, "--out", tmp_path / "run", *PRETRAIN_TINY,
                                 "--max-steps", "1", "--events", "-")
    assert code == 0, err
    events = [json.loads(line) for line in out.splitlines()]
    assert events[-1]["event"] == "done"
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    # interleaved DICOM series in one folder are two volumes, told apart by their UID: both are used
    interleaved = bad.pop("DICOM two interleaved series")
    for case, path in bad.items():
        assert any(w.startswith(f"skipping {path}") for w in warnings), (case, warnings)
    start = next(e for e in events if e["event"] == "start")
    assert start["skipped"] == len(bad)
    card = json.loads((tmp_path / "run" / "encoder.json").read_text())
    data_used = card["provenance"]["data_fingerprint"]
    used = {item.get("series_uid", item["name"]) for item in data_used["train"] + data_used["val"]}
    assert used == {"good_a.nii.gz", "good_b.nii.gz", UID_A, UID_B}
    assert not any(str(interleaved) in w for w in warnings)


def test_a_folder_run_with_nothing_readable_stops_naming_the_first_problem(tmp_path, capsys):
    data = tmp_path / "data"
    data.mkdir()
    BAD_VOLUMES["NaN voxels"][0](data)
    BAD_VOLUMES["truncated gzip"][0](data)
    _, hint = assert_refused(run_cli(capsys, "pretrain", data, "--out", tmp_path / "run", *PRETRAIN_TINY),
                             "none of the 2 volumes could be read")
    assert "first problem:" in hint and str(data / "nan.nii.gz") in hint and "NaN or infinite" in hint


def test_an_unreadable_file_is_refused_naming_it(capsys):
    with open_folder() as folder:
        path = nifti(folder / "locked.nii.gz")
        path.chmod(0)
        with without_root():
            result = run_cli(capsys, "info", path)
        assert_refused(result, str(path), "not readable (permission denied)", "fix the file's permissions")


def test_an_unreadable_file_is_skipped_in_a_folder_run(caplog):
    with open_folder() as folder:
        (folder / "data").mkdir()
        nifti(folder / "data" / "good.nii.gz")
        locked = nifti(folder / "data" / "locked.nii.gz")
        locked.chmod(0)
        (folder / "cache").mkdir()
        (folder / "cache").chmod(0o777)  # written by the ordinary user below
        with without_root(), caplog.at_level(logging.WARNING):
            entries, failures = build_cache(find_volumes(folder / "data"), folder / "cache",
                                            PreprocessSettings(spacing_mm=4.0))
    assert [e.name for e in entries] == ["good"]
    assert [f.source for f in failures] == [str(locked)] and "permission denied" in failures[0].message
    assert f"skipping {locked}: " in caplog.text


def test_paths_with_spaces_and_non_ascii_characters_work(tmp_path, capsys):
    folder = tmp_path / "Données patient 7" / "séries ÄÖ 東京"
    folder.mkdir(parents=True)
    path = nifti(folder / "scan é 1.nii.gz")
    code, out, err = run_cli(capsys, "info", path)
    assert code == 0, err
    assert str(path) in out and "12 x 10 x 8" in out
    np.testing.assert_array_equal(read_volume(path).array, IMAGE)
    assert [s.path for s in find_volumes(tmp_path)] == [path]
    # and a problem with such a path names it intact
    broken = folder / "kaputt ü.nii.gz"
    broken.write_bytes(b"not an image")
    assert_refused(run_cli(capsys, "info", broken), str(broken))
    with pytest.raises(SSLSegError, match="kaputt ü"):
        read_volume(broken)
