"""Worked examples of extending minirnn: a new model, a custom loss, a custom regularizer.

Each is gradient-checked in ``tests/test_extensibility.py`` with :func:`minirnn.gradcheck`; copy
one as the start of your own.

1. A new model by subclassing ``Basic`` (PsychRNN's "NewModel" tutorial): a feed-forward input
   layer in front of the recurrent network, with its own forward and backward::

       v_k     = f(u_k @ W_ff^T + b_ff)                         (N_ff units, no recurrence)
       x_{k+1} = (1 - alpha) x_k + alpha (f(x_k) @ W_rec^T + v_k @ W_in^T + b_rec) + noise
       z_k     = f(x_{k+1}) @ W_out^T + b_out

   >>> import numpy as np
   >>> from minirnn import gradcheck
   >>> from minirnn.models.examples import InputLayerRNN
   >>> model = InputLayerRNN(dict(N_in=2, N_ff=4, N_rec=5, N_out=2, dt=10, tau=100,
   ...                            transfer_function="tanh", dtype="float64", seed=0))
   >>> rng = np.random.default_rng(0)
   >>> x, y = rng.normal(size=(3, 6, 2)), rng.normal(size=(3, 6, 2))
   >>> max(gradcheck(model, x, y, np.ones_like(y)).values()) < 1e-6
   True

2. A custom loss is any ``loss(z, y, mask) -> (value, dz)`` (``z, y, mask`` of shape
   ``(*lead, B, T, N_out)``; ``value`` of shape ``lead``): pass it as ``params["loss_function"]``.
   :func:`masked_mean_squared_error` divides by the mask's sum instead of by every entry
   (PsychRNN's mean dilutes the loss when most of a trial is masked out).

   >>> from minirnn import Basic
   >>> params = dict(N_in=2, N_rec=5, N_out=2, dt=10, tau=100, dtype="float64", seed=0,
   ...               loss_function=masked_mean_squared_error)
   >>> max(gradcheck(Basic(params), x, y, np.ones_like(y)).values()) < 1e-6
   True

3. A custom regularizer is any ``reg(weights_eff, rates) -> (value, grads)``: ``weights_eff`` maps
   ``"W_in"``, ``"W_rec"``, ``"W_out"`` (and the biases) to the *effective* weights, ``rates`` is
   ``f(x)`` of shape ``(*lead, T, B, N_rec)``; ``grads`` maps a weight name to ``dvalue/dW_eff``
   (minirnn chains it through masks and Dale's signs) and may hold ``"rates"`` for
   ``dvalue/drates``. Pass it as ``params["custom_regularization"]``.
   :func:`balance_penalty` pushes every unit's summed recurrent input weight towards zero
   (excitation balanced by inhibition):

   >>> params = dict(params, loss_function="mean_squared_error",
   ...               custom_regularization=balance_penalty(0.1), dale_ratio=0.8)
   >>> max(gradcheck(Basic(params), x, y, np.ones_like(y)).values()) < 1e-6
   True
"""
from __future__ import annotations

import numpy as np

from .._params import is_int
from ..dynamics import rate
from ..errors import ParameterError
from ..nn import regularizers
from ..nn.constraints import effective_weight_backward
from .basic import Basic, rows, time_major

mT = rate.mT

__all__ = ["InputLayerRNN", "masked_mean_squared_error", "balance_penalty"]


class InputLayerRNN(Basic):
    """``Basic`` with a feed-forward input layer ``v = f(u @ W_ff^T + b_ff)`` of ``N_ff`` units.

    Extra parameters: ``N_ff`` (default 8), ``W_ff_train``, ``b_ff_train``. Extra raw weights:
    ``W_ff (N_ff, N_in)`` (Glorot normal) and ``b_ff (N_ff,)`` (zeros), unconstrained. The
    recurrent network's ``W_in`` is ``(N_rec, N_ff)`` and takes masks / Dale as in ``Basic``.
    A single network (no ensemble axes); ``custom_regularization`` is not supported.
    """

    param_names = Basic.param_names + ("W_ff", "b_ff")

    def _extra_params(self) -> dict:
        return {"N_ff": (8, "units of the feed-forward input layer"),
                "W_ff_train": (True, "False freezes W_ff"), "b_ff_train": (True, "False freezes b_ff")}

    def _build(self):
        N_ff = self.params["N_ff"]
        if not is_int(N_ff, 1):
            raise ParameterError(f"The 'N_ff' parameter of {type(self).__name__} must be a positive int. "
                                 f"Got {N_ff!r} instead.")
        if self.params["custom_regularization"] is not None:
            raise ParameterError(f"{type(self).__name__} does not support custom_regularization.")
        self.N_ff = int(N_ff)
        super()._build()

    def _network_arrays(self, p, rng):
        """Basic's arrays for a recurrent network fed by ``N_ff`` inputs, plus ``W_ff``, ``b_ff``."""
        n_in = self.N_in
        self.N_in = p["N_in"] = self.N_ff  # the recurrent layer sees the feed-forward layer's output
        try:
            net = super()._network_arrays(p, rng)
        finally:
            self.N_in = p["N_in"] = n_in
        net["W_ff"] = rng.normal(0, np.sqrt(2 / (n_in + self.N_ff)), (self.N_ff, n_in))  # Glorot normal
        net["b_ff"] = np.zeros(self.N_ff)
        return net

    # ---- forward ------------------------------------------------------------------------------
    def _forward(self, x, noise_rng=None, perturb=None):
        """x: (B, T, N_in) -> the recurrent network's ``(Z, cache)`` run on ``v = f(a)``."""
        # a = u @ W_ff^T + b_ff;  v = f(a)            (B, T, N_ff)
        a = x @ mT(self.raw["W_ff"]) + self.raw["b_ff"]
        v = self.activation.f(a)
        Z, cache = super()._forward(v, noise_rng, perturb)
        cache.update(x=x, a=a)
        return Z, cache

    # ---- backward -----------------------------------------------------------------------------
    def _loss_and_grads(self, x, y, mask, noise_rng=None):
        """Basic's backward (readout, recurrence, input drive), then through the input layer."""
        act = self.activation
        Z, cache = self._forward(x, noise_rng)
        W, V, X, R = cache["W"], cache["u"], cache["X"], cache["R"]  # V: v time-major (T, B, N_ff)
        value, dz = self.loss_function(time_major(Z), y, mask)
        dZ = self.xp.ascontiguousarray(time_major(dz))  # (T, B, N_out)
        reg_value, dW_eff = regularizers.weight_penalties(W, self.reg_coefs)
        value = value + reg_value
        dR = (rows(dZ) @ W["W_out"]).reshape(R.shape)  # z = R W_out^T  =>  dR = dZ W_out
        if "L2_firing_rate" in self.reg_coefs:
            v, d = regularizers.firing_rate_penalty(R, self.reg_coefs["L2_firing_rate"])
            value, dR = value + v, dR + d
        g = {}
        # z_k = r_{k+1} @ W_out^T + b_out
        g["W_out"] = mT(rows(dZ)) @ rows(R)
        g["b_out"] = rows(dZ).sum(axis=-2)
        # the recurrence, backwards in time
        dX = dR * act.df(X)
        backward = self.backend.kernels.get("rate_backward", rate.recur_backward)
        d_drive, d_x0 = backward(W["W_rec"], X, W["init_state"], dX, self.alpha, act)
        R0 = self.xp.broadcast_to(act.f(W["init_state"]), d_drive.shape[-2:])  # f(x_0) for every trial
        g["W_rec"] = mT(rows(d_drive[1:])) @ rows(R[:-1]) + mT(d_drive[0]) @ R0
        # drive_k = v_k @ W_in^T + b_rec
        g["W_in"] = mT(rows(d_drive)) @ rows(V)
        g["b_rec"] = rows(d_drive).sum(axis=-2)
        g["init_state"] = d_x0.sum(axis=-2, keepdims=True)
        # the new layer: drive = v W_in^T  =>  dv = d_drive W_in;  v = f(a)  =>  da = dv f'(a)
        dV = (rows(d_drive) @ W["W_in"]).reshape(V.shape)  # (T, B, N_ff)
        dA = time_major(dV) * act.df(cache["a"])  # (B, T, N_ff)
        # a = u @ W_ff^T + b_ff
        g["W_ff"] = mT(rows(dA)) @ rows(cache["x"])
        g["b_ff"] = rows(dA).sum(axis=-2)
        # effective -> raw (masks, Dale's signs) for the constrained recurrent-network weights
        for name in self.constrained:
            dW = g[name] + dW_eff[name] if name in dW_eff else g[name]
            g[name] = effective_weight_backward(dW, self.raw[name], self.masks[name], self.signs.get(name))
        return value, {name: g[name] for name in self.trainable_names()}

    def get_weights(self) -> dict:
        """Basic's weights plus ``W_ff`` and ``b_ff``."""
        out = super().get_weights()
        out["W_ff"] = np.array(self.backend.to_host(self.raw["W_ff"]))
        out["b_ff"] = np.array(self.backend.to_host(self.raw["b_ff"]))
        return out


def masked_mean_squared_error(z, y, mask):
    """``sum((mask (z - y))^2) / sum(mask)`` per network, and ``dz = 2 mask^2 (z - y) / sum(mask)``.

    Shapes: ``z, y, mask`` ``(*lead, B, T, N_out)``; value of shape ``lead``.
    """
    axes = (-3, -2, -1)
    n = np.maximum(mask.sum(axis=axes), 1.0)  # entries that count (at least 1: an all-zero mask)
    e = mask * (z - y)
    value = (e * e).sum(axis=axes) / n  # L = sum(e^2) / n
    dz = 2 * mask * e / n[..., None, None, None]  # dL/dz = 2 m e / n
    return value, dz.astype(z.dtype, copy=False)


def balance_penalty(c=0.1):
    """A regularizer ``c * mean_i (sum_j W_rec_eff[i, j])^2``: each unit's net recurrent input ~ 0.

    Returns ``reg(weights_eff, rates) -> (value, {"W_rec": dvalue/dW_rec_eff})``.
    """

    def reg(weights_eff, rates):
        W = weights_eff["W_rec"]  # (*lead, N, N)
        row = W.sum(axis=-1, keepdims=True)  # s_i = sum_j W_ij          (*lead, N, 1)
        value = c * (row * row).mean(axis=(-2, -1))  # c mean_i s_i^2
        d_W = np.broadcast_to(2 * c * row / W.shape[-2], W.shape)  # d/dW_ij = 2 c s_i / N
        return value, {"W_rec": d_W}

    return reg
