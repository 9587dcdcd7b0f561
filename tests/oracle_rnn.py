"""An independent rate RNN in min-char-rnn style: one trial, one step, one vector at a time.

It shares no code with minirnn (only NumPy), so agreeing with ``Basic`` on losses and gradients is
evidence that both are right. Plain loops, 1-D vectors, explicit per-step backward.

    x_{t+1} = (1 - a) * x_t + a * (Wr @ f(x_t) + Wi @ u_t + br)
    z_t     = Wo @ f(x_{t+1}) + bo
    L       = sum_{b,t,o} (m * (z - y))^2 / (B * T * N_out) + L2 penalties
Effective weights: W * M, or under Dale |W * M| * s (s over columns).
"""
import numpy as np

ACTS = {
    "relu": (lambda v: np.maximum(v, 0.0), lambda v: (v > 0).astype(float)),
    "tanh": (np.tanh, lambda v: 1.0 - np.tanh(v) ** 2),
}


def effective(W, M, s):
    """W * M, or |W * M| * s when s (one sign per column) is given."""
    return W * M if s is None else np.abs(W * M) * s[None, :]


def effective_back(dWe, W, M, s):
    """Chain rule from the effective weight back to the raw one (sign(0) = 0)."""
    return dWe * M if s is None else dWe * s[None, :] * np.sign(W * M) * M


def oracle_loss_and_grads(P, masks, signs, alpha, act, u, y, m, L2_rec=0.0, L2_rate=0.0):
    """P: dict W_in, W_rec, W_out, b_rec, b_out, x0 (1-D). u: (B, T, N_in); y, m: (B, T, N_out)."""
    f, df = ACTS[act]
    Wi = effective(P["W_in"], masks["W_in"], signs and signs["W_in"])
    Wr = effective(P["W_rec"], masks["W_rec"], signs and signs["W_rec"])
    Wo = effective(P["W_out"], masks["W_out"], signs and signs["W_out"])
    B, T, N_out = y.shape
    N = Wr.shape[0]
    n_loss, n_rate = B * T * N_out, B * T * N
    loss = 0.0
    dWi, dWr, dWo = np.zeros_like(Wi), np.zeros_like(Wr), np.zeros_like(Wo)
    dbr, dbo, dx0 = np.zeros(N), np.zeros(N_out), np.zeros(N)
    for b in range(B):
        xs = {0: P["x0"].copy()}
        # forward, one step at a time
        for t in range(T):
            xs[t + 1] = (1 - alpha) * xs[t] + alpha * (Wr @ f(xs[t]) + Wi @ u[b, t] + P["b_rec"])
            z = Wo @ f(xs[t + 1]) + P["b_out"]
            e = m[b, t] * (z - y[b, t])
            loss += np.sum(e * e) / n_loss
            loss += L2_rate * np.sum(f(xs[t + 1]) ** 2) / n_rate
        # backward, one step at a time
        dx_next = np.zeros(N)
        for t in reversed(range(T)):
            r = f(xs[t + 1])
            z = Wo @ r + P["b_out"]
            dz = 2 * m[b, t] * m[b, t] * (z - y[b, t]) / n_loss
            dWo += np.outer(dz, r)
            dbo += dz
            dr = Wo.T @ dz + 2 * L2_rate * r / n_rate
            dx = dr * df(xs[t + 1]) + dx_next            # total dL/dx_{t+1}
            dpre = alpha * dx                              # through a * (...)
            dWr += np.outer(dpre, f(xs[t]))
            dWi += np.outer(dpre, u[b, t])
            dbr += dpre
            dx_next = (1 - alpha) * dx + df(xs[t]) * (Wr.T @ dpre)
        dx0 += dx_next
    loss += L2_rec * np.mean(Wr ** 2)
    dWr += 2 * L2_rec * Wr / Wr.size
    grads = {"W_in": effective_back(dWi, P["W_in"], masks["W_in"], signs and signs["W_in"]),
             "W_rec": effective_back(dWr, P["W_rec"], masks["W_rec"], signs and signs["W_rec"]),
             "W_out": effective_back(dWo, P["W_out"], masks["W_out"], signs and signs["W_out"]),
             "b_rec": dbr, "b_out": dbo, "init_state": dx0[None, :]}
    return loss, grads


def dale_sign_vectors(dale_ratio, N, N_in):
    """E units first: int(dale_ratio * N) of them. W_rec columns +1/-1, W_out 1/0, W_in all 1."""
    n_exc = int(dale_ratio * N)
    s_rec = np.where(np.arange(N) < n_exc, 1.0, -1.0)
    return {"W_in": np.ones(N_in), "W_rec": s_rec, "W_out": (s_rec > 0).astype(float)}
