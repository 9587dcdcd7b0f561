"""The matrix products inside the Numba kernels: NumPy's own BLAS, called from compiled code.

Numba's ``np.dot`` calls SciPy's OpenBLAS. NumPy's wheels ship a newer OpenBLAS, and on the
products the kernels make (a 64-trial chunk times an N x N matrix) it is 17-25 % faster here
(2-core AMD EPYC, float32, one thread per product: 69 against 57 GFLOP/s at N_rec 256, 70 against
53 at 1024; ``benchmarks/bench_blas.py``). So the kernels call :func:`gemm`, which calls NumPy's
``cblas_?gemm`` through a symbol registered with LLVM (``minirnn_sgemm`` / ``minirnn_dgemm``), the
way Numba itself reaches SciPy's BLAS. The symbol is resolved when compiled code is linked, so the
kernels stay cacheable. Where NumPy's BLAS is not a 64-bit-integer OpenBLAS (a conda or MKL build),
the same symbols point at a small compiled fallback that does the product with ``np.dot``
(``MINIRNN_NUMBA_BLAS=numba-dot`` picks it anywhere).

A product with one row, or with up to ``GEMV_MAX_ROWS`` rows of an untransposed ``a`` (a batch of one to
three trials times a weight matrix), goes to ``cblas_?gemv`` instead, one matrix-vector product per row
(symbols ``minirnn_sgemv`` / ``minirnn_dgemv``), as NumPy's ``matmul`` does for a vector: ``?gemm`` first
copies (packs) all of ``op(b)``, which at one row costs more than the product. Measured from compiled code
(float32, one thread, 2-core AMD EPYC): one row times 1024 x 1024 takes 86 us by ``?gemv`` against 349 by
``?gemm``, 2048 x 2048 577 against 2045, ``h (1, 1024) @ W_h^T (4096, 1024)^T`` 614 against 5183; at three
rows ``?gemv`` is still about 2x faster, at four they tie, at eight ``?gemm`` wins by 1.4-2x. The readout
gradient ``dZ^T (2, T B) @ A (T B, N_rec + 3)`` is the exception (``?gemv`` per row reads the tall ``A``
twice, 1.7x slower at N_rec 256 and 1024), so a transposed ``a`` takes ``?gemv`` at one row only.

Every product runs on one BLAS thread (:func:`one_blas_thread`): the kernels run their own threads,
one chunk of trials each. A lone chunk (a batch under 96 trials) does not take a second BLAS thread
either: OpenBLAS's one- and two-thread ``?gemv`` differ in the last bit of a few outputs at most sizes
(a row times N x N and times 4N x N, N_rec 1000-1039: at 58 of 80 shapes), so the numbers would depend
on ``set_num_threads``.
"""
from __future__ import annotations

import ctypes
import importlib.util
import os
from contextlib import contextmanager

import llvmlite.binding as llvm
import numba
import numpy as np
from numba import carray, cfunc, types

from .numba_math import cached, njit

ROW_MAJOR, NO_TRANS, TRANS = 101, 111, 112


def _signature(real):
    # cblas_?gemm(order, transa, transb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc), 64-bit ints
    return types.void(types.int32, types.int32, types.int32, types.int64, types.int64, types.int64, real,
                      types.voidptr, types.int64, types.voidptr, types.int64, real, types.voidptr, types.int64)


def _gemv_signature(real):
    # cblas_?gemv(order, trans, M, N, alpha, A, lda, X, incX, beta, Y, incY), 64-bit ints
    return types.void(types.int32, types.int32, types.int64, types.int64, real, types.voidptr, types.int64,
                      types.voidptr, types.int64, real, types.voidptr, types.int64)


_sgemm = types.ExternalFunction("minirnn_sgemm", _signature(types.float32))
_dgemm = types.ExternalFunction("minirnn_dgemm", _signature(types.float64))
_sgemv = types.ExternalFunction("minirnn_sgemv", _gemv_signature(types.float32))
_dgemv = types.ExternalFunction("minirnn_dgemv", _gemv_signature(types.float64))

#: Products with at most this many rows of an untransposed ``a`` go to ``?gemv``, one row at a time (measured:
#: module docstring).
GEMV_MAX_ROWS = 3


@njit(cache=True, inline="always", nogil=True)
def gemm(trans_a, trans_b, a, b, c, accumulate=False):
    """``c = op(a) @ op(b)`` (``c += ...`` when ``accumulate``), ``op(x)`` being ``x.T`` when ``trans_x``; each
    array 2-D with contiguous rows (a C-contiguous array or a block of whole rows of one); all of one
    dtype, float32 or float64."""
    if a.strides[1] != a.itemsize or b.strides[1] != b.itemsize or c.strides[1] != c.itemsize:
        raise ValueError("gemm needs arrays whose rows are contiguous")
    m, n = c.shape
    k = a.shape[0] if trans_a else a.shape[1]
    lda, ldb, ldc = a.strides[0] // a.itemsize, b.strides[0] // b.itemsize, c.strides[0] // c.itemsize
    ta = TRANS if trans_a else NO_TRANS
    tb = TRANS if trans_b else NO_TRANS
    beta = 1.0 if accumulate else 0.0
    if m == 1 or (m <= GEMV_MAX_ROWS and not trans_a):
        # row r of c = (row r of op(a)) @ op(b) = op(b)^T x: ?gemv on b as stored (b.shape, ldb), transposed
        # unless trans_b. Row r of op(a) is a[r] (stride 1), or column r of a (stride lda) when trans_a.
        tv = NO_TRANS if trans_b else TRANS
        inc_x = lda if trans_a else 1
        for r in range(m):
            x = a[:, r:] if trans_a else a[r:]
            if c.itemsize == 4:
                _sgemv(ROW_MAJOR, tv, b.shape[0], b.shape[1], np.float32(1), b.ctypes.data, ldb, x.ctypes.data, inc_x,
                       np.float32(beta), c[r:].ctypes.data, 1)
            else:
                _dgemv(ROW_MAJOR, tv, b.shape[0], b.shape[1], np.float64(1), b.ctypes.data, ldb, x.ctypes.data, inc_x,
                       np.float64(beta), c[r:].ctypes.data, 1)
        return
    if c.itemsize == 4:  # float32 (the kernels take float32 and float64 only)
        _sgemm(ROW_MAJOR, ta, tb, m, n, k, np.float32(1), a.ctypes.data, lda, b.ctypes.data, ldb,
               np.float32(beta), c.ctypes.data, ldc)
    else:
        _dgemm(ROW_MAJOR, ta, tb, m, n, k, np.float64(1), a.ctypes.data, lda, b.ctypes.data, ldb,
               np.float64(beta), c.ctypes.data, ldc)


if numba.config.DISABLE_JIT:  # NUMBA_DISABLE_JIT=1: the kernels run as Python, where a call of an
    def gemm(trans_a, trans_b, a, b, c, accumulate=False):  # ExternalFunction computes nothing
        """:func:`gemm` by NumPy, for kernels run as plain Python (coverage runs, debugging)."""
        product = (a.T if trans_a else a) @ (b.T if trans_b else b)
        if accumulate:
            c += product
        else:
            c[...] = product


# ------------------------------------------------------------------ where the symbols point


def _openblas_controllers():
    try:
        from threadpoolctl import ThreadpoolController
    except ImportError:
        return []
    return ThreadpoolController().select(internal_api="openblas").lib_controllers


def _numpy_openblas():
    """NumPy's OpenBLAS as ``(ctypes library, symbol prefix)``, when it is a 64-bit-integer build."""
    for lib in _openblas_controllers():
        if "numpy" not in lib.filepath:
            continue
        dll = ctypes.CDLL(lib.filepath)
        for prefix in ("scipy_", ""):  # the wheels' scipy-openblas64, or a plain openblas64_ build
            names = [f"{prefix}cblas_sgemm64_", f"{prefix}cblas_dgemm64_", f"{prefix}cblas_sgemv64_",
                     f"{prefix}cblas_dgemv64_", f"{prefix}openblas_get_num_threads64_",
                     f"{prefix}openblas_set_num_threads64_"]
            if all(hasattr(dll, name) for name in names):
                return dll, prefix
    return None


def _fallback(real, dtype):
    """The cblas interface above (alpha 1, beta 0 or 1, as :func:`gemm` calls it) by Numba's ``np.dot``."""

    def gemm_by_dot(order, ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc):
        rows_a, cols_a = (k, m) if ta == TRANS else (m, k)
        rows_b, cols_b = (n, k) if tb == TRANS else (k, n)
        if lda == cols_a and ldb == cols_b and ldc == n and beta == 0:
            # the kernels' case, whole rows: straight into C, no copies (np.dot reads a transpose as is)
            A, B, C = carray(a, (rows_a, cols_a), dtype), carray(b, (rows_b, cols_b), dtype), carray(c, (m, n), dtype)
            if ta == TRANS and tb == TRANS:
                np.dot(A.T, B.T, C)
            elif ta == TRANS:
                np.dot(A.T, B, C)
            elif tb == TRANS:
                np.dot(A, B.T, C)
            else:
                np.dot(A, B, C)
            return
        A = carray(a, (rows_a, lda), dtype)[:, :cols_a]
        B = carray(b, (rows_b, ldb), dtype)[:, :cols_b]
        C = carray(c, (m, ldc), dtype)
        opA = np.ascontiguousarray(A.T) if ta == TRANS else np.ascontiguousarray(A)
        opB = np.ascontiguousarray(B.T) if tb == TRANS else np.ascontiguousarray(B)
        product = np.dot(opA, opB)
        if beta == 0:
            C[:, :n] = product
        else:
            C[:, :n] += product

    return cached(cfunc, {"sig": _signature(real), "cache": True}, gemm_by_dot)


def _gemv_fallback(real, dtype):
    """The cblas ``?gemv`` interface (alpha 1, beta 0 or 1, as :func:`gemm` calls it) by Numba's ``np.dot``."""

    def gemv_by_dot(order, trans, rows, cols, alpha, a, lda, x, incx, beta, y, incy):
        n_in, n_out = (rows, cols) if trans == TRANS else (cols, rows)
        if n_out == 0:
            return
        Y = carray(y, ((n_out - 1) * incy + 1,), dtype)[::incy]
        if n_in == 0:
            product = np.zeros(n_out, dtype)
        else:
            A = np.ascontiguousarray(carray(a, (rows, lda), dtype)[:, :cols])
            X = np.ascontiguousarray(carray(x, ((n_in - 1) * incx + 1,), dtype)[::incx])
            product = np.dot(X, A) if trans == TRANS else np.dot(A, X)
        if beta == 0:
            Y[:] = product
        else:
            Y[:] += product

    return cached(cfunc, {"sig": _gemv_signature(real), "cache": True}, gemv_by_dot)


class _Provider:
    """Which BLAS the symbols call (``name``), and how to hold it at one thread."""

    def __init__(self, choice="auto"):
        if choice not in CHOICES:
            raise ValueError(f"MINIRNN_NUMBA_BLAS must be one of {', '.join(CHOICES)}; got {choice!r}")
        found = _numpy_openblas() if choice != "numba-dot" else None
        if choice == "numpy-openblas" and found is None:
            raise ValueError("MINIRNN_NUMBA_BLAS=numpy-openblas, but NumPy's BLAS is not a 64-bit-integer OpenBLAS "
                             "(numpy.show_config() names it); use 'auto' or 'numba-dot'")
        self.get_threads = self.set_threads = None
        self.fallbacks = []  # compiled fallbacks, kept alive while their addresses are registered
        if found is not None:
            dll, prefix = found
            self.name = "numpy-openblas"
            for real in ("s", "d"):
                for routine in ("gemm", "gemv"):
                    address = ctypes.cast(getattr(dll, f"{prefix}cblas_{real}{routine}64_"), ctypes.c_void_p).value
                    llvm.add_symbol(f"minirnn_{real}{routine}", address)
            self.get_threads = getattr(dll, f"{prefix}openblas_get_num_threads64_")
            self.get_threads.restype = ctypes.c_int
            self.set_threads = getattr(dll, f"{prefix}openblas_set_num_threads64_")
            self.set_threads.argtypes = [ctypes.c_int]
        elif importlib.util.find_spec("scipy") is not None:  # Numba's np.dot calls SciPy's BLAS
            self.name = "numba-dot"
            self.fallbacks = [_fallback(types.float32, np.float32), _fallback(types.float64, np.float64),
                              _gemv_fallback(types.float32, np.float32), _gemv_fallback(types.float64, np.float64)]
            for name, fallback in zip(("sgemm", "dgemm", "sgemv", "dgemv"), self.fallbacks):
                llvm.add_symbol(f"minirnn_{name}", fallback.address)
        else:
            self.name = "none"  # the kernels are not used (WHOLE_LOOP_MAX_N 0, numba_lstm.HAVE_BLAS False)
        self.scipy_blas = None  # SciPy's OpenBLAS (behind the fallback's np.dot), found on first use


#: ``MINIRNN_NUMBA_BLAS`` (read at import): "auto" (NumPy's OpenBLAS where it is one, else the fallback),
#: "numpy-openblas" (an error where it is not), or "numba-dot" (the fallback, e.g. to rule the BLAS out).
CHOICES = ("auto", "numpy-openblas", "numba-dot")
PROVIDER = _Provider(os.environ.get("MINIRNN_NUMBA_BLAS", "auto").strip() or "auto")


def _single_threaded_scipy_blas():
    """With the ``np.dot`` fallback: keep SciPy's OpenBLAS (the one Numba's ``np.dot`` calls) at one thread.

    Two-thread OpenBLAS inside the kernels was measured 2-50x slower on 2 cores: its threads spin
    against ours (and against any other process) and stay spinning for a while after each call.
    Nothing else in minirnn leans on this library, so it stays at one thread for the process."""
    if PROVIDER.name != "numba-dot":
        return
    if PROVIDER.scipy_blas is None:
        import scipy.linalg.cython_blas  # noqa: F401  (loads the library)
        libs = [lib for lib in _openblas_controllers() if "scipy.libs" in lib.filepath or "scipy/" in lib.filepath]
        PROVIDER.scipy_blas = libs[0] if libs else False
    if PROVIDER.scipy_blas and PROVIDER.scipy_blas.get_num_threads() != 1:
        PROVIDER.scipy_blas.set_num_threads(1)


@contextmanager
def one_blas_thread():
    """While the kernels run: every product on one BLAS thread (the kernels run their own threads).

    NumPy's OpenBLAS has no per-thread setting, so its process-wide thread count is set to 1 for the
    duration and put back after (1-2 µs); with the fallback, SciPy's stays at one thread."""
    _single_threaded_scipy_blas()
    previous = PROVIDER.get_threads() if PROVIDER.get_threads is not None else 1
    if previous != 1:
        PROVIDER.set_threads(1)
    try:
        yield
    finally:
        if previous != 1:
            PROVIDER.set_threads(previous)
