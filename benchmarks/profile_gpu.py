"""Where one CuPy training update spends its time: noise, forward, forward + backward, whole update.

    PYTHONPATH=. python3 benchmarks/profile_gpu.py --configs 50x128,1024x1024

Each part is timed on its own with a device synchronisation after it (median of ``--reps``), for
each time-loop strategy of ``minirnn.backends.cupy_kernels``, with and without the fused update of
``minirnn.backends.cupy_update`` (``--variants``; "unfused" runs the reference's whole-array code around
the loops, and its forward is what both variants' forward passes run; "nograph" is the fused update with
the CUDA graphs of ``minirnn.backends.cuda_graphs`` off). Differences between the rows are what the next
part adds (the update adds clipping, Adam and the batch copy to the device). The last columns time the
fused update's two loops alone, launch by launch and (strategy "step") replayed as CUDA graphs.
"""
from __future__ import annotations

import argparse
import itertools

import numpy as np

from timing import median_ms


def loop_times(cupy, kernels, strategy, N, B, T, reps, sync):
    """ms of the fused update's two time loops alone (noise made in the forward loop, dL/dR in the backward):
    ``(forward, backward, forward as a graph, backward as a graph)``, the last two NaN for "loop"."""
    from minirnn.backends import cuda_graphs
    from minirnn.nn import noise

    strategy = kernels._strategy(N, B, 1, np.dtype(np.float32), strategy)
    strategy = "step" if strategy == "step-cupy" else strategy
    rng = np.random.default_rng(2)
    arr = lambda *shape, s=1.0: cupy.asarray((s * rng.standard_normal(shape)).astype(np.float32))  # noqa: E731
    Wa, drive, x0 = arr(1, N, N, s=0.1 / np.sqrt(N)), arr(1, T, B, N), arr(1, 1, N)
    alpha, decay, bias, ns = (cupy.full((1, N), v, np.float32) for v in (0.1, 0.9, 0.0, 0.05))
    keys = cupy.asarray(np.array([noise.stream_keys(np.uint64(7))], np.uint64))
    R = cupy.empty((1, T, B, N), np.float32)
    fwd = lambda: kernels.forward_loop(0, strategy, Wa, drive, x0, alpha, decay, bias, ns, None, keys, R)  # noqa: E731
    X = fwd()
    bwd = lambda: kernels.backward_loop(0, strategy, Wa, X, x0, drive, alpha, decay, None, None, 1)  # noqa: E731
    times = [median_ms(fwd, reps, sync), median_ms(bwd, reps, sync)]
    if strategy != "step" or not cuda_graphs.ENABLED:
        return (*times, float("nan"), float("nan"))
    D = cupy.empty_like(X)
    graphs = (cuda_graphs.LoopGraph(kernels.forward_launches(0, strategy, Wa, drive, x0, alpha, decay, bias, X, ns,
                                                             None, keys, R), np.dtype(np.float32), strategy),
              cuda_graphs.LoopGraph(kernels.backward_launches(0, strategy, Wa, X, x0, drive, alpha, decay, D, None,
                                                              None, 1)[0], np.dtype(np.float32), strategy))
    for graph in graphs:
        graph(), graph()  # eager, then captured
        times.append(median_ms(graph, reps, sync))
    return tuple(times)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--configs", default="50x128,256x128,256x1024,1024x128,1024x1024")
    ap.add_argument("--strategies", default="loop,step,step-cupy")
    ap.add_argument("--variants", default="fused,nograph,unfused")
    ap.add_argument("--reps", type=int, default=20)
    ap.add_argument("--steps", type=int, default=200)
    args = ap.parse_args()
    import cupy

    from minirnn import Basic
    from minirnn.backends import cuda_graphs, cupy_kernels

    sync = cupy.cuda.Device().synchronize
    print("| N_rec | batch | strategy | update code | noise ms | forward ms | forward+backward ms | update ms "
          "| forward loop ms | backward loop ms | forward graph ms | backward graph ms |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for cfg in args.configs.split(","):
        N, B = (int(v) for v in cfg.split("x"))
        T = args.steps
        rng = np.random.default_rng(0)
        x = rng.standard_normal((B, T, 2)).astype(np.float32)
        y = rng.standard_normal((B, T, 2)).astype(np.float32)
        mask = np.ones_like(y)
        model = Basic(dict(N_in=2, N_rec=N, N_out=2, dt=10, tau=100, T=T * 10, N_batch=B, seed=0,
                           backend="cupy", dtype="float32", rec_noise=0.05))
        xd, yd, md = model._check_batch(x, y, mask)
        g = np.random.default_rng(1)
        source = itertools.repeat((x, y, mask, None))
        fused = model.backend.kernels.get("rate_loss_and_grads")
        for strategy, variant in itertools.product(args.strategies.split(","), args.variants.split(",")):
            cupy_kernels.STRATEGY = strategy
            model.backend.kernels.pop("rate_loss_and_grads", None)
            if variant in ("fused", "nograph") and fused is not None:
                model.backend.kernels["rate_loss_and_grads"] = fused
            cuda_graphs.ENABLED = variant != "nograph"
            t_noise = median_ms(lambda: model._noise(g, T, B), args.reps, sync)
            t_fwd = median_ms(lambda: model._forward(xd, g), args.reps, sync)
            t_both = median_ms(lambda: model._loss_and_grads(xd, yd, md, g), args.reps, sync)
            t_upd = median_ms(lambda: model.train(source, {"training_iters": B, "verbosity": False}), args.reps, sync)
            t_loops = loop_times(cupy, cupy_kernels, strategy, N, B, T, args.reps, sync)
            print(f"| {N} | {B} | {strategy} | {variant} | {t_noise:.2f} | {t_fwd:.2f} | {t_both:.2f} | {t_upd:.2f} | "
                  + " | ".join(f"{t:.2f}" for t in t_loops) + " |", flush=True)
    cupy_kernels.STRATEGY, cuda_graphs.ENABLED = None, True


if __name__ == "__main__":
    main()
