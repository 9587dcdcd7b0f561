"""The LSTM's time loop, forward and backward: the reference every fast path must match.

One step (gates stacked in the order ``f, i, c, o``; ``[h, u]`` is hidden first, then input)::

    a_k     = h_k @ W_h^T + drive_k            (*lead, B, 4N)   drive_k = u_k @ W_u^T + b
    f, i, o = sigmoid(a_f), sigmoid(a_i), sigmoid(a_o)
    g       = tanh(a_c)                         (the candidate cell value, PsychRNN's c~)
    c_{k+1} = f * c_k + i * g
    h_{k+1} = o * phi(c_{k+1})                  phi = tanh (standard) or sigmoid (PsychRNN)

``W_h (*lead, 4N, N)`` holds the hidden columns of the four gate matrices stacked by rows, and
``drive`` their input columns and biases applied to every step at once by the caller, so only the
``h @ W_h^T`` product is sequential (as :mod:`minirnn.dynamics.rate`). Time-major layout:
``drive, A: (*lead, T, B, 4N)``; ``H, C: (*lead, T, B, N)``; ``h0, c0: (*lead, 1 or B, N)``.

Backends replace :func:`lstm_forward` / :func:`lstm_backward` (kernel names ``"lstm_forward"``,
``"lstm_backward"``) with the same signatures; ``phi`` is passed as an
:class:`~minirnn.nn.activations.Activation` whose ``code`` a kernel can read.
"""
from __future__ import annotations

from ..backends import get_array_module
from ..nn.activations import sigmoid
from .rate import mask_of_step, mT


def lstm_forward(W_h, drive, h0, c0, cell_act, perturb=None):
    """Run the LSTM recurrence over all ``T`` steps.

    Parameters
    ----------
    W_h : (*lead, 4N, N) hidden columns of the effective gate weights ``[W_f; W_i; W_c; W_o]``.
    drive : (*lead, T, B, 4N) ``u_k @ W_u^T + b`` for every step (input columns and biases).
    h0, c0 : (*lead, 1 or B, N) initial hidden and cell state.
    cell_act : :class:`~minirnn.nn.activations.Activation` ``phi`` in ``h = o * phi(c)``: tanh
        (standard LSTM) or sigmoid (PsychRNN's variant).
    perturb : None or an object with optional ``W_mask (T, N, N)`` (multiplies the hidden block
        ``N x N`` of every gate at step k: a lesion of the connection pre -> post in all four
        gates) and ``clamp_mask (T, B or 1, N)`` bool with ``clamp_value`` (same shape): after
        step k, ``h_{k+1} = where(clamp_mask[k], clamp_value[k], h_{k+1})``.

    Returns
    -------
    H : (*lead, T, B, N) hidden states ``h_1 ... h_T``.  C : (*lead, T, B, N) cell states.
    G : (*lead, T, B, 4N) gate values ``[f, i, g, o]`` after their nonlinearities (the cache).
    """
    xp = get_array_module(drive)
    T, B, N = drive.shape[-3], drive.shape[-2], W_h.shape[-1]
    lead = drive.shape[:-3]
    W_mask = getattr(perturb, "W_mask", None)
    clamp_mask = getattr(perturb, "clamp_mask", None)
    H = xp.empty(lead + (T, B, N), dtype=drive.dtype)
    C = xp.empty_like(H)
    G = xp.empty(drive.shape, dtype=drive.dtype)
    h = xp.broadcast_to(h0, lead + (B, N))
    c = xp.broadcast_to(c0, lead + (B, N))
    which = mask_of_step(W_mask, T)
    W_k = W_h
    for k in range(T):
        if W_mask is not None and (k == 0 or which[k] != which[k - 1]):  # a lesion: mask anew when it changes
            W_k = W_h * xp.concatenate([W_mask[k]] * 4, axis=-2)
        a = h @ mT(W_k) + drive[..., k, :, :]  # (*lead, B, 4N)  pre-activations of all gates
        gates = sigmoid(a)  # f, i, o (the c-slice is replaced just below)
        gates[..., 2 * N:3 * N] = xp.tanh(a[..., 2 * N:3 * N])  # g = tanh(a_c)
        f, i, g, o = (gates[..., j * N:(j + 1) * N] for j in range(4))
        c = f * c + i * g  # c_{k+1} = f c_k + i g
        h = o * cell_act.f(c)  # h_{k+1} = o phi(c_{k+1})
        if clamp_mask is not None:
            h = xp.where(clamp_mask[k], perturb.clamp_value[k], h)
        H[..., k, :, :], C[..., k, :, :], G[..., k, :, :] = h, c, gates
    return H, C, G


def lstm_backward(W_h, H, C, G, h0, c0, dH, cell_act):
    """Backpropagate through the LSTM recurrence (the adjoint of :func:`lstm_forward`).

    Parameters
    ----------
    W_h, h0, c0, cell_act : as in :func:`lstm_forward`.
    H, C, G : the forward pass's outputs.
    dH : (*lead, T, B, N) ``dL/dh_{k+1}`` arriving directly (readout, firing-rate regularizer),
        not counting the path through later steps.

    Returns
    -------
    dA : (*lead, T, B, 4N) ``dL/da_k``, the adjoint of the gate pre-activations. It is also
        ``dL/d drive_k``, so the caller forms ``dW_h``, ``dW_u`` and ``db`` with one matmul each.
    dh0, dc0 : (*lead, B, N) ``dL/dh_0``, ``dL/dc_0`` per trial (sum over B when shared).
    """
    xp = get_array_module(H)
    T, N = H.shape[-3], H.shape[-1]
    # Whole-array pieces first: c_k for every step, phi(c_{k+1}), phi'(c_{k+1}), gate derivatives.
    C_prev = xp.concatenate([xp.broadcast_to(c0[..., None, :, :], C[..., :1, :, :].shape), C[..., :-1, :, :]], axis=-3)
    phi, dphi = cell_act.f(C), cell_act.df(C)
    f, i, g, o = (G[..., j * N:(j + 1) * N] for j in range(4))
    # d gate / d pre-activation: sigmoid' = s (1 - s) for f, i, o; tanh' = 1 - g^2 for g
    dG = G * (1 - G)
    dG[..., 2 * N:3 * N] = 1 - g * g
    dA = xp.empty_like(G)
    dh_carry = xp.zeros_like(H[..., 0, :, :])  # dL/dh_{k+1} through step k+1 (none after the last)
    dc_carry = xp.zeros_like(H[..., 0, :, :])  # dL/dc_{k+1} through step k+1
    for k in range(T - 1, -1, -1):
        dh = dH[..., k, :, :] + dh_carry
        # h_{k+1} = o phi(c_{k+1})  =>  dc_{k+1} += dh o phi'(c_{k+1});  do = dh phi(c_{k+1})
        dc = dc_carry + dh * o[..., k, :, :] * dphi[..., k, :, :]
        # c_{k+1} = f c_k + i g  =>  df = dc c_k, di = dc g, dg = dc i
        dA[..., k, :, 0:N] = dc * C_prev[..., k, :, :]
        dA[..., k, :, N:2 * N] = dc * g[..., k, :, :]
        dA[..., k, :, 2 * N:3 * N] = dc * i[..., k, :, :]
        dA[..., k, :, 3 * N:] = dh * phi[..., k, :, :]
        dA[..., k, :, :] *= dG[..., k, :, :]  # through the gate nonlinearities
        # a_k = h_k @ W_h^T + ...  =>  dh_k = dA_k @ W_h;   c_{k+1} = f c_k + ...  =>  dc_k = dc f
        dh_carry = dA[..., k, :, :] @ W_h
        dc_carry = dc * f[..., k, :, :]
    return dA, dh_carry, dc_carry
