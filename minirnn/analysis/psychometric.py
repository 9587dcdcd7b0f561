"""Psychometric curves: choice probability against signed coherence, and a fitted function with lapses.

A psychometric function with guess rate ``gamma`` and lapse rate ``lambda`` (Wichmann & Hill 2001):

    psi(x) = gamma + (1 - gamma - lambda) F((x - mu) / sigma)

``F`` is the logistic ``1 / (1 + e^-s)`` or the probit (standard normal CDF) ``Phi(s)``; ``mu`` is the
point of subjective equality (bias), ``sigma`` the slope scale (same units as ``x``). Parameters are
fitted by maximum likelihood on per-trial binary choices (or on counts ``k`` of ``n``): the negative
log-likelihood is

    NLL = - sum_i [ k_i log psi(x_i) + (n_i - k_i) log(1 - psi(x_i)) ]

minimised with L-BFGS-B under ``sigma > 0``, ``0 <= gamma, lambda <= max_lapse``. Confidence
intervals come from the inverse of the NLL's Hessian at the optimum (Wald intervals, by central
differences) or from a seeded non-parametric bootstrap over trials.

Shapes: ``x``, ``choices`` are ``(n_trials,)``; network outputs are ``(B, T, N_out)``.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import optimize, special, stats

from ..errors import ParameterError, ShapeError

PARAM_NAMES = ("mu", "sigma", "gamma", "lambda")
KINDS = ("logistic", "probit")
CI_METHODS = ("hessian", "bootstrap", None)


# ----------------------------------------------------------------------------- from outputs to choices


def choices_from_outputs(outputs, mask=None, *, time_slice=None):
    """The chosen output channel of each trial: argmax over channels of the (masked) time-average.

    This is PsychRNN's rule for the perceptual-discrimination task
    (``argmax(mean(output * mask, axis=1), axis=1)``).

    Parameters
    ----------
    outputs : array (B, T, N_out)
        ``model.test(x)[0]``.
    mask : array (B, T, N_out) or (B, T), optional
        Output mask; only masked-in steps count. Without it, every step counts.
    time_slice : slice, optional
        Restrict the average to these steps (e.g. ``slice(-1, None)`` for the last step).

    Returns
    -------
    choice : int array (B,)
    """
    z = np.asarray(outputs, dtype=float)
    if z.ndim != 3:
        raise ShapeError(f"outputs has shape {z.shape}; it must be (N_batch, N_steps, N_out).")
    if mask is not None:
        m = np.asarray(mask, dtype=float)
        if m.ndim == 2:
            m = m[..., None]
        try:
            z = z * m
        except ValueError:
            raise ShapeError(
                f"mask has shape {np.shape(mask)}, which does not broadcast against outputs "
                f"{z.shape}; it must be (N_batch, N_steps, N_out) or (N_batch, N_steps)."
            ) from None
    if time_slice is not None:
        z = z[:, time_slice]
    return np.argmax(z.mean(axis=1), axis=1)  # (B,)


def choice_probability(x, choices, *, bins=None):
    """Proportion of choices equal to 1 at each value of ``x`` (or in each bin of ``x``).

    Parameters
    ----------
    x : array (n_trials,)
        Signed coherence (or any stimulus strength).
    choices : array (n_trials,)
        Binary choices (1 = the "positive" option). Booleans are accepted.
    bins : int or array of edges, optional
        Without bins, each distinct value of ``x`` is its own level.

    Returns
    -------
    levels : array (L,)   the distinct x values (or the mean x within each non-empty bin)
    p : array (L,)        proportion of choices == 1
    n : int array (L,)    trials per level
    """
    x, k = _as_trials(x, choices)
    if bins is None:
        levels, inv = np.unique(x, return_inverse=True)
    else:
        edges = np.histogram_bin_edges(x, bins=bins)
        idx = np.clip(np.digitize(x, edges[1:-1]), 0, len(edges) - 2)
        used, inv = np.unique(idx, return_inverse=True)
        levels = np.bincount(inv, weights=x) / np.bincount(inv)
    n = np.bincount(inv)
    p = np.bincount(inv, weights=k) / n
    return levels, p, n


def signed_coherence(trial_params, positive=1):
    """``coherence`` signed by ``direction``: ``+coh`` when ``direction == positive``, else ``-coh``.

    ``trial_params`` is a dict of ``(B,)`` arrays (our tasks) or a list of per-trial dicts
    (PsychRNN), with the perceptual-discrimination keys ``coherence`` and ``direction``.
    """
    from .pca import trial_param

    coh = trial_param(trial_params, "coherence").astype(float)
    direction = trial_param(trial_params, "direction")
    return np.where(direction == positive, coh, -coh)


def psychometric_from_batch(outputs, mask, trial_params, *, positive=1, **fit_kwargs):
    """Fit the psychometric function of a tested batch of perceptual-discrimination trials.

    Choices come from :func:`choices_from_outputs`; stimulus strength from
    :func:`signed_coherence`; ``fit_kwargs`` go to :func:`fit_psychometric`.
    """
    choice = choices_from_outputs(outputs, mask) == positive
    return fit_psychometric(signed_coherence(trial_params, positive), choice, **fit_kwargs)


# ----------------------------------------------------------------------------- the function and its fit


def _sigmoid(s, kind):
    return special.expit(s) if kind == "logistic" else special.ndtr(s)


def psychometric_function(x, mu, sigma, gamma=0.0, lam=0.0, kind="logistic"):
    """``psi(x) = gamma + (1 - gamma - lam) F((x - mu) / sigma)`` for ``kind`` in {logistic, probit}."""
    _check_kind(kind)
    s = (np.asarray(x, dtype=float) - mu) / sigma
    return gamma + (1.0 - gamma - lam) * _sigmoid(s, kind)


@dataclass
class PsychometricFit:
    """A fitted psychometric function.

    Attributes
    ----------
    kind : "logistic" or "probit"
    params : dict  {"mu", "sigma", "gamma", "lambda"} -> value
    se : dict      standard errors (Hessian) or bootstrap standard deviations; NaN when unavailable
    ci : dict      name -> (low, high) at ``level``; a parameter held fixed has (value, value)
    level : float  confidence level of ``ci``
    ci_method : "hessian", "bootstrap" or None
    nll : float    negative log-likelihood at the optimum
    levels, p, n : the data as choice probability per stimulus level (for plotting)
    """

    kind: str
    params: dict
    se: dict
    ci: dict
    level: float
    ci_method: str | None
    nll: float
    levels: np.ndarray = field(repr=False)
    p: np.ndarray = field(repr=False)
    n: np.ndarray = field(repr=False)

    def predict(self, x):
        """Choice probability ``psi(x)`` of the fitted function."""
        p = self.params
        return psychometric_function(x, p["mu"], p["sigma"], p["gamma"], p["lambda"], self.kind)

    @property
    def threshold(self):
        """Stimulus ``x`` at which the sigmoid part is halfway (``mu``)."""
        return self.params["mu"]


def fit_psychometric(
    x,
    choices,
    n=None,
    *,
    kind="logistic",
    lapses="free",
    max_lapse=0.5,
    ci="hessian",
    level=0.95,
    n_boot=200,
    seed=None,
):
    """Fit a psychometric function with guess and lapse rates by maximum likelihood.

    Parameters
    ----------
    x : array (n_trials,) or (L,)
        Signed coherence of each trial, or the stimulus levels when ``n`` is given.
    choices : array
        Binary choice per trial (1 = positive option), or the count of positive choices per level
        when ``n`` is given.
    n : int array (L,), optional
        Trials per level; switches ``choices`` to counts.
    kind : {"logistic", "probit"}
    lapses : {"free", "symmetric", "none"}
        ``free`` fits ``gamma`` and ``lambda`` separately, ``symmetric`` ties ``gamma == lambda``,
        ``none`` fixes both at 0.
    max_lapse : float in (0, 0.5]
        Upper bound of each lapse rate.
    ci : {"hessian", "bootstrap", None}
        How to compute confidence intervals.
    level : float in (0, 1)
    n_boot : int
        Bootstrap resamples (``ci="bootstrap"``).
    seed : int, numpy.random.Generator or None
        Randomness of the bootstrap.

    Returns
    -------
    PsychometricFit

    Notes
    -----
    The fit runs in the parameters ``(mu, log sigma, gamma, lambda)`` with box bounds on the
    lapses. Hessian intervals are Wald intervals ``theta +- z se`` in those coordinates (so the
    interval of ``sigma`` is ``exp(log sigma +- z se)``), clipped to the bounds; at a lapse of
    exactly 0 (a bound) the curvature is one-sided and a bootstrap is the better choice.
    """
    _check_kind(kind)
    if lapses not in ("free", "symmetric", "none"):
        raise ParameterError(
            f"The 'lapses' parameter of fit_psychometric must be one of 'free', 'symmetric', "
            f"'none'. Got {lapses!r} instead."
        )
    if ci not in CI_METHODS:
        raise ParameterError(
            f"The 'ci' parameter of fit_psychometric must be one of {CI_METHODS}. Got {ci!r} instead."
        )
    if not 0 < level < 1:
        raise ParameterError(f"The 'level' parameter of fit_psychometric must be in (0, 1). Got {level!r} instead.")
    if not 0 < max_lapse <= 0.5:
        raise ParameterError(
            f"The 'max_lapse' parameter of fit_psychometric must be in (0, 0.5]. Got {max_lapse!r} instead."
        )
    xs, k, nn = _as_counts(x, choices, n)
    theta, nll = _fit(xs, k, nn, kind, lapses, max_lapse)
    params = _unpack(theta, lapses)

    z = stats.norm.ppf(0.5 + level / 2)
    se = {name: np.nan for name in PARAM_NAMES}
    cis = {name: (np.nan, np.nan) for name in PARAM_NAMES}
    free = _free_names(lapses)
    if ci == "hessian":
        H = _hessian(lambda t: _nll(t, xs, k, nn, kind, lapses), theta)
        try:
            cov = np.linalg.inv(H)
            sd = np.sqrt(np.clip(np.diag(cov), 0, None))
        except np.linalg.LinAlgError:
            sd = np.full(theta.shape, np.nan)
        for i, name in enumerate(free):
            lo, hi = theta[i] - z * sd[i], theta[i] + z * sd[i]
            if name == "sigma":  # theta holds log sigma
                se[name] = params["sigma"] * sd[i]  # delta method
                cis[name] = (float(np.exp(lo)), float(np.exp(hi)))
            elif name in ("gamma", "lambda"):
                se[name] = sd[i]
                cis[name] = (float(max(lo, 0.0)), float(min(hi, max_lapse)))
            else:
                se[name] = sd[i]
                cis[name] = (float(lo), float(hi))
    elif ci == "bootstrap":
        rng = np.random.default_rng(seed)
        # resample trials: expand counts to per-trial 0/1 and draw with replacement
        ki, ni = np.rint(k).astype(int), np.rint(nn).astype(int)
        xt = np.repeat(xs, ni)  # (n_trials,)
        ct = np.concatenate([np.r_[np.ones(a), np.zeros(b - a)] for a, b in zip(ki, ni)])
        boots = []
        for _ in range(int(n_boot)):
            idx = rng.integers(0, xt.size, size=xt.size)
            bx, bk, bn = _as_counts(xt[idx], ct[idx], None)
            bt, _ = _fit(bx, bk, bn, kind, lapses, max_lapse, start=theta)
            boots.append([_unpack(bt, lapses)[nm] for nm in PARAM_NAMES])
        boots = np.asarray(boots)  # (n_boot, 4)
        q = [(1 - level) / 2 * 100, (1 + level) / 2 * 100]
        for j, name in enumerate(PARAM_NAMES):
            if name in free:
                se[name] = float(boots[:, j].std(ddof=1))
                lo, hi = np.percentile(boots[:, j], q)
                cis[name] = (float(lo), float(hi))
    for name in PARAM_NAMES:  # held-fixed parameters: zero-width interval
        if name not in free:
            se[name] = 0.0
            cis[name] = (params[name], params[name])
    levels = xs
    return PsychometricFit(
        kind=kind, params=params, se={k_: float(v) for k_, v in se.items()}, ci=cis, level=level,
        ci_method=ci, nll=float(nll), levels=levels, p=k / nn, n=nn,
    )


# ----------------------------------------------------------------------------- internals


def _check_kind(kind):
    if kind not in KINDS:
        raise ParameterError(f"The 'kind' parameter must be one of {KINDS}. Got {kind!r} instead.")


def _as_trials(x, choices):
    x = np.asarray(x, dtype=float).ravel()
    k = np.asarray(choices, dtype=float).ravel()
    if x.shape != k.shape:
        raise ShapeError(f"x has {x.size} entries but choices has {k.size}; give one choice per trial.")
    if not np.all(np.isin(k, (0.0, 1.0))):
        raise ParameterError("choices must be binary (0/1 or False/True) per trial; pass n= for counts.")
    return x, k


def _as_counts(x, choices, n):
    """Aggregate to (levels, k, n) with one entry per distinct x."""
    if n is None:
        x, k = _as_trials(x, choices)
        levels, inv = np.unique(x, return_inverse=True)
        return levels, np.bincount(inv, weights=k), np.bincount(inv).astype(float)
    x = np.asarray(x, dtype=float).ravel()
    k = np.asarray(choices, dtype=float).ravel()
    n = np.asarray(n, dtype=float).ravel()
    if not (x.shape == k.shape == n.shape):
        raise ShapeError(f"x, counts and n must have the same length; got {x.size}, {k.size}, {n.size}.")
    if np.any(k < 0) or np.any(k > n) or np.any(n <= 0):
        raise ParameterError("counts must satisfy 0 <= k <= n with n > 0 at every level.")
    return x, k, n


def _free_names(lapses):
    return {"free": ("mu", "sigma", "gamma", "lambda"), "symmetric": ("mu", "sigma", "gamma"),
            "none": ("mu", "sigma")}[lapses]


def _unpack(theta, lapses):
    mu, log_sigma = float(theta[0]), float(theta[1])
    if lapses == "free":
        g, l_ = float(theta[2]), float(theta[3])
    elif lapses == "symmetric":
        g = l_ = float(theta[2])
    else:
        g = l_ = 0.0
    return {"mu": mu, "sigma": float(np.exp(min(log_sigma, 700.0))), "gamma": g, "lambda": l_}


def _nll(theta, x, k, n, kind, lapses):
    p = _unpack(theta, lapses)
    psi = psychometric_function(x, p["mu"], p["sigma"], p["gamma"], p["lambda"], kind)
    psi = np.clip(psi, 1e-12, 1 - 1e-12)
    return -np.sum(k * np.log(psi) + (n - k) * np.log1p(-psi))


def _fit(x, k, n, kind, lapses, max_lapse, start=None):
    """Minimise the NLL over (mu, log sigma, lapses); lapses run through ``max_lapse * expit(a)``
    so the search is unconstrained (BFGS), then map back to the bounded coordinates."""
    n_free = len(_free_names(lapses))
    eps = 1e-9

    def to_bounded(v):
        return np.r_[v[:2], max_lapse * special.expit(v[2:])]

    def to_free(t):
        lap = np.clip(np.asarray(t[2:], dtype=float) / max_lapse, eps, 1 - eps)
        return np.r_[t[:2], special.logit(lap)]

    def obj(v):
        return _nll(to_bounded(v), x, k, n, kind, lapses)

    span = float(np.ptp(x)) or 1.0
    x_mid = float(np.sum(x * n) / np.sum(n))
    if start is not None:  # warm start (bootstrap resamples start from the full fit)
        starts = [to_free(np.asarray(start, dtype=float))]
    else:  # a few starting slopes; lapses start small
        starts = [to_free(np.r_[x_mid, np.log(frac * span), [0.02] * (n_free - 2)]) for frac in (0.05, 0.2, 0.5)]
    best = None
    for v0 in starts:
        res = optimize.minimize(obj, v0, method="BFGS", options={"gtol": 1e-8})
        if best is None or res.fun < best.fun:
            best = res
    theta = to_bounded(best.x)
    theta[2:] = np.where(theta[2:] < 1e-7, 0.0, theta[2:])  # a lapse at the bound is 0, not 1e-12
    return theta, _nll(theta, x, k, n, kind, lapses)


def _hessian(fun, theta, h=1e-4):
    """Central-difference Hessian of a scalar function (float64)."""
    d = theta.size
    H = np.empty((d, d))
    step = h * np.maximum(1.0, np.abs(theta))
    for i in range(d):
        for j in range(i, d):
            ei = np.zeros(d)
            ej = np.zeros(d)
            ei[i] = step[i]
            ej[j] = step[j]
            H[i, j] = H[j, i] = (
                fun(theta + ei + ej) - fun(theta + ei - ej) - fun(theta - ei + ej) + fun(theta - ei - ej)
            ) / (4 * step[i] * step[j])
    return H
