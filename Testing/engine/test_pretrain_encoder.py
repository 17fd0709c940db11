"""The encoder files: every ViT tensor of MONAI's UNETR (same preset) receives a pretrained tensor — counted,
compared, never trusted to ``strict=False`` — and the card says how it was made."""

import json
import stat

import pytest
import torch
from monai.networks.nets import UNETR
from pretrain_support import load_state, run_tiny

from sslseg.errors import SSLSegError
from sslseg.models.encoder_io import load_encoder_into, read_encoder
from sslseg.models.presets import PRESETS, get_preset, preset_from_dict
from sslseg.package.files import sha256_of


@pytest.fixture(scope="module")
def run_dir(unlabelled_dir, pretrain_cache, tmp_path_factory):
    folder = tmp_path_factory.mktemp("encoder") / "run"
    run_tiny(unlabelled_dir, folder, pretrain_cache, epochs=1)
    return folder


def unetr_for(card):
    preset = preset_from_dict(card["architecture"]["config"])
    return UNETR(in_channels=1, out_channels=3, img_size=preset.img_size, feature_size=8,
                 hidden_size=preset.hidden_size, mlp_dim=preset.mlp_dim, num_heads=preset.num_heads,
                 proj_type=preset.proj_type, qkv_bias=preset.qkv_bias)


def test_every_vit_tensor_of_unetr_is_transferred(run_dir):
    card, encoder = read_encoder(run_dir)
    unetr = unetr_for(card)
    vit_tensors = [k for k in unetr.state_dict() if k.startswith("vit.")]
    report = load_encoder_into(unetr, encoder)
    assert len(report.transferred) == len(vit_tensors) == len(encoder) == card["weights"]["tensors"] == 161
    assert report.complete
    state = unetr.state_dict()
    for name in vit_tensors:
        assert torch.equal(state[name], encoder[name[len("vit."):]]), name


def test_foreign_prefixes_and_nesting_are_understood(run_dir):
    card, encoder = read_encoder(run_dir)
    wrapped = {"state_dict": {f"module.{k}": v for k, v in encoder.items()}}
    report = load_encoder_into(unetr_for(card), wrapped)
    assert len(report.transferred) == 161


def test_an_encoder_of_another_size_is_refused_with_the_reason(run_dir):
    _, encoder = read_encoder(run_dir)
    bigger = UNETR(in_channels=1, out_channels=3, img_size=64, feature_size=8, hidden_size=96, mlp_dim=384,
                   num_heads=4)  # position embeddings for 64^3, the encoder was trained on 32^3
    with pytest.raises(SSLSegError, match="of another shape .*position_embeddings"):
        load_encoder_into(bigger, encoder)


def test_the_card_describes_architecture_preprocessing_method_and_data(run_dir, unlabelled_dir):
    card = json.loads((run_dir / "encoder.json").read_text())
    config = card["architecture"]["config"]
    assert config["proj_type"] == "conv" and config["img_size"] == 32 and config["num_layers"] == 12
    assert card["preprocessing"]["spacing_mm"] == 4.0 and card["preprocessing"]["ct_window"] == [-1000.0, 1000.0]
    method = card["provenance"]["ssl_method"]
    assert method["name"] == "inpaint-contrastive" and method["options"]["temperature"] == 0.05
    data = card["provenance"]["data_fingerprint"]
    assert len(data["train"]) + len(data["val"]) == 5
    for item in data["train"] + data["val"]:
        assert item["sha256"] == sha256_of(unlabelled_dir / item["name"])
    assert {"torch", "monai", "python"} <= set(card["provenance"]["versions"])


def test_the_best_encoder_by_validation_loss_is_kept_beside_the_last_also_across_a_resume(unlabelled_dir,
                                                                                          pretrain_cache, tmp_path):
    """Issue 14: pretraining kept only the last encoder. With a learning rate far too high the validation loss rises
    after the first epoch: ``encoder.*`` (what ``--encoder RUN_DIR`` loads) stays epoch 1's, through a resume too,
    and ``encoder_last.*`` follows the training."""
    run, settings = tmp_path / "run", dict(lr=1.0, patches_per_volume=1)  # 2 steps per epoch
    run_tiny(unlabelled_dir, run, pretrain_cache, epochs=1, **settings)
    best_weights = (run / "encoder.safetensors").read_bytes()
    run_tiny(unlabelled_dir, run, pretrain_cache, epochs=2, resume=True, **settings)
    first, second = load_state(run)["state"]["epochs"]
    assert first["val_loss"] < second["val_loss"], (first, second)  # the premise
    assert (run / "encoder.safetensors").read_bytes() == best_weights

    best_card, _ = read_encoder(run)
    assert best_card["provenance"]["selection"] == {"rule": "lowest validation loss", "step": 2, "epoch": 1,
                                                    "val_loss": first["val_loss"]}
    assert best_card["provenance"]["training"]["steps"] == 2
    last_card = json.loads((run / "encoder_last.json").read_text())
    assert last_card["provenance"]["selection"] == {"rule": "last", "step": 4, "epoch": 2,
                                                    "val_loss": second["val_loss"]}
    assert last_card["weights"] == {"file": "encoder_last.safetensors", "tensors": 161,
                                    "sha256": sha256_of(run / "encoder_last.safetensors")}
    assert last_card["weights"]["sha256"] != best_card["weights"]["sha256"]


def test_without_validation_the_best_encoder_is_the_last_and_its_card_says_so(unlabelled_dir, pretrain_cache,
                                                                                tmp_path):
    run = tmp_path / "run"
    run_tiny(unlabelled_dir, run, pretrain_cache, max_steps=2, val_every=0)
    best_card, _ = read_encoder(run)
    last_card = json.loads((run / "encoder_last.json").read_text())
    assert best_card["provenance"]["selection"]["rule"].startswith("last: no validation loss")
    assert best_card["provenance"]["selection"]["step"] == last_card["provenance"]["selection"]["step"] == 2
    assert best_card["weights"]["sha256"] == last_card["weights"]["sha256"]


def test_every_file_of_the_run_has_the_permissions_of_a_plain_open(run_dir, tmp_path):
    """Issue 14: encoder.safetensors was owner-only (0600) beside 0644 files; a shared run folder must be readable
    as the user's umask allows, like everything else the run writes."""
    probe = tmp_path / "written with open"
    probe.write_text("")
    expected = oct(stat.S_IMODE(probe.stat().st_mode))
    modes = {str(p.relative_to(run_dir)): oct(stat.S_IMODE(p.stat().st_mode))
             for p in run_dir.rglob("*") if p.is_file()}
    assert "encoder.safetensors" in modes
    assert modes == {name: expected for name in modes}


def test_every_preset_has_the_twelve_layers_unetr_taps():
    for preset in PRESETS.values():
        assert preset.num_layers == 12 and preset.patch_size == 16
        assert preset.hidden_size % preset.num_heads == 0
    assert get_preset("vit-b").hidden_size == 768 and get_preset("vit-b").mlp_dim == 3072
    with pytest.raises(SSLSegError, match="multiple of the ViT token size"):
        get_preset("tiny").with_img_size(40)
