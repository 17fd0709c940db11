"""Collapse of a joint-embedding method is visible (issue 16): the collapse measures in progress events, kept per
reported step in the run state (through resume) and in train_stats.json, drawn in a second panel of the loss PNG;
a collapse gives exactly one ``warning`` event saying what to do. The MONAI recipe's run and plot stay as they were.
Tiny preset, 32^3 patches, CPU, float32."""

import json

import pytest
from pretrain_support import load_state, run_tiny

from sslseg.ssl import module
from sslseg.ssl.table import DEFAULT_METHOD
from sslseg.training.plots import loss_curve_figure, plot_loss_curve

FAST = dict(method="simclr", epochs=1, val_every=0)
MEASURES = ("embedding_std", "effective_rank")


def read_events(run_dir):
    return [json.loads(line) for line in (run_dir / "events.jsonl").read_text().splitlines()]


def test_a_joint_embedding_run_records_the_collapse_measures_through_resume(unlabelled_dir, pretrain_cache,
                                                                            tmp_path):
    run = tmp_path / "run"
    run_tiny(unlabelled_dir, run, pretrain_cache, max_steps=2, **FAST)
    run_tiny(unlabelled_dir, run, pretrain_cache, max_steps=3, resume=True, **FAST)
    events = read_events(run)
    progress = [e for e in events if e["event"] == "progress"]
    assert progress and all(isinstance(e[name], float) for e in progress for name in MEASURES)
    assert not [e for e in events if e["event"] == "warning"], "no collapse warning in the grace steps"
    measures = load_state(run)["state"]["step_measures"]
    for name in MEASURES:  # per reported step, the first session's points kept by the resumed one
        assert measures[name] == [[e["step"], pytest.approx(e[name])] for e in progress]
        assert measures[name][0][0] == 1 and measures[name][-1][0] == 3
    stats = json.loads((run / "train_stats.json").read_text())
    assert set(stats["recent_step_measures"]) == set(MEASURES)
    assert (run / "loss_curve.png").is_file()


def test_a_collapse_gives_exactly_one_warning_event(unlabelled_dir, pretrain_cache, tmp_path, monkeypatch, caplog):
    monkeypatch.setattr(module, "COLLAPSE_GRACE_STEPS", 0)
    monkeypatch.setattr(module, "COLLAPSED_STD", 1e9)  # every step counts as collapsed
    run = tmp_path / "run"
    with caplog.at_level("WARNING", logger="sslseg.ssl.module"):
        run_tiny(unlabelled_dir, run, pretrain_cache, max_steps=3, **FAST)
    warnings = [e for e in read_events(run) if e["event"] == "warning"]
    assert len(warnings) == 1
    assert warnings[0]["stage"] == "pretrain" and warnings[0]["step"] == 1
    assert "collapsed" in warnings[0]["message"] and "--lr" in warnings[0]["hint"]
    assert [r for r in caplog.records if "collapsed" in r.getMessage()], "the log line stays"
    stats = json.loads((run / "train_stats.json").read_text())
    assert [w["message"] for w in stats["warnings"]] == [warnings[0]["message"]]


def test_the_monai_recipe_records_no_measures(unlabelled_dir, pretrain_cache, tmp_path):
    run = tmp_path / "run"
    run_tiny(unlabelled_dir, run, pretrain_cache, method=DEFAULT_METHOD, epochs=1, max_steps=1, val_every=0)
    assert load_state(run)["state"]["step_measures"] == {}
    assert "recent_step_measures" not in json.loads((run / "train_stats.json").read_text())


def line_labels(axes) -> list[str]:
    return [line.get_label() for line in axes.get_lines()]


STEPS = [[1, 2.0], [2, 1.8], [3, 1.7], [4, 1.5]]
EPOCHS = [{"epoch": 1, "step": 2, "train_loss": 1.9, "val_loss": 0.5}, {"epoch": 2, "step": 4, "train_loss": 1.6}]


def test_the_plot_draws_the_measures_in_a_second_panel(tmp_path):
    measures = {"embedding_std": [[1, 0.9], [3, 0.4]], "effective_rank": [[1, 3.0], [3, 1.5]], "ntxent": [[1, 2.0]]}
    figure = loss_curve_figure(STEPS, EPOCHS, "simclr", measures)
    by_lines = {tuple(line_labels(axes)): axes for axes in figure.axes}  # the panels and their right-hand twins
    assert sorted(by_lines) == [("effective rank",), ("embedding std",),
                                ("training loss (step)", "training loss (epoch mean)"), ("validation",)]
    loss, lower = by_lines["training loss (step)", "training loss (epoch mean)"], by_lines["embedding std",]
    rank = by_lines["effective rank",]
    assert lower.get_position().y1 <= loss.get_position().y0, "a second panel, under the loss"
    assert list(lower.get_lines()[0].get_xdata()) == [1, 3] and list(lower.get_lines()[0].get_ydata()) == [0.9, 0.4]
    assert list(rank.get_lines()[0].get_ydata()) == [3.0, 1.5]
    assert lower.get_shared_x_axes().joined(loss, lower)
    assert plot_loss_curve(tmp_path / "curve.png", STEPS, EPOCHS, "simclr", measures).is_file()


@pytest.mark.parametrize("measures", [None, {}, {"reconstruction": [[1, 0.2]]}, {"embedding_std": []}])
def test_the_plot_without_collapse_measures_is_the_single_panel_it_was(measures):
    figure = loss_curve_figure(STEPS, EPOCHS, "inpaint-contrastive", measures)
    assert [line_labels(axes) for axes in figure.axes] == [["training loss (step)", "training loss (epoch mean)"],
                                                           ["validation"]]
    loss = figure.axes[0]
    assert loss.get_xlabel() == "step" and tuple(figure.get_size_inches()) == (7, 4)
