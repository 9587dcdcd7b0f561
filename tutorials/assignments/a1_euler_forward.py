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
# # Assignment 1 — The rate RNN, forward: one Euler step at a time
#
# **You rebuild:** `minirnn/dynamics/rate.py` (`recur_forward`) and the forward half of
# `minirnn/models/basic.py`. Open them side by side once you have finished.
#
# A rate network obeys the differential equation
#
# $$\tau \frac{dx}{dt} = -x + W_\text{rec} f(x) + W_\text{in} u + b_\text{rec} + \text{noise}.$$
#
# With a time step $dt$ and $\alpha = dt/\tau$, forward Euler gives the update minirnn (and PsychRNN)
# actually computes, one row per trial (weights are `(post, pre)`):
#
# $$x_{k+1} = (1-\alpha)\, x_k + \alpha\,\big(f(x_k) W_\text{rec}^\top + u_k W_\text{in}^\top + b_\text{rec}\big) + \sqrt{2\alpha}\,\sigma_\text{rec}\,\xi_k,
# \qquad \xi_k \sim \mathcal N(0, 1).$$
#
# Shapes: `x (B, N_rec)`, `u (B, N_in)`, `W_rec (N_rec, N_rec)`, `W_in (N_rec, N_in)`,
# `b_rec (N_rec,)`, `xi (B, N_rec)`.
#
# Each exercise is followed by a grader cell: it calls your function on small random inputs and
# compares it with minirnn's engine. `[TODO]` means not attempted yet, `[FAIL]` comes with the first
# wrong entry and, often, a diagnosis. Runtime: well under a minute.

# %%
import os

import matplotlib.pyplot as plt
import numpy as np

from minirnn import Basic
from minirnn.course import grade

FAST = os.environ.get("MINIRNN_FAST") == "1"  # small settings for automatic runs
rng = np.random.default_rng(0)  # every random draw of this notebook comes from here

# %% [markdown]
# ## Exercise 1.1 — one Euler step
#
# Write `euler_step`. `f` is the transfer function (a NumPy function such as `np.tanh`), `alpha`
# and `sigma_rec` are floats, `xi` holds the standard normal draws of this step (do not draw noise
# yourself: the grader passes it, so the result is reproducible).

# %%
def euler_step(x, u, W_rec, W_in, b_rec, alpha, sigma_rec, xi, f):
    """One Euler step of the rate RNN.

    Parameters
    ----------
    x : (B, N_rec) state x_k.      u : (B, N_in) input u_k.
    W_rec : (N_rec, N_rec), W_in : (N_rec, N_in), b_rec : (N_rec,)   weights, (post, pre).
    alpha : float, dt / tau.       sigma_rec : float, noise level.
    xi : (B, N_rec) standard normal draws.   f : the transfer function.

    Returns
    -------
    x_next : (B, N_rec)
    """
    ### BEGIN SOLUTION hint: x_next = (1 - alpha) x + alpha (f(x) @ W_rec.T + u @ W_in.T + b_rec) + sqrt(2 alpha) sigma_rec xi
    drive = f(x) @ W_rec.T + u @ W_in.T + b_rec                     # (B, N_rec)
    return (1 - alpha) * x + alpha * drive + np.sqrt(2 * alpha) * sigma_rec * xi
    ### END SOLUTION


# %%
r_step = grade.euler_step(euler_step)

# %% [markdown]
# ## Exercise 1.2 — a whole trial
#
# Write `simulate`: start from `x0` and apply `euler_step` once per time step. It returns the
# states **after** each step, `x_1 ... x_T`, batch-major `(B, T, N_rec)` — the layout of
# `model.test(x)[1]`.

# %%
def simulate(x0, U, W_rec, W_in, b_rec, alpha, sigma_rec, Xi, f):
    """Run ``euler_step`` over a trial.

    Parameters
    ----------
    x0 : (B, N_rec) or (1, N_rec) initial state.   U : (B, T, N_in) inputs.
    Xi : (B, T, N_rec) standard normal draws, one slice per step.   Others as in ``euler_step``.

    Returns
    -------
    states : (B, T, N_rec), states[:, k] = x_{k+1}
    """
    ### BEGIN SOLUTION hint: loop over k = 0 .. T-1, call euler_step with U[:, k] and Xi[:, k], collect the results, np.stack(..., axis=1)
    x, states = x0, []
    for k in range(U.shape[1]):
        x = euler_step(x, U[:, k], W_rec, W_in, b_rec, alpha, sigma_rec, Xi[:, k], f)
        states.append(x)
    return np.stack(states, axis=1)                                  # (B, T, N_rec)
    ### END SOLUTION


# %%
r_sim = grade.simulate(simulate)
ready = r_step.passed and r_sim.passed
if not ready:
    print("The checks below run once euler_step and simulate pass their graders.")

# %% [markdown]
# ## Check 1 — the analytic decay of a linear network
#
# With `f(x) = x`, no weights, no input and no noise, the equation is $\tau\,dx/dt = -x$, whose
# solution is $x(t) = x_0 e^{-t/\tau}$. Euler gives $x_k = (1-\alpha)^k x_0$ instead. The error at a
# fixed time should shrink **in proportion to dt** (Euler is a first-order method): halving `dt`
# halves the error.

# %%
def decay_error(dt, tau=100.0, T=500.0):
    N, steps = 3, int(round(T / dt))
    x0 = np.array([[1.0, -0.5, 2.0]])
    zeros = np.zeros
    states = simulate(x0, zeros((1, steps, 1)), zeros((N, N)), zeros((N, 1)), zeros(N), dt / tau, 0.0,
                      zeros((1, steps, N)), lambda x: x)
    t = dt * np.arange(1, steps + 1)                                 # states[:, k] is at t = (k+1) dt
    exact = x0[:, None, :] * np.exp(-t / tau)[None, :, None]
    return np.max(np.abs(states - exact)), t, states[0], exact[0]


if ready:
    errors = {dt: decay_error(dt)[0] for dt in (10.0, 5.0, 2.5, 1.25)}
    for dt, e in errors.items():
        print(f"dt = {dt:5.2f} ms   max |x_Euler - x_exact| = {e:.2e}")
    ratios = [errors[a] / errors[b] for a, b in ((10.0, 5.0), (5.0, 2.5), (2.5, 1.25))]
    print("error ratios when dt halves:", np.round(ratios, 3))
    assert all(1.8 < r < 2.2 for r in ratios), "Euler's error should halve when dt halves"

    _, t, xs, exact = decay_error(10.0)
    plt.figure(figsize=(5, 3))
    plt.plot(t, exact, "k-", lw=1, label="x0 exp(-t / tau)")
    plt.plot(t, xs, ".", ms=3, label="Euler, dt = 10 ms")
    plt.xlabel("t (ms)"); plt.ylabel("x"); plt.legend(fontsize=7); plt.tight_layout()

# %% [markdown]
# ## Check 2 — what `sigma_rec` means
#
# Why $\sqrt{2\alpha}$? Take the same linear unit with noise only. Its stationary variance is
# $2\alpha\sigma^2 / (1 - (1-\alpha)^2) = \sigma^2 / (1 - \alpha/2)$: close to $\sigma^2$ whatever
# `dt` is. So `rec_noise` is (about) the standard deviation of a unit's fluctuations, independent
# of the time step. Let us measure it.

# %%
if ready:
    sigma, B, steps = 0.5, 400 if FAST else 2000, 300
    for dt in (10.0, 2.0):
        alpha = dt / 100.0
        X = simulate(np.zeros((B, 1)), np.zeros((B, steps, 1)), np.zeros((1, 1)), np.zeros((1, 1)), np.zeros(1),
                     alpha, sigma, rng.standard_normal((B, steps, 1)), lambda x: x)
        measured = X[:, -1, 0].std()
        predicted = sigma / np.sqrt(1 - alpha / 2)
        print(f"dt = {dt:4.1f}: stationary std measured {measured:.3f}, predicted {predicted:.3f}")
        assert abs(measured / predicted - 1) < 0.12

# %% [markdown]
# ## Check 3 — your simulation is minirnn's
#
# Build a `Basic` model with the same weights (float64, noise off) and compare its states with yours.
# `model.test(x)` returns `(outputs, states)`; `states` are the pre-activation `x`, as here.

# %%
if ready:
    N_rec, N_in, T = 8, 2, 40
    W_rec = 1.2 * rng.standard_normal((N_rec, N_rec)) / np.sqrt(N_rec)
    W_in, b_rec = rng.standard_normal((N_rec, N_in)), 0.1 * rng.standard_normal(N_rec)
    x0 = rng.standard_normal((1, N_rec))
    model = Basic({"N_in": N_in, "N_rec": N_rec, "N_out": 1, "dt": 10, "tau": 100, "W_rec": W_rec,
                   "W_in": W_in, "W_out": np.ones((1, N_rec)), "b_rec": b_rec, "b_out": np.zeros(1),
                   "init_state": x0, "transfer_function": "tanh", "dtype": "float64", "backend": "numpy",
                   "seed": 0})
    U = rng.standard_normal((3, T, N_in))
    mine = simulate(x0, U, W_rec, W_in, b_rec, 0.1, 0.0, np.zeros((3, T, N_rec)), np.tanh)
    theirs = model.test(U)[1]
    print("max |yours - minirnn's| =", np.abs(mine - theirs).max())
    assert np.allclose(mine, theirs, atol=1e-12)

# %% [markdown]
# ## To think about
#
# * In `minirnn/dynamics/rate.py`, `alpha` is folded into the rows of `W_rec` once, before the time
#   loop, and the input drive `u_k W_in^T + b_rec` is computed for all steps at once. Why is that
#   allowed, and why does it help?
# * Which parts of the update cannot be vectorised over time?
