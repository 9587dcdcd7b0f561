"""Simulators: PsychRNN's constructor semantics, equality with ``model.test`` (bit for bit, float64,
noise off), and one test per perturbation asserting its effect."""
from __future__ import annotations

import os

import numpy as np
import pytest

from minirnn import LSTM, Basic, BasicSimulator, LSTMSimulator, Perturbation
from minirnn import io as mio
from minirnn.errors import ParameterError, ParameterTypeError, ShapeError
from minirnn.simulate import PerturbationArrays, silent_state

DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data")
T = 30


def basic(**kw):
    p = dict(N_in=2, N_rec=6, N_out=2, dt=10, tau=100, dtype="float64", seed=7, backend="numpy")
    p.update(kw)
    return Basic(p)


def inputs(B=3, N_in=2, steps=T, seed=0):
    return np.random.default_rng(seed).standard_normal((B, steps, N_in))


def active_relu_net(**kw):
    """A relu network whose units are all active (positive bias, small positive input weights)."""
    rng = np.random.default_rng(1)
    N = kw.pop("N_rec", 6)
    W = dict(W_in=np.abs(rng.normal(0, 0.3, (N, 2))), W_rec=rng.normal(0, 0.2, (N, N)),
             W_out=rng.normal(0, 0.5, (2, N)), b_rec=np.full(N, 1.0), b_out=np.zeros(2),
             init_state=np.full((1, N), 0.5))
    W.update(kw)
    return basic(N_rec=N, **W)


# ---- equality with training's forward ----------------------------------------------------------
@pytest.mark.parametrize("kw", [dict(), dict(dale_ratio=0.5, transfer_function="tanh", autapses=False),
                                dict(backend="auto", transfer_function="softplus")])
def test_basic_simulator_equals_model_test_bit_for_bit(kw, tmp_path):
    model = basic(**kw)
    x = inputs()
    out, states = model.test(x)
    for sim in (BasicSimulator(rnn_model=model),
                BasicSimulator(weights=model.get_weights(),
                               params=dict(dt=10, tau=100, backend=kw.get("backend", "numpy")),
                               transfer_function=model.activation.name),
                BasicSimulator(weights_path=model.save(str(tmp_path / "w")),
                               params=dict(backend=kw.get("backend", "numpy")))):
        o, s = sim.run_trials(x)
        assert np.array_equal(o, out) and np.array_equal(s, states)


def test_lstm_simulator_equals_model_test_bit_for_bit(tmp_path):
    model = LSTM(dict(N_in=2, N_rec=5, N_out=2, dt=10, tau=100, dtype="float64", seed=2))
    x = inputs()
    out, states = model.test(x)
    for sim in (LSTMSimulator(rnn_model=model),
                LSTMSimulator(weights=model.get_weights()),
                LSTMSimulator(weights_path=model.save(str(tmp_path / "w")))):
        assert sim.model.lstm_variant == "standard"
        o, s = sim.run_trials(x)
        assert np.array_equal(o, out) and np.array_equal(s, states)


@pytest.mark.filterwarnings("ignore:.*optimizer-state")
def test_simulators_reproduce_psychrnn_golden_files():
    io = mio.read_npz(os.path.join(DATA, "psychrnn100_basic_io.npz"))
    sim = BasicSimulator(weights_path=os.path.join(DATA, "psychrnn100_basic.npz"), params=dict(dt=10, tau=100))
    o, s = sim.run_trials(io["x"])
    np.testing.assert_allclose(o, io["outputs"], rtol=1e-5, atol=2e-6)
    np.testing.assert_allclose(s, io["states"], rtol=1e-5, atol=2e-6)
    io = mio.read_npz(os.path.join(DATA, "psychrnn100_lstm_io.npz"))
    sim = LSTMSimulator(weights_path=os.path.join(DATA, "psychrnn100_lstm.npz"))
    assert sim.model.lstm_variant == "psychrnn"
    o, s = sim.run_trials(io["x"])
    np.testing.assert_allclose(o[0], io["outputs"][0], rtol=1e-5, atol=2e-6)  # row 0: PsychRNN's first init row
    np.testing.assert_allclose(s[0], io["states"][0], rtol=1e-5, atol=2e-6)


def test_batch_of_one_and_a_single_input():
    model = basic(N_in=1)
    sim = BasicSimulator(rnn_model=model)
    x = inputs(B=1, N_in=1)
    o, s = sim.run_trials(x)
    assert o.shape == (1, T, 2) and s.shape == (1, T, 6)
    assert np.array_equal(o, model.test(x)[0])
    o, s = sim.run_trials(x, perturbation=Perturbation(T, 6).silence(0))
    assert np.all(s[0, :, 0] == 0)
    lstm = LSTM(dict(N_in=1, N_rec=3, N_out=1, dt=10, tau=100, dtype="float64", seed=0))
    o, s = LSTMSimulator(rnn_model=lstm).run_trials(x)
    assert o.shape == (1, T, 1) and s.shape == (1, T, 3)


def test_alpha_in_params_and_float32():
    model = basic()
    a = BasicSimulator(weights=model.get_weights(), params=dict(alpha=0.1, backend="numpy"))
    b = BasicSimulator(weights=model.get_weights(), params=dict(dt=10, tau=100, backend="numpy", dtype="float32"))
    x = inputs()
    assert np.array_equal(a.run_trials(x)[1], model.test(x)[1])
    assert b.run_trials(x)[0].dtype == np.float32


# ---- PsychRNN's constructor conflicts (ParameterError, a ValueError; PsychRNN raised UserWarning)
def test_constructor_conflicts_raise():
    model = basic()
    w = model.get_weights()
    params = dict(dt=10, tau=100)
    cases = [dict(weights=w, weights_path="x.npz", params=params), dict(weights=w, rnn_model=model),
             dict(weights_path="x.npz", rnn_model=model), dict(rnn_model=model, params=params), dict()]
    for kwargs in cases:
        with pytest.raises(ParameterError):
            BasicSimulator(**kwargs)
    with pytest.raises(ValueError, match="alpha"):
        BasicSimulator(weights=w)  # no alpha, dt/tau
    with pytest.raises(ParameterError, match="transfer_function"):
        BasicSimulator(rnn_model=model, transfer_function="tanh")  # the model is relu
    with pytest.raises(ParameterError, match="lstm"):
        LSTMSimulator(rnn_model=model)


def test_run_trials_checks_shapes():
    sim = BasicSimulator(rnn_model=basic())
    with pytest.raises(ShapeError):
        sim.run_trials(np.zeros((2, T, 3)))
    with pytest.raises(ShapeError):
        sim.run_trials(inputs(), perturbation=Perturbation(T + 1, 6))


# ---- perturbations -------------------------------------------------------------------------------
def test_silence_zero_rate_in_window_and_only_there():
    sim = BasicSimulator(rnn_model=active_relu_net())
    x = inputs()
    base_o, base = sim.run_trials(x)
    _, s = sim.run_trials(x, perturbation=Perturbation(T, 6, dt=10).silence([1, 4], 100, 200))
    rate = np.maximum(s, 0)
    window = (np.arange(T) * 10 >= 100) & (np.arange(T) * 10 < 200)  # steps 10..19
    assert np.all(rate[:, window][:, :, [1, 4]] == 0)
    assert np.all(rate[:, ~window][:, :, [1, 4]] > 0)  # the units are active outside the window
    assert np.array_equal(s[:, :10], base[:, :10])  # nothing changes before the window
    assert not np.allclose(s[:, 10:, 0], base[:, 10:, 0])  # other units feel the silence


def test_silence_needs_a_zero_of_f():
    assert silent_state("relu") == silent_state("tanh") == 0.0
    with pytest.raises(ParameterError, match="sigmoid"):
        silent_state("sigmoid")
    sim = BasicSimulator(rnn_model=basic(transfer_function="softplus"))
    with pytest.raises(ParameterError, match="clamp"):
        sim.run_trials(inputs(), perturbation=Perturbation(T, 6).silence(0))
    sim = BasicSimulator(rnn_model=basic(transfer_function="tanh"))
    _, s = sim.run_trials(inputs(), perturbation=Perturbation(T, 6).silence(2, 5, 9))
    assert np.all(np.tanh(s[:, 5:9, 2]) == 0) and np.all(s[:, 9:, 2] != 0)


def test_clamp_holds_the_state():
    sim = BasicSimulator(rnn_model=active_relu_net())
    x = inputs()
    _, base = sim.run_trials(x)
    _, s = sim.run_trials(x, perturbation=Perturbation(T, 6).clamp([0, 3], [2.0, -1.0], 4, 12))
    assert np.all(s[:, 4:12, 0] == 2.0) and np.all(s[:, 4:12, 3] == -1.0)
    assert np.array_equal(s[:, :4], base[:, :4])
    assert np.all(s[:, 12:, 0] != 2.0)  # released after the window
    # later calls win where clamps overlap; silence is a clamp too
    _, s = sim.run_trials(x, perturbation=Perturbation(T, 6).clamp(0, 2.0).silence(0, 3, 6))
    assert np.all(s[:, 3:6, 0] == 0) and np.all(s[:, 6:, 0] == 2.0) and np.all(s[:, :3, 0] == 2.0)


def test_inject_changes_only_downstream_units():
    # a feed-forward chain 0 -> 1 -> 2 -> 3 -> 4 -> 5 (plus self-connections)
    N = 6
    W_rec = 0.5 * np.eye(N) + 0.8 * np.eye(N, k=-1)
    sim = BasicSimulator(rnn_model=active_relu_net(W_rec=W_rec))
    x = inputs()
    _, base = sim.run_trials(x)
    _, s = sim.run_trials(x, perturbation=Perturbation(T, N).inject(2, 3.0, t_start=8, t_end=15))
    changed = np.any(s != base, axis=(0, 1))
    assert changed.tolist() == [False, False, True, True, True, True]  # unit 2 and downstream only
    assert np.array_equal(s[:, :8], base[:, :8])
    alpha = 0.1  # first step of the window: x_{k+1} gains exactly alpha * I on unit 2 alone
    np.testing.assert_allclose(s[:, 8, 2] - base[:, 8, 2], alpha * 3.0, rtol=1e-12)
    assert np.array_equal(s[:, 8, 3:], base[:, 8, 3:])
    # unit 5 is 3 synapses away from unit 2: it changes 3 steps later
    assert np.array_equal(s[:, :11, 5], base[:, :11, 5]) and np.all(s[:, 11, 5] != base[:, 11, 5])


def test_lesioned_weight_has_no_effect_in_its_window():
    W_rec = np.random.default_rng(3).normal(0, 0.3, (6, 6))
    W_a, W_b = W_rec.copy(), W_rec.copy()
    W_a[2, 4], W_b[2, 4] = 1.5, -1.5  # two networks that differ only in the weight 4 -> 2
    sim_a = BasicSimulator(rnn_model=active_relu_net(W_rec=W_a))
    sim_b = BasicSimulator(rnn_model=active_relu_net(W_rec=W_b))
    x = inputs()
    pert = Perturbation(T, 6).lesion(post=2, pre=4, t_end=12)
    _, sa = sim_a.run_trials(x, perturbation=pert)
    _, sb = sim_b.run_trials(x, perturbation=pert)
    assert np.array_equal(sa[:, :12], sb[:, :12])  # the weight's value does not matter while lesioned
    assert not np.allclose(sa[:, 12:], sb[:, 12:])  # ... and does after
    # PsychRNN's t_connectivity is the same thing
    t_conn = np.ones((T, 6, 6))
    t_conn[:12, 2, 4] = 0
    _, sc = sim_a.run_trials(x, t_connectivity=t_conn)
    assert np.array_equal(sa, sc)
    # a lesion mid-trial: identical before it, different in it
    _, base = sim_a.run_trials(x)
    _, s = sim_a.run_trials(x, perturbation=Perturbation(T, 6, dt=10).lesion(2, 4, 100, 200))
    assert np.array_equal(s[:, :10], base[:, :10]) and not np.allclose(s[:, 10, 2], base[:, 10, 2])


def test_noise_window_and_level():
    # the noise term alone: W = 0, linear, x_0 = 0  =>  x_1 = sqrt(2 alpha) sigma xi
    N, B = 4, 4000
    zeros = dict(W_in=np.zeros((N, 2)), W_rec=np.zeros((N, N)), W_out=np.zeros((2, N)), b_rec=np.zeros(N),
                 b_out=np.zeros(2), init_state=np.zeros((1, N)))
    sim = BasicSimulator(rnn_model=basic(N_rec=N, transfer_function="linear", **zeros), seed=0)
    x = np.zeros((B, 10, 2))
    _, s = sim.run_trials(x, perturbation=Perturbation(10, N).noise(0.5, 3, 6))
    assert np.all(s[:, :3] == 0) and np.all(s[:, 3:6] != 0)
    np.testing.assert_allclose(s[:, 3].std(), np.sqrt(2 * 0.1) * 0.5, rtol=0.05)
    np.testing.assert_allclose(s[:, 6:], 0.9 ** np.arange(1, 5)[None, :, None] * s[:, 5:6], rtol=1e-13)  # decay
    # the model's own noise, turned off in a window; same generator seed -> same draws
    noisy = basic(N_rec=N, transfer_function="linear", rec_noise=0.5, **zeros)
    _, s1 = BasicSimulator(rnn_model=noisy, seed=1).run_trials(x, perturbation=Perturbation(10, N).noise(0.0, 0, 5))
    _, s2 = BasicSimulator(rnn_model=noisy, seed=1).run_trials(x, perturbation=Perturbation(10, N).noise(0.0, 0, 5))
    assert np.array_equal(s1, s2)
    assert np.all(s1[:, :5] == 0) and np.all(s1[:, 5:] != 0)
    np.testing.assert_allclose(s1[:, 5].std(), np.sqrt(2 * 0.1) * 0.5, rtol=0.05)
    _, own = BasicSimulator(rnn_model=noisy, seed=1).run_trials(x)  # the model's own noise path
    np.testing.assert_allclose(own[:, 0].std(), np.sqrt(2 * 0.1) * 0.5, rtol=0.05)


def test_perturbations_compose_and_windows_in_ms_or_steps():
    sim = BasicSimulator(rnn_model=active_relu_net())
    x = inputs()
    ms = Perturbation(T, 6, dt=10).silence(1, 50, 100).inject([2, 3], [1.0, -1.0], 120).lesion(0, 5).lesion(5, 0)
    steps = Perturbation(T, 6).silence(1, 5, 10).inject([2, 3], [1.0, -1.0], 12).lesion(0, 5).lesion(5, 0)
    a, b = ms.arrays(N_batch=3), steps.arrays(N_batch=3)
    for name in ("W_mask", "clamp_mask", "clamp_value", "inject"):
        assert np.array_equal(getattr(a, name), getattr(b, name)), name
    assert np.all(a.W_mask[:, 0, 5] == 0) and np.all(a.W_mask[:, 5, 0] == 0)
    assert np.asarray(a.W_mask).sum() == T * (36 - 2)
    assert np.all(a.inject[12:, 0, 2] == 1.0) and np.all(a.inject[:12] == 0)
    o1, s1 = sim.run_trials(x, perturbation=ms)
    o2, s2 = sim.run_trials(x, perturbation=b)  # ready arrays are accepted too
    assert np.array_equal(s1, s2) and np.all(s1[:, 5:10, 1] == 0)
    # silence wins over an injection into the same unit
    _, s = sim.run_trials(x, perturbation=Perturbation(T, 6).inject(1, 5.0).silence(1, 0, 10))
    assert np.all(s[:, :10, 1] == 0)


def test_perturbation_errors():
    with pytest.raises(ParameterError):
        Perturbation(T, 6).silence(6)
    with pytest.raises(ParameterError, match="t_end"):
        Perturbation(T, 6).silence(0, 10, 5)
    with pytest.raises(ShapeError):
        Perturbation(T, 6).connectivity(np.ones((T, 5, 5)))
    with pytest.raises(ParameterError):
        Perturbation(0, 6)


def test_lstm_perturbations():
    model = LSTM(dict(N_in=2, N_rec=5, N_out=2, dt=10, tau=100, dtype="float64", seed=2, backend="numpy"))
    sim = LSTMSimulator(rnn_model=model)
    x = inputs()
    _, base = sim.run_trials(x)
    _, s = sim.run_trials(x, perturbation=Perturbation(T, 5).silence(3, 5, 10))
    assert np.all(s[:, 5:10, 3] == 0) and np.all(s[:, 10:, 3] != 0)
    assert np.array_equal(s[:, :5], base[:, :5])
    _, s = sim.run_trials(x, perturbation=Perturbation(T, 5).lesion(pre=3))  # unit 3 talks to no one
    _, s2 = sim.run_trials(x, perturbation=Perturbation(T, 5).lesion(pre=3).clamp(3, 0.7))
    assert np.array_equal(np.delete(s, 3, axis=2), np.delete(s2, 3, axis=2))
    with pytest.raises(ParameterError, match="inject"):
        sim.run_trials(x, perturbation=Perturbation(T, 5).inject(0, 1.0))
    assert isinstance(Perturbation(T, 5).silence(0).arrays(lstm=True), PerturbationArrays)


def test_rnn_step_continues_run_trials_and_psychrnn_attributes():
    model = basic(transfer_function="tanh")
    sim = BasicSimulator(rnn_model=model)
    x = inputs(B=2)
    out, states = sim.run_trials(x)
    o, s = sim.rnn_step(states[:, 9], x[:, 10])
    np.testing.assert_allclose(s, states[:, 10], rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(o, out[:, 10], rtol=1e-12, atol=1e-14)
    t_conn = np.ones((6, 6))
    t_conn[1, 2] = 0
    _, s_lesioned = sim.rnn_step(states[:, 9], x[:, 10], t_connectivity=t_conn)
    full = np.ones((T, 6, 6))
    full[10] = t_conn
    np.testing.assert_allclose(s_lesioned, sim.run_trials(x, t_connectivity=full)[1][:, 10], rtol=1e-12, atol=1e-14)
    assert sim.alpha == 0.1 and sim.rec_noise == 0.0 and sim.W_rec.shape == (6, 6)
    lstm = LSTM(dict(N_in=2, N_rec=5, N_out=2, dt=10, tau=100, dtype="float64", seed=2))
    lsim = LSTMSimulator(rnn_model=lstm)
    out, states = lsim.run_trials(x)
    o, h, c = lsim.rnn_step(lsim.init_hidden.repeat(2, 0), lsim.init_cell.repeat(2, 0), x[:, 0])
    np.testing.assert_allclose(h, states[:, 0], rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(o, out[:, 0], rtol=1e-12, atol=1e-14)
    assert lsim.W_f.shape == (7, 5)  # PsychRNN's layout


# ---- bad input: clear errors before any work ------------------------------------------------------
@pytest.mark.parametrize("build", [
    lambda p: p.silence(None, 50, 80),  # steps past the 30-step trial (a window in ms without dt)
    lambda p: p.clamp(0, 1.0, t_start=40),
    lambda p: p.inject([1, 2], 1.0, -10, 0),  # before the trial
    lambda p: p.lesion(0, 1, 31, None),
    lambda p: p.noise(0.1, t_end=0),
])
def test_windows_that_miss_the_trial_are_errors(build):
    with pytest.raises(ParameterError, match=r"selects no step.*N_steps=30.*no dt"):
        build(Perturbation(T, 6))
    ms = Perturbation(T, 6, dt=10)  # the trial is t = 0 ... 290 ms
    with pytest.raises(ParameterError, match=r"t_start=5000, t_end=8000 ms selects no step.*290 ms"):
        ms.silence(None, 5000, 8000)
    with pytest.raises(ParameterError, match="selects no step"):
        ms.silence(None, 101, 105)  # between two steps
    with pytest.raises(ParameterError, match="t_start must be a number"):
        ms.silence(None, "100", 200)
    assert ms.ops == []  # nothing was recorded by the failed calls
    # a window that overlaps the trial only in part is fine (up to "the end")
    _, s = BasicSimulator(rnn_model=active_relu_net()).run_trials(inputs(), perturbation=Perturbation(T, 6).silence(
        0, 25, 10 ** 6))
    assert np.all(s[:, 25:, 0] == 0)


def test_perturbation_dt_must_match_the_simulators():
    model = basic()  # dt = 10
    x = inputs()
    wrong = Perturbation(T, 6, dt=5).silence(0, 50, 100)
    for sim in (BasicSimulator(rnn_model=model),
                BasicSimulator(weights=model.get_weights(), params=dict(dt=10, tau=100, backend="numpy"))):
        with pytest.raises(ParameterError, match=r"dt=5 ms.*dt=10\.0 ms"):
            sim.run_trials(x, perturbation=wrong)
        assert sim.dt == 10.0
        _, s = sim.run_trials(x, perturbation=Perturbation(T, 6, dt=10).silence(0, 50, 100))
        assert np.all(s[:, 5:10, 0] == 0)
    lstm = LSTM(dict(N_in=2, N_rec=5, N_out=2, dt=10, tau=100, dtype="float64", seed=2, backend="numpy"))
    with pytest.raises(ParameterError, match="dt=5"):
        LSTMSimulator(rnn_model=lstm).run_trials(x, perturbation=Perturbation(T, 5, dt=5).silence(0))
    # built from alpha alone the simulator has no dt in ms: the Perturbation's own dt converts its windows
    sim = BasicSimulator(weights=model.get_weights(), params=dict(alpha=0.1, backend="numpy"))
    assert sim.dt is None
    _, s = sim.run_trials(x, perturbation=Perturbation(T, 6, dt=5).silence(0, 50, 100))
    assert np.all(s[:, 10:20, 0] == 0)


def test_rnn_step_checks_its_arrays():
    sim = BasicSimulator(rnn_model=basic())
    with pytest.raises(ShapeError, match=r"state has shape \(2, 7\).*\(N_batch, 6\)"):
        sim.rnn_step(np.zeros((2, 7)), np.zeros((2, 2)))
    with pytest.raises(ShapeError, match="rnn_in has shape"):
        sim.rnn_step(np.zeros((2, 6)), np.zeros((2, 3)))
    with pytest.raises(ShapeError, match="batch sizes differ"):
        sim.rnn_step(np.zeros((2, 6)), np.zeros((3, 2)))
    o, s = sim.rnn_step(np.zeros(6), np.ones((3, 2)))  # one state for every trial
    assert o.shape == (3, 2) and s.shape == (3, 6) and np.all(s == s[0])
    lsim = LSTMSimulator(rnn_model=LSTM(dict(N_in=2, N_rec=5, N_out=2, dt=10, tau=100, dtype="float64", seed=2)))
    with pytest.raises(ShapeError, match="cell has shape"):
        lsim.rnn_step(np.zeros((2, 5)), np.zeros((2, 4)), np.zeros((2, 2)))


def test_rng_must_be_a_generator():
    sim = BasicSimulator(rnn_model=basic(rec_noise=0.1), seed=0)
    before = sim.rng.bit_generator.state
    with pytest.raises(ParameterTypeError, match=r"rng must be a numpy.random.Generator.*Got 5 \(int\)"):
        sim.run_trials(inputs(), rng=5)
    with pytest.raises(TypeError, match="default_rng"):
        sim.rnn_step(np.zeros((2, 6)), np.zeros((2, 2)), rng=5)
    with pytest.raises(TypeError, match="Generator"):
        Perturbation(T, 6).noise(0.2).arrays(alpha=0.1, rng=5)
    assert sim.rng.bit_generator.state == before  # nothing was drawn
    a = sim.run_trials(inputs(), rng=np.random.default_rng(5))[1]
    assert np.array_equal(a, sim.run_trials(inputs(), rng=np.random.default_rng(5))[1])


def test_weights_dict_missing_keys_are_named():
    w = basic().get_weights()
    with pytest.raises(ParameterError, match=r"lack \['b_rec', 'init_state'\]"):
        BasicSimulator(weights={k: v for k, v in w.items() if k not in ("b_rec", "init_state")},
                       params=dict(dt=10, tau=100))
    with pytest.raises(ParameterError, match="dict of arrays"):
        BasicSimulator(weights=[w["W_rec"]], params=dict(dt=10, tau=100))


def test_simulator_params_are_checked():
    model = basic(transfer_function="tanh")
    w = model.get_weights()
    with pytest.raises(ParameterError, match="'rec_nosie' for BasicSimulator; did you mean 'rec_noise'"):
        BasicSimulator(weights=w, params=dict(dt=10, tau=100, rec_nosie=0.5))
    with pytest.raises(ParameterError, match="did you mean 'alpha'"):
        BasicSimulator(weights=w, params=dict(alpah=0.1))
    with pytest.raises(ParameterError, match="rec_noise"):
        BasicSimulator(weights=w, params=dict(dt=10, tau=100, rec_noise=-1))
    with pytest.raises(ParameterError, match="'alpha' parameter of BasicSimulator"):
        BasicSimulator(weights=w, params=dict(alpha=0.0))
    with pytest.raises(ShapeError, match="N_rec=8"):
        BasicSimulator(weights=w, params=dict(dt=10, tau=100, N_rec=8))
    with pytest.raises(ParameterError, match="did you mean 'lstm_variant'"):
        LSTMSimulator(weights=LSTM(dict(N_in=2, N_rec=5, N_out=2, dt=10, tau=100, seed=2)).get_weights(),
                      params=dict(lstm_varient="standard"))
    # a model's whole params dict (PsychRNN scripts pass their network_params) and a task's settings are
    # fine, and its transfer_function is used
    x = inputs()
    sim = BasicSimulator(weights=w, params=dict(model.params, coherence=0.3))
    assert sim.transfer_function.name == "tanh" and np.array_equal(sim.run_trials(x)[0], model.test(x)[0])
    with pytest.raises(ParameterError, match="conflicting transfer functions"):
        BasicSimulator(weights=w, params=dict(model.params), transfer_function="relu")


def test_params_that_override_the_files_alpha_warn(tmp_path):
    path = basic().save(str(tmp_path / "w"))
    with pytest.warns(UserWarning, match=r"dt=10, tau=50 but .* trained with dt=10.*tau=100"):
        sim = BasicSimulator(weights_path=path, params=dict(dt=10, tau=50))
    assert sim.alpha == 0.2  # params win, as in PsychRNN (the file has no say there)


# ---- per-unit values follow the order the units are given ---------------------------------------


def test_clamp_values_follow_the_order_of_the_units_given():
    sim = BasicSimulator(rnn_model=active_relu_net())
    x = inputs()
    _, s = sim.run_trials(x, perturbation=Perturbation(T, 6).clamp([4, 1], [0.3, -0.2]))
    assert np.all(s[:, :, 4] == 0.3) and np.all(s[:, :, 1] == -0.2)
    # a slice with a negative step lists units 5, 3, 1: the values go to them in that order
    _, s = sim.run_trials(x, perturbation=Perturbation(T, 6).clamp(slice(None, None, -2), [1.0, 2.0, 3.0]))
    assert np.all(s[:, :, 5] == 1.0) and np.all(s[:, :, 3] == 2.0) and np.all(s[:, :, 1] == 3.0)
    # a boolean mask lists its units in increasing order
    mask = np.array([False, True, False, False, True, False])
    _, s = sim.run_trials(x, perturbation=Perturbation(T, 6).clamp(mask, [0.3, -0.2]))
    assert np.all(s[:, :, 1] == 0.3) and np.all(s[:, :, 4] == -0.2)


def test_inject_amounts_follow_the_order_of_the_units_given():
    # no recurrence: an injected current changes its own unit only, by alpha * I on the first step
    N = 6
    sim = BasicSimulator(rnn_model=active_relu_net(W_rec=np.zeros((N, N))))
    x = inputs()
    _, base = sim.run_trials(x)
    _, s = sim.run_trials(x, perturbation=Perturbation(T, N).inject([5, 0], [10.0, 0.0]))
    np.testing.assert_allclose(s[:, 0, 5] - base[:, 0, 5], 0.1 * 10.0, rtol=1e-12)
    assert np.array_equal(s[:, :, 0], base[:, :, 0])
    _, s2 = sim.run_trials(x, perturbation=Perturbation(T, N).inject([0, 5], [0.0, 10.0]))
    assert np.array_equal(s, s2)


def test_per_unit_values_with_repeated_units_are_errors():
    with pytest.raises(ParameterError, match=r"unit\(s\) \[2\] appear more than once"):
        Perturbation(T, 6).clamp([2, 2], [0.1, 0.2])
    with pytest.raises(ShapeError, match="one value per unit given"):
        Perturbation(T, 6).inject([4, 1], [1.0, 2.0, 3.0])
    Perturbation(T, 6).clamp([2, 2], 0.5)  # one value for all: repeating a unit is harmless


# ---- PsychRNN's psychrnn.backend.simulation names -----------------------------------------------


def test_simulator_base_class_relu_and_sigmoid_are_psychrnns():
    from minirnn import Simulator
    from minirnn.simulate import relu, sigmoid

    assert issubclass(BasicSimulator, Simulator) and issubclass(LSTMSimulator, Simulator)
    np.testing.assert_array_equal(relu(np.array([-1.0, 0.0, 2.5])), [0.0, 0.0, 2.5])  # np.maximum(x, 0)
    np.testing.assert_allclose(sigmoid(np.array([-2.0, 0.0, 3.0])), 1 / (1 + np.exp(-np.array([-2.0, 0.0, 3.0]))),
                               rtol=1e-15)
    # PsychRNN's simulators take them as transfer_function
    model = basic(transfer_function="relu")
    sim = BasicSimulator(weights=model.get_weights(), params={"dt": 10, "tau": 100, "backend": "numpy"},
                         transfer_function=relu)  # the model's backend: bit for bit
    assert sim.transfer_function.name == "relu"
    assert np.array_equal(sim.run_trials(inputs())[0], model.test(inputs())[0])

    class MySimulator(Simulator):  # a PsychRNN-style subclass: its own NumPy loop over the attributes
        def run_trials(self, trial_input, t_connectivity=None):
            x = np.repeat(self.init_state.reshape(1, -1), trial_input.shape[0], axis=0)
            outputs = []
            for k in range(trial_input.shape[1]):
                x = (1 - self.alpha) * x + self.alpha * (relu(x) @ self.W_rec.T + trial_input[:, k] @ self.W_in.T
                                                         + self.b_rec)
                outputs.append(relu(x) @ self.W_out.T + self.b_out)
            return np.stack(outputs, axis=1), None

    mine = MySimulator(rnn_model=model)
    assert mine.alpha == 0.1 and mine.rec_noise == 0
    np.testing.assert_allclose(mine.run_trials(inputs())[0], model.test(inputs())[0], rtol=1e-12, atol=1e-14)


def test_a_simulators_transfer_function_can_be_called_as_psychrnns_can():
    from minirnn.nn.activations import get_activation

    x = np.array([-1.0, 0.5])
    np.testing.assert_array_equal(get_activation("relu")(x), [0.0, 0.5])


# ---- audit fixes: LSTM weight dicts, lesion masks stored once ------------------------------------
def test_basic_simulator_refuses_an_lstm_weights_dict():
    from minirnn import Simulator

    lstm = LSTM(dict(N_in=2, N_rec=5, N_out=2, dt=10, tau=100, dtype="float64", seed=2, backend="numpy"))
    w = lstm.get_weights()  # carries PsychRNN's all-zero W_in, W_rec, b_rec, init_state placeholders
    for cls in (BasicSimulator, Simulator):
        with pytest.raises(ParameterError, match="lstm weights.*W_f"):
            cls(weights=w, params={"dt": 10, "tau": 100})
    # any one marker is enough: the variant entry alone, or the minirnn metadata of an LSTM file
    placeholders = {k: w[k] for k in ("W_in", "W_rec", "W_out", "b_rec", "b_out", "init_state")}
    with pytest.raises(ParameterError, match="lstm_variant"):
        BasicSimulator(weights=dict(placeholders, lstm_variant="standard"), params={"dt": 10, "tau": 100})
    with pytest.raises(ParameterError, match="architecture='lstm'"):
        BasicSimulator(weights=dict(placeholders, minirnn=np.array('{"architecture": "lstm"}')),
                       params={"dt": 10, "tau": 100})
    # the LSTM simulator takes the same dict, and a rate network's dict still works
    out, _ = LSTMSimulator(weights=w, params={"backend": "numpy"}).run_trials(inputs())
    assert np.array_equal(out, lstm.test(inputs())[0])
    BasicSimulator(weights=basic().get_weights(), params={"dt": 10, "tau": 100})


def _materialised_mask(pert, dtype=np.float64):
    """The (T, N, N) mask the time loop used to get: ones, times each lesion in its window, in order."""
    W = np.ones((pert.N_steps, pert.N_rec, pert.N_rec))
    for kind, _, steps, M in pert.ops:
        if kind == "W_mask":
            W[steps] *= M
        elif kind == "W_mask_full":
            W *= M
    return W.astype(dtype)


def test_a_static_lesion_is_stored_once_and_gives_the_same_numbers():
    N = 6
    whole = Perturbation(T, N).lesion(post=[0, 2], pre=[1])
    a = whole.arrays()
    assert a.W_mask.masks.shape == (1, N, N) and a.W_mask.shape == (T, N, N)  # one matrix, not T copies
    windowed = Perturbation(T, N, dt=10).lesion(2, 4, 50, 150).lesion(post=1, t_start=100).lesion(3, 3, 0, 120)
    b = windowed.arrays()
    assert b.W_mask.masks.shape[0] == len({tuple(r) for r in np.stack([op[2] for op in windowed.ops], 1)})
    for pert in (whole, windowed):
        full = _materialised_mask(pert)
        arrays = pert.arrays()
        assert np.array_equal(np.asarray(arrays.W_mask), full)
        assert all(np.array_equal(arrays.W_mask[k], full[k]) for k in range(T))
        assert np.array_equal(arrays.W_mask[:, 2, 4], full[:, 2, 4])
    # the simulated trials are bit for bit those of the materialised (T, N, N) mask, float64 and float32
    for dtype in ("float64", "float32"):
        sim = BasicSimulator(rnn_model=active_relu_net(), params=None) if dtype == "float64" else BasicSimulator(
            weights=active_relu_net().get_weights(), params={"dt": 10, "tau": 100, "dtype": dtype, "backend": "numpy"})
        x = inputs()
        for pert in (whole, windowed):
            o1, s1 = sim.run_trials(x, perturbation=pert)
            ref = PerturbationArrays(W_mask=_materialised_mask(pert, np.dtype(dtype)))
            o2, s2 = sim.run_trials(x, perturbation=ref)
            assert np.array_equal(o1, o2) and np.array_equal(s1, s2)
        t_conn = np.random.default_rng(0).random((T, N, N))  # with PsychRNN's t_connectivity as well
        _, s1 = sim.run_trials(x, t_connectivity=t_conn, perturbation=Perturbation(T, N).lesion(0, 1, 5, 9))
        ref = _materialised_mask(Perturbation(T, N).lesion(0, 1, 5, 9).connectivity(t_conn), np.dtype(dtype))
        _, s2 = sim.run_trials(x, perturbation=PerturbationArrays(W_mask=ref))
        assert np.array_equal(s1, s2)


def test_a_static_lesion_of_a_large_network_does_not_allocate_one_matrix_per_step():
    import tracemalloc

    N, steps = 300, 200  # a (T, N, N) float64 mask would be 144 MB, and 32 T N^2 = 576 MB at its peak
    pert = Perturbation(steps, N, dt=10).lesion(post=[0], pre=[1], t_start=500)
    tracemalloc.start()
    try:
        arrays = pert.arrays("relu", N_batch=1, dtype=np.float32)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert arrays.W_mask.masks.shape == (2, N, N)  # intact before 500 ms, lesioned after
    assert arrays.W_mask.nbytes < 2 * N * N * 4 + 8 * steps + 1
    assert peak < 4 * N * N * 8  # a few (N, N) float64 temporaries at most
    assert arrays.W_mask[0][0, 1] == 1 and arrays.W_mask[50][0, 1] == 0


def test_simulator_params_follow_the_model_key_rule():
    # the simulators sort params' keys with the models' rule (minirnn._params.check_param_keys):
    # a case-only variant is a near miss, and a training option says where it belongs
    w = basic().get_weights()
    with pytest.raises(ParameterError, match=r"'Rec_Noise' for BasicSimulator; did you mean 'rec_noise'\? "
                                             r"BasicSimulator uses \["):
        BasicSimulator(weights=w, params=dict(dt=10, tau=100, Rec_Noise=0.1))
    with pytest.raises(ParameterError, match="'training_iters' is a training parameter, not a parameter of "
                                             "BasicSimulator: pass it in train_params"):
        BasicSimulator(weights=w, params=dict(dt=10, tau=100, training_iters=5))
    with pytest.raises(ParameterError, match="'learning_rate' is a training parameter.*LSTMSimulator"):
        LSTMSimulator(weights=LSTM(dict(N_in=2, N_rec=5, N_out=2, dt=10, tau=100, seed=2)).get_weights(),
                      params=dict(learning_rate=0.01))
