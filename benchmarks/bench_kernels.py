"""Micro-benchmark of the recurrence alone: the NumPy reference against the Numba kernels.

Times ``rate_forward`` + ``rate_backward`` (ReLU, per-unit alpha, recurrent noise on) at
B = 128, T = 200 and N_rec in {50, 256, 1024}, float32, and the noise for that block: NumPy's
``standard_normal`` against the compiled counter-based noise (``gaussian_noise``, on the kernels' threads). Contenders run interleaved in rounds
after a warm-up (compilation excluded); the table shows medians and the ratio to the reference
from the same run (BENCHMARKS.md, "How to measure here"). On a shared, loaded machine use
``--blas-threads 1 --clock cpu``: two BLAS threads collapse when another process holds a core.

Contenders: ``reference`` (dynamics/rate.py), ``numba`` (what ``KERNELS`` dispatches to), and the
two structures it chooses between, forced: ``whole-loop`` (one @njit kernel with one product per
step) and ``matmul`` (NumPy matmul per step, fused @njit elementwise step).

    python benchmarks/bench_kernels.py [--sizes 50 256 1024] [--rounds 7] [--blas-threads 2] [--clock cpu]
"""
from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from minirnn.backends import numba_kernels as nk  # noqa: E402
from minirnn.dynamics import rate  # noqa: E402
from minirnn.nn.activations import ACTIVATIONS  # noqa: E402


def make_inputs(N, B=128, T=200, dtype=np.float32, seed=0):
    rng = np.random.default_rng(seed)
    W = (1.1 * rng.standard_normal((N, N)) / np.sqrt(N)).astype(dtype)
    drive = (0.5 * rng.standard_normal((T, B, N))).astype(dtype)
    x0 = (0.1 + 0.01 * rng.standard_normal((1, N))).astype(dtype)
    alpha = np.full((1, N), 0.1, dtype)
    noise_scale = np.full((1, 1), np.sqrt(2 * 0.1) * 0.05, dtype)
    noise = rng.standard_normal((T, B, N), dtype=dtype)
    dX = (rng.standard_normal((T, B, N)) / (T * B)).astype(dtype)
    return W, drive, x0, alpha, noise_scale, noise, dX


def forced(max_n):
    """``KERNELS``' functions with the structure threshold forced to ``max_n``."""

    def fwd(*args):
        old, nk.WHOLE_LOOP_MAX_N = nk.WHOLE_LOOP_MAX_N, max_n
        try:
            return nk.rate_forward(*args)
        finally:
            nk.WHOLE_LOOP_MAX_N = old

    def bwd(*args):
        old, nk.WHOLE_LOOP_MAX_N = nk.WHOLE_LOOP_MAX_N, max_n
        try:
            return nk.rate_backward(*args)
        finally:
            nk.WHOLE_LOOP_MAX_N = old

    return fwd, bwd


CONTENDERS = {
    "reference": (rate.recur_forward, rate.recur_backward),
    "numba": (nk.rate_forward, nk.rate_backward),
    "whole-loop": forced(1 << 30),
    "matmul": forced(0),
}


CLOCK = time.perf_counter


def time_pair(fwd, bwd, inputs, act):
    W, drive, x0, alpha, ns, noise, dX = inputs
    t0 = CLOCK()
    X = fwd(W, drive, x0, alpha, ns, noise, act)
    t1 = CLOCK()
    bwd(W, X, x0, dX, alpha, act)
    t2 = CLOCK()
    return t1 - t0, t2 - t1


def bench_size(N, rounds, act):
    inputs = make_inputs(N)
    for fwd, bwd in CONTENDERS.values():  # warm-up: compile, fault pages in
        time_pair(fwd, bwd, inputs, act)
    times = {name: [] for name in CONTENDERS}
    for _ in range(rounds):
        for name, (fwd, bwd) in CONTENDERS.items():
            times[name].append(time_pair(fwd, bwd, inputs, act))
    return {name: np.median(np.array(t), axis=0) * 1e3 for name, t in times.items()}


def bench_noise(N, rounds, B=128, T=200, dtype=np.float32):
    """NumPy's ``standard_normal`` against the compiled counter-based noise (``KERNELS['gaussian_noise']``)."""
    rng = np.random.default_rng(1)
    shape = (T, B, N)
    rng.standard_normal(shape, dtype=dtype)
    nk.gaussian_noise(1, shape, dtype)
    t_np, t_nb = [], []
    for key in range(rounds):
        t0 = CLOCK()
        rng.standard_normal(shape, dtype=dtype)
        t1 = CLOCK()
        nk.gaussian_noise(key, shape, dtype)
        t2 = CLOCK()
        t_np.append(t1 - t0)
        t_nb.append(t2 - t1)
    return np.median(t_np) * 1e3, np.median(t_nb) * 1e3


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[50, 256, 1024])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--blas-threads", type=int, default=None, help="pin BLAS threads (threadpoolctl)")
    parser.add_argument("--clock", choices=["wall", "cpu"], default="wall",
                        help="cpu: process CPU time, steadier on a shared, loaded machine (all threads summed)")
    args = parser.parse_args(argv)
    global CLOCK
    CLOCK = time.process_time if args.clock == "cpu" else time.perf_counter

    act = ACTIVATIONS["relu"]
    limiter = None
    if args.blas_threads is not None:
        from threadpoolctl import threadpool_limits

        nk.rate_forward(*make_inputs(4, B=2, T=2)[:6], act)  # load every BLAS first, so that all are pinned
        limiter = threadpool_limits(args.blas_threads)
    print(f"B=128 T=200 float32 relu, noise on; medians of {args.rounds} interleaved rounds; "
          f"BLAS threads: {args.blas_threads or 'default'}; {args.clock} clock; load average {os.getloadavg()[0]:.2f}; "
          f"WHOLE_LOOP_MAX_N={nk.WHOLE_LOOP_MAX_N}")
    print(f"{'N':>5} {'contender':<11} {'fwd ms':>9} {'bwd ms':>9} {'total ms':>9} {'/ ref':>6}")
    for N in args.sizes:
        rounds = max(3, args.rounds // 2) if N >= 1024 else args.rounds
        res = bench_size(N, rounds, act)
        ref = res["reference"].sum()
        for name, (f, b) in res.items():
            print(f"{N:>5} {name:<11} {f:>9.2f} {b:>9.2f} {f + b:>9.2f} {(f + b) / ref:>6.2f}")
        for dtype in (np.float32, np.float64):
            t_np, t_nb = bench_noise(N, args.rounds, dtype=dtype)
            print(f"{N:>5} noise draw {np.dtype(dtype).name}: rng.standard_normal {t_np:.2f} ms, "
                  f"KERNELS['gaussian_noise'] {t_nb:.2f} ms", flush=True)
    print(f"load average after: {os.getloadavg()[0]:.2f}")
    if limiter is not None:
        limiter.restore_original_limits()


if __name__ == "__main__":
    main()
