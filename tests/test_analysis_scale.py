"""Analysis at scale: PCA without float64 copies of the data, condition averages without
``np.add.at``, and near-linear ``unique_points``. Each fast path is checked against the plain
implementation it replaced (copied here as the oracle)."""
import importlib
import tracemalloc

import numpy as np
import pytest

from minirnn.analysis.fixed_points import unique_points
from minirnn.analysis.pca import condition_average, pca
from minirnn.errors import NonFiniteError

pca_module = importlib.import_module("minirnn.analysis.pca")  # the package re-exports pca(), which shadows it


# ============================================================================ oracles (the replaced code)


def svd_pca_reference(X):
    """Thin-SVD PCA of rows ``X`` (n, N) in float64, largest-|.| entry of each axis positive."""
    X = np.asarray(X, dtype=np.float64)
    mean = X.mean(axis=0)
    _, S, Vt = np.linalg.svd(X - mean, full_matrices=False)
    signs = np.sign(Vt[np.arange(Vt.shape[0]), np.argmax(np.abs(Vt), axis=1)])
    signs[signs == 0] = 1
    return mean, Vt * signs[:, None], S


def add_at_condition_sums(X, inv, C):
    """Per-condition sums (C, T, N) by ``np.add.at``, as condition_average computed them before."""
    sums = np.zeros((C, *X.shape[1:]), dtype=np.result_type(X.dtype, np.float64))
    np.add.at(sums, inv, X)
    return sums


def greedy_unique_points(X, q=None, tol=1e-6):
    """The original greedy rule: each row, lowest q first, against every kept row."""
    X = np.asarray(X, dtype=np.float64)
    order = np.argsort(q, kind="stable") if q is not None else np.arange(X.shape[0])
    kept = []
    for i in order:
        if kept:
            K = X[kept]
            d = np.linalg.norm(K - X[i], axis=1)
            if np.any(d <= tol * np.maximum(1.0, np.linalg.norm(K, axis=1))):
                continue
        kept.append(i)
    return np.asarray(kept, dtype=int)


# ============================================================================ PCA


def well_conditioned(rng, shape, N):
    """Data (..., N) with well-separated variances along random orthonormal axes, off-centre."""
    axes = np.linalg.qr(rng.normal(size=(N, N)))[0]
    scales = np.geomspace(10.0, 0.5, N)
    return (rng.normal(size=(*shape, N)) * scales) @ axes.T + rng.normal(size=N)


def assert_matches_reference(p, X, rtol=1e-10):
    rows = X.reshape(-1, X.shape[-1])
    mean, Vt, S = svd_pca_reference(rows)
    k = p.n_components
    np.testing.assert_allclose(p.mean, mean, rtol=rtol, atol=rtol * np.abs(mean).max())
    np.testing.assert_allclose(p.components, Vt[:k], rtol=rtol, atol=rtol)
    np.testing.assert_allclose(p.singular_values, S[:k], rtol=rtol)
    np.testing.assert_allclose(p.explained_variance, S[:k] ** 2 / (rows.shape[0] - 1), rtol=rtol)
    np.testing.assert_allclose(p.explained_variance_ratio, S[:k] ** 2 / np.sum(S**2), rtol=rtol)


@pytest.mark.parametrize("shape", [(7, 60), (900,), (3, 4)])  # scatter path (n > N) and SVD path (n <= N)
def test_pca_matches_thin_svd_reference(shape):
    rng = np.random.default_rng(11)
    X = well_conditioned(rng, shape, 12)
    assert_matches_reference(pca(X), X)
    assert_matches_reference(pca(X, n_components=3), X)


def test_pca_row_blocks_do_not_change_the_result(monkeypatch):
    rng = np.random.default_rng(12)
    X = well_conditioned(rng, (5, 41), 9)  # 205 rows: blocks of 7 rows leave a remainder
    whole = pca(X)
    monkeypatch.setattr(pca_module, "_BLOCK_ELEMENTS", 7 * 9)
    blocked = pca(X)
    np.testing.assert_allclose(blocked.components, whole.components, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(blocked.singular_values, whole.singular_values, rtol=1e-10)
    assert_matches_reference(blocked, X)


def test_pca_of_float32_data_is_the_pca_of_its_float64_values():
    rng = np.random.default_rng(13)
    X32 = well_conditioned(rng, (20, 30), 10).astype(np.float32)
    p = pca(X32)
    assert p.components.dtype == np.float64 and p.mean.dtype == np.float64
    assert_matches_reference(p, X32.astype(np.float64))


def test_pca_never_holds_a_float64_copy_of_the_data(monkeypatch):
    # float32 (256, 64, 32): 2 MiB. The old SVD path peaked at ~6x that (float64 copy, centred copy, U).
    monkeypatch.setattr(pca_module, "_BLOCK_ELEMENTS", 1 << 14)  # 128 KiB blocks
    X = np.random.default_rng(14).standard_normal((256, 64, 32), dtype=np.float32)
    tracemalloc.start()
    try:
        pca(X, n_components=3)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 0.25 * X.nbytes, f"pca peaked at {peak / X.nbytes:.2f}x the float32 input"


def test_pca_still_names_the_trials_that_hold_nan():
    X = np.random.default_rng(15).normal(size=(6, 10, 4))
    X[4, 2, 1] = np.inf
    with pytest.raises(NonFiniteError, match=r"1 NaN or inf value\(s\) \(along the first axis at \[4\]"):
        pca(X)


# ============================================================================ condition averages


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_condition_average_is_bit_identical_to_add_at(dtype):
    rng = np.random.default_rng(21)
    X = rng.standard_normal((97, 5, 3)).astype(dtype)
    cond = rng.integers(0, 6, 97)
    cond[13] = 9  # a condition with a single trial
    labels, means, counts = condition_average(X, cond)
    inv = np.unique(cond, return_inverse=True)[1].ravel()
    sums = add_at_condition_sums(X, inv, len(labels))
    assert means.dtype == np.float64
    np.testing.assert_array_equal(means, sums / counts[:, None, None])
    np.testing.assert_array_equal(counts, np.bincount(inv))


def test_condition_average_with_two_label_columns_and_correct_trials():
    rng = np.random.default_rng(22)
    X = rng.standard_normal((60, 4, 2))
    cond = np.stack([rng.integers(0, 3, 60), rng.integers(0, 2, 60)], axis=1)
    correct = rng.random(60) > 0.3
    labels, means, _ = condition_average(X, cond, correct)
    inv = np.unique(cond[correct], axis=0, return_inverse=True)[1].ravel()
    expected = add_at_condition_sums(X[correct], inv, len(labels)) / np.bincount(inv)[:, None, None]
    np.testing.assert_array_equal(means, expected)


# ============================================================================ unique_points


def points_with_near_duplicates(rng, M, N, tol, scale):
    """Rows (M, N): a few centres, copies of them at distances just inside and just outside
    ``tol * max(1, |centre|)``, and the centres themselves repeated."""
    centres = scale * rng.normal(size=(M // 4, N))
    X = [centres]
    for factor in (0.5, 1 - 1e-12, 1.0, 1 + 1e-12, 1.5):
        src = centres[rng.integers(0, len(centres), M // 8)]
        direction = rng.normal(size=src.shape)
        direction /= np.linalg.norm(direction, axis=1, keepdims=True)
        radius = tol * np.maximum(1.0, np.linalg.norm(src, axis=1, keepdims=True))
        X.append(src + factor * radius * direction)
    X.append(centres[rng.integers(0, len(centres), M // 8)])
    X = np.concatenate(X)
    return X[rng.permutation(len(X))]


@pytest.mark.parametrize("tol, scale", [(1e-6, 1.0), (1e-6, 30.0), (1e-3, 0.3), (0.0, 1.0)])
def test_unique_points_keeps_what_the_greedy_rule_keeps(tol, scale):
    rng = np.random.default_rng(31)
    X = points_with_near_duplicates(rng, 400, 7, tol, scale)
    q = rng.random(len(X))
    q[::5] = q[0]  # ties: the stable order decides
    for qq in (q, None):
        expected = greedy_unique_points(X, qq, tol)
        got = unique_points(X, qq, tol)
        np.testing.assert_array_equal(got, expected)  # same rows, same order
    assert 0 < len(expected) < len(X) or tol == 0.0


def test_unique_points_on_random_distinct_and_clustered_points():
    rng = np.random.default_rng(32)
    distinct = rng.standard_normal((300, 20))
    q = rng.random(300)
    np.testing.assert_array_equal(unique_points(distinct, q), np.argsort(q, kind="stable"))
    clustered = distinct[rng.integers(0, 5, 1000)] + 1e-9 * rng.standard_normal((1000, 20))
    q = rng.random(1000)
    np.testing.assert_array_equal(unique_points(clustered, q), greedy_unique_points(clustered, q))
    assert len(unique_points(clustered, q)) == 5


def test_unique_points_edges():
    assert unique_points(np.zeros((0, 3))).shape == (0,)
    np.testing.assert_array_equal(unique_points(np.ones((4, 2)), np.array([3.0, 1.0, 2.0, 0.0])), [3])
    with pytest.raises(NonFiniteError, match="NaN or inf"):
        unique_points(np.array([[0.0, 1.0], [np.nan, 0.0]]))
