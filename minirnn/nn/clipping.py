"""Gradient clipping, per network: one line before the optimizer step.

``grads`` is a dict ``{name: dW}``; each array may carry ``n_lead`` leading network axes, and
every norm is taken over one network's own (trailing) axes, so networks never share a norm.
``max_norm`` is a float or an array with one value per network (shape ``lead``).
"""
from __future__ import annotations

import numpy as np

from ..backends import get_array_module
from ..errors import ParameterError
from .optimizers import check_in_dtype


def clip_by_norm(grads: dict, max_norm=1.0, n_lead: int = 0) -> dict:
    """Clip each parameter's gradient of each network to L2 norm ``<= max_norm`` (PsychRNN's
    ``clip_grads=True``: ``tf.clip_by_norm(g, 1.0)`` per variable). Returns a new dict."""
    m, out = _checked(max_norm, grads), {}
    for name, g in grads.items():
        xp = get_array_module(g)
        c = _per_network(m, g, n_lead)
        norm = xp.sqrt(_sum_squares(g, n_lead, keepdims=True))      # (*lead, 1, ..., 1)
        out[name] = g * c / xp.maximum(norm, c)                     # g * c / max(|g|, c): TF's order
    return out


def clip_by_global_norm(grads: dict, max_norm, n_lead: int = 0) -> dict:
    """Scale all gradients of a network together so that their joint L2 norm is ``<= max_norm``
    (``tf.clip_by_global_norm`` semantics, one global norm per network). Returns a new dict."""
    m, norm = _checked(max_norm, grads), global_norm(grads, n_lead)          # norm: (*lead,)
    out = {}
    for name, g in grads.items():
        c = _per_network(m, g, n_lead)
        n = norm.reshape(norm.shape + (1,) * (g.ndim - n_lead))
        out[name] = g * (c / get_array_module(g).maximum(n, c))      # g * c / max(||all g||, c)
    return out


def global_norm(grads: dict, n_lead: int = 0):
    """``sqrt(sum over parameters of sum(g**2))`` per network: an array of shape ``lead``."""
    squares = [_sum_squares(g, n_lead, keepdims=False) for g in grads.values()]
    return get_array_module(*squares).sqrt(sum(squares))


def _sum_squares(g, n_lead, keepdims):
    if not (isinstance(n_lead, (int, np.integer)) and 0 <= n_lead <= g.ndim):
        raise ParameterError(f"n_lead must be an int in [0, {g.ndim}] for a gradient of shape "
                             f"{g.shape}. Got {n_lead!r} instead.")
    own = tuple(range(n_lead, g.ndim))                                # this network's own axes
    return get_array_module(g).sum(g * g, axis=own, keepdims=keepdims)


def _checked(max_norm, grads) -> np.ndarray:
    """``max_norm`` as float64 (a scalar or one value per network), checked once per call: > 0,
    and neither 0 nor inf in the gradients' dtype (1e-50 is 0 in float32: 0 / max(0, 0) is NaN)."""
    m = np.asarray(max_norm, dtype=np.float64)
    if not (np.all(np.isfinite(m)) and np.all(m > 0)):
        raise ParameterError(f"max_norm must be > 0 (a float or one value per network). "
                             f"Got {max_norm!r} instead.")
    for g in grads.values():
        check_in_dtype("max_norm", max_norm if m.ndim else float(m), g.dtype)
        break                                                         # one dtype for all parameters
    return m


def _per_network(m, g, n_lead):
    """The checked ``max_norm`` ``m`` in ``g``'s dtype and array module, shaped to broadcast against ``g``."""
    if m.ndim == 0:
        return g.dtype.type(m)                                        # keeps float32 float32
    if m.shape != g.shape[:n_lead]:
        raise ParameterError(f"max_norm has shape {m.shape} but the networks' shape is "
                             f"{g.shape[:n_lead]} (n_lead={n_lead}).")
    xp = get_array_module(g)
    return xp.asarray(m.astype(g.dtype).reshape(m.shape + (1,) * (g.ndim - n_lead)))
