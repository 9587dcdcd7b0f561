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
# # 4. Biological constraints
#
# The paper's Fig. 4: four networks on perceptual discrimination, each with a constraint that
# training must respect.
#
# | network | how | what must hold, bit for bit |
# |---|---|---|
# | no autapses | `autapses=False` | `W_rec[i, i] == 0` |
# | two modules | `input_connectivity`, `rec_connectivity`, `output_connectivity` masks | every masked-out weight `== 0` |
# | Dale's principle | `dale_ratio=0.8` (40 E, 10 I) | E columns `>= 0`, I columns `<= 0`, inputs `>= 0`, no output from I units |
# | Dale + fixed E<->I | `train_params["fixed_weights"]` on the E->I and I->E blocks | those weights never change |
#
# Claims, checked at the end: each network reaches **>= 90 % accuracy** on new trials, and each
# constraint holds exactly after training. The weights are drawn with `plot_weights` (E columns red,
# I columns blue, masked-out entries blank).

# %%
import os
import pathlib

import matplotlib.pyplot as plt
import numpy as np

from minirnn import Basic
from minirnn.plotting import plot_weights
from minirnn.tasks import PerceptualDiscrimination

OUT = pathlib.Path(os.environ.get("MINIRNN_TUTORIAL_OUTPUT", "tutorial_output"))
OUT.mkdir(parents=True, exist_ok=True)

pd = PerceptualDiscrimination(dt=10, tau=100, T=1000, N_batch=64, seed=1)
N_in, N_rec, N_out = 2, 50, 2
base_params = dict(pd.get_task_params(), N_rec=N_rec)


def weights_figure(W, title):
    """W_in | W_rec on top, W_out under W_rec (plot_weights draws on the axes it is given)."""
    fig = plt.figure(figsize=(9, 7.5), layout="constrained")
    grid = fig.add_gridspec(2, 2, width_ratios=[1, 7], height_ratios=[7, 1.5])
    plot_weights(W, ax=[fig.add_subplot(grid[0, 0]), fig.add_subplot(grid[0, 1]), fig.add_subplot(grid[1, 1])])
    fig.suptitle(title)
    return fig


def accuracy(model):
    """Accuracy on 256 new trials (a separate stream: the task's own sequence is untouched)."""
    rng = np.random.default_rng(99)
    return float(np.mean([pd.accuracy_function(y, model.test(x)[0], m)
                          for x, y, m, _ in (pd.generate_batch(rng) for _ in range(4))]))


# %% [markdown]
# ## No autapses

# %%
autapses_model = Basic(dict(base_params, autapses=False, seed=1))
autapses_model.train(pd, {"training_iters": 50000, "verbosity": False})
W = autapses_model.get_weights()
no_autapses = bool(np.all(np.diag(W["W_rec"]) == 0))
fig = weights_figure(W, "no autapses: the diagonal is blank")
fig.savefig(OUT / "04_no_autapses.png", dpi=90)

# %% [markdown]
# ## Two modules
# Module A (units 0-24) receives the input; module B (units 25-49) drives the output. A projects
# to B in full; B sends sparse feedback (10 % of the connections) to A.

# %%
A, B = np.arange(N_rec) < 25, np.arange(N_rec) >= 25
input_connectivity = np.zeros((N_rec, N_in))
input_connectivity[A] = 1
output_connectivity = np.zeros((N_out, N_rec))
output_connectivity[:, B] = 1
rec_connectivity = np.zeros((N_rec, N_rec))            # (post, pre)
rec_connectivity[np.ix_(A, A)] = 1
rec_connectivity[np.ix_(B, B)] = 1
rec_connectivity[np.ix_(B, A)] = 1                     # A -> B
feedback = np.random.default_rng(0).random((25, 25)) < 0.1
rec_connectivity[np.ix_(A, B)] = feedback              # B -> A, sparse

modular_model = Basic(dict(base_params, input_connectivity=input_connectivity, rec_connectivity=rec_connectivity,
                           output_connectivity=output_connectivity, seed=2))
modular_model.train(pd, {"training_iters": 50000, "verbosity": False})
W = modular_model.get_weights()
modules_hold = all(np.all(W[name][mask == 0] == 0) for name, mask in
                   (("W_in", input_connectivity), ("W_rec", rec_connectivity), ("W_out", output_connectivity)))
fig = weights_figure(W, "two modules: masked-out connections are blank")
fig.savefig(OUT / "04_two_modules.png", dpi=90)

# %% [markdown]
# ## Dale's principle
# With `dale_ratio=0.8` the first `int(0.8 * 50) = 40` units are excitatory: their outgoing
# (column) weights are `>= 0`; the last 10 are inhibitory (`<= 0`). Inputs are excitatory, and
# only E units project to the output (PsychRNN's master branch; its 1.0.0 release read I units
# out with a negative sign).

# %%
n_exc = int(0.8 * N_rec)


def obeys_dale(W):
    return bool(np.all(W["W_rec"][:, :n_exc] >= 0) and np.all(W["W_rec"][:, n_exc:] <= 0)
                and np.all(W["W_in"] >= 0) and np.all(W["W_out"][:, n_exc:] == 0) and np.all(W["W_out"] >= 0))


dale_model = Basic(dict(base_params, dale_ratio=0.8, seed=3))
dale_model.train(pd, {"training_iters": 50000, "verbosity": False})
W = dale_model.get_weights()
dale_holds = obeys_dale(W)
fig = weights_figure(W, "Dale's principle: 40 E (red) and 10 I (blue) units")
fig.savefig(OUT / "04_dale.png", dpi=90)

# %% [markdown]
# ## Dale + fixed E<->I weights
# `fixed_weights` marks entries that training must leave alone (1 = fixed): here every E->I and
# I->E connection, so only E->E and I->I weights (and inputs, outputs, biases) learn. The
# trainer masks the *update*, not only the gradient, so Adam's momentum cannot move them either.

# %%
fixed = np.zeros((N_rec, N_rec))
fixed[n_exc:, :n_exc] = 1   # E -> I  (post I, pre E)
fixed[:n_exc, n_exc:] = 1   # I -> E
fixed_model = Basic(dict(base_params, dale_ratio=0.8, seed=4))
before = fixed_model.get_weights()["W_rec"].copy()
fixed_model.train(pd, {"training_iters": 50000, "verbosity": False, "fixed_weights": {"W_rec": fixed}})
W = fixed_model.get_weights()
fixed_hold = bool(np.array_equal(W["W_rec"][fixed == 1], before[fixed == 1]))
free_changed = bool(np.any(W["W_rec"][fixed == 0] != before[fixed == 0]))
fixed_dale_holds = obeys_dale(W)
fig, axes = plt.subplots(1, 2, figsize=(10, 4.5), layout="constrained")
plot_weights({"W_rec": before, "dale_ratio": 0.8}, ax=[axes[0]], names=("W_rec",))
plot_weights({"W_rec": W["W_rec"], "dale_ratio": 0.8}, ax=[axes[1]], names=("W_rec",))
axes[0].set_title("W_rec before training")
axes[1].set_title("after: E<->I blocks unchanged")
fig.savefig(OUT / "04_dale_fixed.png", dpi=90)
plt.close("all")

# %% [markdown]
# ## The claims

# %%
accuracies = {name: accuracy(m) for name, m in (("no autapses", autapses_model), ("two modules", modular_model),
                                                ("Dale", dale_model), ("Dale + fixed E<->I", fixed_model))}
print(accuracies)
assert no_autapses and modules_hold and dale_holds and fixed_dale_holds
assert fixed_hold and free_changed
assert all(a >= 0.9 for a in accuracies.values()), accuracies
CLAIMS_CHECKED = True
