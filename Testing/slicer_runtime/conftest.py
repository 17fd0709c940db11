"""Fixtures of the Slicer runtime harness (slicer_harness.py): skip with the reason when Slicer's Python layer or
PySide6 is missing; print the stand-ins once per session."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

import slicer_harness  # noqa: E402


@pytest.fixture(scope="session")
def slicer_runtime(request):
    """The ``slicer`` module with both modules loaded (``slicer.modules.sslpretrain``/``sslsegmentation``)."""
    reason = slicer_harness.unavailable_reason()
    if reason:
        pytest.skip(reason)
    slicer = slicer_harness.boot()
    for name in ("SSLSegmentation", "SSLPretrain"):  # SSLPretrain depends on SSLSegmentation
        slicer_harness.load_module(name)
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_line("\n" + slicer_harness.banner())
    return slicer
