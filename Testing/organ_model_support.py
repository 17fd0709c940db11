"""The suite's organ model (conftest's ``organ_model``), trained in a background process.

A tiny UNETR trained 800 steps on 8 of 10 labelled phantoms (2 held out, validated every 80 steps) is what the
learning, geometry, retraining and precision tests segment with. Trained in the test process it held the suite for
about 3.5 minutes; trained beside it, started as soon as the session has collected a test that needs it (and those
tests run last), it overlaps the rest of the suite. It trains on one torch thread: under the suite's passive OpenMP
waits a tiny model is ~10 % faster on one thread than on two (measured: 80 steps 15.7 s against 17.4 s on an
AVX512-BF16 EPYC), and the suite keeps the other core.

Run as a script (``python organ_model_support.py FOLDER``), it trains on ``FOLDER/cases`` into ``FOLDER/model`` and
writes the summary as ``FOLDER/summary.json``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from finetune_support import FINETUNE_GRID, FINETUNE_SPACING_MM, FINETUNE_TINY, LEARNING

#: 10 labelled phantoms like ``labelled_dir``'s: 8 for training, 2 held out (``val_fraction`` 0.2).
ORGAN_MODEL_CASES = 10
SUMMARY, LOG = "summary.json", "training.log"


def write_cases(folder: Path) -> Path:
    """The organ-model cohort (MSD layout, 6 mm, the grid of ``labelled_dir``) in ``folder``."""
    from sslseg.synth.cohort import write_labelled

    write_labelled(folder, ORGAN_MODEL_CASES, size=FINETUNE_GRID, spacing=FINETUNE_SPACING_MM, seed=5)
    return folder


def train(cases: Path, out: Path) -> dict:
    """800 steps (100 epochs of 8 cases), validated every 10 epochs; returns the run's summary."""
    from sslseg.finetune.config import FinetuneConfig
    from sslseg.finetune.run import finetune

    settings = {**FINETUNE_TINY, **LEARNING}
    return finetune(FinetuneConfig(data_dir=str(cases), out_dir=str(out), encoder="none", epochs=100, val_every=10,
                                   val_fraction=0.2, **settings))


class BackgroundOrganModel:
    """Writes the cohort into ``folder/cases`` now and trains the model in a child process; :meth:`result` waits."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        self.cases = write_cases(self.folder / "cases")
        with open(self.folder / LOG, "wb") as log:
            self.process = subprocess.Popen([sys.executable, __file__, str(self.folder)], stdout=log,
                                            stderr=subprocess.STDOUT, env={**os.environ, "OMP_NUM_THREADS": "1"})

    def result(self) -> tuple[Path, dict]:
        """(MODEL_DIR, summary) once the training has finished; its log in the error if it failed."""
        if self.process.wait() != 0:
            log = (self.folder / LOG).read_text(errors="replace")
            raise RuntimeError(f"the organ model's training failed (exit {self.process.returncode}):\n{log[-4000:]}")
        return self.folder / "model", json.loads((self.folder / SUMMARY).read_text())

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


def main(folder: Path) -> None:
    summary = train(folder / "cases", folder / "model")
    (folder / SUMMARY).write_text(json.dumps(summary))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
