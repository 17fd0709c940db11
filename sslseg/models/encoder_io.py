"""The pretrained encoder as files: ``encoder.safetensors`` (ViT tensors) + ``encoder.json`` (its card), and its
transfer into MONAI ``UNETR``.

Tensor names are those of MONAI ``ViTAutoEnc`` (``patch_embedding.*``, ``blocks.N.*``, ``norm.*``); ``UNETR`` holds
the same tensors under ``vit.``. A transfer reports every tensor it copied, so callers check the count rather than
trusting ``strict=False`` (which hides everything).

Encoders from elsewhere (MONAI's SSL tutorial saves ``ViTAutoEnc.state_dict()`` with ``torch.save``) are read by
:func:`read_encoder_file` with ``torch.load(weights_only=True)`` only: a file that would need full unpickling (which
can run arbitrary code) is refused. Two silent failures of the usual ``strict=False`` transfer are made loud here: a
patch embedding of another ``proj_type`` (other tensor names, so it would simply be skipped), and position
embeddings for another input size, which are resized on request (trilinear over the token grid) and reported.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from sslseg.errors import SSLSegError
from sslseg.models.vit_autoenc import ENCODER_PREFIXES
from sslseg.package.files import sha256_of, write_atomically, write_json
from sslseg.package.safe_torch import load_weights_only

#: The encoder a pretraining RUN_DIR offers (``read_encoder``, fine-tuning's ``--encoder RUN_DIR``): its files are
#: ENCODER_NAME + ".safetensors" / ".json"; ``save_encoder`` can write an encoder under another name beside it.
ENCODER_NAME = "encoder"
ENCODER_WEIGHTS = f"{ENCODER_NAME}.safetensors"
ENCODER_CARD = f"{ENCODER_NAME}.json"
CARD_FORMAT = "sslseg-encoder"
CARD_FORMAT_VERSION = 1

#: Wrappers that other tools put in front of the encoder's names (DDP, Lightning, MoCo, BYOL, ...).
FOREIGN_PREFIXES = ("module.", "model.", "encoder_q.", "online_network.encoder.", "backbone.", "encoder.", "vit.")
#: Keys under which other tools nest the state dict in a checkpoint.
NESTING_KEYS = ("state_dict", "model", "model_state_dict", "net")
#: Target tensors a transfer may leave at their initial values: MONAI >= 1.3 gives every transformer block a
#: LayerNorm for cross-attention (``norm_cross_attn``) that ViT and UNETR never use; encoders saved by older MONAI
#: (e.g. with the SSL tutorial) do not have it.
UNUSED_TARGETS = (".norm_cross_attn.",)
POSITION_EMBEDDING = "patch_embedding.position_embeddings"
#: The patch embedding's weight name for each MONAI ``proj_type``.
PROJ_TYPE_KEYS = {"conv": "patch_embedding.patch_embeddings.weight",
                  "perceptron": "patch_embedding.patch_embeddings.1.weight"}


@dataclass
class TransferReport:
    """What :func:`load_encoder_into` did.

    Attributes:
        transferred: target names that received a pretrained tensor.
        missing: target encoder names with no pretrained tensor.
        unexpected: pretrained names with no place in the target.
        mismatched: ``(name, pretrained shape, target shape)`` for tensors of the wrong size.
        resized: ``(name, pretrained shape, target shape)`` of position embeddings resized to the target's token
            grid (also counted in ``transferred``).
        kept_initial: unused target tensors the pretrained state lacks (see ``UNUSED_TARGETS``).
    """

    transferred: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    mismatched: list[tuple[str, tuple, tuple]] = field(default_factory=list)
    resized: list[tuple[str, tuple, tuple]] = field(default_factory=list)
    kept_initial: list[str] = field(default_factory=list)

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
        for name, a, b in self.resized:
            text += f"; {name} resized from {token_grid(a)}^3 to {token_grid(b)}^3 tokens (trilinear)"
        if self.kept_initial:
            text += f"; {len(self.kept_initial)} unused norm_cross_attn tensors not in the file, left as initialised"
        return text

    def to_dict(self) -> dict:
        """For events and cards: counts, and what was resized."""
        return {"transferred": len(self.transferred), "missing": len(self.missing),
                "unexpected": len(self.unexpected), "mismatched": len(self.mismatched),
                "kept_initial": len(self.kept_initial),
                "position_embedding_resized": [{"tensor": n, "from": list(a), "to": list(b)} for n, a, b in self.resized]}


def save_encoder(folder: str | Path, encoder_state: dict, card: dict, name: str = ENCODER_NAME) -> Path:
    """Write ``NAME.safetensors`` and ``NAME.json`` atomically; returns the card path.

    Args:
        encoder_state: name -> tensor, names as in ``ViTAutoEnc`` (see :func:`~sslseg.models.vit_autoenc.
            encoder_state_dict`).
        card: architecture/preprocessing/provenance sections; format, weights file and hash are added here.
        name: the files' stem; ``read_encoder`` reads only ``encoder`` (others, e.g. a run's last encoder beside its
            best, are loaded as weights files).
    """
    from safetensors.torch import save_file

    folder = Path(folder)
    weights = folder / f"{name}.safetensors"
    tensors = {k: v.detach().to("cpu").contiguous().clone() for k, v in encoder_state.items()}
    write_atomically(weights, lambda p: save_file(tensors, str(p), metadata={"format": CARD_FORMAT}))
    full = {"format": CARD_FORMAT, "format_version": CARD_FORMAT_VERSION,
            "weights": {"file": weights.name, "sha256": sha256_of(weights), "tensors": len(tensors)}, **card}
    write_json(folder / f"{name}.json", full)
    return folder / f"{name}.json"


def read_encoder(folder: str | Path) -> tuple[dict, dict]:
    """(card, state dict) of an encoder folder; the weights are checked against the card's SHA-256."""
    folder = Path(folder)
    card_path, weights = folder / ENCODER_CARD, folder / ENCODER_WEIGHTS
    if not card_path.is_file() or not weights.is_file():
        raise SSLSegError(f"{folder} holds no pretrained encoder ({ENCODER_CARD} + {ENCODER_WEIGHTS})",
                          "point to the output folder of `sslseg pretrain`")
    card = _read_encoder_card(card_path)
    if sha256_of(weights) != card["weights"]["sha256"]:
        raise SSLSegError(f"{weights} does not match the hash in {card_path}", "the weights were changed or damaged")
    return card, _load_safetensors(weights)


def read_encoder_card(folder: str | Path) -> dict:
    """The validated card of an encoder folder (weights neither loaded nor hashed: for describing it)."""
    path = Path(folder) / ENCODER_CARD
    if not path.is_file():
        raise SSLSegError(f"{folder} holds no pretrained encoder (no {ENCODER_CARD})",
                          "point to the output folder of `sslseg pretrain`")
    return _read_encoder_card(path)


#: What fine-tuning reads from an encoder card; the rest (provenance, preprocessing notes) is free-form.
ENCODER_CARD_SPEC = {"format": str, "format_version": int, "weights": {"file": str, "sha256": str, "tensors?": int},
                     "architecture": {"name": str, "trained_in?": str, "loads_into?": str, "in_channels?": int,
                                      "preset": str, "config": dict},
                     "preprocessing?": dict, "provenance?": dict}


def _read_encoder_card(path: Path) -> dict:
    """The validated encoder card: readable JSON, every field known and of the right type, our format."""
    from sslseg.package.schema import CardError, check

    try:
        card = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise CardError(f"cannot read {path}: {error}", "the file is damaged; pretrain again or copy the run folder "
                        "again") from error
    check(card, ENCODER_CARD_SPEC, "", str(path))
    if card["format"] != CARD_FORMAT or card["format_version"] > CARD_FORMAT_VERSION:
        raise CardError(f"{path} is not an sslseg encoder card this version reads ({card['format']} "
                        f"v{card['format_version']})", "point to the output of `sslseg pretrain`, or update sslseg")
    if card["weights"]["file"] != ENCODER_WEIGHTS:
        raise CardError(f"{path} names the weights {card['weights']['file']!r}, not {ENCODER_WEIGHTS}",
                        "the card was edited; an encoder folder only uses its own encoder.safetensors")
    return card


def _load_safetensors(path: Path) -> dict:
    """Tensors of a ``.safetensors`` file (which holds tensors only), or an error naming it."""
    from safetensors.torch import load_file

    try:
        return load_file(str(path))
    except Exception as error:  # noqa: BLE001 - SafetensorError, OSError, ...
        raise SSLSegError(f"cannot read {path}: {error}".splitlines()[0],
                          "it is damaged or not a safetensors file; copy or export it again") from error


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


def read_encoder_file(path: str | Path) -> dict:
    """The tensors of a ``.pt``/``.pth`` (``torch.load(weights_only=True)``: tensors and plain containers only) or
    ``.safetensors`` file, nesting and prefixes still in place (see :func:`normalise_encoder_keys`)."""
    path = Path(path)
    if not path.is_file():
        raise SSLSegError(f"encoder file {path} does not exist", "give a pretraining RUN_DIR, a .pt/.pth file or none")
    if path.suffix.lower() == ".safetensors":
        return _load_safetensors(path)
    state = load_weights_only(path, "the encoder file",
                              "save only the weights where it was made: torch.save(model.state_dict(), 'encoder.pt')",
                              "--encoder takes a pretraining RUN_DIR (encoder.json + encoder.safetensors), a .pt/.pth "
                              "file written by torch.save, a .safetensors file, or none")
    if not isinstance(state, dict):
        raise SSLSegError(f"{path} holds a {type(state).__name__}, not a state dict", "save model.state_dict()")
    return state


def encoder_proj_type(state: dict) -> str | None:
    """``"conv"`` or ``"perceptron"`` by the patch embedding's tensor names (``ViTAutoEnc`` names), None if absent."""
    for proj_type, key in PROJ_TYPE_KEYS.items():
        if key in state:
            return proj_type
    return None


def token_grid(shape) -> int:
    """Edge of the cubic token grid of a position embedding of shape (1, N, hidden): cbrt(N); 0 if N is no cube."""
    tokens = int(shape[1])
    edge = round(tokens ** (1 / 3))
    return edge if edge**3 == tokens else 0


def resize_position_embedding(embedding, grid: int):
    """(1, g^3, hidden) position embeddings resampled to (1, grid^3, hidden), trilinear over the token grid (a
    detached copy, for transferring weights; :func:`interpolate_position_embedding` is the differentiable one).

    Tokens are ordered as MONAI's patch embedding flattens them: the first spatial axis slowest.
    """
    return interpolate_position_embedding(embedding.detach(), grid)


def interpolate_position_embedding(embedding, grid):
    """(1, g^3, hidden) position embeddings resampled to the token grid ``grid`` (an edge, or three edges), trilinear,
    ``align_corners=False``: (1, prod(grid), hidden), differentiable with respect to ``embedding`` (for inputs smaller
    or larger than the ViT's ``img_size``, e.g. multi-crop's local views). Computed in float32, returned in the
    embedding's dtype; tokens ordered as MONAI's patch embedding flattens them (the first spatial axis slowest)."""
    import torch

    grid = (grid,) * 3 if isinstance(grid, int) else tuple(int(g) for g in grid)
    edge = token_grid(embedding.shape)
    if not edge:
        raise ValueError(f"position embeddings of shape {tuple(embedding.shape)} are not a cubic token grid")
    cube = embedding.float().reshape(1, edge, edge, edge, -1).permute(0, 4, 1, 2, 3)
    resized = torch.nn.functional.interpolate(cube, size=grid, mode="trilinear", align_corners=False)
    return resized.permute(0, 2, 3, 4, 1).reshape(1, grid[0] * grid[1] * grid[2], -1).to(embedding.dtype)


def _check_proj_type(source: dict, target_encoder: dict) -> None:
    found, wanted = encoder_proj_type(source), encoder_proj_type(target_encoder)
    if found and wanted and found != wanted:
        raise SSLSegError(
            f"the pretrained encoder embeds patches with proj_type '{found}', this network with '{wanted}': the patch "
            f"embedding's tensors have other names ({PROJ_TYPE_KEYS[found]} vs {PROJ_TYPE_KEYS[wanted]}), and a "
            "strict=False load would silently leave it untrained",
            f"build the network with proj_type='{found}' (`sslseg finetune --encoder` does so: it takes proj_type "
            "from the encoder's card or tensors)")


def load_encoder_into(module, encoder_state: dict, target_prefix: str = "vit.", require_complete: bool = True,
                      resize_position_embedding_to_fit: bool = False):
    """Copy pretrained encoder tensors into ``module`` (e.g. a ``UNETR``, whose ViT lives under ``vit.``).

    Every target tensor named ``target_prefix + <encoder name>`` is a candidate. Returns a
    :class:`TransferReport`; with ``require_complete`` an incomplete transfer raises an error naming what is wrong.
    A patch embedding of another ``proj_type`` is always an error. With ``resize_position_embedding_to_fit``,
    position embeddings of another cubic token grid (an encoder pretrained on another patch size) are resized
    (:func:`resize_position_embedding`) and listed in ``report.resized``.
    """
    import torch

    source = normalise_encoder_keys(encoder_state)
    target = module.state_dict()
    candidates = [k for k in target if k.startswith(target_prefix) and k[len(target_prefix):].startswith(ENCODER_PREFIXES)]
    _check_proj_type(source, {k[len(target_prefix):]: target[k] for k in candidates})
    report = TransferReport()
    updated = {}
    for name in candidates:
        key = name[len(target_prefix):]
        if key not in source:
            (report.kept_initial if any(u in key for u in UNUSED_TARGETS) else report.missing).append(name)
        elif tuple(source[key].shape) != tuple(target[name].shape):
            wanted = tuple(target[name].shape)
            if resize_position_embedding_to_fit and _resizable(key, source[key].shape, wanted):
                updated[name] = resize_position_embedding(source[key], token_grid(wanted)).to(dtype=target[name].dtype)
                report.resized.append((name, tuple(source[key].shape), wanted))
                report.transferred.append(name)
            else:
                report.mismatched.append((name, tuple(source[key].shape), wanted))
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


def _resizable(key: str, found, wanted) -> bool:
    return (key == POSITION_EMBEDDING and len(found) == len(wanted) == 3 and found[2] == wanted[2]
            and token_grid(found) > 0 and token_grid(wanted) > 0)


def _parameter_or_buffer(module, name: str):
    owner_name, _, leaf = name.rpartition(".")
    owner = module.get_submodule(owner_name) if owner_name else module
    return getattr(owner, leaf)
