"""The shared model folder: round trip, and refusal of edited, malicious or damaged packages."""

import json
import os
import stat

import pytest
import torch

from sslseg.errors import SSLSegError
from sslseg.labels import LabelTable
from sslseg.models.encoder_io import save_encoder
from sslseg.package.model_package import labels_to_card, load_model_package, save_model_package
from sslseg.package.schema import CardError


def card():
    table = LabelTable.from_names({1: "liver", 3: "spleen"}, {1: (0.8, 0.3, 0.2)})
    return {
        "architecture": {"name": "UNETR", "preset": "tiny", "config": {"hidden_size": 96}},
        "labels": labels_to_card(table, {"liver": "SCT^10200004^Liver"}),
        "preprocessing": {"orientation": "RAS", "spacing_mm": [1.5, 1.5, 2.0]},
        "validation": {"mean_dice": 0.91},
    }


@pytest.fixture
def package(tmp_path):
    weights = {"encoder.weight": torch.arange(12.0).reshape(3, 4), "head.bias": torch.tensor([1, 2], dtype=torch.int64)}
    return save_model_package(tmp_path / "model", weights, card()), weights


def edit_card(folder, change):
    path = folder / "model.json"
    content = json.loads(path.read_text())
    change(content)
    path.write_text(json.dumps(content))


def test_round_trip(package):
    folder, weights = package
    loaded = load_model_package(folder)
    assert set(loaded.state_dict) == set(weights)
    assert torch.equal(loaded.state_dict["encoder.weight"], weights["encoder.weight"])
    assert loaded.state_dict["head.bias"].dtype == torch.int64
    assert loaded.label_table.names == {"liver": 1, "spleen": 3}
    assert loaded.label_table.labels[1].color == (0.8, 0.3, 0.2)
    assert loaded.card["labels"][0]["terminology"] == "SCT^10200004^Liver"


def test_existing_package_is_not_overwritten(package):
    folder, weights = package
    with pytest.raises(SSLSegError, match="already holds a model"):
        save_model_package(folder, weights, card())


@pytest.mark.parametrize(
    "change, match",
    [
        (lambda c: c.update(run_this="import os"), "unexpected field"),
        (lambda c: c["architecture"].update(preset=3), r"architecture\.preset: expected str"),
        (lambda c: c["labels"].append({"value": 1, "name": "again"}), "unique"),
        (lambda c: c["weights"].update(file="../../etc/passwd"), "not a plain file name"),
        (lambda c: c["weights"].update(file="/etc/passwd"), "not a plain file name"),
        (lambda c: c.pop("labels"), "missing field 'labels'"),
    ],
)
def test_edited_cards_are_refused(package, change, match):
    folder, _ = package
    edit_card(folder, change)
    with pytest.raises(CardError, match=match):
        load_model_package(folder)


def test_changed_weights_are_refused(package):
    folder, _ = package
    data = bytearray((folder / "model.safetensors").read_bytes())
    data[-1] ^= 0xFF
    (folder / "model.safetensors").write_bytes(bytes(data))
    with pytest.raises(CardError, match="does not match the hash"):
        load_model_package(folder)


def test_symlinked_weights_are_refused(package, tmp_path):
    folder, _ = package
    outside = tmp_path / "elsewhere.safetensors"
    (folder / "model.safetensors").rename(outside)
    (folder / "model.safetensors").symlink_to(outside)
    with pytest.raises(CardError, match="leads outside"):
        load_model_package(folder)


def test_not_a_model_folder(tmp_path):
    with pytest.raises(SSLSegError, match="is not a model folder"):
        load_model_package(tmp_path)


def plain_open_mode(folder):
    """The permissions ``open()`` gives a new file here, under the process's umask."""
    probe = folder / "written with open"
    probe.write_text("")
    return stat.S_IMODE(probe.stat().st_mode)


@pytest.mark.parametrize("umask", [0o022, 0o002, 0o077])
def test_shared_files_get_the_permissions_of_a_plain_open(umask, tmp_path):
    """Issue 14: model.safetensors (and encoder.safetensors) were 0600 beside a 0644 card: a model folder shared with
    colleagues was unreadable to them. Every file written gets what open() would give, the umask respected."""
    weights = {"head.bias": torch.tensor([1.0, 2.0])}
    previous = os.umask(umask)
    try:
        model = save_model_package(tmp_path / "model", weights, card())
        run = save_encoder(tmp_path / "run", weights, {"architecture": {"name": "ViT"}}).parent
        expected = plain_open_mode(tmp_path)
    finally:
        os.umask(previous)
    modes = {path.name: oct(stat.S_IMODE(path.stat().st_mode)) for path in [*model.iterdir(), *run.iterdir()]}
    assert set(modes) == {"model.json", "model.safetensors", "encoder.json", "encoder.safetensors"}
    assert modes == {name: oct(expected) for name in modes}
