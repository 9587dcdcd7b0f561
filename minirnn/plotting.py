"""Figures of a study, after the PsychRNN paper (Ehrlich et al., eNeuro 2021):

- :func:`plot_trial`            inputs, targets, outputs and mask shading of one trial (Fig. 2A)
- :func:`plot_psychometric`     choice probability and the fitted curve (Fig. 2B)
- :func:`plot_unit_traces`      condition-averaged activity of chosen units (Fig. 2C)
- :func:`plot_pc_trajectories`  trajectories in PC space with fixed points (Fig. 2D)
- :func:`plot_weights`          W_in, W_rec, W_out; E columns red, I columns blue, masked blank (Fig. 4)
- :func:`plot_training`         loss / accuracy with curriculum stage boundaries (Fig. 5D)
- :func:`save_figure`           write a figure atomically (the old file or the new one, never a torn one)

matplotlib is imported inside the functions (it is optional at import time). Every function
takes ``ax=None`` (a new figure is made) or the axes to draw on, and returns the figure; nothing
calls ``show()``, so the functions work under the Agg backend and in notebooks alike.
Time axes are in ms when ``dt`` is given, in steps otherwise. Index ``k`` of every array is drawn at
``t = k dt`` (DESIGN.md §3: step ``k`` happens at trial time ``k dt``): the input ``u_k`` and the
target ``y_k`` of step ``k``, and what that step produces, ``states[:, k] = x_{k+1}`` and
``outputs[:, k] = z_k`` (the output compared with ``y_k``). This is the time
:class:`minirnn.simulate.Perturbation` windows select by, so ``silence(units, 200, 600)`` appears as
zero rates from 200 ms to the last sample before 600 ms, and a stimulus that starts at ``onset_time``
appears there.
"""
from __future__ import annotations

import importlib.util
import os

import numpy as np

from .errors import MissingDependencyError, ParameterError, ShapeError

E_COLOR, I_COLOR = "tab:red", "tab:blue"


def _plt():
    if importlib.util.find_spec("matplotlib") is None:
        raise MissingDependencyError(
            "Missing optional dependency 'matplotlib', needed by minirnn.plotting. "
            "Install it with: pip install matplotlib"
        )
    import matplotlib.pyplot as plt

    return plt


def figure_formats() -> dict:
    """The file formats a figure can be saved in: ``{extension: description}`` (matplotlib's list)."""
    _plt()
    from matplotlib.backend_bases import FigureCanvasBase

    return dict(FigureCanvasBase.get_supported_filetypes())


def check_figure_format(fmt) -> str:
    """``fmt`` (``"png"``, ``".PDF"`` ...) as a lower-case extension matplotlib can write.

    Raises ParameterError naming the format, with a suggestion and the allowed list, otherwise.
    """
    from .errors import did_you_mean

    formats = figure_formats()
    ext = str(fmt).lower().lstrip(".")
    if ext not in formats:
        raise ParameterError(f"Unknown figure format {fmt!r}{did_you_mean(ext, formats)} "
                             f"Choose one of {sorted(formats)}.")
    return ext


def save_figure(fig, path, **savefig_kw) -> str:
    """Save ``fig`` to ``path`` atomically; the format is the file's extension. Returns the path.

    The figure is drawn into a temporary file beside ``path`` that then replaces it
    (:func:`minirnn.io.atomic_open`): an error or a kill while drawing leaves the previous figure
    in place and no partial file. ``savefig_kw`` go to ``fig.savefig`` (``dpi``, ``bbox_inches`` ...).
    """
    from .io import atomic_open

    path = os.fspath(path)
    ext = os.path.splitext(path)[1]
    if not ext:
        raise ParameterError(f"save_figure needs a file name with an extension (.png, .pdf ...). Got {path!r}.")
    fmt = check_figure_format(ext)
    with atomic_open(path, "wb") as fh:
        fig.savefig(fh, format=fmt, **savefig_kw)
    return path


def _axes(ax, n=1, **subplots_kw):
    """Return (fig, [axes]) with ``n`` axes: new ones when ``ax`` is None, else the ones given."""
    if ax is None:
        plt = _plt()
        fig, axs = plt.subplots(**subplots_kw) if subplots_kw else plt.subplots(1, n, squeeze=False)
        axs = list(np.ravel(axs))
        return fig, axs
    axs = list(np.ravel(np.asarray(ax, dtype=object)))
    if len(axs) != n:
        raise ParameterError(f"ax must be None or {n} axes here; got {len(axs)}.")
    return axs[0].figure, axs


def _pick_trial(a, trial, name):
    if a is None:
        return None
    a = np.asarray(a)
    if a.ndim == 3:
        return a[trial]
    if a.ndim == 2:
        return a
    raise ShapeError(f"{name} has shape {a.shape}; it must be (N_batch, N_steps, n) or (N_steps, n).")


def _time(T, dt):
    """Times of indices ``0 ... T-1``: ``k dt`` (ms) with ``dt``, else the step ``k`` (see the module notes)."""
    return np.arange(T) * dt if dt is not None else np.arange(T)


# ----------------------------------------------------------------------------- Fig. 2A: one trial


def plot_trial(x, y=None, z=None, mask=None, *, trial=0, dt=None, ax=None,
               input_names=None, output_names=None, title=None):
    """Inputs (top) and targets / outputs (bottom) of one trial, with masked-out steps shaded.

    Parameters
    ----------
    x : (B, T, N_in) or (T, N_in)   inputs
    y : (B, T, N_out) or (T, N_out), optional   targets (dashed)
    z : (B, T, N_out) or (T, N_out), optional   network outputs (solid)
    mask : (B, T, N_out) or (T, N_out), optional   steps where every output's mask is 0 are shaded grey
    trial : int   which trial of a batch
    dt : float, optional   ms per step
    ax : None, or a pair of axes (inputs, outputs), or one axes (everything on it)
    """
    xs, ys, zs, ms = (_pick_trial(a, trial, n) for a, n in ((x, "x"), (y, "y"), (z, "z"), (mask, "mask")))
    if ax is None:
        fig, axs = _axes(None, nrows=2, ncols=1, sharex=True, figsize=(7.5, 4.5), squeeze=False,
                         layout="constrained")
    else:
        n_given = len(np.ravel(np.asarray(ax, dtype=object)))
        fig, axs = _axes(ax, n_given)
        if n_given not in (1, 2):
            raise ParameterError(f"ax must be None, one axes or a pair of axes; got {n_given}.")
    ax_in, ax_out = (axs[0], axs[-1])
    t = _time(xs.shape[0], dt)
    for i in range(xs.shape[1]):
        label = input_names[i] if input_names else f"input {i}"
        ax_in.plot(t, xs[:, i], lw=1, alpha=0.8 if ax_in is not ax_out else 0.4, label=label)
    colors = [f"C{(xs.shape[1] + j) % 10}" for j in range(max(_n(ys), _n(zs)))]
    for j in range(_n(ys)):
        label = (output_names[j] if output_names else f"output {j}") + " target"
        ax_out.plot(t, ys[:, j], ls="--", color=colors[j], lw=1.5, label=label)
    for j in range(_n(zs)):
        label = (output_names[j] if output_names else f"output {j}")
        ax_out.plot(t, zs[:, j], color=colors[j], lw=2, label=label)
    if ms is not None:
        off = np.all(np.asarray(ms).reshape(ms.shape[0], -1) == 0, axis=1)  # (T,)
        for a in {ax_in, ax_out}:
            _shade(a, t, off, dt)
    ax_in.set_ylabel("input")
    ax_out.set_ylabel("output")
    ax_out.set_xlabel("time (ms)" if dt is not None else "time step")
    for a in {ax_in, ax_out}:  # legends outside, on the right, so they never hide a trace
        a.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="small", frameon=False)
    if title:
        ax_in.set_title(title)
    return fig


def _n(a):
    return 0 if a is None else a.shape[1]


def _shade(ax, t, off, dt):
    """Grey spans over the runs of True in ``off`` (masked-out steps)."""
    step = dt if dt is not None else 1
    edges = np.diff(np.r_[0, off.astype(int), 0])
    for s, e in zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)):
        ax.axvspan(t[s] - step / 2, t[e - 1] + step / 2, color="0.85", zorder=0, lw=0,
                   label="masked" if s == np.flatnonzero(edges == 1)[0] else None)


# ----------------------------------------------------------------------------- Fig. 2B: psychometric


def plot_psychometric(fit=None, *, x=None, p=None, n=None, ax=None, color="k", label=None, show_ci=False,
                      ylabel=None, xlabel="signed coherence"):
    """Choice probability (points, binomial standard error) and the fitted curve.

    Parameters
    ----------
    fit : PsychometricFit, optional   draws its data and its curve
    x, p, n : arrays, optional        data points instead of (or besides) a fit's
    show_ci : bool                    draw the fitted threshold ``mu`` with its confidence interval
    ylabel : str, optional            what ``p`` is; default ``"P(choice 1)"`` (``"P(choice c)"`` for a fit
        with a ``positive`` attribute ``c``). Say so when plotting another choice (``"P(choice 0)"``).
    xlabel : str                      the stimulus axis
    """
    if fit is None and x is None:
        raise ParameterError("plot_psychometric needs a PsychometricFit or data points x=, p=.")
    fig, (a,) = _axes(ax, 1)
    if x is None:
        x, p, n = fit.levels, fit.p, fit.n
    x = np.asarray(x, dtype=float)
    p = np.asarray(p, dtype=float)
    yerr = None if n is None else np.sqrt(p * (1 - p) / np.maximum(np.asarray(n, float), 1))
    a.errorbar(x, p, yerr=yerr, fmt="o", color=color, ms=5, capsize=2, label=label or "data")
    if fit is not None and {"mu", "sigma"} & set(getattr(fit, "undetermined", ())):  # trials do not fix the curve
        a.set_title(f"no fit drawn: {fit.problem}", fontsize="small", wrap=True)
    elif fit is not None:
        xx = np.linspace(x.min(), x.max(), 300)
        pr = fit.params
        a.plot(xx, fit.predict(xx), color=color, lw=2,
               label=f"{fit.kind} fit (mu={pr['mu']:.3g}, sigma={pr['sigma']:.3g}, "
                     f"gamma={pr['gamma']:.2g}, lambda={pr['lambda']:.2g})")
        if show_ci and np.all(np.isfinite(fit.ci["mu"])):
            a.axvspan(*fit.ci["mu"], color=color, alpha=0.15, lw=0)
    a.axhline(0.5, color="0.7", lw=0.8, ls=":")
    a.set_ylim(-0.02, 1.02)
    a.set_xlabel(xlabel)
    a.set_ylabel(ylabel if ylabel is not None else f"P(choice {getattr(fit, 'positive', 1)})")
    a.legend(loc="upper left", fontsize="small", frameon=False)
    return fig


# ----------------------------------------------------------------------------- Fig. 2C: unit traces


def plot_unit_traces(data, conditions, units=(0, 1, 2), *, correct=None, dt=None, ax=None,
                     cmap="coolwarm", condition_name="condition"):
    """Condition-averaged activity of ``units``, one panel per unit, one line per condition.

    data : (B, T, N) rates or states; conditions : (B,) labels; correct : (B,) bool, optional.
    ax : None or ``len(units)`` axes.
    """
    from .analysis.pca import condition_average

    plt = _plt()
    shape = np.shape(data)
    if len(shape) != 3:
        raise ShapeError(f"data has shape {shape}; it must be one network's (N_batch, N_steps, N) "
                         "(for an ensemble's states pick network k: states[k]).")
    u = np.atleast_1d(np.asarray(units))
    if u.ndim != 1 or u.size == 0 or u.dtype.kind not in "iu" or np.any(u < 0) or np.any(u >= shape[-1]):
        raise ParameterError(f"The 'units' parameter of plot_unit_traces must be one or more ints in "
                             f"[0, {shape[-1]}) (data has N={shape[-1]} units). Got {units!r} instead.")
    units = [int(v) for v in u]
    labels, means, counts = condition_average(data, conditions, correct)
    fig, axs = _axes(ax, len(units)) if ax is not None else _axes(
        None, nrows=1, ncols=len(units), figsize=(3.2 * len(units), 3), squeeze=False, sharey=False,
        layout="constrained")
    colors = plt.get_cmap(cmap)(np.linspace(0, 1, len(labels)))
    t = _time(means.shape[1], dt)
    for a, u in zip(axs, units):
        for c, lab in enumerate(labels):
            a.plot(t, means[c, :, u], color=colors[c], lw=1.5, label=f"{condition_name}={_fmt(lab)}")
        a.set_title(f"unit {u}")
        a.set_xlabel("time (ms)" if dt is not None else "time step")
    axs[0].set_ylabel("activity")
    axs[-1].legend(fontsize="x-small", frameon=False, loc="best")
    return fig


def _fmt(lab):
    lab = np.atleast_1d(lab)
    return ",".join(f"{v:.3g}" if np.issubdtype(np.asarray(v).dtype, np.floating) else str(v) for v in lab)


# ----------------------------------------------------------------------------- Fig. 2D: PC trajectories


def plot_pc_trajectories(trajectories, *, pca=None, fixed_points=None, labels=None, n_dims=2,
                         ax=None, cmap="coolwarm"):
    """Trajectories (C, T, N) in the space of their first principal components, with fixed points.

    Parameters
    ----------
    trajectories : (C, T, N)   e.g. condition averages of the states
    pca : PCA, optional        axes to project on (default: fitted on ``trajectories``)
    fixed_points : FixedPoints or (n, N) array, optional
        A FixedPoints is drawn as filled black dots (stable) and open circles (unstable); a plain
        array, whose stability is unknown, as black crosses labelled "fixed point".
    labels : (C,) optional     legend entries
    n_dims : 2 or 3            needs a ``pca`` with at least ``n_dims`` components
    """
    from .analysis.pca import pca as fit_pca

    plt = _plt()
    if n_dims not in (2, 3):
        raise ParameterError(f"The 'n_dims' parameter must be 2 or 3. Got {n_dims!r} instead.")
    X = np.asarray(trajectories, dtype=float)
    if X.ndim == 2:
        X = X[None]
    if X.ndim != 3:
        raise ShapeError(f"trajectories has shape {X.shape}; it must be (C, T, N) or (T, N).")
    if pca is None and X.shape[-1] < n_dims:
        raise ShapeError(f"trajectories have N={X.shape[-1]} dimension(s); n_dims={n_dims} needs at least {n_dims}.")
    if pca is not None and getattr(pca, "n_components", n_dims) < n_dims:
        raise ParameterError(f"pca has {pca.n_components} component(s) but n_dims={n_dims} axes are drawn; fit it "
                             f"with pca(data, n_components={n_dims}) or more"
                             f"{' (or pass n_dims=2)' if pca.n_components >= 2 else ''}.")
    p = pca if pca is not None else fit_pca(X, n_components=n_dims)
    if fixed_points is not None:
        xs = np.asarray(getattr(fixed_points, "xstar", fixed_points), dtype=float)
        if xs.ndim == 1:
            xs = xs[None]
        if xs.ndim != 2 or xs.shape[-1] != X.shape[-1]:
            raise ShapeError(f"fixed_points has shape {xs.shape}; it must be FixedPoints or (n, N) with "
                             f"N={X.shape[-1]}, the trajectories' dimension.")
        stable = getattr(fixed_points, "stable", None)  # None: a plain array, stability never computed
    Z = p.transform(X, n_dims)  # (C, T, k)
    if ax is None:
        fig = plt.figure(figsize=(5, 4.5))
        a = fig.add_subplot(111, projection="3d" if n_dims == 3 else None)
    else:
        fig, (a,) = _axes(ax, 1)
    colors = plt.get_cmap(cmap)(np.linspace(0, 1, Z.shape[0]))
    for c in range(Z.shape[0]):
        lab = None if labels is None else _fmt(labels[c])
        a.plot(*Z[c].T, color=colors[c], lw=1.5, label=lab)
        a.scatter(*Z[c, :1].T, color=colors[c], marker="^", s=25)  # start
    if fixed_points is not None and stable is None:
        F = p.transform(xs, n_dims)
        a.scatter(*F.T, s=50, c="k", marker="x", zorder=5, label="fixed point (stability not computed)")
    elif fixed_points is not None:
        stable = np.asarray(stable, dtype=bool)
        F = p.transform(xs, n_dims)
        if np.any(stable):
            a.scatter(*F[stable].T, s=50, c="k", marker="o", zorder=5, label="stable fixed point")
        if np.any(~stable):
            a.scatter(*F[~stable].T, s=50, facecolors="none", edgecolors="k", marker="o", zorder=5,
                      label="unstable fixed point")
    evr = p.explained_variance_ratio
    a.set_xlabel(f"PC1 ({100 * evr[0]:.0f}%)")
    a.set_ylabel(f"PC2 ({100 * evr[1]:.0f}%)" if len(evr) > 1 else "PC2")
    if n_dims == 3 and hasattr(a, "set_zlabel"):
        a.set_zlabel(f"PC3 ({100 * evr[2]:.0f}%)" if len(evr) > 2 else "PC3")
    if labels is not None or fixed_points is not None:
        a.legend(fontsize="x-small", frameon=False)
    return fig


# ----------------------------------------------------------------------------- Fig. 4: weights


_RATE_PANELS = ("W_in", "W_rec", "W_out")
_LSTM_PANELS = ("W_f", "W_i", "W_c", "W_o", "W_out")


def plot_weights(weights, *, ax=None, signs=None, vmax=None, names=None):
    """Heat maps of a network's weight matrices, ``(post, pre)``; masked-out entries blank (NaN in the
    image, transparent over a light-grey background, so an absent connection differs from a zero weight).

    A rate network (:class:`minirnn.Basic`) shows ``W_in``, ``W_rec``, ``W_out``. With Dale's principle
    (``dale_ratio`` not None, or a ``Dale_rec`` with negative entries, or ``signs`` given) the columns
    of presynaptic excitatory units are drawn in reds and inhibitory ones in blues (intensity =
    |weight|). Otherwise a diverging map (blue < 0 < red).

    An LSTM (its model, or a dict with the gate keys ``W_f ... W_o``) shows the four gate matrices
    ``W_f, W_i, W_c, W_o`` as ``(N_rec, N_rec + N_in)``, hidden columns then input columns (a dotted
    line between them), and ``W_out``: its ``W_in``/``W_rec`` entries are PsychRNN's all-zero
    placeholders and asking for them is an error.

    Parameters
    ----------
    weights : dict as ``model.get_weights()`` returns, or a model (one network: for an ensemble
        pass ``model.network(k)``)
    signs : (N_rec,) +1/-1, optional   E/I label of each recurrent unit
    names : the matrices to draw (default: those above)
    ax : None or one axes per matrix in ``names``
    """
    plt = _plt()
    from matplotlib.ticker import MaxNLocator

    from .io import lstm_weights_evidence

    if getattr(weights, "lead", ()):
        raise ShapeError(f"plot_weights draws one network; this model is an ensemble of {weights.lead} networks. "
                         "Pass model.network(k).")
    w = weights.get_weights() if hasattr(weights, "get_weights") else weights
    if not hasattr(w, "keys"):
        raise ParameterError(f"plot_weights takes a model or a dict of weights (as get_weights() returns). "
                             f"Got {type(weights).__name__} instead.")
    why = lstm_weights_evidence(w)  # None for a rate network's weights
    lstm = why is not None
    if names is None:
        names = _LSTM_PANELS if lstm else _RATE_PANELS
    names = [names] if isinstance(names, str) else list(names)
    if lstm and {"W_in", "W_rec"} & set(names):
        raise ParameterError(f"plot_weights: these are an LSTM's weights ({why}); its W_in and "
                             f"W_rec are PsychRNN's all-zero placeholders, not its weights. Draw the gates: "
                             f"names={_LSTM_PANELS} (the default for an LSTM).")
    missing = [nm for nm in names if nm not in w]
    if missing and len(missing) == len(names):
        raise ParameterError(f"plot_weights: none of {names} is in the weights; keys present: {sorted(w)}.")
    names = [nm for nm in names if nm in w]
    mats, masks = _panels(w, names, lstm)
    s = _signs(w, signs)
    if s is not None and signs is not None:
        N_rec = mats["W_out"].shape[1] if "W_out" in mats else next(iter(mats.values())).shape[0]
        if s.size != N_rec:
            raise ShapeError(f"signs has {s.size} entries; it must have one per recurrent unit, N_rec={N_rec}.")
    if ax is None and names == list(_RATE_PANELS):
        # W_in | W_rec side by side (rows = the same postsynaptic units), W_out under W_rec (same columns)
        N_in, N_rec, N_out = mats["W_in"].shape[1], mats["W_rec"].shape[0], mats["W_out"].shape[0]
        width = float(np.clip(3 + 0.13 * (N_in + N_rec + 8), 6, 14))
        height = float(np.clip(width * (N_rec + N_out + 6) / (N_in + N_rec + 8), 4, 12))
        fig = plt.figure(figsize=(width, height), layout="constrained")
        grid = fig.add_gridspec(2, 2, width_ratios=[N_in + 4, N_rec + 4], height_ratios=[N_rec + 2, N_out + 4])
        axs = [fig.add_subplot(grid[0, 0]), fig.add_subplot(grid[0, 1]), fig.add_subplot(grid[1, 1])]
    elif ax is None and lstm and names == list(_LSTM_PANELS):
        # the four gates in a 2 x 2 grid, W_out under them
        N_rec, n_cols = mats["W_out"].shape[1], mats["W_f"].shape[1]
        width = float(np.clip(3 + 0.26 * (n_cols + 6), 6, 14))
        height = float(np.clip(width * (2 * N_rec + mats["W_out"].shape[0] + 12) / (2 * n_cols + 12), 5, 14))
        fig = plt.figure(figsize=(width, height), layout="constrained")
        grid = fig.add_gridspec(3, 2, height_ratios=[N_rec + 4, N_rec + 4, mats["W_out"].shape[0] + 5])
        axs = [fig.add_subplot(grid[0, 0]), fig.add_subplot(grid[0, 1]), fig.add_subplot(grid[1, 0]),
               fig.add_subplot(grid[1, 1]), fig.add_subplot(grid[2, :])]
    elif ax is None:
        widths = [mats[nm].shape[1] + 3 for nm in names]  # + room for a colour bar
        fig, axs = _axes(None, nrows=1, ncols=len(names), figsize=(3 + 0.25 * sum(widths), 4), squeeze=False,
                         gridspec_kw={"width_ratios": widths}, layout="constrained")
    else:
        fig, axs = _axes(ax, len(names))
    for a, nm in zip(axs, names):
        W = mats[nm]
        M = masks.get(nm)
        if M is not None:
            W = np.where(np.asarray(M) != 0, W, np.nan)  # masked entries blank
        vm = vmax or (np.nanmax(np.abs(W)) if np.any(np.isfinite(W)) else 1.0) or 1.0
        ei = s is not None and nm in ("W_rec", "W_out") and W.shape[1] == s.size
        if ei:
            E = np.where(s[None, :] > 0, np.abs(W), np.nan)
            I = np.where(s[None, :] < 0, np.abs(W), np.nan)
            for arr, cm in ((E, "Reds"), (I, "Blues")):
                cmap = plt.get_cmap(cm).with_extremes(bad=(0, 0, 0, 0))  # masked: transparent
                im = a.imshow(arr, cmap=cmap, vmin=0, vmax=vm, interpolation="nearest")
                if cm == "Reds":  # one bar: the blue scale is the same, |w| from 0 to vmax
                    fig.colorbar(im, ax=a, shrink=0.6, label="|w|")
            a.set_title(f"{nm} (E red, I blue)")
        else:
            cmap = plt.get_cmap("RdBu_r").with_extremes(bad=(0, 0, 0, 0))
            im = a.imshow(W, cmap=cmap, vmin=-vm, vmax=vm, interpolation="nearest")
            a.set_title(nm)
            fig.colorbar(im, ax=a, shrink=0.6)
        a.set_facecolor("0.88")  # shows through the transparent (masked) entries: blank, not 0
        a.set_xlabel("from (pre)")
        if lstm and nm in _LSTM_PANELS[:4]:  # hidden columns | input columns
            a.axvline(W.shape[0] - 0.5, color="k", lw=1, ls=":")
            a.set_title(f"{nm} (from h | from u)")
            a.set_xlabel("from (pre): hidden units, then inputs")
        a.set_ylabel("to (post)")
        a.xaxis.set_major_locator(MaxNLocator(integer=True))
        a.yaxis.set_major_locator(MaxNLocator(integer=True))
    return fig


def _panels(w, names, lstm):
    """The matrices to draw, ``(post, pre)`` 2-D float arrays, and their masks; checked before drawing."""
    mats, masks = {}, {}
    for nm in names:
        W = np.array(w[nm], dtype=float)
        if W.ndim != 2:
            hint = (" This is an ensemble's (K, ...) array: plot one network, model.network(k) or "
                    "{name: w[name][k] for name in w}." if W.ndim == 3 else "")
            raise ShapeError(f"{nm} has shape {W.shape}; plot_weights draws one network's 2-D matrices.{hint}")
        mats[nm] = W
    if lstm:
        for nm in names:
            if nm in _LSTM_PANELS[:4]:
                mats[nm] = mats[nm].T  # PsychRNN's (N_rec + N_in, N_rec) -> (post, pre) = (N_rec, N_rec + N_in)
                M_rec, M_in = w.get("rec_connectivity"), w.get("input_connectivity")
                if M_rec is not None and M_in is not None:
                    M = np.concatenate([np.asarray(M_rec, dtype=float), np.asarray(M_in, dtype=float)], axis=-1)
                    if M.shape == mats[nm].shape:
                        masks[nm] = M
        if "W_out" in names and w.get("output_connectivity") is not None:
            masks["W_out"] = w["output_connectivity"]
        return mats, masks
    mask_key = {"W_in": "input_connectivity", "W_rec": "rec_connectivity", "W_out": "output_connectivity"}
    for nm in names:
        M = w.get(mask_key.get(nm))
        if M is not None:
            if np.shape(M) != mats[nm].shape:
                raise ShapeError(f"{mask_key[nm]} has shape {np.shape(M)} but {nm} has {mats[nm].shape}.")
            masks[nm] = M
    return mats, masks


def _signs(w, signs):
    if signs is not None:
        return np.sign(np.asarray(signs, dtype=float)).ravel()
    D = w.get("Dale_rec")
    if D is not None:
        D = np.asarray(D, dtype=float)
        if D.ndim != 2:
            raise ShapeError(f"Dale_rec has shape {D.shape}; plot_weights draws one network (an ensemble's "
                             "(K, N, N) arrays: pass model.network(k)).")
        d = np.diag(D)
        if np.any(d < 0) or w.get("dale_ratio") is not None:
            return np.sign(d)
    if w.get("dale_ratio") is not None and "W_rec" in w:
        N = np.asarray(w["W_rec"]).shape[-1]
        n_e = int(float(w["dale_ratio"]) * N)
        return np.where(np.arange(N) < n_e, 1.0, -1.0)
    return None


# ----------------------------------------------------------------------------- Fig. 5D: training


def plot_training(losses=None, accuracy=None, *, iterations=None, accuracy_iterations=None, history=None,
                  stages=None, stage_starts=None, stage_names=None, network_names=None, ax=None, log_loss=True):
    """Loss (left axis) and accuracy (right axis) over training, with curriculum stage boundaries.

    The simplest call passes a model's training record: ``plot_training(history=model.history)``
    (or a run's ``record["history"]``, or ``plot_training(model.history)``): losses at their update
    numbers, accuracy at the updates where it was measured (``history["performance"]`` holds
    ``(update, value)`` pairs), and a boundary where each curriculum stage began.

    Parameters
    ----------
    losses : (n,) one network's, or (n, K) an ensemble's (one line per network); or a history dict
    accuracy : (m,), or (m, K) for an ensemble, optional
        Drawn at ``accuracy_iterations``; without them only when ``m == n`` (one value per loss
        record, at ``iterations``). Other lengths are drawn spread evenly with a warning: pass the
        update numbers.
    iterations : (n,), optional   x values of ``losses`` (default 0..n-1)
    accuracy_iterations : (m,), optional   the update at which each accuracy value was measured
    history : dict, optional
        ``{"loss": [...], "update": [...], "performance": [(update, value), ...], "stages":
        [{"update": u, "stage": s, ...}, ...]}`` as training records it; fills ``losses``,
        ``iterations``, ``accuracy``, ``accuracy_iterations`` and ``stage_starts`` (give none of those).
    stages : (n,), optional   curriculum stage of each record; a dashed line where it changes
    stage_starts : list of iterations, optional   where each later stage begins (instead of ``stages``)
    stage_names : list of str, optional   one label per stage (default "stage k")
    network_names : list of str, optional   legend names of an ensemble's networks (default "network k")
    """
    import warnings
    from collections.abc import Mapping

    if isinstance(losses, Mapping):
        if history is not None:
            raise ParameterError("plot_training: give the history dict once (as losses or as history=).")
        history, losses = losses, None
    if history is not None:
        given = {k: v for k, v in (("losses", losses), ("accuracy", accuracy), ("iterations", iterations),
                                   ("accuracy_iterations", accuracy_iterations), ("stages", stages),
                                   ("stage_starts", stage_starts)) if v is not None}
        if given:
            raise ParameterError(f"plot_training: history= supplies the losses, their updates, the accuracy and the "
                                 f"stages; do not also pass {sorted(given)}.")
        losses, iterations, accuracy, accuracy_iterations, stage_starts, default_names = _from_history(history)
        if stage_names is None:
            stage_names = default_names
    if losses is None:
        raise ParameterError("plot_training needs losses (n,) or (n, K), or history=model.history.")
    L = np.asarray(losses, dtype=float)
    if L.ndim not in (1, 2) or L.shape[0] == 0:
        raise ShapeError(f"losses has shape {L.shape}; it must be (n,) for one network or (n, K) for an "
                         "ensemble of K (one loss per network per record), with n >= 1.")
    K = None if L.ndim == 1 else L.shape[1]
    it = np.arange(L.shape[0]) if iterations is None else np.asarray(iterations, dtype=float).ravel()
    if it.size != L.shape[0]:
        raise ShapeError(f"iterations has {it.size} entries but losses has {L.shape[0]} records.")
    if stages is not None and stage_starts is not None:
        raise ParameterError("Give either stages (one per record) or stage_starts, not both.")
    if accuracy_iterations is not None and accuracy is None:
        raise ParameterError("accuracy_iterations was given without accuracy.")
    if network_names is not None and (K is None or len(network_names) != K):
        raise ShapeError(f"network_names has {len(network_names)} entries; give one per network of an ensemble's "
                         f"(n, K) losses (here {'one network' if K is None else f'K={K}'}).")
    acc, ita = None, None
    if accuracy is not None:
        acc, ita = _accuracy_points(accuracy, accuracy_iterations, K, it)
    names = list(network_names) if network_names is not None else [f"network {k}" for k in range(K or 0)]

    fig, (a,) = _axes(ax, 1)
    if K is None:
        a.plot(it, L, color="k", lw=1.2, label="loss")
    else:
        for k in range(K):
            a.plot(it, L[:, k], color=f"C{k % 10}", lw=1.2, label=f"loss, {names[k]}")
    finite = L[np.isfinite(L)]
    if log_loss and finite.size and np.all(finite > 0):
        a.set_yscale("log")
    a.set_xlabel("iteration")
    a.set_ylabel("loss")
    handles, labels = a.get_legend_handles_labels()
    if acc is not None:
        if ita is None:  # no update numbers: the old, approximate placement, said out loud
            warnings.warn(f"plot_training: {acc.shape[0]} accuracy values for {L.shape[0]} loss records and no "
                          "accuracy_iterations; they are spread evenly over the loss axis, which is not where they "
                          "were measured. Pass accuracy_iterations (the update of each value) or "
                          "history=model.history.", UserWarning, stacklevel=2)
            ita = np.linspace(it[0], it[-1], acc.shape[0])
        a2 = a.twinx()
        if acc.ndim == 1:
            a2.plot(ita, acc, color="tab:green", lw=1.5, marker="." if acc.size < 50 else None, label="accuracy")
        else:
            for k in range(acc.shape[1]):
                a2.plot(ita, acc[:, k], color=f"C{k % 10}", ls="--", lw=1.5, marker="." if acc.shape[0] < 50 else None,
                        label=f"accuracy, {names[k]}")
        a2.set_ylabel("accuracy", color="tab:green" if acc.ndim == 1 else "k")
        a2.set_ylim(-0.02, 1.02)
        h2, l2 = a2.get_legend_handles_labels()
        handles, labels = handles + h2, labels + l2
    if stages is not None:
        st = np.asarray(stages).ravel()
        if st.size != L.shape[0]:
            raise ShapeError(f"stages has {st.size} entries but losses has {L.shape[0]}; give one stage per record.")
        change = np.flatnonzero(st[1:] != st[:-1]) + 1
        bounds, ids = it[change], [st[0], *st[change]]
    elif stage_starts is not None:
        bounds = np.asarray(stage_starts, dtype=float).ravel()
        ids = list(range(len(bounds) + 1))
    if stages is not None or stage_starts is not None:
        for b in bounds:
            a.axvline(b, color="tab:purple", ls="--", lw=1)
        for k, x0 in enumerate(np.r_[it[0], bounds]):
            name = stage_names[k] if stage_names is not None and k < len(stage_names) else f"stage {ids[k]}"
            a.annotate(name, (x0, 1.0), xycoords=("data", "axes fraction"), xytext=(3, -12),
                       textcoords="offset points", fontsize="x-small", color="tab:purple")
    a.legend(handles, labels, loc="center right", fontsize="small", frameon=False)
    return fig


def _from_history(history):
    """losses, iterations, accuracy, accuracy_iterations, stage_starts, stage_names of a training history."""
    if "loss" not in history:
        raise ParameterError(f"plot_training: the history dict has no 'loss' entry; it has {sorted(history)}. "
                             "Pass model.history (or a run record's 'history').")
    losses = history["loss"]
    iterations = history.get("update") or None
    accuracy = accuracy_iterations = None
    perf = history.get("performance") or []
    if len(perf):
        try:
            pairs = [(u, v) for u, v in perf]
        except (TypeError, ValueError):
            raise ParameterError("plot_training: history['performance'] must hold (update, value) pairs, as training "
                                 f"records them. Got {perf[:2]!r} ...") from None
        accuracy_iterations = [u for u, _ in pairs]
        accuracy = [v for _, v in pairs]
    stage_starts = stage_names = None
    recorded = history.get("stages") or []
    if len(recorded):
        try:
            stage_starts = [float(d["update"]) for d in recorded]
            stage_names = [f"stage {int(recorded[0]['stage']) - 1}"] + [f"stage {int(d['stage'])}" for d in recorded]
        except (TypeError, KeyError, ValueError):
            raise ParameterError("plot_training: history['stages'] must hold {'update': u, 'stage': s} records, as "
                                 f"curriculum training writes them. Got {recorded[:2]!r} ...") from None
    return losses, iterations, accuracy, accuracy_iterations, stage_starts, stage_names


def _accuracy_points(accuracy, accuracy_iterations, K, it):
    """Accuracy values (m,) or (m, K) and their x values (None: not known)."""
    pairs_hint = ("For (update, value) pairs as history['performance'] holds, pass history=model.history, or "
                  "accuracy=[v for _, v in pairs], accuracy_iterations=[u for u, _ in pairs].")
    try:
        acc = np.asarray(accuracy, dtype=float)
    except (TypeError, ValueError):
        raise ParameterError(f"plot_training: accuracy must be numbers, (m,) or (m, K) for an ensemble. "
                             f"{pairs_hint}") from None
    acc = np.atleast_1d(acc)
    if acc.ndim > 2 or acc.shape[0] == 0:
        raise ShapeError(f"accuracy has shape {acc.shape}; it must be (m,) or (m, K) for an ensemble, m >= 1.")
    if acc.ndim == 2 and acc.shape[1] == 1 and K is None:
        acc = acc[:, 0]
    if acc.ndim == 2 and K is None:
        raise ShapeError(f"accuracy has shape {acc.shape} but losses are one network's (n,). {pairs_hint}")
    if acc.ndim == 2 and acc.shape[1] != K:
        raise ShapeError(f"accuracy has shape {acc.shape}: {acc.shape[1]} networks, but losses have K={K}.")
    if accuracy_iterations is not None:
        ita = np.asarray(accuracy_iterations, dtype=float).ravel()
        if ita.size != acc.shape[0]:
            raise ShapeError(f"accuracy_iterations has {ita.size} entries but accuracy has {acc.shape[0]} values.")
        return acc, ita
    return acc, (it if acc.shape[0] == it.size else None)
