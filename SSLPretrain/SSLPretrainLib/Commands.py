"""``sslseg pretrain`` and ``sslseg preview-views`` command lines from the panel's settings (plain values)."""

from __future__ import annotations

import logging


def methodTable():
    """The engine's table of SSL methods (``sslseg.ssl.table``: plain strings, no torch), read when asked so the
    panel lists exactly the methods of the engine it runs. The caller makes ``sslseg`` importable first
    (``SSLSegmentationLib.Engine.ensureEngineImportable``)."""
    from sslseg.ssl import table

    return table


def methodNames() -> list[str]:
    """The methods the panel offers, in the table's order (the default first)."""
    return list(methodTable().METHODS)


def defaultMethod() -> str:
    return methodTable().DEFAULT_METHOD


def methodDescription(name: str) -> str:
    """The method's one line from the table (its tooltip in the panel); "" for an unknown name."""
    entry = methodTable().METHODS.get(name)
    return entry.description if entry else ""


def methodOptionArgs(text: str) -> list[str]:
    """``--method-option KEY=VALUE`` arguments from the panel's free text ``"key=value, key=value"``. A piece without
    ``=`` continues the value before it, so list values keep their commas (``scales=0.2,1.0``).

    Raises:
        ValueError: text that does not start with ``key=`` or names no key.
    """
    options: list[str] = []
    for piece in (p.strip() for p in (text or "").split(",")):
        if not piece:
            continue
        key, sep, _ = piece.partition("=")
        if sep and key.strip():
            options.append(piece)
        elif options:
            options[-1] += "," + piece
        else:
            raise ValueError(f"Method options are key=value pairs separated by commas; {piece!r} is not one.")
    return [arg for option in options for arg in ("--method-option", option)]


def engineHasOption(command: str, option: str) -> bool:
    """Whether this engine's ``sslseg COMMAND`` takes ``option`` (e.g. ``--reduce``, added by a later engine
    version). Called when a job starts, after the dependencies are installed (building the parser imports them)."""
    try:
        from sslseg.cli.main import build_parser

        parser = build_parser()
        commands = next(a for a in parser._actions if getattr(a, "dest", None) == "command")
        sub = commands.choices[command]
        return any(option in action.option_strings for action in sub._actions)
    except Exception as error:  # an engine that cannot say: run without the option rather than fail
        logging.warning("cannot tell whether sslseg %s takes %s: %s", command, option, error)
        return False


def pretrainArgs(dataDir, outDir, method: str | None = None, preset: str = "vit-b", epochs: int = 100,
                 batchSize: int = 4, patchSize: int = 0, learningRate: float = 1e-4, device: str = "auto",
                 amp: str = "auto", resume: bool = False, reduceSlices: int = 0, reduceSupported: bool = True,
                 extra: list | None = None, methodOptions: str = "", probeDir=None, probeEvery: int = 5) -> list[str]:
    """Arguments of ``sslseg pretrain`` (without the command). ``reduceSlices`` K > 0 passes ``--reduce K`` when the
    engine supports it (``reduceSupported``), else it is left out with a warning. ``method``: the table's default when
    None. ``methodOptions``: the panel's ``"key=value, ..."`` text, passed as ``--method-option`` (see
    :func:`methodOptionArgs`). ``probeDir``: labelled cases for the live probes (``--probe``), every ``probeEvery``
    epochs."""
    from SSLSegmentationLib.Commands import dataArg

    method = method or defaultMethod()
    args = [dataArg(dataDir, "folder of volumes to pretrain on"), "--out", str(outDir), "--method", method,
            "--preset", preset, "--epochs", str(epochs),
            "--batch-size", str(batchSize), "--lr", f"{learningRate:g}", "--device", device, "--amp", amp]
    args += methodOptionArgs(methodOptions)
    if patchSize:
        args += ["--patch-size", str(patchSize)]
    if reduceSlices:
        if reduceSupported:
            args += ["--reduce", str(reduceSlices)]
        else:
            logging.warning("this engine has no `sslseg pretrain --reduce`: pretraining on every slice")
    if probeDir:
        args += ["--probe", dataArg(probeDir, "labelled folder to probe on"), "--probe-every", str(probeEvery)]
    if resume:
        args.append("--resume")  # a new run into a folder holding one is refused by the engine, with a hint
    return args + [str(a) for a in (extra or [])]


def previewArgs(dataDir, outDir, method: str, preset: str, patchSize: int = 0) -> list[str]:
    """Arguments of ``sslseg preview-views``: the first volume's centre patch and its two views."""
    args = [str(dataDir), "--out", str(outDir), "--method", method, "--preset", preset]
    return args + (["--patch-size", str(patchSize)] if patchSize else [])


def previewFiles(lines: list[str]) -> list[str]:
    """The volumes ``preview-views`` printed (one path a line): original patch, view 1, view 2."""
    return [line.strip() for line in lines if line.strip().endswith((".nii.gz", ".nii"))]


def reduceArgs(dataDir, threshold: int, reportDir) -> list[str]:
    """Arguments of ``sslseg reduce``: which axial slices Less is More's Hash-k drops at this threshold."""
    return [str(dataDir), "--threshold", str(threshold), "--out", str(reportDir), "--overwrite"]


def reductionSummary(reportDir) -> dict:
    """The totals of a ``sslseg reduce`` report (``volumes``, ``slices``, ``kept``, ``dropped``, ``kept_fraction``)
    and its ``threshold``."""
    import json
    import pathlib

    report = json.loads((pathlib.Path(reportDir) / "reduction.json").read_text(encoding="utf-8"))
    return {**report["totals"], "threshold": report["threshold"]}


def describeReduction(summary: dict) -> str:
    """One line for the panel, e.g. "k = 6 keeps 412 of 1020 axial slices (40%) in 12 volumes"."""
    return (f"k = {summary['threshold']} keeps {summary['kept']} of {summary['slices']} axial slices "
            f"({summary['kept_fraction']:.0%}) in {summary['volumes']} volumes")
