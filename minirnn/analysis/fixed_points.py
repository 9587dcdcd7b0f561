"""Fixed and slow points of a trained RNN's one-step map, their stability, and continuation in the input.

For the rate RNN (DESIGN §3, noise off) the one-step Euler map at a constant input ``u`` is

    F(x, u) = (1 - alpha) x + alpha (f(x) @ W_rec^T + u @ W_in^T + b_rec)

and a fixed point ``x*`` solves ``F(x*, u) = x*``. Following Sussillo & Barak (2013) and Golub &
Sussillo's FixedPointFinder, we minimise the speed

    q(x) = 1/2 ||F(x, u) - x||^2

from many initial states (sampled from the network's own trajectories, plus noise), batched over
the initial states:

1. L-BFGS (scipy) on the sum of q over the batch, with the analytic gradient
   ``dq/dx = (F - x) @ (J - I)`` (row vectors), which for the rate RNN is
   ``a @ W_rec * f'(x) - a`` with ``a = alpha (F - x)``;
2. polishing with the Jacobian of the map,

       J(x) = dF/dx = (1 - alpha) I + alpha W_rec diag(f'(x))      (N_rec, N_rec),

   by damped Newton steps on ``F(x) - x = 0`` (Levenberg-Marquardt when Newton does not lower q),
   which drives true fixed points to machine precision and leaves slow points at their q minimum;
3. de-duplication (points closer than ``tol_unique``), and stability from the eigenvalues of J:
   the discrete map is stable when every ``|lambda| < 1``. The continuous-time eigenvalues
   ``(lambda - 1) / dt`` (those of ``tau^-1 (-I + W_rec diag f')`` when alpha is a scalar) are
   reported too.

Continuation (:func:`continue_fixed_points`) tracks fixed points while a constant input moves along
a path: a tangent predictor ``dx*/du = -(J - I)^-1 dF/du`` followed by the same Newton corrector.

Everything is NumPy over the trained weights (float64). Shapes: initial states ``(M, N)``, inputs
``(N_in,)`` or ``(M, N_in)``, Jacobians ``(M, N, N)``.

The map is an object with ``step``, ``jacobian`` and ``input_jacobian`` (:class:`Dynamics`), so a
model with another state (the LSTM: ``(h, c)`` concatenated) plugs in by writing its own subclass;
:func:`dynamics_from_model` is the single place that chooses it.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field

import numpy as np
from scipy import optimize
from scipy.spatial import cKDTree

from .._params import _numbers, is_int
from ..errors import NonFiniteError, ParameterError, ShapeError
from ..io import atomic_savez
from ..nn.activations import get_activation

FORMAT = "minirnn.FixedPoints/1"


# ============================================================================ the map and its Jacobian


class Dynamics:
    """A one-step map ``F(x, u)`` with Jacobians. Subclasses define ``step``, ``jacobian``,
    ``input_jacobian``; ``residual_and_grad`` has a generic version built on ``jacobian``."""

    n_state: int
    n_input: int

    def step(self, x, u):  # (M, N), (M, N_in) -> (M, N)
        raise NotImplementedError

    def jacobian(self, x, u):  # -> (M, N, N), J[m, i, j] = dF_i / dx_j
        raise NotImplementedError

    def input_jacobian(self, x, u):  # -> (M, N, N_in), dF_i / du_j
        raise NotImplementedError

    def residual_and_grad(self, x, u):
        """``g = F(x, u) - x`` (M, N) and ``dq/dx = g @ (J - I)`` (M, N) with ``q = 1/2 |g|^2``."""
        g = self.step(x, u) - x
        return g, np.einsum("mi,mij->mj", g, self.jacobian(x, u)) - g


class RateDynamics(Dynamics):
    """The rate RNN's Euler map ``F(x, u) = (1 - alpha) x + alpha (f(x) W_rec^T + u W_in^T + b_rec)``.

    Parameters
    ----------
    W_rec : (N, N) effective recurrent weights (post, pre)
    W_in : (N, N_in) effective input weights
    b_rec : (N,)
    alpha : scalar or (N,) / (1, N) array, ``dt / tau``
    activation : name, :class:`~minirnn.nn.activations.Activation` or ``(f, df)`` pair
    """

    def __init__(self, W_rec, W_in, b_rec, alpha, activation):
        self.W_rec = np.asarray(W_rec, dtype=np.float64)
        if self.W_rec.ndim != 2 or self.W_rec.shape[0] != self.W_rec.shape[1]:
            raise ShapeError(
                f"W_rec has shape {self.W_rec.shape}; fixed points need one network's square "
                f"(N_rec, N_rec) matrix (for an ensemble, pick network k first: W_rec[k])."
            )
        N = self.W_rec.shape[0]
        self.W_in = np.asarray(W_in, dtype=np.float64).reshape(N, -1)
        self.b_rec = np.broadcast_to(np.asarray(b_rec, dtype=np.float64).ravel(), (N,)).copy()
        alpha = np.asarray(alpha, dtype=np.float64).ravel()
        if alpha.size not in (1, N):
            raise ShapeError(f"alpha has {alpha.size} entries; it must be a scalar or have N_rec={N}.")
        self.alpha = np.broadcast_to(alpha, (N,)).copy()  # (N,)
        self.act = get_activation(activation)
        self.n_state, self.n_input = N, self.W_in.shape[1]

    def step(self, x, u):
        drive = self.act.f(x) @ self.W_rec.T + u @ self.W_in.T + self.b_rec  # (M, N)
        return (1 - self.alpha) * x + self.alpha * drive

    def jacobian(self, x, u):
        # J = (1 - alpha) I + alpha W_rec diag(f'(x)), one per row of x
        J = self.alpha[:, None] * self.W_rec * self.act.df(x)[:, None, :]  # (M, N, N)
        idx = np.arange(self.n_state)
        J[:, idx, idx] += 1 - self.alpha
        return J

    def input_jacobian(self, x, u):
        return np.broadcast_to(self.alpha[:, None] * self.W_in, (x.shape[0], *self.W_in.shape))

    def residual_and_grad(self, x, u):
        # g = F - x = alpha (-x + f(x) W^T + c);  dq/dx = g (J - I) = (a W_rec) * f'(x) - a,  a = alpha g
        g = self.step(x, u) - x
        a = self.alpha * g
        return g, (a @ self.W_rec) * self.act.df(x) - a


def dynamics_from_model(model) -> Dynamics:
    """Build the map of a trained model (duck-typed: ``get_weights()``, ``alpha``, ``activation``).

    A dict of weights (as ``get_weights()`` returns) is accepted too, with ``alpha`` and
    ``transfer_function`` among its keys. An LSTM's dict (gate keys ``W_f ... W_o``, an
    ``lstm_variant`` or LSTM metadata) is refused: its ``W_rec``/``W_in`` are all-zero placeholders.
    """
    if isinstance(model, Dynamics):
        return model
    if isinstance(model, dict):
        from ..io import lstm_weights_evidence

        w = model
        why = lstm_weights_evidence(w)
        if why:
            raise ParameterError(
                f"This weights dict holds lstm weights ({why}); its W_in, W_rec, b_rec and init_state are "
                "PsychRNN's all-zero placeholders, so the rate map built from them would be meaningless. Fixed "
                "points are implemented for the rate RNN only (write a Dynamics subclass for the LSTM's (h, c)).")
        alpha = w.get("alpha")
        act = w.get("activation", w.get("transfer_function"))
        if alpha is None or act is None:
            raise ParameterError(
                "A weights dict needs 'alpha' and 'transfer_function' (or 'activation') keys to "
                "define the map; or build RateDynamics(W_rec, W_in, b_rec, alpha, activation)."
            )
    else:
        if not hasattr(model, "get_weights"):
            raise ParameterError(
                f"Expected a model with get_weights(), a weights dict or a Dynamics; got {type(model).__name__}."
            )
        w = model.get_weights()
        # Hook for the LSTM: its state is (h, c); an LSTMDynamics subclass goes here.
        if "W_rec" not in w or getattr(model, "architecture", None) == "lstm":
            raise NotImplementedError(
                f"Fixed points of {type(model).__name__} are not implemented yet: only the rate RNN "
                f"(Basic) has a Dynamics. Write a Dynamics subclass with step/jacobian/input_jacobian."
            )
        alpha = model.alpha
        backend = getattr(model, "backend", None)
        if backend is not None:  # a GPU model's alpha lives on the device; the map is NumPy
            alpha = backend.to_host(alpha)
        act = model.activation
    return RateDynamics(w["W_rec"], w["W_in"], w["b_rec"], alpha, act)


# ============================================================================ the result


@dataclass
class FixedPoints:
    """Fixed (and slow) points found at given inputs.

    Attributes
    ----------
    xstar : (n, N)        the points (pre-activation states ``x``)
    inputs : (n, N_in)    the constant input of each point
    q : (n,)              speed ``1/2 |F(x*) - x*|^2`` at each point
    eigvals : (n, N)      eigenvalues of the map's Jacobian J (complex), sorted by decreasing |.|
    dt : float            time step used to express continuous-time eigenvalues (1 = per step)
    n_inits : int         how many initial states the search started from
    """

    xstar: np.ndarray
    inputs: np.ndarray
    q: np.ndarray
    eigvals: np.ndarray
    dt: float = 1.0
    n_inits: int = 0
    meta: dict = field(default_factory=dict, repr=False)

    def __len__(self):
        return self.xstar.shape[0]

    @property
    def stable(self):
        """(n,) bool: every eigenvalue of J inside the unit circle (discrete map)."""
        return np.all(np.abs(self.eigvals) < 1, axis=-1) if len(self) else np.zeros(0, bool)

    @property
    def eigvals_ct(self):
        """Continuous-time eigenvalues ``(lambda - 1) / dt`` (n, N): the flow's, when the Euler step is small
        (alpha = dt / tau well below 1). Real parts < 0 then mean stable. With a large alpha the simulated
        map can be unstable (an eigenvalue below -1) while these real parts are negative: the network as
        run is the map, so :attr:`stable` is the one to trust."""
        return (self.eigvals - 1) / self.dt

    @property
    def n_unstable(self):
        """(n,) number of unstable modes (|lambda| >= 1) at each point: 0 stable, 1 a 1-saddle, ..."""
        return np.sum(np.abs(self.eigvals) >= 1, axis=-1)

    def __getitem__(self, idx):
        idx = np.atleast_1d(np.arange(len(self))[idx])
        return FixedPoints(self.xstar[idx], self.inputs[idx], self.q[idx], self.eigvals[idx],
                           self.dt, self.n_inits, dict(self.meta))

    def __repr__(self):
        return (f"FixedPoints(n={len(self)}, N={self.xstar.shape[-1]}, stable={int(self.stable.sum())}, "
                f"max_q={float(self.q.max()) if len(self) else float('nan'):.2e})")

    def save(self, path):
        """Write to ``.npz`` (no pickle) atomically; ``FixedPoints.load(path)`` reads it back.

        Returns the path written (``.npz`` is appended when missing, as ``np.savez`` does). A crash
        or an exception mid-write leaves any previous file at ``path`` intact.
        """
        meta = json.dumps({"format": FORMAT, "dt": self.dt, "n_inits": self.n_inits, "meta": self.meta})
        return atomic_savez(path, dict(xstar=self.xstar, inputs=self.inputs, q=self.q, eigvals=self.eigvals,
                                       minirnn=np.array(meta)))

    @classmethod
    def load(cls, path):
        with np.load(path, allow_pickle=False) as f:
            meta = json.loads(str(f["minirnn"]))
            if meta.get("format") != FORMAT:
                raise ParameterError(f"{path} is not a minirnn FixedPoints file (format {meta.get('format')!r}).")
            return cls(f["xstar"], f["inputs"], f["q"], f["eigvals"], meta["dt"], meta["n_inits"], meta["meta"])


# ============================================================================ sampling initial states


def sample_states(states, n_inits, *, noise_scale=0.0, seed=None):
    """Draw ``n_inits`` states from trajectories ``(B, T, N)`` (or a set ``(M, N)``), plus Gaussian noise.

    ``seed`` is an int, a ``numpy.random.Generator`` or None.
    """
    rng = np.random.default_rng(seed)
    S = np.asarray(states, dtype=np.float64)
    S = S.reshape(-1, S.shape[-1])  # (B*T, N)
    idx = rng.integers(0, S.shape[0], size=int(n_inits))
    return S[idx] + noise_scale * rng.standard_normal((int(n_inits), S.shape[1]))


# ============================================================================ the search


def find_fixed_points(
    model,
    initial_states,
    inputs=None,
    *,
    n_inits=None,
    noise_scale=0.0,
    seed=None,
    tol_q=1e-20,
    max_q=1e-12,
    tol_unique=1e-6,
    lbfgs_iters=100,
    newton_iters=50,
    dt=1.0,
    chunk=None,
):
    """Find fixed points of ``F(x, u)`` at a constant input by minimising ``q`` from many starts.

    Parameters
    ----------
    model : a model (``get_weights``/``alpha``/``activation``), a weights dict, or a :class:`Dynamics`
    initial_states : array (B, T, N) trajectories or (M, N) states
        With ``n_inits``, that many states are sampled from them (seeded); otherwise every row is used.
    inputs : array (N_in,) or (M, N_in), optional
        Constant input (default zero input).
    n_inits : int, optional
    noise_scale : float
        Std of Gaussian noise added to sampled states (explores beyond the trajectories).
    seed : int or Generator
    tol_q : float
        Newton polishing stops once a point's q is below this.
    max_q : float or None
        Keep only points with ``q <= max_q``; ``None`` keeps slow points too.
    tol_unique : float
        Two points closer than ``tol_unique * max(1, |x|)`` (Euclidean) are one.
    lbfgs_iters, newton_iters : int
        Iteration budgets of the two stages (0 skips a stage).
    dt : float
        Time step for ``eigvals_ct`` (default 1: per step).
    chunk : int, optional
        Points per batched Jacobian solve (memory ``chunk * N^2`` floats); default chooses ~64 MB.

    Returns
    -------
    FixedPoints
        Unique points sorted by ascending q.

    Notes
    -----
    ``q(x) = 1/2 |F(x, u) - x|^2``; its gradient is ``(F - x)(J - I)`` and the Newton step solves
    ``(J - I) dx = -(F - x)``. A step is accepted only when q decreases; otherwise the point takes a
    Levenberg-Marquardt step ``((J-I)^T (J-I) + mu I) dx = -(J-I)^T (F-x)`` with mu adapted per point.
    """
    dyn = dynamics_from_model(model)
    X0 = np.asarray(initial_states, dtype=np.float64)
    if X0.ndim == 0 or X0.shape[-1] != dyn.n_state:
        raise ShapeError(f"initial_states has shape {X0.shape}; its last axis must be N={dyn.n_state}.")
    if X0.size == 0:
        raise ShapeError(f"initial_states has shape {X0.shape}: no state to start from.")
    if not np.all(np.isfinite(X0)):
        raise NonFiniteError(f"initial_states holds {int(np.sum(~np.isfinite(X0)))} NaN or inf value(s); a search "
                             "started there would be dropped silently. Pass finite states (e.g. drop the trials "
                             "that diverged).")
    if _numbers(dt, "The 'dt' parameter of find_fixed_points", " > 0", scalar=True) <= 0:
        raise ParameterError(f"The 'dt' parameter of find_fixed_points (the time step of eigvals_ct) must be > 0. "
                             f"Got {dt!r} instead.")
    if n_inits is not None and not is_int(n_inits, 1):
        raise ParameterError(f"The 'n_inits' parameter of find_fixed_points must be a positive int or None (every "
                             f"state given). Got {n_inits!r} instead.")
    M = int(n_inits) if n_inits is not None else X0.size // dyn.n_state
    U = _inputs(inputs, M, dyn.n_input)  # checked before the search starts
    if n_inits is not None:
        X0 = sample_states(X0, n_inits, noise_scale=noise_scale, seed=seed)
    else:
        X0 = X0.reshape(-1, dyn.n_state)
        if noise_scale:
            X0 = X0 + noise_scale * np.random.default_rng(seed).standard_normal(X0.shape)

    X = _lbfgs(dyn, X0, U, lbfgs_iters) if lbfgs_iters else X0.copy()
    X, q = _newton(dyn, X, U, newton_iters, tol_q, chunk)

    keep = np.isfinite(q) if max_q is None else np.isfinite(q) & (q <= max_q)
    X, U, q = X[keep], U[keep], q[keep]
    idx = unique_points(X, q, tol_unique)
    X, U, q = X[idx], U[idx], q[idx]
    return FixedPoints(X, U, q, _eigvals(dyn, X, U, chunk), float(dt), M)


def unique_points(X, q=None, tol=1e-6):
    """Indices of representative rows of ``X`` (M, N): greedy, lowest ``q`` first; a row within
    ``tol * max(1, |x_kept|)`` of an already kept row is a duplicate.

    Returns an int array (M_unique,) of row indices, in the order they were kept. Raises
    NonFiniteError if ``X`` holds NaN or inf.

    Notes
    -----
    Equivalent to testing each row, in order, against every kept row, but near-linear in M: when a
    row is kept, a KD-tree ball query finds the rows within its radius ``tol * max(1, |x_kept|)``
    and marks them duplicates, so later rows are never compared with all kept rows. The tree's
    own distances round differently, so it only proposes neighbours (from a slightly larger
    ball); the duplicate test itself is the exact ``|x_kept - x| <= radius`` of the greedy rule.
    """
    X = np.asarray(X, dtype=np.float64)
    if not np.all(np.isfinite(X)):
        raise NonFiniteError(f"unique_points: X holds {int(np.sum(~np.isfinite(X)))} NaN or inf value(s); "
                             "drop those rows first (a point at NaN or inf is not a fixed point).")
    order = np.argsort(q, kind="stable") if q is not None else np.arange(X.shape[0])
    radius = tol * np.maximum(1.0, np.linalg.norm(X, axis=1))  # (M,)
    tree = cKDTree(X)
    duplicate = np.zeros(X.shape[0], dtype=bool)
    kept = []
    for i in order:
        if duplicate[i]:
            continue
        kept.append(i)
        # every row within row i's ball is a duplicate; rows already decided are unaffected
        near = np.asarray(tree.query_ball_point(X[i], max(0.0, radius[i] * (1 + 1e-8))), dtype=int)
        d = np.linalg.norm(X[i] - X[near], axis=1)
        duplicate[near[d <= radius[i]]] = True
    return np.asarray(kept, dtype=int)


def _inputs(inputs, M, n_input):
    """The constant input of each of the ``M`` starts: ``(N_in,)`` shared, or ``(M, N_in)`` one per start."""
    if inputs is None:
        return np.zeros((M, n_input))
    u = np.asarray(inputs, dtype=np.float64)
    if u.ndim == 0 or u.shape[-1] != n_input or u.ndim > 2:
        raise ShapeError(f"inputs has shape {u.shape}; it must be (N_in,) or (M, N_in) with N_in={n_input}.")
    if u.ndim == 2 and u.shape[0] not in (1, M):
        raise ShapeError(f"inputs has shape {u.shape}: {u.shape[0]} rows, but the search starts from M={M} states "
                         "(n_inits, or the states given); give one input (N_in,) for all of them or one row per "
                         "start (M, N_in).")
    if not np.all(np.isfinite(u)):
        raise NonFiniteError(f"inputs holds NaN or inf values (shape {u.shape}).")
    return np.broadcast_to(u, (M, n_input)).copy()


def _lbfgs(dyn, X0, U, maxiter):
    """Stage 1: L-BFGS on sum_m q(x_m); q is separable, so the gradient is the stacked per-point one."""
    shape = X0.shape

    def fun(flat):
        g, dq = dyn.residual_and_grad(flat.reshape(shape), U)
        return 0.5 * float(np.sum(g * g)), dq.ravel()

    res = optimize.minimize(fun, X0.ravel(), jac=True, method="L-BFGS-B",
                            options={"maxiter": int(maxiter), "ftol": 0.0, "gtol": 1e-14})
    return res.x.reshape(shape)


def _chunks(M, N, chunk):
    if chunk is None:
        chunk = max(1, int(8e6 // max(1, N * N)))  # ~64 MB of float64 per Jacobian block
    return [slice(s, min(M, s + chunk)) for s in range(0, M, chunk)]


def _newton(dyn, X, U, iters, tol_q, chunk):
    """Stage 2: per-point damped Newton / Levenberg-Marquardt on g(x) = F(x) - x."""
    X = X.copy()
    N = dyn.n_state
    eye = np.eye(N)
    g = dyn.step(X, U) - X
    q = 0.5 * np.sum(g * g, axis=1)
    mu = np.full(X.shape[0], 1e-3)  # LM damping, per point
    for _ in range(int(iters)):
        active = np.flatnonzero(q > tol_q)
        if active.size == 0:
            break
        for sl in _chunks(active.size, N, chunk):
            a = active[sl]
            x, u, ga = X[a], U[a], g[a]
            A = dyn.jacobian(x, u) - eye  # (m, N, N) = dg/dx
            # Newton: A dx = -g
            try:
                dx = np.linalg.solve(A, -ga[..., None])[..., 0]
            except np.linalg.LinAlgError:
                dx = np.full_like(x, np.nan)
            x_new, g_new, q_new = _trial(dyn, x + dx, u)
            bad = ~(q_new < q[a])
            if np.any(bad):  # Levenberg-Marquardt for the points Newton did not improve
                b = np.flatnonzero(bad)
                At = np.swapaxes(A[b], -1, -2)
                H = At @ A[b] + mu[a[b], None, None] * eye  # (mb, N, N)
                dxl = np.linalg.solve(H, -(At @ ga[b][..., None]))[..., 0]
                xl, gl, ql = _trial(dyn, x[b] + dxl, u[b])
                better = ql < q[a[b]]
                mu[a[b]] = np.where(better, mu[a[b]] / 3, mu[a[b]] * 5)
                x_new[b] = np.where(better[:, None], xl, x[b])
                g_new[b] = np.where(better[:, None], gl, ga[b])
                q_new[b] = np.where(better, ql, q[a[b]])
            X[a], g[a], q[a] = x_new, g_new, q_new
        if np.all(mu[active] > 1e12):
            break  # stuck at slow points
    return X, q


def _trial(dyn, x, u):
    with np.errstate(all="ignore"):
        g = dyn.step(x, u) - x
        q = 0.5 * np.sum(g * g, axis=1)
    q = np.where(np.isfinite(q), q, np.inf)
    return x, g, q


def _eigvals(dyn, X, U, chunk=None):
    N = dyn.n_state
    out = np.empty((X.shape[0], N), dtype=np.complex128)
    for sl in _chunks(X.shape[0], N, chunk):
        ev = np.linalg.eigvals(dyn.jacobian(X[sl], U[sl]))
        order = np.argsort(-np.abs(ev), axis=1, kind="stable")
        out[sl] = np.take_along_axis(ev, order, axis=1)
    return out


# ============================================================================ continuation


@dataclass
class FixedPointPath:
    """Fixed points tracked along a path of constant inputs.

    xstar : (S, n, N)  branch j at input step s; NaN once the branch is lost (e.g. a saddle-node)
    inputs : (S, N_in)
    q : (S, n)
    eigvals : (S, n, N)
    """

    xstar: np.ndarray
    inputs: np.ndarray
    q: np.ndarray
    eigvals: np.ndarray
    dt: float = 1.0

    @property
    def found(self):
        """(S, n) bool: branch j exists at step s."""
        return np.all(np.isfinite(self.xstar), axis=-1)

    @property
    def stable(self):
        """(S, n) bool (False where the branch is lost)."""
        return self.found & np.all(np.abs(self.eigvals) < 1, axis=-1)

    def save(self, path):
        """Write to ``.npz`` (no pickle) atomically; ``FixedPointPath.load(path)`` reads it back.
        Returns the path written."""
        meta = json.dumps({"format": FORMAT + "-path", "dt": self.dt})
        return atomic_savez(path, dict(xstar=self.xstar, inputs=self.inputs, q=self.q, eigvals=self.eigvals,
                                       minirnn=np.array(meta)))

    @classmethod
    def load(cls, path):
        with np.load(path, allow_pickle=False) as f:
            meta = json.loads(str(f["minirnn"]))
            if meta.get("format") != FORMAT + "-path":
                raise ParameterError(f"{path} is not a minirnn FixedPointPath file (format {meta.get('format')!r}).")
            return cls(f["xstar"], f["inputs"], f["q"], f["eigvals"], meta["dt"])


def continue_fixed_points(model, start, input_path, *, tol_q=1e-20, max_q=1e-12, newton_iters=30,
                          max_jump=None, dt=1.0):
    """Track fixed points while the constant input moves along ``input_path``.

    Parameters
    ----------
    model : model, weights dict or :class:`Dynamics`
    start : FixedPoints or array (n, N)
        Fixed points at ``input_path[0]`` (they are re-polished there).
    input_path : array (S, N_in)
        The sequence of constant inputs (e.g. ``np.linspace(u0, u1, S)``).
    max_q : float
        A branch whose corrected point has ``q > max_q`` is lost from that step on.
    max_jump : float, optional
        A branch is also lost when its point moves more than this in one step (it jumped to
        another branch). Default: no check.

    Returns
    -------
    FixedPointPath

    Notes
    -----
    Predictor: ``x_pred = x* + dx*/du (u_{s+1} - u_s)`` with ``dx*/du = -(J - I)^{-1} dF/du`` (the
    implicit function theorem on ``F(x*, u) - x* = 0``). Corrector: Newton steps on ``F(x) - x``.
    """
    dyn = dynamics_from_model(model)
    x = np.array(start.xstar if isinstance(start, FixedPoints) else start, dtype=np.float64, ndmin=2)
    if x.ndim != 2 or x.shape[1] != dyn.n_state:
        raise ShapeError(f"start has shape {x.shape}; it must be FixedPoints or (n, N) with N={dyn.n_state}.")
    if not np.all(np.isfinite(x)):
        raise NonFiniteError("start holds NaN or inf values; pass finite fixed points.")
    P = np.asarray(input_path, dtype=np.float64).reshape(len(input_path), -1)
    if P.shape[1] != dyn.n_input:
        raise ShapeError(f"input_path has shape {np.shape(input_path)}; it must be (S, N_in) with N_in={dyn.n_input}.")
    if not np.all(np.isfinite(P)):
        raise NonFiniteError("input_path holds NaN or inf values.")
    S, n, N = P.shape[0], x.shape[0], dyn.n_state
    xs = np.full((S, n, N), np.nan)
    qs = np.full((S, n), np.nan)
    evs = np.full((S, n, N), np.nan, dtype=np.complex128)
    alive = np.ones(n, bool)
    eye = np.eye(N)
    for s in range(S):
        u = np.broadcast_to(P[s], (n, dyn.n_input)).copy()
        x_last = x.copy()
        if s > 0:  # tangent predictor from step s-1
            a = np.flatnonzero(alive)
            up = np.broadcast_to(P[s - 1], (a.size, dyn.n_input))
            A = dyn.jacobian(x[a], up) - eye
            B = dyn.input_jacobian(x[a], up)  # (m, N, N_in)
            du = (P[s] - P[s - 1])[None, :, None]
            try:
                x[a] = x[a] - np.linalg.solve(A, B @ du)[..., 0]
            except np.linalg.LinAlgError:
                pass
        a = np.flatnonzero(alive)
        if a.size == 0:
            break
        x_prev = x_last[a]
        xa, qa = _newton(dyn, x[a], u[a], newton_iters, tol_q, None)
        ok = np.isfinite(qa) & (qa <= max_q)
        if max_jump is not None and s > 0:
            ok &= np.linalg.norm(xa - x_prev, axis=1) <= max_jump
        alive[a[~ok]] = False
        a, xa, qa = a[ok], xa[ok], qa[ok]
        x[a] = xa
        xs[s, a], qs[s, a] = xa, qa
        if a.size:
            evs[s, a] = _eigvals(dyn, xa, u[a])
    return FixedPointPath(xs, P, qs, evs, float(dt))
