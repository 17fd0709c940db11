"""The compiled slice-hash kernels are compiled once per machine, cached in a per-user folder, never in the package.

Each test hashes in fresh Python processes (numba's cache matters only across processes) on small volumes that reach
every kernel: slices innermost and outermost in memory, integer voxels (float32 grey-level map) and float voxels
(float64 map)."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from sslseg.reduce import compiled_sweeps

pytestmark = pytest.mark.skipif(not compiled_sweeps.available(), reason="numba is not installed")

PACKAGE = Path(compiled_sweeps.__file__).resolve().parents[1]
REPOSITORY = PACKAGE.parent

#: Hashes four small volumes, then prints the hashes and numba's cache hits and misses over sslseg's kernels.
#: ``sys.argv[1]``, when given, replaces the temporary folder (a folder that cannot be created: no fallback left).
CHILD = """
import gc, json, sys, tempfile
if len(sys.argv) > 1:
    tempfile.tempdir = sys.argv[1]
import numpy as np
from numba.core.dispatcher import Dispatcher
from sslseg.reduce import compiled_sweeps, dhash
from sslseg.reduce.axial import axial_stack
from sslseg.reduce.dhash import axial_hashes, to_hex
from sslseg.volume import Volume

compiled_sweeps.ONE_READ_SLICE_VOXELS = 1  # small slices stored outermost: the compiled extremes too
dhash.FLOAT32_MAP_VOXELS = 1  # small slices: the float32 grey-level map too
voxels = np.random.default_rng(0).integers(-1000, 2000, (40, 30, 6)).astype(np.int16)
hashes = []
for array in (voxels, np.asfortranarray(voxels), voxels.astype(np.float32), np.asfortranarray(voxels, np.float32)):
    hashes += to_hex(axial_hashes(axial_stack(Volume(array, np.eye(4))), kernel="compiled"))
kernels = [o for o in gc.get_objects() if isinstance(o, Dispatcher) and o.py_func.__module__.startswith("sslseg.")]
print(json.dumps({"hashes": hashes, "kernels": len(kernels),
                  "hits": sum(sum(k.stats.cache_hits.values()) for k in kernels),
                  "misses": sum(sum(k.stats.cache_misses.values()) for k in kernels)}))
"""


def run_child(env: dict, *arguments: str) -> dict:
    done = subprocess.run([sys.executable, "-c", CHILD, *arguments], env=env, cwd=REPOSITORY, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.splitlines()[-1])


def child_env(tmp_path: Path, **settings: str) -> dict:
    """This environment, with the user's folders (home, caches, temp) inside ``tmp_path`` and ``settings`` on top."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("NUMBA_")}
    for name in ("HOME", "XDG_CACHE_HOME", "LOCALAPPDATA", "TMPDIR", "TEMP", "TMP"):
        env[name] = str(tmp_path / name.lower())
        (tmp_path / name.lower()).mkdir()
    env["PYTHONPATH"] = os.pathsep.join([str(REPOSITORY), env.get("PYTHONPATH", "")])
    env.pop("SSLSEG_HASH_KERNEL", None)
    return {**env, **settings}


def cache_files(folder: Path) -> dict[str, str]:
    """numba's index (.nbi) and data (.nbc) files under ``folder``: relative path -> content hash."""
    return {str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest()
            for path in sorted(folder.rglob("*")) if path.suffix in (".nbi", ".nbc")}


def test_a_second_process_loads_every_kernel_from_the_cache(tmp_path):
    """The issue: every run compiled again (~1.3 s) and added a numbered .nbc file, because the cached kernels
    captured other compiled functions in closures and numba's index key hashes the pickled closure, which holds
    a per-process id."""
    env = child_env(tmp_path, NUMBA_CACHE_DIR=str(tmp_path / "numba"))
    first = run_child(env)
    files = cache_files(tmp_path / "numba")
    assert first["misses"] > 0 and files
    second = run_child(env)
    assert second["hashes"] == first["hashes"]
    assert cache_files(tmp_path / "numba") == files  # nothing added, no index rewritten
    assert second["misses"] == 0 and second["hits"] == first["misses"]


def test_kernels_are_cached_per_user_never_inside_the_package(tmp_path):
    """Slicer's install tree may be read-only: numba's default (``__pycache__`` beside the module) is not used."""
    before = cache_files(PACKAGE)
    run_child(child_env(tmp_path))
    assert cache_files(PACKAGE) == before
    assert cache_files(tmp_path / "xdg_cache_home" / "sslseg" / "numba") or sys.platform in ("win32", "darwin")
    assert cache_files(tmp_path)


def test_a_cache_folder_that_cannot_be_created_falls_back_to_a_private_temporary_one(tmp_path):
    blocker = tmp_path / "a file"
    blocker.write_text("not a folder")
    env = child_env(tmp_path, NUMBA_CACHE_DIR=str(blocker / "numba"), XDG_CACHE_HOME=str(blocker / "cache"))
    before = cache_files(PACKAGE)
    first = run_child(env)
    assert cache_files(PACKAGE) == before
    assert cache_files(tmp_path / "tmpdir")  # $TMPDIR/sslseg-numba-<user>
    assert run_child(env)["hashes"] == first["hashes"]


def test_without_any_writable_cache_folder_hashing_runs_uncached(tmp_path):
    blocker = tmp_path / "a file"
    blocker.write_text("not a folder")
    env = child_env(tmp_path, NUMBA_CACHE_DIR=str(blocker / "numba"), XDG_CACHE_HOME=str(blocker / "cache"))
    before = cache_files(PACKAGE)
    result = run_child(env, str(blocker / "tmp"))
    assert cache_files(PACKAGE) == before
    assert not cache_files(tmp_path)
    assert result["kernels"] > 0 and result["hits"] == 0  # (numba counts a miss per compilation even uncached)


def test_cache_folder_candidates_honour_numba_cache_dir_then_the_user_cache(tmp_path, monkeypatch):
    from sslseg.reduce import numba_cache

    monkeypatch.setattr(sys, "platform", "linux")
    environ = {"NUMBA_CACHE_DIR": str(tmp_path / "mine"), "XDG_CACHE_HOME": str(tmp_path / "xdg")}
    folders = [folder for folder, _ in numba_cache.candidates(environ)]
    assert folders[:2] == [tmp_path / "mine", tmp_path / "xdg" / "sslseg" / "numba"]
    assert folders[2].name.startswith("sslseg-numba-") and numba_cache.candidates(environ)[2][1]  # private
    assert [folder for folder, _ in numba_cache.candidates({})][0].parts[-3:] == (".cache", "sslseg", "numba")


@pytest.mark.skipif(not hasattr(os, "getuid"), reason="POSIX permissions")
def test_a_shared_temporary_cache_folder_is_refused(tmp_path):
    """numba unpickles its cache files: a folder others may write to is not used."""
    from sslseg.reduce import numba_cache

    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    assert numba_cache.usable(shared) and not numba_cache.usable(shared, private=True)
    shared.chmod(0o700)
    assert numba_cache.usable(shared, private=True)
    assert not numba_cache.usable(Path("relative"))  # "~" unexpanded without a home


#: Hashes a small volume twice (default kernel), then one larger than the rental, then prints which kernels ran.
RENTAL_CHILD = """
import json, sys
import numpy as np
from sslseg.reduce import compiled_sweeps, dhash
from sslseg.reduce.axial import axial_stack
from sslseg.reduce.dhash import axial_hashes, to_hex
from sslseg.volume import Volume

dhash.COMPILED_AFTER_VOXELS = 40 * 30 * 6 * 2
voxels = np.random.default_rng(0).integers(-1000, 2000, (40, 30, 6)).astype(np.int16)
loaded = []
hashes = []
for _ in range(3):
    hashes.append(to_hex(axial_hashes(axial_stack(Volume(voxels, np.eye(4))))))
    loaded.append(compiled_sweeps.loaded())
print(json.dumps({"loaded": loaded, "numba_imported": "numba" in sys.modules, "same": hashes[0] == hashes[2]}))
"""


def test_by_default_numpy_hashes_until_numbas_start_up_pays_for_itself(tmp_path):
    """numba costs ~0.7 s per process even from its cache: the default (no SSLSEG_HASH_KERNEL) does not even import
    numba for the first COMPILED_AFTER_VOXELS voxels, then switches to the compiled kernel, with the same bits."""
    env = child_env(tmp_path, NUMBA_CACHE_DIR=str(tmp_path / "numba"))
    done = subprocess.run([sys.executable, "-c", RENTAL_CHILD], env=env, cwd=REPOSITORY, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.splitlines()[-1])
    assert result == {"loaded": [False, False, True], "numba_imported": True, "same": True}
