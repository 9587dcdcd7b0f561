"""N-bit flip-flop: remember the sign of the last pulse on each of N independent channels.

After Sussillo & Barak (2013), "Opening the black box: low-dimensional dynamics in
high-dimensional recurrent neural networks", Neural Computation 25(3):626-649 (the 3-bit
flip-flop, 2**3 = 8 stable memory states), with the data conventions of Golub & Sussillo's
FixedPointFinder example (independent pulses per step with probability ``p_flip``, random sign).
Not PsychRNN's ``flip_flop.py``, which is an unfinished echo task.

Per trial, channel and step: a pulse starts with probability ``p_flip`` (per step), with sign +1
or -1 at random; it lasts ``pulse_duration`` ms (one step by default), a newer pulse on the same
channel cutting an older one short.

Channels (i = 0 ... N_bits - 1)::

    x[i]   the current pulse's sign while it lasts, 0 elsewhere (no input noise)
    y[i]   the sign of the latest pulse on channel i, from its first step on; 0 before the
           channel's first pulse
    mask   0 before the channel's first pulse (nothing to remember yet) and for
           ``response_time`` ms after each pulse starts (time to flip; 0 ms by default);
           1 elsewhere. Masks are per channel.

Accuracy: the fraction of masked (trial, step, channel) entries where ``sign(output)`` equals
the target's sign.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from .task import Task, check_int, check_real

metadata = {
    "paper_name": "Opening the black box: low-dimensional dynamics in high-dimensional "
                  "recurrent neural networks",
    "paper_link": "https://doi.org/10.1162/NECO_a_00409",
    "tags": ["working memory", "multistable", "supervised"],
}


class FlipFlop(Task):
    """Hold the sign of the latest +1/-1 pulse on each of ``N_bits`` channels.

    Parameters
    ----------
    dt, tau, T, N_batch, seed
        As :class:`~minirnn.tasks.Task` (``N_in = N_out = N_bits``).
    N_bits : int, default 3
        Independent memory channels.
    p_flip : float, default 0.02
        Probability, per step and channel, that a pulse starts (about 4 per channel in a
        200-step trial).
    pulse_duration : float, optional
        Pulse length in ms, > 0; default one step (``dt``).
    response_time : float, default 0.0
        Ms after each pulse start during which that channel's output is not trained.
    """

    def __init__(self, dt, tau, T, N_batch, N_bits=3, p_flip=0.02, pulse_duration=None,
                 response_time=0.0, seed=None):
        owner = type(self).__name__
        N_bits = check_int(owner, "N_bits", N_bits)
        super().__init__(N_bits, N_bits, dt, tau, T, N_batch, seed=seed)
        self.N_bits = N_bits
        self.p_flip = check_real(owner, "p_flip", p_flip, low=0, high=1)
        self.pulse_duration = (self.dt if pulse_duration is None else
                               check_real(owner, "pulse_duration", pulse_duration, low=0, low_open=True))
        self.response_time = check_real(owner, "response_time", response_time, low=0)

    # ---------------------------------------------------------------- vectorised path

    def sample_trial_params(self, rng: np.random.Generator, N_batch: int) -> dict[str, np.ndarray]:
        """Pulse starts: ``{"pulses": (N_batch, N_steps, N_bits)}`` with entries -1, 0 or +1."""
        shape = (N_batch, self.N_steps, self.N_bits)
        starts = rng.random(shape) < self.p_flip
        signs = 2 * rng.integers(0, 2, shape) - 1
        return {"pulses": np.where(starts, signs, 0).astype(np.float64)}

    def build_trials(self, params: dict[str, np.ndarray], rng: np.random.Generator | None = None):
        """The whole batch from the pulse starts (no noise, so ``rng`` is unused).

        Returns
        -------
        x, y, mask : ndarray, each of shape (N_batch, N_steps, N_bits)
        """
        pulses = params["pulses"]                                          # (B, N_steps, N_bits)
        k = np.arange(self.N_steps)[None, :, None]                         # (1, N_steps, 1)
        latest = np.maximum.accumulate(np.where(pulses != 0, k, -1), axis=1)  # step of latest pulse
        seen = latest >= 0                                                 # a pulse has come
        since = (k - latest) * self.dt                                     # ms since it started
        y = np.take_along_axis(pulses, np.maximum(latest, 0), axis=1) * seen  # its sign, held
        x = y * (since < self.pulse_duration)
        mask = (seen & (since >= self.response_time)).astype(np.float64)
        return x, y, mask

    # ---------------------------------------------------------------- PsychRNN per-step path

    def generate_trial_params(self, batch: int, trial: int) -> dict[str, Any]:
        """One trial's pulse starts (PsychRNN API), drawn from ``self.rng``."""
        return self._sample_one_trial()

    def trial_function(self, t: float, params: dict[str, Any]):
        """Input, target and mask at time ``t``, from the trial's pulse starts (per-step definition).

        Returns
        -------
        x_t, y_t, mask_t : ndarray, each of shape (N_bits,)
        """
        k = int(round(t / self.dt))
        x_t, y_t, mask_t = np.zeros(self.N_bits), np.zeros(self.N_bits), np.zeros(self.N_bits)
        for i in range(self.N_bits):
            starts = np.flatnonzero(params["pulses"][:k + 1, i])
            if starts.size == 0:
                continue                                   # nothing to remember yet: mask 0
            latest = starts[-1]
            y_t[i] = params["pulses"][latest, i]
            since = (k - latest) * self.dt
            x_t[i] = y_t[i] if since < self.pulse_duration else 0.0
            mask_t[i] = float(since >= self.response_time)
        return x_t, y_t, mask_t

    def accuracy_function(self, correct_output, test_output, output_mask):
        """Fraction of masked entries where ``sign(output) == sign(target)``.

        Parameters
        ----------
        correct_output, test_output, output_mask : ndarray, shape (..., N_batch, N_steps, N_bits)

        Returns
        -------
        float or ndarray of shape (...)
            One value per network when there are leading axes; NaN when nothing is masked in.
        """
        match = np.sign(test_output) == np.sign(correct_output)           # (..., B, T, N)
        weight = np.broadcast_to(output_mask, match.shape)
        with np.errstate(invalid="ignore", divide="ignore"):
            accuracy = np.sum(match * weight, axis=(-3, -2, -1)) / np.sum(weight, axis=(-3, -2, -1))
        return float(accuracy) if np.ndim(accuracy) == 0 else accuracy
