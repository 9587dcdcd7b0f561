"""Optimizers and gradient clipping: equations against hand computations and float64 references,
per-network hyperparameters and `active` masks against single-network runs (bitwise), state I/O,
dtype preservation, and the error messages.

Tolerances: "bitwise" means assert_array_equal; float64 references that order the arithmetic
differently are compared at rtol 1e-12.
"""
import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from minirnn.errors import ParameterError, ParameterTypeError
from minirnn.nn.clipping import clip_by_global_norm, clip_by_norm, global_norm
from minirnn.nn.optimizers import SGD, Adam, Momentum, Optimizer, RMSProp, get_optimizer

SHAPES = {"W_rec": (4, 4), "b_rec": (4,)}


def random_grads(rng, lead=(), dtype=np.float64, steps=5):
    return [{k: rng.standard_normal(lead + s).astype(dtype) for k, s in SHAPES.items()}
            for _ in range(steps)]


# ---------------------------------------------------------------- Adam


def adam_reference(grads_seq, lr=1e-3, b1=0.9, b2=0.999, eps=1e-8):
    """Kingma & Ba's efficient form, written independently in float64 with Python floats."""
    m = {k: np.zeros_like(g) for k, g in grads_seq[0].items()}
    v = {k: np.zeros_like(g) for k, g in grads_seq[0].items()}
    out = []
    for t, grads in enumerate(grads_seq, start=1):
        lr_t = lr * (1 - b2**t) ** 0.5 / (1 - b1**t)
        step = {}
        for k, g in grads.items():
            m[k] = b1 * m[k] + (1 - b1) * g
            v[k] = b2 * v[k] + (1 - b2) * g * g
            step[k] = lr_t * m[k] / (np.sqrt(v[k]) + eps)
        out.append(step)
    return out


def test_adam_matches_float64_reference():
    grads_seq = random_grads(np.random.default_rng(0), steps=8)
    opt = Adam(learning_rate=0.01, beta1=0.8, beta2=0.99, epsilon=1e-6)
    expected = adam_reference(grads_seq, lr=0.01, b1=0.8, b2=0.99, eps=1e-6)
    for grads, ref in zip(grads_seq, expected):
        delta = opt.compute_update(grads)
        for k in grads:
            np.testing.assert_allclose(delta[k], ref[k], rtol=1e-12, atol=0)
    assert float(opt.t) == 8


def test_adam_first_step_is_exact_and_close_to_lr_sign_g():
    g = np.array([3.0, -0.5, 1e-2, -20.0])
    lr, b1, b2, eps = 1e-3, 0.9, 0.999, 1e-8
    delta = Adam().compute_update({"w": g})["w"]
    # t = 1: m = (1 - b1) g, v = (1 - b2) g^2, lr_t = lr sqrt(1 - b2) / (1 - b1), delta =
    # lr_t m / (sqrt(v) + eps): the same roundings in the same order, so equal bit for bit
    lr_t = lr * np.sqrt(1 - b2) / (1 - b1)
    expected = (lr_t * ((1 - b1) * g)) / (np.sqrt((1 - b2) * (g * g)) + eps)
    np.testing.assert_array_equal(delta, expected)
    np.testing.assert_allclose(delta, lr * np.sign(g), rtol=1e-4)   # eps/|g sqrt(1-b2)| ~ 3e-5


def test_adam_efficient_form_is_algorithm_1_with_a_rescaled_epsilon():
    # delta = lr m_hat / (sqrt(v_hat) + eps / sqrt(1 - b2^t)), m_hat = m / (1 - b1^t), ...
    grads_seq = random_grads(np.random.default_rng(6), steps=4)
    lr, b1, b2, eps = 0.01, 0.9, 0.999, 1e-3
    opt, m, v = Adam(lr, b1, b2, eps), 0.0, 0.0
    for t, grads in enumerate(grads_seq, start=1):
        g = grads["W_rec"]
        m, v = b1 * m + (1 - b1) * g, b2 * v + (1 - b2) * g * g
        m_hat, v_hat = m / (1 - b1**t), v / (1 - b2**t)
        expected = lr * m_hat / (np.sqrt(v_hat) + eps / np.sqrt(1 - b2**t))
        np.testing.assert_allclose(opt.compute_update(grads)["W_rec"], expected, rtol=1e-12)


def test_adam_converges_on_a_quadratic():
    # f(x) = 0.5 sum(a (x - c)^2), grad = a (x - c); minimum at c
    a, c = np.array([1.0, 10.0, 0.1]), np.array([1.0, -2.0, 0.5])
    params, opt = {"x": np.zeros(3)}, Adam(learning_rate=0.05)
    for _ in range(3000):
        opt.step(params, {"x": a * (params["x"] - c)})
    np.testing.assert_allclose(params["x"], c, atol=1e-3)


# ---------------------------------------------------------------- SGD, Momentum, RMSProp by hand


def run(opt, gs):
    return [float(opt.compute_update({"w": np.array([g])})["w"][0]) for g in gs]


def test_sgd_by_hand():
    assert run(SGD(learning_rate=0.1), [1.0, -2.0]) == [0.1, -0.2]


def test_momentum_by_hand():
    # a1 = 1, delta1 = 0.1;  a2 = 0.9 * 1 + 2 = 2.9, delta2 = 0.29
    np.testing.assert_allclose(run(Momentum(0.1, 0.9), [1.0, 2.0]), [0.1, 0.29], rtol=1e-15)
    # nesterov: delta = lr g + lr mu a:  0.1 + 0.09 = 0.19;  0.2 + 0.1 * 0.9 * 2.9 = 0.461
    np.testing.assert_allclose(run(Momentum(0.1, 0.9, nesterov=True), [1.0, 2.0]),
                               [0.19, 0.461], rtol=1e-15)


def test_rmsprop_by_hand():
    lr, rho, mu, eps = 0.1, 0.9, 0.5, 1e-10
    # ms starts at 1 (TF1): ms1 = 0.9 + 0.1 * 4 = 1.3; mom1 = 0.1 * 2 / sqrt(1.3 + eps)
    ms1 = 1.3
    mom1 = lr * 2 / np.sqrt(ms1 + eps)
    # ms2 = 0.9 * 1.3 + 0.1 * 1 = 1.27; mom2 = 0.5 mom1 + 0.1 * 1 / sqrt(1.27 + eps)
    mom2 = mu * mom1 + lr * 1 / np.sqrt(0.9 * ms1 + 0.1 + eps)
    got = run(RMSProp(lr, decay=rho, momentum=mu, epsilon=eps), [2.0, 1.0])
    np.testing.assert_allclose(got, [mom1, mom2], rtol=1e-14)
    assert run(RMSProp(lr), [2.0])[0] == pytest.approx(lr * 2 / np.sqrt(1.3))


# ---------------------------------------------------------------- networks: hyperparameters, active

PER_NETWORK = [
    (SGD, {"learning_rate": [1e-3, 3e-3, 1e-2]}),
    (Momentum, {"learning_rate": [1e-3, 3e-3, 1e-2], "momentum": [0.5, 0.9, 0.0]}),
    (RMSProp, {"learning_rate": [1e-3, 3e-3, 1e-2], "decay": [0.9, 0.5, 0.99],
               "momentum": [0.0, 0.5, 0.9]}),
    (Adam, {"learning_rate": [1e-3, 3e-3, 1e-2], "beta1": [0.9, 0.5, 0.0],
            "beta2": [0.999, 0.9, 0.99], "epsilon": [1e-8, 1e-6, 1e-3]}),
]


@pytest.mark.parametrize("cls, hyper", PER_NETWORK, ids=[c.__name__ for c, _ in PER_NETWORK])
def test_per_network_hyperparameters_equal_single_networks_bitwise(cls, hyper):
    grads_seq = random_grads(np.random.default_rng(1), lead=(3,))
    ensemble = cls(**{h: np.array(v) for h, v in hyper.items()})
    singles = [cls(**{h: v[k] for h, v in hyper.items()}) for k in range(3)]
    for grads in grads_seq:
        delta = ensemble.compute_update(grads)
        for k, single in enumerate(singles):
            one = single.compute_update({n: g[k] for n, g in grads.items()})
            for n in grads:
                np.testing.assert_array_equal(delta[n][k], one[n])


@pytest.mark.parametrize("cls, hyper", PER_NETWORK, ids=[c.__name__ for c, _ in PER_NETWORK])
def test_active_mask_freezes_state_and_update(cls, hyper):
    """A network that is inactive on a step gets delta 0 and behaves afterwards exactly as a
    single-network optimizer that never saw that step."""
    rng = np.random.default_rng(2)
    grads_seq = random_grads(rng, lead=(3,), steps=6)
    pattern = [[True, True, True], [True, False, True], [False, False, True],
               [True, True, False], [True, True, True], [False, True, True]]
    ensemble = cls(**{h: np.array(v) for h, v in hyper.items()})
    singles = [cls(**{h: v[k] for h, v in hyper.items()}) for k in range(3)]
    for grads, active in zip(grads_seq, pattern):
        delta = ensemble.compute_update(grads, active=np.array(active))
        for k, single in enumerate(singles):
            if active[k]:
                one = single.compute_update({n: g[k] for n, g in grads.items()})
            for n in grads:
                np.testing.assert_array_equal(delta[n][k], one[n] if active[k] else 0 * one[n])
    np.testing.assert_array_equal(ensemble.t, [4, 4, 5])
    state = ensemble.state_dict()
    for k, single in enumerate(singles):
        for key, value in single.state_dict().items():
            if isinstance(value, np.ndarray) and not key.startswith("hyper/"):
                np.testing.assert_array_equal(state[key][k], value, err_msg=key)


def test_float_hyperparameters_with_active_infer_the_network_axis():
    opt = Adam(learning_rate=0.01)
    g = {"w": np.ones((2, 3))}
    d = opt.compute_update(g, active=np.array([True, False]))
    assert np.all(d["w"][1] == 0) and np.all(d["w"][0] != 0)
    np.testing.assert_array_equal(opt.t, [1, 0])
    with pytest.raises(ParameterError, match="active must have shape"):
        opt.compute_update(g, active=np.array([True, False, True]))
    # the trainer may pass no `active` first: the network axis is then found when it appears
    late, ref = Adam(learning_rate=0.01), Adam(learning_rate=0.01, n_lead=1)
    for active in (None, None, np.array([False, True]), np.array([True, True])):
        d1, d2 = late.compute_update(g, active=active), ref.compute_update(g, active=active)
        np.testing.assert_array_equal(d1["w"], d2["w"])
    np.testing.assert_array_equal(late.t, [3, 4])


# ---------------------------------------------------------------- state, dtype, errors


@pytest.mark.parametrize("cls", [SGD, Momentum, RMSProp, Adam])
def test_state_dict_round_trip_through_npz(cls, tmp_path):
    grads_seq = random_grads(np.random.default_rng(3), lead=(2,), steps=6)
    a = cls(learning_rate=np.array([0.01, 0.02]))
    for grads in grads_seq[:3]:
        a.compute_update(grads, active=np.array([True, False]) if cls is Adam else None)
    state = a.state_dict()
    json.dumps({k: v for k, v in state.items() if not isinstance(v, np.ndarray)})
    np.savez(tmp_path / "opt.npz", **state)
    for value in state.values():                      # copies: editing them changes nothing
        if isinstance(value, np.ndarray):
            value[...] = 7
    b = cls()
    with np.load(tmp_path / "opt.npz", allow_pickle=False) as f:
        b.load_state_dict(f)
    assert repr(b) == repr(a)
    for grads in grads_seq[3:]:
        da, db = a.compute_update(grads), b.compute_update(grads)
        for n in grads:
            np.testing.assert_array_equal(da[n], db[n])


def test_reset_and_wrong_state():
    grads = random_grads(np.random.default_rng(4), steps=2)
    opt = Adam()
    first = opt.compute_update(grads[0])
    opt.compute_update(grads[1])
    opt.reset()
    assert opt.t is None and opt.state == {}
    np.testing.assert_array_equal(opt.compute_update(grads[0])["W_rec"], first["W_rec"])
    with pytest.raises(ParameterError, match="for a Adam optimizer, not SGD"):
        SGD().load_state_dict(opt.state_dict())
    with pytest.raises(ParameterError, match="has shape"):
        opt.compute_update({"W_rec": np.ones((5, 5))})


def assert_same_state(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    assert sorted(sa) == sorted(sb)
    for key in sa:
        np.testing.assert_array_equal(sa[key], sb[key], err_msg=key)


@pytest.mark.parametrize("cls", [SGD, Momentum, RMSProp, Adam])
def test_a_refused_update_moves_no_counter_and_no_slot(cls):
    """Every shape check runs before the step count or a slot changes (audit: t moved first)."""
    rng = np.random.default_rng(6)
    opt = cls(learning_rate=np.array([0.1, 0.2]), n_lead=1)  # two networks
    with pytest.raises(ParameterError, match=r"'learning_rate' parameter of .* has shape \(2,\) but the "
                                             r"networks' shape is \(3,\)"):
        opt.compute_update(random_grads(rng, lead=(3,), steps=1)[0])
    assert opt.t is None and opt.state == {}
    with pytest.raises(ParameterError, match="active must have shape"):
        cls(learning_rate=0.1).compute_update(random_grads(rng, lead=(3,), steps=1)[0], active=np.ones(2, bool))
    if not cls.slots:
        return
    opt = cls(learning_rate=0.1)
    opt.compute_update(random_grads(rng, steps=1)[0])
    before = cls(learning_rate=0.1)
    before.load_state_dict(opt.state_dict())
    bad = {"W_rec": np.ones((4, 4)), "b_rec": np.ones(5)}  # the second gradient does not fit its slots
    with pytest.raises(ParameterError, match="'b_rec' has shape"):
        opt.compute_update(bad)
    assert_same_state(opt, before)


@pytest.mark.parametrize("cls", [SGD, Momentum, RMSProp, Adam])
def test_state_arrays_copied_and_loaded_back_undo_updates(cls):
    """What the trainer does around an update: copy state_arrays(), step, write them back (all
    networks, or only some); the result is the state of a twin that never took the step."""
    rng = np.random.default_rng(7)
    grads = random_grads(rng, lead=(3,), steps=3)
    opt, twin = cls(learning_rate=0.1, n_lead=1), cls(learning_rate=0.1, n_lead=1)
    for g in grads[:2]:
        opt.compute_update(g)
        twin.compute_update(g)
    opt.prepare(grads[2])
    saved = {k: np.array(a, copy=True) for k, a in opt.state_arrays().items()}
    opt.compute_update(grads[2])
    undo = np.array([False, True, False])
    opt.load_state_arrays(saved, networks=undo)  # network 1 back to before the step
    twin.compute_update(grads[2], active=~undo)   # the same as network 1 not stepping
    assert_same_state(opt, twin)
    opt.load_state_arrays(saved)  # every network
    back = cls(learning_rate=0.1, n_lead=1)
    for g in grads[:2]:
        back.compute_update(g)
    assert_same_state(opt, back)


def test_fresh_copies_the_configuration_not_the_state():
    rng = np.random.default_rng(8)
    lr = np.array([0.1, 0.2])
    opt = Momentum(learning_rate=lr, momentum=0.5, nesterov=True)
    opt.compute_update(random_grads(rng, lead=(2,), steps=1)[0])
    new = opt.fresh(n_lead=1)
    assert type(new) is Momentum and repr(new) == "Momentum(learning_rate=[0.1, 0.2], momentum=0.5, nesterov=True, n_lead=1)"
    assert new.t is None and new.state == {} and opt.t is not None
    lr[0] = 9.0  # the user's array: the copy has its own
    assert new.learning_rate[0] == 0.1
    new.compute_update(random_grads(rng, lead=(2,), steps=1)[0])
    assert np.array_equal(opt.t, [1, 1])  # the original did not move


@pytest.mark.parametrize("cls", [SGD, Momentum, RMSProp, Adam])
@pytest.mark.parametrize("lead", [(), (3,)])
def test_float32_stays_float32(cls, lead):
    rng = np.random.default_rng(5)
    params = {k: rng.standard_normal(lead + s).astype(np.float32) for k, s in SHAPES.items()}
    lr = np.array([1e-3, 2e-3, 3e-3]) if lead else 1e-3            # float64 hyperparameters
    opt = cls(learning_rate=lr)
    for grads in random_grads(rng, lead=lead, dtype=np.float32, steps=3):
        deltas = opt.compute_update(grads, active=np.array([True, False, True]) if lead else None)
        assert all(d.dtype == np.float32 for d in deltas.values())
        opt.step(params, grads)
    assert all(p.dtype == np.float32 for p in params.values())
    assert all(a.dtype == np.float32 for s in opt.state.values() for a in s.values())
    assert all(np.asarray(c).dtype == np.float32 for c in opt.counters.values())
    assert all(v.dtype == np.float32 for k, v in opt.state_dict().items()
               if isinstance(v, np.ndarray) and not k.startswith("hyper/"))


def test_compute_update_leaves_params_alone_and_step_updates_in_place():
    params = {"w": np.array([1.0, 2.0])}
    w = params["w"]
    SGD(0.5).compute_update({"w": np.array([1.0, 1.0])})
    SGD(0.5).step(params, {"w": np.array([1.0, -1.0])})
    assert params["w"] is w
    np.testing.assert_array_equal(w, [0.5, 2.5])


def test_get_optimizer():
    assert isinstance(get_optimizer("ADAM", 0.01), Adam)
    assert get_optimizer("RMSProp", 0.01).learning_rate == 0.01
    assert type(get_optimizer("sgd")) is SGD and type(get_optimizer("Momentum")) is Momentum
    opt = Momentum(0.2)
    assert get_optimizer(opt, 0.5) is opt
    assert isinstance(get_optimizer(Adam, 0.5), Optimizer)
    with pytest.raises(ParameterError, match=r"Unknown optimizer 'adma'; did you mean 'adam'\?"):
        get_optimizer("adma")
    with pytest.raises(ParameterError, match="'rmsprop'"):
        get_optimizer("nadam")
    with pytest.raises(ParameterTypeError, match="42"):
        get_optimizer(42)


@pytest.mark.parametrize("cls, kwargs, fragment", [
    (Adam, {"learning_rate": -0.1}, "'learning_rate' parameter of Adam must be > 0.*Got -0.1"),
    (Adam, {"beta1": 1.0}, "'beta1' parameter of Adam must be in \\[0, 1\\).*Got 1.0"),
    (Adam, {"epsilon": 0}, "'epsilon'.*Got 0"),
    (Adam, {"learning_rate": np.array([0.1, np.nan])}, "'learning_rate'.*nan"),
    (Momentum, {"momentum": -0.5}, "'momentum' parameter of Momentum.*Got -0.5"),
    (RMSProp, {"decay": 2}, "'decay' parameter of RMSProp.*Got 2"),
    (SGD, {"learning_rate": 0}, "'learning_rate' parameter of SGD.*Got 0"),
])
def test_bad_hyperparameters_are_named(cls, kwargs, fragment):
    with pytest.raises(ParameterError, match=fragment):
        cls(**kwargs)


def test_bad_types_and_assignment():
    with pytest.raises(ParameterTypeError, match="'learning_rate'.*'fast'"):
        Adam(learning_rate="fast")
    with pytest.raises(ParameterTypeError, match="nesterov"):
        Momentum(nesterov="yes")
    opt = SGD(0.1)
    with pytest.raises(ParameterError, match="-1"):
        opt.learning_rate = -1                       # a schedule's assignment is checked too
    opt.learning_rate = 0.2
    assert opt.compute_update({"w": np.array([1.0])})["w"][0] == 0.2
    with pytest.raises(ParameterError, match="shape"):
        SGD(np.array([0.1, 0.2])).compute_update({"w": np.ones((3, 2))})


def test_repr():
    assert repr(Adam()) == "Adam(learning_rate=0.001, beta1=0.9, beta2=0.999, epsilon=1e-08)"
    assert repr(Momentum(0.1, nesterov=True)) == \
        "Momentum(learning_rate=0.1, momentum=0.9, nesterov=True)"
    assert "learning_rate=[0.1, 0.2]" in repr(SGD(np.array([0.1, 0.2])))


# ---------------------------------------------------------------- clipping


def test_clip_by_norm_per_parameter_and_per_network():
    g = {"W": np.array([[[3.0, 4.0]], [[0.3, 0.4]], [[0.0, 0.0]]]),   # norms 5, 0.5, 0 per network
         "b": np.array([[1.0], [-2.0], [0.5]])}
    out = clip_by_norm(g, 1.0, n_lead=1)
    np.testing.assert_allclose(out["W"], [[[0.6, 0.8]], [[0.3, 0.4]], [[0.0, 0.0]]], rtol=1e-15)
    np.testing.assert_allclose(out["b"], [[1.0], [-1.0], [0.5]], rtol=1e-15)
    assert out is not g and g["W"][0, 0, 0] == 3.0                  # a new dict, input untouched
    # n_lead=0: one norm over the whole array (norm sqrt(25.25))
    flat = clip_by_norm({"W": g["W"]}, 1.0)["W"]
    np.testing.assert_allclose(flat, g["W"] / np.sqrt(25.25), rtol=1e-15)
    # per-network max_norm
    out = clip_by_norm({"W": g["W"]}, np.array([10.0, 0.25, 1.0]), n_lead=1)["W"]
    np.testing.assert_allclose(out, [[[3.0, 4.0]], [[0.15, 0.2]], [[0.0, 0.0]]], rtol=1e-15)


def test_clip_by_global_norm_per_network():
    g = {"W": np.array([[[3.0, 0.0]], [[0.0, 0.0]]]), "b": np.array([[4.0], [0.5]])}
    np.testing.assert_allclose(global_norm(g, n_lead=1), [5.0, 0.5])
    out = clip_by_global_norm(g, 2.0, n_lead=1)
    np.testing.assert_allclose(out["W"], [[[1.2, 0.0]], [[0.0, 0.0]]], rtol=1e-15)
    np.testing.assert_allclose(out["b"], [[1.6], [0.5]], rtol=1e-15)
    np.testing.assert_allclose(global_norm(out, n_lead=1), [2.0, 0.5], rtol=1e-15)


def test_clipping_zero_gradients_float32_and_errors():
    zero = {"W": np.zeros((2, 3, 3), np.float32), "b": np.zeros((2, 3), np.float32)}
    for out in (clip_by_norm(zero, 1.0, 1), clip_by_global_norm(zero, 1.0, 1)):
        assert all(np.all(v == 0) and v.dtype == np.float32 for v in out.values())
    big = {"W": np.full((2, 3), 100.0, np.float32)}
    assert clip_by_norm(big, np.array([1.0, 2.0]), 1)["W"].dtype == np.float32
    assert clip_by_global_norm(big, 1.0, 1)["W"].dtype == np.float32
    with pytest.raises(ParameterError, match="max_norm must be > 0.*-1"):
        clip_by_norm(big, -1.0)
    with pytest.raises(ParameterError, match="n_lead"):
        clip_by_norm(big, 1.0, n_lead=3)


@settings(max_examples=50, deadline=None)
@given(st.lists(st.floats(-1e6, 1e6), min_size=1, max_size=8), st.floats(1e-3, 1e3))
def test_clip_by_norm_property(values, max_norm):
    g = np.array(values)
    out = clip_by_norm({"g": g}, max_norm)["g"]
    norm = np.linalg.norm(g)
    assert np.linalg.norm(out) <= max_norm * (1 + 1e-12)
    if norm <= max_norm:                                          # inside the ball: unchanged
        np.testing.assert_allclose(out, g, rtol=3e-16, atol=1e-300)  # g * c / c: two roundings
    else:
        np.testing.assert_allclose(out * norm / max_norm, g, rtol=1e-12, atol=1e-300)
