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
# # 6. The simulator and perturbations
#
# A trained network is an experimental animal: `BasicSimulator` runs it in NumPy with the same
# forward code that trained it, and `Perturbation` describes interventions over time windows
# (silence or clamp units, inject current, lesion connections, change noise), composable, for any
# batch size.
#
# Experiment: in a Dale network trained on perceptual discrimination, find the excitatory units
# that push the output towards choice 0 (the "choice-0 population"), and silence them from
# before stimulus onset to the end of the trial. Then, instead, inject a small current into the
# choice-1 population. Test trials use weak coherences (0.01-0.32), where choices are graded.
#
# Claims, checked at the end:
# * the simulator reproduces `model.test` **bit for bit** (noise off);
# * a silenced unit's rate is **exactly 0** inside the window and untouched before it;
# * silencing the choice-0 population drops correct choices on direction-0 trials by **>= 30
#   points** while direction-1 trials stay **>= 90 %** correct;
# * injecting current into the choice-1 population shifts the psychometric curve towards choice 1.

# %%
import os
import pathlib

import matplotlib.pyplot as plt
import numpy as np

from minirnn import Basic, BasicSimulator, Perturbation
from minirnn.analysis import choices_from_outputs, psychometric_from_batch
from minirnn.plotting import plot_psychometric, plot_trial
from minirnn.tasks import PerceptualDiscrimination

OUT = pathlib.Path(os.environ.get("MINIRNN_TUTORIAL_OUTPUT", "tutorial_output"))
OUT.mkdir(parents=True, exist_ok=True)

# %% [markdown]
# ## A trained network

# %%
pd = PerceptualDiscrimination(dt=10, tau=100, T=1000, N_batch=64, seed=1)
model = Basic(dict(pd.get_task_params(), N_rec=50, dale_ratio=0.8, seed=1))
model.train(pd, {"training_iters": 50000, "verbosity": False})
n_exc = int(0.8 * model.N_rec)

# %% [markdown]
# ## Simulator = model, bit for bit

# %%
simulator = BasicSimulator(rnn_model=model)
test_task = PerceptualDiscrimination(dt=10, tau=100, T=1000, N_batch=512, seed=2,
                                     coherence=[0.01, 0.02, 0.04, 0.08, 0.16, 0.32])  # graded choices
x, y, mask, trial_params = test_task.get_trial_batch()
outputs, states = simulator.run_trials(x)
same_as_model = all(np.array_equal(a, b) for a, b in zip((outputs, states), model.test(x)))
print("simulator == model.test:", same_as_model)

# %% [markdown]
# ## Choice populations
# Only excitatory units project to the outputs. A unit's preference is the difference of its two
# output weights. The choice-0 population: the 3 units with the strongest preference for choice 0;
# the choice-1 population: the 10 with the strongest preference for choice 1.

# %%
W_out = model.get_weights()["W_out"]
preference = W_out[0, :n_exc] - W_out[1, :n_exc]
order = np.argsort(preference)
pop1, pop0 = order[:10], order[-3:]
print("choice-0 population:", sorted(pop0.tolist()), " choice-1 population:", sorted(pop1.tolist()))

# %% [markdown]
# ## Silence the choice-0 population
# Windows are in ms because the Perturbation has a `dt`. A perturbation applies to every trial of
# the batch, so it starts at 100 ms (before almost every stimulus onset) and lasts to the end.

# %%
t_on = 100
silence = Perturbation(N_steps=test_task.N_steps, N_rec=model.N_rec, dt=test_task.dt).silence(pop0, t_start=t_on)
outputs_s, states_s = simulator.run_trials(x, perturbation=silence)
k_on = int(t_on / test_task.dt)
rates_s = np.maximum(states_s, 0)  # relu
zero_inside = bool(np.all(rates_s[:, k_on:, pop0] == 0))
# Compared with a run under an empty Perturbation: a perturbed run takes the NumPy reference's time
# loop, whose matrix products may sum in another order than the compiled kernel's, so only the same
# code path is comparable bit for bit.
no_change = Perturbation(N_steps=test_task.N_steps, N_rec=model.N_rec, dt=test_task.dt)
_, states_0 = simulator.run_trials(x, perturbation=no_change)
untouched_before = bool(np.array_equal(states_s[:, :k_on], states_0[:, :k_on]))

direction = np.asarray(trial_params["direction"])
choice, choice_s = choices_from_outputs(outputs, mask), choices_from_outputs(outputs_s, mask)
correct = {d: float(np.mean(choice[direction == d] == d)) for d in (0, 1)}
correct_s = {d: float(np.mean(choice_s[direction == d] == d)) for d in (0, 1)}
print("correct, control:", correct, " silenced:", correct_s)

# %% [markdown]
# ## Inject current into the choice-1 population
# `inject(units, amount)` adds to their drive (the units of `W_in u + b_rec`).

# %%
inject = Perturbation(N_steps=test_task.N_steps, N_rec=model.N_rec, dt=test_task.dt).inject(pop1, 0.01, t_start=t_on)
outputs_i, _ = simulator.run_trials(x, perturbation=inject)
fit = psychometric_from_batch(outputs, mask, trial_params, ci=None)
fit_s = psychometric_from_batch(outputs_s, mask, trial_params, ci=None)
fit_i = psychometric_from_batch(outputs_i, mask, trial_params, ci=None)
p1 = {name: float(np.mean(choices_from_outputs(o, mask) == 1)) for name, o in
      (("control", outputs), ("silence choice-0", outputs_s), ("inject choice-1", outputs_i))}
print("P(choice 1):", p1)

# %% [markdown]
# ## Figures

# %%
fig, ax = plt.subplots(figsize=(6.5, 6), layout="constrained")
for f, color, label in ((fit, "k", "control"), (fit_s, "tab:red", "silence choice-0 population"),
                        (fit_i, "tab:blue", "inject into choice-1 population")):
    plot_psychometric(f, ax=ax, color=color, label=label)
ax.legend(fontsize="x-small", frameon=False, loc="upper center", bbox_to_anchor=(0.5, -0.12), ncol=2)
fig.savefig(OUT / "06_psychometric_perturbed.png", dpi=100)

trial = int(np.flatnonzero((direction == 0) & (choice == 0) & (choice_s == 1))[0]) if np.any(
    (direction == 0) & (choice == 0) & (choice_s == 1)) else 0
fig, axes = plt.subplots(2, 2, figsize=(12, 5), layout="constrained", sharex=True)
plot_trial(x, y, outputs, mask, trial=trial, dt=test_task.dt, ax=axes[:, 0])
plot_trial(x, y, outputs_s, mask, trial=trial, dt=test_task.dt, ax=axes[:, 1])
axes[0, 0].set_title("control")
axes[0, 1].set_title(f"choice-0 population silenced from {t_on} ms")
fig.savefig(OUT / "06_trial_silenced.png", dpi=100)
plt.close("all")

# %% [markdown]
# ## The claims

# %%
assert same_as_model
assert zero_inside and untouched_before
assert correct[0] - correct_s[0] >= 0.3 and correct_s[1] >= 0.9, (correct, correct_s)
assert p1["inject choice-1"] > p1["control"] and fit_i.params["mu"] < fit.params["mu"], (p1, fit_i.params, fit.params)
CLAIMS_CHECKED = True
