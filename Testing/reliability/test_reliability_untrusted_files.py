"""Catalogue, untrusted files: no file can run code when read, and an edited model (or encoder) folder is refused
with a message that names the file and says why.

=================================  ========================================================================
pickle with code: --encoder FILE   test_a_pickle_that_would_run_code_is_refused[encoder file]
                                   (engine/test_finetune_encoder.py::test_loading_never_runs_pickled_code, API)
pickle with code: checkpoint       test_a_pickle_that_would_run_code_is_refused[pretraining checkpoint],
                                   ...[fine-tuning checkpoint]
not a torch file (random bytes)    test_random_bytes_are_not_called_a_dangerous_pickle[...] (the same three places)
torch's warnings on such a file    test_torch_warnings_do_not_precede_the_error[...]
card: unexpected field             test_an_edited_model_card_is_refused[unexpected field]
card: wrong type                   ...[wrong type]
card: path escaping the folder     ...[path escaping the folder], ...[absolute path], ...[symlink out]
card: weights hash mismatch        ...[weights changed]
                                   (API: engine/test_model_package.py::test_edited_cards_are_refused,
                                   ::test_changed_weights_are_refused, ::test_symlinked_weights_are_refused)
encoder card: the same checks      test_an_edited_encoder_card_is_refused[...]
=================================  ========================================================================

Model weights are only ever read from safetensors files (tensors, no code); every ``.pt``/``.pth`` read goes through
``sslseg.package.safe_torch.load_weights_only`` (``torch.load(weights_only=True)``).
"""

import json
import pathlib
import warnings

import numpy as np
import pytest
import torch
from reliability_support import FINETUNE_TINY, PRETRAIN_TINY, assert_refused, run_cli

from sslseg.models.encoder_io import save_encoder
from sslseg.models.presets import get_preset


class Payload:
    """Unpickling this writes ``marker``: arbitrary code, as a malicious file would run."""

    def __init__(self, marker: pathlib.Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return pathlib.Path.write_text, (self.marker, "code ran")


def evil_file(path, marker, **content):
    torch.save({"format": "sslseg-checkpoint", "format_version": 1, **content, "payload": Payload(marker)}, path)
    return path


def reading(where, write, unlabelled_dir, pretrain_cache, labelled_dir, tmp_path):
    """(the file ``write(path)`` made, the CLI arguments that read it ``where``)."""
    run = tmp_path / "run"
    run.mkdir()
    if where == "encoder file":
        path = write(tmp_path / "encoder.pth")
        args = ["finetune", labelled_dir, "--encoder", path, "--out", run, *FINETUNE_TINY]
    elif where == "pretraining checkpoint":
        path = write(run / "checkpoint.pt")
        args = ["pretrain", unlabelled_dir, "--out", run, *PRETRAIN_TINY, "--cache", pretrain_cache, "--resume"]
    else:
        path = write(run / "checkpoint.pt")
        args = ["finetune", labelled_dir, "--encoder", "none", "--out", run, *FINETUNE_TINY, "--resume"]
    return path, [*args, "--events", tmp_path / "events.jsonl"]


@pytest.mark.parametrize("where", ["encoder file", "pretraining checkpoint", "fine-tuning checkpoint"])
def test_a_pickle_that_would_run_code_is_refused(where, unlabelled_dir, pretrain_cache, labelled_dir, tmp_path,
                                                 capsys):
    marker = tmp_path / "code_ran"
    content = {"state_dict": {"blocks.0.norm1.weight": torch.ones(3)}} if where == "encoder file" else {}
    evil, args = reading(where, lambda path: evil_file(path, marker, **content), unlabelled_dir, pretrain_cache,
                         labelled_dir, tmp_path)
    assert_refused(run_cli(capsys, *args), str(evil),
                   "holds Python objects besides tensors (it asks for ",
                   "full unpickling, which can run arbitrary code, so it is refused")
    assert not marker.exists(), "the file's code ran"
    torch.load(evil, weights_only=False)  # the payload is real: a full unpickle runs it
    assert marker.exists()


def random_bytes(path):
    """Noise that starts like a pickle of protocol 171: torch warns about the protocol, then fails to read it."""
    path.write_bytes(b"\x80\xab" + np.random.default_rng(14).bytes(4094))
    return path


@pytest.mark.parametrize("where", ["encoder file", "pretraining checkpoint", "fine-tuning checkpoint"])
def test_random_bytes_are_not_called_a_dangerous_pickle(where, unlabelled_dir, pretrain_cache, labelled_dir,
                                                       tmp_path, capsys):
    """Issue 14: noise given as --encoder (or found as the checkpoint) is named for what it is, not a pickle with
    code."""
    noise, args = reading(where, random_bytes, unlabelled_dir, pretrain_cache, labelled_dir, tmp_path)
    error, _ = assert_refused(run_cli(capsys, *args), f"{noise} is not a PyTorch weights file (neither a zip archive "
                              "nor a pickle)")
    assert "Python objects" not in error


@pytest.mark.parametrize("where", ["encoder file", "pretraining checkpoint", "fine-tuning checkpoint"])
def test_torch_warnings_do_not_precede_the_error(where, unlabelled_dir, pretrain_cache, labelled_dir, tmp_path,
                                                capsys):
    """Issue 14: torch's "Detected pickle protocol 171 ..." warning is not shown before our one-line error."""
    _, args = reading(where, random_bytes, unlabelled_dir, pretrain_cache, labelled_dir, tmp_path)
    with warnings.catch_warnings(record=True) as shown:
        warnings.simplefilter("always")
        assert run_cli(capsys, *args)[0] == 2
    assert [str(w.message) for w in shown if "torch" in w.filename] == []


@pytest.fixture
def model_copy(tiny_model, tmp_path):
    """A copy of the tiny model folder that a test may edit."""
    folder = tmp_path / "shared model"
    folder.mkdir()
    for path in tiny_model.iterdir():
        (folder / path.name).write_bytes(path.read_bytes())
    return folder


def edit(path, change):
    card = json.loads(path.read_text())
    change(card)
    path.write_text(json.dumps(card))


def swap_for_symlink(folder, name, outside):
    (folder / name).rename(outside)
    (folder / name).symlink_to(outside)


MODEL_EDITS = {
    "unexpected field": (lambda f, t: edit(f / "model.json", lambda c: c.update(run_me="import os")),
                         "model.json", "unexpected field(s) run_me"),
    "wrong type": (lambda f, t: edit(f / "model.json", lambda c: c["labels"][0].update(value="1")),
                   "model.json", "labels[0].value: expected int, got str"),
    "path escaping the folder": (lambda f, t: edit(f / "model.json", lambda c: c["weights"].update(file="../x")),
                                 "model.json", "not a plain file name"),
    "absolute path": (lambda f, t: edit(f / "model.json", lambda c: c["weights"].update(file="/etc/passwd")),
                      "model.json", "not a plain file name"),
    "symlink out": (lambda f, t: swap_for_symlink(f, "model.safetensors", t / "elsewhere.safetensors"),
                    "model.json", "'model.safetensors' leads outside"),
    "weights changed": (lambda f, t: (f / "model.safetensors").write_bytes((f / "model.safetensors").read_bytes()[:-4]
                                                                          + b"\0\0\0\0"),
                        "model.safetensors", "does not match the hash"),
}


@pytest.mark.parametrize("case", sorted(MODEL_EDITS))
def test_an_edited_model_card_is_refused(case, model_copy, labelled_dir, tmp_path, capsys):
    change, names, says = MODEL_EDITS[case]
    change(model_copy, tmp_path)
    out = tmp_path / "labels.nii.gz"
    result = run_cli(capsys, "segment", labelled_dir / "imagesTr" / "case_000.nii.gz", "--model", model_copy,
                     "--out", out)
    assert_refused(result, str(model_copy / names), says)
    assert not out.exists()


@pytest.fixture
def encoder_run(tmp_path):
    """A folder as `sslseg pretrain` leaves it: encoder.safetensors + encoder.json (tiny ViT, 32^3)."""
    preset = get_preset("tiny").with_img_size(32)
    folder = tmp_path / "pretrained"
    save_encoder(folder, {"patch_embedding.position_embeddings": torch.zeros(1, 8, 96)},
                 {"architecture": {"name": "ViT", "preset": preset.name, "config": preset.to_dict()}})
    return folder


ENCODER_EDITS = {
    "unexpected field": (lambda c: c.update(run_me=1), "encoder.json", "unexpected field(s) run_me"),
    "wrong type": (lambda c: c["architecture"].update(config="tiny"), "encoder.json",
                   "architecture.config: expected dict, got str"),
    "path escaping the folder": (lambda c: c["weights"].update(file="../other.safetensors"), "encoder.json",
                                 "names the weights '../other.safetensors'"),
    "weights changed": (lambda c: c["weights"].update(sha256="0" * 64), "encoder.safetensors",
                        "does not match the hash"),
}


@pytest.mark.parametrize("case", sorted(ENCODER_EDITS))
def test_an_edited_encoder_card_is_refused(case, encoder_run, labelled_dir, tmp_path, capsys):
    change, names, says = ENCODER_EDITS[case]
    edit(encoder_run / "encoder.json", change)
    result = run_cli(capsys, "finetune", labelled_dir, "--encoder", encoder_run, "--out", tmp_path / "model",
                     *FINETUNE_TINY, "--events", tmp_path / "events.jsonl")
    assert_refused(result, str(encoder_run / names), says)


def test_a_damaged_encoder_card_is_refused(encoder_run, labelled_dir, tmp_path, capsys):
    (encoder_run / "encoder.json").write_text('{"format": "sslseg-encoder", ')
    result = run_cli(capsys, "finetune", labelled_dir, "--encoder", encoder_run, "--out", tmp_path / "model",
                     *FINETUNE_TINY, "--events", tmp_path / "events.jsonl")
    assert_refused(result, f"cannot read {encoder_run / 'encoder.json'}", "damaged")
