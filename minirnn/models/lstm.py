"""``LSTM``: a long short-term memory network with PsychRNN's interface, forward and backward.

One step, gates ``f, i, c, o`` with weights ``(post, pre) = (N_rec, N_rec + N_in)``, hidden
columns first (DESIGN.md §7)::

    f = sigmoid([h, u] @ W_f^T + b_f)    i = sigmoid([h, u] @ W_i^T + b_i)
    o = sigmoid([h, u] @ W_o^T + b_o)    g = tanh([h, u] @ W_c^T + b_c)
    c' = f * c + i * g
    h' = o * tanh(c')          (lstm_variant="standard", the default)
    h' = o * sigmoid(c')       (lstm_variant="psychrnn": PsychRNN's LSTM)
    z  = h' @ W_out_eff^T + b_out          states[:, k] = h_{k+1},  outputs[:, k] = z_k

The sequential part is :mod:`minirnn.dynamics.lstm` (or a backend kernel); the input drive, the
readout, the loss and every weight gradient are whole-array code here. There is no ``alpha``, no
transfer function and no recurrent noise (as in PsychRNN; ``rec_noise > 0`` warns).

Constraints: ``rec_connectivity (N_rec, N_rec)`` masks the hidden columns and
``input_connectivity (N_rec, N_in)`` the input columns of all four gate matrices;
``output_connectivity`` masks ``W_out``; ``autapses=False`` zeroes the diagonal of the hidden
block. Dale's principle is not defined for the LSTM (``dale_ratio`` is ignored with a warning,
as PsychRNN ignored it). Regularizers: ``L1_out``/``L2_out`` on ``W_out``; ``L1_rec``/``L2_rec``
on the hidden blocks of the four gates together (mean over their ``4 N_rec^2`` entries);
``L1_in``/``L2_in`` on the input blocks (mean over ``4 N_rec N_in``); ``L2_firing_rate`` on the
hidden states ``h``. (PsychRNN applied them to unused ``W_in``/``W_rec`` variables instead.)

The variant is ``params["lstm_variant"]``, else the class's default; a weights file
(``load_weights_path``) brings its own, used over an explicit one (which then warns), as are its
weights and masks. It never depends on the layout of gate arrays: ours, ``(N_rec, N_rec + N_in)``,
and PsychRNN's transpose are both accepted, and never share a shape since ``N_in >= 1``.

PsychRNN weights files (no ``minirnn`` metadata) are read as ``lstm_variant="psychrnn"`` (the only
cell PsychRNN has), the gate matrices transposed from PsychRNN's ``(N_rec + N_in, N_rec)``, and the
first row of their per-batch-row ``init_hidden``/``init_cell`` (as PsychRNN's ``LSTMSimulator`` does).
The rate RNN's params (``W_rec``, ``transfer_function``, a per-unit ``tau``, ...) warn: see
:data:`RATE_ONLY_PARAMS`.

``PsychRNNLSTM`` is the same class with ``lstm_variant="psychrnn"`` as its default: what a PsychRNN
script gets when it is ported (``from minirnn import PsychRNNLSTM as LSTM``), so it trains
PsychRNN's architecture. ``LSTM`` keeps the standard cell for new code.
"""
from __future__ import annotations

import warnings

import numpy as np

from ..dynamics import lstm as lstm_dynamics
from ..errors import ParameterError, ShapeError
from ..nn import regularizers
from ..nn.activations import ACTIVATIONS
from ..nn.constraints import effective_weight_backward
from .basic import _warn_overridden_by_file, rows, time_major
from .rnn import RNN

mT = lstm_dynamics.mT
GATES = ("f", "i", "c", "o")
VARIANTS = {"standard": "tanh", "psychrnn": "sigmoid"}
MASKS = ("input_connectivity", "rec_connectivity", "output_connectivity")

#: params of the rate RNN (Basic) that the LSTM has no use for: set explicitly, they warn. ``tau`` only
#: per unit or per network: a single number is required of every model, as in PsychRNN. ``dt`` and
#: ``alpha`` come with a task; ``rec_noise`` and ``dale_ratio`` have warnings of their own.
RATE_ONLY_PARAMS = ("W_in", "W_rec", "b_rec", "init_state", "W_in_train", "W_rec_train", "b_rec_train",
                    "init_state_train", "transfer_function", "initializer", "which_rand_init",
                    "which_rand_W_rec_init", "init_minval", "init_maxval", "spec_rad", "tau")
#: all-zero (minirnn) or unused (PsychRNN) arrays that every LSTM weights dict carries, as PsychRNN's files do
WEIGHTS_DICT_PLACEHOLDERS = ("W_in", "W_rec", "b_rec", "init_state")

_LSTM_PARAMS = {
    "lstm_variant": (None, "standard (h = o tanh(c)) | psychrnn (h = o sigmoid(c)); None: the class's default "
                           "(LSTM: standard; PsychRNNLSTM, what ported PsychRNN scripts get: psychrnn). A "
                           "weights file's variant (PsychRNN's files: psychrnn) is used over this one"),
    "init_hidden": (None, "initial hidden state (1, N_rec) (a PsychRNN (N_batch, N_rec): first row)"),
    "init_cell": (None, "initial cell state (1, N_rec) (a PsychRNN (N_batch, N_rec): first row)"),
    "init_hidden_train": (True, "False freezes init_hidden"),
    "init_cell_train": (True, "False freezes init_cell"),
}
for _g in GATES:
    _LSTM_PARAMS[f"W_{_g}"] = (None, f"initial gate weights W_{_g}: (N_rec, N_rec + N_in), or PsychRNN's transpose")
    _LSTM_PARAMS[f"b_{_g}"] = (None, f"initial gate bias b_{_g} (N_rec,)")
    _LSTM_PARAMS[f"W_{_g}_train"] = (True, f"False freezes W_{_g}")
    _LSTM_PARAMS[f"b_{_g}_train"] = (True, f"False freezes b_{_g}")


def _check_variant(variant):
    """ParameterError unless ``variant`` is one of :data:`VARIANTS`."""
    if not isinstance(variant, str) or variant not in VARIANTS:
        raise ParameterError(f"The 'lstm_variant' parameter of LSTM must be one of {sorted(VARIANTS)} "
                             f"or None (the same for every network). Got {variant!r} instead.")


def _variant_of_file(info) -> str:
    """The cell of a loaded weights file: its minirnn record's, else PsychRNN's (its only cell)."""
    meta = info.get("meta") or {}
    return meta.get("lstm_variant", "psychrnn") if info["format"] == "minirnn" else "psychrnn"


def _is_default(key, value) -> bool:
    """``value`` is the model params table's default for ``key`` (what a copied params dict carries)."""
    from .._params import MODEL_PARAMS

    default = MODEL_PARAMS.get(key, (object(),))[0]
    try:
        return bool(np.array_equal(np.asarray(value), np.asarray(default))) if value is not None else True
    except (TypeError, ValueError):
        return False


class LSTM(RNN):
    """An LSTM with PsychRNN's interface: ``LSTM(params)``; ``test``, ``train``, ``save`` as Basic.

    Raw parameters: ``W_f, W_i, W_c, W_o (N_rec, N_rec + N_in)`` (hidden columns first),
    ``b_f, b_i, b_c, b_o (N_rec,)``, ``W_out (N_out, N_rec)``, ``b_out (N_out,)``,
    ``init_hidden, init_cell (1, N_rec)`` (per network, so ``test`` takes any batch size).

    Initialization (PsychRNN's): gate weights and initial states ``N(0, 0.1^2)``, gate biases 1,
    ``W_out`` Glorot-normal on ``output_connectivity``, ``b_out`` 0, drawn from ``rng_init``.
    """

    architecture = "lstm"
    default_variant = "standard"  # for lstm_variant=None without a weights file
    param_names = ("W_f", "W_i", "W_c", "W_o", "b_f", "b_i", "b_c", "b_o", "W_out", "b_out",
                   "init_hidden", "init_cell")
    constrained = ("W_f", "W_i", "W_c", "W_o", "W_out")

    def _extra_params(self) -> dict:
        return dict(_LSTM_PARAMS)

    def weight_file_shapes(self) -> dict:
        """Shapes a weights file must have for this model (PsychRNN's layout of the gates)."""
        N, N_in = self.N_rec, self.N_in
        shapes = {f"W_{g}": (N + N_in, N) for g in GATES}
        shapes.update({f"b_{g}": (N,) for g in GATES})
        shapes["W_out"], shapes["b_out"] = (self.N_out, N), (self.N_out,)
        return shapes

    # ---- construction -------------------------------------------------------------------------
    def _build(self):
        if self.params["lstm_variant"] is not None:  # checked even where a weights file's variant replaces it
            _check_variant(self.params["lstm_variant"])
        self._warn_unused_params()
        nets, variants = [], set()
        for k, p in enumerate(self.network_params):
            net, variant = self._network_arrays(p, self.rng_init[k] if self.lead else self.rng_init, warn=k == 0)
            nets.append(net)
            variants.add(variant)
        variant = variants.pop() if len(variants) == 1 else sorted(map(str, variants))
        _check_variant(variant)
        self.lstm_variant = variant
        for p in [self.params, *self.network_params]:
            p["lstm_variant"] = variant
        self.cell_activation = ACTIVATIONS[VARIANTS[variant]]  # phi in h = o phi(c)
        net = {key: np.stack([n[key] for n in nets]) for key in nets[0]} if self.lead else nets[0]
        self._set_network_arrays(net)

    def _warn_unused_params(self):
        """Warn once for each kind of param the LSTM ignores: the rate RNN's (:data:`RATE_ONLY_PARAMS`),
        ``dale_ratio`` and ``rec_noise`` (in params or any network's), and clear ``dale_ratio``."""
        unused = self._rate_only_params_given()
        if unused:
            warnings.warn(f"{type(self).__name__} does not use the rate RNN's params {unused}, so they are ignored: "
                          "the LSTM has no W_in/W_rec/b_rec/init_state, transfer function, initializer or time "
                          "constant; its weights are the gates W_f, W_i, W_c, W_o, b_f, ..., W_out, b_out and "
                          "init_hidden/init_cell.", stacklevel=4)
        dale = False
        for p in self.network_params:
            if isinstance(p["dale_ratio"], np.ndarray) and p["dale_ratio"].dtype == object:
                p["dale_ratio"] = p["dale_ratio"].item()  # a PsychRNN file's 0-d array holding None
            dale = dale or p["dale_ratio"] is not None
            p["dale_ratio"] = None
        if dale:
            warnings.warn("dale_ratio is ignored by the LSTM (Dale's principle is defined for the rate "
                          "RNN only), as PsychRNN ignored it.", stacklevel=4)
        if any(float(np.max(np.asarray(p["rec_noise"]))) > 0 for p in self.network_params):
            warnings.warn("rec_noise is ignored by the LSTM (it has no recurrent noise), as in PsychRNN.",
                          stacklevel=4)

    def _rate_only_params_given(self) -> list:
        """The :data:`RATE_ONLY_PARAMS` the user set: in params (not a task's own settings) or network_params.

        Quiet: a single-number ``tau`` in params (required of every model, as in PsychRNN), and the
        :data:`WEIGHTS_DICT_PLACEHOLDERS` when params also hold every gate matrix, i.e. a weights
        dict (``params.update(lstm.get_weights())`` or a PsychRNN file's arrays).
        """
        quiet = set(self._task_keys)
        if np.ndim(self.params["tau"]) == 0:
            quiet.add("tau")
        if all(f"W_{g}" in self._user_keys for g in GATES):
            quiet.update(WEIGHTS_DICT_PLACEHOLDERS)
        chosen = {key for key in self._user_keys - quiet if not _is_default(key, self.params[key])}
        return [key for key in RATE_ONLY_PARAMS if key in chosen | self._network_keys]

    def _network_arrays(self, p, rng, warn=True):
        """Host float64 arrays of one network (params ``p``): raw weights, masks; and the variant.
        ``warn``: warn about what a weights file overrides (once for an ensemble: network 0)."""
        N, N_in, N_out = self.N_rec, self.N_in, self.N_out
        if p["load_weights_path"] is not None:  # the file's weights, masks and variant, as Basic uses a file's
            from .. import io

            info = io.load_weights_for_model(p["load_weights_path"], self)
            variant = _variant_of_file(info)
            if warn:  # (dale_ratio and transfer_function are not the LSTM's: _warn_unused_params)
                owned = self.param_names + MASKS
                _warn_overridden_by_file(p, info, self._user_keys | self._network_keys, owned)
                self._warn_if_file_variant_differs(p, variant)
            given = {k: info["weights"][k] for k in self.param_names if k in info["weights"]}
            masks = {k: info["weights"].get(k) for k in MASKS}
        else:
            # the class's default, never the gate arrays' layout: _given_array takes either layout
            variant = p["lstm_variant"] or self.default_variant
            given = {k: p[k] for k in self.param_names if p.get(k) is not None}
            masks = {k: p[k] for k in MASKS}

        net = {}
        for name, shape in (("input_connectivity", (N, N_in)), ("rec_connectivity", (N, N)),
                            ("output_connectivity", (N_out, N))):
            m = np.ones(shape) if masks[name] is None else np.asarray(masks[name], dtype=np.float64)
            if m.shape != shape:
                raise ShapeError(f"{name} has shape {m.shape} but must be {shape} "
                                 f"(N_in={N_in}, N_rec={N}, N_out={N_out}).")
            if not np.all((m == 0) | (m == 1)):
                raise ParameterError(f"{name} must hold only 0 and 1.")
            net[name] = m
        if not p["autapses"]:
            net["rec_connectivity"] = net["rec_connectivity"] * (1 - np.eye(N))
        # every gate sees [h, u]: hidden columns, then input columns
        net["gate_connectivity"] = np.concatenate([net["rec_connectivity"], net["input_connectivity"]], axis=1)

        # Draw in a fixed order from rng (PsychRNN's init); given arrays replace their draw.
        for g in GATES:
            net[f"W_{g}"] = rng.normal(0.0, 0.1, size=(N, N + N_in))
        for g in GATES:
            net[f"b_{g}"] = np.ones(N)
        m_out = net["output_connectivity"]
        fans = m_out.sum(axis=1)[:, None] + m_out.sum(axis=0)[None, :]
        net["W_out"] = rng.normal(0.0, np.sqrt(2 / np.where(fans > 0, fans, 1.0)))  # Glorot-normal
        net["b_out"] = np.zeros(N_out)
        net["init_hidden"] = rng.normal(0.0, 0.1, size=(1, N))
        net["init_cell"] = rng.normal(0.0, 0.1, size=(1, N))
        for name, value in given.items():
            net[name] = self._given_array(name, value)
        return net, variant

    def _warn_if_file_variant_differs(self, p, file_variant):
        """The file's cell is the one its weights were trained in: it wins over an explicit lstm_variant
        (as a Basic file's transfer_function does), with this warning."""
        if "lstm_variant" in self._user_keys and p["lstm_variant"] != file_variant:
            warnings.warn(f"load_weights_path={p['load_weights_path']!r}: the file's lstm_variant {file_variant!r} "
                          f"is used, not the given {p['lstm_variant']!r} (its weights were trained in that cell; "
                          "as for a file's transfer_function and dale_ratio).", stacklevel=5)

    def _given_array(self, name, value):
        """A user/file array -> this model's layout: gates (N_rec, N_rec + N_in), states (1, N_rec)."""
        N, N_in, N_out = self.N_rec, self.N_in, self.N_out
        a = np.asarray(value, dtype=np.float64)
        if name.startswith("W_") and name != "W_out":
            if a.shape == (N + N_in, N):  # never our (N, N + N_in) too: N_in >= 1 (checked with the params)
                a = a.T  # PsychRNN's (N_rec + N_in, N_rec) -> (post, pre)
            shape = (N, N + N_in)
        elif name in ("init_hidden", "init_cell"):
            if a.ndim == 2 and a.shape[1] == N:
                if a.shape[0] > 1 and not np.all(a == a[:1]):
                    warnings.warn(f"{name}: PsychRNN trained one initial state per batch row ({a.shape[0]} rows that "
                                  "differ); minirnn's LSTM has one for every trial and keeps the first row, as "
                                  "PsychRNN's LSTMSimulator does. Trials of later rows start elsewhere than in "
                                  "PsychRNN's model.test.", stacklevel=5)
                a = a[:1]  # PsychRNN's per-batch-row initial state: its first row
            shape = (1, N)
        else:
            shape = {"W_out": (N_out, N), "b_out": (N_out,)}.get(name, (N,))
        if a.shape != shape and a.size == int(np.prod(shape)) and a.ndim <= 1:
            a = a.reshape(shape)
        if a.shape != shape:
            raise ShapeError(f"{name} has shape {a.shape} but must be {shape} (N_in={N_in}, N_rec={N}, N_out={N_out}).")
        if not np.all(np.isfinite(a)):
            raise ParameterError(f"{name} contains NaN or inf.")
        return a

    def to_model_layout(self, name, value):
        """A user's array for parameter ``name`` (e.g. a ``fixed_weights`` mask) in this model's layout:
        PsychRNN's ``(N_rec + N_in, N_rec)`` gate matrices are transposed, ``(N_batch, N_rec)``
        initial states cut to their first row. Host float64."""
        return self._given_array(name, value)

    def _set_network_arrays(self, net):
        """Move one network's host arrays onto the backend, in the model's dtype."""
        dev = lambda a: self.xp.asarray(np.ascontiguousarray(a), dtype=self.dtype)  # noqa: E731
        self.raw = {name: dev(net[name]) for name in self.param_names}
        gate_mask = dev(net["gate_connectivity"])
        self.masks = {f"W_{g}": gate_mask for g in GATES}
        self.masks["W_out"] = dev(net["output_connectivity"])
        self.signs = {}
        coefs = {k: np.array([float(p[k]) for p in self.network_params]).reshape(self.lead)
                 for k in regularizers.REGULARIZER_KEYS}
        self.reg_coefs = {k: self.xp.asarray(c, dtype=self.dtype) for k, c in coefs.items() if np.any(c != 0)}

    def set_weights(self, weights: dict):
        """Set raw parameters from a dict of arrays; PsychRNN's layouts are accepted (see ``_given_array``)."""
        super().set_weights({k: self._given_array(k, v) for k, v in weights.items() if k in self.raw}
                            | {k: v for k, v in weights.items() if k not in self.raw})

    # ---- forward ------------------------------------------------------------------------------
    def _stacked(self, W):
        """Effective gate weights -> ``W_h (4N, N)``, ``W_u (4N, N_in)``, ``b (4N,)`` stacked f, i, c, o."""
        xp, N = self.xp, self.N_rec
        W_h = xp.concatenate([W[f"W_{g}"][..., :, :N] for g in GATES], axis=-2)
        W_u = xp.concatenate([W[f"W_{g}"][..., :, N:] for g in GATES], axis=-2)
        b = xp.concatenate([W[f"b_{g}"] for g in GATES], axis=-1)
        return W_h, W_u, b

    def _forward(self, x, noise_rng=None, perturb=None):
        """x: (*lead?, B, T, N_in) -> z: (*lead, T, B, N_out) time-major, and the cache for backward."""
        xp = self.xp
        if perturb is not None and (getattr(perturb, "inject", None) is not None):
            raise ParameterError("The LSTM takes silence/clamp (on h) and lesion perturbations only; "
                                 "inject and noise are defined for the rate RNN (Basic).")
        W = self.effective_weights()
        W_h, W_u, b = self._stacked(W)
        u = xp.ascontiguousarray(time_major(x))  # (*lead?, T, B, N_in)
        T, B = u.shape[-3], u.shape[-2]
        # drive_k = u_k @ W_u^T + b, every step at once
        drive = rows(u) @ mT(W_u) + b[..., None, :]  # (*lead, T*B, 4N)
        drive = drive.reshape(drive.shape[:-2] + (T, B, 4 * self.N_rec))
        forward = self.backend.kernels.get("lstm_forward", lstm_dynamics.lstm_forward)
        H, C, G = forward(W_h, drive, W["init_hidden"], W["init_cell"], self.cell_activation, perturb)
        # z_k = h_{k+1} @ W_out_eff^T + b_out
        Z = (rows(H) @ mT(W["W_out"]) + W["b_out"][..., None, :]).reshape(H.shape[:-1] + (self.N_out,))
        return Z, {"W": W, "W_h": W_h, "u": u, "H": H, "C": C, "G": G}

    def _run(self, x, noise_rng=None, perturb=None):
        Z, cache = self._forward(x, None, perturb)
        return time_major(Z), time_major(cache["H"])

    # ---- backward -----------------------------------------------------------------------------
    def _loss_and_grads(self, x, y, mask, noise_rng=None):
        """Objective per network (shape lead) and its gradient for each trainable raw parameter."""
        xp, N = self.xp, self.N_rec
        Z, cache = self._forward(x)
        W, W_h, u, H, C, G = (cache[k] for k in ("W", "W_h", "u", "H", "C", "G"))
        value, dz = self.loss_function(time_major(Z), y, mask)
        dZ = xp.ascontiguousarray(time_major(dz))  # (*lead, T, B, N_out)

        # regularizers: W_rec -> hidden blocks, W_in -> input blocks of the gates, W_out; rates -> h
        W_u = xp.concatenate([W[f"W_{g}"][..., :, N:] for g in GATES], axis=-2)
        reg_value, dW_reg = regularizers.weight_penalties({"W_in": W_u, "W_rec": W_h, "W_out": W["W_out"]},
                                                          self.reg_coefs)
        value = value + reg_value
        dH = (rows(dZ) @ W["W_out"]).reshape(H.shape)  # z = H W_out^T  =>  dH = dZ W_out
        v, d_rates, dW_eff = regularizers.activity_penalties(H, W, self.reg_coefs,
                                                             self.params["custom_regularization"])
        value, dH = value + v, dH + d_rates

        g = {}
        # z_k = h_{k+1} @ W_out^T + b_out
        g["W_out"] = mT(rows(dZ)) @ rows(H)
        g["b_out"] = rows(dZ).sum(axis=-2)
        backward = self.backend.kernels.get("lstm_backward", lstm_dynamics.lstm_backward)
        dA, dh0, dc0 = backward(W_h, H, C, G, W["init_hidden"], W["init_cell"], dH, self.cell_activation)
        # a_k = h_k @ W_h^T + u_k @ W_u^T + b: pair dA_k with h_k (h_0 for the first step) and u_k
        h0 = xp.broadcast_to(W["init_hidden"][..., None, :, :], H[..., :1, :, :].shape)  # (*lead, 1, B, N)
        H_prev = xp.concatenate([h0, H[..., :-1, :, :]], axis=-3)
        dW_h = mT(rows(dA)) @ rows(H_prev)  # (*lead, 4N, N)
        dW_u = mT(rows(dA)) @ rows(u)  # (*lead, 4N, N_in)
        if "W_rec" in dW_reg:
            dW_h = dW_h + dW_reg["W_rec"]
        if "W_in" in dW_reg:
            dW_u = dW_u + dW_reg["W_in"]
        db = rows(dA).sum(axis=-2)  # (*lead, 4N)
        for j, gate in enumerate(GATES):
            rows_j = slice(j * N, (j + 1) * N)
            g[f"W_{gate}"] = xp.concatenate([dW_h[..., rows_j, :], dW_u[..., rows_j, :]], axis=-1)
            g[f"b_{gate}"] = db[..., rows_j]
        g["init_hidden"] = dh0.sum(axis=-2, keepdims=True)  # shared by every trial
        g["init_cell"] = dc0.sum(axis=-2, keepdims=True)
        if "W_out" in dW_reg:
            g["W_out"] = g["W_out"] + dW_reg["W_out"]
        for name, d in dW_eff.items():
            g[name] = g[name] + d
        # effective -> raw (masks)
        for name in self.constrained:
            g[name] = effective_weight_backward(g[name], self.raw[name], self.masks[name], None)
        return value, {name: g[name] for name in self.trainable_names()}

    def _kink_features(self, x):
        """For :func:`minirnn.gradcheck`: the LSTM is smooth except for L1's ``|W_eff|`` and BCE's clip."""
        host, feats = self.backend.to_host, []
        if any(k in self.reg_coefs for k in ("L1_in", "L1_rec")):
            feats += [np.sign(host(self.raw[f"W_{g}"] * self.masks[f"W_{g}"])) for g in GATES]
        if "L1_out" in self.reg_coefs:
            feats.append(np.sign(host(self.raw["W_out"] * self.masks["W_out"])))
        if getattr(self.loss_function, "__name__", "") == "binary_cross_entropy":
            from ..nn.losses import BCE_EPSILON

            z = host(self._run(x)[0])
            feats += [np.sign(z - BCE_EPSILON), np.sign(z - (1 - BCE_EPSILON))]
        return feats

    # ---- weights out --------------------------------------------------------------------------
    def get_weights(self) -> dict:
        """Effective weights and masks (NumPy) in PsychRNN's layout and keys. No optimizer state.

        ``W_f, W_i, W_c, W_o`` are ``(N_rec + N_in, N_rec)`` (PsychRNN's, the transpose of ours),
        ``init_hidden``/``init_cell`` ``(1, N_rec)``, ``lstm_variant`` a string. ``W_in``, ``W_rec``,
        ``b_rec``, ``init_state`` are zeros and ``Dale_rec``, ``Dale_out`` identities (no Dale's
        principle) that the LSTM does not use: PsychRNN's LSTM files carry them, its ``LSTMSimulator``
        reads the first four and its ``LSTM(load_weights_path=...)`` the Dale matrices. (That LSTM
        takes only ``W_out``/``b_out`` from any file, its own too: it draws its gates and initial
        states afresh. ``LSTMSimulator`` runs the saved network.)
        """
        host = self.backend.to_host
        eff = self.effective_weights()
        out = {}
        for name in self.param_names:
            a = np.array(host(eff[name]))
            out[name] = np.ascontiguousarray(np.swapaxes(a, -1, -2)) if name in self.constrained[:4] else a
        gate_mask = np.array(host(self.masks["W_f"]))
        out["rec_connectivity"] = np.ascontiguousarray(gate_mask[..., :, :self.N_rec])
        out["input_connectivity"] = np.ascontiguousarray(gate_mask[..., :, self.N_rec:])
        out["output_connectivity"] = np.array(host(self.masks["W_out"]))
        z = lambda *shape: np.zeros(self.lead + shape, dtype=self.dtype)  # noqa: E731
        out.update(W_in=z(self.N_rec, self.N_in), W_rec=z(self.N_rec, self.N_rec), b_rec=z(self.N_rec),
                   init_state=z(1, self.N_rec))
        eye = np.broadcast_to(np.eye(self.N_rec, dtype=self.dtype), self.lead + (self.N_rec, self.N_rec))
        out.update(Dale_rec=eye.copy(), Dale_out=eye.copy())
        out["dale_ratio"] = None
        out["lstm_variant"] = self.lstm_variant
        return out

    def metadata(self) -> dict:
        meta = super().metadata()
        meta.update(architecture="lstm", lstm_variant=self.lstm_variant, transfer_function=None)
        return meta

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(N_in={self.N_in}, N_rec={self.N_rec}, N_out={self.N_out}, "
                f"lstm_variant={self.lstm_variant!r}, dtype={str(self.dtype)!r}, backend={self.backend.name!r})")


class PsychRNNLSTM(LSTM):
    """PsychRNN's LSTM: :class:`LSTM` with ``lstm_variant="psychrnn"`` (``h' = o * sigmoid(c')``) by default.

    A PsychRNN script ported by changing imports gets this class under PsychRNN's name
    (``from minirnn import PsychRNNLSTM as LSTM``), so it trains the architecture PsychRNN trained
    and its saved files read back the same in PsychRNN's ``LSTMSimulator``. An explicit
    ``params["lstm_variant"]`` wins over this default; a weights file's variant wins over both.
    """

    default_variant = "psychrnn"
