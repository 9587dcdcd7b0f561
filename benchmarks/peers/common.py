"""What every contender of ``bench_peers.py`` shares: the benchmark model, its data, and the worker.

The benchmark model (BENCHMARKS.md; DESIGN.md §3), identical in every framework::

    x_0     = init_state                                               (1, N)
    x_{k+1} = (1 - a) x_k + a (relu(x_k) W_rec^T + u_k W_in^T + b_rec) + sqrt(2 a) s xi_k
    z_k     = relu(x_{k+1}) W_out^T + b_out
    L       = mean((mask * (z - y))**2)                                over all B*T*N_out entries

with ``a = alpha = 0.1``, ``s = rec_noise`` (0.05 with noise, else 0), ReLU, ``N_in = N_out = 2``,
``T = 200``. One update = noise draw + forward + BPTT + per-parameter gradient clipping to norm 1
(``tf.clip_by_norm``: ``g * 1 / max(|g|, 1)``, PsychRNN's and minirnn's default) + Adam (lr 1e-3).
Trainable: ``W_in, W_rec, W_out, b_rec, b_out, init_state``.

This module imports only NumPy: it also runs inside PsychRNN's own virtual environment.

Worker protocol
---------------
``python benchmarks/peers/worker.py MODULE CONTENDER`` reads one JSON command per line on stdin
and answers one JSON line on a private copy of stdout (fd 1 itself is pointed at stderr, so
library chatter cannot corrupt the protocol):

- ``{"cmd": "setup", "config": {...}, "data": "file.npz"}`` -> build the contender from the
  shared initial weights and batch (:func:`load_data`).
- ``{"cmd": "run", "n": k}`` -> ``k`` updates; answers wall seconds and the process's CPU seconds.
- ``{"cmd": "losses", "n": k}`` -> ``k`` updates, answering the objective of each update's batch
  *before* that update (for the equality check).
- ``{"cmd": "memory"}`` -> peak resident set size (``VmHWM``) now and after imports.
- ``{"cmd": "quit"}``.
"""
from __future__ import annotations

import json
import os
import resource
import sys
import time
import traceback

import numpy as np

ALPHA = 0.1
N_IN = N_OUT = 2
T_STEPS = 200
LEARNING_RATE = 1e-3
BETA1, BETA2 = 0.9, 0.999
CLIP_NORM = 1.0
PARAM_NAMES = ("W_in", "W_rec", "W_out", "b_rec", "b_out", "init_state")


def update_flops(B: int, T: int, N: int, N_in: int = N_IN, N_out: int = N_OUT) -> float:
    """Matmul FLOPs of one update: ``2 B T N (3N + 2 N_in + 3 N_out)``.

    Forward: ``relu(x) W_rec^T`` (N^2), ``u W_in^T`` (N N_in), ``r W_out^T`` (N N_out); backward:
    ``a W_rec`` (N^2), ``dW_rec`` (N^2), ``dW_in`` (N N_in), ``dR = dZ W_out`` and ``dW_out``
    (2 N N_out); each a multiply-add (2 FLOPs) per trial and step.
    """
    return 2.0 * B * T * N * (3 * N + 2 * N_in + 3 * N_out)


def make_init_weights(N_rec: int, seed: int = 0) -> dict:
    """minirnn's / PsychRNN's default initialisation, in float64 (every contender casts it).

    ``W_rec``: Gaussian rescaled to spectral radius 1.1; ``W_in``, ``W_out``: Glorot-normal;
    biases 0; ``init_state = 0.1 + 0.01 N(0, 1)``. Shapes ``(post, pre)``; ``init_state (1, N)``.
    """
    rng = np.random.default_rng(seed)
    W_rec = rng.standard_normal((N_rec, N_rec))
    W_rec *= 1.1 / np.max(np.abs(np.linalg.eigvals(W_rec)))
    glorot = lambda fan_out, fan_in: rng.standard_normal((fan_out, fan_in)) * np.sqrt(2.0 / (fan_in + fan_out))  # noqa: E731
    return {"W_in": glorot(N_rec, N_IN), "W_rec": W_rec, "W_out": glorot(N_OUT, N_rec),
            "b_rec": np.zeros(N_rec), "b_out": np.zeros(N_OUT),
            "init_state": 0.1 + 0.01 * rng.standard_normal((1, N_rec))}


def save_data(path: str, weights: dict, x, y, mask) -> None:
    """Write the shared initial weights and the fixed batch ``x, y, mask (B, T, ·)`` (float64)."""
    np.savez(path, x=np.asarray(x, np.float64), y=np.asarray(y, np.float64),
             mask=np.asarray(mask, np.float64), **{f"w_{k}": np.asarray(v, np.float64) for k, v in weights.items()})


def load_data(path: str, dtype) -> tuple:
    """-> ``(weights, x, y, mask)`` cast to ``dtype`` (weights: dict of C-contiguous arrays)."""
    with np.load(path) as f:
        weights = {k[2:]: np.ascontiguousarray(f[k], dtype=dtype) for k in f.files if k.startswith("w_")}
        x, y, mask = (np.ascontiguousarray(f[k], dtype=dtype) for k in ("x", "y", "mask"))
    return weights, x, y, mask


def noise_scale(cfg: dict) -> float:
    """``sqrt(2 alpha) * rec_noise`` (0 when noise is off)."""
    return float(np.sqrt(2 * ALPHA) * cfg["rec_noise"]) if cfg["noise"] else 0.0


def pin_threads(threads: int) -> None:
    """Set the thread-count environment variables; call before importing numerical libraries."""
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS",
                "TF_NUM_INTRAOP_THREADS"):
        os.environ[var] = str(threads)
    os.environ.setdefault("TF_NUM_INTEROP_THREADS", "1")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")


def blas_limits(threads: int):
    """``threadpoolctl.threadpool_limits(threads)`` when threadpoolctl is there (kept alive)."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return None
    return threadpool_limits(limits=threads)


def maxrss_mb() -> float:
    """Peak resident set size of this process so far, MiB.

    ``VmHWM`` of ``/proc/self/status`` where there is one: ``ru_maxrss`` survives ``exec`` on Linux,
    so a worker would report its parent's peak when that was larger.
    """
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def cpu_seconds() -> float:
    """User + system CPU time of this process (all its threads)."""
    t = os.times()
    return t.user + t.system


def serve(factory, contender: str) -> None:
    """The worker loop: answer the driver's commands (see the module docstring) on a private fd."""
    out = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)  # anything a library prints goes to stderr
    sys.stdout = sys.stderr
    state = {"model": None, "rss_import": maxrss_mb(), "limits": None, "threads": 1}

    def answer(obj):
        out.write(json.dumps(obj) + "\n")
        out.flush()

    for line in sys.stdin:
        try:
            msg = json.loads(line)
            cmd = msg["cmd"]
            if cmd == "quit":
                answer({"ok": True})
                break
            if cmd == "setup":
                cfg = msg["config"]
                state["threads"] = int(cfg["threads"])
                state["limits"] = blas_limits(state["threads"])
                t0 = time.perf_counter()
                state["model"] = factory(contender, cfg, msg["data"])
                answer({"ok": True, "setup_s": time.perf_counter() - t0})
            elif cmd == "run":
                model, n = state["model"], int(msg["n"])
                # again: a BLAS loaded since set-up (SciPy's, behind Numba's np.dot) gets the limit too
                state["limits"] = blas_limits(state["threads"])
                c0, t0 = cpu_seconds(), time.perf_counter()
                model.run(n)
                wall, cpu = time.perf_counter() - t0, cpu_seconds() - c0
                answer({"ok": True, "wall": wall, "cpu": cpu})
            elif cmd == "losses":
                answer({"ok": True, "losses": [float(v) for v in state["model"].losses(int(msg["n"]))]})
            elif cmd == "memory":
                answer({"ok": True, "maxrss_mb": maxrss_mb(), "import_mb": state["rss_import"]})
            else:
                answer({"ok": False, "error": f"unknown command {cmd!r}"})
        except Exception as exc:  # report, keep serving: the driver decides
            answer({"ok": False, "error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc()})


class StepLoop:
    """Base for contenders: ``run(n)`` and ``losses(n)`` on top of ``step(record) -> loss or None``."""

    def step(self, record: bool = False):
        raise NotImplementedError

    def run(self, n: int) -> None:
        for _ in range(n):
            self.step(False)
        self.sync()

    def losses(self, n: int) -> list:
        return [self.step(True) for _ in range(n)]

    def sync(self) -> None:
        """Wait for queued work (asynchronous frameworks)."""
