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
