"""Every setting of a fine-tuning run, with the defaults of the CLI and the Slicer panel (MONAI's UNETR BTCV
tutorial where it has one: weight decay 1e-5, -175..250 HU). The voxel size, learning rate and its schedule, crops,
decoder width and the head's starting bias default to the preset's recipe (:mod:`sslseg.finetune.recipes`: the
tutorial's for ``vit-b``, a CPU recipe for ``tiny``), filled in once the encoder has fixed the preset."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

from sslseg.finetune.recipes import with_recipe
from sslseg.io.annotation import AXES
from sslseg.training.lr_schedule import SCHEDULES
from sslseg.training.settings import common_problems, refuse_output_inside_data, refuse_problems

#: Crop-centre draws (:mod:`sslseg.finetune.crops`; kept here so the config needs no torch import).
CROP_CENTRES = ("pos-neg", "classes")
#: The output head's starting bias (:mod:`sslseg.finetune.output_prior`).
OUTPUT_BIASES = ("prior", "random")

#: Settings that define what is trained: a resumed run must use the same values (others may change on resume).
IDENTITY_FIELDS = (
    "preset", "patch_size", "feature_size", "crops_per_volume", "batch_size", "lr", "weight_decay", "grad_clip",
    "seed", "val_fraction", "spacing", "ct_window", "modality", "only_cases", "from_model", "undrawn_slices",
    "slice_axis", "partial_organs", "crop_centres", "lr_schedule", "warmup_steps", "output_bias",
)
#: Identity fields left out of a checkpoint's identity while they hold these values (their meaning before they
#: existed), so checkpoints written before them still resume.
NEW_FIELD_DEFAULTS = {"only_cases": None, "from_model": None, "undrawn_slices": "background", "slice_axis": "axial",
                      "partial_organs": False, "crop_centres": "pos-neg",
                      "lr_schedule": "constant", "warmup_steps": 0, "output_bias": "random"}
UNDRAWN_SLICES = ("background", "unknown")


@dataclass
class FinetuneConfig:
    """A fine-tuning run. ``None`` means "the encoder's / the machine's default" where noted, and for the fields of
    :data:`sslseg.finetune.recipes.RECIPE_FIELDS` "the preset's recipe" (:func:`~sslseg.finetune.recipes.with_recipe`).

    Attributes:
        data_dir: labelled cases: a folder (MSD/nnU-Net layout, ``NAME_label`` files, ``.seg.nrrd``, one case per
            folder) or a MONAI datalist JSON (its ``validation`` list is the validation split).
        out_dir: MODEL_DIR, where the model package and every other output goes.
        encoder: a pretraining RUN_DIR, a ``.pt``/``.pth``/``.safetensors`` file with ViT weights, or ``none``.
        preset: ViT size (None: the encoder card's; ``vit-b`` for files and ``none``).
        patch_size: training crop edge = UNETR ``img_size`` = inference window (None: the encoder's).
        feature_size: UNETR decoder width (16 in MONAI's tutorial, 8 in the tiny recipe).
        crops_per_volume: random crops per volume and step (the tutorial's 4, the tiny recipe's 2).
        crop_centres: ``pos-neg`` (the tutorial: organ and body voxels 1:1) or ``classes`` (background and each
            organ equally likely; :mod:`sslseg.finetune.crops`).
        output_bias: the segmentation head's starting bias: ``random`` (PyTorch's, the tutorial) or ``prior`` (log
            of each class's share of the training voxels; :mod:`sslseg.finetune.output_prior`). A ``from_model``
            run keeps its package's head.
        epochs, max_steps: training length (:func:`sslseg.training.loop.planned_epochs`): with both, whichever ends
            first; ``epochs`` None: as many as ``max_steps`` needs, or ``DEFAULT_EPOCHS`` without it.
        batch_size: volumes per optimisation step in each process (each gives ``crops_per_volume`` crops).
        lr, weight_decay, grad_clip: AdamW and gradient norm limit (0: off).
        lr_schedule, warmup_steps: ``constant`` (the tutorial) or ``cosine`` (decaying to 0 at the run's last planned
            step), after a linear warm-up over ``warmup_steps`` (:mod:`sslseg.training.lr_schedule`).
        device, amp, seed, workers: as for pretraining.
        val_every: validate (sliding-window Dice) every N epochs and after the last (0: never).
        val_fraction: share of cases held out when the data name no validation split.
        overlap: sliding-window overlap for validation.
        checkpoint_every: also checkpoint every N steps (0: at epoch ends only).
        spacing, ct_window, modality: preprocessing (``sslseg.segmentation.preprocess``), recorded in the card.
        cache_dir: preprocessed-case cache (None: MODEL_DIR/cache).
        from_model: a MODEL_DIR to continue from (its network, preprocessing and labels, extended by new organs;
            ``encoder`` must then be ``none``), or None.
        only_cases: train on these cases of ``data_dir`` alone (names), all as training cases (``sslseg study``'s
            subsets); None: every case, split as the data say.
        undrawn_slices: ``background`` (every undrawn voxel is background) or ``unknown`` (only the slices along
            ``slice_axis`` on which something is drawn count; :mod:`sslseg.io.annotation`). A datalist entry's own
            ``annotated_slices`` / ``annotated`` wins.
        slice_axis: ``axial``, ``coronal``, ``sagittal`` (anatomical), or ``i``, ``j``, ``k`` (voxel axes).
        partial_organs: a case annotates only the organs it draws (others unknown: the marginal loss), unless its
            datalist entry lists ``organs`` or ``absent``.
        resume, overwrite, events: as for pretraining.
    """

    data_dir: str
    out_dir: str
    encoder: str = "none"
    preset: str | None = None
    patch_size: int | None = None
    feature_size: int | None = None
    crops_per_volume: int | None = None
    crop_centres: str | None = None
    output_bias: str | None = None
    epochs: int | None = None
    max_steps: int | None = None
    batch_size: int = 1
    lr: float | None = None
    weight_decay: float = 1e-5
    grad_clip: float = 1.0
    lr_schedule: str | None = None
    warmup_steps: int | None = None
    device: str = "auto"
    amp: str = "auto"
    seed: int = 0
    workers: int | None = None
    val_every: int = 1
    val_fraction: float = 0.2
    overlap: float = 0.25
    checkpoint_every: int = 100
    spacing: tuple[float, float, float] | None = None
    ct_window: tuple[float, float] = (-175.0, 250.0)
    modality: str = "auto"
    cache_dir: str | None = None
    only_cases: tuple[str, ...] | None = None
    from_model: str | None = None
    undrawn_slices: str = "background"
    slice_axis: str = "axial"
    partial_organs: bool = False
    resume: bool = False
    overwrite: bool = False
    events: str | None = None

    def check(self) -> None:
        """Refuse settings that cannot work, with the option to change (those left to the recipe are valid)."""
        given = with_recipe(self, self.preset or "vit-b")
        refuse_problems(common_problems(given) + [
            (given.crops_per_volume < 1, "--crops-per-volume must be at least 1"),
            (given.feature_size < 1, "--feature-size must be at least 1"),
            (not 0 <= self.overlap < 1, "--overlap must be in [0, 1)"),
            (len(given.spacing) != 3 or min(given.spacing) <= 0, "--spacing takes three voxel sizes > 0 (mm)"),
            (len(self.ct_window) != 2 or not self.ct_window[1] > self.ct_window[0],
             "--ct-window takes LOW HIGH with LOW < HIGH (HU)"),
            (self.undrawn_slices not in UNDRAWN_SLICES, f"--undrawn-slices is one of {', '.join(UNDRAWN_SLICES)}"),
            (self.slice_axis not in AXES, f"--slice-axis is one of {', '.join(AXES)}"),
            (given.crop_centres not in CROP_CENTRES, f"--crop-centres is one of {', '.join(CROP_CENTRES)}"),
            (given.output_bias not in OUTPUT_BIASES, f"--output-bias is one of {', '.join(OUTPUT_BIASES)}"),
            (given.lr_schedule not in SCHEDULES, f"--lr-schedule is one of {', '.join(SCHEDULES)}"),
            (given.warmup_steps < 0, "--warmup-steps must be >= 0"),
        ], "finetune")
        refuse_problems([
            (self.from_model is not None and str(self.encoder).lower() != "none",
             "give --encoder or --from-model, not both (a model package holds its own encoder)"),
            (self.from_model is not None and Path(self.from_model).resolve() == Path(self.out_dir).resolve(),
             "--from-model and --out are one folder: write the retrained model to another MODEL_DIR"),
        ], "finetune")
        refuse_output_inside_data(self.out_dir, self.data_dir, "MODEL_DIR", "LABELLED_DIR", "cases")

    def identity(self) -> dict:
        """The settings a resumed run must share with the run it continues (JSON-able)."""
        data = asdict(self)
        return {k: list(data[k]) if isinstance(data[k], tuple) else data[k] for k in IDENTITY_FIELDS
                if k not in NEW_FIELD_DEFAULTS or data[k] != NEW_FIELD_DEFAULTS[k]}
