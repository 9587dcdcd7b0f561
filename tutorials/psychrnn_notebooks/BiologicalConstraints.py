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
# **Ported from PsychRNN's `BiologicalConstraints.ipynb` by `port.py`** (minirnn; DESIGN.md §8: imports changed, nothing else). Changes:
#
# - Colab / TensorFlow set-up cell: dropped
# - `%matplotlib inline`: commented out
# - `from psychrnn.tasks.perceptual_discrimination import PerceptualDiscrimination` -> `from minirnn.tasks import PerceptualDiscrimination`
# - `from psychrnn.backend.models.basic import Basic` -> `from minirnn import Basic`

# %% [markdown]
# # Biological Constraints
#
# The default RNN network has all to all connectivity, and allows units to have both excitatory and inhibitory connections. However, this does not reflect the biology we know. PsychRNN includes a framework for easily specifying biological constraints on the model. 
#
# This example will introduce the different options for biological constraints included in PsychRNN:
# - Dale Ratio
# - Autapses
# - Connectivity
# - Fixed Weights

# %%
import numpy as np

from matplotlib import pyplot as plt
from matplotlib.colors import Normalize
# [port] removed: %matplotlib inline

# ---------------------- Import the package ---------------------------
from minirnn.tasks import PerceptualDiscrimination
from minirnn import Basic

# ---------------------- Set up a basic model ---------------------------
pd = PerceptualDiscrimination(dt = 10, tau = 100, T = 2000, N_batch = 128)
network_params = pd.get_task_params() # get the params passed in and defined in pd
network_params['name'] = 'model' # name the model uniquely if running mult models in unison
network_params['N_rec'] = 50 # set the number of recurrent units in the model

# -------------------- Set up variables that will be useful later -------
N_in = network_params['N_in']
N_rec = network_params['N_rec']
N_out = network_params['N_out']

# %% [markdown]
# This function will plot the colormap of the weights

# %%
def plot_weights(weights, title=""):
    cmap = plt.set_cmap('RdBu_r')
    img = plt.matshow(weights, norm=Normalize(vmin=-.5, vmax=.5))
    plt.title(title)

    plt.colorbar()

# %% [markdown]
# ## Biologically Unconstrained

# %%
basicModel = Basic(network_params) # instantiate a basic vanilla RNN we will compare to later on

# %%
weights = basicModel.get_weights()
plot_weights(weights['W_rec'])

# %%
basicModel.destruct()

# %% [markdown]
# ## Dale Ratio
#
#
# Dale’s Principle states that a neuron releases the same set of neurotransmitters at each of its synapses ([Eccles et al., 1954](https://www.ncbi.nlm.nih.gov/pmc/articles/PMC1365877/pdf/jphysiol01404-0118.pdf)). Since neurotransmitters tend to be either excitatory or inhibitory, theorists have taken this to mean that each neuron has exclusively either excitatory or inhibitory synapses ([Song et al., 2016](https://journals.plos.org/ploscompbiol/article?id=10.1371/journal.pcbi.1004792); [Rajan and Abbott, 2006](https://pubmed.ncbi.nlm.nih.gov/17155583/)). 
#
# To set the dale ratio, simply set ``network_params['dale_ratio']`` equal to the proportion of total recurrent neurons that should be excitatory. The remainder will be inhibitory.
#
# The dale ratio can be combined with any other parameter settings except for ``network_params['initializer']``, in which case the dale ratio needs to be passed directly into the [initializer](../apidoc/backend.rst#module-psychrnn.backend.initializations) being used. Dale ratio is not enforced if [LSTM](../apidoc/backend.rst#psychrnn.backend.models.lstm.LSTM) is used as the RNN imlementation.
#
# Once the model is instantiated it can be trained and tested as demonstrated in [Simple Example](PerceptualDiscrimination.ipynb)

# %%
dale_network_params = network_params.copy()
dale_network_params['name'] = 'dales_model'
dale_network_params['dale_ratio'] = .8
daleModel = Basic(dale_network_params)

# %%
weights = daleModel.get_weights()
plot_weights(weights['W_rec'])

# %%
daleModel.destruct()

# %% [markdown]
# ## Autapses
#
# To disallow autapses (self connections) or not, simply set ``network_params['autapses'] = False``.
#
# The autapses parameter can be combined with any other parameter settings except for ``network_params['initializer']``, in which case the boolean for autapses needs to be passed directly into the [initializer](../apidoc/backend.rst#module-psychrnn.backend.initializations) being used. Autapses are not enforced if [LSTM](../apidoc/backend.rst#psychrnn.backend.models.lstm.LSTM) is used as the RNN imlementation.
#
# Once the model is instantiated it can be trained and tested as demonstrated in [Simple Example](PerceptualDiscrimination.ipynb)

# %%
autapses_network_params = network_params.copy()
autapses_network_params['name'] = 'autapses_model'
autapses_network_params['autapses'] = False
autapsesModel = Basic(autapses_network_params)

# %%
weights = autapsesModel.get_weights()
plot_weights(weights['W_rec'])

# %% [markdown]
# Notice the white line on the diagonal (self-connections) above, where the weights are 0.

# %%
autapsesModel.destruct()

# %% [markdown]
# ## Connectivity
#
# The brain is not all-to-all connected, so it can be useful to restrict and structure the connectivity of our RNNs.
#
# The input_connectivity, recurrent_connectivity, and output_connectivity parameters allow us to do just that. Any subset of them can be combined with any other parameter settings except for ``network_params['initializer']``, in which case the connectivity matrices need to be passed directly into the [initializer](../apidoc/backend.rst#module-psychrnn.backend.initializations) being used. Connectivity is not enforced if [LSTM](../apidoc/backend.rst#psychrnn.backend.models.lstm.LSTM) is used as the RNN imlementation.
#
# Once the model is instantiated it can be trained and tested as demonstrated in [Simple Example](PerceptualDiscrimination.ipynb)

# %%
modular_network_params = network_params.copy()
modular_network_params['name'] = 'modular_model'

# Set connectivity matrices to the default -- fully connected
input_connectivity = np.ones((N_rec, N_in)) 
rec_connectivity = np.ones((N_rec, N_rec)) 
output_connectivity = np.ones((N_out, N_rec)) 

# Specify certain connections to disallow. This can be done with input and output connectivity matrices as well
rec_connectivity[2*(N_rec//5):4*(N_rec//5),:2*(N_rec//5)] = 0
rec_connectivity[:2*(N_rec//5),2*(N_rec//5):4*(N_rec//5)] = 0

# %% [markdown]
# Plot the recurrent connectivity matrix

# %%
plot_weights(rec_connectivity, "recurrent connectivity")

# %% [markdown]
# Specify the connectivity matrices in ``network_params``. 

# %%
modular_network_params['input_connectivity'] = input_connectivity
modular_network_params['rec_connectivity'] = rec_connectivity
modular_network_params['output_connectivity'] = output_connectivity
modularModel = Basic(modular_network_params)

# %%
weights = modularModel.get_weights()

plot_weights(weights['W_rec'])

# %%
modularModel.destruct()

# %% [markdown]
# ## Fixed Weights

# %% [markdown]
# Some parts of the brain we may assume to be less plastic than others. Alternatively, we may want to specify particular weights within the model and train the rest of them around those.
#
# The fixed_weights parameter for the [train()](../apidoc/backend.rst#psychrnn.backend.rnn.RNN.train) fucntion allows us to do this.

# %% [markdown]
# Instantiate the model

# %%
fixed_network_params = network_params.copy()
fixed_network_params['name'] = 'fixed_model'
fixedModel = Basic(fixed_network_params) # instantiate a basic vanilla RNN we will compare to later on

# %% [markdown]
# Plot the model weights before training

# %%
weights = fixedModel.get_weights()

plot_weights(weights['W_rec'])

# %%
# Set fixed weight matrices to the default -- fully trainable
W_in_fixed = np.zeros((N_rec,N_in))
W_rec_fixed = np.zeros((N_rec,N_rec))
W_out_fixed = np.zeros((N_out, N_rec))

# Specify certain weights to fix. 
W_rec_fixed[N_rec//5*4:, :4*N_rec//5] = 1
W_rec_fixed[:4*N_rec//5, N_rec//5*4:] = 1


# Specify the fixed weights parameters in train_params
train_params = {}
train_params['fixed_weights'] = {
    'W_in': W_in_fixed,
    'W_rec': W_rec_fixed,
    'W_out': W_out_fixed
}

# %%
losses, initialTime, trainTime = fixedModel.train(pd, train_params)

# %% [markdown]
# Plot the weights after training:

# %%
weights = fixedModel.get_weights()

plot_weights(weights['W_rec'])

# %%
fixedModel.destruct()

# %% [markdown]
# Unfortunately, it's hard to see visually whether the weights actually stayed fixed or not. To make it more apparent, we will set all of the fixed weights to the same value, the average of their previous value.

# %%
weights['W_rec'][N_rec//5*4:, :4*N_rec//5] = np.mean(weights['W_rec'][N_rec//5*4:, :4*N_rec//5])
weights['W_rec'][:4*N_rec//5, N_rec//5*4:] = np.mean(weights['W_rec'][:4*N_rec//5, N_rec//5*4:])

# %% [markdown]
# Now we make a new model loading the weights ``weights``

# %%
fixed_network_params = network_params.copy()
fixed_network_params['name'] = 'fixed_model_clearer'
for key, value in weights.items():
    fixed_network_params[key] = value
fixedModelClearer = Basic(fixed_network_params) # instantiate an RNN loading the revised weights from the previous model

# %% [markdown]
# Plot the model weights before training

# %%
weights = fixedModelClearer.get_weights()

plot_weights(weights['W_rec'])

# %%
losses, initialTime, trainTime = fixedModelClearer.train(pd, train_params)

# %% [markdown]
# Plot the model weights after training. Now it is clear that the weights haven't changed.

# %%
weights = fixedModelClearer.get_weights()

plot_weights(weights['W_rec'])

# %%
fixedModelClearer.destruct()
