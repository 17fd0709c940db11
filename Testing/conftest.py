import sys
from pathlib import Path

import pytest

TESTING = Path(__file__).resolve().parent
sys.path.insert(0, str(TESTING))

SHARED_DATA = TESTING.parent.parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.fail(f"the real test data is missing: expected {SHARED_DATA} (../shared/data beside the repository)")
    return SHARED_DATA


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
