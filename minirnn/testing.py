"""Gradient checks anyone can run on a minirnn model, including their own subclasses (STYLE.md P7).

Two checks, as ``autograd.test_util`` offers them:

* :func:`gradcheck` — every entry (or a random sample of ``max_entries``) of every raw parameter,
  by central differences in float64::

      g_fd[i] = (L(theta + h e_i) - L(theta - h e_i)) / 2h
      error   = ||g - g_fd|| / max(||g||, ||g_fd||, 1e-12)        (per parameter)

  An entry whose ``+h`` and ``-h`` evaluations land on different sides of a kink — the sign
  pattern of a pre-activation changes under a non-smooth transfer function (ReLU), the sign of a
  raw ``W ⊙ M`` changes under Dale's ``|.|`` (or an L1 penalty), or an output crosses the BCE clip
  at ``eps`` / ``1 - eps`` — is re-run with ``h / 10``, ``h / 100``, ... and, when no step size
  keeps both evaluations on one side, reported in ``result.kinks`` and left out of the error
  (never silently passed: :meth:`GradcheckResult.report` lists it).

* :func:`check_grads_random_direction` — one random direction ``v`` for all parameters at once
  (autograd's ``check_vjp``): ``sum <g, v>`` against ``(L(theta + eps v) - L(theta - eps v)) / 2 eps``.
  Two forward passes whatever the size, so it scales to large networks.

Both need a float64 model (``params["dtype"] = "float64"``), an object with ``raw`` (dict of
parameter arrays) and ``loss_and_grads(x, y, mask) -> (float, {name: grad})``; a model that also
has minirnn's ``_run`` / ``activation`` / ``masks`` / ``signs`` / ``loss_function`` gets the kink
detection. The loss is evaluated with noise off.

Example: check your own modification
------------------------------------
>>> import numpy as np
>>> from minirnn import Basic, gradcheck
>>> params = dict(N_in=2, N_rec=5, N_out=2, dt=10, tau=100, dtype="float64", seed=0,
...               transfer_function="tanh", dale_ratio=0.8)
>>> model = Basic(params)
>>> rng = np.random.default_rng(0)
>>> x, y = rng.normal(size=(3, 7, 2)), rng.normal(size=(3, 7, 2))
>>> errors = gradcheck(model, x, y, np.ones((3, 7, 2)))
>>> max(errors.values()) < 1e-6
True

``check_grads(model, x, y, mask, tol=1e-6)`` does the same and raises :class:`GradientCheckError`
with the analytic and numeric values side by side when a parameter fails. A user-defined model
(:mod:`minirnn.models.examples` has PsychRNN's "NewModel" with an extra input layer), a custom
loss ``loss(z, y, mask) -> (value, dz)`` and a custom regularizer
``reg(weights_eff, rates) -> (value, {name: grad})`` are all checked the same way.
"""
from __future__ import annotations

import numpy as np

from .errors import MinirnnError, ParameterError

__all__ = ["gradcheck", "check_grads", "check_grads_random_direction", "GradcheckResult",
           "GradientCheckError"]

#: transfer functions without kinks: a sign change of their pre-activation is harmless
SMOOTH_ACTIVATIONS = ("tanh", "sigmoid", "softplus", "linear")
#: how many times h is divided by 10 before an entry is declared a kink
KINK_RETRIES = 3


class GradientCheckError(MinirnnError, AssertionError):
    """Analytic and finite-difference gradients disagree beyond the tolerance."""


class GradcheckResult(dict):
    """``{name: worst relative error}`` with the details a failure message needs.

    Attributes
    ----------
    entries : dict name -> list of ``(index, analytic, numeric, h)`` for every checked entry.
    kinks : list of ``(name, index, analytic, numeric)``: entries left out because every step size
        tried put ``+h`` and ``-h`` on different sides of a kink.
    """

    def __init__(self, errors, entries, kinks):
        super().__init__(errors)
        self.entries = entries
        self.kinks = kinks

    def report(self, tol=None, n_worst=8) -> str:
        """A table: parameter, index, analytic, numeric, |difference| (worst entries first)."""
        lines = []
        for name, err in self.items():
            flag = "" if tol is None or err <= tol else f"  > tol {tol:g}  FAILED"
            lines.append(f"{name}: relative error {err:.3e}{flag}")
            rows = sorted(self.entries[name], key=lambda e: -abs(e[1] - e[2]))[:n_worst]
            if tol is not None and err <= tol:
                continue
            lines.append(f"    {'index':<14}{'analytic':>16}{'numeric':>16}{'|a - n|':>12}{'h':>9}")
            for index, a, n, h in rows:
                lines.append(f"    {str(index):<14}{a:>16.9e}{n:>16.9e}{abs(a - n):>12.3e}{h:>9.0e}")
        if self.kinks:
            lines.append(f"{len(self.kinks)} entries sit on a kink (left out of the errors above):")
            for name, index, a, n in self.kinks:
                lines.append(f"    {name}{list(index)}: analytic {a:.9e}, one-sided mean {n:.9e}")
        return "\n".join(lines)


# ---- helpers ---------------------------------------------------------------------------------------
def _require_float64(model):
    dtype = getattr(model, "dtype", None)
    for name, a in model.raw.items():
        dtype = a.dtype if dtype is None else dtype
    if np.dtype(dtype) != np.float64:
        raise ParameterError(
            f"gradcheck needs a float64 model: central differences in {np.dtype(dtype)} lose most digits "
            f"(this {type(model).__name__} has dtype {np.dtype(dtype)}). Build it with "
            "params['dtype'] = 'float64'.")


def _prepare(model, x, y, mask):
    """Validate and cast the batch once; return a loss evaluator ``loss() -> float``."""
    if hasattr(model, "_check_batch") and hasattr(model, "_loss_and_grads"):
        xb, yb, mb = model._check_batch(x, y, mask)

        def loss_and_grads():
            value, grads = model._loss_and_grads(xb, yb, mb, noise_rng=None)
            host = model.backend.to_host
            return float(np.sum(host(value))), {k: np.asarray(host(g)) for k, g in grads.items()}

        return xb, loss_and_grads
    return x, lambda: model.loss_and_grads(x, y, mask)


def _kink_features(model, xb):
    """Arrays whose sign pattern must be the same at ``theta + h`` and ``theta - h``.

    A model may define ``_kink_features(x) -> list of arrays`` itself; otherwise: the pre-activation
    states (and the initial state) under a non-smooth transfer function, ``raw ⊙ mask`` of every
    constrained weight (Dale's ``|.|``, L1's ``|.|``), and the BCE clip region of the outputs.
    """
    if hasattr(model, "_kink_features"):
        return [np.asarray(a) for a in model._kink_features(xb)]
    host = getattr(getattr(model, "backend", None), "to_host", np.asarray)
    features = []
    activation = getattr(model, "activation", None)
    nonsmooth = activation is not None and getattr(activation, "name", None) not in SMOOTH_ACTIVATIONS
    loss = getattr(model, "loss_function", None)
    is_bce = getattr(loss, "__name__", "") == "binary_cross_entropy"
    if (nonsmooth or is_bce) and hasattr(model, "_run"):
        z, states = model._run(xb, noise_rng=None)
        if nonsmooth:
            features.append(np.sign(host(states)))
            if "init_state" in model.raw:
                features.append(np.sign(host(model.raw["init_state"])))
        if is_bce:
            from .nn.losses import BCE_EPSILON

            z = host(z)
            features.append(np.sign(z - BCE_EPSILON))
            features.append(np.sign(z - (1 - BCE_EPSILON)))
    masks = getattr(model, "masks", {}) or {}
    signs = getattr(model, "signs", None)
    coefs = getattr(model, "reg_coefs", None)
    for name in getattr(model, "constrained", ()):
        if name not in model.raw or name not in masks:
            continue
        dale = signs is None or signs.get(name) is not None  # |W ⊙ M| under Dale (unknown: assume)
        l1 = coefs is None or f"L1_{name.split('_', 1)[-1]}" in coefs  # |W_eff| of an L1 penalty
        if dale or l1:
            features.append(np.sign(host(model.raw[name] * masks[name])))
    return features


def _same_side(fa, fb):
    return all(np.array_equal(a, b) for a, b in zip(fa, fb))


def _rel_error(g, n):
    g, n = np.ravel(g), np.ravel(n)
    return float(np.linalg.norm(g - n) / max(np.linalg.norm(g), np.linalg.norm(n), 1e-12))


# ---- per-entry central differences -----------------------------------------------------------------
def gradcheck(model, x, y, mask, h=1e-6, params=None, max_entries=None, seed=0, tol=None):
    """Check ``model.loss_and_grads`` against central differences, entry by entry.

    Parameters
    ----------
    model : a float64 minirnn model (``Basic``, ``LSTM`` or a subclass) — anything with ``raw`` and
        ``loss_and_grads(x, y, mask)``.
    x : (B, T, N_in) inputs.  y, mask : (B, T, N_out) targets and loss mask.
    h : float, the finite-difference step (``1e-6`` suits float64).
    params : list of str, optional — the parameters to check (default every one with a gradient).
    max_entries : int, optional — check at most this many entries per parameter, drawn at random
        (``seed``); default all of them.
    seed : int, for that draw.
    tol : float, optional — raise :class:`GradientCheckError` when a parameter's error exceeds it.

    Returns
    -------
    GradcheckResult
        ``{name: ||g - g_fd|| / max(||g||, ||g_fd||, 1e-12)}`` over the checked entries, with
        ``.entries``, ``.kinks`` and ``.report()``.
    """
    _require_float64(model)
    if not h > 0:
        raise ParameterError(f"The 'h' argument of gradcheck must be a positive float. Got {h!r} instead.")
    xb, loss_and_grads = _prepare(model, x, y, mask)
    _, grads = loss_and_grads()
    names = list(grads) if params is None else list(params)
    for name in names:
        if name not in grads:
            raise ParameterError(f"gradcheck: {name!r} has no gradient in this model (trainable parameters: "
                                 f"{list(grads)}).")
    rng = np.random.default_rng(seed)

    def loss():
        return loss_and_grads()[0]

    errors, entries, kinks = {}, {}, []
    for name in names:
        theta = model.raw[name]
        g = np.asarray(grads[name], dtype=np.float64)
        flat = list(np.ndindex(*theta.shape))
        if max_entries is not None and max_entries < len(flat):
            flat = [flat[i] for i in np.sort(rng.choice(len(flat), int(max_entries), replace=False))]
        checked_a, checked_n, rows = [], [], []
        for index in flat:
            original = float(theta[index])
            step, numeric, kink = h, None, True
            try:
                for _ in range(KINK_RETRIES + 1):
                    theta[index] = original + step
                    l_plus, f_plus = loss(), _kink_features(model, xb)
                    theta[index] = original - step
                    l_minus, f_minus = loss(), _kink_features(model, xb)
                    numeric = (l_plus - l_minus) / (2 * step)  # central difference
                    if _same_side(f_plus, f_minus):
                        kink = False
                        break
                    step /= 10
            finally:
                theta[index] = original  # bit for bit as before
            a = float(g[index])
            if kink:
                kinks.append((name, index, a, float(numeric)))
                continue
            checked_a.append(a)
            checked_n.append(float(numeric))
            rows.append((index, a, float(numeric), step))
        errors[name] = _rel_error(checked_a, checked_n) if rows else 0.0
        entries[name] = rows
    result = GradcheckResult(errors, entries, kinks)
    if tol is not None and any(err > tol for err in errors.values()):
        raise GradientCheckError(f"gradient check failed for {type(model).__name__} (tol {tol:g}):\n"
                                 + result.report(tol))
    return result


def check_grads(model, x, y, mask, tol=1e-6, **kwargs):
    """:func:`gradcheck` that raises :class:`GradientCheckError` above ``tol`` (the default 1e-6)."""
    return gradcheck(model, x, y, mask, tol=tol, **kwargs)


# ---- one random direction ------------------------------------------------------------------------
def check_grads_random_direction(model, x, y, mask, eps=1e-6, seed=0, params=None, tol=None):
    """Compare the directional derivative ``sum_p <g_p, v_p>`` with central differences along ``v``.

    Parameters
    ----------
    model, x, y, mask : as :func:`gradcheck` (float64 model).
    eps : float, the step along ``v``.
    seed : int, for the direction ``v``: standard normal over every entry of every parameter, scaled
        to unit length (so ``eps`` is the length of the step, whatever the number of parameters).
    params : list of str, optional — the parameters to move (default every one with a gradient).
    tol : float, optional — raise :class:`GradientCheckError` when the relative error exceeds it.

    Returns
    -------
    (analytic, numeric, rel_error) : floats; ``rel_error = |a - n| / max(|a|, |n|, 1e-12)``.
    """
    _require_float64(model)
    xb, loss_and_grads = _prepare(model, x, y, mask)
    _, grads = loss_and_grads()
    names = list(grads) if params is None else list(params)
    rng = np.random.default_rng(seed)
    xp = getattr(model, "xp", np)
    originals = {name: model.raw[name].copy() for name in names}
    v = {name: rng.standard_normal(np.shape(originals[name])) for name in names}
    norm = np.sqrt(sum(float(np.sum(d * d)) for d in v.values()))
    v = {name: d / norm for name, d in v.items()}  # unit length: eps is the step length
    analytic = float(sum(np.sum(np.asarray(grads[name]) * v[name]) for name in names))
    try:
        for name in names:
            model.raw[name] = originals[name] + eps * xp.asarray(v[name])
        l_plus = loss_and_grads()[0]
        for name in names:
            model.raw[name] = originals[name] - eps * xp.asarray(v[name])
        l_minus = loss_and_grads()[0]
    finally:
        for name in names:
            model.raw[name] = originals[name]
    numeric = (l_plus - l_minus) / (2 * eps)
    rel = abs(analytic - numeric) / max(abs(analytic), abs(numeric), 1e-12)
    if tol is not None and rel > tol:
        raise GradientCheckError(f"random-direction gradient check failed for {type(model).__name__}: "
                                 f"analytic <g, v> = {analytic:.12e}, numeric = {numeric:.12e}, "
                                 f"relative error {rel:.3e} > tol {tol:g} (eps={eps:g}, seed={seed}, "
                                 f"parameters {names}).")
    return analytic, numeric, rel
