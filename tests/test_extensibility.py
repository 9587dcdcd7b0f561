"""Extending minirnn: a user-defined model (PsychRNN's "NewModel": an extra feed-forward input layer),
a custom loss and a custom regularizer — each gradient-checked with the public ``minirnn.gradcheck``
and trained a little. The worked examples live in ``minirnn/models/examples.py``."""
import numpy as np
import pytest

import minirnn
from minirnn import Basic, check_grads, gradcheck
from minirnn.errors import ParameterError
from minirnn.models.examples import InputLayerRNN, balance_penalty, masked_mean_squared_error
from minirnn.tasks import PerceptualDiscrimination
from minirnn.testing import check_grads_random_direction

TOL = 1e-6


def batch(N_in=2, N_out=2, B=3, T=8, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(0.5, 1, size=(B, T, N_in))
    y = rng.normal(size=(B, T, N_out))
    mask = (rng.random((B, T, N_out)) < 0.7).astype(float)
    return x, y, mask


def test_public_names():
    assert minirnn.gradcheck is gradcheck and minirnn.Curriculum is not None


# ---- a new model by subclassing ---------------------------------------------------------------------
@pytest.mark.parametrize("act, dale", [("tanh", None), ("relu", 0.75), ("softplus", 0.5)])
def test_input_layer_model_gradients(act, dale):
    model = InputLayerRNN(dict(N_in=2, N_ff=4, N_rec=6, N_out=2, dt=10, tau=50, transfer_function=act,
                               dale_ratio=dale, dtype="float64", seed=1, L2_in=0.1, L2_firing_rate=0.05,
                               backend="numpy"))
    model.raw["b_ff"][:] = np.linspace(-0.3, 0.3, 4)
    assert model.raw["W_ff"].shape == (4, 2) and model.raw["W_in"].shape == (6, 4)
    result = check_grads(model, *batch(), tol=TOL)  # raises with a side-by-side table if wrong
    assert set(result) == set(Basic.param_names) | {"W_ff", "b_ff"}
    assert not result.kinks
    *_, rel = check_grads_random_direction(model, *batch(B=2, T=40, seed=3), eps=1e-6, seed=1)
    assert rel < TOL


def test_input_layer_model_runs_and_trains():
    task = PerceptualDiscrimination(dt=10, tau=100, T=300, N_batch=32, seed=0)
    params = task.get_task_params()
    params.update(N_rec=16, N_ff=6, seed=0, transfer_function="relu", backend="numpy")
    model = InputLayerRNN(params)
    x, y, mask, _ = task.get_trial_batch()
    outputs, states = model.test(x[:5])  # any batch size
    assert outputs.shape == (5, 30, 2) and states.shape == (5, 30, 16)
    w_ff = model.raw["W_ff"].copy()
    loss_before = model.loss_and_grads(x, y, mask)[0]
    model.train(task, {"training_iters": 32 * 60, "learning_rate": 0.01, "verbosity": False})
    assert model.loss_and_grads(x, y, mask)[0] < 0.5 * loss_before
    assert not np.array_equal(model.raw["W_ff"], w_ff)  # the new layer trained too
    assert "W_ff" in model.get_weights()
    # a frozen input layer stays put
    frozen = InputLayerRNN(dict(params, W_ff_train=False))
    w_ff = frozen.raw["W_ff"].copy()
    frozen.train(task, {"training_iters": 32 * 3, "verbosity": False})
    np.testing.assert_array_equal(frozen.raw["W_ff"], w_ff)


def test_input_layer_model_validates_its_parameter():
    with pytest.raises(ParameterError, match="'N_ff'"):
        InputLayerRNN(dict(N_in=2, N_ff=0, N_rec=4, N_out=2, dt=10, tau=100))


# ---- a custom loss ----------------------------------------------------------------------------------
def test_custom_loss_value_and_gradients():
    x, y, mask = batch()
    model = Basic(dict(N_in=2, N_rec=5, N_out=2, dt=10, tau=50, dtype="float64", seed=2, backend="numpy",
                       loss_function=masked_mean_squared_error, dale_ratio=0.6))
    z, _ = model.test(x)
    value, _ = model.loss_and_grads(x, y, mask)
    assert value == pytest.approx(np.sum((mask * (z - y)) ** 2) / mask.sum(), rel=1e-12)
    check_grads(model, x, y, mask, tol=TOL)


def test_custom_loss_by_psychrnn_name_convention():
    x, y, mask = batch()
    params = dict(N_in=2, N_rec=5, N_out=2, dt=10, tau=50, dtype="float64", seed=2, backend="numpy",
                  loss_function="my_loss", my_loss=masked_mean_squared_error)
    check_grads(Basic(params), x, y, mask, tol=TOL)


# ---- a custom regularizer ---------------------------------------------------------------------------
@pytest.mark.parametrize("dale", [None, 0.8])
def test_custom_regularizer_value_gradients_and_effect(dale):
    x, y, mask = batch()
    params = dict(N_in=2, N_rec=6, N_out=2, dt=10, tau=50, dtype="float64", seed=4, dale_ratio=dale, backend="numpy",
                  transfer_function="tanh")
    plain, reg = Basic(params), Basic(dict(params, custom_regularization=balance_penalty(0.5)))
    row_sums = plain.effective_weights()["W_rec"].sum(axis=-1)
    expected = 0.5 * np.mean(row_sums ** 2)
    assert reg.loss_and_grads(x, y, mask)[0] - plain.loss_and_grads(x, y, mask)[0] == pytest.approx(expected)
    check_grads(reg, x, y, mask, tol=TOL)
    # training with a strong balance penalty shrinks the net recurrent input of every unit
    strong = Basic(dict(params, dtype="float32", custom_regularization=balance_penalty(50.0)))

    def batches():
        while True:
            yield x, y, mask, None

    strong.train(batches(), {"training_iters": 3 * 150, "learning_rate": 0.01, "verbosity": False})
    after = np.abs(strong.effective_weights()["W_rec"].sum(axis=-1)).mean()
    assert after < 0.5 * np.abs(row_sums).mean()


# ---- the check works for other models too ----------------------------------------------------------
def test_gradcheck_on_lstm():
    LSTM = pytest.importorskip("minirnn.models").__dict__.get("LSTM")
    if LSTM is None:
        pytest.skip("no LSTM in this build")
    model = LSTM(dict(N_in=2, N_rec=4, N_out=2, dt=10, tau=100, dtype="float64", seed=0, backend="numpy"))
    result = gradcheck(model, *batch(T=6))
    assert max(result.values()) < TOL, result.report(TOL)


def test_gradcheck_on_a_duck_typed_model():
    """Anything with ``raw`` and ``loss_and_grads`` can be checked (here: least squares)."""

    class LeastSquares:
        def __init__(self):
            self.raw = {"w": np.array([0.5, -1.0, 2.0]), "b": np.array([0.3])}

        def loss_and_grads(self, x, y, mask):
            r = x @ self.raw["w"] + self.raw["b"] - y  # residuals (n,)
            return float(np.mean(r ** 2)), {"w": 2 * x.T @ r / len(r), "b": np.array([2 * r.mean()])}

    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(20, 3)), rng.normal(size=20)
    result = check_grads(LeastSquares(), x, y, None, tol=TOL)
    assert set(result) == {"w", "b"} and max(result.values()) < 1e-8


@pytest.mark.parametrize("signature", ["def reg(model, params)", "def reg(m, params)"])
def test_psychrnns_custom_regularization_form_is_refused_when_the_model_is_built(signature):
    from minirnn.errors import ParameterError

    namespace = {}
    exec(f"{signature}:\n    return 0.0", namespace)
    params = {"N_in": 2, "N_rec": 4, "N_out": 2, "dt": 10, "tau": 100, "custom_regularization": namespace["reg"]}
    with pytest.raises(ParameterError, match=r"PsychRNN's \(model, params\)"):
        Basic(params)
