"""Training calls that could only do nothing, or fail with a misleading message, are refused up front.

* Nothing to train (every ``*_train`` False, or ``fixed_weights`` fixing every entry): a
  ParameterError before any work, not a raw StopIteration or a silent run that changes nothing.
* Hyperparameters valid in float64 but 0 or inf in the model's dtype (``learning_rate=1e-50`` in
  float32, Adam ``epsilon=1e-50``, ``clip_norm=1e-50``): a ParameterError naming the option and the
  dtype, not a run whose every update is 0.0 or a NonFiniteError that blames the learning rate.
* A loss that is NaN or inf before any update of the call: the message says the learning rate played
  no part and points at the data and model parameters; later divergence keeps the learning-rate advice.
"""
from __future__ import annotations

import numpy as np
import pytest

from minirnn import Basic, NonFiniteError
from minirnn.errors import ParameterError
from minirnn.nn.clipping import clip_by_global_norm, clip_by_norm
from minirnn.nn.optimizers import SGD, Adam, Momentum, RMSProp
from minirnn.tasks import PerceptualDiscrimination

pytestmark = pytest.mark.usefixtures("one_blas_thread")

TRAIN_FLAGS = ("W_in_train", "W_rec_train", "W_out_train", "b_rec_train", "b_out_train", "init_state_train")
TINY32 = "1.1754944e-38"  # np.finfo(np.float32).tiny, as the messages print it


def task_and_model(dtype="float32", n_networks=None, **model_params):
    task = PerceptualDiscrimination(dt=10, tau=100, T=200, N_batch=8, seed=1)
    params = dict(task.get_task_params(), N_rec=5, seed=1, backend="numpy", dtype=dtype, **model_params)
    return task, Basic(params) if n_networks is None else Basic(params, n_networks=n_networks, seeds=[3, 4])


def copy_of(model):
    return {name: np.array(w, copy=True) for name, w in model.raw.items()}


def assert_unchanged(model, before):
    for name, w in before.items():
        np.testing.assert_array_equal(model.raw[name], w, err_msg=name)


class CountingBatches:
    """A batch generator that counts the batches drawn from it (none should be, for a refused call)."""

    def __init__(self, task):
        self.task, self.drawn = task, 0

    def __iter__(self):
        return self

    def __next__(self):
        self.drawn += 1
        return self.task.get_trial_batch()


# ---- 1. nothing left to train ------------------------------------------------------------------------


def test_every_train_flag_false_is_a_parameter_error_before_any_batch():
    task, model = task_and_model(**{flag: False for flag in TRAIN_FLAGS})
    batches, before = CountingBatches(task), copy_of(model)
    with pytest.raises(ParameterError, match=r"Nothing is left to train: every \*_train flag is False"):
        model.train(batches, {"training_iters": 32, "verbosity": False})
    assert batches.drawn == 0 and not (model.history or {}).get("loss")
    assert_unchanged(model, before)


def test_fixed_weights_covering_every_trainable_entry_is_a_parameter_error():
    task, model = task_and_model()
    before = copy_of(model)
    fixed = {name: np.ones_like(w) for name, w in model.raw.items()}
    with pytest.raises(ParameterError, match="Nothing is left to train: fixed_weights fixes every entry"):
        model.train(task, {"training_iters": 32, "verbosity": False, "fixed_weights": fixed})
    assert_unchanged(model, before)


def test_fixed_weights_covering_every_entry_of_the_only_trainable_weight_is_refused():
    task, model = task_and_model(**{flag: False for flag in TRAIN_FLAGS if flag != "W_rec_train"})
    fixed = {"W_rec": np.ones_like(model.raw["W_rec"])}
    with pytest.raises(ParameterError, match=r"fixes every entry of every trainable weight \(W_rec\)"):
        model.train(task, {"training_iters": 32, "verbosity": False, "fixed_weights": fixed})


def test_one_free_entry_or_one_trainable_weight_still_trains():
    task, model = task_and_model()
    fixed = {name: np.ones_like(w) for name, w in model.raw.items()}
    fixed["b_out"] = np.zeros_like(model.raw["b_out"])  # b_out is free
    before = copy_of(model)
    model.train(task, {"training_iters": 32, "verbosity": False, "fixed_weights": fixed})
    assert not np.array_equal(model.raw["b_out"], before["b_out"])
    assert_unchanged(model, {k: v for k, v in before.items() if k != "b_out"})

    task, model = task_and_model(**{flag: False for flag in TRAIN_FLAGS if flag != "b_rec_train"})
    before = copy_of(model)
    model.train(task, {"training_iters": 32, "verbosity": False})
    assert not np.array_equal(model.raw["b_rec"], before["b_rec"])


def test_an_ensemble_with_every_entry_of_every_network_fixed_is_refused():
    task, model = task_and_model(n_networks=2)
    fixed = {name: np.ones_like(w) for name, w in model.raw.items()}
    with pytest.raises(ParameterError, match="Nothing is left to train"):
        model.train(task, {"training_iters": 32, "verbosity": False, "fixed_weights": fixed})


@pytest.mark.parametrize("optimizer", [SGD(), Momentum(), RMSProp(), Adam()], ids=lambda o: type(o).__name__)
def test_optimizer_prepare_with_no_gradients_is_a_clear_error(optimizer):
    opt = optimizer.fresh()
    with pytest.raises(ParameterError, match="got no gradients"):
        opt.prepare({})
    assert opt.state == {} and opt.t is None


# ---- 2. hyperparameters that are 0 or inf in the model's dtype ----------------------------------------


@pytest.mark.parametrize("option, value, message", [
    ("learning_rate", 1e-50, f"The 'learning_rate' training parameter is 1e-50, which is 0 in float32: use a value >= {TINY32}"),
    ("learning_rate", 1e-300, "'learning_rate' training parameter is 1e-300, which is 0 in float32"),
    ("learning_rate", 1e39, "'learning_rate' training parameter is 1e[+]?39, which is inf in float32"),
    ("clip_norm", 1e-50, f"The 'clip_norm' training parameter is 1e-50, which is 0 in float32: use a value >= {TINY32}"),
    ("clip_global_norm", 1e-50, "The 'clip_global_norm' training parameter is 1e-50, which is 0 in float32"),
    ("clip_norm", 1e39, "The 'clip_norm' training parameter is 1e[+]?39, which is inf in float32"),
])
def test_a_training_option_that_is_0_or_inf_in_float32_is_refused_before_any_batch(option, value, message):
    task, model = task_and_model()
    batches, before = CountingBatches(task), copy_of(model)
    with pytest.raises(ParameterError, match=message):
        model.train(batches, {"training_iters": 32, "verbosity": False, "optimizer": "sgd", option: value})
    assert batches.drawn == 0
    assert_unchanged(model, before)


@pytest.mark.parametrize("optimizer, message", [
    (Adam(epsilon=1e-50), "The 'epsilon' parameter of Adam is 1e-50, which is 0 in float32"),
    (RMSProp(epsilon=1e-50), "The 'epsilon' parameter of RMSProp is 1e-50, which is 0 in float32"),
    (SGD(1e-50), "The 'learning_rate' parameter of SGD is 1e-50, which is 0 in float32"),
    (Adam(1e-45), r"The 'learning_rate' parameter of Adam is 1e-45, which is subnormal .* in float32"),
    (Adam(beta2=1 - 1e-10), "The 'beta2' parameter of Adam is 0.9999999999, which is 1 in float32: use a value <= 0.99999994"),
    (Momentum(momentum=1 - 1e-10), "The 'momentum' parameter of Momentum is 0.9999999999, which is 1 in float32"),
], ids=lambda v: repr(v) if not isinstance(v, str) else "")
def test_an_optimizer_object_whose_hyperparameter_is_lost_in_float32_is_refused(optimizer, message):
    task, model = task_and_model()
    batches, before = CountingBatches(task), copy_of(model)
    with pytest.raises(ParameterError, match=message):
        model.train(batches, {"training_iters": 32, "verbosity": False, "optimizer": optimizer})
    assert batches.drawn == 0
    assert_unchanged(model, before)


def test_the_same_values_train_in_float64():
    """1e-50 is a (useless but) valid float64: the check follows the model's dtype, not a fixed floor."""
    task, model = task_and_model(dtype="float64")
    model.train(task, {"training_iters": 16, "verbosity": False, "optimizer": Adam(0.01, epsilon=1e-50),
                       "clip_norm": 1e-50})
    assert len(model.history["loss"]) == 2


def test_per_network_values_are_checked_entry_by_entry():
    task, model = task_and_model(n_networks=2)
    with pytest.raises(ParameterError, match=r"'learning_rate' training parameter is \[0.01, 1e-50\], which is 0 in float32"):
        model.train(task, {"training_iters": 32, "verbosity": False, "learning_rate": [0.01, 1e-50]})


def test_the_optimizer_checks_the_gradients_dtype_when_used_on_its_own():
    g32 = {"W": np.ones((2, 2), np.float32)}
    for opt in (Adam(epsilon=1e-50), SGD(1e-50)):
        with pytest.raises(ParameterError, match="which is 0 in float32"):
            opt.step({"W": np.zeros((2, 2), np.float32)}, g32)
        assert opt.state == {} and opt.t is None  # refused before any value moved
    opt = SGD(1e-50)
    params = {"W": np.zeros((2, 2))}
    opt.step(params, {"W": np.ones((2, 2))})  # float64: fine
    # a schedule's later assignment is checked again
    opt = Adam(0.01)
    opt.step({"W": np.zeros((2, 2), np.float32)}, g32)
    opt.learning_rate = 1e-50
    with pytest.raises(ParameterError, match="'learning_rate' parameter of Adam is 1e-50, which is 0 in float32"):
        opt.step({"W": np.zeros((2, 2), np.float32)}, g32)


@pytest.mark.parametrize("clip", [clip_by_norm, clip_by_global_norm])
def test_clipping_checks_max_norm_in_the_gradients_dtype(clip):
    zeros = {"W": np.zeros((2, 2), np.float32)}  # 0 / max(0, 0) would be NaN
    with pytest.raises(ParameterError, match="max_norm is 1e-50, which is 0 in float32"):
        clip(zeros, 1e-50)
    out = clip({"W": np.zeros((2, 2))}, 1e-50)  # representable in float64
    assert np.all(np.isfinite(out["W"]))


# ---- 3. a non-finite loss before any update ----------------------------------------------------------


def test_a_loss_non_finite_before_any_update_blames_the_data_not_the_learning_rate():
    task, model = task_and_model()
    x, y, mask, p = task.get_trial_batch()
    with pytest.raises(NonFiniteError, match=r"at update 1 \(no finite loss yet\)") as info:
        model.train(iter([(x, y, mask * 1e20, p)] * 4), {"training_iters": 32, "verbosity": False})
    text = str(info.value)
    assert "before any update of this call" in text and "learning rate played no part" in text
    assert "mask weights" in text and "float32" in text
    assert "Try a smaller learning_rate" not in text


def test_a_later_call_that_starts_non_finite_also_mentions_the_earlier_calls_update():
    task, model = task_and_model()
    x, y, mask, p = task.get_trial_batch()
    model.train(iter([(x, y, mask, p)] * 4), {"training_iters": 8, "verbosity": False})
    with pytest.raises(NonFiniteError, match=r"the weights this train\(\) call started with give it") as info:
        model.train(iter([(x, y, mask * 1e20, p)] * 4), {"training_iters": 8, "verbosity": False})
    assert "before any update of this call" in str(info.value) and "earlier train() call" in str(info.value)


def test_divergence_after_an_update_keeps_the_learning_rate_advice():
    task, model = task_and_model(dtype="float32")
    with pytest.raises(NonFiniteError, match="at update") as info:
        model.train(task, {"training_iters": 8 * 40, "verbosity": False, "optimizer": "sgd", "learning_rate": 1e6,
                           "clip_grads": False})
    assert "Try a smaller learning_rate" in str(info.value)
    assert "before any update of this call" not in str(info.value)
