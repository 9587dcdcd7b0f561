"""CUDA kernels for the CuPy backend: the rate RNN's time loops and the recurrent noise on the device.

The array code of :mod:`minirnn.dynamics.rate` runs on CuPy as it is, but one step of it is five
or six kernel launches (``decay * x``, ``f(x)``, the product, two sums, the store), so 200 steps
forward and back cost ~2400 launches: at the sizes of a lab's networks the GPU waits on Python.
This module replaces the two sequential loops, and nothing else, with the same math in fewer
launches, picked by :func:`choose_strategy` from the sizes (or forced by ``STRATEGY``):

``"loop"``: one kernel runs the whole time loop. Trials are independent, so a thread block owns a
    few trials (``TPB``) for all ``T`` steps; a thread owns a unit ``i`` and keeps ``x_i`` of its
    trials in registers, the block shares the rates ``f(x)`` in shared memory, and each step is
    ``N`` multiply-adds per thread and two barriers. Two launches per update in all. Best while
    ``W_rec`` is small enough to be read from cache once per step and block (N_rec up to a few hundred).
``"step"``: one cuBLAS product per step and one fused element-wise RawKernel (``x_{k+1}``, its
    store and ``f(x_{k+1})`` in one pass), called through thin bindings so that Python spends a
    few microseconds per step, not the ~20 of ``cupy.matmul`` and ``ElementwiseKernel``. Best when
    the per-step product is large (N_rec ~1000, or big batches). ``"step-cupy"`` is the same loop
    written with those CuPy calls, kept as the plain version (and for comparison). In a training
    update (:mod:`.cupy_update`) the "step" loops are replayed as CUDA graphs (:mod:`.cuda_graphs`):
    :func:`forward_launches` and :func:`backward_launches` give each loop as a list of launches over
    fixed buffers, which a graph can record once.

All give the reference's numbers up to the order of the sums in the products (tested against
the NumPy backend in ``tests/test_gpu.py``). The weight gradients stay whole-array products in
:mod:`minirnn.models.basic`, where cuBLAS is already at its best. The Adam update on CuPy arrays
is one fused kernel too (:func:`adam_update`, called by :class:`minirnn.nn.optimizers.Adam`).

``gaussian_noise`` computes :func:`minirnn.nn.noise.gaussian_noise` with one thread per element
(the same SplitMix64 words, ziggurat tables, retry and tail streams), in one launch.
"""
from __future__ import annotations

import math
from functools import lru_cache

import numpy as np

from ..dynamics import rate
from ..nn import noise as nn_noise

STRATEGY = None  # None: choose_strategy decides; "loop", "step" or "step-cupy" forces one (benchmarks, tests)
LOOP_MAX_N = 256  # "loop" up to this N_rec ... (choose_strategy; measured on an H200 with benchmarks/bench_gpu.py)
LOOP_MAX_TRIALS = 256  # ... and this many trials (batch x networks), or any size for N_rec <= 64
MAX_SHARED = 48 * 1024  # bytes of shared memory a block may use without opting in
MAX_TRIALS_PER_BLOCK = 8


def _real(dtype) -> str:
    return {np.dtype(np.float32): "float", np.dtype(np.float64): "double"}[np.dtype(dtype)]


# f(x) and f'(x) of each built-in activation (Activation.code), as in minirnn.nn.activations.
_ACTIVATIONS = r"""
template <typename Real> __device__ __forceinline__ Real act_f(Real x) {
#if ACT == 0
    return x < Real(0) ? Real(0) : x;                           // relu (NaN kept, as np.maximum)
#elif ACT == 1
    return tanh(x);                                             // tanh
#elif ACT == 2
    return Real(1) / (Real(1) + exp(-x));                       // sigmoid
#elif ACT == 3
    return (x > Real(0) ? x : Real(0)) + log1p(exp(-fabs(x)));  // softplus = logaddexp(x, 0)
#else
    return x;                                                   // linear
#endif
}
template <typename Real> __device__ __forceinline__ Real act_df(Real x) {
#if ACT == 0
    return x > Real(0) ? Real(1) : Real(0);                     // relu' = 1[x > 0]
#elif ACT == 1
    const Real t = tanh(x); return Real(1) - t * t;             // tanh' = 1 - tanh^2
#elif ACT == 2
    const Real s = Real(1) / (Real(1) + exp(-x)); return s * (Real(1) - s);  // sigmoid' = s (1 - s)
#elif ACT == 3
    return Real(1) / (Real(1) + exp(-x));                       // softplus' = sigmoid
#else
    return Real(1);                                             // linear' = 1
#endif
}
"""

_LOOP_KERNELS = r"""
// Indices: network n (blockIdx.y), trial b = b0 + t with t < TPB, unit i = threadIdx.x + u * blockDim.x with u < UPT.
// Arrays (*lead flattened to K): drive, xi, X, R, dIn, D: (K, T, B, N); x0: (K, B0, N), B0 = 1 or B; W: (K, N, N);
// alpha, decay, bias, ns: (K, N); keys: (K, 3); fr: (K).
#define IDX(k, b, i) ((((size_t)n * T + (k)) * B + (b)) * N + (i))

extern "C" __global__ void rate_forward_loop(
        const real* __restrict__ WaT, const real* __restrict__ drive, const real* __restrict__ bias,
        const real* __restrict__ alpha, const real* __restrict__ ns, const real* __restrict__ xi,
        const unsigned long long* __restrict__ keys, const double* __restrict__ wi,
        const unsigned long long* __restrict__ ki, const double* __restrict__ fi, const real* __restrict__ x0,
        const real* __restrict__ decay, real* __restrict__ X, real* __restrict__ R,
        const int N, const int T, const int B, const int B0) {
    extern __shared__ __align__(16) unsigned char smem[];
    real* r = reinterpret_cast<real*>(smem);  // (TPB, N): f(x_k) of this block's trials
    const int n = blockIdx.y, b0 = blockIdx.x * TPB;
    const real* W = WaT + (size_t)n * N * N;  // W[j * N + i] = alpha_i W_rec[i, j]
    real x[UPT][TPB], dec[UPT], al[UPT], bi[UPT], sc[UPT];
#pragma unroll
    for (int u = 0; u < UPT; ++u) {
        const int i = threadIdx.x + u * blockDim.x;
        const size_t p = (size_t)n * N + i;
        dec[u] = i < N ? decay[p] : real(0);
        al[u] = i < N ? alpha[p] : real(0);
        bi[u] = i < N ? bias[p] : real(0);
        sc[u] = i < N ? ns[p] : real(0);
#pragma unroll
        for (int t = 0; t < TPB; ++t) {
            const int b = b0 + t;
            x[u][t] = (i < N && b < B) ? x0[((size_t)n * B0 + (B0 == 1 ? 0 : b)) * N + i] : real(0);
            if (i < N) r[t * N + i] = b < B ? act_f(x[u][t]) : real(0);
        }
    }
    __syncthreads();
    for (int k = 0; k < T; ++k) {
#pragma unroll
        for (int u = 0; u < UPT; ++u) {
            const int i = threadIdx.x + u * blockDim.x;
            if (i < N) {
                real acc[TPB];
#pragma unroll
                for (int t = 0; t < TPB; ++t) acc[t] = real(0);
                for (int j = 0; j < N; ++j) {  // (f(x_k) @ W_alpha^T)_i
                    const real w = W[(size_t)j * N + i];
#pragma unroll
                    for (int t = 0; t < TPB; ++t) acc[t] += w * r[t * N + j];
                }
#pragma unroll
                for (int t = 0; t < TPB; ++t) {
                    const int b = b0 + t;
                    if (b < B) {
                        const size_t e = IDX(k, b, i);
                        // x_{k+1} = (1 - alpha) x_k + f(x_k) @ W_alpha^T + (alpha (drive_k + b_rec) + noise_scale xi_k)
                        const real xn = dec[u] * x[u][t] + acc[t]
                                        + step_input(drive, bi[u], al[u], sc[u], xi, keys, wi, ki, fi, n, e,
                                                     e - (size_t)n * T * B * N);
                        x[u][t] = xn;
                        X[e] = xn;
                    }
                }
            }
        }
        __syncthreads();  // every thread has read f(x_k) before anyone overwrites it
#pragma unroll
        for (int u = 0; u < UPT; ++u) {
            const int i = threadIdx.x + u * blockDim.x;
#pragma unroll
            for (int t = 0; t < TPB; ++t)
                if (i < N && b0 + t < B) {
                    const real rv = act_f(x[u][t]);  // r_{k+1} = f(x_{k+1})
                    r[t * N + i] = rv;
#if WRITE_R
                    R[IDX(k, b0 + t, i)] = rv;
#endif
                }
        }
        __syncthreads();
    }
}

extern "C" __global__ void rate_backward_loop(
        const real* __restrict__ Wa, const real* __restrict__ X, const real* __restrict__ R,
        const real* __restrict__ x0, const real* __restrict__ dIn, const real* __restrict__ fr,
        const real* __restrict__ alpha, const real* __restrict__ decay, real* __restrict__ D, real* __restrict__ dx0,
        const int N, const int T, const int B, const int B0) {
    extern __shared__ __align__(16) unsigned char smem[];
    real* as = reinterpret_cast<real*>(smem);  // (TPB, N): the adjoints a_{k+1} of this block's trials
    const int n = blockIdx.y, b0 = blockIdx.x * TPB;
    const real* W = Wa + (size_t)n * N * N;  // W[m * N + i] = alpha_m W_rec[m, i]
    // carry: dL/dx_{k+1} through later steps; df: f'(x_{k+1}), kept from the step before (DX > 0)
    real carry[UPT][TPB], a[UPT][TPB], df[UPT][TPB], al[UPT], dec[UPT];
#pragma unroll
    for (int u = 0; u < UPT; ++u) {
        const int i = threadIdx.x + u * blockDim.x;
        al[u] = i < N ? alpha[(size_t)n * N + i] : real(0);
        dec[u] = i < N ? decay[(size_t)n * N + i] : real(0);
#pragma unroll
        for (int t = 0; t < TPB; ++t) {
            const int b = b0 + t;
            carry[u][t] = real(0);
            a[u][t] = real(0);
            df[u][t] = (DX > 0 && T > 0 && i < N && b < B) ? act_df(X[IDX(T - 1, b, i)]) : real(0);
            if (i < N) as[t * N + i] = real(0);  // trials past B keep 0
        }
    }
    for (int k = T - 1; k >= 0; --k) {
#pragma unroll
        for (int u = 0; u < UPT; ++u) {
            const int i = threadIdx.x + u * blockDim.x;
#pragma unroll
            for (int t = 0; t < TPB; ++t) {
                const int b = b0 + t;
                if (i < N && b < B) {
                    const size_t e = IDX(k, b, i);
                    const real av = direct(dIn, R, fr, n, e, df[u][t]) + carry[u][t];  // a_{k+1} = dL/dx_{k+1}
                    a[u][t] = av;
                    as[t * N + i] = av;
                    D[e] = al[u] * av;  // dL/d drive_k = alpha a_{k+1}
                }
            }
        }
        __syncthreads();
#pragma unroll
        for (int u = 0; u < UPT; ++u) {
            const int i = threadIdx.x + u * blockDim.x;
            if (i < N) {
                real acc[TPB];
#pragma unroll
                for (int t = 0; t < TPB; ++t) acc[t] = real(0);
                for (int m = 0; m < N; ++m) {  // (a_{k+1} @ W_alpha)_i
                    const real w = W[(size_t)m * N + i];
#pragma unroll
                    for (int t = 0; t < TPB; ++t) acc[t] += w * as[t * N + m];
                }
#pragma unroll
                for (int t = 0; t < TPB; ++t) {
                    const int b = b0 + t;
                    if (b < B) {
                        const real xk = k > 0 ? X[IDX(k - 1, b, i)] : x0[((size_t)n * B0 + (B0 == 1 ? 0 : b)) * N + i];
                        const real dfk = act_df(xk);
                        // dL/dx_k = (1 - alpha) a_{k+1} + f'(x_k) (a_{k+1} @ W_alpha)
                        carry[u][t] = dec[u] * a[u][t] + dfk * acc[t];
                        df[u][t] = dfk;
                    }
                }
            }
        }
        __syncthreads();  // every thread has read a_{k+1} before the next step overwrites it
    }
#pragma unroll
    for (int u = 0; u < UPT; ++u) {
        const int i = threadIdx.x + u * blockDim.x;
#pragma unroll
        for (int t = 0; t < TPB; ++t)
            if (i < N && b0 + t < B) dx0[((size_t)n * B + b0 + t) * N + i] = carry[u][t];
    }
}
"""

_STEP_KERNELS = r"""
// One step of the "step" strategy, element e = (n * B + b) * N + i of the (K, B, N) per-step arrays;
// the time-major (K, T, B, N) arrays are read and written at step k. x0: (K, B0, N); decay, alpha, bias, ns: (K, N).
// The rates f(x_{k+1}) go to r[n * r_net + k * r_step + (b * N + i)]: a (K, B, N) buffer (r_step 0) or R itself.
#define TM(k) (((size_t)n * T + (k)) * BN + rem)
#define X0 x0[((size_t)n * B0 + (B0 == 1 ? 0 : rem / N)) * N + i]
#define ELEMENTS for (size_t e = blockIdx.x * (size_t)blockDim.x + threadIdx.x; e < total; e += (size_t)gridDim.x * blockDim.x)
#define INDICES const size_t n = e / BN, rem = e % BN; const int i = (int)(rem % N);
#define UNIT const size_t p = n * N + i;  // the unit's entry in the (K, N) arrays

extern "C" __global__ void rates0(const real* __restrict__ x0, const int B0, real* __restrict__ r,
                                  const int N, const size_t BN, const size_t total) {
    ELEMENTS { INDICES r[e] = act_f(X0); }  // f(x_0)
}

extern "C" __global__ void step_forward(const real* __restrict__ decay, const real* __restrict__ alpha,
        const real* __restrict__ bias, const real* __restrict__ ns, const real* __restrict__ xi,
        const unsigned long long* __restrict__ keys, const double* __restrict__ wi,
        const unsigned long long* __restrict__ ki, const double* __restrict__ fi, const real* __restrict__ x0,
        const int B0, const real* __restrict__ pre, const real* __restrict__ drive, real* __restrict__ X,
        real* __restrict__ r, const size_t r_net, const size_t r_step,
        const int k, const int T, const int N, const size_t BN, const size_t total) {
    ELEMENTS {
        INDICES UNIT
        const real x = k == 0 ? X0 : X[TM(k - 1)];
        // x_{k+1} = (1 - alpha) x_k + f(x_k) @ W_alpha^T + (alpha (drive_k + b_rec) + noise_scale xi_k);  r = f(x_{k+1})
        const real xn = decay[p] * x + pre[e]
                        + step_input(drive, bias[p], alpha[p], ns[p], xi, keys, wi, ki, fi, n, TM(k), (size_t)k * BN + rem);
        X[TM(k)] = xn;
        r[n * r_net + (size_t)k * r_step + rem] = act_f(xn);
    }
}

extern "C" __global__ void step_first(const real* __restrict__ alpha, const real* __restrict__ X,
        const real* __restrict__ R, const real* __restrict__ dIn, const real* __restrict__ fr, real* __restrict__ a,
        real* __restrict__ D, const int T, const int N, const size_t BN, const size_t total) {
    ELEMENTS {
        INDICES UNIT
        const real av = direct(dIn, R, fr, n, TM(T - 1), DX > 0 ? act_df(X[TM(T - 1)]) : real(1));  // a_T = dL/dx_T
        a[e] = av;
        D[TM(T - 1)] = alpha[p] * av;
    }
}

extern "C" __global__ void step_backward(const real* __restrict__ decay, const real* __restrict__ alpha,
        const real* __restrict__ a, const real* __restrict__ g, const real* __restrict__ X,
        const real* __restrict__ R, const real* __restrict__ x0, const int B0, const real* __restrict__ dIn,
        const real* __restrict__ fr, real* __restrict__ a_prev, real* __restrict__ D,
        const int k, const int T, const int N, const size_t BN, const size_t total) {
    ELEMENTS {
        INDICES UNIT
        const real dfk = act_df(k > 0 ? X[TM(k - 1)] : X0);
        // dL/dx_k = (1 - alpha) a_{k+1} + f'(x_k) (a_{k+1} @ W_alpha)
        const real carry = decay[p] * a[e] + dfk * g[e];
        if (k > 0) {  // a_k = dX_{k-1} + dL/dx_k;  dL/d drive_{k-1} = alpha a_k
            const real ap = direct(dIn, R, fr, n, TM(k - 1), dfk) + carry;
            a_prev[e] = ap;
            D[TM(k - 1)] = alpha[p] * ap;
        } else {
            a_prev[e] = carry;  // dL/dx_0
        }
    }
}
"""

_NORMAL = r"""
// minirnn.nn.noise.gaussian_noise's element j (see that module for the method): key, key2, key3 are the
// first-try, retry and tail streams' keys; wi, ki: SIGNED_WI, SIGNED_KI (512 each); fi: ZIG_FI (256).
#define GAMMA 0x9E3779B97F4A7C15ULL
#define STRIDE (2ULL * MAX_RETRIES + 2ULL)

__device__ __forceinline__ unsigned long long word(unsigned long long key, unsigned long long counter) {
    unsigned long long z = key + (counter + 1ULL) * GAMMA;  // SplitMix64, wrapping
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

__device__ __forceinline__ double uniform(unsigned long long w) { return (double)(w >> 11) * TWO_M53; }

__device__ double normal_at(const unsigned long long key, const unsigned long long key2, const unsigned long long key3,
        const unsigned long long j, const double* __restrict__ signed_wi,
        const unsigned long long* __restrict__ signed_ki, const double* __restrict__ fi) {
    // first try: layer (bits 0-7), sign (bit 8), 52-bit magnitude (bits 12-63)
    unsigned long long w = word(key, j);
    int i9 = (int)(w & 0x1FFULL);
    unsigned long long rabs = w >> 12;
    double x = (double)rabs * signed_wi[i9];
    if (rabs < signed_ki[i9]) return x;
    int layer = i9 & 255;  // rejected: the retry stream's rounds
    const unsigned long long base = j * STRIDE;
    for (int a = 0; a < MAX_RETRIES; ++a) {
        if (a > 0) {
            w = word(key2, base + 2ULL * a);
            i9 = (int)(w & 0x1FFULL);
            rabs = w >> 12;
            layer = i9 & 255;
            x = (double)rabs * signed_wi[i9];
            if (rabs < signed_ki[i9]) break;
        }
        if (layer == 0) {  // Marsaglia's tail |x| > r from the tail stream, sign of x
            double t = ZIG_R;
            for (int m = 0; m < MAX_RETRIES; ++m) {
                const double xx = -log1p(-uniform(word(key3, base + 2ULL * m))) / ZIG_R;
                const double yy = -log1p(-uniform(word(key3, base + 2ULL * m + 1ULL)));
                t = ZIG_R + xx;
                if (yy + yy > xx * xx) break;
            }
            return copysign(t, x);
        }
        // unfused product and sum (no FMA), as NumPy and Numba compute it: the same wedge decisions, bit for bit
        const double y = __dadd_rn(__dmul_rn(fi[layer - 1] - fi[layer], uniform(word(key2, base + 2ULL * a + 1ULL))),
                                   fi[layer]);
        if (y < exp(-0.5 * x * x)) break;  // the wedge
    }
    return x;
}
"""

_INPUTS = r"""
// What step k adds to x_k, alpha (drive_k + b_rec) + noise_scale xi_k (the reference's inp_k), at element e of
// the (K, T, B, N) arrays, element j of network n's (T, B, N) noise block.
// NOISE: 0 none; 1 xi given; 2 xi made here from the network's keys (key, key2, key3).
__device__ __forceinline__ real step_input(const real* __restrict__ drive, const real bias, const real al,
        const real sc, const real* __restrict__ xi, const unsigned long long* __restrict__ keys,
        const double* __restrict__ wi, const unsigned long long* __restrict__ ki, const double* __restrict__ fi,
        const size_t n, const size_t e, const size_t j) {
    real v = al * (drive[e] + bias);
#if NOISE == 1
    v += sc * xi[e];
#elif NOISE == 2
    v += sc * (real)normal_at(keys[3 * n], keys[3 * n + 1], keys[3 * n + 2], j, wi, ki, fi);
#endif
    return v;
}

// The adjoint arriving directly at x_{k+1} (element e), with df = f'(x_{k+1}):
// DX 0: dIn is dX itself; 1: dIn is dL/dr_{k+1}, dX = dIn f'(x); 2: dX = (dIn + fr_n r_{k+1}) f'(x),
// fr_n = 2 c / n_rates, the L2_firing_rate penalty's gradient.
__device__ __forceinline__ real direct(const real* __restrict__ dIn, const real* __restrict__ R,
        const real* __restrict__ fr, const size_t n, const size_t e, const real df) {
#if DX == 0
    return dIn[e];
#elif DX == 1
    return dIn[e] * df;
#else
    return (dIn[e] + fr[n] * R[e]) * df;
#endif
}
"""

_NOISE_KERNEL = r"""
extern "C" __global__ void gaussian_noise(const unsigned long long key, const unsigned long long key2,
        const unsigned long long key3, const double* __restrict__ signed_wi,
        const unsigned long long* __restrict__ signed_ki, const double* __restrict__ fi,
        real* __restrict__ out, const unsigned long long n) {
    for (unsigned long long j = blockIdx.x * (unsigned long long)blockDim.x + threadIdx.x; j < n;
         j += (unsigned long long)gridDim.x * blockDim.x)
        out[j] = (real)normal_at(key, key2, key3, j, signed_wi, signed_ki, fi);
}
"""


def source(kind, dtype, act_code=0, tpb=1, upt=1, noise=0, write_r=0, dx=0) -> str:
    """The CUDA source of the ``kind`` ("loop", "step" or "noise") kernels for one variant.

    ``dtype``, ``act_code`` (an :class:`~minirnn.nn.activations.Activation`'s code) and, for "loop",
    the tiling ``tpb``/``upt`` (:func:`loop_tiling`). The forward kernels' ``noise``: 0 none, 1 read
    from an array, 2 made in the kernel from the network's keys; ``write_r``: also store the rates
    ``R = f(X)``. The backward kernels' ``dx``: 0 ``dL/dX`` given, 1 ``dL/dR`` given, 2 ``dL/dR`` plus
    the L2_firing_rate term (see ``direct`` in the source).
    """
    head = (f"typedef {_real(dtype)} real;\n#define MAX_RETRIES {nn_noise.MAX_RETRIES}\n"
            f"#define ZIG_R {nn_noise.ZIG_R!r}\n#define TWO_M53 {2.0 ** -53!r}\n")
    if kind == "noise":
        return head + _NORMAL + _NOISE_KERNEL
    head += f"#define ACT {act_code}\n#define NOISE {noise}\n#define WRITE_R {write_r}\n#define DX {dx}\n"
    if kind == "step":
        return head + _ACTIVATIONS + _NORMAL + _INPUTS + _STEP_KERNELS
    return head + f"#define TPB {tpb}\n#define UPT {upt}\n" + _ACTIVATIONS + _NORMAL + _INPUTS + _LOOP_KERNELS


@lru_cache(maxsize=None)
def _module(kind, dtype_name, act_code=0, tpb=1, upt=1, noise=0, write_r=0, dx=0):
    import cupy

    code = source(kind, np.dtype(dtype_name), act_code, tpb, upt, noise, write_r, dx)
    return cupy.RawModule(code=code, options=("-std=c++17",))


@lru_cache(maxsize=None)
def _step_kernels(act_code):
    """The "step-cupy" strategy's fused element-wise kernels for one activation (any float dtype)."""
    import cupy

    pre = f"#define ACT {act_code}\n" + _ACTIVATIONS
    forward = cupy.ElementwiseKernel(
        "T decay, T x, T pre, T inp", "T xn, T r",
        # x_{k+1} = (1 - alpha) x_k + f(x_k) @ W_alpha^T + inp_k;  r = f(x_{k+1}) for the next product
        "xn = decay * x + pre + inp; r = act_f(xn);",
        f"minirnn_rate_step_forward_{act_code}", preamble=pre)
    backward = cupy.ElementwiseKernel(
        "T decay, T alpha, T a, T g, T xk, T dx_prev", "T a_prev, T d_prev",
        # dL/dx_k = (1 - alpha) a_{k+1} + f'(x_k) (a_{k+1} @ W_alpha);  a_k = dX_{k-1} + dL/dx_k;  d = alpha a_k
        "T carry = decay * a + act_df(xk) * g; a_prev = dx_prev + carry; d_prev = alpha * a_prev;",
        f"minirnn_rate_step_backward_{act_code}", preamble=pre)
    last = cupy.ElementwiseKernel(
        "T decay, T a, T g, T x0", "T carry",
        "carry = decay * a + act_df(x0) * g;",  # dL/dx_0
        f"minirnn_rate_step_last_{act_code}", preamble=pre)
    rates = cupy.ElementwiseKernel("T x", "T r", "r = act_f(x);", f"minirnn_rate_f_{act_code}", preamble=pre)
    return forward, backward, last, rates


@lru_cache(maxsize=None)
def _multiprocessors() -> int:
    import cupy

    return int(cupy.cuda.Device().attributes["MultiProcessorCount"])


def loop_tiling(N, B, K, itemsize):
    """``(threads, UPT, TPB)`` of the "loop" kernels, or None when they do not apply.

    ``threads``: a multiple of 32, at most 256, and ``UPT <= 4`` units per thread cover N (so N <= 1024);
    ``TPB``: trials per block, the most (up to 8, and ``UPT * TPB <= 16`` to stay in registers) that
    still leave two blocks per multiprocessor and fit the block's rates in 48 KB of shared memory.
    """
    threads = min(256, 32 * math.ceil(N / 32))
    upt = math.ceil(N / threads)
    if upt > 4 or N * itemsize > MAX_SHARED:
        return None
    tpb = 1
    while (tpb * 2 <= MAX_TRIALS_PER_BLOCK and upt * tpb * 2 <= 16 and 2 * tpb * N * itemsize <= MAX_SHARED
           and math.ceil(B / (2 * tpb)) * K >= 2 * _multiprocessors()):
        tpb *= 2
    return threads, upt, tpb


def choose_strategy(N, B, K, dtype) -> str:
    """``"loop"`` for small networks, ``"step"`` otherwise; ``STRATEGY`` overrides.

    Measured on an H200 (benchmarks/RESULTS.md, float32, 200 steps, ms per update loop / step):
    N_rec 50, batch 128: 4.5 / 16.0; 256 x 128: 7.0 / 14.7; 256 x 1024: 21.5 / 18.7; 1024 x 128:
    89 / 15.7. So "loop" while ``N <= 64``, or ``N <= LOOP_MAX_N`` with at most ``LOOP_MAX_TRIALS``
    trials in all (``B * K``): beyond that every block re-reads ``W_rec`` too often.
    """
    if STRATEGY is not None:
        return STRATEGY
    fits = loop_tiling(N, B, K, np.dtype(dtype).itemsize) is not None
    return "loop" if fits and (N <= 64 or (N <= LOOP_MAX_N and B * K <= LOOP_MAX_TRIALS)) else "step"


def _flat(a, shape):
    """``a`` broadcast to ``shape``, C-contiguous (a view when it already is)."""
    import cupy

    return cupy.ascontiguousarray(cupy.broadcast_to(a, shape))


# ---- the "step" strategy --------------------------------------------------------------------------
# Per step, one cuBLAS product (one strided-batched product for an ensemble) and one fused element-wise
# kernel. cuBLAS is called through CuPy's thin binding and the kernels are RawKernels: cupy.matmul and
# ElementwiseKernel spend ~20 us of Python on each call, more than the GPU needs for the step at N_rec ~1000.
# The fused update replays each loop as a CUDA graph (.cuda_graphs), which removes Python from the loop
# altogether. "step-cupy" is the same loop written with cupy.matmul and ElementwiseKernel (plain, for comparison).

class _Gemm:
    """``C = op(A) B`` on row-major (rows, N) arrays, through cuBLAS's column-major gemm.

    By default through CuPy's bindings on CuPy's cuBLAS handle. With ``lib`` (:func:`.cuda_graphs.libcublas`),
    every call goes to that cuBLAS library itself, on a handle and workspace of its own: CuPy's bindings refuse
    to run while a stream is being captured into a CUDA graph. Use it as a context (it sets the handle's
    stream to the current one).
    """

    def __init__(self, dtype, lib=None):
        import os

        from cupy.cuda import cublas, device

        self.cublas, self.lib = cublas, lib
        double = dtype == np.float64
        if lib is None:
            self.handle = device.get_cublas_handle()
            self.call = cublas.dgemm if double else cublas.sgemm
            self.batched = cublas.dgemmStridedBatched if double else cublas.sgemmStridedBatched
        else:
            self.handle, self.workspace = _own_cublas_handle(lib, device.Device().id)
            self.call = _checked(lib.cublasDgemm_v2 if double else lib.cublasSgemm_v2)
            self.batched = _checked(lib.cublasDgemmStridedBatched if double else lib.cublasSgemmStridedBatched)
        self.one, self.zero = np.ones(1, dtype), np.zeros(1, dtype)  # host scalars (pointer mode host)
        self.op_n, self.op_t = getattr(cublas, "CUBLAS_OP_N", 0), getattr(cublas, "CUBLAS_OP_T", 1)
        self.tf32 = dtype == np.float32 and os.environ.get("CUPY_TF32", "0") == "1"  # as cupy.matmul does

    def __enter__(self):
        import cupy

        stream = cupy.cuda.get_current_stream().ptr
        if self.lib is not None:  # pointer mode host (0); math mode TF32 (3) or the default (0)
            lib = self.lib
            _checked(lib.cublasSetStream_v2)(self.handle, stream)
            # after setStream, which puts the default workspace back: a captured graph keeps using this one
            _checked(lib.cublasSetWorkspace_v2)(self.handle, self.workspace.data.ptr, self.workspace.nbytes)
            _checked(lib.cublasSetPointerMode_v2)(self.handle, 0)
            _checked(lib.cublasSetMathMode)(self.handle, 3 if self.tf32 else 0)
            return self
        cublas = self.cublas
        cublas.setStream(self.handle, stream)
        cublas.setPointerMode(self.handle, getattr(cublas, "CUBLAS_POINTER_MODE_HOST", 0))
        self.tf32 = self.tf32 and hasattr(cublas, "setMathMode") and hasattr(cublas, "getMathMode")
        if self.tf32:
            self.math_mode = cublas.getMathMode(self.handle)
            cublas.setMathMode(self.handle, getattr(cublas, "CUBLAS_TF32_TENSOR_OP_MATH", 3))
        return self

    def __exit__(self, *exc):
        if self.tf32 and self.lib is None:
            self.cublas.setMathMode(self.handle, self.math_mode)

    def rows_times(self, W, rows, out, transpose, K, B, N, rows_offset=0, rows_net_stride=None):
        """``out[n] = rows[n] @ W[n]^T`` (transpose) or ``rows[n] @ W[n]``, for each network n < K.

        ``rows[n]`` is the (B, N) block that starts ``rows_offset + n * rows_net_stride`` elements into
        ``rows`` (default stride ``B * N``: a (K, B, N) array); ``W`` (K, N, N) and ``out`` (K, B, N) are
        C-contiguous.
        """
        # row-major out (B, N) is column-major out^T (N, B) = op(W)^T-view times rows^T-view
        op = self.op_t if transpose else self.op_n
        s = W.dtype.itemsize
        stride = B * N if rows_net_stride is None else rows_net_stride
        one, zero = self.one.ctypes.data, self.zero.ctypes.data
        rows_ptr = rows.data.ptr + rows_offset * s
        if K == 1:
            self.call(self.handle, op, self.op_n, N, B, N, one, W.data.ptr, N, rows_ptr, N, zero, out.data.ptr, N)
        else:  # one call for the ensemble; strides in elements
            self.batched(self.handle, op, self.op_n, N, B, N, one, W.data.ptr, N, N * N, rows_ptr, N, stride,
                         zero, out.data.ptr, N, B * N, K)

    def matmul(self, a, b, out):
        """``out[n] = a[n] @ b[n]`` for each network n, in one cuBLAS call, reading views where they lie.

        ``a`` (K or 1, m, k) and ``b`` (K or 1, k, n): each matrix a block of rows (a slice of a C-contiguous
        array) or such a block transposed (``.mT``); a leading 1 is shared by every network. ``out``:
        C-contiguous (K, m, n). ``cupy.matmul`` would copy every transposed or sliced operand of a batched
        product first (at N_rec 1024 x batch 4096 that is 3.4 GB per copy), and it ignores ``CUPY_TF32`` there.
        """
        K, m, n = out.shape
        k = a.shape[-1]
        if 0 in (K, m, n):
            return out
        if k == 0:
            out.fill(0)
            return out
        # row-major out (m, n) is column-major out^T (n, m) = b^T a^T: b^T and a^T are b and a as cuBLAS reads them
        (a, op_a, ld_a, step_a), (b, op_b, ld_b, step_b) = _column_major(a, K), _column_major(b, K)
        one, zero = self.one.ctypes.data, self.zero.ctypes.data
        ops = (self.op_n, self.op_t)
        if K == 1:
            self.call(self.handle, ops[op_b], ops[op_a], n, m, k, one, b.data.ptr, ld_b, a.data.ptr, ld_a,
                      zero, out.data.ptr, n)
        else:  # strides in elements; 0 for a matrix every network shares
            self.batched(self.handle, ops[op_b], ops[op_a], n, m, k, one, b.data.ptr, ld_b, step_b, a.data.ptr,
                         ld_a, step_a, zero, out.data.ptr, n, m * n, K)
        return out


def _column_major(x, K):
    """``(x, transposed, ld, batch stride)`` of a (K or 1, rows, cols) operand of :meth:`_Gemm.matmul`: cuBLAS
    reads a block of rows as its transpose with leading dimension the row stride (``transposed`` 0), and a
    transposed block as itself (1). Anything else is copied into rows first (strides in elements)."""
    import cupy

    if x.shape[0] > 1 and x.strides[0] < 0:  # networks in reverse order: cuBLAS documents no negative batch stride
        x = cupy.ascontiguousarray(x)
    rows, cols = x.shape[-2:]
    s_batch, s_row, s_col = (s // x.itemsize for s in x.strides)
    if (s_col == 1 or cols == 1) and (rows == 1 or s_row >= cols):
        transposed, ld = 0, s_row if rows > 1 else cols
    elif (s_row == 1 or rows == 1) and (cols == 1 or s_col >= rows):
        transposed, ld = 1, s_col if cols > 1 else rows
    else:
        x = cupy.ascontiguousarray(x)
        s_batch, transposed, ld = x.strides[0] // x.itemsize, 0, cols
    if x.shape[0] == 1:
        s_batch = 0
    elif x.shape[0] != K:
        raise ValueError(f"a batch of {x.shape[0]} matrices for {K} networks")
    return x, transposed, ld, s_batch


def _checked(function):
    """A cuBLAS C function that raises on a status other than CUBLAS_STATUS_SUCCESS (0)."""
    def call(*args):
        status = function(*args)
        if status != 0:
            raise RuntimeError(f"{getattr(function, '__name__', 'cuBLAS')} returned cuBLAS status {status}")
    return call


@lru_cache(maxsize=None)
def _own_cublas_handle(lib, device_id):
    """A handle of the cuBLAS library ``lib`` for captured products, and its workspace (both kept for the
    process: graphs point into the workspace)."""
    import ctypes

    import cupy

    handle = ctypes.c_void_p()
    _checked(lib.cublasCreate_v2)(ctypes.pointer(handle))
    return handle.value, cupy.empty(WORKSPACE_BYTES, np.uint8)


WORKSPACE_BYTES = 32 * 2 ** 20  # cuBLAS's recommended workspace on Hopper GPUs (4 MiB suffices on older ones)


def _grid(total):
    """The grid of a grid-stride element-wise kernel over ``total`` elements (blocks of 256 threads)."""
    return (max(1, min(math.ceil(total / 256), 16 * _multiprocessors())),)


def _launch(kernel, total, args):
    kernel(_grid(total), (256,), args)


def _noise_args(xi, keys, like):
    """``(noise mode, xi, keys, *tables)`` for the forward kernels; unused arrays are stand-ins never read."""
    import cupy

    mode = 1 if xi is not None else 2 if keys is not None else 0
    if keys is None:
        keys = cupy.zeros((1, 3), np.uint64)
    return (mode, like if xi is None else xi, keys, *_noise_tables())


def forward_launches(act_code, strategy, Wa, drive, x0, alpha, decay, bias, X, ns=None, xi=None, keys=None, R=None):
    """:func:`forward_loop` over given arrays, as ``enqueue(gemm)``: a function that queues the loop's launches.

    Every argument is bound now and each call of ``enqueue`` reads and writes the same memory (its scratch
    buffers are made here, once), so that a CUDA graph of its launches stays valid (:mod:`.cuda_graphs`);
    ``gemm`` is an entered :class:`_Gemm` (unused by the "loop" strategy). Arguments as in :func:`forward_loop`,
    with the output ``X`` (K, T, B, N) given.
    """
    import cupy

    K, T, B, N = drive.shape
    B0, dtype = x0.shape[-2], drive.dtype
    noise_mode, *noise = _noise_args(xi, keys, X)
    ns = alpha if ns is None else ns  # read only with noise
    variant = dict(noise=noise_mode, write_r=int(R is not None))
    if strategy == "loop":
        threads, upt, tpb = loop_tiling(N, B, K, dtype.itemsize)
        kernel = _module("loop", dtype.name, act_code, tpb, upt, **variant).get_function("rate_forward_loop")

        def enqueue(gemm=None):
            kernel((math.ceil(B / tpb), K), (threads,),
                   (cupy.ascontiguousarray(rate.mT(Wa)), drive, bias, alpha, ns, *noise, x0, decay, X,
                    X if R is None else R, np.int32(N), np.int32(T), np.int32(B), np.int32(B0)),
                   shared_mem=tpb * N * dtype.itemsize)
        return enqueue
    module = _module("step", dtype.name, act_code, **variant)
    BN, total = np.uint64(B * N), np.uint64(K * B * N)
    # the rates f(x_{k+1}) of each step: into R, or into one (K, B, N) buffer the next product reads
    if R is None:
        r = r0 = cupy.empty((K, B, N), dtype)
        r_net, r_step = B * N, 0
    else:
        r, r0 = R, cupy.empty((K, B, N), dtype)
        r_net, r_step = T * B * N, B * N
    pre = cupy.empty((K, B, N), dtype)
    rates0, step, grid = module.get_function("rates0"), module.get_function("step_forward"), _grid(int(total))
    # the arguments before and after k, built once: Python's share of a step is what limits mid sizes
    head = (decay, alpha, bias, ns, *noise, x0, np.int32(B0), pre, drive, X, r, np.uint64(r_net), np.uint64(r_step))
    tail = (np.int32(T), np.int32(N), BN, total)

    def enqueue(gemm):
        _launch(rates0, int(total), (x0, np.int32(B0), r0, np.int32(N), BN, total))
        for k in range(T):
            if k == 0:
                gemm.rows_times(Wa, r0, pre, True, K, B, N)  # f(x_0) @ W_alpha^T
            else:
                gemm.rows_times(Wa, r, pre, True, K, B, N, (k - 1) * r_step, r_net)  # f(x_k) @ W_alpha^T
            step(grid, (256,), head + (np.int32(k),) + tail)
    return enqueue


def run_launches(enqueue, strategy, dtype):
    """Run a loop's launches (:func:`forward_launches`, :func:`backward_launches`) now: the "step" strategy's
    products through an entered :class:`_Gemm` on CuPy's handle; "loop" makes none."""
    if strategy == "loop":
        enqueue()
        return
    with _Gemm(dtype) as gemm:
        enqueue(gemm)


def forward_loop(act_code, strategy, Wa, drive, x0, alpha, decay, bias, ns=None, xi=None, keys=None, R=None):
    """The states ``X`` (K, T, B, N): ``x_{k+1} = (1 - alpha) x_k + f(x_k) @ W_alpha^T + alpha (drive_k + b_rec)
    + noise_scale xi_k`` for k < T, by the "loop" or "step" kernels.

    Every array is C-contiguous with the network axis flattened to K: ``Wa`` (K, N, N) holds ``alpha_i W_rec[i, j]``;
    ``drive`` (K, T, B, N); ``x0`` (K, B0, N); ``alpha``, ``decay = 1 - alpha``, ``bias`` (b_rec, or zeros when
    ``drive`` holds it) and ``ns`` (noise_scale) (K, N). The noise is ``xi`` (K, T, B, N) standard normals, or made
    in the kernels from ``keys`` (K, 3) uint64 (each network's :func:`minirnn.nn.noise.stream_keys`), or none.
    ``R``: an empty (K, T, B, N) array to receive the rates ``f(X)`` as well, or None.
    """
    import cupy

    X = cupy.empty(drive.shape, drive.dtype)
    run_launches(forward_launches(act_code, strategy, Wa, drive, x0, alpha, decay, bias, X, ns, xi, keys, R),
                 strategy, drive.dtype)
    return X


def backward_launches(act_code, strategy, Wa, X, x0, d_in, alpha, decay, D, R=None, fr=None, dx_mode=0):
    """:func:`backward_loop` over given arrays, as ``(enqueue(gemm), d_x0)``: a function that queues the loop's
    launches (every argument bound now, as in :func:`forward_launches`) and the (K, B, N) array that holds
    ``dL/dx_0`` once they have run. The output ``D`` (K, T, B, N) is given (not ``d_in``: the launches may
    run twice, and must give the same result)."""
    import cupy

    K, T, B, N = X.shape
    B0, dtype = x0.shape[-2], X.dtype
    R = X if R is None else R  # read only in dx_mode 2
    fr = alpha if fr is None else fr
    d_x0 = cupy.empty((K, B, N), dtype)
    if strategy == "loop":
        threads, upt, tpb = loop_tiling(N, B, K, dtype.itemsize)
        kernel = _module("loop", dtype.name, act_code, tpb, upt, dx=dx_mode).get_function("rate_backward_loop")

        def enqueue(gemm=None):
            kernel((math.ceil(B / tpb), K), (threads,),
                   (Wa, X, R, x0, d_in, fr, alpha, decay, D, d_x0, np.int32(N), np.int32(T), np.int32(B),
                    np.int32(B0)), shared_mem=tpb * N * dtype.itemsize)
        return enqueue, d_x0
    module = _module("step", dtype.name, act_code, dx=dx_mode)
    BN, total = np.uint64(B * N), np.uint64(K * B * N)
    a0, g = cupy.empty((K, B, N), dtype), cupy.empty((K, B, N), dtype)
    first, step, grid = module.get_function("step_first"), module.get_function("step_backward"), _grid(int(total))
    head, tail = (decay, alpha), (X, R, x0, np.int32(B0), d_in, fr)

    def enqueue(gemm):
        _launch(first, int(total), (alpha, X, R, d_in, fr, a0, D, np.int32(T), np.int32(N), BN, total))
        a, a_prev = a0, d_x0
        for k in range(T - 1, -1, -1):
            gemm.rows_times(Wa, a, g, False, K, B, N)  # a_{k+1} @ W_alpha
            step(grid, (256,), head + (a, g) + tail + (a_prev, D, np.int32(k), np.int32(T), np.int32(N), BN, total))
            a, a_prev = a_prev, a
    # the two adjoint buffers swap after each of the T steps: after step 0 dL/dx_0 is in d_x0 when T is odd
    return enqueue, (d_x0 if T % 2 else a0)


def backward_loop(act_code, strategy, Wa, X, x0, d_in, alpha, decay, R=None, fr=None, dx_mode=0):
    """``(D, d_x0)`` of :func:`forward_loop`'s recurrence: ``D = dL/d drive = alpha a_{k+1}`` (K, T, B, N) and
    ``dL/dx_0`` (K, B, N), arrays as in :func:`forward_loop`.

    What arrives directly at each state (``d_in``, (K, T, B, N)), by ``dx_mode``: 0, ``dL/dX`` itself; 1,
    ``dL/dR`` for the rates ``R = f(X)`` (the kernels multiply by ``f'(X)``); 2, ``dL/dR`` with the
    L2_firing_rate gradient ``fr[n] R`` still to add (``fr``: (K,), ``2 c / n_rates``; ``R`` given).
    """
    import cupy

    D = cupy.empty(X.shape, X.dtype)
    enqueue, d_x0 = backward_launches(act_code, strategy, Wa, X, x0, d_in, alpha, decay, D, R, fr, dx_mode)
    run_launches(enqueue, strategy, X.dtype)
    return D, d_x0


def _step_forward_cupy(act_code, Wa, inp, x0, decay, X):
    """:func:`forward_loop`'s "step" with cupy.matmul and ElementwiseKernels (any leading axes), from
    ``inp = alpha drive + noise_scale xi``."""
    import cupy

    step, _, _, rates = _step_kernels(act_code)
    lead_BN = X.shape[:-3] + X.shape[-2:]
    WaT = rate.mT(Wa)
    x = cupy.broadcast_to(x0, lead_BN)
    r = rates(x)  # f(x_0), then f(x_{k+1}) written by each step
    for k in range(X.shape[-3]):
        step(decay, x, r @ WaT, inp[..., k, :, :], X[..., k, :, :], r)
        x = X[..., k, :, :]


def _step_backward_cupy(act_code, Wa, X, x0, dX, alpha, decay):
    """:func:`backward_loop`'s "step" (``dx_mode`` 0) with cupy.matmul and ElementwiseKernels (any leading axes)."""
    import cupy

    _, step, last, _ = _step_kernels(act_code)
    T = X.shape[-3]
    D = cupy.empty(X.shape, X.dtype)
    a = dX[..., T - 1, :, :].copy()  # a_T = dL/dx_T: nothing arrives from later steps
    D[..., T - 1, :, :] = alpha * a
    a_prev = cupy.empty_like(a)
    for k in range(T - 1, 0, -1):
        step(decay, alpha, a, a @ Wa, X[..., k - 1, :, :], dX[..., k - 1, :, :], a_prev, D[..., k - 1, :, :])
        a, a_prev = a_prev, a
    return D, cupy.ascontiguousarray(cupy.broadcast_to(last(decay, a, a @ Wa, x0), a.shape))


def _strategy(N, B, K, dtype, strategy):
    strategy = strategy or choose_strategy(N, B, K, dtype)
    if strategy not in ("loop", "step", "step-cupy"):
        raise ValueError(f"Unknown time-loop strategy {strategy!r}: choose 'loop', 'step' or 'step-cupy'.")
    if strategy == "loop" and loop_tiling(N, B, K, dtype.itemsize) is None:
        return "step"
    return strategy


def per_unit(a, lead, N):
    """A per-unit array of shape (*lead, 1, N) or broadcastable to it, as a C-contiguous (K, N)."""
    return _flat(a, lead + (1, N)).reshape(math.prod(lead), N)


def rate_forward(W_rec_eff, drive, x0, alpha, noise_scale=None, noise=None, act=None, perturb=None, strategy=None):
    """:func:`minirnn.dynamics.rate.recur_forward` on the device (same arguments, same result).

    Perturbations (the simulator's) and user-given activations run the reference.
    """
    if perturb is not None or act.code is None or drive.dtype not in (np.float32, np.float64):
        return rate.recur_forward(W_rec_eff, drive, x0, alpha, noise_scale, noise, act, perturb)
    import cupy

    lead, (T, B, N), dtype = drive.shape[:-3], drive.shape[-3:], drive.dtype
    K, B0 = math.prod(lead), x0.shape[-2]
    strategy = _strategy(N, B, K, dtype, strategy)
    W_alpha = rate.mT(alpha) * W_rec_eff  # alpha_i W_ij, (*lead, N, N)
    if strategy == "step-cupy":
        inp = alpha[..., None, :, :] * drive  # alpha drive_k + noise_scale xi_k, as the reference
        if noise is not None:
            inp += noise_scale[..., None, :, :] * noise
        X = cupy.empty(drive.shape, dtype)
        _step_forward_cupy(act.code, W_alpha, inp, x0, 1 - alpha, X)
        return X
    alpha_f = per_unit(alpha, lead, N)
    X = forward_loop(act.code, strategy, _flat(W_alpha, lead + (N, N)).reshape(K, N, N),
                     _flat(drive, drive.shape).reshape(K, T, B, N), _flat(x0, lead + (B0, N)).reshape(K, B0, N),
                     alpha_f, 1 - alpha_f, cupy.zeros((K, N), dtype),  # drive holds b_rec already
                     ns=None if noise is None else per_unit(noise_scale, lead, N),
                     xi=None if noise is None else _flat(noise, drive.shape).reshape(K, T, B, N))
    return X.reshape(drive.shape)


def rate_backward(W_rec_eff, X, x0, dX, alpha, act, strategy=None):
    """:func:`minirnn.dynamics.rate.recur_backward` on the device: ``(d_drive, d_x0)``."""
    if act.code is None or X.dtype not in (np.float32, np.float64):
        return rate.recur_backward(W_rec_eff, X, x0, dX, alpha, act)

    lead, (T, B, N), dtype = X.shape[:-3], X.shape[-3:], X.dtype
    K, B0 = math.prod(lead), x0.shape[-2]
    strategy = _strategy(N, B, K, dtype, strategy)
    W_alpha = rate.mT(alpha) * W_rec_eff
    if strategy == "step-cupy":
        return _step_backward_cupy(act.code, W_alpha, X, x0, dX, alpha, 1 - alpha)
    alpha_f = per_unit(alpha, lead, N)
    D, d_x0 = backward_loop(act.code, strategy, _flat(W_alpha, lead + (N, N)).reshape(K, N, N),
                            _flat(X, X.shape).reshape(K, T, B, N), _flat(x0, lead + (B0, N)).reshape(K, B0, N),
                            _flat(dX, X.shape).reshape(K, T, B, N), alpha_f, 1 - alpha_f)
    return D.reshape(X.shape), d_x0.reshape(lead + (B, N))


def gaussian_noise(key, shape, dtype=np.float64):
    """:func:`minirnn.nn.noise.gaussian_noise` as a CuPy array, made on the device in one launch."""
    import cupy

    dtype = np.dtype(dtype)
    shape = (shape,) if np.ndim(shape) == 0 else tuple(shape)
    if dtype not in (np.float32, np.float64):
        return nn_noise.gaussian_noise(key, shape, dtype, xp=cupy)
    n = math.prod(shape)
    out = cupy.empty(shape, dtype)
    if n == 0:
        return out
    tables = _noise_tables()
    keys = [np.uint64(k) for k in nn_noise.stream_keys(key)]
    blocks = min(math.ceil(n / 256), 32 * _multiprocessors())
    _module("noise", dtype.name).get_function("gaussian_noise")(
        (blocks,), (256,), (*keys, *tables, out, np.uint64(n)))
    return out


@lru_cache(maxsize=None)
def _noise_tables():
    import cupy

    return (cupy.asarray(nn_noise.SIGNED_WI), cupy.asarray(nn_noise.SIGNED_KI), cupy.asarray(nn_noise.ZIG_FI))


@lru_cache(maxsize=None)
def _adam_kernel():
    import cupy

    return cupy.ElementwiseKernel(
        "T g, T c1, T c2, T eps, T lr_t", "T m, T v, T delta",
        # m += (g - m)(1 - b1);  v += (g^2 - v)(1 - b2);  delta = lr_t m / (sqrt(v) + eps)   (Adam._update)
        "T t = g - m; t *= c1; m += t; t = g * g; t -= v; t *= c2; v += t; delta = m * lr_t; delta /= sqrt(v) + eps;",
        "minirnn_adam_update")


def adam_update(g, m, v, c1, c2, eps, lr_t):
    """:meth:`minirnn.nn.optimizers.Adam._update` in one launch: updates ``m``, ``v`` in place, returns delta.

    ``c1 = 1 - beta1``, ``c2 = 1 - beta2``; hyperparameters are scalars or arrays that broadcast against ``g``.
    """
    import cupy

    delta = cupy.empty_like(g)
    _adam_kernel()(g, c1, c2, eps, lr_t, m, v, delta)
    return delta


KERNELS = {"rate_forward": rate_forward, "rate_backward": rate_backward, "gaussian_noise": gaussian_noise}
