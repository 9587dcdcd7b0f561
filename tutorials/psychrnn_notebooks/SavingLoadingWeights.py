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
# **Ported from PsychRNN's `SavingLoadingWeights.ipynb` by `port.py`** (minirnn; DESIGN.md §8: imports changed, nothing else). Changes:
#
# - Colab / TensorFlow set-up cell: dropped
# - `from psychrnn.backend.models.basic import Basic` -> `from minirnn import Basic`

# %% [markdown]
# # Accessing and Modifying Weights

# %% [markdown]
# In [Simple Example](PerceptualDiscrimination.ipynb#Get-&-Save-Model-Weights), we saved weights to ``./weights/saved_weights``. Here we will load those weights, and modify them by silencing a few recurrent units.

# %%
import numpy as np
weights = dict(np.load('./weights/saved_weights.npz', allow_pickle = True))
weights['W_rec'][:10, :10] = 0

# %% [markdown]
# Here are all the different weights you have access to for modifying. The ones that don't end in ``Adam`` or ``Adam_1`` will be read in when loading a model from weights.

# %%
print(weights.keys())

# %% [markdown]
# Save the modified weights at ``'./weights/modified_saved_weights.npz'``.

# %%
np.savez('./weights/modified_saved_weights.npz', **weights)

# %% [markdown]
# # Loading Model with Weights 

# %%
from minirnn import Basic

# %%
network_params = {'N_batch': 50,
                  'N_in': 2,
                  'N_out': 2,
                  'dt': 10,
                  'tau': 100,
                  'T': 2000,
                  'N_steps': 200,
                  'N_rec': 50
                 }

# %% [markdown]
# ### Load from File

# %% [markdown]
# Set network parameters.

# %%
file_network_params = network_params.copy()
file_network_params['name'] = 'file'
file_network_params['load_weights_path'] = './weights/modified_saved_weights.npz'

# %% [markdown]
# Instantiate model.

# %%
fileModel = Basic(file_network_params)

# %% [markdown]
# Verify that the W_rec weights are modified as expected.

# %%
print(fileModel.get_weights()['W_rec'][:10,:10])

# %%
fileModel.destruct()

# %% [markdown]
# ### Load from Weights Dictionary

# %% [markdown]
# Set network parameters.

# %%
dict_network_params = network_params.copy()
dict_network_params['name'] = 'dict'
dict_network_params.update(weights)
type(dict_network_params['dale_ratio']) == np.ndarray and dict_network_params['dale_ratio'].item() is None

# %% [markdown]
# Instantiate model.

# %%
dictModel = Basic(dict_network_params)

# %% [markdown]
# Verify that the W_rec weights are modified as expected.

# %%
print(dictModel.get_weights()['W_rec'][:10,:10])

# %%
dictModel.destruct()
