"""Command lines for the engine workers, built from the panels' settings (plain values, no Qt, no slicer).

Only the options a user changed from the engine's defaults are passed where the engine picks a better default itself
(``--patch-size``, ``--preset``); everything the panel shows is passed explicitly otherwise, so the log shows what
ran.
"""

from __future__ import annotations

from pathlib import Path

#: Application setting (``slicer.app.userSettings()``) holding the last finished pretraining run: written by
#: SSLPretrain, offered by SSLSegmentation as its encoder when none is chosen.
LAST_ENCODER_KEY = "SSLSegmentation/LastEncoderRun"


def pathOrNone(value) -> Path | None:
    """A path a user chose, or None for an empty field (``pathlib.Path("")`` is ``"."``)."""
    text = str(value or "").strip()
    return None if text in ("", ".") else Path(text)


def trainingProblem(trainFromScene: bool, trainingFolder, modelOutputFolder, sceneCases: int | None = None) -> str:
    """What the user still has to choose before a training can start, or "" when nothing: the Train button is enabled
    only then, and a start from a script is refused with this message (not a worker told to read "None").

    Args:
        sceneCases: segmentations checked in the scene that have a source volume (None: not counted here).
    """
    if pathOrNone(modelOutputFolder) is None:
        return "Choose a folder for the model."
    if trainFromScene:
        if sceneCases == 0:
            return "Check segmentations drawn on a volume (their source volume) to train on."
        return ""
    if pathOrNone(trainingFolder) is None:
        return "Choose a training folder (images and labels), or train on segmentations in the scene."
    return ""


def dataArg(dataDir, what: str = "training folder (images and labels)") -> str:
    """The data folder as a worker argument; no folder is refused here (``str(None)`` would reach the worker)."""
    path = pathOrNone(dataDir)
    if path is None:
        raise ValueError(f"Choose a {what}.")
    return str(path)


def finetuneArgs(dataDir, outDir, encoder=None, preset: str = "auto", epochs: int = 100, batchSize: int = 1,
                 patchSize: int = 0, learningRate: float = 0.0, valEvery: int = 1, device: str = "auto",
                 amp: str = "auto", resume: bool = False, extra: list | None = None, fromModel=None,
                 undrawnSlicesUnknown: bool = False, partialOrgans: bool = False) -> list[str]:
    """``sslseg finetune`` arguments (without the command). ``encoder`` None: random initialisation. ``fromModel``: a
    model folder to continue from (``--from-model``; its network is kept, so no encoder, preset or patch size).
    ``patchSize`` 0 and ``learningRate`` 0: the encoder's size and the preset's recipe.
    ``undrawnSlicesUnknown``: ``--undrawn-slices unknown`` (axial); ``partialOrgans``: ``--partial-organs``."""
    start = ["--from-model", str(fromModel)] if fromModel else ["--encoder", str(encoder) if encoder else "none"]
    args = [dataArg(dataDir), "--out", str(outDir), *start,
            "--epochs", str(epochs), "--batch-size", str(batchSize),
            "--val-every", str(valEvery), "--device", device, "--amp", amp]
    if learningRate:  # 0: the preset's recipe decides (its rate comes with its schedule)
        args += ["--lr", f"{learningRate:g}"]
    if preset and preset != "auto" and not fromModel:
        args += ["--preset", preset]
    if patchSize and not fromModel:
        args += ["--patch-size", str(patchSize)]
    if undrawnSlicesUnknown:
        args += ["--undrawn-slices", "unknown", "--slice-axis", "axial"]
    if partialOrgans:
        args.append("--partial-organs")
    if resume:
        args.append("--resume")  # a new run into a folder holding one is refused by the engine, with a hint
    return args + [str(a) for a in (extra or [])]


def retrainedFolder(modelFolder) -> Path:
    """Where a retraining of ``modelFolder`` goes: ``NAME-retrained``, then ``-retrained-2``, ... (never an existing
    folder: the model being corrected stays as it is)."""
    base = Path(str(modelFolder))
    stem = base.name.split("-retrained")[0]
    candidate, number = base.with_name(f"{stem}-retrained"), 2
    while candidate.exists():
        candidate, number = base.with_name(f"{stem}-retrained-{number}"), number + 1
    return candidate


def segmentArgs(image, modelDir, out, device: str = "auto", amp: str = "auto", overlap: float = 0.25,
                largestComponent: bool = False) -> list[str]:
    """``sslseg segment`` arguments (the output is written fresh into a temporary folder, hence --overwrite)."""
    args = [str(image), "--model", str(modelDir), "--out", str(out), "--device", device, "--amp", amp,
            "--overlap", f"{overlap:g}", "--overwrite"]
    return args + (["--largest-component"] if largestComponent else [])


#: The file of a run folder that a ``--resume`` continues from (``sslseg.training.run_dir.CHECKPOINT``).
CHECKPOINT_FILE = "checkpoint.pt"


def isActive(job) -> bool:
    """Whether ``job`` (an ``sslseg.jobs.Job`` or None) is starting, running or importing."""
    return job is not None and job.state.active


def resumeAfter(jobState: str, outDir, resume: bool) -> bool:
    """The "Resume" setting after a training job ended in ``jobState`` (both modules' rule): after a cancel that left
    a checkpoint in ``outDir``, ticked, so the next Start continues the run (a new start into that folder is refused:
    "already holds a run"); after a cancel before any checkpoint, unticked (the engine starts such a folder anew and
    has nothing to resume); otherwise as the user set it (a failed run may need other settings, which a resume
    refuses)."""
    if jobState != "cancelled":
        return resume
    path = pathOrNone(outDir)
    return path is not None and (path / CHECKPOINT_FILE).is_file()


def isModelFolder(folder) -> bool:
    """Whether ``folder`` holds a model package written by ``sslseg finetune``."""
    path = pathOrNone(folder)
    return path is not None and (path / "model.json").is_file()


def isEncoderRun(folder) -> bool:
    """Whether ``folder`` is a pretraining run with an encoder (``encoder.json``)."""
    path = pathOrNone(folder)
    return path is not None and (path / "encoder.json").is_file()
