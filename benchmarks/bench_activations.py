"""The numba fused update per transfer function: how much a tanh or sigmoid network costs over a ReLU one.

    python benchmarks/bench_activations.py --sizes 50,256 --rounds 7

One ``Basic._loss_and_grads`` (MSE, no noise, float32, 200 steps) for one chunk of 64 trials on one
thread, so that the two cores' sharing does not blur the comparison; activations interleaved in
each round; medians. ``--backend numpy`` times the reference the same way.
"""
from __future__ import annotations

import argparse
import time

import numpy as np

ACTS = ("relu", "tanh", "sigmoid", "softplus", "linear")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="50,256")
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--backend", default="numba")
    args = ap.parse_args()
    from minirnn import Basic
    from minirnn.backends import set_num_threads

    set_num_threads(1)
    print(f"| N_rec | {' | '.join(ACTS)} | (ms per update, {args.backend}; in parentheses: / relu) |")
    print("|---" * (len(ACTS) + 2) + "|")
    for N in (int(s) for s in args.sizes.split(",")):
        calls = {}
        for act in ACTS:
            model = Basic(dict(N_in=2, N_rec=N, N_out=2, dt=10, tau=100, T=2000, N_batch=64, seed=0,
                               backend=args.backend, dtype="float32", rec_noise=0.0, transfer_function=act))
            rng = np.random.default_rng(0)
            batch = model._check_batch(rng.standard_normal((64, 200, 2)), rng.standard_normal((64, 200, 2)),
                                       np.ones((64, 200, 2)))
            calls[act] = (model, batch)
            model._loss_and_grads(*batch)  # compile / warm up
        times = {act: [] for act in ACTS}
        for _ in range(args.rounds):
            for act, (model, batch) in calls.items():
                t = time.perf_counter()
                model._loss_and_grads(*batch)
                times[act].append(time.perf_counter() - t)
        ms = {act: 1e3 * float(np.median(t)) for act, t in times.items()}
        print(f"| {N} | " + " | ".join(f"{ms[a]:.1f} ({ms[a] / ms['relu']:.2f})" for a in ACTS) + " | |", flush=True)


if __name__ == "__main__":
    main()
