"""Reference solutions the graders need that the engine does not already have.

* :class:`SimplePD` — PsychRNN's ``SimplePD`` (docs/notebooks/NewTask.ipynb), vectorised over the
  batch (assignment 5).
* :func:`newton` — plain Newton on ``G(x) = F(x) - x`` for the rate RNN's Euler map (assignment 6).

Both are written with flags that reproduce typical mistakes, so a grader can say which one a
student made; the defaults are the correct versions.
"""
from __future__ import annotations

import numpy as np

from ..tasks.task import Task, choice_accuracy


def simplepd_arrays(task, params, rng, *, strict=True, gap=20.0, mask_from_decision=False,
                    noise_scale=None, other_channel=True):
    """``(x, y, mask)`` of SimplePD for the trial parameters ``params`` (the correct version by
    default; each keyword plants one mistake). Noise is drawn first, one call, ``(B, N_steps, 2)``."""
    B = len(params["direction"])
    t = np.arange(task.N_steps) * task.dt                                     # (N_steps,)
    start, end = task.T / 4.0, task.T / 4.0 + task.T / 2.0                    # onset, onset + dur
    stimulus = ((start < t) & (t < end)) if strict else ((start <= t) & (t <= end))
    decision = t > end + gap                                                  # target on
    trained = (t > end + gap) if mask_from_decision else (t >= end)           # mask on
    chosen = np.asarray(params["direction"])[:, None] == np.arange(2)        # (B, 2) one-hot
    coherence = np.asarray(params["coherence"], dtype=np.float64)[:, None]    # (B, 1)
    scale = np.sqrt(2 * task.alpha * 0.1**2) if noise_scale is None else noise_scale
    x = scale * rng.standard_normal((B, task.N_steps, 2))                     # noise everywhere
    evidence = coherence * chosen + (1.0 if other_channel else chosen)        # (B, 2): 1 + coh, 1
    x += stimulus[None, :, None] * evidence[:, None, :]
    y = decision[None, :, None] * chosen[:, None, :].astype(np.float64)       # y[direction] = 1
    mask = np.broadcast_to(trained[None, :, None], x.shape).astype(np.float64)
    return x, y, mask


class SimplePD(Task):
    """PsychRNN's SimplePD, vectorised: which of two noisy inputs is larger? (reference solution)

    Timeline (ms): stimulus ``T/4 < t < 3T/4``; target ``y[direction] = 1`` for
    ``t > 3T/4 + 20``; mask 1 from ``t >= 3T/4``. Coherence ~ Exponential(mean 1/5), direction
    0 or 1. Input noise ``sqrt(2 alpha) * 0.1 * N(0, 1)`` on both channels at every step.
    """

    def __init__(self, dt, tau, T, N_batch, seed=None):
        super().__init__(2, 2, dt, tau, T, N_batch, seed=seed)

    def sample_trial_params(self, rng, N_batch):
        return {"coherence": rng.exponential(scale=1 / 5, size=N_batch),
                "direction": rng.integers(0, 2, size=N_batch)}

    def build_trials(self, params, rng=None):
        return simplepd_arrays(self, params, self.rng if rng is None else rng)

    def accuracy_function(self, correct_output, test_output, output_mask):
        return choice_accuracy(correct_output, test_output, output_mask)


def newton(x0, u, W_rec, W_in, b_rec, alpha, activation="tanh", n_iter=50, *, use_J_minus_I=True):
    """Newton on ``G(x) = F(x, u) - x = 0``: ``x <- x - (J - I)^-1 G(x)``, batched over rows of ``x0``.

    With ``use_J_minus_I=False`` it plants the classic mistake (solving with ``J`` instead).
    """
    from ..analysis.fixed_points import RateDynamics  # scipy: imported only when needed

    dyn = RateDynamics(W_rec, W_in, b_rec, alpha, activation)
    x = np.array(x0, dtype=np.float64)                                        # (M, N)
    u = np.broadcast_to(np.asarray(u, dtype=np.float64), (x.shape[0], dyn.n_input))
    eye = np.eye(dyn.n_state)
    for _ in range(n_iter):
        G = dyn.step(x, u) - x                                                # (M, N)
        A = dyn.jacobian(x, u) - (eye if use_J_minus_I else 0)                # (M, N, N)
        with np.errstate(all="ignore"):
            x = x - np.linalg.solve(A, G[..., None])[..., 0]
    return x
