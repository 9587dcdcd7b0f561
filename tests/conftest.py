"""Shared fixtures. Numba's cache lives inside the work tree (DESIGN.md §9)."""
import os
import pathlib

os.environ.setdefault("NUMBA_CACHE_DIR", str(pathlib.Path(__file__).resolve().parents[1] / ".numba_cache"))
os.environ.setdefault("MPLBACKEND", "Agg")

import pytest  # noqa: E402


@pytest.fixture
def datadir() -> pathlib.Path:
    """The folder of golden files (tests/data)."""
    return pathlib.Path(__file__).parent / "data"


@pytest.fixture
def one_blas_thread():
    """Every BLAS at one thread for the test (small products: identical summation order run to run, no
    thread start-up). SciPy's BLAS (Numba's ``np.dot``, the kernels' fallback) is loaded first so that it is pinned too."""
    threadpoolctl = pytest.importorskip("threadpoolctl")
    try:
        import scipy.linalg  # noqa: F401
    except ImportError:
        pass
    with threadpoolctl.threadpool_limits(1):
        yield
