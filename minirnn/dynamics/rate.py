"""The rate RNN's time loop, forward and backward: the reference every fast path must match.

Forward Euler of ``tau dx/dt = -x + W_rec f(x) + W_in u + b_rec + noise`` (DESIGN.md §3)::

    x_{k+1} = (1 - alpha) x_k + alpha (f(x_k) @ W_rec_eff^T + drive_k) + noise_scale xi_k
    drive_k = u_k @ W_in_eff^T + b_rec          (computed for all steps at once by the caller)

Only this recurrence is sequential; everything else (the input drive, the readout, the loss and
every weight gradient) is whole-array code in :mod:`minirnn.models.basic`. Backends replace the
two functions below (numba: one jitted loop each) and must give the same numbers.

Layout is time-major inside the loop: ``drive, X, dX: (*lead, T, B, N)`` where ``*lead`` is the
optional network axis of an ensemble, ``T`` the number of steps, ``B`` the batch, ``N = N_rec``.
``alpha: (*lead, 1, N)`` (per-unit time constants allowed); ``x0: (*lead, 1 or B, N)``.
"""
from __future__ import annotations

from ..backends import get_array_module


def mT(a):
    """Swap the two trailing axes (a matrix transpose that keeps leading network axes)."""
    return a.swapaxes(-1, -2)


def mask_of_step(W_mask, T):
    """Which mask step k uses, for ``k < T``: a StepMasks (simulate.py) holds its few distinct masks once
    and says which (its ``index`` array); a plain (T, N, N) array or list has one per step (a list's
    ``index`` is a method, not an array)."""
    index = getattr(W_mask, "index", None)
    return range(T) if index is None or callable(index) else index


def recur_forward(W_rec_eff, drive, x0, alpha, noise_scale=None, noise=None, act=None, perturb=None):
    """Run the Euler recurrence over all ``T`` steps.

    Parameters
    ----------
    W_rec_eff : (*lead, N, N) effective recurrent weights, (post, pre).
    drive : (*lead, T, B, N) ``u_k @ W_in_eff^T + b_rec`` for every step (plus any injected current).
    x0 : (*lead, 1 or B, N) initial state.
    alpha : (*lead, 1, N) ``dt / tau``.
    noise_scale : (*lead, 1, 1 or N) ``sqrt(2 alpha) sigma_rec``; ignored when ``noise`` is None.
    noise : None or (*lead, T, B, N) standard normal draws ``xi_k``.
    act : :class:`~minirnn.nn.activations.Activation`.
    perturb : None or an object with optional ``W_mask (T, N, N)`` (multiplies ``W_rec_eff`` at
        step k), ``clamp_mask (T, B or 1, N)`` bool and ``clamp_value`` (same shape): after step k,
        ``x_{k+1} = where(clamp_mask[k], clamp_value[k], x_{k+1})``.

    Returns
    -------
    X : (*lead, T, B, N) the states ``x_1 ... x_T`` (the initial state is not included).
    """
    xp = get_array_module(drive)
    T, B = drive.shape[-3], drive.shape[-2]
    # Hoisted out of the loop, for all steps at once: alpha * drive_k + noise_scale * xi_k.
    inp = alpha[..., None, :, :] * drive
    if noise is not None:
        inp += noise_scale[..., None, :, :] * noise
    # alpha_i W_ij: folding alpha into the rows of W_rec saves one multiply per step.
    W_alpha = mT(alpha) * W_rec_eff  # (*lead, N, N)
    decay = 1 - alpha
    W_mask = getattr(perturb, "W_mask", None)
    clamp_mask = getattr(perturb, "clamp_mask", None)
    which = mask_of_step(W_mask, T)
    X = xp.empty(drive.shape, dtype=drive.dtype)
    x = xp.broadcast_to(x0, drive.shape[:-3] + (B, drive.shape[-1]))
    W_k = W_alpha
    for k in range(T):
        if W_mask is not None and (k == 0 or which[k] != which[k - 1]):  # a lesion: mask anew when it changes
            W_k = W_alpha * W_mask[k]
        # x_{k+1} = (1 - alpha) x_k + alpha (f(x_k) @ W_rec^T + drive_k) + noise_scale xi_k
        x = decay * x + act.f(x) @ mT(W_k) + inp[..., k, :, :]
        if clamp_mask is not None:
            x = xp.where(clamp_mask[k], perturb.clamp_value[k], x)
        X[..., k, :, :] = x
    return X


def recur_backward(W_rec_eff, X, x0, dX, alpha, act):
    """Backpropagate through the recurrence (the adjoint of :func:`recur_forward`).

    Parameters
    ----------
    W_rec_eff, alpha, act : as in :func:`recur_forward`.
    X : (*lead, T, B, N) states from the forward pass.
    x0 : (*lead, 1 or B, N) initial state.
    dX : (*lead, T, B, N) ``dL/dx_{k+1}`` arriving directly (readout, firing-rate regularizer),
        not counting the path through later steps.

    Returns
    -------
    d_drive : (*lead, T, B, N) ``dL/d drive_k = alpha * a_{k+1}``, where ``a_{k+1}`` is the total
        adjoint ``dL/dx_{k+1}``. It is also ``dL/d(f(x_k) @ W_rec^T)``, so the caller forms
        ``dW_rec``, ``dW_in`` and ``db_rec`` from it with one matmul each.
    d_x0 : (*lead, B, N) ``dL/dx_0`` per trial (sum over B when ``x0`` is shared).
    """
    xp = get_array_module(X)
    T = X.shape[-3]
    W_alpha = mT(alpha) * W_rec_eff
    decay = 1 - alpha
    # f'(x_k) for k = 0 .. T-1, i.e. of the state each step starts from: x_0, x_1 ... x_{T-1}.
    dF = xp.empty_like(X)
    dF[..., 1:, :, :] = act.df(X[..., :-1, :, :])
    dF[..., 0, :, :] = act.df(x0)
    A = xp.empty_like(X)  # total adjoints a_{k+1} = dL/dx_{k+1}
    carry = xp.zeros_like(X[..., 0, :, :])  # dL/dx_{k+1} through x_{k+2}, ... (none after the last step)
    for k in range(T - 1, -1, -1):
        a = dX[..., k, :, :] + carry
        A[..., k, :, :] = a
        # x_{k+1} = (1 - alpha) x_k + f(x_k) @ W_alpha^T + ...  =>
        # dL/dx_k = (1 - alpha) a_{k+1} + f'(x_k) * (a_{k+1} @ W_alpha)
        carry = decay * a + dF[..., k, :, :] * (a @ W_alpha)
    d_drive = alpha[..., None, :, :] * A
    return d_drive, carry
