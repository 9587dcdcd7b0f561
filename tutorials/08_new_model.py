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
# # 8. A new model
#
# In PsychRNN a new model is TensorFlow code and TensorFlow differentiates it. In minirnn a model
# is NumPy: you write its forward pass **and** its backward pass, side by side, and
# `minirnn.gradcheck` tells you whether the backward is right (central differences, entry by
# entry, float64).
#
# Two models:
# 1. `InputLayerRNN` (in `minirnn.models.examples`): PsychRNN's "NewModel" tutorial, a feed-forward
#    input layer in front of the recurrent network.
# 2. `SigmoidReadout`, written here from scratch: `Basic` whose outputs are squashed into (0, 1).
#
# Claims, checked at the end:
# * both models' gradients agree with finite differences to **< 1e-6** (relative, every parameter);
# * both train on perceptual discrimination to **>= 90 %** accuracy;
# * `SigmoidReadout`'s outputs lie in (0, 1).

# %%
import os
import pathlib

import matplotlib.pyplot as plt
import numpy as np

from minirnn import Basic, gradcheck
from minirnn.dynamics import rate
from minirnn.models.basic import rows, time_major
from minirnn.models.examples import InputLayerRNN
from minirnn.nn.constraints import effective_weight_backward
from minirnn.plotting import plot_trial
from minirnn.tasks import PerceptualDiscrimination

OUT = pathlib.Path(os.environ.get("MINIRNN_TUTORIAL_OUTPUT", "tutorial_output"))
OUT.mkdir(parents=True, exist_ok=True)
mT = rate.mT  # swap the last two axes (works with leading network axes)


# %% [markdown]
# ## Writing a model: `SigmoidReadout`
#
# ```
# x_{k+1} = (1 - alpha) x_k + alpha (f(x_k) W_rec^T + u_k W_in^T + b_rec)      (Basic's recurrence)
# a_k     = f(x_{k+1}) W_out^T + b_out                                          (Basic's readout)
# z_k     = sigmoid(a_k)                                                        (new)
# ```
#
# Two hooks: `_run` (what `test` calls) and `_loss_and_grads` (what `train` and `gradcheck` call).
# Basic's `_forward` gives `a` and a cache (time-major arrays `(T, B, N)`); the backward is
# Basic's with one new line, `da = dz * z (1 - z)`.

# %%
def sigmoid(a):
    return 1 / (1 + np.exp(-a))


class SigmoidReadout(Basic):
    """Basic with a sigmoid on the readout: z = sigmoid(f(x) W_out^T + b_out). No regularizers."""

    def _run(self, x, noise_rng=None, perturb=None):
        A, cache = self._forward(x, noise_rng, perturb)  # a: (T, B, N_out)
        return time_major(sigmoid(A)), time_major(cache["X"])

    def _loss_and_grads(self, x, y, mask, noise_rng=None):
        act = self.activation
        A, cache = self._forward(x, noise_rng)
        W, u, X, R = cache["W"], cache["u"], cache["X"], cache["R"]
        Z = sigmoid(A)                                                   # z = sigmoid(a)
        value, dz = self.loss_function(time_major(Z), y, mask)           # loss on batch-major arrays
        dA = np.ascontiguousarray(time_major(dz)) * Z * (1 - Z)          # da = dz z (1 - z)
        g = {}
        g["W_out"] = mT(rows(dA)) @ rows(R)                              # a = r W_out^T + b_out
        g["b_out"] = rows(dA).sum(axis=-2)
        dX = (rows(dA) @ W["W_out"]).reshape(R.shape) * act.df(X)        # dr = da W_out; r = f(x)
        d_drive, d_x0 = rate.recur_backward(W["W_rec"], X, W["init_state"], dX, self.alpha, act)
        R0 = np.broadcast_to(act.f(W["init_state"]), d_drive.shape[-2:])  # f(x_0), every trial
        g["W_rec"] = mT(rows(d_drive[1:])) @ rows(R[:-1]) + mT(d_drive[0]) @ R0
        g["W_in"] = mT(rows(d_drive)) @ rows(u)                          # drive = u W_in^T + b_rec
        g["b_rec"] = rows(d_drive).sum(axis=-2)
        g["init_state"] = d_x0.sum(axis=-2, keepdims=True)
        for name in self.constrained:                                    # effective -> raw weights
            g[name] = effective_weight_backward(g[name], self.raw[name], self.masks[name], self.signs.get(name))
        return value, {name: g[name] for name in self.trainable_names()}


# %% [markdown]
# ## Gradient checks
# float64, small sizes, tanh (smooth; with ReLU, gradcheck detects entries at a kink and
# reports them instead of comparing). Masks and Dale's principle are on, so the chain through the
# constraints is checked too.

# %%
rng = np.random.default_rng(0)
x, y = rng.normal(size=(3, 10, 2)), rng.uniform(0.1, 0.9, size=(3, 10, 2))
mask = (rng.random((3, 10, 2)) < 0.7).astype(float)
small = dict(N_in=2, N_rec=6, N_out=2, dt=10, tau=50, transfer_function="tanh", dtype="float64",
             backend="numpy", dale_ratio=0.5, seed=0)
errors = {
    "SigmoidReadout": gradcheck(SigmoidReadout(small), x, y, mask),
    "InputLayerRNN": gradcheck(InputLayerRNN(dict(small, N_ff=4)), x, y, mask),
}
for name, err in errors.items():
    print(name, {k: f"{v:.1e}" for k, v in err.items()})

# %% [markdown]
# ## Train both on perceptual discrimination

# %%
pd = PerceptualDiscrimination(dt=10, tau=100, T=1000, N_batch=64, seed=1)
models = {"SigmoidReadout": SigmoidReadout(dict(pd.get_task_params(), N_rec=50, seed=1)),
          "InputLayerRNN": InputLayerRNN(dict(pd.get_task_params(), N_rec=50, N_ff=8, seed=1))}
accuracy = {}
xt, yt, mt, _ = pd.generate_batch(np.random.default_rng(7))
fig, axes = plt.subplots(2, 2, figsize=(12, 5), layout="constrained", sharex=True)
for k, (name, model) in enumerate(models.items()):
    model.train(pd, {"training_iters": 50000, "verbosity": False})
    outputs, _ = model.test(xt)
    accuracy[name] = pd.accuracy_function(yt, outputs, mt)
    plot_trial(xt, yt, outputs, mt, dt=pd.dt, ax=axes[:, k])
    axes[0, k].set_title(f"{name}: accuracy {accuracy[name]:.2f}")
fig.savefig(OUT / "08_new_models.png", dpi=100)
plt.close("all")
sigmoid_outputs, _ = models["SigmoidReadout"].test(xt)
print(accuracy)

# %% [markdown]
# ## The claims

# %%
assert all(max(err.values()) < 1e-6 for err in errors.values()), errors
assert all(a >= 0.9 for a in accuracy.values()), accuracy
assert np.all((sigmoid_outputs > 0) & (sigmoid_outputs < 1))
CLAIMS_CHECKED = True
