"""``--encoder``: where UNETR's ViT comes from, and the ViT preset (and ``img_size``) the UNETR must have for it.

* a pretraining RUN_DIR (``encoder.json`` + ``encoder.safetensors``): the preset is the card's; ``--preset``, if
  given, must agree;
* a ``.pt``/``.pth`` file as MONAI's SSL tutorial saves ``ViTAutoEnc`` (``torch.save(model.state_dict())``, possibly
  nested under ``state_dict`` and prefixed with ``module.``), or a ``.safetensors`` file: read with
  ``weights_only=True`` only; its hidden size, MLP width, depth and qkv bias are read off the tensors and must match
  ``--preset`` (default ``vit-b``), each difference named; its patch embedding's ``proj_type`` (``conv`` or
  ``perceptron``, told by the tensor names) is followed: the UNETR is built with it, since no preset offers
  ``perceptron`` and a mismatch would leave the embedding untrained;
* ``none``: random initialisation.

The encoder's own input size is its position-embedding grid (x16). ``--patch-size`` defaults to it; another value
resizes the position embeddings at transfer (:func:`sslseg.models.encoder_io.load_encoder_into`), reported.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from sslseg.errors import SSLSegError
from sslseg.models.encoder_io import (ENCODER_CARD, POSITION_EMBEDDING, encoder_proj_type, normalise_encoder_keys,
                                      read_encoder, read_encoder_file, token_grid)
from sslseg.models.presets import ViTPreset, get_preset, preset_from_dict
from sslseg.package.files import sha256_of

DEFAULT_PRESET = "vit-b"
#: ViT settings that must agree between an encoder and the UNETR built for it (img_size may differ: resized;
#: proj_type is taken from the encoder).
MATCHING_FIELDS = ("hidden_size", "mlp_dim", "num_layers", "patch_size", "qkv_bias")


@dataclass
class EncoderChoice:
    """Attributes:
        state: ViT tensors under ``ViTAutoEnc`` names, or None (random initialisation).
        preset: the UNETR's ViT preset, ``img_size`` = the training crop and inference window.
        origin: the card's provenance entry (kind, path, hashes, SSL method, data fingerprint).
        encoder_img_size: the input size the encoder was trained at (None for random).
    """

    state: dict | None
    preset: ViTPreset
    origin: dict
    encoder_img_size: int | None = None


def choose_encoder(option: str, preset_name: str | None = None, patch_size: int | None = None) -> EncoderChoice:
    """Read ``--encoder`` (RUN_DIR, weights file, or ``none``) and decide the UNETR's preset."""
    if str(option).lower() == "none":
        preset = get_preset(preset_name or DEFAULT_PRESET).with_img_size(patch_size)
        return EncoderChoice(None, preset, {"kind": "random", "description": "random initialisation"})
    path = Path(option)
    if path.is_dir():
        return _from_run_dir(path, preset_name, patch_size)
    if path.is_file():
        return _from_file(path, preset_name, patch_size)
    raise SSLSegError(f"--encoder {option}: no such folder or file",
                      "give a pretraining RUN_DIR (with encoder.json), a .pt/.pth weights file, or none")


def _from_run_dir(folder: Path, preset_name: str | None, patch_size: int | None) -> EncoderChoice:
    card, state = read_encoder(folder)
    trained = preset_from_dict(card["architecture"]["config"])
    if preset_name and preset_name != trained.name:
        raise SSLSegError(f"--preset {preset_name} differs from the encoder's preset {trained.name} "
                          f"({folder / ENCODER_CARD})", f"leave out --preset, or use --preset {trained.name}")
    provenance = card.get("provenance", {})
    origin = {"kind": "sslseg-pretraining", "path": str(folder.resolve()), "weights_sha256": card["weights"]["sha256"],
              "preset": trained.name, "img_size": trained.img_size, "ssl_method": provenance.get("ssl_method"),
              "data_fingerprint": provenance.get("data_fingerprint"), "pretrained_on": provenance.get("date")}
    return EncoderChoice(state, trained.with_img_size(patch_size or trained.img_size), origin, trained.img_size)


def describe_state(state: dict) -> dict:
    """The ViT settings a state dict (``ViTAutoEnc`` names) reveals: hidden_size, mlp_dim, num_layers, patch_size,
    proj_type, qkv_bias and img_size (from the position-embedding grid); absent where it cannot tell."""
    found: dict = {}
    position = state.get(POSITION_EMBEDDING)
    if position is not None and position.ndim == 3:
        found["hidden_size"] = int(position.shape[2])
    proj_type = encoder_proj_type(state)
    if proj_type:
        found["proj_type"] = proj_type
    if proj_type == "conv":  # Conv3d weight (hidden, channels, p, p, p)
        found["patch_size"] = int(state["patch_embedding.patch_embeddings.weight"].shape[-1])
    elif proj_type == "perceptron":  # Linear weight (hidden, p^3 x channels), one channel
        found["patch_size"] = round(int(state["patch_embedding.patch_embeddings.1.weight"].shape[1]) ** (1 / 3))
    linear = state.get("blocks.0.mlp.linear1.weight")
    if linear is not None:
        found["mlp_dim"] = int(linear.shape[0])
    blocks = {name.split(".")[1] for name in state if name.startswith("blocks.")}
    if blocks:
        found["num_layers"] = len(blocks)
        found["qkv_bias"] = "blocks.0.attn.qkv.bias" in state
    if position is not None and token_grid(position.shape) and "patch_size" in found:
        found["img_size"] = token_grid(position.shape) * found["patch_size"]
    return found


def _from_file(path: Path, preset_name: str | None, patch_size: int | None) -> EncoderChoice:
    raw = read_encoder_file(path)
    state = normalise_encoder_keys(raw)
    if not state:
        example = next(iter(raw), None)
        raise SSLSegError(f"{path} holds no ViT encoder tensors (patch_embedding.*, blocks.N.*, norm.*; first key "
                          f"{example!r})", "give a ViTAutoEnc / ViT state dict, e.g. from MONAI's SSL tutorial")
    found = describe_state(state)
    preset = get_preset(preset_name or DEFAULT_PRESET)
    preset = replace(preset, proj_type=found.get("proj_type", preset.proj_type))  # a fact of the file, not a size
    wanted = preset.to_dict()
    differences = [f"{k} {found[k]!r} in the file vs {wanted[k]!r} in preset {preset.name}"
                   for k in MATCHING_FIELDS if k in found and found[k] != wanted[k]]
    if differences:
        raise SSLSegError(f"the encoder in {path} does not fit UNETR preset {preset.name}: " + "; ".join(differences),
                          "use the --preset the encoder was trained with")
    encoder_img_size = found.get("img_size")
    if encoder_img_size:
        preset = replace(preset, img_size=encoder_img_size)
    origin = {"kind": "file", "path": str(path.resolve()), "sha256": sha256_of(path), "tensors": len(state),
              "img_size": encoder_img_size, "proj_type": preset.proj_type, "ssl_method": None,
              "note": "a weights file records no SSL method or data; see where it came from"}
    return EncoderChoice(state, preset.with_img_size(patch_size or preset.img_size), origin, encoder_img_size)
