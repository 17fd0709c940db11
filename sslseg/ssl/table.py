"""The one table of self-supervised methods: name -> where its class lives and what it does in one line.

Torch-free (plain strings), so the CLI's ``--method`` choices and help, the SSLPretrain panel's method list and the
docs read it without importing torch; :func:`sslseg.ssl.base.create_method` imports a method's module only when it is
chosen. A new method is one new file plus one row here.
"""

from __future__ import annotations

from typing import NamedTuple


class MethodEntry(NamedTuple):
    """One row: ``target`` is ``"module:Class"``; ``aliases`` are other names accepted by ``--method``."""

    target: str
    description: str
    aliases: tuple[str, ...] = ()


#: The default method comes first.
METHODS: dict[str, MethodEntry] = {
    "inpaint-contrastive": MethodEntry(
        "sslseg.ssl.monai_recipe:InpaintContrastive",
        "MONAI's recipe: in-/out-painting + voxel shuffling, ViTAutoEnc reconstruction (L1) + contrastive term",
        ("monai",)),
    "simclr": MethodEntry(
        "sslseg.ssl.simclr:SimCLR",
        "SimCLR (Chen 2020): two views, MLP projector, NT-Xent over the global batch"),
    "byol": MethodEntry(
        "sslseg.ssl.byol:BYOL",
        "BYOL (Grill 2020): online network + predictor regresses a momentum network's projection, no negatives"),
    "moco-v3": MethodEntry(
        "sslseg.ssl.moco_v3:MoCoV3",
        "MoCo v3 (Chen 2021): query network + predictor against momentum keys of the global batch, no queue",
        ("mocov3",)),
    "moco-v2": MethodEntry(
        "sslseg.ssl.moco_v2:MoCoV2",
        "MoCo v2 (Chen 2020): query network + MLP head against momentum keys and a queue of past keys (InfoNCE)",
        ("mocov2",)),
    "simsiam": MethodEntry(
        "sslseg.ssl.simsiam:SimSiam",
        "SimSiam (Chen & He 2021): shared network + predictor, stop-gradient on the other view, no negatives"),
    "barlow-twins": MethodEntry(
        "sslseg.ssl.barlow_twins:BarlowTwins",
        "Barlow Twins (Zbontar 2021): cross-correlation of the two views' projections pushed to the identity",
        ("barlowtwins",)),
    "vicreg": MethodEntry(
        "sslseg.ssl.vicreg:VICReg",
        "VICReg (Bardes 2022): invariance + per-dimension variance + decorrelation of the two views' projections"),
    "w-mse": MethodEntry(
        "sslseg.ssl.wmse:WMSE",
        "W-MSE (Ermolov 2021): k views' projections whitened over the global batch, then MSE of the normalised pairs",
        ("wmse",)),
    "swav": MethodEntry(
        "sslseg.ssl.swav:SwAV",
        "SwAV (Caron 2020): multi-crop; Sinkhorn codes of the global crops over prototypes predicted from every other "
        "crop"),
    "rotation": MethodEntry(
        "sslseg.ssl.rotation:RotationPrediction",
        "3-D rotation prediction (Gidaris 2018, Taleb 2020): classify which exact turn of the patch was applied "
        "(axial: 4; cube: 24)",
        ("rotnet",)),
    "relative-position": MethodEntry(
        "sslseg.ssl.relative_position:RelativePosition",
        "3-D relative position (Doersch 2015, Taleb 2020): which of the 26 neighbours of a centre sub-cube another "
        "sub-cube is"),
    "rubiks-cube": MethodEntry(
        "sslseg.ssl.rubiks_cube:RubiksCube",
        "Rubik's cube recovery (Zhuang 2019): 2x2x2 sub-cubes permuted (1 of 100) and turned 180 degrees; predict "
        "the order and each turn",
        ("rubik",)),
    "pgl": MethodEntry(
        "sslseg.ssl.pgl:PGL",
        "PGL (Xie 2020): BYOL plus a local loss between the tokens of the two views that see the same place, "
        "matched through the crops"),
}

DEFAULT_METHOD = "inpaint-contrastive"


def available_methods() -> list[str]:
    """The canonical method names, in table order (the default first)."""
    return list(METHODS)


def canonical_name(name: str) -> str | None:
    """The canonical name of ``name`` or of an alias; None if unknown."""
    if name in METHODS:
        return name
    return next((key for key, entry in METHODS.items() if name in entry.aliases), None)


def method_help() -> str:
    """``name: description`` lines for ``--help`` and docs."""
    return "\n".join(f"  {name:<20} {entry.description}" for name, entry in METHODS.items())
