"""The pretrained encoder as files: ``encoder.safetensors`` (ViT tensors) + ``encoder.json`` (its card), and its
transfer into MONAI ``UNETR``.

Tensor names are those of MONAI ``ViTAutoEnc`` (``patch_embedding.*``, ``blocks.N.*``, ``norm.*``); ``UNETR`` holds
the same tensors under ``vit.``. A transfer reports every tensor it copied, so callers check the count rather than
trusting ``strict=False`` (which hides everything).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from sslseg.errors import SSLSegError
from sslseg.models.vit_autoenc import ENCODER_PREFIXES
from sslseg.package.files import sha256_of, write_atomically, write_json

ENCODER_WEIGHTS = "encoder.safetensors"
ENCODER_CARD = "encoder.json"
CARD_FORMAT = "sslseg-encoder"
CARD_FORMAT_VERSION = 1

#: Wrappers that other tools put in front of the encoder's names (DDP, Lightning, MoCo, BYOL, ...).
FOREIGN_PREFIXES = ("module.", "model.", "encoder_q.", "online_network.encoder.", "backbone.", "encoder.", "vit.")
#: Keys under which other tools nest the state dict in a checkpoint.
NESTING_KEYS = ("state_dict", "model", "model_state_dict", "net")


@dataclass
class TransferReport:
    """What :func:`load_encoder_into` did.

    Attributes:
        transferred: target names that received a pretrained tensor.
        missing: target encoder names with no pretrained tensor.
        unexpected: pretrained names with no place in the target.
        mismatched: ``(name, pretrained shape, target shape)`` for tensors of the wrong size.
    """

    transferred: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    mismatched: list[tuple[str, tuple, tuple]] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        return not (self.missing or self.unexpected or self.mismatched)

    def summary(self) -> str:
        text = f"{len(self.transferred)} encoder tensors transferred"
        if self.missing:
            text += f", {len(self.missing)} missing (e.g. {self.missing[0]})"
        if self.unexpected:
            text += f", {len(self.unexpected)} unused (e.g. {self.unexpected[0]})"
        if self.mismatched:
            name, a, b = self.mismatched[0]
            text += f", {len(self.mismatched)} of another shape (e.g. {name}: {a} vs {b})"
        return text


def save_encoder(folder: str | Path, encoder_state: dict, card: dict) -> Path:
    """Write ``encoder.safetensors`` and ``encoder.json`` atomically; returns the card path.

    Args:
        encoder_state: name -> tensor, names as in ``ViTAutoEnc`` (see :func:`~sslseg.models.vit_autoenc.
            encoder_state_dict`).
        card: architecture/preprocessing/provenance sections; format, weights file and hash are added here.
    """
    from safetensors.torch import save_file

    folder = Path(folder)
    weights = folder / ENCODER_WEIGHTS
    tensors = {k: v.detach().to("cpu").contiguous().clone() for k, v in encoder_state.items()}
    write_atomically(weights, lambda p: save_file(tensors, str(p), metadata={"format": CARD_FORMAT}))
    full = {"format": CARD_FORMAT, "format_version": CARD_FORMAT_VERSION,
            "weights": {"file": ENCODER_WEIGHTS, "sha256": sha256_of(weights), "tensors": len(tensors)}, **card}
    write_json(folder / ENCODER_CARD, full)
    return folder / ENCODER_CARD


def read_encoder(folder: str | Path) -> tuple[dict, dict]:
    """(card, state dict) of an encoder folder; the weights are checked against the card's SHA-256."""
    from safetensors.torch import load_file

    folder = Path(folder)
    card_path, weights = folder / ENCODER_CARD, folder / ENCODER_WEIGHTS
    if not card_path.is_file() or not weights.is_file():
        raise SSLSegError(f"{folder} holds no pretrained encoder ({ENCODER_CARD} + {ENCODER_WEIGHTS})",
                          "point to the output folder of `sslseg pretrain`")
    card = json.loads(card_path.read_text(encoding="utf-8"))
    if card.get("format") != CARD_FORMAT:
        raise SSLSegError(f"{card_path} is not an sslseg encoder card", "point to the output of `sslseg pretrain`")
    if sha256_of(weights) != card["weights"]["sha256"]:
        raise SSLSegError(f"{weights} does not match the hash in {card_path}", "the weights were changed or damaged")
    return card, load_file(str(weights))


def normalise_encoder_keys(state: dict) -> dict:
    """ViT encoder tensors of a foreign state dict under ``ViTAutoEnc`` names; everything else is dropped.

    Unwraps ``{"state_dict": {...}}``-style nesting, then strips known prefixes (``module.``, ``model.``,
    ``encoder_q.``, ``online_network.encoder.``, ``vit.``, ...) until the names start like a ViT's.
    """
    for key in NESTING_KEYS:
        if isinstance(state.get(key), dict):
            return normalise_encoder_keys(state[key])
    result = {}
    for name, tensor in state.items():
        stripped = True
        while stripped and not name.startswith(ENCODER_PREFIXES):
            stripped = False
            for prefix in FOREIGN_PREFIXES:
                if name.startswith(prefix):
                    name, stripped = name[len(prefix):], True
                    break
        if name.startswith(ENCODER_PREFIXES):
            result[name] = tensor
    return result


def load_encoder_into(module, encoder_state: dict, target_prefix: str = "vit.", require_complete: bool = True):
    """Copy pretrained encoder tensors into ``module`` (e.g. a ``UNETR``, whose ViT lives under ``vit.``).

    Every target tensor named ``target_prefix + <encoder name>`` is a candidate. Returns a
    :class:`TransferReport`; with ``require_complete`` an incomplete transfer raises an error naming what is wrong.
    """
    import torch

    source = normalise_encoder_keys(encoder_state)
    target = module.state_dict()
    candidates = [k for k in target if k.startswith(target_prefix) and k[len(target_prefix):].startswith(ENCODER_PREFIXES)]
    report = TransferReport()
    updated = {}
    for name in candidates:
        key = name[len(target_prefix):]
        if key not in source:
            report.missing.append(name)
        elif tuple(source[key].shape) != tuple(target[name].shape):
            report.mismatched.append((name, tuple(source[key].shape), tuple(target[name].shape)))
        else:
            updated[name] = source[key].to(dtype=target[name].dtype)
            report.transferred.append(name)
    report.unexpected = sorted(set(source) - {n[len(target_prefix):] for n in candidates})
    if require_complete and not report.complete:
        raise SSLSegError(f"the pretrained encoder does not fit this network: {report.summary()}",
                          "use the same --preset and --patch-size as for pretraining (see encoder.json)")
    with torch.no_grad():
        for name, tensor in updated.items():
            _parameter_or_buffer(module, name).copy_(tensor)
    return report


def _parameter_or_buffer(module, name: str):
    owner_name, _, leaf = name.rpartition(".")
    owner = module.get_submodule(owner_name) if owner_name else module
    return getattr(owner, leaf)
