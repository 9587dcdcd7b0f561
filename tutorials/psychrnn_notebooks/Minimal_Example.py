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
# **Ported from PsychRNN's `Minimal_Example.ipynb` by `port.py`** (minirnn; DESIGN.md §8: imports changed, nothing else). Changes:
#
# - Colab / TensorFlow set-up cell: dropped
# - `%matplotlib inline`: commented out
# - `from psychrnn.tasks.perceptual_discrimination import PerceptualDiscrimination` -> `from minirnn.tasks import PerceptualDiscrimination`
# - `from psychrnn.backend.models.basic import Basic` -> `from minirnn import Basic`

# %% [markdown]
# # Hello World!

# %% [markdown]
# A popular 2-alternative forced choice perceptual discrimination task is the random dot motion (RDM) task. In RDM, the subject observes dots moving in different directions. The RDM task is a forced choice task -- although dots can move in any direction, their are two directions in which the movement of the coherent dots could be. The subject must make a choice towards one of the two directions at the end of the stimulus period ([Britten et al., 1992](https://www.jneurosci.org/content/12/12/4745)).
#
# To make it possible for an RNN to complete this task, we model this task as two simultaneous noisy inputs into each of two input channels, representing the two directions. The network must determine which channel has the higher mean input and respond by driving the corresponding output unit to 1, and the other output unit to .2. We've included this example task in PsychRNN as [PerceptualDiscrimination](../apidoc/tasks.rst#module-psychrnn.tasks.perceptual_discrimination). 
#
# To get started, let's train a basic model in PsychRNN on this 2-alternative forced choice perceptual discrimination task and test how it does on task input. For simplicity, we will use the model defaults.

# %%
from matplotlib import pyplot as plt
# [port] removed: %matplotlib inline

# ---------------------- Import the package ---------------------------
from minirnn.tasks import PerceptualDiscrimination
from minirnn import Basic

# ---------------------- Set up a basic model ---------------------------
pd = PerceptualDiscrimination(dt = 10, tau = 100, T = 2000, N_batch = 128)
network_params = pd.get_task_params() # get the params passed in and defined in pd
network_params['name'] = 'model' # name the model uniquely if running mult models in unison
network_params['N_rec'] = 50 # set the number of recurrent units in the model
model = Basic(network_params) # instantiate a basic vanilla RNN

# ---------------------- Train a basic model ---------------------------
model.train(pd) # train model to perform pd task

# ---------------------- Test the trained model ---------------------------
x,target_output,mask, trial_params = pd.get_trial_batch() # get pd task inputs and outputs
model_output, model_state = model.test(x) # run the model on input x

# ---------------------- Plot the results ---------------------------
plt.plot(model_output[0])

# ---------------------- Teardown the model -------------------------
model.destruct()

# %% [markdown]
# Congratulations! You’ve successfully trained and tested your first model! Continue to [Simple Example](./PerceptualDiscrimination.ipynb) to learn how to define more useful models.
