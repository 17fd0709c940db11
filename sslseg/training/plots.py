"""Loss curves as PNG (matplotlib, Agg backend: no display needed)."""

from __future__ import annotations

from pathlib import Path

from sslseg.package.files import write_atomically


def plot_loss_curve(path: str | Path, step_losses: list, epochs: list[dict], title: str = "") -> Path:
    """Training loss per step (light) and per epoch (dark); validation loss per evaluated epoch (right axis).

    Args:
        step_losses: ``[[step, loss], ...]``.
        epochs: ``[{"epoch", "step", "train_loss", "val_loss"?}, ...]`` (``step``: the last step of the epoch).
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    figure = Figure(figsize=(7, 4), dpi=100)
    axes = figure.add_subplot()
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
    figure.tight_layout()
    path = Path(path)
    write_atomically(path, lambda p: figure.savefig(p, format="png"))
    return path
