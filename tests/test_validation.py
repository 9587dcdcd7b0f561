"""Malformed input at every public entry point gives a minirnn error that names the culprit.

Property-based (hypothesis): a valid configuration is spoiled in one place -- a params key, a
train_params key, an array's shape / dtype / values, a task constructor argument -- and the entry
point (``Basic(...)``, ``model.train``, ``model.test``, ``model.loss_and_grads``, the task classes)
must raise a :class:`~minirnn.errors.MinirnnError` whose message names the bad key or argument.
Never an ``IndexError``, a NumPy broadcasting error or a bare ``TypeError``.
"""
from __future__ import annotations

import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from minirnn import Basic
from minirnn.errors import MinirnnError
from minirnn.tasks import DelayedDiscrimination, FlipFlop, MatchToCategory, PerceptualDiscrimination

N_IN, N_REC, N_OUT, B, T = 2, 5, 2, 3, 6
SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def base_params():
    return {"N_in": N_IN, "N_rec": N_REC, "N_out": N_OUT, "dt": 10, "tau": 100, "seed": 0, "backend": "numpy"}


def valid_batch(seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((B, T, N_IN))
    y = rng.standard_normal((B, T, N_OUT))
    mask = np.ones((B, T, N_OUT))
    return x, y, mask


def expect_named_error(call, *names):
    """``call()`` raises a MinirnnError whose message contains one of ``names``."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(MinirnnError) as info:
            call()
    message = str(info.value)
    assert any(name in message for name in names), f"{type(info.value).__name__}: {message!r} names none of {names}"
    return info.value


# ---------------------------------------------------------------------------- strategies of bad values

not_numbers = st.sampled_from(["a", "1e-3x", b"5", [1, "a"], {"a": 1}, object(), [[1], [1, 2]]])
non_finite = st.sampled_from([float("nan"), float("inf"), -float("inf")])
negative = st.floats(max_value=-1e-9, min_value=-1e9, allow_nan=False)
non_positive = st.one_of(negative, st.just(0.0), st.just(0))
bad_count = st.one_of(st.integers(max_value=0), st.floats(min_value=0.1, max_value=50).filter(lambda v: v != int(v)),
                      st.just(True), st.just("5"), st.just([5]))


def bad_matrix(shape):
    """Arrays that do not fit ``shape``: wrong shape, strings, NaN, ragged."""
    wrong = st.tuples(st.integers(1, 7), st.integers(1, 7)).filter(lambda s: s != shape).map(np.ones)
    return st.one_of(wrong, st.just(np.full(shape, "a")), st.just(np.full(shape, np.nan)),
                     st.just([[1.0, 2.0], [1.0]]), st.just(np.ones(shape + (2,))))


BAD_PARAMS = {
    "N_in": bad_count, "N_rec": bad_count, "N_out": bad_count,
    "dt": st.one_of(non_positive, non_finite, not_numbers),
    "tau": st.one_of(non_positive, non_finite, not_numbers, st.just([]), st.just(np.ones(N_REC + 1)),
                     st.just([[100.0]])),
    "rec_noise": st.one_of(negative, non_finite, not_numbers),
    "dale_ratio": st.one_of(st.floats(min_value=1.0, max_value=1e6), st.floats(max_value=0.0, min_value=-1e6),
                            non_finite, st.just("half"), st.just(True)),
    "L2_rec": st.one_of(negative, non_finite, not_numbers),
    "L1_in": st.one_of(negative, non_finite, not_numbers),
    "L2_firing_rate": st.one_of(negative, non_finite, not_numbers),
    "transfer_function": st.sampled_from(["rel", "tanhh", 5, None.__class__]),
    "loss_function": st.sampled_from(["mse", "cross_entropy", 3]),
    "dtype": st.sampled_from(["float16", "int32", 3, "double"]),
    "backend": st.sampled_from(["nump", "torch", 3]),
    "seed": st.one_of(st.integers(max_value=-1), st.floats(allow_nan=False), st.just("seed")),
    "autapses": st.sampled_from(["no", 0.5, None.__class__]),
    "W_rec_train": st.sampled_from(["no", 2.5]),
    "which_rand_init": st.sampled_from(["glorot", "uniform", 4]),
    "spec_rad": st.one_of(non_positive, not_numbers),
    "W_rec": bad_matrix((N_REC, N_REC)),
    "W_in": bad_matrix((N_REC, N_IN)),
    "W_out": bad_matrix((N_OUT, N_REC)),
    "rec_connectivity": st.one_of(bad_matrix((N_REC, N_REC)), st.just(np.full((N_REC, N_REC), 2.0)),
                                  st.just(-np.ones((N_REC, N_REC)))),
    "output_connectivity": bad_matrix((N_OUT, N_REC)),
    "init_state": st.one_of(st.just(np.zeros(N_REC + 2)), st.just(np.full((1, N_REC), np.nan)),
                            st.just(np.full((1, N_REC), "a"))),
    "b_rec": st.one_of(st.just(np.zeros(N_REC - 1)), st.just(np.full(N_REC, np.inf))),
    "initializer": st.sampled_from([5, "gauss", {"W_rec": 1}]),
}


@SETTINGS
@given(data=st.data())
def test_basic_rejects_a_malformed_param_naming_it(data):
    key = data.draw(st.sampled_from(sorted(BAD_PARAMS)), label="key")
    value = data.draw(BAD_PARAMS[key], label="value")
    params = dict(base_params(), **{key: value})
    expect_named_error(lambda: Basic(params), key)


@SETTINGS
@given(key=st.sampled_from(["N_in", "N_rec", "N_out", "dt", "tau"]))
def test_missing_required_param_is_named(key):
    params = base_params()
    del params[key]
    expect_named_error(lambda: Basic(params), key)


@SETTINGS
@given(key=st.sampled_from(["N_recc", "dale_ration", "transfer_functon", "rec_nosie", "L2_recc", "autapse"]))
def test_near_miss_param_names_suggest_the_real_one(key):
    expect_named_error(lambda: Basic(dict(base_params(), **{key: 1})), key)


# ---------------------------------------------------------------------------- train_params

BAD_TRAIN = {
    "training_iters": bad_count,
    "loss_epoch": bad_count,
    "checkpoint_epoch": bad_count,
    "performance_epoch": bad_count,
    "learning_rate": st.one_of(non_positive, non_finite, st.just("fast")),
    "clip_norm": st.one_of(non_positive, non_finite, not_numbers),
    "clip_global_norm": st.one_of(non_positive, not_numbers),
    "optimizer": st.sampled_from(["adm", "sdg", 5, "lbfgs"]),
    "performance_measure": st.sampled_from(["accuracy", 5]),
    "checkpoint_path": st.sampled_from([5, 1.5, ["a"]]),
    "fixed_weights": st.one_of(
        st.just([1, 0]), st.just("W_rec"),
        st.just({"W_rec": np.ones((2, 2))}), st.just({"W_rec": np.full((N_REC, N_REC), 2.0)}),
        st.just({"W_rec": np.full((N_REC, N_REC), "a")}), st.just({"W_rec": [[1], [1, 0]]})),
}




def tiny_task():
    return PerceptualDiscrimination(dt=10, tau=100, T=60, N_batch=B, seed=0)


@SETTINGS
@given(data=st.data())
def test_train_rejects_a_malformed_train_param_naming_it(data):
    key = data.draw(st.sampled_from(sorted(BAD_TRAIN)), label="key")
    value = data.draw(BAD_TRAIN[key], label="value")
    task = tiny_task()
    model = Basic(dict(task.get_task_params(), N_rec=N_REC, seed=0, backend="numpy"))
    tp = {"training_iters": B, "verbosity": False, key: value}
    names = (key, "Adam", "fixed_weights") if key in ("learning_rate", "fixed_weights") else (key,)
    expect_named_error(lambda: model.train(task, tp), *names)


@SETTINGS
@given(key=st.sampled_from(["training_iter", "learning_rat", "optimiser", "clip_grad", "checkpoint_epochs"]))
def test_unknown_train_param_is_named_with_a_suggestion(key):
    task = tiny_task()
    model = Basic(dict(task.get_task_params(), N_rec=N_REC, seed=0, backend="numpy"))
    error = expect_named_error(lambda: model.train(task, {key: 1}), key)
    assert "did you mean" in str(error)


def test_train_rejects_a_source_that_is_not_a_task_or_iterator():
    model = Basic(base_params())
    expect_named_error(lambda: model.train(5, {"verbosity": False}), "Task")


@pytest.mark.parametrize("key", ["save_weights_path", "checkpoint_path", "training_weights_path"])
def test_an_output_path_naming_a_directory_is_refused_before_the_first_update(tmp_path, key):
    (tmp_path / "taken.npz").mkdir()
    (tmp_path / "taken1.npz").mkdir()  # what training_weights_path "taken" writes first
    task = tiny_task()
    model = Basic(dict(task.get_task_params(), N_rec=N_REC, seed=0, backend="numpy"))
    tp = {"training_iters": 100 * B, "verbosity": False, key: str(tmp_path / "taken"), "save_training_weights_epoch": 50}
    error = expect_named_error(lambda: model.train(task, tp), key)
    assert "is a directory" in str(error)
    assert not model.history  # nothing was trained


@pytest.mark.parametrize("key", ["save_weights_path", "checkpoint_path", "training_weights_path"])
def test_missing_folders_of_output_paths_are_made_as_psychrnn_does(tmp_path, key):
    task = tiny_task()
    model = Basic(dict(task.get_task_params(), N_rec=N_REC, seed=0, backend="numpy"))
    path = tmp_path / "runs" / "one" / "w"
    model.train(task, {"training_iters": 2 * B, "verbosity": False, key: str(path), "save_training_weights_epoch": 1,
                       "checkpoint_epoch": 1})
    assert sorted(p.name for p in path.parent.iterdir()) == {"save_weights_path": ["w.npz"], "checkpoint_path": ["w.npz"],
                                                             "training_weights_path": ["w1.npz", "w2.npz"]}[key]


# ---------------------------------------------------------------------------- arrays


def spoil(array, how, rng):
    """One way to spoil a batch array."""
    if how == "drop_axis":
        return array[0]
    if how == "extra_axis":
        return array[None]
    if how == "last_axis":
        return np.concatenate([array, array[..., :1]], axis=-1)
    if how == "steps":
        return array[:, :-1]
    if how == "trials":
        return array[:-1]
    if how == "nan":
        out = array.copy()
        out[tuple(rng.integers(0, s) for s in array.shape)] = np.nan
        return out
    if how == "strings":
        return np.full(array.shape, "a")
    if how == "ragged":
        return [array[0].tolist(), array[0, :-1].tolist()]
    if how == "scalar":
        return 3.0
    if how == "empty":
        return array[:0]
    raise AssertionError(how)


SPOILS = ["drop_axis", "extra_axis", "last_axis", "steps", "trials", "nan", "strings", "ragged", "scalar", "empty"]


@SETTINGS
@given(which=st.sampled_from(["x", "y", "mask"]), how=st.sampled_from(SPOILS), seed=st.integers(0, 2**16))
def test_loss_and_grads_rejects_a_malformed_array_naming_it(which, how, seed):
    model = Basic(base_params())
    arrays = dict(zip(("x", "y", "mask"), valid_batch(seed)))
    if which != "x" and how in ("trials", "steps", "empty"):
        how = "last_axis"  # these spoil x's partner arrays the same way; keep the case meaningful
    arrays[which] = spoil(arrays[which], how, np.random.default_rng(seed))
    expect_named_error(lambda: model.loss_and_grads(arrays["x"], arrays["y"], arrays["mask"]), which)


@SETTINGS
@given(how=st.sampled_from(SPOILS), seed=st.integers(0, 2**16))
def test_test_rejects_a_malformed_x_naming_it(how, seed):
    model = Basic(base_params())
    x = spoil(valid_batch(seed)[0], how, np.random.default_rng(seed))
    if how in ("trials", "steps"):
        return  # a smaller batch or a shorter trial is fine for test()
    expect_named_error(lambda: model.test(x), "x")


@SETTINGS
@given(value=st.one_of(negative, st.just(-1.0)))
def test_negative_mask_is_rejected(value):
    model = Basic(base_params())
    x, y, mask = valid_batch()
    mask[0, 0, 0] = value
    expect_named_error(lambda: model.loss_and_grads(x, y, mask), "mask")


@SETTINGS
@given(which=st.sampled_from(["x", "y", "mask"]), how=st.sampled_from(["last_axis", "nan", "strings", "drop_axis"]))
def test_train_rejects_malformed_batches_from_a_generator(which, how):
    model = Basic(base_params())
    arrays = dict(zip(("x", "y", "mask"), valid_batch()))
    arrays[which] = spoil(arrays[which], how, np.random.default_rng(0))
    batches = iter([(arrays["x"], arrays["y"], arrays["mask"], None)] * 3)
    expect_named_error(lambda: model.train(batches, {"training_iters": 2 * B, "verbosity": False}), which)


# ---------------------------------------------------------------------------- task constructors

COMMON = {"dt": 10, "tau": 100, "T": 2000, "N_batch": 4}
BAD_TASK = {
    "dt": st.one_of(non_positive, non_finite, st.just("10")),
    "tau": st.one_of(non_positive, non_finite, st.just("100"), st.just([])),
    "T": st.one_of(non_positive, non_finite, st.just("2000"), st.just(5)),  # 5 < dt
    "N_batch": bad_count,
    "seed": st.one_of(st.integers(max_value=-1), st.just("seed"), st.just(1.5)),
}
TASK_SPECIFIC = {
    PerceptualDiscrimination: {"coherence": st.one_of(non_finite, st.just("high"), st.just([])),
                               "direction": st.sampled_from([2, -1, "left", 0.5])},
    DelayedDiscrimination: {"onset_time": st.one_of(negative, non_finite, st.just("x")),
                            "delay_duration": st.one_of(negative, st.just("x"))},
    MatchToCategory: {"N_in": bad_count, "N_out": bad_count},
    FlipFlop: {"N_bits": bad_count, "p_flip": st.one_of(negative, st.floats(1.01, 10), st.just("x")),
               "response_time": st.one_of(negative, st.just("x"))},
}


@SETTINGS
@given(data=st.data())
def test_task_constructors_reject_a_malformed_argument_naming_it(data):
    cls = data.draw(st.sampled_from(sorted(TASK_SPECIFIC, key=lambda c: c.__name__)), label="task")
    table = dict(BAD_TASK, **TASK_SPECIFIC[cls])
    key = data.draw(st.sampled_from(sorted(table)), label="key")
    value = data.draw(table[key], label="value")
    kwargs = dict(COMMON, **{key: value})
    expect_named_error(lambda: cls(**kwargs), key)


# ---------------------------------------------------------------------------- keys a task supplied

def test_keys_marked_as_the_tasks_pass_the_near_miss_check_and_others_do_not():
    from minirnn._params import MODEL_PARAMS, check_param_keys
    from minirnn.tasks import TaskParams

    params = TaskParams({"N_ring": 32, "taus": [1, 2], "verbosity": 0}, task_keys=["N_ring", "taus", "verbosity"])
    kept, _ = check_param_keys(params, MODEL_PARAMS, "Basic")
    assert kept == {"N_ring": 32, "taus": [1, 2], "verbosity": 0}  # carried, whatever their names
    params["N_recs"] = 5  # added afterwards: not the task's
    expect_named_error(lambda: check_param_keys(params, MODEL_PARAMS, "Basic"),
                       "'N_recs' for Basic; did you mean 'N_rec'")
    error = expect_named_error(lambda: check_param_keys(dict(params), MODEL_PARAMS, "Basic"), "'N_ring'")
    assert "pass task.get_task_params() itself" in str(error)
    expect_named_error(lambda: check_param_keys({"verbosity": 0}, MODEL_PARAMS, "Basic"), "training parameter")


def test_a_time_step_longer_than_tau_warns():
    """dt > tau makes alpha = dt / tau > 1: forward Euler overshoots (and diverges from alpha 2). Loud, not silent;
    alpha = 1 (a discrete-time RNN) is fine."""
    with pytest.warns(UserWarning, match=r"dt / tau = 10 > 1"):
        Basic(dict(base_params(), dt=100, tau=10))
    with pytest.warns(UserWarning, match=r"dt / tau = 2 > 1 \(dt 20, tau 10\)"):  # per-unit tau: the smallest
        Basic(dict(base_params(), dt=20, tau=np.r_[10.0, np.full(base_params()["N_rec"] - 1, 100.0)]))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        Basic(dict(base_params(), dt=10, tau=10))


def test_options_that_overflow_the_dtype_are_named():
    """Finite values that become inf in float32 would turn every output NaN later, with no word said."""
    p = dict(base_params(), dtype="float32")
    for key, value, named in [("rec_noise", 1e300, "rec_noise"), ("L2_firing_rate", 1e300, "L2_firing_rate"),
                              ("L2_rec", 1e39, "L2_rec")]:
        with pytest.raises(MinirnnError, match=named + r".* overflows float32"):
            Basic(dict(p, **{key: value}))
    with pytest.warns(UserWarning), pytest.raises(MinirnnError, match=r"dt / tau is 1e\+301, which overflows"):
        Basic(dict(p, tau=1e-300))
    Basic(dict(base_params(), dtype="float64", L2_rec=1e39))  # fine in float64


def test_an_output_mask_of_zeros_warns():
    with pytest.warns(UserWarning, match="output_connectivity is all zero"):
        Basic(dict(base_params(), output_connectivity=np.zeros((N_OUT, N_REC))))
