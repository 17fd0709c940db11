"""``report.md``: what the demo did, how well the segmentation matches the truth, time per stage, and where each
artefact is (links relative to the report, so the folder can be moved or shared)."""

from __future__ import annotations

import platform
from pathlib import Path

from sslseg.demo.pipeline import DemoContext
from sslseg.training.compute import cpu_class, cpu_model

#: Artefacts listed in the report, in this order, with what each is.
ARTEFACTS = (
    ("scene", "Slicer scene: the unseen CT and its segmentation (File -> Open in 3D Slicer)"),
    ("segmentation", "the segmentation alone (Slicer .seg.nrrd: named, coloured segments)"),
    ("overlay", "axial, coronal and sagittal slices of the segmentation"),
    ("overlay_truth", "the same slices with the phantom's truth"),
    ("pretrain_loss_curve", "pretraining loss"),
    ("finetune_loss_curve", "fine-tuning loss"),
    ("dice_curve", "validation Dice during fine-tuning"),
    ("model", "the model package (model.safetensors + model.json) that segmented the case"),
    ("encoder", "the pretraining run (encoder.safetensors + card, checkpoint, events)"),
)


def write_report(context: DemoContext) -> Path:
    lines = ["# SSL Segmentation demo", "", *_setting_lines(context), ""]
    for stage_lines in context.lines.values():
        lines += stage_lines
    lines += ["", "## Files", ""]
    lines += [f"- [{_relative(context, context.artefacts[key])}]({_relative(context, context.artefacts[key])}): {what}"
              for key, what in ARTEFACTS if key in context.artefacts]
    lines += ["", "## Time", "", "| stage | seconds |", "|---|---|"]
    lines += [f"| {name} | {seconds:.1f} |" for name, seconds in context.seconds.items()]
    lines.append(f"| total | {sum(context.seconds.values()):.1f} |")
    report = context.out / "report.md"
    report.write_text("\n".join(lines) + "\n", encoding="utf-8")
    context.artefacts["report"] = report
    return report


def _setting_lines(context: DemoContext) -> list[str]:
    import torch

    o = context.options
    device = o.get("device_used", o["device"])
    return [f"Preset {o['preset']}, patch {o['patch_size']}^3, device {device}; machine: {platform.machine()}, "
            f"CPU {cpu_model()} (class {cpu_class()}), {torch.get_num_threads()} torch threads, torch "
            f"{torch.__version__}. Precision of each stage below (`--amp auto`: see the README's precision rule)."]


def _relative(context: DemoContext, path: Path) -> str:
    return Path(path).resolve().relative_to(context.out.resolve()).as_posix()
