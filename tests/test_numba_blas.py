"""The products inside the Numba kernels (``minirnn/backends/numba_blas.py``).

``gemm`` against NumPy for each transpose combination, float32 and float64, on whole arrays and on
blocks of rows; the ``np.dot`` fallback (used where NumPy's BLAS is not a 64-bit OpenBLAS, so never
by CI otherwise) through the same cblas interface; ``one_blas_thread`` puts NumPy's thread count back.
"""
from __future__ import annotations

import ctypes
import itertools
import os
import warnings

import numpy as np
import pytest

numba = pytest.importorskip("numba")

from minirnn.backends import numba_blas  # noqa: E402
from minirnn.backends.numba_blas import NO_TRANS, ROW_MAJOR, TRANS, gemm  # noqa: E402
from minirnn.backends.numba_math import njit  # noqa: E402

pytestmark = pytest.mark.numba

TRANSPOSES = list(itertools.product([False, True], repeat=2))


@njit(cache=True)
def _gemm_rows(ta, tb, a, b, c, r0, r1, accumulate=False):
    """``gemm`` on the row block ``a[r0:r1]`` (the way the kernels pass chunks of steps)."""
    gemm(ta, tb, a[r0:r1], b, c, accumulate)


def _operands(ta, tb, m, n, k, dtype, rng):
    a = rng.standard_normal((k, m) if ta else (m, k)).astype(dtype)
    b = rng.standard_normal((n, k) if tb else (k, n)).astype(dtype)
    return a, b


def _expected(ta, tb, a, b):
    return (a.T if ta else a).astype(np.float64) @ (b.T if tb else b).astype(np.float64)


@pytest.mark.parametrize("m", [1, 2, 3, 7])  # up to GEMV_MAX_ROWS rows one ?gemv per row, then ?gemm
@pytest.mark.parametrize("dtype, rtol", [(np.float64, 1e-12), (np.float32, 1e-5)])
@pytest.mark.parametrize("ta, tb", TRANSPOSES)
def test_gemm_matches_numpy(ta, tb, dtype, rtol, m):
    rng = np.random.default_rng(1)
    n, k = 5, 11
    a, b = _operands(ta, tb, m, n, k, dtype, rng)
    c = np.full((m, n), np.nan, dtype)
    _gemm_rows(ta, tb, a, b, c, 0, a.shape[0])
    np.testing.assert_allclose(c, _expected(ta, tb, a, b), rtol=rtol, atol=rtol * k)
    # a block of whole rows of a taller array: its row stride is the full row
    tall = np.concatenate([rng.standard_normal((3, a.shape[1])).astype(dtype), a])
    c[...] = np.nan
    _gemm_rows(ta, tb, tall, b, c, 3, 3 + a.shape[0])
    np.testing.assert_allclose(c, _expected(ta, tb, a, b), rtol=rtol, atol=rtol * k)
    # accumulate: c += op(a) op(b)
    start = rng.standard_normal((m, n)).astype(dtype)
    c[...] = start
    _gemm_rows(ta, tb, a, b, c, 0, a.shape[0], True)
    np.testing.assert_allclose(c, start + _expected(ta, tb, a, b), rtol=rtol, atol=rtol * k)


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
    flags = (ROW_MAJOR, TRANS if ta else NO_TRANS, TRANS if tb else NO_TRANS, m, n, k, 1.0)
    fallback.ctypes(*flags, pointer(a), a.shape[1], pointer(b), b.shape[1], 0.0, pointer(c), n)
    np.testing.assert_allclose(c, _expected(ta, tb, a, b), rtol=1e-5, atol=1e-5)
    fallback.ctypes(*flags, pointer(a), a.shape[1], pointer(b), b.shape[1], 1.0, pointer(c), n)  # c += ...
    np.testing.assert_allclose(c, 2 * _expected(ta, tb, a, b), rtol=1e-5, atol=1e-5)
    # leading dimensions wider than the rows (blocks of columns of wider arrays)
    wide_a, wide_b = np.zeros((a.shape[0], a.shape[1] + 3), dtype), np.zeros((b.shape[0], b.shape[1] + 2), dtype)
    wide_a[:, :a.shape[1]], wide_b[:, :b.shape[1]] = a, b
    wide_c = np.full((m, n + 1), 7.0, dtype)
    fallback.ctypes(*flags, pointer(wide_a), wide_a.shape[1], pointer(wide_b), wide_b.shape[1], 0.0, pointer(wide_c),
                    n + 1)
    np.testing.assert_allclose(wide_c[:, :n], _expected(ta, tb, a, b), rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(wide_c[:, n], 7.0)


@pytest.mark.parametrize("trans", [False, True])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_numba_dot_gemv_fallback_has_the_cblas_interface(trans, dtype):
    """The compiled ``?gemv`` fallback through its C address: ``y = op(A) x`` (+ ``y`` when beta is 1), on
    contiguous operands and on a strided x (a column of a wider array, as gemm's ``trans_a`` rows are)."""
    pytest.importorskip("scipy")
    real = numba.types.float32 if dtype == np.float32 else numba.types.float64
    fallback = numba_blas._gemv_fallback(real, dtype)
    rng = np.random.default_rng(4)
    rows, cols = 6, 9
    a = rng.standard_normal((rows, cols + 2)).astype(dtype)  # lda = cols + 2: a block of columns
    x_wide = rng.standard_normal((rows if trans else cols, 3)).astype(dtype)  # x = x_wide[:, 1], stride 3
    x = x_wide[:, 1]
    expected = x.astype(np.float64) @ a[:, :cols] if trans else a[:, :cols].astype(np.float64) @ x
    y = np.full(expected.shape, np.nan, dtype)
    pointer = lambda v: v.ctypes.data_as(ctypes.c_void_p)  # noqa: E731
    flags = (ROW_MAJOR, TRANS if trans else NO_TRANS, rows, cols, 1.0, pointer(a), cols + 2)
    x_ptr = ctypes.c_void_p(x_wide.ctypes.data + x_wide.itemsize)
    fallback.ctypes(*flags, x_ptr, 3, 0.0, pointer(y), 1)
    np.testing.assert_allclose(y, expected, rtol=1e-5, atol=1e-5)
    fallback.ctypes(*flags, x_ptr, 3, 1.0, pointer(y), 1)  # y += ...
    np.testing.assert_allclose(y, 2 * expected, rtol=1e-5, atol=1e-5)


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


def test_unknown_blas_choice_is_named():
    with pytest.raises(ValueError, match="MINIRNN_NUMBA_BLAS must be one of auto, numpy-openblas, numba-dot; got 'mkl'"):
        numba_blas._Provider("mkl")


def test_asking_for_numpys_openblas_where_there_is_none_is_an_error(monkeypatch):
    monkeypatch.setattr(numba_blas, "_numpy_openblas", lambda: None)
    with pytest.raises(ValueError, match="MINIRNN_NUMBA_BLAS=numpy-openblas, but NumPy's BLAS is not"):
        numba_blas._Provider("numpy-openblas")


_FUSED_UPDATE = """
import json, sys
import numpy as np
from minirnn.backends import numba_blas, numba_kernels as nk
from minirnn.nn.activations import ACTIVATIONS
rng = np.random.default_rng(3)
N, T, I, O = 7, 6, 2, 3
W = {"W_in": rng.standard_normal((N, I)), "W_rec": rng.standard_normal((N, N)) / 3, "W_out": rng.standard_normal((O, N)),
     "b_rec": rng.standard_normal(N), "b_out": rng.standard_normal(O), "init_state": rng.standard_normal((1, N))}
values, grads = [], {}
for B in (5, 1):  # products by ?gemm, and (one trial) by ?gemv
    x, y = rng.standard_normal((B, T, I)), rng.standard_normal((B, T, O))
    value, g = nk.rate_loss_and_grads(W, x, y, np.ones((B, T, O)), np.full((1, N), 0.2), None, None, ACTIVATIONS["tanh"])
    values.append(float(value))
    grads.update({f"{k} B={B}": np.asarray(v).ravel().tolist() for k, v in g.items()})
print(json.dumps({"provider": numba_blas.PROVIDER.name, "value": values, "grads": grads}))
"""


def _fused_update_in_a_process(blas, **env):
    import json
    import os
    import subprocess
    import sys

    env = dict(os.environ, MINIRNN_NUMBA_BLAS=blas, **env)
    done = subprocess.run([sys.executable, "-c", _FUSED_UPDATE], env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_fused_update_through_the_fallback_equals_the_default():
    """The whole fused update with every product through the ``np.dot`` fallback (as on a conda or MKL
    NumPy) gives the default provider's numbers (float64)."""
    pytest.importorskip("scipy")
    fallback = _fused_update_in_a_process("numba-dot")
    default = _fused_update_in_a_process("auto")
    assert fallback["provider"] == "numba-dot"
    np.testing.assert_allclose(fallback["value"], default["value"], rtol=1e-13)
    for name, g in default["grads"].items():
        np.testing.assert_allclose(fallback["grads"][name], g, rtol=1e-11, atol=1e-13, err_msg=name)


def test_kernels_run_as_python_under_numba_disable_jit():
    """NUMBA_DISABLE_JIT=1 (coverage runs, debugging) runs the kernels as Python: the products must
    still be computed (a call of the BLAS symbol from Python computes nothing)."""
    as_python = _fused_update_in_a_process("auto", NUMBA_DISABLE_JIT="1")
    default = _fused_update_in_a_process("auto")
    np.testing.assert_allclose(as_python["value"], default["value"], rtol=1e-12)
    for name, g in default["grads"].items():
        np.testing.assert_allclose(as_python["grads"][name], g, rtol=1e-10, atol=1e-12, err_msg=name)


def test_no_cache_location_compiles_without_cache_and_says_so(monkeypatch):
    from minirnn.backends import numba_math

    def refusing(**options):
        if options.get("cache"):
            raise RuntimeError("cannot cache function 'f': no locator available for file '/ro/f.py'")
        return lambda fn: fn

    monkeypatch.setattr(numba_math, "_warned_no_cache", [])
    with pytest.warns(UserWarning, match="NUMBA_CACHE_DIR"):
        assert numba_math.cached(refusing, {"cache": True}, len) is len
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # once per process
        numba_math.cached(refusing, {"cache": True}, len)


def test_cached_kernels_are_dropped_when_a_module_they_inline_changes(tmp_path, monkeypatch):
    """Numba checks only a kernel's own file; minirnn also hashes the files whose code it inlines."""
    import importlib

    from minirnn.backends.numba_math import flush_if_sources_changed

    (tmp_path / "helper.py").write_text("SCALE = 2.0\n")
    (tmp_path / "kernels_mod.py").write_text(
        "from numba import njit\n\n@njit(cache=True)\ndef double(x):\n    return 2.0 * x\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    module = importlib.import_module("kernels_mod")
    assert module.double(3.0) == 6.0  # compiled and cached
    sources = [str(tmp_path / "helper.py")]
    assert flush_if_sources_changed(vars(module), sources)  # no stamp yet: flushed, stamp written
    assert not flush_if_sources_changed(vars(module), sources)
    (tmp_path / "helper.py").write_text("SCALE = 3.0\n")
    assert flush_if_sources_changed(vars(module), sources)
    stamp = os.path.join(module.double._cache.cache_path, "kernels_mod.sources.sha256")
    assert open(stamp).read() == __import__("hashlib").sha256(b"SCALE = 3.0\n").hexdigest()
