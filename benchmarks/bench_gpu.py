"""minirnn on the GPU (``backend="cupy"``) side by side with PyTorch CUDA and JAX, in one process, interleaved.

    PYTHONPATH=. python3 benchmarks/bench_gpu.py                       # every contender and size below
    PYTHONPATH=. python3 benchmarks/bench_gpu.py --contenders "minirnn,torch eager" --configs 50x128
    PYTHONPATH=. python3 benchmarks/bench_gpu.py --backend numba --contenders minirnn --configs 50x128 --rounds 3
                                                    # the same harness on the CPU (how it is tested without a GPU)

One update of bench_peers.py's model (ReLU, alpha 0.1, 200 steps, MSE, clip to norm 1, Adam, float32,
recurrent noise 0.05) from the same initial weights and batch. Contenders:

- ``minirnn``: ``Basic(backend="cupy")`` trained through ``model.train`` on a fixed batch (so each update
  also copies the batch to the device, as a user's training does); ``minirnn loop`` / ``step`` / ``step-cupy``
  force one of the time-loop strategies of ``minirnn.backends.cupy_kernels``; ``minirnn array code`` runs
  the NumPy reference on cupy arrays with no kernels (the plain CuPy port). A trailing ``unfused`` (e.g.
  ``minirnn step unfused``) trains without ``minirnn.backends.cupy_update`` (the reference's whole-array
  code around the time-loop kernels); ``predrawn`` draws the noise before the loop instead of inside it;
  ``nograph`` runs the "step" loops launch by launch instead of as CUDA graphs (``minirnn.backends.cuda_graphs``).
- ``torch eager`` / ``torch hoisted``: benchmarks/peers/torch_ctrnn.py on CUDA (strict float32: PyTorch
  keeps TF32 off for matmuls by default).
- ``JAX f32`` (``jax_default_matmul_precision="highest"``) and ``JAX default`` (TF32 on Hopper):
  benchmarks/peers/jax_ctrnn.py, the whole update one jitted function.

Each sample ends with a device synchronisation; medians of ``--rounds`` samples of about
``--sample-s`` seconds each, after warm-up. Prints a Markdown table (ms per update, updates/s of
minirnn, and the ratios peer / minirnn).
"""
from __future__ import annotations

import argparse
import datetime
import itertools
import os
import platform
import sys
import tempfile
import time

os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")  # JAX beside CuPy and PyTorch

import numpy as np  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "peers"))

DEFAULT_CONFIGS = "50x128,256x128,256x1024,1024x128,1024x1024,1024x4096,2048x1024"
DEFAULT_CONTENDERS = "minirnn,minirnn loop,minirnn step,minirnn step-cupy,minirnn array code,torch eager,torch hoisted,JAX f32,JAX default"
STRATEGY = {"minirnn": None, "minirnn loop": "loop", "minirnn step": "step", "minirnn step-cupy": "step-cupy",
            "minirnn array code": "array code"}


class Minirnn:
    def __init__(self, strategy, backend, data_path, rec_noise, unfused=False, predrawn=False, graphs=True):
        from common import load_data

        from minirnn import Basic

        w, x, y, mask = load_data(data_path, np.float32)
        N_rec, (B, T, N_in) = w["W_rec"].shape[0], x.shape
        params = dict(N_in=N_in, N_rec=N_rec, N_out=y.shape[-1], dt=10, tau=100, T=T * 10, N_batch=B, seed=0,
                      backend=backend, dtype="float32", rec_noise=rec_noise)
        self.model = Basic(params)
        for name, value in w.items():
            self.model.raw[name] = self.model.xp.asarray(value)
        self.strategy = strategy
        if strategy == "array code":
            self.model.backend.kernels.clear()  # this model's own backend record: the plain CuPy port
        if unfused:
            self.model.backend.kernels.pop("rate_loss_and_grads", None)
        self.predrawn, self.graphs = predrawn, graphs
        self.source = itertools.repeat((x, y, mask, None))

    def run(self, n):
        if self.model.backend.name == "cupy":
            from minirnn.backends import cupy_kernels

            from minirnn.backends import cuda_graphs, cupy_update

            cupy_kernels.STRATEGY = None if self.strategy == "array code" else self.strategy
            cupy_update.PREDRAWN_NOISE = self.predrawn
            cuda_graphs.ENABLED = self.graphs
        self.model.train(self.source, {"training_iters": n * self.model.params["N_batch"], "verbosity": False})
        self.sync()

    def sync(self):
        if self.model.backend.name == "cupy":
            import cupy

            cupy.cuda.Device().synchronize()


class Peer:
    def __init__(self, name, data_path, rec_noise):
        cfg = {"dtype": "float32", "seed": 0, "eps": 1e-8, "noise": rec_noise > 0, "rec_noise": rec_noise, "threads": 1}
        self.precision = None
        if name.startswith("torch"):
            import torch_ctrnn

            self.impl = torch_ctrnn.make(name.replace(" ", "_"), dict(cfg, device="cuda"), data_path)
        else:
            import jax_ctrnn

            # a context, not the global flag: the precision is part of the jit cache key, and the
            # two JAX contenders alternate
            self.precision = "highest" if name == "JAX f32" else "default"
            with self._context():
                self.impl = jax_ctrnn.make("jax", cfg, data_path)

    def _context(self):
        import contextlib

        if self.precision is None:
            return contextlib.nullcontext()
        import jax

        return jax.default_matmul_precision(self.precision)

    def run(self, n):
        with self._context():
            self.impl.run(n)  # StepLoop.run ends with sync()


def minirnn_contender(name, backend, data, rec_noise, graphs=True):
    """The Minirnn contender a name says ("minirnn step unfused": strategy "step", without the fused update), or None.
    ``graphs=False`` (``--no-graphs``) runs every contender's loops launch by launch, as "nograph" does one's."""
    words = name.split()
    flags = {w for w in words if w in ("unfused", "predrawn", "nograph")}
    base = " ".join(w for w in words if w not in flags)
    if base not in STRATEGY:
        return None
    return Minirnn(STRATEGY[base], backend, data, rec_noise, unfused="unfused" in flags, predrawn="predrawn" in flags,
                   graphs=graphs and "nograph" not in flags)


def make_data(path, N_rec, B, T):
    import common

    from minirnn.tasks import PerceptualDiscrimination

    x, y, mask, _ = PerceptualDiscrimination(dt=10, tau=100, T=10 * T, N_batch=B, seed=0).generate_batch()
    common.save_data(path, common.make_init_weights(N_rec, 0), x, y, mask)


def time_config(names, args, N_rec, B, log):
    """Median ms per update of each contender at one size, sampled in interleaved rounds."""
    with tempfile.TemporaryDirectory() as tmp:
        data = os.path.join(tmp, "data.npz")
        make_data(data, N_rec, B, args.steps)
        contenders, per_call = {}, {}
        for name in names:
            try:
                c = (minirnn_contender(name, args.backend, data, args.rec_noise, graphs=not args.no_graphs)
                     or Peer(name, data, args.rec_noise))
                c.run(2)  # warm-up: compilation, allocations, caches
                t = time.perf_counter()
                c.run(2)
                per_call[name] = (time.perf_counter() - t) / 2
                contenders[name] = c
            except Exception as exc:  # noqa: BLE001 - a missing peer must not stop the others
                log(f"# {name} at {N_rec}x{B}: {type(exc).__name__}: {exc}")
        samples = {name: [] for name in contenders}
        for _ in range(args.rounds):
            for name, c in list(contenders.items()):
                n = max(1, int(args.sample_s / max(per_call[name], 1e-6)))
                try:
                    t = time.perf_counter()
                    c.run(n)
                    samples[name].append((time.perf_counter() - t) / n)
                except Exception as exc:  # noqa: BLE001 - e.g. out of memory: the others go on
                    log(f"# {name} at {N_rec}x{B}, timed round: {type(exc).__name__}: {exc}")
                    del contenders[name]
                    samples.pop(name)
        contenders.clear()
        free_device_memory(args.backend)
        return {name: 1e3 * float(np.median(s)) for name, s in samples.items()}


def free_device_memory(backend):
    """Between sizes: minirnn's kept plans and the pools' cached blocks go (the next size's contenders need room)."""
    import gc

    gc.collect()
    if backend != "cupy":
        return
    import cupy

    from minirnn.backends import cupy_update

    cupy_update.release()
    cupy.get_default_memory_pool().free_all_blocks()
    if "torch" in sys.modules:
        sys.modules["torch"].cuda.empty_cache()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--backend", default="cupy")
    ap.add_argument("--configs", default=DEFAULT_CONFIGS, help="N_rec x batch, comma-separated")
    ap.add_argument("--contenders", default=DEFAULT_CONTENDERS)
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--sample-s", type=float, default=0.25)
    ap.add_argument("--rec-noise", type=float, default=0.05)
    ap.add_argument("--no-graphs", action="store_true",
                    help="every minirnn contender without CUDA graphs (gpu_session.sh: where a graph crashed a process)")
    args = ap.parse_args()
    names = [c.strip() for c in args.contenders.split(",") if c.strip()]
    device = platform.processor() or platform.machine()
    if args.backend == "cupy":
        import cupy

        from minirnn.backends import cupy_update

        device = cupy.cuda.runtime.getDeviceProperties(0)["name"].decode()
        cupy_update.PLANS_KEPT = 8  # contenders take turns: each keeps its plan (buffers and graphs) for its samples
    log = lambda s: print(s, flush=True)  # noqa: E731
    log(f"# bench_gpu.py {datetime.datetime.now().isoformat(timespec='seconds')}, backend {args.backend}, device "
        f"{device}, float32, {args.steps} steps, rec_noise {args.rec_noise}, medians of {args.rounds} rounds")
    peers = [n for n in names if not n.startswith("minirnn")]
    log("| N_rec | batch | " + " | ".join(f"{n} (ms)" for n in names) + " | minirnn updates/s | "
        + " | ".join(f"{p} / minirnn" for p in peers) + " |")
    log("|---" * (3 + len(names) + len(peers)) + "|")
    for cfg in args.configs.split(","):
        N_rec, B = (int(v) for v in cfg.lower().split("x"))
        ms = time_config(names, args, N_rec, B, log)
        ours = ms.get("minirnn")
        cells = [f"{ms[n]:.2f}" if n in ms else "—" for n in names]
        ratios = [f"{ms[p] / ours:.2f}" if ours and p in ms else "—" for p in peers]
        rate = f"{1e3 / ours:.0f}" if ours else "—"
        log(f"| {N_rec} | {B} | " + " | ".join(cells) + f" | {rate} | " + " | ".join(ratios) + " |")


if __name__ == "__main__":
    main()
