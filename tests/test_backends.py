"""Every available backend against the NumPy reference on the same inputs (STYLE.md P6).

Numba: the kernels of ``minirnn/backends/numba_kernels.py`` against ``minirnn.dynamics.rate``, for
each built-in activation, float64 and float32, with and without noise, ``x0`` of batch 1 and B,
per-unit alpha, a leading network axis, odd sizes, and both loop structures (whole-loop @njit and
NumPy matmul + fused step); the fallbacks (perturbation, user activation); the counter-based
noise (``gaussian_noise``) bit for bit. BLAS is pinned to one thread so that summation order does not vary between runs.

``rate_loss_and_grads`` (one fused training update) against ``Basic._loss_and_grads`` on the numpy
backend: value and every gradient, each activation, masks and Dale, per-unit tau, noise, weight and
firing-rate penalties, an ensemble, batch 1, y and mask shared by or per network; and the fallbacks.

Compile time counts: every test here uses the same few signatures (float32 and float64, C arrays).
"""
from __future__ import annotations

import numpy as np
import pytest

numba = pytest.importorskip("numba")

from minirnn.backends import get_backend, numba_kernels as nk  # noqa: E402
from minirnn.dynamics import rate  # noqa: E402
from minirnn.nn.activations import ACTIVATIONS, Activation, get_activation  # noqa: E402
from lesion_helpers import CountingMasks, Lesion  # noqa: E402
from tolerances import close  # noqa: E402

pytestmark = [pytest.mark.numba, pytest.mark.usefixtures("one_blas_thread")]

DTYPES = [np.float64, np.float32]
STRUCTURES = ["whole-loop", "matmul"]


@pytest.fixture(params=STRUCTURES)
def structure(request, monkeypatch):
    """Run the kernels with the whole-loop kernel or with NumPy matmul per step, whatever N is."""
    monkeypatch.setattr(nk, "WHOLE_LOOP_MAX_N", 1 << 30 if request.param == "whole-loop" else 0)
    return request.param


def make_case(lead=(2,), T=7, B=3, N=5, dtype=np.float64, x0_batch=1, noise=True, seed=0):
    rng = np.random.default_rng(seed)
    W = (1.2 * rng.standard_normal((*lead, N, N)) / np.sqrt(N)).astype(dtype)
    drive = rng.standard_normal((*lead, T, B, N)).astype(dtype)
    x0 = (0.5 * rng.standard_normal((*lead, x0_batch, N))).astype(dtype)
    alpha = rng.uniform(0.05, 0.5, (*lead, 1, N)).astype(dtype)  # per-unit time constants
    noise_scale = rng.uniform(0.05, 0.3, (*lead, 1, N)).astype(dtype) if noise else None
    xi = rng.standard_normal((*lead, T, B, N)).astype(dtype) if noise else None
    dX = rng.standard_normal((*lead, T, B, N)).astype(dtype)
    return W, drive, x0, alpha, noise_scale, xi, dX


def check_against_reference(case, act):
    W, drive, x0, alpha, ns, xi, dX = case
    X_ref = rate.recur_forward(W, drive, x0, alpha, ns, xi, act)
    X = nk.rate_forward(W, drive, x0, alpha, ns, xi, act)
    close(X, X_ref)
    # The backward is compared on the same states, so that only its own error shows.
    d_drive_ref, d_x0_ref = rate.recur_backward(W, X_ref, x0, dX, alpha, act)
    d_drive, d_x0 = nk.rate_backward(W, X_ref, x0, dX, alpha, act)
    close(d_drive, d_drive_ref)
    close(d_x0, d_x0_ref)


@pytest.mark.parametrize("x0_batch", [1, 3])
@pytest.mark.parametrize("noise", [False, True])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_kernels_match_reference(name, dtype, noise, x0_batch, structure):
    case = make_case(lead=(2,), T=7, B=3, N=5, dtype=dtype, x0_batch=x0_batch, noise=noise)
    check_against_reference(case, ACTIVATIONS[name])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(
    "lead, T, B, N",
    [((), 6, 4, 9), ((), 1, 1, 1), ((1,), 1, 1, 1), ((2,), 1, 2, 1), ((), 3, 1, 4), ((2, 3), 4, 2, 3)],
)
def test_shapes_and_odd_sizes(lead, T, B, N, dtype, structure):
    for x0_batch in {1, B}:
        check_against_reference(make_case(lead, T, B, N, dtype, x0_batch, noise=True, seed=T + N), ACTIVATIONS["tanh"])


def test_larger_network_and_shared_noise_scale():
    """N above the default threshold (default structure choice), scalar noise scale (1, 1)."""
    W, drive, x0, alpha, ns, xi, dX = make_case(lead=(), T=5, B=4, N=nk.WHOLE_LOOP_MAX_N + 3, dtype=np.float64)
    ns = np.full((1, 1), 0.2)
    check_against_reference((W, drive, x0, alpha, ns, xi, dX), ACTIVATIONS["relu"])


def test_empty_time_axis():
    W, drive, x0, alpha, ns, xi, dX = make_case(lead=(2,), T=0, B=3, N=4)
    X = nk.rate_forward(W, drive, x0, alpha, ns, xi, ACTIVATIONS["relu"])
    assert X.shape == (2, 0, 3, 4)
    d_drive, d_x0 = nk.rate_backward(W, X, x0, dX, alpha, ACTIVATIONS["relu"])
    assert d_drive.shape == (2, 0, 3, 4)
    np.testing.assert_array_equal(d_x0, np.zeros((2, 3, 4)))


def test_read_only_and_non_contiguous_inputs():
    W, drive, x0, alpha, ns, xi, dX = make_case(lead=(), T=4, B=3, N=5)
    drive_f = np.asfortranarray(drive)
    for a in (W, drive_f, x0, alpha, ns, xi):
        a.flags.writeable = False
    check_against_reference((W, drive_f, x0, alpha, ns, xi, dX), ACTIVATIONS["softplus"])


class _Clamp:
    def __init__(self, T, B, N):
        self.clamp_mask = np.zeros((T, 1, N), bool)
        self.clamp_mask[:, :, 0] = True
        self.clamp_value = np.full((T, 1, N), 0.3)


@pytest.fixture
def no_kernels(monkeypatch):
    """Fail if any compiled loop runs: the fallback must be the vectorised reference."""

    def boom(*args, **kwargs):
        raise AssertionError("a kernel ran where the reference was expected")

    for name in ("_forward_loop", "_backward_loop", "_forward_matmul", "_backward_matmul"):
        monkeypatch.setattr(nk, name, boom)


def test_perturbation_falls_back_to_reference(no_kernels):
    W, drive, x0, alpha, ns, xi, dX = make_case(lead=(), T=5, B=2, N=4)
    act = ACTIVATIONS["relu"]
    perturb = _Clamp(5, 2, 4)
    X = nk.rate_forward(W, drive, x0, alpha, ns, xi, act, perturb)
    np.testing.assert_array_equal(X, rate.recur_forward(W, drive, x0, alpha, ns, xi, act, perturb))
    np.testing.assert_array_equal(X[..., 0], 0.3)


@pytest.mark.parametrize("lead", [(), (2,)])
def test_reference_masks_the_weights_once_per_change_of_lesion(lead):
    """A lesion in steps 2-4 of 8 (two distinct masks): the reference forms ``W_alpha * mask`` when step k's
    mask differs from step k-1's (3 times), not at every step, with the same numbers bit for bit as a
    plain ``(T, N, N)`` mask array (masked at every step)."""
    T, N = 8, 5
    W, drive, x0, alpha, ns, xi, _ = make_case(lead=lead, T=T, B=3, N=N)
    lesioned = np.ones((N, N))
    lesioned[2, 1] = lesioned[0, 3] = 0
    masks = CountingMasks(np.stack([np.ones((N, N)), lesioned]), [0, 0, 1, 1, 1, 0, 0, 0])
    act = ACTIVATIONS["tanh"]
    X = rate.recur_forward(W, drive, x0, alpha, ns, xi, act, Lesion(masks))
    assert masks.reads == 3
    X_per_step = rate.recur_forward(W, drive, x0, alpha, ns, xi, act, Lesion(np.asarray(masks.step_masks)))
    assert X.tobytes() == X_per_step.tobytes()
    assert not np.array_equal(X, rate.recur_forward(W, drive, x0, alpha, ns, xi, act))  # the lesion acts


def test_user_activation_falls_back_to_reference(no_kernels):
    W, drive, x0, alpha, ns, xi, dX = make_case(lead=(2,), T=5, B=2, N=4)
    act = get_activation((np.sin, np.cos))
    assert act.code is None
    X = nk.rate_forward(W, drive, x0, alpha, ns, xi, act)
    np.testing.assert_array_equal(X, rate.recur_forward(W, drive, x0, alpha, ns, xi, act))
    got = nk.rate_backward(W, X, x0, dX, alpha, act)
    want = rate.recur_backward(W, X, x0, dX, alpha, act)
    for g, w in zip(got, want):
        np.testing.assert_array_equal(g, w)


def test_other_dtypes_fall_back_to_reference(no_kernels):
    W, drive, x0, alpha, ns, xi, dX = make_case(lead=(), T=3, B=2, N=4, dtype=np.float16, noise=False)
    act = ACTIVATIONS["linear"]
    X = nk.rate_forward(W, drive, x0, alpha, act=act)
    assert X.dtype == np.float16
    np.testing.assert_array_equal(X, rate.recur_forward(W, drive, x0, alpha, act=act))


def test_custom_activation_with_code_runs_kernel():
    """A hand-built Activation that carries a built-in code uses that code's kernel."""
    case = make_case(lead=(), T=4, B=2, N=3)
    check_against_reference(case, Activation("my_tanh", np.tanh, lambda x: 1 - np.tanh(x) ** 2, 1))


def test_backend_table():
    from minirnn.backends import numba_lstm

    backend = get_backend("numba")
    assert backend.kernels == {**nk.KERNELS, **numba_lstm.KERNELS}  # the LSTM's: tests/test_backends_lstm.py
    assert set(nk.KERNELS) == {"rate_forward", "rate_backward", "rate_loss_and_grads", "gaussian_noise"}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(13, 7, 5), 1001, (0, 3), ()])
def test_gaussian_noise_equals_reference(dtype, shape):
    """The compiled counter-based noise is the reference's, bit for bit (see same_noise)."""
    from minirnn.nn import noise

    for key in (np.uint64(0), np.uint64(2**64 - 1), noise.draw_key(np.random.default_rng(4))):
        want = noise.gaussian_noise(key, shape, dtype)
        got = nk.KERNELS["gaussian_noise"](key, shape, dtype)
        assert got.dtype == want.dtype and got.shape == want.shape
        same_noise(got, want)


def same_noise(got, want):
    """Equal bit for bit where both sides' exp and log1p agree: here, everywhere. NumPy may take its own
    vectorised exp/log1p (AVX-512 builds use SVML) where Numba calls the C library's, and the rare
    rejected or tail elements may then differ in the last bit; so: every first try (98.8 % of the
    elements) exact, the rest within 2 ulp."""
    if np.array_equal(got, want):
        return
    np.testing.assert_allclose(got, want, rtol=4 * np.finfo(want.dtype).eps, atol=0)
    assert (got == want).mean() > 0.985


def test_gaussian_noise_many_elements_threads_do_not_matter():
    """2 million elements (about 24,000 rejected first tries and 500 tail draws, where exp and log1p
    run) equal the reference's (same_noise), and are the same bits on any number of threads."""
    from minirnn.nn import noise

    key = np.uint64(123456789)
    want = noise.gaussian_noise(key, 2_000_003)
    try:
        nk.set_num_threads(1)
        first = nk.gaussian_noise(key, 2_000_003)
        same_noise(first, want)
        for threads in (2, 3):
            nk.set_num_threads(threads)
            np.testing.assert_array_equal(nk.gaussian_noise(key, 2_000_003), first)  # the same code: bit for bit
    finally:
        nk.set_num_threads(None)


def test_set_num_threads_validates():
    with pytest.raises(ValueError, match="positive integer"):
        nk.set_num_threads(0)


# ------------------------------------------------------------------ the fused update (Basic)


def _basic(backend, dtype, act, n_networks=None, **extra):
    from minirnn import Basic

    N_rec = 6
    params = {"N_in": 2, "N_rec": N_rec, "N_out": 3, "dt": 10, "tau": np.linspace(30, 100, N_rec), "T": 70,
              "N_batch": 3, "seed": 0, "backend": backend, "dtype": np.dtype(dtype).name, "transfer_function": act,
              "rec_noise": 0.1}
    params.update(extra)
    kwargs = {} if n_networks is None else {"n_networks": n_networks, "seeds": list(range(n_networks))}
    model = Basic(params, **kwargs)
    rng = np.random.default_rng(3)  # nonzero biases, so that their paths count
    for name in ("b_rec", "b_out", "init_state"):
        model.raw[name] = model.xp.asarray(rng.uniform(-0.3, 0.5, model.raw[name].shape), dtype=model.dtype)
    return model


def check_fused_update(dtype, act, B=3, noise=True, n_networks=None, per_network_data=False, **extra):
    lead = () if n_networks is None else (n_networks,)
    T = 7
    rng = np.random.default_rng(11)
    data = (*lead, B, T) if per_network_data else (B, T)
    x, y = rng.standard_normal((*data, 2)), rng.standard_normal((*data, 3))
    mask = rng.uniform(0, 1, (*data, 3)) * (rng.random((*data, 3)) < 0.8)
    xi = rng.standard_normal((*lead, T, B, 6)) if noise else None
    ref, fast = (_basic(b, dtype, act, n_networks, **extra) for b in ("numpy", "numba"))
    assert "rate_loss_and_grads" not in ref.backend.kernels and fast._fused_applies()
    x, y, mask = ref._check_batch(x, y, mask)
    value_ref, grads_ref = ref._loss_and_grads(x, y, mask, xi)
    value, grads = fast._loss_and_grads(x, y, mask, xi)
    close(np.asarray(value), np.asarray(value_ref))
    assert set(grads) == set(grads_ref)
    for name in grads_ref:
        close(grads[name], grads_ref[name])


@pytest.mark.parametrize("noise", [False, True])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("act", sorted(ACTIVATIONS))
def test_fused_update_matches_reference(act, dtype, noise):
    check_fused_update(dtype, act, noise=noise)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("act", ["relu", "softplus"])
def test_fused_update_dale_masks_penalties(act, dtype):
    rng = np.random.default_rng(5)
    check_fused_update(dtype, act, dale_ratio=0.5, autapses=False,
                       input_connectivity=(rng.random((6, 2)) < 0.7).astype(float),
                       rec_connectivity=(rng.random((6, 6)) < 0.7).astype(float),
                       output_connectivity=(rng.random((3, 6)) < 0.8).astype(float),
                       L1_in=0.1, L2_rec=0.2, L1_out=0.05, L2_firing_rate=0.3)


@pytest.mark.parametrize("per_network_data", [False, True])
@pytest.mark.parametrize("dtype", DTYPES)
def test_fused_update_ensemble(dtype, per_network_data):
    check_fused_update(dtype, "tanh", n_networks=2, per_network_data=per_network_data, L2_firing_rate=0.2)


@pytest.mark.parametrize("dtype", DTYPES)
def test_fused_update_batch_one_and_frozen_parameters(dtype):
    check_fused_update(dtype, "sigmoid", B=1, W_in_train=False, init_state_train=False)


def test_fused_update_draws_the_same_noise():
    """With a Generator, the fused path draws what the reference draws (and leaves the stream as it does)."""
    ref, fast = (_basic(b, np.float64, "relu") for b in ("numpy", "numba"))
    rng = np.random.default_rng(2)
    x, y, mask = ref._check_batch(rng.standard_normal((3, 7, 2)), rng.standard_normal((3, 7, 3)), np.ones((3, 7, 3)))
    value_ref, grads_ref = ref._loss_and_grads(x, y, mask, np.random.default_rng(9))
    g = np.random.default_rng(9)
    value, grads = fast._loss_and_grads(x, y, mask, g)
    close(np.asarray(value), np.asarray(value_ref))
    for name in grads_ref:
        close(grads[name], grads_ref[name])
    g_ref = np.random.default_rng(9)
    g_ref.integers(0, 2 ** 64, dtype=np.uint64)  # one noise key per forward pass
    assert g.bit_generator.state == g_ref.bit_generator.state


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("B", [96, 130])
def test_fused_update_in_chunks_of_trials(dtype, B):
    """Batches split into chunks (here 2) give the reference's numbers, noise made in the kernel from its
    key included, and the same numbers bit for bit on 1 or 2 threads (the split depends on B only)."""
    assert len(nk.batch_chunks(B)) - 1 == 2
    ref, fast = (_basic(b, dtype, "tanh", L2_firing_rate=0.1) for b in ("numpy", "numba"))
    rng = np.random.default_rng(4)
    x, y, mask = ref._check_batch(rng.standard_normal((B, 7, 2)), rng.standard_normal((B, 7, 3)),
                                  (rng.random((B, 7, 3)) < 0.9).astype(float))
    value_ref, grads_ref = ref._loss_and_grads(x, y, mask, np.random.default_rng(9))
    results = []
    try:
        for threads in (1, 2):
            nk.set_num_threads(threads)
            results.append(fast._loss_and_grads(x, y, mask, np.random.default_rng(9)))
    finally:
        nk.set_num_threads(None)
    (value, grads), (value2, grads2) = results
    close(np.asarray(value), np.asarray(value_ref))
    assert np.asarray(value).tobytes() == np.asarray(value2).tobytes()
    for name in grads_ref:
        close(grads[name], grads_ref[name])
        np.testing.assert_array_equal(grads[name], grads2[name])


@pytest.mark.parametrize("C", range(1, 8))
def test_fused_update_sums_chunks_in_waves_bit_for_bit(monkeypatch, C):
    """The per-chunk float64 gradient sums live in one slot per thread, not one per chunk (memory bounded
    whatever the batch), and are added in chunk order: the same bits as the former ``(C, ...)`` array of
    every chunk's sums reduced by ``.sum(0)`` (kept here as the oracle), on 1, 2 or 3 threads."""
    rng = np.random.default_rng(8)
    N, T, I, O, B = 5, 3, 2, 3, 64 * C
    assert len(nk.batch_chunks(B)) - 1 == C
    W = {"W_in": rng.standard_normal((N, I)), "W_rec": rng.standard_normal((N, N)) / 3,
         "W_out": rng.standard_normal((O, N)), "b_rec": rng.standard_normal(N), "b_out": rng.standard_normal(O),
         "init_state": rng.standard_normal((1, N))}
    x, y, mask = rng.standard_normal((B, T, I)), rng.standard_normal((B, T, O)), rng.random((B, T, O))
    kernel, seen = nk._loss_and_grads_chunk, {}

    def recording(*args):  # each chunk writes its sums into a zeroed slot: record them, and the slots held
        kernel(*args)
        b0, g_augT, g_out = args[18], args[23], args[24]
        seen[b0] = (g_augT.copy(), g_out.copy(), g_augT.base.shape[0])

    monkeypatch.setattr(nk, "_loss_and_grads_chunk", recording)
    results = []
    try:
        for threads in (1, 2, 3):
            nk.set_num_threads(threads)
            seen.clear()
            value, grads = nk.rate_loss_and_grads(W, x, y, mask, np.full((1, N), 0.2), None, None,
                                                  ACTIVATIONS["tanh"], fr_coef=np.asarray(0.1))
            assert sorted(seen) == nk.batch_chunks(B)[:-1]
            assert max(slots for _, _, slots in seen.values()) == min(C, threads)
            # the oracle: the former code's sum over a (C, K, ...) array of every chunk's float64 sums
            g_augT = np.stack([seen[b0][0] for b0 in sorted(seen)]).sum(0)  # (K, N + I + 1, N)
            g_out = np.stack([seen[b0][1] for b0 in sorted(seen)]).sum(0)  # (K, O, N + I + 1)
            expected = {"W_rec": g_augT[0, :N].T, "W_in": g_augT[0, N:N + I].T, "b_rec": g_augT[0, N + I],
                        "W_out": g_out[0, :, :N], "b_out": g_out[0, :, N + I]}
            for name, g in expected.items():
                assert grads[name].tobytes() == np.ascontiguousarray(g).tobytes(), (name, threads)
            results.append((value, grads))
    finally:
        nk.set_num_threads(None)
    for value, grads in results[1:]:
        assert np.asarray(value).tobytes() == np.asarray(results[0][0]).tobytes()
        for name in grads:
            assert grads[name].tobytes() == results[0][1][name].tobytes(), name


def _no_fused(monkeypatch):
    def boom(*args, **kwargs):
        raise AssertionError("the fused kernel ran where the reference was expected")

    monkeypatch.setitem(nk.KERNELS, "rate_loss_and_grads", boom)


def test_fused_update_not_used_for_custom_loss_activation_or_regularizer(monkeypatch):
    _no_fused(monkeypatch)
    rng = np.random.default_rng(0)
    batch = rng.standard_normal((3, 7, 2)), rng.uniform(0, 1, (3, 7, 3)), np.ones((3, 7, 3))
    custom = [{"loss_function": "binary_cross_entropy"}, {"transfer_function": (np.sin, np.cos)},
              {"custom_regularization": lambda W, R: (0.0 * R.sum(), {})}]
    for extra in custom:
        params = {k: v for k, v in extra.items() if k != "transfer_function"}
        model = _basic("numba", np.float64, extra.get("transfer_function", "relu"), **params)
        assert not model._fused_applies()
        model.loss_and_grads(*batch)  # the reference path: no AssertionError


def test_cupy_time_loop_strategy_choice(monkeypatch):
    """The CuPy backend's choice between its time-loop kernels is plain Python: checked here, without a GPU."""
    from minirnn.backends import cupy_kernels as ck

    monkeypatch.setattr(ck, "_multiprocessors", lambda: 132)  # an H100/H200
    assert ck.choose_strategy(50, 128, 1, np.float32) == "loop"
    assert ck.choose_strategy(50, 4096, 1, np.float32) == "loop"  # N_rec <= 64: loop at any batch
    assert ck.choose_strategy(256, 128, 1, np.float32) == "loop"
    assert ck.choose_strategy(256, 1024, 1, np.float32) == "step"
    assert ck.choose_strategy(256, 128, 4, np.float32) == "step"  # 512 trials in all
    assert ck.choose_strategy(1024, 128, 1, np.float32) == "step"
    assert ck.loop_tiling(2048, 128, 1, 4) is None  # more than 4 units per thread
    threads, upt, tpb = ck.loop_tiling(1000, 3, 1, 8)
    assert (threads, upt, tpb) == (256, 4, 1)
    assert ck.loop_tiling(8, 4300, 1, 8) == (32, 1, 8)  # many trials: 8 per block, still 2 blocks per SM
    monkeypatch.setattr(ck, "STRATEGY", "step-cupy")
    assert ck.choose_strategy(50, 128, 1, np.float32) == "step-cupy"


def test_auto_falls_back_to_numpy_loudly_when_numba_is_installed_but_broken(monkeypatch):
    import minirnn.backends as backends

    def broken():
        raise OSError("could not load llvmlite's shared library")

    monkeypatch.setattr(backends, "_numba_backend", broken)
    monkeypatch.setattr(backends, "_fallback_warned", [])
    with pytest.warns(UserWarning, match="NumPy reference.*OSError: could not load llvmlite"):
        assert get_backend("auto").name == "numpy"
    with pytest.raises(OSError, match="llvmlite"):
        get_backend("numba")  # an explicit request shows the error itself


def test_set_num_threads_does_nothing_where_the_numba_backend_cannot_load(monkeypatch):
    import sys

    import minirnn.backends as backends

    monkeypatch.setitem(sys.modules, "minirnn.backends.numba_kernels", None)  # its import now fails
    assert backends.set_num_threads(1) is None


def test_overlapping_trainings_in_threads_put_blas_back(monkeypatch):
    import threading

    from threadpoolctl import threadpool_info, threadpool_limits

    from minirnn import Basic
    from minirnn.tasks import PerceptualDiscrimination

    def blas_threads():
        return [i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"]

    def train(seed):
        task = PerceptualDiscrimination(dt=10, tau=100, T=300, N_batch=16, seed=seed)
        Basic(dict(task.get_task_params(), N_rec=16, seed=seed, backend="numba")).train(
            task, {"training_iters": 16 * 40, "verbosity": False})  # blas_threads "auto": 1 while training

    with threadpool_limits(limits=2, user_api="blas"):
        before = blas_threads()
        threads = [threading.Thread(target=train, args=(seed,)) for seed in (1, 2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert blas_threads() == before


def test_reference_accepts_a_list_of_per_step_masks():
    # a list's `index` is a method, not a StepMasks' per-step index
    from minirnn.dynamics import rate
    from minirnn.nn.activations import get_activation

    T, B, N = 5, 2, 3
    rng = np.random.default_rng(0)
    W, drive, x0, alpha = rng.normal(size=(N, N)), rng.normal(size=(T, B, N)), np.zeros((1, N)), np.full((1, N), 0.1)
    mask = np.ones((N, N))
    mask[0, 1] = 0

    class AsList:
        W_mask, clamp_mask = [mask] * T, None

    class AsArray:
        W_mask, clamp_mask = np.stack([mask] * T), None

    relu = get_activation("relu")
    np.testing.assert_array_equal(rate.recur_forward(W, drive, x0, alpha, act=relu, perturb=AsList),
                                  rate.recur_forward(W, drive, x0, alpha, act=relu, perturb=AsArray))


@pytest.mark.parametrize("dtype", DTYPES)
def test_a_nan_state_stays_nan_through_relu_as_in_the_reference(dtype):
    """np.maximum(NaN, 0) is NaN; the kernels' relu used to make it 0, so the fused update reported a finite
    loss for a network whose states were NaN."""
    from minirnn import Basic

    p = dict(N_in=2, N_rec=6, N_out=2, dt=10, tau=100, seed=1, dtype=np.dtype(dtype).name)
    ref, fast = Basic(dict(p, backend="numpy")), Basic(dict(p, backend="numba"))
    for m in (ref, fast):
        m.raw["W_rec"][0, 0] = np.nan
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((3, 5, 2)), rng.standard_normal((3, 5, 2))
    assert np.isnan(ref.loss_and_grads(x, y, np.ones_like(y))[0])
    assert np.isnan(fast.loss_and_grads(x, y, np.ones_like(y))[0])
    assert np.isnan(fast.test(x)[0]).any()
