"""Psychometric curves: choice probability against signed coherence, and a fitted function with lapses.

A psychometric function with guess rate ``gamma`` and lapse rate ``lambda`` (Wichmann & Hill 2001):

    psi(x) = gamma + (1 - gamma - lambda) F((x - mu) / sigma)

``F`` is the logistic ``1 / (1 + e^-s)`` or the probit (standard normal CDF) ``Phi(s)``; ``mu`` is the
point of subjective equality (bias), ``sigma`` the slope scale (same units as ``x``). Parameters are
fitted by maximum likelihood on per-trial binary choices (or on counts ``k`` of ``n``): the negative
log-likelihood is

    NLL = - sum_i [ k_i log psi(x_i) + (n_i - k_i) log(1 - psi(x_i)) ]

minimised with BFGS (scipy.optimize.minimize, several starting slopes) in unconstrained coordinates:
``mu``, ``log sigma`` (so ``sigma > 0``) and each lapse as ``max_lapse * expit(a)`` (so
``0 <= gamma, lambda <= max_lapse``). Confidence intervals come from the inverse of the NLL's
Hessian at the optimum in ``(mu, log sigma, gamma, lambda)``, written out analytically (Wald
intervals), or from a seeded non-parametric bootstrap over trials.

Data that do not determine a parameter (one stimulus level, choices that never vary, perfectly
separated choices, a fitted curve flat over the stimuli or a step between two levels, a singular or
indefinite Hessian) give that parameter a NaN standard error and interval, its name in
``PsychometricFit.undetermined``, the reason in ``PsychometricFit.problem``, and a
:class:`PsychometricWarning`; never a zero-width interval.

Shapes: ``x``, ``choices`` are ``(n_trials,)``; network outputs are ``(B, T, N_out)``.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np
from scipy import optimize, special, stats

from .._params import is_int
from ..errors import NonFiniteError, ParameterError, ShapeError

PARAM_NAMES = ("mu", "sigma", "gamma", "lambda")
KINDS = ("logistic", "probit")
CI_METHODS = ("hessian", "bootstrap", None)


# ----------------------------------------------------------------------------- from outputs to choices


def choices_from_outputs(outputs, mask=None, *, time_slice=None):
    """The chosen output channel of each trial: argmax over channels of the (masked) time-average.

    This is PsychRNN's rule for the perceptual-discrimination task
    (``argmax(mean(output * mask, axis=1), axis=1)``), with masked-out steps contributing exactly 0
    whatever the output holds there (PsychRNN's product makes ``NaN * 0 = NaN`` and poisons the trial).

    Parameters
    ----------
    outputs : array (B, T, N_out)
        ``model.test(x)[0]``.
    mask : array (B, T, N_out) or (B, T), optional
        Output mask; only masked-in steps (mask != 0) count. Without it, every step counts.
    time_slice : slice, optional
        Restrict the average to these steps (e.g. ``slice(-1, None)`` for the last step).

    Returns
    -------
    choice : int array (B,)

    Raises
    ------
    NonFiniteError
        NaN or inf in a masked-in step of ``outputs`` (a choice cannot be read from it), or in ``mask``.
    ParameterError
        A trial with no masked-in step: it has no choice.
    """
    z = np.asarray(outputs, dtype=float)
    if z.ndim != 3:
        raise ShapeError(f"outputs has shape {z.shape}; it must be (N_batch, N_steps, N_out).")
    if mask is None:
        m = np.ones(z.shape)
    else:
        m = np.asarray(mask, dtype=float)
        if m.ndim == 2:
            m = m[..., None]
        try:
            shape = np.broadcast_shapes(z.shape, m.shape)
        except ValueError:
            raise ShapeError(
                f"mask has shape {np.shape(mask)}, which does not broadcast against outputs "
                f"{z.shape}; it must be (N_batch, N_steps, N_out) or (N_batch, N_steps)."
            ) from None
        if not np.all(np.isfinite(m)):
            raise NonFiniteError(f"mask has {int(np.sum(~np.isfinite(m)))} NaN or inf entries; a mask must be finite.")
        z, m = np.broadcast_to(z, shape), np.broadcast_to(m, shape)
    n_steps = z.shape[1]
    steps = np.arange(n_steps)  # the original index of each step kept
    if time_slice is not None:
        z, m, steps = z[:, time_slice], m[:, time_slice], steps[time_slice]
        if steps.size == 0:
            raise ShapeError(f"time_slice {time_slice!r} selects none of the {n_steps} steps.")
    counted = m != 0                                                          # (B, T, N_out)
    bad = counted & ~np.isfinite(z)
    if bad.any():
        b, t, c = np.argwhere(bad)[0]
        n_bad = int(bad.any(axis=(1, 2)).sum())
        raise NonFiniteError(
            f"outputs hold NaN or inf in masked-in steps of {n_bad} of {z.shape[0]} trials (first: trial {b}, "
            f"step {steps[t]}, channel {c}); no choice can be read from them. Masked-out steps are ignored."
        )
    empty = ~counted.any(axis=(1, 2))
    if empty.any():
        raise ParameterError(
            f"{int(empty.sum())} of {z.shape[0]} trials have no masked-in step (first: trial "
            f"{int(np.argmax(empty))}), so they have no choice; drop them (or fix the mask) first."
        )
    zm = np.where(counted, z, 0.0) * m  # masked-out steps count as exactly 0, even where z is NaN
    return np.argmax(zm.mean(axis=1), axis=1)  # (B,)


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

    The convention (``minirnn evaluate`` uses the same): ``x`` is the coherence signed ``+`` when
    channel ``positive`` is the correct choice, the choice counted is "chose channel ``positive``",
    so ``psi`` is ``P(choice positive)``, rising with ``x``. Choices come from
    :func:`choices_from_outputs`; stimulus strength from :func:`signed_coherence`; ``fit_kwargs`` go
    to :func:`fit_psychometric` (defaults: logistic, free lapses, Hessian intervals).
    """
    choice = choices_from_outputs(outputs, mask) == positive
    fit = fit_psychometric(signed_coherence(trial_params, positive), choice, **fit_kwargs)
    fit.positive = positive
    return fit


# ----------------------------------------------------------------------------- the function and its fit


def _sigmoid(s, kind):
    return special.expit(s) if kind == "logistic" else special.ndtr(s)


def psychometric_function(x, mu, sigma, gamma=0.0, lam=0.0, kind="logistic"):
    """``psi(x) = gamma + (1 - gamma - lam) F((x - mu) / sigma)`` for ``kind`` in {logistic, probit}."""
    _check_kind(kind)
    s = (np.asarray(x, dtype=float) - mu) / sigma
    return gamma + (1.0 - gamma - lam) * _sigmoid(s, kind)


class PsychometricWarning(UserWarning):
    """The data of a psychometric fit do not determine some of its parameters (their se and CI are
    NaN; :attr:`PsychometricFit.undetermined` names them, :attr:`PsychometricFit.problem` says why)."""


@dataclass
class PsychometricFit:
    """A fitted psychometric function.

    Attributes
    ----------
    kind : "logistic" or "probit"
    params : dict  {"mu", "sigma", "gamma", "lambda"} -> value
    se : dict      standard errors (Hessian) or bootstrap standard deviations; NaN when unavailable
                   (``ci=None``) or when the data do not determine the parameter
    ci : dict      name -> (low, high) at ``level``; a parameter held fixed (``lapses="none"``) has
                   (value, value) and se 0; ``lambda`` tied to ``gamma`` (``"symmetric"``) has gamma's
    level : float  confidence level of ``ci``
    ci_method : "hessian", "bootstrap" or None
    nll : float    negative log-likelihood at the optimum
    levels, p, n : the data as choice probability per stimulus level (for plotting)
    undetermined : tuple of names   free parameters the data do not determine (se and CI NaN); their
                   value in ``params`` is one of many equally good ones and means nothing on its own
                   (``predict`` at the data's levels is still the fitted curve)
    problem : str or None   why (also issued as a :class:`PsychometricWarning`)
    positive : int          which choice ``p`` and ``psi`` count: 1 for :func:`fit_psychometric`'s coded
                   choices, the output channel ``positive`` for :func:`psychometric_from_batch`
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
    undetermined: tuple = ()
    problem: str | None = None
    positive: int = 1

    def predict(self, x):
        """Choice probability ``psi(x)`` of the fitted function."""
        p = self.params
        return psychometric_function(x, p["mu"], p["sigma"], p["gamma"], p["lambda"], self.kind)

    @property
    def identifiable(self):
        """True when the data determine every free parameter."""
        return not self.undetermined

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
        Signed coherence of each trial, or the stimulus levels when ``n`` is given. Finite.
    choices : array
        Binary choice per trial (1 = positive option), or the count of positive choices per level
        when ``n`` is given.
    n : array (L,), optional
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
    n_boot : int >= 2
        Bootstrap resamples (``ci="bootstrap"``; counts must then be whole numbers).
    seed : int, numpy.random.Generator or None
        Randomness of the bootstrap.

    Returns
    -------
    PsychometricFit

    Warns
    -----
    PsychometricWarning
        When the data do not determine some free parameters: they are named, their se and CI are NaN.

    Notes
    -----
    The fit runs in the parameters ``(mu, log sigma, gamma, lambda)``, lapses bounded to
    ``[0, max_lapse]``. Hessian intervals are Wald intervals ``theta +- z se`` in those coordinates
    (so the interval of ``sigma`` is ``exp(log sigma +- z se)``), clipped to the bounds; at a lapse
    of exactly 0 (a bound) the curvature is one-sided and a bootstrap is the better choice. A
    parameter is undetermined when the data cannot fix it: fewer than two stimulus levels, choices
    that never vary, choices perfectly separated by a threshold (the curve is steeper than the
    levels resolve, ``sigma -> 0``), a fitted sigmoid flat over the stimuli (``sigma -> inf``) or
    with fewer than two stimulus levels on its slope (``F`` within ``1e-6`` of 0 or 1 at the others:
    ``mu`` and ``sigma`` then trade off), or a Hessian (scaled to unit diagonal) with an eigenvalue
    below ``1e-6`` (singular: a flat direction of the likelihood; negative: not a minimum) whose
    eigenvector involves the parameter. A lapse on its bound is left out of that last test (an
    active bound need not be a minimum across it). The other parameters' se come from the Hessian's
    inverse on the directions the data do determine (its pseudo-inverse when some are not).
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
    if ci == "bootstrap" and not is_int(n_boot, 2):
        raise ParameterError(f"The 'n_boot' parameter of fit_psychometric must be an int >= 2. Got {n_boot!r} instead.")
    xs, k, nn = _as_counts(x, choices, n)
    if ci == "bootstrap" and not (np.all(k == np.rint(k)) and np.all(nn == np.rint(nn))):
        raise ParameterError(
            "ci='bootstrap' resamples trials, so counts and n must be whole numbers; got fractional counts. "
            "Use ci='hessian' for weighted counts."
        )
    theta, nll = _fit(xs, k, nn, kind, lapses, max_lapse)
    params = _unpack(theta, lapses)
    free = _free_names(lapses)
    tied = {"lambda": "gamma"} if lapses == "symmetric" else {}  # lambda IS gamma: same se and CI

    # which free parameters the data determine; H (observed information) on the determined ones
    undetermined, problem = _data_problem(xs, k, nn, free)
    if problem is None:
        undetermined, problem = _fit_problem(theta, xs, kind, free)
    H = _nll_hessian(theta, xs, k, nn, kind, lapses)
    cov = np.full((len(free), len(free)), np.nan)
    if len(undetermined) < len(free):
        keep = [i for i, name in enumerate(free) if name not in undetermined]
        at_bound = [nm for nm in ("gamma", "lambda") if nm in free and params[nm] in (0.0, max_lapse)]
        flat, why, cov_keep = _hessian_null(H[np.ix_(keep, keep)], [free[i] for i in keep], at_bound)
        if flat:
            undetermined = undetermined + flat
            n_levels = np.unique(xs).size
            if n_levels < len(free):
                why += f" ({n_levels} stimulus levels for {len(free)} free parameters)"
            problem = why if problem is None else f"{problem}; {why}"
        cov[np.ix_(keep, keep)] = cov_keep
    undetermined = tuple(nm for nm in PARAM_NAMES if nm in undetermined or tied.get(nm) in undetermined)

    z = stats.norm.ppf(0.5 + level / 2)
    se = {name: np.nan for name in PARAM_NAMES}
    cis = {name: (np.nan, np.nan) for name in PARAM_NAMES}
    if ci == "hessian":
        sd = np.sqrt(np.diag(cov))  # NaN for undetermined parameters
        for i, name in enumerate(free):
            if name in undetermined:
                continue
            lo, hi = theta[i] - z * sd[i], theta[i] + z * sd[i]
            if name == "sigma":  # theta holds log sigma
                se[name] = params["sigma"] * sd[i]  # delta method
                with np.errstate(over="ignore"):  # an interval reaching past 1e308 is (.., inf)
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
        constant = []
        for j, name in enumerate(PARAM_NAMES):
            if name not in free or name in undetermined:
                continue
            if np.ptp(boots[:, j]) == 0:  # every resample gave the same value: no interval, not (v, v)
                constant.append(f"{name} (= {boots[0, j]:.6g} in all {len(boots)})")
                continue
            se[name] = float(boots[:, j].std(ddof=1))
            lo, hi = np.percentile(boots[:, j], q)
            cis[name] = (float(lo), float(hi))
        if constant:
            warnings.warn(
                f"fit_psychometric: the bootstrap replicates of {', '.join(constant)} do not vary, so the "
                f"bootstrap gives no interval for them (se and CI NaN); a lapse at its bound 0 in every resample "
                f"does this: use ci='hessian' for it.", PsychometricWarning, stacklevel=2)
    for name, source in tied.items():  # lambda = gamma, so its uncertainty is gamma's
        se[name], cis[name] = se[source], cis[source]
    for name in PARAM_NAMES:  # held-fixed parameters: zero-width interval
        if name not in free and name not in tied:
            se[name] = 0.0
            cis[name] = (params[name], params[name])
    if problem is not None:
        verb = "is" if len(undetermined) == 1 else "are"
        warnings.warn(
            f"fit_psychometric: {', '.join(undetermined)} {verb} not determined by these data: {problem}. "
            f"Their se and CI are NaN and their fitted values mean nothing on their own.",
            PsychometricWarning, stacklevel=2)
    return PsychometricFit(
        kind=kind, params=params, se={k_: float(v) for k_, v in se.items()}, ci=cis, level=level,
        ci_method=ci, nll=float(nll), levels=xs, p=k / nn, n=nn, undetermined=undetermined, problem=problem,
    )


# ----------------------------------------------------------------------------- what the data determine

LAPSE_STEP = 1e-6  # F below this (or above 1 - this) at a level: that level is not on the sigmoid's slope
EIG_RTOL = 1e-6  # eigenvalue of the unit-diagonal Hessian below this: a flat (or downward) direction
COMPONENT_TOL = 1e-2  # a parameter whose share of such an eigenvector exceeds this is not determined


def _data_problem(x, k, n, free):
    """Undetermined parameters visible in the data alone: (names, reason) or ((), None)."""
    order = np.argsort(x, kind="stable")
    x, k, n = x[order], k[order], n[order]
    levels = np.unique(x)
    total = float(n.sum())
    if levels.size < 2:
        where = "the one trial is" if total == 1 else f"all {total:g} trials are"
        return free, (f"{where} at one stimulus level (x = {levels[0]:g}), and one level cannot fix a threshold "
                      f"and a slope")
    if np.all(k == 0) or np.all(k == n):
        return free, (f"all {total:g} trials chose {0 if np.all(k == 0) else 1}: the choices do not vary with x, "
                      f"so the data hold no psychometric curve")
    all_or_none = (k == 0) | (k == n)
    if np.all(all_or_none):
        ones = k == n
        cut = int(np.argmax(ones != ones[0]))  # first level on the other side
        if np.all(ones[cut:] != ones[0]) and x[cut - 1] < x[cut]:  # one switch: perfectly separated
            a, b = x[cut - 1], x[cut]
            if not ones[0]:
                return free, (f"the choices are perfectly separated (all 0 at x <= {a:g}, all 1 at x >= {b:g}): "
                              f"the curve is steeper than these levels resolve, so sigma has no lower bound "
                              f"and mu lies anywhere in ({a:g}, {b:g})")
            return free, (f"the choices fall from all 1 (x <= {a:g}) to all 0 (x >= {b:g}), which a psychometric "
                          f"function increasing in x cannot follow; check which choice counts as 1 (positive=)")
    return (), None


def _fit_problem(theta, x, kind, free):
    """Undetermined parameters visible in the fitted sigmoid: flat over the stimuli (sigma -> inf)
    or a step with no stimulus level on its slope (sigma -> 0)."""
    mu, sigma = float(theta[0]), float(np.exp(min(theta[1], 700.0)))
    F = _sigmoid((x - mu) / sigma, kind)  # (L,)
    if F.max() - F.min() < LAPSE_STEP:
        return free, (f"the fitted sigmoid is flat over the stimuli (sigma = {sigma:.3g} for levels spanning "
                      f"{np.ptp(x):g}): the choices do not rise with x (if they fall as x grows, check which choice "
                      f"counts as 1)")
    on_slope = (F > LAPSE_STEP) & (F < 1 - LAPSE_STEP)
    if on_slope.sum() == 0:  # a step between two levels
        a, b = x[F <= LAPSE_STEP].max(), x[F >= 1 - LAPSE_STEP].min()
        return ("mu", "sigma"), (f"no stimulus level lies on the fitted curve's slope (a step between x = {a:g} "
                                 f"and x = {b:g}): sigma has no lower bound and mu lies anywhere in ({a:g}, {b:g})")
    if on_slope.sum() == 1:  # the other levels sit on the floor or the ceiling of the curve
        return ("mu", "sigma"), (f"only one stimulus level (x = {x[on_slope][0]:g}) lies on the fitted curve's "
                                 f"slope, the others on its floor or ceiling: one number cannot fix both mu and "
                                 f"sigma, and the curve may be steeper still (sigma has no lower bound)")
    return (), None


def _scaled_eigh(H):
    """Eigen-decomposition of ``H`` scaled to unit diagonal (``C = S H S``, ``S = diag(H)^-1/2``):
    scale-free, so the units of ``x`` drop out of the thresholds. Needs a positive diagonal."""
    s = 1.0 / np.sqrt(np.diag(H))
    w, V = np.linalg.eigh(H * s[:, None] * s[None, :])
    return w, V, s


def _hessian_null(H, names, at_bound):
    """Flat or downward directions of the Hessian ``H`` of the free parameters ``names``.

    A lapse in ``at_bound`` sits on its bound (0 or ``max_lapse``), so the second-order test is on
    the other parameters only (the Hessian of a constrained optimum need not be positive definite
    across an active bound).

    Returns (names not determined, reason or None, covariance): the covariance is the inverse of
    ``H`` where that is positive definite; otherwise the other parameters' block comes from the
    inverse on the directions the data determine (a pseudo-inverse of their block, conditional on
    the bound lapses), and a bound lapse gets its own curvature ``1 / H_jj``. NaN rows for
    parameters not determined.
    """
    d = len(names)
    cov = np.full((d, d), np.nan)
    if not np.all(np.isfinite(H)):
        return tuple(names), "the Hessian of the NLL at the optimum is not finite", cov
    diag = np.diag(H)
    bound = np.array([nm in at_bound for nm in names], dtype=bool)
    bad = diag <= 0  # no curvature, or downward: not a minimum along this parameter
    inner = np.flatnonzero(~bound & ~bad)
    involved = bad.copy()
    negative = bool(bad.any())
    if inner.size:
        w, V, s = _scaled_eigh(H[np.ix_(inner, inner)])
        null = w < EIG_RTOL
        negative |= bool(np.any(w < -EIG_RTOL))
        involved[inner] |= np.any(np.abs(V[:, null]) > COMPONENT_TOL, axis=1)
    keep = np.flatnonzero(~involved)
    if keep.size:
        same = np.array_equal(keep, inner)  # nothing bound or flat: the block above, already decomposed
        wk, Vk, sk = (w, V, s) if same else _scaled_eigh(H[np.ix_(keep, keep)])
        if not involved.any() and np.all(wk > EIG_RTOL):  # positive definite: the usual inverse
            cov[np.ix_(keep, keep)] = (Vk / wk) @ Vk.T * sk[:, None] * sk[None, :]
        else:  # interior block on its determined directions (estimable functions), bound lapses alone
            if inner.size:
                pinv = (V[:, ~null] / w[~null]) @ V[:, ~null].T * s[:, None] * s[None, :]
                ok = ~involved[inner]
                cov[np.ix_(inner[ok], inner[ok])] = pinv[np.ix_(ok, ok)]
            for j in np.flatnonzero(bound & ~involved):
                cov[j, j] = 1.0 / diag[j]
    if not involved.any():
        return (), None, cov
    if negative:
        why = ("the Hessian of the NLL at the optimum is not positive definite (the likelihood still curves "
               "down there: the optimum is not a proper minimum in these parameters)")
    else:
        why = ("the Hessian of the NLL at the optimum is singular (the likelihood is flat along a combination "
               "of these parameters)")
    return tuple(nm for nm, inv in zip(names, involved) if inv), why, cov


# ----------------------------------------------------------------------------- internals


def _check_kind(kind):
    if kind not in KINDS:
        raise ParameterError(f"The 'kind' parameter must be one of {KINDS}. Got {kind!r} instead.")


def _finite(name, a):
    if not np.all(np.isfinite(a)):
        bad = np.flatnonzero(~np.isfinite(a))
        raise NonFiniteError(
            f"{name} has {bad.size} NaN or inf entries (first at index {bad[0]}); drop those trials "
            f"before fitting."
        )


def _as_trials(x, choices):
    x = np.asarray(x, dtype=float).ravel()
    k = np.asarray(choices, dtype=float).ravel()
    if x.shape != k.shape:
        raise ShapeError(f"x has {x.size} entries but choices has {k.size}; give one choice per trial.")
    if x.size == 0:
        raise ParameterError("x and choices are empty: a psychometric curve needs trials.")
    _finite("x", x)
    _finite("choices", k)
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
    if x.size == 0:
        raise ParameterError("x, counts and n are empty: a psychometric curve needs trials.")
    _finite("x", x)
    _finite("counts", k)
    _finite("n", n)
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
    theta = _snap_lapses(to_bounded(best.x), lambda t: _nll(t, x, k, n, kind, lapses), max_lapse)
    return theta, _nll(theta, x, k, n, kind, lapses)


def _snap_lapses(theta, nll, max_lapse, near=1e-3, rtol=1e-10):
    """Put each lapse that the search left near a bound (0 or ``max_lapse``) on it, when the NLL
    there is no worse (within ``rtol``). Through the logistic map the search only approaches a bound
    (a lapse of 2e-7 where the optimum is 0), and a lapse just off its bound would be taken for an
    interior optimum by the Hessian test."""
    theta = np.array(theta, dtype=float)
    for j in range(2, theta.size):
        for bound in (0.0, max_lapse):
            if abs(theta[j] - bound) < near * max_lapse:
                trial = theta.copy()
                trial[j] = bound
                if nll(trial) <= nll(theta) + rtol * max(1.0, abs(nll(theta))):
                    theta = trial
    return theta


def _nll_hessian(theta, x, k, n, kind, lapses):
    """Hessian of :func:`_nll` in the free parameters (mu, log sigma[, gamma[, lambda]]), exact.

    With ``s = (x - mu) / sigma``, ``A = 1 - gamma - lambda``, ``psi = gamma + A F(s)``:
    ``H = sum_i [ NLL''(psi_i) J_i J_i^T + NLL'(psi_i) d2psi_i ]``, where ``J_i = dpsi_i / dtheta``
    and ``NLL'(psi) = -(k/psi - (n-k)/(1-psi))``, ``NLL''(psi) = k/psi^2 + (n-k)/(1-psi)^2``. Tied
    lapses (``symmetric``) map through ``theta_full = M theta``: ``H = M^T H_full M``.
    """
    p = _unpack(theta, lapses)
    mu, sigma, g, lam = p["mu"], p["sigma"], p["gamma"], p["lambda"]
    s = (x - mu) / sigma                                               # (L,)
    if kind == "logistic":
        F = special.expit(s)
        f = F * (1 - F)                                                # F'
        df = f * (1 - 2 * F)                                           # F''
    else:
        F = special.ndtr(s)
        f = np.exp(-0.5 * s**2) / np.sqrt(2 * np.pi)
        df = -s * f
    A = 1.0 - g - lam
    psi = np.clip(g + A * F, 1e-12, 1 - 1e-12)                         # as _nll clips it
    # dpsi / d(mu, log sigma, gamma, lambda): ds/dmu = -1/sigma, ds/dlog sigma = -s
    J = np.stack([-A * f / sigma, -A * f * s, 1 - F, -F], axis=1)       # (L, 4)
    d2 = np.zeros((x.size, 4, 4))                                      # d2psi / dtheta dtheta
    d2[:, 0, 0] = A * df / sigma**2
    d2[:, 0, 1] = d2[:, 1, 0] = A * (s * df + f) / sigma
    d2[:, 1, 1] = A * s * (s * df + f)
    d2[:, 0, 2] = d2[:, 2, 0] = d2[:, 0, 3] = d2[:, 3, 0] = f / sigma  # dA/dgamma = dA/dlambda = -1
    d2[:, 1, 2] = d2[:, 2, 1] = d2[:, 1, 3] = d2[:, 3, 1] = f * s
    dnll = -(k / psi - (n - k) / (1 - psi))                            # (L,)
    d2nll = k / psi**2 + (n - k) / (1 - psi) ** 2                      # (L,)
    H = np.einsum("i,ia,ib->ab", d2nll, J, J) + np.einsum("i,iab->ab", dnll, d2)
    M = {"free": np.eye(4), "symmetric": np.array([[1.0, 0, 0], [0, 1, 0], [0, 0, 1], [0, 0, 1]]),
         "none": np.eye(4)[:, :2]}[lapses]
    return M.T @ H @ M


def _hessian(fun, theta, h=1e-4):
    """Central-difference Hessian of a scalar function (float64): the reference the tests check
    :func:`_nll_hessian` against."""
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
