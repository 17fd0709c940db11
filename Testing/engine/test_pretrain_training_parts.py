"""Small generic training pieces: out-of-memory messages, events, devices, view sizes, the ETA."""

import io
import json
import time

import pytest
import torch

from sslseg.errors import SSLSegError
from sslseg.ssl.base import LossOutput
from sslseg.ssl.coarse_views import CoarseViewSettings, build_view_transform
from sslseg.training.amp import Precision
from sslseg.training.device import resolve_device
from sslseg.training.distributed import DistContext
from sslseg.training.events import EventLog, TrainStats
from sslseg.training.loop import LoopConfig, TrainParts, TrainState, train
from sslseg.training.oom import friendly_out_of_memory


def test_out_of_memory_becomes_advice():
    with pytest.raises(SSLSegError, match="out of memory") as caught:
        with friendly_out_of_memory(96, 4, torch.device("cuda", 0)):
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
    assert "--batch-size 2" in caught.value.hint and "--patch-size 64" in caught.value.hint
    assert "--device cpu" in caught.value.hint
    with pytest.raises(SSLSegError, match="out of memory"):
        with friendly_out_of_memory(96, 1, torch.device("cpu")):
            raise RuntimeError("[enforce fail at alloc_cpu.cpp:117] DefaultCPUAllocator: can't allocate memory")


def test_other_runtime_errors_pass_through():
    with pytest.raises(RuntimeError, match="shape mismatch"):
        with friendly_out_of_memory(96, 1, torch.device("cpu")):
            raise RuntimeError("shape mismatch")


def test_events_are_json_lines_and_non_finite_numbers_become_null():
    stream = io.StringIO()
    log = EventLog([stream])
    log.emit("progress", loss=float("nan"), step=3)
    log.error("it broke", "fix it")
    first, second = (json.loads(line) for line in stream.getvalue().splitlines())
    assert first["event"] == "progress" and first["loss"] is None and first["step"] == 3
    assert second == {"event": "error", "time": second["time"], "message": "it broke", "hint": "fix it"}


def test_devices():
    assert resolve_device("cpu").type == "cpu"
    assert resolve_device("auto").type in ("cpu", "cuda", "mps")
    with pytest.raises(SSLSegError, match="unknown device"):
        resolve_device("tpu")


def test_view_holes_are_the_tutorials_at_96_and_scale_with_the_patch():
    def sizes(patch):
        one_of, shuffle = build_view_transform(CoarseViewSettings(), patch).transforms
        inpaint, outpaint = one_of.transforms
        return (inpaint.spatial_size, inpaint.max_spatial_size, inpaint.dropout_holes, outpaint.spatial_size,
                outpaint.max_spatial_size, outpaint.dropout_holes, shuffle.spatial_size, shuffle.prob)

    assert sizes(96) == (5, 32, True, 20, 64, False, 8, 0.8)
    assert sizes(32) == (2, 11, True, 7, 21, False, 3, 0.8)


def test_the_eta_follows_the_real_step_times_with_one_step_per_epoch(monkeypatch, tmp_path):
    """Issue 14: with one step per epoch, the first step of every epoch was left out of the mean, so
    seconds_per_step stayed at the very first step's 11.2 s for the whole run. Now only the session's first step
    (start-up) is left out: the mean follows the steps, each an epoch's wall time here."""
    clock = [0.0]
    step_seconds = iter([11.2, 4.5, 9.0, 6.0, 5.0])
    monkeypatch.setattr(time, "perf_counter", lambda: clock[0])

    def loss(model, batch):  # (1, 1) -> 0-d; the step "takes" its planned seconds on the fake clock
        clock[0] += next(step_seconds)
        return LossOutput(model(batch["x"]).square().mean(), {})

    model = torch.nn.Linear(1, 1)
    parts = TrainParts(model=model, optimizer=torch.optim.SGD(model.parameters(), lr=0.01), scheduler=None,
                       precision=Precision("off", "cpu"), compute_loss=loss, steps_per_epoch=1,
                       train_batches=lambda epoch, start: [{"x": torch.ones(1, 1)}], device=torch.device("cpu"))
    stream = io.StringIO()
    train(parts, TrainState(), LoopConfig(epochs=5, val_every=0), DistContext(), EventLog([stream]),
          TrainStats(tmp_path / "train_stats.json"))
    progress = [e for e in map(json.loads, stream.getvalue().splitlines()) if e["event"] == "progress"]
    assert [round(e["seconds_per_step"], 4) for e in progress] == [11.2, 4.5, 6.75, 6.5, 6.125]
    assert progress[3]["eta_s"] == pytest.approx(6.5)  # one step left after the fourth
