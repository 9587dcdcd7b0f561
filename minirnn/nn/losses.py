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

from ..backends import get_array_module
from ..errors import ParameterError, suggest

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
    if callable(name):
        return name
    if name in LOSSES:
        return LOSSES[name]
    if params is not None and isinstance(name, str) and callable(params.get(name)):
        return params[name]
    raise ParameterError(
        f"Unknown loss_function {name!r}{suggest(name, LOSSES)}. Choose one of {sorted(LOSSES)}, "
        "or pass a callable loss(z, y, mask) -> (value, dz)."
    )
