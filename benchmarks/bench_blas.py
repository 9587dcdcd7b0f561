"""Which BLAS the Numba kernels should call: NumPy's OpenBLAS (``numba_blas.gemm``) or SciPy's
(Numba's own ``np.dot``), on the products one fused update makes, one thread per product.

Shapes (float32, batch chunk of 64 trials, N_in = N_out = 2): the forward step ``(64, N+3) @ (N+3, N)``,
the backward step ``(64, N) @ (N, N)``, and the weight gradient over 8 steps ``(N+3, 512)^T @ (512, N)``
(``--sizes`` picks N). Each contender runs alone on one thread and then on two threads side by side
(each with its own operands, as the kernel's two chunks do); GFLOP/s, medians of interleaved rounds.

    python benchmarks/bench_blas.py [--sizes 50 256 1024] [--rounds 5]
"""
from __future__ import annotations

import argparse
import os
import sys
import threading
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from minirnn.backends import numba_blas  # noqa: E402
from minirnn.backends.numba_math import njit  # noqa: E402


@njit(nogil=True)
def numpy_openblas(ta, a, b, c, reps):
    for _ in range(reps):
        numba_blas.gemm(ta, False, a, b, c)


@njit(nogil=True)
def numba_np_dot(ta, a, b, c, reps):
    for _ in range(reps):
        if ta:
            np.dot(a.T, b, c)
        else:
            np.dot(a, b, c)


CONTENDERS = {"NumPy's OpenBLAS (gemm)": numpy_openblas, "SciPy's OpenBLAS (np.dot)": numba_np_dot}


def shapes(N, chunk=64, steps=8):
    """``(label, transpose a, m, k, n)`` of the three products of a step."""
    return [("forward step", False, chunk, N + 3, N), ("backward step", False, chunk, N, N),
            ("weight gradient", True, N + 3, chunk * steps, N)]


def run(fn, operands, reps, threads):
    """Seconds for ``threads`` threads each making ``reps`` products on their own operands."""
    workers = [threading.Thread(target=fn, args=(*operands[t], reps)) for t in range(threads)]
    start = time.perf_counter()
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    return time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[50, 256, 1024])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    print(f"BLAS behind numba_blas.gemm: {numba_blas.PROVIDER.name}")
    print("| N_rec | product | threads | " + " | ".join(CONTENDERS) + " | ratio |")
    print("|---|---|---|---|---|---|")
    with numba_blas.one_blas_thread():
        for N in args.sizes:
            for label, ta, m, k, n in shapes(N):
                operands = [((ta, rng.standard_normal((k, m) if ta else (m, k)).astype(np.float32),
                              rng.standard_normal((k, n)).astype(np.float32), np.empty((m, n), np.float32)))
                            for _ in range(2)]
                reps = max(1, int(3e8 / (2 * m * k * n)))
                samples = {(name, t): [] for name in CONTENDERS for t in (1, 2)}
                for fn in CONTENDERS.values():
                    fn(*operands[0], 1)  # compile and warm up
                for _ in range(args.rounds):
                    for name, fn in CONTENDERS.items():
                        for t in (1, 2):
                            seconds = run(fn, operands, reps, t)
                            samples[name, t].append(2 * m * k * n * reps * t / seconds / 1e9)
                for t in (1, 2):
                    gf = [float(np.median(samples[name, t])) for name in CONTENDERS]
                    cells = " | ".join(f"{g:.1f}" for g in gf)
                    print(f"| {N} | {label} ({m}x{k}x{n}) | {t} | {cells} | {gf[0] / gf[1]:.2f} |", flush=True)


if __name__ == "__main__":
    main()
