# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Assignment 5 — A new task, vectorised over the batch
#
# **You rebuild:** a task like `minirnn/tasks/perceptual_discrimination.py` (read its
# `sample_trial_params` and `build_trials` afterwards).
#
# The PsychRNN paper (Ehrlich et al., eNeuro 2021) defines a new task, `SimplePD`, in a few lines
# (docs/notebooks/NewTask.ipynb): a perceptual discrimination — which of two noisy inputs is larger?
# PsychRNN asks for a function of one time step of one trial:
#
# ```python
# def trial_function(self, time, params):
#     stim_noise, onset, stim_dur = 0.1, self.T / 4.0, self.T / 2.0
#     x_t = np.sqrt(2 * self.alpha * stim_noise * stim_noise) * np.random.randn(self.N_in)
#     y_t = np.zeros(self.N_out)
#     mask_t = np.ones(self.N_out)
#     if onset < time < onset + stim_dur:
#         x_t[direction] += 1 + coh
#         x_t[(direction + 1) % 2] += 1
#     if time > onset + stim_dur + 20:
#         y_t[direction] = 1.
#     if time < onset + stim_dur:
#         mask_t = np.zeros(self.N_out)
#     return x_t, y_t, mask_t
# ```
#
# with `coherence ~ Exponential(scale 1/5)` and `direction` 0 or 1 per trial. Called for every step
# of every trial, that is `N_batch * N_steps` Python calls per batch. minirnn's tasks instead build
# the whole batch `(N_batch, N_steps, channels)` at once, with broadcasting: one array of times
# `t = k * dt`, one `(N_batch,)` array per trial parameter, and boolean periods such as
# `stimulus = (onset < t) & (t < onset + dur)`. A `Task` subclass that defines
# `sample_trial_params(rng, N_batch)` and `build_trials(params, rng)` gets `generate_batch`,
# `batch_generator` and everything else from the base class.

# %%
import os
import time

import matplotlib.pyplot as plt
import numpy as np

from minirnn import Basic
from minirnn.analysis import choices_from_outputs, fit_psychometric
from minirnn.course import grade
from minirnn.tasks import Task
from minirnn.tasks.task import choice_accuracy

FAST = os.environ.get("MINIRNN_FAST") == "1"  # automatic runs: a short training, no accuracy target

# %% [markdown]
# ## Exercise 5.1 and 5.2 — SimplePD, vectorised
#
# * `sample_trial_params(rng, N_batch)`: a dict of `(N_batch,)` arrays, `coherence` (exponential,
#   mean 1/5) and `direction` (0 or 1, equally likely). Draw only from `rng`.
# * `build_trials(params, rng)`: `(x, y, mask)`, each `(B, N_steps, 2)` with `B = len(direction)`.
#   Draw the noise **first**, in one call `rng.standard_normal((B, self.N_steps, 2))`, so the grader
#   can reproduce it. `self.N_steps`, `self.dt`, `self.T` and `self.alpha` come from `Task`.

# %%
class SimplePD(Task):
    """PsychRNN's SimplePD: which of two noisy inputs is larger? (N_in = N_out = 2)"""

    def __init__(self, dt, tau, T, N_batch, seed=None):
        super().__init__(2, 2, dt, tau, T, N_batch, seed=seed)

    def sample_trial_params(self, rng, N_batch):
        ### BEGIN SOLUTION hint: rng.exponential(scale=..., size=N_batch) and rng.integers(0, 2, size=N_batch)
        return {"coherence": rng.exponential(scale=1 / 5, size=N_batch),
                "direction": rng.integers(0, 2, size=N_batch)}
        ### END SOLUTION

    def build_trials(self, params, rng=None):
        rng = self.rng if rng is None else rng
        ### BEGIN SOLUTION hint: t = np.arange(self.N_steps) * self.dt; periods are (N_steps,) booleans; one-hot chosen = direction[:, None] == np.arange(2); combine with [None, :, None] and [:, None, :]
        B = len(params["direction"])
        t = np.arange(self.N_steps) * self.dt                        # (N_steps,)
        onset, end = self.T / 4.0, self.T / 4.0 + self.T / 2.0
        stimulus = (onset < t) & (t < end)                           # (N_steps,)
        decision = t > end + 20                                      # target on
        trained = t >= end                                           # mask on (the gap is trained to 0)
        chosen = params["direction"][:, None] == np.arange(2)        # (B, 2) one-hot
        x = np.sqrt(2 * self.alpha * 0.1**2) * rng.standard_normal((B, self.N_steps, 2))
        evidence = 1 + params["coherence"][:, None] * chosen         # (B, 2): 1 + coh, 1
        x += stimulus[None, :, None] * evidence[:, None, :]          # (B, N_steps, 2)
        y = decision[None, :, None] * chosen[:, None, :].astype(float)
        mask = np.broadcast_to(trained[None, :, None], x.shape).astype(float)
        return x, y, mask
        ### END SOLUTION

    def accuracy_function(self, correct_output, test_output, output_mask):
        """PsychRNN's rule: the channel with the larger masked mean output is the choice."""
        return choice_accuracy(correct_output, test_output, output_mask)


# %%
r_sample = grade.simplepd_sample(SimplePD)
r_build = grade.simplepd_build(SimplePD)
task_ok = r_sample.passed and r_build.passed

# %% [markdown]
# ### Look at one batch
#
# The inputs of a trial, its target and its mask. Note how the mask switches on at the end of the
# stimulus, 20 ms before the target: the network is trained to stay at 0 during that gap.

# %%
if task_ok:
    pd = SimplePD(dt=10, tau=100, T=2000, N_batch=128, seed=1)
    x, y, mask, trial_params = pd.get_trial_batch()
    t = np.arange(pd.N_steps) * pd.dt
    fig, ax = plt.subplots(1, 3, figsize=(10, 2.5), sharex=True)
    for a, (arr, title) in zip(ax, ((x, "x"), (y, "y"), (mask, "mask"))):
        a.plot(t, arr[0]); a.set_title(f"{title} (trial 0)"); a.set_xlabel("t (ms)")
    plt.tight_layout()
    # the vectorised batch is fast: time it
    start = time.perf_counter()
    for _ in range(10):
        pd.generate_batch(np.random.default_rng(0))
    print(f"one batch of {pd.N_batch} trials x {pd.N_steps} steps: {(time.perf_counter() - start) / 10 * 1e3:.1f} ms")
else:
    print("The rest of this notebook runs once SimplePD passes its graders.")

# %% [markdown]
# ## Train a network on it
#
# The paper's settings: `dt=10, tau=100, T=2000, N_batch=128`, 50 recurrent units, Adam. 20,000
# trials (157 updates) reach an accuracy above 0.85 on fresh trials in about 10-25 s on a laptop.

# %%
if task_ok:
    T = 1000 if FAST else 2000
    pd = SimplePD(dt=10, tau=100, T=T, N_batch=64 if FAST else 128, seed=1)
    params = pd.get_task_params()
    params.update(N_rec=50, seed=1)
    if FAST:
        params["backend"] = "numpy"  # no Numba compilation in quick automatic runs
    model = Basic(params)
    start = time.perf_counter()
    losses, _, _ = model.train(pd, {"training_iters": 64 * 15 if FAST else 20000, "verbosity": False})
    print(f"trained in {time.perf_counter() - start:.1f} s; loss {losses[0]:.4f} -> {losses[-1]:.4f}")

    test_task = SimplePD(dt=10, tau=100, T=T, N_batch=1000, seed=123)   # fresh trials
    x, y, mask, trial_params = test_task.get_trial_batch()
    output, states = model.test(x)
    accuracy = test_task.accuracy_function(y, output, mask)
    print(f"accuracy on 1000 fresh trials: {accuracy:.3f}")
    if not FAST:
        assert accuracy >= 0.85

# %% [markdown]
# ## Exercise 5.3 — the psychometric curve
#
# Sign the coherence by direction (`+coh` when direction is 1, `-coh` when it is 0). The
# psychometric curve is the fraction of "1" choices at each signed coherence. Write
# `choice_fractions`: the sorted distinct values of `signed_coherence`, and at each the fraction of
# `choices == 1`. (minirnn's version: `minirnn.analysis.choice_probability`.)

# %%
def choice_fractions(signed_coherence, choices):
    """(levels (L,), p (L,)): sorted distinct signed coherences and the fraction of choices == 1 at each."""
    ### BEGIN SOLUTION hint: np.unique(signed_coherence, return_inverse=True), then average (choices == 1) per level (np.bincount with weights)
    levels, which = np.unique(signed_coherence, return_inverse=True)
    p = np.bincount(which, weights=(np.asarray(choices) == 1)) / np.bincount(which)
    return levels, p
    ### END SOLUTION


# %%
r_frac = grade.choice_fractions(choice_fractions)

# %% [markdown]
# Now a test batch on a grid of coherences. Thanks to the vectorised design, we sample trial
# parameters, overwrite the coherence, and build the batch ourselves.

# %%
if task_ok and r_frac.passed:
    grid = np.array([0.0, 0.005, 0.01, 0.02, 0.04, 0.1])
    test_rng = np.random.default_rng(7)
    n = 600 if FAST else 2400
    params = test_task.sample_trial_params(test_rng, n)
    params["coherence"] = grid[np.arange(n) % len(grid)]
    x, y, mask = test_task.build_trials(params, test_rng)
    output, _ = model.test(x)
    choices = choices_from_outputs(output, mask)                     # argmax of the masked mean
    signed = np.where(params["direction"] == 1, 1, -1) * params["coherence"]
    levels, p = choice_fractions(signed, choices)
    for s, q in zip(levels, p):
        print(f"signed coherence {s:+.3f}: P(choose 1) = {q:.2f}")
    fit = fit_psychometric(signed, choices)
    print("fitted:", {k: round(float(v), 4) for k, v in fit.params.items()})
    xs = np.linspace(levels.min(), levels.max(), 200)
    plt.figure(figsize=(4, 3))
    plt.plot(levels, p, "o", label="network")
    plt.plot(xs, fit.predict(xs), label="logistic fit")
    plt.xlabel("signed coherence"); plt.ylabel("P(choose 1)"); plt.legend(); plt.tight_layout()
    if not FAST:
        assert p[0] < 0.15 and p[-1] > 0.85, "the strongest coherences should be almost always right"

# %% [markdown]
# ## To think about
#
# * Time `PsychRNN`-style per-step batch generation (a loop calling a `trial_function`) against
#   yours for `N_batch=128`: how large is the factor?
# * Which coherence gives 75% correct? How does it change with `stim_noise` or the stimulus length?
