import os
import sys
from pathlib import Path

import numpy as np
import pytest
from shared_dir import SHARED

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
CDNOW_DIR = SHARED / "data" / "cdnow"

try:  # the package may not be installed in the environment running the tests
    import retention_plugin  # noqa: F401
except ImportError:  # pragma: no cover
    sys.path.insert(0, str(REPO / "src"))



@pytest.fixture(scope="session")
def cdnow_transactions():
    path = CDNOW_DIR / "CDNOW_sample.txt"
    if not path.exists():
        pytest.skip(f"CDNOW data not found at {path.resolve()}: ../shared is absent (it is only beside the checkout "
                    "on development machines and CI)")
    raw = np.loadtxt(path, dtype=str)
    return raw[:, 1].astype(np.int64), raw[:, 2], raw[:, 4].astype(np.float64)


@pytest.fixture(scope="session")
def cdnow_published_summary():
    path = CDNOW_DIR / "cdnow_customers_summary_with_transactions.csv"
    if not path.exists():
        pytest.skip(f"CDNOW summary not found at {path.resolve()}: ../shared is absent")
    return np.genfromtxt(path, delimiter=",", names=True)


@pytest.fixture(scope="session")
def cdnow_summary(cdnow_transactions):
    from retention_plugin.analysis.summary import summarize

    ids, dates, amounts = cdnow_transactions
    return summarize(ids, dates, amounts, calibration_end="1997-09-30", holdout_end="1998-06-30", time_unit="weeks")


@pytest.fixture
def slow_run(request):
    """Skips a ``@pytest.mark.slow`` test unless slow runs were asked for (``-m slow`` or RETENTION_SLOW_TESTS=1)."""
    expr = (request.config.getoption("markexpr") or "").replace("(", " ").replace(")", " ").split()
    if not (("slow" in expr and "not" not in expr) or os.environ.get("RETENTION_SLOW_TESTS") == "1"):
        pytest.skip("slow (minutes): select it with -m slow or RETENTION_SLOW_TESTS=1")
