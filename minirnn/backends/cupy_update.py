"""``Basic``'s objective and gradients on the GPU with few passes over the big arrays.

The reference (:meth:`minirnn.models.basic.Basic._loss_and_grads`) is whole-array code, and on CuPy
each of its element-wise steps is a pass over a (T, B, N_rec) array: ``drive + b_rec``, ``alpha *
drive``, ``noise_scale * xi``, their sum, ``f(X)``, ``f'(X)``, ``dR * f'(X)``, the firing-rate term...
At N_rec 1024 and batch 4096 one such array is 3.4 GB, and those passes took about as long as the
products. Here they happen inside the two time-loop kernels of :mod:`.cupy_kernels` instead:

- forward: the step adds ``alpha (drive_k + b_rec) + noise_scale xi_k`` itself, making the normals
  ``xi`` from the network's noise key on the spot (the same numbers as
  :func:`minirnn.nn.noise.gaussian_noise`), and stores the rates ``R = f(X)`` beside ``X``;
- backward: the step forms ``dL/dx = (dL/dR + (2c/n) R) f'(x)`` (readout plus L2_firing_rate) as it goes.

What remains outside is products and the loss on the small (T, B, N_out) outputs. Each product is one
cuBLAS call (:meth:`.cupy_kernels._Gemm.matmul`) that reads the transposed and sliced operands where
they lie: ``cupy.matmul`` copies such operands of a batched product first (``D^T``, 3.4 GB above) and
ignores ``CUPY_TF32`` there.

The model calls this when the backend lists it (``Basic._fused_applies``: a built-in activation, the
mean squared error, no custom regularizer); it returns what the reference returns, up to rounding,
as the numba backend's kernel of the same name does. ``ENABLED = False`` (before a model is made)
leaves the reference to run on CuPy, for comparison; ``PREDRAWN_NOISE = True`` draws the noise in a
kernel of its own before the loop (one more (T, B, N_rec) array, but a shorter sequential chain), for
comparison too.

The big arrays live in a plan per configuration (sizes, dtype, activation, noise and penalty modes,
strategy), kept across updates: four (K, T, B, N_rec) buffers (the drive, which later holds ``dL/dR``;
the states; the rates; ``dL/d drive``), as many as one update needed at its peak before. Each plan
builds its two time loops once, from its own buffers, so that from the second update on they run as
CUDA graphs (:mod:`.cuda_graphs`): one launch per loop instead of two per step. The last
``PLANS_KEPT`` plans are kept; :func:`release` drops them (and their device memory).
"""
from __future__ import annotations

import math
import threading
from collections import OrderedDict

import numpy as np

from ..dynamics import rate
from ..nn import noise as nn_noise
from . import cuda_graphs, cupy_kernels
from .cupy_kernels import _flat, per_unit

ENABLED = True
PREDRAWN_NOISE = False
PLANS_KEPT = 2
_plans: OrderedDict = OrderedDict()  # configuration -> _Plan, most recently used last
_plans_lock = threading.Lock()


def _time_major(a, B, T, tail):
    """A batch-major ``(*lead?, B, T, tail)`` array as a C-contiguous ``(K or 1, T, B, tail)``."""
    import cupy

    return cupy.ascontiguousarray(a.reshape(-1, B, T, tail).swapaxes(1, 2))


def _each_key(noise_keys, lead):
    """One uint64 noise key per network, in network order (a single key or one per network)."""
    return np.broadcast_to(np.asarray(noise_keys, np.uint64), lead).ravel()


def _noise_keys(noise_keys, lead):
    """Each network's ``(key, key2, key3)`` as a (K, 3) uint64 device array."""
    import cupy

    keys = [nn_noise.stream_keys(k) for k in _each_key(noise_keys, lead)]
    return cupy.asarray(np.array(keys, np.uint64).reshape(-1, 3))


class _Plan:
    """One configuration's device buffers and its two time loops (arrays as in :func:`.cupy_kernels.forward_loop`)."""

    def __init__(self, K, T, B, N, dtype, act_code, strategy, noise_mode, penalty):
        import cupy

        new = lambda *shape: cupy.empty(shape, dtype)  # noqa: E731
        self.Wa, self.x0, self.fr = new(K, N, N), new(K, 1, N), new(K)  # x_0: one per network
        self.alpha, self.decay, self.bias, self.ns = new(K, N), new(K, N), new(K, N), new(K, N)
        self.keys = cupy.zeros((K, 3), np.uint64)
        self.xi = new(K, T, B, N) if noise_mode == 1 else None
        self.drive = new(K, T, B, N)  # u W_in^T; then, dead by then, dL/dR
        self.X, self.R, self.D = new(K, T, B, N), new(K, T, B, N), new(K, T, B, N)
        forward = cupy_kernels.forward_launches(
            act_code, strategy, self.Wa, self.drive, self.x0, self.alpha, self.decay, self.bias, self.X,
            ns=self.ns if noise_mode else None, xi=self.xi, keys=self.keys if noise_mode == 2 else None, R=self.R)
        backward, self.d_x0 = cupy_kernels.backward_launches(
            act_code, strategy, self.Wa, self.X, self.x0, self.drive, self.alpha, self.decay, self.D,
            R=self.R if penalty else None, fr=self.fr if penalty else None, dx_mode=2 if penalty else 1)
        self.forward = cuda_graphs.LoopGraph(forward, np.dtype(dtype), strategy)
        self.backward = cuda_graphs.LoopGraph(backward, np.dtype(dtype), strategy)


def _plan(*config):
    """The plan of a configuration (made, or the kept one); one per thread and device, as buffers are shared."""
    import cupy

    key = config + (threading.get_ident(), cupy.cuda.Device().id)
    with _plans_lock:
        plan = _plans.pop(key, None)
        if plan is None:
            if len(_plans) >= max(PLANS_KEPT, 1):  # dropped before the new one is made: at most PLANS_KEPT at once
                cupy.cuda.Device().synchronize()  # no graph of theirs still running
                while len(_plans) >= max(PLANS_KEPT, 1):
                    _plans.popitem(last=False)
            plan = _Plan(*config)
        _plans[key] = plan
    return plan


def release():
    """Drop the kept plans (their buffers go back to CuPy's memory pool)."""
    with _plans_lock:
        if _plans:
            import cupy

            cupy.cuda.Device().synchronize()  # no graph of theirs still running
            _plans.clear()


def rate_loss_and_grads(W_eff, x, y, mask, alpha, noise_scale, noise, act, fr_coef=None, noise_keys=None):
    """``Basic``'s objective (mean squared error, plus ``fr_coef * mean(f(X)^2)`` when given) and its
    gradients w.r.t. the effective weights, on CuPy arrays.

    ``W_eff``: effective ``W_in, W_rec, W_out, b_rec, b_out, init_state`` (with leading network axes);
    ``x (*lead?, B, T, N_in)``, ``y, mask (*lead?, B, T, N_out)`` batch-major; ``alpha (*lead, 1, N)``,
    ``noise_scale``, ``noise`` (explicit normals (*lead, T, B, N), or None), ``act``: as
    :func:`minirnn.dynamics.rate.recur_forward`; ``fr_coef``: the L2_firing_rate coefficient (scalar or
    shape lead), or None; ``noise_keys``: instead of ``noise``, one uint64 key per network.
    Returns ``(value (lead), {name: dL/d(effective name)})``; weight penalties are the caller's.
    """
    import cupy

    W_rec = W_eff["W_rec"]
    dtype = W_rec.dtype
    lead = tuple(W_rec.shape[:-2])
    B, T, I = x.shape[-3:]
    N, O = W_rec.shape[-1], W_eff["W_out"].shape[-2]
    K = math.prod(lead)
    strategy = cupy_kernels._strategy(N, B, K, dtype, None)
    strategy = "step" if strategy == "step-cupy" else strategy  # the plain version has no fused form
    u, y_t, m_t = _time_major(x, B, T, I), _time_major(y, B, T, O), _time_major(mask, B, T, O)
    W_in = _flat(W_eff["W_in"], lead + (N, I)).reshape(K, N, I)
    W_out = _flat(W_eff["W_out"], lead + (O, N)).reshape(K, O, N)
    x0 = _flat(W_eff["init_state"], lead + (1, N)).reshape(K, 1, N)
    alpha_f = per_unit(alpha, lead, N)
    # the noise: none (0), normals in an array (1: given, or drawn before the loop), or made in the loop (2)
    noise_mode = 0 if noise is None and noise_keys is None else 1 if noise is not None or PREDRAWN_NOISE else 2
    plan = _plan(K, T, B, N, dtype, act.code, strategy, noise_mode, fr_coef is not None)

    # ---- the inputs, into the plan's buffers -------------------------------------------------------
    cupy.multiply(alpha_f[:, :, None], W_rec.reshape(K, N, N), out=plan.Wa)  # alpha_i W_ij
    plan.x0[...] = x0
    plan.alpha[...] = alpha_f
    cupy.subtract(1, alpha_f, out=plan.decay)
    plan.bias[...] = per_unit(W_eff["b_rec"][..., None, :], lead, N)
    if noise_mode:
        plan.ns[...] = per_unit(noise_scale, lead, N)
    if noise is not None:
        plan.xi[...] = _flat(noise, lead + (T, B, N)).reshape(K, T, B, N)
    elif noise_mode == 1:
        for n, k in enumerate(_each_key(noise_keys, lead)):
            plan.xi[n] = cupy_kernels.gaussian_noise(k, (T, B, N), dtype)
    elif noise_mode == 2:
        plan.keys[...] = _noise_keys(noise_keys, lead)

    # the products go through gemm.matmul, which reads transposed and sliced operands where they lie
    gemm = cupy_kernels._Gemm(dtype)
    new = lambda *shape: cupy.empty((K,) + shape, dtype)  # noqa: E731

    # ---- forward: drive_k = u_k @ W_in^T (b_rec, alpha and the noise are added in the loop) --------
    with gemm:
        gemm.matmul(u.reshape(-1, T * B, I), rate.mT(W_in), plan.drive.reshape(K, T * B, N))
    plan.forward()  # X and R = f(X)
    R_rows = plan.R.reshape(K, T * B, N)
    # z_k = r_{k+1} @ W_out^T + b_out;  mse = mean((m (z - y))^2),  dL/dz = 2 m^2 (z - y) / n
    with gemm:
        Z = gemm.matmul(R_rows, rate.mT(W_out), new(T * B, O))
    Z += _flat(W_eff["b_out"], lead + (O,)).reshape(K, 1, O)
    m_rows = m_t.reshape(-1, T * B, O)
    err = m_rows * (Z - y_t.reshape(-1, T * B, O))
    n_out = T * B * O
    value = (err * err).sum(axis=(1, 2)) / n_out
    dZ = (2 / n_out) * m_rows * err  # (K, T*B, O)

    # ---- backward ---------------------------------------------------------------------------------
    with gemm:
        gemm.matmul(dZ, W_out, plan.drive.reshape(K, T * B, N))  # z = R W_out^T  =>  dL/dR = dZ W_out
    if fr_coef is not None:
        n_rates = T * B * N
        plan.fr[...] = _flat(cupy.asarray(2 * fr_coef / n_rates, dtype), lead).reshape(K)
        squares = (R_rows.reshape(K, 1, -1) @ R_rows.reshape(K, -1, 1)).reshape(K)  # sum of r^2 per network
        value = value + _flat(cupy.asarray(fr_coef, dtype), lead).reshape(K) * (squares / n_rates)
    plan.backward()  # D = dL/d drive, and dL/dx_0
    D, d_x0 = plan.D, plan.d_x0
    D_rows = D.reshape(K, T * B, N)
    u_one = cupy.concatenate([u.reshape(-1, T * B, I), cupy.ones((u.shape[0], T * B, 1), dtype)], axis=2)
    with gemm:
        # x_{k+1} = ... + alpha f(x_k) @ W_rec^T: D_k = alpha a_{k+1} pairs with f(x_k) (f(x_0) for k = 0, every trial)
        g_rec = gemm.matmul(rate.mT(D_rows[:, B:]), R_rows[:, :-B], new(N, N))  # all zeros when T = 1
        # drive_k = u_k @ W_in^T + b_rec: [dW_in | db_rec] = D^T [u | 1], one pass over D for both
        g_in = gemm.matmul(rate.mT(D_rows), u_one, new(N, I + 1))
        g_out = gemm.matmul(rate.mT(dZ), R_rows, new(O, N))  # z = R W_out^T  =>  dL/dW_out = dZ^T R
    g_rec += D_rows[:, :B].sum(axis=1)[:, :, None] * act.f(x0)  # sum_b D_0[b, i] f(x_0)_j
    grads = {
        "W_rec": g_rec,
        "W_in": g_in[:, :, :I],
        "b_rec": g_in[:, :, I],
        "W_out": g_out,
        "b_out": dZ.sum(axis=1),
        "init_state": d_x0.sum(axis=1, keepdims=True),  # x_0 is shared by every trial
    }
    shapes = {name: lead + W_eff[name].shape[len(lead):] for name in grads}
    grads = {name: g.astype(dtype, copy=False).reshape(shapes[name]) for name, g in grads.items()}
    return value.astype(dtype, copy=False).reshape(lead), grads
