"""Tests of minirnn.analysis: psychometric fits, PCA, fixed points (weights built by hand, float64).

Tolerances are stated per test. Fixed points are checked against independent references: a linear
solve for a linear network, and scalar root-finding (scipy.optimize.brentq) for tanh networks.
"""
import os

import numpy as np
import pytest
from scipy import optimize

from minirnn.analysis import (
    PCA,
    Dynamics,
    FixedPointPath,
    FixedPoints,
    RateDynamics,
    choice_probability,
    choices_from_outputs,
    condition_average,
    continue_fixed_points,
    dynamics_from_model,
    find_fixed_points,
    fit_psychometric,
    pca,
    project,
    psychometric_from_batch,
    psychometric_function,
    sample_states,
    signed_coherence,
    trial_param,
    unique_points,
)
from minirnn.errors import ParameterError, ShapeError

PARAM_NAMES = ("mu", "sigma", "gamma", "lambda")

# ============================================================================ psychometric


def _synthetic_choices(rng, kind, mu=0.05, sigma=0.1, gamma=0.04, lam=0.08, n=20000):
    x = rng.choice(np.linspace(-0.5, 0.5, 11), size=n)
    choices = rng.random(n) < psychometric_function(x, mu, sigma, gamma, lam, kind)
    return x, choices, dict(mu=mu, sigma=sigma, gamma=gamma, **{"lambda": lam})


@pytest.mark.parametrize("kind", ["logistic", "probit"])
def test_psychometric_recovers_known_parameters(kind):
    rng = np.random.default_rng(0)
    x, c, true = _synthetic_choices(rng, kind)
    fit = fit_psychometric(x, c, kind=kind)
    for name, value in true.items():
        lo, hi = fit.ci[name]
        assert lo <= value <= hi, f"{name}: true {value} outside 95% CI ({lo}, {hi})"
        assert abs(fit.params[name] - value) < 4 * fit.se[name] + 1e-3
    # absolute closeness at n = 20000 trials
    assert abs(fit.params["mu"] - 0.05) < 0.01 and abs(fit.params["sigma"] - 0.1) < 0.015
    np.testing.assert_allclose(fit.predict([-10, 10]), [fit.params["gamma"], 1 - fit.params["lambda"]], atol=1e-6)


def test_psychometric_bootstrap_is_seeded_and_covers_truth():
    rng = np.random.default_rng(1)
    x, c, true = _synthetic_choices(rng, "logistic", n=5000)
    a = fit_psychometric(x, c, ci="bootstrap", n_boot=60, seed=7)
    b = fit_psychometric(x, c, ci="bootstrap", n_boot=60, seed=7)
    assert a.ci == b.ci
    for name in ("mu", "sigma"):
        assert a.ci[name][0] <= true[name] <= a.ci[name][1]


def test_psychometric_counts_equal_trials_and_lapse_options():
    rng = np.random.default_rng(2)
    x, c, _ = _synthetic_choices(rng, "probit", n=3000)
    levels, p, n = choice_probability(x, c)
    by_trial = fit_psychometric(x, c, kind="probit", ci=None)
    by_count = fit_psychometric(levels, p * n, n, kind="probit", ci=None)
    np.testing.assert_allclose(list(by_trial.params.values()), list(by_count.params.values()), rtol=1e-6, atol=1e-8)
    none = fit_psychometric(x, c, lapses="none")
    assert none.params["gamma"] == none.params["lambda"] == 0 and none.ci["gamma"] == (0.0, 0.0)
    sym = fit_psychometric(x, c, lapses="symmetric")
    assert sym.params["gamma"] == sym.params["lambda"]


def test_psychometric_errors_teach():
    with pytest.raises(ParameterError, match="'kind'"):
        fit_psychometric([0, 1], [0, 1], kind="weibull")
    with pytest.raises(ParameterError, match="binary"):
        fit_psychometric([0, 1], [0, 2])
    with pytest.raises(ShapeError):
        fit_psychometric([0, 1, 2], [0, 1])


def test_choices_from_outputs_uses_masked_mean():
    z = np.zeros((3, 4, 2))
    z[0, :, 1] = 1
    z[1, :, 0] = 1
    z[2, :2, 0] = 5  # large but masked out below
    z[2, 2:, 1] = 1
    mask = np.ones((3, 4))
    mask[2, :2] = 0
    np.testing.assert_array_equal(choices_from_outputs(z, mask), [1, 0, 1])
    np.testing.assert_array_equal(choices_from_outputs(z), [1, 0, 0])
    levels, p, n = choice_probability([0.1, 0.1, -0.1, -0.1], [1, 0, 0, 0])
    np.testing.assert_allclose(levels, [-0.1, 0.1])
    np.testing.assert_allclose(p, [0, 0.5])
    np.testing.assert_array_equal(n, [2, 2])


# ---------------------------------------------------------------------------- psychometric: what data determine


def _fit_quiet(*args, **kwargs):
    """fit_psychometric, returning (fit, the PsychometricWarning messages it issued)."""
    import warnings

    from minirnn.analysis.psychometric import PsychometricWarning

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fit = fit_psychometric(*args, **kwargs)
    assert all(issubclass(w.category, PsychometricWarning) for w in caught), [str(w.message) for w in caught]
    return fit, [str(w.message) for w in caught]


def _no_zero_width(fit, fixed=()):
    """Every free parameter has a finite interval of positive width or NaN, never (v, v)."""
    for name, (lo, hi) in fit.ci.items():
        if name in fixed:
            assert fit.se[name] == 0.0 and lo == hi == fit.params[name] == 0.0
        elif name in fit.undetermined:
            assert np.isnan(fit.se[name]) and np.isnan(lo) and np.isnan(hi), name
        elif np.isfinite(fit.se[name]):
            assert hi > lo, f"{name}: zero-width interval ({lo}, {hi})"


@pytest.mark.parametrize("ci", ["hessian", "bootstrap"])
@pytest.mark.parametrize("case, lapses, undetermined, why", [
    ("three_levels", "free", ("sigma", "gamma", "lambda"), "singular"),  # 3 levels, 4 parameters
    ("two_levels", "free", ("mu", "sigma", "gamma", "lambda"), "singular"),
    ("one_level", "free", ("mu", "sigma", "gamma", "lambda"), "one stimulus level"),
    ("one_level", "none", ("mu", "sigma"), "one stimulus level"),
])
def test_psychometric_undetermined_parameters_get_nan_and_a_warning(case, lapses, undetermined, why, ci):
    rng = np.random.default_rng(50)
    data = {
        "three_levels": (np.repeat([-1.0, 0.0, 1.0], 10), np.r_[np.arange(10) < 1, np.arange(10) < 5, np.arange(10) < 9]),
        "two_levels": (np.repeat([-0.2, 0.2], 100), np.r_[rng.random(100) < 0.2, rng.random(100) < 0.8]),
        "one_level": (np.full(50, 0.2), rng.random(50) < 0.7),
    }[case]
    fit, messages = _fit_quiet(*data, lapses=lapses, ci=ci, n_boot=20, seed=0)
    assert fit.undetermined == undetermined and not fit.identifiable and why in fit.problem
    assert len(messages) == 1 and all(name in messages[0] for name in undetermined) and why in messages[0]
    _no_zero_width(fit, fixed=("gamma", "lambda") if lapses == "none" else ())  # held fixed, not undetermined
    for name in undetermined:
        assert np.isnan(fit.se[name]) and all(np.isnan(fit.ci[name]))


def test_psychometric_determined_parameter_of_a_singular_fit_gets_the_estimable_variance():
    """Counts 1, 5, 9 of 10 at x = -1, 0, 1 (free lapses): the likelihood is flat along a curve in
    (sigma, gamma = lambda), on which mu stays 0. mu's variance is e_mu' H^+ e_mu (H's
    pseudo-inverse), checked here against the central-difference Hessian."""
    from minirnn.analysis import psychometric as P

    fit, messages = _fit_quiet([-1, 0, 1], [1, 5, 9], [10, 10, 10])
    assert len(messages) == 1 and fit.undetermined == ("sigma", "gamma", "lambda") and "3 stimulus levels for 4" in fit.problem
    theta = np.array([fit.params["mu"], np.log(fit.params["sigma"]), fit.params["gamma"], fit.params["lambda"]])
    x, k, n = np.array([-1.0, 0, 1]), np.array([1.0, 5, 9]), np.full(3, 10.0)
    H = P._hessian(lambda t: P._nll(t, x, k, n, "logistic", "free"), theta)
    w, V = np.linalg.eigh(H)
    assert abs(w[0]) < 1e-4 * w[-1] and abs(V[0, 0]) < 1e-3  # one flat direction, mu not in it
    var_mu = np.sum(V[0, 1:] ** 2 / w[1:])
    np.testing.assert_allclose(fit.se["mu"], np.sqrt(var_mu), rtol=1e-3)
    assert abs(fit.params["mu"]) < 1e-6 and fit.ci["mu"][0] < 0 < fit.ci["mu"][1]


@pytest.mark.parametrize("choices, why", [
    (lambda x: np.ones_like(x), "all 600 trials chose 1"),
    (lambda x: np.zeros_like(x), "all 600 trials chose 0"),
    (lambda x: x > 0, "perfectly separated (all 0 at x <= -0.1, all 1 at x >= 0.1)"),
    (lambda x: x < 0, "check which choice counts as 1"),
])
def test_psychometric_choices_that_hold_no_curve_are_named(choices, why):
    x = np.random.default_rng(51).choice([-0.4, -0.2, -0.1, 0.1, 0.2, 0.4], 600)
    for ci in ("hessian", None):
        fit, messages = _fit_quiet(x, choices(x), ci=ci)
        assert fit.undetermined == PARAM_NAMES and why in fit.problem and why in messages[0]
        _no_zero_width(fit)


def test_psychometric_curve_with_one_level_on_its_slope_leaves_mu_and_sigma_undetermined():
    # a near-perfect observer: every level but +0.1 is all 0 or all 1 (a trained network on coarse levels)
    x = np.repeat([-0.7, -0.3, -0.1, 0.1, 0.3, 0.7], 100)
    c = np.r_[np.zeros(300), np.arange(100) < 97, np.ones(200)]
    fit, messages = _fit_quiet(x, c)
    assert len(messages) == 1 and fit.undetermined == ("mu", "sigma") and "only one stimulus level (x = 0.1)" in fit.problem
    assert fit.params["gamma"] == 0.0 and fit.ci["gamma"][0] == 0.0 and 0 < fit.ci["gamma"][1] < 0.5
    _no_zero_width(fit)


def test_psychometric_regular_fits_raise_no_warning():
    import warnings

    rng = np.random.default_rng(52)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for kind in ("logistic", "probit"):
            for lapses in ("free", "symmetric", "none"):
                x, c, _ = _synthetic_choices(rng, kind, n=2000)
                fit = fit_psychometric(x, c, kind=kind, lapses=lapses)
                assert fit.identifiable and fit.problem is None
                assert all(np.isfinite(fit.se[nm]) and fit.se[nm] > 0 for nm in ("mu", "sigma"))


@pytest.mark.parametrize("ci", ["hessian", "bootstrap"])
def test_psychometric_symmetric_lambda_has_gammas_uncertainty(ci):
    rng = np.random.default_rng(53)
    x, c, _ = _synthetic_choices(rng, "logistic", gamma=0.06, lam=0.06, n=4000)
    fit = fit_psychometric(x, c, lapses="symmetric", ci=ci, n_boot=40, seed=1)
    assert fit.params["lambda"] == fit.params["gamma"] > 0
    assert fit.se["lambda"] == fit.se["gamma"] > 0 and fit.ci["lambda"] == fit.ci["gamma"]
    assert fit.ci["lambda"][0] < fit.params["lambda"] < fit.ci["lambda"][1]


def test_psychometric_bootstrap_replicates_that_never_move_give_no_interval():
    # lapses at their bound 0 in every resample: percentiles would say (0, 0)
    x = np.repeat(np.linspace(-0.5, 0.5, 11), 200)
    c = np.random.default_rng(54).random(x.size) < psychometric_function(x, 0.0, 0.08)
    fit, messages = _fit_quiet(x, c, ci="bootstrap", n_boot=20, seed=0)
    at_zero = [name for name in ("gamma", "lambda") if fit.params[name] == 0.0]
    assert at_zero and len(messages) == 1 and "do not vary" in messages[0]
    for name in at_zero:
        assert np.isnan(fit.se[name]) and all(np.isnan(fit.ci[name])) and f"{name} (= 0 in all 20)" in messages[0]
    assert fit.ci["mu"][0] < fit.ci["mu"][1]


def test_psychometric_lapse_left_just_off_its_bound_is_put_on_it():
    # tutorial 06's silenced network: the search stopped at gamma = 2.2e-7, whose optimum is 0, and the
    # Hessian test then called mu, sigma and gamma undetermined
    x = [-0.32, -0.16, -0.08, -0.04, -0.02, -0.01, 0.01, 0.02, 0.04, 0.08, 0.16, 0.32]
    k = [0, 3, 19, 41, 45, 40, 38, 42, 31, 47, 45, 44]
    n = [44, 40, 42, 49, 47, 43, 38, 42, 31, 47, 45, 44]
    fit, messages = _fit_quiet(x, k, n)
    assert messages == [] and fit.params["gamma"] == 0.0 and fit.params["lambda"] == 0.0
    assert all(np.isfinite(fit.se[name]) for name in ("mu", "sigma"))


@pytest.mark.parametrize("kind", ["logistic", "probit"])
@pytest.mark.parametrize("lapses", ["free", "symmetric", "none"])
def test_psychometric_analytic_hessian_matches_central_differences(kind, lapses):
    from minirnn.analysis import psychometric as P

    rng = np.random.default_rng(55)
    x, c, _ = _synthetic_choices(rng, kind, n=3000)
    xs, k, n = P._as_counts(x, c, None)
    theta, _ = P._fit(xs, k, n, kind, lapses, 0.5)
    theta = theta + np.r_[0.01, 0.05, [0.01] * (theta.size - 2)]  # away from the optimum and the bounds
    exact = P._nll_hessian(theta, xs, k, n, kind, lapses)
    fd = P._hessian(lambda t: P._nll(t, xs, k, n, kind, lapses), theta)
    np.testing.assert_allclose(exact, fd, rtol=1e-4, atol=1e-5 * np.abs(fd).max())


def test_psychometric_bad_input_is_named():
    from minirnn.errors import NonFiniteError

    with pytest.raises(ParameterError, match="empty"):
        fit_psychometric([], [])
    with pytest.raises(ParameterError, match="empty"):
        fit_psychometric([], [], [])
    with pytest.raises(NonFiniteError, match=r"x has 1 NaN or inf entries \(first at index 2\)"):
        fit_psychometric([0.1, 0.2, np.nan], [0, 1, 1])
    with pytest.raises(NonFiniteError, match="counts"):
        fit_psychometric([0.1, 0.2], [np.nan, 1], [2, 2])
    with pytest.raises(NonFiniteError, match="n has"):
        fit_psychometric([0.1, 0.2], [1, 1], [np.inf, 2])
    with pytest.raises(ParameterError, match="whole numbers"):
        fit_psychometric([-1, 0, 1], [1.5, 5, 9], [10, 10, 10], ci="bootstrap")
    with pytest.raises(ParameterError, match="'n_boot'"):
        fit_psychometric([-1, 0, 1], [1, 5, 9], [10, 10, 10], ci="bootstrap", n_boot=1)


def test_choices_from_outputs_ignores_masked_out_steps_and_refuses_nan_in_counted_ones():
    from minirnn.errors import NonFiniteError

    rng = np.random.default_rng(56)
    z = rng.normal(size=(6, 8, 2))
    mask = np.ones((6, 8))
    mask[:, :3] = 0
    expected = choices_from_outputs(z, mask)
    for value in (np.nan, np.inf, -np.inf):
        masked_out = z.copy()
        masked_out[:, 0, :] = value  # NaN * 0 would be NaN: these steps must not count at all
        np.testing.assert_array_equal(choices_from_outputs(masked_out, mask), expected)
        np.testing.assert_array_equal(choices_from_outputs(masked_out, mask[..., None] * np.ones(2)), expected)
        counted = z.copy()
        counted[4, 5, 1] = value
        with pytest.raises(NonFiniteError, match="1 of 6 trials .*trial 4, step 5, channel 1"):
            choices_from_outputs(counted, mask)
        with pytest.raises(NonFiniteError, match="trial 4"):
            choices_from_outputs(counted)  # no mask: every step counts
        np.testing.assert_array_equal(choices_from_outputs(counted, mask, time_slice=slice(6, None)),
                                      choices_from_outputs(z, mask, time_slice=slice(6, None)))
    empty = mask.copy()
    empty[2] = 0
    with pytest.raises(ParameterError, match="1 of 6 trials have no masked-in step"):
        choices_from_outputs(z, empty)
    with pytest.raises(NonFiniteError, match="mask"):
        choices_from_outputs(z, np.where(mask == 1, np.nan, 0))


def test_psychometric_from_batch_records_its_convention():
    rng = np.random.default_rng(57)
    B = 2000
    tp = {"coherence": rng.choice([0.05, 0.1, 0.2, 0.4], B), "direction": rng.integers(0, 2, B)}
    chose1 = rng.random(B) < psychometric_function(signed_coherence(tp), 0.03, 0.08, 0.02, 0.02)
    z = np.zeros((B, 5, 2))
    z[np.arange(B), :, chose1.astype(int)] = 1.0
    one = psychometric_from_batch(z, np.ones((B, 5)), tp, ci=None)
    zero = psychometric_from_batch(z, np.ones((B, 5)), tp, positive=0, ci=None)
    assert one.positive == 1 and zero.positive == 0
    # the same trials seen from the other channel: the curve mirrors, mu changes sign
    np.testing.assert_allclose(zero.params["mu"], -one.params["mu"], atol=1e-4)


# ============================================================================ PCA


def test_pca_on_low_rank_data():
    rng = np.random.default_rng(3)
    N, r = 20, 3
    A = np.linalg.qr(rng.normal(size=(N, r)))[0].T  # (r, N) orthonormal rows
    Z = rng.normal(size=(5, 40, r)) * np.array([5.0, 2.0, 1.0])
    X = Z @ A + rng.normal(size=N)  # (5, 40, N), rank 3 around a mean
    p = pca(X)
    assert np.isclose(p.explained_variance_ratio[:r].sum(), 1.0, atol=1e-12)
    assert np.all(np.diff(p.explained_variance_ratio) <= 1e-15)
    # the top-3 axes span the same space as A's rows
    np.testing.assert_allclose(p.components[:r] @ A.T @ A, p.components[:r], atol=1e-10)
    # explained variance = eigenvalues of the sample covariance
    flat = X.reshape(-1, N)
    ev = np.sort(np.linalg.eigvalsh(np.cov(flat.T)))[::-1]
    np.testing.assert_allclose(p.explained_variance[:r], ev[:r], rtol=1e-10)
    # projection of single trials and reconstruction
    P3 = project(X, pca(X, n_components=3))
    assert P3.shape == (5, 40, 3)
    np.testing.assert_allclose(pca(X, 3).inverse_transform(P3), X, atol=1e-10)
    with pytest.raises(ParameterError, match="n_components"):
        pca(X, n_components=0)
    assert isinstance(p, PCA) and "explained_variance_ratio" in repr(p)


def test_pca_signs_are_deterministic():
    rng = np.random.default_rng(4)
    X = rng.normal(size=(50, 6))
    a, b = pca(X), pca(X.copy())
    np.testing.assert_array_equal(a.components, b.components)
    big = np.argmax(np.abs(a.components), axis=1)
    assert np.all(a.components[np.arange(6), big] > 0)


def test_condition_average_and_correct_trials():
    B, T, N = 6, 3, 2
    data = np.arange(B)[:, None, None] * np.ones((B, T, N))
    cond = np.array([1, 0, 1, 0, 1, 2])
    labels, means, counts = condition_average(data, cond)
    np.testing.assert_array_equal(labels, [0, 1, 2])
    np.testing.assert_array_equal(counts, [2, 3, 1])
    np.testing.assert_allclose(means[:, 0, 0], [2.0, 2.0, 5.0])
    correct = np.array([True, True, False, True, True, True])
    labels, means, counts = condition_average(data, cond, correct)
    np.testing.assert_allclose(means[:, 0, 0], [2.0, 2.0, 5.0])
    np.testing.assert_array_equal(counts, [2, 2, 1])
    np.testing.assert_allclose(condition_average(data, cond, correct)[1][1, 0, 0], (0 + 4) / 2)
    # two-column conditions (coherence, direction)
    c2 = np.stack([cond, np.array([0, 0, 0, 0, 1, 1])], axis=1)
    labels, means, counts = condition_average(data, c2)
    assert labels.shape == (4, 2) and counts.sum() == B
    with pytest.raises(ShapeError):
        condition_average(data, cond[:-1])


def test_trial_param_from_dict_or_list():
    np.testing.assert_array_equal(trial_param({"coh": np.array([0.1, 0.2])}, "coh"), [0.1, 0.2])
    np.testing.assert_array_equal(trial_param([{"coh": 0.1}, {"coh": 0.2}], "coh"), [0.1, 0.2])
    with pytest.raises(ParameterError, match="did not|no key"):
        trial_param({"coh": [1]}, "dir")


# ============================================================================ fixed points


def _rand_net(rng, N, N_in, radius):
    W = rng.normal(size=(N, N))
    W *= radius / np.max(np.abs(np.linalg.eigvals(W)))
    return W, rng.normal(size=(N, N_in)), rng.normal(size=N)


def _x_root(w, u=0.0, lo=None, hi=None):
    """A root of x = w tanh(x) + u in [lo, hi] by brentq (independent of the finder)."""
    return optimize.brentq(lambda x: w * np.tanh(x) + u - x, lo, hi, xtol=1e-15, rtol=1e-15)


@pytest.mark.parametrize("radius", [0.8, 1.5])
def test_linear_network_unique_fixed_point(radius):
    rng = np.random.default_rng(5)
    N, N_in, alpha = 8, 3, 0.1
    W, W_in, b = _rand_net(rng, N, N_in, radius)
    u = rng.normal(size=N_in)
    x_true = np.linalg.solve(np.eye(N) - W, W_in @ u + b)  # (I - W) x = W_in u + b
    fps = find_fixed_points(RateDynamics(W, W_in, b, alpha, "linear"), rng.normal(size=(30, N)), u)
    assert len(fps) == 1
    np.testing.assert_allclose(fps.xstar[0], x_true, atol=1e-8, rtol=0)
    ev = np.linalg.eigvals((1 - alpha) * np.eye(N) + alpha * W)
    np.testing.assert_allclose(np.sort(np.abs(fps.eigvals[0])), np.sort(np.abs(ev)), atol=1e-10)
    assert fps.stable[0] == (radius < 1)
    # continuous-time eigenvalues: (lambda - 1) / dt = alpha (eig(W) - 1) / dt
    np.testing.assert_allclose(np.sort(fps.eigvals_ct[0].real), np.sort((alpha * (np.linalg.eigvals(W) - 1)).real), atol=1e-10)


@pytest.mark.parametrize("alpha", [0.2, np.array([0.1, 0.3])])
def test_two_unit_tanh_diagonal_known_fixed_points(alpha):
    # W = w I: each unit solves x = w tanh(x) on its own -> roots {-s, 0, s}; 9 fixed points.
    w = 2.0
    s = _x_root(w, lo=0.5, hi=5.0)
    roots = np.array([-s, 0.0, s])
    expected = np.array([[a, b] for a in roots for b in roots])
    # stability: J = diag(1 - alpha + alpha w sech^2(x)); |.| < 1 iff w sech^2(x) < 1 iff x = +-s
    n_unstable = np.array([int(a == 0) + int(b == 0) for a in roots for b in roots])
    rng = np.random.default_rng(6)
    fps = find_fixed_points(RateDynamics(w * np.eye(2), np.zeros((2, 1)), np.zeros(2), alpha, "tanh"),
                            rng.uniform(-4, 4, size=(300, 2)))
    assert len(fps) == 9
    for e, nu in zip(expected, n_unstable):
        d = np.linalg.norm(fps.xstar - e, axis=1)
        i = np.argmin(d)
        assert d[i] < 1e-8, f"fixed point {e} found only to {d[i]:.1e}"
        assert fps.n_unstable[i] == nu
        assert fps.stable[i] == (nu == 0)
    assert np.all(fps.q < 1e-20)


def test_two_unit_tanh_coupled_known_fixed_points():
    # W = [[0, w], [w, 0]], u = 0: x1 = w tanh(x2), x2 = w tanh(x1) -> 0 and +-(s, s), s = w tanh(s).
    w, alpha = 1.5, 0.25
    s = _x_root(w, lo=0.3, hi=5.0)
    W = np.array([[0.0, w], [w, 0.0]])
    dyn = RateDynamics(W, np.zeros((2, 1)), np.zeros(2), alpha, "tanh")
    rng = np.random.default_rng(7)
    fps = find_fixed_points(dyn, sample_states(rng.normal(scale=2, size=(10, 20, 2)), 200, noise_scale=0.5, seed=3))
    got = fps.xstar[np.lexsort(fps.xstar.T[::-1])]
    np.testing.assert_allclose(got, [[-s, -s], [0, 0], [s, s]], atol=1e-8)
    # analytic eigenvalues at (s, s): 1 - alpha + alpha * (+-w sech^2 s)
    g = w / np.cosh(s) ** 2
    i = np.argmin(np.linalg.norm(fps.xstar - [s, s], axis=1))
    np.testing.assert_allclose(np.sort(fps.eigvals[i].real), np.sort([1 - alpha - alpha * g, 1 - alpha + alpha * g]), atol=1e-12)
    assert fps.stable[i] and not fps.stable[np.argmin(np.linalg.norm(fps.xstar, axis=1))]


def test_jacobian_and_gradient_match_finite_differences():
    rng = np.random.default_rng(8)
    N, N_in = 5, 2
    W, W_in, b = _rand_net(rng, N, N_in, 1.2)
    dyn = RateDynamics(W, W_in, b, rng.uniform(0.1, 0.5, size=N), "softplus")
    x = rng.normal(size=(3, N))
    u = rng.normal(size=(3, N_in))
    J = dyn.jacobian(x, u)
    Ju = dyn.input_jacobian(x, u)
    h = 1e-6
    for j in range(N):
        e = np.zeros(N)
        e[j] = h
        fd = (dyn.step(x + e, u) - dyn.step(x - e, u)) / (2 * h)
        np.testing.assert_allclose(J[:, :, j], fd, atol=1e-8)
    for j in range(N_in):
        e = np.zeros(N_in)
        e[j] = h
        np.testing.assert_allclose(Ju[:, :, j], (dyn.step(x, u + e) - dyn.step(x, u - e)) / (2 * h), atol=1e-8)
    g, dq = dyn.residual_and_grad(x, u)
    g_gen, dq_gen = Dynamics.residual_and_grad(dyn, x, u)  # generic version, via the full Jacobian
    np.testing.assert_allclose(dq, dq_gen, atol=1e-12)

    def q(xx):
        r = dyn.step(xx, u) - xx
        return 0.5 * np.sum(r * r, axis=1)

    for j in range(N):
        e = np.zeros(N)
        e[j] = h
        np.testing.assert_allclose(dq[:, j], (q(x + e) - q(x - e)) / (2 * h), atol=1e-7)


def test_dedup_and_unique_points():
    X = np.array([[0.0, 0.0], [1e-9, 0.0], [1.0, 1.0], [1.0 + 1e-8, 1.0], [2.0, 0.0]])
    q = np.array([1e-20, 1e-25, 1e-30, 1e-22, 1e-21])
    idx = unique_points(X, q, tol=1e-6)
    assert sorted(idx.tolist()) == [1, 2, 4]  # the lower-q representative is kept
    assert len(unique_points(X, q, tol=1e-12)) == 5
    # the finder: many starts converge to one linear fixed point, reported once
    rng = np.random.default_rng(9)
    W, W_in, b = _rand_net(rng, 4, 1, 0.5)
    fps = find_fixed_points(RateDynamics(W, W_in, b, 0.1, "linear"), rng.normal(size=(100, 4)))
    assert len(fps) == 1 and fps.n_inits == 100


def test_fixed_points_save_load_roundtrip(tmp_path):
    w = 2.0
    fps = find_fixed_points(RateDynamics(w * np.eye(2), np.zeros((2, 1)), np.zeros(2), 0.2, "tanh"),
                            np.random.default_rng(10).uniform(-3, 3, (100, 2)), dt=10.0)
    path = tmp_path / "fps.npz"
    fps.save(path)
    back = FixedPoints.load(path)
    for name in ("xstar", "inputs", "q", "eigvals"):
        np.testing.assert_array_equal(getattr(back, name), getattr(fps, name))
    assert back.dt == 10.0 and back.n_inits == 100
    np.testing.assert_array_equal(back.stable, fps.stable)
    with np.load(path, allow_pickle=False) as f:  # nothing pickled
        assert set(f.files) == {"xstar", "inputs", "q", "eigvals", "minirnn"}
    sub = fps[fps.stable]
    assert len(sub) == 4 and np.all(sub.stable)


def _torn_savez(file, *args, **kwargs):
    """np.savez that dies half-way: a few bytes of a zip written, then the disk is 'full'."""
    if isinstance(file, (str, os.PathLike)):
        with open(file, "wb") as fh:
            fh.write(b"PK\x03\x04torn")
    else:
        file.write(b"PK\x03\x04torn")
    raise OSError("No space left on device")


def test_fixed_point_files_are_written_atomically(tmp_path, monkeypatch):
    dyn = RateDynamics(2.0 * np.eye(2), np.zeros((2, 1)), np.zeros(2), 0.2, "tanh")
    fps = find_fixed_points(dyn, np.random.default_rng(10).uniform(-3, 3, (50, 2)), dt=10.0)
    path_obj = continue_fixed_points(dyn, fps, np.linspace([0.0], [0.1], 3))
    fps_file, path_file = str(tmp_path / "fps.npz"), str(tmp_path / "path.npz")
    fps.save(fps_file)
    path_obj.save(path_file)
    monkeypatch.setattr(np, "savez", _torn_savez)  # a crash in the middle of the next writes
    with pytest.raises(OSError, match="No space"):
        fps[:1].save(fps_file)
    with pytest.raises(OSError, match="No space"):
        path_obj.save(path_file)
    monkeypatch.undo()
    back, back_path = FixedPoints.load(fps_file), FixedPointPath.load(path_file)  # the old files, intact
    np.testing.assert_array_equal(back.xstar, fps.xstar)
    np.testing.assert_array_equal(back_path.xstar, path_obj.xstar)
    assert sorted(os.listdir(tmp_path)) == ["fps.npz", "path.npz"]  # no temporary file left behind
    with pytest.raises(ParameterError, match="FixedPointPath"):
        FixedPointPath.load(fps_file)
    assert fps.save(tmp_path / "again") == str(tmp_path / "again.npz")  # the path written, suffix added


def test_max_q_keeps_or_drops_slow_points():
    # 1 unit, x = 2 tanh(x) + u with u = 0.7 > u_c ~ 0.533: the negative branch has vanished and
    # leaves a slow point (a local minimum of q with q > 0) near x = -0.88.
    dyn = RateDynamics([[2.0]], [[1.0]], [0.0], 0.1, "tanh")
    starts = np.linspace(-3, 3, 40)[:, None]
    fixed = find_fixed_points(dyn, starts, [0.7])
    assert len(fixed) == 1 and fixed.xstar[0, 0] > 0
    np.testing.assert_allclose(fixed.xstar[0, 0], _x_root(2.0, 0.7, 0.5, 5.0), atol=1e-10)
    slow = find_fixed_points(dyn, starts, [0.7], max_q=None, tol_unique=1e-3)
    assert len(slow) == 2 and slow.q.max() > 1e-6


def test_continuation_linear_and_saddle_node():
    rng = np.random.default_rng(11)
    W, W_in, b = _rand_net(rng, 6, 2, 0.7)
    dyn = RateDynamics(W, W_in, b, 0.2, "linear")
    path = np.linspace([0.0, 0.0], [1.0, -2.0], 15)
    start = np.linalg.solve(np.eye(6) - W, b)[None]
    res = continue_fixed_points(dyn, start, path)
    assert isinstance(res, FixedPointPath) and res.found.all()
    expect = np.linalg.solve(np.eye(6) - W, (path @ W_in.T + b).T).T
    np.testing.assert_allclose(res.xstar[:, 0], expect, atol=1e-9)

    # 1 unit x = 2 tanh(x) + u: the stable negative branch ends in a saddle-node at
    # x_c = -arccosh(sqrt 2), u_c = x_c - 2 tanh(x_c) ~ 0.5328.
    w = 2.0
    x_c = -np.arccosh(np.sqrt(w))
    u_c = x_c - w * np.tanh(x_c)
    dyn1 = RateDynamics([[w]], [[1.0]], [0.0], 0.1, "tanh")
    us = np.linspace(0, 1.0, 41)[:, None]
    start = find_fixed_points(dyn1, [[-2.0]], [0.0])
    res = continue_fixed_points(dyn1, start, us, max_jump=0.5)
    found = res.found[:, 0]
    assert found[us[:, 0] < u_c - 0.03].all() and not found[us[:, 0] > u_c + 0.03].any()
    for k in np.flatnonzero(found):
        np.testing.assert_allclose(res.xstar[k, 0, 0], _x_root(w, us[k, 0], -5.0, x_c), atol=1e-9)
    assert res.stable[found, 0].all()


class _FakeModel:
    """Duck-typed model: get_weights(), alpha, activation (as minirnn.Basic exposes)."""

    def __init__(self, W, W_in, b, alpha):
        self._w = dict(W_rec=W, W_in=W_in, b_rec=b, W_out=np.ones((1, W.shape[0])), b_out=np.zeros(1))
        self.alpha = np.full((1, W.shape[0]), alpha)
        from minirnn.nn.activations import get_activation

        self.activation = get_activation("tanh")

    def get_weights(self):
        return dict(self._w)


def test_model_convenience_matches_arrays():
    rng = np.random.default_rng(12)
    W, W_in, b = _rand_net(rng, 5, 2, 1.3)
    model = _FakeModel(W, W_in, b, 0.1)
    starts = rng.normal(size=(50, 5))
    a = find_fixed_points(model, starts)
    c = find_fixed_points(RateDynamics(W, W_in, b, 0.1, "tanh"), starts)
    np.testing.assert_allclose(a.xstar, c.xstar)
    assert isinstance(dynamics_from_model(model), RateDynamics)
    weights = dict(model.get_weights(), alpha=0.1, transfer_function="tanh")
    assert isinstance(dynamics_from_model(weights), RateDynamics)


def test_lstm_hook_and_errors():
    class LSTM:
        alpha = 0.1
        activation = "tanh"

        def get_weights(self):
            return {"W_f": np.zeros((2, 3))}

    with pytest.raises(NotImplementedError, match="Dynamics subclass"):
        dynamics_from_model(LSTM())
    from minirnn import PsychRNNLSTM

    with pytest.raises(NotImplementedError, match="PsychRNNLSTM"):
        dynamics_from_model(PsychRNNLSTM(dict(N_in=1, N_rec=3, N_out=1, dt=10, tau=100, backend="numpy")))
    with pytest.raises(ShapeError, match="ensemble"):
        RateDynamics(np.zeros((2, 3, 3)), np.zeros((3, 1)), np.zeros(3), 0.1, "tanh")
    dyn = RateDynamics(np.eye(3), np.zeros((3, 1)), np.zeros(3), 0.1, "tanh")
    with pytest.raises(ShapeError, match="last axis"):
        find_fixed_points(dyn, np.zeros((4, 2)))
    with pytest.raises(ShapeError, match="N_in"):
        find_fixed_points(dyn, np.zeros((4, 3)), inputs=[0.0, 1.0])


def test_sample_states_is_seeded():
    traj = np.random.default_rng(13).normal(size=(4, 10, 3))
    a = sample_states(traj, 20, noise_scale=0.1, seed=1)
    b = sample_states(traj, 20, noise_scale=0.1, seed=1)
    np.testing.assert_array_equal(a, b)
    assert a.shape == (20, 3)
    exact = sample_states(traj, 20, seed=2)
    flat = traj.reshape(-1, 3)
    assert all(np.any(np.all(flat == row, axis=1)) for row in exact)


def test_psychometric_from_batch_signed_coherence():
    rng = np.random.default_rng(14)
    B = 4000
    coh = rng.choice([0.05, 0.1, 0.2, 0.4], B)
    direction = rng.integers(0, 2, B)
    tp = {"coherence": coh, "direction": direction}
    x = signed_coherence(tp)
    np.testing.assert_allclose(np.abs(x), coh)
    assert np.all((x > 0) == (direction == 1))
    # outputs: channel 1 high when the simulated observer chooses 1
    chose1 = rng.random(B) < psychometric_function(x, 0.0, 0.08, 0.02, 0.02)
    z = np.zeros((B, 5, 2))
    z[np.arange(B), :, chose1.astype(int)] = 1.0
    fit = psychometric_from_batch(z, np.ones((B, 5, 2)), tp, ci=None)
    assert abs(fit.params["mu"]) < 0.02 and abs(fit.params["sigma"] - 0.08) < 0.02
    assert signed_coherence([{"coherence": 0.1, "direction": 0}], positive=1)[0] == -0.1


@pytest.mark.slow
def test_flip_flop_trained_network_has_8_stable_fixed_points():
    """The classic check (Sussillo & Barak 2013): a 16-unit tanh RNN trained on the 3-bit flip-flop
    has exactly 8 stable fixed points, one per corner of the output cube, plus saddles between them."""
    import itertools

    try:
        from minirnn import Basic
        from minirnn.tasks.flip_flop import FlipFlop
    except ImportError as e:  # pragma: no cover - the model or task is missing
        pytest.skip(f"needs minirnn.Basic and FlipFlop: {e}")
    threadpoolctl = pytest.importorskip("threadpoolctl")
    with threadpoolctl.threadpool_limits(1):  # small matmuls: threads only add overhead
        task = FlipFlop(dt=10, tau=50, T=500, N_batch=128, N_bits=3, p_flip=0.05, seed=0)
        params = task.get_task_params()
        params.update(N_rec=16, transfer_function="tanh", seed=0, rec_noise=0.0)
        model = Basic(params)
        model.train(task, {"training_iters": 128 * 1000, "learning_rate": 1e-2, "verbosity": False})
        x, y, mask, _ = task.get_trial_batch()
        z, states = model.test(x)
        assert np.mean((np.sign(z) == np.sign(y))[mask > 0]) > 0.95
        fps = find_fixed_points(model, states, n_inits=1024, noise_scale=0.5, seed=0, tol_unique=1e-3)
    stable = fps[fps.stable]
    assert len(stable) == 8, f"{len(stable)} stable fixed points: {fps!r}"
    w = model.get_weights()
    readout = np.tanh(stable.xstar) @ np.asarray(w["W_out"], float).T + np.asarray(w["b_out"], float)
    assert set(map(tuple, np.sign(readout).astype(int))) == set(itertools.product([-1, 1], repeat=3))
    assert len(fps) > 8 and np.all(fps.n_unstable[~fps.stable] >= 1)  # saddles as well
    assert fps.q.max() < 1e-20


# ============================================================================ audit fixes: PCA and fixed points


def test_pca_refuses_nan_ensembles_and_more_components_than_fitted():
    from minirnn.errors import NonFiniteError

    rng = np.random.default_rng(40)
    X = rng.normal(size=(5, 20, 6))
    bad = X.copy()
    bad[2, 3, 1] = np.nan
    with pytest.raises(NonFiniteError, match="NaN"):
        pca(bad)
    with pytest.raises(ShapeError, match="ensemble"):
        pca(rng.normal(size=(3, 5, 20, 6)))  # (K, B, T, N): unit i of network 0 is not unit i of network 1
    p3 = pca(X, 3)
    assert p3.transform(X).shape == (5, 20, 3) and p3.transform(X, 2).shape == (5, 20, 2)
    for k in (5, 0):
        with pytest.raises(ParameterError, match="n_components"):
            p3.transform(X, k)
    with pytest.raises(ParameterError, match="fitted"):
        project(X, p3, 4)
    with pytest.raises(ParameterError, match="3 component"):
        p3.inverse_transform(np.zeros((2, 4)))


def test_find_fixed_points_checks_inputs_and_initial_states_first():
    from minirnn.errors import NonFiniteError

    dyn = RateDynamics(np.eye(3), np.zeros((3, 2)), np.zeros(3), 0.1, "tanh")
    starts = np.random.default_rng(41).normal(size=(10, 3))
    with pytest.raises(ShapeError, match="M=4"):
        find_fixed_points(dyn, starts, inputs=np.zeros((5, 2)), n_inits=4)
    with pytest.raises(ShapeError, match="M=10"):
        find_fixed_points(dyn, starts, inputs=np.zeros((5, 2)))
    assert len(find_fixed_points(dyn, starts, inputs=np.zeros((4, 2)), n_inits=4, seed=0)) >= 1
    bad = starts.copy()
    bad[3, 1] = np.nan
    with pytest.raises(NonFiniteError, match="initial_states"):
        find_fixed_points(dyn, bad)
    with pytest.raises(ParameterError, match="n_inits"):
        find_fixed_points(dyn, starts, n_inits=0)


def test_fixed_points_refuse_an_lstm_weights_dict():
    from minirnn import LSTM

    lstm = LSTM(dict(N_in=2, N_rec=4, N_out=2, dt=10, tau=100, dtype="float64", seed=0, backend="numpy"))
    w = dict(lstm.get_weights(), alpha=0.1, transfer_function="relu")  # W_rec, W_in: zero placeholders
    with pytest.raises(ParameterError, match="lstm weights"):
        find_fixed_points(w, np.zeros((5, 4)))
    with pytest.raises(ParameterError, match="lstm weights"):
        continue_fixed_points(w, np.zeros((1, 4)), np.zeros((3, 2)))
    with pytest.raises(ParameterError, match="lstm weights"):
        dynamics_from_model(w)
