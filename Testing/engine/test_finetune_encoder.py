"""Where UNETR's ViT comes from: our pretraining RUN_DIR, a MONAI-tutorial-style ``.pt`` state dict, or nothing.
Transfers are counted, mismatches named, pickled code never run, position embeddings resized on request (and
reported), a patch embedding of another ``proj_type`` refused rather than silently skipped, and an encoder file's
``proj_type`` (conv or perceptron) followed."""

import dataclasses
import pathlib

import pytest
import torch

from sslseg.errors import SSLSegError
from sslseg.finetune.encoder import choose_encoder
from sslseg.models.encoder_io import load_encoder_into, resize_position_embedding
from sslseg.models.presets import get_preset
from sslseg.models.unetr import build_unetr, unetr_from_card
from sslseg.models.vit_autoenc import build_vit_autoenc
from sslseg.package.model_package import load_model_package

VIT_TENSORS_OF_UNETR = 161  # 3 patch embedding + 12 blocks x 13 + 2 final norm


def vit_names(unetr) -> list[str]:
    return [k for k in unetr.state_dict() if k.startswith("vit.")]


def tutorial_checkpoint(path, preset, **changes):
    """What MONAI's SSL tutorial leaves: a ViTAutoEnc state dict (here trained under DataParallel, so ``module.``
    prefixes) nested in a dict with the epoch and optimiser state, saved with torch.save."""
    torch.manual_seed(1)
    model = build_vit_autoenc(dataclasses.replace(preset, **changes))
    state = {f"module.{k}": v for k, v in model.state_dict().items()}
    optimizer = torch.optim.AdamW(model.parameters())
    torch.save({"epoch": 7, "state_dict": state, "optimizer": optimizer.state_dict()}, path)
    return model.state_dict()


def test_a_pretraining_run_transfers_every_vit_tensor(tiny_encoder_run):
    choice = choose_encoder(str(tiny_encoder_run))
    assert choice.preset.name == "tiny" and choice.preset.img_size == 32 == choice.encoder_img_size
    assert choice.origin["kind"] == "sslseg-pretraining"
    assert choice.origin["ssl_method"]["name"] == "inpaint-contrastive" and choice.origin["data_fingerprint"]["train"]
    unetr = build_unetr(choice.preset, 4)
    report = load_encoder_into(unetr, choice.state, resize_position_embedding_to_fit=True)
    assert len(report.transferred) == len(vit_names(unetr)) == VIT_TENSORS_OF_UNETR
    assert report.complete and not report.resized
    for name in vit_names(unetr):
        assert torch.equal(unetr.state_dict()[name], choice.state[name[len("vit."):]]), name


def test_a_preset_other_than_the_encoders_is_refused(tiny_encoder_run):
    with pytest.raises(SSLSegError, match="--preset vit-b differs from the encoder's preset tiny"):
        choose_encoder(str(tiny_encoder_run), preset_name="vit-b")


def test_a_tutorial_style_state_dict_loads(tmp_path):
    preset = get_preset("tiny").with_img_size(32)
    original = tutorial_checkpoint(tmp_path / "best_model.pt", preset)
    choice = choose_encoder(str(tmp_path / "best_model.pt"), preset_name="tiny")
    assert choice.preset.img_size == 32 and choice.origin["kind"] == "file"
    unetr = build_unetr(choice.preset, 3)
    report = load_encoder_into(unetr, choice.state)
    assert len(report.transferred) == VIT_TENSORS_OF_UNETR and report.complete
    assert torch.equal(unetr.state_dict()["vit.blocks.11.mlp.linear2.weight"], original["blocks.11.mlp.linear2.weight"])
    assert not any("conv3d_transpose" in name for name in choice.state)  # the reconstruction head stays behind


def test_an_encoder_saved_by_older_monai_loads_without_its_unused_norms(tmp_path):
    """MONAI < 1.3 had no ``norm_cross_attn`` in its transformer blocks (never used by ViT or UNETR)."""
    preset = get_preset("tiny").with_img_size(32)
    state = build_vit_autoenc(preset).state_dict()
    torch.save({k: v for k, v in state.items() if "norm_cross_attn" not in k}, tmp_path / "old.pth")
    choice = choose_encoder(str(tmp_path / "old.pth"), preset_name="tiny")
    report = load_encoder_into(build_unetr(choice.preset, 3), choice.state)
    assert report.complete and len(report.transferred) == VIT_TENSORS_OF_UNETR - 24 and len(report.kept_initial) == 24
    assert "24 unused norm_cross_attn tensors" in report.summary()


def test_an_encoder_of_another_width_is_refused_naming_the_mismatch(tmp_path):
    tutorial_checkpoint(tmp_path / "wide.pt", get_preset("tiny").with_img_size(32), hidden_size=192, mlp_dim=768)
    with pytest.raises(SSLSegError, match=r"hidden_size 192 in the file vs 96 in preset tiny; mlp_dim 768"):
        choose_encoder(str(tmp_path / "wide.pt"), preset_name="tiny")


def test_loading_never_runs_pickled_code(tmp_path):
    marker = tmp_path / "code_ran"

    class Payload:  # unpickling calls Path.write_text(marker, ...): arbitrary code
        def __reduce__(self):
            return pathlib.Path.write_text, (marker, "pwned")

    state = build_vit_autoenc(get_preset("tiny").with_img_size(32)).state_dict()
    torch.save({"state_dict": state, "extra": Payload()}, tmp_path / "evil.pt")
    with pytest.raises(SSLSegError, match="full unpickling, which can run arbitrary code, so it is refused"):
        choose_encoder(str(tmp_path / "evil.pt"), preset_name="tiny")
    assert not marker.exists()
    torch.load(tmp_path / "evil.pt", weights_only=False)  # the payload is real: a full unpickle runs it
    assert marker.read_text() == "pwned"


def test_an_encoder_pretrained_on_smaller_patches_gets_its_position_grid_resized(tiny_encoder_run):
    choice = choose_encoder(str(tiny_encoder_run), patch_size=64)  # pretrained on 32^3: 2^3 tokens -> 4^3
    assert choice.preset.img_size == 64 and choice.encoder_img_size == 32
    unetr = build_unetr(choice.preset, 3)
    report = load_encoder_into(unetr, choice.state, resize_position_embedding_to_fit=True)
    assert len(report.transferred) == VIT_TENSORS_OF_UNETR and report.complete
    assert report.resized == [("vit.patch_embedding.position_embeddings", (1, 8, 96), (1, 64, 96))]
    assert "resized from 2^3 to 4^3 tokens" in report.summary()
    assert report.to_dict()["position_embedding_resized"][0]["to"] == [1, 64, 96]
    assert unetr(torch.zeros(1, 1, 64, 64, 64)).shape == (1, 3, 64, 64, 64)
    with pytest.raises(SSLSegError, match="of another shape .*position_embeddings"):  # only when asked for
        load_encoder_into(build_unetr(choice.preset, 3), choice.state)


def test_position_resize_follows_the_token_grid_axes():
    """A field varying along the first grid axis only (MONAI flattens tokens first axis slowest) keeps doing so."""
    grid = torch.arange(2.0).reshape(2, 1, 1, 1).expand(2, 2, 2, 5)  # value = index along axis 0, 5 channels
    resized = resize_position_embedding(grid.reshape(1, 8, 5), 4).reshape(4, 4, 4, 5)
    assert torch.allclose(resized[:, 1:2, 2:3, :], resized[:, :1, :1, :])  # constant along axes 1 and 2
    assert torch.all(resized[1:, 0, 0, 0] >= resized[:-1, 0, 0, 0]) and resized[3, 0, 0, 0] > resized[0, 0, 0, 0]


def test_a_patch_embedding_of_another_proj_type_is_refused(tiny_encoder_run, tmp_path):
    choice = choose_encoder(str(tiny_encoder_run))
    perceptron = build_unetr(dataclasses.replace(choice.preset, proj_type="perceptron"), 3)
    with pytest.raises(SSLSegError, match="proj_type 'conv', this network with 'perceptron'.*silently"):
        load_encoder_into(perceptron, choice.state, require_complete=False)  # even where strict=False would pass


def test_a_perceptron_encoder_file_fine_tunes_a_unetr_with_perceptron_patch_embedding(labelled_dir, tmp_path,
                                                                                       run_finetune):
    """MONAI's ViTAutoEnc with proj_type 'perceptron' (tiny preset's sizes), its state dict saved with torch.save: no
    preset has that proj_type, so fine-tuning takes it from the tensors, transfers every ViT tensor, and the card
    rebuilds the same network (what `sslseg segment` does)."""
    from monai.networks.nets import ViTAutoEnc

    torch.manual_seed(1)
    tiny = get_preset("tiny")
    autoenc = ViTAutoEnc(in_channels=1, img_size=32, patch_size=16, hidden_size=tiny.hidden_size,
                         mlp_dim=tiny.mlp_dim, num_heads=tiny.num_heads, proj_type="perceptron")
    assert "patch_embedding.patch_embeddings.1.weight" in autoenc.state_dict()
    torch.save(autoenc.state_dict(), tmp_path / "perceptron.pt")
    summary = run_finetune(labelled_dir, tmp_path / "model", encoder=str(tmp_path / "perceptron.pt"), epochs=1,
                           max_steps=2, val_fraction=0, patch_size=None)
    assert summary["steps"] == 2 and summary["encoder_transferred"] == VIT_TENSORS_OF_UNETR
    package = load_model_package(tmp_path / "model")
    assert package.card["architecture"]["config"]["vit"]["proj_type"] == "perceptron"
    assert package.card["provenance"]["encoder"]["proj_type"] == "perceptron"
    unetr, _ = unetr_from_card(package.card["architecture"])
    unetr.load_state_dict(package.state_dict, strict=True)


def test_no_encoder_means_random_initialisation():
    choice = choose_encoder("none", preset_name="tiny", patch_size=48)
    assert choice.state is None and choice.preset.img_size == 48 and choice.origin["kind"] == "random"
    with pytest.raises(SSLSegError, match="no such folder or file"):
        choose_encoder("/nonexistent/encoder.pt")


def test_retraining_from_a_model_keeps_its_network_and_organs_and_adds_new_ones(labelled_dir, tmp_path, run_finetune):
    """``--from-model``: every tensor of the package is the new network's starting point (the output layer's old
    rows exactly, one new row for the new organ), the old organs keep their values, the new one is appended, the
    package's preprocessing is kept (another --spacing on the command line is not used), and the card says where it
    came from."""
    import json

    import numpy as np
    import torch

    from sslseg.finetune.from_model import load_starting_weights, read_starting_model
    from sslseg.io.volume_io import read_volume, write_volume
    from sslseg.models.unetr import build_unetr

    first = tmp_path / "first"
    run_finetune(labelled_dir, first, max_steps=2, val_every=0)
    start = read_starting_model(first)
    organs = [label.name for _, label in sorted(start.labels.labels.items())]

    # a corrected case that draws one more organ ("tumour", value 9) into a copy of the data
    corrected = tmp_path / "corrected"
    (corrected / "imagesTr").mkdir(parents=True)
    (corrected / "labelsTr").mkdir()
    for image in sorted((labelled_dir / "imagesTr").glob("*.nii.gz"))[:2]:
        labels = read_volume(labelled_dir / "labelsTr" / image.name)
        array = labels.array.copy()
        array[10:14, 10:14, 10:14] = 9
        write_volume(read_volume(image), corrected / "imagesTr" / image.name)
        write_volume(labels.with_array(array), corrected / "labelsTr" / image.name)
    names = json.loads((labelled_dir / "dataset.json").read_text())
    names["labels"]["9"] = "tumour"
    (corrected / "dataset.json").write_text(json.dumps(names))

    model = build_unetr(start.preset, len(organs) + 2, start.feature_size)
    report = load_starting_weights(model, start.package.state_dict)
    state = model.state_dict()
    assert len(report["grown"]) == 2  # the output convolution's weight and bias
    for name, tensor in start.package.state_dict.items():
        kept = state[name][: tensor.shape[0]] if name in report["grown"] else state[name]
        assert torch.equal(kept, tensor.to(kept.dtype)), name

    second = tmp_path / "second"
    summary = run_finetune(corrected, second, from_model=str(first), spacing=(4.0, 4.0, 4.0), max_steps=2,
                           val_every=0, feature_size=16)
    card = json.loads((second / "model.json").read_text())
    assert [label["name"] for label in card["labels"]] == organs + ["tumour"]
    assert [label["value"] for label in card["labels"]] == list(range(1, len(organs) + 2))
    assert card["preprocessing"] == start.package.card["preprocessing"]
    assert card["architecture"]["config"]["feature_size"] == start.feature_size
    encoder = card["provenance"]["encoder"]
    assert encoder["kind"] == "model-package" and encoder["path"] == str(first.resolve())
    assert summary["encoder_transferred"] == report["transferred"]


def test_retraining_refuses_what_would_change_the_model(labelled_dir, tmp_path, run_finetune):
    from sslseg.errors import SSLSegError

    first = tmp_path / "first"
    run_finetune(labelled_dir, first, max_steps=1, val_every=0)
    with pytest.raises(SSLSegError, match="--encoder or --from-model, not both"):
        run_finetune(labelled_dir, tmp_path / "a", from_model=str(first), encoder=str(first))
    with pytest.raises(SSLSegError, match="--patch-size 64 differs from the model package's 32"):
        run_finetune(labelled_dir, tmp_path / "b", from_model=str(first), patch_size=64)
    with pytest.raises(SSLSegError, match="no model package there"):
        run_finetune(labelled_dir, tmp_path / "c", from_model=str(tmp_path / "nothing"))
