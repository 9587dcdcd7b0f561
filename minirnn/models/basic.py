"""``Basic``: the continuous-time rate RNN (PsychRNN's Basic), forward and backward on one page.

Forward Euler of ``tau dx/dt = -x + W_rec f(x) + W_in u + b_rec + noise`` (DESIGN.md §3)::

    x_0     = init_state
    x_{k+1} = (1 - alpha) x_k + alpha (f(x_k) @ W_rec_eff^T + u_k @ W_in_eff^T + b_rec)
              + sqrt(2 alpha) sigma_rec xi_k
    z_k     = f(x_{k+1}) @ W_out_eff^T + b_out
    L       = loss(z, y, mask) + regularizers(W_eff, f(x))

The sequential recurrence and its adjoint are :mod:`minirnn.dynamics.rate` (or a backend's
kernel); every other step below is one whole-array operation over all ``T * B`` rows. Internally
arrays are time-major, ``(*lead, T, B, N)``; the user sees batch-major ``(B, T, N)``.
"""
from __future__ import annotations

import warnings

import numpy as np

from .._params import check_dale_ratio
from ..dynamics import rate
from ..errors import ParameterError, ShapeError
from ..nn import losses, noise, regularizers
from ..nn.constraints import dale_signs, effective_weight_backward
from ..nn.initializers import GaussianSpectralRadius, WeightInitializer
from .rnn import RNN

mT = rate.mT


def time_major(a):
    """(*lead, B, T, N) <-> (*lead, T, B, N): swap the batch and time axes (a view)."""
    return a.swapaxes(-3, -2)


def rows(a):
    """(*lead, T, B, N) -> (*lead, T*B, N): one row per trial and step, for a single matmul."""
    return a.reshape(a.shape[:-3] + (a.shape[-3] * a.shape[-2], a.shape[-1]))


#: params a weights file replaces (PsychRNN's behaviour): given together with load_weights_path, they warn
FILE_OWNED = ("W_in", "W_rec", "W_out", "b_rec", "b_out", "init_state", "input_connectivity", "rec_connectivity",
              "output_connectivity", "initializer")


def _warn_overridden_by_file(p, file_info, given, owned=FILE_OWNED):
    """Warn about explicit params that ``load_weights_path``'s file overrides (silently in PsychRNN).
    ``owned``: the params a file replaces (the LSTM passes its own)."""
    import warnings

    path = p["load_weights_path"]
    ignored = [key for key in owned if key in given]
    if ignored:
        warnings.warn(f"load_weights_path={path!r}: the file's weights and masks are used, so the given {ignored} "
                      "are ignored.", stacklevel=5)
    if "dale_ratio" in file_info and "dale_ratio" in given and file_info["dale_ratio"] != p["dale_ratio"]:
        warnings.warn(f"load_weights_path={path!r}: the file's dale_ratio {file_info['dale_ratio']!r} is used, not "
                      f"the given {p['dale_ratio']!r}.", stacklevel=5)
    if file_info.get("transfer_function") is not None and "transfer_function" in given:
        from ..nn.activations import get_activation

        saved, chosen = get_activation(file_info["transfer_function"]).name, get_activation(p["transfer_function"]).name
        if saved != chosen:
            warnings.warn(f"load_weights_path={path!r}: the file's transfer_function {saved!r} is used, not the "
                          f"given {chosen!r} (as PsychRNN uses a file's, and as for dale_ratio).", stacklevel=5)


def _warn_if_trained_with_another_alpha(p, file_info, owner):
    """Warn when the file's record says its network was trained with another dt / tau than ``p`` gives
    (the model runs with ``p``'s, as PsychRNN's would; BasicSimulator warns the same way)."""
    from .._model_files import warn_alpha_conflict

    warn_alpha_conflict({"dt": p["dt"], "tau": p["tau"]}, file_info["meta"], p["load_weights_path"], owner,
                        "the model runs with the params' dt and tau, so its outputs differ from the saved network's. "
                        "Give the file's dt and tau in params to run the network as it was trained.", stacklevel=5)


class Basic(RNN):
    """The rate RNN. ``Basic(params)`` with PsychRNN's params dict (see ``describe_params()``).

    Raw parameters: ``W_in (N_rec, N_in)``, ``W_rec (N_rec, N_rec)``, ``W_out (N_out, N_rec)``,
    ``b_rec (N_rec,)``, ``b_out (N_out,)``, ``init_state (1, N_rec)``, each with the leading
    network axes of an ensemble when there is one.
    """

    param_names = ("W_in", "W_rec", "W_out", "b_rec", "b_out", "init_state")
    constrained = ("W_in", "W_rec", "W_out")
    per_network_arrays = ("alpha", "noise_scale")

    # ---- construction -------------------------------------------------------------------------
    def _build(self):
        nets = []
        for k, p in enumerate(self.network_params):
            if isinstance(p["dale_ratio"], np.ndarray):  # from a weights file's keys: a 0-d array, maybe holding None
                p["dale_ratio"] = p["dale_ratio"].item()
                self._check_dale_ratio(p)  # (other values were checked with the params)
            nets.append(self._network_arrays(p, self.rng_init[k] if self.lead else self.rng_init))
        if self.lead:
            if len({"s_rec" in net for net in nets}) > 1:
                raise ParameterError("dale_ratio must be None for every network of an ensemble or for none.")
            net = {key: np.stack([n[key] for n in nets]) for key in nets[0]}
        else:
            net = nets[0]
        self._set_network_arrays(net)

    def _check_dale_ratio(self, p):
        """``p["dale_ratio"]``: None or a float in (0, 1) (made a float), else ParameterError."""
        source = f" (from {p['load_weights_path']})" if p.get("load_weights_path") else ""
        p["dale_ratio"] = check_dale_ratio(p["dale_ratio"], type(self).__name__, source)

    def _network_arrays(self, p, rng):
        """Host float64 arrays of one network (params ``p``): raw weights, masks, Dale signs, alpha,
        noise scale."""
        from .. import io

        file_info, given = None, {}  # given: what a file or an initializer says of dale_ratio / transfer_function
        if p["load_weights_path"] is not None:
            file_info = io.load_weights_for_model(p["load_weights_path"], self)
            ini = file_info["weights"]
            _warn_overridden_by_file(p, file_info, self._given_keys())
            _warn_if_trained_with_another_alpha(p, file_info, type(self).__name__)
            given = {key: file_info[key] for key in ("dale_ratio", "transfer_function") if key in file_info}
        elif p["initializer"] is not None:
            if not isinstance(p["initializer"], WeightInitializer):
                raise ParameterError(f"The 'initializer' parameter must be a WeightInitializer. Got {p['initializer']!r}.")
            ini = p["initializer"].initializations  # PsychRNN: its get_dale_ratio() and get_transfer_function()
            given = {key: ini[key] for key in ("dale_ratio", "transfer_function") if key in ini}
        else:
            cls = WeightInitializer if p["W_rec"] is not None else GaussianSpectralRadius
            kwargs = {k: v for k, v in p.items() if k not in ("seed", "initializer", "rng")}
            ini = cls(rng=rng, **kwargs).initializations
        if "dale_ratio" in given:
            p["dale_ratio"] = given["dale_ratio"]
            self._check_dale_ratio(p)
        if given.get("transfer_function") is not None and (file_info is not None
                                                         or "transfer_function" not in self._given_keys()):
            from ..nn.activations import get_activation

            self.activation = get_activation(given["transfer_function"])

        N_in, N_rec, N_out = self.N_in, self.N_rec, self.N_out
        shapes = {"W_in": (N_rec, N_in), "W_rec": (N_rec, N_rec), "W_out": (N_out, N_rec),
                  "b_rec": (N_rec,), "b_out": (N_out,), "init_state": (1, N_rec),
                  "input_connectivity": (N_rec, N_in), "rec_connectivity": (N_rec, N_rec),
                  "output_connectivity": (N_out, N_rec)}
        net = {}
        if file_info is not None:  # load_weights_for_model checked that every parameter is there
            for name in ("input_connectivity", "rec_connectivity", "output_connectivity"):
                if ini.get(name) is None:  # a file without masks: everything connected
                    ini[name] = np.ones(shapes[name])
        for name, shape in shapes.items():
            try:
                a = np.asarray(ini[name], dtype=np.float64)
            except (TypeError, ValueError):
                raise ParameterError(f"{name} must be an array of numbers of shape {shape}. Got {ini[name]!r}.") from None
            if name in ("init_state", "b_rec", "b_out") and a.size == int(np.prod(shape)):
                a = a.reshape(shape)
            if a.shape != shape:
                raise ShapeError(f"{name} has shape {a.shape} but must be {shape} (N_in={N_in}, N_rec={N_rec}, N_out={N_out}).")
            if not np.all(np.isfinite(a)):
                raise ParameterError(f"{name} contains NaN or inf.")
            net[name] = a
        for name in ("input_connectivity", "rec_connectivity", "output_connectivity"):
            if not np.all((net[name] == 0) | (net[name] == 1)):
                raise ParameterError(f"{name} must hold only 0 and 1.")
        if not net["output_connectivity"].any():  # as dale_ratio with no excitatory unit, which is an error
            warnings.warn("output_connectivity is all zero: no unit reaches the outputs, so the outputs are b_out "
                          "alone and only b_out can learn.", UserWarning, stacklevel=4)
        if not p["autapses"]:
            net["rec_connectivity"] = net["rec_connectivity"] * (1 - np.eye(N_rec))
        if p["dale_ratio"] is not None:
            s_rec, s_out = dale_signs(p["dale_ratio"], N_rec)
            given_dale_out = (file_info.get("Dale_out") if file_info is not None
                              else ini.get("Dale_out") if p["initializer"] is not None else p.get("Dale_out"))
            if given_dale_out is not None:  # a file's own convention (PsychRNN 1.0.0: +-1, not 1/0)
                given_dale_out = np.asarray(given_dale_out, dtype=np.float64)
                if given_dale_out.shape != (N_rec, N_rec):
                    raise ShapeError(f"Dale_out has shape {given_dale_out.shape} but must be ({N_rec}, {N_rec}).")
                s_out = np.diag(given_dale_out).copy()
            net["s_rec"], net["s_out"], net["s_in"] = s_rec[None], s_out[None], np.ones((1, N_in))
        tau = np.asarray(p["tau"], dtype=np.float64)
        net["alpha"] = np.broadcast_to(p["dt"] / tau, (N_rec,))[None].copy()  # (1, N_rec)
        if net["alpha"].max() > 1:
            warnings.warn(f"dt / tau = {net['alpha'].max():g} > 1 (dt {p['dt']}, tau {np.min(tau):g}): the Euler step "
                          "x += alpha (-x + ...) overshoots, and for alpha >= 2 the leak alone makes the state grow "
                          "each step. Use dt <= tau (PsychRNN's tasks: dt = tau / 10).", UserWarning, stacklevel=4)
        net["noise_scale"] = np.sqrt(2 * net["alpha"]) * float(p["rec_noise"])  # (1, N_rec)
        return net

    def _given_keys(self):
        """The params the user set: in params, or in an ensemble's network_params."""
        return set(getattr(self, "_user_keys", ())) | set(getattr(self, "_network_keys", ()))

    def _set_network_arrays(self, net):
        """Move one network's (or a stacked ensemble's) host arrays onto the backend, in dtype."""
        coefs = {k: np.array([float(p[k]) for p in self.network_params]).reshape(self.lead)
                 for k in regularizers.REGULARIZER_KEYS}
        self._check_representable({"dt / tau": net["alpha"], "rec_noise (sqrt(2 dt / tau) rec_noise)":
                                   net["noise_scale"], **coefs})
        dev = lambda a: self.xp.asarray(np.ascontiguousarray(a), dtype=self.dtype)  # noqa: E731
        self.raw = {name: dev(net[name]) for name in self.param_names}
        self.masks = {"W_in": dev(net["input_connectivity"]), "W_rec": dev(net["rec_connectivity"]),
                      "W_out": dev(net["output_connectivity"])}
        self.signs = {}
        if "s_rec" in net:
            self.signs = {"W_in": dev(net["s_in"]), "W_rec": dev(net["s_rec"]), "W_out": dev(net["s_out"])}
        self.alpha = dev(net["alpha"])  # (*lead, 1, N_rec)
        self.noise_scale = dev(net["noise_scale"])  # (*lead, 1, N_rec)
        self.has_noise = bool(np.any(net["noise_scale"] > 0))
        self.reg_coefs = {k: self.xp.asarray(c, dtype=self.dtype) for k, c in coefs.items() if np.any(c != 0)}

    def _check_representable(self, values):
        """Each finite option value must stay finite in the model's dtype (1e300 is inf in float32, and
        would turn every output NaN with no word said): a ParameterError naming the option."""
        for key, value in values.items():
            with np.errstate(over="ignore"):
                cast = np.asarray(value, dtype=np.float64).astype(self.dtype)
            if not np.all(np.isfinite(cast)):
                raise ParameterError(f"{key} is {np.max(np.abs(value)):g}, which overflows {self.dtype} (largest "
                                     f"{np.finfo(self.dtype).max:g}). Use smaller values, or dtype='float64'.")

    # ---- forward ------------------------------------------------------------------------------
    def _noise_keys(self, rng):
        """One noise key per forward pass from the noise Generator ``rng`` (a list of them for an ensemble:
        a flat list of keys, one per network), or None when this pass has no noise; see
        :mod:`minirnn.nn.noise`."""
        if rng is None or not self.has_noise:
            return None
        return [noise.draw_key(r) for r in rng] if isinstance(rng, list) else noise.draw_key(rng)

    def _noise_from_keys(self, keys, T, B):
        """Standard normals ``xi`` of shape (*lead, T, B, N_rec), time-major (DESIGN.md §5)."""
        if isinstance(keys, list):  # an ensemble: each network its own key
            return self.xp.stack([self._noise_from_keys(k, T, B) for k in keys])
        draw = self.backend.kernels.get("gaussian_noise")
        if draw is None:
            return noise.gaussian_noise(keys, (T, B, self.N_rec), self.dtype, self.xp)
        return draw(keys, (T, B, self.N_rec), self.dtype)

    def _noise(self, noise_rng, T, B):
        """The noise ``xi`` of one forward: None, or (*lead, T, B, N_rec) standard normals."""
        if hasattr(noise_rng, "shape"):  # explicit standard normals (*lead, T, B, N_rec): equivalence tests
            return self.xp.asarray(noise_rng, dtype=self.dtype)
        keys = self._noise_keys(noise_rng)
        return None if keys is None else self._noise_from_keys(keys, T, B)

    def _forward(self, x, noise_rng=None, perturb=None):
        """x: (*lead?, B, T, N_in) -> z: (*lead, T, B, N_out) time-major, and the cache for backward."""
        xp, act = self.xp, self.activation
        W = self.effective_weights()
        u = xp.ascontiguousarray(time_major(x))  # (*lead?, T, B, N_in)
        T, B = u.shape[-3], u.shape[-2]
        # drive_k = u_k @ W_in_eff^T + b_rec, for every step at once
        drive = rows(u) @ mT(W["W_in"]) + W["b_rec"][..., None, :]  # (*lead, T*B, N_rec)
        drive = drive.reshape(drive.shape[:-2] + (T, B, self.N_rec))
        if perturb is not None and getattr(perturb, "inject", None) is not None:
            drive = drive + perturb.inject
        xi = self._noise(noise_rng, T, B)
        forward = self.backend.kernels.get("rate_forward", rate.recur_forward)
        X = forward(W["W_rec"], drive, W["init_state"], self.alpha, self.noise_scale, xi, act, perturb)
        R = act.f(X)  # rates r_{k+1} = f(x_{k+1})
        # z_k = f(x_{k+1}) @ W_out_eff^T + b_out
        Z = (rows(R) @ mT(W["W_out"]) + W["b_out"][..., None, :]).reshape(X.shape[:-1] + (self.N_out,))
        return Z, {"W": W, "u": u, "X": X, "R": R}

    def _run(self, x, noise_rng=None, perturb=None):
        Z, cache = self._forward(x, noise_rng, perturb)
        return time_major(Z), time_major(cache["X"])

    # ---- backward -----------------------------------------------------------------------------
    def _loss_and_grads(self, x, y, mask, noise_rng=None):
        """Objective per network (shape lead) and its gradient for each trainable raw parameter."""
        # A backend may fuse this whole method into one kernel (numba: "rate_loss_and_grads"); it
        # must give the numbers of the reference code below, which runs wherever it does not apply.
        if self._fused_applies():
            return self._fused_loss_and_grads(x, y, mask, noise_rng)
        xp, act = self.xp, self.activation
        Z, cache = self._forward(x, noise_rng)
        W, u, X, R = cache["W"], cache["u"], cache["X"], cache["R"]
        value, dz = self.loss_function(time_major(Z), y, mask)  # both batch-major
        dZ = xp.ascontiguousarray(time_major(dz))  # (*lead, T, B, N_out)

        # regularizers: on effective weights, and on the rates
        reg_value, dW_eff = regularizers.weight_penalties(W, self.reg_coefs)
        value = value + reg_value
        dR = (rows(dZ) @ W["W_out"]).reshape(R.shape)  # z = R W_out^T  =>  dR = dZ W_out
        v, d_rates, dW_eff = regularizers.activity_penalties(R, W, self.reg_coefs,
                                                             self.params["custom_regularization"], dW_eff)
        value, dR = value + v, dR + d_rates

        g = {}
        # z_k = r_{k+1} @ W_out^T + b_out
        g["W_out"] = mT(rows(dZ)) @ rows(R)  # (*lead, N_out, N_rec)
        g["b_out"] = rows(dZ).sum(axis=-2)
        # r = f(x): the adjoint reaching each state directly, then back through time
        dX = dR * act.df(X)
        backward = self.backend.kernels.get("rate_backward", rate.recur_backward)
        d_drive, d_x0 = backward(W["W_rec"], X, W["init_state"], dX, self.alpha, act)
        # x_{k+1} = ... + alpha f(x_k) @ W_rec^T: d_drive_k holds alpha * a_{k+1}; pair it with f(x_k)
        R0 = xp.broadcast_to(act.f(W["init_state"]), d_drive.shape[:-3] + d_drive.shape[-2:])  # f(x_0)
        g["W_rec"] = mT(rows(d_drive[..., 1:, :, :])) @ rows(R[..., :-1, :, :]) + mT(d_drive[..., 0, :, :]) @ R0
        # drive_k = u_k @ W_in^T + b_rec
        g["W_in"] = mT(rows(d_drive)) @ rows(u)
        g["b_rec"] = rows(d_drive).sum(axis=-2)
        g["init_state"] = d_x0.sum(axis=-2, keepdims=True)  # x_0 is shared by every trial
        for name in set(dW_eff) - set(self.constrained):  # a custom regularizer's biases / init_state terms
            g[name] = g[name] + dW_eff[name]
        # effective -> raw (masks, |.| and Dale's signs)
        for name in self.constrained:
            dW = g[name] + dW_eff[name] if name in dW_eff else g[name]
            g[name] = effective_weight_backward(dW, self.raw[name], self.masks[name], self.signs.get(name))
        return value, {name: g[name] for name in self.trainable_names()}

    def _fused_applies(self):
        """The backend has the fused kernel and it covers this model: a built-in activation, the
        MSE loss, no custom regularizer (weight penalties and L2_firing_rate are covered), and
        Basic's own forward (a subclass that changes ``_forward`` gets the code below)."""
        return ("rate_loss_and_grads" in self.backend.kernels and self.activation.code is not None
                and self.loss_function is losses.mean_squared_error and self.params["custom_regularization"] is None
                and type(self)._forward is Basic._forward)

    def _fused_loss_and_grads(self, x, y, mask, noise_rng=None):
        """``_loss_and_grads`` by the backend's fused kernel: effective-weight gradients from the kernel,
        weight penalties and the constraint adjoints as below."""
        W = self.effective_weights()
        # explicit noise (equivalence tests), or keys the kernel makes its noise from
        explicit = hasattr(noise_rng, "shape")
        xi = self._noise(noise_rng, x.shape[-2], x.shape[-3]) if explicit else None
        keys = None if explicit else self._noise_keys(noise_rng)
        value, g = self.backend.kernels["rate_loss_and_grads"](W, x, y, mask, self.alpha, self.noise_scale, xi,
                                                               self.activation, self.reg_coefs.get("L2_firing_rate"),
                                                               noise_keys=keys)
        reg_value, dW_eff = regularizers.weight_penalties(W, self.reg_coefs)
        for name in self.constrained:
            dW = g[name] + dW_eff[name] if name in dW_eff else g[name]
            g[name] = effective_weight_backward(dW, self.raw[name], self.masks[name], self.signs.get(name))
        return value + reg_value, {name: g[name] for name in self.trainable_names()}

    # ---- weights out --------------------------------------------------------------------------
    def get_weights(self) -> dict:
        """Effective weights and constraint arrays (NumPy), with PsychRNN's keys. No optimizer state.

        ``W_in, W_rec, W_out`` are effective (masked, Dale applied); ``init_state (1, N_rec)``;
        ``Dale_rec``/``Dale_out`` are the N×N diagonal sign matrices; ``dale_ratio`` is a float or None.
        """
        host = self.backend.to_host
        eff = self.effective_weights()
        out = {name: np.array(host(eff[name])) for name in self.param_names}
        out["input_connectivity"] = np.array(host(self.masks["W_in"]))
        out["rec_connectivity"] = np.array(host(self.masks["W_rec"]))
        out["output_connectivity"] = np.array(host(self.masks["W_out"]))
        ones = np.ones(self.lead + (self.N_rec,), dtype=self.dtype)
        s_rec = np.array(host(self.signs["W_rec"]))[..., 0, :] if self.signs else ones
        s_out = np.array(host(self.signs["W_out"]))[..., 0, :] if self.signs else ones
        out["Dale_rec"] = s_rec[..., :, None] * np.eye(self.N_rec, dtype=self.dtype)
        out["Dale_out"] = s_out[..., :, None] * np.eye(self.N_rec, dtype=self.dtype)
        out["dale_ratio"] = [q["dale_ratio"] for q in self.network_params] if self.lead else self.params["dale_ratio"]
        return out
