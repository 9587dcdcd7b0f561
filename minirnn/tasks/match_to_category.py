"""Match to category: report which arc of a ring a stimulus direction falls in.

After Freedman & Assad (2006), "Experience-dependent representation of visual categories in
parietal cortex", Nature 443:85-88; PsychRNN's ``MatchToCategory`` (Ehrlich et al., eNeuro 2021),
reproduced exactly.

Trial (fixed times in ms, trial time t = k * dt; so T >= 2000)::

    fixation   0 <= t < 200
    stimulus   200 <= t < 1200      a Gaussian bump on the input ring, centred on `angle`
    decision   1200 <= t < 2000     report the category
    (after)    t >= 2000            target 0, mask 0

Per trial: ``angle ~ U(0, 2 pi)``, ``category = int(angle / (2 pi / N_out))`` (N_out equal arcs).

Channels::

    x[i]   noise; + exp(-d_i**2 / 2) / sqrt(2 pi) during the stimulus, where d_i = theta_i - angle
           wrapped to [-pi, pi] and theta = linspace(0, 2 pi, N_in) (both ends included, so
           channels 0 and N_in - 1 sit at the same angle, as in PsychRNN)
    y[c]   1 in the category's channel during the decision period, 0 elsewhere
    mask   1 during the decision period, 0 elsewhere

Input noise: ``(1 / (2 dt)) * stim_noise * N(0, 1)``, ``stim_noise = 0.1`` (0.005 at dt = 10).
"""
from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import ParameterError
from .task import Task, add_during, check_int, choice_accuracy

metadata = {
    "paper_name": "Experience-dependent representation of visual categories in parietal cortex",
    "paper_link": "https://www.nature.com/articles/nature05078",
    "tags": ["categorization", "ring input", "supervised"],
}

ONSET_TIME = 200.0
INPUT_DURATION = 1000.0
OUTPUT_DURATION = 800.0
STIM_NOISE = 0.1


class MatchToCategory(Task):
    """Classify a direction on a ring of ``N_in`` inputs into ``N_out`` equal arcs.

    Parameters
    ----------
    dt, tau, T, N_batch, seed
        As :class:`~minirnn.tasks.Task`. ``T`` must be at least 2000 ms (the periods are fixed).
    N_in : int, default 16
        Input channels, evenly spaced on the ring.
    N_out : int, default 2
        Categories (output channels).
    """

    def __init__(self, dt, tau, T, N_batch, N_in=16, N_out=2, seed=None):
        owner = type(self).__name__
        check_int(owner, "N_in", N_in)
        check_int(owner, "N_out", N_out)
        end = ONSET_TIME + INPUT_DURATION + OUTPUT_DURATION
        if isinstance(T, (int, float, np.number)) and not isinstance(T, bool) and T < end:
            raise ParameterError(f"The 'T' parameter of {owner} must be at least {end:g} ms: the "
                                 f"stimulus ends at {ONSET_TIME + INPUT_DURATION:g} ms and the "
                                 f"decision period at {end:g} ms. Got {T!r} instead.")
        super().__init__(N_in, N_out, dt, tau, T, N_batch, seed=seed)

    def _ring_bump(self, angle: np.ndarray) -> np.ndarray:
        """Gaussian pdf of each channel's angular distance to ``angle``: (B,) -> (B, N_in)."""
        theta = np.linspace(0, 2 * np.pi, self.N_in)                       # channel angles
        d = theta - angle[:, None]                                         # (B, N_in)
        d = np.where(d > np.pi, -2 * np.pi + d, np.where(d < -np.pi, 2 * np.pi + d, d))
        return np.exp(-d**2 / 2.0) / np.sqrt(2 * np.pi)

    # ---------------------------------------------------------------- vectorised path

    def sample_trial_params(self, rng: np.random.Generator, N_batch: int) -> dict[str, np.ndarray]:
        """Per-trial parameters, each an array of shape (N_batch,).

        Keys (PsychRNN's): ``angle``, ``category``, ``onset_time``, ``input_dur``, ``output_dur``,
        ``stim_noise``.
        """
        angle = 2 * np.pi * rng.random(N_batch)
        return {
            "angle": angle,
            # int(angle / arc) as in PsychRNN; the clip guards angle/arc rounding up to N_out
            "category": np.minimum((angle / (2 * np.pi / self.N_out)).astype(np.int64),
                                   self.N_out - 1),
            "onset_time": np.full(N_batch, ONSET_TIME),
            "input_dur": np.full(N_batch, INPUT_DURATION),
            "output_dur": np.full(N_batch, OUTPUT_DURATION),
            "stim_noise": np.full(N_batch, STIM_NOISE),
        }

    def build_trials(self, params: dict[str, np.ndarray], rng: np.random.Generator | None = None):
        """The whole batch from the parameter arrays, by broadcasting over (N_batch, N_steps).

        Returns
        -------
        x : ndarray, shape (N_batch, N_steps, N_in)
        y : ndarray, shape (N_batch, N_steps, N_out)
        mask : ndarray, shape (N_batch, N_steps, N_out)
        """
        rng = self.rng if rng is None else rng
        B = len(params["angle"])
        t = self._times()                                                  # (N_steps,)
        onset = params["onset_time"][:, None]                              # (B, 1)
        stim_end = onset + params["input_dur"][:, None]
        stimulus = (onset <= t) & (t < stim_end)                           # (B, N_steps)
        decision = (stim_end <= t) & (t < stim_end + params["output_dur"][:, None])

        bump = self._ring_bump(params["angle"])                            # (B, N_in)
        category = params["category"][:, None] == np.arange(self.N_out)    # (B, N_out) one-hot

        scale = (1. / (2 * self.dt)) * params["stim_noise"]                # (B,)
        x = rng.standard_normal((B, self.N_steps, self.N_in))              # (B, N_steps, N_in)
        x *= scale[:, None, None]
        add_during(x, stimulus, bump)
        y = add_during(np.zeros((B, self.N_steps, self.N_out)), decision, category.astype(np.float64))
        mask = np.repeat(decision[:, :, None], self.N_out, axis=2).astype(np.float64)
        return x, y, mask

    # ---------------------------------------------------------------- PsychRNN per-step path

    def generate_trial_params(self, batch: int, trial: int) -> dict[str, Any]:
        """One trial's parameters (PsychRNN API), drawn from ``self.rng``."""
        return self._sample_one_trial()

    def trial_function(self, t: float, params: dict[str, Any]):
        """Input, target and mask at time ``t`` (PsychRNN's per-step definition).

        Returns
        -------
        x_t : ndarray, shape (N_in,)
        y_t : ndarray, shape (N_out,)
        mask_t : ndarray, shape (N_out,)
        """
        x_t = (1. / (2 * self.dt)) * params["stim_noise"] * self.rng.standard_normal(self.N_in)
        y_t = np.zeros(self.N_out)
        mask_t = np.zeros(self.N_out)
        stim_end = params["onset_time"] + params["input_dur"]
        if params["onset_time"] <= t < stim_end:
            x_t += self._ring_bump(np.array([params["angle"]]))[0]
        if stim_end <= t < stim_end + params["output_dur"]:
            y_t[params["category"]] += 1.
            mask_t = np.ones(self.N_out)
        return x_t, y_t, mask_t

    def accuracy_function(self, correct_output, test_output, output_mask):
        """Fraction of trials whose masked-mean argmax output matches the target's (PsychRNN's rule).

        Trials with no trained step (mask all 0) are left out, unlike PsychRNN, which counts them
        as correct; NaN when no trial has one. See :func:`~minirnn.tasks.task.choice_accuracy`.
        """
        return choice_accuracy(correct_output, test_output, output_mask)
