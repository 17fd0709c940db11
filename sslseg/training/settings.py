"""Checks on the settings every training run has (length, optimiser, validation, workers, resume), shared by the
pretraining and fine-tuning configurations: each refusal names the option to change."""

from __future__ import annotations

from pathlib import Path

from sslseg.errors import SSLSegError

#: Training length when neither ``--epochs`` nor ``--max-steps`` is given.
DEFAULT_EPOCHS = 100


def common_problems(config) -> list[tuple[bool, str]]:
    """(failed, message) for the fields both configurations share."""
    return [
        (config.epochs is not None and config.epochs < 1, "--epochs must be at least 1"),
        (config.max_steps is not None and config.max_steps < 1, "--max-steps must be at least 1"),
        (config.batch_size < 1, "--batch-size must be at least 1"),
        (not config.lr > 0, "--lr must be > 0"),
        (config.weight_decay < 0 or config.grad_clip < 0, "--weight-decay and --grad-clip must be >= 0"),
        (not 0 <= config.val_fraction < 1, "--val-fraction must be in [0, 1)"),
        (config.val_every < 0 or config.checkpoint_every < 0, "--val-every and --checkpoint-every must be >= 0"),
        (config.workers is not None and config.workers < 0, "--workers must be >= 0"),
        (config.resume and config.overwrite, "--resume and --overwrite exclude each other"),
    ]


def refuse_problems(problems: list[tuple[bool, str]], command: str) -> None:
    """Raise for the first failed check, pointing to the command's help."""
    for failed, message in problems:
        if failed:
            raise SSLSegError(message, f"see `sslseg {command} --help`")


def refuse_output_inside_data(out_dir: str, data_dir: str, out_name: str, data_name: str, what: str) -> None:
    """The run folder must not lie inside the data folder, whose scan would read the run's own files as ``what``."""
    out, data = Path(out_dir).resolve(), Path(data_dir).resolve()
    if data.is_dir() and (out == data or out.is_relative_to(data)):
        raise SSLSegError(f"{out_name} {out_dir} is inside {data_name} {data_dir}: the run's own files would be read "
                          f"as {what}", f"choose an --out folder outside {data_name}")
