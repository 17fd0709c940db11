"""Learning-rate schedules (issue 18: a short fine-tuning run ends on settled weights): the factors a run's
optimiser actually gets, step by step, and the settings that are refused."""

import math

import pytest
import torch

from sslseg.errors import SSLSegError
from sslseg.finetune.config import FinetuneConfig
from sslseg.training.lr_schedule import lr_factor, lr_scheduler


def _rates(schedule: str, warmup: int, total: int) -> list[float]:
    """The learning rate of each of ``total`` optimisation steps of a real AdamW under the scheduler."""
    parameter = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.AdamW([parameter], lr=2e-3)
    scheduler = lr_scheduler(optimizer, warmup, total, schedule)
    rates = []
    for _ in range(total):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    return rates


def test_cosine_rises_over_the_warmup_then_decays_to_almost_zero_at_the_last_step():
    rates = _rates("cosine", warmup=4, total=20)
    assert rates[:4] == pytest.approx([5e-4, 1e-3, 1.5e-3, 2e-3])
    assert rates[4] == pytest.approx(2e-3)
    assert all(a >= b for a, b in zip(rates[4:], rates[5:]))  # never rises again
    assert rates[12] == pytest.approx(2e-3 * 0.5 * (1 + math.cos(math.pi * 8 / 16)))  # halfway: half the rate
    assert 0 < rates[-1] < 2e-3 * 0.01


def test_constant_is_the_tutorials_rate_throughout_and_pretrainings_warmup_still_rises():
    assert _rates("constant", warmup=0, total=5) == pytest.approx([2e-3] * 5)
    assert _rates("constant", warmup=2, total=4) == pytest.approx([1e-3, 2e-3, 2e-3, 2e-3])
    assert lr_factor(10_000, warmup=0, total=10, schedule="cosine") == 0.0  # past the plan: stays at zero


def test_a_resumed_scheduler_continues_the_curve():
    """Optimiser and scheduler state restored as a checkpoint restores them: the next steps' rates are the
    uninterrupted run's."""
    def fresh():
        optimizer = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
        return optimizer, lr_scheduler(optimizer, 2, 10, "cosine")

    optimizer, scheduler = fresh()
    for _ in range(6):
        optimizer.step()
        scheduler.step()
    resumed_optimizer, resumed = fresh()
    resumed_optimizer.load_state_dict(optimizer.state_dict())
    resumed.load_state_dict(scheduler.state_dict())
    for step in range(6, 10):
        assert resumed_optimizer.param_groups[0]["lr"] == pytest.approx(lr_factor(step, 2, 10, "cosine"))
        assert resumed_optimizer.param_groups[0]["lr"] == pytest.approx(optimizer.param_groups[0]["lr"])
        for opt, sched in ((optimizer, scheduler), (resumed_optimizer, resumed)):
            opt.step()
            sched.step()


@pytest.mark.parametrize("field, value, message", [("lr_schedule", "linear", "--lr-schedule is one of"),
                                                   ("warmup_steps", -1, "--warmup-steps must be >= 0")])
def test_impossible_schedules_are_refused_with_the_option_to_change(tmp_path, field, value, message):
    config = FinetuneConfig(data_dir=str(tmp_path / "cases"), out_dir=str(tmp_path / "model"), **{field: value})
    with pytest.raises(SSLSegError, match=message):
        config.check()
