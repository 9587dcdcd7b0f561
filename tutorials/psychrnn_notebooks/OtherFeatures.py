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
# **Ported from PsychRNN's `OtherFeatures.ipynb` by `port.py`** (minirnn; DESIGN.md §8: imports changed, nothing else). Changes:
#
# - Colab / TensorFlow set-up cell: dropped
# - `from psychrnn.backend.models.basic import Basic` -> `from minirnn import Basic`
# - `from psychrnn.backend.simulation import BasicSimulator` -> `from minirnn import BasicSimulator`
# - `from psychrnn.tasks.perceptual_discrimination import PerceptualDiscrimination` -> `from minirnn.tasks import PerceptualDiscrimination`
# - `%matplotlib inline`: commented out

# %% [markdown]
# # Simulation in NumPy
# [Simulator](../apidoc/backend.rst#simulation) has NumPy implementations of the included models. Once the model is trained, experiments can be done entirely in NumPy without any reliance on TensorFlow, giving full control to researchers.
#
# There may be some floating point error differences between NumPy and TensorFlow implementations -- these grow the more timepoints the model is run on, but shouldn't cause major issues.
#
# Here we will demonstrate training a simple model in tensorflow, and then loading it and simulating it in NumPy.
#
# The Simulator can be loaded either directly from a model, from saved weights in a file, or from a dictionary of weights. All options will be shown below.

# %%
from minirnn import Basic
from minirnn import BasicSimulator
from minirnn.tasks import PerceptualDiscrimination

import numpy as np

from matplotlib import pyplot as plt
# [port] removed: %matplotlib inline

# %% [markdown]
# ## Load from Model

# %% [markdown]
# To load from a model we first need to have a model. Here we instantiate a basic model from the weights saved out by [Simple Example](PerceptualDiscrimination.ipynb#Get-&-Save-Model-Weights).

# %%
network_params = {'N_batch': 50,
                  'N_in': 2,
                  'N_out': 2,
                  'dt': 10,
                  'tau': 100,
                  'T': 2000,
                  'N_steps': 200,
                  'N_rec': 50,
                  'name': 'Basic',
                  'load_weights_path': './weights/saved_weights.npz'
                 }
tf_model = Basic(network_params)

# %% [markdown]
# Instantiate the simulator from the model. Because the model was originally trained as a [Basic](../apidoc/backend.rst#module-psychrnn.backend.models.basic) model, we will use [BasicSimulator](../apidoc/backend.rst#psychrnn.backend.simulation.BasicSimulator) to simulate the model.

# %%
simulator = BasicSimulator(rnn_model = tf_model)

# %% [markdown]
# Instantiate task to run the simulator on:

# %%
pd = PerceptualDiscrimination(dt = 10, tau = 100, T = 2000, N_batch = 128)

# %% [markdown]
# ### Simulate Model
# Simulate [tf_model.test()](../apidoc/backend.rst#psychrnn.backend.rnn.RNN.test) using the simulator's NumPy impelmentation, [simulator.run_trials(x)](../apidoc/backend.rst#psychrnn.backend.simulation.BasicSimulator.run_trials).

# %%
x, y, mask, _ = pd.get_trial_batch()
outputs, states = simulator.run_trials(x)

# %% [markdown]
# We can plot the results form the simulated model much as we could plot the results from the model in [Simple Example](PerceptualDiscrimination.ipynb#Test-Model). 

# %%
plt.plot(range(0, len(outputs[0,:,:])*10,10),outputs[0,:,:])
plt.ylabel("Activity of Output Unit")
plt.xlabel("Time (ms)")
plt.title("Output on New Sample")

# %%
plt.plot(range(0, len(states[0,:,:])*10,10),states[0,:,:])
plt.ylabel("State Variable Value")
plt.xlabel("Time (ms)")
plt.title("Evolution of State Variables over Time")

# %%
tf_model.destruct()

# %% [markdown]
# ## Load from File

# %% [markdown]
# Instantiate the simulator from the weights saved to file. Because the model was originally trained as a [Basic](../apidoc/backend.rst#module-psychrnn.backend.models.basic) model, we will use [BasicSimulator](../apidoc/backend.rst#psychrnn.backend.simulation.BasicSimulator) to simulate the model.

# %%
simulator = BasicSimulator(weights_path='./weights/saved_weights.npz', params = {'dt': 10, 'tau': 100})

# %% [markdown]
# Instantiate task to run the simulator on:

# %%
pd = PerceptualDiscrimination(dt = 10, tau = 100, T = 2000, N_batch = 128)

# %% [markdown]
# ### Simulate Model
# Simulate [tf_model.test()](../apidoc/backend.rst#psychrnn.backend.rnn.RNN.test) using the simulator's NumPy impelmentation, [simulator.run_trials(x)](../apidoc/backend.rst#psychrnn.backend.simulation.BasicSimulator.run_trials).

# %%
x, y, mask, _ = pd.get_trial_batch()
outputs, states = simulator.run_trials(x)

# %% [markdown]
# We can plot the results form the simulated model much as we could plot the results from the model in [Simple Example](PerceptualDiscrimination.ipynb#Test-Model). 

# %%
plt.plot(range(0, len(outputs[0,:,:])*10,10),outputs[0,:,:])
plt.ylabel("Activity of Output Unit")
plt.xlabel("Time (ms)")
plt.title("Output on New Sample")

# %%
plt.plot(range(0, len(states[0,:,:])*10,10),states[0,:,:])
plt.ylabel("State Variable Value")
plt.xlabel("Time (ms)")
plt.title("Evolution of State Variables over Time")

# %% [markdown]
# ## Load from Dictionary

# %% [markdown]
# Instantiate the simulator from a dictionary of weights. Because the model was originally trained as a [Basic](../apidoc/backend.rst#module-psychrnn.backend.models.basic) model, we will use [BasicSimulator](../apidoc/backend.rst#psychrnn.backend.simulation.BasicSimulator) to simulate the model.

# %%
weights = dict(np.load('./weights/saved_weights.npz', allow_pickle = True))
simulator = BasicSimulator(weights = weights , params = {'dt': 10, 'tau': 100})

# %% [markdown]
# Instantiate task to run the simulator on:

# %%
pd = PerceptualDiscrimination(dt = 10, tau = 100, T = 2000, N_batch = 128)

# %% [markdown]
# ### Simulate Model
# Simulate [tf_model.test()](../apidoc/backend.rst#psychrnn.backend.rnn.RNN.test) using the simulator's NumPy impelmentation, [simulator.run_trials(x)](../apidoc/backend.rst#psychrnn.backend.simulation.BasicSimulator.run_trials).

# %%
x, y, mask, _ = pd.get_trial_batch()
outputs, states = simulator.run_trials(x)

# %% [markdown]
# We can plot the results form the simulated model much as we could plot the results from the model in [Simple Example](PerceptualDiscrimination.ipynb#Test-Model). 

# %%
plt.plot(range(0, len(outputs[0,:,:])*10,10),outputs[0,:,:])
plt.ylabel("Activity of Output Unit")
plt.xlabel("Time (ms)")
plt.title("Output on New Sample")

# %%
plt.plot(range(0, len(states[0,:,:])*10,10),states[0,:,:])
plt.ylabel("State Variable Value")
plt.xlabel("Time (ms)")
plt.title("Evolution of State Variables over Time")
