"""Where one training update goes: times each stage of ``Basic._loss_and_grads`` separately.

    python benchmarks/profile_update.py [--n-rec 50] [--backend numba] [--dtype float32]

The paper's settings (batch 128, 200 steps), one BLAS thread, medians of 30 calls per stage.
"""
import argparse

import numpy as np
from threadpoolctl import threadpool_limits

from minirnn import Basic
from minirnn.models.basic import mT, rows, time_major
from minirnn.tasks import PerceptualDiscrimination
from timing import median_ms


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n-rec", type=int, default=50)
    ap.add_argument("--backend", default="numba")
    ap.add_argument("--dtype", default="float32")
    args = ap.parse_args()
    task = PerceptualDiscrimination(dt=10, tau=100, T=2000, N_batch=128, seed=1)
    p = dict(task.get_task_params(), N_rec=args.n_rec, seed=0, backend=args.backend, dtype=args.dtype)
    m = Basic(p)
    x, y, mask = m._check_batch(*task.generate_batch()[:3])
    W = m.effective_weights()
    forward = m.backend.kernels.get("rate_forward")
    backward = m.backend.kernels.get("rate_backward")
    if forward is None:
        from minirnn.dynamics import rate

        forward, backward = rate.recur_forward, rate.recur_backward
    u = np.ascontiguousarray(time_major(x))
    T, B, N = u.shape[0], u.shape[1], args.n_rec
    drive = (rows(u) @ mT(W["W_in"]) + W["b_rec"][None, :]).reshape(T, B, N)
    X = forward(W["W_rec"], drive, W["init_state"], m.alpha, m.noise_scale, None, m.activation, None)
    R = m.activation.f(X)
    Z = (rows(R) @ mT(W["W_out"]) + W["b_out"][None, :]).reshape(T, B, -1)
    _, dz = m.loss_function(time_major(Z), y, mask)
    dZ = np.ascontiguousarray(time_major(dz))
    dR = (rows(dZ) @ W["W_out"]).reshape(R.shape)
    dX = dR * m.activation.df(X)
    d_drive, _ = backward(W["W_rec"], X, W["init_state"], dX, m.alpha, m.activation)
    rng = np.random.default_rng(0)
    stages = {
        "whole update (_loss_and_grads)": lambda: m._loss_and_grads(x, y, mask),
        "input drive matmul": lambda: rows(u) @ mT(W["W_in"]),
        "forward time loop": lambda: forward(W["W_rec"], drive, W["init_state"], m.alpha, m.noise_scale, None,
                                             m.activation, None),
        "rates f(X)": lambda: m.activation.f(X),
        "readout matmul": lambda: rows(R) @ mT(W["W_out"]),
        "loss and dz": lambda: m.loss_function(time_major(Z), y, mask),
        "dR = dZ W_out": lambda: rows(dZ) @ W["W_out"],
        "dX = dR f'(X)": lambda: dR * m.activation.df(X),
        "backward time loop": lambda: backward(W["W_rec"], X, W["init_state"], dX, m.alpha, m.activation),
        "dW_rec matmul": lambda: mT(rows(d_drive[1:])) @ rows(R[:-1]),
        "dW_in matmul": lambda: mT(rows(d_drive)) @ rows(u),
        "db_rec sum": lambda: rows(d_drive).sum(axis=-2),
        "noise draw (T, B, N)": lambda: rng.standard_normal((T, B, N), dtype=m.dtype),
        "task batch": lambda: task.generate_batch(),
    }
    with threadpool_limits(1):
        print(f"N_rec={N}, backend={m.backend.name}, dtype={m.dtype}, batch {B}, {T} steps, one BLAS thread")
        for name, f in stages.items():
            print(f"  {name:32s} {median_ms(f):8.2f} ms")


if __name__ == "__main__":
    main()
