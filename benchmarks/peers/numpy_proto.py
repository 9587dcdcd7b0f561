"""The "NumPy proto": a plain hand-written NumPy BPTT of the benchmark model (common.py).

Only the two sequential recurrent matmuls stay in the time loop (``relu(x_k) W_alpha^T`` forward,
``a_{k+1} W_alpha`` backward); everything else is one big matmul over all ``T*B`` rows. Buffers
are allocated once, elementwise work is in-place ufuncs, arrays are time-major ``(T, B, N)``.
Forward and backward side by side::

    D_k     = a (u_k W_in^T + b_rec) + sqrt(2a) s xi_k        (all k at once)
    x_{k+1} = (1 - a) x_k + relu(x_k) W_a^T + D_k             W_a = a W_rec
    z_k     = relu(x_{k+1}) W_out^T + b_out
    L       = mean((m (z - y))^2);   dz = 2 m^2 (z - y) / n
    dR      = dz W_out;   dX_k^direct = dR_k * [x_{k+1} > 0]
    a_{k+1} = dX_k^direct + c_{k+1};   c_k = (1 - a) a_{k+1} + [x_k > 0] * (a_{k+1} W_a)
    dW_rec  = a A^T R_prev;   dW_in = a A^T U;   db_rec = a sum A;   dx_0 = sum_b c_0
    dW_out  = dz^T R_next;    db_out = sum dz
"""
from __future__ import annotations

import numpy as np

from common import (ALPHA, BETA1, BETA2, CLIP_NORM, LEARNING_RATE, PARAM_NAMES, StepLoop, load_data,
                    noise_scale)


class NumpyProto(StepLoop):
    def __init__(self, cfg: dict, data_path: str):
        dt = self.dtype = np.dtype(cfg["dtype"])
        w, x, y, mask = load_data(data_path, dt)
        B, T = x.shape[:2]
        N, N_out = w["W_rec"].shape[0], y.shape[-1]
        self.B, self.T, self.N = B, T, N
        self.p = w
        self.eps = float(cfg["eps"])
        self.s = noise_scale(cfg)
        self.rng = np.random.default_rng(cfg["seed"])
        tm = lambda a: np.ascontiguousarray(a.swapaxes(0, 1)).reshape(T * B, a.shape[-1])  # noqa: E731
        self.U, self.Y, self.M = tm(x), tm(y), tm(mask)
        n = self.Y.size
        self.M2n = self.M * (2.0 / n)  # dz = (2/n) m * [m (z - y)]
        self.inv_n = 1.0 / n
        e = lambda *shape: np.empty(shape, dtype=dt)  # noqa: E731
        self.D, self.Xi, self.A = e(T, B, N), e(T, B, N), e(T, B, N)
        self.X, self.R = e(T + 1, B, N), e(T + 1, B, N)
        self.G = np.empty((T + 1, B, N), dtype=bool)
        self.Z, self.E, self.dZ = e(T * B, N_out), e(T * B, N_out), e(T * B, N_out)
        self.tmp, self.carry = e(B, N), e(B, N)
        self.Wa = e(N, N)
        self.g = {k: np.empty_like(v) for k, v in w.items()}
        self.m = {k: np.zeros_like(v) for k, v in w.items()}
        self.v = {k: np.zeros_like(v) for k, v in w.items()}
        self.scratch = {k: np.empty_like(v) for k, v in w.items()}
        self.t, self.b1p, self.b2p = 0, 1.0, 1.0

    def step(self, record=False):
        p, g, T, B, N = self.p, self.g, self.T, self.B, self.N
        D, X, R, A, G, tmp, carry = self.D, self.X, self.R, self.A, self.G, self.tmp, self.carry
        D2, A2 = D.reshape(T * B, N), A.reshape(T * B, N)
        decay = 1.0 - ALPHA
        # ---- forward: D_k = a (u_k W_in^T + b_rec) + sqrt(2a) s xi_k for every step at once
        np.matmul(self.U, p["W_in"].T, out=D2)
        D2 += p["b_rec"]
        D2 *= ALPHA
        if self.s:
            self.rng.standard_normal(out=self.Xi, dtype=self.dtype)
            self.Xi *= self.s
            D += self.Xi
        np.multiply(p["W_rec"], ALPHA, out=self.Wa)
        WaT = self.Wa.T
        X[0] = p["init_state"]
        for k in range(T):  # x_{k+1} = (1 - a) x_k + relu(x_k) W_a^T + D_k
            np.maximum(X[k], 0, out=R[k])
            np.matmul(R[k], WaT, out=X[k + 1])
            X[k + 1] += D[k]
            np.multiply(X[k], decay, out=tmp)
            X[k + 1] += tmp
        np.maximum(X[T], 0, out=R[T])
        Rn = R[1:].reshape(T * B, N)
        np.matmul(Rn, p["W_out"].T, out=self.Z)  # z_k = relu(x_{k+1}) W_out^T + b_out
        self.Z += p["b_out"]
        np.subtract(self.Z, self.Y, out=self.E)
        self.E *= self.M
        loss = np.vdot(self.E, self.E) * self.inv_n  # L = mean((m (z - y))^2)
        # ---- backward
        np.multiply(self.E, self.M2n, out=self.dZ)  # dz = 2 m^2 (z - y) / n
        np.matmul(self.dZ.T, Rn, out=g["W_out"])
        np.sum(self.dZ, axis=0, out=g["b_out"])
        np.greater(X, 0, out=G)
        np.matmul(self.dZ, p["W_out"], out=A2)  # dR = dz W_out
        A *= G[1:]  # direct dL/dx_{k+1} = dR_k relu'(x_{k+1})
        carry[...] = 0
        for k in range(T - 1, -1, -1):  # a_{k+1} = direct + c_{k+1}; c_k = (1-a) a + relu'(x_k) (a W_a)
            A[k] += carry
            np.matmul(A[k], self.Wa, out=tmp)
            tmp *= G[k]
            np.multiply(A[k], decay, out=carry)
            carry += tmp
        np.matmul(A2.T, R[:T].reshape(T * B, N), out=g["W_rec"])  # dW_rec = a A^T relu(x_k)
        g["W_rec"] *= ALPHA
        np.matmul(A2.T, self.U, out=g["W_in"])  # dW_in = a A^T U
        g["W_in"] *= ALPHA
        np.sum(A2, axis=0, out=g["b_rec"])
        g["b_rec"] *= ALPHA
        np.sum(carry, axis=0, keepdims=True, out=g["init_state"])  # x_0 is shared by all trials
        self._clip_and_adam()
        return float(loss) if record else None

    def _clip_and_adam(self):
        """Per-parameter clip to norm 1 (TF's order), then TF1's Adam, in place."""
        self.t += 1
        self.b1p *= BETA1
        self.b2p *= BETA2
        lr_t = LEARNING_RATE * (1 - self.b2p) ** 0.5 / (1 - self.b1p)  # a Python float: keeps float32
        for name in PARAM_NAMES:
            g, m, v, tmp, p = self.g[name], self.m[name], self.v[name], self.scratch[name], self.p[name]
            norm = np.sqrt(np.vdot(g, g))
            if norm > CLIP_NORM:
                g *= CLIP_NORM
                g /= norm
            np.subtract(g, m, out=tmp)  # m += (g - m)(1 - b1)
            tmp *= 1 - BETA1
            m += tmp
            np.multiply(g, g, out=tmp)  # v += (g^2 - v)(1 - b2)
            tmp -= v
            tmp *= 1 - BETA2
            v += tmp
            np.sqrt(v, out=tmp)  # p -= lr_t m / (sqrt(v) + eps)
            tmp += self.eps
            np.divide(m, tmp, out=tmp)
            tmp *= lr_t
            p -= tmp


def make(contender: str, cfg: dict, data_path: str):
    return NumpyProto(cfg, data_path)
