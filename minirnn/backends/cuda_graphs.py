"""CUDA graphs for the "step" time loops: a loop's launches recorded once, then replayed by one call.

The "step" strategy of :mod:`.cupy_kernels` makes two launches per step (a cuBLAS product and a fused
element-wise kernel): about 800 Python calls for the forward and backward loops of a 200-step update. At mid
sizes (N_rec 256 with batch 1024, N_rec 1024 with batch 128) the GPU finishes a step before Python has issued
the next, so the update waits on Python. A CUDA graph records the launches once; replaying it is one call.

Two things make that possible:

- A graph replays the same launches with the same arguments, so a loop must read and write the same memory
  every time. The fused update (:mod:`.cupy_update`) keeps one plan per configuration, with its buffers, and
  builds each loop's launches once from those buffers (:func:`.cupy_kernels.forward_launches`).
- CuPy refuses every cuBLAS call while a stream is being captured (its ``setStream`` raises "calling cuBLAS
  API during stream capture is currently unsupported"), though cuBLAS itself supports capture. So the
  captured products call cuBLAS directly, through ``ctypes`` (the library CuPy has loaded), on a handle and
  workspace of their own, every call on that handle through the same library (``cupy_kernels._Gemm(dtype, lib)``).

A :class:`LoopGraph` runs its loop eagerly on the first call (that compiles the kernels and lets cuBLAS pick
its algorithms); on the second it runs it once more through the graph's own cuBLAS handle, then captures
and launches it; after that it replays it. A failure to capture or to
launch (no cuBLAS library found, a driver that refuses) turns graphs off for the process with one warning,
and the loops run launch by launch, as before: a graph is a fast path, never the only one. ``ENABLED =
False`` turns them off (``benchmarks/bench_gpu.py``'s "minirnn nograph" compares).
"""
from __future__ import annotations

import contextlib
import ctypes
import os
import warnings
from functools import lru_cache

ENABLED = True
failure = None  # why graphs are off for this process, after a failure (a string), else None
counts = {"eager": 0, "captured": 0, "replayed": 0}  # loops run each way in this process


class LoopGraph:
    """One time loop, ``enqueue(gemm)`` over fixed buffers: run eagerly, then as a CUDA graph.

    The "loop" strategy (one launch already) always runs it eagerly; "step" captures it.
    """

    def __init__(self, enqueue, dtype, strategy):
        self.enqueue, self.dtype, self.strategy = enqueue, dtype, strategy
        self.graph, self.calls = None, 0

    def __call__(self):
        from .cupy_kernels import run_launches

        self.calls += 1
        if self.strategy == "step" and ENABLED and failure is None and self.calls >= 2:
            try:
                if self.graph is None:
                    self.graph = _capture(self.enqueue, self.dtype)
                    counts["captured"] += 1
                else:
                    counts["replayed"] += 1
                self.graph.launch()  # on the current stream, in order with the work around it
                return
            except Exception as exc:  # noqa: BLE001 - any failure: off for the process, and run it eagerly
                _give_up(exc)
                self.graph = None
        counts["eager"] += 1
        run_launches(self.enqueue, self.strategy, self.dtype)


def _capture(enqueue, dtype):
    """The CUDA graph of ``enqueue``'s launches. They run once for real through the graph's own cuBLAS handle
    (on the current stream, so a failure shows before any capture), then are recorded on a stream of their own."""
    import cupy

    from .cupy_kernels import _Gemm

    lib = libcublas()
    if lib is None:
        raise RuntimeError("the cuBLAS library is not among this process's loaded libraries")
    with _Gemm(dtype, lib) as gemm:
        enqueue(gemm)  # idempotent: the loop reads its inputs and overwrites its outputs
    stream = _capture_stream(cupy.cuda.Device().id)
    with stream, _Gemm(dtype, lib) as gemm:  # the handle takes the capture stream before the capture begins
        stream.begin_capture()
        try:
            enqueue(gemm)
        except BaseException:
            with contextlib.suppress(Exception):
                stream.end_capture()
            raise
        return stream.end_capture()


def _give_up(exc):
    global failure
    failure = f"{type(exc).__name__}: {exc}"
    warnings.warn(f"CUDA graphs are off for this process ({failure}); the time loops run launch by launch "
                  "(slower at mid sizes, the same numbers).", RuntimeWarning, stacklevel=3)


@lru_cache(maxsize=None)
def _capture_stream(device_id):
    import cupy

    return cupy.cuda.Stream(non_blocking=True)  # capture is refused on the legacy default stream


def _loaded_library(prefix):
    """The path of a loaded shared library whose file name starts with ``prefix``, from /proc/self/maps, or None."""
    try:
        with open("/proc/self/maps", encoding="utf-8", errors="replace") as maps:
            for line in maps:
                fields = line.split(maxsplit=5)
                if len(fields) == 6 and os.path.basename(fields[5].rstrip("\n")).startswith(prefix):
                    return fields[5].rstrip("\n")
    except OSError:  # not Linux
        return None
    return None


def _cupys_cublas():
    """The path of the cuBLAS library CuPy 14 loaded (through ``cuda.pathfinder``), or None."""
    try:
        from cuda import pathfinder

        return pathfinder.load_nvidia_dynamic_lib("cublas").abs_path
    except Exception:  # noqa: BLE001 - an older CuPy, no pathfinder: look in the process's maps instead
        return None


@lru_cache(maxsize=None)
def libcublas():
    """The cuBLAS library CuPy has loaded, through ``ctypes``, with the calls the captured loops make typed;
    None when it cannot be found (then the loops run without graphs)."""
    path = _cupys_cublas() or _loaded_library("libcublas.so")
    if path is None:
        return None
    lib = ctypes.CDLL(path)
    P, I, L = ctypes.c_void_p, ctypes.c_int, ctypes.c_longlong
    gemm = [P, I, I, I, I, I, P, P, I, P, I, P, P, I]  # handle, opA, opB, m, n, k, alpha, A, lda, B, ldb, beta, C, ldc
    batched = [P, I, I, I, I, I, P, P, I, L, P, I, L, P, P, I, L, I]  # ... with strides (elements), batch count
    for name, argtypes in (("cublasSgemm_v2", gemm), ("cublasDgemm_v2", gemm), ("cublasSgemmStridedBatched", batched),
                           ("cublasDgemmStridedBatched", batched), ("cublasCreate_v2", [ctypes.POINTER(P)]),
                           ("cublasSetStream_v2", [P, P]), ("cublasSetWorkspace_v2", [P, P, ctypes.c_size_t]),
                           ("cublasSetPointerMode_v2", [P, I]), ("cublasSetMathMode", [P, I])):
        function = getattr(lib, name)
        function.argtypes, function.restype = argtypes, I
    return lib
