"""CuPy backend vs the NumPy reference (skips cleanly without cupy or a CUDA device)."""
import numpy as np
import pytest

from minirnn import Basic

pytestmark = pytest.mark.gpu


@pytest.fixture(scope="module")
def cupy():
    cp = pytest.importorskip("cupy")
    try:
        if cp.cuda.runtime.getDeviceCount() < 1:
            pytest.skip("no CUDA device")
    except Exception as exc:  # no driver
        pytest.skip(f"no usable CUDA device: {exc}")
    return cp


def params(backend, **kw):
    p = dict(N_in=3, N_rec=16, N_out=2, dt=10, tau=100, seed=5, backend=backend, dtype="float64", rec_noise=0.1)
    p.update(kw)
    return p


@pytest.mark.parametrize("kw", [{}, {"dale_ratio": 0.75, "autapses": False, "transfer_function": "tanh"},
                                {"L2_firing_rate": 0.1, "L1_rec": 0.01}])
def test_cupy_matches_numpy_outputs_and_gradients(cupy, kw):
    ref, gpu = Basic(params("numpy", **kw)), Basic(params("cupy", **kw))
    assert gpu.backend.name == "cupy"
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((4, 20, 3)), rng.standard_normal((4, 20, 2))
    mask = np.ones_like(y)
    xi = rng.standard_normal((20, 4, 16))
    for name in ref.raw:
        assert np.array_equal(gpu.backend.to_host(gpu.raw[name]), ref.raw[name])  # same seed, same init
    Zr, _ = ref._forward(ref._check_batch(x), xi)
    Zg, _ = gpu._forward(gpu._check_batch(x), cupy.asarray(xi))
    np.testing.assert_allclose(cupy.asnumpy(Zg), Zr, rtol=1e-10, atol=1e-12)
    lr, gr = ref.loss_and_grads(x, y, mask)
    lg, gg = gpu.loss_and_grads(x, y, mask)
    assert lg == pytest.approx(lr, rel=1e-10)
    for name in gr:
        np.testing.assert_allclose(gg[name], gr[name], rtol=1e-9, atol=1e-12)


def test_cupy_trains_in_float32(cupy):
    from minirnn.tasks import PerceptualDiscrimination

    model = Basic(params("cupy", dtype="float32", N_in=2))
    task = PerceptualDiscrimination(dt=10, tau=100, T=500, N_batch=32, seed=0)
    model.train(task, {"training_iters": 32 * 20, "verbosity": False})
    assert all(a.dtype == np.float32 for a in model.raw.values())
    assert np.isfinite(model.history["loss"][-1])


def test_cupy_noise_equals_the_cpu_reference(cupy):
    """The counter-based noise made on the device is the NumPy reference's (minirnn.nn.noise)."""
    from minirnn.nn import noise

    key = np.uint64(2026)
    for dtype in (np.float32, np.float64):
        got = noise.gaussian_noise(key, (50, 64, 40), dtype, xp=cupy)
        np.testing.assert_allclose(cupy.asnumpy(got), noise.gaussian_noise(key, (50, 64, 40), dtype), rtol=1e-6, atol=0)


def test_cupy_noisy_forward_equals_numpy_from_the_same_seed(cupy):
    ref, gpu = Basic(params("numpy")), Basic(params("cupy"))
    x = np.random.default_rng(1).standard_normal((4, 20, 3))
    Zr, _ = ref._forward(ref._check_batch(x), np.random.default_rng(7))
    Zg, _ = gpu._forward(gpu._check_batch(x), np.random.default_rng(7))
    np.testing.assert_allclose(cupy.asnumpy(Zg), Zr, rtol=1e-9, atol=1e-12)
