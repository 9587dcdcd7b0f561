"""Perceptual discrimination: a two-alternative forced choice on two noisy evidence streams.

After Britten, Shadlen, Newsome & Movshon (1992), "The analysis of visual motion: a comparison of
neuronal and psychophysical performance", J. Neurosci. 12(12):4745-4765; PsychRNN's
``PerceptualDiscrimination`` (Ehrlich et al., eNeuro 2021), reproduced exactly except that the
``direction`` argument is honoured.

Trial (times in ms, trial time t = k * dt)::

    fixation   0 <= t <= onset                   onset ~ U(0, T/2)
    stimulus   onset < t < onset + dur           dur ~ U(T/8, 3T/8)
    gap        onset + dur <= t <= onset+dur+20  target still 0, mask already 1 (PsychRNN)
    decision   t > onset + dur + 20

Channels::

    x[0], x[1]   noise everywhere; during the stimulus x[dir] += 1 + coherence, x[other] += 1
    y[0], y[1]   0 before the decision period; then y[dir] = hi = 1.0, y[other] = lo = 0.2
    mask         0 while t < onset + dur, 1 afterwards (both channels)

Input noise: ``sqrt(2 * 0.01 * sqrt(10) * sqrt(dt) * stim_noise**2) * N(0, 1)`` per channel and
step, ``stim_noise = 0.1`` (0.0447 at dt = 10). ``coherence`` is the constructor's value (a number,
or a list to choose from uniformly, as a curriculum uses), else uniform from {0.1, 0.3, 0.5, 0.7};
``direction`` is the constructor's 0 or 1, else uniform from {0, 1}.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import ParameterError
from .task import Task, add_during, check_real, choice_accuracy

metadata = {
    "paper_name": "The analysis of visual motion: a comparison of neuronal and psychophysical performance",
    "paper_link": "https://www.jneurosci.org/content/12/12/4745",
    "tags": ["perceptual", "two-alternative", "supervised"],
}

DEFAULT_COHERENCES = (0.1, 0.3, 0.5, 0.7)
STIM_NOISE = 0.1


def discrimination_noise_scale(dt: float, stim_noise):
    """PsychRNN's input-noise standard deviation for the discrimination tasks (0.0447 at dt=10)."""
    return np.sqrt(2 * .01 * np.sqrt(10) * np.sqrt(dt) * stim_noise * stim_noise)


class PerceptualDiscrimination(Task):
    """Two-alternative forced choice: which of two noisy input channels has the higher mean?

    Parameters
    ----------
    dt, tau, T, N_batch, seed
        As :class:`~minirnn.tasks.Task` (``N_in = N_out = 2``).
    coherence : float or list of float, optional
        How much the chosen channel's mean exceeds the other's. A list draws uniformly from its
        values per trial; None draws from {0.1, 0.3, 0.5, 0.7}.
    direction : {0, 1}, optional
        The channel with the higher mean; None draws it per trial.
    """

    def __init__(self, dt, tau, T, N_batch, coherence=None, direction=None, seed=None):
        super().__init__(2, 2, dt, tau, T, N_batch, seed=seed)
        owner = type(self).__name__
        if coherence is not None and not np.isscalar(coherence):
            coherence = [check_real(owner, "coherence", c) for c in coherence]
            if not coherence:
                raise ParameterError(f"The 'coherence' parameter of {owner} must be a number, a "
                                     f"non-empty list of numbers or None. Got an empty list instead.")
        elif coherence is not None:
            check_real(owner, "coherence", coherence)
        if direction is not None and (isinstance(direction, (bool, np.bool_)) or direction not in (0, 1)):
            raise ParameterError(f"The 'direction' parameter of {owner} must be 0, 1 or None. "
                                 f"Got {direction!r} instead.")
        self.coherence = coherence
        self.direction = None if direction is None else int(direction)
        self.lo = 0.2  # target of the channel not chosen
        self.hi = 1.0  # target of the chosen channel

    # ---------------------------------------------------------------- vectorised path

    def sample_trial_params(self, rng: np.random.Generator, N_batch: int) -> dict[str, np.ndarray]:
        """Per-trial parameters, each an array of shape (N_batch,).

        Keys (PsychRNN's): ``coherence``, ``direction``, ``stim_noise``, ``onset_time``,
        ``stim_duration``.
        """
        if self.coherence is None:
            coherence = rng.choice(DEFAULT_COHERENCES, N_batch)
        elif np.isscalar(self.coherence):
            coherence = np.full(N_batch, float(self.coherence))
        else:
            coherence = rng.choice(np.asarray(self.coherence, dtype=np.float64), N_batch)
        if self.direction is None:
            direction = rng.integers(0, 2, N_batch)
        else:
            direction = np.full(N_batch, self.direction)
        return {
            "coherence": coherence,
            "direction": direction,
            "stim_noise": np.full(N_batch, STIM_NOISE),
            "onset_time": rng.random(N_batch) * self.T / 2.0,
            "stim_duration": rng.random(N_batch) * self.T / 4.0 + self.T / 8.0,
        }

    def build_trials(self, params: dict[str, np.ndarray], rng: np.random.Generator | None = None):
        """The whole batch from the parameter arrays, by broadcasting over (N_batch, N_steps).

        Returns
        -------
        x : ndarray, shape (N_batch, N_steps, 2)
        y : ndarray, shape (N_batch, N_steps, 2)
        mask : ndarray, shape (N_batch, N_steps, 2)
        """
        rng = self.rng if rng is None else rng
        B = len(params["direction"])
        t = self._times()                                                    # (N_steps,)
        onset = params["onset_time"][:, None]                                # (B, 1)
        stim_end = onset + params["stim_duration"][:, None]                  # (B, 1)
        stimulus = (onset < t) & (t < stim_end)                              # (B, N_steps)
        decision = t > stim_end + 20                                         # target on
        trained = ~(t < stim_end)  # mask on: the 20 ms gap is trained towards 0 (PsychRNN)

        chosen = params["direction"][:, None] == np.arange(2)                # (B, 2) one-hot
        evidence = 1 + params["coherence"][:, None] * chosen                 # (B, 2): 1+coh, 1
        target = np.where(chosen, self.hi, self.lo)                          # (B, 2)

        scale = discrimination_noise_scale(self.dt, params["stim_noise"])    # (B,)
        x = rng.standard_normal((B, self.N_steps, 2))                        # (B, N_steps, 2)
        x *= scale[:, None, None]                                            # noise everywhere
        add_during(x, stimulus, evidence)                                    # + evidence
        y = add_during(np.zeros((B, self.N_steps, 2)), decision, target)
        mask = np.repeat(trained[:, :, None], 2, axis=2).astype(np.float64)
        return x, y, mask

    # ---------------------------------------------------------------- PsychRNN per-step path

    def generate_trial_params(self, batch: int, trial: int) -> dict[str, Any]:
        """One trial's parameters (PsychRNN API), drawn from ``self.rng``."""
        return self._sample_one_trial()

    def trial_function(self, t: float, params: dict[str, Any]):
        """Input, target and mask at time ``t`` (PsychRNN's per-step definition).

        Returns
        -------
        x_t : ndarray, shape (2,)
        y_t : ndarray, shape (2,)
        mask_t : ndarray, shape (2,)
        """
        scale = discrimination_noise_scale(self.dt, params["stim_noise"])
        x_t = scale * self.rng.standard_normal(self.N_in)
        y_t = np.zeros(self.N_out)
        mask_t = np.ones(self.N_out)
        coh, direction = params["coherence"], params["direction"]
        onset, stim_end = params["onset_time"], params["onset_time"] + params["stim_duration"]
        if onset < t < stim_end:
            x_t[direction] += 1 + coh
            x_t[1 - direction] += 1
        if t > stim_end + 20:
            y_t[direction] = self.hi
            y_t[1 - direction] = self.lo
        if t < stim_end:
            mask_t = np.zeros(self.N_out)
        return x_t, y_t, mask_t

    def accuracy_function(self, correct_output, test_output, output_mask):
        """Fraction of trials whose masked-mean argmax output matches the target's (PsychRNN's rule).

        Trials with no trained step (mask all 0) are left out, unlike PsychRNN, which counts them
        as correct; NaN when no trial has one. See :func:`~minirnn.tasks.task.choice_accuracy`.
        """
        return choice_accuracy(correct_output, test_output, output_mask)
