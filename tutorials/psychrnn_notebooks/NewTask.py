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
# **Ported from PsychRNN's `NewTask.ipynb` by `port.py`** (minirnn; DESIGN.md §8: imports changed, nothing else). Changes:
#
# - Colab / TensorFlow set-up cell: dropped
# - `from psychrnn.tasks.task import Task` -> `from minirnn import Task`
# - `%matplotlib inline`: commented out
# - `from psychrnn.backend.models.basic import Basic` -> `from minirnn import Basic`
# - hand fix: `super(SimplePDM, self).__init__(2, 2, dt, tau, T, N_batch)` -> `super(SimplePD, self).__init__(2, 2, dt, tau, T, N_batch)` (PsychRNN bug: the class is SimplePD; SimplePDM is undefined (NameError on PsychRNN too))
# - hand fix: `plt.plot(model_output[0][0,:,:])` -> `plt.plot(model_output[0,:,:])` (PsychRNN bug: model_output[0] is 2-D, so [0,:,:] raises IndexError on PsychRNN too)

# %% [markdown]
# # Define New Task

# %% [markdown]
# Below is a sample implentation of a simple perceptual discrimination task. The newly defined task implements and inherits from [Task](../apidoc/tasks.rst#module-psychrnn.tasks.task). Other examples of tasks are available [here](../apidoc/tasks.rst#implemented-example-tasks).
#
# This task will involve two inputs and two outputs. The network must indicate which of the two inputs (directions) has larger signal, and the mean difference in magnitude of the two inputs will be indicated by coherence.
#
# To define the task, ``generate_trial_params`` and ``trial_function`` are the two key functions that must be defined. 
#
# In this simple task, ``generate_trial_params`` assigns both the direction and the coherence of the trial randomly.
#
# ``trial_function`` is given a time point indicating what time in the trial it is currently at as well as the output from ``generate_trial_params``. The function intializes the input, ``x_t``, with noise, the output, ``y_t``, with zeros, and the mask, ``mask_t`` with ones. During the stimulus period, ``x_t`` has input signal added to it. During the response period, ``y_t[direction]`` is set to 1 to indicate the correct direction of the stimulus. Before and during the stimlus period, the mask is set to 0 so that when training, the network knows not to care about it's outputs before the response period.

# %%
from minirnn import Task
import numpy as np


class SimplePD(Task):
    def __init__(self, dt, tau, T, N_batch):
        super(SimplePD, self).__init__(2, 2, dt, tau, T, N_batch)

    def generate_trial_params(self, batch, trial):
        """"Define parameters for each trial.

        Using a combination of randomness, presets, and task attributes, define the necessary trial parameters.

        Args:
            batch (int): The batch number that this trial is part of.
            trial (int): The trial number of the trial within the batch.

        Returns:
            dict: Dictionary of trial parameters.
            
        """

        # ----------------------------------
        # Define parameters of a trial
        # ----------------------------------
        params = dict()
        params['coherence'] = np.random.exponential(scale=1/5)
        params['direction'] = np.random.choice([0, 1])

        return params

    def trial_function(self, time, params):
        """ Compute the trial properties at the given time.

        Based on the params compute the trial stimulus (x_t), correct output (y_t), and mask (mask_t) at the given time.

        Args:
            time (int): The time within the trial (0 <= time < T).
            params (dict): The trial params produced generate_trial_params()

        Returns:
            tuple:

            x_t (ndarray(dtype=float, shape=(N_in,))): Trial input at time given params.
            y_t (ndarray(dtype=float, shape=(N_out,))): Correct trial output at time given params.
            mask_t (ndarray(dtype=bool, shape=(N_out,))): True if the network should train to match the y_t, False if the network should ignore y_t when training.
        
        """
        stim_noise = 0.1
        onset = self.T/4.0
        stim_dur = self.T/2.0

        # ----------------------------------
        # Initialize with noise
        # ----------------------------------
        x_t = np.sqrt(2*self.alpha*stim_noise*stim_noise)*np.random.randn(self.N_in)
        y_t = np.zeros(self.N_out)
        mask_t = np.ones(self.N_out)

        # ----------------------------------
        # Retrieve parameters
        # ----------------------------------
        coh = params['coherence']
        direction = params['direction']

        # ----------------------------------
        # Compute values
        # ----------------------------------
        if onset < time < onset + stim_dur:
            x_t[direction] += 1 + coh
            x_t[(direction + 1) % 2] += 1

        if time > onset + stim_dur + 20:
            y_t[direction] = 1.

        if time < onset + stim_dur:
            mask_t = np.zeros(self.N_out)

        return x_t, y_t, mask_t

# %% [markdown]
# Now that the task is defined, we can instantiate it and use it to build a model:

# %%
from matplotlib import pyplot as plt
# [port] removed: %matplotlib inline

from minirnn import Basic

# ---------------------- Set up a basic model ---------------------------
pd = SimplePD(dt = 10, tau = 100, T = 2000, N_batch = 128)
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
plt.plot(model_output[0,:,:])

# ---------------------- Teardown the model -------------------------
model.destruct()
