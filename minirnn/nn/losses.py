"""Losses: each returns ``(value, dz)``, the value per network and its gradient w.r.t. the outputs.

PsychRNN's definitions (REFERENCE.md "Loss functions"): means over *all* ``B * T * N_out`` entries
of a network (not over the mask's sum), and the mask multiplies the error before squaring::

    mse = mean((m ⊙ (z - y))^2)
    bce = mean(m ⊙ -[y log(p + eps) + (1 - y) log(1 - p + eps)]),   p = clip(z, eps, 1 - eps)

``z, y, mask``: ``(*lead, A, B, C)`` with any order of the three per-network axes (batch, time,
output). The value has shape ``lead`` (a 0-d array for a single network). A custom loss is any
callable ``loss(z, y, mask) -> (value, dz)`` of the same shapes.
A worked example, gradient-checked, is in :mod:`minirnn.models.examples`.
"""
from __future__ import annotations

import numpy as np

from ..backends import get_array_module
from ..errors import ParameterError, did_you_mean

BCE_EPSILON = 1e-7
_PER_NETWORK_AXES = (-3, -2, -1)


def _n_entries(z):
    return z.shape[-1] * z.shape[-2] * z.shape[-3]


def mean_squared_error(z, y, mask):
    """``mean((mask * (z - y))**2)`` per network, and ``dL/dz = 2 mask^2 (z - y) / n``."""
    e = mask * (z - y)
    n = _n_entries(z)
    value = (e * e).sum(axis=_PER_NETWORK_AXES) / n
    dz = (2 / n) * mask * e
    return value, dz.astype(z.dtype, copy=False)


def binary_cross_entropy(z, y, mask):
    """PsychRNN's masked BCE on the raw outputs (no sigmoid), with its clip at ``eps = 1e-7``.

    The gradient is zero where ``z`` lies outside ``[eps, 1 - eps]`` (the clip's flat region),
    as TensorFlow's ``clip_by_value`` gradient is.
    """
    xp = get_array_module(z)
    if bool((((y < 0) | (y > 1)) & (mask > 0)).any()):  # PsychRNN took any y, and the loss meant nothing
        raise ParameterError("binary_cross_entropy needs targets y in [0, 1] where the mask is > 0 (a probability "
                             "or a 0/1 label); y has values outside. Use mean_squared_error for other targets.")
    eps = z.dtype.type(BCE_EPSILON)
    p = xp.clip(z, eps, 1 - eps)
    n = _n_entries(z)
    value = (mask * -(y * xp.log(p + eps) + (1 - y) * xp.log(1 - p + eps))).sum(axis=_PER_NETWORK_AXES) / n
    inside = (z >= eps) & (z <= 1 - eps)
    dp = -(y / (p + eps) - (1 - y) / (1 - p + eps))  # d/dp of the bracket
    dz = (mask * dp * inside) / n
    return value, dz.astype(z.dtype, copy=False)


LOSSES = {"mean_squared_error": mean_squared_error, "binary_cross_entropy": binary_cross_entropy}


def get_loss(name, params=None):
    """Resolve ``params["loss_function"]`` into a callable ``(z, y, mask) -> (value, dz)``.

    ``name`` is ``"mean_squared_error"``, ``"binary_cross_entropy"``, a callable, or (PsychRNN's
    convention) any other string ``s`` with ``params[s]`` the callable.
    """
    if callable(name) and name in LOSSES.values():
        return name
    if callable(name):
        return checked_loss(name)
    if name in LOSSES:
        return LOSSES[name]
    if params is not None and isinstance(name, str) and callable(params.get(name)):
        return checked_loss(params[name])
    raise ParameterError(
        f"Unknown loss_function {name!r}{did_you_mean(name, LOSSES)} Choose one of {sorted(LOSSES)}, "
        "or pass a callable loss(z, y, mask) -> (value, dz)."
    )


def checked_loss(loss):
    """``loss`` wrapped so that a result of the wrong form is an error naming the loss, not a failure
    deep inside the backward pass: it must return ``(value, dz)`` with ``dz`` shaped like ``z`` and
    one value per network."""
    import functools

    @functools.wraps(loss)
    def checked(z, y, mask):
        out = loss(z, y, mask)
        name = getattr(loss, "__name__", repr(loss))
        if not (isinstance(out, tuple) and len(out) == 2):
            raise ParameterError(f"The loss_function {name} must return a pair (value, dz), the value per network "
                                 f"and dL/dz shaped like z {tuple(z.shape)}. It returned {type(out).__name__}. "
                                 "(A PsychRNN loss returns the value alone and TensorFlow differentiates it; "
                                 "minirnn has no autodiff, so the loss gives its gradient too: see "
                                 "minirnn.models.examples.)")
        value, dz = out
        if tuple(getattr(dz, "shape", ())) != tuple(z.shape):
            raise ParameterError(f"The loss_function {name} returned dz of shape {tuple(getattr(dz, 'shape', ()))}; "
                                 f"it must be shaped like z, {tuple(z.shape)}.")
        if np.size(value) != max(1, z[..., 0, 0, 0].size):
            raise ParameterError(f"The loss_function {name} returned a value of shape {np.shape(value)}; it must "
                                 f"hold one number per network ({tuple(z.shape[:-3])}).")
        return value, dz

    return checked
