"""Writing a task: what a task author (or a ported PsychRNN task) may put in it, and the errors a
mistake gives. Each message names the method, what it returned and what it must return."""
import copy
import json
import pickle
import threading

import numpy as np
import pytest

from minirnn import Basic
from minirnn.errors import ParameterError, ParameterTypeError, ShapeError
from minirnn.tasks import PerceptualDiscrimination, Task, TaskParams


class PerStep(Task):
    """A minimal PsychRNN-style task: 2 inputs, 2 outputs, 10 steps."""

    def __init__(self, N_batch=3, seed=0):
        super().__init__(2, 2, dt=10, tau=100, T=100, N_batch=N_batch, seed=seed)

    def generate_trial_params(self, batch, trial):
        return {"direction": int(self.rng.integers(2))}

    def trial_function(self, t, params):
        y_t = np.zeros(2)
        y_t[params["direction"]] = 1.0
        return self.rng.standard_normal(2), y_t, np.ones(2)


class Vectorised(Task):
    """A minimal vectorised task with the same shapes."""

    def __init__(self, N_batch=3):
        super().__init__(2, 2, dt=10, tau=100, T=100, N_batch=N_batch, seed=0)

    def sample_trial_params(self, rng, N_batch):
        return {"direction": rng.integers(0, 2, N_batch)}

    def build_trials(self, params, rng=None):
        zeros = np.zeros((len(params["direction"]), self.N_steps, 2))
        return zeros, zeros, zeros + 1


class RingTask(Task):
    """A ring of N_ring inputs: an attribute whose name is close to a model option (N_in)."""

    def __init__(self, N_ring=8):
        super().__init__(N_ring, 2, dt=10, tau=100, T=50, N_batch=2, seed=0)
        self.N_ring = N_ring
        self.pref = np.linspace(0, 2 * np.pi, N_ring, endpoint=False)

    def generate_trial_params(self, batch, trial):
        return {"theta": self.rng.uniform(0, 2 * np.pi)}

    def trial_function(self, t, params):
        theta = params["theta"]
        return np.cos(self.pref - theta), np.array([np.cos(theta), np.sin(theta)]), np.ones(2)


# ------------------------------------------------------------------ get_task_params()

class WithHelpers(PerStep):
    """A task that holds objects deepcopy refuses, next to plain data."""

    def __init__(self):
        super().__init__()
        self.schedule = (c for c in [0.1, 0.2, 0.4])  # a generator of coherence levels
        self.lock = threading.Lock()
        self.levels = [0.1, 0.2]


def test_get_task_params_shares_what_cannot_be_copied():
    task = WithHelpers()
    params = task.get_task_params()
    assert params["schedule"] is task.schedule and params["lock"] is task.lock  # shared, not refused
    assert next(params["schedule"]) == 0.1
    params["levels"].append(0.3)  # plain data is still a deep copy
    assert task.levels == [0.1, 0.2]


def test_get_task_params_is_a_plain_looking_dict_that_remembers_the_tasks_keys():
    task = RingTask()
    params = task.get_task_params()
    assert isinstance(params, dict) and isinstance(params, TaskParams)
    assert repr(params) == repr(dict(params))
    assert params.task_keys == set(params) and "N_ring" in params.task_keys
    json.dumps({k: v for k, v in params.items() if k != "pref"})
    for twin in (copy.copy(params), copy.deepcopy(params), pickle.loads(pickle.dumps(params)), params.copy(),
                 params | {"N_rec": 5}, {"N_rec": 5} | params):
        assert isinstance(twin, TaskParams) and twin.task_keys == params.task_keys, type(twin)
    assert "N_rec" not in params.task_keys
    assert type(dict(params)) is dict  # a dict(...) copy is plain: it forgets the marks


# ------------------------------------------------------------------ task settings in the model's params

@pytest.mark.parametrize("name", ["N_ring", "n_in", "Nin", "batch", "taus", "seeds", "spec_radius", "autapse",
                                  "N_step", "alpha_"])
def test_basic_accepts_task_settings_whose_names_are_close_to_options(name):
    task = RingTask()
    setattr(task, name, 3)
    params = task.get_task_params()
    params["N_rec"] = 4
    model = Basic(params)  # PsychRNN accepts any extra key; these are the task's, not typos
    assert model.params["N_in"] == 8


def test_a_misspelt_option_added_to_the_tasks_params_is_still_an_error():
    params = RingTask().get_task_params()
    params.update(N_rec=4, dale_ration=0.8)
    with pytest.raises(ParameterError, match="Unknown parameter 'dale_ration' for Basic; did you mean 'dale_ratio'"):
        Basic(params)


def test_a_near_miss_from_a_plain_copy_says_how_to_keep_the_tasks_setting():
    params = dict(RingTask().get_task_params(), N_rec=4)  # dict(...) forgets which keys are the task's
    with pytest.raises(ParameterError) as info:
        Basic(params)
    message = str(info.value)
    for text in ("Unknown parameter 'N_ring' for Basic; did you mean 'N_in'?", "setting of your task",
                 "pass task.get_task_params() itself", "rename"):
        assert text in message, message


# ------------------------------------------------------------------ the task's own self.rng

class OwnRandomState(PerStep):
    """A PsychRNN-era task that keeps its own RandomState in self.rng."""

    def __init__(self):
        super().__init__()
        self.rng = np.random.RandomState(0)


class OwnRandomStateRenamed(PerStep):
    """The same task with its generator under another name."""

    def __init__(self):
        super().__init__()
        self.random_state = np.random.RandomState(0)

    def generate_trial_params(self, batch, trial):
        return {"direction": int(self.random_state.randint(2))}


def test_a_task_that_sets_self_rng_to_something_else_is_told_to_rename_it():
    with pytest.raises(ParameterError) as info:
        OwnRandomState()
    message = str(info.value)
    for text in ("OwnRandomState sets self.rng to a RandomState", "Task.rng is minirnn's numpy.random.Generator",
                 "under another name"):
        assert text in message, message


def test_a_task_with_its_generator_under_another_name_works_everywhere():
    task = OwnRandomStateRenamed()
    task.get_trial_batch()
    task.generate_batch(np.random.default_rng(0))  # an evaluation batch (tutorial 03)
    assert task.state_dict()["batch_index"] == 1
    assert "rng" not in vars(task) and "_rng" not in task.get_task_params()
    params = dict(task.get_task_params(), N_rec=4, seed=0, backend="numpy")
    Basic(params, n_networks=2).train(task, {"training_iters": 6, "verbosity": False})  # ensemble twins
    task.rng = np.random.default_rng(3)  # a Generator may still replace the stream
    assert task.rng.integers(10**6) == np.random.default_rng(3).integers(10**6)


# ------------------------------------------------------------------ authoring mistakes

class TwoValues(PerStep):
    def trial_function(self, t, params):
        return np.zeros(2), np.zeros(2)


class ReturnsNone(PerStep):
    def trial_function(self, t, params):
        np.zeros(2)


class Strings(PerStep):
    def trial_function(self, t, params):
        return np.array(["a", "b"]), np.zeros(2), np.ones(2)


class TrialOfTwo(PerStep):
    def generate_trial(self, params):
        return np.zeros((10, 2)), np.zeros((10, 2))


class BuildsTwo(Vectorised):
    def build_trials(self, params, rng=None):
        zeros = np.zeros((len(params["direction"]), self.N_steps, 2))
        return zeros, zeros


class SamplesAList(Vectorised):
    def sample_trial_params(self, rng, N_batch):
        return [{"direction": 0}] * N_batch


@pytest.mark.parametrize("cls, error, texts", [
    (TwoValues, ShapeError, ["TwoValues.trial_function(t, params) returned a tuple of 2 values at t=0",
                             "three arrays (x_t, y_t, mask_t)"]),
    (ReturnsNone, ShapeError, ["ReturnsNone.trial_function(t, params) returned None",
                               "return statement missing", "three arrays (x_t, y_t, mask_t)"]),
    (Strings, ParameterTypeError, ["Strings.trial_function returned x_t of dtype <U1 at t=0",
                                   "cannot be stored as float64", "numbers, shape (2,)"]),
    (TrialOfTwo, ShapeError, ["TrialOfTwo.generate_trial(params) returned a tuple of 2 values",
                              "three arrays (x, y, mask)"]),
    (BuildsTwo, ShapeError, ["BuildsTwo.build_trials(params, rng) returned a tuple of 2 values",
                             "three arrays (x, y, mask) of shapes (N_batch, N_steps, N_in)"]),
    (SamplesAList, ShapeError, ["SamplesAList.sample_trial_params(rng, N_batch) returned a list of 3 values",
                                "must return a dict of arrays of shape (N_batch, ...)"]),
])
def test_authoring_mistakes_name_the_method_what_it_returned_and_what_it_must_return(cls, error, texts):
    with pytest.raises(error) as info:
        cls().get_trial_batch()
    for text in texts:
        assert text in str(info.value), str(info.value)


def test_a_wrong_shape_is_still_reported_as_a_shape():
    class Long(PerStep):
        def trial_function(self, t, params):
            return np.zeros(3), np.zeros(2), np.ones(2)

    with pytest.raises(ShapeError, match=r"Long.trial_function returned x_t with shape \(3,\) at t=0; it must be "
                                         r"\(2,\)"):
        Long().get_trial_batch()


def test_the_built_in_tasks_still_make_batches():
    task = PerceptualDiscrimination(dt=10, tau=100, T=200, N_batch=4, seed=0)
    assert task.get_trial_batch()[0].shape == (4, 20, 2)
    assert task._sample_one_trial().keys() == task.generate_trial_params(1, 0).keys()
