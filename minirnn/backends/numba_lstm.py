"""Numba mirrors of :mod:`minirnn.dynamics.lstm`: the LSTM's time loop, forward and backward.

``KERNELS`` replaces ``lstm_forward`` / ``lstm_backward`` with the same signatures and return
values (DESIGN.md §6, STYLE.md P6); :class:`~minirnn.models.lstm.LSTM` looks them up by name. One
step, as in the reference (gates stacked ``f, i, c, o``)::

    a_k = h_k @ W_h^T + drive_k;  f, i, o = sigmoid(a_f, a_i, a_o);  g = tanh(a_c)
    c_{k+1} = f c_k + i g;        h_{k+1} = o phi(c_{k+1})

Each public function is a thin Python wrapper. It sends to the vectorised reference what the
kernels cannot take: a perturbation (``W_mask``, clamps), a cell activation without an integer
``code`` (a user ``(f, df)`` pair), arrays that are not all NumPy float32 or all float64, an empty
time, batch or unit axis, and everything when no BLAS is reachable from compiled code
(:mod:`.numba_blas`). Otherwise it flattens the leading network axes ``*lead`` to one axis ``K``, broadcasts
``h0``/``c0`` to ``(K, B, N)``, makes every array C-contiguous and calls one ``@njit`` kernel
that runs all ``K`` networks and all ``T`` steps: one product per step (one BLAS thread) into a preallocated
``(B, 4N)`` or ``(B, N)`` buffer, then fused loops over each batch row for the four gates and the
cell (forward) or their adjoints (backward). No allocation per step, no Python per step.

The elementwise work is the reference's formulas in the reference's order and in the input's
dtype (``phi`` by code: relu 0, tanh 1, sigmoid 2, softplus 3, linear 4), with one exception:
``sigmoid``, ``tanh`` and ``softplus`` go through a branch-free ``exp`` of our own (:mod:`.numba_math`;
within 3-4 ulp, as NumPy's), because Numba's libm calls do not vectorise. So the numbers differ from the reference
by a few ulp per gate and by the summation order inside the matmul (another BLAS). One
structure at every ``N`` (measured: ``benchmarks/bench_lstm.py``, one BLAS thread).
"""
from __future__ import annotations

import os

import numpy as np

from ..dynamics import lstm as reference
from .numba_blas import PROVIDER, gemm, one_blas_thread
from .numba_kernels import _KERNEL_DTYPES, RELU, SIGMOID, SOFTPLUS, TANH, _flat
from .numba_math import _sigmoid, _softplus, _tanh, flush_if_sources_changed, njit

# Without a BLAS for compiled code (numba_blas) the kernels cannot link.
HAVE_BLAS = PROVIDER.name != "none"


# ------------------------------------------------------------------ phi and phi' over one row
# One loop per cell activation (the branch outside the loop, so that each loop vectorises).
# ``one`` and ``zero`` carry the array's dtype: an int literal would promote float32 to float64.


@njit(cache=True, error_model="numpy")
def _phi_row(c, code, one, zero, p, dp):
    """``p = phi(c)``, ``dp = phi'(c)`` on (N,) rows, by the formulas of :mod:`minirnn.nn.activations`."""
    N = c.shape[0]
    if code == TANH:  # phi' = 1 - tanh(c)^2
        for j in range(N):
            t = _tanh(c[j], one)
            p[j], dp[j] = t, one - t * t
    elif code == SIGMOID:  # phi' = s (1 - s)
        for j in range(N):
            s = _sigmoid(c[j], one)
            p[j], dp[j] = s, s * (one - s)
    elif code == RELU:  # phi' = 1[c > 0]
        for j in range(N):
            p[j], dp[j] = (zero if c[j] < zero else c[j]), (one if c[j] > zero else zero)  # NaN kept
    elif code == SOFTPLUS:  # log(1 + e^c) = max(c, 0) + log1p(e^-|c|);  phi' = sigmoid(c)
        for j in range(N):
            v = c[j]
            p[j], dp[j] = _softplus(v, one), _sigmoid(v, one)
    else:  # linear
        for j in range(N):
            p[j], dp[j] = c[j], one


# ------------------------------------------------------------------ forward and backward, side by side


@njit(cache=True, error_model="numpy")
def _forward_loop(W_h, drive, h0, c0, code, H, C, G):
    """All K networks, all T steps. ``W_h (K, 4N, N)``, ``drive, G (K, T, B, 4N)``, ``H, C (K, T, B, N)``."""
    K, T, B, N4 = drive.shape
    N = N4 // 4
    one = drive.dtype.type(1)
    zero = one - one
    a = np.empty((B, N4), drive.dtype)  # h_k @ W_h^T, all four gates
    p, dp = np.empty(N, drive.dtype), np.empty(N, drive.dtype)  # phi(c_{k+1}) of one row (dp unused)
    for n in range(K):
        for k in range(T):
            h_prev = h0[n] if k == 0 else H[n, k - 1]
            c_prev = c0[n] if k == 0 else C[n, k - 1]
            gemm(False, True, h_prev, W_h[n], a)  # h_k W_h^T: (B, 4N)
            for b in range(B):
                ab, db, gb = a[b], drive[n, k, b], G[n, k, b]
                f, i, g, o = gb[:N], gb[N:2 * N], gb[2 * N:3 * N], gb[3 * N:]
                # a_k = h_k W_h^T + drive_k;  f, i = sigmoid(a_f, a_i);  g = tanh(a_c);  o = sigmoid(a_o)
                for j in range(2 * N):
                    gb[j] = _sigmoid(ab[j] + db[j], one)
                for j in range(2 * N, 3 * N):
                    gb[j] = _tanh(ab[j] + db[j], one)
                for j in range(3 * N, N4):
                    gb[j] = _sigmoid(ab[j] + db[j], one)
                c, h, cp = C[n, k, b], H[n, k, b], c_prev[b]
                for j in range(N):
                    c[j] = f[j] * cp[j] + i[j] * g[j]  # c_{k+1} = f c_k + i g
                _phi_row(c, code, one, zero, p, dp)
                for j in range(N):
                    h[j] = o[j] * p[j]  # h_{k+1} = o phi(c_{k+1})
    return H, C, G


@njit(cache=True, error_model="numpy")
def _backward_loop(W_h, C, G, c0, dH, code, dA, dh0, dc0):
    """All K networks, all T steps backwards. ``dh0``, ``dc0 (K, B, N)`` hold the carries
    ``dL/dh_{k+1}``, ``dL/dc_{k+1}`` through later steps, and end as ``dL/dh_0``, ``dL/dc_0``."""
    K, T, B, N4 = G.shape
    N = N4 // 4
    one = G.dtype.type(1)
    zero = one - one
    p, dp = np.empty(N, G.dtype), np.empty(N, G.dtype)  # phi(c_{k+1}), phi'(c_{k+1}) of one row
    for n in range(K):
        dh_carry, dc_carry = dh0[n], dc0[n]
        dh_carry[:, :] = 0  # nothing arrives after the last step
        dc_carry[:, :] = 0
        for k in range(T - 1, -1, -1):
            c_prev = c0[n] if k == 0 else C[n, k - 1]
            for b in range(B):
                gb, da, cp, dhc, dcc = G[n, k, b], dA[n, k, b], c_prev[b], dh_carry[b], dc_carry[b]
                f, i, g, o = gb[:N], gb[N:2 * N], gb[2 * N:3 * N], gb[3 * N:]
                _phi_row(C[n, k, b], code, one, zero, p, dp)
                dh_k = dH[n, k, b]
                for j in range(N):
                    dh = dh_k[j] + dhc[j]
                    # h_{k+1} = o phi(c_{k+1})  =>  dc_{k+1} += dh o phi'(c_{k+1});  do = dh phi(c_{k+1})
                    dc = dcc[j] + dh * o[j] * dp[j]
                    # c_{k+1} = f c_k + i g  =>  df = dc c_k, di = dc g, dg = dc i; then through the
                    # gate nonlinearities: sigmoid' = s (1 - s), tanh' = 1 - g^2
                    da[j] = (dc * cp[j]) * (f[j] * (one - f[j]))
                    da[N + j] = (dc * g[j]) * (i[j] * (one - i[j]))
                    da[2 * N + j] = (dc * i[j]) * (one - g[j] * g[j])
                    da[3 * N + j] = (dh * p[j]) * (o[j] * (one - o[j]))
                    dcc[j] = dc * f[j]  # c_{k+1} = f c_k + ...  =>  dc_k = dc f
            gemm(False, False, dA[n, k], W_h[n], dh_carry)  # a_k = h_k W_h^T + ...  =>  dh_k = dA_k W_h
    return dA, dh0, dc0


# ------------------------------------------------------------------ dispatch


def _kernel_dtype(*arrays):
    """The common dtype when every array is a NumPy float32 (or every one float64), else None."""
    if not HAVE_BLAS or not all(isinstance(a, np.ndarray) for a in arrays):
        return None
    dtypes = {a.dtype for a in arrays}
    return dtypes.pop() if len(dtypes) == 1 and arrays[0].dtype in _KERNEL_DTYPES else None


def lstm_forward(W_h, drive, h0, c0, cell_act, perturb=None):
    """:func:`minirnn.dynamics.lstm.lstm_forward`, with the time loop compiled (same arguments)."""
    code = getattr(cell_act, "code", None)
    dtype = _kernel_dtype(W_h, drive, h0, c0)
    *lead, T, B, N4 = drive.shape
    if perturb is not None or code is None or dtype is None or 0 in (T, B, N4):
        return reference.lstm_forward(W_h, drive, h0, c0, cell_act, perturb)
    lead, N = tuple(lead), N4 // 4
    H = np.empty((*lead, T, B, N), dtype)
    C = np.empty_like(H)
    G = np.empty(drive.shape, dtype)
    K = int(np.prod(lead, dtype=np.int64))
    flat = lambda a, *tail: _flat(a, lead, tail, dtype)  # noqa: E731  (K, *tail), C order
    with one_blas_thread():
        _forward_loop(flat(W_h, N4, N), flat(drive, T, B, N4), flat(h0, B, N), flat(c0, B, N), code,
                      H.reshape(K, T, B, N), C.reshape(K, T, B, N), G.reshape(K, T, B, N4))
    return H, C, G


def lstm_backward(W_h, H, C, G, h0, c0, dH, cell_act):
    """:func:`minirnn.dynamics.lstm.lstm_backward`, with the time loop compiled (same arguments)."""
    code = getattr(cell_act, "code", None)
    dtype = _kernel_dtype(W_h, H, C, G, h0, c0, dH)
    *lead, T, B, N = H.shape
    if code is None or dtype is None or 0 in (T, B, N):
        return reference.lstm_backward(W_h, H, C, G, h0, c0, dH, cell_act)
    lead = tuple(lead)
    dA = np.empty((*lead, T, B, 4 * N), dtype)
    dh0 = np.empty((*lead, B, N), dtype)
    dc0 = np.empty_like(dh0)
    K = int(np.prod(lead, dtype=np.int64))
    flat = lambda a, *tail: _flat(a, lead, tail, dtype)  # noqa: E731
    with one_blas_thread():
        _backward_loop(flat(W_h, 4 * N, N), flat(C, T, B, N), flat(G, T, B, 4 * N), flat(c0, B, N),
                       flat(dH, T, B, N), code, dA.reshape(K, T, B, 4 * N), dh0.reshape(K, B, N), dc0.reshape(K, B, N))
    return dA, dh0, dc0


KERNELS = {"lstm_forward": lstm_forward, "lstm_backward": lstm_backward}

# Numba re-validates a cached kernel against this file only (see numba_kernels.py's last lines).
_HERE = os.path.dirname(os.path.abspath(__file__))
flush_if_sources_changed(globals(), [os.path.join(_HERE, name) for name in ("numba_math.py", "numba_blas.py",
                                                                            "numba_kernels.py")])
