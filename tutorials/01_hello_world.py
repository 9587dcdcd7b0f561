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
# # 1. Hello world: train a network on perceptual discrimination
#
# The paper's minimal example (Ehrlich et al., eNeuro 2021, Fig. 2): a 50-unit rate RNN learns
# the two-alternative random-dot-motion task. Two noisy inputs; the network must drive the output
# of the channel with the higher mean to 1 and the other to 0.2 after the stimulus ends.
#
# This tutorial claims, and checks at the end:
# * the trained network chooses correctly on **>= 90 %** of new trials;
# * its choices follow a psychometric curve: near perfect at coherence +-0.32, the fitted curve
#   increasing through signed coherence.
#
# Figures go to `$MINIRNN_TUTORIAL_OUTPUT` (default `./tutorial_output`).

# %%
import os
import pathlib

import matplotlib.pyplot as plt
import numpy as np

from minirnn import Basic
from minirnn.analysis import psychometric_from_batch
from minirnn.plotting import plot_psychometric, plot_training, plot_trial
from minirnn.tasks import PerceptualDiscrimination

OUT = pathlib.Path(os.environ.get("MINIRNN_TUTORIAL_OUTPUT", "tutorial_output"))
OUT.mkdir(parents=True, exist_ok=True)

# %% [markdown]
# ## The task and the model
# `get_task_params()` returns a copy of the task's settings (`N_in`, `N_out`, `dt`, `tau`, ...);
# add `N_rec` and it is a model's params dict. Seeds make the run reproducible.

# %%
pd = PerceptualDiscrimination(dt=10, tau=100, T=2000, N_batch=128, seed=1)
network_params = pd.get_task_params()
network_params["name"] = "model"
network_params["N_rec"] = 50
network_params["seed"] = 1
model = Basic(network_params)
model

# %% [markdown]
# ## Train
# PsychRNN's defaults: Adam, learning rate 1e-3, gradients clipped to norm 1, 50 000 trials
# (391 updates of 128 trials). `model.history` keeps the loss of every update.

# %%
losses, training_time, initialization_time = model.train(pd, {"verbosity": False})
print(f"{len(model.history['loss'])} updates in {training_time:.1f} s")

# %% [markdown]
# ## Test on new trials
# `model.test(x)` runs any batch; `pd.accuracy_function` is PsychRNN's rule: the output channel
# with the larger mean over the response period is the choice.

# %%
x, y, mask, trial_params = pd.get_trial_batch()
outputs, states = model.test(x)
accuracy = np.mean([pd.accuracy_function(y, outputs, mask)] +
                   [pd.accuracy_function(yb, model.test(xb)[0], mb)
                    for xb, yb, mb, _ in (pd.get_trial_batch() for _ in range(3))])
print(f"accuracy on 512 new trials: {accuracy:.3f}")

fig = plot_trial(x, y, outputs, mask, trial=0, dt=pd.dt, title="a test trial (Fig. 2A)")
fig.savefig(OUT / "01_trial.png", dpi=100)

fig = plot_training(history=model.history)  # losses, and accuracy at the updates it was measured
fig.savefig(OUT / "01_training.png", dpi=100)

# %% [markdown]
# ## Psychometric curve (Fig. 2B)
# Choice probability against signed coherence on 1000 new trials, with a fitted logistic
# function with lapse rates. The network trained on coherences 0.1-0.7; the test also uses weaker
# ones (a coherence list is drawn from uniformly), where the choices become graded.

# %%
big = PerceptualDiscrimination(dt=10, tau=100, T=2000, N_batch=1000, seed=2,
                               coherence=[0.005, 0.01, 0.02, 0.04, 0.08, 0.16, 0.32])
xb, yb, mb, tpb = big.get_trial_batch()
ob, _ = model.test(xb)
fit = psychometric_from_batch(ob, mb, tpb)
fig = plot_psychometric(fit)
fig.savefig(OUT / "01_psychometric.png", dpi=100)
print(fit.params)
plt.close("all")

# %% [markdown]
# ## The claims

# %%
assert accuracy >= 0.9, accuracy
levels, p = np.asarray(fit.levels), np.asarray(fit.p)
assert p[np.argmax(levels)] >= 0.95 and p[np.argmin(levels)] <= 0.05, (levels, p)  # |coh| = 0.32
assert fit.predict(np.array([levels.min()]))[0] < 0.5 < fit.predict(np.array([levels.max()]))[0]
CLAIMS_CHECKED = True
