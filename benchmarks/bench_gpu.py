"""One training update of ``Basic`` on the CuPy backend: updates per second at the sizes of issue 7.

    PYTHONPATH=. python3 benchmarks/bench_gpu.py                 # cupy, N_rec 256 and 1024, batch 128 and 1024
    PYTHONPATH=. python3 benchmarks/bench_gpu.py --backend numba --sizes 50 --batches 128 --rounds 3   # the same
                                                                  # harness on the CPU (how it is tested here)

The model and update are bench_peers.py's (ReLU, alpha 0.1, 200 steps, MSE, Adam, float32, recurrent
noise 0.05), timed through ``model.train`` with a fixed batch, after warm-up, as medians of rounds.
On the GPU every round ends with a device synchronisation, so the time is the work's, not the
launch queue's. The GPU machine lent to some sessions has no PyTorch or JAX (and no network), so
the peers' GPU figures come from ``../shared/BENCHMARKS.md`` (same H200 model); compare there.
"""
from __future__ import annotations

import argparse
import datetime
import itertools
import platform
import time

import numpy as np


def sync(model):
    if model.backend.name == "cupy":
        import cupy

        cupy.cuda.Device().synchronize()


def one_config(backend, N_rec, B, T, rounds, noise):
    from minirnn import Basic

    rng = np.random.default_rng(0)
    x = rng.standard_normal((B, T, 2)).astype(np.float32)
    y = rng.standard_normal((B, T, 2)).astype(np.float32)
    mask = np.ones_like(y)
    params = dict(N_in=2, N_rec=N_rec, N_out=2, dt=10, tau=100, T=T * 10, N_batch=B, seed=0,
                  backend=backend, dtype="float32", rec_noise=noise)
    model = Basic(params)
    source = itertools.repeat((x, y, mask, None))

    def run(n):
        model.train(source, {"training_iters": n * B, "verbosity": False})
        sync(model)

    run(3)  # warm-up: compilation, allocations, device caches
    t = time.perf_counter()
    run(1)
    per = time.perf_counter() - t
    n = max(1, int(0.5 / max(per, 1e-6)))  # about half a second per sample
    samples = []
    for _ in range(rounds):
        t = time.perf_counter()
        run(n)
        samples.append((time.perf_counter() - t) / n)
    return float(np.median(samples)), float(np.min(samples)), float(np.max(samples))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--backend", default="cupy")
    ap.add_argument("--sizes", default="256,1024")
    ap.add_argument("--batches", default="128,1024")
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--rec-noise", type=float, default=0.05)
    args = ap.parse_args()
    device = platform.processor() or platform.machine()
    if args.backend == "cupy":
        import cupy

        device = cupy.cuda.runtime.getDeviceProperties(0)["name"].decode()
    print(f"# bench_gpu.py {datetime.datetime.now().isoformat(timespec='seconds')}, backend {args.backend}, "
          f"device {device}, float32, {args.steps} steps, rec_noise {args.rec_noise}")
    print("| N_rec | batch | ms/update (median) | [min, max] | updates/s |")
    print("|---|---|---|---|---|")
    for N_rec in (int(s) for s in args.sizes.split(",")):
        for B in (int(b) for b in args.batches.split(",")):
            med, lo, hi = one_config(args.backend, N_rec, B, args.steps, args.rounds, args.rec_noise)
            print(f"| {N_rec} | {B} | {med * 1e3:.1f} | [{lo * 1e3:.1f}, {hi * 1e3:.1f}] | {1 / med:.1f} |", flush=True)


if __name__ == "__main__":
    main()
