"""The demo's stages: each takes the shared :class:`DemoContext` and adds artefacts and report lines."""

from __future__ import annotations

from sslseg.demo.pipeline import DemoContext, Stage
from sslseg.io.pairing import find_labelled_cases
from sslseg.io.scan import find_volumes
from sslseg.synth.cohort import write_labelled, write_unlabelled


def synthesise(context: DemoContext) -> None:
    """An unlabelled cohort for pretraining and labelled cases (MSD layout) for fine-tuning and testing."""
    o = context.options
    unlabelled = context.out / "data" / "unlabelled"
    labelled = context.out / "data" / "labelled"
    write_unlabelled(unlabelled, o["unlabelled_cases"], o["size"], o["spacing"], seed=o["seed"])
    write_labelled(labelled, o["labelled_cases"], o["size"], o["spacing"], seed=o["seed"] + 1000)
    context.artefacts.update(unlabelled=unlabelled, labelled=labelled)


def inspect(context: DemoContext) -> None:
    volumes = find_volumes(context.artefacts["unlabelled"])
    cases, _ = find_labelled_cases(context.artefacts["labelled"])
    first = volumes[0].read()
    context.lines["data"] = [
        f"- {len(volumes)} unlabelled volumes, {len(cases)} labelled cases (synthetic CT phantoms)",
        f"- grid: {first.grid_description()}",
    ]
    print("\n".join(context.lines["data"]))


def pretrain_encoder(context: DemoContext) -> None:
    """Self-supervised pretraining of the ViT on the unlabelled cohort (tiny preset: minutes on a laptop CPU)."""
    import os

    from sslseg.pretrain.config import PretrainConfig
    from sslseg.pretrain.run import pretrain

    o = context.options
    run_dir = context.out / "pretrain"
    config = PretrainConfig(
        data_dir=str(context.artefacts["unlabelled"]), out_dir=str(run_dir), preset=o["preset"],
        patch_size=o["patch_size"], epochs=o["pretrain_epochs"], batch_size=4, spacing=o["spacing"][0],
        device=o["device"], seed=o["seed"], val_every=max(1, o["pretrain_epochs"] // 4), events=os.devnull,
    )
    summary = pretrain(config)
    context.artefacts.update(encoder=run_dir, loss_curve=run_dir / "loss_curve.png")
    context.lines["pretrain"] = [
        f"- pretraining ({config.method}, preset {config.preset}, patch {config.patch_size}^3): "
        f"{summary['epochs_done']} epochs, {summary['steps']} steps, final training loss {summary['train_loss']:.4f}"
        + (f", validation loss {summary['val_loss']:.4f}" if summary.get("val_loss") is not None else ""),
    ]
    print("\n".join(context.lines["pretrain"]))


def write_report(context: DemoContext) -> None:
    lines = ["# SSL Segmentation demo", ""]
    for stage_lines in context.lines.values():
        lines += stage_lines
    lines += ["", "| stage | seconds |", "|---|---|"]
    lines += [f"| {name} | {seconds:.1f} |" for name, seconds in context.seconds.items()]
    report = context.out / "report.md"
    report.write_text("\n".join(lines) + "\n", encoding="utf-8")
    context.artefacts["report"] = report


STAGES = [Stage("synthesise", synthesise), Stage("inspect", inspect), Stage("pretrain", pretrain_encoder)]
