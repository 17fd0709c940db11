"""Installing the engine's Python packages into Slicer on first use, after asking (never at import).

torch comes through the PyTorch extension (``PyTorchUtilsLogic().installTorch``), which picks the build for the
machine's GPU; its version must satisfy what monai 1.6 requires (``TORCH_REQUIREMENT``). The rest comes from
``Resources/SSLSegmentation_requirements.txt`` through ``slicer.packaging.pip_ensure`` (Slicer >= 5.12, where the
``slicer.packaging`` submodule must be imported explicitly: check, confirm, install with progress, offer a restart),
else (Slicer 5.10) a confirm dialog and ``slicer.util.pip_install``. Slicer's own SimpleITK, numpy and requests, and
the PyTorch extension's torch, are never replaced: they are not in the file, and pip_ensure skips them as
dependencies (``skip_packages``).
"""

import importlib.metadata
import importlib.util
import logging
from pathlib import Path

import qt
import slicer

REQUIREMENTS = Path(__file__).resolve().parents[1] / "Resources" / "SSLSegmentation_requirements.txt"
NEVER_REPLACE = ["SimpleITK", "numpy", "requests", "torch"]
TORCH_REQUIREMENT = ">=2.8"  # monai 1.6.x requires torch>=2.8.0


class DependencyError(RuntimeError):
    """The user declined, or an install failed; the message says what to do."""


def requirementLines() -> list[str]:
    lines = REQUIREMENTS.read_text(encoding="utf-8").splitlines()
    return [line.strip() for line in lines if line.strip() and not line.strip().startswith("#")]


def missingRequirements() -> list[str]:
    """Requirement lines whose package is not installed (versions are checked by pip_ensure where available)."""
    from packaging.requirements import Requirement

    missing = []
    for line in requirementLines():
        try:
            importlib.metadata.version(Requirement(line).name)
        except importlib.metadata.PackageNotFoundError:
            missing.append(line)
    return missing


def torchSatisfied() -> bool:
    """Whether an installed torch satisfies ``TORCH_REQUIREMENT`` (read from its metadata: torch is not imported)."""
    from packaging.specifiers import SpecifierSet

    if importlib.util.find_spec("torch") is None:
        return False
    try:
        version = importlib.metadata.version("torch")
    except importlib.metadata.PackageNotFoundError:
        return False
    return SpecifierSet(TORCH_REQUIREMENT).contains(version, prereleases=True)


def ensureTorch(ask: bool = True) -> None:
    """torch through the PyTorch extension (installed, or upgraded when older than ``TORCH_REQUIREMENT``); raises
    :class:`DependencyError` when the extension is not there or the user declined."""
    if torchSatisfied():
        return  # installed already (not imported here: that takes seconds)
    try:
        import PyTorchUtils
    except ImportError as error:
        raise DependencyError("the PyTorch extension is needed: install it from the Extensions Manager, "
                              "restart Slicer and try again") from error
    installed = PyTorchUtils.PyTorchUtilsLogic().installTorch(askConfirmation=ask,
                                                              torchVersionRequirement=TORCH_REQUIREMENT)
    if installed is None:
        raise DependencyError("PyTorch was not installed; the engine needs it (see the PyTorch module)")


def _packagingModule():
    """``slicer.packaging`` (Slicer >= 5.12; a submodule nothing imports at start-up), or None (Slicer 5.10)."""
    try:
        import slicer.packaging
    except ImportError:
        return None
    return slicer.packaging if hasattr(slicer.packaging, "pip_ensure") else None


def ensurePackages(ask: bool = True, requester: str = "SSL Segmentation") -> None:
    """The engine's other packages, asking first."""
    packaging = _packagingModule()
    if packaging is not None:  # Slicer >= 5.12: raises RuntimeError when declined, CalledProcessError on failure
        packaging.pip_ensure(packaging.load_requirements(REQUIREMENTS), requester=requester, prompt_install=ask,
                             skip_packages=NEVER_REPLACE)
        return
    missing = missingRequirements()
    if not missing:
        return
    if ask and not slicer.util.confirmOkCancelDisplay(
            f"{requester} needs these Python packages, which will now be installed into Slicer "
            f"(a few minutes):\n\n" + "\n".join(missing), windowTitle="Install Python packages"):
        raise DependencyError("the engine's Python packages were not installed (cancelled)")
    slicer.app.setOverrideCursor(qt.Qt.WaitCursor)
    try:  # a failure raises CalledProcessError, shown by the caller's tryWithErrorDisplay
        for line in missing:
            logging.info("installing %s", line)
            slicer.util.pip_install(line)
    finally:
        slicer.app.restoreOverrideCursor()
    qt.QApplication.processEvents()


def ensureDependencies(ask: bool = True, requester: str = "SSL Segmentation") -> None:
    """torch, then the rest. Called when the user starts a job, never at import or module construction."""
    ensureTorch(ask)
    ensurePackages(ask, requester)
