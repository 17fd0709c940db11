"""Settings shared by the fine-tuning tests that check learning (see test_finetune_dice.py for the measurements), and
a runner training several variants side by side."""

from __future__ import annotations

from pathlib import Path

#: The labelled phantoms' grid (``labelled_dir``, ``organ_cases``): voxels of 6 mm, RAS-aligned, centred on RAS 0.
FINETUNE_GRID = (52, 40, 34)
FINETUNE_SPACING_MM = 6.0

#: AdamW lr 3e-3 (the tutorial's 1e-4 learns in thousands of steps), 2 crops per volume, UNETR feature size 8.
LEARNING = dict(lr=3e-3, crops_per_volume=2, feature_size=8)

#: Tiny UNETR on 32^3 crops of the 6 mm phantoms: a fraction of a second per step on 2 CPU cores. The learning rate,
#: its schedule and the crop draw are pinned to those the tests were measured with (MONAI's tutorial's), not left to
#: the tiny preset's recipe (``sslseg.finetune.recipes``; its own tests: ``test_finetune_recipes.py``).
FINETUNE_TINY = dict(preset="tiny", patch_size=32, feature_size=8, crops_per_volume=2,
                     spacing=(FINETUNE_SPACING_MM,) * 3, lr=1e-4, lr_schedule="constant", warmup_steps=0,
                     crop_centres="pos-neg", output_bias="random", workers=0, checkpoint_every=0, events=None, amp="off")


def finetune_side_by_side(data_dir: Path, out: Path, variants: dict[str, dict], **settings) -> dict[str, dict]:
    """``{variant: best_val_dice_per_organ}``: one tiny fine-tuning (FINETUNE_TINY + ``settings`` + the variant's
    own) per variant, all at once, each in its own process on one torch thread. Tiny models run no faster on two
    threads than on one, so on 2 cores two variants take the wall time of one."""
    import multiprocessing

    context = multiprocessing.get_context("spawn")  # never fork a process whose OpenMP threads have run
    with context.Pool(len(variants)) as pool:
        jobs = {name: pool.apply_async(_finetune_one, (str(data_dir), str(out / name),
                                                       {"encoder": "none", **FINETUNE_TINY, **settings, **extra}))
                for name, extra in variants.items()}
        return {name: job.get() for name, job in jobs.items()}


def _finetune_one(data_dir: str, out_dir: str, settings: dict) -> dict:
    import torch

    from sslseg.finetune.config import FinetuneConfig
    from sslseg.finetune.run import finetune

    torch.set_num_threads(1)
    return finetune(FinetuneConfig(data_dir=data_dir, out_dir=out_dir, **settings))["best_val_dice_per_organ"]
