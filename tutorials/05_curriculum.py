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
# # 5. Curriculum learning
#
# The paper's Fig. 5: train perceptual discrimination on a curriculum of decreasing coherence,
# 0.7 -> 0.5 -> 0.3 -> 0.1, moving on when the accuracy on the current stage passes a threshold;
# compare with a network trained on coherence 0.1 from the start until it is as accurate.
# (`benchmarks/` repeats this over 10 seeds for Fig. 5C's statistics; here it is one run.)
#
# Claims, checked at the end:
# * the curriculum passes all four stages **in order** and stops after the last threshold;
# * its output file holds the same stage history;
# * both networks end **>= 90 % accurate** at coherence 0.1 on new trials.
#
# Figure (Fig. 5D): `$MINIRNN_TUTORIAL_OUTPUT/05_curriculum.png`, the loss of both networks with the
# curriculum's stage boundaries.

# %%
import json
import os
import pathlib

import matplotlib.pyplot as plt
import numpy as np

from minirnn import Basic, Curriculum
from minirnn.plotting import plot_training
from minirnn.tasks import PerceptualDiscrimination

OUT = pathlib.Path(os.environ.get("MINIRNN_TUTORIAL_OUTPUT", "tutorial_output"))
OUT.mkdir(parents=True, exist_ok=True)

# %% [markdown]
# ## The curriculum
# One task per stage. The default metric computes each stage's `accuracy_function` every
# `metric_epoch` updates and advances when it reaches the stage's threshold.

# %%
coherences = [0.7, 0.5, 0.3, 0.1]
tasks = [PerceptualDiscrimination(dt=10, tau=100, T=1000, N_batch=64, coherence=c, seed=10 + i)
         for i, c in enumerate(coherences)]
curriculum = Curriculum(tasks, thresholds=[0.9, 0.9, 0.9, 0.95], metric_epoch=5,
                        output_file=OUT / "05_curriculum.json")
curriculum

# %%
params = dict(tasks[0].get_task_params(), N_rec=50, seed=1)
curriculum_model = Basic(params)
curriculum_model.train_curric({"curriculum": curriculum, "training_iters": 100000, "verbosity": False})
stages = curriculum_model.history["stages"]
for s in stages:
    print(f"update {s['update']:4d}: stage {s['stage']} (accuracy {s['metric']:.2f})")

# %% [markdown]
# ## Without a curriculum
# The same network (same seed), trained on coherence 0.1 only, with PsychRNN's
# `performance_measure` / `performance_cutoff` so that it stops when as accurate as the
# curriculum's last stage required.

# %%
hard = PerceptualDiscrimination(dt=10, tau=100, T=1000, N_batch=64, coherence=0.1, seed=20)
checks = []


def performance_measure(trial_batch, trial_y, output_mask, output, epoch, losses, verbosity):
    checks.append(hard.accuracy_function(trial_y, output, output_mask))
    return checks[-1]


plain_model = Basic(params)
plain_model.train(hard, {"training_iters": 100000, "verbosity": False, "performance_measure": performance_measure,
                         "performance_cutoff": 0.95, "performance_epoch": 5})
print(f"curriculum: {len(curriculum_model.history['loss'])} updates; "
      f"coherence 0.1 only: {len(plain_model.history['loss'])} updates")

# %% [markdown]
# ## Fig. 5D: training curves with the stage boundaries

# %%
fig, axes = plt.subplots(1, 2, figsize=(12, 4), layout="constrained", sharey=True)
loss_c = curriculum_model.history["loss"]
plot_training(loss_c, iterations=np.arange(1, len(loss_c) + 1), accuracy=[h["metric"] for h in curriculum.history],
              accuracy_iterations=[h["epoch"] for h in curriculum.history], stage_starts=[s["update"] for s in stages[:-1]],
              stage_names=[f"coh {c}" for c in coherences], ax=axes[0])
axes[0].set_title("curriculum 0.7 -> 0.5 -> 0.3 -> 0.1")
loss_p = plain_model.history["loss"]
plot_training(history=plain_model.history, ax=axes[1])
axes[1].set_title("coherence 0.1 only")
fig.savefig(OUT / "05_curriculum.png", dpi=100)
plt.close("all")

# %% [markdown]
# ## The claims

# %%
def accuracy(model):
    rng = np.random.default_rng(5)
    return float(np.mean([hard.accuracy_function(y, model.test(x)[0], m)
                          for x, y, m, _ in (hard.generate_batch(rng) for _ in range(4))]))


saved = json.loads((OUT / "05_curriculum.json").read_text())
final = {"curriculum": accuracy(curriculum_model), "coherence 0.1 only": accuracy(plain_model)}
print(final)
assert [s["stage"] for s in stages] == [1, 2, 3, 4] and curriculum.stop_training
assert [h["stage"] for h in saved["history"] if h["advanced"]] == [0, 1, 2, 3] and saved["stop_training"]
assert all(a >= 0.9 for a in final.values()), final
CLAIMS_CHECKED = True
