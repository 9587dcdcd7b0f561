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
# **Ported from PsychRNN's `NewModel.ipynb` by `port.py`** (minirnn; DESIGN.md §8: imports changed, nothing else). Changes:
#
# - Colab / TensorFlow set-up cell: dropped
# - `%matplotlib inline`: commented out
# - `from psychrnn.tasks.perceptual_discrimination import PerceptualDiscrimination` -> `from minirnn.tasks import PerceptualDiscrimination`
# - `from psychrnn.backend.models.basic import Basic` -> `from minirnn import Basic`
# - hand fix: TensorFlow model code cannot be ported by renaming; replaced by the minirnn model

# %% [markdown]
# # Define New Model
#
# Defining a new model requires some familiarity with tensorflow. In this case, we add a feedforward input layer to the [Basic RNN](../apidoc/backend.rst#psychrnn.backend.models.basic.Basic). Because we have added a new weight matrix, we need to modify our initialization. We then must define what a [forward_pass](../apidoc/backend.rst#psychrnn.backend.rnn.RNN.forward_pass) for the model looks like.
#
# ## init
# We define the feedforward weight matrix, W_in_first to have ``'N_feedforward_out'`` outputs and ``'N_in'`` inputs. We must thus change W_in and input_connectivity to have ``'N_feedforward_out'`` inputs. Optionally, users can pass in keys for ``'N_feedforward_out'`` and ``'W_in_first_train'`` in the params dictionary. 
#
# We call ``super(RNN, self).__init__`` so that all the initialization work done by [RNN](../apidoc/backend.rst#psychrnn.backend.rnn.RNN) carries over.
#
# All modified or added matrices are put into ``initializer.initializations`` and initialized in our variable scope.
#
# ## forward_pass
# ``forward_pass()`` iterates through the network, one timepoint at a time. For each timepoint the output and state is recorded added to an array that will be returned. The output and state are calculated using ``recurrent_timestep()`` and ``output_timestep()``.
#
# ### output_timestep
# ``output_timestep()`` takes the state and calculates the output. ``output_timestep()`` is the same as in [Basic RNN](../apidoc/backend.rst#psychrnn.backend.models.basic.Basic.output_timestep).
#
# ### recurrent_timestep
# ``recurrent_timestep()`` takes the state and input and calculates the next state. This is where the feedforward layer is added, as processed input. The remainder of the function is the same as in [Basic RNN](../apidoc/backend.rst#psychrnn.backend.models.basic.Basic.recurrent_timestep)

# %%
# [port] hand fix: PsychRNN's TensorFlow class (variables, tf.matmul, forward_pass) replaced by the
# same model for minirnn: a feed-forward input layer v = f(u W_in_first^T) in front of Basic's
# recurrent network. minirnn's worked example InputLayerRNN has that layer (with a bias b_ff, here
# frozen at zero as in PsychRNN's version) and its hand-written backward pass; the class below keeps
# PsychRNN's parameter names. tutorials/08_new_model.py writes such a model from scratch.
from minirnn.models.examples import InputLayerRNN


class Basic_with_Feedforward(InputLayerRNN):
    """ The basic recurrent neural network model, with a feedforward input layer.

    Args:
       params (dict): See :class:`minirnn.Basic` for details.
            Additional Dictionary Keys:
                N_feedforward_out (int, optional): Number of outputs from the feedforward input layer. Default: 32
                W_in_first_train (bool, optional): True if feedforward weights, W_in_first, are trainable. Default: True
    """

    def __init__(self, params):
        params = dict(params)
        self.N_feedforward_out = params.pop('N_feedforward_out', 32)
        self.W_in_first_train = params.pop('W_in_first_train', True)
        params['N_ff'] = self.N_feedforward_out
        params['W_ff_train'] = self.W_in_first_train
        params['b_ff_train'] = False  # PsychRNN's layer has no bias
        super(Basic_with_Feedforward, self).__init__(params)

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
model = Basic_with_Feedforward(network_params) # instantiate a basic vanilla RNN

# ---------------------- Train a basic model ---------------------------
model.train(pd) # train model to perform pd task

# ---------------------- Test the trained model ---------------------------
x,target_output,mask, trial_params = pd.get_trial_batch() # get pd task inputs and outputs
model_output, model_state = model.test(x) # run the model on input x

# ---------------------- Plot the results ---------------------------
plt.plot(model.test(x)[0][0,:,:])

# ---------------------- Teardown the model -------------------------
model.destruct()

# %% [markdown]
# # Further Extensibility -- Initializations, Loss Functions, and Regularizations
#
# If you wish to modify weight initializations you must define an initialization class describing your preferred initial weight patterns that inherits from [WeightInitializer](../apidoc/backend.rst#psychrnn.backend.initializations.WeightInitializer) or one of it's child classes. 
#
# If you wish to modify loss functions or regularizations you must define a function and pass that function into the RNN as part of the RNN's params. See [LossFunction](../apidoc/backend.rst#psychrnn.backend.loss_functions.LossFunction) and [Regularizer](../apidoc/backend.rst#psychrnn.backend.regularizations.Regularizer) respectively for details.
