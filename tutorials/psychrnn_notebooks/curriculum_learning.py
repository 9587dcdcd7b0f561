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
# **Ported from PsychRNN's `curriculum_learning.ipynb` by `port.py`** (minirnn; DESIGN.md §8: imports changed, nothing else). Changes:
#
# - Colab / TensorFlow set-up cell: dropped
# - `from psychrnn.tasks.perceptual_discrimination import PerceptualDiscrimination` -> `from minirnn.tasks import PerceptualDiscrimination`
# - `from psychrnn.backend.models.basic import Basic` -> `from minirnn import Basic`
# - `from psychrnn.backend.curriculum import Curriculum, default_metric` -> `from minirnn import Curriculum, default_metric`
# - `%matplotlib inline`: commented out

# %% [markdown]
# # Curriculum Learning

# %%
from minirnn.tasks import PerceptualDiscrimination
from minirnn import Basic
from minirnn import Curriculum, default_metric
import numpy as np

from matplotlib import pyplot as plt
# [port] removed: %matplotlib inline

# %% [markdown]
# ## Instantiate Curriculum Object

# %% [markdown]
# We generate a list of tasks that constitute our curriculum. We will train on these tasks one after another. In this example, we train the network on tasks with higher coherence, slowly decreasing to lower coherence.

# %%
pds = [PerceptualDiscrimination(dt = 10, tau = 100, T = 2000, N_batch = 50, coherence = .7 - i/5) for i in range(4)]

# %% [markdown]
# Set optional parameters for the curriculum object. More information about these parameters is available [here](../apidoc/backend.rst#module-psychrnn.backend.curriculum).

# %%
metric = default_metric # Function for calculating whether the stage advances and what the metric value is at each metric_epoch. Default: default_metric().
accuracies = [pds[i].accuracy_function for i in range(len(pds))] # optional list of functions to use to calculate network performance for the purposes of advancing tasks. Used by default_metric() to compute accuracy. Default: [tasks[i].accuracy_function for i in range(len(tasks))].
thresholds = [.9 for i in range(len(pds))] # Optional list of thresholds. If metric = default_metric, accuracies must reach the threshold for a given stage in order to advance to the next stage. Default: [.9 for i in range(len(tasks))]
metric_epoch = 1 # calculate the metric / test if advance to the next stage every metric_epoch training epochs.
output_file = None # Optional path to save out metric value and stage to. Default: None.

# %% [markdown]
# Initialize a curriculum object with information about the tasks we want to train on.

# %%
curriculum = Curriculum(pds, output_file=output_file, metric_epoch=metric_epoch, thresholds=thresholds, accuracies=accuracies, metric=metric)

# %% [markdown]
# ## Initialize Models

# %% [markdown]
# We add in a few params that Basic(RNN) needs but that PerceptualDiscrimination doesn't generate for us.

# %%
network_params = pds[0].get_task_params()
network_params['name'] = 'curriculumModel' #Used to scope out a namespace for global variables.
network_params['N_rec'] = 50

# %% [markdown]
# Instantiate two models. *curriculumModel* that will be trained on the series of tasks, pds, defined above. *basicModel* will be trained only on the final task with lowest coherence.

# %%
curriculumModel = Basic(network_params)
network_params['name'] = 'basicModel'
basicModel = Basic(network_params)

# %% [markdown]
# ## Train Models

# %% [markdown]
# Set the training parameters for our model to include curriculum. The other training parameters shown in [Simple Example](PerceptualDiscrimination.ipynb) can also be included.

# %%
train_params = {}
train_params['curriculum'] = curriculum

# %% [markdown]
# We  will train the curriculum model using [train_curric()](../apidoc/backend.rst#psychrnn.backend.rnn.RNN.train_curric) which is a wrapper for [train](../apidoc/backend.rst#psychrnn.backend.rnn.RNN.train) that does't require a task to be passed in outside of the curriculum entry in train_params.

# %%
curric_losses, initialTime, trainTime = curriculumModel.train_curric(train_params)

# %% [markdown]
# Set training parameters for the non-curriculum model. We use performance_measure and cutoff so that the model trains until it 90% accurate on the hardest task, just like the curriculum model does. This will give us a more fair comparison when we look at losses and training time

# %%
def performance_measure(trial_batch, trial_y, output_mask, output, epoch, losses, verbosity):
    return pds[len(pds)-1].accuracy_function(trial_y, output, output_mask)

train_params['curriculum'] = None
train_params['performance_measure'] = performance_measure
train_params['performance_cutoff'] = .9

# %% [markdown]
# Train the non-curriculum model.

# %%
basic_losses, initialTime, trainTime= basicModel.train(pds[len(pds)-1], train_params)

# %% [markdown]
# ### Plot Losses

# %% [markdown]
# Plot the losses from curriculum and non curriculum training.

# %%
plt.plot( curric_losses, 'b--', label = 'no curriculum')
plt.plot(basic_losses, 'g--', label='curriculum')
plt.legend()
plt.title("Loss during Training for Curriculum vs. Non-Curriculum Models")
plt.ylabel('Loss')
plt.xlabel('Training iterations')
plt.show()

# %% [markdown]
# ## Cleanup

# %%
basicModel.destruct()

# %%
curriculumModel.destruct()
