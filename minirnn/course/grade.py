"""Graders for the course assignments: ``grade.<exercise>(your_function) -> Result``.

Each grader calls your function on small random float64 inputs and compares what it returns with
minirnn's own engine (the file each assignment rebuilds), shapes first, then values (rtol 1e-7,
atol 1e-10 unless stated). Functions that take a transfer function ``f`` (and ``df``) are called
with tanh and with another one (relu, or linear), so ``f`` must be used, not ``np.tanh``. Every
call also checks that your function left the arrays it was given unchanged. A wrong answer names
the function, the output, the first wrong entry, expected vs got, and — when your output matches a
typical mistake — what that mistake is (``euler_step`` here is the student's own function)::

    from minirnn.course import grade
    result = grade.euler_step(euler_step)      # prints [PASS] / [FAIL] / [TODO] and feedback
    result.passed                              # True when every check passed

``ASSIGNMENTS`` lists, per assignment, the names the grader looks up in a submission and the grader
that checks each (used by ``python -m minirnn.course grade``).
"""
from __future__ import annotations

import numpy as np

from ..dynamics import rate
from ..nn import constraints, optimizers
from ..nn.activations import get_activation
from . import reference
from .grader import IN_PLACE_HINTS, Fail, call, compare, expect_keys, grader, signature

TANH, RELU, LINEAR = get_activation("tanh"), get_activation("relu"), get_activation("linear")
ALPHA, SIGMA = 0.2, 0.3   # alpha != 1 and sigma != 0, so a missing factor shows


def _ignores(act, which="f"):
    """The hint for a function that uses tanh where it should call its argument ``f``/``df``."""
    what, use = {"f": ("tanh instead of the transfer function `f` it is given", "f(x)"),
                 "df": ("tanh's derivative 1 - tanh(x)**2 instead of the derivative `df` it is given", "df(x)"),
                 "both": ("tanh and its derivative instead of the `f` and `df` it is given", "f(x) and df(x)")}[which]
    return f"your function uses {what} (here f = {act.name}): call {use}, so that any transfer function works."


def _case(seed, B=3, N=5, N_in=2, T=6):
    """A random network and inputs, float64: the arguments every dynamics exercise takes."""
    rng = np.random.default_rng(seed)
    return {"x": rng.standard_normal((B, N)), "u": rng.standard_normal((B, N_in)),
            "W_rec": rng.standard_normal((N, N)) / np.sqrt(N), "W_in": rng.standard_normal((N, N_in)),
            "b_rec": 0.1 * rng.standard_normal(N), "xi": rng.standard_normal((B, N)),
            "U": rng.standard_normal((B, T, N_in)), "Xi": rng.standard_normal((B, T, N)),
            "dX": rng.standard_normal((B, T, N)), "dx": rng.standard_normal((B, N))}


def _alpha(N, alpha=ALPHA):
    return np.full((1, N), alpha)


# ================================================================ assignment 1: Euler step forward
# Mirrors minirnn/dynamics/rate.py (recur_forward).

def _euler_variants(x, u, W_rec, W_in, b_rec, alpha, sigma, xi, f):
    """What each typical mistake in the Euler step returns: (hint, x_next)."""
    rec, inp = f(x) @ W_rec.T, u @ W_in.T + b_rec
    noise = np.sqrt(2 * alpha) * sigma * xi
    leak = (1 - alpha) * x
    return [
        ("missing alpha: the drive f(x) W_rec^T + u W_in^T + b_rec is multiplied by alpha = dt/tau.",
         leak + rec + inp + noise),
        ("the leak: x_{k+1} starts from (1 - alpha) x_k, not from x_k.", x + alpha * (rec + inp) + noise),
        ("the leak is missing: x_{k+1} = (1 - alpha) x_k + alpha (...) + noise.", alpha * (rec + inp) + noise),
        ("W_rec is (post, pre): the recurrent drive is f(x) @ W_rec.T, not f(x) @ W_rec.",
         leak + alpha * (f(x) @ W_rec + inp) + noise),
        ("the recurrent drive uses the rates f(x), not the states x.", leak + alpha * (x @ W_rec.T + inp) + noise),
        ("noise scale: the noise is sqrt(2 alpha) sigma_rec xi, not sigma_rec xi.",
         leak + alpha * (rec + inp) + sigma * xi),
        ("noise scale: the noise is sqrt(2 alpha) sigma_rec xi, not alpha sigma_rec xi.",
         leak + alpha * (rec + inp) + alpha * sigma * xi),
        ("the noise term sqrt(2 alpha) sigma_rec xi is missing.", leak + alpha * (rec + inp)),
        ("the bias b_rec is missing.", leak + alpha * (rec + u @ W_in.T) + noise),
    ]


def euler_step_reference(x, u, W_rec, W_in, b_rec, alpha, sigma_rec, xi, act=TANH):
    """One step of minirnn's recurrence (rate.recur_forward with T = 1)."""
    a = _alpha(x.shape[-1], alpha)
    drive = (u @ W_in.T + b_rec)[None]                                 # (1, B, N): T = 1
    return rate.recur_forward(W_rec, drive, x, a, np.sqrt(2 * a) * sigma_rec, xi[None], act)[0]


@grader("euler_step")
def euler_step(fn):
    """``euler_step(x, u, W_rec, W_in, b_rec, alpha, sigma_rec, xi, f) -> x_next (B, N_rec)``."""
    for seed, act in ((0, TANH), (1, TANH), (13, RELU)):
        c = _case(seed)
        args = (c["x"], c["u"], c["W_rec"], c["W_in"], c["b_rec"], ALPHA, SIGMA, c["xi"], act.f)
        got = call("euler_step", fn, *[np.copy(a) if isinstance(a, np.ndarray) else a for a in args])
        mistakes = _euler_variants(*args)
        if act is not TANH:
            mistakes.insert(0, (_ignores(act), euler_step_reference(*args[:-1], act=TANH)))
        compare("euler_step: x_next", got, euler_step_reference(*args[:-1], act=act),
                context="euler_step" + signature(args), mistakes=mistakes)


def simulate_reference(x0, U, W_rec, W_in, b_rec, alpha, sigma_rec, Xi, act=TANH):
    """States x_1 ... x_T, (B, T, N): rate.recur_forward, batch-major."""
    a = _alpha(x0.shape[-1], alpha)
    drive = np.swapaxes(U @ W_in.T + b_rec, 0, 1)                      # (T, B, N)
    X = rate.recur_forward(W_rec, drive, x0, a, np.sqrt(2 * a) * sigma_rec, np.swapaxes(Xi, 0, 1), act)
    return np.swapaxes(X, 0, 1)


@grader("simulate")
def simulate(fn):
    """``simulate(x0, U, W_rec, W_in, b_rec, alpha, sigma_rec, Xi, f) -> states (B, T, N_rec)``."""
    for seed, act in ((2, TANH), (14, RELU)):
        c = _case(seed)
        args = (c["x"], c["U"], c["W_rec"], c["W_in"], c["b_rec"], ALPHA, SIGMA, c["Xi"], act.f)
        expected = simulate_reference(*args[:-1], act=act)
        shifted = np.concatenate([c["x"][:, None], expected[:, :-1]], axis=1)
        got = call("simulate", fn, *args)
        mistakes = [("states must hold x_1 ... x_T (the state after each step), not x_0 ... x_{T-1}.", shifted)]
        if act is not TANH:
            mistakes.append((_ignores(act) + " (Check that euler_step uses f and that simulate passes f on.)",
                             simulate_reference(*args[:-1], act=TANH)))
        for i, (hint, _) in enumerate(_euler_variants(c["x"], c["U"][:, 0], *args[2:7], c["Xi"][:, 0], act.f)):
            x, states = c["x"], []                         # the loop is right, the step has mistake i
            for k in range(c["U"].shape[1]):
                x = _euler_variants(x, c["U"][:, k], *args[2:7], c["Xi"][:, k], act.f)[i][1]
                states.append(x)
            mistakes.append((f"the loop is right but the step is not (fix euler_step first): {hint}",
                             np.stack(states, axis=1)))
        compare("simulate: states", got, expected, context="simulate" + signature(args), mistakes=mistakes,
                index_names=lambda i: f"trial {i[0]}, step {i[1]}, unit {i[2]}")


# ================================================================ assignment 2: BPTT by hand
# Mirrors minirnn/dynamics/rate.py (recur_backward) and the gradient lines of models/basic.py.

def bptt_variant(dX, X, x0, U, W_rec, W_in, alpha, act=TANH, *, with_alpha=True, leak=True,
                 carry=True, with_df=True, shift=False, W_T=False, rates=True, next_state=False,
                 skip_first=False):
    """BPTT written independently of the engine, with flags that plant one mistake each.

    ``shift``: only dW_rec pairs with f(x_{k+1}); ``next_state``: every step starts from
    ``X[:, k]`` (= x_{k+1}) instead of ``X[:, k-1]``; ``skip_first``: the loop stops before k = 0.
    """
    f, df = act.f, act.df
    X_prev = np.concatenate([np.broadcast_to(x0[:, None], X[:, :1].shape), X[:, :-1]], axis=1)  # x_0..x_{T-1}
    if next_state:
        X_prev = X
    a_scale = alpha if with_alpha else 1.0
    g = {"dx0": None, "dW_rec": 0.0, "dW_in": 0.0, "db_rec": 0.0}
    nxt = np.zeros_like(X[:, 0])
    for k in reversed(range(1 if skip_first else 0, X.shape[1])):
        a = dX[:, k] + (nxt if carry else 0)                           # dL/dx_{k+1}, total
        d_pre = a_scale * a                                            # through alpha (...)
        pre_rates = (f(X[:, k]) if shift else f(X_prev[:, k])) if rates else X_prev[:, k]
        g["dW_rec"] = g["dW_rec"] + d_pre.T @ pre_rates
        g["dW_in"] = g["dW_in"] + d_pre.T @ U[:, k]
        g["db_rec"] = g["db_rec"] + d_pre.sum(0)
        back = d_pre @ (W_rec.T if W_T else W_rec)
        nxt = ((1 - alpha) * a if leak else 0) + (df(X_prev[:, k]) if with_df else 1) * back
    g["dx0"] = nxt
    return g


def _bptt_mistakes(name, dX, X, x0, U, W_rec, W_in, alpha, act=TANH, loop=False):
    """(hint, what that mistake gives for output ``name``); ``loop``: also the loop's off-by-ones."""
    flags = [("missing alpha: x_{k+1} depends on the drive through alpha (...), so d_pre = alpha * a_{k+1}.",
              {"with_alpha": False}),
             ("the leak: dL/dx_k gets (1 - alpha) a_{k+1} from the (1 - alpha) x_k term.", {"leak": False}),
             ("missing f'(x_k): the recurrent path goes through the rates f(x_k).", {"with_df": False}),
             ("backward uses W_rec.T where forward's f(x) @ W_rec.T needs (a @ W_rec).", {"W_T": True}),
             ("the adjoint is not carried back through time: a_{k+1} = dX_k + dL/dx_{k+1} from step k+1.",
              {"carry": False}),
             ("off by one: step k's gradient pairs alpha a_{k+1} with f(x_k), the state the step started from.",
              {"shift": True}),
             ("dW_rec pairs the adjoint with the rates f(x_k), not the states x_k.", {"rates": False})]
    if loop:
        flags += [("off by one: step k starts from x_k = X[:, k-1] (x0 when k == 0); X[:, k] is the state "
                   "after the step, x_{k+1}.", {"next_state": True}),
                  ("off by one: the loop must also run the first step, k = 0 (reversed(range(T))), whose "
                   "starting state is x0.", {"skip_first": True})]
    out = []
    for hint, kw in flags:
        wrong = bptt_variant(dX, X, x0, U, W_rec, W_in, alpha, act, **kw)[name]
        out.append((hint, wrong))
    if act is not TANH and name != "du":  # tanh hard-coded in place of f, df or both (the narrowest first)
        mixes = (("df", get_activation((act.f, TANH.df))), ("f", get_activation((TANH.f, act.df))), ("both", TANH))
        out[:0] = [(_ignores(act, which), bptt_reference(dX, X, x0, U, W_rec, W_in, alpha, mix)[name])
                   for which, mix in mixes]
    return out


def bptt_reference(dX, X, x0, U, W_rec, W_in, alpha, act=TANH):
    """minirnn's backward: rate.recur_backward, then one matmul per weight (models/basic.py)."""
    a = _alpha(X.shape[-1], alpha)
    T = lambda z: np.swapaxes(z, 0, 1)  # noqa: E731  batch-major <-> time-major
    d_drive, dx0 = rate.recur_backward(W_rec, T(X), x0, T(dX), a, act)   # (T, B, N), (B, N)
    X_prev = np.concatenate([x0[None], T(X)[:-1]], axis=0)                # (T, B, N)
    return {"dx0": dx0, "dW_rec": np.einsum("tbi,tbj->ij", d_drive, act.f(X_prev)),
            "dW_in": np.einsum("tbi,tbj->ij", d_drive, T(U)), "db_rec": d_drive.sum((0, 1))}


def _compare_grads(what, got, expected, variants, context):
    expect_keys(what, got, list(expected))
    for k in expected:
        mistakes = variants(k)
        if k == "dW_rec":  # the transpose message the brief asks for, ahead of the generic one
            mistakes = mistakes + [("your dW_rec is the transpose of the expected one: W_rec is (post, pre), "
                                    "so dW_rec = d_pre^T @ f(x) (rows: post, columns: pre).",
                                    expected[k].T)]
        compare(f"{what}: {k}", got[k], expected[k], context=context, mistakes=mistakes)


@grader("euler_step_backward")
def euler_step_backward(fn):
    """``euler_step_backward(dx_next, x, u, W_rec, W_in, alpha, f, df)`` -> dict with
    ``dx, du, dW_rec, dW_in, db_rec`` (noise off; the step as in assignment 1)."""
    for seed, act in ((3, TANH), (15, RELU)):
        c = _case(seed)
        x, u, W_rec, W_in, b = c["x"], c["u"], c["W_rec"], c["W_in"], c["b_rec"]
        x_next = euler_step_reference(x, u, W_rec, W_in, b, ALPHA, 0.0, 0 * c["xi"], act)
        ref = bptt_reference(c["dx"][:, None], x_next[:, None], x, u[:, None], W_rec, W_in, ALPHA, act)
        expected = {"dx": ref["dx0"], "du": ALPHA * (c["dx"] @ W_in), "dW_rec": ref["dW_rec"],
                    "dW_in": ref["dW_in"], "db_rec": ref["db_rec"]}
        args = (c["dx"], x, u, W_rec, W_in, ALPHA, act.f, act.df)
        got = call("euler_step_backward", fn, *args)

        def variants(k, c=c, x=x, u=u, W_rec=W_rec, W_in=W_in, x_next=x_next, act=act):
            key = {"dx": "dx0"}.get(k, k)
            if key == "du":
                return [("missing alpha: du = alpha * dx_next @ W_in.", c["dx"] @ W_in),
                        ("du = (alpha dx_next) @ W_in: forward's u @ W_in.T transposes back.", None)]
            return _bptt_mistakes(key, c["dx"][:, None], x_next[:, None], x, u[:, None], W_rec, W_in, ALPHA, act)

        _compare_grads("euler_step_backward", got, expected, variants, "euler_step_backward" + signature(args))


@grader("numerical_gradient")
def numerical_gradient(fn):
    """``numerical_gradient(f, x, h=1e-5) -> df/dx`` by central differences, ``x`` left unchanged."""
    rng = np.random.default_rng(4)
    c, x = rng.standard_normal((3, 4)), rng.standard_normal((3, 4))
    loss = lambda w: float(np.sum(c * np.sin(w)) + 0.25 * np.sum(w**4))  # noqa: E731
    exact = c * np.cos(x) + x**3                                           # analytic gradient
    h = 1e-5
    forward = np.zeros_like(x)
    for i in np.ndindex(x.shape):                                          # the one-sided mistake
        xp = x.copy()
        xp[i] += h
        forward[i] = (loss(xp) - loss(x)) / h
    x_in = x.copy()
    got = call("numerical_gradient", fn, loss, x_in, h)
    if not np.array_equal(x_in, x):
        raise Fail("numerical_gradient changed x in place: put each entry back after "
                   "evaluating f(x + h) and f(x - h).")
    compare("numerical_gradient: gradient", got, exact, context="numerical_gradient(f, x (3, 4), h=1e-5)",
            rtol=1e-7, atol=1e-8, mistakes=[
                ("one-sided difference (f(x+h) - f(x)) / h has error O(h); use the central "
                 "difference (f(x+h) - f(x-h)) / (2h), error O(h^2).", forward)])


@grader("bptt")
def bptt(fn):
    """``bptt(dX, X, x0, U, W_rec, W_in, alpha, f, df)`` -> dict ``dx0, dW_rec, dW_in, db_rec``."""
    for seed, act in ((5, TANH), (16, RELU)):
        c = _case(seed)
        x0, U, W_rec, W_in = c["x"], c["U"], c["W_rec"], c["W_in"]
        X = simulate_reference(x0, U, W_rec, W_in, c["b_rec"], ALPHA, 0.0, 0 * c["Xi"], act)
        args = (c["dX"], X, x0, U, W_rec, W_in, ALPHA, act.f, act.df)
        expected = bptt_reference(*args[:-2], act)
        got = call("bptt", fn, *args)
        _compare_grads("bptt", got, expected,
                       lambda k, args=args, act=act: _bptt_mistakes(k, *args[:-2], act, loop=True),
                       "bptt" + signature(args))


# ================================================================ assignment 3: constraints
# Mirrors minirnn/nn/constraints.py.

def _constraint_cases():
    rng = np.random.default_rng(6)
    W = rng.standard_normal((5, 5))
    W[1, 2] = 0.0                                                          # sign(0) = 0
    M = (rng.random((5, 5)) < 0.7).astype(float)
    s = constraints.dale_signs(0.6, 5)[0][None]                            # (1, 5): + + + - -
    W_out, M_out = rng.standard_normal((2, 5)), np.ones((2, 5))
    s_out = constraints.dale_signs(0.6, 5)[1][None]                        # (1, 5): 1 1 1 0 0
    dW = rng.standard_normal((5, 5))
    return [(W, M, None, dW), (W, M, s, dW), (W_out, M_out, s_out, rng.standard_normal((2, 5)))]


@grader("effective_weight")
def effective_weight(fn):
    """``effective_weight(W, mask, sign=None) -> W_eff``: ``W ⊙ M`` or, under Dale, ``|W ⊙ M| * s``."""
    for W, M, s, _ in _constraint_cases():
        got = call("effective_weight", fn, W.copy(), M.copy(), None if s is None else s.copy())
        context = f"effective_weight{signature((W, M))} with sign={'None' if s is None else s.tolist()}"
        mistakes = [("the mask M is not applied (W ⊙ M).", W if s is None else np.abs(W) * s),
                    ("missing |.|: under Dale, W_eff = |W ⊙ M| * s (the sign comes from s only).",
                     None if s is None else W * M * s)]
        if s is not None and W.shape[0] == W.shape[1]:
            mistakes.insert(0, ("Dale's sign applied on rows instead of columns: s belongs to the "
                                "presynaptic unit j, i.e. column j of W (post, pre): |W ⊙ M| * s[None, :].",
                                np.abs(W * M) * s.reshape(-1, 1)))
        compare("effective_weight: W_eff", got, constraints.effective_weight(W, M, s), context=context,
                mistakes=mistakes)


@grader("effective_weight_backward")
def effective_weight_backward(fn):
    """``effective_weight_backward(dW_eff, W, mask, sign=None) -> dW`` (``sign(0) = 0``)."""
    for W, M, s, dW in _constraint_cases():
        got = call("effective_weight_backward", fn, dW.copy(), W.copy(), M.copy(), None if s is None else s.copy())
        context = f"effective_weight_backward{signature((dW, W, M))} with sign={'None' if s is None else s.tolist()}"
        mistakes = [("the mask: dW = dW_eff ⊙ M (masked entries get no gradient).",
                     dW if s is None else dW * s * np.sign(W))]
        if s is not None:
            if W.shape[0] == W.shape[1]:
                mistakes.insert(0, ("Dale's sign applied on rows instead of columns: dW = (dW_eff * s[None, :]) "
                                    "⊙ sign(W ⊙ M) ⊙ M, s over the presynaptic columns.",
                                    dW * s.reshape(-1, 1) * np.sign(W * M) * M))
            mistakes += [("missing sign(W ⊙ M): the derivative of |w| is sign(w).", dW * s * M),
                         ("missing Dale's sign s: W_eff = |W ⊙ M| * s, so dW picks up s too.",
                          dW * np.sign(W * M) * M)]
        compare("effective_weight_backward: dW", got, constraints.effective_weight_backward(dW, W, M, s),
                context=context, mistakes=mistakes)


@grader("dale_signs")
def dale_signs(fn):
    """``dale_signs(dale_ratio, N_rec) -> (s_rec, s_out)``, each ``(N_rec,)``, E units first."""
    for ratio, N in ((0.8, 10), (0.29, 100)):
        got = call("dale_signs", fn, ratio, N)
        if not isinstance(got, tuple) or len(got) != 2:
            raise Fail(f"dale_signs({ratio}, {N}) must return a tuple (s_rec, s_out); got {type(got).__name__}.")
        s_rec, s_out = constraints.dale_signs(ratio, N)
        n_round = int(round(ratio * N))
        rounded = np.where(np.arange(N) < n_round, 1.0, -1.0)
        for name, g, e in (("s_rec", got[0], s_rec), ("s_out", got[1], s_out)):
            compare(f"dale_signs({ratio}, {N}): {name}", g, e, mistakes=[
                (f"int(dale_ratio * N_rec) truncates ({ratio} * {N} = {ratio * N!r} gives {int(ratio * N)} "
                 f"E units, as PsychRNN); rounding gives {n_round}.",
                 rounded if name == "s_rec" else (rounded > 0).astype(float)),
                ("E units come first: unit j is excitatory when j < int(dale_ratio * N_rec).", e[::-1]),
                ("s_out is 1 (E) / 0 (I): inhibitory units do not project to the outputs.", s_rec)],
                index_names=lambda i: f"unit {i[0]}")


@grader("no_autapses")
def no_autapses(fn):
    """``no_autapses(mask) -> mask`` with a zero diagonal, the argument left unchanged."""
    M = (np.random.default_rng(7).random((6, 6)) < 0.8).astype(float)
    M_in = M.copy()
    got = call("no_autapses", fn, M_in)
    if not np.array_equal(M_in, M):
        raise Fail("no_autapses changed its argument in place; return a new array (mask * (1 - eye)).")
    compare("no_autapses: mask", got, constraints.no_autapses(M), context="no_autapses(mask (6, 6))",
            mistakes=[("only the diagonal (self-connections i -> i) is removed.", np.zeros_like(M))])


@grader("apply_update")
def apply_update(fn):
    """``apply_update(W, delta, fixed) -> W - delta * (1 - fixed)`` (the trainer's fixed-weight rule)."""
    rng = np.random.default_rng(8)
    W, delta = rng.standard_normal((4, 4)), rng.standard_normal((4, 4))
    F = (rng.random((4, 4)) < 0.5).astype(float)
    got = call("apply_update", fn, W.copy(), delta.copy(), F.copy())
    compare("apply_update: W_new", got, W - delta * (1 - F), context="apply_update(W (4, 4), delta (4, 4), fixed (4, 4))",
            mistakes=[("fixed_weights uses 1 = fixed, 0 = trainable: multiply delta by (1 - fixed).", W - delta * F),
                      ("the fixed mask is ignored.", W - delta),
                      ("the update is subtracted: W_new = W - delta * (1 - fixed).", W + delta * (1 - F))])


# ================================================================ assignment 4: optimizers
# Mirrors minirnn/nn/optimizers.py (TF1's equations).

def _grad_seq(scale, steps=5, seed=9):
    rng = np.random.default_rng(seed)
    return [{"W_rec": scale * rng.standard_normal((4, 4)), "b_rec": scale * rng.standard_normal(4)}
            for _ in range(steps)]


def _adam_variant(seq, lr, b1, b2, eps, *, bias=True, alg1=False, t0=False, root=True, ema=True):
    m = {k: 0.0 for k in seq[0]}
    v = {k: 0.0 for k in seq[0]}
    out = []
    for t, grads in enumerate(seq, start=0 if t0 else 1):
        d = {}
        for k, g in grads.items():
            m[k] = b1 * m[k] + ((1 - b1) if ema else 1) * g
            v[k] = b2 * v[k] + (1 - b2) * g * g
            sv = np.sqrt(v[k]) if root else v[k]
            with np.errstate(all="ignore"):
                if not bias:
                    d[k] = lr * m[k] / (sv + eps)
                elif alg1:
                    d[k] = lr * (m[k] / (1 - b1**t)) / (np.sqrt(v[k] / (1 - b2**t)) + eps)
                else:
                    d[k] = lr * np.sqrt(1 - b2**t) / (1 - b1**t) * m[k] / (sv + eps)
        out.append(d)
    return out


def _momentum_variant(seq, lr, mu, *, ema=False, keep=True):
    a = {k: 0.0 for k in seq[0]}
    out = []
    for grads in seq:
        for k, g in grads.items():
            a[k] = (mu * a[k] if keep else 0) + ((1 - mu) if ema else 1) * g
        out.append({k: lr * a[k] for k in grads})
    return out


def _check_optimizer(name, cls, ref_cls, hyper, seq, variants):
    student = call(f"{name}.__init__", cls, **hyper)
    ref = ref_cls(**hyper)
    context = f"{name}({', '.join(f'{k}={v:g}' for k, v in hyper.items())}), gradients W_rec (4, 4), b_rec (4,)"
    for step, grads in enumerate(seq):
        got = call(f"{name}.compute_update", student.compute_update, {k: g.copy() for k, g in grads.items()})
        expected = ref.compute_update(grads)
        expect_keys(f"{name}.compute_update", got, list(grads))
        for k in grads:
            compare(f"{name}.compute_update at update {step + 1}: delta[{k!r}]", got[k], expected[k],
                    context=context, mistakes=[(h, v[step][k]) for h, v in variants])


@grader("SGD")
def sgd(cls):
    """``SGD(learning_rate).compute_update(grads) -> {name: delta}`` with ``delta = lr g``."""
    seq = _grad_seq(1.0)
    _check_optimizer("SGD", cls, optimizers.SGD, {"learning_rate": 0.1}, seq,
                     [("compute_update returns the step delta (the trainer does W -= delta), not -delta.",
                       [{k: -0.1 * g for k, g in s.items()} for s in seq])])


@grader("Momentum")
def momentum(cls):
    """``Momentum(learning_rate, momentum)``: ``a = mu a + g``; ``delta = lr a`` (TF1)."""
    seq, lr, mu = _grad_seq(1.0), 0.1, 0.9
    _check_optimizer("Momentum", cls, optimizers.Momentum, {"learning_rate": lr, "momentum": mu}, seq, [
        ("TF1's momentum accumulates a = mu a + g (no (1 - mu) factor on g).", _momentum_variant(seq, lr, mu, ema=True)),
        ("the accumulator a is not kept between updates (store it per parameter name).",
         _momentum_variant(seq, lr, mu, keep=False))])


@grader("Adam")
def adam(cls):
    """``Adam(learning_rate, beta1, beta2, epsilon)`` in TF1's form:
    ``lr_t = lr sqrt(1 - b2^t) / (1 - b1^t)``; ``delta = lr_t m / (sqrt(v) + eps)``."""
    hyper = {"learning_rate": 0.01, "beta1": 0.9, "beta2": 0.999, "epsilon": 1e-8}
    h = tuple(hyper.values())
    for scale in (1.0, 1e-7):  # tiny gradients make epsilon's place visible
        seq = _grad_seq(scale)
        _check_optimizer("Adam", cls, optimizers.Adam, hyper, seq, [
            ("Adam without bias correction: lr_t = lr sqrt(1 - beta2^t) / (1 - beta1^t) corrects m and v "
             "for starting at 0.", _adam_variant(seq, *h, bias=False)),
            ("the step count t starts at 1 on the first update (1 - beta1^0 = 0).", _adam_variant(seq, *h, t0=True)),
            ("Algorithm 1's epsilon (added to sqrt(v_hat)); TF1 adds epsilon to sqrt(v) after folding the bias "
             "corrections into lr_t (the paper's 'epsilon hat').", _adam_variant(seq, *h, alg1=True)),
            ("the denominator is sqrt(v) + eps, not v + eps.", _adam_variant(seq, *h, root=False)),
            ("m is an average: m = beta1 m + (1 - beta1) g.", _adam_variant(seq, *h, ema=False))])


# ================================================================ assignment 5: a new task
# Mirrors minirnn/tasks/perceptual_discrimination.py (the vectorised path).

def _new_task(cls, name):
    return call(f"{name}.__init__", cls, dt=10, tau=100, T=2000, N_batch=8)


@grader("SimplePD.sample_trial_params")
def simplepd_sample(cls):
    """``SimplePD.sample_trial_params(rng, N_batch)``: coherence ~ Exponential(mean 1/5), direction 0/1."""
    task = _new_task(cls, "SimplePD")
    n = 20000
    p = call("SimplePD.sample_trial_params", task.sample_trial_params, np.random.default_rng(0), n)
    expect_keys("SimplePD.sample_trial_params", p, ["coherence", "direction"])
    p2 = call("SimplePD.sample_trial_params", task.sample_trial_params, np.random.default_rng(0), n)
    p3 = call("SimplePD.sample_trial_params", task.sample_trial_params, np.random.default_rng(1), n)
    for k in ("coherence", "direction"):
        a = np.asarray(p[k])
        if a.shape != (n,):
            raise Fail(f"SimplePD.sample_trial_params(rng, {n}): {k} has shape {a.shape}; expected ({n},), "
                       f"one value per trial (no loop: draw them all at once).")
        if not np.array_equal(a, np.asarray(p2[k])):
            raise Fail(f"SimplePD.sample_trial_params: two calls with the same seeded rng gave different {k}; "
                       f"draw from the rng argument, never from np.random (reproducibility).")
        if np.array_equal(a, np.asarray(p3[k])):
            raise Fail(f"SimplePD.sample_trial_params: calls with two different rngs (default_rng(0), "
                       f"default_rng(1)) gave the same {k}; draw from the rng argument you are given, not from "
                       f"a generator made inside the function (np.random.default_rng(123) ignores the caller's "
                       f"seed).")
    coh, d = np.asarray(p["coherence"], float), np.asarray(p["direction"])
    mean = coh.mean()
    if coh.min() < 0 or abs(mean - 0.2) > 0.015 or abs(coh.std() - 0.2) > 0.015:
        hint = (" rng.exponential takes the scale (the mean) 1/5, not the rate 5." if abs(mean - 5) < 0.5 else
                " Coherence is exponential, not uniform or Gaussian." if abs(mean - 0.2) <= 0.015 else "")
        raise Fail(f"SimplePD.sample_trial_params: coherence should be Exponential with mean 1/5 = 0.2 (std 0.2); "
                   f"over {n} draws got mean {mean:.4g}, std {coh.std():.4g}, min {coh.min():.4g}.{hint}")
    if not set(np.unique(d).tolist()) <= {0, 1} or abs(d.mean() - 0.5) > 0.02:
        raise Fail(f"SimplePD.sample_trial_params: direction should be 0 or 1 with equal probability; got values "
                   f"{sorted(set(np.unique(d).tolist()))[:5]} with mean {d.mean():.4g}.")


@grader("SimplePD.build_trials")
def simplepd_build(cls):
    """``SimplePD.build_trials(params, rng) -> (x, y, mask)``, each (B, N_steps, 2), noise drawn first."""
    task = _new_task(cls, "SimplePD")
    ref_task = reference.SimplePD(dt=10, tau=100, T=2000, N_batch=8)
    params = ref_task.sample_trial_params(np.random.default_rng(1), 8)
    params["coherence"][:2] = 0.0                                     # ties: a pure timing check
    got = call("SimplePD.build_trials", task.build_trials, {k: v.copy() for k, v in params.items()},
               np.random.default_rng(2))
    if not isinstance(got, tuple) or len(got) != 3:
        raise Fail(f"SimplePD.build_trials must return (x, y, mask); got {type(got).__name__}.")
    expected = reference.simplepd_arrays(ref_task, params, np.random.default_rng(2))
    for seed, same in ((2, True), (3, False)):   # the noise comes from the rng argument, and only from it
        again = call("SimplePD.build_trials", task.build_trials, {k: v.copy() for k, v in params.items()},
                     np.random.default_rng(seed))
        try:
            equal = np.array_equal(np.asarray(got[0], dtype=float), np.asarray(again[0], dtype=float))
        except (TypeError, ValueError, IndexError, KeyError):
            break  # not arrays: the comparison below says what is wrong
        if same and not equal:
            raise Fail("SimplePD.build_trials: two calls with the same params and equally seeded rngs gave "
                       "different x; draw the noise from the rng argument (rng.standard_normal), not from "
                       "np.random (reproducibility).")
        if not same and equal:
            raise Fail("SimplePD.build_trials: calls with two different rngs (default_rng(2), default_rng(3)) "
                       "gave the same x; draw the noise from the rng argument you are given, not from a "
                       "generator made inside the function.")

    def variant(**kw):
        return reference.simplepd_arrays(ref_task, params, np.random.default_rng(2), **kw)

    mistakes = [("the stimulus is on for T/4 < t < 3T/4 (strict inequalities, as PsychRNN's trial_function).",
                 variant(strict=False)),
                ("the target starts 20 ms after the stimulus ends (t > 3T/4 + 20).", variant(gap=0.0)),
                ("the mask is 1 from the end of the stimulus (t >= 3T/4): the 20 ms gap is trained towards 0.",
                 variant(mask_from_decision=True)),
                ("input noise is sqrt(2 alpha) * 0.1 * N(0, 1) with alpha = dt / tau.", variant(noise_scale=0.1)),
                ("the other channel gets 1 during the stimulus: x[dir] += 1 + coh, x[other] += 1.",
                 variant(other_channel=False))]
    names = lambda i: f"trial {i[0]}, step {i[1]} (t = {i[1] * 10} ms), channel {i[2]}"  # noqa: E731
    context = "SimplePD(dt=10, tau=100, T=2000, N_batch=8).build_trials(params {coherence: (8,), direction: (8,)}, rng)"
    for j, what in enumerate(("x", "y", "mask")):
        compare(f"SimplePD.build_trials: {what}", got[j], expected[j], context=context, index_names=names,
                mistakes=[(h, v[j]) for h, v in mistakes])


@grader("choice_fractions")
def choice_fractions(fn):
    """``choice_fractions(signed_coherence, choices) -> (levels, p)``: sorted distinct levels and the
    fraction of choices == 1 at each (minirnn.analysis.psychometric.choice_probability)."""
    from ..analysis.psychometric import choice_probability  # scipy: imported only when needed

    rng = np.random.default_rng(10)
    x = rng.choice([-0.4, -0.1, 0.0, 0.1, 0.4], 200)
    k = (rng.random(200) < 1 / (1 + np.exp(-8 * x))).astype(int)
    levels, p, _ = choice_probability(x, k)
    got = call("choice_fractions", fn, x.copy(), k.copy())
    if not isinstance(got, tuple) or len(got) != 2:
        raise Fail(f"choice_fractions must return (levels, p); got {type(got).__name__}.")
    compare("choice_fractions: levels", got[0], levels, context="choice_fractions(x (200,), choices (200,))")
    compare("choice_fractions: p", got[1], p, context="choice_fractions(x (200,), choices (200,))",
            mistakes=[("p is the fraction of choices == 1 (choice 1 = direction 1), not of choices == 0.", 1 - p)])


# ================================================================ assignment 6: fixed points
# Mirrors minirnn/analysis/fixed_points.py (RateDynamics, the Newton polish).

def RateDynamics(*args):
    """minirnn.analysis.fixed_points.RateDynamics, imported on first use (it pulls in scipy)."""
    from ..analysis.fixed_points import RateDynamics as Dyn

    return Dyn(*args)


def _fp_case(seed=11, M=4, N=5, N_in=2):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((M, N)), rng.standard_normal((M, N_in)), 0.8 * rng.standard_normal((N, N)) / np.sqrt(N),
            rng.standard_normal((N, N_in)), 0.1 * rng.standard_normal(N))


@grader("euler_map")
def euler_map(fn):
    """``euler_map(x, u, W_rec, W_in, b_rec, alpha, f) -> F(x, u)`` (M, N), noise off."""
    x, u, W_rec, W_in, b = _fp_case()
    for act in (TANH, RELU):
        dyn = RateDynamics(W_rec, W_in, b, ALPHA, act)
        args = (x, u, W_rec, W_in, b, ALPHA, act.f)
        got = call("euler_map", fn, *args)
        mistakes = _euler_variants(x, u, W_rec, W_in, b, ALPHA, 0.0, 0 * x, act.f)
        if act is not TANH:
            mistakes.insert(0, (_ignores(act), RateDynamics(W_rec, W_in, b, ALPHA, TANH).step(x, u)))
        compare("euler_map: F", got, dyn.step(x, u), context="euler_map" + signature(args), mistakes=mistakes)


@grader("map_jacobian")
def map_jacobian(fn):
    """``map_jacobian(x, W_rec, alpha, df) -> J (M, N, N)``, ``J = (1 - alpha) I + alpha W_rec diag(f'(x))``."""
    x, u, W_rec, W_in, b = _fp_case()
    for act in (TANH, RELU):
        J = RateDynamics(W_rec, W_in, b, ALPHA, act).jacobian(x, u)
        d, eye = act.df(x), np.eye(x.shape[1])
        got = call("map_jacobian", fn, x, W_rec, ALPHA, act.df)
        mistakes = [("f'(x) multiplies the columns: J_ij = (1 - alpha) delta_ij + alpha W_ij f'(x_j), i.e. "
                     "W_rec * df(x)[:, None, :], not df(x)[:, :, None].",
                     (1 - ALPHA) * eye + ALPHA * W_rec * d[:, :, None]),
                    ("the (1 - alpha) I term (the leak) is missing.", ALPHA * W_rec * d[:, None, :]),
                    ("missing alpha in front of W_rec diag(f'(x)).", (1 - ALPHA) * eye + W_rec * d[:, None, :]),
                    ("J is dF_i/dx_j (rows: outputs F_i); this is its transpose.", np.swapaxes(J, -1, -2))]
        if act is not TANH:
            mistakes.insert(0, (_ignores(act, "df"), RateDynamics(W_rec, W_in, b, ALPHA, TANH).jacobian(x, u)))
        compare("map_jacobian: J", got, J, context="map_jacobian" + signature((x, W_rec, ALPHA, act.df)),
                index_names=lambda i: f"point {i[0]}, dF_{i[1]}/dx_{i[2]}", mistakes=mistakes)


@grader("newton_fixed_point")
def newton_fixed_point(fn):
    """``newton_fixed_point(x0, u, W_rec, W_in, b_rec, alpha, f, df, n_iter=50) -> x* (M, N)``."""
    x0, u, W_rec, W_in, b = _fp_case(12)
    # a bistable network too: W_rec = 2 I, so each unit solves x = 2 tanh(x): x* = 0 or +-1.915;
    # and a linear network (one fixed point, Newton's first step lands on it), so f must be used
    cases = [(x0, u, W_rec, W_in, b, TANH),
             (np.array([[1.5, -2.5, 0.05], [0.3, 3.0, -0.7]]), np.zeros((2, 1)), 2 * np.eye(3), np.zeros((3, 1)),
              np.zeros(3), TANH),
             (*_fp_case(17), LINEAR)]
    for x0, u, W_rec, W_in, b, act in cases:
        args = (x0.copy(), u, W_rec, W_in, b, ALPHA, act.f, act.df)
        got = call("newton_fixed_point", fn, *args)
        expected = reference.newton(x0, u, W_rec, W_in, b, ALPHA, act.name)
        dyn = RateDynamics(W_rec, W_in, b, ALPHA, act)
        got_a = np.asarray(got, dtype=np.float64) if got is not None else None
        context = "newton_fixed_point" + signature(args)
        if got_a is not None and got_a.shape == expected.shape and np.all(np.isfinite(got_a)):
            resid = np.abs(dyn.step(got_a, u) - got_a).max()
            if resid < 1e-10:
                continue  # a true fixed point (possibly another one than plain Newton's: fine)
            context += f"\n    your x* is not a fixed point: max |F(x*) - x*| = {resid:.2e} (a converged one has ~1e-15)"
        mistakes = [("Newton on G(x) = F(x) - x solves (J - I) dx = -G(x); this used J alone.",
                     reference.newton(x0, u, W_rec, W_in, b, ALPHA, act.name, use_J_minus_I=False))]
        if act is not TANH:  # tanh hard-coded in place of f, df or both (e.g. in euler_map or map_jacobian)
            mistakes[:0] = [(_ignores(act, which), reference.newton(x0, u, W_rec, W_in, b, ALPHA, pair))
                            for which, pair in (("f", (TANH.f, act.df)), ("df", (act.f, TANH.df)), ("both", "tanh"))]
        compare("newton_fixed_point: x*", got, expected, context=context, rtol=1e-6, atol=1e-9, mistakes=mistakes)


# ================================================================ the registry

ASSIGNMENTS = {
    "a1": [("euler_step", euler_step), ("simulate", simulate)],
    "a2": [("euler_step_backward", euler_step_backward), ("numerical_gradient", numerical_gradient),
           ("bptt", bptt)],
    "a3": [("effective_weight", effective_weight), ("effective_weight_backward", effective_weight_backward),
           ("dale_signs", dale_signs), ("no_autapses", no_autapses), ("apply_update", apply_update)],
    "a4": [("SGD", sgd), ("Momentum", momentum), ("Adam", adam)],
    "a5": [("SimplePD", simplepd_sample), ("SimplePD", simplepd_build), ("choice_fractions", choice_fractions)],
    "a6": [("euler_map", euler_map), ("map_jacobian", map_jacobian), ("newton_fixed_point", newton_fixed_point)],
}

# Modules some graders import on first use (they pull in scipy): the grading command imports them
# before a submission runs, with the graders, so that the submission cannot replace them.
PRELOAD = {"a5": ("minirnn.analysis.psychometric",), "a6": ("minirnn.analysis.fixed_points",)}

# What to write instead, when a function changes an array it was given (see grader.call).
IN_PLACE_HINTS.update({
    "euler_step": "return a new array, x_next = (1 - alpha) * x + ... (`x *= 1 - alpha` changes the caller's x; "
                  "simulate's list of states would then hold one array many times).",
    "simulate": "do not change x0 or the arrays given (if euler_step changes x in place, fix it first).",
    "euler_step_backward": "build new arrays (`d = alpha * dx_next`, not `dx_next *= alpha`).",
    "numerical_gradient": "put each entry back (x[i] = old) after evaluating f at x[i] + h and x[i] - h.",
    "bptt": "`dX[:, k] + carry` makes a new array; `dX[:, k] += carry` writes into the caller's dX.",
    "no_autapses": "return a new array, mask * (1 - np.eye(N)) (np.fill_diagonal changes the mask it is given).",
    "apply_update": "return W - delta * (1 - fixed), a new array (`W -= ...` changes the caller's weights).",
    "SGD.compute_update": "return new arrays, {name: lr * g ...} (`g *= lr` scales the caller's gradients).",
    "Momentum.compute_update": "build new arrays (`self.a[name] = self.momentum * self.a[name] + g`).",
    "Adam.compute_update": "build new arrays (`m = beta1 * m + (1 - beta1) * g`).",
})
