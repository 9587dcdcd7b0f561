"""The LSTM: gradients (float64 central differences), PsychRNN's weights files, save/load, masks,
fixed weights, any batch size, kernel dispatch.

Gradient-check pass level: relative error ``||g - g_fd|| / max(||g||, ||g_fd||)`` < 1e-6 per
parameter, central differences with h = 1e-6 in float64 (minirnn.testing.check_grads).
"""
from __future__ import annotations

import json
import os

import numpy as np
import pytest

from minirnn import LSTM, Basic
from minirnn import io as mio
from minirnn.backends import Backend
from minirnn.dynamics import lstm as lstm_dynamics
from minirnn.errors import ParameterError, WeightsFileError
from minirnn.testing import check_grads

DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data")
GOLDEN = os.path.join(DATA, "psychrnn100_lstm.npz")
pytestmark = pytest.mark.filterwarnings("ignore:.*one initial state per batch row")  # tested once, below
GOLDEN_IO = os.path.join(DATA, "psychrnn100_lstm_io.npz")
GATES = ("f", "i", "c", "o")


def small_params(**kw):
    p = dict(N_in=2, N_rec=4, N_out=3, dt=10, tau=100, dtype="float64", seed=3, backend="numpy")
    p.update(kw)
    return p


def batch(B=3, T=6, N_in=2, N_out=3, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((B, T, N_in))
    y = rng.random((B, T, N_out))
    mask = (rng.random((B, T, N_out)) > 0.2).astype(float)
    return x, y, mask


def jitter(model, scale=0.3, seed=1):
    """Move every raw parameter away from its tidy initial value (biases 1.0, ...)."""
    rng = np.random.default_rng(seed)
    for name in model.raw:
        model.raw[name] = model.raw[name] + scale * rng.standard_normal(model.raw[name].shape)


def oracle_forward(w, x, variant):
    """An independent float64 LSTM (min-char-rnn style), our layout: W_g (N, N + N_in)."""
    sig = lambda a: 1 / (1 + np.exp(-a))  # noqa: E731
    phi = np.tanh if variant == "standard" else sig
    B = x.shape[0]
    h = np.repeat(w["init_hidden"], B, 0)
    c = np.repeat(w["init_cell"], B, 0)
    outs, hs = [], []
    for k in range(x.shape[1]):
        hu = np.concatenate([h, x[:, k]], axis=1)
        f = sig(hu @ w["W_f"].T + w["b_f"])
        i = sig(hu @ w["W_i"].T + w["b_i"])
        g = np.tanh(hu @ w["W_c"].T + w["b_c"])
        o = sig(hu @ w["W_o"].T + w["b_o"])
        c = f * c + i * g
        h = o * phi(c)
        hs.append(h)
        outs.append(h @ w["W_out"].T + w["b_out"])
    return np.stack(outs, 1), np.stack(hs, 1)


# ---- gradients ----------------------------------------------------------------------------------
MASKS = dict(
    rec_connectivity=np.array([[1, 0, 1, 1], [1, 1, 0, 1], [0, 1, 1, 1], [1, 1, 1, 0]], float),
    input_connectivity=np.array([[1, 0], [1, 1], [0, 1], [1, 1]], float),
    output_connectivity=np.array([[1, 1, 0, 1], [0, 1, 1, 1], [1, 0, 1, 1]], float),
    autapses=False,
)
REGS = dict(L1_in=0.05, L1_rec=0.05, L1_out=0.05, L2_in=0.1, L2_rec=0.1, L2_out=0.1, L2_firing_rate=0.2)


@pytest.mark.parametrize("variant", ["standard", "psychrnn"])
@pytest.mark.parametrize("config", ["plain", "masks", "masks+regs", "bce"])
def test_gradients_match_central_differences(variant, config):
    kw = {}
    if "masks" in config:
        kw.update(MASKS)
    if "regs" in config:
        kw.update(REGS)
    if config == "bce":
        kw["loss_function"] = "binary_cross_entropy"
    model = LSTM(small_params(lstm_variant=variant, **kw))
    jitter(model)
    if config == "bce":  # keep outputs inside (eps, 1 - eps), away from the clip
        model.raw["W_out"] *= 0.1
        model.raw["b_out"][:] = 0.5
    x, y, mask = batch()
    result = check_grads(model, x, y, mask, tol=1e-6)
    assert set(result) == set(model.param_names)  # every parameter was checked
    assert not result.kinks


def test_masked_entries_have_zero_gradient_and_no_effect():
    model = LSTM(small_params(**MASKS))
    jitter(model)
    x, y, mask = batch()
    _, grads = model.loss_and_grads(x, y, mask)
    gate_mask = model.masks["W_f"]
    assert np.array_equal(gate_mask[:, :4], MASKS["rec_connectivity"] * (1 - np.eye(4)))
    assert np.array_equal(gate_mask[:, 4:], MASKS["input_connectivity"])
    for g in GATES:
        assert np.all(grads[f"W_{g}"][gate_mask == 0] == 0)
    assert np.all(grads["W_out"][MASKS["output_connectivity"] == 0] == 0)
    before = model.test(x)
    for g in GATES:
        model.raw[f"W_{g}"][gate_mask == 0] = 123.0  # a masked raw weight does nothing
    model.raw["W_out"][MASKS["output_connectivity"] == 0] = -50.0
    after = model.test(x)
    assert np.array_equal(before[0], after[0]) and np.array_equal(before[1], after[1])


def test_fixed_weights_stay_fixed_bit_for_bit():
    model = LSTM(small_params(dtype="float32"))
    rng = np.random.default_rng(5)
    F_f = (rng.random((4, 6)) > 0.5).astype(float)
    F_out = (rng.random((3, 4)) > 0.5).astype(float)
    before = {k: np.array(v) for k, v in model.raw.items()}

    def batches():
        while True:
            x, y, mask = batch(B=4, seed=int(rng.integers(1 << 30)))
            yield x, y, mask, None

    model.train(batches(), {"training_iters": 12, "verbosity": False, "learning_rate": 0.01,
                            "fixed_weights": {"W_f": F_f, "W_out": F_out, "b_c": np.ones(4)}})
    assert np.array_equal(model.raw["W_f"][F_f == 1], before["W_f"][F_f == 1])
    assert np.all(model.raw["W_f"][F_f == 0] != before["W_f"][F_f == 0])
    assert np.array_equal(model.raw["W_out"][F_out == 1], before["W_out"][F_out == 1])
    assert np.array_equal(model.raw["b_c"], before["b_c"])
    for name in ("W_i", "W_c", "W_o", "init_hidden", "init_cell"):
        assert not np.array_equal(model.raw[name], before[name]), name
    assert all(v.dtype == np.float32 for v in model.raw.values())


def test_training_reduces_the_loss():
    model = LSTM(small_params(N_out=1, dtype="float32"))
    rng = np.random.default_rng(0)

    def batches():  # output = running sign of the first input
        while True:
            x = rng.standard_normal((16, 8, 2))
            y = (np.cumsum(x[..., :1], axis=1) > 0).astype(float)
            yield x, y, np.ones_like(y), None

    x, y, m, _ = next(batches())
    loss0, _ = model.loss_and_grads(x, y, m)
    model.train(batches(), {"training_iters": 16 * 60, "verbosity": False, "learning_rate": 0.02})
    loss1, _ = model.loss_and_grads(x, y, m)
    assert loss1 < 0.6 * loss0


# ---- forward ------------------------------------------------------------------------------------
@pytest.mark.parametrize("variant", ["standard", "psychrnn"])
def test_forward_matches_an_independent_oracle(variant):
    model = LSTM(small_params(lstm_variant=variant))
    jitter(model)
    x, _, _ = batch(B=2, T=7)
    out, states = model.test(x)
    ref_out, ref_states = oracle_forward({k: np.asarray(v) for k, v in model.raw.items()}, x, variant)
    np.testing.assert_allclose(out, ref_out, rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(states, ref_states, rtol=1e-12, atol=1e-13)


def test_variants_differ_and_default_is_standard():
    a = LSTM(small_params())
    b = LSTM(small_params(lstm_variant="psychrnn"))
    assert a.lstm_variant == "standard" and b.lstm_variant == "psychrnn"
    x, _, _ = batch()
    assert not np.allclose(a.test(x)[0], b.test(x)[0])
    with pytest.raises(ParameterError, match="lstm_variant"):
        LSTM(small_params(lstm_variant="tanh"))


def test_initialization_is_psychrnns_and_seeded():
    p = small_params(N_rec=40, N_in=3, N_out=2)
    m = LSTM(p)
    for g in GATES:
        assert m.raw[f"W_{g}"].shape == (40, 43)
        assert np.all(m.raw[f"b_{g}"] == 1.0)
        assert 0.08 < float(np.std(m.raw[f"W_{g}"])) < 0.12
    assert m.raw["init_hidden"].shape == m.raw["init_cell"].shape == (1, 40)
    assert np.all(m.raw["b_out"] == 0)
    again = LSTM(p)
    assert all(np.array_equal(m.raw[k], again.raw[k]) for k in m.raw)
    other = LSTM(dict(p, seed=4))
    assert not np.array_equal(m.raw["W_f"], other.raw["W_f"])


@pytest.mark.parametrize("B", [1, 2, 5])
def test_any_batch_size_and_rows_are_independent(B):
    model = LSTM(small_params(N_in=1))
    jitter(model)
    x = np.random.default_rng(2).standard_normal((B, 9, 1))
    out, states = model.test(x)
    assert out.shape == (B, 9, 3) and states.shape == (B, 9, 4)
    single, _ = model.test(x[-1:])
    np.testing.assert_allclose(out[-1], single[0], rtol=1e-12, atol=1e-14)


def test_float32_model_keeps_float32():
    model = LSTM(small_params(dtype="float32"))
    x, y, mask = batch()
    out, states = model.test(x)
    assert out.dtype == states.dtype == np.float32
    _, grads = model.loss_and_grads(x, y, mask)
    assert all(g.dtype == np.float32 for g in grads.values())


def test_backend_kernels_are_looked_up_by_name():
    calls = []

    def spy_forward(*args):
        calls.append("forward")
        return lstm_dynamics.lstm_forward(*args)

    def spy_backward(*args):
        calls.append("backward")
        return lstm_dynamics.lstm_backward(*args)

    model = LSTM(small_params())
    model.backend = Backend("numpy", kernels={"lstm_forward": spy_forward, "lstm_backward": spy_backward})
    x, y, mask = batch()
    model.loss_and_grads(x, y, mask)
    assert calls == ["forward", "backward"]


# ---- PsychRNN's files, save / load ------------------------------------------------------------
def golden_params(**kw):
    p = dict(N_in=2, N_rec=6, N_out=2, dt=10, tau=100, load_weights_path=GOLDEN)
    p.update(kw)
    return p


@pytest.mark.filterwarnings("ignore:.*optimizer-state")
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_psychrnn_lstm_file_reproduces_psychrnn_outputs(dtype):
    """No extra option: a file without minirnn metadata is PsychRNN's -> the psychrnn variant,
    first row of its per-batch-row initial states."""
    io = mio.read_npz(GOLDEN_IO)
    model = LSTM(golden_params(dtype=dtype))
    assert model.lstm_variant == "psychrnn"
    out, states = model.test(io["x"])
    tol = dict(rtol=1e-5, atol=2e-6)
    np.testing.assert_allclose(out[0], io["outputs"][0], **tol)
    np.testing.assert_allclose(states[0], io["states"][0], **tol)
    # PsychRNN ran row b from its own b-th initial state; with that state we match every row
    w = mio.read_npz(GOLDEN)
    for b in range(3):
        model.set_weights({"init_hidden": w["init_hidden"][b:b + 1], "init_cell": w["init_cell"][b:b + 1]})
        out, states = model.test(io["x"][b:b + 1])
        np.testing.assert_allclose(out[0], io["outputs"][b], **tol)
        np.testing.assert_allclose(states[0], io["states"][b], **tol)


@pytest.mark.filterwarnings("ignore:.*optimizer-state")
def test_psychrnn_weights_dict_in_params_builds_the_same_network():
    """The arrays of a PsychRNN file in params: the same weights as loading the file. The cell is the
    class's (PsychRNNLSTM: PsychRNN's), never guessed from the arrays' layout."""
    from minirnn import PsychRNNLSTM

    w = mio.read_npz(GOLDEN)
    p = dict(N_in=2, N_rec=6, N_out=2, dt=10, tau=100)
    p.update({k: v for k, v in w.items() if "/" not in k})
    b = LSTM(golden_params())
    for cls, variant in ((PsychRNNLSTM, "psychrnn"), (LSTM, "standard")):
        a = cls(p)
        assert a.lstm_variant == variant
        assert all(np.array_equal(a.raw[k], b.raw[k]) for k in a.raw)


@pytest.mark.parametrize("variant", ["standard", "psychrnn"])
def test_save_writes_psychrnn_layout_and_reloads_bit_for_bit(tmp_path, variant):
    model = LSTM(small_params(lstm_variant=variant, **MASKS))
    jitter(model)
    path = model.save(str(tmp_path / "lstm"))
    assert path.endswith(".npz")
    arrays = mio.read_npz(path)
    for g in GATES:  # PsychRNN's (N_rec + N_in, N_rec), effective (masked)
        assert arrays[f"W_{g}"].shape == (6, 4)
        np.testing.assert_array_equal(arrays[f"W_{g}"], (np.asarray(model.raw[f"W_{g}"]) * model.masks["W_f"]).T)
    assert arrays["init_hidden"].shape == (1, 4)
    assert not any("/" in k for k in arrays)
    meta = json.loads(str(arrays["minirnn"]))
    assert meta["lstm_variant"] == variant and meta["class"] == "LSTM"
    assert mio.classify_weights(arrays)["architecture"] == "lstm"
    again = LSTM(small_params(load_weights_path=path))
    assert again.lstm_variant == variant
    x, _, _ = batch(B=2)
    for a, b in zip(model.test(x), again.test(x)):
        assert np.array_equal(a, b)
    # params.update(get_weights()) builds the same network too (the variant travels with it)
    p = small_params()
    p.update(model.get_weights())
    third = LSTM(p)
    assert third.lstm_variant == variant
    for a, b in zip(model.test(x), third.test(x)):
        assert np.array_equal(a, b)


def test_basic_file_into_lstm_is_an_error(tmp_path):
    path = Basic(small_params()).save(str(tmp_path / "basic"))
    with pytest.raises(WeightsFileError, match="BASIC"):
        LSTM(small_params(load_weights_path=path))


def test_dale_ratio_and_rec_noise_warn():
    with pytest.warns(UserWarning, match="dale_ratio"):
        m = LSTM(small_params(dale_ratio=0.8))
    assert m.params["dale_ratio"] is None
    with pytest.warns(UserWarning, match="rec_noise"):
        LSTM(small_params(rec_noise=0.1))


def test_repr_names_the_variant():
    assert "lstm_variant='standard'" in repr(LSTM(small_params()))


def test_ensemble_networks_match_single_models():
    """Leading network axis: each network's outputs and gradients are a single model's."""
    p = small_params(L2_rec=0.1, L2_firing_rate=0.1)
    over = [{"L2_rec": 0.0}, {}, {"L2_rec": 0.3}]
    ens = LSTM(p, n_networks=3, network_params=over)
    assert ens.raw["W_f"].shape == (3, 4, 6) and ens.masks["W_f"].shape == (3, 4, 6)
    x, y, mask = batch(B=2, T=5)
    out, _ = ens.test(x)
    _, g_ens = ens._loss_and_grads(*ens._check_batch(x, y, mask))
    for k in range(3):
        single = LSTM(dict(p, **over[k]))
        for name in single.raw:
            single.raw[name] = ens.raw[name][k].copy()
        np.testing.assert_allclose(single.test(x)[0], out[k], rtol=1e-12, atol=1e-14)
        _, g = single.loss_and_grads(x, y, mask)
        for name in g:
            np.testing.assert_allclose(g[name], g_ens[name][k], rtol=1e-10, atol=1e-14)


def test_ensemble_network_k_is_the_network_trained_alone(tmp_path):
    from minirnn.tasks import PerceptualDiscrimination

    p = small_params(N_in=2, N_out=2, L2_rec=0.1)
    seeds, over = [3, 4], [{"L2_rec": 0.0}, {}]
    ens = LSTM(p, n_networks=2, seeds=seeds, network_params=over)
    task = PerceptualDiscrimination(dt=10, tau=100, T=100, N_batch=4, seed=0)
    ens.train(task, {"training_iters": 4 * 3, "verbosity": False})
    for k in range(2):
        single = LSTM(dict(p, seed=seeds[k], **over[k]))
        single.train(PerceptualDiscrimination(dt=10, tau=100, T=100, N_batch=4, seed=seeds[k]),
                     {"training_iters": 4 * 3, "verbosity": False})
        net = ens.network(k)
        assert net.lstm_variant == single.lstm_variant and not net.lead
        for name in single.raw:
            np.testing.assert_allclose(net.raw[name], single.raw[name], rtol=1e-12, atol=1e-14)
        again = LSTM(dict(p, load_weights_path=net.save(str(tmp_path / f"net{k}"))))
        x = task.get_trial_batch()[0]
        np.testing.assert_allclose(again.test(x)[0], single.test(x)[0], rtol=1e-12, atol=1e-14)


# ---- PsychRNNLSTM: what a ported PsychRNN script gets for `LSTM` ---------------------------------
@pytest.mark.filterwarnings("ignore:.*optimizer-state")
def test_psychrnn_lstm_class_defaults_to_psychrnns_cell(tmp_path):
    """LSTM(params) from a PsychRNN script (no weights, no lstm_variant) must be PsychRNN's cell,
    h' = o * sigmoid(c'), under the import the port writes; minirnn's own LSTM stays standard."""
    from minirnn import PsychRNNLSTM

    p = dict(N_in=2, N_rec=6, N_out=2, dt=10, tau=100, N_batch=16, name="lstm", seed=4, dtype="float64",
             backend="numpy")
    ported, native = PsychRNNLSTM(p), LSTM(p)
    assert isinstance(ported, LSTM) and ported.lstm_variant == "psychrnn" and native.lstm_variant == "standard"
    assert repr(ported).startswith("PsychRNNLSTM(") and "lstm_variant='psychrnn'" in repr(ported)
    # same draws, PsychRNN's cell: the golden PsychRNN outputs once PsychRNN's trained weights are set
    io, w = mio.read_npz(GOLDEN_IO), mio.read_npz(GOLDEN)
    trained = {k: v for k, v in w.items() if k in ported.raw}
    trained.update(init_hidden=w["init_hidden"][:1], init_cell=w["init_cell"][:1])
    ported.set_weights(trained)
    np.testing.assert_allclose(ported.test(io["x"][:1])[0][0], io["outputs"][0], rtol=1e-5, atol=2e-6)
    explicit = LSTM(dict(p, lstm_variant="psychrnn"))
    explicit.set_weights(trained)
    assert np.array_equal(ported.test(io["x"])[0], explicit.test(io["x"])[0])
    native.set_weights(trained)  # the standard cell gives other outputs from the same weights
    assert not np.allclose(native.test(io["x"][:1])[0][0], io["outputs"][0], rtol=1e-5, atol=2e-6)
    # an explicit lstm_variant wins over the class default, and a minirnn file keeps its own variant
    assert PsychRNNLSTM(dict(p, lstm_variant="standard")).lstm_variant == "standard"
    path = native.save(str(tmp_path / "standard"))
    assert PsychRNNLSTM(dict(p, load_weights_path=path)).lstm_variant == "standard"
    # a PsychRNN file: psychrnn for both classes (PsychRNN-layout arrays in params keep the class's cell)
    assert LSTM(dict(p, load_weights_path=GOLDEN)).lstm_variant == "psychrnn"


@pytest.mark.filterwarnings("ignore:.*optimizer-state")
def test_per_row_initial_states_of_a_psychrnn_file_warn_that_the_first_row_is_kept():
    with pytest.warns(UserWarning, match="init_hidden: PsychRNN trained one initial state per batch row"):
        model = LSTM(small_params(N_rec=6, N_out=2, load_weights_path=GOLDEN))
    first = mio.read_npz(GOLDEN)["init_hidden"][:1]
    np.testing.assert_array_equal(model.raw["init_hidden"], first.astype(model.dtype))
