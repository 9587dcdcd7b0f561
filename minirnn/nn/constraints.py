"""Biological constraints: raw parameters -> effective weights, and the adjoint back.

DESIGN.md §3. For a weight matrix ``W`` (post, pre) with connectivity mask ``M`` (0/1, same shape)
and, under Dale's principle, a sign vector ``s`` over its *columns* (presynaptic units)::

    W_eff = W ⊙ M                       (no Dale)
    W_eff = |W ⊙ M| * s                 (Dale; s = +1 E / -1 I for W_rec, 1 E / 0 I for W_out,
                                         s = 1 for W_in: every input is excitatory)

and the chain rule back to the raw parameter (``sign(0) = 0``, as in TensorFlow)::

    dW = dW_eff ⊙ M                     (no Dale)
    dW = (dW_eff * s) ⊙ sign(W ⊙ M) ⊙ M (Dale)

``mask: (*lead, post, pre)``; ``sign: (*lead, 1, pre)`` or None when Dale is off.
"""
from __future__ import annotations

import numpy as np

from ..backends import get_array_module


def effective_weight(W, mask, sign=None):
    """``W_eff = W ⊙ M`` or, under Dale, ``|W ⊙ M| * s``. Shapes as in the module docstring."""
    WM = W * mask
    if sign is None:
        return WM
    return get_array_module(W).abs(WM) * sign


def effective_weight_backward(dW_eff, W, mask, sign=None):
    """Adjoint of :func:`effective_weight`: ``dL/dW`` from ``dL/dW_eff``."""
    if sign is None:
        return dW_eff * mask  # d(W ⊙ M)/dW = M
    xp = get_array_module(W)
    return dW_eff * sign * xp.sign(W * mask) * mask  # d|W ⊙ M|/dW = sign(W ⊙ M) ⊙ M


def dale_signs(dale_ratio, N_rec, dtype=np.float64):
    """Sign vectors of Dale's principle for ``N_rec`` units, E units first.

    Unit ``j`` is excitatory when ``j < int(dale_ratio * N_rec)`` (PsychRNN's truncation).

    Returns
    -------
    s_rec : (N_rec,) +1 for E, -1 for I (columns of ``W_rec``).
    s_out : (N_rec,) 1 for E, 0 for I (columns of ``W_out``: inhibitory units do not project out).
    """
    n_exc = int(dale_ratio * N_rec)
    if n_exc == 0:  # no unit could project to the outputs: the readout would be identically zero
        from ..errors import ParameterError

        raise ParameterError(f"dale_ratio={dale_ratio} with N_rec={N_rec} gives int({dale_ratio} * {N_rec}) = 0 "
                             f"excitatory units, so no unit reaches the outputs. Use dale_ratio >= {1 / N_rec:.3g} "
                             "or more units.")
    s_rec = np.ones(N_rec, dtype=dtype)
    s_rec[n_exc:] = -1
    s_out = (s_rec > 0).astype(dtype)
    return s_rec, s_out


def no_autapses(mask):
    """Return a copy of the recurrent mask ``(*lead, N, N)`` with its diagonal set to 0."""
    xp = get_array_module(mask)
    N = mask.shape[-1]
    return mask * (1 - xp.eye(N, dtype=mask.dtype))
