"""The fine-tuning settings each ViT preset starts from: what ``sslseg finetune``, ``sslseg study`` and the Slicer
panel use for an option the user leaves out.

- ``vit-b``: MONAI's UNETR BTCV tutorial (1.5 x 1.5 x 2 mm, AdamW lr 1e-4 constant, 4 crops of 96^3 per volume,
  organ and body centres 1:1, decoder width 16), made for a GPU and tens of thousands of steps.
- ``tiny``: the CPU preset. The tutorial's settings measured not to fit a real CT on 2 CPU cores (README, "Fitting a
  real CT on a CPU"): a 64^3 crop at 1.5 mm spans 96 mm, less than a liver, so neighbouring organs of equal
  density are told apart by nothing in view; at lr 1e-4 it learns in thousands of steps, and at a constant 3e-3 the
  Dice swings by 0.2 between checks. Its recipe: 3 x 3 x 2 mm (a 192 mm field, as TotalSegmentator's ``--fast``
  3 mm model), lr 3e-3 with a 50-step warm-up and a cosine decay, crops centred on each class equally often (small
  organs seen as often as the liver), 2 crops, decoder width 8, the head's bias at the class priors (without it
  the aorta was missed in two seeds of three: :mod:`sslseg.finetune.output_prior`). On a real training case
  (``benchmarks/bench_real_fit.py``, 3 seeds, 800 steps) it reaches Dice >= 0.9 on liver, spleen and aorta in every
  seed, at step 500, 550 and 700 (8.9 minutes for 500 steps on 2 cores, AVX512-BF16).
"""

from __future__ import annotations

from dataclasses import replace

#: The settings a recipe gives (FinetuneConfig fields that are None until the preset is known).
RECIPE_FIELDS = ("spacing", "lr", "lr_schedule", "warmup_steps", "feature_size", "crops_per_volume", "crop_centres",
                 "output_bias")

RECIPES: dict[str, dict] = {
    "vit-b": {"spacing": (1.5, 1.5, 2.0), "lr": 1e-4, "lr_schedule": "constant", "warmup_steps": 0,
              "feature_size": 16, "crops_per_volume": 4, "crop_centres": "pos-neg", "output_bias": "random"},
    "tiny": {"spacing": (3.0, 3.0, 2.0), "lr": 3e-3, "lr_schedule": "cosine", "warmup_steps": 50,
             "feature_size": 8, "crops_per_volume": 2, "crop_centres": "classes", "output_bias": "prior"},
}


def recipe(preset: str) -> dict:
    """The settings of ``preset``'s recipe (the tutorial's for a preset without its own)."""
    return RECIPES.get(preset, RECIPES["vit-b"])


def with_recipe(config, preset: str):
    """``config`` (a :class:`~sslseg.finetune.config.FinetuneConfig`) with every recipe setting it leaves at None
    taken from ``preset``'s recipe; settings the user gave are kept."""
    defaults = recipe(preset)
    return replace(config, **{name: defaults[name] for name in RECIPE_FIELDS if getattr(config, name) is None})


def describe(field: str) -> str:
    """``vit-b: 0.0001, tiny: 0.003`` — a setting's default per preset, for help texts."""
    return ", ".join(f"{preset}: {_text(values[field])}" for preset, values in RECIPES.items())


def as_options(preset: str) -> str:
    """``--spacing 3 3 2 --lr 0.003 ...``: the recipe of ``preset`` as the command-line options that give it."""
    return " ".join(f"--{name.replace('_', '-')} {_text(value)}" for name, value in recipe(preset).items())


def _text(value) -> str:
    return " ".join(f"{v:g}" for v in value) if isinstance(value, tuple) else f"{value:g}" if isinstance(
        value, float) else str(value)
