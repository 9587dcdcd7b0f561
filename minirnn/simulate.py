"""Simulators: run a trained network forward, with perturbations (PsychRNN's ``Simulator``, extended).

``BasicSimulator`` and ``LSTMSimulator`` keep PsychRNN's constructor (from a model, from a weights
file + params, or from a weights dict + ``alpha`` or ``dt``/``tau``) and ``run_trials(trial_input,
t_connectivity=None) -> (outputs, states)``. They build a model object from the weights and call
its forward pass, the very code ``train`` and ``test`` run (DESIGN.md §1), so with noise off a
simulator and ``model.test`` agree bit for bit.

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
  PsychRNN's ``t_connectivity (N_steps, N_rec, N_rec)`` is exactly this.
* ``noise``: the recurrent noise level ``sigma_rec`` in the window. When any noise perturbation is
  present the whole run's noise (the model's own level outside the windows) is drawn from the
  simulator's generator as ``xi (N_steps, B, N_rec)`` and enters through ``inject`` as
  ``sqrt(2 / alpha) sigma_k xi_k`` (equal to the model's noise term up to rounding).

For the LSTM, ``silence`` and ``clamp`` act on the hidden state ``h`` (silence: ``h = 0``) and
``lesion`` masks the hidden columns of all four gate matrices; ``inject`` and ``noise`` are not
defined (the LSTM has no drive equation nor noise) and raise.

Time windows are ``t_start <= t < t_end`` with ``t = k dt``, in ms when the Perturbation has a
``dt``, else in steps; ``None`` means the start / the end of the trial. Perturbations compose:
lesions multiply, injected currents add, and for clamps and noise levels the later call wins where
windows overlap. A perturbation applies to every trial of the batch.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .errors import ParameterError, ShapeError
from .nn import noise
from .nn.activations import get_activation

__all__ = ["Perturbation", "PerturbationArrays", "BasicSimulator", "LSTMSimulator", "silent_state"]


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


@dataclass
class PerturbationArrays:
    """What the time loop takes (each None when unused). Shapes: ``W_mask (T, N, N)``,
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
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ParameterError(f"The {key!r} parameter of Perturbation must be a positive int. "
                                     f"Got {value!r} instead.")
        if dt is not None and not (np.isscalar(dt) and np.isfinite(dt) and dt > 0):
            raise ParameterError(f"The 'dt' parameter of Perturbation must be a positive number or None. "
                                 f"Got {dt!r} instead.")
        self.N_steps, self.N_rec, self.dt = int(N_steps), int(N_rec), dt
        self.ops = []  # (kind, units mask (N,), steps mask (T,), value)

    # ---- selection helpers ---------------------------------------------------------------------
    def _units(self, units) -> np.ndarray:
        """int, sequence of ints, bool mask (N_rec,), slice or None (all) -> bool mask (N_rec,)."""
        sel = np.zeros(self.N_rec, dtype=bool)
        if units is None:
            sel[:] = True
            return sel
        if isinstance(units, slice):
            sel[units] = True
            return sel
        u = np.asarray(units)
        if u.dtype == bool:
            if u.shape != (self.N_rec,):
                raise ShapeError(f"a boolean unit mask must have shape (N_rec,) = ({self.N_rec},). Got {u.shape}.")
            return u.copy()
        if u.dtype.kind not in "iu" or np.any(u < 0) or np.any(u >= self.N_rec):
            raise ParameterError(f"units must be ints in [0, {self.N_rec}), a bool mask or a slice. Got {units!r}.")
        sel[u.ravel()] = True
        return sel

    def _steps(self, t_start, t_end) -> np.ndarray:
        """Window ``t_start <= t_k < t_end`` (``t_k = k dt`` in ms, or ``k`` in steps) -> bool (T,)."""
        t = np.arange(self.N_steps) * (self.dt if self.dt is not None else 1)
        lo = -np.inf if t_start is None else t_start
        hi = np.inf if t_end is None else t_end
        if not hi > lo:
            raise ParameterError(f"the window needs t_end > t_start. Got t_start={t_start!r}, t_end={t_end!r}.")
        return (t >= lo) & (t < hi)

    @staticmethod
    def _values(value, sel, what):
        """A scalar, or one finite value per selected unit (in increasing unit order)."""
        v = np.asarray(value, dtype=np.float64)
        if v.ndim and v.shape != (int(sel.sum()),):
            raise ShapeError(f"{what} has shape {v.shape} but must be a scalar or one value per selected unit "
                             f"({int(sel.sum())}).")
        if not np.all(np.isfinite(v)):
            raise ParameterError(f"{what} must be finite. Got {value!r}.")
        return v if v.ndim else float(v)

    # ---- perturbations -------------------------------------------------------------------------
    def silence(self, units, t_start=None, t_end=None) -> "Perturbation":
        """Rate zero for ``units`` in the window (state clamped where ``f(x) = 0``; LSTM: ``h = 0``)."""
        self.ops.append(("silence", self._units(units), self._steps(t_start, t_end), None))
        return self

    def clamp(self, units, value, t_start=None, t_end=None) -> "Perturbation":
        """State ``x`` (LSTM: ``h``) of ``units`` held at ``value`` (scalar, or one per selected unit)."""
        sel = self._units(units)
        self.ops.append(("clamp", sel, self._steps(t_start, t_end), self._values(value, sel, "value")))
        return self

    def inject(self, units, amount, t_start=None, t_end=None) -> "Perturbation":
        """Add the current ``amount`` (scalar, or one per selected unit) to the drive of ``units``."""
        sel = self._units(units)
        self.ops.append(("inject", sel, self._steps(t_start, t_end), self._values(amount, sel, "amount")))
        return self

    def lesion(self, post=None, pre=None, t_start=None, t_end=None) -> "Perturbation":
        """Zero the recurrent weights from ``pre`` units onto ``post`` units (None: all) in the window."""
        M = np.ones((self.N_rec, self.N_rec))
        M[np.ix_(self._units(post), self._units(pre))] = 0
        self.ops.append(("W_mask", None, self._steps(t_start, t_end), M))
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
        self.ops.append(("noise", self._units(units), self._steps(t_start, t_end), float(rec_noise)))
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
            W_mask = np.ones((T, N, N))
            for kind, _, steps, M in self.ops:
                if kind == "W_mask":
                    W_mask[steps] *= M
                elif kind == "W_mask_full":
                    W_mask *= M
            out.W_mask = W_mask.astype(dtype)
        if kinds & {"silence", "clamp"}:
            mask, value = np.zeros((T, 1, N), dtype=bool), np.zeros((T, 1, N))
            for kind, sel, steps, v in self.ops:
                if kind not in ("silence", "clamp"):
                    continue
                if kind == "silence":
                    v = 0.0 if lstm else silent_state(transfer_function)
                window = steps[:, None] & sel[None, :]  # (T, N)
                mask[:, 0, :] |= window
                value[:, 0, :] = np.where(window, np.zeros((T, N)) + _per_selected(v, sel), value[:, 0, :])
            out.clamp_mask, out.clamp_value = mask, value.astype(dtype)
        if "inject" in kinds:
            inject = np.zeros((T, 1, N))
            for kind, sel, steps, v in self.ops:
                if kind == "inject":
                    inject[:, 0, :] += (steps[:, None] & sel[None, :]) * _per_selected(v, sel)
            out.inject = inject.astype(dtype)
        if "noise" in kinds:
            if alpha is None or rng is None:
                raise ParameterError("noise perturbations need the network's alpha and a random generator.")
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


def _per_selected(v, sel):
    """A scalar, or one value per selected unit -> an (N,) row (zeros off the selection)."""
    row = np.zeros(sel.shape[0])
    row[sel] = v
    return row


# ---------------------------------------------------------------------------------------------
# simulators


class _Simulator:
    """Shared constructor logic (PsychRNN's precedence and conflict rules) and ``run_trials``."""

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
        else:
            if weights_path is not None:
                weights = io.read_npz(weights_path)
                info = io.classify_weights(weights)
                meta = info["meta"] or {}
                if info["architecture"] != self.architecture:
                    raise ParameterError(f"{owner}: {weights_path} holds {info['architecture']} weights.")
                if info["transfer_function"] and transfer_function is None:
                    transfer_function = info["transfer_function"]
                if "lstm_variant" in meta:
                    weights = dict(weights, lstm_variant=meta["lstm_variant"])
            settings = self._settings_from_params(params, meta, owner)
            tf = transfer_function if transfer_function is not None else "relu"  # PsychRNN's default
            settings["transfer_function"] = get_activation(tf)
        self.weights = {k: v for k, v in dict(weights).items() if "/" not in k}
        self.model = self._build_model(self.weights, settings, seed)
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

    @staticmethod
    def _settings_from_params(params, meta, owner):
        params = {} if params is None else dict(params)
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
        raise NotImplementedError

    def _perturb(self, perturbation, t_connectivity, T, B, rng):
        """Combine ``t_connectivity`` and a Perturbation into the object the model's forward takes."""
        if perturbation is None and t_connectivity is None:
            return None, rng
        if perturbation is None:
            perturbation = Perturbation(T, self.N_rec)
        elif not isinstance(perturbation, (Perturbation, PerturbationArrays)):
            raise ParameterError(f"perturbation must be a Perturbation. Got {type(perturbation).__name__}.")
        if isinstance(perturbation, Perturbation):
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
        out = PerturbationArrays(dev(arrays.W_mask), dev(arrays.clamp_mask), dev(arrays.clamp_value),
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


class BasicSimulator(_Simulator):
    """Simulator of the rate RNN (:class:`minirnn.Basic`), PsychRNN's constructor semantics.

    Parameters
    ----------
    rnn_model : a Basic model: its current effective weights, ``alpha``, ``rec_noise``, transfer
        function, dtype and backend. Cannot be combined with ``params`` or another weights source.
    params : dict with ``alpha`` or ``dt`` and ``tau``; optional ``rec_noise`` (0), ``dtype``
        (``"float64"``), ``backend`` (``"auto"``, as models). A minirnn weights file supplies ``dt``/``tau``
        itself when ``params`` lacks them.
    weights_path : a weights file (minirnn's or PsychRNN's), read safely (no pickle).
    weights : a dict with PsychRNN's keys (``W_in, W_rec, W_out, b_rec, b_out, init_state``,
        effective weights as ``get_weights()`` returns them).
    transfer_function : a name, a NumPy function with a known name (``np.tanh``), or ``(f, df)``;
        default: the model's, the file's, else relu. With ``rnn_model``, a different one is an error.
    seed : seeds the simulator's noise stream (default: entropy from ``np.random``).

    PsychRNN raised ``UserWarning`` (as an exception) for conflicting arguments; minirnn raises
    :class:`~minirnn.errors.ParameterError` (a ``ValueError``) with the same conditions.
    """

    architecture = "basic"

    def _build_model(self, weights, settings, seed):
        from .models.basic import Basic

        W = {k: np.asarray(weights[k]) for k in ("W_in", "W_rec", "W_out", "b_rec", "b_out", "init_state")}
        N_rec, N_in, N_out = W["W_rec"].shape[0], W["W_in"].shape[1], W["W_out"].shape[0]
        p = dict(N_in=N_in, N_rec=N_rec, N_out=N_out, dt=settings["dt"], tau=settings["tau"],
                 rec_noise=settings["rec_noise"], transfer_function=settings["transfer_function"],
                 dtype=settings["dtype"], backend=settings["backend"], seed=seed, **W)
        return Basic(p)


    def rnn_step(self, state, rnn_in, t_connectivity=None, rng=None):
        """One Euler step from any ``state (B, N_rec)`` with input ``rnn_in (B, N_in)`` (PsychRNN's).

        The same recurrence function as training (one step of it), with ``W_rec_eff`` multiplied by
        ``t_connectivity (N_rec, N_rec)`` when given. Returns ``(output (B, N_out), new_state (B, N_rec))``.
        """
        from .dynamics import rate

        model = self.model
        W = model.effective_weights()
        x0 = model._as_array(np.atleast_2d(state), "state")  # (B, N_rec)
        u = model._check_batch(np.atleast_2d(rnn_in)[:, None, :])  # (B, 1, N_in)
        drive = (u[:, 0, :] @ rate.mT(W["W_in"]) + W["b_rec"])[None]  # (1, B, N_rec)
        xi = None
        if self.rec_noise > 0:  # the counter-based noise of training (minirnn.nn.noise), one key per step
            xi = model._noise_from_keys(noise.draw_key(self.rng if rng is None else rng), *drive.shape[:2])
        perturb = None if t_connectivity is None else PerturbationArrays(
            W_mask=model._as_array(t_connectivity, "t_connectivity", (self.N_rec, self.N_rec))[None])
        X = rate.recur_forward(W["W_rec"], drive, x0, model.alpha, model.noise_scale, xi, model.activation, perturb)
        z = model.activation.f(X[0]) @ rate.mT(W["W_out"]) + W["b_out"]  # z = f(x_{k+1}) W_out^T + b_out
        return model.backend.to_host(z), model.backend.to_host(X[0])


class LSTMSimulator(_Simulator):
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
        if params is not None and params.get("lstm_variant") is not None:
            self._variant = params["lstm_variant"]
        super().__init__(rnn_model=rnn_model, params=params, weights_path=weights_path, weights=weights, seed=seed)

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
        W = model.effective_weights()
        W_h, W_u, b = model._stacked(W)
        h0, c0 = (model._as_array(np.atleast_2d(a), name) for a, name in ((hidden, "hidden"), (cell, "cell")))
        u = model._check_batch(np.atleast_2d(rnn_in)[:, None, :])  # (B, 1, N_in)
        drive = (u[:, 0, :] @ lstm_dynamics.mT(W_u) + b)[None]  # (1, B, 4 N_rec)
        H, C, _ = lstm_dynamics.lstm_forward(W_h, drive, h0, c0, model.cell_activation)
        z = H[0] @ lstm_dynamics.mT(W["W_out"]) + W["b_out"]  # z = h_{k+1} W_out^T + b_out
        host = model.backend.to_host
        return host(z), host(H[0]), host(C[0])
