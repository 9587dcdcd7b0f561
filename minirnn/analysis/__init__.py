"""Analyses of a trained network: psychometric curves, population PCA, fixed points.

Everything works on plain arrays (outputs, states, weights); functions that need a network also
accept a model duck-typed by ``get_weights()``, ``alpha`` and ``activation``.
"""
from .fixed_points import (
    Dynamics,
    FixedPointPath,
    FixedPoints,
    RateDynamics,
    continue_fixed_points,
    dynamics_from_model,
    find_fixed_points,
    sample_states,
    unique_points,
)
from .pca import PCA, condition_average, pca, project, trial_param
from .psychometric import (
    PsychometricFit,
    PsychometricWarning,
    choice_probability,
    choices_from_outputs,
    fit_psychometric,
    psychometric_from_batch,
    psychometric_function,
    signed_coherence,
)

__all__ = [
    "Dynamics", "RateDynamics", "FixedPoints", "FixedPointPath", "find_fixed_points",
    "continue_fixed_points", "dynamics_from_model", "sample_states", "unique_points",
    "PCA", "pca", "project", "condition_average", "trial_param",
    "PsychometricFit", "PsychometricWarning", "fit_psychometric", "psychometric_function", "choice_probability",
    "choices_from_outputs", "psychometric_from_batch", "signed_coherence",
]
