"""minirnn: train rate RNNs on cognitive tasks with a readable NumPy engine (PsychRNN-compatible).

>>> from minirnn import Basic
>>> from minirnn.tasks import PerceptualDiscrimination
"""
__version__ = "0.1.0"

from ._params import describe_params
from .errors import (MinirnnError, MissingDependencyError, NonFiniteError, ParameterError, ShapeError,
                     WeightsFileError)
from .models import LSTM, RNN, Basic
from .nn.initializers import AlphaIdentity, GaussianSpectralRadius, WeightInitializer
from .simulate import BasicSimulator, LSTMSimulator, Perturbation
from .testing import check_grads, gradcheck
from .train.curriculum import Curriculum, default_metric

from .tasks import Task
from .sweep import sweep  # noqa: E402  (the function; dask is imported only when a sweep runs)

__all__ = ["Basic", "LSTM", "RNN", "BasicSimulator", "LSTMSimulator", "Perturbation", "Task",
           "WeightInitializer", "GaussianSpectralRadius", "AlphaIdentity",
           "describe_params", "MinirnnError", "ParameterError", "ShapeError", "NonFiniteError",
           "WeightsFileError", "MissingDependencyError", "Curriculum", "default_metric", "gradcheck",
           "check_grads", "sweep"]
