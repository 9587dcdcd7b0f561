"""The NeuroGym adapter: trial-aligned padded batches, one-hot targets from env.gt, seeding, the
decision-period accuracy, lazy import and the missing-dependency error.

The first group runs everywhere with a small stand-in environment; the last group needs neurogym
(``pip install "minirnn[neurogym]" torch`` — neurogym 2.3.x imports torch) and is skipped without it.
"""
import subprocess
import sys

import numpy as np
import pytest

from minirnn import Basic
from minirnn.errors import MissingDependencyError, ParameterError, ParameterTypeError
from minirnn.tasks.neurogym import NeurogymTask


class Space:
    def __init__(self, shape=None, n=None):
        self.shape, self.n = shape, n


class FakeTrialEnv:
    """Enough of NeuroGym's TrialEnv: variable-length trials, a fixation cue, a choice at the end."""

    def __init__(self, dt=100):
        self.dt = dt
        self.observation_space = Space(shape=(3,))
        self.action_space = Space(n=3)
        self.rng = np.random.RandomState(0)
        self.seeds = []

    def seed(self, seed=None):
        self.seeds.append(seed)
        self.rng = np.random.RandomState(seed)

    def new_trial(self):
        n_stim = int(self.rng.randint(2, 6))  # 1 fixation + 2..5 stimulus + 1 decision steps
        choice = int(self.rng.randint(0, 2))
        n = n_stim + 2
        self.ob = np.zeros((n, 3), dtype=np.float32)
        self.ob[0, 0] = 1
        self.ob[1:1 + n_stim, 1 + choice] = 1 + self.rng.rand(n_stim)
        self.gt = np.zeros(n, dtype=np.int64)
        self.gt[-1] = choice + 1
        self.trial = {"ground_truth": choice}
        return self.trial


def test_import_does_not_import_neurogym():
    code = "import minirnn, minirnn.tasks.neurogym, sys; print('neurogym' in sys.modules, 'torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]


def test_missing_neurogym_names_the_install_line(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "neurogym" else real(name, *a))
    with pytest.raises(MissingDependencyError, match=r'pip install "minirnn\[neurogym\]"'):
        NeurogymTask("PerceptualDecisionMaking-v0", N_batch=4)
    assert issubclass(MissingDependencyError, ImportError)


def test_batches_are_trial_aligned_padded_and_masked():
    env = FakeTrialEnv()
    task = NeurogymTask(env, N_batch=16, seed=3)
    assert (task.N_in, task.N_out, task.dt) == (3, 3, 100)
    assert task.N_steps == 7  # the longest probe trial: 1 + 5 + 1
    x, y, mask, trials = task.get_trial_batch()
    assert x.shape == (16, 7, 3) and y.shape == mask.shape == (16, 7, 3)
    for b in range(16):
        n = trials[b]["n_steps"]
        assert np.all(x[b, 0] == [1, 0, 0])  # every trial starts at step 0 (its fixation cue)
        assert np.all(mask[b, :n] == 1) and np.all(mask[b, n:] == 0) and np.all(x[b, n:] == 0)
        assert np.all(y[b, :n].sum(axis=-1) == 1) and np.all(y[b, n:] == 0)  # one-hot inside the trial
        assert np.all(y[b, :n - 1, 0] == 1)  # gt 0 -> fixate channel
        assert y[b, n - 1, trials[b]["ground_truth"] + 1] == 1  # choice k -> channel k + 1
    assert task.batch_index == 1


def test_seeded_and_separate_streams():
    a, b = NeurogymTask(FakeTrialEnv(), N_batch=8, seed=5), NeurogymTask(FakeTrialEnv(), N_batch=8, seed=5)
    for _ in range(2):
        batch_a, batch_b = a.get_trial_batch(), b.get_trial_batch()
        assert all(np.array_equal(u, v) for u, v in zip(batch_a[:3], batch_b[:3]))
    c = NeurogymTask(FakeTrialEnv(), N_batch=8, seed=6)
    assert not np.array_equal(c.get_trial_batch()[0], a.get_trial_batch()[0])
    # an evaluation batch from another Generator leaves the task's own sequence untouched
    state = a.state_dict()
    a.generate_batch(np.random.default_rng(0))
    after = a.get_trial_batch()
    a.load_state_dict(state)
    assert np.array_equal(a.get_trial_batch()[0], after[0])


def test_longer_trial_grows_n_steps():
    task = NeurogymTask(FakeTrialEnv(), N_batch=4, seed=0, T=300)
    assert task.N_steps == 3
    x, y, mask, _ = task.get_trial_batch()
    assert task.N_steps >= 4 and x.shape[1] == task.N_steps


def test_accuracy_scores_the_decision_period():
    task = NeurogymTask(FakeTrialEnv(), N_batch=32, seed=1)
    x, y, mask, _ = task.get_trial_batch()
    assert task.accuracy_function(y, y, mask) == 1.0
    wrong = y.copy()
    wrong[..., 1:] = y[..., [2, 1]]  # swap the two choices
    assert task.accuracy_function(y, wrong, mask) == 0.0
    fixating = np.zeros_like(y)
    fixating[..., 0] = 1  # never choosing is wrong in the decision period
    assert task.accuracy_function(y, fixating, mask) == 0.0
    # a catch trial (no choice label): right when the fixate channel wins
    y_catch = y.copy()
    y_catch[0, :, 1:] = 0
    y_catch[0, :, 0] = mask[0, :, 0]
    assert task.accuracy_function(y_catch[:1], fixating[:1], mask[:1]) == 1.0


class ForcedChoiceEnv(FakeTrialEnv):
    """A TrialEnv whose new_trial takes NeuroGym's kwargs (a wrapper may set the ground truth)."""

    def new_trial(self, **kwargs):
        trial = super().new_trial()
        choice = kwargs.get("ground_truth", trial["ground_truth"])
        self.gt[-1] = choice + 1
        self.trial = {"ground_truth": choice}
        return self.trial

    @property
    def unwrapped(self):
        return self


class SideBiasLike:
    """The shape of neurogym's trial wrappers (SideBias, ...): new_trial sets kwargs, then calls the env's."""

    def __init__(self, env, choice=1):
        self.env, self.choice = env, choice

    def __getattr__(self, name):  # gym's Wrapper forwarded attributes before gymnasium 1.0
        return getattr(self.env, name)

    @property
    def unwrapped(self):
        return self.env.unwrapped

    def new_trial(self, **kwargs):
        kwargs["ground_truth"] = self.choice
        return self.env.new_trial(**kwargs)


class ForwardingWrapper:
    """gymnasium 0.29's Wrapper (OrderEnforcing, PassiveEnvChecker around gym.make's env): no new_trial of
    its own, forwarded through __getattr__ with a deprecation warning."""

    def __init__(self, env):
        self.env = env

    def __getattr__(self, name):
        import warnings

        if name == "new_trial":  # gymnasium's Wrapper has spec, observation_space, ... of its own
            warnings.warn(f"env.{name} to get variables from other wrappers is deprecated", UserWarning)
        return getattr(self.env, name)

    @property
    def unwrapped(self):
        return self.env.unwrapped


class StepWrapper:
    """A step-level wrapper under gymnasium 1.x: no new_trial of its own and no attribute forwarding."""

    def __init__(self, env):
        self.env = env

    @property
    def unwrapped(self):
        return self.env.unwrapped


@pytest.mark.parametrize("wrap", [SideBiasLike, lambda env: StepWrapper(SideBiasLike(env)),
                                  lambda env: ForwardingWrapper(SideBiasLike(env))],
                         ids=["trial_wrapper", "step_wrapper_over_trial_wrapper", "forwarding_wrapper_over_it"])
def test_trial_wrappers_choose_the_trials(wrap):
    import warnings

    base = ForcedChoiceEnv()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no deprecated attribute forwarding is used
        task = NeurogymTask(wrap(base), N_batch=64, seed=0)
        x, y, mask, trials = task.get_trial_batch()
    assert np.all(trials["ground_truth"] == 1)  # the wrapper's choice on every trial
    last = mask[..., 0].sum(axis=1).astype(int) - 1
    assert np.all(y[np.arange(64), last, 2] == 1)  # and in the targets read from env.unwrapped.gt
    assert base.seeds[-1] is not None  # the TrialEnv itself is seeded from the task's stream


def test_a_trial_with_no_masked_step_is_not_scored():
    task = NeurogymTask(FakeTrialEnv(), N_batch=8, seed=1)
    x, y, mask, _ = task.get_trial_batch()
    wrong = y.copy()
    wrong[..., 1:] = y[..., [2, 1]]
    mask[0], y[0], wrong[0] = 0, 0, 0  # an empty trial: the old rule scored it correct
    assert task.accuracy_function(y, wrong, mask) == 0.0
    assert np.isnan(task.accuracy_function(y, wrong, np.zeros_like(mask)))


def test_argument_errors():
    with pytest.raises(ParameterError, match="env_kwargs"):
        NeurogymTask(FakeTrialEnv(), N_batch=4, timing={"stimulus": 100})
    with pytest.raises(ParameterError, match="'dt'"):
        NeurogymTask(FakeTrialEnv(dt=100), N_batch=4, dt=20)
    with pytest.raises(ParameterTypeError, match="TrialEnv"):
        NeurogymTask(object(), N_batch=4)


def test_trains_on_the_stand_in_env():
    task = NeurogymTask(FakeTrialEnv(), N_batch=32, seed=0, tau=200)
    params = task.get_task_params()
    params.update(N_rec=16, seed=0, backend="numpy")
    model = Basic(params)
    model.train(task, {"training_iters": 32 * 150, "learning_rate": 0.01, "verbosity": False})
    x, y, mask, _ = task.generate_batch(np.random.default_rng(123))
    assert task.accuracy_function(y, model.test(x)[0], mask) > 0.9


# ---- with the real neurogym ------------------------------------------------------------------------
@pytest.mark.slow
def test_perceptual_decision_making_above_chance():
    pytest.importorskip("neurogym")  # skipped too when neurogym 2.3.x is there but torch is not
    task = NeurogymTask("PerceptualDecisionMaking-v0", N_batch=32, dt=20, tau=100, seed=0,
                        timing={"fixation": 100, "stimulus": 500, "delay": 0, "decision": 100})
    assert (task.N_in, task.N_out) == (3, 3) and task.N_steps == 35
    x, y, mask, trials = task.get_trial_batch()
    assert x.shape == (32, 35, 3) and np.all(mask[:, -1] == 1)  # fixed timing: no padding
    params = task.get_task_params()
    params.update(N_rec=32, seed=0, backend="numpy")
    model = Basic(params)
    model.train(task, {"training_iters": 32 * 300, "learning_rate": 0.01, "verbosity": False})
    big = [task.generate_batch(np.random.default_rng(s)) for s in range(8)]
    accuracy = np.mean([task.accuracy_function(b[1], model.test(b[0])[0], b[2]) for b in big])
    print(f"PerceptualDecisionMaking-v0 accuracy after 300 updates: {accuracy:.3f} (chance 0.5)")
    assert accuracy > 0.7
