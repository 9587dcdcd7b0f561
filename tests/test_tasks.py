"""Tests of minirnn.tasks: the Task base class (both paths), the built-in tasks' definitions
(REFERENCE.md "Task definitions (exact)"), seeding, counters, checkpoints and error messages."""
import copy
import io
import json
import pickle

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from minirnn.errors import NonFiniteError, ParameterError, ParameterTypeError, ShapeError
from minirnn.tasks import (DelayedDiscrimination, FlipFlop, MatchToCategory,
                           PerceptualDiscrimination, Task, TrialParams)

BUILT_INS = [PerceptualDiscrimination, DelayedDiscrimination, MatchToCategory, FlipFlop]


def make(cls, N_batch=16, seed=0, **kwargs):
    return cls(dt=10, tau=100, T=2000, N_batch=N_batch, seed=seed, **kwargs)


def batches_equal(a, b):
    return all(np.array_equal(u, v) for u, v in zip(a[:3], b[:3]))


# ------------------------------------------------------------------ a PsychRNN-style user task

class PsychRNNStyleTask(Task):
    """A task written for PsychRNN: only generate_trial_params and trial_function, np.random."""

    def __init__(self, dt, tau, T, N_batch):
        super(PsychRNNStyleTask, self).__init__(2, 1, dt, tau, T, N_batch)
        self.calls = []

    def generate_trial_params(self, batch, trial):
        self.calls.append((batch, trial))
        return {"level": np.random.uniform(0.5, 1.5), "onset": 50.0}

    def trial_function(self, t, params):
        x_t = np.array([params["level"], 0.1 * np.random.randn()]) * (t >= params["onset"])
        y_t = np.array([params["level"]])
        mask_t = np.array([1.0 if t >= params["onset"] else 0.0])
        return x_t, y_t, mask_t


class NaNTask(PsychRNNStyleTask):
    def __init__(self, bad, dt=10, tau=100, T=100, N_batch=3):
        super().__init__(dt, tau, T, N_batch)
        self.bad = bad

    def trial_function(self, t, params):
        x_t, y_t, mask_t = super().trial_function(t, params)
        if t == 30:
            {"x": x_t, "y": y_t, "mask": mask_t}[self.bad][0] = np.nan
        return x_t, y_t, mask_t


# ------------------------------------------------------------------ shapes and containers

@pytest.mark.parametrize("cls", BUILT_INS)
def test_batch_shapes_dtypes_and_trial_params(cls):
    task = make(cls, N_batch=5)
    x, y, mask, trial_params = task.generate_batch()
    assert x.shape == (5, 200, task.N_in) and y.shape == mask.shape == (5, 200, task.N_out)
    assert x.dtype == y.dtype == mask.dtype == np.float64
    assert set(np.unique(mask)) <= {0.0, 1.0}
    assert len(trial_params) == 5 and isinstance(trial_params[4], dict)
    assert trial_params[-1].keys() == trial_params[4].keys()
    assert all(np.array_equal(trial_params[-1][k], v) for k, v in trial_params[4].items())
    assert np.asarray(trial_params).shape == (5,) and np.asarray(trial_params).dtype == object


def test_trial_params_dicts_and_columns():
    task = make(PerceptualDiscrimination, N_batch=4)
    *_, trial_params = task.generate_batch()
    assert isinstance(trial_params, TrialParams)
    first = trial_params[0]
    assert set(first) == {"coherence", "direction", "stim_noise", "onset_time", "stim_duration"}
    assert isinstance(first["direction"], int) and isinstance(first["coherence"], float)
    assert trial_params["direction"].shape == (4,)  # one parameter of every trial, as an array
    assert [p["direction"] for p in trial_params] == list(trial_params["direction"])
    assert len(trial_params[1:3]) == 2
    with pytest.raises(IndexError):
        trial_params[4]
    with pytest.raises(KeyError, match="did you mean 'coherence'"):
        trial_params["coherance"]


# ------------------------------------------------------------------ trial_params: PsychRNN's object array

def psychrnn_style(trial_params):
    """What PsychRNN's get_trial_batch returns for the same trials: ``np.array(params)``."""
    return np.array(list(trial_params))


def per_step(cls):
    """``cls`` forced onto the per-trial path (generate_trial_params + trial_function)."""
    class PerStep(cls):
        def trial_function(self, t, params):
            return super().trial_function(t, params)
    return PerStep


@pytest.mark.parametrize("cls", BUILT_INS + [per_step(PerceptualDiscrimination)])
def test_trial_params_is_an_object_ndarray_of_dicts(cls):
    *_, trial_params = make(cls, N_batch=6).generate_batch()
    reference = psychrnn_style(trial_params)
    assert isinstance(trial_params, np.ndarray) and trial_params.dtype == object
    assert trial_params.shape == reference.shape == (6,) and trial_params.ndim == 1
    assert trial_params.size == len(trial_params) == 6
    as_list = trial_params.tolist()
    assert type(as_list) is list and all(type(p) is dict for p in as_list)
    assert all(a is b for a, b in zip(as_list, trial_params))  # the same dicts, not copies
    assert all(a is b for a, b in zip(trial_params, reference))


@pytest.mark.parametrize("cls", BUILT_INS)
def test_trial_params_indexes_like_psychrnns_array(cls):
    *_, trial_params = make(cls, N_batch=6).generate_batch()
    reference = psychrnn_style(trial_params)
    correct = np.array([True, False, True, True, False, False])
    for index in (0, -1, np.int64(2), slice(1, 4), slice(None, None, -2), np.array([0, 2, 2]),
                  [5, 1], correct, np.nonzero(correct), np.array([], dtype=int)):
        got, want = trial_params[index], reference[index]
        if isinstance(want, dict):
            assert got is want
            continue
        assert isinstance(got, np.ndarray) and got.dtype == object and got.shape == want.shape
        assert all(a is b for a, b in zip(got, want))
        assert got.tolist() == want.tolist()


def test_trial_params_mask_like_a_psychrnn_analysis():
    task = make(PerceptualDiscrimination, N_batch=32)
    *_, trial_params = task.generate_batch()
    right = np.array([p["direction"] for p in trial_params]) == 1
    chosen = trial_params[right]
    assert chosen.shape == (right.sum(),) and all(p["direction"] == 1 for p in chosen)
    high = trial_params[[p["coherence"] > 0.4 for p in trial_params]]
    assert all(p["coherence"] > 0.4 for p in high)
    assert np.array_equal(chosen["coherence"], trial_params["coherence"][right])


@pytest.mark.parametrize("cls", BUILT_INS)
def test_trial_params_edits_persist(cls):
    *_, trial_params = make(cls, N_batch=5).generate_batch()
    key = next(iter(trial_params[0]))
    trial_params[0][key] = "edited"
    trial_params[1:3][1]["extra"] = 7  # a slice is a view of the same dicts
    trial_params[np.array([4])][0]["extra"] = 8  # an index array copies the array, not the dicts
    assert trial_params[0][key] == "edited" and trial_params.tolist()[0][key] == "edited"
    assert trial_params[2]["extra"] == 7 and trial_params[4]["extra"] == 8
    assert trial_params[key][0] == "edited"  # a column reads the dicts as they are now
    trial_params[3] = {"replaced": True}
    assert trial_params[3] == {"replaced": True}


@pytest.mark.parametrize("cls", BUILT_INS)
def test_vectorised_trial_params_equal_the_per_step_paths(cls):
    # One trial: both paths make it from the same first draws, so the dicts are equal, types too.
    fast = make(cls, N_batch=1).generate_batch(np.random.default_rng(3))[3]
    slow = make(per_step(cls), N_batch=1).generate_batch(np.random.default_rng(3))[3]
    assert type(slow) is type(fast) is TrialParams and fast.shape == slow.shape == (1,)
    assert fast[0].keys() == slow[0].keys()
    for key, value in fast[0].items():
        assert type(value) is type(slow[0][key]) and np.array_equal(value, slow[0][key])
    # More trials: the same keys and types in every dict, and the same columns.
    fast = make(cls, N_batch=5).generate_batch()[3]
    slow = make(per_step(cls), N_batch=5).generate_batch()[3]
    types = {key: type(value) for key, value in fast[0].items()}
    assert all({key: type(value) for key, value in p.items()} == types for p in [*fast, *slow])
    for key in types:
        assert fast[key].shape == slow[key].shape and fast[key].dtype == slow[key].dtype


def test_trial_params_built_from_arrays_equal_one_trial_at_a_time():
    task = make(DelayedDiscrimination, N_batch=7)
    arrays = task.sample_trial_params(task.rng, 7)
    batch = TrialParams(arrays)
    for i in range(7):
        one = TrialParams({key: value[i:i + 1] for key, value in arrays.items()}, 1)[0]
        assert batch[i] == one and batch[i] is not batch[(i + 1) % 7]
    for key, value in arrays.items():
        np.testing.assert_array_equal(batch[key], value)
    flip_flop = FlipFlop(dt=10, tau=100, T=200, N_batch=3, seed=0)
    pulses = flip_flop.sample_trial_params(np.random.default_rng(0), 3)  # (3, N_steps, N_bits)
    rows = TrialParams(pulses, 3)
    assert rows[1]["pulses"].shape == (20, flip_flop.N_bits) and np.array_equal(rows["pulses"], pulses["pulses"])


def test_trial_params_results_saving_and_copies():
    *_, trial_params = make(PerceptualDiscrimination, N_batch=4).generate_batch()
    same = trial_params == trial_params[0]  # not dicts: a plain boolean array
    assert type(same) is np.ndarray and same.dtype == bool and same[0]
    assert type(np.asarray(trial_params)) is np.ndarray
    loaded = pickle.loads(pickle.dumps(trial_params))  # a plain object array, as PsychRNN pickles
    assert type(loaded) is np.ndarray and loaded.dtype == object
    assert loaded.tolist() == trial_params.tolist()
    buffer = io.BytesIO()
    np.save(buffer, trial_params)
    buffer.seek(0)
    assert np.load(buffer, allow_pickle=True).tolist() == trial_params.tolist()
    deep = copy.deepcopy(trial_params)
    assert deep.tolist() == trial_params.tolist() and deep[0] is not trial_params[0]


def test_trial_params_from_per_trial_tasks_and_bad_arrays():
    np.random.seed(0)
    *_, trial_params = PsychRNNStyleTask(dt=10, tau=100, T=100, N_batch=3).generate_batch()
    assert isinstance(trial_params, TrialParams) and trial_params.shape == (3,)
    np.testing.assert_array_equal(trial_params["onset"], [50.0] * 3)
    assert TrialParams({"a": [1, 2], "scale": 0.5})[1] == {"a": 2, "scale": 0.5}
    assert TrialParams({}, 2).tolist() == [{}, {}]
    with pytest.raises(ShapeError, match=r"'b' has 3 entries .* N_batch=2"):
        TrialParams({"a": [1, 2], "b": [1, 2, 3]})


def test_steps_alpha_and_per_unit_tau():
    task = Task(1, 1, dt=10, tau=100, T=95, N_batch=2)
    assert task.N_steps == 10 and task.alpha == 0.1
    per_unit = Task(1, 1, dt=10, tau=[100, 50], T=100, N_batch=2)
    np.testing.assert_array_equal(per_unit.alpha, [0.1, 0.2])
    params = per_unit.get_task_params()
    params["tau"][0] = 1.0
    assert per_unit.tau[0] == 100


# ------------------------------------------------------------------ randomness

@pytest.mark.parametrize("cls", BUILT_INS)
def test_same_seed_same_batches_different_seeds_differ(cls):
    a, b, c = make(cls, seed=7), make(cls, seed=7), make(cls, seed=8)
    for _ in range(2):
        batch_a, batch_b, batch_c = a.generate_batch(), b.generate_batch(), c.generate_batch()
        assert batches_equal(batch_a, batch_b)
        assert not np.array_equal(batch_a[0], batch_c[0])


def test_seed_none_follows_numpy_global_seed():
    np.random.seed(3)
    first = make(PerceptualDiscrimination, seed=None).generate_batch()
    np.random.seed(3)
    second = make(PerceptualDiscrimination, seed=None).generate_batch()
    assert batches_equal(first, second)


def test_seed_sequence_and_generator_seeds():
    from_sequence = make(DelayedDiscrimination, seed=np.random.SeedSequence(5)).generate_batch()
    from_int = make(DelayedDiscrimination, seed=5).generate_batch()
    assert batches_equal(from_sequence, from_int)
    rng = np.random.default_rng(1)
    task = make(DelayedDiscrimination, seed=rng)
    assert task.rng is rng


def test_psychrnn_style_task_is_reproducible_through_np_random_seed():
    np.random.seed(11)
    first = PsychRNNStyleTask(10, 100, 200, 4).generate_batch()
    np.random.seed(11)
    second = PsychRNNStyleTask(10, 100, 200, 4).generate_batch()
    assert batches_equal(first, second)


# ------------------------------------------------------------------ counters and streams

def test_batch_index_advances_and_batches_differ():
    task = make(PerceptualDiscrimination)
    assert task.batch_index == 0
    first = task.get_trial_batch()
    second = task.get_trial_batch()
    assert task.batch_index == 2 and not np.array_equal(first[0], second[0])
    generator = task.batch_generator()
    next(generator), next(generator)
    assert task.batch_index == 4


def test_generate_batch_from_another_rng_leaves_the_task_stream_alone():
    task, twin = make(MatchToCategory), make(MatchToCategory)
    side = task.generate_batch(np.random.default_rng(99))
    assert task.batch_index == 0
    assert batches_equal(task.generate_batch(), twin.generate_batch())
    assert batches_equal(side, make(MatchToCategory).generate_batch(np.random.default_rng(99)))
    task.generate_batch(task.rng)  # the task's own stream, passed explicitly, counts
    assert task.batch_index == 2


def test_psychrnn_style_per_trial_path():
    task = PsychRNNStyleTask(dt=10, tau=100, T=200, N_batch=3)
    x, y, mask, trial_params = task.get_trial_batch()
    task.get_trial_batch()
    assert x.shape == (3, 20, 2) and y.shape == mask.shape == (3, 20, 1)
    assert task.calls == [(1, 0), (1, 1), (1, 2), (2, 0), (2, 1), (2, 2)]  # batch number advances
    assert trial_params.dtype == object and trial_params[0]["onset"] == 50.0
    np.testing.assert_array_equal(mask[:, :5, 0], 0.0)
    np.testing.assert_array_equal(mask[:, 5:, 0], 1.0)
    np.testing.assert_array_equal(y[:, 0, 0], [p["level"] for p in trial_params])
    assert task.accuracy_function(y, y, mask) is None


def test_subclass_overriding_trial_function_uses_the_per_trial_path():
    class Silent(PerceptualDiscrimination):
        def trial_function(self, t, params):
            return np.zeros(2), np.zeros(2), np.ones(2)

    x, y, mask, _ = make(Silent, N_batch=2).generate_batch()
    assert not x.any() and not y.any() and mask.all()


def test_user_vectorised_task():
    class Ramp(Task):
        def __init__(self, **kwargs):
            super().__init__(1, 1, **kwargs)

        def sample_trial_params(self, rng, N_batch):
            return {"slope": rng.uniform(1, 2, N_batch)}

        def build_trials(self, params, rng=None):
            ramp = params["slope"][:, None, None] * self._times()[None, :, None]
            return ramp, 2 * ramp, np.ones_like(ramp)

    task = Ramp(dt=1, tau=10, T=5, N_batch=3, seed=0)
    x, y, mask, trial_params = task.generate_batch()
    assert x.shape == (3, 5, 1)
    np.testing.assert_allclose(x[:, 4, 0], 4 * trial_params["slope"])


# ------------------------------------------------------------------ parameters

def test_get_task_params_is_a_copy_without_state():
    task = make(DelayedDiscrimination)
    params = task.get_task_params()
    for key in ("N_batch", "N_in", "N_out", "dt", "tau", "T", "alpha", "N_steps", "lo", "hi",
                "onset_time", "frequency_pairs"):
        assert key in params
    assert "rng" not in params and "batch_index" not in params
    params["N_rec"] = 50
    params["frequency_pairs"].append((1, 2))
    assert not hasattr(task, "N_rec") and len(task.frequency_pairs) == 5
    pd = make(PerceptualDiscrimination, coherence=[0.1, 0.2], direction=1).get_task_params()
    assert pd["coherence"] == [0.1, 0.2] and pd["direction"] == 1


def test_repr_shows_constructor_arguments():
    assert repr(make(PerceptualDiscrimination, direction=0)) == (
        "PerceptualDiscrimination(dt=10, tau=100, T=2000, N_batch=16, coherence=None, direction=0)")


# ------------------------------------------------------------------ definitions

def noise_free(task, arrays):
    """Build a batch from arrays with stim_noise set to 0 (the input noise scales with it)."""
    arrays = dict(arrays, stim_noise=np.zeros_like(arrays["stim_noise"]))
    return task.build_trials(arrays, np.random.default_rng(0))


def test_perceptual_discrimination_definition():
    task = make(PerceptualDiscrimination, N_batch=64)
    arrays = task.sample_trial_params(task.rng, 64)
    x, y, mask = noise_free(task, arrays)
    t = np.arange(200) * 10.0
    assert set(arrays["coherence"]) <= {0.1, 0.3, 0.5, 0.7}
    assert np.all((0 <= arrays["onset_time"]) & (arrays["onset_time"] < 1000))
    assert np.all((250 <= arrays["stim_duration"]) & (arrays["stim_duration"] < 750))
    for b in range(64):
        d, coh = arrays["direction"][b], arrays["coherence"][b]
        onset, end = arrays["onset_time"][b], arrays["onset_time"][b] + arrays["stim_duration"][b]
        stim, late = (onset < t) & (t < end), t > end + 20
        np.testing.assert_array_equal(x[b, stim, d], 1 + coh)
        np.testing.assert_array_equal(x[b, stim, 1 - d], 1.0)
        np.testing.assert_array_equal(x[b, ~stim], 0.0)
        np.testing.assert_array_equal(y[b, ~late], 0.0)
        np.testing.assert_array_equal(y[b, late, d], 1.0)
        np.testing.assert_array_equal(y[b, late, 1 - d], 0.2)
        np.testing.assert_array_equal(mask[b, t < end], 0.0)
        np.testing.assert_array_equal(mask[b, t >= end], 1.0)


def test_perceptual_discrimination_noise_level():
    task = make(PerceptualDiscrimination, N_batch=256)
    x, _, _, trial_params = task.generate_batch()
    t = np.arange(200) * 10.0
    before = t[None, :] <= trial_params["onset_time"][:, None]  # only noise here
    assert np.std(x[before]) == pytest.approx(np.sqrt(2 * .01 * np.sqrt(10) * np.sqrt(10) * .01),
                                              rel=0.05)


@pytest.mark.parametrize("direction", [0, 1])
def test_direction_argument_is_honoured(direction):
    task = make(PerceptualDiscrimination, N_batch=32, direction=direction)
    _, y, mask, trial_params = task.generate_batch()
    assert set(trial_params["direction"]) == {direction}
    assert np.all(y[..., direction][mask[..., 0] == 1] >= y[..., 1 - direction][mask[..., 0] == 1])
    assert task.accuracy_function(y, y, mask) == 1.0


def test_coherence_scalar_and_list():
    _, _, _, fixed = make(PerceptualDiscrimination, N_batch=32, coherence=0.25).generate_batch()
    assert set(fixed["coherence"]) == {0.25}
    _, _, _, chosen = make(PerceptualDiscrimination, N_batch=256, coherence=[0.05, 0.9]).generate_batch()
    assert set(chosen["coherence"]) == {0.05, 0.9}


def test_delayed_discrimination_definition():
    task = make(DelayedDiscrimination, N_batch=64)
    arrays = task.sample_trial_params(task.rng, 64)
    x, y, mask = noise_free(task, arrays)
    t = np.arange(200) * 10.0
    pairs = {(18, 10), (22, 14), (26, 18), (30, 22), (34, 26)}
    for b in range(64):
        f1, f2, choice = arrays["f1"][b], arrays["f2"][b], arrays["choice"][b]
        assert (max(f1, f2), min(f1, f2)) in pairs and choice == (0 if f1 > f2 else 1)
        s1 = (arrays["stimulus_1"][b] <= t) & (t < arrays["delay"][b])
        decision = (arrays["decision"][b] <= t) & (t < arrays["end"][b])
        np.testing.assert_allclose(x[b, s1, 0], 0.4 + 0.8 * (f1 - 10) / 24)
        np.testing.assert_allclose(x[b, s1, 1], 0.4 + 0.8 * (34 - f1) / 24)
        np.testing.assert_array_equal(mask[b, decision], 1.0)
        np.testing.assert_array_equal(mask[b, ~decision], 0.0)
        np.testing.assert_array_equal(y[b, decision, choice], 1.0)
        np.testing.assert_array_equal(y[b, decision, 1 - choice], 0.2)
        np.testing.assert_array_equal(y[b, ~decision], 0.0)
    assert np.all(arrays["stimulus_1"] < 250) and np.all(arrays["end"] - arrays["decision"] < 250)


def test_delayed_discrimination_fixed_durations():
    task = make(DelayedDiscrimination, onset_time=100, stim_duration_1=200, delay_duration=300,
                stim_duration_2=200, decision_duration=150)
    *_, trial_params = task.generate_batch()
    assert trial_params[0]["stimulus_2"] == 600 and trial_params[3]["end"] == 950


def test_match_to_category_definition():
    task = make(MatchToCategory, N_batch=64, N_out=4)
    arrays = task.sample_trial_params(task.rng, 64)
    x, y, mask = noise_free(task, arrays)
    t = np.arange(200) * 10.0
    stimulus, decision = (200 <= t) & (t < 1200), (1200 <= t) & (t < 2000)
    np.testing.assert_array_equal(arrays["category"], (arrays["angle"] // (np.pi / 2)).astype(int))
    np.testing.assert_array_equal(x[:, ~stimulus], 0.0)
    np.testing.assert_array_equal(mask[:, decision], 1.0)
    np.testing.assert_array_equal(mask[:, ~decision], 0.0)
    np.testing.assert_array_equal(y.argmax(-1)[:, decision], np.repeat(arrays["category"][:, None],
                                                                        decision.sum(), axis=1))
    theta = np.linspace(0, 2 * np.pi, 16)
    distance = np.angle(np.exp(1j * (theta[None, :] - arrays["angle"][:, None])))  # wrapped
    np.testing.assert_allclose(x[:, 50], np.exp(-distance**2 / 2) / np.sqrt(2 * np.pi), rtol=1e-12)
    with pytest.raises(ParameterError, match="'T' parameter of MatchToCategory .* Got 1500"):
        MatchToCategory(dt=10, tau=100, T=1500, N_batch=4)


def test_flip_flop_definition_and_accuracy():
    task = make(FlipFlop, N_batch=8, p_flip=0.05, response_time=30)
    x, y, mask, trial_params = task.generate_batch()
    pulses = trial_params["pulses"]
    np.testing.assert_array_equal(x, pulses)  # one-step pulses by default
    for b in range(8):
        for i in range(3):
            starts = np.flatnonzero(pulses[b, :, i])
            if starts.size == 0:
                assert not mask[b, :, i].any() and not y[b, :, i].any()
                continue
            assert not mask[b, :starts[0], i].any() and not y[b, :starts[0], i].any()
            for k in range(starts[0], 200):
                latest = starts[starts <= k][-1]
                assert y[b, k, i] == pulses[b, latest, i]
                assert mask[b, k, i] == ((k - latest) * 10 >= 30)
    assert task.accuracy_function(y, y, mask) == 1.0
    assert task.accuracy_function(y, -y, mask) == 0.0
    half = y.copy()
    half[:4] *= -1
    expected = mask[4:].sum() / mask.sum()
    assert task.accuracy_function(y, half, mask) == pytest.approx(expected)


# ------------------------------------------------------------------ the two paths agree

@pytest.mark.parametrize("cls, kwargs", [(PerceptualDiscrimination, {}),
                                         (DelayedDiscrimination, {}),
                                         (MatchToCategory, {"N_in": 7, "N_out": 3}),
                                         (FlipFlop, {"p_flip": 0.1, "pulse_duration": 30,
                                                     "response_time": 20})])
def test_vectorised_and_per_step_paths_agree_exactly(cls, kwargs):
    task = make(cls, N_batch=24, **kwargs)
    arrays = task.sample_trial_params(task.rng, 24)
    if "stim_noise" in arrays:
        arrays["stim_noise"] = np.zeros(24)
    x, y, mask = task.build_trials(arrays, np.random.default_rng(0))
    for b, params in enumerate(TrialParams(arrays, 24)):
        x_b, y_b, mask_b = task.generate_trial(params)
        np.testing.assert_array_equal(x[b], x_b)
        np.testing.assert_array_equal(y[b], y_b)
        np.testing.assert_array_equal(mask[b], mask_b)


@settings(max_examples=25, deadline=None)
@given(N_bits=st.integers(1, 4), p_flip=st.floats(0, 1), steps=st.integers(1, 30),
       pulse_steps=st.integers(1, 4), response_steps=st.integers(0, 4), seed=st.integers(0, 2**16))
def test_flip_flop_paths_agree_for_any_configuration(N_bits, p_flip, steps, pulse_steps,
                                                     response_steps, seed):
    task = FlipFlop(dt=1, tau=10, T=steps, N_batch=3, N_bits=N_bits, p_flip=p_flip,
                    pulse_duration=pulse_steps, response_time=response_steps, seed=seed)
    arrays = task.sample_trial_params(task.rng, 3)
    x, y, mask = task.build_trials(arrays)
    for b, params in enumerate(TrialParams(arrays, 3)):
        for got, want in zip((x[b], y[b], mask[b]), task.generate_trial(params)):
            np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("cls", [PerceptualDiscrimination, DelayedDiscrimination, MatchToCategory])
def test_per_step_path_draws_from_the_given_rng(cls):
    class PerStep(cls):  # forces the per-trial path, which must use the task's Generator
        def trial_function(self, t, params):
            return super().trial_function(t, params)

    first = make(PerStep, N_batch=2).generate_batch(np.random.default_rng(4))
    second = make(PerStep, N_batch=2, seed=1).generate_batch(np.random.default_rng(4))
    assert batches_equal(first, second)


# ------------------------------------------------------------------ accuracy

def test_choice_accuracy_on_hand_made_outputs():
    task = make(PerceptualDiscrimination, N_batch=4)
    y = np.zeros((4, 3, 2))
    y[:, 1:, 0] = [[1.0, 1.0], [1.0, 1.0], [0.2, 0.2], [0.2, 0.2]]
    y[:, 1:, 1] = [[0.2, 0.2], [0.2, 0.2], [1.0, 1.0], [1.0, 1.0]]
    mask = np.zeros_like(y)
    mask[:, 1:] = 1
    output = y.copy()
    output[0] = output[0, :, ::-1]      # trial 0 chooses the wrong channel
    output[1, 0] = [0.0, 50.0]          # a huge value where the mask is 0 does not count
    assert task.accuracy_function(y, output, mask) == 0.75
    networks = np.stack([output, y])    # leading network axis: one accuracy per network
    np.testing.assert_array_equal(task.accuracy_function(y, networks, mask), [0.75, 1.0])



def test_trials_without_a_trained_step_are_not_scored():
    task = make(PerceptualDiscrimination, N_batch=3)
    y = np.zeros((3, 4, 2))
    y[:, :, 1] = 1.0
    mask = np.ones_like(y)
    mask[2] = 0                          # trial 2 trains nothing
    wrong = y[..., ::-1]                 # picks channel 0 on every trial
    assert task.accuracy_function(y, wrong, mask) == 0.0  # PsychRNN's rule gives 1/3 (trial 2 "correct")
    output = wrong.copy()
    output[0] = y[0]
    assert task.accuracy_function(y, output, mask) == 0.5  # 1 of the 2 scored trials
    np.testing.assert_array_equal(task.accuracy_function(y, np.stack([wrong, y]), mask), [0.0, 1.0])
    assert np.isnan(task.accuracy_function(y, y, np.zeros_like(mask)))  # nothing scored


@pytest.mark.parametrize("cls", [DelayedDiscrimination, MatchToCategory, PerceptualDiscrimination])
def test_an_always_wrong_output_scores_zero(cls):
    task = cls(dt=50, tau=100, T=2000, N_batch=400, seed=0)
    x, y, mask, _ = task.get_trial_batch()
    if cls is DelayedDiscrimination:
        assert np.any(mask.sum(axis=(1, 2)) == 0)  # U(0, T/8) decision periods: some trials train no step
    assert task.accuracy_function(y, y[..., ::-1], mask) == 0.0
    assert task.accuracy_function(y, y, mask) == 1.0


# ------------------------------------------------------------------ checkpoints

@pytest.mark.parametrize("cls", [PerceptualDiscrimination, FlipFlop])
def test_state_dict_round_trip_through_json(cls):
    task = make(cls)
    task.get_trial_batch()
    state = json.loads(json.dumps(task.state_dict()))
    expected = [task.get_trial_batch() for _ in range(2)]
    resumed = make(cls, seed=123)
    resumed.load_state_dict(state)
    assert resumed.batch_index == 1
    assert all(batches_equal(resumed.get_trial_batch(), want) for want in expected)
    with pytest.raises(ParameterError, match="did you mean 'batch_index'"):
        resumed.load_state_dict({"rng": state["rng"], "batch_indx": 1})


# ------------------------------------------------------------------ errors

@pytest.mark.parametrize("kwargs, error, text", [
    ({"dt": 0}, ParameterError, "'dt' parameter of PerceptualDiscrimination .* Got 0 instead"),
    ({"tau": -5}, ParameterError, "'tau' parameter .* Got -5 instead"),
    ({"tau": [100, 0]}, ParameterError, "'tau' parameter"),
    ({"T": 5}, ParameterError, "'T' parameter .* at least dt=10 .* Got 5 instead"),
    ({"N_batch": 0}, ParameterError, "'N_batch' parameter .* Got 0 instead"),
    ({"N_batch": 2.5}, ParameterTypeError, "'N_batch' parameter .* integer"),
    ({"dt": "10"}, ParameterTypeError, "'dt' parameter .* Got '10'"),
    ({"direction": 2}, ParameterError, "'direction' parameter .* 0, 1 or None. Got 2"),
    ({"coherence": []}, ParameterError, "'coherence' parameter"),
    ({"coherence": float("nan")}, ParameterError, "'coherence' parameter"),
    ({"seed": -1}, ParameterError, "'seed' parameter .* Got -1"),
    ({"seed": "abc"}, ParameterTypeError, "'seed' parameter .* Got 'abc'"),
])
def test_bad_parameters_are_named(kwargs, error, text):
    arguments = dict(dt=10, tau=100, T=2000, N_batch=4)
    arguments.update(kwargs)
    with pytest.raises(error, match=text):
        PerceptualDiscrimination(**arguments)


def test_other_tasks_validate_their_own_parameters():
    with pytest.raises(ParameterError, match="'delay_duration' parameter of DelayedDiscrimination"):
        make(DelayedDiscrimination, delay_duration=-1)
    with pytest.raises(ParameterError, match="'p_flip' parameter of FlipFlop .* Got 1.5"):
        make(FlipFlop, p_flip=1.5)
    with pytest.raises(ParameterError, match="'N_bits' parameter of FlipFlop"):
        make(FlipFlop, N_bits=0)
    with pytest.raises(ParameterTypeError, match="'N_in' parameter of MatchToCategory"):
        make(MatchToCategory, N_in=None)
    with pytest.raises(ParameterTypeError, match="numpy.random.Generator"):
        make(PerceptualDiscrimination).generate_batch(rng=3)


@pytest.mark.parametrize("array", ["x", "y", "mask"])
def test_nan_in_a_user_task_is_caught_and_named(array):
    with pytest.raises(NonFiniteError, match=f"NaNTask made NaN or inf in {array} .* step 3"):
        NaNTask(array).generate_batch()


def test_wrong_shapes_are_caught():
    class WrongStep(PsychRNNStyleTask):
        def trial_function(self, t, params):
            return np.zeros(3), np.zeros(1), np.zeros(1)

    with pytest.raises(ShapeError, match=r"WrongStep.trial_function returned x_t with shape \(3,\)"):
        WrongStep(10, 100, 100, 2).generate_batch()

    class WrongBatch(Task):
        def sample_trial_params(self, rng, N_batch):
            return {}

        def build_trials(self, params, rng=None):
            return np.zeros((2, 3, 1)), np.zeros((2, 4, 1)), np.zeros((2, 4, 1))

    with pytest.raises(ShapeError, match=r"WrongBatch made x with shape \(2, 3, 1\); .* \(2, 4, 1\)"):
        WrongBatch(1, 1, dt=1, tau=1, T=4, N_batch=2).generate_batch()


def test_base_task_without_definitions_says_what_to_define():
    with pytest.raises(NotImplementedError, match="generate_trial_params"):
        Task(1, 1, 10, 100, 100, 2).generate_batch()
