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
# # Assignment 4 — Optimizers from scratch: SGD, momentum, Adam
#
# **You rebuild:** `minirnn/nn/optimizers.py`.
#
# An optimizer turns a gradient into an update. Here, as in minirnn, it never touches the weights:
# `compute_update(grads)` takes a dict `{name: gradient}` and returns `{name: delta}`; the trainer
# then does `W -= delta` (masking fixed entries, assignment 3). State (momentum, Adam's moments) is
# kept per parameter **name**, inside the optimizer.
#
# minirnn follows TensorFlow 1's equations, so its runs can be compared with PsychRNN's:
#
# | | state update | delta |
# |---|---|---|
# | SGD | — | $\eta\, g$ |
# | Momentum | $a \leftarrow \mu a + g$ | $\eta\, a$ |
# | Adam | $m \leftarrow \beta_1 m + (1-\beta_1) g$, $v \leftarrow \beta_2 v + (1-\beta_2) g^2$, $t \leftarrow t + 1$ | $\eta_t\, m / (\sqrt{v} + \epsilon)$, $\eta_t = \eta \sqrt{1-\beta_2^t} / (1-\beta_1^t)$ |
#
# Adam (Kingma & Ba 2015) starts `m` and `v` at zero, so early on they are biased towards 0; the
# factor in $\eta_t$ is the **bias correction**. TF1 folds it into the step size, so its
# $\epsilon$ is the paper's "epsilon hat" (added to $\sqrt{v}$, not to $\sqrt{\hat v}$).

# %%
import os

import matplotlib.pyplot as plt
import numpy as np

from minirnn import Basic
from minirnn.course import grade
from minirnn.nn import optimizers
from minirnn.tasks import PerceptualDiscrimination

FAST = os.environ.get("MINIRNN_FAST") == "1"

# %% [markdown]
# ## Exercise 4.1 — SGD and momentum

# %%
class SGD:
    """delta = learning_rate * g."""

    def __init__(self, learning_rate=1e-3):
        self.learning_rate = learning_rate

    def compute_update(self, grads):
        """{name: gradient} -> {name: delta}."""
        ### BEGIN SOLUTION hint: a dict comprehension over grads.items()
        return {name: self.learning_rate * g for name, g in grads.items()}
        ### END SOLUTION


class Momentum:
    """TF1's momentum: a = momentum * a + g; delta = learning_rate * a (a starts at 0, one per name)."""

    def __init__(self, learning_rate=1e-3, momentum=0.9):
        self.learning_rate, self.momentum = learning_rate, momentum
        self.a = {}                                                  # accumulator per parameter name

    def compute_update(self, grads):
        ### BEGIN SOLUTION hint: self.a.get(name, 0) for the first update; store the new accumulator back in self.a[name]
        deltas = {}
        for name, g in grads.items():
            self.a[name] = self.momentum * self.a.get(name, 0.0) + g
            deltas[name] = self.learning_rate * self.a[name]
        return deltas
        ### END SOLUTION


# %%
r_sgd = grade.sgd(SGD)
r_mom = grade.momentum(Momentum)

# %% [markdown]
# ## Exercise 4.2 — Adam, TF1's form
#
# Keep `m`, `v` per parameter name and one step counter `t` for the optimizer (it counts updates,
# starting at 1 on the first one).

# %%
class Adam:
    """Adam as TF1 computes it (see the table above)."""

    def __init__(self, learning_rate=1e-3, beta1=0.9, beta2=0.999, epsilon=1e-8):
        self.learning_rate, self.beta1, self.beta2, self.epsilon = learning_rate, beta1, beta2, epsilon
        self.m, self.v, self.t = {}, {}, 0

    def compute_update(self, grads):
        ### BEGIN SOLUTION hint: t += 1 once per call; update m and v per name; lr_t = lr * sqrt(1 - beta2**t) / (1 - beta1**t); delta = lr_t * m / (sqrt(v) + epsilon)
        self.t += 1
        lr_t = self.learning_rate * np.sqrt(1 - self.beta2**self.t) / (1 - self.beta1**self.t)
        deltas = {}
        for name, g in grads.items():
            self.m[name] = self.beta1 * self.m.get(name, 0.0) + (1 - self.beta1) * g
            self.v[name] = self.beta2 * self.v.get(name, 0.0) + (1 - self.beta2) * g * g
            deltas[name] = lr_t * self.m[name] / (np.sqrt(self.v[name]) + self.epsilon)
        return deltas
        ### END SOLUTION


# %%
r_adam = grade.adam(Adam)

# %% [markdown]
# ## Check — train a small RNN with your optimizers, update by update against minirnn's
#
# Two identical networks (float64, same seed) see the same batches; one is updated by your
# optimizer, the other by minirnn's. After every update their weights must agree to round-off.
# (No gradient clipping here, so the comparison is exact.)

# %%
def train_by_hand(optimizer, n_updates):
    task = PerceptualDiscrimination(dt=10, tau=100, T=500, N_batch=32, seed=2)
    params = task.get_task_params()
    params.update(N_rec=12, seed=5, dtype="float64", backend="numpy")
    model = Basic(params)
    losses, weights = [], []
    for _ in range(n_updates):
        x, y, mask, _ = task.get_trial_batch()
        loss, grads = model.loss_and_grads(x, y, mask)
        for name, delta in optimizer.compute_update(grads).items():
            model.raw[name] -= delta
        losses.append(loss)
        weights.append(model.raw["W_rec"].copy())
    return np.array(losses), weights


n_updates = 15 if FAST else 60
pairs = [("SGD", r_sgd, lambda: SGD(0.05), lambda: optimizers.SGD(0.05)),
         ("Momentum", r_mom, lambda: Momentum(0.01, 0.9), lambda: optimizers.Momentum(0.01, 0.9)),
         ("Adam", r_adam, lambda: Adam(0.01), lambda: optimizers.Adam(0.01))]
curves = {}
for name, result, mine, theirs in pairs:
    if not result.passed:
        print(f"{name}: runs once your {name} passes its grader.")
        continue
    l_mine, w_mine = train_by_hand(mine(), n_updates)
    l_ref, w_ref = train_by_hand(theirs(), n_updates)
    worst = max(np.abs(a - b).max() for a, b in zip(w_mine, w_ref))
    print(f"{name:8s} loss {l_mine[0]:.4f} -> {l_mine[-1]:.4f}; max |W_rec yours - minirnn's| over "
          f"{n_updates} updates = {worst:.1e}")
    assert worst < 1e-9
    curves[name] = l_mine

if curves:
    plt.figure(figsize=(5, 3))
    for name, losses in curves.items():
        plt.semilogy(losses, label=name)
    plt.xlabel("update"); plt.ylabel("loss"); plt.legend(); plt.tight_layout()

# %% [markdown]
# ## To think about
#
# * Run your Adam without the bias correction on the first few updates: how big is the first step
#   compared with the corrected one, and why?
# * minirnn's Adam keeps `beta1^t` as a running product (like TF1's `beta1_power`) rather than
#   computing `beta1 ** t`. When would the two differ? (Hint: an ensemble where some networks
#   stop training early, `active` in `compute_update`.)
