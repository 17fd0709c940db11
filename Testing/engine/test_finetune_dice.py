"""Fine-tuning learns to segment held-out cases (tiny UNETR, random encoder, synthetic 6 mm phantoms, CPU).

Measured on the 2-core development machine (tiny preset, feature size 8, 32^3 crops, 2 per volume, one volume per
step, AdamW lr 3e-3 instead of the tutorial's 1e-4 to learn in hundreds rather than thousands of steps; 8 training
and 2 held-out phantoms): the liver is segmented first (held-out Dice ~0.9 after ~100 steps), then the aorta; the
organs that only their place tells apart (left and right kidney, spleen vs liver: same intensities, and the
tutorial's random flips and 90-degree rotations hide left from right in about a quarter of the crops) and the small
gallbladder follow after 300-700 steps. Mean Dice over the 8 organs passed 0.8 after 672 steps and was 0.90 after 960
(stomach 0.65: in these phantoms it differs from the surrounding soft tissue by ~15 HU at a noise of 6-18 HU).

A step takes ~0.15 s on an idle 2-core CPU (two torch threads) and over a second when other processes share the
cores, so the full 0.8 run (1000 steps) is marked slow; the default suite checks the first, fast part of learning.
"""

import json

import numpy as np
import pytest
from finetune_support import LEARNING

from sslseg.cli.main import main
from sslseg.evaluation.overlap import dice
from sslseg.io import read_volume
from sslseg.package.model_package import load_model_package
from sslseg.synth.anatomy import ORGAN_LABELS


def test_held_out_liver_is_learned_in_a_hundred_steps(liver_model):
    """4 training and 2 held-out cases, 128 steps, validated every 32 (each validation: 2 whole cases, 8 windows)."""
    model_dir, summary = liver_model
    epochs = [e for e in events(model_dir) if e["event"] == "epoch" and e.get("val_dice") is not None]
    assert [e["step"] for e in epochs] == [32, 64, 96, 128]
    assert summary["best_val_dice_per_organ"]["liver"] >= 0.8, summary["best_val_dice_per_organ"]
    assert epochs[-1]["val_dice"] > epochs[0]["val_dice"]


def events(model_dir) -> list[dict]:
    return [json.loads(line) for line in (model_dir / "events.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def ten_cases(tmp_path_factory):
    from sslseg.synth.cohort import write_labelled

    folder = tmp_path_factory.mktemp("labelled10")
    write_labelled(folder, 10, size=(52, 40, 34), spacing=6.0, seed=5)
    return folder


@pytest.mark.slow
def test_mean_dice_over_eight_organs_reaches_08_on_held_out_cases(ten_cases, tmp_path, run_finetune):
    """8 training and 2 held-out cases, 1000 steps (~3 min on an idle 2-core CPU); the package (best validation)
    then segments a held-out case through ``sslseg segment``, scored on the case's own grid against its truth."""
    out = tmp_path / "model"
    summary = run_finetune(ten_cases, out, epochs=125, val_every=12, val_fraction=0.2, **LEARNING)
    assert summary["best_val_dice"] >= 0.8, summary["best_val_dice_per_organ"]

    card = load_model_package(out).card
    held_out = card["validation"]["cases"]
    assert len(held_out) == 2 and not set(held_out) & {c["name"] for c in card["provenance"]["training_cases"]["train"]}
    case = held_out[0]
    assert main(["segment", str(ten_cases / "imagesTr" / f"{case}.nii.gz"), "--model", str(out),
                 "--out", str(tmp_path / "seg.nii.gz"), "--device", "cpu"]) == 0
    predicted = read_volume(tmp_path / "seg.nii.gz").array
    truth = read_volume(ten_cases / "labelsTr" / f"{case}.nii.gz").array
    scores = {name: dice(predicted == value, truth == value) for name, value in ORGAN_LABELS.items()}
    assert np.nanmean(list(scores.values())) >= 0.8, scores
