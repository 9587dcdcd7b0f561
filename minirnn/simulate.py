"""Simulators: run a trained network forward, with perturbations (PsychRNN's ``Simulator``, extended).

``BasicSimulator`` and ``LSTMSimulator`` keep PsychRNN's constructor (from a model, from a weights
file + params, or from a weights dict + ``alpha`` or ``dt``/``tau``) and ``run_trials(trial_input,
t_connectivity=None) -> (outputs, states)``. They build a model object from the weights and call
its forward pass, the very code ``train`` and ``test`` run (DESIGN.md §1), so with noise off a
simulator and ``model.test`` agree bit for bit. ``Simulator`` is their base class and ``relu``,
``sigmoid`` the NumPy transfer functions, as in PsychRNN's ``psychrnn.backend.simulation``.

Perturbations, beyond PsychRNN, are arrays (never Python callbacks), built by :class:`Perturbation`
and applied inside the time loop of :func:`minirnn.dynamics.rate.recur_forward`. For the rate RNN
(step ``k`` produces ``states[:, k] = x_{k+1}``, at trial time ``t = k dt``)::

    x_{k+1} = (1 - alpha) x_k + alpha (f(x_k) @ (W_rec_eff ⊙ W_mask[k])^T + drive_k + inject_k)
              + sqrt(2 alpha) sigma_rec xi_k
    x_{k+1} = where(clamp_mask[k], clamp_value[k], x_{k+1})

* ``silence``: clamp ``x`` where ``f(x) = 0`` (``x = 0`` for relu, tanh, linear); the rate is zero
  in the window. sigmoid and softplus never reach zero: silencing them is an error (clamp to a
  very negative value instead).
* ``clamp``: ``x = value`` in the window (the state, so the rate is ``f(value)``).
* ``inject``: a current added to the drive (the units of ``W_in u + b_rec``; it enters as
  ``alpha * I``).
* ``lesion`` / ``connectivity``: ``W_rec_eff`` multiplied by a 0/1 (or any) mask per step;
  PsychRNN's ``t_connectivity (N_steps, N_rec, N_rec)`` is exactly this. Masks that do not change
  with time are stored once (:class:`StepMasks`: one ``(N_rec, N_rec)`` matrix per distinct
  combination of lesion windows, and the step -> matrix index), never as ``N_steps`` copies.
* ``noise``: the recurrent noise level ``sigma_rec`` in the window. When any noise perturbation is
  present the whole run's noise (the model's own level outside the windows) is drawn from the
  simulator's generator as ``xi (N_steps, B, N_rec)`` and enters through ``inject`` as
  ``sqrt(2 / alpha) sigma_k xi_k`` (equal to the model's noise term up to rounding).

For the LSTM, ``silence`` and ``clamp`` act on the hidden state ``h`` (silence: ``h = 0``) and
``lesion`` masks the hidden columns of all four gate matrices; ``inject`` and ``noise`` are not
defined (the LSTM has no drive equation nor noise) and raise.

Time windows are ``t_start <= t < t_end`` with ``t = k dt``, in ms when the Perturbation has a
``dt``, else in steps; ``None`` means the start / the end of the trial. A window selects the steps
``k`` whose time ``k dt`` is in it (DESIGN.md §3: step ``k`` happens at trial time ``k dt``), and with
them what those steps read and produce: the input ``u_k``, the state ``states[:, k] = x_{k+1}`` and
the output ``outputs[:, k]``, all labelled ``t = k dt``. :mod:`minirnn.plotting` draws index ``k``
of every array at that same time, so ``silence(units, 200, 600)`` shows as zero rates on the
samples 200 ... 590 ms. A window that selects no
step of the trial (past its end, before its start, or between two steps) is an error, and so is a
Perturbation whose ``dt`` differs from the simulator's. Perturbations compose:
lesions multiply, injected currents add, and for clamps and noise levels the later call wins where
windows overlap. A perturbation applies to every trial of the batch.
"""
from __future__ import annotations

import numbers
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np

from ._model_files import warn_alpha_conflict
from ._params import is_int
from .errors import ParameterError, ParameterTypeError, ShapeError
from .io import lstm_weights_evidence  # re-exported (its home is minirnn.io, beside classify_weights)
from .nn import noise
from .nn import activations as _activations
from .nn.activations import get_activation

__all__ = ["Perturbation", "PerturbationArrays", "StepMasks", "Simulator", "BasicSimulator", "LSTMSimulator",
           "silent_state", "lstm_weights_evidence", "relu", "sigmoid"]


# PsychRNN's psychrnn.backend.simulation.relu and .sigmoid: NumPy versions of tf.nn.relu and
# tf.nn.sigmoid (max(x, 0) and 1 / (1 + e^-x)). They are minirnn's own activations, whose names
# simulators and models recognise: BasicSimulator(..., transfer_function=relu) is relu.
relu = _activations.relu
sigmoid = _activations.sigmoid


def silent_state(transfer_function) -> float:
    """A state ``x`` with ``f(x) = 0``, for silencing a unit of a rate network.

    relu, tanh, linear: 0 (for relu every ``x <= 0`` works; 0 lets the unit restart from rest).
    A user pair ``(f, df)``: 0 when ``f(0) == 0``. Otherwise (sigmoid, softplus: ``f > 0``
    everywhere) there is no such state and :class:`ParameterError` is raised.
    """
    act = get_activation(transfer_function)
    if act.name in ("relu", "tanh", "linear"):
        return 0.0
    if act.code is None and float(np.asarray(act.f(np.zeros(1)))[0]) == 0.0:
        return 0.0
    raise ParameterError(f"Cannot silence units of a network with transfer_function {act.name!r}: f(x) = 0 has "
                         "no solution. Use clamp(units, value) with a value whose rate is small instead "
                         "(e.g. sigmoid(-10) = 4.5e-5).")


class StepMasks:
    """The recurrent masks of a Perturbation, one ``(N, N)`` matrix per distinct window combination.

    ``W_mask[k]`` (what the time loops read, :func:`minirnn.dynamics.rate.recur_forward`) is
    ``masks[index[k]]``: a lesion that holds for the whole trial is one matrix, a lesion in one
    window two (lesioned, intact), never ``N_steps`` copies (``32 N_steps N^2`` bytes in float64).

    masks : (n, N, N) array (NumPy or CuPy), the distinct per-step masks.
    index : (N_steps,) int, the mask of each step.

    Indexing follows a ``(N_steps, N, N)`` array (``W_mask[k]``, ``W_mask[:, i, j]``);
    ``np.asarray(W_mask)`` materialises that array (host NumPy).
    """

    def __init__(self, masks, index):
        index = np.asarray(index, dtype=np.intp).reshape(-1)
        if np.ndim(masks) != 3 or masks.shape[1] != masks.shape[2]:
            raise ShapeError(f"StepMasks: masks has shape {np.shape(masks)}; it must be (n, N, N).")
        if index.size and (index.min() < 0 or index.max() >= masks.shape[0]):
            raise ShapeError(f"StepMasks: index must pick one of the {masks.shape[0]} masks.")
        self.masks, self.index = masks, index

    @property
    def shape(self):
        return (self.index.size, *self.masks.shape[1:])

    @property
    def dtype(self):
        return self.masks.dtype

    ndim = 3

    @property
    def nbytes(self):
        """Bytes actually held (the distinct masks and the index), not ``N_steps N^2`` of a full array."""
        return int(self.masks.nbytes + self.index.nbytes)

    def __len__(self):
        return self.index.size

    def __getitem__(self, key):
        if isinstance(key, tuple):
            return self.masks[(self.index[key[0]],) + key[1:]] if key else self.masks[self.index]
        return self.masks[self.index[key]]

    def __array__(self, dtype=None, copy=None):
        masks = self.masks.get() if hasattr(self.masks, "get") and not isinstance(self.masks, np.ndarray) \
            else self.masks
        out = np.asarray(masks)[self.index]
        return out if dtype is None else out.astype(dtype)

    def __repr__(self):
        return f"StepMasks(N_steps={self.index.size}, N={self.masks.shape[1]}, distinct={self.masks.shape[0]})"


@dataclass
class PerturbationArrays:
    """What the time loop takes (each None when unused). Shapes: ``W_mask (T, N, N)`` (an array or
    a :class:`StepMasks`: anything whose ``W_mask[k]`` is step k's ``(N, N)`` mask),
    ``clamp_mask (T, 1, N)`` bool, ``clamp_value (T, 1, N)``, ``inject (T, 1 or B, N)``.
    ``replaces_noise``: the recurrent noise is inside ``inject``; run the model with its noise off."""

    W_mask: Any = None
    clamp_mask: Any = None
    clamp_value: Any = None
    inject: Any = None
    replaces_noise: bool = False


class Perturbation:
    """A builder of composable perturbations over time windows.

    >>> p = Perturbation(N_steps=200, N_rec=50, dt=10)
    >>> p = p.silence([3, 4], 500, 800).inject(7, 0.5, t_start=1000).lesion(post=2, pre=9)

    Parameters
    ----------
    N_steps, N_rec : the trial length in steps and the number of units.
    dt : time step in ms; windows are then given in ms. ``None``: windows in steps.

    Methods return ``self``, so calls chain. :meth:`arrays` turns the recipe into the arrays of
    :class:`PerturbationArrays` for a given transfer function, batch size and noise setting.
    """

    def __init__(self, N_steps: int, N_rec: int, dt: float | None = None):
        for key, value in (("N_steps", N_steps), ("N_rec", N_rec)):
            if not is_int(value, 1):
                raise ParameterError(f"The {key!r} parameter of Perturbation must be a positive int. "
                                     f"Got {value!r} instead.")
        if dt is not None and not (np.isscalar(dt) and np.isfinite(dt) and dt > 0):
            raise ParameterError(f"The 'dt' parameter of Perturbation must be a positive number or None. "
                                 f"Got {dt!r} instead.")
        self.N_steps, self.N_rec, self.dt = int(N_steps), int(N_rec), dt
        self.ops = []  # (kind, units mask (N,), steps mask (T,), value: a float or an (N,) row)

    # ---- selection helpers ---------------------------------------------------------------------
    def _unit_order(self, units) -> np.ndarray:
        """int, sequence of ints, bool mask (N_rec,), slice or None (all) -> the unit indices, in the
        order given (a slice's own order, a mask's increasing order): per-unit values follow it."""
        if units is None:
            return np.arange(self.N_rec)
        if isinstance(units, slice):
            return np.arange(self.N_rec)[units]
        u = np.asarray(units)
        if u.dtype == bool:
            if u.shape != (self.N_rec,):
                raise ShapeError(f"a boolean unit mask must have shape (N_rec,) = ({self.N_rec},). Got {u.shape}.")
            return np.flatnonzero(u)
        if u.dtype.kind not in "iu" or np.any(u < 0) or np.any(u >= self.N_rec):
            raise ParameterError(f"units must be ints in [0, {self.N_rec}), a bool mask or a slice. Got {units!r}.")
        return u.ravel().astype(np.intp)

    def _units(self, units) -> np.ndarray:
        """The units (see :meth:`_unit_order`) as a bool mask (N_rec,)."""
        sel = np.zeros(self.N_rec, dtype=bool)
        sel[self._unit_order(units)] = True
        return sel

    def _steps(self, t_start, t_end, what) -> np.ndarray:
        """Window ``t_start <= t_k < t_end`` (``t_k = k dt`` in ms, or ``k`` in steps) -> bool (T,).

        A window that selects no step of the trial is an error: it would silently do nothing (the
        usual cause is a window in ms on a Perturbation without ``dt``, whose windows are in steps).
        """
        for name, value in (("t_start", t_start), ("t_end", t_end)):
            if value is not None and (isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real)
                                      or np.isnan(value)):
                raise ParameterError(f"{what}: {name} must be a number or None. Got {value!r} instead.")
        t = np.arange(self.N_steps) * (self.dt if self.dt is not None else 1)
        lo = -np.inf if t_start is None else t_start
        hi = np.inf if t_end is None else t_end
        if not hi > lo:
            raise ParameterError(f"{what}: the window needs t_end > t_start. Got t_start={t_start!r}, t_end={t_end!r}.")
        steps = (t >= lo) & (t < hi)
        if not steps.any():
            if self.dt is None:
                trial = (f"the trial has N_steps={self.N_steps} steps, t = 0 ... {self.N_steps - 1}; this "
                         "Perturbation has no dt, so windows are in steps (for windows in ms pass "
                         "Perturbation(N_steps, N_rec, dt=...))")
            else:
                trial = (f"the trial has N_steps={self.N_steps} steps of dt={self.dt} ms, t = 0 ... "
                         f"{(self.N_steps - 1) * self.dt} ms")
            unit = "" if self.dt is None else " ms"
            raise ParameterError(f"{what}: the window t_start={t_start!r}, t_end={t_end!r}{unit} selects no step of "
                                 f"the trial, so it would have no effect; {trial}.")
        return steps

    def _values(self, value, order, what):
        """A scalar, or one finite value per unit in ``order`` (the order the units were given)
        -> a float, or an (N_rec,) row with ``row[order[i]] = value[i]`` (zeros elsewhere)."""
        v = np.asarray(value, dtype=np.float64)
        if v.ndim and v.shape != (order.size,):
            raise ShapeError(f"{what} has shape {v.shape} but must be a scalar or one value per unit given "
                             f"({order.size}: units {order.tolist()}), in the same order.")
        if not np.all(np.isfinite(v)):
            raise ParameterError(f"{what} must be finite. Got {value!r}.")
        if not v.ndim:
            return float(v)
        units, counts = np.unique(order, return_counts=True)
        if np.any(counts > 1):
            raise ParameterError(f"{what}: unit(s) {units[counts > 1].tolist()} appear more than once in units "
                                 f"{order.tolist()}, so which of their values applies is ambiguous. Give each unit once.")
        row = np.zeros(self.N_rec)
        row[order] = v  # value i belongs to the i-th unit given
        return row

    # ---- perturbations -------------------------------------------------------------------------
    def silence(self, units, t_start=None, t_end=None) -> "Perturbation":
        """Rate zero for ``units`` in the window (state clamped where ``f(x) = 0``; LSTM: ``h = 0``)."""
        self.ops.append(("silence", self._units(units), self._steps(t_start, t_end, "silence"), None))
        return self

    def clamp(self, units, value, t_start=None, t_end=None) -> "Perturbation":
        """State ``x`` (LSTM: ``h``) of ``units`` held at ``value``: a scalar, or one value per unit in the
        order the units are given (``clamp([4, 1], [0.3, -0.2])`` holds unit 4 at 0.3)."""
        order = self._unit_order(units)
        values = self._values(value, order, "value")
        self.ops.append(("clamp", self._units(order), self._steps(t_start, t_end, "clamp"), values))
        return self

    def inject(self, units, amount, t_start=None, t_end=None) -> "Perturbation":
        """Add the current ``amount`` to the drive of ``units``: a scalar, or one value per unit in the
        order the units are given."""
        order = self._unit_order(units)
        amounts = self._values(amount, order, "amount")
        self.ops.append(("inject", self._units(order), self._steps(t_start, t_end, "inject"), amounts))
        return self

    def lesion(self, post=None, pre=None, t_start=None, t_end=None) -> "Perturbation":
        """Zero the recurrent weights from ``pre`` units onto ``post`` units (None: all) in the window."""
        M = np.ones((self.N_rec, self.N_rec))
        M[np.ix_(self._units(post), self._units(pre))] = 0
        self.ops.append(("W_mask", None, self._steps(t_start, t_end, "lesion"), M))
        return self

    def connectivity(self, t_connectivity) -> "Perturbation":
        """Multiply ``W_rec_eff`` by ``t_connectivity[k]`` at step k (PsychRNN's ``(N_steps, N_rec, N_rec)``)."""
        M = np.asarray(t_connectivity, dtype=np.float64)
        if M.shape != (self.N_steps, self.N_rec, self.N_rec):
            raise ShapeError(f"t_connectivity has shape {M.shape} but must be (N_steps, N_rec, N_rec) = "
                             f"({self.N_steps}, {self.N_rec}, {self.N_rec}).")
        self.ops.append(("W_mask_full", None, None, M))
        return self

    def noise(self, rec_noise, t_start=None, t_end=None, units=None) -> "Perturbation":
        """Set the recurrent noise level ``sigma_rec`` of ``units`` (None: all) in the window."""
        if not (np.isscalar(rec_noise) and np.isfinite(rec_noise) and rec_noise >= 0):
            raise ParameterError(f"rec_noise must be a number >= 0. Got {rec_noise!r} instead.")
        self.ops.append(("noise", self._units(units), self._steps(t_start, t_end, "noise"), float(rec_noise)))
        return self

    # ---- the arrays ------------------------------------------------------------------------------
    def arrays(self, transfer_function="relu", N_batch: int = 1, alpha=None, rec_noise=0.0, rng=None,
               dtype=np.float64, lstm: bool = False) -> PerturbationArrays:
        """The arrays the time loop takes (host NumPy, ``dtype``).

        Parameters
        ----------
        transfer_function : the network's (for the silent state); ignored when ``lstm``.
        N_batch : the batch size (only the noise array depends on it).
        alpha : (N_rec,) or scalar ``dt / tau``; needed for noise perturbations.
        rec_noise : the network's own noise level outside noise windows.
        rng : numpy Generator for the noise draws ``xi (N_steps, N_batch, N_rec)``.
        lstm : build for the LSTM (silence clamps ``h`` to 0; inject and noise raise).
        """
        T, N = self.N_steps, self.N_rec
        out = PerturbationArrays()
        kinds = {op[0] for op in self.ops}
        if lstm and kinds & {"inject", "noise"}:
            raise ParameterError("The LSTM takes silence, clamp, lesion and connectivity perturbations; "
                                 "inject and noise are defined for the rate RNN (BasicSimulator) only.")
        if kinds & {"W_mask", "W_mask_full"}:
            out.W_mask = self._step_masks(dtype)
        if kinds & {"silence", "clamp"}:
            mask, value = np.zeros((T, 1, N), dtype=bool), np.zeros((T, 1, N))
            for kind, sel, steps, v in self.ops:
                if kind not in ("silence", "clamp"):
                    continue
                if kind == "silence":
                    v = 0.0 if lstm else silent_state(transfer_function)
                window = steps[:, None] & sel[None, :]  # (T, N)
                mask[:, 0, :] |= window
                value[:, 0, :] = np.where(window, np.zeros((T, N)) + v, value[:, 0, :])  # v: scalar or (N,) row
            out.clamp_mask, out.clamp_value = mask, value.astype(dtype)
        if "inject" in kinds:
            inject = np.zeros((T, 1, N))
            for kind, sel, steps, v in self.ops:
                if kind == "inject":
                    inject[:, 0, :] += (steps[:, None] & sel[None, :]) * v  # v: scalar or (N,) row, 0 off sel
            out.inject = inject.astype(dtype)
        if "noise" in kinds:
            if alpha is None or rng is None:
                raise ParameterError("noise perturbations need the network's alpha and a random generator.")
            if not isinstance(rng, np.random.Generator):
                raise ParameterTypeError(f"Perturbation.arrays: rng must be a numpy.random.Generator. Got {rng!r} "
                                         f"({type(rng).__name__}) instead; for a seed s pass np.random.default_rng(s).")
            sigma = np.full((T, 1, N), float(np.max(np.asarray(rec_noise))))
            for kind, sel, steps, v in self.ops:
                if kind == "noise":
                    window = steps[:, None] & sel[None, :]
                    sigma[:, 0, :] = np.where(window, v, sigma[:, 0, :])
            alpha = np.broadcast_to(np.asarray(alpha, dtype=np.float64).reshape(-1), (N,))
            xi = noise.gaussian_noise(noise.draw_key(rng), (T, N_batch, N), dtype)  # time-major, as the model draws
            # sqrt(2 alpha) sigma xi, written as alpha * (sqrt(2 / alpha) sigma xi) to enter via the drive
            scaled = (np.sqrt(2 / alpha) * sigma * xi).astype(dtype)
            out.inject = scaled if out.inject is None else (out.inject + scaled).astype(dtype)
            out.replaces_noise = True
        return out


    def _step_masks(self, dtype) -> StepMasks:
        """The lesion and connectivity masks as :class:`StepMasks`.

        Step k's mask is the product, in the order the calls were made, of the masks whose window
        holds k (lesions) and of ``t_connectivity[k]``. Lesions alone: one ``(N, N)`` product per
        distinct set of windows holding a step. With a ``connectivity`` (already ``(T, N, N)``)
        every step has its own.
        """
        T, N = self.N_steps, self.N_rec
        ops = [(kind, steps, M) for kind, _, steps, M in self.ops if kind in ("W_mask", "W_mask_full")]
        if any(kind == "W_mask_full" for kind, _, _ in ops):
            W_mask = np.ones((T, N, N))
            for kind, steps, M in ops:
                if kind == "W_mask":
                    W_mask[steps] *= M
                else:
                    W_mask *= M
            return StepMasks(W_mask.astype(dtype), np.arange(T))
        cover = np.stack([steps for _, steps, _ in ops], axis=1)  # (T, n_ops): op j acts at step k
        combos, index = np.unique(cover, axis=0, return_inverse=True)
        masks = np.empty((combos.shape[0], N, N), dtype=dtype)
        for c, row in enumerate(combos):
            m = np.ones((N, N))
            for used, (_, _, M) in zip(row, ops):
                if used:
                    m *= M  # the same products, in the same order, as one (T, N, N) array would hold
            masks[c] = m
        return StepMasks(masks, index.reshape(-1))


# ---------------------------------------------------------------------------------------------
# simulators


class Simulator:
    """PsychRNN's ``Simulator`` base class: the shared constructor (PsychRNN's precedence and conflict
    rules) and ``run_trials``.

    As in PsychRNN, it reads a rate network's weights (``W_in, W_rec, W_out, b_rec, b_out,
    init_state``, set as attributes) with ``alpha``, ``rec_noise`` and ``transfer_function``;
    subclasses (PsychRNN-style ones included) add ``rnn_step`` or override ``run_trials``. Unlike
    PsychRNN's abstract class it is usable as it is: ``run_trials`` runs the rate network it built
    (:class:`BasicSimulator` adds ``rnn_step``; :class:`LSTMSimulator` builds an LSTM instead).
    """

    architecture = "basic"

    def __init__(self, rnn_model=None, params=None, weights_path=None, weights=None, transfer_function=None,
                 seed=None):
        from . import io

        owner = type(self).__name__
        # PsychRNN's conflicts (it raised UserWarning; here ParameterError, a ValueError).
        if weights is not None and (weights_path is not None or rnn_model is not None):
            raise ParameterError(f"{owner}: weights and either rnn_model or weights_path were passed in; "
                                 "pass only one source of weights.")
        if weights_path is not None and rnn_model is not None:
            raise ParameterError(f"{owner}: rnn_model and weights_path were both passed in; pass only one.")
        if rnn_model is not None and params is not None:
            raise ParameterError(f"{owner}: params was passed in but rnn_model takes precedence; pass only one.")
        if weights is None and weights_path is None and rnn_model is None:
            raise ParameterError(f"{owner}: either weights, rnn_model or weights_path must be passed in.")
        params = _check_params(params, owner, self._param_table())  # a copy; {} for None
        meta = {}
        if rnn_model is not None:
            if getattr(rnn_model, "architecture", "basic") != self.architecture:
                raise ParameterError(f"{owner} needs a {self.architecture} model; got {type(rnn_model).__name__}.")
            if getattr(rnn_model, "lead", ()):
                raise ParameterError(f"{owner} simulates one network; for an ensemble pass model.network(k).")
            weights = rnn_model.get_weights()
            model_act = getattr(rnn_model, "activation", None)
            if transfer_function is not None and self.architecture == "basic":
                given = get_activation(transfer_function)
                if given.name != model_act.name:
                    raise ParameterError(f"{owner}: transfer_function {given.name!r} differs from the model's "
                                         f"{model_act.name!r}; leave it out to use the model's.")
            p = rnn_model.params
            settings = {"dt": p["dt"], "tau": p["tau"], "rec_noise": p["rec_noise"], "dtype": str(rnn_model.dtype),
                        "backend": rnn_model.backend, "transfer_function": model_act}
            self.dt = _ms(p["dt"])
        else:
            file_tf = None
            if weights_path is not None:
                weights = io.read_npz(weights_path)
                info = io.classify_weights(weights)
                meta = info["meta"] or {}
                if info["architecture"] != self.architecture:
                    raise ParameterError(f"{owner}: {weights_path} holds {info['architecture']} weights.")
                file_tf = info["transfer_function"] or None
                if "lstm_variant" in meta:
                    weights = dict(weights, lstm_variant=meta["lstm_variant"])
                if self.architecture == "basic":
                    warn_alpha_conflict(params, meta, weights_path, owner, "simulating with params' alpha. Leave dt, "
                                        "tau and alpha out of params to use the file's.")
            elif not hasattr(weights, "keys"):
                raise ParameterError(f"{owner}: weights must be a dict of arrays (as get_weights() returns). "
                                     f"Got {type(weights).__name__} instead.")
            elif self.architecture == "basic" and (why := lstm_weights_evidence(weights)):
                raise ParameterError(
                    f"{owner}: the weights dict holds lstm weights ({why}); its W_in, "
                    "W_rec, b_rec and init_state are PsychRNN's all-zero placeholders, not a rate network. "
                    "Use LSTMSimulator(weights=...) (or LSTMSimulator(rnn_model=lstm)).")
            settings = self._settings_from_params(params, meta, owner)
            settings["transfer_function"] = _pick_activation(
                owner, (("the transfer_function argument", transfer_function),
                        ("params['transfer_function']", params.get("transfer_function") if self.architecture == "basic"
                         else None),
                        (f"the weights file {weights_path}", file_tf)))
            self.dt = _ms(params["dt"] if params.get("dt") is not None else meta.get("dt"))
        self.weights = {k: v for k, v in dict(weights).items() if "/" not in k}
        with warnings.catch_warnings():  # PsychRNN's LSTMSimulator too starts every trial from the first row
            warnings.filterwarnings("ignore", message=".*one initial state per batch row")
            self.model = self._build_model(self.weights, settings, seed)
        for key in ("N_in", "N_rec", "N_out"):  # a params dict that describes another network
            if params.get(key) is not None and params[key] != getattr(self.model, key):
                raise ShapeError(f"{owner}: params has {key}={params[key]!r} but the weights have "
                                 f"{key}={getattr(self.model, key)}.")
        alpha = _host_alpha(self.model)  # PsychRNN's attribute: a float (an (N_rec,) array per unit)
        self.alpha = None if alpha is None else (float(alpha.flat[0]) if np.all(alpha == alpha.flat[0])
                                                 else alpha.reshape(-1))
        for key, value in self.weights.items():  # PsychRNN's attributes: sim.W_rec, sim.init_state, ...
            if key.startswith(("W_", "b_", "init_")) and isinstance(value, np.ndarray):
                setattr(self, key, value)
        self.rec_noise = float(np.max(np.asarray(settings["rec_noise"])))
        self.transfer_function = settings["transfer_function"]
        self.rng = self.model.rng_eval  # recurrent noise of run_trials (unless a rng is passed)
        self.N_in, self.N_rec, self.N_out = self.model.N_in, self.model.N_rec, self.model.N_out

    def _param_table(self) -> tuple:
        """The keys a simulator's ``params`` may hold (beyond a model's and a task's)."""
        return _SIM_PARAMS

    @staticmethod
    def _settings_from_params(params, meta, owner):
        s = {"rec_noise": params.get("rec_noise", meta.get("rec_noise", 0.0)) or 0.0,
             "dtype": params.get("dtype", "float64"), "backend": params.get("backend", "auto")}
        if params.get("alpha") is not None:
            alpha = np.asarray(params["alpha"], dtype=np.float64)
            s["dt"], s["tau"] = (float(alpha) if alpha.ndim == 0 else alpha), 1.0  # alpha = alpha / 1
        elif params.get("dt") is not None and params.get("tau") is not None:
            s["dt"], s["tau"] = params["dt"], params["tau"]
        elif "dt" in meta and "tau" in meta:
            s["dt"], s["tau"] = meta["dt"], meta["tau"]
        elif owner == "LSTMSimulator":
            s["dt"], s["tau"] = 1.0, 1.0  # the LSTM has no time constant
        else:
            raise ParameterError(f"{owner} needs params with 'alpha', or 'dt' and 'tau', when built without rnn_model.")
        if np.ndim(s["dt"]) != 0:  # a per-unit alpha: dt = 1, tau = 1 / alpha
            s["dt"], s["tau"] = 1.0, 1.0 / s["dt"]
        return s

    def _build_model(self, weights, settings, seed):
        """The rate network (:class:`minirnn.Basic`) of ``weights``; LSTMSimulator builds an LSTM."""
        from .models.basic import Basic

        names = ("W_in", "W_rec", "W_out", "b_rec", "b_out", "init_state")
        missing = [k for k in names if k not in weights]
        if missing:
            raise ParameterError(f"{type(self).__name__}: the weights lack {missing}; keys present: {sorted(weights)}. "
                                 f"A Basic network needs {list(names)} (as get_weights() returns them).")
        W = {k: np.asarray(weights[k]) for k in names}
        N_rec, N_in, N_out = W["W_rec"].shape[0], W["W_in"].shape[1], W["W_out"].shape[0]
        p = dict(N_in=N_in, N_rec=N_rec, N_out=N_out, dt=settings["dt"], tau=settings["tau"],
                 rec_noise=settings["rec_noise"], transfer_function=settings["transfer_function"],
                 dtype=settings["dtype"], backend=settings["backend"], seed=seed, **W)
        return Basic(p)

    def _check_rng(self, rng, where):
        if rng is not None and not isinstance(rng, np.random.Generator):
            raise ParameterTypeError(f"{type(self).__name__}.{where}: rng must be a numpy.random.Generator or None "
                                     f"(None: the simulator's own stream, seeded by seed=). Got {rng!r} "
                                     f"({type(rng).__name__}) instead; for a seed s pass np.random.default_rng(s).")

    def _perturb(self, perturbation, t_connectivity, T, B, rng):
        """Combine ``t_connectivity`` and a Perturbation into the object the model's forward takes."""
        if perturbation is None and t_connectivity is None:
            return None, rng
        if perturbation is None:
            perturbation = Perturbation(T, self.N_rec)
        elif not isinstance(perturbation, (Perturbation, PerturbationArrays)):
            raise ParameterError(f"perturbation must be a Perturbation. Got {type(perturbation).__name__}.")
        if isinstance(perturbation, Perturbation):
            if perturbation.dt is not None and self.dt is not None and not np.isclose(perturbation.dt, self.dt,
                                                                                        rtol=1e-9, atol=0):
                raise ParameterError(f"the Perturbation has dt={perturbation.dt} ms but this simulator's network has "
                                     f"dt={self.dt} ms, so its windows would land at the wrong times. Build it "
                                     f"with Perturbation(N_steps, N_rec, dt={self.dt}).")
            if (perturbation.N_steps, perturbation.N_rec) != (T, self.N_rec):
                raise ShapeError(f"the Perturbation is for N_steps={perturbation.N_steps}, N_rec={perturbation.N_rec} "
                                 f"but the trials have N_steps={T} and the network N_rec={self.N_rec}.")
            if t_connectivity is not None:
                perturbation = _copy(perturbation).connectivity(t_connectivity)
            arrays = perturbation.arrays(self.transfer_function, N_batch=B, alpha=_host_alpha(self.model),
                                         rec_noise=self.rec_noise, rng=rng, dtype=self.model.dtype,
                                         lstm=self.architecture == "lstm")
        else:
            arrays = perturbation
        xp, dtype = self.model.xp, self.model.dtype
        dev = lambda a: None if a is None else xp.asarray(a, dtype=a.dtype if a.dtype == bool else dtype)  # noqa: E731
        W_mask = arrays.W_mask
        W_mask = StepMasks(dev(W_mask.masks), W_mask.index) if isinstance(W_mask, StepMasks) else dev(W_mask)
        out = PerturbationArrays(W_mask, dev(arrays.clamp_mask), dev(arrays.clamp_value),
                                 dev(arrays.inject), arrays.replaces_noise)
        return out, (None if out.replaces_noise else rng)

    def run_trials(self, trial_input, t_connectivity=None, perturbation=None, rng=None):
        """Run trials forward: the model's own forward pass, with perturbations.

        Parameters
        ----------
        trial_input : (N_batch, N_steps, N_in), any batch size (1 included) and ``N_in = 1``.
        t_connectivity : None or (N_steps, N_rec, N_rec), multiplies ``W_rec_eff`` step by step
            (PsychRNN's ablation argument; for the LSTM, the hidden block of every gate).
        perturbation : None or a :class:`Perturbation` (or ready :class:`PerturbationArrays`).
        rng : numpy Generator for the recurrent noise (default: the simulator's own stream).

        Returns
        -------
        outputs : (N_batch, N_steps, N_out).  states : (N_batch, N_steps, N_rec) (LSTM: ``h``).
        """
        model = self.model
        self._check_rng(rng, "run_trials")
        x = model._check_batch(trial_input)
        T, B = x.shape[-2], x.shape[-3]
        rng = self.rng if rng is None else rng
        perturb, noise_rng = self._perturb(perturbation, t_connectivity, T, B, rng)
        z, states = model._run(x, noise_rng=noise_rng, perturb=perturb)
        return model.backend.to_host(z), model.backend.to_host(states)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.model!r})"


def _copy(perturbation):
    new = Perturbation(perturbation.N_steps, perturbation.N_rec, perturbation.dt)
    new.ops = list(perturbation.ops)
    return new


def _host_alpha(model):
    alpha = getattr(model, "alpha", None)
    return None if alpha is None else np.asarray(model.backend.to_host(alpha), dtype=np.float64)


# The keys a simulator's params use. A params dict may also hold every model option (a PsychRNN
# script passes its network_params) and a task's settings: those are carried, not used (the weights
# are the effective ones, so masks, Dale and initializers are already in them). Only a near miss of
# a known key (or a training option) is an error, as for models (minirnn._params). What each key
# means is in BasicSimulator's docstring.
_SIM_PARAMS = ("alpha", "dt", "tau", "rec_noise", "dtype", "backend", "transfer_function")


def _check_params(params, owner, table):
    """Validate a simulator's ``params`` dict before any work; returns a copy ({} for None).

    Unknown keys are sorted by the models' rule (:func:`minirnn._params.check_param_keys`): a near
    miss of a simulator or model option (``rec_nosie``, ``Rec_Noise``) or a training option is an
    error; other unknown keys (a task's own settings) and optimizer slots are carried, unused.
    ``table``: the keys this simulator reads.
    """
    from ._params import MODEL_PARAMS, check_model_values, check_param_keys

    if params is None:
        return {}
    if not isinstance(params, dict):
        raise ParameterError(f"{owner} takes params as a dict. Got {type(params).__name__} instead.")
    check_param_keys(params, dict.fromkeys(list(table) + list(MODEL_PARAMS)), owner, uses=table)
    check_model_values({k: params[k] for k in ("dt", "tau", "rec_noise") if params.get(k) is not None}, owner)
    if params.get("alpha") is not None:
        alpha = np.asarray(params["alpha"], dtype=np.float64) if _is_numeric(params["alpha"]) else None
        if alpha is None or alpha.size == 0 or not np.all(np.isfinite(alpha)) or np.any(alpha <= 0):
            raise ParameterError(f"The 'alpha' parameter of {owner} must be a number > 0 (or a per-unit array "
                                 f"of them). Got {params['alpha']!r} instead.")
    return dict(params)


def _is_numeric(value):
    if isinstance(value, (str, bytes, bool, np.bool_)):
        return False
    try:
        return np.asarray(value).dtype.kind in "iuf"
    except (TypeError, ValueError):
        return False


def _ms(dt):
    """The time step in ms when it is one known number, else None (windows in ms cannot be checked)."""
    if dt is None or not _is_numeric(dt) or np.ndim(dt) != 0:
        return None
    return float(dt)


def _pick_activation(owner, sources):
    """The transfer function from ``(where, value)`` sources; two that disagree are an error."""
    given = [(where, get_activation(value)) for where, value in sources if value is not None]
    names = {act.name for _, act in given}
    if len(names) > 1:
        listed = ", ".join(f"{act.name!r} from {where}" for where, act in given)
        raise ParameterError(f"{owner}: conflicting transfer functions: {listed}. Give one of them.")
    return given[0][1] if given else get_activation("relu")  # PsychRNN's default


def _step_arrays(model, states, rnn_in):
    """Check the arrays of one ``rnn_step`` before any work: each state ``(B, N_rec)`` or ``(N_rec,)``,
    ``rnn_in (B, N_in)`` or ``(N_in,)``, one batch size B (or 1, broadcast). Returns the model arrays
    ``[*states (B, N_rec), u (B, 1, N_in)]``."""
    shapes = {}
    for name, a, n in tuple(states) + (("rnn_in", rnn_in, model.N_in),):
        shape = np.shape(a)
        if len(shape) not in (1, 2) or shape[-1] != n:
            raise ShapeError(f"rnn_step: {name} has shape {shape} but must be (N_batch, {n}) or ({n},) for this "
                             f"network (N_rec={model.N_rec}, N_in={model.N_in}).")
        shapes[name] = 1 if len(shape) == 1 else shape[0]
    if 0 in shapes.values():
        raise ShapeError(f"rnn_step: {', '.join(f'{k} has {b}' for k, b in shapes.items())} rows; a step needs "
                         "at least one trial.")
    batch = {b for b in shapes.values() if b != 1}
    if len(batch) > 1:
        raise ShapeError(f"rnn_step: the batch sizes differ: {', '.join(f'{k} has {b}' for k, b in shapes.items())} "
                         "rows; give the same number of rows (or 1, used for every trial).")
    B = batch.pop() if batch else 1
    out = [model._as_array(np.broadcast_to(np.atleast_2d(a), (B, n)), name) for name, a, n in states]
    out.append(model._check_batch(np.broadcast_to(np.atleast_2d(rnn_in), (B, model.N_in))[:, None, :]))
    return out


class BasicSimulator(Simulator):
    """Simulator of the rate RNN (:class:`minirnn.Basic`), PsychRNN's constructor semantics.

    Parameters
    ----------
    rnn_model : a Basic model: its current effective weights, ``alpha``, ``rec_noise``, transfer
        function, dtype and backend. Cannot be combined with ``params`` or another weights source.
    params : dict with ``alpha`` or ``dt`` and ``tau``; optional ``rec_noise`` (0), ``dtype``
        (``"float64"``), ``backend`` (``"auto"``, as models), ``transfer_function``. A minirnn weights
        file supplies ``dt``/``tau`` itself when ``params`` lacks them (params that set another alpha
        win, with a warning). A model's whole params dict and a task's settings may ride along (the
        weights are effective, so masks and Dale are in them already); a near miss of a known key
        (``rec_nosie``) is an error, as for models, and ``N_in``/``N_rec``/``N_out`` must match the weights.
    weights_path : a weights file (minirnn's or PsychRNN's), read safely (no pickle).
    weights : a dict with PsychRNN's keys (``W_in, W_rec, W_out, b_rec, b_out, init_state``,
        effective weights as ``get_weights()`` returns them).
    transfer_function : a name, a NumPy function with a known name (``np.tanh``), or ``(f, df)``;
        default: the model's, ``params["transfer_function"]``, the file's, else relu. Two of these that
        disagree are an error.
    seed : seeds the simulator's noise stream (default: entropy from ``np.random``).

    PsychRNN raised ``UserWarning`` (as an exception) for conflicting arguments; minirnn raises
    :class:`~minirnn.errors.ParameterError` (a ``ValueError``) with the same conditions.

    ``sim.dt`` is the time step in ms (the model's, ``params["dt"]`` or the file's; None when only
    ``alpha`` is known): a :class:`Perturbation` with another ``dt`` is an error.
    """

    architecture = "basic"

    def rnn_step(self, state, rnn_in, t_connectivity=None, rng=None):
        """One Euler step from any ``state (B, N_rec)`` with input ``rnn_in (B, N_in)`` (PsychRNN's).

        The same recurrence function as training (one step of it), with ``W_rec_eff`` multiplied by
        ``t_connectivity (N_rec, N_rec)`` when given. Returns ``(output (B, N_out), new_state (B, N_rec))``.
        """
        from .dynamics import rate

        model = self.model
        self._check_rng(rng, "rnn_step")
        x0, u = _step_arrays(model, (("state", state, self.N_rec),), rnn_in)  # (B, N_rec), (B, 1, N_in)
        W = model.effective_weights()
        drive = (u[:, 0, :] @ rate.mT(W["W_in"]) + W["b_rec"])[None]  # (1, B, N_rec)
        xi = None
        if self.rec_noise > 0:  # the counter-based noise of training (minirnn.nn.noise), one key per step
            xi = model._noise_from_keys(noise.draw_key(self.rng if rng is None else rng), *drive.shape[:2])
        perturb = None if t_connectivity is None else PerturbationArrays(
            W_mask=model._as_array(t_connectivity, "t_connectivity", (self.N_rec, self.N_rec))[None])
        X = rate.recur_forward(W["W_rec"], drive, x0, model.alpha, model.noise_scale, xi, model.activation, perturb)
        z = model.activation.f(X[0]) @ rate.mT(W["W_out"]) + W["b_out"]  # z = f(x_{k+1}) W_out^T + b_out
        return model.backend.to_host(z), model.backend.to_host(X[0])


class LSTMSimulator(Simulator):
    """Simulator of the LSTM (:class:`minirnn.LSTM`), PsychRNN's constructor semantics.

    ``weights`` / the file need the LSTM keys (``W_f, W_i, W_c, W_o`` in PsychRNN's
    ``(N_rec + N_in, N_rec)`` layout, ``b_*``, ``W_out``, ``b_out``, ``init_hidden``,
    ``init_cell``); of PsychRNN's per-batch-row initial states the first row is used. The variant
    comes from the model, the file's minirnn metadata, ``weights["lstm_variant"]`` or
    ``params["lstm_variant"]``; weights without any (PsychRNN's) use ``"psychrnn"``. ``params`` is
    optional (the LSTM has no alpha).
    """

    architecture = "lstm"

    def __init__(self, rnn_model=None, params=None, weights_path=None, weights=None, seed=None):
        self._variant = getattr(rnn_model, "lstm_variant", None)
        if isinstance(params, dict) and params.get("lstm_variant") is not None:
            self._variant = params["lstm_variant"]
        super().__init__(rnn_model=rnn_model, params=params, weights_path=weights_path, weights=weights, seed=seed)

    def _param_table(self) -> tuple:
        from .models.lstm import _LSTM_PARAMS

        return tuple(k for k in _SIM_PARAMS if k not in ("alpha", "tau", "rec_noise", "transfer_function")) + tuple(
            _LSTM_PARAMS)

    def _build_model(self, weights, settings, seed):
        from .models.lstm import GATES, LSTM

        names = [f"W_{g}" for g in GATES] + [f"b_{g}" for g in GATES] + ["W_out", "b_out", "init_hidden", "init_cell"]
        missing = [k for k in names if k not in weights]
        if missing:
            raise ParameterError(f"LSTMSimulator: the weights lack {missing}; keys present: {sorted(weights)}.")
        W = {k: np.asarray(weights[k]) for k in names}
        N_out, N_rec = W["W_out"].shape
        N_in = W["W_f"].shape[0] - N_rec  # PsychRNN's (N_rec + N_in, N_rec)
        variant = self._variant or weights.get("lstm_variant") or "psychrnn"
        variant = variant.item() if isinstance(variant, np.ndarray) else variant
        p = dict(N_in=N_in, N_rec=N_rec, N_out=N_out, dt=1.0, tau=1.0, lstm_variant=str(variant),
                 dtype=settings["dtype"], backend=settings["backend"], seed=seed, **W)
        for key in ("input_connectivity", "rec_connectivity", "output_connectivity"):
            if weights.get(key) is not None:
                p[key] = np.asarray(weights[key])
        return LSTM(p)

    def rnn_step(self, hidden, cell, rnn_in):
        """One LSTM step from any ``hidden, cell (B, N_rec)`` with input ``rnn_in (B, N_in)`` (PsychRNN's).

        The same recurrence function as training (one step of it). Returns ``(output (B, N_out),
        new_hidden (B, N_rec), new_cell (B, N_rec))``.
        """
        from .dynamics import lstm as lstm_dynamics

        model = self.model
        h0, c0, u = _step_arrays(model, (("hidden", hidden, self.N_rec), ("cell", cell, self.N_rec)), rnn_in)
        W = model.effective_weights()
        W_h, W_u, b = model._stacked(W)
        drive = (u[:, 0, :] @ lstm_dynamics.mT(W_u) + b)[None]  # (1, B, 4 N_rec)
        H, C, _ = lstm_dynamics.lstm_forward(W_h, drive, h0, c0, model.cell_activation)
        z = H[0] @ lstm_dynamics.mT(W["W_out"]) + W["b_out"]  # z = h_{k+1} W_out^T + b_out
        host = model.backend.to_host
        return host(z), host(H[0]), host(C[0])
