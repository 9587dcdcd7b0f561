"""minirnn: train rate RNNs on cognitive tasks with a readable NumPy engine (PsychRNN-compatible).

>>> from minirnn import Basic
>>> from minirnn.tasks import PerceptualDiscrimination
"""
__version__ = "0.1.0"

from ._params import describe_params
from .errors import (MinirnnError, MissingDependencyError, NonFiniteError, ParameterError, ShapeError,
                     WeightsFileError)
from .models import LSTM, RNN, Basic
from .models.lstm import PsychRNNLSTM
from .nn.initializers import AlphaIdentity, GaussianSpectralRadius, WeightInitializer
from .simulate import BasicSimulator, LSTMSimulator, Perturbation, Simulator
from .testing import check_grads, gradcheck
from .train.curriculum import Curriculum, default_metric

from .tasks import Task
from .sweep import sweep  # noqa: E402  (the function; dask is imported only when a sweep runs)

#: PsychRNN's BasicScan is its Basic computed with tf.scan: the same model, so the same class here.
BasicScan = Basic

__all__ = ["Basic", "BasicScan", "LSTM", "PsychRNNLSTM", "RNN", "Simulator", "BasicSimulator", "LSTMSimulator",
           "Perturbation", "Task",
           "WeightInitializer", "GaussianSpectralRadius", "AlphaIdentity",
           "describe_params", "MinirnnError", "ParameterError", "ShapeError", "NonFiniteError",
           "WeightsFileError", "MissingDependencyError", "Curriculum", "default_metric", "gradcheck",
           "check_grads", "sweep"]
