# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Assignment 6 — Fixed points of a trained network
#
# **You rebuild:** the core of `minirnn/analysis/fixed_points.py` (`RateDynamics.step`,
# `RateDynamics.jacobian` and the Newton polish of `find_fixed_points`).
#
# With the input held constant at `u` and the noise off, the network is a map
# $x_{k+1} = F(x_k)$,
#
# $$F(x, u) = (1-\alpha)\,x + \alpha\,\big(f(x) W_\text{rec}^\top + u W_\text{in}^\top + b_\text{rec}\big).$$
#
# A **fixed point** solves $F(x^*) = x^*$. Around it, the network behaves like its linearisation,
# the Jacobian $J = \partial F/\partial x = (1-\alpha) I + \alpha\, W_\text{rec}\,\mathrm{diag}(f'(x))$:
# the fixed point is stable when every eigenvalue of $J$ has $|\lambda| < 1$ (Sussillo & Barak 2013).
#
# We find fixed points with Newton's method on $G(x) = F(x) - x$: repeat
# $x \leftarrow x - (J - I)^{-1} G(x)$. Started from states the network actually visits, it
# converges quickly to the nearby fixed points.

# %%
import os

import matplotlib.pyplot as plt
import numpy as np

from minirnn import Basic
from minirnn.analysis import dynamics_from_model, find_fixed_points
from minirnn.course import grade, rel_error
from minirnn.tasks import PerceptualDiscrimination

FAST = os.environ.get("MINIRNN_FAST") == "1"
rng = np.random.default_rng(0)
f, df = np.tanh, lambda x: 1 - np.tanh(x) ** 2

# %% [markdown]
# ## Exercise 6.1 — the map and its Jacobian
#
# Rows of `x (M, N)` are separate points; `u (M, N_in)`. `map_jacobian` returns one `(N, N)`
# matrix per point, `J[m, i, j] = dF_i / dx_j` at `x[m]`.

# %%
def euler_map(x, u, W_rec, W_in, b_rec, alpha, f):
    """F(x, u), (M, N)."""
    ### BEGIN SOLUTION hint: assignment 1's Euler step without noise
    return (1 - alpha) * x + alpha * (f(x) @ W_rec.T + u @ W_in.T + b_rec)
    ### END SOLUTION


def map_jacobian(x, W_rec, alpha, df):
    """J = (1 - alpha) I + alpha W_rec diag(f'(x)), one per row of x: (M, N, N)."""
    ### BEGIN SOLUTION hint: W_rec * df(x)[:, None, :] scales column j by f'(x_j); add (1 - alpha) * np.eye(N)
    N = x.shape[-1]
    return (1 - alpha) * np.eye(N) + alpha * W_rec * df(x)[:, None, :]    # (M, N, N)
    ### END SOLUTION


# %%
r_map = grade.euler_map(euler_map)
r_jac = grade.map_jacobian(map_jacobian)

# %% [markdown]
# ### Check — the Jacobian against finite differences (column j = dF/dx_j)

# %%
N, N_in, alpha = 6, 2, 0.1
W_rec, W_in, b_rec = 1.5 * rng.standard_normal((N, N)) / np.sqrt(N), rng.standard_normal((N, N_in)), rng.standard_normal(N)
x, u = rng.standard_normal((1, N)), rng.standard_normal((1, N_in))
if r_map.passed and r_jac.passed:
    h, numeric = 1e-6, np.zeros((N, N))
    for j in range(N):
        e = np.zeros((1, N))
        e[0, j] = h
        numeric[:, j] = ((euler_map(x + e, u, W_rec, W_in, b_rec, alpha, f)
                          - euler_map(x - e, u, W_rec, W_in, b_rec, alpha, f)) / (2 * h))[0]
    err = rel_error(map_jacobian(x, W_rec, alpha, df)[0], numeric)
    print(f"Jacobian rel_error = {err:.1e}")
    assert err < 1e-6
else:
    print("This check runs once euler_map and map_jacobian pass.")

# %% [markdown]
# ## Exercise 6.2 — Newton's method
#
# Run `n_iter` Newton steps from every row of `x0` at once. `np.linalg.solve(A, b)` solves a stack
# of systems when `A` is `(M, N, N)` and `b` is `(M, N, 1)`. Do not stop early: points that converge
# stay put (their step is ~0).

# %%
def newton_fixed_point(x0, u, W_rec, W_in, b_rec, alpha, f, df, n_iter=50):
    """Fixed points near each row of x0 (M, N): x <- x - (J - I)^-1 (F(x) - x), n_iter times."""
    ### BEGIN SOLUTION hint: G = euler_map(...) - x; A = map_jacobian(...) - np.eye(N); dx = np.linalg.solve(A, G[..., None])[..., 0]; x = x - dx
    x = np.array(x0, dtype=float)
    eye = np.eye(x.shape[-1])
    for _ in range(n_iter):
        G = euler_map(x, u, W_rec, W_in, b_rec, alpha, f) - x                      # (M, N)
        A = map_jacobian(x, W_rec, alpha, df) - eye                               # (M, N, N)
        x = x - np.linalg.solve(A, G[..., None])[..., 0]
    return x
    ### END SOLUTION


# %%
r_newton = grade.newton_fixed_point(newton_fixed_point)
ready = r_map.passed and r_jac.passed and r_newton.passed

# %% [markdown]
# ## Fixed points of a network trained on perceptual discrimination
#
# A small tanh network learns minirnn's `PerceptualDiscrimination`: it must integrate two noisy
# inputs and, after the stimulus ends, **hold** its choice with zero input. Holding a choice
# needs memory, which a dynamical system can implement as two attractors. Do we find them?

# %%
if ready:
    task = PerceptualDiscrimination(dt=10, tau=100, T=1000, N_batch=64, seed=1)
    params = task.get_task_params()
    params.update(N_rec=20, transfer_function="tanh", seed=2, backend="numpy")
    model = Basic(params)
    model.train(task, {"training_iters": 64 * (15 if FAST else 120), "learning_rate": 0.005, "verbosity": False})
    x, y, mask, trial_params = task.get_trial_batch()
    output, states = model.test(x)
    print(f"accuracy: {task.accuracy_function(y, output, mask):.2f}")

    w = model.get_weights()                                         # effective weights, NumPy
    alpha = float(np.ravel(model.alpha)[0])
    zero_input = np.zeros((1, w["W_in"].shape[1]))

# %% [markdown]
# Start Newton from 100 states the network visited (plus a little noise), at zero input; keep the
# points that converged, merge duplicates, and classify them by the eigenvalues of $J$.

# %%
if ready:
    starts = states.reshape(-1, states.shape[-1])[rng.integers(0, states.shape[0] * states.shape[1], 100)]
    starts = starts + 0.1 * rng.standard_normal(starts.shape)
    with np.errstate(all="ignore"):
        X = newton_fixed_point(starts, zero_input, w["W_rec"], w["W_in"], w["b_rec"], alpha, f, df)
        residual = np.abs(euler_map(X, zero_input, w["W_rec"], w["W_in"], w["b_rec"], alpha, f) - X).max(axis=1)
    X = X[np.isfinite(residual) & (residual < 1e-10)]
    mine = []                                                       # unique points, 1e-6 apart
    for p in X:
        if all(np.abs(p - q).max() > 1e-6 for q in mine):
            mine.append(p)
    mine = np.array(mine).reshape(-1, X.shape[-1])
    eig = np.linalg.eigvals(map_jacobian(mine, w["W_rec"], alpha, df))       # (n, N)
    stable = np.all(np.abs(eig) < 1, axis=1)
    print(f"your Newton: {len(mine)} fixed points, {int(stable.sum())} stable")
    assert len(mine) >= 1

    # minirnn's finder (L-BFGS on q = |F(x) - x|^2 / 2, then Newton) on the same network
    fps = find_fixed_points(model, states, zero_input[0], n_inits=100, noise_scale=0.1, seed=0)
    print(f"minirnn:     {len(fps)} fixed points, {int(fps.stable.sum())} stable")
    # the library's map agrees that your points are fixed points, with the same stability
    dyn = dynamics_from_model(model)
    U0 = np.zeros((len(mine), zero_input.shape[1]))
    assert np.abs(dyn.step(mine, U0) - mine).max() < 1e-9
    lib_stable = np.all(np.abs(np.linalg.eigvals(dyn.jacobian(mine, U0))) < 1, axis=1)
    assert np.array_equal(stable, lib_stable)
    for p in fps.xstar:
        d = np.abs(mine - p).max(axis=1).min() if len(mine) else np.inf
        print(f"  minirnn point, |x| = {np.linalg.norm(p):.3f}: {'found by yours too' if d < 1e-6 else 'not found by yours'}")
else:
    print("This analysis runs once euler_map, map_jacobian and newton_fixed_point pass.")

# %% [markdown]
# ### Picture: trajectories and fixed points in the plane of the first two principal components

# %%
if ready:
    S = states.reshape(-1, states.shape[-1])
    mean = S.mean(axis=0)
    _, _, Vt = np.linalg.svd(S - mean, full_matrices=False)
    proj = lambda Z: (Z - mean) @ Vt[:2].T                          # noqa: E731
    plt.figure(figsize=(4.5, 4))
    choice = np.argmax((output * mask).mean(axis=1), axis=1)
    for b in range(min(30, states.shape[0])):
        P = proj(states[b])
        plt.plot(P[:, 0], P[:, 1], color="C0" if choice[b] == 0 else "C1", lw=0.5, alpha=0.6)
    if len(mine):
        P = proj(mine)
        plt.scatter(P[stable, 0], P[stable, 1], c="k", s=60, label="stable", zorder=3)
        plt.scatter(P[~stable, 0], P[~stable, 1], facecolors="none", edgecolors="r", s=60, label="unstable", zorder=3)
    plt.xlabel("PC 1"); plt.ylabel("PC 2"); plt.legend(fontsize=7); plt.tight_layout()

# %% [markdown]
# ## To think about
#
# * Plain Newton can jump far away or hit a singular `J - I`. `find_fixed_points` first minimises
#   the speed $q(x) = \frac12 |F(x) - x|^2$ and only then polishes with Newton, falling back to
#   Levenberg–Marquardt steps. Why does minimising $q$ also find *slow points* (where $q$ is small
#   but not 0), and why are they interesting?
# * Continuous-time eigenvalues are $(\lambda - 1)/dt$: what time constant does the slowest mode of
#   a stable point have? Compare it with `tau`.
