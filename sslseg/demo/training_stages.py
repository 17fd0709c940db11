"""Demo stages that train: self-supervised pretraining of the ViT, then UNETR fine-tuning from that encoder."""

from __future__ import annotations

import os

from sslseg.demo.pipeline import DemoContext
from sslseg.training.compute import compute_summary
from sslseg.training.run_dir import LOSS_CURVE

#: Fine-tuning settings for a CPU demo: AdamW lr 3e-3 (the tutorial's 1e-4 needs thousands of steps), 2 crops per
#: volume, UNETR feature size 8 (the tutorial's 16 doubles the decoder's cost).
#: The settings the demo's Dice was measured with on the 5 mm phantoms (a constant rate, the tutorial's crop draw and
#: PyTorch's head, not the tiny recipe's cosine, class-balanced draw and prior head, which were measured on a real
#: CT: ``sslseg.finetune.recipes``).
DEMO_LEARNING = dict(lr=3e-3, crops_per_volume=2, feature_size=8, lr_schedule="constant", warmup_steps=0,
                     crop_centres="pos-neg", output_bias="random")


def pretrain_encoder(context: DemoContext) -> None:
    """Self-supervised pretraining of the ViT on the unlabelled cohort (tiny preset: minutes on a laptop CPU)."""
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
    context.artefacts.update(encoder=run_dir, pretrain_loss_curve=run_dir / LOSS_CURVE)
    context.lines["pretrain"] = [
        f"- pretraining ({config.method}, preset {config.preset}, patch {config.patch_size}^3): "
        f"{summary['epochs_done']} epochs, {summary['steps']} steps, final training loss {summary['train_loss']:.4f}"
        + (f", validation loss {summary['val_loss']:.4f}" if summary.get("val_loss") is not None else "")
        + f"; {compute_summary(summary['compute'])}",
    ]
    print("\n".join(context.lines["pretrain"]))


def finetune_model(context: DemoContext) -> None:
    """UNETR initialised from the pretrained encoder, trained on the labelled cases (some held out for validation);
    the model package (best validation Dice) is what segments the unseen case."""
    from sslseg.finetune.config import FinetuneConfig
    from sslseg.finetune.run import DICE_CURVE, finetune

    o = context.options
    model_dir = context.out / "model"
    epochs = o["finetune_epochs"]
    config = FinetuneConfig(
        data_dir=str(context.artefacts["labelled"]), out_dir=str(model_dir), encoder=str(context.artefacts["encoder"]),
        epochs=epochs, val_every=max(1, epochs // 6), val_fraction=0.25, spacing=tuple(o["spacing"]),
        device=o["device"], seed=o["seed"], workers=0, events=os.devnull, **DEMO_LEARNING,
    )
    summary = finetune(config)
    context.artefacts.update(model=model_dir, finetune_loss_curve=model_dir / LOSS_CURVE,
                             dice_curve=model_dir / DICE_CURVE)
    best = summary.get("best_val_dice")
    context.lines["finetune"] = [
        f"- fine-tuning UNETR from the pretrained encoder ({summary['encoder_transferred']} tensors transferred): "
        f"{summary['epochs_done']} epochs, {summary['steps']} steps"
        + (f", best validation Dice {best:.3f} at step {summary['best_step']}" if best is not None else "")
        + f"; {compute_summary(summary['compute'])}",
    ]
    print("\n".join(context.lines["finetune"]))
