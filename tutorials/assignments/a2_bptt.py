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
# # Assignment 2 — Backpropagation through time, by hand
#
# **You rebuild:** `minirnn/dynamics/rate.py` (`recur_backward`) and the gradient lines of
# `minirnn/models/basic.py` (`_loss_and_grads`).
#
# Forward (noise off; assignment 1), with $d_k = f(x_k) W_\text{rec}^\top + u_k W_\text{in}^\top + b_\text{rec}$:
#
# $$x_{k+1} = (1-\alpha)\,x_k + \alpha\, d_k .$$
#
# Backward: given $a_{k+1} = \partial L/\partial x_{k+1}$ (a row per trial), the chain rule through
# this one line gives
#
# * $\partial L/\partial d_k = \alpha\, a_{k+1}$ — call it `d_pre`;
# * $\partial L/\partial W_\text{rec} \mathrel{+}= d_\text{pre}^\top f(x_k)$, $\partial L/\partial W_\text{in} \mathrel{+}= d_\text{pre}^\top u_k$, $\partial L/\partial b_\text{rec} \mathrel{+}= \sum_\text{trials} d_\text{pre}$;
# * $\partial L/\partial x_k = (1-\alpha)\, a_{k+1} + f'(x_k) \odot (d_\text{pre} W_\text{rec})$ — the leak and the recurrent path.
#
# Through time, $a_{k}$ is the loss's *direct* dependence on $x_k$ plus what flows back from step $k$.
# Every gradient is checked against finite differences with CS231n's relative error, and then
# against minirnn's own gradients.

# %%
import numpy as np

from minirnn import Basic
from minirnn.course import grade, rel_error

rng = np.random.default_rng(0)
f, df = np.tanh, lambda x: 1 - np.tanh(x) ** 2


def step(x, u, W_rec, W_in, b_rec, alpha):
    """The forward Euler step of assignment 1, noise off: (B, N) -> (B, N)."""
    return (1 - alpha) * x + alpha * (f(x) @ W_rec.T + u @ W_in.T + b_rec)


def forward(x0, U, W_rec, W_in, b_rec, alpha):
    """States x_1 ... x_T, (B, T, N)."""
    x, states = x0, []
    for k in range(U.shape[1]):
        x = step(x, U[:, k], W_rec, W_in, b_rec, alpha)
        states.append(x)
    return np.stack(states, axis=1)


# %% [markdown]
# ## Exercise 2.1 — backward through one step
#
# Return a dict with the gradients of $L$ with respect to every input of `step` (except `b_rec`'s
# own value, which does not matter): keys `dx`, `du`, `dW_rec`, `dW_in`, `db_rec`. `dx_next` is
# $\partial L/\partial x_{k+1}$, shape `(B, N_rec)`. Each gradient has its variable's shape.

# %%
def euler_step_backward(dx_next, x, u, W_rec, W_in, alpha, f, df):
    """Gradients through ``x_next = (1 - alpha) x + alpha (f(x) W_rec^T + u W_in^T + b_rec)``.

    Returns
    -------
    dict: dx (B, N_rec), du (B, N_in), dW_rec (N_rec, N_rec), dW_in (N_rec, N_in), db_rec (N_rec,)
    """
    ### BEGIN SOLUTION
    # HINT: d_pre = alpha * dx_next; each weight gradient is d_pre.T @ (what it multiplied); dx has a leak term and a recurrent term
    d_pre = alpha * dx_next                                          # dL/d(drive)
    return {"dx": (1 - alpha) * dx_next + df(x) * (d_pre @ W_rec),   # leak + recurrent path
            "du": d_pre @ W_in,
            "dW_rec": d_pre.T @ f(x),                                # (post, pre)
            "dW_in": d_pre.T @ u,
            "db_rec": d_pre.sum(axis=0)}
    ### END SOLUTION


# %%
r_step = grade.euler_step_backward(euler_step_backward)

# %% [markdown]
# ## Exercise 2.2 — a numerical gradient
#
# The gold standard: central differences, one entry at a time,
# $\partial L/\partial w_i \approx \big(L(w + h e_i) - L(w - h e_i)\big) / 2h$, error $O(h^2)$.
# Change `x` in place for each evaluation, **and put it back**.

# %%
def numerical_gradient(f, x, h=1e-5):
    """Central-difference gradient of the scalar function ``f`` at the array ``x`` (same shape as x)."""
    ### BEGIN SOLUTION hint: loop with np.ndindex(x.shape); save x[i], evaluate f at x[i] + h and x[i] - h, restore x[i]
    grad = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        old = x[i]
        x[i] = old + h
        f_plus = f(x)
        x[i] = old - h
        f_minus = f(x)
        x[i] = old                                                   # put it back
        grad[i] = (f_plus - f_minus) / (2 * h)
    return grad
    ### END SOLUTION


# %%
r_num = grade.numerical_gradient(numerical_gradient)

# %% [markdown]
# ### Check — your one-step gradients against finite differences
#
# Take $L = \sum (c \odot x_{k+1})$ for a random $c$: then $\partial L/\partial x_{k+1} = c$.

# %%
B, N, N_in, alpha = 4, 6, 3, 0.2
x, u = rng.standard_normal((B, N)), rng.standard_normal((B, N_in))
W_rec, W_in, b_rec = rng.standard_normal((N, N)) / np.sqrt(N), rng.standard_normal((N, N_in)), rng.standard_normal(N)
c = rng.standard_normal((B, N))
if r_step.passed and r_num.passed:
    g = euler_step_backward(c, x, u, W_rec, W_in, alpha, f, df)
    loss_step = lambda: np.sum(c * step(x, u, W_rec, W_in, b_rec, alpha))  # noqa: E731
    for name, arr in (("dx", x), ("du", u), ("dW_rec", W_rec), ("dW_in", W_in), ("db_rec", b_rec)):
        err = rel_error(g[name], numerical_gradient(lambda _: loss_step(), arr))
        print(f"{name:7s} rel_error = {err:.1e}")
        assert err < 1e-6
else:
    print("This check runs once euler_step_backward and numerical_gradient pass.")

# %% [markdown]
# ## Exercise 2.3 — backpropagation through time
#
# Now a whole trial. `dX[:, k]` is the *direct* gradient $\partial L/\partial x_{k+1}$ (from a
# readout or a loss on the states), `X` the states from `forward` (the cache), `x0 (B, N)` the
# initial state. Walk backwards in time, carrying the adjoint from step $k+1$ to step $k$, and
# accumulate the weight gradients. Return `dx0, dW_rec, dW_in, db_rec`. (Reuse
# `euler_step_backward`!)

# %%
def bptt(dX, X, x0, U, W_rec, W_in, alpha, f, df):
    """Gradients of L given dX = dL/dx_{k+1} (direct), states X (B, T, N), inputs U (B, T, N_in).

    Returns
    -------
    dict: dx0 (B, N_rec), dW_rec (N_rec, N_rec), dW_in (N_rec, N_in), db_rec (N_rec,)
    """
    ### BEGIN SOLUTION hint: for k from T-1 down to 0: a = dX[:, k] + carry; the step started from x_k = X[:, k-1] (x0 when k == 0); accumulate, carry = the step's dx
    grads = {"dW_rec": np.zeros_like(W_rec), "dW_in": np.zeros_like(W_in), "db_rec": np.zeros(W_rec.shape[0])}
    carry = np.zeros_like(X[:, 0])                                   # dL/dx_{k+1} from later steps
    for k in reversed(range(X.shape[1])):
        x_k = X[:, k - 1] if k > 0 else x0                           # the state step k started from
        g = euler_step_backward(dX[:, k] + carry, x_k, U[:, k], W_rec, W_in, alpha, f, df)
        for name in grads:
            grads[name] += g[name]
        carry = g["dx"]
    grads["dx0"] = carry
    return grads
    ### END SOLUTION


# %%
r_bptt = grade.bptt(bptt)

# %% [markdown]
# ### Check — BPTT against finite differences, then against minirnn
#
# A loss on the states: $L = \frac12 \sum (x_{k+1} - y_k)^2$, so `dX = X - Y`.

# %%
T = 8
x0, U, Y = rng.standard_normal((B, N)), rng.standard_normal((B, T, N_in)), rng.standard_normal((B, T, N))
if r_bptt.passed and r_num.passed:
    def loss_trial():
        return 0.5 * np.sum((forward(x0, U, W_rec, W_in, b_rec, alpha) - Y) ** 2)

    X = forward(x0, U, W_rec, W_in, b_rec, alpha)
    g = bptt(X - Y, X, x0, U, W_rec, W_in, alpha, f, df)
    for name, arr in (("dx0", x0), ("dW_rec", W_rec), ("dW_in", W_in), ("db_rec", b_rec)):
        err = rel_error(g[name], numerical_gradient(lambda _: loss_trial(), arr))
        print(f"{name:7s} rel_error = {err:.1e}")
        assert err < 1e-6
else:
    print("This check runs once bptt and numerical_gradient pass.")

# %% [markdown]
# minirnn's `Basic` adds a readout $z_k = f(x_{k+1}) W_\text{out}^\top + b_\text{out}$ and the loss
# `mean((mask * (z - y))**2)`. Its `loss_and_grads` returns the raw gradients in float64. The direct
# state gradient is then `dX = (dZ @ W_out) * f'(X)` with `dZ = 2 mask^2 (z - y) / size`, and the
# initial state is shared by every trial, so its gradient is summed over the batch.

# %%
if r_bptt.passed:
    N_out = 2
    W_out = rng.standard_normal((N_out, N))
    x0_shared = rng.standard_normal((1, N))
    model = Basic({"N_in": N_in, "N_rec": N, "N_out": N_out, "dt": 20, "tau": 100, "W_rec": W_rec, "W_in": W_in,
                   "W_out": W_out, "b_rec": b_rec, "b_out": np.zeros(N_out), "init_state": x0_shared,
                   "transfer_function": "tanh", "dtype": "float64", "backend": "numpy", "seed": 0})
    y, mask = rng.standard_normal((B, T, N_out)), (rng.random((B, T, N_out)) < 0.7).astype(float)
    value, theirs = model.loss_and_grads(U, y, mask)

    X = forward(np.repeat(x0_shared, B, axis=0), U, W_rec, W_in, b_rec, alpha)   # alpha = 20 / 100
    Z = f(X) @ W_out.T
    dZ = 2 * mask**2 * (Z - y) / Z.size
    mine = bptt((dZ @ W_out) * df(X), X, np.repeat(x0_shared, B, axis=0), U, W_rec, W_in, alpha, f, df)
    print("loss:", value, "vs", np.mean((mask * (Z - y)) ** 2))
    for name, key in (("dW_rec", "W_rec"), ("dW_in", "W_in"), ("db_rec", "b_rec")):
        print(f"{name:7s} rel_error vs minirnn = {rel_error(mine[name], theirs[key]):.1e}")
        assert rel_error(mine[name], theirs[key]) < 1e-10
    assert rel_error(mine["dx0"].sum(axis=0, keepdims=True), theirs["init_state"]) < 1e-10

# %% [markdown]
# ## To think about
#
# * minirnn's `recur_backward` only loops over time for the adjoint `a_k`; the weight gradients are
#   one matrix product each, after the loop (`d_drive` for all steps). Rewrite your `bptt` that way.
# * How does the cost of BPTT grow with `T`? Its memory?
