"""The demo's stages, in order: each takes the shared :class:`~sslseg.demo.pipeline.DemoContext` and adds artefacts
and report lines."""

from __future__ import annotations

from sslseg.demo.data_stages import inspect, synthesise
from sslseg.demo.pipeline import Stage
from sslseg.demo.result_stages import draw_overlays, evaluate, segment_unseen, write_scene
from sslseg.demo.training_stages import finetune_model, pretrain_encoder

STAGES = [
    Stage("synthesise", synthesise),
    Stage("inspect", inspect),
    Stage("pretrain", pretrain_encoder),
    Stage("finetune", finetune_model),
    Stage("segment", segment_unseen),
    Stage("evaluate", evaluate),
    Stage("scene", write_scene),
    Stage("overlay", draw_overlays),
]
