"""Cognitive tasks: each makes batches ``x (N_batch, N_steps, N_in)``, ``y`` and ``mask``
``(N_batch, N_steps, N_out)`` and per-trial parameter dicts (see :mod:`minirnn.tasks.task`).

``from minirnn.tasks import PerceptualDiscrimination`` replaces PsychRNN's
``from psychrnn.tasks.perceptual_discrimination import PerceptualDiscrimination``.
"""
from .delayed_discrimination import DelayedDiscrimination
from .flip_flop import FlipFlop
from .match_to_category import MatchToCategory
from .neurogym import NeurogymTask  # neurogym itself is imported only when a NeurogymTask is built
from .perceptual_discrimination import PerceptualDiscrimination
from .task import Task, TrialParams
from .task_params import TaskParams

__all__ = ["Task", "TrialParams", "TaskParams", "PerceptualDiscrimination", "DelayedDiscrimination",
           "MatchToCategory", "FlipFlop", "NeurogymTask"]
