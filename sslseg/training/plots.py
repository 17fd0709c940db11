"""Loss curves as PNG (matplotlib, Agg backend: no display needed)."""

from __future__ import annotations

from pathlib import Path

from sslseg.package.files import write_atomically


#: Titles of the measures :func:`plot_loss_curve` draws under the loss (the collapse measures of joint-embedding
#: methods, see :mod:`sslseg.ssl.module`): the first on the left axis, the second on the right.
MEASURE_TITLES = {"embedding_std": "embedding std", "effective_rank": "effective rank"}
#: An epoch record's frozen-encoder probes (``sslseg pretrain --probe``, :mod:`sslseg.probes.live`): the encoder's
#: linear Dice (bold in the probe panel), its kNN accuracy, and every line by name (the random baseline's too).
PROBE_DICE, PROBE_KNN, PROBE_LINES = "probe_linear_dice", "probe_knn_accuracy", "probe"


def plot_loss_curve(path: str | Path, step_losses: list, epochs: list[dict], title: str = "",
                    step_measures: dict | None = None) -> Path:
    """Training loss per step (light) and per epoch (dark); validation loss per evaluated epoch (right axis). With
    collapse measures (``step_measures`` with points for a name of :data:`MEASURE_TITLES`), a panel below, on the
    same steps: embedding std (left axis) and effective rank (right axis). With probes in the epoch records
    (:data:`PROBE_DICE`, :data:`PROBE_LINES`), a panel below that: each probe against the step.

    Args:
        step_losses: ``[[step, loss], ...]``.
        epochs: ``[{"epoch", "step", "train_loss", "val_loss"?}, ...]`` (``step``: the last step of the epoch).
        step_measures: name -> ``[[step, value], ...]`` (``TrainState.step_measures``), or None.
    """
    figure = loss_curve_figure(step_losses, epochs, title, step_measures)
    path = Path(path)
    write_atomically(path, lambda p: figure.savefig(p, format="png"))
    return path


def loss_curve_figure(step_losses: list, epochs: list[dict], title: str = "", step_measures: dict | None = None):
    """The matplotlib ``Figure`` :func:`plot_loss_curve` saves (same arguments)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    measures = {name: points for name, points in (step_measures or {}).items() if name in MEASURE_TITLES and points}
    probed = [e for e in epochs if e.get(PROBE_DICE) is not None or e.get(PROBE_LINES)]
    lower_panels = int(bool(measures)) + int(bool(probed))
    if lower_panels:
        figure = Figure(figsize=(7, 4 + 2 * lower_panels), dpi=100)
        axes, *lower = figure.subplots(1 + lower_panels, 1, sharex=True,
                                       gridspec_kw={"height_ratios": [2] + [1] * lower_panels})
    else:
        figure = Figure(figsize=(7, 4), dpi=100)
        axes, lower = figure.add_subplot(), []
    if step_losses:
        steps, losses = zip(*step_losses)
        axes.plot(steps, losses, color="tab:blue", alpha=0.3, linewidth=0.8, label="training loss (step)")
    if epochs:
        axes.plot([e["step"] for e in epochs], [e["train_loss"] for e in epochs], color="tab:blue", marker="o",
                  markersize=3, label="training loss (epoch mean)")
    axes.set_xlabel("step")
    axes.set_ylabel("training loss")
    if title:
        axes.set_title(title)
    axes.grid(alpha=0.3)
    axes.legend(loc="upper left", fontsize=8)
    validated = [e for e in epochs if e.get("val_loss") is not None]
    if validated:  # its own scale: a validation metric (e.g. L1) need not be the training loss
        right = axes.twinx()
        right.plot([e["step"] for e in validated], [e["val_loss"] for e in validated], color="tab:orange",
                   marker="s", markersize=3, label="validation")
        right.set_ylabel("validation loss", color="tab:orange")
        right.legend(loc="upper right", fontsize=8)
    panels = list(lower)
    if measures:
        _plot_measures(panels.pop(0), measures)
    if probed:
        _plot_probes(panels.pop(0), probed)
    for upper in [axes, *lower][:-1]:  # one shared step axis: named under the lowest panel only
        upper.set_xlabel("")
    figure.tight_layout()
    return figure


def _plot_probes(axes, epochs: list[dict]) -> None:
    """The frozen-encoder probes of the epochs that ran them, against the step (all in 0..1)."""
    axes.set_xlabel("step")
    axes.set_ylabel("probes")
    axes.grid(alpha=0.3)
    lines = {"linear Dice": [(e["step"], e[PROBE_DICE]) for e in epochs if e.get(PROBE_DICE) is not None]}
    for name in dict.fromkeys(n for e in epochs for n in (e.get(PROBE_LINES) or {})):
        lines[name] = [(e["step"], e[PROBE_LINES][name]) for e in epochs
                       if (e.get(PROBE_LINES) or {}).get(name) is not None]
    for name, points in lines.items():
        if points:
            axes.plot(*zip(*points), marker="o", markersize=3, linewidth=1 if "random" in name else 1.8,
                      linestyle="--" if "random" in name else "-", label=name)
    axes.legend(loc="upper left", fontsize=7)


def _plot_measures(axes, measures: dict) -> None:
    """The collapse measures against the step: embedding std on ``axes``, effective rank on a right twin."""
    axes.set_xlabel("step")
    axes.grid(alpha=0.3)
    for (name, colour), side in zip((("embedding_std", "tab:green"), ("effective_rank", "tab:purple")), ("l", "r")):
        points = measures.get(name)
        if not points:
            continue
        target = axes if side == "l" else axes.twinx()
        target.plot(*zip(*points), color=colour, marker=".", markersize=3, linewidth=0.8,
                    label=MEASURE_TITLES[name])
        target.set_ylabel(MEASURE_TITLES[name], color=colour)
        target.legend(loc="upper left" if side == "l" else "upper right", fontsize=8)


def plot_metric_curve(path: str | Path, epochs: list[dict], metric: str, per_item: str | None = None,
                      label: str = "", title: str = "") -> Path:
    """A validation metric per evaluated epoch against the step: ``epoch[metric]`` bold, and one thin line per entry
    of the dict ``epoch[per_item]`` (e.g. Dice per organ). Epochs without the metric are skipped."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    figure = Figure(figsize=(7, 4), dpi=100)
    axes = figure.add_subplot()
    evaluated = [e for e in epochs if e.get(metric) is not None]
    names = sorted({name for e in evaluated for name in (e.get(per_item) or {})}) if per_item else []
    for name in names:
        points = [(e["step"], e[per_item][name]) for e in evaluated if (e.get(per_item) or {}).get(name) is not None]
        if points:
            axes.plot(*zip(*points), linewidth=0.8, alpha=0.7, marker=".", markersize=3, label=name)
    if evaluated:
        axes.plot([e["step"] for e in evaluated], [e[metric] for e in evaluated], color="black", linewidth=2,
                  marker="o", markersize=4, label=label or metric)
    axes.set_xlabel("step")
    axes.set_ylabel(label or metric)
    if title:
        axes.set_title(title)
    axes.grid(alpha=0.3)
    if evaluated:
        axes.legend(loc="lower right", fontsize=7, ncol=2 if len(names) > 8 else 1)
    figure.tight_layout()
    path = Path(path)
    write_atomically(path, lambda p: figure.savefig(p, format="png"))
    return path
