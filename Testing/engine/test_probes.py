"""Frozen-encoder probes (issue 18): features where the answer is known give the known answer, random features give
chance, and ``sslseg probe`` reports an encoder beside its random-init baseline."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from sslseg.io.volume_io import write_volume
from sslseg.probes.knn_probe import knn_accuracy
from sslseg.probes.run import ProbeConfig, prepare, run_probes
from sslseg.volume import Volume

ORGANS = {1: "liver", 2: "spleen", 3: "aorta", 4: "stomach"}
#: Each organ's CT value: HU = BASE + STEP * label, inside the probes' -175..250 window, so the image codes the label.
BASE, STEP = -150.0, 60.0
WINDOW = (-175.0, 250.0)
SPACING = 6.0


def _label_coded_case(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(image HU, labels) (40, 36, 32): four boxes of organs at places drawn from ``seed``, no noise."""
    rng = np.random.default_rng(seed)
    labels = np.zeros((40, 36, 32), dtype=np.uint8)
    for value in ORGANS:
        corner = [int(rng.integers(0, n - 12)) for n in labels.shape]
        edges = [int(rng.integers(8, 12)) for _ in range(3)]
        labels[tuple(slice(c, c + e) for c, e in zip(corner, edges))] = value
    return (BASE + STEP * labels).astype(np.int16), labels


@pytest.fixture(scope="module")
def label_coded_dir(tmp_path_factory) -> Path:
    """Three cases whose image is its label map (HU per organ), NAME + NAME_label files and labels.json."""
    folder = tmp_path_factory.mktemp("label_coded")
    affine = np.diag([SPACING, SPACING, SPACING, 1.0])
    for case in range(3):
        image, labels = _label_coded_case(case)
        write_volume(Volume(image, affine), folder / f"case{case}.nii.gz")
        write_volume(Volume(labels, affine), folder / f"case{case}_label.nii.gz")
    (folder / "labels.json").write_text(json.dumps({"labels": {str(k): v for k, v in ORGANS.items()}}))
    return folder


class LabelAsFeature(torch.nn.Module):
    """(B, 1, S, S, S) -> (B, organs + 1, S, S, S): the one-hot label each voxel's value codes (features = the
    answer, at voxel resolution)."""

    def forward(self, x):
        hu = x * (WINDOW[1] - WINDOW[0]) + WINDOW[0]
        label = torch.clamp(torch.round((hu - BASE) / STEP), 0, len(ORGANS)).long()[:, 0]
        return torch.nn.functional.one_hot(label, len(ORGANS) + 1).permute(0, 4, 1, 2, 3).float()


class CentreLabel(LabelAsFeature):
    """(B, 1, S, S, S) -> (B, organs + 1): the one-hot label of the centre voxel (a patch's organ, exactly)."""

    def forward(self, x):
        c = x.shape[-1] // 2
        return super().forward(x)[:, :, c, c, c]


class RandomFeatures(torch.nn.Module):
    """Features that know nothing: fresh noise (B, 8, S/16, S/16, S/16) on every call."""

    def forward(self, x):
        return torch.randn(x.shape[0], 8, *(n // 16 for n in x.shape[2:]), generator=None)


@pytest.fixture(scope="module")
def probe_data(label_coded_dir, tmp_path_factory):
    config = ProbeConfig(encoder="none", data_dir=str(label_coded_dir), spacing=(SPACING,) * 3, ct_window=WINDOW,
                         modality="ct", val_fraction=0.34, crops_per_case=8, steps=200, lr=0.1)
    return config, prepare(config, 32, tmp_path_factory.mktemp("probe_cache"))


def test_features_that_are_the_labels_give_dice_one(probe_data):
    config, data = probe_data
    assert data.scored_on == "held-out cases" and len(data.scored) == 1
    result = run_probes(LabelAsFeature(), data, config)
    assert result["linear_dice"] == pytest.approx(1.0, abs=1e-6), result["linear_dice_per_organ"]
    assert set(result["linear_dice_per_organ"]) == set(ORGANS.values())


def test_a_patch_feature_that_is_its_organ_gives_knn_accuracy_one(probe_data):
    _, data = probe_data
    assert {p.organ for p in data.patches} == set(ORGANS) and len({p.case for p in data.patches}) == 3
    assert knn_accuracy(CentreLabel(), data.patches) == 1.0


def test_random_features_score_near_chance(probe_data):
    """Measured: kNN 0.19..0.31 over seeds (chance 0.25 with 4 organs), linear Dice below 0.3."""
    config, data = probe_data
    torch.manual_seed(0)
    result = run_probes(RandomFeatures(), data, config)
    assert result["knn_accuracy"] < 0.5
    assert result["linear_dice"] < 0.5


def test_probe_command_reports_the_encoder_beside_random_init(tiny_encoder_run, labelled_dir, tmp_path, capsys):
    from sslseg.cli.main import main

    out = tmp_path / "probe.json"
    assert main(["probe", str(tiny_encoder_run), str(labelled_dir), "--spacing", "6", "6", "6", "--steps", "20",
                 "--crops-per-case", "4", "--patches-per-organ", "2", "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    assert list(report["results"]) == ["random init", str(tiny_encoder_run)]
    assert report["patch_size"] == 32 and report["preset"] == "tiny"
    for result in report["results"].values():
        assert 0.0 <= result["knn_accuracy"] <= 1.0
        assert result["linear_dice"] is None or 0.0 <= result["linear_dice"] <= 1.0
    # different weights, different features: the two rows are not one number twice
    assert report["results"]["random init"]["linear_final_loss"] != report["results"][str(tiny_encoder_run)][
        "linear_final_loss"]
    printed = capsys.readouterr().out
    assert "random init" in printed and "kNN" in printed

    before = out.read_text()
    assert main(["probe", "none", str(labelled_dir), "--preset", "tiny", "--json", str(out)]) == 2
    assert "already exists" in capsys.readouterr().err and out.read_text() == before


def test_token_features_sit_where_their_voxels_are():
    """A change inside token (2, 0, 1) of a 48^3 input (a 3x3x3 grid, no symmetry maps that cell onto another one
    by reordering the axes) changes the grid feature at (2, 0, 1) most: tokens are put back in their place."""
    from sslseg.models.presets import get_preset
    from sslseg.probes.frozen_encoder import frozen_features

    features = frozen_features(get_preset("tiny").with_img_size(48), None, seed=0)
    x = torch.rand(1, 1, 48, 48, 48, generator=torch.Generator().manual_seed(0))
    changed = x.clone()
    changed[:, :, 32:48, 0:16, 16:32] += 1.0
    difference = (features(changed) - features(x)).norm(dim=1)[0]  # (3, 3, 3)
    assert tuple(np.unravel_index(int(difference.argmax()), difference.shape)) == (2, 0, 1)


def test_probes_during_pretraining_report_every_k_epochs_without_changing_the_training(unlabelled_dir, pretrain_cache,
                                                                                       labelled_dir, tmp_path):
    """``--probe`` adds the probes to epochs 2 and 3 (every 2, and the last), the random baseline beside them, and a
    panel of the loss curve; the losses are exactly those of the run without probes (the probes read a copy of the encoder, so the
    training model keeps its gradients and mode, and draw from their own random streams). Shown to fail when the
    probe wraps the training model's own backbone."""
    from pretrain_support import load_state, run_tiny

    from sslseg.training.plots import loss_curve_figure

    plain, probed = tmp_path / "plain", tmp_path / "probed"
    run_tiny(unlabelled_dir, plain, pretrain_cache, method="simclr", epochs=3, val_every=0)
    run_tiny(unlabelled_dir, probed, pretrain_cache, method="simclr", epochs=3, val_every=0,
             probe=str(labelled_dir), probe_every=2)
    epochs = load_state(probed)["state"]["epochs"]
    assert [("probe_knn_accuracy" in e) for e in epochs] == [False, True, True]
    for epoch in epochs[1:]:
        assert 0.0 <= epoch["probe_knn_accuracy"] <= 1.0 and 0.0 <= epoch["probe_linear_dice"] <= 1.0
        assert set(epoch["probe"]) == {"kNN accuracy", "random init: linear Dice", "random init: kNN accuracy"}
    assert epochs[1]["probe"]["random init: kNN accuracy"] == epochs[2]["probe"]["random init: kNN accuracy"]
    def probe_panel(run):
        state = load_state(run)["state"]
        figure = loss_curve_figure(state["step_losses"], state["epochs"], step_measures=state["step_measures"])
        return [a for a in figure.axes if a.get_ylabel() == "probes"]

    (panel,) = probe_panel(probed)  # below the loss and the collapse measures, in loss_curve.png
    assert sorted(line.get_label() for line in panel.get_lines()) == [
        "kNN accuracy", "linear Dice", "random init: kNN accuracy", "random init: linear Dice"]
    assert list(panel.get_lines()[0].get_xdata()) == [e["step"] for e in epochs[1:]]
    assert probe_panel(plain) == []
    assert load_state(probed)["state"]["step_losses"] == load_state(plain)["state"]["step_losses"]


def test_knn_never_votes_with_the_query_s_own_case():
    """Case 0's patches are organ 1 and sit on one feature; the other cases' patches are organ 2 near it. Leave one
    case out must answer 2 for case 0 (its own patches would say 1), also when the other cases hold fewer than k
    patches (before the fix, own-case entries ranked last still filled the k)."""
    from sslseg.probes.knn_probe import knn_vote

    features = torch.nn.functional.normalize(torch.tensor(
        [[1.0, 0.0]] * 6 + [[1.0, 0.1], [1.0, 0.2]]), dim=1)
    cases = [0] * 6 + [1, 2]
    organs = [1] * 6 + [2, 2]
    assert list(knn_vote(features, cases, organs, features[:6], cases[:6], k=5)) == [2] * 6
