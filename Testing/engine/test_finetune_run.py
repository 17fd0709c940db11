"""A fine-tuning run end to end (tiny preset, synthetic phantoms): exact resume, the model package's card, events
and curves, refusals, the command line."""

import json

import pytest
import torch

from sslseg.cli.main import main
from sslseg.errors import SSLSegError
from sslseg.models.unetr import unetr_from_card
from sslseg.package.files import sha256_of
from sslseg.package.model_package import load_model_package
from sslseg.synth.anatomy import ORGAN_LABELS
from sslseg.terminology import load_terminology


def checkpoint(run_dir):
    return torch.load(run_dir / "checkpoint.pt", map_location="cpu", weights_only=True)


def events(run_dir):
    return [json.loads(line) for line in (run_dir / "events.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("finetune_cache")


@pytest.fixture(scope="module")
def uninterrupted(labelled_dir, tmp_path_factory, run_finetune, cache):
    folder = tmp_path_factory.mktemp("uninterrupted") / "model"
    run_finetune(labelled_dir, folder, epochs=3, val_fraction=0.2, cache_dir=str(cache))
    return folder


def assert_same_run(a, b):
    a, b = checkpoint(a), checkpoint(b)
    assert a["state"]["step"] == b["state"]["step"] == 15  # 5 training cases, 1 volume per step, 3 epochs
    different = [k for k in a["model"] if not torch.equal(a["model"][k], b["model"][k])]
    assert not different, f"{len(different)} tensors differ, e.g. {different[0]}"
    assert a["state"]["step_losses"] == b["state"]["step_losses"]
    assert a["state"]["epochs"] == b["state"]["epochs"]  # validation Dice included


def test_resume_after_an_epoch_is_bit_identical(labelled_dir, tmp_path, run_finetune, cache, uninterrupted):
    run_finetune(labelled_dir, tmp_path / "model", epochs=2, val_fraction=0.2, cache_dir=str(cache))
    run_finetune(labelled_dir, tmp_path / "model", epochs=3, val_fraction=0.2, cache_dir=str(cache), resume=True)
    assert_same_run(uninterrupted, tmp_path / "model")
    package_a, package_b = (load_model_package(d) for d in (uninterrupted, tmp_path / "model"))
    assert package_a.card["validation"] == package_b.card["validation"]
    assert all(torch.equal(package_a.state_dict[k], package_b.state_dict[k]) for k in package_a.state_dict)


def test_resume_in_the_middle_of_an_epoch_is_bit_identical(labelled_dir, tmp_path, run_finetune, cache,
                                                           uninterrupted):
    run_finetune(labelled_dir, tmp_path / "model", epochs=3, max_steps=7, val_fraction=0.2, cache_dir=str(cache))
    assert checkpoint(tmp_path / "model")["state"]["step_in_epoch"] == 2
    run_finetune(labelled_dir, tmp_path / "model", epochs=3, val_fraction=0.2, cache_dir=str(cache), resume=True)
    assert_same_run(uninterrupted, tmp_path / "model")


def test_the_package_holds_the_best_validated_weights(uninterrupted):
    records = [e for e in events(uninterrupted) if e["event"] == "epoch"]
    assert len(records) == 3 and all(r["val_dice"] is not None for r in records)
    assert set(records[0]["val_dice_per_organ"]) == set(ORGAN_LABELS)
    best = max(records, key=lambda r: r["val_dice"])
    card = load_model_package(uninterrupted).card
    assert card["validation"]["mean_dice"] == best["val_dice"] and card["validation"]["step"] == best["step"]
    assert card["validation"]["per_organ_dice"] == best["val_dice_per_organ"]
    assert card["validation"]["cases"] and card["validation"]["window"] == 32
    for curve in ("loss_curve.png", "dice_curve.png"):
        assert (uninterrupted / curve).read_bytes()[:4] == b"\x89PNG"
    done = events(uninterrupted)[-1]
    assert done["event"] == "done" and done["best_val_dice"] == best["val_dice"]


def test_the_card_says_everything_needed_to_use_and_trust_the_model(labelled_dir, tmp_path, run_finetune,
                                                                    tiny_encoder_run):
    out = tmp_path / "model"
    run_finetune(labelled_dir, out, encoder=str(tiny_encoder_run), epochs=1, max_steps=2, val_fraction=0.2,
                 patch_size=None)
    package = load_model_package(out)  # validates the card against its schema and the weights' hash
    card = package.card
    assert card["architecture"]["name"] == "UNETR" and card["architecture"]["config"]["out_channels"] == 9
    model, preset = unetr_from_card(card["architecture"])
    model.load_state_dict(package.state_dict, strict=True)  # what `sslseg segment` does
    assert preset.img_size == 32 == card["preprocessing"]["window"]

    terminology = load_terminology()
    assert [(item["value"], item["name"]) for item in card["labels"]] == [(v, n) for n, v in ORGAN_LABELS.items()]
    for item in card["labels"]:
        term = terminology.lookup(item["name"])
        assert item["terminology"] == term.tag() and "SCT^" in item["terminology"]
        assert item["color"] == [round(c, 6) for c in term.color]

    assert card["preprocessing"]["spacing_mm"] == [6.0, 6.0, 6.0] and card["preprocessing"]["ct_window"] == [-175.0, 250.0]
    assert card["preprocessing"]["orientation"] == "RAS"

    encoder = card["provenance"]["encoder"]
    assert encoder["kind"] == "sslseg-pretraining" and encoder["transferred"] == 161
    assert encoder["ssl_method"]["name"] == "inpaint-contrastive" and encoder["data_fingerprint"]["train"]
    assert encoder["weights_sha256"] == sha256_of(tiny_encoder_run / "encoder.safetensors")
    assert any(e["event"] == "encoder" and e["transferred"] == 161 for e in events(out))

    cases = card["provenance"]["training_cases"]
    assert len(cases["train"]) == 5 and len(cases["val"]) == 1
    for item in cases["train"] + cases["val"]:
        assert item["image_sha256"] == sha256_of(labelled_dir / "imagesTr" / f"{item['name']}.nii.gz")
        assert item["label_sha256"] == sha256_of(labelled_dir / "labelsTr" / f"{item['name']}.nii.gz")
    assert {"torch", "monai", "python"} <= set(card["provenance"]["versions"]) and card["provenance"]["date"]
    training = card["provenance"]["training"]
    assert training["optimizer"] == "AdamW" and training["lr"] == 1e-4 and training["weight_decay"] == 1e-5
    assert "validation" not in card  # max_steps ended before the first epoch's validation: the last weights


def test_an_existing_run_is_refused_unless_resumed_or_overwritten(labelled_dir, tmp_path, run_finetune, cache):
    out = tmp_path / "model"
    run_finetune(labelled_dir, out, epochs=1, max_steps=1, cache_dir=str(cache))
    with pytest.raises(SSLSegError, match="already holds a run"):
        run_finetune(labelled_dir, out, epochs=1, max_steps=1, cache_dir=str(cache))
    with pytest.raises(SSLSegError, match=r"other settings \(lr 0.0001 -> 0.001\)"):
        run_finetune(labelled_dir, out, epochs=2, lr=1e-3, cache_dir=str(cache), resume=True)
    run_finetune(labelled_dir, out, epochs=1, max_steps=1, cache_dir=str(cache), overwrite=True)
    with pytest.raises(SSLSegError, match="no run to resume"):
        run_finetune(labelled_dir, tmp_path / "other", epochs=1, resume=True)


def test_a_run_that_failed_before_its_first_checkpoint_is_replaced_by_a_new_start(labelled_dir, tmp_path,
                                                                                  run_finetune, cache, caplog):
    """Issue 14: a failed run's events and status no longer block a retry in its folder (one warning); a folder
    with a checkpoint still needs --resume or --overwrite."""
    out = tmp_path / "model"
    with pytest.raises(SSLSegError, match="no such folder or file"):
        run_finetune(labelled_dir, out, encoder=str(tmp_path / "missing"), epochs=1, max_steps=1, cache_dir=str(cache))
    assert json.loads((out / "train_stats.json").read_text())["status"] == "failed"
    caplog.clear()
    run_finetune(labelled_dir, out, epochs=1, max_steps=1, cache_dir=str(cache))
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1 and "ended before its first checkpoint" in warnings[0], warnings
    assert "error" not in [e["event"] for e in events(out)]
    with pytest.raises(SSLSegError, match="other settings"):
        run_finetune(labelled_dir, out, epochs=1, lr=1e-3, cache_dir=str(cache), resume=True)
    assert json.loads((out / "train_stats.json").read_text())["status"] == "failed"
    with pytest.raises(SSLSegError, match="already holds a run") as refused:
        run_finetune(labelled_dir, out, epochs=1, max_steps=1, cache_dir=str(cache))
    assert "--resume" in refused.value.hint


def test_the_command_line(labelled_dir, tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["finetune", "--help"])
    text = capsys.readouterr().out
    for option in ("--encoder", "--preset", "--epochs", "--max-steps", "--val-every", "--batch-size", "--patch-size",
                   "--lr", "--device", "--amp", "--seed", "--resume", "--overwrite", "--events", "--workers",
                   "--spacing", "--ct-window"):
        assert option in text, option
    out = tmp_path / "model"
    args = ["finetune", str(labelled_dir), "--encoder", "none", "--out", str(out), "--preset", "tiny",
            "--patch-size", "32", "--feature-size", "8", "--spacing", "6", "6", "6", "--max-steps", "1",
            "--workers", "0", "--events", str(tmp_path / "events.jsonl")]
    assert main(args) == 0
    assert json.loads((tmp_path / "events.jsonl").read_text().splitlines()[-1])["event"] == "done"
    assert main(args) == 2 and "already holds a run" in capsys.readouterr().err
