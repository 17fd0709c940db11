"""Safe file handling for shared packages: content hashes, names that stay inside their folder, atomic writes."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path

from sslseg.package.schema import CardError


def sha256_of(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def inside(folder: Path, name: str, source: str) -> Path:
    """``folder / name`` for a plain file name; anything that could lead elsewhere is refused."""
    if not name or name != Path(name).name or name in (".", "..") or "\\" in name or ":" in name:
        raise CardError(f"{source} names the file {name!r}, which is not a plain file name in its folder",
                        "a package only refers to files beside its card; the card may be malicious")
    path = folder / name
    if path.is_symlink() or not path.resolve().is_relative_to(folder.resolve()):
        raise CardError(f"{source}: {name!r} leads outside {folder}", "the package may be malicious; do not use it")
    return path


def write_atomically(path: Path, write) -> None:
    """Call ``write(temporary_path)`` and rename into place, so readers never see a half-written file. The file gets
    the permissions a plain ``open()`` would give it (``0o666`` less the umask)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".partial", dir=path.parent)
    os.close(handle)
    try:
        write(Path(temporary))
        # after writing: mkstemp makes the file owner-only, and some writers replace it with their own owner-only
        # file (safetensors' save_file does), which would leave a shared model folder unreadable to colleagues
        os.chmod(temporary, plain_file_mode())
        os.replace(temporary, path)
    finally:
        Path(temporary).unlink(missing_ok=True)


def plain_file_mode() -> int:
    """The permissions ``open(path, "w")`` gives a new file: ``0o666`` less this process's umask."""
    umask = os.umask(0)  # the only way to read the umask; set straight back
    os.umask(umask)
    return 0o666 & ~umask


def write_json(path: Path, content: dict) -> None:
    write_atomically(path, lambda p: p.write_text(json.dumps(content, indent=1, sort_keys=False) + "\n", encoding="utf-8"))
