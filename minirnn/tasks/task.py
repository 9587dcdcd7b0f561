"""The Task base class: how a cognitive task turns into arrays ``(x, y, mask)`` for training.

A task makes one batch of ``N_batch`` trials at a time::

    x     (N_batch, N_steps, N_in)    inputs u_k, step k at trial time t = k * dt
    y     (N_batch, N_steps, N_out)   targets
    mask  (N_batch, N_steps, N_out)   1 where the loss looks at the output, 0 elsewhere
    trial_params  (N_batch,)          object ndarray of per-trial dicts (PsychRNN's), a TrialParams

with ``N_steps = ceil(T / dt)`` and ``alpha = dt / tau`` (DESIGN.md §3). There are two ways to
define a task:

* **PsychRNN's per-trial path** (compatible): ``generate_trial_params(batch, trial) -> dict`` and
  ``trial_function(t, params) -> (x_t, y_t, mask_t)``. The base class calls ``trial_function``
  for every step of every trial. A PsychRNN task file runs unchanged, even when it draws from
  ``np.random`` (then it is reproducible only through ``np.random.seed``).
* **The vectorised path** (fast; used by the built-in tasks): ``sample_trial_params(rng,
  N_batch) -> dict of (N_batch, ...) arrays`` and ``build_trials(params, rng) -> (x, y, mask)``,
  built with broadcasting over ``(N_batch, N_steps)``; no Python loop over trials or steps.

``generate_batch(rng)`` picks the vectorised path when the class (or a subclass) defines it, unless
a subclass overrides the per-trial methods below it, in which case the override wins.

Randomness (DESIGN.md §5): every draw comes from a ``numpy.random.Generator``. ``seed`` may be an
int, a ``SeedSequence``, a ``Generator`` or None; None takes its root entropy from NumPy's global
state (``np.random.randint``), so a PsychRNN script that calls ``np.random.seed(s)`` first stays
reproducible. ``state_dict()`` / ``load_state_dict()`` save and restore the stream and the batch
counter, for checkpoints.
"""
from __future__ import annotations

import copy
import inspect
import itertools
import numbers
from collections.abc import Mapping
from typing import Any, Iterator

import numpy as np

from ..errors import NonFiniteError, ParameterError, ParameterTypeError, ShapeError, did_you_mean, suggest
from .task_params import TaskParams, _copy_or_share

_PER_TRIAL_METHODS = ("generate_trial_params", "trial_function", "generate_trial")
_VECTORISED_METHODS = ("sample_trial_params", "build_trials")
_PRIVATE_STATE = ("batch_index",)  # a public attribute that is state, not a task parameter


# --------------------------------------------------------------------------------------------
# Validation helpers (messages: what, where, what was given, what is allowed; STYLE.md P9)
# --------------------------------------------------------------------------------------------

def check_real(owner: str, name: str, value: Any, *, low: float | None = None,
               low_open: bool = False, high: float | None = None) -> Any:
    """Check that ``value`` is a finite real number within bounds; return it unchanged."""
    rule = "a finite number"
    if low is not None:
        rule += f" {'>' if low_open else '>='} {low}"
    if high is not None:
        rule += f" and <= {high}"
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise ParameterTypeError(f"The {name!r} parameter of {owner} must be {rule}. "
                                 f"Got {value!r} ({type(value).__name__}) instead.")
    bad = (not np.isfinite(value) or (low is not None and (value <= low if low_open else value < low))
           or (high is not None and value > high))
    if bad:
        raise ParameterError(f"The {name!r} parameter of {owner} must be {rule}. Got {value!r} instead.")
    return value


def check_int(owner: str, name: str, value: Any, *, low: int = 1) -> int:
    """Check that ``value`` is an int (not a bool) >= ``low``; return it as a Python int."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise ParameterTypeError(f"The {name!r} parameter of {owner} must be an integer >= {low}. "
                                 f"Got {value!r} ({type(value).__name__}) instead.")
    if value < low:
        raise ParameterError(f"The {name!r} parameter of {owner} must be an integer >= {low}. "
                             f"Got {value!r} instead.")
    return int(value)


def make_rng(seed: Any, owner: str = "Task") -> np.random.Generator:
    """Turn ``seed`` (int, SeedSequence, Generator or None) into a ``numpy.random.Generator``.

    None takes its root entropy from NumPy's global state (``np.random.randint(2**31)``), so a
    script that called ``np.random.seed(s)`` gets the same stream on every run. A Generator is
    used as it is (shared, not copied). Anything else becomes a PCG64 Generator.
    """
    if seed is None:
        seed = int(np.random.randint(2**31))  # the global state: PsychRNN scripts seed it
    if isinstance(seed, np.random.Generator):
        return seed
    if isinstance(seed, np.random.SeedSequence):
        return np.random.Generator(np.random.PCG64(seed))
    if isinstance(seed, numbers.Integral) and not isinstance(seed, (bool, np.bool_)):
        if seed < 0:
            raise ParameterError(f"The 'seed' parameter of {owner} must be a non-negative integer, "
                                 f"a SeedSequence, a Generator or None. Got {seed!r} instead.")
        return np.random.Generator(np.random.PCG64(np.random.SeedSequence(int(seed))))
    raise ParameterTypeError(f"The 'seed' parameter of {owner} must be a non-negative integer, a "
                             f"numpy.random.SeedSequence, a numpy.random.Generator or None. "
                             f"Got {seed!r} ({type(seed).__name__}) instead.")


def choice_accuracy(correct_output: np.ndarray, test_output: np.ndarray,
                    output_mask: np.ndarray) -> float | np.ndarray:
    """PsychRNN's accuracy rule for choice tasks: the channel with the largest masked mean wins.

    Parameters
    ----------
    correct_output : ndarray, shape (..., N_batch, N_steps, N_out)
        Targets ``y``.
    test_output : ndarray, shape (..., N_batch, N_steps, N_out)
        Network outputs; leading network axes ``(K, ...)`` are allowed.
    output_mask : ndarray, shape (..., N_batch, N_steps, N_out)

    Returns
    -------
    float or ndarray of shape (...)
        Fraction of the scored trials where ``argmax_c mean_t(output * mask)`` equals the same on
        ``y``; one value per network when there are leading axes. NaN when no trial is scored.

    Notes
    -----
    A trial whose mask is 0 at every step and channel (no trained step) is not scored: it is left
    out of the fraction. This departs from PsychRNN, which counts such a trial as correct whatever
    the output (both masked means are all zero, and argmax of zeros is channel 0 on both sides).
    DelayedDiscrimination makes such trials, as PsychRNN's does: its decision period, drawn from
    U(0, T/8), can be shorter than one step (about 2% of trials at dt=10, 10% at dt=50).
    """
    shapes = {name: np.shape(a) for name, a in (("correct_output", correct_output), ("test_output", test_output),
                                                 ("output_mask", output_mask))}
    try:
        np.broadcast_shapes(*shapes.values())
        fits = min(len(shape) for shape in shapes.values()) >= 3
    except ValueError:
        fits = False
    if not fits:  # (an ensemble's outputs (K, ...) against shared targets broadcast)
        raise ShapeError("choice_accuracy needs arrays (..., N_batch, N_steps, N_out) that broadcast together; got "
                         + ", ".join(f"{name} {shape}" for name, shape in shapes.items()) + ".")
    chosen = np.argmax(np.mean(test_output * output_mask, axis=-2), axis=-1)     # (..., B)
    truth = np.argmax(np.mean(correct_output * output_mask, axis=-2), axis=-1)   # (..., B)
    scored = np.any(np.asarray(output_mask) != 0, axis=(-2, -1))                 # (..., B)
    return fraction_of_scored(chosen == truth, scored)


def fraction_of_scored(correct: np.ndarray, scored: np.ndarray) -> float | np.ndarray:
    """Mean of ``correct`` over the trials (last axis) where ``scored`` is True; NaN if there are none.

    Parameters
    ----------
    correct, scored : ndarray of bool, shapes broadcasting to (..., N_batch)

    Returns
    -------
    float, or ndarray of shape (...) when there are leading axes.
    """
    correct, scored = np.broadcast_arrays(correct, scored)
    with np.errstate(invalid="ignore", divide="ignore"):  # 0 / 0 = NaN: nothing was scored
        accuracy = np.sum(correct & scored, axis=-1) / np.sum(scored, axis=-1)
    return float(accuracy) if np.ndim(accuracy) == 0 else accuracy


def add_during(out: np.ndarray, active: np.ndarray, level: np.ndarray) -> np.ndarray:
    """``out[b, k, c] += level[b, c]`` wherever ``active[b, k]``, in place; returns ``out``.

    Parameters
    ----------
    out : ndarray, shape (B, N_steps, N)
    active : ndarray of bool, shape (B, N_steps)
        The period (stimulus, decision, ...) of each trial.
    level : ndarray, shape (B, N)
        What each channel gets during the period.

    Notes
    -----
    A broadcast product ``active[:, :, None] * level[:, None, :]`` is slow when N is small (NumPy's
    inner loops then run over 2 elements), so few channels go one (B, N_steps) plane at a time.
    Both ways add exactly ``level`` (or nothing), so the result is bit-identical to a per-step
    ``x_t[c] += level``.
    """
    if out.shape[-1] <= 4:
        for c in range(out.shape[-1]):
            out[..., c] += active * level[:, c, None]
    else:
        np.add(out, level[:, None, :], out=out, where=active[:, :, None])
    return out


def _defined_in(cls: type, name: str) -> type | None:
    """The class in ``cls``'s MRO whose body defines ``name`` (None when nobody does)."""
    return next((klass for klass in cls.__mro__ if name in vars(klass)), None)


def _describe(value) -> str:
    """A short phrase for what a task method returned: "None", "a tuple of 2 values", "a list"."""
    if value is None:
        return "None (is a return statement missing?)"
    if isinstance(value, (tuple, list)):
        return f"a {type(value).__name__} of {len(value)} values"
    if isinstance(value, np.ndarray):
        return f"an array of shape {value.shape}"
    return f"a {type(value).__name__}"


def _three(result, method: str, expected: str, where: str = ""):
    """``result`` unpacked into three values, or a ShapeError naming ``method`` and what it returned."""
    try:
        first, second, third = result
    except (TypeError, ValueError):  # None, a number, or a sequence of another length
        raise ShapeError(f"{method} returned {_describe(result)}{where}; it must return three arrays "
                         f"{expected}.") from None
    return first, second, third


def _step_value_error(method: str, name: str, value, size: int, t) -> Exception:
    """The error for a ``trial_function`` value that cannot be stored in a float row of ``size``."""
    try:
        np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):  # the shape may be right: the entries are not numbers
        try:
            kind = f"dtype {np.asarray(value).dtype}"
        except ValueError:  # a ragged list
            kind = f"a ragged {type(value).__name__}"
        return ParameterTypeError(f"{method} returned {name} of {kind} at t={t!r}, which cannot be stored as "
                                  f"float64; it must be numbers, shape ({size},). Got {value!r:.80}.")
    return ShapeError(f"{method} returned {name} with shape {np.shape(value)} at t={t!r}; it must be ({size},).")


# --------------------------------------------------------------------------------------------
# The per-trial dicts of a batch: PsychRNN's object array
# --------------------------------------------------------------------------------------------

def _plain(value):
    """``value`` as a plain ndarray when it is a TrialParams (so results that are not dicts are plain)."""
    return value.view(np.ndarray) if isinstance(value, TrialParams) else value


class TrialParams(np.ndarray):
    """The per-trial parameter dicts of one batch: PsychRNN's ``np.array(params)``, plus columns.

    PsychRNN's ``get_trial_batch()`` returns a 1-D ndarray of dtype object whose items are the
    trials' dicts. This is such an array (a thin ndarray subclass), so a PsychRNN script sees the
    same thing: ``.shape == (N_batch,)``, ``.tolist()``, iteration, ``trial_params[i]["coherence"]``,
    boolean masks (``trial_params[correct]``), index arrays and slices (object arrays again),
    ``np.save``. The items are real dicts, so ``trial_params[0]["coherence"] = 0.5`` sticks.

    One addition: ``trial_params["coherence"]`` (a string index) reads one parameter of every
    trial as an array of shape ``trial_params.shape + value shape``, from the dicts as they are
    now. Results that are not dicts (``trial_params == other`` and other ufuncs) are plain
    ndarrays, and pickling (``np.save``) writes a plain object array, so a saved file loads
    without minirnn, as PsychRNN's do.

    Parameters
    ----------
    arrays : dict of str to array_like, each of shape (N_batch, ...)
        What ``sample_trial_params`` returns. Trial ``i``'s dict maps each key to ``value[i]``: a
        Python scalar for a 1-D array (as PsychRNN's dicts hold), the row ``value[i]`` (a view)
        otherwise. A scalar (0-d) value is given to every trial.
    N_batch : int, optional
        Number of trials; default the arrays' common length.

    Notes
    -----
    The dicts are made when the batch is made (``N_batch`` dicts; about 80 us for 128 trials of
    5 keys, a few percent of building the batch). Per-trial tasks' object arrays are viewed as
    this class at no cost.
    """

    def __new__(cls, arrays: dict[str, Any], N_batch: int | None = None) -> "TrialParams":
        arrays = {key: np.asarray(value) for key, value in arrays.items()}
        lengths = {key: len(value) for key, value in arrays.items() if value.ndim}
        if N_batch is None:
            if not lengths:
                raise ShapeError("TrialParams needs N_batch when no parameter is an array of shape "
                                 "(N_batch, ...).")
            N_batch = next(iter(lengths.values()))
        wrong = {key: n for key, n in lengths.items() if n != N_batch}
        if wrong:
            key, n = next(iter(wrong.items()))
            raise ShapeError(f"Trial parameter {key!r} has {n} entries along its first axis; every "
                             f"parameter from sample_trial_params must have shape (N_batch, ...) "
                             f"with N_batch={N_batch}.")
        # One Python list per key: .tolist() turns a 1-D array into Python scalars in one C call;
        # a higher-dimensional array gives its rows; a 0-d value is repeated for every trial.
        keys = list(arrays)
        columns = [value.tolist() if value.ndim == 1 else list(value) if value.ndim
                   else [value.item()] * N_batch for value in arrays.values()]
        rows = zip(*columns) if keys else ((),) * N_batch
        trials = map(dict, map(zip, itertools.repeat(keys), rows))  # {key: value[i]} for each i
        return np.fromiter(trials, dtype=object, count=N_batch).view(cls)

    def __getitem__(self, index):
        if isinstance(index, str):
            return self._column(index)
        return super().__getitem__(index)

    def _column(self, key: str) -> np.ndarray:
        """Parameter ``key`` of every trial, shape ``self.shape + value shape``."""
        try:
            values = [trial[key] for trial in self.flat]
        except (KeyError, TypeError, IndexError):
            trial = next((t for t in self.flat if not isinstance(t, Mapping) or key not in t), None)
            if trial is None:
                raise
            if not isinstance(trial, Mapping):
                raise TypeError(f"trial_params[{key!r}] needs dicts, but a trial's parameters are "
                                f"a {type(trial).__name__}.") from None
            raise KeyError(f"No trial parameter {key!r} in this batch (a trial has "
                           f"{sorted(trial)}){did_you_mean(key, trial)}") from None
        try:
            column = np.array(values)
        except ValueError:  # values of different shapes: one object per trial
            column = np.fromiter(values, dtype=object, count=len(values))
        return column.reshape(self.shape + column.shape[1:])

    def __array_ufunc__(self, ufunc, method, *inputs, out=None, **kwargs):
        # Comparisons and other ufuncs give plain ndarrays (booleans are not trial parameters).
        if out is not None:
            kwargs["out"] = tuple(_plain(o) for o in out)
        result = getattr(ufunc, method)(*(_plain(i) for i in inputs), **kwargs)
        if out is not None:
            return out[0] if len(out) == 1 else out
        return result

    def __reduce_ex__(self, protocol):
        # Pickle (np.save, multiprocessing) as PsychRNN's plain object array.
        return self.view(np.ndarray).__reduce_ex__(protocol)

    def __reduce__(self):
        return self.view(np.ndarray).__reduce__()


# --------------------------------------------------------------------------------------------
# The base class
# --------------------------------------------------------------------------------------------

class Task:
    """Base class of every task (PsychRNN's ``Task``, plus a vectorised path and explicit seeds).

    Parameters
    ----------
    N_in, N_out : int
        Number of input and output channels.
    dt : float
        Time step (ms by convention), > 0.
    tau : float or array_like of shape (N_rec,)
        Time constant(s), > 0. An array makes ``alpha`` an array (per-unit time constants).
    T : float
        Trial duration, >= dt.
    N_batch : int
        Trials per batch.
    seed : int, numpy.random.SeedSequence, numpy.random.Generator or None
        Source of the task's random stream ``self.rng`` (see the module docstring).

    Attributes
    ----------
    alpha : float or ndarray
        ``dt / tau``.
    N_steps : int
        ``ceil(T / dt)``; step ``k`` happens at trial time ``k * dt``.
    rng : numpy.random.Generator
        The task's own stream: batches drawn with ``rng=None`` come from it. Setting it to anything
        but a Generator (a PsychRNN task's own ``RandomState``) is a ParameterError: keep such a
        generator under another name.
    batch_index : int
        Number of batches drawn from the task's own stream so far (0 at the start).
    """

    def __init__(self, N_in: int, N_out: int, dt: float, tau, T: float, N_batch: int, seed=None):
        owner = type(self).__name__
        self.N_in = check_int(owner, "N_in", N_in)
        self.N_out = check_int(owner, "N_out", N_out)
        self.N_batch = check_int(owner, "N_batch", N_batch)
        self.dt = check_real(owner, "dt", dt, low=0, low_open=True)
        self.tau = self._check_tau(owner, tau)
        self.T = check_real(owner, "T", T, low=0, low_open=True)
        if T < dt:
            raise ParameterError(f"The 'T' parameter of {owner} must be at least dt={dt!r} so that a "
                                 f"trial has one step. Got {T!r} instead.")
        self.alpha = dt / self.tau
        self.N_steps = int(np.ceil(T / dt))
        self.rng = make_rng(seed, owner)
        self.batch_index = 0

    @staticmethod
    def _check_tau(owner: str, tau):
        if isinstance(tau, numbers.Real) and not isinstance(tau, (bool, np.bool_)):
            return check_real(owner, "tau", tau, low=0, low_open=True)
        try:
            if isinstance(tau, (str, bytes)):
                raise TypeError(tau)
            array = np.array(tau, dtype=np.float64)
        except (TypeError, ValueError):
            raise ParameterTypeError(f"The 'tau' parameter of {owner} must be a positive number or a "
                                     f"1-D array of positive numbers. Got {tau!r} instead.") from None
        if array.ndim > 1 or array.size == 0 or not np.all(np.isfinite(array)) or np.any(array <= 0):
            raise ParameterError(f"The 'tau' parameter of {owner} must be a positive number or a "
                                 f"non-empty 1-D array of finite positive numbers. Got {tau!r} instead.")
        return array if array.ndim == 1 else float(array)

    # ---------------------------------------------------------------- the random stream

    @property
    def rng(self) -> np.random.Generator:
        """The task's own stream (a ``numpy.random.Generator``); batches with ``rng=None`` use it."""
        return self._rng

    @rng.setter
    def rng(self, value: np.random.Generator) -> None:
        # minirnn saves this stream in checkpoints, reseeds it per network of an ensemble and lends
        # it to per-trial tasks during a batch: all of that needs a Generator. PsychRNN's Task has
        # no `rng`, so a ported task may use the name for its own generator; say so where it happens.
        if not isinstance(value, np.random.Generator):
            raise ParameterError(
                f"{type(self).__name__} sets self.rng to a {type(value).__name__}, but Task.rng is "
                f"minirnn's numpy.random.Generator: the task's trial stream, seeded by seed=..., saved "
                f"in checkpoints and reseeded for each network of an ensemble. Keep your own generator "
                f"under another name (self.random_state = np.random.RandomState(...)), or draw from "
                f"self.rng with Generator methods (integers, random, standard_normal, choice).")
        self._rng = value

    # ---------------------------------------------------------------- parameters and repr

    def get_task_params(self) -> TaskParams:
        """A copy of the task's parameters (never the task's own ``__dict__``).

        Returns
        -------
        TaskParams
            A dict: ``N_batch, N_in, N_out, dt, tau, T, alpha, N_steps`` and the subclass's own
            settings (``coherence``, ``direction``, ``lo``, ``hi``, ...). Deep copies: editing the
            dict (for example adding ``N_rec``) leaves the task unchanged. A value that cannot be
            copied (a generator, a lock, an open file) is passed by reference instead. The random
            stream and the batch counter are state, not parameters, and are not included. The dict
            remembers which keys are the task's, so ``Basic(params)`` accepts them whatever their
            names (``N_ring`` is not taken for a misspelt ``N_in``).
        """
        settings = {key: _copy_or_share(value) for key, value in vars(self).items()
                    if not key.startswith("_") and key not in _PRIVATE_STATE}
        return TaskParams(settings, task_keys=settings)

    def __repr__(self) -> str:
        names = [p for p in inspect.signature(type(self).__init__).parameters
                 if p not in ("self", "seed") and hasattr(self, p)]
        return f"{type(self).__name__}({', '.join(f'{p}={getattr(self, p)!r}' for p in names)})"

    # ---------------------------------------------------------------- PsychRNN's per-trial path

    def generate_trial_params(self, batch: int, trial: int) -> dict[str, Any]:
        """Parameters of one trial (PsychRNN API; a per-trial subclass must define it).

        Parameters
        ----------
        batch : int
            1-based number of the batch (``batch_index + 1``), as in PsychRNN.
        trial : int
            Index of the trial within its batch, ``0 <= trial < N_batch``.
        """
        raise NotImplementedError(
            f"{type(self).__name__} must define generate_trial_params(batch, trial) and "
            "trial_function(t, params) (PsychRNN's per-trial API), or sample_trial_params(rng, "
            "N_batch) and build_trials(params, rng) (the vectorised API).")

    def trial_function(self, t: float, params: dict[str, Any]):
        """Input, target and mask at trial time ``t`` (PsychRNN API; a per-trial subclass defines it).

        Returns
        -------
        x_t : ndarray, shape (N_in,)
        y_t : ndarray, shape (N_out,)
        mask_t : ndarray, shape (N_out,)
        """
        raise NotImplementedError(
            f"{type(self).__name__} must define trial_function(t, params) (PsychRNN's per-trial API) "
            "or build_trials(params, rng) (the vectorised API).")

    def generate_trial(self, params: dict[str, Any]):
        """One trial, built by calling ``trial_function(k * dt, params)`` for every step k.

        Returns
        -------
        x : ndarray, shape (N_steps, N_in)
        y : ndarray, shape (N_steps, N_out)
        mask : ndarray, shape (N_steps, N_out)
        """
        x = np.zeros((self.N_steps, self.N_in))
        y = np.zeros((self.N_steps, self.N_out))
        mask = np.zeros((self.N_steps, self.N_out))
        owner = type(self).__name__
        for k in range(self.N_steps):
            t = k * self.dt
            x_t, y_t, mask_t = _three(self.trial_function(t, params), f"{owner}.trial_function(t, params)",
                                      "(x_t, y_t, mask_t) of shapes (N_in,), (N_out,), (N_out,)", f" at t={t!r}")
            for name, row, value in (("x_t", x, x_t), ("y_t", y, y_t), ("mask_t", mask, mask_t)):
                try:
                    row[k] = value  # broadcasting as in PsychRNN (a scalar y_t is allowed)
                except (ValueError, TypeError):
                    size = self.N_in if name == "x_t" else self.N_out
                    raise _step_value_error(f"{owner}.trial_function", name, value, size, t) from None
        return x, y, mask

    # ---------------------------------------------------------------- the vectorised path

    def sample_trial_params(self, rng: np.random.Generator, N_batch: int) -> dict[str, np.ndarray]:
        """Draw the parameters of ``N_batch`` trials at once (vectorised API; optional).

        Returns
        -------
        dict of str to ndarray, each of shape (N_batch, ...)
        """
        raise NotImplementedError(f"{type(self).__name__} has no vectorised sample_trial_params")

    def build_trials(self, params: dict[str, np.ndarray], rng: np.random.Generator | None = None):
        """Build a whole batch from ``sample_trial_params``'s arrays (vectorised API; optional).

        Returns
        -------
        x : ndarray, shape (N_batch, N_steps, N_in)
        y : ndarray, shape (N_batch, N_steps, N_out)
        mask : ndarray, shape (N_batch, N_steps, N_out)
        """
        raise NotImplementedError(f"{type(self).__name__} has no vectorised build_trials")

    def _uses_vectorised_path(self) -> bool:
        """True when the vectorised methods exist and no subclass overrides a per-trial one below them."""
        mro = type(self).__mro__
        vectorised = [_defined_in(type(self), name) for name in _VECTORISED_METHODS]
        if any(klass is Task for klass in vectorised):
            return False
        per_trial = [_defined_in(type(self), name) for name in _PER_TRIAL_METHODS]
        nearest_per_trial = min(mro.index(klass) for klass in per_trial)  # 0 = the class itself
        return max(mro.index(klass) for klass in vectorised) <= nearest_per_trial

    def _times(self) -> np.ndarray:
        """Trial time of every step, ``t_k = k * dt``, shape (N_steps,)."""
        return np.arange(self.N_steps, dtype=np.float64) * self.dt

    def _sample_one_trial(self) -> dict[str, Any]:
        """One trial's dict from the vectorised sampler (for built-ins' generate_trial_params)."""
        return TrialParams(self._sampled_params(self.rng, 1), 1)[0]

    def _sampled_params(self, rng: np.random.Generator, N_batch: int) -> Mapping:
        """``sample_trial_params(rng, N_batch)``, checked to be a dict of arrays."""
        arrays = self.sample_trial_params(rng, N_batch)
        if not isinstance(arrays, Mapping):
            raise ShapeError(f"{type(self).__name__}.sample_trial_params(rng, N_batch) returned "
                             f"{_describe(arrays)}; it must return a dict of arrays of shape (N_batch, ...), "
                             f"one per trial parameter (such as {{'coherence': array of shape ({N_batch},)}}).")
        return arrays

    # ---------------------------------------------------------------- batches

    def _batch_rng(self, rng):
        """``(rng, own_stream)`` for a batch: the task's own stream when ``rng`` is None or it."""
        if rng is None or rng is self.rng:
            return self.rng, True
        if not isinstance(rng, np.random.Generator):
            raise ParameterTypeError(f"generate_batch(rng) of {type(self).__name__} needs a "
                                     f"numpy.random.Generator or None. Got {type(rng).__name__}.")
        return rng, False

    def generate_batch(self, rng: np.random.Generator | None = None):
        """Make one batch of ``N_batch`` trials.

        Parameters
        ----------
        rng : numpy.random.Generator, optional
            The stream to draw from; default the task's own ``self.rng``. A batch from the task's
            own stream advances ``batch_index``; a batch from another Generator (an evaluation or
            performance-check batch) leaves the task's stream and counter untouched, so it does not
            shift the training sequence (PsychRNN issue #43). Per-trial tasks see ``rng`` as
            ``self.rng`` while the batch is made; draws they make from ``np.random`` are outside
            minirnn's control.

        Returns
        -------
        x : ndarray, shape (N_batch, N_steps, N_in)
        y : ndarray, shape (N_batch, N_steps, N_out)
        mask : ndarray, shape (N_batch, N_steps, N_out)
        trial_params : TrialParams, shape (N_batch,)
            PsychRNN's object ndarray of the trials' dicts (``trial_params["key"]`` also reads
            one parameter of every trial as an array).

        Raises
        ------
        ShapeError
            When the task returns arrays of the wrong shape.
        NonFiniteError
            When ``x``, ``y`` or ``mask`` holds NaN or inf.
        """
        rng, own_stream = self._batch_rng(rng)
        if self._uses_vectorised_path():
            arrays = self._sampled_params(rng, self.N_batch)
            x, y, mask = _three(self.build_trials(arrays, rng), f"{type(self).__name__}.build_trials(params, rng)",
                                "(x, y, mask) of shapes (N_batch, N_steps, N_in), (N_batch, N_steps, N_out), "
                                "(N_batch, N_steps, N_out)")
            trial_params = TrialParams(arrays, self.N_batch)  # PsychRNN's object array of dicts
        else:
            x, y, mask, trial_params = self._per_trial_batch(rng)
        if own_stream:
            self.batch_index += 1
        return (*self._checked(x, y, mask), trial_params)

    def _per_trial_batch(self, rng: np.random.Generator):
        """PsychRNN's double loop: generate_trial_params then generate_trial, trial by trial."""
        x = np.empty((self.N_batch, self.N_steps, self.N_in))
        y = np.empty((self.N_batch, self.N_steps, self.N_out))
        mask = np.empty((self.N_batch, self.N_steps, self.N_out))
        trial_params = np.empty(self.N_batch, dtype=object)
        own_rng, self.rng = self.rng, rng  # a per-trial task that draws from self.rng sees `rng`
        try:
            for trial in range(self.N_batch):
                trial_params[trial] = self.generate_trial_params(self.batch_index + 1, trial)
                x[trial], y[trial], mask[trial] = _three(
                    self.generate_trial(trial_params[trial]), f"{type(self).__name__}.generate_trial(params)",
                    "(x, y, mask) of shapes (N_steps, N_in), (N_steps, N_out), (N_steps, N_out)")
        finally:
            self.rng = own_rng
        return x, y, mask, trial_params.view(TrialParams)

    def _checked(self, x, y, mask):
        """Cast to float64 and check shapes and finiteness before anything trains on the batch."""
        owner = type(self).__name__
        shapes = {"x": (self.N_batch, self.N_steps, self.N_in),
                  "y": (self.N_batch, self.N_steps, self.N_out),
                  "mask": (self.N_batch, self.N_steps, self.N_out)}
        arrays = {"x": x, "y": y, "mask": mask}
        for name, array in arrays.items():
            array = arrays[name] = np.asarray(array, dtype=np.float64)
            if array.shape != shapes[name]:
                raise ShapeError(f"{owner} made {name} with shape {array.shape}; it must be "
                                 f"(N_batch, N_steps, {'N_in' if name == 'x' else 'N_out'}) = "
                                 f"{shapes[name]}.")
            finite = np.isfinite(array)
            if not finite.all():
                trial, step, channel = (int(i) for i in np.argwhere(~finite)[0])
                raise NonFiniteError(
                    f"{owner} made NaN or inf in {name} ({int((~finite).sum())} entries; the first "
                    f"at trial {trial}, step {step} (t={step * self.dt!r}), channel {channel}). "
                    f"Check its trial_function / build_trials before training on it.")
        return arrays["x"], arrays["y"], arrays["mask"]

    def batch_generator(self) -> Iterator[tuple]:
        """An endless generator of batches from the task's own stream (PsychRNN API).

        A thin wrapper around ``generate_batch()``; it shares ``batch_index`` and ``rng`` with the
        task, so several generators (or ``get_trial_batch``) continue one sequence.
        """
        while True:
            yield self.generate_batch()

    def get_trial_batch(self):
        """The next batch from the task's own stream; ``batch_index`` advances (PsychRNN API).

        Returns
        -------
        x, y, mask, trial_params
            As :meth:`generate_batch`.
        """
        return self.generate_batch()

    # ---------------------------------------------------------------- accuracy and checkpoints

    def accuracy_function(self, correct_output, test_output, output_mask):
        """Accuracy of ``test_output`` in [0, 1]; the base class has none and returns None."""
        return None

    def state_dict(self) -> dict[str, Any]:
        """The task's stream and counter, JSON-serialisable, for checkpoints.

        Returns
        -------
        dict
            ``{"rng": rng.bit_generator.state, "batch_index": int}``.
        """
        return {"rng": self.rng.bit_generator.state, "batch_index": int(self.batch_index)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` saved: the next batch is the one that followed then."""
        owner = type(self).__name__
        unknown = [key for key in state if key not in ("rng", "batch_index")]
        if unknown or "rng" not in state or "batch_index" not in state:
            bad = unknown[0] if unknown else None
            hint = suggest(bad, ("rng", "batch_index")) if bad else ""
            raise ParameterError(f"A task state for {owner} must have exactly the keys 'rng' and "
                                 f"'batch_index'. Got {sorted(state)}{hint}.")
        rng_state = copy.deepcopy(dict(state["rng"]))
        name = rng_state.get("bit_generator")
        if name == type(self.rng.bit_generator).__name__:
            self.rng.bit_generator.state = rng_state  # in place: holders of task.rng stay in step
        elif isinstance(name, str) and hasattr(np.random, name):
            bit_generator = getattr(np.random, name)()
            bit_generator.state = rng_state
            self.rng = np.random.Generator(bit_generator)
        else:
            raise ParameterError(f"The 'rng' entry of a task state for {owner} names an unknown bit "
                                 f"generator {name!r}.")
        self.batch_index = check_int(owner, "batch_index", state["batch_index"], low=0)
