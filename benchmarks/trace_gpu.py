"""Which GPU kernels one training update runs, and how long each takes on the device (CUPTI, read through
``torch.profiler``, which records every kernel of the process whichever library launched it).

    PYTHONPATH=. python3 benchmarks/trace_gpu.py --configs 1024x4096 --contenders "minirnn,JAX f32"
    CUPY_TF32=1 PYTHONPATH=. python3 benchmarks/trace_gpu.py --configs 2048x1024 --contenders "minirnn,JAX default"

For each contender and size (bench_gpu.py's model and update): the wall time of ``--updates`` updates,
the device time their kernels add up to (less than the wall time where the device waits for the host),
and the ``--top`` kernels by device time, per update. Kernel names say what cuBLAS chose (tile shape,
split-K), which is what tells a well-shaped product from a badly shaped one.
"""
from __future__ import annotations

import argparse
import gc
import os
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from bench_gpu import Peer, make_data, minirnn_contender  # noqa: E402


def device_ms(event):
    for name in ("self_device_time_total", "self_cuda_time_total", "device_time_total", "cuda_time_total"):
        if hasattr(event, name):
            return getattr(event, name) / 1e3
    return float("nan")


def trace(name, contender, updates, top):
    import torch
    from torch.profiler import ProfilerActivity, profile

    contender.run(3)  # compiled, captured, cached
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        t = time.perf_counter()
        contender.run(updates)
        wall = (time.perf_counter() - t) * 1e3 / updates
    torch.cuda.synchronize()
    events = sorted(prof.key_averages(), key=device_ms, reverse=True)
    busy = sum(device_ms(e) for e in events) / updates
    print(f"\n#### {name}: {wall:.2f} ms per update (wall), kernels {busy:.2f} ms per update (device)")
    print("| kernel | launches per update | device ms per update |")
    print("|---|---|---|")
    for e in events[:top]:
        print(f"| `{e.key[:110]}` | {e.count / updates:g} | {device_ms(e) / updates:.3f} |")
    sys.stdout.flush()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--configs", default="1024x4096")
    ap.add_argument("--contenders", default="minirnn,JAX f32")
    ap.add_argument("--updates", type=int, default=3)
    ap.add_argument("--top", type=int, default=14)
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--rec-noise", type=float, default=0.05)
    args = ap.parse_args()
    import torch  # noqa: F401 - CUPTI is set up before the contenders start

    print(f"# trace_gpu.py, CUPY_TF32={os.environ.get('CUPY_TF32', '0')}, {args.steps} steps")
    for cfg in args.configs.split(","):
        N_rec, B = (int(v) for v in cfg.lower().split("x"))
        with tempfile.TemporaryDirectory() as tmp:
            data = os.path.join(tmp, "data.npz")
            make_data(data, N_rec, B, args.steps)
            for name in (c.strip() for c in args.contenders.split(",")):
                try:
                    c = minirnn_contender(name, "cupy", data, args.rec_noise) or Peer(name, data, args.rec_noise)
                    trace(f"{name} at {N_rec}x{B}", c, args.updates, args.top)
                except Exception as exc:  # noqa: BLE001 - the next contender still runs
                    print(f"# {name} at {N_rec}x{B}: {type(exc).__name__}: {exc}", flush=True)
                finally:
                    c = None
                    gc.collect()  # the next contender needs the device memory


if __name__ == "__main__":
    main()
