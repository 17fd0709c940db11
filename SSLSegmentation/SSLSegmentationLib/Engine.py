"""Finding the engine and the worker's interpreter inside Slicer.

The ``sslseg`` package is found (1) where a built extension installs it, beside the modules, which is on
``sys.path``; (2) in developer mode (module paths added in Application Settings), in the repository that holds this
module folder; (3) installed into Slicer's Python with pip.
"""

import os
import shutil
import sys
from pathlib import Path


def ensureEngineImportable() -> Path:
    """Make ``import sslseg`` work; returns the folder that holds the package."""
    try:
        import sslseg
    except ImportError:
        repository = Path(__file__).resolve().parents[2]  # <repo>/SSLSegmentation/SSLSegmentationLib/Engine.py
        if not (repository / "sslseg" / "__init__.py").is_file():
            raise
        sys.path.insert(0, str(repository))
        import sslseg
    return Path(sslseg.__file__).resolve().parent.parent


def pythonExecutable() -> str:
    """``PythonSlicer`` (Slicer's Python with its environment), else this interpreter."""
    return shutil.which("PythonSlicer") or sys.executable


def workerEnvironment() -> dict:
    """The environment Slicer started with (the launcher's additions for Qt/VTK left out, as Slicer's
    ``launchConsoleProcess`` does), else this process's."""
    try:
        import slicer

        return dict(slicer.util.startupEnvironment())
    except (ImportError, AttributeError):
        return dict(os.environ)
