"""Probes during pretraining (``sslseg pretrain --probe LABELLED_DIR``): every K epochs the linear and kNN probes on
the encoder as it is now, beside the same probes on a random initialisation (measured once), so a user sees
representation quality grow, or a collapse, while it trains.

The labelled cases are preprocessed at the pretraining's spacing and CT window (the features were learnt at that
scale; MR cases get the fine-tuning's MR normalisation, not the pretraining's percentiles), into ``<cache>/probe``.
The probes run on the CPU, on rank 0; a probe that fails is logged and skipped, the training goes on. The other ranks return nothing (the record is rank 0's).
"""

from __future__ import annotations

import logging
from pathlib import Path

from sslseg.probes.frozen_encoder import RANDOM_INIT, frozen_features
from sslseg.probes.run import ProbeConfig, prepare, run_probes
from sslseg.training.plots import PROBE_DICE, PROBE_KNN, PROBE_LINES

log = logging.getLogger(__name__)



class LiveProbe:
    """``() -> dict`` for :attr:`sslseg.training.loop.TrainParts.probe`."""

    def __init__(self, labelled_dir: str, pretrain_config, preset, method, model, cache_dir: Path, is_main: bool):
        self.preset, self.method, self.model, self.is_main = preset, method, model, is_main
        spacing = float(pretrain_config.spacing)
        self.config = ProbeConfig(encoder="none", data_dir=str(labelled_dir), spacing=(spacing,) * 3,
                                  ct_window=tuple(pretrain_config.ct_window), modality=pretrain_config.modality,
                                  seed=pretrain_config.seed)
        self.data = prepare(self.config, preset.img_size, Path(cache_dir) / "probe") if is_main else None
        self.baseline: dict | None = None

    def __call__(self) -> dict:
        if not self.is_main:
            return {}
        try:
            return self._measure()
        except Exception as error:  # a failed probe must not end the pretraining: it is a measurement, not the work
            log.warning("the probe on %s failed (%s: %s); training goes on", self.config.data_dir,
                        type(error).__name__, error)
            return {}

    def _measure(self) -> dict:
        now = run_probes(frozen_features(self.preset, self.method.encoder_state(self.model), self.config.seed),
                         self.data, self.config)
        if self.baseline is None:
            self.baseline = run_probes(frozen_features(self.preset, None, self.config.seed), self.data, self.config)
        return {PROBE_DICE: now["linear_dice"], PROBE_KNN: now["knn_accuracy"],
                PROBE_LINES: {"kNN accuracy": now["knn_accuracy"],
                              f"{RANDOM_INIT}: linear Dice": self.baseline["linear_dice"],
                              f"{RANDOM_INIT}: kNN accuracy": self.baseline["knn_accuracy"]}}
