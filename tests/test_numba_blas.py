"""The products inside the Numba kernels (``minirnn/backends/numba_blas.py``).

``gemm`` against NumPy for each transpose combination, float32 and float64, on whole arrays and on
blocks of rows; the ``np.dot`` fallback (used where NumPy's BLAS is not a 64-bit OpenBLAS, so never
by CI otherwise) through the same cblas interface; ``one_blas_thread`` puts NumPy's thread count back.
"""
from __future__ import annotations

import ctypes
import itertools

import numpy as np
import pytest

numba = pytest.importorskip("numba")

from minirnn.backends import numba_blas  # noqa: E402
from minirnn.backends.numba_blas import NO_TRANS, ROW_MAJOR, TRANS, gemm  # noqa: E402
from minirnn.backends.numba_math import njit  # noqa: E402

pytestmark = pytest.mark.numba

TRANSPOSES = list(itertools.product([False, True], repeat=2))


@njit(cache=True)
def _gemm_rows(ta, tb, a, b, c, r0, r1):
    """``gemm`` on the row block ``a[r0:r1]`` (the way the kernels pass chunks of steps)."""
    gemm(ta, tb, a[r0:r1], b, c)


def _operands(ta, tb, m, n, k, dtype, rng):
    a = rng.standard_normal((k, m) if ta else (m, k)).astype(dtype)
    b = rng.standard_normal((n, k) if tb else (k, n)).astype(dtype)
    return a, b


def _expected(ta, tb, a, b):
    return (a.T if ta else a).astype(np.float64) @ (b.T if tb else b).astype(np.float64)


@pytest.mark.parametrize("dtype, rtol", [(np.float64, 1e-12), (np.float32, 1e-5)])
@pytest.mark.parametrize("ta, tb", TRANSPOSES)
def test_gemm_matches_numpy(ta, tb, dtype, rtol):
    rng = np.random.default_rng(1)
    m, n, k = 7, 5, 11
    a, b = _operands(ta, tb, m, n, k, dtype, rng)
    c = np.full((m, n), np.nan, dtype)
    _gemm_rows(ta, tb, a, b, c, 0, a.shape[0])
    np.testing.assert_allclose(c, _expected(ta, tb, a, b), rtol=rtol, atol=rtol * k)
    # a block of whole rows of a taller array: its row stride is the full row
    tall = np.concatenate([rng.standard_normal((3, a.shape[1])).astype(dtype), a])
    c[...] = np.nan
    _gemm_rows(ta, tb, tall, b, c, 3, 3 + a.shape[0])
    np.testing.assert_allclose(c, _expected(ta, tb, a, b), rtol=rtol, atol=rtol * k)


def test_gemm_refuses_rows_that_are_not_contiguous():
    a = np.ones((4, 6))[:, ::2]
    with pytest.raises(ValueError, match="rows are contiguous"):
        _gemm_rows(False, False, np.ascontiguousarray(a.T).T, np.ones((3, 2)), np.empty((4, 2)), 0, 4)


@pytest.mark.parametrize("ta, tb", TRANSPOSES)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_numba_dot_fallback_has_the_cblas_interface(ta, tb, dtype):
    """The compiled fallback, called through its C address exactly as the kernels call the symbol."""
    pytest.importorskip("scipy")
    real = numba.types.float32 if dtype == np.float32 else numba.types.float64
    fallback = numba_blas._fallback(real, dtype)
    rng = np.random.default_rng(2)
    m, n, k = 6, 4, 9
    a, b = _operands(ta, tb, m, n, k, dtype, rng)
    c = np.full((m, n), np.nan, dtype)
    pointer = lambda x: x.ctypes.data_as(ctypes.c_void_p)  # noqa: E731
    fallback.ctypes(ROW_MAJOR, TRANS if ta else NO_TRANS, TRANS if tb else NO_TRANS, m, n, k, 1.0, pointer(a),
                    a.shape[1], pointer(b), b.shape[1], 0.0, pointer(c), n)
    np.testing.assert_allclose(c, _expected(ta, tb, a, b), rtol=1e-5, atol=1e-5)


def test_one_blas_thread_puts_numpys_thread_count_back():
    provider = numba_blas.PROVIDER
    if provider.get_threads is None:
        pytest.skip("NumPy's BLAS is not the OpenBLAS the kernels call")
    before = provider.get_threads()
    with numba_blas.one_blas_thread():
        assert provider.get_threads() == 1
    assert provider.get_threads() == before
    with pytest.raises(RuntimeError):
        with numba_blas.one_blas_thread():
            raise RuntimeError("a kernel failed")
    assert provider.get_threads() == before
