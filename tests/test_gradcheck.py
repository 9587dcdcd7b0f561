"""The core engine's gradient checks for the rate RNN ``Basic`` (STYLE.md P7, DESIGN.md §9).

Float64, tiny networks (N_rec <= 8, T <= 12, B <= 3), central differences with h = 1e-6 on every
entry of every raw parameter (``minirnn.gradcheck``), over the constraint grid: each transfer
function x Dale on/off x masks (with autapses off) x each loss; each regularizer; per-unit tau; a
user (f, df) pair; fixed weights. Pass level: relative error ``||g - g_fd|| / max(||g||, ||g_fd||)``
below 1e-6 for every parameter. Kinks (ReLU, Dale's |.|, the BCE clip) are detected, not passed.
"""
import numpy as np
import pytest
from hypothesis import assume, example, given, settings
from hypothesis import strategies as st

from minirnn import Basic, gradcheck
from minirnn.errors import ParameterError
from minirnn.testing import GradientCheckError, check_grads, check_grads_random_direction

TOL = 1e-6
ACTIVATIONS = ["relu", "tanh", "sigmoid", "softplus", "linear"]
PARAMS = ("W_in", "W_rec", "W_out", "b_rec", "b_out", "init_state")


def make_model(N_in=2, N_rec=5, N_out=2, seed=0, masks=False, bce=False, **extra):
    """A float64 Basic with nonzero biases (so every parameter has a gradient)."""
    rng = np.random.default_rng(seed + 100)
    params = dict(N_in=N_in, N_rec=N_rec, N_out=N_out, dt=10, tau=50, dtype="float64", seed=seed,
                  backend="numpy")
    params.update(extra)
    if masks:  # random sparse connectivity, self-connections removed
        params["autapses"] = False
        params["input_connectivity"] = (rng.random((N_rec, N_in)) < 0.7).astype(float)
        params["rec_connectivity"] = (rng.random((N_rec, N_rec)) < 0.7).astype(float)
        params["output_connectivity"] = (rng.random((N_out, N_rec)) < 0.7).astype(float)
    if bce:
        params["loss_function"] = "binary_cross_entropy"
    model = Basic(params)
    model.raw["b_rec"][:] = rng.normal(0, 0.3, N_rec)
    model.raw["b_out"][:] = 0.5 if bce else rng.normal(0, 0.3, N_out)
    if bce:  # keep outputs well inside (eps, 1 - eps): small readout around b_out = 0.5
        model.raw["W_out"] *= 0.3 / max(1.0, float(np.abs(model.raw["W_out"]).max()))
    return model


def make_batch(model, B=3, T=7, seed=1, bce=False):
    rng = np.random.default_rng(seed)
    x = rng.normal(0.5, 1.0, size=(B, T, model.N_in))
    y = rng.uniform(0, 1, size=(B, T, model.N_out)) if bce else rng.normal(size=(B, T, model.N_out))
    mask = (rng.random((B, T, model.N_out)) < 0.8).astype(float)
    return x, y, mask


def assert_passes(model, x, y, mask, **kwargs):
    before = {k: v.copy() for k, v in model.raw.items()}
    result = gradcheck(model, x, y, mask, **kwargs)
    assert set(result) == set(model.trainable_names())
    assert max(result.values()) < TOL, result.report(TOL)
    assert not result.kinks, result.report(TOL)
    for name, value in model.raw.items():  # the check leaves the weights exactly as they were
        np.testing.assert_array_equal(value, before[name])
    return result


# ---- the constraint grid ---------------------------------------------------------------------------
@pytest.mark.parametrize("loss", ["mse", "bce"])
@pytest.mark.parametrize("masks", [False, True], ids=["dense", "masked-no-autapses"])
@pytest.mark.parametrize("dale", [None, 0.6], ids=["no-dale", "dale"])
@pytest.mark.parametrize("act", ACTIVATIONS)
def test_grid(act, dale, masks, loss):
    bce = loss == "bce"
    model = make_model(transfer_function=act, dale_ratio=dale, masks=masks, bce=bce, seed=ACTIVATIONS.index(act))
    x, y, mask = make_batch(model, bce=bce)
    if bce:
        z, _ = model.test(x)
        assert 0.01 < z.min() and z.max() < 0.99  # away from the clip at eps / 1 - eps
    assert_passes(model, x, y, mask)


REGULARIZERS = ["L1_in", "L1_rec", "L1_out", "L2_in", "L2_rec", "L2_out", "L2_firing_rate"]


@pytest.mark.parametrize("dale", [None, 0.6], ids=["no-dale", "dale"])
@pytest.mark.parametrize("reg", REGULARIZERS)
def test_each_regularizer(reg, dale):
    model = make_model(transfer_function="tanh", dale_ratio=dale, masks=True, **{reg: 0.3})
    x, y, mask = make_batch(model)
    value, _ = model.loss_and_grads(x, y, mask)
    plain = make_model(transfer_function="tanh", dale_ratio=dale, masks=True)
    assert value > plain.loss_and_grads(x, y, mask)[0]  # the penalty is really there
    assert_passes(model, x, y, mask)


def balance_penalty(weights_eff, rates):
    """Custom regularizer: c * mean_i (sum_j W_rec_eff[i, j])^2 plus c * mean(rates^3)."""
    c = 0.2
    W = weights_eff["W_rec"]
    row = W.sum(axis=-1, keepdims=True)                       # (N, 1)
    value = c * (row ** 2).mean() + c * (rates ** 3).mean()
    grads = {"W_rec": np.broadcast_to(2 * c * row / W.shape[-2], W.shape),
             "rates": 3 * c * rates ** 2 / rates.size}
    return value, grads


@pytest.mark.parametrize("dale", [None, 0.6], ids=["no-dale", "dale"])
def test_custom_regularizer(dale):
    model = make_model(transfer_function="softplus", dale_ratio=dale, custom_regularization=balance_penalty)
    assert_passes(model, *make_batch(model))


def bias_penalty(weights_eff, rates):
    """Custom regularizer on the unconstrained parameters: c * (sum b_rec^2 + sum init_state^2)."""
    c = 0.3
    value = c * ((weights_eff["b_rec"] ** 2).sum() + (weights_eff["init_state"] ** 2).sum())
    return value, {"b_rec": 2 * c * weights_eff["b_rec"], "init_state": 2 * c * weights_eff["init_state"]}


def test_custom_regularizer_on_biases_and_initial_state():
    model = make_model(transfer_function="tanh", custom_regularization=bias_penalty)
    x, y, mask = make_batch(model)
    assert_passes(model, x, y, mask)
    plain = make_model(transfer_function="tanh")
    with_penalty, without = model.loss_and_grads(x, y, mask)[1], plain.loss_and_grads(x, y, mask)[1]
    np.testing.assert_allclose(with_penalty["b_rec"] - without["b_rec"], 0.6 * model.raw["b_rec"], rtol=1e-9)


def test_all_regularizers_together_with_custom_loss():
    def huber_like(z, y, mask):  # smooth: sum(log cosh(mask (z - y))) / n
        e = mask * (z - y)
        n = z.shape[-1] * z.shape[-2] * z.shape[-3]
        return np.log(np.cosh(e)).sum(axis=(-3, -2, -1)) / n, mask * np.tanh(e) / n

    regs = {k: 0.05 for k in REGULARIZERS}
    model = make_model(transfer_function="tanh", dale_ratio=0.6, masks=True, loss_function=huber_like,
                       custom_regularization=balance_penalty, **regs)
    assert_passes(model, *make_batch(model))


@pytest.mark.parametrize("act", ["relu", "tanh"])
def test_per_unit_tau(act):
    tau = np.array([20.0, 50.0, 100.0, 150.0, 400.0, 35.0])
    model = make_model(N_rec=6, tau=tau, transfer_function=act, dale_ratio=0.5)
    assert model.alpha.shape[-1] == 6 and len(set(np.ravel(model.alpha))) == 6
    assert_passes(model, *make_batch(model, T=12))


def swish(x):  # f(x) = x sigmoid(x)
    return x / (1 + np.exp(-x))


def dswish(x):  # f'(x) = s + x s (1 - s)
    s = 1 / (1 + np.exp(-x))
    return s + x * s * (1 - s)


@pytest.mark.parametrize("dale", [None, 0.6], ids=["no-dale", "dale"])
def test_user_activation_pair(dale):
    model = make_model(transfer_function=(swish, dswish), dale_ratio=dale, masks=True)
    assert model.activation.name == "swish" and model.activation.code is None
    assert_passes(model, *make_batch(model))


def test_leaky_relu_pair_has_kinks_checked():
    leaky = (lambda x: np.where(x > 0, x, 0.1 * x), lambda x: np.where(x > 0, 1.0, 0.1))
    model = make_model(transfer_function=leaky, N_rec=6)
    assert_passes(model, *make_batch(model, T=10))


def test_larger_allowed_sizes_and_batch_of_one():
    model = make_model(N_in=3, N_rec=8, N_out=3, transfer_function="relu", dale_ratio=0.75, masks=True)
    assert_passes(model, *make_batch(model, B=3, T=12))
    model = make_model(N_in=1, N_rec=3, N_out=1, transfer_function="tanh")
    assert_passes(model, *make_batch(model, B=1, T=1))


def test_frozen_parameters_are_left_out():
    model = make_model(transfer_function="tanh", W_rec_train=False, init_state_train=False)
    result = assert_passes(model, *make_batch(model))
    assert set(result) == {"W_in", "W_out", "b_rec", "b_out"}


@settings(max_examples=12, deadline=None)
@example(N_in=1, N_rec=6, N_out=1, B=1, T=8, act="sigmoid", dale=0.3, masks=True, seed=86, L2_rec=0.0,
         L2_firing_rate=0.0)  # tiny W_in gradients (~1e-5): the absolute-noise branch below
@given(N_in=st.integers(1, 3), N_rec=st.integers(2, 8), N_out=st.integers(1, 3), B=st.integers(1, 3),
       T=st.integers(1, 12), act=st.sampled_from(ACTIVATIONS),
       dale=st.sampled_from([None, 0.3, 0.5, 0.8]), masks=st.booleans(), seed=st.integers(0, 10_000),
       L2_rec=st.sampled_from([0.0, 0.1]), L2_firing_rate=st.sampled_from([0.0, 0.1]))
def test_random_configurations(N_in, N_rec, N_out, B, T, act, dale, masks, seed, L2_rec, L2_firing_rate):
    assume(dale is None or int(dale * N_rec) >= 1)  # no excitatory unit is refused (test_model)
    model = make_model(N_in=N_in, N_rec=N_rec, N_out=N_out, seed=seed, masks=masks, transfer_function=act,
                       dale_ratio=dale, L2_rec=L2_rec, L2_firing_rate=L2_firing_rate)
    x, y, mask = make_batch(model, B=B, T=T, seed=seed)
    result = gradcheck(model, x, y, mask)
    for name, rel in result.items():
        # Central differences carry roundoff ~ eps * |L| / h ~ 1e-10 per entry. Where a whole
        # parameter's gradient is that small (saturated sigmoid, masked inputs), its relative error
        # measures that noise, not the gradient: there the absolute difference must be at noise level.
        worst_abs = max((abs(a - n) for _, a, n, _ in result.entries[name]), default=0.0)
        assert rel < TOL or worst_abs < 1e-9, result.report(TOL)
    # a kink may be hit by chance (relu state within 1e-9 of 0); it must then be reported, not hidden
    assert all(name in PARAMS for name, *_ in result.kinks)


# ---- fixed weights and constraints, bit for bit -----------------------------------------------------
def test_fixed_weights_and_constraints_hold_bit_for_bit():
    model = make_model(N_rec=8, transfer_function="relu", dale_ratio=0.75, masks=True)
    rng = np.random.default_rng(5)
    F_rec = (rng.random((8, 8)) < 0.5).astype(float)
    F_in = (rng.random((8, 2)) < 0.5).astype(float)
    x, y, mask = make_batch(model, B=3, T=10)
    before = {k: v.copy() for k, v in model.raw.items()}

    def batches():
        while True:
            yield x, y, mask, None

    train = {"training_iters": 3 * 4, "verbosity": False, "learning_rate": 0.05,
             "fixed_weights": {"W_rec": F_rec, "W_in": F_in}}
    model.train(batches(), train)
    fixed_rec, fixed_in = F_rec == 1, F_in == 1
    np.testing.assert_array_equal(model.raw["W_rec"][fixed_rec], before["W_rec"][fixed_rec])
    np.testing.assert_array_equal(model.raw["W_in"][fixed_in], before["W_in"][fixed_in])
    assert np.any(model.raw["W_rec"][~fixed_rec] != before["W_rec"][~fixed_rec])  # the rest trained
    # a second call with new fixed entries, under the old Adam momentum: those stay still too
    F_rec2 = 1 - F_rec
    snap = model.raw["W_rec"].copy()
    model.train(batches(), dict(train, fixed_weights={"W_rec": F_rec2}))
    np.testing.assert_array_equal(model.raw["W_rec"][F_rec2 == 1], snap[F_rec2 == 1])
    # connectivity masks and Dale's signs hold exactly on the effective weights
    eff = model.get_weights()
    for name, key in (("W_in", "input_connectivity"), ("W_rec", "rec_connectivity"),
                      ("W_out", "output_connectivity")):
        assert np.all(eff[name][eff[key] == 0] == 0.0)
    assert np.all(np.diag(eff["W_rec"]) == 0.0)  # autapses off
    n_exc = int(0.75 * 8)
    assert np.all(eff["W_rec"][:, :n_exc] >= 0) and np.all(eff["W_rec"][:, n_exc:] <= 0)
    assert np.all(eff["W_in"] >= 0)
    assert np.all(eff["W_out"][:, n_exc:] == 0.0)  # inhibitory units do not project out
    # the true gradient is not zeroed at fixed entries: loss_and_grads knows nothing of them
    assert_passes(model, x, y, mask)


# ---- kinks are detected, never silently passed ------------------------------------------------------
def test_relu_kink_at_initial_state_is_reported():
    model = make_model(transfer_function="relu")
    model.raw["init_state"][0, 2] = 0.0  # f(x_0) = relu(0): +h and -h sit on both sides
    result = gradcheck(model, *make_batch(model))
    assert ("init_state", (0, 2)) in [(n, i) for n, i, *_ in result.kinks]
    assert max(result.values()) < TOL
    assert "kink" in result.report()


def test_dale_kink_at_zero_weight_is_reported():
    model = make_model(transfer_function="tanh", dale_ratio=0.6)
    model.raw["W_rec"][1, 3] = 0.0  # |W| at 0
    result = gradcheck(model, *make_batch(model))
    assert [(n, i) for n, i, *_ in result.kinks] == [("W_rec", (1, 3))]
    assert max(result.values()) < TOL


def test_tiny_weight_under_dale_is_rerun_with_smaller_h():
    model = make_model(transfer_function="tanh", dale_ratio=0.6)
    model.raw["W_rec"][1, 3] = 3e-7  # within h of the kink: h = 1e-7 keeps both sides positive
    result = gradcheck(model, *make_batch(model))
    assert not result.kinks and max(result.values()) < TOL
    steps = {i: h for i, a, n, h in result.entries["W_rec"]}
    assert steps[(1, 3)] == pytest.approx(1e-7) and steps[(0, 0)] == 1e-6


def test_bce_clip_boundary_is_reported():
    model = make_model(transfer_function="sigmoid", bce=True)
    model.raw["W_out"][0] = 0.0
    model.raw["b_out"][0] = 1 - 1e-7  # output 0 sits exactly on the clip at 1 - eps
    result = gradcheck(model, *make_batch(model, bce=True))
    assert ("b_out", (0,)) in [(n, i) for n, i, *_ in result.kinks]


# ---- the checker itself -----------------------------------------------------------------------------
class WrongGradient(Basic):
    def _loss_and_grads(self, x, y, mask, noise_rng=None):
        value, grads = super()._loss_and_grads(x, y, mask, noise_rng)
        grads["W_rec"] = grads["W_rec"] * 1.001  # a 0.1 % bug
        return value, grads


def test_wrong_gradient_fails_with_side_by_side_message():
    params = dict(N_in=2, N_rec=4, N_out=1, dt=10, tau=100, dtype="float64", seed=3, backend="numpy")
    model = WrongGradient(params)
    x, y, mask = make_batch(model)
    result = gradcheck(model, x, y, mask)
    assert 5e-4 < result["W_rec"] < 2e-3 and result["W_in"] < TOL
    with pytest.raises(GradientCheckError) as info:
        check_grads(model, x, y, mask)
    message = str(info.value)
    assert "W_rec: relative error" in message and "FAILED" in message
    assert "analytic" in message and "numeric" in message and "(0, 0)" in message
    assert "W_in: relative error" in message and message.count("FAILED") == 1


def test_float32_model_is_refused():
    model = Basic(dict(N_in=2, N_rec=4, N_out=1, dt=10, tau=100, seed=0))
    with pytest.raises(ParameterError, match="float64"):
        gradcheck(model, *make_batch(model))


def test_max_entries_and_params_selection():
    model = make_model(N_rec=8, transfer_function="tanh")
    result = gradcheck(model, *make_batch(model), params=["W_rec", "b_out"], max_entries=10, seed=4)
    assert set(result) == {"W_rec", "b_out"}
    assert len(result.entries["W_rec"]) == 10 and len(result.entries["b_out"]) == 2
    with pytest.raises(ParameterError, match="'W_recc'"):
        gradcheck(model, *make_batch(model), params=["W_recc"])


@pytest.mark.parametrize("act, dale", [("relu", 0.8), ("tanh", None)])
def test_random_direction_large_network(act, dale):
    model = make_model(N_in=3, N_rec=200, N_out=2, transfer_function=act, dale_ratio=dale, L2_firing_rate=0.01)
    x, y, mask = make_batch(model, B=2, T=500)
    a, n, rel = check_grads_random_direction(model, x, y, mask, eps=1e-6, seed=2)
    assert rel < TOL, (a, n, rel)


def test_random_direction_catches_a_bug():
    params = dict(N_in=2, N_rec=6, N_out=1, dt=10, tau=100, dtype="float64", seed=3, backend="numpy")
    model = WrongGradient(params)
    with pytest.raises(GradientCheckError, match="analytic"):
        check_grads_random_direction(model, *make_batch(model), eps=1e-6, seed=0, params=["W_rec"], tol=TOL)
