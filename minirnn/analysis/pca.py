"""Population activity: condition-averaged trajectories, PCA by SVD, and projections of single trials.

Condition average (trials ``b`` with label ``c``, optionally only correct ones):

    xbar_c(t) = mean_{b : cond_b = c} x_b(t)                       (C, T, N)

PCA of data rows ``X`` (n, N) (e.g. all times of all condition averages): centre with the mean
``m``; with the thin SVD ``X - m = U S V^T``, the principal axes are the rows of ``V^T``, and

    explained_variance_k = S_k^2 / (n - 1),   explained_variance_ratio_k = S_k^2 / sum_j S_j^2.

``U`` (n, N) is never needed. For tall data (n > N) the axes come from the N x N scatter matrix
``(X - m)^T (X - m) = V S^2 V^T``, summed in float64 over blocks of rows, so memory is O(N^2) plus
one block, whatever n is; short data (n <= N, itself at most N x N) takes the SVD directly.

A trajectory is projected as ``(x - m) @ V_k`` (the first ``k`` axes). Signs are fixed so the entry
of largest magnitude in each axis is positive (deterministic across runs, as scikit-learn does).

Use rates ``f(states)`` or states as you prefer; the functions only see arrays ``(..., N)``.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .._params import is_int
from ..errors import NonFiniteError, ParameterError, ShapeError


def trial_param(trial_params, key):
    """One per-trial parameter as an array ``(B,)``, from a dict of arrays or a list of dicts (PsychRNN)."""
    if isinstance(trial_params, dict):
        if key not in trial_params:
            raise ParameterError(f"trial_params has no key {key!r}; it has {sorted(trial_params)}.")
        return np.asarray(trial_params[key])
    try:
        return np.asarray([tp[key] for tp in trial_params])
    except (KeyError, TypeError):
        raise ParameterError(
            f"Could not read {key!r} from trial_params; pass a dict of (B,) arrays or a list of dicts."
        ) from None


def condition_average(data, conditions, correct=None):
    """Average trials ``data`` (B, T, N) within each condition.

    Parameters
    ----------
    data : array (B, T, N)
        States, rates or outputs.
    conditions : array (B,) or (B, m)
        Label of each trial; with ``m`` columns, each distinct row is one condition.
    correct : bool array (B,), optional
        Use only these trials (e.g. correct ones).

    Returns
    -------
    labels : array (C,) or (C, m)    distinct conditions, sorted
    means : array (C, T, N)
    counts : int array (C,)          trials averaged per condition
    """
    X = np.asarray(data)
    if X.ndim != 3:
        raise ShapeError(f"data has shape {X.shape}; it must be (N_batch, N_steps, N).")
    c = np.asarray(conditions)
    if c.shape[0] != X.shape[0] or c.ndim > 2:
        raise ShapeError(f"conditions has shape {c.shape}; it must be (N_batch,) or (N_batch, m) "
                         f"with N_batch={X.shape[0]}.")
    if correct is not None:
        keep = np.asarray(correct, dtype=bool).ravel()
        if keep.shape[0] != X.shape[0]:
            raise ShapeError(f"correct has {keep.shape[0]} entries; it must have N_batch={X.shape[0]}.")
        X, c = X[keep], c[keep]
        if X.shape[0] == 0:
            raise ParameterError("No trials left: 'correct' selects none.")
    labels, inv = np.unique(c, axis=0, return_inverse=True)
    inv = inv.ravel()
    counts = np.bincount(inv, minlength=len(labels))
    sums = _sums_by_label(X, inv, counts)
    return labels, sums / counts[:, None, None], counts


def _sums_by_label(X, inv, counts):
    """Sum trials ``X`` (B, T, N) with the same label ``inv`` (B,) -> (C, T, N), in float64 at least.

    One vectorised sum per condition over its trials, taken in trial order: the same additions in the
    same order as ``np.add.at(sums, inv, X)``, so the same bits, without ``add.at``'s per-element loop.
    Holds one condition's trials as a copy at a time.
    """
    sums = np.empty((len(counts), *X.shape[1:]), dtype=np.result_type(X.dtype, np.float64))
    by_label = np.argsort(inv, kind="stable")  # trials grouped by label, in trial order within a group
    for c, trials in enumerate(np.split(by_label, np.cumsum(counts)[:-1])):
        X[trials].sum(axis=0, dtype=sums.dtype, out=sums[c])
    return sums


@dataclass
class PCA:
    """Principal axes of a data set (fit with :func:`pca`).

    mean : (N,)
    components : (k, N)   rows are unit principal axes
    explained_variance : (k,)
    explained_variance_ratio : (k,)   fraction of the total variance (of all N dimensions)
    singular_values : (k,)
    """

    mean: np.ndarray
    components: np.ndarray
    explained_variance: np.ndarray
    explained_variance_ratio: np.ndarray
    singular_values: np.ndarray

    @property
    def n_components(self):
        return self.components.shape[0]

    def _check_k(self, k, what):
        if not is_int(k, 1) or k > self.n_components:
            raise ParameterError(f"{what} must be an int in [1, {self.n_components}]: this PCA was fitted with "
                                 f"{self.n_components} component(s). Got {k!r} instead; refit with "
                                 f"pca(data, n_components={k!r}) for more.")
        return int(k)

    def transform(self, data, n_components=None):
        """Project ``data`` (..., N) onto the first ``n_components`` axes -> (..., k).

        ``n_components``: default all fitted ones; more than were fitted is an error.
        """
        X = np.asarray(data)
        if X.ndim == 0 or X.shape[-1] != self.mean.shape[0]:
            raise ShapeError(f"data has shape {X.shape}; its last axis must be N={self.mean.shape[0]}.")
        k = (self.n_components if n_components is None
             else self._check_k(n_components, "The 'n_components' parameter of PCA.transform"))
        V = self.components[:k]
        return (X - self.mean) @ V.T

    def inverse_transform(self, Z):
        """Map projections (..., k) back to the N-dimensional space (``k`` at most the fitted number)."""
        Z = np.asarray(Z)
        if Z.ndim == 0:
            raise ShapeError("Z must be projections (..., k); got a scalar.")
        self._check_k(Z.shape[-1], f"The last axis of Z (shape {Z.shape})")
        return Z @ self.components[: Z.shape[-1]] + self.mean

    def __repr__(self):
        evr = np.array2string(self.explained_variance_ratio[:5], precision=3)
        return f"PCA(N={self.mean.shape[0]}, k={self.n_components}, explained_variance_ratio[:5]={evr})"


def pca(data, n_components=None):
    """Principal component analysis of ``data`` (..., N), every leading index a sample.

    Parameters
    ----------
    data : array (n, N), (C, T, N) or (B, T, N)
        E.g. condition averages (C, T, N) or all trials (B, T, N). An ensemble's states
        ``(K, B, T, N)`` are refused: unit ``i`` of network ``k`` and unit ``i`` of network ``j``
        are different neurons, so pooling them as one dimension is meaningless; fit
        ``pca(states[k])`` per network. (Data whose leading axes really are all samples of one
        population: ``pca(data.reshape(-1, N))``.) Any float dtype; it is not copied to float64.
    n_components : int, optional
        Keep this many axes (default all ``min(n_samples, N)``).

    Returns
    -------
    PCA

    Raises
    ------
    ShapeError for 4-D or more data, or fewer than 2 samples; NonFiniteError for NaN or inf.

    Notes
    -----
    ``X - mean = U S V^T`` (thin SVD); axes ``V^T[:k]``; explained variance ``S^2 / (n - 1)``;
    ratio ``S^2 / sum(S^2)`` over all singular values, so ratios of a truncated fit sum to < 1.

    For n > N, ``S^2`` and ``V`` are the eigenvalues and eigenvectors (``eigh``, largest first) of
    the scatter matrix ``(X - mean)^T (X - mean)``, accumulated in float64 over row blocks: peak
    memory is about ``N^2`` plus one block of float64, instead of several float64 copies of the
    data and the unused ``U``. The eigenvalues are accurate to about ``1e-16 * S_1^2``, so axes
    with ``S_k`` below ~``1e-8 * S_1`` (under 1e-16 of the variance) are rounding noise, where the
    SVD would resolve them; axes well separated from their neighbours match the SVD's to float64
    rounding (tested to 1e-10).
    """
    X = np.asarray(data)
    if X.dtype.kind not in "biuf":  # e.g. object arrays: convert once, as before
        X = np.asarray(X, dtype=np.float64)
    if X.ndim not in (2, 3):
        hint = (" That is the shape of an ensemble's states (K, N_batch, N_steps, N_rec): unit i of two networks "
                "is not one neuron, so fit each network, pca(states[k]) (or reshape to (-1, N) if every leading "
                "index really is a sample of one population).") if X.ndim >= 4 else ""
        raise ShapeError(f"pca: data has shape {X.shape}; it must be (n_samples, N), (C, T, N) or (B, T, N).{hint}")
    rows = X.reshape(-1, X.shape[-1])  # (n, N)
    _require_finite(rows, X)
    X = rows
    n, N = X.shape
    if n < 2:
        raise ShapeError(f"pca needs at least 2 samples; data has {n}.")
    k_max = min(n, N)
    k = k_max if n_components is None else int(n_components)
    if not 1 <= k <= k_max:
        raise ParameterError(f"The 'n_components' parameter of pca must be in [1, {k_max}]. "
                             f"Got {n_components!r} instead.")
    mean = _column_mean(X)  # (N,)
    if n > N:
        S2, Vt = _axes_by_scatter(X, mean)
    else:
        S, Vt = np.linalg.svd(X.astype(np.float64) - mean, full_matrices=False)[1:]
        S2 = S**2
    # deterministic signs: largest-|.| entry of each axis positive
    signs = np.sign(Vt[np.arange(Vt.shape[0]), np.argmax(np.abs(Vt), axis=1)])
    signs[signs == 0] = 1
    Vt = Vt * signs[:, None]
    total = np.sum(S2)
    ratio = S2 / total if total > 0 else np.zeros_like(S2)
    return PCA(mean, Vt[:k], S2[:k] / (n - 1), ratio[:k], np.sqrt(S2[:k]))


_BLOCK_ELEMENTS = 1 << 21  # float64 entries per row block: 16 MiB


def _row_blocks(X, float64=True):
    """Consecutive row blocks of ``X`` (n, N), ~16 MiB each: float64 copies (rows, N), or views."""
    rows = max(1, _BLOCK_ELEMENTS // max(1, X.shape[1]))
    for start in range(0, X.shape[0], rows):
        block = X[start:start + rows]
        yield block.astype(np.float64) if float64 else block


def _require_finite(rows, data):
    """Raise NonFiniteError naming the bad leading indices of ``data`` (..., N) if its ``rows``
    (n, N) hold NaN or inf."""
    if all(np.isfinite(block).all() for block in _row_blocks(rows, float64=False)):
        return
    bad = np.unique(np.argwhere(~np.isfinite(data))[:, 0])
    raise NonFiniteError(f"pca: data holds {int(np.sum(~np.isfinite(data)))} NaN or inf value(s) (along the first "
                         f"axis at {bad[:10].tolist()}{' ...' if bad.size > 10 else ''}); drop those "
                         "trials or conditions first.")


def _column_mean(X):
    """Mean of the rows of ``X`` (n, N) in float64 -> (N,)."""
    total = np.zeros(X.shape[1])
    for block in _row_blocks(X):
        total += block.sum(axis=0)
    return total / X.shape[0]


def _axes_by_scatter(X, mean):
    """Squared singular values (N,) and axes ``Vt`` (N, N) of ``X - mean``, largest first.

    ``X`` (n, N) with n > N. ``(X - mean)^T (X - mean) = V S^2 V^T``: its eigenvectors are the
    right singular vectors and its eigenvalues the squared singular values.
    """
    scatter = np.zeros((X.shape[1], X.shape[1]))  # (N, N)
    for block in _row_blocks(X):
        block -= mean
        scatter += block.T @ block
    S2, V = np.linalg.eigh(scatter)  # ascending
    # rounding can leave the eigenvalues of a rank-deficient scatter slightly negative
    return np.clip(S2[::-1], 0.0, None), V[:, ::-1].T


def project(data, model_pca, n_components=None):
    """Project single trials ``data`` (B, T, N) onto a fitted :class:`PCA` -> (B, T, k)
    (``n_components`` at most the fitted number)."""
    return model_pca.transform(data, n_components)
