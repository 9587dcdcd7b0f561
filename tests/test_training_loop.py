"""The training loop's batches and side effects: an ensemble trains on each copy's overridden
``batch_generator()``, performance and curriculum checks never change the training batches, resume
is bit for bit for ensembles with a curriculum and for per-trial tasks that draw from ``np.random``,
a finished curriculum run resumes to nothing, and an all-zero mask or an overwritten snapshot warns.
"""
from __future__ import annotations

import warnings

import numpy as np
import pytest

from minirnn import Basic, Curriculum, Task
from minirnn.errors import ParameterError
from minirnn.tasks import PerceptualDiscrimination
from minirnn.train.checkpoint import load_checkpoint
from minirnn.train.trainer import train

pytestmark = pytest.mark.usefixtures("one_blas_thread")
QUIET = {"verbosity": False}


def pd_task(seed=3, N_batch=8, T=200, **extra):
    return PerceptualDiscrimination(dt=10, tau=100, T=T, N_batch=N_batch, seed=seed, **extra)


def model_for(task, n_networks=None, **extra):
    params = dict(task.get_task_params(), N_rec=8, seed=5, backend="numpy", rec_noise=0.05, **extra)
    return Basic(params) if n_networks is None else Basic(params, n_networks=n_networks, seeds=[1, 2][:n_networks])


def record_training_inputs(model):
    """Spy on the model's updates: the list gets each training batch's x."""
    seen, loss_and_grads = [], model._loss_and_grads

    def spy(x, y, mask, **kwargs):
        seen.append(np.array(x))
        return loss_and_grads(x, y, mask, **kwargs)

    model._loss_and_grads = spy
    return seen


def finished_unmarked(path):
    """The checkpoint of a shortened run, marked unfinished, as an interrupted run leaves it."""
    checkpoint = load_checkpoint(path)
    checkpoint["meta"]["finished"] = False
    return checkpoint


def assert_same_weights(a, b):
    for name in a.raw:
        np.testing.assert_array_equal(a.raw[name], b.raw[name], err_msg=name)


# ---------------------------------------------------------------------------- 1. overridden batch_generator


class Marked(PerceptualDiscrimination):
    """A task whose own batch_generator() changes its batches (a marker in the first input step)."""

    def batch_generator(self):
        while True:
            x, y, mask, params = self.generate_batch()
            x[:, 0, :] = 123.0
            yield x, y, mask, params


def test_ensemble_trains_each_copy_on_its_own_overridden_batch_generator():
    task = Marked(dt=10, tau=100, T=200, N_batch=8, seed=3)
    ensemble = model_for(task, n_networks=2)
    seen = record_training_inputs(ensemble)
    train(ensemble, task, dict(QUIET, training_iters=8 * 3))
    for k, seed in enumerate(ensemble.seeds):  # network k: the generator of the task built with seeds[k]
        own = Marked(dt=10, tau=100, T=200, N_batch=8, seed=seed).batch_generator()
        for update, x in enumerate(seen):
            np.testing.assert_array_equal(x[k], next(own)[0].astype(x.dtype), err_msg=f"network {k}, update {update + 1}")
    assert task.batch_index == 0  # the copies drew, not the task given


# ---------------------------------------------------------------------------- 2. checks use their own stream


def constant_measure(x, y, mask, output, epoch, losses, verbosity):
    return 0.0


@pytest.mark.parametrize("n_networks", [None, 2])
def test_performance_checks_do_not_change_the_training_batches(n_networks):
    runs = []
    for measure in (None, constant_measure):
        task = pd_task()
        model = model_for(task, n_networks)
        seen = record_training_inputs(model)
        train(model, task, dict(QUIET, training_iters=8 * 6, performance_measure=measure, performance_epoch=1))
        runs.append((seen, model, task.batch_index))
    (plain, plain_model, plain_index), (checked, checked_model, checked_index) = runs
    assert len(plain) == len(checked) == 6 and plain_index == checked_index
    for a, b in zip(plain, checked):
        np.testing.assert_array_equal(a, b)
    assert_same_weights(plain_model, checked_model)


def test_curriculum_checks_do_not_change_the_training_batches():
    runs = []
    for metric_epoch in (100, 2):  # no metric test, then one every other update (never advancing)
        tasks = [pd_task(seed=1), pd_task(seed=2)]
        model = model_for(tasks[0])
        seen = record_training_inputs(model)
        curriculum = Curriculum(tasks, thresholds=[2.0, 2.0], metric_epoch=metric_epoch)
        train(model, None, dict(QUIET, training_iters=8 * 6, curriculum=curriculum))
        runs.append((seen, tasks[0].state_dict()))
    for a, b in zip(runs[0][0], runs[1][0]):
        np.testing.assert_array_equal(a, b)
    assert runs[0][1] == runs[1][1]


def recording_measure(checks):
    """A performance_measure that appends each check batch's x to ``checks``."""
    def measure(x, y, mask, output, epoch, losses, verbosity):
        checks.append(np.array(x))
        return 0.0

    return measure


def test_check_batches_are_reproducible_and_not_training_batches():
    def checks_and_training():
        task = pd_task()
        model = model_for(task)
        seen, checks = record_training_inputs(model), []
        train(model, task, dict(QUIET, training_iters=8 * 4, performance_measure=recording_measure(checks),
                                performance_epoch=1))
        return checks, seen

    checks, seen = checks_and_training()
    again, _ = checks_and_training()
    for a, b in zip(checks, again):
        np.testing.assert_array_equal(a, b)
    assert not any(np.array_equal(c, x) for c in checks for x in seen)


def test_a_plain_generator_gives_its_next_batches_to_checks():
    task = pd_task()
    batches = [task.generate_batch() for _ in range(4)]
    model = model_for(task)
    seen, checks = record_training_inputs(model), []
    train(model, iter(batches), dict(QUIET, training_iters=8 * 2, performance_measure=recording_measure(checks)))
    np.testing.assert_array_equal(seen[0], batches[0][0].astype(seen[0].dtype))
    np.testing.assert_array_equal(checks[0], batches[1][0])  # there is no other stream to take it from
    np.testing.assert_array_equal(seen[1], batches[2][0].astype(seen[1].dtype))


def test_resume_with_checks_restores_the_check_stream(tmp_path):
    def make():
        task = pd_task()
        return model_for(task), task

    def accuracy(x, y, mask, output, *rest):
        return float(np.mean(np.argmax(output[:, -1], -1) == np.argmax(y[:, -1], -1)) + x[0, 0, 0])

    tp = dict(QUIET, training_iters=8 * 9, performance_measure=accuracy, performance_epoch=2)
    full, task = make()
    train(full, task, tp)
    part, task_p = make()
    train(part, task_p, dict(tp, training_iters=8 * 5, checkpoint_path=str(tmp_path / "ck.npz")))
    resumed, task_r = make()
    train(resumed, task_r, tp, resume=finished_unmarked(str(tmp_path / "ck.npz")))
    assert_same_weights(full, resumed)
    assert resumed.history["performance"] == full.history["performance"]  # the check batches too
    assert task_r.state_dict() == task.state_dict()


# ---------------------------------------------------------------------------- 3. per-trial task and np.random


class GlobalRandomTask(Task):
    """PsychRNN's per-trial API, drawing from NumPy's global stream."""

    def __init__(self):
        super().__init__(N_in=2, N_out=2, dt=10, tau=100, T=100, N_batch=4)

    def generate_trial_params(self, batch, trial):
        return {"side": np.random.randint(2)}

    def trial_function(self, t, params):
        x = np.random.randn(2) * 0.1
        x[params["side"]] += 1
        y = np.zeros(2)
        y[params["side"]] = 1
        return x, y, np.ones(2)


def test_resume_of_a_per_trial_task_drawing_from_np_random_is_bit_for_bit(tmp_path):
    def make():
        np.random.seed(0)  # a PsychRNN script seeds the global state first
        task = GlobalRandomTask()
        return model_for(task), task

    tp = dict(QUIET, training_iters=4 * 8, performance_measure=constant_measure, performance_epoch=3)
    full, task = make()
    train(full, task, tp)
    ckpt = str(tmp_path / "ck.npz")
    part, task_p = make()
    train(part, task_p, dict(tp, training_iters=4 * 5, checkpoint_path=ckpt))
    np.random.seed(0)  # the resuming script: set up as the interrupted one was
    resumed, task_r = make()
    train(resumed, task_r, tp, resume=finished_unmarked(ckpt))
    assert_same_weights(full, resumed)
    assert resumed.history["loss"] == full.history["loss"]


def test_a_vectorised_task_leaves_np_random_out_of_the_checkpoint(tmp_path):
    task = pd_task()
    train(model_for(task), task, dict(QUIET, training_iters=8, checkpoint_path=str(tmp_path / "ck.npz")))
    assert load_checkpoint(str(tmp_path / "ck.npz"))["meta"]["np_random"] is None


# ---------------------------------------------------------------------------- 4. an all-zero mask


class EmptyMaskAt(PerceptualDiscrimination):
    """Batches 2 and 3 of its own stream have an all-zero mask."""

    def get_trial_batch(self):
        x, y, mask, params = super().get_trial_batch()
        return x, y, mask * (self.batch_index not in (2, 3)), params


def test_an_all_zero_mask_warns_once_naming_the_update():
    task = EmptyMaskAt(dt=10, tau=100, T=200, N_batch=8, seed=3)
    model = model_for(task)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        train(model, task, dict(QUIET, training_iters=8 * 4))
    messages = [str(w.message) for w in caught if "all zero" in str(w.message)]
    assert len(messages) == 1 and all(w.category is UserWarning for w in caught if "all zero" in str(w.message))
    assert "update 2" in messages[0] and "nothing is trained on that batch" in messages[0]


def test_an_all_zero_mask_of_one_network_names_it():
    tasks = [pd_task(seed=1), EmptyMaskAt(dt=10, tau=100, T=200, N_batch=8, seed=2)]
    ensemble = model_for(tasks[0], n_networks=2)
    with pytest.warns(UserWarning, match=r"mask of network\(s\) \[1\] of the training batch at update 2"):
        train(ensemble, tasks, dict(QUIET, training_iters=8 * 3))


# ---------------------------------------------------------------------------- 5, 6. curriculum resume


def make_ensemble_curriculum():
    tasks = [pd_task(seed=10 + i, N_batch=16, T=300, coherence=c) for i, c in enumerate((0.5, 0.02))]
    curriculum = Curriculum(tasks, thresholds=[0.0, 2.0], metric_epoch=3)  # stage 1 from update 3, never ends
    return model_for(tasks[0], n_networks=2, dtype="float64"), curriculum


def test_ensemble_curriculum_resume_after_the_stage_change_equals_uninterrupted(tmp_path):
    seen = []

    def input_contrast(x, y, mask, output, *rest):  # tells the stage's coherence apart
        seen.append(np.abs(x[..., 0] - x[..., 1]).mean(axis=(1, 2)))
        return np.zeros(2)

    tp = dict(QUIET, training_iters=16 * 10, loss_epoch=1, performance_measure=input_contrast, performance_epoch=1)
    full, curriculum = make_ensemble_curriculum()
    train(full, None, dict(tp, curriculum=curriculum))
    full_contrast, seen[:] = list(seen), []
    ckpt = str(tmp_path / "ck.npz")
    part, curriculum_p = make_ensemble_curriculum()
    train(part, None, dict(tp, training_iters=16 * 6, curriculum=curriculum_p, checkpoint_path=ckpt))
    assert load_checkpoint(ckpt)["meta"]["curriculum"]["stage"] == 1
    seen[:] = []
    resumed, curriculum_r = make_ensemble_curriculum()
    train(resumed, None, dict(tp, curriculum=curriculum_r), resume=finished_unmarked(ckpt))
    assert_same_weights(full, resumed)
    np.testing.assert_array_equal(np.array(seen), np.array(full_contrast[6:]))  # stage 1's batches
    assert curriculum_r.state_dict() == curriculum.state_dict()


def test_resuming_a_finished_curriculum_run_does_nothing(tmp_path):
    def make():
        tasks = [pd_task(seed=10 + i, coherence=c) for i, c in enumerate((0.5, 0.2))]
        return model_for(tasks[0]), Curriculum(tasks, thresholds=[0.0, 0.0], metric_epoch=2)  # ends at update 4

    tp = dict(QUIET, training_iters=8 * 20, loss_epoch=1, checkpoint_path=str(tmp_path / "ck.npz"))
    done, curriculum = make()
    done_losses, _, _ = train(done, None, dict(tp, curriculum=curriculum))
    assert curriculum.stop_training and curriculum.stage == 2
    resumed, curriculum_r = make()
    losses, _, _ = train(resumed, None, dict(tp, curriculum=curriculum_r), resume=str(tmp_path / "ck.npz"))
    assert_same_weights(done, resumed)
    assert resumed.history["loss"] == done.history["loss"] and losses == done_losses and len(losses) == 4
    assert curriculum_r.state_dict() == curriculum.state_dict()


# ---------------------------------------------------------------------------- 7. training-weight snapshots


def test_a_second_call_warns_once_before_overwriting_the_first_calls_snapshots(tmp_path):
    task = pd_task()
    model = model_for(task)
    tp = dict(QUIET, training_iters=8 * 4, training_weights_path=str(tmp_path / "snap_"),
              save_training_weights_epoch=2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the first call overwrites nothing
        train(model, task, tp)
    first = (tmp_path / "snap_2.npz").read_bytes()
    with pytest.warns(UserWarning, match=r"snap_2\.npz' already exists") as caught:
        train(model, task, tp)
    assert len([w for w in caught if "already exists" in str(w.message)]) == 1
    assert (tmp_path / "snap_2.npz").read_bytes() != first  # still written, PsychRNN's names
    assert sorted(p.name for p in tmp_path.iterdir()) == ["snap_2.npz", "snap_4.npz"]


def test_a_second_ensemble_call_continues_each_networks_trials_as_a_single_network_would():
    task = pd_task()
    ensemble = model_for(task, n_networks=2)
    seen = record_training_inputs(ensemble)
    for _ in range(2):
        ensemble.train(task, dict(QUIET, training_iters=16))
    for k, seed in enumerate([1, 2]):
        alone_task = pd_task(seed=seed)
        alone = Basic(dict(alone_task.get_task_params(), N_rec=8, seed=seed, backend="numpy", rec_noise=0.05))
        alone_seen = record_training_inputs(alone)
        for _ in range(2):
            alone.train(alone_task, dict(QUIET, training_iters=16))
        assert len(seen) == len(alone_seen) == 4
        assert all(np.array_equal(a[k], b) for a, b in zip(seen, alone_seen))  # calls 2 did not replay calls 1
        assert np.array_equal(ensemble.network(k).get_weights()["W_rec"], alone.get_weights()["W_rec"])


def test_an_ensemble_over_a_task_that_cannot_be_copied_names_the_attribute():
    class WithSchedule(PerceptualDiscrimination):
        def __init__(self, **kw):
            super().__init__(**kw)
            self.schedule = (c for c in [0.1, 0.2])  # a generator: deepcopy refuses it

    task = WithSchedule(dt=10, tau=100, T=200, N_batch=8, seed=3)
    ensemble = model_for(task, n_networks=2)
    with pytest.raises(ParameterError, match=r"WithSchedule\.schedule is a generator"):
        ensemble.train(task, dict(QUIET, training_iters=8))


# ---------------------------------------------------------------------------- optimizer objects are configurations


def trained(optimizer, seed=3, updates=4, model=None, task=None):
    task = task or pd_task(seed=seed)
    model = model or model_for(task)
    model.train(task, dict(QUIET, training_iters=8 * updates, optimizer=optimizer))
    return model


def test_one_optimizer_object_gives_each_model_fresh_state():
    """PsychRNN's pattern: train_params with one AdamOptimizer, models trained in a loop; each
    starts from fresh slots (PsychRNN re-initialises them in every train())."""
    from minirnn.nn.optimizers import Adam

    shared = Adam(learning_rate=0.01, beta1=0.8)
    first, second = trained(shared, seed=3), trained(shared, seed=4)
    assert shared.t is None and shared.state == {}  # the user's object is a configuration: never stepped
    assert first.optimizer is not shared and second.optimizer is not first.optimizer
    assert second.optimizer.built_from is shared
    assert repr(second.optimizer) == "Adam(learning_rate=0.01, beta1=0.8, beta2=0.999, epsilon=1e-08, n_lead=0)"
    assert_same_weights(second, trained(Adam(learning_rate=0.01, beta1=0.8), seed=4))
    assert np.array_equal(second.optimizer.t, 4)


def test_the_same_object_continues_the_models_optimizer_and_another_starts_fresh():
    from minirnn.nn.optimizers import Adam

    config, task = Adam(learning_rate=0.01), pd_task()
    model = trained(config, task=task)
    own = model.optimizer
    trained(config, model=model, task=task)  # same object: the state carries over, as one longer call
    assert model.optimizer is own and np.array_equal(own.t, 8)
    assert_same_weights(model, trained(Adam(learning_rate=0.01), updates=8))
    trained(Adam(learning_rate=0.01), model=model, task=task)  # another object: fresh state
    assert model.optimizer is not own and np.array_equal(model.optimizer.t, 4)
    steps = model.optimizer
    trained(steps, model=model, task=task)  # the model's own optimizer given back: it goes on
    assert model.optimizer is steps and np.array_equal(steps.t, 8)


def test_resuming_a_run_configured_by_an_optimizer_object_is_bit_for_bit(tmp_path):
    from minirnn.nn.optimizers import Adam

    whole = trained(Adam(learning_rate=0.01), updates=6)
    task = pd_task()
    model = model_for(task)

    def stop_at_4(x, y, mask, output, epoch, losses, verbosity):
        if epoch == 4:
            raise RuntimeError("stop")
        return 0.0

    with pytest.raises(RuntimeError, match="stop"):
        model.train(task, dict(QUIET, training_iters=8 * 6, optimizer=Adam(learning_rate=0.01),
                               checkpoint_path=str(tmp_path / "c"), checkpoint_epoch=3,
                               performance_measure=stop_at_4))
    task = pd_task()
    resumed = model_for(task)
    resumed.train(task, dict(QUIET, training_iters=8 * 6, optimizer=Adam(learning_rate=0.01)),
                  resume=str(tmp_path / "c.npz"))
    assert_same_weights(resumed, whole)
    for key, value in whole.optimizer.state_dict().items():
        np.testing.assert_array_equal(resumed.optimizer.state_dict()[key], value, err_msg=key)


# ---------------------------------------------------------------------------- per-network values, whole-float counts


@pytest.mark.parametrize("key, value", [("learning_rate", [0.01]), ("learning_rate", [1e-6, 1e-6, 1e-6, 0.1]),
                                        ("clip_norm", [1.0, 2.0]), ("clip_global_norm", [1.0, 2.0])])
def test_a_per_network_value_on_one_network_is_refused_before_any_work(key, value):
    task = pd_task()
    model = model_for(task)
    state = task.rng.bit_generator.state
    with pytest.raises(ParameterError, match=rf"'{key}' training parameter must be a single number for one "
                                             r"network.*needs an ensemble"):
        model.train(task, dict(QUIET, training_iters=16, **{key: value}))
    assert model.optimizer is None and model.history is None and task.rng.bit_generator.state == state


@pytest.mark.parametrize("key", ["learning_rate", "clip_norm", "clip_global_norm"])
def test_a_per_network_value_of_the_wrong_length_names_the_ensembles_shape(key):
    task = pd_task()
    ensemble = model_for(task, n_networks=2)
    with pytest.raises(ParameterError, match=rf"'{key}' training parameter must be a number or one value per "
                                             r"network, an array of shape \(2,\) .*of shape \(3,\)"):
        ensemble.train(task, dict(QUIET, training_iters=16, **{key: [0.01, 0.02, 0.03]}))
    assert ensemble.optimizer is None


def test_an_optimizer_objects_per_network_values_must_fit_the_model():
    from minirnn.nn.optimizers import SGD

    task = pd_task()
    with pytest.raises(ParameterError, match=r"'learning_rate' of SGD\(learning_rate=\[0.1, 0.2\]\) has shape "
                                             r"\(2,\), but the model is one network"):
        model_for(task).train(task, dict(QUIET, training_iters=16, optimizer=SGD([0.1, 0.2])))
    with pytest.raises(ParameterError, match=r"has shape \(2,\), but the ensemble has 3 networks"):
        Basic(dict(task.get_task_params(), N_rec=8, backend="numpy"), n_networks=3).train(
            task, dict(QUIET, training_iters=16, optimizer=SGD([0.1, 0.2])))


def test_whole_float_counts_are_accepted_as_in_psychrnn():
    a, b = model_for(pd_task()), model_for(pd_task())
    losses_a, _, _ = a.train(pd_task(), dict(QUIET, training_iters=32.0, loss_epoch=2.0,
                                             save_training_weights_epoch=1e2, performance_epoch=1.0,
                                             checkpoint_epoch=1e3))
    losses_b, _, _ = b.train(pd_task(), dict(QUIET, training_iters=32, loss_epoch=2))
    assert losses_a == losses_b and len(losses_a) == 2
    assert_same_weights(a, b)


@pytest.mark.parametrize("key", ["training_iters", "loss_epoch", "save_training_weights_epoch", "performance_epoch",
                                 "checkpoint_epoch"])
@pytest.mark.parametrize("value", [2.5, True, float("nan"), float("inf"), -16.0, 0.0])
def test_counts_that_are_not_whole_positive_numbers_are_refused(key, value):
    with pytest.raises(ParameterError, match=rf"The '{key}' training parameter must be a positive int"):
        model_for(pd_task()).train(pd_task(), dict(QUIET, **{key: value}))


def test_a_performance_measure_leaves_a_curriculums_tests_and_stage_changes_unchanged():
    runs = []
    for measure in (None, recording_measure([])):
        tasks = [pd_task(seed=1), pd_task(seed=2)]
        model = model_for(tasks[0])
        metric_batches = []

        def metric(curriculum_params, x, y, mask, output, epoch, losses, verbosity, seen=metric_batches):
            seen.append(np.array(x))
            return float(np.mean(x)) > 0.3, float(np.mean(x))  # the check batch decides when the stage advances

        curriculum = Curriculum(tasks, thresholds=[2.0, 2.0], metric_epoch=2, metric=metric)
        tp = dict(QUIET, training_iters=8 * 6, curriculum=curriculum)
        if measure is not None:
            tp.update(performance_measure=measure, performance_epoch=1)
        train(model, None, tp)
        runs.append((metric_batches, curriculum.stage, model.get_weights()["W_rec"]))
    (checks_a, stage_a, w_a), (checks_b, stage_b, w_b) = runs
    assert len(checks_a) == len(checks_b) > 0 and stage_a == stage_b
    assert all(np.array_equal(a, b) for a, b in zip(checks_a, checks_b))
    np.testing.assert_array_equal(w_a, w_b)


def test_an_ensemble_sees_the_tasks_settings_as_they_are_at_each_call():
    task = pd_task()
    ensemble = model_for(task, n_networks=2)
    seen = record_training_inputs(ensemble)
    ensemble.train(task, dict(QUIET, training_iters=8))
    task.N_batch = 16  # edited between calls, as a single network would see it
    ensemble.train(task, dict(QUIET, training_iters=16))
    assert [x.shape[1] for x in seen] == [8, 16]


def test_an_optimizer_object_edited_between_calls_steps_with_its_new_settings():
    from minirnn.nn.optimizers import Adam

    task = pd_task()
    model, opt = model_for(task), Adam(learning_rate=0.01)
    model.train(task, dict(QUIET, training_iters=8, optimizer=opt))
    opt.learning_rate = 1e-4  # a second phase with a lower rate
    model.train(task, dict(QUIET, training_iters=8, optimizer=opt))
    assert model.optimizer.learning_rate == 1e-4 and model.optimizer.t == 2  # its state carried over
