"""3-D rotation prediction: which rotation of the patch was applied? (RotNet carried to volumes.)

Gidaris, Singh, Komodakis, "Unsupervised Representation Learning by Predicting Image Rotations", ICLR 2018 (RotNet,
2-D: 4 rotations); Jing & Tian's 3DRotNet (arXiv 1811.11387) for video cubes; Taleb et al., "3D Self-Supervised
Methods for Medical Imaging", NeurIPS 2020 (rotation prediction on CT/MR volumes, 10 rotations about the axes).

Per sample: the patch x (1, S, S, S) of a RAS-oriented volume, a rotation r drawn uniformly from the set
(:mod:`sslseg.ssl.cube_rotations`, exact: transpositions and reversals, no interpolation), the view r(x) and the
label r's index. Model: pooled ViT features (B, hidden) -> Linear -> (B, R) logits; loss: cross-entropy over the
gathered global batch (so every process logs the one-process value; DDP's averaging then gives its gradient).

Which rotations: ``axial`` (default, the 4 turns of the axial plane) or ``cube`` (all 24). Both are proper rotations,
never mirror images, so the task does not make features invariant to the side: a 180-degree axial turn swaps left
and right *and* front and back, and telling it from the identity needs exactly the features that know where
the liver is relative to the spine — the opposite of the flips the joint-embedding views avoid. ``axial`` keeps
the task well posed: every axial slice of a CT has a clear anterior (the belly) and the turns of it are what a
scanner never produces; ``cube`` adds 20 rotations that tip the head-foot axis, which a patch of soft tissue can
make ambiguous (a liver interior looks alike from every side) — available, measured only by the contract test.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from sslseg.ssl.base import SSLMethod, StepContext
from sslseg.ssl.cube_rotations import SETS, rotate
from sslseg.ssl.module import MethodModule
from sslseg.ssl.pretext_loss import classification_loss


@dataclass(frozen=True)
class RotationOptions:
    rotations: str = "axial"

    def __post_init__(self) -> None:
        if self.rotations not in SETS:
            raise ValueError(f"rotations must be one of {', '.join(SETS)}, got {self.rotations!r}")


class RotationModule(MethodModule):
    def __init__(self, preset, classes: int) -> None:
        super().__init__(preset)
        self.head = torch.nn.Linear(self.backbone.out_dim, classes)

    def logits(self, view: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(features (B, hidden), logits (B, R)) of views (B, 1, S, S, S)."""
        features = self.backbone(view)
        return features, self.head(features)

    def forward(self, batch: dict, ctx: StepContext):
        features, logits = self.logits(batch["view"])
        loss, parts = classification_loss(logits, batch["rotation"], ctx, "rotation")
        return self.with_collapse(loss, parts, features, ctx.step)


class RotationPrediction(SSLMethod):
    name = "rotation"
    Options = RotationOptions

    def make_views(self, region, random_state) -> dict:
        rotations = SETS[self.opts.rotations]
        index = int(random_state.randint(len(rotations)))
        return {"view": torch.from_numpy(rotate(region, rotations[index])),
                "rotation": torch.tensor(index, dtype=torch.long)}

    def build_model(self, preset):
        return RotationModule(preset, len(SETS[self.opts.rotations]))
