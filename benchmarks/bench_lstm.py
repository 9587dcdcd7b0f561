"""One LSTM training update (loss and gradients) on the numpy backend against the numba backend.

Times ``LSTM._loss_and_grads`` (forward, MSE, backward, every weight gradient; no optimizer step)
on a PerceptualDiscrimination batch: batch 128, T = 200 steps (2000 ms at dt 10), float32, the
standard variant, at N_rec 50 and 256. The two backends differ only in the time loop: the NumPy
reference (``minirnn/dynamics/lstm.py``) or the @njit kernels (``minirnn/backends/numba_lstm.py``).
Contenders run interleaved in rounds after a warm-up (compilation excluded); the table shows
medians and the ratio numba / numpy from the same run (BENCHMARKS.md, "How to measure here").
BLAS is pinned to one thread (threadpoolctl), NumPy's and SciPy's (behind Numba's ``np.dot``).

    python benchmarks/bench_lstm.py [--sizes 50 256] [--rounds 7] [--dtype float32]
"""
from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from minirnn import LSTM  # noqa: E402
from minirnn.tasks import PerceptualDiscrimination  # noqa: E402

BACKENDS = ("numpy", "numba")


def make_models(N_rec, dtype):
    task = PerceptualDiscrimination(dt=10, tau=100, T=2000, N_batch=128, seed=1)
    models = {b: LSTM(dict(task.get_task_params(), N_rec=N_rec, seed=0, backend=b, dtype=dtype)) for b in BACKENDS}
    x, y, mask = task.generate_batch()[:3]
    return models, models["numpy"]._check_batch(x, y, mask)


def bench_size(N_rec, rounds, dtype):
    models, batch = make_models(N_rec, dtype)
    for model in models.values():  # warm-up: compile (or load the cache), fault pages in
        model._loss_and_grads(*batch)
    times = {b: [] for b in BACKENDS}
    for _ in range(rounds):
        for b, model in models.items():
            t0 = time.perf_counter()
            model._loss_and_grads(*batch)
            times[b].append(time.perf_counter() - t0)
    return {b: float(np.median(t)) * 1e3 for b, t in times.items()}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[50, 256])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--dtype", default="float32")
    args = parser.parse_args(argv)

    import scipy.linalg  # noqa: F401  (load the BLAS numba's np.dot calls, so that it is pinned too)
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):
        print(f"LSTM (standard), one update (_loss_and_grads), batch 128, T 200, {args.dtype}, one BLAS thread; "
              f"medians of {args.rounds} interleaved rounds; load average {os.getloadavg()[0]:.2f}\n")
        print("| N_rec | numpy ms | numba ms | numba / numpy |")
        print("|---:|---:|---:|---:|")
        for N in args.sizes:
            res = bench_size(N, args.rounds, args.dtype)
            print(f"| {N} | {res['numpy']:.1f} | {res['numba']:.1f} | {res['numba'] / res['numpy']:.2f} |", flush=True)
        print(f"\nload average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
