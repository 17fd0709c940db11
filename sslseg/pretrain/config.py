"""Every setting of a pretraining run, with the defaults of the CLI and the Slicer panel."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

from sslseg.training.settings import common_problems, refuse_output_inside_data, refuse_problems

#: Settings that define what is trained: a resumed run must use the same values (others may change on resume).
IDENTITY_FIELDS = (
    "method", "preset", "patch_size", "patches_per_volume", "batch_size", "lr", "weight_decay", "warmup_steps",
    "grad_clip", "temperature", "seed", "val_fraction", "spacing", "ct_window", "mr_percentiles", "modality",
    "reduce",
)


@dataclass
class PretrainConfig:
    """A pretraining run. ``None`` means "the preset's / the machine's default" where noted.

    Attributes:
        data_dir: folder of unlabelled volumes (NIfTI, NRRD, MetaImage, DICOM series), searched recursively.
        out_dir: RUN_DIR, where every output goes.
        method: SSL method name (see ``sslseg.ssl``).
        preset: ViT size (``tiny``, ``vit-b``).
        patch_size: training patch edge in voxels (None: the preset's ``img_size``); a multiple of 16.
        patches_per_volume: random patches drawn from each training volume per epoch.
        epochs, max_steps: training length (:func:`sslseg.training.loop.planned_epochs`): with both, whichever ends
            first; ``epochs`` None: as many as ``max_steps`` needs, or ``DEFAULT_EPOCHS`` without it.
        batch_size: patches per optimisation step in each process (global batch = batch_size x processes).
        lr, weight_decay, warmup_steps: AdamW; the learning rate rises linearly over ``warmup_steps``, then stays.
        grad_clip: gradient norm limit (0: off).
        temperature: contrastive temperature (the MONAI recipe's; other methods that have one take it when it is
            not the default).
        method_options: the method's options, name -> value (or string, as ``--method-option key=value`` gives).
        device, amp: ``auto|cuda|mps|cpu``, ``auto|bf16|fp16|off``.
        seed: seeds model initialisation, patch choice, views and sample order.
        workers: data-loading processes (None: cores - 1, at most 4).
        val_every: validate every N epochs (0: never); val_fraction: share of volumes held out for it.
        checkpoint_every: also checkpoint every N steps (0: at epoch ends only).
        spacing, ct_window, mr_percentiles, modality: preprocessing (see ``sslseg.data.preprocess``).
        cache_dir: preprocessed-volume cache (None: RUN_DIR/cache).
        resume, overwrite: continue the run in RUN_DIR / replace it.
        reduce: Hash-K slice reduction of the training volumes (None: off; see ``sslseg.reduce.sampling``).
        events: ``"-"`` stdout, a file path, or None (stdout unless it is a terminal); RUN_DIR/events.jsonl always.
        probe: labelled cases for frozen-encoder probes during training (None: none; see ``sslseg.probes.live``);
            probe_every: every N epochs and after the last. Neither changes what is trained (a resume may differ).
    """

    data_dir: str
    out_dir: str
    method: str = "inpaint-contrastive"
    preset: str = "vit-b"
    patch_size: int | None = None
    patches_per_volume: int = 2
    epochs: int | None = None
    max_steps: int | None = None
    batch_size: int = 4
    lr: float = 1e-4
    weight_decay: float = 1e-5
    warmup_steps: int = 0
    grad_clip: float = 1.0
    temperature: float = 0.05
    device: str = "auto"
    amp: str = "auto"
    seed: int = 0
    workers: int | None = None
    val_every: int = 1
    val_fraction: float = 0.1
    checkpoint_every: int = 100
    spacing: float = 2.0
    ct_window: tuple[float, float] = (-1000.0, 1000.0)
    mr_percentiles: tuple[float, float] = (0.5, 99.5)
    modality: str = "auto"
    cache_dir: str | None = None
    resume: bool = False
    overwrite: bool = False
    events: str | None = None
    reduce: int | None = None
    method_options: dict = field(default_factory=dict)
    probe: str | None = None
    probe_every: int = 5

    def check(self) -> None:
        """Refuse settings that cannot work, with the option to change."""
        refuse_problems(common_problems(self) + [
            (self.patches_per_volume < 1, "--patches-per-volume must be at least 1"),
            (self.warmup_steps < 0, "--warmup-steps must be >= 0"),
            (self.reduce is not None and not 0 <= self.reduce <= 64, "--reduce is a Hamming distance, 0..64"),
            (self.probe is not None and not Path(self.probe).exists(),
             f"--probe {self.probe}: no such folder or datalist (labelled cases, as for `sslseg finetune`)"),
        ], "pretrain")
        refuse_output_inside_data(self.out_dir, self.data_dir, "RUN_DIR", "DATA_DIR", "training data")

    def identity(self) -> dict:
        """The settings a resumed run must share with the run it continues (JSON-able); ``method_options`` only when
        given (the run adds the method's resolved options, see ``sslseg.pretrain.run.run_identity``)."""
        data = asdict(self)
        identity = {k: list(data[k]) if isinstance(data[k], tuple) else data[k] for k in IDENTITY_FIELDS}
        if self.method_options:
            identity["method_options"] = dict(self.method_options)
        return identity
