"""The LSTM's Numba kernels (``minirnn/backends/numba_lstm.py``) against the NumPy reference
(``minirnn.dynamics.lstm``) on the same inputs (STYLE.md P6).

Kernels alone: forward ``(H, C, G)`` and backward ``(dA, dh0, dc0)`` for every cell activation the
reference takes (tanh: the standard LSTM, sigmoid: PsychRNN's; relu, softplus, linear by code),
float64 (rtol 1e-10) and float32 (rtol 1e-5), both relative to the largest magnitude too; initial
states of batch 1 and B; an ensemble (leading network axis K = 3) and other leading axes; odd
sizes; the fallbacks (perturbation, user activation, other or mixed dtypes). The backward is fed
the reference's forward outputs, so that only its own error shows. The kernels' own sigmoid and
tanh (a branch-free exp, so that the gate loops vectorise): within 3 ulp, saturating, NaN kept.

Through the model: ``LSTM(..., backend="numba")`` against ``backend="numpy"``: ``loss_and_grads``
(value and every gradient) for both variants, with masks and penalties, an ensemble; a perturbed
simulation (falls back, same numbers); a few training updates with fixed weights. BLAS is pinned
to one thread so that summation order does not vary between runs.
"""
from __future__ import annotations

import numpy as np
import pytest

numba = pytest.importorskip("numba")

from minirnn import LSTM  # noqa: E402
from minirnn.backends import get_backend, numba_kernels as nk, numba_lstm as nl, numba_math as nm  # noqa: E402
from minirnn.dynamics import lstm as ref  # noqa: E402
from minirnn.nn.activations import ACTIVATIONS, get_activation  # noqa: E402
from minirnn.simulate import LSTMSimulator, Perturbation  # noqa: E402
from lesion_helpers import CountingMasks, Lesion  # noqa: E402
from tolerances import close  # noqa: E402

pytestmark = [pytest.mark.numba, pytest.mark.usefixtures("one_blas_thread")]

DTYPES = [np.float64, np.float32]
VARIANTS = ["standard", "psychrnn"]


def make_case(lead=(3,), T=7, B=3, N=5, dtype=np.float64, state_batch=1, seed=0):
    rng = np.random.default_rng(seed)
    W_h = (1.5 * rng.standard_normal((*lead, 4 * N, N)) / np.sqrt(N)).astype(dtype)
    drive = rng.standard_normal((*lead, T, B, 4 * N)).astype(dtype)
    h0 = (0.5 * rng.standard_normal((*lead, state_batch, N))).astype(dtype)
    c0 = (0.5 * rng.standard_normal((*lead, state_batch, N))).astype(dtype)
    dH = rng.standard_normal((*lead, T, B, N)).astype(dtype)
    return W_h, drive, h0, c0, dH


def check_against_reference(case, act):
    W_h, drive, h0, c0, dH = case
    want = ref.lstm_forward(W_h, drive, h0, c0, act)
    got = nl.lstm_forward(W_h, drive, h0, c0, act)
    assert isinstance(got, tuple) and len(got) == 3
    for g, w in zip(got, want):  # H, C, G
        close(g, w)
    H, C, G = want
    want = ref.lstm_backward(W_h, H, C, G, h0, c0, dH, act)
    got = nl.lstm_backward(W_h, H, C, G, h0, c0, dH, act)
    assert isinstance(got, tuple) and len(got) == 3
    for g, w in zip(got, want):  # dA, dh0, dc0
        close(g, w)


# ------------------------------------------------------------------ the kernels' sigmoid and tanh


@numba.njit
def _gates(x, sig, tanh):
    one = x.dtype.type(1)
    for k in range(x.size):
        sig[k], tanh[k] = nl._sigmoid(x[k], one), nl._tanh(x[k], one)


def ulps(got, exact, dtype):
    """|got - exact| in units of the last place of ``exact`` rounded to ``dtype``."""
    exact_d = exact.astype(dtype)
    return np.abs(got.astype(np.longdouble) - exact) / np.spacing(np.abs(exact_d)).astype(np.longdouble)


@pytest.mark.parametrize("dtype", DTYPES)
def test_sigmoid_and_tanh_within_3_ulp(dtype):
    """The branch-free exp behind the gates: as accurate as NumPy's own (which is 1-3 ulp)."""
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.standard_normal(200_000) * 4, rng.standard_normal(20_000) * 1e-4,
                        rng.uniform(-30, 30, 20_000), [0.0, -0.0, 1e-30, -1e-30, 0.3465, -0.3466]]).astype(dtype)
    sig, tanh = np.empty_like(x), np.empty_like(x)
    _gates(x, sig, tanh)
    xl = x.astype(np.longdouble)
    exact_sig, exact_tanh = 1 / (1 + np.exp(-xl)), np.tanh(xl)
    normal = np.abs(exact_sig) > np.finfo(dtype).tiny * 2**10  # away from where e^x was clamped
    assert ulps(sig, exact_sig, dtype)[normal].max() <= 3
    assert ulps(tanh, exact_tanh, dtype).max() <= 3
    assert np.array_equal(np.signbit(tanh), np.signbit(x))  # odd, down to -0.0


@numba.njit
def _softplus_all(x, out):
    one = x.dtype.type(1)
    for k in range(x.size):
        out[k] = nm._softplus(x[k], one)


@pytest.mark.parametrize("dtype", DTYPES)
def test_softplus_within_4_ulp(dtype):
    """The vectorising softplus (exp and a log1p series of our own) against log(1 + e^x) in long double
    (NumPy's own logaddexp is within 1.5 ulp; ours adds the exp's and the series' roundings)."""
    edge = 87.0 if dtype == np.float32 else 708.0
    rng = np.random.default_rng(1)
    x = np.concatenate([rng.standard_normal(200_000) * 6, rng.uniform(-edge, edge, 50_000), rng.standard_normal(20_000) * 1e-4,
                        [0.0, -0.0, 1e-30, -edge, edge, 30.0, -30.0]]).astype(dtype)
    got = np.empty_like(x)
    _softplus_all(x, got)
    exact = np.logaddexp(x.astype(np.longdouble), np.longdouble(0))
    assert ulps(got, exact, dtype).max() <= 4
    below = np.array([-edge - 1, -1e4], dtype)  # where e^x was clamped: 0 (the exact value is < 2e-38 / 4e-308)
    _softplus_all(below, got[:2])
    assert np.all(got[:2] == 0)


@pytest.mark.parametrize("dtype", DTYPES)
def test_sigmoid_and_tanh_saturate(dtype):
    x = np.array([np.inf, -np.inf, 1e4, -1e4, 100.0, -100.0, 800.0, -800.0, np.nan], dtype)
    sig, tanh = np.empty_like(x), np.empty_like(x)
    _gates(x, sig, tanh)
    np.testing.assert_array_equal(tanh[:-1], np.sign(x[:-1]))
    np.testing.assert_array_equal(sig[::2][:-1], 1)
    assert np.all(sig[1:-1:2] >= 0) and np.all(sig[1:-1:2] < 1e-37)  # e^x saturates near the smallest normal
    assert np.isnan(sig[-1]) and np.isnan(tanh[-1])


# ------------------------------------------------------------------ the kernels alone


@pytest.mark.parametrize("state_batch", [1, 3])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_kernels_match_reference(name, dtype, state_batch):
    """Every cell activation; an ensemble of K = 3 networks (leading axis); N = 11 runs both the
    vectorised body (8 float32 or 4 float64 lanes) and the scalar remainder of every loop."""
    check_against_reference(make_case(lead=(3,), N=11, dtype=dtype, state_batch=state_batch), ACTIVATIONS[name])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(
    "lead, T, B, N",
    [((), 6, 4, 9), ((), 1, 1, 1), ((1,), 1, 1, 1), ((2,), 1, 2, 1), ((), 3, 1, 4), ((2, 3), 4, 2, 3), ((), 40, 5, 7)],
)
def test_shapes_and_odd_sizes(lead, T, B, N, dtype):
    for state_batch in {1, B}:
        check_against_reference(make_case(lead, T, B, N, dtype, state_batch, seed=T + N), ACTIVATIONS["tanh"])


def test_weights_shared_by_the_ensemble_and_initial_states_without_lead():
    """``W_h (4N, N)`` and ``h0, c0 (1, N)`` broadcast over a leading axis, as in the reference."""
    W_h, drive, h0, c0, dH = make_case(lead=(3,), T=5, B=2, N=4)
    check_against_reference((W_h[0], drive, h0[0], c0[0], dH), ACTIVATIONS["sigmoid"])


def test_read_only_and_non_contiguous_inputs():
    W_h, drive, h0, c0, dH = make_case(lead=(), T=4, B=3, N=5)
    drive = np.asfortranarray(drive)
    W_h = W_h[:, ::-1].copy()[:, ::-1]  # a negative-stride view
    for a in (W_h, drive, h0, c0, dH):
        a.flags.writeable = False
    check_against_reference((W_h, drive, h0, c0, dH), ACTIVATIONS["tanh"])


def test_empty_time_axis():
    W_h, drive, h0, c0, _ = make_case(lead=(2,), T=0, B=3, N=4)
    got = nl.lstm_forward(W_h, drive, h0, c0, ACTIVATIONS["tanh"])
    assert [a.shape for a in got] == [(2, 0, 3, 4), (2, 0, 3, 4), (2, 0, 3, 16)]


@pytest.fixture
def no_kernels(monkeypatch):
    """Fail if a compiled loop runs: the fallback must be the vectorised reference."""

    def boom(*args, **kwargs):
        raise AssertionError("a kernel ran where the reference was expected")

    for name in ("_forward_loop", "_backward_loop"):
        monkeypatch.setattr(nl, name, boom)


class _Perturb:
    """A lesion of one connection (all four gates) during steps 1-3 and a clamp of unit 0."""

    def __init__(self, T, N):
        self.W_mask = np.ones((T, N, N))
        self.W_mask[1:4, 2, 1] = 0
        self.clamp_mask = np.zeros((T, 1, N), bool)
        self.clamp_mask[:, :, 0] = True
        self.clamp_value = np.full((T, 1, N), 0.3)


def test_perturbation_falls_back_to_reference(no_kernels):
    W_h, drive, h0, c0, _ = make_case(lead=(), T=5, B=2, N=4)
    act, perturb = ACTIVATIONS["tanh"], _Perturb(5, 4)
    got = nl.lstm_forward(W_h, drive, h0, c0, act, perturb)
    want = ref.lstm_forward(W_h, drive, h0, c0, act, perturb)
    for g, w in zip(got, want):
        np.testing.assert_array_equal(g, w)
    np.testing.assert_array_equal(got[0][..., 0], 0.3)


def test_reference_masks_the_weights_once_per_change_of_lesion():
    """A lesion in steps 2-4 of 8: the reference masks the gate weights when the step's mask changes (3
    times), not at every step, with the same numbers bit for bit as a plain ``(T, N, N)`` mask array."""
    T, N = 8, 4
    W_h, drive, h0, c0, _ = make_case(lead=(2,), T=T, B=2, N=N)
    lesioned = np.ones((N, N))
    lesioned[2, 1] = lesioned[0, 3] = 0
    masks = CountingMasks(np.stack([np.ones((N, N)), lesioned]), [0, 0, 1, 1, 1, 0, 0, 0])
    act = ACTIVATIONS["tanh"]
    got = ref.lstm_forward(W_h, drive, h0, c0, act, Lesion(masks))
    assert masks.reads == 3
    per_step = ref.lstm_forward(W_h, drive, h0, c0, act, Lesion(np.asarray(masks.step_masks)))
    for g, w in zip(got, per_step):
        assert g.tobytes() == w.tobytes()
    assert not np.array_equal(got[0], ref.lstm_forward(W_h, drive, h0, c0, act)[0])  # the lesion acts


def test_user_activation_falls_back_to_reference(no_kernels):
    W_h, drive, h0, c0, dH = make_case(lead=(2,), T=5, B=2, N=4)
    act = get_activation((np.sin, np.cos))
    assert act.code is None
    H, C, G = nl.lstm_forward(W_h, drive, h0, c0, act)
    for g, w in zip((H, C, G), ref.lstm_forward(W_h, drive, h0, c0, act)):
        np.testing.assert_array_equal(g, w)
    got = nl.lstm_backward(W_h, H, C, G, h0, c0, dH, act)
    for g, w in zip(got, ref.lstm_backward(W_h, H, C, G, h0, c0, dH, act)):
        np.testing.assert_array_equal(g, w)


def test_other_and_mixed_dtypes_fall_back_to_reference(no_kernels):
    act = ACTIVATIONS["tanh"]
    W_h, drive, h0, c0, dH = make_case(lead=(), T=3, B=2, N=4, dtype=np.float16)
    H, C, G = nl.lstm_forward(W_h, drive, h0, c0, act)
    assert H.dtype == np.float16
    for g, w in zip((H, C, G), ref.lstm_forward(W_h, drive, h0, c0, act)):
        np.testing.assert_array_equal(g, w)
    for g, w in zip(nl.lstm_backward(W_h, H, C, G, h0, c0, dH, act), ref.lstm_backward(W_h, H, C, G, h0, c0, dH, act)):
        np.testing.assert_array_equal(g, w)
    W_h, drive, h0, c0, _ = make_case(lead=(), T=3, B=2, N=4)
    W_h = W_h.astype(np.float32)  # float32 weights, float64 drive: the reference's promotion rules
    for g, w in zip(nl.lstm_forward(W_h, drive, h0, c0, act), ref.lstm_forward(W_h, drive, h0, c0, act)):
        np.testing.assert_array_equal(g, w)


def test_without_a_blas_everything_falls_back(no_kernels, monkeypatch):
    """Without a BLAS reachable from compiled code (numba_blas.PROVIDER "none") the kernels would not link."""
    monkeypatch.setattr(nl, "HAVE_BLAS", False)
    W_h, drive, h0, c0, _ = make_case(lead=(), T=3, B=2, N=4)
    for g, w in zip(nl.lstm_forward(W_h, drive, h0, c0, ACTIVATIONS["tanh"]),
                    ref.lstm_forward(W_h, drive, h0, c0, ACTIVATIONS["tanh"])):
        np.testing.assert_array_equal(g, w)


def test_backend_table():
    kernels = get_backend("numba").kernels
    assert kernels["lstm_forward"] is nl.lstm_forward and kernels["lstm_backward"] is nl.lstm_backward
    assert all(kernels[name] is fn for name, fn in nk.KERNELS.items())
    assert set(nl.KERNELS) == {"lstm_forward", "lstm_backward"}


# ------------------------------------------------------------------ through the model


MASKS = dict(
    rec_connectivity=np.array([[1, 0, 1, 1, 1], [1, 1, 0, 1, 0], [0, 1, 1, 1, 1], [1, 1, 1, 0, 1], [1, 0, 1, 1, 1]],
                              float),
    input_connectivity=np.array([[1, 0], [1, 1], [0, 1], [1, 1], [1, 0]], float),
    output_connectivity=np.array([[1, 1, 0, 1, 1], [0, 1, 1, 1, 0], [1, 0, 1, 1, 1]], float),
    autapses=False,
)
REGS = dict(L1_in=0.05, L2_rec=0.1, L1_out=0.05, L2_firing_rate=0.2)


def lstm(backend, dtype=np.float64, variant="standard", n_networks=None, **extra):
    """The same small LSTM on either backend, its parameters moved off their tidy initial values."""
    params = dict(N_in=2, N_rec=5, N_out=3, dt=10, tau=100, dtype=np.dtype(dtype).name, seed=3, backend=backend,
                  lstm_variant=variant)
    params.update(extra)
    model = LSTM(params) if n_networks is None else LSTM(params, n_networks=n_networks)
    rng = np.random.default_rng(1)
    for name in model.param_names:
        model.raw[name] = (model.raw[name] + 0.3 * rng.standard_normal(model.raw[name].shape)).astype(model.dtype)
    return model


def batch(B=3, T=8, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((B, T, 2))
    y = rng.random((B, T, 3))
    mask = (rng.random((B, T, 3)) > 0.2).astype(float)
    return x, y, mask


def check_model_grads(dtype, variant, n_networks=None, **extra):
    fast, slow = (lstm(b, dtype, variant, n_networks, **extra) for b in ("numba", "numpy"))
    assert fast.backend.kernels["lstm_forward"] is nl.lstm_forward and "lstm_forward" not in slow.backend.kernels
    for name in slow.raw:
        np.testing.assert_array_equal(fast.raw[name], slow.raw[name])
    x, y, mask = batch()
    value, grads = fast.loss_and_grads(x, y, mask)
    value_ref, grads_ref = slow.loss_and_grads(x, y, mask)
    close(np.asarray(value, dtype), np.asarray(value_ref, dtype))
    assert set(grads) == set(grads_ref) == set(slow.trainable_names())
    for name in grads_ref:
        close(grads[name], grads_ref[name])
    for a, b in zip(fast.test(x), slow.test(x)):
        close(a, b)


@pytest.mark.parametrize("config", ["plain", "masks+regs"])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("variant", VARIANTS)
def test_model_gradients_match_numpy_backend(variant, dtype, config):
    check_model_grads(dtype, variant, **(dict(MASKS, **REGS) if config == "masks+regs" else {}))


@pytest.mark.parametrize("dtype", DTYPES)
def test_model_ensemble_gradients_match_numpy_backend(dtype):
    check_model_grads(dtype, "psychrnn", n_networks=3, L2_firing_rate=0.1, init_cell_train=False)


def test_model_perturbation_falls_back_and_matches(no_kernels):
    """A lesion and a clamp through the simulator: the numba model runs the reference, same numbers."""
    x, _, _ = batch(B=2, T=6)
    perturbation = Perturbation(N_steps=6, N_rec=5).lesion(post=2, pre=1, t_start=1, t_end=4).clamp(0, 0.3)
    runs = [LSTMSimulator(rnn_model=lstm(b, variant="psychrnn")).run_trials(x, perturbation=perturbation)
            for b in ("numba", "numpy")]
    for a, b in zip(*runs):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(runs[0][1][..., 0], 0.3)


def batches(rng, B=4):
    while True:
        x, y, mask = batch(B=B, seed=int(rng.integers(1 << 30)))
        yield x, y, mask, None


@pytest.mark.parametrize("dtype", DTYPES)
def test_training_matches_numpy_backend(dtype):
    """A few Adam updates with fixed weights and masks: the same weights on both backends."""
    F_f = (np.random.default_rng(5).random((5, 7)) > 0.5).astype(float)
    train_params = {"training_iters": 4 * 6, "verbosity": False, "learning_rate": 0.01,
                    "fixed_weights": {"W_f": F_f, "b_c": np.ones(5)}}
    models, before = {}, None
    for backend in ("numba", "numpy"):
        model = lstm(backend, dtype, "standard", **MASKS)
        before = before or {k: np.array(v) for k, v in model.raw.items()}
        model.train(batches(np.random.default_rng(7)), dict(train_params))  # the same 6 batches
        models[backend] = model
    fast, slow = models["numba"], models["numpy"]
    assert np.array_equal(fast.raw["W_f"][F_f == 1], before["W_f"][F_f == 1])
    assert np.array_equal(fast.raw["b_c"], before["b_c"])
    for name in slow.raw:
        if name != "b_c":
            assert not np.array_equal(fast.raw[name], before[name]), name  # it trained
        close(fast.raw[name], slow.raw[name])
