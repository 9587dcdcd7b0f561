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
# # 9. Fixed points
#
# A trained network computes with its dynamics. Fixed points `x* = F(x*, u)` of the Euler map at a
# constant input `u`, and the linearisation around them, show how (Sussillo & Barak 2013).
# `find_fixed_points` minimises `q(x) = 1/2 |F(x, u) - x|^2` from many states sampled from the
# network's own trajectories (L-BFGS, then Newton with the analytic Jacobian
# `(1 - alpha) I + alpha W_rec diag(f'(x))`), removes duplicates and classifies stability from the
# Jacobian's eigenvalues. `continue_fixed_points` tracks them while the input changes.
#
# 1. **3-bit flip-flop** (the classic check): a 16-unit tanh network that remembers three bits.
# 2. **Perceptual discrimination**: fixed points under a constant stimulus, tracked as the
#    coherence grows (a bifurcation diagram), and trajectories in PC space.
#
# Claims, checked at the end:
# * the flip-flop network has **exactly 8 stable fixed points**, one per corner of the output cube
#   `{-1, 1}^3`, plus saddles, all with `q < 1e-20`;
# * for the discrimination network, along a constant stimulus of growing coherence a stable fixed
#   point exists at every step, and at the strongest stimulus of either direction the stable point
#   reads out the correct choice.

# %%
import itertools
import os
import pathlib

import matplotlib.pyplot as plt
import numpy as np

from minirnn import Basic
from minirnn.analysis import condition_average, continue_fixed_points, find_fixed_points, pca
from minirnn.plotting import plot_pc_trajectories
from minirnn.tasks import FlipFlop, PerceptualDiscrimination

OUT = pathlib.Path(os.environ.get("MINIRNN_TUTORIAL_OUTPUT", "tutorial_output"))
OUT.mkdir(parents=True, exist_ok=True)

# %% [markdown]
# ## 1. The 3-bit flip-flop
# Each input channel sends occasional +1 / -1 pulses; the matching output must hold the sign of
# the last pulse. 1000 updates of 128 trials with learning rate 0.01.

# %%
flipflop = FlipFlop(dt=10, tau=50, T=500, N_batch=128, N_bits=3, p_flip=0.05, seed=0)
ff_model = Basic(dict(flipflop.get_task_params(), N_rec=16, transfer_function="tanh", seed=0))
ff_model.train(flipflop, {"training_iters": 128 * 1000, "learning_rate": 1e-2, "verbosity": False})
x, y, mask, _ = flipflop.get_trial_batch()
z, states = ff_model.test(x)
sign_accuracy = float(np.mean((np.sign(z) == np.sign(y))[mask > 0]))
print(f"sign accuracy {sign_accuracy:.3f}")

# %% [markdown]
# Search from 1024 states sampled along the trajectories (plus noise, to find saddles off them),
# at zero input (between pulses).

# %%
fps = find_fixed_points(ff_model, states, n_inits=1024, noise_scale=0.5, seed=0, tol_unique=1e-3)
W = ff_model.get_weights()
stable = fps[fps.stable]
corners = np.sign(np.tanh(stable.xstar) @ W["W_out"].T + W["b_out"]).astype(int)
print(fps, "\nstable points read out:", sorted(tuple(int(v) for v in c) for c in corners))
print("unstable modes of the others:", np.bincount(fps.n_unstable[~fps.stable]))

fig = plot_pc_trajectories(states[:8], fixed_points=fps, n_dims=3)
fig.suptitle("3-bit flip-flop: 8 trials and the fixed points (filled: stable)")
fig.savefig(OUT / "09_flipflop_fixed_points.png", dpi=100)

# %% [markdown]
# ## 2. Perceptual discrimination
# During the stimulus the inputs are `1 + coherence` (chosen channel) and `1` (the other); after it,
# both are 0. The input path goes from `(1, 1)` (no evidence) to `(1.7, 1)` (coherence 0.7 for
# choice 0), and the same towards choice 1.

# %%
pd = PerceptualDiscrimination(dt=10, tau=100, T=1000, N_batch=64, seed=1)
pd_model = Basic(dict(pd.get_task_params(), N_rec=50, seed=3))
pd_model.train(pd, {"training_iters": 50000, "verbosity": False})
test = PerceptualDiscrimination(dt=10, tau=100, T=1000, N_batch=512, seed=2)
x, y, mask, trial_params = test.get_trial_batch()
outputs, states = pd_model.test(x)
print("accuracy:", test.accuracy_function(y, outputs, mask))
W = pd_model.get_weights()


def readout(xstar):
    return np.maximum(xstar, 0) @ W["W_out"].T + W["b_out"]  # relu network


coherences = np.linspace(0, 0.7, 36)
paths, at_strongest = {}, {}
for choice in (0, 1):
    path = np.ones((coherences.size, 2))
    path[:, choice] += coherences
    start = find_fixed_points(pd_model, states, path[0], n_inits=256, noise_scale=0.5, seed=0, tol_unique=1e-3)
    paths[choice] = continue_fixed_points(pd_model, start, path)
    end = find_fixed_points(pd_model, states, path[-1], n_inits=256, noise_scale=0.5, seed=0, tol_unique=1e-3)
    at_strongest[choice] = np.argmax(readout(end.xstar[end.stable]), axis=1)
    print(f"towards choice {choice}: {len(start)} fixed points at coherence 0 ({int(start.stable.sum())} stable); "
          f"stable points at coherence 0.7 choose {at_strongest[choice].tolist()}")

# %% [markdown]
# The bifurcation diagram: the readout difference `z_0 - z_1` of every tracked branch against
# signed coherence (positive: evidence for choice 0). Solid: stable; dotted: unstable. A trained
# network typically has two stable points (one per choice) and a saddle at zero coherence, which
# merge as the evidence grows (a saddle-node bifurcation), leaving the correct choice.

# %%
fig, ax = plt.subplots(figsize=(6, 4.5), layout="constrained")
for choice, sign in ((0, 1), (1, -1)):
    fp = paths[choice]
    for j in range(fp.xstar.shape[1]):
        z_j = np.array([readout(fp.xstar[s, j]) if fp.found[s, j] else [np.nan, np.nan]
                        for s in range(coherences.size)])
        diff = z_j[:, 0] - z_j[:, 1]
        ax.plot(sign * coherences, np.where(fp.stable[:, j], diff, np.nan), "k-", lw=2)
        ax.plot(sign * coherences, np.where(fp.found[:, j] & ~fp.stable[:, j], diff, np.nan), "k:", lw=1.5)
ax.set_xlabel("signed coherence (+: evidence for choice 0)")
ax.set_ylabel("readout z0 - z1 at the fixed point")
ax.set_title("fixed points along the stimulus (solid: stable)")
fig.savefig(OUT / "09_pd_continuation.png", dpi=100)

# %% [markdown]
# Condition-averaged trajectories (correct trials, by signed coherence) in the space of their first
# two principal components, with the fixed points of the response period (zero input).

# %%
signed = np.where(np.asarray(trial_params["direction"]) == 0, 1, -1) * np.asarray(trial_params["coherence"])
correct = np.argmax((outputs * mask).mean(axis=1), axis=1) == np.asarray(trial_params["direction"])
labels, means, _ = condition_average(states, signed, correct)
decision_fps = find_fixed_points(pd_model, states, np.zeros(2), n_inits=256, noise_scale=0.5, seed=0,
                                 tol_unique=1e-3)
fig = plot_pc_trajectories(means, pca=pca(means, 3), fixed_points=decision_fps, labels=labels)
fig.suptitle("PD: mean trajectories by signed coherence,\nfixed points at zero input")
fig.savefig(OUT / "09_pd_trajectories.png", dpi=100)
plt.close("all")

# %% [markdown]
# ## The claims

# %%
assert sign_accuracy > 0.95, sign_accuracy
assert len(stable) == 8 and set(map(tuple, corners)) == set(itertools.product([-1, 1], repeat=3)), corners
assert len(fps) > 8 and np.all(fps.n_unstable[~fps.stable] >= 1) and fps.q.max() < 1e-20
for choice in (0, 1):
    assert np.all(paths[choice].stable.any(axis=1)), f"no stable branch somewhere towards choice {choice}"
    assert at_strongest[choice].size >= 1 and np.all(at_strongest[choice] == choice), at_strongest
CLAIMS_CHECKED = True
