"""The LSTM's params: where the cell variant comes from, what a weights file overrides, the rate-RNN
params it does not use, and the PsychRNN keys its files carry.

* The variant comes from ``lstm_variant``, else a loaded file's, else the class default; never from
  the layout of gate arrays (ours ``(N_rec, N_rec + N_in)`` or PsychRNN's transpose).
* With ``load_weights_path`` the file's weights, masks and variant are used; explicit ones warn.
* Params of the rate RNN only (``W_rec``, ``transfer_function``, ``tau`` per unit, ...) warn once.
"""
from __future__ import annotations

import os
import warnings

import numpy as np
import pytest

from minirnn import LSTM, PsychRNNLSTM
from minirnn import io as mio
from minirnn.errors import ParameterError
from minirnn.nn.initializers import AlphaIdentity
from minirnn.simulate import LSTMSimulator
from minirnn.tasks import PerceptualDiscrimination

GOLDEN = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "psychrnn100_lstm.npz")
GATES = ("f", "i", "c", "o")
pytestmark = pytest.mark.filterwarnings("ignore:.*one initial state per batch row", "ignore:.*optimizer-state")


def small_params(**kw):
    return dict(dict(N_in=2, N_rec=4, N_out=3, dt=10, tau=100, dtype="float64", seed=3, backend="numpy"), **kw)


def x_batch(N_in=2):
    return np.random.default_rng(0).standard_normal((3, 6, N_in))


def build(cls, params, **kw):
    """(model, [warning messages]) of ``cls(params, **kw)``; every warning points at this line."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model = cls(params, **kw)
    ours = [w for w in caught if "optimizer-state" not in str(w.message)]  # (that one is io's)
    assert all(w.filename == __file__ for w in ours), [(w.filename, w.lineno, str(w.message)[:60]) for w in ours]
    return model, [str(w.message) for w in caught]


def same_network(a, b):
    return all(np.array_equal(a.raw[k], b.raw[k]) for k in a.raw) and np.array_equal(a.test(x_batch())[0],
                                                                                     b.test(x_batch())[0])


# ---- 1. the variant never comes from the gate arrays' layout -------------------------------------
@pytest.mark.parametrize("cls, variant", [(LSTM, "standard"), (PsychRNNLSTM, "psychrnn")])
@pytest.mark.parametrize("layout", ["ours", "psychrnn"])
def test_gate_arrays_in_either_layout_keep_the_class_variant(cls, variant, layout):
    model = cls(small_params())
    w = model.get_weights()  # gates in PsychRNN's (N_rec + N_in, N_rec)
    gates = {k: w[k] for k in model.param_names}
    if layout == "ours":
        gates.update({f"W_{g}": w[f"W_{g}"].T for g in GATES})
    again, messages = build(cls, small_params(**gates))
    assert again.lstm_variant == variant and messages == []
    assert same_network(model, again)


@pytest.mark.parametrize("layout", ["ours", "psychrnn"])
def test_explicit_variant_wins_over_the_class_default_in_either_layout(layout):
    W = np.random.default_rng(1).normal(size=(4, 6))
    model = LSTM(small_params(lstm_variant="psychrnn", W_f=W if layout == "ours" else W.T))
    assert model.lstm_variant == "psychrnn"
    np.testing.assert_array_equal(model.raw["W_f"], W)


@pytest.mark.parametrize("N_rec, N_in", [(4, 1), (4, 4), (2, 6), (3, 9), (5, 15)])
def test_the_two_gate_layouts_never_share_a_shape(N_rec, N_in):
    """N_in >= 1, so (N_rec, N_rec + N_in) != (N_rec + N_in, N_rec), also where N_rec + N_in == 4 N_rec
    (the height of the four gates stacked)."""
    W = np.random.default_rng(2).normal(size=(N_rec, N_rec + N_in))
    p = dict(N_in=N_in, N_rec=N_rec, N_out=1, dt=10, tau=100, dtype="float64", seed=0, backend="numpy")
    for given in (W, W.T):
        np.testing.assert_array_equal(LSTM(dict(p, W_f=given)).raw["W_f"], W)
    with pytest.raises(ParameterError, match="N_in"):  # the one size where both layouts would be (N, N)
        LSTM(dict(p, N_in=0))


# ---- 2. a weights file's weights, masks and variant are used; explicit ones warn -----------------
@pytest.mark.parametrize("explicit", [dict(W_f=np.zeros((4, 6))), dict(init_hidden=np.ones((1, 4))),
                                      dict(W_out=np.ones((3, 4)), b_f=np.zeros(4))])
def test_explicit_weights_with_a_file_warn_and_the_files_are_used(tmp_path, explicit):
    path = LSTM(small_params()).save(str(tmp_path / "lstm"))
    plain = LSTM(small_params(load_weights_path=path))
    model, messages = build(LSTM, small_params(load_weights_path=path, **explicit))
    assert len(messages) == 1 and "the file's weights and masks are used" in messages[0]
    assert all(name in messages[0] for name in explicit)
    assert same_network(model, plain)


def test_an_explicit_mask_with_a_file_warns_and_the_files_mask_is_used(tmp_path):
    M = np.ones((4, 4))
    M[0, 1] = 0
    path = LSTM(small_params()).save(str(tmp_path / "lstm"))
    model, messages = build(LSTM, small_params(load_weights_path=path, rec_connectivity=M))
    assert model.get_weights()["rec_connectivity"][0, 1] == 1
    assert len(messages) == 1 and "rec_connectivity" in messages[0]
    assert same_network(model, LSTM(small_params(load_weights_path=path)))


@pytest.mark.parametrize("saved, given", [("standard", "psychrnn"), ("psychrnn", "standard")])
def test_an_explicit_variant_other_than_the_files_warns_and_the_files_is_used(tmp_path, saved, given):
    path = LSTM(small_params(lstm_variant=saved)).save(str(tmp_path / "lstm"))
    for cls in (LSTM, PsychRNNLSTM):
        model, messages = build(cls, small_params(load_weights_path=path, lstm_variant=given))
        assert model.lstm_variant == saved
        assert messages == [m for m in messages if f"lstm_variant {saved!r} is used, not the given {given!r}" in m]
        assert len(messages) == 1
    model, messages = build(LSTM, small_params(load_weights_path=path, lstm_variant=saved))
    assert model.lstm_variant == saved and messages == []


def test_a_psychrnn_file_is_psychrnns_cell_whatever_lstm_variant_says():
    p = dict(N_in=2, N_rec=6, N_out=2, dt=10, tau=100, load_weights_path=GOLDEN)
    model, messages = build(LSTM, dict(p, lstm_variant="standard"))
    assert model.lstm_variant == "psychrnn"
    assert [m for m in messages if "lstm_variant" in m] and "'psychrnn' is used" in " ".join(messages)


def test_an_ensemble_loading_a_file_warns_once(tmp_path):
    path = LSTM(small_params()).save(str(tmp_path / "lstm"))
    _, messages = build(LSTM, small_params(load_weights_path=path, W_f=np.zeros((4, 6))), n_networks=3)
    assert len(messages) == 1 and "W_f" in messages[0]


def test_a_bad_lstm_variant_is_refused_also_with_a_file(tmp_path):
    path = LSTM(small_params()).save(str(tmp_path / "lstm"))
    for p in (small_params(lstm_variant="gru"), small_params(lstm_variant="gru", load_weights_path=path)):
        with pytest.raises(ParameterError, match="'lstm_variant' parameter"):
            LSTM(p)


# ---- 3. the rate RNN's params warn once, naming every one the user set ---------------------------
RATE_ONLY = dict(W_rec=np.eye(4), W_in=np.ones((4, 2)), b_rec=np.ones(4), init_state=np.ones((1, 4)),
                 W_rec_train=False, transfer_function="tanh", initializer=AlphaIdentity(N_in=2, N_rec=4, N_out=3,
                                                                                       alpha=0.1),
                 which_rand_init="const_unif", spec_rad=5.0, tau=np.linspace(50, 200, 4))


@pytest.mark.parametrize("key", list(RATE_ONLY))
def test_each_rate_rnn_param_warns_and_changes_nothing(key):
    model, messages = build(LSTM, small_params(**{key: RATE_ONLY[key]}))
    assert len(messages) == 1 and f"'{key}'" in messages[0] and "does not use" in messages[0]
    assert same_network(model, LSTM(small_params()))


def test_all_rate_rnn_params_are_named_in_one_warning():
    _, messages = build(LSTM, small_params(**RATE_ONLY))
    assert len(messages) == 1 and all(f"'{key}'" in messages[0] for key in RATE_ONLY)


def test_rate_rnn_params_in_network_params_warn_once():
    over = [{"tau": 50.0}, {"W_rec": np.eye(4), "tau": 80.0}]
    model, messages = build(LSTM, small_params(), n_networks=2, seeds=[3, 4], network_params=over)
    assert len(messages) == 1 and "'tau'" in messages[0] and "'W_rec'" in messages[0]
    np.testing.assert_array_equal(model.network(1).test(x_batch())[0], LSTM(small_params(seed=4)).test(x_batch())[0])


@pytest.mark.parametrize("as_dict", [False, True])
def test_a_tasks_params_and_the_required_dt_tau_do_not_warn(as_dict):
    """dt and tau are required of every model (as in PsychRNN) and alpha comes from the task: quiet,
    whether the task's params are passed themselves or copied with dict(...)."""
    params = PerceptualDiscrimination(dt=10, tau=100, T=200, N_batch=4).get_task_params()
    params = dict(params, N_rec=4) if as_dict else params | {"N_rec": 4}
    assert build(LSTM, params)[1] == []
    assert build(LSTM, small_params(tau=50.0))[1] == []


def test_the_defaults_a_weights_dict_and_the_simulator_do_not_warn():
    """get_weights() carries PsychRNN's placeholders W_in, W_rec, b_rec, init_state: params.update(it) is quiet."""
    model, messages = build(LSTM, small_params())
    assert messages == []
    w = model.get_weights()
    assert build(LSTM, small_params(**w))[1] == []
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        LSTMSimulator(weights=w)
        LSTMSimulator(rnn_model=model)


def test_dale_ratio_and_rec_noise_still_warn_in_network_params():
    _, messages = build(LSTM, small_params(), n_networks=2, network_params=[{}, {"dale_ratio": 0.8,
                                                                                 "rec_noise": 0.1}])
    assert len(messages) == 2
    assert any("dale_ratio is ignored" in m for m in messages) and any("rec_noise is ignored" in m for m in messages)


# ---- 4. files carry PsychRNN's Dale_rec / Dale_out; old files without them still load -----------
def test_files_carry_identity_dale_matrices_and_old_files_still_load(tmp_path):
    model = LSTM(small_params(lstm_variant="psychrnn"))
    path = model.save(str(tmp_path / "new"))
    arrays = mio.read_npz(path)
    for key in ("Dale_rec", "Dale_out"):  # PsychRNN's LSTM(load_weights_path=...) reads both
        np.testing.assert_array_equal(arrays[key], np.eye(4))
    old = str(tmp_path / "old.npz")
    np.savez(old, **{k: v for k, v in arrays.items() if k not in ("Dale_rec", "Dale_out")})
    for p in (path, old):
        assert same_network(model, LSTM(small_params(load_weights_path=p)))
    np.testing.assert_allclose(LSTMSimulator(weights_path=path, params={"backend": "numpy"}).run_trials(x_batch())[0],
                               model.test(x_batch())[0], rtol=1e-12, atol=1e-14)
    ens = LSTM(small_params(), n_networks=2).get_weights()
    assert ens["Dale_rec"].shape == (2, 4, 4) and np.array_equal(ens["Dale_out"][1], np.eye(4))


def test_a_copy_of_an_lstms_params_with_the_tables_defaults_does_not_warn():
    import warnings

    lstm = LSTM(dict(N_in=2, N_rec=5, N_out=2, dt=10, tau=100, seed=1))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        LSTM(dict(lstm.params))  # W_in_train=True, transfer_function="relu", ...: defaults, not choices
