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
# # 7. Saving, loading and editing weights
#
# `model.save(path)` writes an `.npz` with PsychRNN's keys (effective `W_in, W_rec, W_out`, biases,
# `init_state`, connectivity masks, `Dale_rec`/`Dale_out`, `dale_ratio`) plus one `minirnn` JSON
# string. No optimizer state is saved among the weights. Because the file holds plain arrays
# with PsychRNN's names, a user can open it, edit a weight and load it back; and PsychRNN's own
# files load into minirnn.
#
# Claims, checked at the end:
# * save -> load gives a network with **the same outputs, bit for bit**;
# * an edit made in the file (unit 5's outgoing weights set to 0) is in the loaded network
#   exactly, nothing else changed, and it acts as the simulator's `lesion` of the same connections;
# * a weights file written by **PsychRNN 1.0.0** (with its Adam slots) loads and reproduces the
#   outputs PsychRNN computed, to 1e-6; saving it again with minirnn keeps every weight bit for bit.
#
# Files go to `$MINIRNN_TUTORIAL_OUTPUT`.

# %%
import os
import pathlib
import warnings

import matplotlib.pyplot as plt
import numpy as np

import minirnn
from minirnn import Basic, BasicSimulator, Perturbation
from minirnn.io import read_npz
from minirnn.plotting import plot_trial
from minirnn.tasks import PerceptualDiscrimination

OUT = pathlib.Path(os.environ.get("MINIRNN_TUTORIAL_OUTPUT", "tutorial_output"))
OUT.mkdir(parents=True, exist_ok=True)

# %% [markdown]
# ## Train and save

# %%
pd = PerceptualDiscrimination(dt=10, tau=100, T=1000, N_batch=64, seed=1)
params = dict(pd.get_task_params(), N_rec=30, dale_ratio=0.8, seed=1)
model = Basic(params)
model.train(pd, {"training_iters": 50000, "verbosity": False})
path = model.save(str(OUT / "07_weights"))  # ".npz" is appended, as np.savez does
print(path)

# %% [markdown]
# ## Load: `load_weights_path`, or the weights dict in params (PsychRNN's two ways)

# %%
x, y, mask, _ = pd.generate_batch(np.random.default_rng(0))
outputs, states = model.test(x)
from_file = Basic(dict(params, load_weights_path=path))
from_dict = Basic(dict(params, **model.get_weights()))
same_outputs = all(np.array_equal(m.test(x)[0], outputs) and np.array_equal(m.test(x)[1], states)
                   for m in (from_file, from_dict))
print("bit for bit:", same_outputs)

# %% [markdown]
# ## Edit a weight in the file
# `read_npz` reads the file safely (`np.load(..., allow_pickle=False)`; PsychRNN's object entries
# through a restricted unpickler that runs no code). `np.load(path, allow_pickle=True)` as in
# PsychRNN's tutorial works too, for files you trust. Here unit 5 loses its outgoing recurrent
# connections: column 5 of `W_rec` (weights are `(post, pre)`).

# %%
weights = read_npz(path)
print(sorted(weights))
weights["W_rec"][:, 5] = 0
np.savez(OUT / "07_weights_edited.npz", **weights)
edited = Basic(dict(params, load_weights_path=str(OUT / "07_weights_edited.npz")))
W_before, W_after = model.get_weights()["W_rec"], edited.get_weights()["W_rec"]
edit_exact = bool(np.all(W_after[:, 5] == 0) and np.array_equal(np.delete(W_after, 5, axis=1),
                                                                  np.delete(W_before, 5, axis=1)))

# %% [markdown]
# The same experiment without touching the file: the simulator's `lesion(pre=5)` multiplies
# the recurrent weights from unit 5 by 0 at every step.

# %%
lesion = Perturbation(N_steps=pd.N_steps, N_rec=30, dt=pd.dt).lesion(pre=[5])
lesioned, _ = BasicSimulator(rnn_model=model).run_trials(x, perturbation=lesion)
edited_outputs, _ = edited.test(x)
edit_is_lesion = bool(np.allclose(edited_outputs, lesioned, atol=1e-5))
edit_changes_outputs = bool(np.max(np.abs(edited_outputs - outputs)) > 1e-4)
fig, axes = plt.subplots(2, 2, figsize=(12, 5), layout="constrained", sharex=True)
plot_trial(x, y, outputs, mask, dt=pd.dt, ax=axes[:, 0])
plot_trial(x, y, edited_outputs, mask, dt=pd.dt, ax=axes[:, 1])
axes[0, 0].set_title("saved network")
axes[0, 1].set_title("unit 5's outgoing weights set to 0 in the file")
fig.savefig(OUT / "07_edited.png", dpi=100)
plt.close("all")

# %% [markdown]
# ## A file written by PsychRNN 1.0.0
# `tests/data/` of minirnn's source holds weights files written by PsychRNN itself (TensorFlow),
# with the outputs PsychRNN computed on fixed inputs. This one has Dale's principle (6 E, 2 I),
# no autapses, sparse masks and Adam slots (`W_rec/Adam`, ...), which minirnn ignores with one
# warning.

# %%
data = pathlib.Path(minirnn.__file__).resolve().parents[1] / "tests" / "data"
psychrnn_file = data / "psychrnn100_basic_dale.npz"
if psychrnn_file.exists():
    golden = np.load(data / "psychrnn100_basic_dale_io.npz")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        psychrnn_model = Basic({"N_in": 2, "N_rec": 8, "N_out": 2, "dt": 10, "tau": 100,
                                "load_weights_path": str(psychrnn_file)})
    print([str(w.message) for w in caught])
    z, s = psychrnn_model.test(golden["x"])
    psychrnn_error = float(max(np.max(np.abs(z - golden["outputs"])), np.max(np.abs(s - golden["states"]))))
    resaved = read_npz(psychrnn_model.save(str(OUT / "07_psychrnn_resaved")))
    original = read_npz(psychrnn_file)
    round_trip = all(np.array_equal(resaved[k], original[k]) for k in
                     ("W_in", "W_rec", "W_out", "b_rec", "b_out", "init_state", "input_connectivity",
                      "rec_connectivity", "output_connectivity"))
    print(f"largest difference from PsychRNN's outputs: {psychrnn_error:.2e}; round trip exact: {round_trip}")
else:  # an installed minirnn without its tests: nothing to compare with
    print("tests/data not found (installed package?): the PsychRNN file check is skipped")
    psychrnn_error, round_trip = 0.0, True

# %% [markdown]
# ## The claims

# %%
assert same_outputs
assert edit_exact and edit_is_lesion and edit_changes_outputs
assert psychrnn_error <= 1e-6 and round_trip
CLAIMS_CHECKED = True
