"""Patient-aware positives (MedAug carried to 3-D, issue 17): a sample's second view is cut from another scan of the
same patient and frame of reference, at the same RAS place; positives never cross patients or frames; patient IDs
and frames come from DICOM tags or a folder's patients.csv (NIfTI), for pretraining and fine-tuning alike."""

from pathlib import Path

import numpy as np
import pytest

from dicom_series import write_series
from sslseg.data.cache import CacheEntry, build_cache
from sslseg.data.dataset import PatchViewsDataset
from sslseg.data.partners import partner_groups, same_place
from sslseg.data.preprocess import PreprocessSettings
from sslseg.errors import SSLSegError
from sslseg.io.patients_csv import with_patients
from sslseg.io.scan import find_volumes
from sslseg.ssl.base import create_method

SPACING = 2.0
PATCH = 32  # SimCLR's region: 48 voxels


def world_coded_entry(folder: Path, name: str, shape, origin, axis: int, patient="P1", frame="F1") -> CacheEntry:
    """A cached volume on a RAS grid of 2 mm whose every voxel holds its own RAS coordinate along ``axis`` (mm)."""
    affine = np.diag([SPACING, SPACING, SPACING, 1.0])
    affine[:3, 3] = origin
    index = np.indices(shape, dtype=np.float64)
    array = (affine[axis, axis] * index[axis] + affine[axis, 3]).astype(np.float32)
    path = folder / f"{name}_{axis}.npy"
    np.save(path, array)
    return CacheEntry(name, path, affine, tuple(shape), "ct", str(path), None, name * 8, patient, "S1", frame)


@pytest.mark.parametrize("axis", [0, 1, 2])
def test_the_partner_region_covers_the_same_ras_place(tmp_path, axis):
    """Scan B's grid is offset from A's by a non-integer number of voxels (6.8, -4.2, 10.0 mm) and has another
    extent; B's region for any A region holds the same RAS coordinates, to half a voxel (the cube is snapped to B's
    voxels). Cutting B at A's voxel indices instead would be 6.8, 4.2 or 10 mm off and fail."""
    a = world_coded_entry(tmp_path, "a", (60, 56, 52), (-40.0, 12.0, 300.0), axis)
    b = world_coded_entry(tmp_path, "b", (64, 50, 58), (-33.2, 7.8, 310.0), axis)
    dataset = PatchViewsDataset([a, b], PATCH, 4, create_method("simclr", patient_positives=1.0), seed=0)
    checked = 0
    for index in range(8):
        region, region_affine, _ = dataset.patch(0, index)
        found = dataset.partner(0, index, region_affine)
        if found is None:
            continue
        volume, partner, partner_affine = found
        assert volume == 1 - dataset.volume_index(index)
        assert np.abs(partner_affine[:3, 3] - region_affine[:3, 3]).max() <= SPACING / 2 + 1e-6
        inside = (partner != 0) & (region != 0)  # zero: padding outside a volume
        assert inside.mean() > 0.4
        assert np.abs(partner[inside] - region[inside]).max() <= SPACING / 2 + 1e-4
        checked += 1
    assert checked >= 6


def test_grids_with_other_axes_or_far_apart_give_no_partner(tmp_path):
    a = world_coded_entry(tmp_path, "a", (60, 56, 52), (0.0, 0.0, 0.0), 0)
    array = a.open()
    region_affine = a.affine.copy()
    assert same_place(array, a.affine, region_affine, 48) is not None
    flipped = a.affine @ np.diag([-1.0, 1.0, 1.0, 1.0])
    assert same_place(array, flipped, region_affine, 48) is None  # another orientation: no voxel-wise match
    far = region_affine.copy()
    far[:3, 3] += (200.0, 0.0, 0.0)
    assert same_place(array, a.affine, far, 48) is None  # the place lies outside the partner scan


def test_partners_share_patient_and_frame_and_nothing_else(tmp_path):
    cases = [("a1", "P1", "F1"), ("a2", "P1", "F1"), ("a3", "P1", "F2"), ("b1", "P2", "F1"), ("b2", "P2", "F1"),
             ("c", "P3", ""), ("d", "", "F1")]
    entries = [world_coded_entry(tmp_path, name, (52, 52, 52), (0.0, 0.0, 0.0), 0, patient, frame)
               for name, patient, frame in cases]
    assert partner_groups(entries) == [(1,), (0,), (), (4,), (3,), (), ()]
    share = 0.5
    dataset = PatchViewsDataset(entries, PATCH, 40, create_method("simclr", patient_positives=share), seed=1)
    paired = {i: 0 for i in range(len(entries))}
    for index in range(len(dataset)):
        _, region_affine, _ = dataset.patch(0, index)
        found = dataset.partner(0, index, region_affine)
        if found is not None:
            own, other = entries[dataset.volume_index(index)], entries[found[0]]
            assert (other.patient, other.frame) == (own.patient, own.frame) and other is not own
            paired[dataset.volume_index(index)] += 1
    assert [paired[i] for i in (2, 5, 6)] == [0, 0, 0]
    for volume in (0, 1, 3, 4):  # about half the samples of a volume with a partner are paired
        assert 10 <= paired[volume] <= 30, paired


@pytest.mark.parametrize("name", ["simclr", "moco-v2", "moco-v3", "byol", "pgl"])
def test_the_second_view_is_cut_from_the_partner_with_the_same_draws(name):
    """``view1`` is the anchor's view exactly as without a partner; ``view2`` is what the same random draws cut from
    the partner region (so the partner changes the content of view 2 and nothing else)."""
    method = create_method(name, patient_positives=1.0)
    size = method.region_size(PATCH)
    rng = np.random.default_rng(0)
    region = rng.random((1, size, size, size), dtype=np.float32)
    partner = rng.random((1, size, size, size), dtype=np.float32)
    with_partner = method.make_views(region, np.random.RandomState(7), partner=partner)
    alone = method.make_views(region, np.random.RandomState(7))
    partner_only = method.make_views(partner, np.random.RandomState(7))
    np.testing.assert_array_equal(with_partner["view1"], alone["view1"])
    np.testing.assert_array_equal(with_partner["view2"], partner_only["view2"])
    assert not np.array_equal(with_partner["view2"], alone["view2"])
    assert set(with_partner) == set(alone)


def test_patient_positives_is_a_share():
    with pytest.raises(SSLSegError, match="patient_positives"):
        create_method("simclr", patient_positives=1.5)
    assert create_method("simclr").patient_positive_share() == 0.0
    assert create_method("rotation").patient_positive_share() == 0.0  # pretext tasks have one view


def test_dicom_series_give_patient_study_and_frame(tmp_path):
    ramp = np.arange(4 * 20 * 24, dtype=np.int16).reshape(4, 20, 24) % 300
    write_series(tmp_path / "data" / "arterial", ramp, "1.2.3.1", patient="P9", frame_uid="1.2.3.99")
    write_series(tmp_path / "data" / "venous", ramp + 40, "1.2.3.2", patient="P9", frame_uid="1.2.3.99")
    entries, failures = build_cache(find_volumes(tmp_path / "data"), tmp_path / "cache",
                                    PreprocessSettings(spacing_mm=2.0))
    assert not failures
    assert [(e.patient, e.study, e.frame) for e in entries] == [("P9", "1.2.826.0.1.3680043.2.1125.1", "1.2.3.99")] * 2
    assert partner_groups(entries) == [(1,), (0,)]


def nifti_folder(folder: Path, names: list[str]) -> Path:
    from sslseg.volume import Volume
    from sslseg.io.volume_io import write_volume

    folder.mkdir(parents=True)
    for i, name in enumerate(names):
        array = (np.indices((20, 18, 16)).sum(axis=0) * (i + 1)).astype(np.int16)
        write_volume(Volume(array, np.diag([2.0, 2.0, 2.0, 1.0])), folder / name)
    return folder


def test_patients_csv_names_the_patients_of_nifti_files(tmp_path):
    data = nifti_folder(tmp_path / "data", ["p1_art.nii.gz", "p1_ven.nii.gz", "p2.nii.gz"])
    (data / "patients.csv").write_text("file,patient,study,frame\np1_art.nii.gz,P1,S1,F1\np1_ven.nii.gz,P1,S1,F1\n"
                                       "p2.nii.gz,P2,,\n", encoding="utf-8")
    entries, _ = build_cache(find_volumes(data), tmp_path / "cache", PreprocessSettings(spacing_mm=2.0))
    assert [(e.patient, e.frame) for e in entries] == [("", "")] * 3  # NIfTI carries none
    named = with_patients(entries, data)
    assert [(e.name, e.patient, e.study, e.frame) for e in named] == [
        ("p1_art", "P1", "S1", "F1"), ("p1_ven", "P1", "S1", "F1"), ("p2", "P2", "", "")]
    assert partner_groups(named) == [(1,), (0,), ()]


@pytest.mark.parametrize("content, message", [
    ("name,patient\np2.nii.gz,P2\n", "no column file"),
    ("file,patient\np2.nii.gz,\n", "line 2: the file and patient may not be empty"),
    ("file,patient\np2.nii.gz,P2\np2.nii.gz,P3\n", "line 3 lists p2.nii.gz a second time"),
    ("file,patient\np3.nii.gz,P3\n", "p3.nii.gz, which does not exist"),
    ("file,patient\n", "lists no volumes"),
])
def test_a_broken_patients_csv_is_refused_with_its_line(tmp_path, content, message):
    data = nifti_folder(tmp_path / "data", ["p2.nii.gz"])
    (data / "patients.csv").write_text(content, encoding="utf-8")
    entries, _ = build_cache(find_volumes(data), tmp_path / "cache", PreprocessSettings(spacing_mm=2.0))
    with pytest.raises(SSLSegError, match=message) as error:
        with_patients(entries, data)
    assert "patients.csv" in str(error.value)


def test_fine_tuning_cases_take_patients_from_a_datalist_or_the_folders_csv(tmp_path):
    import json

    from sslseg.io.pairing import find_labelled_cases

    data = nifti_folder(tmp_path / "data", ["a.nii.gz", "a_label.nii.gz", "b.nii.gz", "b_label.nii.gz"])
    datalist = data / "datalist.json"
    datalist.write_text(json.dumps({"training": [{"image": "a.nii.gz", "label": "a_label.nii.gz", "patient": "P1"},
                                                 {"image": "b.nii.gz", "label": "b_label.nii.gz"}]}))
    cases, _ = find_labelled_cases(datalist)
    assert [(c.name, c.patient) for c in cases] == [("a", "P1"), ("b", "")]
    (data / "patients.csv").write_text("file,patient\nb.nii.gz,P2\n", encoding="utf-8")
    cases, _ = find_labelled_cases(data)
    assert sorted((c.name, c.patient) for c in cases) == [("a", ""), ("b", "P2")]


def two_phase_cohort(folder: Path, patients: int = 2) -> Path:
    """Each synthetic patient scanned twice in one frame of reference: a "venous" phase on a grid starting 3 voxels
    further along i (12 mm), with enhanced soft tissue; patients.csv says which files belong together."""
    from sslseg.io.volume_io import read_volume, write_volume
    from sslseg.synth.cohort import write_unlabelled

    rows = ["file,patient,study,frame"]
    for path in write_unlabelled(folder, patients, size=(44, 40, 32), spacing=(4.0, 4.0, 4.0), seed=3):
        arterial = read_volume(path)
        affine = arterial.affine.copy()
        affine[:3, 3] = arterial.affine[:3, :3] @ (3, 0, 0) + arterial.affine[:3, 3]
        array = arterial.array[3:].astype(np.float32)
        venous = np.where((array > 0) & (array < 150), array * 1.3, array).astype(np.int16)
        write_volume(type(arterial)(venous, affine), folder / path.name.replace(".nii.gz", "_venous.nii.gz"))
        name = path.name.replace(".nii.gz", "")
        rows += [f"{name}.nii.gz,{name},S,F-{name}", f"{name}_venous.nii.gz,{name},S,F-{name}"]
    (folder / "patients.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    return folder


def test_pretraining_pairs_phases_of_a_patient_and_keeps_patients_on_one_side(tmp_path):
    import json

    from pretrain_support import run_tiny, step_losses

    data = two_phase_cohort(tmp_path / "data", patients=3)
    events = tmp_path / "events.jsonl"
    run_tiny(data, tmp_path / "run", method="simclr", method_options={"patient_positives": 1.0}, max_steps=4,
             val_fraction=0.34, events=str(events))
    records = [json.loads(line) for line in events.read_text().splitlines()]
    start = next(r for r in records if r["event"] == "start")
    assert (start["train_volumes"], start["val_volumes"], start["patient_partners"]) == (4, 2, 4)
    assert not [r for r in records if r["event"] == "warning"]
    assert len(step_losses(tmp_path / "run")) == 4

    (data / "patients.csv").unlink()  # no patients known: a warning says the option does nothing
    run_tiny(data, tmp_path / "run2", method="simclr", method_options={"patient_positives": 1.0}, max_steps=1,
             val_fraction=0.0, events=str(events))
    records = [json.loads(line) for line in events.read_text().splitlines()]
    warning = next(r for r in records if r["event"] == "warning")
    assert "no training volume has another scan of its patient" in warning["message"]
    assert "patients.csv" in warning["hint"]
