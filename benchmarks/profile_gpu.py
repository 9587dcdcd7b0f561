"""Where one CuPy training update spends its time: noise, forward, forward + backward, whole update.

    PYTHONPATH=. python3 benchmarks/profile_gpu.py --configs 50x128,1024x1024

Each part is timed on its own with a device synchronisation after it (median of ``--reps``), for
each time-loop strategy of ``minirnn.backends.cupy_kernels``. Differences between the rows are
what the next part adds (the update adds clipping, Adam and the batch copy to the device).
"""
from __future__ import annotations

import argparse
import itertools

import numpy as np

from timing import median_ms


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--configs", default="50x128,256x128,256x1024,1024x128,1024x1024")
    ap.add_argument("--strategies", default="loop,step,step-cupy")
    ap.add_argument("--reps", type=int, default=20)
    args = ap.parse_args()
    import cupy

    from minirnn import Basic
    from minirnn.backends import cupy_kernels

    sync = cupy.cuda.Device().synchronize
    print("| N_rec | batch | strategy | noise ms | forward ms | forward+backward ms | update ms |")
    print("|---|---|---|---|---|---|---|")
    for cfg in args.configs.split(","):
        N, B = (int(v) for v in cfg.split("x"))
        T = 200
        rng = np.random.default_rng(0)
        x = rng.standard_normal((B, T, 2)).astype(np.float32)
        y = rng.standard_normal((B, T, 2)).astype(np.float32)
        mask = np.ones_like(y)
        model = Basic(dict(N_in=2, N_rec=N, N_out=2, dt=10, tau=100, T=T * 10, N_batch=B, seed=0,
                           backend="cupy", dtype="float32", rec_noise=0.05))
        xd, yd, md = model._check_batch(x, y, mask)
        g = np.random.default_rng(1)
        source = itertools.repeat((x, y, mask, None))
        for strategy in args.strategies.split(","):
            cupy_kernels.STRATEGY = strategy
            t_noise = median_ms(lambda: model._noise(g, T, B), args.reps, sync)
            t_fwd = median_ms(lambda: model._forward(xd, g), args.reps, sync)
            t_both = median_ms(lambda: model._loss_and_grads(xd, yd, md, g), args.reps, sync)
            t_upd = median_ms(lambda: model.train(source, {"training_iters": B, "verbosity": False}), args.reps, sync)
            print(f"| {N} | {B} | {strategy} | {t_noise:.2f} | {t_fwd:.2f} | {t_both:.2f} | {t_upd:.2f} |", flush=True)
    cupy_kernels.STRATEGY = None


if __name__ == "__main__":
    main()
