"""``minirnn.backends.cuda_graphs.libcublas``: finding the cuBLAS library a process has loaded, and calling it
through ``ctypes`` with the argument types of cuBLAS's C functions (checked here against a stand-in library
with those signatures, compiled by g++; the real one is exercised on a GPU by tests/test_gpu.py).

The products captured into CUDA graphs call cuBLAS this way because CuPy's bindings refuse to run during a
capture; a wrong argument type would pass a 64-bit stride as 32 bits, or shift every argument after it.
"""
from __future__ import annotations

import ctypes
import subprocess
import sys

import numpy as np
import pytest

import cuda_emu
from minirnn.backends import cuda_graphs

# the signatures of cublas_api.h (handles and pointers as void*, enums as int), each recording what it got
STAND_IN = r"""
#include <cstddef>
extern "C" {
long long seen[32];
static void keep(int i, long long v) { seen[i] = v; }
int cublasSgemm_v2(void* h, int ta, int tb, int m, int n, int k, const float* alpha, const float* A, int lda,
                   const float* B, int ldb, const float* beta, float* C, int ldc) {
    keep(0, (long long)h); keep(1, ta); keep(2, tb); keep(3, m); keep(4, n); keep(5, k); keep(6, (long long)*alpha);
    keep(7, (long long)A); keep(8, lda); keep(9, (long long)B); keep(10, ldb); keep(11, (long long)*beta);
    keep(12, (long long)C); keep(13, ldc); return 0;
}
int cublasDgemm_v2(void* h, int ta, int tb, int m, int n, int k, const double* alpha, const double* A, int lda,
                   const double* B, int ldb, const double* beta, double* C, int ldc) {
    keep(0, (long long)h); keep(6, (long long)*alpha); keep(13, ldc); return 0;
}
int cublasSgemmStridedBatched(void* h, int ta, int tb, int m, int n, int k, const float* alpha, const float* A,
                              int lda, long long sA, const float* B, int ldb, long long sB, const float* beta,
                              float* C, int ldc, long long sC, int count) {
    keep(0, (long long)h); keep(8, lda); keep(14, sA); keep(15, sB); keep(16, sC); keep(17, count);
    keep(11, (long long)*beta); return 0;
}
int cublasDgemmStridedBatched(void* h, int ta, int tb, int m, int n, int k, const double* alpha, const double* A,
                              int lda, long long sA, const double* B, int ldb, long long sB, const double* beta,
                              double* C, int ldc, long long sC, int count) {
    keep(14, sA); keep(17, count); return 3;  // a status other than success
}
int cublasSetWorkspace_v2(void* h, void* w, size_t bytes) { keep(18, (long long)w); keep(19, (long long)bytes); return 0; }
int cublasCreate_v2(void** h) { *h = (void*)0x7F00000ABCD0LL; return 0; }
int cublasSetStream_v2(void* h, void* s) { keep(20, (long long)h); keep(21, (long long)s); return 0; }
int cublasSetPointerMode_v2(void* h, int mode) { keep(22, mode); return 0; }
int cublasSetMathMode(void* h, int mode) { keep(23, mode); return 0; }
}
"""


def test_no_library_means_none():
    """Without cuBLAS in the process (as here, unless a test loaded the stand-in), there is nothing to capture with."""
    if cuda_graphs._loaded_library("libcublas.so") is not None:
        pytest.skip("a cuBLAS library is loaded in this process")
    cuda_graphs.libcublas.cache_clear()
    assert cuda_graphs.libcublas() is None


@pytest.fixture
def stand_in_library(tmp_path):
    """A library named libcublas.so.99 with cuBLAS's signatures, loaded into this process."""
    source = tmp_path / "cublas_stand_in.cpp"
    source.write_text(STAND_IN)
    path = tmp_path / "libcublas.so.99"
    subprocess.run([cuda_emu.gxx(), "-shared", "-fPIC", "-O1", str(source), "-o", str(path)], check=True)
    library = ctypes.CDLL(str(path))
    cuda_graphs.libcublas.cache_clear()
    try:
        yield library, str(path)
    finally:
        cuda_graphs.libcublas.cache_clear()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/maps")
def test_the_loaded_library_is_found_and_typed(stand_in_library):
    library, path = stand_in_library
    assert cuda_graphs._loaded_library("libcublas.so") == path
    assert cuda_graphs._loaded_library("libcublas.so.does-not-exist") is None
    lib = cuda_graphs.libcublas()
    seen = (ctypes.c_longlong * 32).in_dll(library, "seen")
    one, two = np.ones(1, np.float32), np.full(1, 2.0, np.float32)
    handle, A, B, C = 0x7F0000001000, 0x7F0000002000, 0x7F0000003000, 0x7F0000004000  # 64-bit addresses
    assert lib.cublasSgemm_v2(handle, 1, 0, 3, 4, 5, two.ctypes.data, A, 6, B, 7, one.ctypes.data, C, 8) == 0
    assert list(seen[:14]) == [handle, 1, 0, 3, 4, 5, 2, A, 6, B, 7, 1, C, 8]
    big = 3 * 2 ** 33  # a stride past 32 bits: (K, T, B, N) buffers at N_rec 2048 and batch 4096
    assert lib.cublasSgemmStridedBatched(handle, 1, 0, 3, 4, 5, one.ctypes.data, A, 6, big, B, 7, big + 1,
                                         two.ctypes.data, C, 8, big + 2, 9) == 0
    assert [seen[0], seen[8], seen[14], seen[15], seen[16], seen[17], seen[11]] == [handle, 6, big, big + 1,
                                                                                   big + 2, 9, 2]
    assert lib.cublasSetWorkspace_v2(handle, A, 32 * 2 ** 20) == 0
    assert (seen[18], seen[19]) == (A, 32 * 2 ** 20)
    made = ctypes.c_void_p()
    assert lib.cublasCreate_v2(ctypes.pointer(made)) == 0 and made.value == 0x7F00000ABCD0
    stream = 0x7F0000005000
    assert lib.cublasSetStream_v2(made.value, stream) == 0 and (seen[20], seen[21]) == (made.value, stream)
    assert lib.cublasSetPointerMode_v2(made.value, 0) == 0 and lib.cublasSetMathMode(made.value, 3) == 0
    assert (seen[22], seen[23]) == (0, 3)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/maps")
def test_a_status_other_than_success_raises(stand_in_library):
    from minirnn.backends.cupy_kernels import _checked

    lib = cuda_graphs.libcublas()
    one = np.ones(1)
    with pytest.raises(RuntimeError, match="cublasDgemmStridedBatched returned cuBLAS status 3"):
        _checked(lib.cublasDgemmStridedBatched)(1, 0, 0, 1, 1, 1, one.ctypes.data, 2, 1, 1, 3, 1, 1,
                                                 one.ctypes.data, 4, 1, 1, 1)
