"""Installing the engine's Python packages into Slicer on first use, after asking (never at import).

torch comes through the PyTorch extension (``PyTorchUtilsLogic().installTorch``), which picks the build for the
machine's GPU. The rest comes from ``Resources/SSLSegmentation_requirements.txt`` through ``slicer.packaging.pip_ensure``
(Slicer >= 5.12: check, confirm, install with progress, offer a restart), else a confirm dialog and
``slicer.util.pip_install``. Slicer's own SimpleITK, numpy and requests are never replaced: they are not in the
file, and the install skips them as dependencies.
"""

import importlib.metadata
import importlib.util
import logging
from pathlib import Path

import qt
import slicer

REQUIREMENTS = Path(__file__).resolve().parents[1] / "Resources" / "SSLSegmentation_requirements.txt"
NEVER_REPLACE = ["SimpleITK", "numpy", "requests", "torch"]
TORCH_REQUIREMENT = ">=2.2"


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


def ensureTorch(ask: bool = True) -> None:
    """torch through the PyTorch extension; raises :class:`DependencyError` when it is not there or declined."""
    if importlib.util.find_spec("torch") is not None:
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


def ensurePackages(ask: bool = True, requester: str = "SSL Segmentation") -> None:
    """The engine's other packages, asking first."""
    packaging = getattr(slicer, "packaging", None)
    if packaging is not None and hasattr(packaging, "pip_ensure"):  # Slicer >= 5.12
        requirements = packaging.load_requirements(str(REQUIREMENTS))
        try:
            packaging.pip_ensure(requirements, requester=requester, prompt_install=ask, skip_packages=NEVER_REPLACE)
        except TypeError:  # a release without skip_packages: the file lists none of them anyway
            packaging.pip_ensure(requirements, requester=requester, prompt_install=ask)
        return
    missing = missingRequirements()
    if not missing:
        return
    if ask and not slicer.util.confirmOkCancelDisplay(
            f"{requester} needs these Python packages, which will now be installed into Slicer "
            f"(a few minutes):\n\n" + "\n".join(missing), windowTitle="Install Python packages"):
        raise DependencyError("the engine's Python packages were not installed (cancelled)")
    with slicer.util.tryWithErrorDisplay("Installing Python packages failed", waitCursor=True):
        for line in missing:
            logging.info("installing %s", line)
            slicer.util.pip_install(line)
    qt.QApplication.processEvents()


def ensureDependencies(ask: bool = True, requester: str = "SSL Segmentation") -> None:
    """torch, then the rest. Called when the user starts a job, never at import or module construction."""
    ensureTorch(ask)
    ensurePackages(ask, requester)
