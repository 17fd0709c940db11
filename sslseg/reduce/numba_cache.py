"""Where numba keeps the compiled slice-hash kernels: a per-user folder, never the installed package.

numba's default for ``cache=True`` is ``__pycache__`` beside the module, i.e. inside the install tree, which is
read-only in a Slicer installation or a system-wide ``pip install`` (numba then silently tries other places). numba
reads ``NUMBA_CACHE_DIR`` when it is imported and when it compiles; :func:`configure` sets it, before
:mod:`~sslseg.reduce.compiled_kernels` imports numba, to the first usable folder of:

1. ``NUMBA_CACHE_DIR`` as the user set it;
2. the per-user cache: ``$XDG_CACHE_HOME/sslseg/numba`` (default ``~/.cache/sslseg/numba``),
   ``~/Library/Caches/sslseg/numba`` on macOS, ``%LOCALAPPDATA%\\sslseg\\numba`` on Windows;
3. ``<temp>/sslseg-numba-<user>``, accepted only when it is owned by this user and writable by nobody else (numba
   unpickles what it finds there);

and when none is usable, the kernels are compiled without a disk cache (each process compiles again, ~1-5 s, but
hashing works). numba keeps one subfolder per source folder in it, so several installs do not collide.

The variable is set for the whole process (and its children): another numba user in the same process (Slicer hosts
many extensions) caches in our folder too, which is harmless, since numba keys every entry by its source file.
"""

from __future__ import annotations

import logging
import os
import sys
import tempfile
from functools import lru_cache
from pathlib import Path

log = logging.getLogger(__name__)

ENV = "NUMBA_CACHE_DIR"


def user_cache_root(environ=os.environ) -> Path:
    """The platform's per-user cache folder (not created)."""
    home = Path(os.path.expanduser("~"))
    if sys.platform == "win32":
        return Path(environ.get("LOCALAPPDATA") or home / "AppData" / "Local")
    if sys.platform == "darwin":
        return home / "Library" / "Caches"
    return Path(environ.get("XDG_CACHE_HOME") or home / ".cache")


def private_temp_dir() -> Path:
    """``<temp>/sslseg-numba-<user>``: per user, since the temporary folder may be shared."""
    user = os.getuid() if hasattr(os, "getuid") else os.environ.get("USERNAME", "user")
    return Path(tempfile.gettempdir()) / f"sslseg-numba-{user}"


def candidates(environ=os.environ) -> list[tuple[Path, bool]]:
    """(folder, must be private) in order of preference (see the module docstring)."""
    chosen = [(Path(environ[ENV]), False)] if environ.get(ENV) else []
    return chosen + [(user_cache_root(environ) / "sslseg" / "numba", False), (private_temp_dir(), True)]


def usable(folder: Path, private: bool = False) -> bool:
    """Whether ``folder`` exists or can be created, takes a new file (numba's own test), and, when ``private``, is
    this user's alone (on POSIX: owned by us, no group or other write permission)."""
    if not folder.is_absolute():  # e.g. "~" left unexpanded when there is no home
        return False
    try:
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        tempfile.TemporaryFile(dir=folder).close()
        if private and hasattr(os, "getuid"):
            status = folder.stat()
            return status.st_uid == os.getuid() and not status.st_mode & 0o022
    except OSError:
        return False
    return True


@lru_cache(maxsize=1)
def configure() -> str | None:
    """Point numba at the first usable cache folder (sets ``NUMBA_CACHE_DIR``); the folder, or None when there is
    none (the caller compiles without a disk cache). Call before importing numba; once per process."""
    for folder, private in candidates():
        if usable(folder, private):
            if os.environ.get(ENV) != str(folder):
                if os.environ.get(ENV):
                    log.warning("numba cache folder %s is not usable; caching in %s", os.environ[ENV], folder)
                os.environ[ENV] = str(folder)
            _reload_numba_config()
            return str(folder)
    log.warning("no writable folder for numba's cache: the slice-hash kernels are compiled in every process")
    return None


def _reload_numba_config() -> None:
    """numba already imported (by another package in this process): make it read the variable now; it would only
    at its next compilation, after our kernels have chosen their cache folder."""
    config = sys.modules.get("numba.core.config")
    if config is not None and hasattr(config, "reload_config"):
        config.reload_config()
