"""Each preset's recipe fills the settings a run leaves out (``sslseg.finetune.recipes``): the tiny preset trains
with the CPU recipe measured on a real CT (README "Fitting a real CT on a CPU"), vit-b with MONAI's tutorial."""

import json

import pytest

from sslseg.errors import SSLSegError
from sslseg.finetune.config import FinetuneConfig
from sslseg.finetune.recipes import RECIPE_FIELDS, RECIPES, with_recipe

LEFT_TO_THE_RECIPE = {name: None for name in RECIPE_FIELDS}


def test_a_tiny_run_left_to_its_defaults_trains_and_records_the_cpu_recipe(labelled_dir, tmp_path, run_finetune):
    """Nothing but the preset given: the card says 3 x 3 x 2 mm, lr 3e-3 on a cosine after 50 warm-up steps, 2
    class-balanced crops, decoder width 8, the head started at the class priors."""
    out = tmp_path / "model"
    run_finetune(labelled_dir, out, **{**LEFT_TO_THE_RECIPE, "patch_size": 32}, max_steps=1, val_every=0)
    card = json.loads((out / "model.json").read_text())
    training = card["provenance"]["training"]
    assert card["preprocessing"]["spacing_mm"] == [3.0, 3.0, 2.0]
    assert (training["lr"], training["lr_schedule"], training["warmup_steps"], training["crops_per_volume"]) == (
        3e-3, "cosine", 50, 2)
    assert card["architecture"]["config"]["feature_size"] == 8
    assert training["output_bias"] == "prior"
    assert "classes" in json.dumps(training["augmentation"]).lower()


def test_given_settings_win_over_the_recipe_and_vit_b_keeps_monais_tutorial():
    config = FinetuneConfig(data_dir="d", out_dir="o", lr=5e-4, spacing=(2.0, 2.0, 2.0))
    tiny = with_recipe(config, "tiny")
    assert (tiny.lr, tiny.spacing, tiny.lr_schedule, tiny.crop_centres) == (5e-4, (2.0, 2.0, 2.0), "cosine", "classes")
    vit_b = with_recipe(FinetuneConfig(data_dir="d", out_dir="o"), "vit-b")
    assert {name: getattr(vit_b, name) for name in RECIPE_FIELDS} == {
        "spacing": (1.5, 1.5, 2.0), "lr": 1e-4, "lr_schedule": "constant", "warmup_steps": 0, "feature_size": 16,
        "crops_per_volume": 4, "crop_centres": "pos-neg", "output_bias": "random"}
    assert set(RECIPES) == {"tiny", "vit-b"} and all(set(r) == set(RECIPE_FIELDS) for r in RECIPES.values())


@pytest.mark.parametrize("field, value, message", [
    ("crops_per_volume", 0, "--crops-per-volume must be at least 1"), ("lr", 0.0, "--lr must be > 0"),
    ("spacing", (1.0, 0.0, 1.0), "--spacing takes three voxel sizes"), ("warmup_steps", -1, "--warmup-steps"),
    ("output_bias", "zero", "--output-bias is one of prior, random")])
def test_a_bad_value_is_refused_whatever_the_recipe_would_give(field, value, message, tmp_path):
    with pytest.raises(SSLSegError, match=message):
        FinetuneConfig(data_dir=str(tmp_path / "d"), out_dir=str(tmp_path / "o"), preset="tiny",
                       **{field: value}).check()
