import os
import sys
from pathlib import Path

import pytest

TESTING = Path(__file__).resolve().parent
sys.path.insert(0, str(TESTING))

# The suite's fixed thresholds (held-out Dice, loss decrease) and its equalities (DDP against one process, resumed
# against uninterrupted runs) were measured in float32, and `--amp auto` differs between CPU classes: every command a
# test runs, in this process and in the worker processes it starts, resolves `auto` to float32. The bf16 path has its
# own tests, which ask for it by name (Testing/engine/test_precision_parity.py).
os.environ["SSLSEG_AMP"] = "off"
# As every sslseg process does (sslseg/openmp_policy.py), before torch loads: spinning OpenMP threads made one
# fine-tuning test take ~15 minutes instead of seconds while another torch process ran beside the suite.
from sslseg.openmp_policy import prefer_passive_waits  # noqa: E402

prefer_passive_waits()


def pytest_report_header(config):
    """Whether the Slicer runtime harness runs here, and what it stands in (Testing/slicer_runtime/README.md)."""
    sys.path.insert(0, str(TESTING / "slicer_runtime"))
    import slicer_harness

    reason = slicer_harness.unavailable_reason()
    return f"Slicer runtime harness: skipped ({reason})" if reason else slicer_harness.banner()


from finetune_support import FINETUNE_GRID, FINETUNE_SPACING_MM  # noqa: E402  (after the path is set)

#: Three small real scans with labels, kept in the repository (provenance and licence: Testing/Data/README.md).
REAL_DATA = TESTING / "Data"


@pytest.fixture(scope="session")
def real_data() -> Path:
    """``Testing/Data``: ``ct_upper_abdomen_dicom/``, ``ct_thorax_cta/``, ``mr_abdomen/`` (see its README)."""
    if not (REAL_DATA / "ct_thorax_cta" / "ct.nii.gz").is_file():
        pytest.fail(f"the real test data is missing from the checkout: expected {REAL_DATA} (git checkout Testing/Data)")
    return REAL_DATA


# --- pretraining fixtures (issue 3) -----------------------------------------------------------------------------
#: Small synthetic CTs for pretraining tests: 4 mm voxels, so preprocessing at 4 mm keeps them small and fast.
PRETRAIN_CASES = 5
PRETRAIN_GRID = (44, 40, 32)
PRETRAIN_SPACING_MM = 4.0


@pytest.fixture(scope="session")
def unlabelled_dir(tmp_path_factory) -> Path:
    """A folder of 5 synthetic CT phantoms (case_000.nii.gz ...), 44 x 40 x 32 voxels of 4 mm, int16 HU."""
    from sslseg.synth.cohort import write_unlabelled

    folder = tmp_path_factory.mktemp("unlabelled")
    write_unlabelled(folder, PRETRAIN_CASES, size=PRETRAIN_GRID, spacing=PRETRAIN_SPACING_MM, seed=3)
    return folder


@pytest.fixture(scope="session")
def pretrain_cache(tmp_path_factory, unlabelled_dir) -> Path:
    """A preprocessed-volume cache of ``unlabelled_dir`` (4 mm), shared by the pretraining tests."""
    from sslseg.data.cache import build_cache
    from sslseg.data.preprocess import PreprocessSettings
    from sslseg.io.scan import find_volumes

    folder = tmp_path_factory.mktemp("pretrain_cache")
    build_cache(find_volumes(unlabelled_dir), folder, PreprocessSettings(spacing_mm=PRETRAIN_SPACING_MM))
    return folder


# --- fine-tuning fixtures (issue 4) -----------------------------------------------------------------------------
#: Labelled synthetic CTs for fine-tuning tests, written at the 6 mm the tests train at (no resampling blur): about
#: 46 x 34 x 34 voxels after the crop to the body, so a 32^3 crop holds most of a case.
FINETUNE_CASES = 6


@pytest.fixture(scope="session")
def labelled_dir(tmp_path_factory) -> Path:
    """6 labelled synthetic CT phantoms in MSD layout (imagesTr, labelsTr, dataset.json with organ names)."""
    from sslseg.synth.cohort import write_labelled

    folder = tmp_path_factory.mktemp("labelled")
    write_labelled(folder, FINETUNE_CASES, size=FINETUNE_GRID, spacing=FINETUNE_SPACING_MM, seed=5)
    return folder


@pytest.fixture(scope="session")
def tiny_encoder_run(tmp_path_factory, unlabelled_dir, pretrain_cache) -> Path:
    """A pretraining RUN_DIR (tiny preset, 32^3 patches, one epoch) whose encoder fine-tuning loads."""
    from pretrain_support import run_tiny

    folder = tmp_path_factory.mktemp("tiny_encoder") / "run"
    run_tiny(unlabelled_dir, folder, pretrain_cache, epochs=1)
    return folder


@pytest.fixture(scope="session")
def run_finetune():
    """``run_finetune(data_dir, out_dir, **overrides) -> summary``: a tiny fine-tuning (encoder ``none`` unless
    overridden), settings FINETUNE_TINY."""
    from finetune_support import FINETUNE_TINY
    from sslseg.finetune.config import FinetuneConfig
    from sslseg.finetune.run import finetune

    def run(data_dir, out_dir, **overrides):
        settings = {"encoder": "none", **FINETUNE_TINY, **overrides}
        return finetune(FinetuneConfig(data_dir=str(data_dir), out_dir=str(out_dir), **settings))

    return run


#: The background organ model of this session (``organ_model_support``), started once tests needing it are collected.
_ORGAN_MODEL: dict = {}


@pytest.hookimpl(trylast=True)  # after ``-m``/``-k`` have deselected
def pytest_collection_modifyitems(session, config, items):
    """Tests using ``organ_model`` run last and their model trains in the background meanwhile."""
    needing = [item for item in items if "organ_model" in getattr(item, "fixturenames", ())]
    if not needing or config.option.collectonly:
        return
    items[:] = [item for item in items if item not in needing] + needing
    import tempfile

    from organ_model_support import BackgroundOrganModel

    _ORGAN_MODEL["run"] = BackgroundOrganModel(Path(tempfile.mkdtemp(prefix="sslseg-test-organ-model-")))


def pytest_sessionfinish(session):
    import shutil

    background = _ORGAN_MODEL.pop("run", None)
    if background is not None:
        background.stop()
        shutil.rmtree(background.folder, ignore_errors=True)


@pytest.fixture(scope="session")
def organ_cases(tmp_path_factory) -> Path:
    """10 labelled synthetic CT phantoms (MSD layout), 6 mm, the grid of ``labelled_dir``: the organ model's."""
    from organ_model_support import write_cases

    background = _ORGAN_MODEL.get("run")
    return background.cases if background else write_cases(tmp_path_factory.mktemp("organ_cases"))


@pytest.fixture(scope="session")
def organ_model(organ_cases):
    """(MODEL_DIR, summary): a tiny UNETR trained 800 steps on 8 of ``organ_cases`` (2 held out), validated every 80
    steps; it segments all 8 organs of held-out phantoms (mean Dice ~0.87). Trained in a background process
    (``organ_model_support``) while the rest of the suite runs; shared by the learning, geometry, retraining and
    precision tests."""
    return _ORGAN_MODEL["run"].result()
