"""``sslseg`` command line: one sub-command per module in ``sslseg.cli``, user errors as two lines, not a traceback."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from sslseg import __version__
from sslseg import closed_pipe
from sslseg.errors import SSLSegError
from sslseg.openmp_policy import prefer_passive_waits

#: Modules that each define ``register(subparsers)``; the parser they add sets ``run=callable(args) -> int``.
COMMAND_MODULES = (
    "sslseg.cli.synth_command",
    "sslseg.cli.info_command",
    "sslseg.cli.segment_command",
    "sslseg.cli.evaluate_command",
    "sslseg.cli.demo_command",
    "sslseg.cli.pretrain_command",
    "sslseg.cli.preview_views_command",
    "sslseg.cli.finetune_command",
    "sslseg.cli.reduce_command",
    "sslseg.cli.probe_command",
    "sslseg.cli.study_command",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sslseg",
        description="Self-supervised pretraining and UNETR organ segmentation for 3-D CT and MR volumes.",
    )
    parser.add_argument("--version", action="version", version=f"sslseg {__version__}")
    parser.add_argument("--debug", action="store_true", help="show full tracebacks and debug logging")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    prefer_passive_waits()  # before anything imports torch (see sslseg.openmp_policy)
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.debug else logging.INFO, format="%(levelname)s: %(message)s", stream=sys.stderr
    )
    if not getattr(args, "run", None):
        parser.print_help()
        return 2
    try:
        status = int(args.run(args) or 0)
        sys.stdout.flush()  # here, not at exit: a reader gone by then would get a traceback, not the quiet end below
        return status
    except BrokenPipeError as error:
        if args.debug or not closed_pipe.stdout_reader_gone():
            return _system_error(error, args.debug)  # another pipe (a worker process): a real failure
        closed_pipe.discard_stdout()
        return closed_pipe.EXIT_STATUS
    except SSLSegError as error:
        if args.debug:
            raise
        _tell(f"error: {error.message}", *([f"hint: {error.hint}"] if error.hint else []))
        return 2
    except OSError as error:
        return _system_error(error, args.debug)
    except MemoryError as error:  # outside the places that turn it into advice (reading, resampling a huge volume)
        if args.debug:
            raise
        _tell(f"error: out of memory{f' ({error})' if str(error) else ''}",
              "hint: close other programs, or use a computer with more memory")
        return 2
    except KeyboardInterrupt:
        _tell("interrupted")
        return 130


def _system_error(error: OSError, debug: bool) -> int:
    """A full disk, a vanished folder, a permission: the system's words, without a traceback."""
    if debug:
        raise error
    _tell(f"error: {error}", "hint: check the path, its permissions and the free disk space")
    return 2


def _tell(*lines: str) -> None:
    """Lines for the user on stderr; where its reader is gone too (a GUI that quit), the exit status alone tells, and
    a second error while reporting the first must not replace it."""
    try:
        for line in lines:
            print(line, file=sys.stderr, flush=True)
    except (OSError, ValueError):
        closed_pipe.discard_stream(sys.stderr)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
