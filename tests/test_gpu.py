"""CuPy backend vs the NumPy reference (skips cleanly without cupy or a CUDA device).

Run where a GPU is: ``PYTHONPATH=. python3 -m pytest -m gpu -q``.
"""
import numpy as np
import pytest

from minirnn import Basic
from minirnn.dynamics import rate
from minirnn.nn.activations import ACTIVATIONS

from tolerances import close

pytestmark = pytest.mark.gpu
DTYPES = (np.float32, np.float64)


@pytest.fixture(scope="module")
def cupy():
    cp = pytest.importorskip("cupy")
    try:
        if cp.cuda.runtime.getDeviceCount() < 1:
            pytest.skip("no CUDA device")
    except Exception as exc:  # no driver
        pytest.skip(f"no usable CUDA device: {exc}")
    return cp


@pytest.fixture
def kernels(cupy):
    from minirnn.backends import cupy_kernels

    yield cupy_kernels
    cupy_kernels.STRATEGY = None


def params(backend, **kw):
    p = dict(N_in=3, N_rec=16, N_out=2, dt=10, tau=100, seed=5, backend=backend, dtype="float64", rec_noise=0.1)
    p.update(kw)
    return p


# ---- the time-loop kernels against rate.recur_forward / recur_backward ---------------------------
def check_time_loops(cupy, kernels, strategy, dtype, act, N, B, T, lead=(), per_trial_x0=False, noise=True):
    """Two calls with new inputs each (the second reuses the compiled kernels), each equal to the reference."""
    rng = np.random.default_rng(N * 1000 + B)
    act = ACTIVATIONS[act]
    arr = lambda *shape, s=1.0: (s * rng.standard_normal(shape)).astype(dtype)  # noqa: E731
    dev = cupy.asarray
    for _ in range(2):
        W = arr(*lead, N, N, s=1.2 / np.sqrt(N))
        drive, dX = arr(*lead, T, B, N), arr(*lead, T, B, N)
        x0 = arr(*lead, B if per_trial_x0 else 1, N, s=0.5)
        alpha = rng.uniform(0.05, 0.3, (*lead, 1, N)).astype(dtype)
        scale = (0.1 * np.sqrt(2 * alpha)).astype(dtype)
        xi = arr(*lead, T, B, N) if noise else None
        X = rate.recur_forward(W, drive, x0, alpha, scale, xi, act)
        D, dx0 = rate.recur_backward(W, X, x0, dX, alpha, act)
        Xg = kernels.rate_forward(dev(W), dev(drive), dev(x0), dev(alpha), dev(scale), None if xi is None else dev(xi),
                                  act, strategy=strategy)
        close(cupy.asnumpy(Xg), X)
        # the backward from the reference states, so that only the backward's own rounding counts
        Dg, dx0g = kernels.rate_backward(dev(W), dev(X), dev(x0), dev(dX), dev(alpha), act, strategy=strategy)
        close(cupy.asnumpy(Dg), D)
        close(cupy.asnumpy(dx0g), dx0)


STRATEGIES = ["loop", "step", "step-cupy"]


@pytest.mark.parametrize("strategy", STRATEGIES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("act", sorted(ACTIVATIONS))
def test_time_loop_kernels_match_the_reference(cupy, kernels, strategy, dtype, act):
    check_time_loops(cupy, kernels, strategy, dtype, act, N=37, B=13, T=9)


@pytest.mark.parametrize("strategy", STRATEGIES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_time_loop_kernels_ensemble_per_trial_initial_state(cupy, kernels, strategy, dtype):
    check_time_loops(cupy, kernels, strategy, dtype, "tanh", N=70, B=20, T=6, lead=(3,), per_trial_x0=True)


@pytest.mark.parametrize("N, B, T", [(1000, 3, 4), (300, 40, 5), (16, 1200, 5), (8, 4300, 3)])
def test_loop_kernel_tilings(cupy, kernels, N, B, T):
    """Several units per thread (N > 256), several trials per block (TPB 2 and 8, B not a multiple)."""
    threads, upt, tpb = kernels.loop_tiling(N, B, 1, 8)
    assert threads % 32 == 0 and threads * upt >= N
    check_time_loops(cupy, kernels, "loop", np.float64, "relu", N=N, B=B, T=T)


@pytest.mark.parametrize("strategy", ["loop", "step"])
@pytest.mark.parametrize("dtype", DTYPES)
def test_fused_loop_modes_match_the_reference(cupy, kernels, strategy, dtype):
    """The fused update's loop modes: b_rec and alpha added in the step, noise made from keys inside it (the
    normals of nn.noise), the rates stored beside the states; dL/dX formed from dL/dR and the L2_firing_rate
    term inside the backward step."""
    from minirnn.nn import noise

    rng = np.random.default_rng(4)
    K, T, B, N = 2, 7, 5, 37
    act = ACTIVATIONS["softplus"]
    arr = lambda *shape, s=1.0: (s * rng.standard_normal(shape)).astype(dtype)  # noqa: E731
    W, drive, dR, x0 = arr(K, N, N, s=1.2 / np.sqrt(N)), arr(K, T, B, N), arr(K, T, B, N), arr(K, 1, N, s=0.5)
    bias, alpha = arr(K, 1, N, s=0.3), rng.uniform(0.05, 0.3, (K, 1, N)).astype(dtype)
    scale, fr = (0.1 * np.sqrt(2 * alpha)).astype(dtype), np.array([0.3, 0.01], dtype)
    key_of = [np.uint64(11), np.uint64(12)]
    xi = np.stack([noise.gaussian_noise(k, (T, B, N), dtype) for k in key_of])
    X = rate.recur_forward(W, drive + bias[:, None], x0, alpha, scale, xi, act)
    R = act.f(X)
    D, dx0 = rate.recur_backward(W, X, x0, (dR + fr[:, None, None, None] * R) * act.df(X), alpha, act)

    dev, a = cupy.asarray, alpha[:, 0]
    keys = dev(np.array([noise.stream_keys(k) for k in key_of], np.uint64))
    Rg = cupy.empty((K, T, B, N), dtype)
    Xg = kernels.forward_loop(act.code, strategy, dev(a[:, :, None] * W), dev(drive), dev(x0), dev(a), dev(1 - a),
                              dev(bias[:, 0]), dev(scale[:, 0]), None, keys, Rg)
    close(cupy.asnumpy(Xg), X)
    close(cupy.asnumpy(Rg), R)
    Dg, dx0g = kernels.backward_loop(act.code, strategy, dev(a[:, :, None] * W), dev(X), dev(x0), dev(dR), dev(a),
                                     dev(1 - a), dev(R), dev(fr), 2)
    close(cupy.asnumpy(Dg), D)
    close(cupy.asnumpy(dx0g), dx0)


def test_unknown_strategy_is_named(cupy, kernels):
    with pytest.raises(ValueError, match="strategy 'graph'"):
        kernels.rate_forward(*(cupy.zeros(s) for s in ((3, 3), (2, 1, 3), (1, 3), (1, 3))), act=ACTIVATIONS["relu"],
                             strategy="graph")


# ---- noise ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", DTYPES)
def test_device_noise_equals_the_cpu_reference(cupy, dtype):
    """The counter-based noise made on the device (kernel and array code) is the NumPy reference's."""
    from minirnn.backends import cupy_kernels
    from minirnn.nn import noise

    key = np.uint64(2026)
    want = noise.gaussian_noise(key, (50, 64, 40), dtype)
    for got in (noise.gaussian_noise(key, (50, 64, 40), dtype, xp=cupy), cupy_kernels.gaussian_noise(key, (50, 64, 40), dtype)):
        assert got.dtype == dtype and got.shape == want.shape
        np.testing.assert_allclose(cupy.asnumpy(got), want, rtol=1e-14 if dtype == np.float64 else 0, atol=0)


def test_device_noise_rare_paths_over_millions(cupy):
    """4 M elements: wedge retries and the tail happen thousands of times; equal up to the last bit of exp/log1p."""
    from minirnn.backends import cupy_kernels
    from minirnn.nn import noise

    key = np.uint64(7)
    want = noise.gaussian_noise(key, 4_000_000)
    got = cupy.asnumpy(cupy_kernels.gaussian_noise(key, 4_000_000))
    assert (np.abs(want) > noise.ZIG_R).sum() > 100  # the tail was taken
    np.testing.assert_allclose(got, want, rtol=1e-14, atol=0)
    assert (got == want).mean() > 0.9999


# ---- the model on the device ---------------------------------------------------------------------
CONFIGS = [{}, {"dale_ratio": 0.75, "autapses": False, "transfer_function": "tanh"},
           {"L2_firing_rate": 0.1, "L1_rec": 0.01, "W_in_train": False, "transfer_function": "softplus"}]


def unfuse(model, fused):
    """The model's CuPy backend with (the default) or without the fused update of cupy_update."""
    assert "rate_loss_and_grads" in model.backend.kernels  # each model has its own backend record
    if not fused:
        model.backend.kernels.pop("rate_loss_and_grads", None)
    return model


@pytest.mark.parametrize("fused", [True, False])
@pytest.mark.parametrize("strategy", STRATEGIES)
@pytest.mark.parametrize("kw", CONFIGS)
def test_cupy_matches_numpy_outputs_and_gradients(cupy, kernels, kw, strategy, fused):
    kernels.STRATEGY = strategy
    rng = np.random.default_rng(0)
    kw = dict(kw, rec_connectivity=(rng.random((16, 16)) < 0.8).astype(float))
    ref, gpu = Basic(params("numpy", **kw)), unfuse(Basic(params("cupy", **kw)), fused)
    assert gpu.backend.name == "cupy"
    x, y = rng.standard_normal((4, 20, 3)), rng.standard_normal((4, 20, 2))
    mask = (rng.random(y.shape) < 0.8).astype(float)
    xi = rng.standard_normal((20, 4, 16))
    for name in ref.raw:
        assert np.array_equal(gpu.backend.to_host(gpu.raw[name]), ref.raw[name])  # same seed, same init
    Zr, _ = ref._forward(ref._check_batch(x), xi)
    Zg, _ = gpu._forward(gpu._check_batch(x), cupy.asarray(xi))
    close(cupy.asnumpy(Zg), Zr)
    lr, gr = ref.loss_and_grads(x, y, mask)  # noise from the same seed: the same keys, the same normals
    lg, gg = gpu.loss_and_grads(x, y, mask)
    close(np.asarray(lg), np.asarray(lr))
    assert set(gg) == set(gr)
    for name in gr:
        close(gg[name], gr[name])


@pytest.mark.parametrize("fused", [True, False])
@pytest.mark.parametrize("strategy", STRATEGIES)
def test_cupy_ensemble_matches_numpy(cupy, kernels, strategy, fused):
    kernels.STRATEGY = strategy
    kw = dict(n_networks=3, seeds=[1, 2, 3], network_params=[{"L2_firing_rate": c} for c in (0.0, 0.2, 0.05)])
    ref, gpu = Basic(params("numpy"), **kw), unfuse(Basic(params("cupy"), **kw), fused)
    rng = np.random.default_rng(1)
    x, y = rng.standard_normal((5, 12, 3)), rng.standard_normal((5, 12, 2))
    lr, gr = ref.loss_and_grads(x, y, np.ones_like(y))
    lg, gg = gpu.loss_and_grads(x, y, np.ones_like(y))
    close(np.asarray(lg), np.asarray(lr))
    for name in gr:
        close(gg[name], gr[name])


@pytest.mark.parametrize("predrawn", [False, True])
@pytest.mark.parametrize("strategy", ["loop", "step"])
def test_fused_update_with_noise_equals_numpy(cupy, kernels, strategy, predrawn, monkeypatch):
    """The fused update's noise from the same keys, made in the loop or drawn before it
    (cupy_update.PREDRAWN_NOISE): the reference's loss and gradients."""
    from minirnn.backends import cupy_update

    kernels.STRATEGY = strategy
    monkeypatch.setattr(cupy_update, "PREDRAWN_NOISE", predrawn)
    ref, gpu = Basic(params("numpy")), unfuse(Basic(params("cupy")), True)
    rng = np.random.default_rng(2)
    x, y = rng.standard_normal((4, 9, 3)), rng.standard_normal((4, 9, 2))
    lr, gr = ref._loss_and_grads(*ref._check_batch(x, y, np.ones_like(y)), np.random.default_rng(5))
    lg, gg = gpu._loss_and_grads(*gpu._check_batch(x, y, np.ones_like(y)), np.random.default_rng(5))
    close(cupy.asnumpy(lg), np.asarray(lr))
    for name in gr:
        close(cupy.asnumpy(gg[name]), gr[name])


@pytest.mark.parametrize("n_networks", [1, 3])
def test_fused_update_replays_its_time_loops_as_cuda_graphs(cupy, kernels, n_networks, monkeypatch):
    """"step" loops of the fused update: eager on the first update, captured on the second, replayed after
    (cuda_graphs), with the noise, the L2_firing_rate term and an ensemble's batched products; the same
    losses and weights as launch by launch."""
    import warnings

    from minirnn.backends import cuda_graphs, cupy_update
    from minirnn.tasks import PerceptualDiscrimination

    kernels.STRATEGY = "step"
    ensemble = dict(n_networks=3, seeds=[1, 2, 3]) if n_networks > 1 else {}

    def trained(graphs):
        monkeypatch.setattr(cuda_graphs, "ENABLED", graphs)
        cupy_update.release()
        before = dict(cuda_graphs.counts)
        model = Basic(params("cupy", N_in=2, L2_firing_rate=0.05), **ensemble)
        task = PerceptualDiscrimination(dt=10, tau=100, T=300, N_batch=8, seed=0)
        with warnings.catch_warnings():
            warnings.simplefilter("error", RuntimeWarning)  # a capture that fails warns
            model.train(task, {"training_iters": 8 * 5, "verbosity": False})
        return model, {name: cuda_graphs.counts[name] - before[name] for name in before}

    graphed, counts = trained(True)
    assert cuda_graphs.failure is None
    assert counts == {"eager": 2, "captured": 2, "replayed": 6}  # forward and backward, five updates
    plain, counts = trained(False)
    assert counts == {"eager": 10, "captured": 0, "replayed": 0}
    close(np.asarray(graphed.history["loss"]), np.asarray(plain.history["loss"]))
    want = plain.get_weights()
    for name, w in graphed.get_weights().items():
        if isinstance(w, np.ndarray) and w.dtype.kind == "f":
            close(w, want[name])
    cupy_update.release()


@pytest.mark.parametrize("n_networks", [1, 3])
@pytest.mark.parametrize("dtype", DTYPES)
def test_products_read_transposed_and_sliced_operands_where_they_lie(cupy, n_networks, dtype):
    """_Gemm.matmul (the fused update's products): a transposed block of rows, a slice of rows, a matrix
    shared by every network, a strided one and networks in reverse order (the last two copied first) give
    a @ b per network; the first three are passed to cuBLAS as they are, not copied (cupy.matmul copies them
    in a batched product)."""
    from minirnn.backends import cupy_kernels

    K, m, k, n = n_networks, 5, 7, 4
    rng = np.random.default_rng(3)
    tall = rng.standard_normal((K, k + 2, m + 3)).astype(dtype)  # a = tall[:, 2:, :m]^T: a transposed block
    wide = rng.standard_normal((K, m, 2 * k)).astype(dtype)  # a = wide[:, :, ::2]: strided columns
    rows = rng.standard_normal((K, k + 3, n + 2)).astype(dtype)  # b = rows[:, 3:, :n]: a block of rows
    shared = rng.standard_normal((1, n, k)).astype(dtype)  # b = shared^T, one matrix for every network
    dev = {name: cupy.asarray(v) for name, v in dict(tall=tall, wide=wide, rows=rows, shared=shared).items()}
    mT = lambda x: x.swapaxes(-1, -2)  # noqa: E731
    cases = [(mT(tall[:, 2:, :m]), rows[:, 3:, :n], mT(dev["tall"][:, 2:, :m]), dev["rows"][:, 3:, :n], True),
             (mT(tall[:, 2:, :m]), mT(shared), mT(dev["tall"][:, 2:, :m]), mT(dev["shared"]), True),
             (wide[:, :, ::2], rows[:, 3:, :n], dev["wide"][:, :, ::2], dev["rows"][:, 3:, :n], False),
             (wide[::-1, :, :k], rows[:, 3:, :n], dev["wide"][::-1, :, :k], dev["rows"][:, 3:, :n], K == 1)]
    gemm = cupy_kernels._Gemm(np.dtype(dtype))
    for a, b, a_dev, b_dev, in_place in cases:
        assert (cupy_kernels._column_major(a_dev, K)[0] is a_dev) == in_place
        assert cupy_kernels._column_major(b_dev, K)[0] is b_dev
        with gemm:
            out = gemm.matmul(a_dev, b_dev, cupy.empty((K, m, n), dtype))
        close(cupy.asnumpy(out), a @ b)
    with gemm:  # no steps to sum over (T = 1 in the update): zeros
        out = gemm.matmul(mT(dev["tall"][:, :0, :m]), dev["rows"][:, :0, :n], cupy.ones((K, m, n), dtype))
    assert not cupy.asnumpy(out).any()


def test_cupy_training_follows_numpy_update_for_update(cupy):
    """Ten Adam updates from the same seed on the same batches: the same weights (float64)."""
    from minirnn.tasks import PerceptualDiscrimination

    def trained(backend):
        model = Basic(params(backend, N_in=2))
        task = PerceptualDiscrimination(dt=10, tau=100, T=300, N_batch=16, seed=0)
        model.train(task, {"training_iters": 16 * 10, "verbosity": False})
        return model

    ref, gpu = trained("numpy"), trained("cupy")
    np.testing.assert_allclose(gpu.history["loss"], ref.history["loss"], rtol=1e-9)
    got = gpu.get_weights()
    for name, w in ref.get_weights().items():
        if isinstance(w, np.ndarray):
            np.testing.assert_allclose(got[name], w, rtol=1e-8, atol=1e-12, err_msg=name)


def test_cupy_trains_in_float32(cupy):
    from minirnn.tasks import PerceptualDiscrimination

    model = Basic(params("cupy", dtype="float32", N_in=2))
    task = PerceptualDiscrimination(dt=10, tau=100, T=500, N_batch=32, seed=0)
    model.train(task, {"training_iters": 32 * 20, "verbosity": False})
    assert all(a.dtype == np.float32 for a in model.raw.values())
    assert isinstance(model.raw["W_rec"], cupy.ndarray)
    assert np.isfinite(model.history["loss"][-1])


def test_paper_minimal_example_on_the_gpu_reaches_accuracy(cupy):
    """The paper's minimal example (Fig. 2E) with backend="cupy": accuracy >= 0.9 on new trials."""
    from minirnn.tasks import PerceptualDiscrimination

    pd = PerceptualDiscrimination(dt=10, tau=100, T=2000, N_batch=128, seed=1)
    network_params = pd.get_task_params()
    network_params.update(name="model", N_rec=50, seed=0, backend="cupy")
    model = Basic(network_params)
    model.train(pd, {"verbosity": False})
    x, y, mask, _ = PerceptualDiscrimination(dt=10, tau=100, T=2000, N_batch=256, seed=123).get_trial_batch()
    output, _ = model.test(x)
    assert isinstance(output, np.ndarray)
    assert pd.accuracy_function(y, output, mask) >= 0.9


def test_cupy_noisy_forward_equals_numpy_from_the_same_seed(cupy):
    ref, gpu = Basic(params("numpy")), Basic(params("cupy"))
    x = np.random.default_rng(1).standard_normal((4, 20, 3))
    Zr, _ = ref._forward(ref._check_batch(x), np.random.default_rng(7))
    Zg, _ = gpu._forward(gpu._check_batch(x), np.random.default_rng(7))
    close(cupy.asnumpy(Zg), Zr)


@pytest.mark.parametrize("dtype", DTYPES)
def test_fused_adam_on_the_device_equals_the_reference(cupy, dtype):
    """Adam's update on cupy arrays (one fused kernel) against NumPy's, per-network learning rates included."""
    from minirnn.nn.optimizers import Adam

    rng = np.random.default_rng(3)
    grads = [{"W": rng.standard_normal((2, 5, 4)).astype(dtype)} for _ in range(3)]
    ref, gpu = Adam(learning_rate=np.array([1e-3, 2e-2]), n_lead=1), Adam(learning_rate=np.array([1e-3, 2e-2]), n_lead=1)
    for g in grads:
        want = ref.compute_update(g)["W"]
        got = gpu.compute_update({"W": cupy.asarray(g["W"])})["W"]
        close(cupy.asnumpy(got), want)
    close(cupy.asnumpy(gpu.state["W"]["v"]), ref.state["W"]["v"])


@pytest.mark.parametrize("variant", ["standard", "psychrnn"])
def test_cupy_lstm_matches_numpy(cupy, variant):
    """The LSTM on the device runs the reference array code on cupy arrays: its loss and gradients are NumPy's.
    (Written after the last device run of session 3: it first runs in the next session with a GPU.)"""
    from minirnn import LSTM

    p = dict(N_in=2, N_rec=6, N_out=3, dt=10, tau=100, dtype="float64", seed=3, lstm_variant=variant)
    ref, gpu = LSTM(dict(p, backend="numpy")), LSTM(dict(p, backend="cupy"))
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((4, 9, 2)), rng.random((4, 9, 3))
    mask = (rng.random(y.shape) > 0.2).astype(float)
    lr, gr = ref.loss_and_grads(x, y, mask)
    lg, gg = gpu.loss_and_grads(x, y, mask)
    close(np.asarray(lg), np.asarray(lr))
    for name in gr:
        close(gg[name], gr[name])
    out_ref, _ = ref.test(x)
    out_gpu, _ = gpu.test(x)
    close(out_gpu, out_ref)
