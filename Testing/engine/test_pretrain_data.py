"""The pretraining data path: geometry through preprocessing and patching, the disk cache, bad input, sampling."""

import logging

import numpy as np
import pytest

from sslseg.data import cache as cache_module
from sslseg.data.cache import build_cache
from sslseg.data.dataset import PatchViewsDataset
from sslseg.data.patches import crop_patch
from sslseg.data.preprocess import PreprocessSettings, detect_modality, preprocess_volume
from sslseg.data.sampler import EpochBatches
from sslseg.errors import SSLSegError
from sslseg.io import write_volume
from sslseg.io.scan import find_volumes
from sslseg.ssl import create_method
from sslseg.volume import Volume, VolumeMeta, orientation_of


def lps_volume_with_a_blob():
    """An LPS-stored CT (1.5 x 2.5 x 3 mm) with a body box of 0 HU and a bone blob off-centre: (volume, blob RAS)."""
    hu = np.full((60, 40, 30), -1000, np.int16)
    hu[10:50, 8:32, 5:25] = 0
    hu[40:44, 12:15, 18:21] = 1000  # near the box's high-i, low-j, high-k corner: asymmetric on every axis
    affine = np.diag([-1.5, -2.5, 3.0, 1.0])
    affine[:3, 3] = [40.0, 30.0, -20.0]
    blob_ras = (affine @ np.array([41.5, 13.0, 19.0, 1.0]))[:3]
    return Volume(hu, affine, VolumeMeta(modality="CT")), blob_ras


def test_preprocessing_gives_a_ras_grid_with_every_voxel_in_place():
    volume, blob_ras = lps_volume_with_a_blob()
    array, affine, modality = preprocess_volume(volume, PreprocessSettings(spacing_mm=2.0))
    assert modality == "ct" and orientation_of(affine) == "RAS"
    np.testing.assert_allclose(np.sqrt((affine[:3, :3] ** 2).sum(0)), [2.0, 2.0, 2.0])
    assert array.dtype == np.float32 and array.min() >= 0 and array.max() <= 1
    bright = np.argwhere(array > 0.9).mean(axis=0)
    found_ras = (affine @ np.append(bright, 1.0))[:3]
    np.testing.assert_allclose(found_ras, blob_ras, atol=2.0)
    # foreground crop: the body box (40 x 24 x 20 voxels of 1.5 x 2.5 x 3 mm) and no air around it
    np.testing.assert_allclose(np.array(array.shape) * 2.0, [60.0, 60.0, 60.0], atol=4.0)


def test_a_patch_keeps_its_place_in_the_world():
    array = np.arange(20 * 18 * 16, dtype=np.float32).reshape(20, 18, 16)
    affine = np.array([[0, 0, 2.0, 5], [2.0, 0, 0, -7], [0, 2.0, 0, 11], [0, 0, 0, 1]])
    patch, patch_affine = crop_patch(array, affine, 8, np.random.default_rng(4))
    voxel = np.array([3, 5, 6])
    world = patch_affine @ np.append(voxel, 1)
    source = np.linalg.solve(affine, world)[:3].round().astype(int)
    assert patch[0][tuple(voxel)] == array[tuple(source)]


def test_a_volume_smaller_than_the_patch_is_padded_and_centred():
    array = np.ones((10, 20, 6), np.float16)
    patch, patch_affine = crop_patch(array, np.eye(4), 16, np.random.default_rng(0))
    assert patch.shape == (1, 16, 16, 16)
    assert patch[0, 3:13, :, 5:11].min() == 1 and patch.sum() == 10 * 16 * 6
    world_of_first_voxel = patch_affine @ np.array([3, 0, 5, 1.0])
    assert world_of_first_voxel[0] == 0 and world_of_first_voxel[2] == 0


def test_mr_is_recognised_and_normalised_by_percentiles():
    rng = np.random.default_rng(1)
    signal = rng.gamma(2.0, 150.0, size=(30, 30, 30)).astype(np.float32)
    volume = Volume(signal, np.eye(4))
    assert detect_modality(volume) == "mr"
    array, _, modality = preprocess_volume(volume, PreprocessSettings(spacing_mm=1.0, modality="auto"))
    assert modality == "mr" and array.min() == 0 and array.max() == 1
    assert 0.002 < (array >= 1).mean() < 0.01  # the top 0.5 % saturates


def test_the_cache_is_reused_and_follows_file_changes(unlabelled_dir, tmp_path, monkeypatch):
    sources = find_volumes(unlabelled_dir)[:2]
    settings = PreprocessSettings(spacing_mm=4.0)
    entries, _ = build_cache(sources, tmp_path, settings)
    assert [e.open().dtype for e in entries] == [np.float16, np.float16]
    assert isinstance(entries[0].open(), np.memmap)

    built, original = [], cache_module.build_entry
    monkeypatch.setattr(cache_module, "build_entry", lambda source, *a: built.append(source) or original(source, *a))
    build_cache(sources, tmp_path, settings)
    assert built == []
    build_cache(sources, tmp_path, PreprocessSettings(spacing_mm=4.0, ct_window=(-57.0, 164.0)))
    assert built == sources  # other settings, other entries


def test_unreadable_files_are_skipped_with_a_warning(unlabelled_dir, tmp_path, caplog):
    folder = tmp_path / "data"
    folder.mkdir()
    (folder / "good.nii.gz").write_bytes((unlabelled_dir / "case_000.nii.gz").read_bytes())
    (folder / "broken.nii.gz").write_bytes(b"not a nifti file at all")
    with caplog.at_level(logging.WARNING):
        entries, failures = build_cache(find_volumes(folder), tmp_path / "cache", PreprocessSettings(spacing_mm=4.0))
    assert [e.name for e in entries] == ["good"]
    assert len(failures) == 1 and "broken.nii.gz" in failures[0].source
    assert "skipping" in caplog.text and "broken.nii.gz" in caplog.text


def test_all_unreadable_is_an_error(tmp_path):
    folder = tmp_path / "data"
    folder.mkdir()
    (folder / "broken.nii.gz").write_bytes(b"garbage")
    with pytest.raises(SSLSegError, match="none of the 1 volumes could be read"):
        build_cache(find_volumes(folder), tmp_path / "cache", PreprocessSettings())


def test_ranks_share_each_global_batch_in_order():
    single = list(EpochBatches(10, 4, seed=5))
    ranks = [list(EpochBatches(10, 2, seed=5, rank=r, world_size=2)) for r in range(2)]
    assert len(single) == 3  # 10 samples, global batch 4: the last batch wraps around
    for step, batch in enumerate(single):
        assert ranks[0][step] + ranks[1][step] == batch
    assert {i for batch in single for _, i in batch} == set(range(10))


def test_a_resumed_epoch_continues_with_the_next_batch():
    sampler = EpochBatches(12, 3, seed=0)
    sampler.set_epoch(2)
    whole = list(sampler)
    sampler.set_epoch(2, start_step=3)
    assert list(sampler) == whole[3:]
    sampler.set_epoch(3)
    assert list(sampler) != whole


def test_a_sample_depends_only_on_seed_epoch_and_index(pretrain_cache, unlabelled_dir):
    entries, _ = build_cache(find_volumes(unlabelled_dir), pretrain_cache, PreprocessSettings(spacing_mm=4.0))
    method = create_method("inpaint-contrastive")
    a = PatchViewsDataset(entries, 32, 2, method, seed=1)
    b = PatchViewsDataset(entries, 32, 2, create_method("inpaint-contrastive"), seed=1)
    first, again = a[(0, 3)], b[(0, 3)]
    assert all((first[k] == again[k]).all() for k in ("gt", "view1", "view2"))
    assert not (first["view1"] == first["view2"]).all()
    assert not (a[(1, 3)]["view1"] == first["view1"]).all()  # another epoch, other views
    assert first["gt"].shape == first["view1"].shape == (1, 32, 32, 32)


def test_write_then_preprocess_round_trip_keeps_the_body(tmp_path):
    volume, _ = lps_volume_with_a_blob()
    write_volume(volume, tmp_path / "lps.nrrd")
    entries, _ = build_cache(find_volumes(tmp_path), tmp_path / "cache", PreprocessSettings(spacing_mm=3.0))
    assert orientation_of(entries[0].affine) == "RAS" and entries[0].modality == "ct"


def test_a_dicom_series_is_cached_and_fingerprinted_by_its_file_list(tmp_path):
    from dicom_series import write_series

    from sslseg.data.fingerprint import content_sha256, source_signature

    hu = np.full((12, 20, 24), -1000, np.int16)
    hu[2:10, 4:16, 5:20] = 40
    files = write_series(tmp_path / "series", hu, series_uid="1.2.3.4.5", spacing=(2.0, 2.0, 3.0))
    (source,) = find_volumes(tmp_path / "series")
    signature = source_signature(source)
    assert signature["files"] == len(files) == 12 and signature["series_uid"] == "1.2.3.4.5"
    digest = content_sha256(source)
    entries, _ = build_cache([source], tmp_path / "cache", PreprocessSettings(spacing_mm=3.0))
    assert entries[0].modality == "ct" and entries[0].fingerprint()["series_uid"] == "1.2.3.4.5"
    assert entries[0].sha256 == digest
    assert entries[0].patient == "PATIENT-7"  # the Patient ID, for patient-disjoint validation splits
    files[0].write_bytes(files[0].read_bytes() + b"\0")  # one file grows: another fingerprint
    assert content_sha256(source) != digest and source_signature(source) != signature
