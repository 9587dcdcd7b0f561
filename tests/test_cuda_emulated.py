"""The CuPy backend's CUDA kernels, run on the CPU by tests/cuda_emu.py, against the NumPy reference.

``minirnn/backends/cupy_kernels.py`` holds its kernels as CUDA C strings (:func:`cupy_kernels.source`);
``tests/test_gpu.py`` runs them only where a GPU is. Here g++ compiles the same strings (see
``cuda_emu``) and each kernel is driven the way ``cupy_kernels`` drives it, with NumPy standing in
for CuPy (and ``@`` for cuBLAS), then compared with:

- ``"loop"`` (``rate_forward_loop``, ``rate_backward_loop``) and ``"step"`` (``rates0``,
  ``step_forward``, ``step_first``, ``step_backward``) with :func:`minirnn.dynamics.rate.recur_forward`
  and ``recur_backward``: every activation, float64 (≤ 1e-12 relative, also to the largest
  magnitude) and float32 (≤ 1e-5), every noise mode (none, ``xi`` given, made from the keys),
  rates stored or not, and each form of the direct adjoint (``dX``, ``dL/dR``, ``dL/dR`` plus the
  L2_firing_rate term); tilings with N not a multiple of 32, several units per thread, several
  trials per block with B not a multiple, K = 3 networks, x0 per trial or shared;
- ``gaussian_noise`` with :func:`minirnn.nn.noise.gaussian_noise`, bit for bit over 300,000
  elements, where rejections, retries and the tail all occur;
- and nvcc compiles every variant to PTX (NVRTC, which CuPy uses, has the same front end).

The "loop" kernels' barriers are checked under each of the emulator's thread orders: fibers in
thread order (the default), last thread first, and real threads. The emulator checks itself last.

Only the sums in the products differ from the reference (the kernels add ``j = 0 .. N-1`` in turn,
NumPy's BLAS in blocks), hence the tolerances. Sizes are small (N ≤ 70, B ≤ 5, T ≤ 6): compile time
dominates, so the selected tests' sources are compiled ahead in parallel (``_compile_ahead``).
"""
from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
import pytest

import cuda_emu
from minirnn.backends import cupy_kernels as ck
from minirnn.dynamics import rate
from minirnn.nn import noise as nn_noise
from minirnn.nn.activations import ACTIVATIONS

DTYPES = (np.float64, np.float32)
TABLES = (nn_noise.SIGNED_WI, nn_noise.SIGNED_KI, nn_noise.ZIG_FI)  # as cupy_kernels._noise_tables
MULTIPROCESSORS = 2  # stands in for the device's count in the launch geometry of the "step" kernels


def close(actual, expected, what=""):
    """float64: ≤ 1e-12 relative, or 1e-12 of the largest |expected|; float32: 1e-5 likewise. No NaN."""
    assert actual.dtype == expected.dtype and actual.shape == expected.shape, what
    tol = 1e-12 if expected.dtype == np.float64 else 1e-5
    scale = max(float(np.abs(expected).max(initial=0)), 1e-30)
    np.testing.assert_allclose(actual, expected, rtol=tol, atol=tol * scale, err_msg=what)


# ---- what a test compiles and what it runs -------------------------------------------------------
class Spec(NamedTuple):
    """One variant of ``cupy_kernels.source``: a compiled module."""

    kind: str
    dtype: type = np.float64
    act: str = "tanh"
    tpb: int = 1
    upt: int = 1
    noise: int = 0  # forward: 0 none, 1 xi given, 2 made from the keys
    write_r: int = 0  # forward: also store R = f(X)
    dx: int = 0  # backward: 0 dX given, 1 dL/dR given, 2 dL/dR plus the L2_firing_rate term

    def source(self) -> str:
        return ck.source(self.kind, np.dtype(self.dtype), ACTIVATIONS[self.act].code, self.tpb, self.upt,
                         self.noise, self.write_r, self.dx)

    def module(self):
        return cuda_emu.RawModule(code=self.source(), options=("-std=c++17",))

    def __str__(self):
        return (f"{self.kind}-{np.dtype(self.dtype).name}-{self.act}-tpb{self.tpb}-upt{self.upt}-"
                f"noise{self.noise}-R{self.write_r}-dx{self.dx}")


class Case(NamedTuple):
    """Sizes: N units, B trials, T steps, K networks, B0 trials of x0 (1 or B); ``threads`` a block (loop)."""

    N: int
    B: int
    T: int
    K: int
    B0: int
    threads: int = 32


# The kernels' variants (Spec.noise, write_r, dx). Each activation runs with one of them, in turn, so that
# every variant meets several activations and both dtypes without compiling every combination.
VARIANTS = {
    "full": dict(noise=1, write_r=1, dx=2),  # xi given, rates stored, dL/dR plus the firing-rate term
    "bare": dict(noise=0, write_r=0, dx=0),  # no noise, X only, dL/dX given
    "keys-dR": dict(noise=2, write_r=1, dx=1),  # normals made from the keys, rates stored, dL/dR given
    "keys-noR": dict(noise=2, write_r=0, dx=0),
}


def rotation(kind, tpb=1, upt=1):
    """``(id, Spec)`` for every activation and dtype, the variant taken in turn."""
    names, out = list(VARIANTS), []
    for i, act in enumerate(sorted(ACTIVATIONS)):
        for j, dtype in enumerate(DTYPES):
            variant = names[(i + j) % len(names)]
            spec = Spec(kind, dtype, act, tpb, upt, **VARIANTS[variant])
            out.append((f"{act}-{np.dtype(dtype).name}-{variant}", spec))
    return out


# N = 45: not a multiple of 32, 2 units per thread; 2 trials per block with B = 5; 3 networks, x0 per trial
SWEEP_CASE = Case(N=45, B=5, T=6, K=3, B0=5)
LOOP_TILINGS = {  # name: (case, tpb, upt)
    "threads>N": (Case(N=37, B=4, T=5, K=1, B0=1, threads=64), 1, 1),  # the production tiling for N = 37
    "upt3-tpb3": (Case(N=70, B=5, T=4, K=2, B0=1), 3, 3),
    "tpb8>B": (Case(N=20, B=5, T=6, K=3, B0=5), 8, 1),
}
LOOP_TESTS = (
    [(name, spec, SWEEP_CASE) for name, spec in rotation("loop", tpb=2, upt=2)]
    + [(f"{name}-{np.dtype(d).name}", Spec("loop", d, "softplus", tpb, upt, **VARIANTS["full"]), case)
       for name, (case, tpb, upt) in LOOP_TILINGS.items() for d in DTYPES])
STEP_CASES = {"x0-per-trial": SWEEP_CASE, "x0-shared": Case(N=37, B=4, T=5, K=2, B0=1)}
STEP_TESTS = [(f"{name}-{c}", spec, case) for name, spec in rotation("step") for c, case in STEP_CASES.items()]
NOISE_SPECS = [Spec("noise", d) for d in DTYPES]
PTX_SPECS = ([spec for kind in ("loop", "step") for _, spec in rotation(kind, tpb=2, upt=2)] + NOISE_SPECS
             + [Spec("loop", np.float32, "relu", tpb, upt, **VARIANTS["full"]) for tpb, upt in ((8, 1), (1, 4))])


@pytest.fixture(scope="module", autouse=True)
def _compile_ahead(request):
    """Compile the selected tests' sources before the first test runs: g++ and nvcc, one per core."""
    specs = {"ptx": set(), "emu": set()}
    for item in request.session.items:
        params = getattr(getattr(item, "callspec", None), "params", {})
        if item.module is request.module and isinstance(params.get("spec"), Spec):
            specs["ptx" if "nvcc" in item.name else "emu"].add(params["spec"])
    if specs["emu"] and cuda_emu.have_gxx():
        cuda_emu.compile_all(s.source() for s in specs["emu"])
    if specs["ptx"] and cuda_emu.have_nvcc():
        cuda_emu.ptx_check_all(s.source() for s in specs["ptx"])


# ---- one problem, its reference, and the kernels driven as cupy_kernels drives them --------------
class Problem(NamedTuple):
    """A time-loop problem with the network axis flattened to K, C-contiguous as the kernels take it."""

    W: np.ndarray  # (K, N, N) W_rec_eff
    drive: np.ndarray  # (K, T, B, N) u_k @ W_in^T, without b_rec
    bias: np.ndarray  # (K, N) b_rec
    x0: np.ndarray  # (K, B0, N)
    alpha: np.ndarray  # (K, N), per unit
    ns: np.ndarray  # (K, N) noise_scale
    xi: np.ndarray  # (K, T, B, N) standard normals (noise 1)
    keys: np.ndarray  # (K, 3) uint64: each network's stream_keys (noise 2)
    d_in: np.ndarray  # (K, T, B, N) dL/dX or dL/dR arriving directly
    fr: np.ndarray  # (K,) 2 c / n_rates of the L2_firing_rate penalty

    @property
    def Wa(self):  # alpha_i W_rec[i, j], (K, N, N)
        return np.ascontiguousarray(self.alpha[:, :, None] * self.W)

    @property
    def decay(self):
        return np.ascontiguousarray(1 - self.alpha)


def make_problem(case: Case, dtype, seed=0) -> Problem:
    rng = np.random.default_rng(seed)
    N, B, T, K, B0 = case.N, case.B, case.T, case.K, case.B0
    arr = lambda *shape, s=1.0: (s * rng.standard_normal(shape)).astype(dtype)  # noqa: E731
    alpha = rng.uniform(0.05, 0.3, (K, N)).astype(dtype)
    net_keys = rng.integers(0, 2 ** 64, size=K, dtype=np.uint64)
    return Problem(W=arr(K, N, N, s=1.2 / np.sqrt(N)), drive=arr(K, T, B, N), bias=arr(K, N, s=0.3),
                   x0=arr(K, B0, N, s=0.5), alpha=alpha, ns=(0.1 * np.sqrt(2 * alpha)).astype(dtype),
                   xi=arr(K, T, B, N), keys=np.array([nn_noise.stream_keys(k) for k in net_keys], np.uint64),
                   d_in=arr(K, T, B, N), fr=rng.uniform(0.01, 0.1, K).astype(dtype))


def reference(p: Problem, spec: Spec):
    """``(X, R, D, d_x0)`` from ``rate.recur_forward``/``recur_backward`` for this variant."""
    act, (K, T, B, N) = ACTIVATIONS[spec.act], p.drive.shape
    alpha, ns = p.alpha[:, None, :], p.ns[:, None, :]  # (K, 1, N)
    xi = {0: None, 1: p.xi}.get(spec.noise)
    if spec.noise == 2:  # what the kernels make from the keys: network n's (T, B, N) block
        xi = np.stack([nn_noise.gaussian_noise(p.keys[n, 0], (T, B, N), p.drive.dtype) for n in range(K)])
    X = rate.recur_forward(p.W, p.drive + p.bias[:, None, None, :], p.x0, alpha, ns, xi, act)
    R = act.f(X)
    dX = {0: p.d_in, 1: p.d_in * act.df(X), 2: (p.d_in + p.fr[:, None, None, None] * R) * act.df(X)}[spec.dx]
    D, d_x0 = rate.recur_backward(p.W, X, p.x0, dX, alpha, act)
    return X, R, D, d_x0


def nan(*shape, dtype):
    """An output buffer of NaN: an element a kernel fails to write cannot pass for a result."""
    return np.full(shape, np.nan, dtype)


def noise_args(p: Problem, spec: Spec, like):
    """``(xi, keys, *tables)`` as ``cupy_kernels._noise_args`` passes them (stand-ins where unused)."""
    return (p.xi if spec.noise == 1 else like, p.keys if spec.noise == 2 else np.zeros((1, 3), np.uint64), *TABLES)


def loop_forward(mod, p: Problem, spec: Spec, threads):
    """``cupy_kernels.forward_loop``'s "loop" branch: ``(X, R or None)``."""
    (K, T, B, N), dtype = p.drive.shape, p.drive.dtype
    X = nan(K, T, B, N, dtype=dtype)
    R = nan(K, T, B, N, dtype=dtype) if spec.write_r else None
    mod.get_function("rate_forward_loop")(
        (math.ceil(B / spec.tpb), K), (threads,),
        (np.ascontiguousarray(rate.mT(p.Wa)), p.drive, p.bias, p.alpha, p.ns, *noise_args(p, spec, X), p.x0,
         p.decay, X, X if R is None else R, np.int32(N), np.int32(T), np.int32(B), np.int32(p.x0.shape[1])),
        shared_mem=spec.tpb * N * dtype.itemsize)
    return X, R


def loop_backward(mod, p: Problem, spec: Spec, threads, X, R):
    """``cupy_kernels.backward_loop``'s "loop" branch: ``(D, d_x0)``."""
    (K, T, B, N), dtype = X.shape, X.dtype
    D, d_x0 = nan(K, T, B, N, dtype=dtype), nan(K, B, N, dtype=dtype)
    mod.get_function("rate_backward_loop")(
        (math.ceil(B / spec.tpb), K), (threads,),
        (p.Wa, X, R, p.x0, p.d_in, p.fr, p.alpha, p.decay, D, d_x0, np.int32(N), np.int32(T), np.int32(B),
         np.int32(p.x0.shape[1])),
        shared_mem=spec.tpb * N * dtype.itemsize)
    return D, d_x0


GEOMETRIES = {  # how the "step" kernels are launched: (grid, block) for `total` elements
    "production": lambda total: ((max(1, min(math.ceil(total / 256), 16 * MULTIPROCESSORS)),), (256,)),
    "strided": lambda total: ((3,), (32,)),  # fewer threads than elements: the grid-stride loop turns
}


def step_forward(mod, p: Problem, spec: Spec, geometry):
    """``cupy_kernels.forward_loop``'s "step" branch, NumPy's ``@`` for cuBLAS: ``(X, R or None)``."""
    (K, T, B, N), dtype = p.drive.shape, p.drive.dtype
    BN, total = np.uint64(B * N), np.uint64(K * B * N)
    grid, block = GEOMETRIES[geometry](int(total))
    X = nan(K, T, B, N, dtype=dtype)
    if spec.write_r:  # the rates of step k go to R[:, k]; f(x_0) to a buffer of its own
        R, r, r0 = (nan(K, T, B, N, dtype=dtype),) * 2 + (nan(K, B, N, dtype=dtype),)
        r_net, r_step = T * B * N, B * N
    else:  # one (K, B, N) buffer, overwritten each step
        R, r = None, nan(K, B, N, dtype=dtype)
        r0, r_net, r_step = r, B * N, 0
    B0 = np.int32(p.x0.shape[1])
    mod.get_function("rates0")(grid, block, (p.x0, B0, r0, np.int32(N), BN, total))
    pre, step = nan(K, B, N, dtype=dtype), mod.get_function("step_forward")
    for k in range(T):
        rows = r0 if k == 0 else R[:, k - 1] if spec.write_r else r
        np.matmul(rows, rate.mT(p.Wa), out=pre)  # f(x_k) @ W_alpha^T (cuBLAS on the device)
        step(grid, block, (p.decay, p.alpha, p.bias, p.ns, *noise_args(p, spec, X), p.x0, B0, pre, p.drive, X, r,
                           np.uint64(r_net), np.uint64(r_step), np.int32(k), np.int32(T), np.int32(N), BN, total))
    return X, R


def step_backward(mod, p: Problem, spec: Spec, geometry, X, R):
    """``cupy_kernels.backward_loop``'s "step" branch, NumPy's ``@`` for cuBLAS: ``(D, d_x0)``."""
    (K, T, B, N), dtype = X.shape, X.dtype
    BN, total = np.uint64(B * N), np.uint64(K * B * N)
    grid, block = GEOMETRIES[geometry](int(total))
    D, a, g, a_prev = nan(K, T, B, N, dtype=dtype), *(nan(K, B, N, dtype=dtype) for _ in range(3))
    mod.get_function("step_first")(grid, block, (p.alpha, X, R, p.d_in, p.fr, a, D, np.int32(T), np.int32(N),
                                                 BN, total))
    step = mod.get_function("step_backward")
    for k in range(T - 1, -1, -1):
        np.matmul(a, p.Wa, out=g)  # a_{k+1} @ W_alpha (cuBLAS on the device)
        step(grid, block, (p.decay, p.alpha, a, g, X, R, p.x0, np.int32(p.x0.shape[1]), p.d_in, p.fr, a_prev, D,
                           np.int32(k), np.int32(T), np.int32(N), BN, total))
        a, a_prev = a_prev, a
    return D, a  # after step 0, a holds dL/dx_0


def check_time_loops(spec, case, forward, backward):
    """Forward from the problem, backward from the reference's states: each equal to the reference."""
    p = make_problem(case, spec.dtype)
    X_ref, R_ref, D_ref, d_x0_ref = reference(p, spec)
    mod = spec.module()
    X, R = forward(mod, p, spec)
    close(X, X_ref, "X")
    if spec.write_r:
        close(R, R_ref, "R")
    # the backward reads the reference's X and R, so that only its own rounding counts
    D, d_x0 = backward(mod, p, spec, X_ref, R_ref if spec.dx == 2 else X_ref)
    close(D, D_ref, "D = dL/d drive")
    close(d_x0, d_x0_ref, "dL/dx_0")


# ---- the tests -----------------------------------------------------------------------------------
@pytest.mark.parametrize("spec, case", [t[1:] for t in LOOP_TESTS], ids=[t[0] for t in LOOP_TESTS])
def test_loop_kernels_match_the_reference(spec, case):
    check_time_loops(spec, case, lambda m, p, s: loop_forward(m, p, s, case.threads),
                     lambda m, p, s, X, R: loop_backward(m, p, s, case.threads, X, R))


OTHER_ORDERS = [t for t in LOOP_TESTS if t[0] in ("sigmoid-float64-keys-dR", "upt3-tpb3-float32")]


@pytest.mark.parametrize("schedule", ["fibers-reversed", "threads"])
@pytest.mark.parametrize("spec, case", [t[1:] for t in OTHER_ORDERS], ids=[t[0] for t in OTHER_ORDERS])
def test_loop_kernels_in_other_thread_orders(spec, case, schedule):
    """The barriers hold whatever order a block's threads run in: last thread first, or really concurrent."""
    with cuda_emu.schedule(schedule):
        test_loop_kernels_match_the_reference(spec, case)


@pytest.mark.parametrize("geometry", sorted(GEOMETRIES))
@pytest.mark.parametrize("spec, case", [t[1:] for t in STEP_TESTS], ids=[t[0] for t in STEP_TESTS])
def test_step_kernels_match_the_reference(spec, case, geometry):
    check_time_loops(spec, case, lambda m, p, s: step_forward(m, p, s, geometry),
                     lambda m, p, s, X, R: step_backward(m, p, s, geometry, X, R))


@pytest.mark.parametrize("spec", NOISE_SPECS, ids=str)
def test_noise_kernel_equals_the_reference_bit_for_bit(spec):
    """300,000 normals: first tries, wedge acceptances, retries and the tail, each bit the reference's."""
    n, key = 300_000, np.uint64(2026)
    want = nn_noise.gaussian_noise(key, n, spec.dtype)
    got = nan(n, dtype=spec.dtype)
    grid = (min(math.ceil(n / 256), 32 * MULTIPROCESSORS),)  # cupy_kernels.gaussian_noise's launch: grid-stride
    keys = [np.uint64(k) for k in nn_noise.stream_keys(key)]
    spec.module().get_function("gaussian_noise")(grid, (256,), (*keys, *TABLES, got, np.uint64(n)))
    # the rare paths were taken: first tries rejected, then accepted in the wedge, retried, or sent to the tail
    layer, first, accepted = nn_noise._candidate(np, nn_noise._word(keys[0], np.arange(n, dtype=np.uint64)))
    rejected, ref64 = ~accepted, nn_noise.gaussian_noise(key, n)
    assert rejected.sum() > 2000
    assert (rejected & (layer > 0) & (ref64 == first)).sum() > 500  # the wedge accepted the first candidate
    assert (rejected & (layer > 0) & (ref64 != first)).sum() > 500  # new candidates from the retry stream
    assert (np.abs(ref64) > nn_noise.ZIG_R).sum() > 30  # Marsaglia's tail
    bits = np.uint64 if spec.dtype == np.float64 else np.uint32
    differ = np.flatnonzero(got.view(bits) != want.view(bits))
    shown = differ[:5]
    assert differ.size == 0, f"{differ.size} elements differ, first {shown}: {got[shown]} vs {want[shown]}"


@pytest.mark.parametrize("spec", PTX_SPECS, ids=str)
def test_nvcc_compiles_every_variant_to_ptx(spec):
    """What NVRTC would reject on a device, nvcc rejects here (compiles only: no device needed)."""
    ptx = cuda_emu.nvcc_ptx_check(spec.source())
    names = {"loop": ("rate_forward_loop", "rate_backward_loop"), "noise": ("gaussian_noise",),
             "step": ("rates0", "step_forward", "step_first", "step_backward")}[spec.kind]
    for name in names:
        assert f".entry {name}(" in ptx


# ---- the emulator itself ------------------------------------------------------------------------
SELF_TEST = r"""
typedef double real;
// a block sums its slice in static shared memory (tree, barriers), then adds it to out[0] atomically
extern "C" __global__ void block_sum(const real* __restrict__ x, real* __restrict__ out, int* __restrict__ count,
                                     const int n) {
    __shared__ real part[64];
    const int i = blockIdx.x * blockDim.x + threadIdx.x;
    part[threadIdx.x] = i < n ? x[i] : real(0);
    __syncthreads();
    for (unsigned s = blockDim.x / 2; s > 0; s /= 2) {
        if (threadIdx.x < s) part[threadIdx.x] += part[threadIdx.x + s];
        __syncthreads();
    }
    if (threadIdx.x == 0) { atomicAdd(out, part[0]); atomicAdd(count, 1); }
}

// dynamic shared memory: each thread writes its slot (or `past` slots further) and copies the block's back
extern "C" __global__ void smem_copy(float* __restrict__ out, const int past) {
    extern __shared__ __align__(16) unsigned char smem[];
    float* s = reinterpret_cast<float*>(smem);
    out[blockIdx.x * (2 * blockDim.x) + threadIdx.x] = s[threadIdx.x];  // before any write: 0xFF bytes, NaN
    s[threadIdx.x + past] = (float)(threadIdx.x + 100 * blockIdx.x);
    __syncthreads();
    out[blockIdx.x * (2 * blockDim.x) + blockDim.x + threadIdx.x] = s[blockDim.x - 1 - threadIdx.x];
}
"""


@pytest.fixture(scope="module")
def self_test():
    return cuda_emu.RawModule(code=SELF_TEST)


@pytest.mark.parametrize("schedule", sorted(cuda_emu.SCHEDULES))
def test_emulator_barriers_shared_memory_and_atomics(self_test, schedule):
    x = np.random.default_rng(0).standard_normal(1000)
    out, count = np.zeros(1), np.zeros(1, np.int32)
    with cuda_emu.schedule(schedule):
        self_test.get_function("block_sum")((16,), (64,), (x, out, count, np.int32(x.size)))
    assert count[0] == 16 and abs(out[0] - x.sum()) < 1e-12
    got = np.zeros(4 * 2 * 8, np.float32)
    self_test.get_function("smem_copy")((4,), (8,), (got, np.int32(0)), shared_mem=8 * 4)
    got = got.reshape(4, 2, 8)
    assert np.isnan(got[:, 0]).all()  # shared memory starts as NaN in every block, not as the last block left it
    np.testing.assert_array_equal(got[:, 1], np.arange(7, -1, -1) + 100 * np.arange(4)[:, None])
    with pytest.raises(cuda_emu.LaunchError, match="wrote past its 32 bytes of dynamic shared memory"):
        self_test.get_function("smem_copy")((1,), (8,), (np.zeros(16, np.float32), np.int32(4)), shared_mem=8 * 4)


def test_emulator_refuses_what_a_device_would_get_wrong(self_test):
    """Arguments that would run but give garbage on a GPU, and launches CUDA refuses, raise with the reason."""
    fn = self_test.get_function("block_sum")
    x, out, count = np.ones(64), np.zeros(1), np.zeros(1, np.int32)
    bad = {
        "is const real\\* \\(float64\\) but the array is float32": (x.astype(np.float32), out, count, np.int32(64)),
        "must be C-contiguous": (np.ones(128)[::2], out, count, np.int32(64)),
        "CuPy passes the bytes as they are: use np.int32": (x, out, count, 64),  # a Python int is 8 bytes
        "is written by the kernel but the array is read-only": (x, np.broadcast_to(out, (1,)), count, np.int32(64)),
        "takes 4 arguments": (x, out, count),
    }
    for message, args in bad.items():
        with pytest.raises(cuda_emu.LaunchError, match=message):
            fn((1,), (64,), args)
    with pytest.raises(TypeError, match="tuple of 1 to 3 ints"):
        fn([1], (64,), (x, out, count, np.int32(64)))
    with pytest.raises(cuda_emu.LaunchError, match="exceeds CUDA's limits"):
        fn((1,), (2048,), (x, out, count, np.int32(64)))
    with pytest.raises(cuda_emu.LaunchError, match="dynamic shared memory"):
        fn((1,), (64,), (x, out, count, np.int32(64)), shared_mem=64 * 1024)
    with pytest.raises(NotImplementedError, match="does not model warps"):
        cuda_emu.RawModule(code='extern "C" __global__ void k(float* x) { x[0] = __shfl_sync(~0u, x[1], 0); }')


def test_nvcc_check_reports_the_compiler_error():
    with pytest.raises(cuda_emu.CompileError, match="undefined"):
        cuda_emu.nvcc_ptx_check('extern "C" __global__ void k(float* x) { x[0] = undefined_name; }')
