"""Delayed discrimination: compare two vibrotactile frequencies separated by a memory delay.

After Romo, Brody, Hernandez & Lemus (1999), "Neuronal correlates of parametric working memory in
the prefrontal cortex", Nature 399:470-473; PsychRNN's ``DelayedDiscrimination`` (Ehrlich et al.,
eNeuro 2021), reproduced exactly.

Trial (times in ms, absolute, trial time t = k * dt; each duration drawn unless given)::

    fore period   0 <= t < onset                     onset ~ U(0, T/8)
    stimulus 1    onset <= t < delay                 stim_duration_1 ~ U(0, T/4)
    delay         delay <= t < stimulus_2            delay_duration ~ U(0, T/4)
    stimulus 2    stimulus_2 <= t < decision         stim_duration_2 ~ U(0, T/4)
    decision      decision <= t < end                decision_duration ~ U(0, T/8)

Frequencies: a pair from (18, 10), (22, 14), (26, 18), (30, 22), (34, 26), presented in either
order (f1 > f2: ``choice`` 0; f1 < f2: ``choice`` 1).

Channels::

    x[0]   noise; + 0.4 + 0.8 (f - 10) / 24 during stimulus 1 (f = f1) and stimulus 2 (f = f2)
    x[1]   noise; + 0.4 + 0.8 (34 - f) / 24 during the same periods (inverted coding)
    y      y[choice] = hi = 1.0, y[other] = lo = 0.2 during the decision period, 0 elsewhere
    mask   1 during the decision period, 0 elsewhere

Input noise: ``sqrt(2 * 0.01 * sqrt(10) * sqrt(dt) * stim_noise**2) * N(0, 1)``, ``stim_noise =
0.1``, as in :mod:`~minirnn.tasks.perceptual_discrimination`.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from .perceptual_discrimination import STIM_NOISE, discrimination_noise_scale
from .task import Task, add_during, check_real, choice_accuracy

metadata = {
    "paper_name": "Neuronal correlates of parametric working memory in the prefrontal cortex",
    "paper_link": "https://www.nature.com/articles/20939",
    "tags": ["working memory", "two-alternative", "delayed response", "supervised"],
}

# (period length argument, d): when not given, the length is drawn from U(0, T / d)
_PERIODS = (("onset_time", 8.0), ("stim_duration_1", 4.0), ("delay_duration", 4.0),
            ("stim_duration_2", 4.0), ("decision_duration", 8.0))


def _scale_p(f):
    """Frequency coded into [0.4, 1.2], increasing (channel 0)."""
    return 0.4 + 0.8 * (f - 10) / (34 - 10)


def _scale_n(f):
    """Frequency coded into [0.4, 1.2], decreasing (channel 1)."""
    return 0.4 + 0.8 * (34 - f) / (34 - 10)


class DelayedDiscrimination(Task):
    """Was the first frequency higher or lower than the second? (Romo-style f1 vs f2.)

    Parameters
    ----------
    dt, tau, T, N_batch, seed
        As :class:`~minirnn.tasks.Task` (``N_in = N_out = 2``).
    onset_time, stim_duration_1, delay_duration, stim_duration_2, decision_duration : float, optional
        Fixed period lengths in ms (absolute, >= 0); None draws each per trial (see the module
        docstring).
    """

    def __init__(self, dt, tau, T, N_batch, onset_time=None, stim_duration_1=None,
                 delay_duration=None, stim_duration_2=None, decision_duration=None, seed=None):
        super().__init__(2, 2, dt, tau, T, N_batch, seed=seed)
        given = dict(onset_time=onset_time, stim_duration_1=stim_duration_1,
                     delay_duration=delay_duration, stim_duration_2=stim_duration_2,
                     decision_duration=decision_duration)
        for name, value in given.items():
            if value is not None:
                check_real(type(self).__name__, name, value, low=0)
            setattr(self, name, value)
        self.frequency_pairs = [(18, 10), (22, 14), (26, 18), (30, 22), (34, 26)]
        self.decision_options = [">", "<"]
        self.lo = 0.2  # target of the channel not chosen
        self.hi = 1.0  # target of the chosen channel

    # ---------------------------------------------------------------- vectorised path

    def _durations(self, rng: np.random.Generator, N_batch: int) -> list[np.ndarray]:
        """The five period lengths, each (N_batch,): given values, else U(0, T/8 or T/4)."""
        out = []
        for name, divisor in _PERIODS:
            value = getattr(self, name)
            if value is None:
                out.append(rng.uniform(0, 1, N_batch) * self.T / divisor)
            else:
                out.append(np.full(N_batch, float(value)))
        return out

    def sample_trial_params(self, rng: np.random.Generator, N_batch: int) -> dict[str, np.ndarray]:
        """Per-trial parameters, each an array of shape (N_batch,).

        Keys (PsychRNN's): period starts ``stimulus_1``, ``delay``, ``stimulus_2``, ``decision``,
        ``end``; ``stim_noise``; frequencies ``f1``, ``f2``; ``choice`` (0: f1 > f2, 1: f1 < f2).
        """
        onset, stim_1, delay, stim_2, decision = self._durations(rng, N_batch)
        pairs = np.asarray(self.frequency_pairs)                          # (5, 2): (high, low)
        pair = pairs[rng.integers(0, len(pairs), N_batch)]                # (B, 2)
        choice = rng.integers(0, 2, N_batch)                              # 0 = '>', 1 = '<'
        f1 = np.where(choice == 0, pair[:, 0], pair[:, 1])
        f2 = np.where(choice == 0, pair[:, 1], pair[:, 0])
        return {
            "stimulus_1": onset,
            "delay": onset + stim_1,
            "stimulus_2": onset + stim_1 + delay,
            "decision": onset + stim_1 + delay + stim_2,
            "end": onset + stim_1 + delay + stim_2 + decision,
            "stim_noise": np.full(N_batch, STIM_NOISE),
            "f1": f1,
            "f2": f2,
            "choice": choice,
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
        B = len(params["choice"])
        t = self._times()                                                  # (N_steps,)
        start = {key: params[key][:, None] for key in ("stimulus_1", "delay", "stimulus_2",
                                                       "decision", "end")}  # each (B, 1)
        stimulus_1 = (start["stimulus_1"] <= t) & (t < start["delay"])     # (B, N_steps)
        stimulus_2 = (start["stimulus_2"] <= t) & (t < start["decision"])
        decision = (start["decision"] <= t) & (t < start["end"])

        code_1 = np.stack([_scale_p(params["f1"]), _scale_n(params["f1"])], axis=-1)  # (B, 2)
        code_2 = np.stack([_scale_p(params["f2"]), _scale_n(params["f2"])], axis=-1)
        chosen = params["choice"][:, None] == np.arange(2)                 # (B, 2) one-hot
        target = np.where(chosen, self.hi, self.lo)                        # (B, 2)

        scale = discrimination_noise_scale(self.dt, params["stim_noise"])  # (B,)
        x = rng.standard_normal((B, self.N_steps, 2))                      # (B, N_steps, 2)
        x *= scale[:, None, None]
        add_during(x, stimulus_1, code_1)
        add_during(x, stimulus_2, code_2)
        y = add_during(np.zeros((B, self.N_steps, 2)), decision, target)
        mask = np.repeat(decision[:, :, None], 2, axis=2).astype(np.float64)
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
        mask_t = np.zeros(self.N_out)
        f1, f2, choice = params["f1"], params["f2"], params["choice"]
        if params["stimulus_1"] <= t < params["delay"]:
            x_t[0] += _scale_p(f1)
            x_t[1] += _scale_n(f1)
        if params["stimulus_2"] <= t < params["decision"]:
            x_t[0] += _scale_p(f2)
            x_t[1] += _scale_n(f2)
        if params["decision"] <= t < params["end"]:
            y_t[choice] = self.hi
            y_t[1 - choice] = self.lo
            mask_t = np.ones(self.N_out)
        return x_t, y_t, mask_t

    def accuracy_function(self, correct_output, test_output, output_mask):
        """Fraction of trials whose masked-mean argmax output matches the target's (PsychRNN's rule).

        Trials with no trained step (mask all 0) are left out, unlike PsychRNN, which counts them
        as correct; NaN when no trial has one. See :func:`~minirnn.tasks.task.choice_accuracy`.
        """
        return choice_accuracy(correct_output, test_output, output_mask)
