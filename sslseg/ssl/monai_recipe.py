"""MONAI's ViT self-supervised recipe: reconstruct the patch from two damaged views, with a contrastive term.

Tang et al. / MONAI ``self_supervised_pretraining/vit_unetr_ssl`` tutorial (after Haghighi et al., "Models Genesis",
and Chen et al., SimCLR). Per patch x (1, S, S, S): two views v1, v2 (:mod:`sslseg.ssl.coarse_views`); a
``ViTAutoEnc`` reconstructs both, y_i = f(v_i) (1, S, S, S). Loss over a batch:

    r  = mean |y_1 - x|                               (L1 reconstruction of view 1)
    cl = NT-Xent(flatten(y_1), flatten(y_2); T)       (contrastive between the two reconstructions)
    loss = r + cl * r                                 (the "regularised" contrastive loss of the tutorial)

Temperature: the tutorial's README says 0.005, its code has always used 0.05; we default to 0.05 (the value the
published results come from), and compute NT-Xent in a form that stays finite for any T > 0
(:mod:`sslseg.ssl.contrastive`), so 0.005 trains instead of giving NaN.

Under DDP the reconstruction and contrastive terms are computed over the global batch (tensors gathered from every
process), so two processes of batch B compute the same loss as one process of batch 2B.
"""

from __future__ import annotations

import logging

from sslseg.errors import SSLSegError
from sslseg.models.vit_autoenc import build_vit_autoenc, encoder_state_dict
from sslseg.ssl.base import LossOutput, SSLMethod
from sslseg.ssl.coarse_views import REFERENCE_PATCH, CoarseViewSettings, build_view_transform, make_view
from sslseg.ssl.contrastive import MONAI_OVERFLOW_TEMPERATURE, contrastive_loss
from sslseg.training.amp import full_precision

log = logging.getLogger(__name__)

DEFAULT_TEMPERATURE = 0.05


class InpaintContrastive(SSLMethod):
    """In-/out-painting + local shuffling views, ``ViTAutoEnc`` reconstruction, L1 + contrastive loss.

    Its options stay the keyword arguments they always were (``temperature``, ``views``), so its card, run identity
    and results are unchanged by the method layer.
    """

    name = "inpaint-contrastive"
    legacy_options = True
    trained_in = "monai.networks.nets.ViTAutoEnc"

    def __init__(self, temperature: float = DEFAULT_TEMPERATURE, views: dict | None = None, **ignored) -> None:
        if not temperature > 0:
            raise SSLSegError(f"contrastive temperature must be > 0, got {temperature}",
                              f"use --temperature {DEFAULT_TEMPERATURE} (the MONAI recipe's value)")
        if temperature < MONAI_OVERFLOW_TEMPERATURE:
            log.info("temperature %g: MONAI's formulation would overflow; using the log-sum-exp form", temperature)
        settings = CoarseViewSettings(**{k: tuple(v) if isinstance(v, list) else v for k, v in (views or {}).items()})
        self.options = dict(temperature=float(temperature), views=settings.to_dict(),
                            view_sizes_scale_with_patch_from=REFERENCE_PATCH)
        self.temperature = float(temperature)
        self.view_settings = settings
        self._transforms: dict[int, object] = {}

    def make_views(self, patch, random_state) -> dict:
        """``gt`` (the patch), ``view1``, ``view2``: torch float32 (1, S, S, S) each."""
        import torch

        size = int(patch.shape[-1])
        if size not in self._transforms:
            self._transforms[size] = build_view_transform(self.view_settings, size)
        transform = self._transforms[size]
        seed_1, seed_2 = random_state.randint(0, 2**32, size=2, dtype="uint64")
        return {
            "gt": torch.as_tensor(patch, dtype=torch.float32),
            "view1": make_view(transform, patch, int(seed_1)),
            "view2": make_view(transform, patch, int(seed_2)),
        }

    def build_model(self, preset):
        return build_vit_autoenc(preset)

    def step_loss(self, model, batch: dict, ctx) -> LossOutput:
        return self.loss(model, batch, ctx.gather)

    def preview_images(self, views: dict) -> dict:
        import numpy as np

        return {"view1": np.asarray(views["view1"])[0], "view2": np.asarray(views["view2"])[0]}

    def reconstruct(self, model, views):
        """(B, 1, S, S, S) views -> reconstructions of the same shape."""
        return model(views)[0]

    def loss(self, model, batch: dict, gather) -> LossOutput:
        import torch

        gt, view1, view2 = batch["gt"], batch["view1"], batch["view2"]
        batch_size = gt.shape[0]
        both = self.reconstruct(model, torch.cat([view1, view2], dim=0))  # (2B, 1, S, S, S)
        with full_precision(both):
            both = both.float()
            out1, out2 = both[:batch_size], both[batch_size:]
            per_sample_l1 = (out1 - gt.float()).abs().flatten(1).mean(dim=1)  # (B,)
            r = gather(per_sample_l1).mean()
            cl = contrastive_loss(gather(out1.flatten(1)), gather(out2.flatten(1)), self.temperature)
            total = r + cl * r
        return LossOutput(total, {"reconstruction": float(r.detach()), "contrastive": float(cl.detach())})

    def validation_loss(self, model, batch: dict):
        """(B,) L1 between the reconstruction of view 1 and the patch, as the tutorial validates."""
        import torch

        with torch.no_grad():
            out = self.reconstruct(model, batch["view1"])
            with full_precision(out):
                return (out.float() - batch["gt"].float()).abs().flatten(1).mean(dim=1)

    def encoder_state(self, model) -> dict:
        model = getattr(model, "module", model)  # unwrap DistributedDataParallel
        return encoder_state_dict(model.state_dict())
