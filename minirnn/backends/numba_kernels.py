"""Numba mirrors of :mod:`minirnn.dynamics.rate`: the rate RNN's time loop, forward and backward.

``KERNELS`` replaces ``recur_forward`` / ``recur_backward`` with the same signatures and return
values (DESIGN.md §6, STYLE.md P6), adds ``rate_loss_and_grads`` (a whole training update of
``Basic`` in one pass, below) and ``gaussian_noise`` (the counter-based noise of
:mod:`minirnn.nn.noise`, compiled).

Each public function is a thin Python wrapper. It validates nothing the reference does not; it
sends what kernels cannot take (a perturbation, a user ``(f, df)`` pair, a dtype other than
float32/float64) to the vectorised reference, and otherwise flattens the leading network axes to
one axis ``K``, broadcasts ``x0``, ``alpha`` and ``noise_scale`` to explicit shapes, makes every
array C-contiguous and calls a kernel. Inside kernels the transfer function is its integer
``Activation.code`` (relu 0, tanh 1, sigmoid 2, softplus 3, linear 4).

``rate_forward`` / ``rate_backward`` (used by ``test``, the simulator and the unfused update) have
two structures, chosen by ``N`` (measured, see ``benchmarks/bench_kernels.py``):

- ``N <= WHOLE_LOOP_MAX_N``: one ``@njit`` kernel runs the whole time loop: one product per step
  (:func:`.numba_blas.gemm`, NumPy's BLAS on one thread) into a scratch buffer, then fused
  elementwise passes that form ``x_{k+1}`` and ``f(x_{k+1})`` for the next step. No per-step
  allocation and no Python per step, which is what costs at small ``N``.
- larger ``N``: a Python loop of NumPy matmuls (NumPy's BLAS) with the same fused elementwise pass
  as a small ``@njit`` step kernel.

The fused update splits the batch into chunks of trials run on threads (see "threads" below).
All give the reference's numbers up to the summation order inside matmuls: the elementwise work is
done in the reference's order and in the input's dtype, with one exception: ``tanh``, ``sigmoid`` and
``softplus`` are :mod:`.numba_math`'s branch-free versions (within 3-4 ulp, like NumPy's), because
Numba's libm calls do not vectorise (a tanh network's update took twice as long as a ReLU one's).
Kernels use NumPy's error model (``error_model="numpy"``): a float division is a float division,
without the per-element zero check that also stops a loop from vectorising.
"""
from __future__ import annotations

import math
import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from ..dynamics import rate
from ..nn import noise as nn_noise
from .numba_blas import PROVIDER, gemm, one_blas_thread
from .numba_math import _sigmoid, _softplus, _tanh, flush_if_sources_changed, njit


# Largest N_rec run by the whole-loop kernel (a one-thread product inside @njit); above it, NumPy matmul
# per step. Measured (benchmarks/bench_kernels.py, B=128, T=200, float32): the whole loop wins at N = 50
# (0.80x the matmul structure), ties at 128, and loses at 256-1024, where NumPy's matmul has two BLAS
# threads. 64 keeps the sure win only. Without a BLAS for compiled code every size takes the matmul one.
WHOLE_LOOP_MAX_N = 64 if PROVIDER.name != "none" else 0

_KERNEL_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))

RELU, TANH, SIGMOID, SOFTPLUS, LINEAR = 0, 1, 2, 3, 4


# ------------------------------------------------------------------ transfer functions by code
# One loop per activation (the branch outside the loop, so that each loop vectorises). ``one`` and
# ``zero`` carry the array's dtype: an int literal would promote float32 to float64.


@njit(cache=True, inline="always", error_model="numpy")
def _f_row(x, out, code, one, zero):
    """``out = f(x)`` for one row (1-D); each activation's loop on its own, so that it vectorises."""
    if code == RELU:
        for i in range(x.shape[0]):
            v = x[i]
            out[i] = zero if v < zero else v  # max(v, 0), NaN kept as np.maximum keeps it
    elif code == TANH:
        for i in range(x.shape[0]):
            out[i] = _tanh(x[i], one)
    elif code == SIGMOID:
        for i in range(x.shape[0]):
            out[i] = _sigmoid(x[i], one)
    elif code == SOFTPLUS:  # log(1 + e^x), as np.logaddexp(x, 0)
        for i in range(x.shape[0]):
            out[i] = _softplus(x[i], one)
    else:
        for i in range(x.shape[0]):
            out[i] = x[i]


@njit(cache=True, error_model="numpy")
def _apply_f(x, code, r_out):
    """``r_out = f(x)`` on (B, N) arrays."""
    one = r_out.dtype.type(1)
    for b in range(x.shape[0]):
        _f_row(x[b], r_out[b], code, one, one - one)


@njit(cache=True, error_model="numpy")
def _apply_df(x, code, out):
    """``out = f'(x)`` on (B, N) arrays."""
    one = out.dtype.type(1)
    zero = one - one
    B, N = x.shape
    if code == RELU:
        for b in range(B):
            for i in range(N):
                out[b, i] = one if x[b, i] > zero else zero
    elif code == TANH:
        for b in range(B):
            for i in range(N):
                t = _tanh(x[b, i], one)
                out[b, i] = one - t * t
    elif code == SIGMOID:
        for b in range(B):
            for i in range(N):
                s = _sigmoid(x[b, i], one)
                out[b, i] = s * (one - s)
    elif code == SOFTPLUS:
        for b in range(B):
            for i in range(N):
                out[b, i] = _sigmoid(x[b, i], one)
    else:
        out[:, :] = one


# ------------------------------------------------------------------ fused elementwise steps
# Shapes: (B, N) for states, (N,) for per-unit parameters.


@njit(cache=True, error_model="numpy")
def _forward_step(x_prev, acc, drive_k, noise_k, has_noise, alpha, decay, ns, code, x_out, r_out):
    """``x_{k+1} = (decay x_k + acc) + (alpha drive_k + ns xi_k)`` and ``r = f(x_{k+1})``."""
    B, N = x_out.shape
    if has_noise:
        for b in range(B):
            for i in range(N):
                inp = alpha[i] * drive_k[b, i] + ns[i] * noise_k[b, i]
                x_out[b, i] = (decay[i] * x_prev[b, i] + acc[b, i]) + inp
    else:
        for b in range(B):
            for i in range(N):
                x_out[b, i] = (decay[i] * x_prev[b, i] + acc[b, i]) + alpha[i] * drive_k[b, i]
    _apply_f(x_out, code, r_out)


@njit(cache=True, error_model="numpy")
def _backward_step(a, g, x_prev, decay, code, carry_out):
    """``carry = decay a + f'(x_k) (a @ W_alpha)`` with ``g = a @ W_alpha``."""
    _apply_df(x_prev, code, carry_out)
    B, N = a.shape
    for b in range(B):
        for i in range(N):
            carry_out[b, i] = decay[i] * a[b, i] + carry_out[b, i] * g[b, i]


@njit(cache=True, error_model="numpy")
def _adjoint(dX_k, carry, alpha, a_out, d_drive_k):
    """``a_{k+1} = dX_k + carry``; ``d_drive_k = alpha a_{k+1}``."""
    B, N = a_out.shape
    for b in range(B):
        for i in range(N):
            a = dX_k[b, i] + carry[b, i]
            a_out[b, i] = a
            d_drive_k[b, i] = alpha[i] * a


# ------------------------------------------------------------------ whole-loop kernels (small N)


@njit(cache=True, error_model="numpy")
def _forward_loop(W_alpha_T, drive, x0, alpha, decay, ns, noise, has_noise, code, X):
    """All K networks, all T steps. ``W_alpha_T: (K, N, N)`` is ``(alpha_i W_ij)^T`` (pre, post)."""
    K, T, B, N = drive.shape
    r = np.empty((B, N), drive.dtype)
    acc = np.empty((B, N), drive.dtype)
    for n in range(K):
        _apply_f(x0[n], code, r)
        for k in range(T):
            gemm(False, False, r, W_alpha_T[n], acc)
            x_prev = x0[n] if k == 0 else X[n, k - 1]
            _forward_step(x_prev, acc, drive[n, k], noise[n, k] if has_noise else drive[n, k],
                          has_noise, alpha[n], decay[n], ns[n], code, X[n, k], r)
    return X


@njit(cache=True, error_model="numpy")
def _backward_loop(W_alpha, X, x0, dX, alpha, decay, code, d_drive, d_x0):
    """All K networks, all T steps backwards. ``W_alpha: (K, N, N)`` is ``alpha_i W_ij``."""
    K, T, B, N = X.shape
    a = np.empty((B, N), X.dtype)
    g = np.empty((B, N), X.dtype)
    carry = d_x0  # (K, B, N): the carry of network n lives in d_x0[n]; it ends as dL/dx_0
    for n in range(K):
        carry[n, :, :] = 0
        for k in range(T - 1, -1, -1):
            _adjoint(dX[n, k], carry[n], alpha[n], a, d_drive[n, k])
            gemm(False, False, a, W_alpha[n], g)
            x_prev = x0[n] if k == 0 else X[n, k - 1]
            _backward_step(a, g, x_prev, decay[n], code, carry[n])
    return d_drive, d_x0


# ------------------------------------------------------------------ step kernels (large N)


@njit(cache=True, error_model="numpy")
def _forward_step_kernel(x_prev, acc, drive_k, noise_k, has_noise, alpha, decay, ns, code, x_out, r_out):
    _forward_step(x_prev, acc, drive_k, noise_k, has_noise, alpha, decay, ns, code, x_out, r_out)


@njit(cache=True, error_model="numpy")
def _f_kernel(x, code, r_out):
    _apply_f(x, code, r_out)


@njit(cache=True, error_model="numpy")
def _backward_step_kernel(a, g, x_prev, decay, code, carry_out, dX_prev, alpha, a_next, d_drive_prev, last):
    """One backward step fused with the next adjoint: carry, then ``a_k = dX_{k-1} + carry``."""
    _backward_step(a, g, x_prev, decay, code, carry_out)
    if not last:
        _adjoint(dX_prev, carry_out, alpha, a_next, d_drive_prev)


def _forward_matmul(W_alpha_T, drive, x0, alpha, decay, ns, noise, has_noise, code, X):
    K, T, B, N = drive.shape
    r = np.empty((B, N), drive.dtype)
    acc = np.empty((B, N), drive.dtype)
    for n in range(K):
        _f_kernel(x0[n], code, r)
        for k in range(T):
            np.matmul(r, W_alpha_T[n], out=acc)
            x_prev = x0[n] if k == 0 else X[n, k - 1]
            _forward_step_kernel(x_prev, acc, drive[n, k], noise[n, k] if has_noise else drive[n, k],
                                 has_noise, alpha[n], decay[n], ns[n], code, X[n, k], r)
    return X


def _backward_matmul(W_alpha, X, x0, dX, alpha, decay, code, d_drive, d_x0):
    K, T, B, N = X.shape
    a, a_next = np.empty((B, N), X.dtype), np.empty((B, N), X.dtype)
    g = np.empty((B, N), X.dtype)
    for n in range(K):
        # a_T = dX_{T-1} (no carry after the last step)
        a[...] = dX[n, T - 1]
        np.multiply(alpha[n], a, out=d_drive[n, T - 1])
        for k in range(T - 1, -1, -1):
            np.matmul(a, W_alpha[n], out=g)
            x_prev = x0[n] if k == 0 else X[n, k - 1]
            last = k == 0
            j = k - 1 if k else 0
            _backward_step_kernel(a, g, x_prev, decay[n], code, d_x0[n], dX[n, j], alpha[n], a_next,
                                  d_drive[n, j], last)
            a, a_next = a_next, a
    return d_drive, d_x0


# ------------------------------------------------------------------ dispatch


def _kernel_dtype(*arrays):
    dtype = np.result_type(*arrays)
    return dtype if dtype in _KERNEL_DTYPES else None


def _flat(a, lead, tail, dtype):
    """``a`` broadcast to ``(*lead, *tail)``, as a C-contiguous ``(K, *tail)`` array of ``dtype``."""
    shape = (*lead, *tail)
    if a.shape != shape:
        a = np.broadcast_to(a, shape)
    a = np.ascontiguousarray(a, dtype=dtype)
    if not a.flags.writeable:  # a read-only array would compile a second signature
        a = a.copy()
    return a.reshape(int(np.prod(lead, dtype=np.int64)), *tail)


def _common(W_rec_eff, x0, alpha, lead, B, N, dtype):
    """Flattened W_alpha ``(K, N, N)``, x0 ``(K, B, N)``, alpha and decay ``(K, N)``."""
    W = np.broadcast_to(W_rec_eff, (*lead, N, N)).astype(dtype, copy=False)
    al = np.broadcast_to(alpha, (*lead, 1, N)).astype(dtype, copy=False)
    W_alpha = rate.mT(al) * W  # alpha_i W_ij, as the reference forms it
    alpha_f = _flat(al, lead, (1, N), dtype)[:, 0]
    decay = (1 - alpha_f).astype(dtype, copy=False)
    return W_alpha, _flat(x0, lead, (B, N), dtype), alpha_f, decay


def rate_forward(W_rec_eff, drive, x0, alpha, noise_scale=None, noise=None, act=None, perturb=None):
    """:func:`minirnn.dynamics.rate.recur_forward`, with the time loop compiled (same arguments)."""
    has_noise = noise is not None
    parts = (W_rec_eff, drive, x0, alpha) + ((noise_scale, noise) if has_noise else ())
    dtype = _kernel_dtype(*parts) if all(isinstance(p, np.ndarray) for p in parts) else None
    if perturb is not None or act is None or act.code is None or dtype is None:
        return rate.recur_forward(W_rec_eff, drive, x0, alpha, noise_scale, noise, act, perturb)
    *lead, T, B, N = drive.shape
    lead = tuple(lead)
    W_alpha, x0_f, alpha_f, decay = _common(W_rec_eff, x0, alpha, lead, B, N, dtype)
    W_alpha_T = np.ascontiguousarray(rate.mT(W_alpha)).reshape(len(x0_f), N, N)
    drive_f = _flat(drive, lead, (T, B, N), dtype)
    if has_noise:
        ns = _flat(noise_scale, lead, (1, N), dtype)[:, 0]
        noise_f = _flat(noise, lead, (T, B, N), dtype)
    else:
        ns, noise_f = alpha_f, drive_f  # not read
    X = np.empty(drive_f.shape, dtype)
    if T > 0 and B > 0 and N > 0:
        if N <= WHOLE_LOOP_MAX_N:
            with one_blas_thread():
                _forward_loop(W_alpha_T, drive_f, x0_f, alpha_f, decay, ns, noise_f, has_noise, act.code, X)
        else:
            _forward_matmul(W_alpha_T, drive_f, x0_f, alpha_f, decay, ns, noise_f, has_noise, act.code, X)
    return X.reshape(*lead, T, B, N)


def rate_backward(W_rec_eff, X, x0, dX, alpha, act):
    """:func:`minirnn.dynamics.rate.recur_backward`, with the time loop compiled (same arguments)."""
    parts = (W_rec_eff, X, x0, dX, alpha)
    dtype = _kernel_dtype(*parts) if all(isinstance(p, np.ndarray) for p in parts) else None
    if act is None or act.code is None or dtype is None:
        return rate.recur_backward(W_rec_eff, X, x0, dX, alpha, act)
    *lead, T, B, N = X.shape
    lead = tuple(lead)
    W_alpha, x0_f, alpha_f, decay = _common(W_rec_eff, x0, alpha, lead, B, N, dtype)
    W_alpha = np.ascontiguousarray(W_alpha).reshape(len(x0_f), N, N)
    X_f = _flat(X, lead, (T, B, N), dtype)
    dX_f = _flat(dX, lead, (T, B, N), dtype)
    d_drive = np.empty(X_f.shape, dtype)
    d_x0 = np.zeros(x0_f.shape, dtype)
    if T > 0 and B > 0 and N > 0:
        if N <= WHOLE_LOOP_MAX_N:
            with one_blas_thread():
                _backward_loop(W_alpha, X_f, x0_f, dX_f, alpha_f, decay, act.code, d_drive, d_x0)
        else:
            _backward_matmul(W_alpha, X_f, x0_f, dX_f, alpha_f, decay, act.code, d_drive, d_x0)
    return d_drive.reshape(*lead, T, B, N), d_x0.reshape(*lead, B, N)


# ------------------------------------------------------------------ recurrent noise
# minirnn.nn.noise's counter-based normals, one element at a time, so that a kernel makes each step's
# noise where it uses it: element j = ziggurat(mix64(key + (j + 1) GAMMA)). The first try (98.8 %) is
# integer work and one float64 product, equal to the NumPy reference bit for bit; the retries below
# follow the reference's rounds exactly (only exp/log1p may differ in the last bit between libraries).

_GAMMA, _MIX1, _MIX2 = nn_noise.GAMMA, nn_noise.MIX1, nn_noise.MIX2
_SIGNED_WI, _SIGNED_KI, _ZIG_FI, _ZIG_R = nn_noise.SIGNED_WI, nn_noise.SIGNED_KI, nn_noise.ZIG_FI, nn_noise.ZIG_R
_STRIDE = np.uint64(2 * nn_noise.MAX_RETRIES + 2)  # words per element in the retry and tail streams
_MAX_RETRIES = nn_noise.MAX_RETRIES
_TWO_M53 = 2.0 ** -53


@njit(cache=True, inline="always", error_model="numpy")
def _word(key, counter):
    """Word ``counter`` of the stream ``key``: SplitMix64's ``mix64(key + (counter + 1) GAMMA)``."""
    z = key + (counter + np.uint64(1)) * _GAMMA
    z = (z ^ (z >> np.uint64(30))) * _MIX1
    z = (z ^ (z >> np.uint64(27))) * _MIX2
    return z ^ (z >> np.uint64(31))


@njit(cache=True, inline="always", error_model="numpy")
def _candidate(word):
    """``(layer, signed x, accepted outright)`` of one word: as ``minirnn.nn.noise._candidate``."""
    i9 = np.intp(word & np.uint64(0x1FF))
    rabs = word >> np.uint64(12)
    return i9 & 255, np.float64(rabs) * _SIGNED_WI[i9], rabs < _SIGNED_KI[i9]


@njit(cache=True, inline="always", error_model="numpy")
def _uniform(word):
    return np.float64(word >> np.uint64(11)) * _TWO_M53


@njit(cache=True, error_model="numpy")
def _normal_tail(key3, j, x):
    """Marsaglia's tail ``|xi| > r`` (pairs of the tail stream), with the sign of ``x``."""
    base = j * _STRIDE
    t = _ZIG_R
    for m in range(_MAX_RETRIES):
        xx = -np.log1p(-_uniform(_word(key3, base + np.uint64(2 * m)))) / _ZIG_R
        yy = -np.log1p(-_uniform(_word(key3, base + np.uint64(2 * m + 1))))
        t = _ZIG_R + xx
        if yy + yy > xx * xx:
            break
    return math.copysign(t, x)


@njit(cache=True, error_model="numpy")
def _normal_retry(key2, key3, j, layer, x):
    """The rejected first try of element ``j`` (``layer``, signed candidate ``x``): the reference's rounds."""
    base = j * _STRIDE
    for a in range(_MAX_RETRIES):
        if a > 0:  # a new candidate from word 2a of the retry stream
            layer, x, accepted = _candidate(_word(key2, base + np.uint64(2 * a)))
            if accepted:
                return x
        if layer == 0:
            return _normal_tail(key3, j, x)
        u = _uniform(_word(key2, base + np.uint64(2 * a + 1)))
        y = (_ZIG_FI[layer - 1] - _ZIG_FI[layer]) * u + _ZIG_FI[layer]
        if y < np.exp(-0.5 * x * x):
            return x
    return x


@njit(cache=True, inline="always", error_model="numpy")
def _normal(key, key2, key3, j):
    """Element ``j`` (uint64) of ``nn_noise.gaussian_noise(key)``, as float64."""
    layer, x, accepted = _candidate(_word(key, j))
    if accepted:
        return x
    return _normal_retry(key2, key3, j, layer, x)


@njit(cache=True, nogil=True, error_model="numpy")
def _fill_noise(keys, start, out):
    """``out[i] = element start + i`` of the noise of ``keys = (key, key2, key3)``, rounded to out's dtype."""
    key, key2, key3 = keys[0], keys[1], keys[2]
    for i in range(out.shape[0]):
        out[i] = _normal(key, key2, key3, np.uint64(start + i))


def gaussian_noise(key, shape, dtype=np.float64):
    """:func:`minirnn.nn.noise.gaussian_noise` (NumPy arrays), compiled and split over the kernel threads."""
    dtype = np.dtype(dtype)
    shape = (shape,) if np.ndim(shape) == 0 else tuple(shape)
    n = int(np.prod(shape, dtype=np.int64))
    if dtype not in _KERNEL_DTYPES:
        return nn_noise.gaussian_noise(key, shape, dtype)
    out = np.empty(n, dtype)
    keys = np.array(nn_noise.stream_keys(key), np.uint64)
    bounds = _even_split(n, max(1, min(n // 65536, num_threads())))
    parallel_map(lambda c: _fill_noise(keys, bounds[c], out[bounds[c]:bounds[c + 1]]), len(bounds) - 1)
    return out.reshape(shape)


# ------------------------------------------------------------------ threads
# The fused update splits the batch into fixed chunks of about CHUNK_TRIALS trials (a function of B
# only, so results do not depend on the machine) and runs them on Python threads (the kernels release
# the GIL), each calling single-threaded BLAS. Measured here: up to N_rec 256 two one-thread products
# side by side beat one two-thread product (at 1024 they are 8 % behind), and a busy core slows the
# update down instead of stalling OpenBLAS's spinning threads.

CHUNK_TRIALS = 64
GRAD_STEPS = 8  # steps per [dW_rec | dW_in | db_rec] matmul (1-200 measured: no difference beyond noise)
# ... but at least GRAD_ROWS rows (steps x trials) per matmul: a chunk of a few trials otherwise makes a thin
# product per 8 steps that re-reads the whole (N + I + 1, N) sum (thread CPU time at N_rec 2048, B 1, T 100:
# 350 ms with 8 steps, 227-245 with 32-256; N_rec 1024, B 8: 361 against 244 with 16). Chunks of 16 trials or
# more (every chunk of a batch of 96 or more) keep GRAD_STEPS.
GRAD_ROWS = 128
_threads = None
_pool = None


def _forget_pool_after_fork():
    # A forked child has none of the parent's threads: a pool inherited from it would never run anything.
    global _pool
    _pool = None


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_pool_after_fork)


def num_threads() -> int:
    """Threads the kernels use: ``set_num_threads``, else ``MINIRNN_NUM_THREADS``, else the usable cores."""
    if _threads is not None:
        return _threads
    env = os.environ.get("MINIRNN_NUM_THREADS", "").strip()
    if env:
        if not env.isdigit() or int(env) < 1:
            from ..errors import ParameterError

            raise ParameterError(f"MINIRNN_NUM_THREADS must be a positive integer, got {env!r}")
        return int(env)
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def set_num_threads(n):
    """Use ``n`` threads in the kernels (``None``: back to the default); returns the previous setting.
    Results do not depend on it."""
    global _threads
    whole = isinstance(n, (int, float, np.integer, np.floating)) and not isinstance(n, (bool, np.bool_))
    if n is not None and not (whole and np.isfinite(n) and n == int(n) and n >= 1):
        from ..errors import ParameterError

        raise ParameterError(f"set_num_threads needs a positive integer or None, got {n!r}")
    previous, _threads = _threads, None if n is None else int(n)
    return previous


def _even_split(n, parts):
    """``parts + 1`` boundaries splitting ``range(n)`` into nearly equal pieces."""
    return [round(c * n / parts) for c in range(parts + 1)]


def batch_chunks(B):
    """Boundaries of the fused update's trial chunks: ``round(B / CHUNK_TRIALS)`` (at least 1) pieces."""
    return _even_split(B, max(1, round(B / CHUNK_TRIALS)))


def parallel_map(fn, n):
    """``fn(0) ... fn(n - 1)`` on up to ``num_threads()`` threads (one BLAS thread each); waits."""
    global _pool
    threads = min(n, num_threads())
    with one_blas_thread():
        if threads <= 1:
            for c in range(n):
                fn(c)
            return
        if _pool is None or _pool._max_workers < threads - 1:
            _pool = ThreadPoolExecutor(max_workers=threads - 1, thread_name_prefix="minirnn")
        # pieces 1, 1 + threads, ... go to the pool's threads; this thread takes 0, threads, ...
        theirs = [_pool.submit(lambda t=t: [fn(c) for c in range(t, n, threads)]) for t in range(1, threads)]
        for c in range(0, n, threads):
            fn(c)
        for f in theirs:
            f.result()


# ------------------------------------------------------------------ one fused training update
# ``rate_loss_and_grads``: what ``Basic._loss_and_grads`` computes for the built-in MSE loss (and
# the L2 firing-rate penalty), in one kernel per chunk of trials, so that no whole-array code passes
# over (T, B, N) arrays. Each step's input goes into the recurrent matmul: ``A[k] = [f(x_k) | u_k | 1]``
# (B, N + I + 1) times ``[W_alpha^T; (alpha W_in)^T; alpha b_rec]`` gives ``f(x_k) W_alpha^T + alpha
# drive_k`` in one product, and in the backward ``d_drive^T A`` gives ``[dW_rec | dW_in | db_rec]``, one
# product per chunk of 8 steps while those rows are still in cache, added by BLAS into one sum in the
# model's dtype (as the reference's one matmul over all steps sums; one product over all steps after the
# loop was slower: the (T, B, N) buffer it needs pushed the working set out of the 512 KB L2). The
# readout after the forward loop: ``z_k = [r_{k+1} | u_k | 1] [W_out | 0 | b_out]^T`` for every step in
# one product, and ``[dW_out | . | db_out]`` in another. The noise is made where it is used
# (``noise_mode`` 2) or read from an array (1). f'(x) is recomputed from the rates by the reference's
# formulas (stored for softplus, whose f' is not a function of f). Sums over chunks and networks' losses
# are float64. Only summation order differs from the reference (inside matmuls, the readout dot, and where
# alpha is applied to the drive).


@njit(cache=True, inline="always", error_model="numpy")
def _df1(r, d, code, one, zero):
    """``f'(x)`` from ``r = f(x)`` by the reference's formulas; softplus: the stored ``d = f'(x)``."""
    if code == RELU:  # r > 0 exactly where x > 0
        return one if r > zero else zero
    elif code == TANH:  # 1 - tanh(x)^2
        return one - r * r
    elif code == SIGMOID:  # s (1 - s)
        return r * (one - r)
    elif code == SOFTPLUS:
        return d
    return one


@njit(cache=True, error_model="numpy")
def _add_into(acc, t):
    """``acc += t`` for 2-D arrays (``acc`` float64), without a temporary."""
    for i in range(acc.shape[0]):
        for j in range(acc.shape[1]):
            acc[i, j] += t[i, j]


@njit(cache=True, nogil=True, error_model="numpy")
def _loss_and_grads_chunk(W_aug_T, W_alpha, W_out_aug, W_out, x0, alpha, decay, ns, noise_arr, noise_mode, keys,
                          u, y, mask, fr, has_fr, c2n, code, b0, b1, grad_steps, loss, r2, g_augT, g_out, d_x0):
    """Trials ``b0:b1`` of all K networks: forward, MSE, backward. ``u (Ku, B, T, I)``, ``y, mask (K?, B, T, O)``
    batch-major (leading axis 1 when shared); ``noise_arr (K, T, B, N)`` (mode 1) or ``keys (K, 3)`` (mode 2).
    Writes this chunk's ``loss, r2 (K,)``, ``g_augT (K, N+I+1, N)``: ``[dW_rec | dW_in | db_rec]^T`` and ``g_out
    (K, O, N+I+1)``: ``[dW_out | . | db_out]`` (float64, of the effective weights), and ``d_x0[:, b0:b1]``."""
    K, B_all, N = x0.shape
    B = b1 - b0
    T, I, O = u.shape[2], u.shape[3], y.shape[3]
    M = N + I + 1
    dt = x0.dtype
    one = dt.type(1)
    zero = one - one
    sp = code == SOFTPLUS
    A = np.empty((T + 1, B, M), dt)  # A[k] = [f(x_k) | u_k | 1]
    D = np.ones((T + 1 if sp else 1, B, N), dt)  # softplus: D[k] = f'(x_k)
    dZ = np.zeros((T + 1, B, O), dt)  # dZ[k + 1] = dL/dz_k
    dZ2 = dZ.reshape((T + 1) * B, O)
    Z = np.empty((T * B, O), dt)  # z_k of every step, rows k * B + b
    CH = grad_steps  # steps per matmul forming [dW_rec | dW_in | db_rec], while their rows are still in cache
    DD = np.empty((CH, B, N), dt)  # d_drive_k = alpha a_{k+1} for the steps of a chunk
    x = np.empty((B, N), dt)
    acc = np.empty((B, N), dt)
    carry = np.empty((B, N), dt)
    A2 = A.reshape((T + 1) * B, M)
    DD2 = DD.reshape(CH * B, N)
    tMN = np.empty((M, N), dt)
    tOM = np.empty((O, M), dt)
    for n in range(K):
        nu, ny, nm = min(n, u.shape[0] - 1), min(n, y.shape[0] - 1), min(n, mask.shape[0] - 1)
        key, key2, key3 = keys[n, 0], keys[n, 1], keys[n, 2]
        for k in range(T + 1):
            for b in range(B):
                for j in range(I):
                    A[k, b, N + j] = u[nu, b0 + b, k, j] if k < T else zero
                A[k, b, N + I] = one
        for b in range(B):
            for i in range(N):
                x[b, i] = x0[n, b0 + b, i]
                if sp:
                    D[0, b, i] = _sigmoid(x[b, i], one)
            _f_row(x[b], A[0, b, :N], code, one, zero)  # r_0 = f(x_0)
        # ---- forward, readout, loss
        loss_n, r2_n = 0.0, 0.0
        for k in range(T):
            # x_{k+1} = decay x_k + f(x_k) W_alpha^T + alpha (u_k W_in^T + b_rec) + ns xi_k
            gemm(False, False, A[k], W_aug_T[n], acc)
            if noise_mode == 2:
                for b in range(B):
                    j0 = (k * B_all + b0 + b) * N  # xi_k[b, i] is element (k, b, i) of the (T, B, N) block
                    for i in range(N):
                        xi = dt.type(_normal(key, key2, key3, np.uint64(j0 + i)))
                        x[b, i] = (decay[n, i] * x[b, i] + acc[b, i]) + ns[n, i] * xi
            elif noise_mode == 1:
                for b in range(B):
                    for i in range(N):
                        x[b, i] = (decay[n, i] * x[b, i] + acc[b, i]) + ns[n, i] * noise_arr[n, k, b0 + b, i]
            else:
                for b in range(B):
                    for i in range(N):
                        x[b, i] = decay[n, i] * x[b, i] + acc[b, i]
            for b in range(B):  # r_{k+1} = f(x_{k+1}), into rows of A that are contiguous (so it vectorises)
                _f_row(x[b], A[k + 1, b, :N], code, one, zero)
            if sp:
                for b in range(B):
                    for i in range(N):
                        D[k + 1, b, i] = _sigmoid(x[b, i], one)
            if has_fr:
                for b in range(B):
                    for i in range(N):
                        r2_n += A[k + 1, b, i] * A[k + 1, b, i]
        # readout of every step in one product: z_k = [r_{k+1} | u | 1] [W_out^T; 0; b_out]
        gemm(False, True, A2[B:], W_out_aug[n], Z)
        # e = mask (z - y); dL/dz = (2/n) mask e
        for k in range(T):
            for b in range(B):
                for o in range(O):
                    m = mask[nm, b0 + b, k, o]
                    e = m * (Z[k * B + b, o] - y[ny, b0 + b, k, o])
                    loss_n += e * e
                    dZ[k + 1, b, o] = (c2n * m) * e
        loss[n], r2[n] = loss_n, r2_n
        # [dW_out | . | db_out] = sum_k dz_k^T [r_{k+1} | u | 1], one product
        gemm(True, False, dZ2[B:], A2[B:], tOM)
        _add_into(g_out[n], tOM)
        # ---- backward through time: carry = dL/dx_{k+1} through later steps, then a_{k+1}, then dL/dx_k
        carry[:, :] = 0
        tMN[:, :] = 0  # [dW_rec | dW_in | db_rec]^T of this network and chunk, summed by BLAS (as one matmul would)
        for k in range(T - 1, -1, -1):
            kd = k if sp else 0  # D[kd]: f'(x_k) for softplus (not read otherwise)
            k0 = k - k % CH  # first step of this chunk of steps
            dd = DD[k - k0]
            # dX_k = (dz_k W_out + fr r_{k+1}) f'(x_{k+1});  a_{k+1} = dX_k + carry;  d_drive_k = alpha a_{k+1}
            gemm(False, False, dZ[k + 1], W_out[n], acc)
            for b in range(B):
                for i in range(N):
                    r = A[k + 1, b, i]
                    d = acc[b, i] + fr[n] * r if has_fr else acc[b, i]
                    a = d * _df1(r, D[kd + 1 if sp else 0, b, i], code, one, zero) + carry[b, i]
                    carry[b, i] = a
                    dd[b, i] = alpha[n, i] * a
            # dL/dx_k = decay a_{k+1} + f'(x_k) (a_{k+1} @ W_alpha)
            gemm(False, False, carry, W_alpha[n], acc)
            for b in range(B):
                for i in range(N):
                    fp = _df1(A[k, b, i], D[kd, b, i], code, one, zero)
                    carry[b, i] = decay[n, i] * carry[b, i] + fp * acc[b, i]
            # [dW_rec | dW_in | db_rec] += d_drive_k^T [f(x_k) | u_k | 1], one matmul per chunk of steps
            if k == k0:  # (formed transposed, [f(x) | u | 1]^T d_drive: measured 25 % faster in this orientation)
                rows = (min(k0 + CH, T) - k0) * B
                gemm(True, False, A2[k0 * B:k0 * B + rows], DD2[:rows], tMN, True)
        _add_into(g_augT[n], tMN)
        for b in range(B):
            for i in range(N):
                d_x0[n, b0 + b, i] = carry[b, i]


def rate_loss_and_grads(W_eff, x, y, mask, alpha, noise_scale, noise, act, fr_coef=None, noise_keys=None):
    """``Basic``'s objective (mean squared error, plus ``fr_coef * mean(f(X)^2)`` when given) and its
    gradients w.r.t. the effective weights, in one kernel.

    ``W_eff``: effective ``W_in, W_rec, W_out, b_rec, b_out, init_state`` (with leading axes);
    ``x (*lead?, B, T, N_in)``, ``y, mask (*lead?, B, T, N_out)`` batch-major as the user gives them;
    ``alpha``, ``noise_scale``, ``noise``, ``act``: as :func:`rate_forward`; ``fr_coef``: shape lead;
    ``noise_keys``: instead of ``noise``, one uint64 key per network (shape lead) whose
    :func:`minirnn.nn.noise.gaussian_noise` the kernel makes step by step.
    Returns ``(value (lead), {name: dL/d(effective name)})``; weight penalties are the caller's.
    """
    W_rec = W_eff["W_rec"]
    dtype = np.dtype(W_rec.dtype)
    lead = tuple(W_rec.shape[:-2])
    B, T, I = x.shape[-3:]
    N, O = W_rec.shape[-1], W_eff["W_out"].shape[-2]
    K = int(np.prod(lead, dtype=np.int64))
    W_alpha, x0_f, alpha_f, decay = _common(W_rec, W_eff["init_state"], alpha, lead, B, N, dtype)
    al = alpha_f.reshape(*lead, N, 1)
    # [W_alpha^T; (alpha W_in)^T; alpha b_rec]: (N + I + 1, N);  [W_out^T; 0; b_out]: (N + I + 1, O)
    W_aug_T = np.ascontiguousarray(np.concatenate(
        [rate.mT(W_alpha), rate.mT(al * W_eff["W_in"]), rate.mT(al * W_eff["b_rec"][..., None])], axis=-2),
        dtype=dtype).reshape(K, N + I + 1, N)
    W_out_aug = np.zeros((*lead, O, N + I + 1), dtype)
    W_out_aug[..., :N] = W_eff["W_out"]
    W_out_aug[..., N + I] = W_eff["b_out"]
    W_out_aug = W_out_aug.reshape(K, O, N + I + 1)
    W_alpha = np.ascontiguousarray(W_alpha).reshape(K, N, N)
    W_out = _flat(W_eff["W_out"], lead, (O, N), dtype)
    noise_mode = 2 if noise_keys is not None else int(noise is not None)
    keys = np.zeros((K, 3), np.uint64)
    noise_f = np.empty((1, 1, 1, 1), dtype)  # not read unless noise_mode 1
    ns = alpha_f  # not read without noise
    if noise_mode:
        ns = _flat(noise_scale, lead, (1, N), dtype)[:, 0]
    if noise_mode == 2:
        keys[:] = [nn_noise.stream_keys(k) for k in np.broadcast_to(np.asarray(noise_keys, np.uint64), lead).ravel()]
    elif noise_mode == 1:
        noise_f = _flat(noise, lead, (T, B, N), dtype)
    batch = lambda a, tail: np.ascontiguousarray(a, dtype=dtype).reshape(-1, B, T, tail)  # noqa: E731
    u_f, y_f, m_f = batch(x, I), batch(y, O), batch(mask, O)
    has_fr = fr_coef is not None
    n_rates = T * B * N
    # the reference's dL/dr = (2 c / n) r, in the model's dtype
    fr = _flat(2 * fr_coef / n_rates, lead, (), dtype) if has_fr else np.zeros(K, dtype)
    c2n = dtype.type(2 / (T * B * O))
    bounds = batch_chunks(B)
    C = len(bounds) - 1
    # The chunks run in waves of S (one per thread), each into a float64 slot; the slots are added into
    # one float64 total in chunk order, which is the sum over all chunks at once, bit for bit, whatever
    # S is. So memory stays (S + 1) K (N + I + 1) N float64 however large the batch.
    S = min(C, num_threads())
    loss, r2 = np.zeros((C, K)), np.zeros((C, K))
    g_augT, g_out = np.zeros((S, K, N + I + 1, N)), np.zeros((S, K, O, N + I + 1))
    sum_augT, sum_out = np.zeros((K, N + I + 1, N)), np.zeros((K, O, N + I + 1))
    d_x0 = np.zeros((K, B, N), dtype)

    def run(c, s):
        _loss_and_grads_chunk(W_aug_T, W_alpha, W_out_aug, W_out, x0_f, alpha_f, decay, ns, noise_f, noise_mode,
                              keys, u_f, y_f, m_f, fr, has_fr, c2n, act.code, bounds[c], bounds[c + 1],
                              max(GRAD_STEPS, -(-GRAD_ROWS // (bounds[c + 1] - bounds[c]))),
                              loss[c], r2[c], g_augT[s], g_out[s], d_x0)

    for first in range(0, C, S) if T > 0 and B > 0 else ():
        wave = min(S, C - first)
        if first:
            g_augT[:wave], g_out[:wave] = 0, 0
        parallel_map(lambda s: run(first + s, s), wave)
        for s in range(wave):  # chunk first + s, in chunk order
            sum_augT += g_augT[s]
            sum_out += g_out[s]
    loss, r2, g_out = loss.sum(0), r2.sum(0), sum_out
    g_aug = rate.mT(sum_augT)  # (K, N, N + I + 1)
    value = (loss / (T * B * O)).astype(dtype).reshape(lead)
    if has_fr:
        value = value + fr_coef * (r2 / n_rates).astype(dtype).reshape(lead)
    g_aug = g_aug.astype(dtype).reshape(*lead, N, N + I + 1)
    g_out = g_out.astype(dtype).reshape(*lead, O, N + I + 1)
    grads = {"W_rec": g_aug[..., :N], "W_in": g_aug[..., N:N + I], "b_rec": g_aug[..., N + I],
             "W_out": g_out[..., :N], "b_out": g_out[..., N + I],
             "init_state": d_x0.sum(axis=-2, keepdims=True).reshape(*lead, 1, N)}
    return value, {name: np.ascontiguousarray(g) for name, g in grads.items()}


KERNELS = {"rate_forward": rate_forward, "rate_backward": rate_backward, "gaussian_noise": gaussian_noise}
if PROVIDER.name != "none":  # the fused update's products need a BLAS reachable from compiled code
    KERNELS["rate_loss_and_grads"] = rate_loss_and_grads

# Numba re-validates a cached kernel against this file only; the helpers it inlines and the noise
# constants it captured live in these files too.
_HERE = os.path.dirname(os.path.abspath(__file__))
flush_if_sources_changed(globals(), [os.path.join(_HERE, name) for name in ("numba_math.py", "numba_blas.py")]
                         + [os.path.abspath(nn_noise.__file__)])
