"""Regularizers: penalties on effective weights and on firing rates, each with its gradient.

PsychRNN's definitions (REFERENCE.md "Regularizers"), means over a matrix's entries::

    L1_w = c * mean|W_eff|         dW_eff = c * sign(W_eff) / n
    L2_w = c * mean(W_eff^2)       dW_eff = 2 c W_eff / n
    rate = c * mean(f(X)^2)        dX = 2 c f(X) f'(X) / n     (over B * T * N_rec)

Coefficients ``c`` are per network: arrays of shape ``lead`` (0-d for a single network).
A custom regularizer is a callable ``reg(weights_eff, rates) -> (value, {name: dW_eff})`` where
``weights_eff`` maps ``"W_in"``, ``"W_rec"``, ``"W_out"`` to the effective weights; it may also
return ``"rates"`` in its gradient dict for ``dL/d f(X)``.
A worked example, gradient-checked, is in :mod:`minirnn.models.examples`.
"""
from __future__ import annotations

from ..backends import get_array_module
from ..errors import ParameterError, did_you_mean

WEIGHT_KEYS = {"in": "W_in", "rec": "W_rec", "out": "W_out"}
REGULARIZER_KEYS = ("L1_in", "L1_rec", "L1_out", "L2_in", "L2_rec", "L2_out", "L2_firing_rate")


def _per_network(c, a, n_own):
    """Reshape a per-network coefficient ``c`` (shape lead) to broadcast against ``a``."""
    return c.reshape(c.shape + (1,) * n_own)


def weight_penalties(weights_eff, coefs):
    """L1 and L2 penalties on effective weights.

    Parameters
    ----------
    weights_eff : dict ``"W_in" | "W_rec" | "W_out" -> (*lead, post, pre)``.
    coefs : dict of the nonzero coefficients among ``L1_in ... L2_out`` (arrays of shape lead).

    Returns
    -------
    value : array of shape lead.  grads : dict ``name -> dL/dW_eff`` (only the penalised ones).
    """
    value, grads = 0, {}
    for key, c in coefs.items():
        if key == "L2_firing_rate":
            continue
        kind, which = key.split("_")
        name = WEIGHT_KEYS[which]
        W = weights_eff[name]
        xp = get_array_module(W)
        n = W.shape[-1] * W.shape[-2]
        cb = _per_network(c, W, 2)
        if kind == "L1":  # c mean|W|
            value = value + c * xp.abs(W).sum(axis=(-2, -1)) / n
            g = cb * xp.sign(W) / n
        else:  # c mean(W^2)
            value = value + c * (W * W).sum(axis=(-2, -1)) / n
            g = (2 * cb / n) * W
        grads[name] = grads[name] + g if name in grads else g
    return value, grads


def firing_rate_penalty(rates, c):
    """``c * mean(r^2)`` over a network's ``(T, B, N_rec)`` rates, and ``dL/dr = 2 c r / n``."""
    n = rates.shape[-1] * rates.shape[-2] * rates.shape[-3]
    value = c * (rates * rates).sum(axis=(-3, -2, -1)) / n
    d_rates = (2 * _per_network(c, rates, 3) / n) * rates
    return value, d_rates


def activity_penalties(rates, weights_eff, coefs, custom=None, dW_eff=None):
    """``L2_firing_rate`` and a custom regularizer, the penalties every model adds the same way.

    Returns ``(value, d_rates, dW_eff)``: the penalty per network, ``dL/d rates`` (0 when neither
    applies) and ``dW_eff`` (the dict passed in, or a new one) with the custom gradients added.
    """
    value, d_rates = 0, 0
    dW_eff = {} if dW_eff is None else dW_eff
    if "L2_firing_rate" in coefs:
        value, d_rates = firing_rate_penalty(rates, coefs["L2_firing_rate"])
    if custom is not None:
        v, d = _check_custom(custom, custom(weights_eff, rates), weights_eff)
        value = value + v
        for name, g in d.items():
            if name == "rates":
                d_rates = d_rates + g
            else:
                dW_eff[name] = dW_eff[name] + g if name in dW_eff else g
    return value, d_rates, dW_eff


def _check_custom(custom, out, weights_eff):
    """A custom regularizer's ``(value, {name: gradient})``, or an error naming what is wrong with it."""
    name = getattr(custom, "__name__", repr(custom))
    if not (isinstance(out, tuple) and len(out) == 2 and isinstance(out[1], dict)):
        raise ParameterError(f"custom_regularization {name} must return (value, {{name: gradient}}), the penalty and "
                             f"its gradient for 'rates' and/or weights {sorted(weights_eff)}. It returned {out!r:.80}.")
    for key in out[1]:
        if key != "rates" and key not in weights_eff:
            raise ParameterError(f"custom_regularization {name} returned a gradient for {key!r}, which is not 'rates' "
                                 f"or a weight{did_you_mean(key, list(weights_eff) + ['rates'])} "
                                 f"Weights: {sorted(weights_eff)}.")
    return out
