"""The counter-based recurrent noise (``minirnn.nn.noise``): its distribution, its counter property,
its dtypes and its use by the models (DESIGN.md §5 as amended in README "Design notes")."""
from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from minirnn import Basic
from minirnn.nn import noise


@pytest.fixture(scope="module")
def big():
    return noise.gaussian_noise(np.uint64(7), 4_000_000)


def test_standard_normal_distribution(big):
    assert abs(big.mean()) < 4 / np.sqrt(big.size)  # 4 standard errors
    assert abs(big.var() - 1) < 4 * np.sqrt(2 / big.size)
    assert abs(stats.skew(big)) < 4 * np.sqrt(6 / big.size)
    assert abs(stats.kurtosis(big)) < 4 * np.sqrt(24 / big.size)
    assert stats.kstest(big, "norm").pvalue > 1e-3
    # the tails, which the ziggurat's base strip and Marsaglia's tail method produce
    for edge in (2.0, noise.ZIG_R, 4.0):
        expected = 2 * stats.norm.sf(edge) * big.size
        assert abs((np.abs(big) > edge).sum() - expected) < 5 * np.sqrt(expected)


def test_no_serial_correlation(big):
    for lag in (1, 2, 50, 64):
        r = np.corrcoef(big[:-lag], big[lag:])[0, 1]
        assert abs(r) < 4 / np.sqrt(big.size)


def test_different_keys_are_independent():
    a, b = (noise.gaussian_noise(np.uint64(k), 1_000_000) for k in (1, 2))
    assert abs(np.corrcoef(a, b)[0, 1]) < 4e-3
    assert stats.ks_2samp(a, b).pvalue > 1e-3


def test_element_depends_only_on_key_and_index():
    key = np.uint64(2024)
    whole = noise.gaussian_noise(key, (20, 30, 50))
    np.testing.assert_array_equal(noise.gaussian_noise(key, 12345), whole.ravel()[:12345])
    np.testing.assert_array_equal(noise.gaussian_noise(key, (20, 30, 50)), whole)  # a pure function


def test_rare_paths_are_taken_and_deterministic(big):
    """First tries rejected (wedge retries) and layer-0 rejections (tail) both occur; they are
    recomputed identically."""
    key, key2, key3 = noise.stream_keys(np.uint64(7))
    j = np.arange(200_000, dtype=np.uint64)
    layer, x, accepted = noise._candidate(np, noise._word(key, j))
    assert 0.005 < (~accepted).mean() < 0.02  # ~1.2 % of first tries go on to the retry rounds
    tail = j[(layer == 0) & ~accepted]
    assert tail.size > 10 and np.all(np.abs(big[tail.astype(np.intp)]) > noise.ZIG_R)
    np.testing.assert_array_equal(noise.gaussian_noise(np.uint64(7), 200_000), big[:200_000])


def test_float32_is_the_rounded_float64():
    key = np.uint64(99)
    np.testing.assert_array_equal(noise.gaussian_noise(key, 10_000, np.float32),
                                  noise.gaussian_noise(key, 10_000).astype(np.float32))


def test_draw_key_takes_one_draw():
    rng, ref = np.random.default_rng(5), np.random.default_rng(5)
    key = noise.draw_key(rng)
    assert key == ref.integers(0, 2 ** 64, dtype=np.uint64)
    assert rng.bit_generator.state == ref.bit_generator.state


def test_ziggurat_tables():
    # consecutive layers of equal area v: x_i (f(x_{i-1}) - f(x_i)) = v, with x_i = wi[i] 2^52
    x = noise.ZIG_WI * 2.0 ** 52
    f = np.exp(-0.5 * x ** 2)
    np.testing.assert_allclose(x[2:] * (f[1:-1] - f[2:]), 4.92867323399e-3, rtol=1e-9)
    assert x[-1] == noise.ZIG_R and noise.ZIG_FI[0] == 1.0


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_model_noise_reproducible_and_scaled(backend):
    """A model's noisy forward: the same seed gives the same states; the noise enters with
    sqrt(2 alpha) rec_noise, and the noise Generator advances by one draw per forward."""
    pytest.importorskip("numba") if backend == "numba" else None
    p = dict(N_in=1, N_rec=40, N_out=1, dt=10, tau=100, T=2000, N_batch=64, rec_noise=0.3, seed=1,
             backend=backend, transfer_function="linear", dtype="float64",
             W_rec=np.zeros((40, 40)), W_in=np.zeros((40, 1)), b_rec=np.zeros(40), init_state=np.zeros((1, 40)))
    a, b = Basic(p), Basic(p)
    x = np.zeros((64, 200, 1))
    ra, rb = np.random.default_rng(3), np.random.default_rng(3)
    Xa, Xb = a._run(x, ra)[1], b._run(x, rb)[1]
    np.testing.assert_array_equal(Xa, Xb)
    # linear, no input, x_0 = 0: x_{k+1} = (1 - alpha) x_k + sqrt(2 alpha) sigma xi_k  ->  stationary var sigma^2 / (1 - alpha/2)
    alpha = 0.1
    stationary = 0.3 ** 2 / (1 - alpha / 2)
    assert abs(Xa[:, 100:].var() / stationary - 1) < 0.05
    ref = np.random.default_rng(3)
    ref.integers(0, 2 ** 64, dtype=np.uint64)
    assert ra.bit_generator.state == ref.bit_generator.state


def test_whole_array_path_for_other_array_modules():
    """CuPy takes the branch for array modules other than NumPy (one pass, no chunks): run that branch
    with NumPy's functions under another module object; the numbers must not change."""
    import types

    other = types.ModuleType("numpy_lookalike")
    other.__dict__.update({k: getattr(np, k) for k in dir(np) if not k.startswith("__")})
    key = np.uint64(31337)
    np.testing.assert_array_equal(noise.gaussian_noise(key, (40, 64, 50), np.float32, xp=other),
                                  noise.gaussian_noise(key, (40, 64, 50), np.float32))


def test_public_set_num_threads():
    nk = pytest.importorskip("minirnn.backends.numba_kernels")
    from minirnn.backends import set_num_threads

    try:
        set_num_threads(1)
        assert nk.num_threads() == 1
    finally:
        set_num_threads(None)
    with pytest.raises(ValueError, match="positive integer"):
        set_num_threads(-2)


@pytest.mark.skipif(not hasattr(__import__("os"), "fork"), reason="needs os.fork")
def test_kernels_work_in_a_forked_child():
    """The kernels' thread pool is not inherited by a forked child (it would hang there)."""
    import multiprocessing as mp

    nk = pytest.importorskip("minirnn.backends.numba_kernels")
    key = np.uint64(5)
    want = nk.gaussian_noise(key, 300_000)  # creates the pool in this process
    ctx = mp.get_context("fork")
    with ctx.Pool(1) as pool:
        got = pool.apply_async(nk.gaussian_noise, (key, 300_000)).get(timeout=120)
    np.testing.assert_array_equal(got, want)


def test_bad_thread_count_in_the_environment_is_named(monkeypatch):
    nk = pytest.importorskip("minirnn.backends.numba_kernels")
    monkeypatch.setattr(nk, "_threads", None)
    monkeypatch.setenv("MINIRNN_NUM_THREADS", "two")
    with pytest.raises(ValueError, match="MINIRNN_NUM_THREADS.*'two'"):
        nk.num_threads()
    monkeypatch.setenv("MINIRNN_NUM_THREADS", "3")
    assert nk.num_threads() == 3
