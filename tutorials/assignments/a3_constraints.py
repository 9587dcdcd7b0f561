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
# # Assignment 3 — Biological constraints: masks, autapses, Dale's principle, fixed weights
#
# **You rebuild:** `minirnn/nn/constraints.py`, and the fixed-weight rule of
# `minirnn/train/trainer.py`.
#
# The network never uses its raw parameter `W` directly. It uses an **effective** weight:
#
# * a connectivity mask `M` (0/1, same shape as `W`) removes connections: $W_\text{eff} = W \odot M$;
# * no autapses (`autapses=False`): the recurrent mask has a zero diagonal (no $i \to i$ synapse);
# * **Dale's principle**: each unit is excitatory (E) or inhibitory (I) for *all* its outgoing
#   synapses. A weight `W[i, j]` goes from presynaptic `j` to postsynaptic `i` (weights are
#   `(post, pre)`), so the sign belongs to the **column** `j`:
#   $W_\text{eff} = |W \odot M| \cdot s$ with $s_j = +1$ (E) or $-1$ (I), broadcast over rows —
#   PsychRNN's `|W ⊙ M| @ D` with `D = diag(s)`.
#
# Training updates the raw `W`, so the gradient must go back through these maps (the adjoint).
# Finally, `fixed_weights` marks entries that training must never change.

# %%
import os

import numpy as np

from minirnn import Basic
from minirnn.course import grade, rel_error
from minirnn.tasks import PerceptualDiscrimination

FAST = os.environ.get("MINIRNN_FAST") == "1"
rng = np.random.default_rng(0)

# %% [markdown]
# ## Exercise 3.1 — effective weights
#
# `sign` is `None` (no Dale) or an array of shape `(1, N_pre)` — one sign per presynaptic unit.

# %%
def effective_weight(W, mask, sign=None):
    """``W ⊙ M`` without Dale; ``|W ⊙ M| * s`` with Dale (s over the columns). W, mask: (post, pre)."""
    ### BEGIN SOLUTION hint: mask first; under Dale take the absolute value, then multiply by sign (shape (1, pre) broadcasts over rows)
    WM = W * mask
    return WM if sign is None else np.abs(WM) * sign
    ### END SOLUTION


# %%
r_eff = grade.effective_weight(effective_weight)

# %% [markdown]
# ## Exercise 3.2 — the adjoint
#
# Given $\partial L/\partial W_\text{eff}$, return $\partial L/\partial W$. Use
# $d|w|/dw = \mathrm{sign}(w)$, with $\mathrm{sign}(0) = 0$ (`np.sign` does that, as TensorFlow does).

# %%
def effective_weight_backward(dW_eff, W, mask, sign=None):
    """dL/dW from dL/dW_eff, for ``effective_weight(W, mask, sign)``."""
    ### BEGIN SOLUTION hint: no Dale, only the mask lets the gradient through; with Dale, chain rule through |.| (np.sign) and the sign vector too
    if sign is None:
        return dW_eff * mask                                         # d(W ⊙ M)/dW = M
    return dW_eff * sign * np.sign(W * mask) * mask                  # d|W ⊙ M|/dW = sign(W ⊙ M) ⊙ M
    ### END SOLUTION


# %%
r_back = grade.effective_weight_backward(effective_weight_backward)

# %% [markdown]
# ### Check — the adjoint against finite differences
#
# For $L = \sum G \odot W_\text{eff}(W)$, $\partial L/\partial W_\text{eff} = G$.

# %%
def central_difference(loss, W, h=1e-6):
    grad = np.zeros_like(W)
    for i in np.ndindex(W.shape):
        old = W[i]
        W[i] = old + h
        up = loss()
        W[i] = old - h
        down = loss()
        W[i] = old
        grad[i] = (up - down) / (2 * h)
    return grad


W, G = rng.standard_normal((6, 6)), rng.standard_normal((6, 6))
M = (rng.random((6, 6)) < 0.7).astype(float)
s = np.where(np.arange(6) < 4, 1.0, -1.0)[None]                        # 4 E units, 2 I units
if r_eff.passed and r_back.passed:
    for sign in (None, s):
        numeric = central_difference(lambda: np.sum(G * effective_weight(W, M, sign)), W)
        err = rel_error(effective_weight_backward(G, W, M, sign), numeric)
        print(f"Dale {'on ' if sign is not None else 'off'}: rel_error = {err:.1e}")
        assert err < 1e-6
else:
    print("This check runs once effective_weight and effective_weight_backward pass.")

# %% [markdown]
# ## Exercise 3.3 — who is excitatory?
#
# `dale_ratio` is the fraction of E units; they come first: unit `j` is E when
# `j < int(dale_ratio * N_rec)` (PsychRNN truncates: `0.29 * 100` gives 28 E units). Return
# `s_rec` (`+1` E, `-1` I: the columns of `W_rec`) and `s_out` (`1` E, `0` I: only excitatory units
# project to the outputs), each of shape `(N_rec,)`.

# %%
def dale_signs(dale_ratio, N_rec):
    """(s_rec, s_out), each (N_rec,)."""
    ### BEGIN SOLUTION hint: n_exc = int(dale_ratio * N_rec); np.where(np.arange(N_rec) < n_exc, ...)
    excitatory = np.arange(N_rec) < int(dale_ratio * N_rec)
    return np.where(excitatory, 1.0, -1.0), excitatory.astype(float)
    ### END SOLUTION


def no_autapses(mask):
    """A copy of the recurrent mask (N, N) with a zero diagonal (no self-connections)."""
    ### BEGIN SOLUTION hint: multiply by (1 - np.eye(N)); do not change the argument in place
    return mask * (1 - np.eye(mask.shape[-1]))
    ### END SOLUTION


# %%
r_dale = grade.dale_signs(dale_signs)
r_aut = grade.no_autapses(no_autapses)

# %% [markdown]
# ## Exercise 3.4 — weights that do not train
#
# `train_params["fixed_weights"] = {"W_rec": F}` with `F` a 0/1 array, **1 = fixed**. An optimizer
# proposes an update `delta` (the weights become `W - delta`); the trainer applies only the
# trainable part. (It also zeroes the gradient of fixed entries first, so Adam's statistics never
# see them.) Write the update rule.

# %%
def apply_update(W, delta, fixed):
    """The new weights: fixed entries (fixed == 1) unchanged, the others W - delta."""
    ### BEGIN SOLUTION hint: multiply delta by (1 - fixed)
    return W - delta * (1 - fixed)
    ### END SOLUTION


# %%
r_upd = grade.apply_update(apply_update)

# %% [markdown]
# ## Check — a tiny constrained network that trains
#
# A `Basic` network with Dale's principle (80% E), no autapses, a sparse recurrent mask, and the
# first two rows of `W_rec` fixed. We train a few updates and check that
#
# 1. your `effective_weight` gives the model's effective weights from its raw ones,
# 2. the signs obey Dale (columns!), the masked entries and the diagonal stay 0,
# 3. the fixed entries of the raw `W_rec` did not change — bit for bit — while the others did.

# %%
task = PerceptualDiscrimination(dt=10, tau=100, T=500, N_batch=16, seed=1)
params = task.get_task_params()
N_rec = 10
conn = (rng.random((N_rec, N_rec)) < 0.6).astype(float)
params.update(N_rec=N_rec, dale_ratio=0.8, autapses=False, rec_connectivity=conn, seed=3, backend="numpy")
model = Basic(params)
F = np.zeros((N_rec, N_rec))
F[:2] = 1                                                            # rows 0 and 1: fixed
W_before = model.raw["W_rec"].copy()
model.train(task, {"training_iters": 16 * (5 if FAST else 30), "fixed_weights": {"W_rec": F},
                   "verbosity": False})
W_after = model.raw["W_rec"]

s_rec, _ = (dale_signs(0.8, N_rec) if r_dale.passed else (None, None))
if r_eff.passed and r_dale.passed and r_aut.passed:
    mine = effective_weight(W_after, no_autapses(conn), s_rec[None])
    assert np.allclose(mine, model.get_weights()["W_rec"]), "your effective weights differ from the model's"
    print("your effective W_rec == the model's:", True)
W_eff = model.get_weights()["W_rec"]
assert np.all(W_eff[:, :8] >= 0) and np.all(W_eff[:, 8:] <= 0)          # 8 E units, 2 I units
assert np.all(W_eff[conn == 0] == 0) and np.all(np.diag(W_eff) == 0)
assert np.array_equal(W_after[:2], W_before[:2]), "fixed rows changed"
print("fixed entries unchanged bit for bit:", np.array_equal(W_after[:2], W_before[:2]),
      "| trainable entries moved:", not np.array_equal(W_after[2:], W_before[2:]))
if r_upd.passed:
    step = rng.standard_normal((N_rec, N_rec))
    assert np.array_equal(apply_update(W_after, step, F)[:2], W_after[:2])

# %% [markdown]
# ## To think about
#
# * Why must Dale's sign act on columns, not rows? (What would "an inhibitory unit" mean otherwise?)
# * With Dale on, a raw weight that crosses 0 during training keeps its effective sign. What happens
#   to its gradient exactly at 0, and why does minirnn follow TensorFlow's `sign(0) = 0`?
