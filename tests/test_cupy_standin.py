"""``backend="cupy"`` on the CPU, through the CuPy stand-in (tests/fake_cupy.py), against ``backend="numpy"``.

With the stand-in installed as ``sys.modules["cupy"]`` (fixture ``cupy``), a ``Basic(backend="cupy")``
runs all of minirnn's CuPy path: device arrays through the models, the optimizer, clipping and the
trainer; ``cupy_kernels`` with its CUDA kernels compiled by ``cuda_emu``, its cuBLAS calls on raw
pointers and its ElementwiseKernels; and ``cupy_update``'s fused update. Here:

- the stand-in itself refuses what CuPy refuses (implicit host copies, host arrays in device
  operations, bad cuBLAS pointers), so that a host/device mix-up in minirnn fails here;
- a small model trains a few updates with each time-loop strategy ("loop", "step", "step-cupy"),
  with and without the fused update, float64 (≤ 1e-10 relative) and float32 (≤ 1e-5), with noise,
  with Dale's principle and connectivity masks, and as an ensemble: its initial weights, loss,
  gradients, outputs, and losses and weights after training equal the NumPy backend's;
- every test of ``tests/test_gpu.py`` (the real-device suite, untouched and still marked ``gpu``)
  runs again here against the stand-in, but for those listed in ``NOT_ON_THE_STANDIN``;
- the simulator with perturbations, and the fixed-point analysis of a CuPy model.

minirnn's kernel caches (``lru_cache``\\ s of the ``cupy_*`` backend modules) are cleared before and
after, so that no stand-in object leaks into other tests.
"""
from __future__ import annotations

import sys

import numpy as np
import pytest

import cuda_emu
import fake_cupy
import test_gpu
from minirnn import Basic
from minirnn.tasks import PerceptualDiscrimination
from tolerances import close

STRATEGIES = ("loop", "step", "step-cupy")
DTYPES = ("float64", "float32")


def clear_kernel_caches():
    """Empty the lru_caches of minirnn's CuPy backend modules (compiled modules, tables, the device's size)."""
    for name, module in list(sys.modules.items()):
        if name.startswith("minirnn.backends.cupy"):
            for value in vars(module).values():
                if hasattr(value, "cache_clear"):
                    value.cache_clear()


@pytest.fixture(scope="module")
def cupy():
    """The stand-in as ``cupy`` for this module (test_gpu.py's tests take it by this name); restored after."""
    from minirnn.backends import cuda_graphs, cupy_kernels, cupy_update

    cuda_emu.gxx()  # skips without a C++ compiler
    libcublas = cuda_graphs.libcublas
    with fake_cupy.installed() as cp:
        clear_kernel_caches()
        reset_graphs()
        library = fake_cupy.Libcublas()
        cuda_graphs.libcublas = lambda: library  # the captured products' cuBLAS, as ctypes would show it
        try:
            yield cp
        finally:
            cuda_graphs.libcublas = libcublas
            reset_graphs()
            clear_kernel_caches()
            cupy_kernels.STRATEGY = None
            cupy_update.release()


def reset_graphs():
    """No plans kept, graphs on, no failure recorded, counts at zero."""
    from minirnn.backends import cuda_graphs, cupy_update

    cupy_update.release()
    cuda_graphs.ENABLED, cuda_graphs.failure = True, None
    cuda_graphs.counts.update(dict.fromkeys(cuda_graphs.counts, 0))


# ---- tests/test_gpu.py, run against the stand-in --------------------------------------------------
NOT_ON_THE_STANDIN = {
    "test_paper_minimal_example_on_the_gpu_reaches_accuracy":
        "trains the paper's example to accuracy: ~390 updates of 128 trials x 200 steps at ~2 s each emulated",
}
for _name, _value in vars(test_gpu).items():  # its tests and its `kernels` fixture (`cupy` is ours)
    if (_name.startswith("test_") or _name == "kernels") and _name not in NOT_ON_THE_STANDIN:
        globals()[_name] = _value


# ---- the stand-in refuses what CuPy refuses --------------------------------------------------------
def test_standin_arrays_stay_on_the_device(cupy):
    a = cupy.arange(6.0).reshape(2, 3)
    assert type(a).__module__.startswith("cupy") and isinstance(a, cupy.ndarray)
    with pytest.raises(TypeError, match="Implicit conversion to a NumPy array is not allowed"):
        np.asarray(a)
    for mixed in (lambda: a + np.ones(3), lambda: np.ones(3) * a, lambda: cupy.ascontiguousarray(np.ones(3)),
                  lambda: cupy.exp(np.ones(3)), lambda: a @ np.ones(3)):
        with pytest.raises(TypeError, match="Unsupported type"):
            mixed()
    with pytest.raises(ValueError, match="non-scalar numpy.ndarray cannot be used for fill"):
        a[0] = np.ones(3)
    total = a.sum()  # a 0-d device array, as CuPy's reductions return
    assert isinstance(total, cupy.ndarray) and total.shape == () and float(total) == 15.0
    assert isinstance(np.exp(a), cupy.ndarray) and isinstance(a[0, 1], cupy.ndarray)
    np.testing.assert_array_equal(cupy.asnumpy(a), np.arange(6.0).reshape(2, 3))
    assert np.isnan(cupy.empty(4).get()).all()  # new memory reads as NaN until written


def test_standin_cublas_checks_its_pointers(cupy):
    """gemm on raw pointers: the product of the NumPy views, and refusals where cuBLAS would fail or misread."""
    cublas, handle = cupy.cuda.cublas, cupy.cuda.device.get_cublas_handle()
    rng = np.random.default_rng(0)
    A, B = cupy.asarray(rng.standard_normal((4, 3))), cupy.asarray(rng.standard_normal((5, 3)))
    C, one, zero = cupy.empty((5, 4)), np.ones(1), np.zeros(1)
    # row-major C = B @ A^T is column-major C^T (4 x 5) = A (op T of the 3 x 4 col-major A^T) times B^T
    gemm = lambda a_ptr, b_ptr, lda=3: cublas.dgemm(handle, 1, 0, 4, 5, 3, one.ctypes.data, a_ptr, lda,  # noqa: E731
                                                    b_ptr, 3, zero.ctypes.data, C.data.ptr, 4)
    gemm(A.data.ptr, B.data.ptr)
    np.testing.assert_allclose(C.get(), B.get() @ A.get().T, rtol=1e-14)
    host = rng.standard_normal((4, 3))
    with pytest.raises(fake_cupy.CUBLASError, match="not inside one device array"):
        gemm(host.ctypes.data, B.data.ptr)
    with pytest.raises(fake_cupy.CUBLASError, match="not inside one device array"):
        gemm(A.data.ptr + 8, B.data.ptr)  # one element past the start: the last column runs off the end
    with pytest.raises(fake_cupy.CUBLASError, match="CUBLAS_STATUS_INVALID_VALUE"):
        gemm(A.data.ptr, B.data.ptr, lda=2)
    A32 = cupy.zeros((8, 3), np.float32)  # as many bytes as A needs in float64
    with pytest.raises(fake_cupy.CUBLASError, match="float32 array; the routine reads float64"):
        gemm(A32.data.ptr, B.data.ptr)


def test_standin_elementwise_kernel(cupy):
    """Broadcasting, a strided output written back, outputs read and written, CuPy's type rule."""
    kernel = cupy.ElementwiseKernel("T x, T y", "T z, T w", "z += x * y; w = z - x;", "fake_cupy_selftest")
    x, y = cupy.arange(6.0).reshape(2, 3), cupy.asarray(np.array([1.0, 2.0, 3.0]))
    buf = cupy.zeros((2, 6))
    z, w = buf[:, ::2], cupy.empty((2, 3))
    z[...] = 1.0
    kernel(x, y, z, w)
    np.testing.assert_array_equal(buf.get()[:, ::2], 1 + np.arange(6.0).reshape(2, 3) * [1, 2, 3])
    np.testing.assert_array_equal(w.get(), buf.get()[:, ::2] - np.arange(6.0).reshape(2, 3))
    assert np.all(buf.get()[:, 1::2] == 0)
    with pytest.raises(TypeError, match="Type is mismatched"):
        kernel(x, y.astype(np.float32))
    with pytest.raises(TypeError, match="Unsupported type"):
        kernel(x, np.ones(3))


# ---- a model trained on the stand-in equals the NumPy backend ---------------------------------------
CONFIGS = {
    "noise": dict(rec_noise=0.1),
    "dale-masks": dict(rec_noise=0.05, dale_ratio=0.75, autapses=False, transfer_function="tanh", L2_firing_rate=0.05),
    "ensemble": dict(rec_noise=0.1, transfer_function="softplus"),
}


def make_models(config, dtype, fused):
    """The same model twice, ``backend="numpy"`` and ``"cupy"``; ``fused=False`` drops cupy_update's update."""
    rng = np.random.default_rng(2)
    N_rec, N_in = 12, 2
    p = dict(N_in=N_in, N_rec=N_rec, N_out=2, dt=10, tau=100, seed=3, dtype=dtype, **CONFIGS[config])
    if config == "dale-masks":
        p.update(rec_connectivity=(rng.random((N_rec, N_rec)) < 0.7).astype(float),
                 input_connectivity=(rng.random((N_rec, N_in)) < 0.8).astype(float),
                 output_connectivity=(rng.random((2, N_rec)) < 0.8).astype(float))
    ensemble = dict(n_networks=3, seeds=[1, 2, 3], network_params=[{"L2_firing_rate": c} for c in (0.0, 0.1, 0.02)]
                    ) if config == "ensemble" else {}
    ref, dev = Basic(dict(p, backend="numpy"), **ensemble), Basic(dict(p, backend="cupy"), **ensemble)
    assert dev.backend.name == "cupy"
    if not fused:
        dev.backend.kernels.pop("rate_loss_and_grads", None)  # this model's own record: the unfused path
    return ref, dev


@pytest.mark.parametrize("fused", [True, False], ids=["fused", "unfused"])
@pytest.mark.parametrize("config", sorted(CONFIGS))
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("strategy", STRATEGIES)
def test_training_on_the_standin_equals_numpy(cupy, kernels, strategy, dtype, config, fused):
    """Initial weights, loss and gradients (noise from the same seed), outputs, then three Adam updates."""
    kernels.STRATEGY = strategy  # test_gpu.py's `kernels` fixture puts it back afterwards
    ref, dev = make_models(config, dtype, fused)
    for name in ref.raw:
        np.testing.assert_array_equal(dev.backend.to_host(dev.raw[name]), ref.raw[name], err_msg=name)
    task = PerceptualDiscrimination(dt=10, tau=100, T=200, N_batch=5, seed=0)
    x, y, mask, _ = task.get_trial_batch()
    x, y, mask = (a.astype(dtype) for a in (x, y, mask))
    (l_ref, g_ref), (l_dev, g_dev) = ref.loss_and_grads(x, y, mask), dev.loss_and_grads(x, y, mask)
    close(np.asarray(l_dev, dtype), np.asarray(l_ref, dtype))
    assert set(g_dev) == set(g_ref)
    for name in g_ref:
        close(g_dev[name], g_ref[name])
    (z_ref, s_ref), (z_dev, s_dev) = ref.test(x), dev.test(x)
    assert isinstance(z_dev, np.ndarray)
    close(z_dev, z_ref)
    close(s_dev, s_ref)
    for model in (ref, dev):
        model.train(PerceptualDiscrimination(dt=10, tau=100, T=200, N_batch=5, seed=1),
                    {"training_iters": 5 * 3, "loss_epoch": 1, "verbosity": False})
    close(np.asarray(dev.history["loss"], dtype), np.asarray(ref.history["loss"], dtype))
    got = dev.get_weights()
    for name, w in ref.get_weights().items():
        if isinstance(w, np.ndarray) and w.dtype.kind == "f":
            close(np.asarray(got[name], w.dtype), w)


# ---- the rest of the CuPy path: the simulator, the analysis ---------------------------------------------
def test_simulator_with_perturbations_on_the_standin_equals_numpy(cupy):
    """BasicSimulator.run_trials with silencing, a lesion and an injection (the reference's loop on device arrays)."""
    from minirnn import BasicSimulator, Perturbation

    p = dict(N_in=2, N_rec=10, N_out=2, dt=10, tau=100, seed=4, rec_noise=0.05, dtype="float64")
    ref, dev = Basic(dict(p, backend="numpy")), Basic(dict(p, backend="cupy"))
    x = PerceptualDiscrimination(dt=10, tau=100, T=200, N_batch=4, seed=1).get_trial_batch()[0]
    perturbation = Perturbation(N_steps=x.shape[1], N_rec=10, dt=10).silence([1, 2], 50, 120).lesion(post=3, pre=4)
    perturbation = perturbation.inject(5, 0.3)
    want = BasicSimulator(rnn_model=ref).run_trials(x, perturbation=perturbation, rng=np.random.default_rng(0))
    got = BasicSimulator(rnn_model=dev).run_trials(x, perturbation=perturbation, rng=np.random.default_rng(0))
    for a, b in zip(got, want):
        assert isinstance(a, np.ndarray)
        close(a, b)


def test_fixed_points_of_a_cupy_model(cupy):
    """The fixed-point analysis of a CuPy model (its map is NumPy, from host copies) finds the NumPy model's points."""
    from minirnn.analysis import find_fixed_points

    p = dict(N_in=2, N_rec=10, N_out=2, dt=10, tau=100, seed=4, transfer_function="tanh")
    model, ref = Basic(dict(p, backend="cupy")), Basic(dict(p, backend="numpy"))
    x = PerceptualDiscrimination(dt=10, tau=100, T=200, N_batch=4, seed=1).get_trial_batch()[0]
    got = find_fixed_points(model, model.test(x)[1], n_inits=8, seed=0)
    want = find_fixed_points(ref, ref.test(x)[1], n_inits=8, seed=0)
    assert len(want.xstar) > 0
    np.testing.assert_allclose(got.xstar, want.xstar, rtol=1e-6, atol=1e-8)


# ---- CUDA graphs (minirnn.backends.cuda_graphs) on the stand-in -------------------------------------
def test_standin_capture_refuses_cupys_cublas_and_records_the_library_calls(cupy):
    """As CuPy: its cuBLAS binding raises while the stream captures; the library itself (ctypes) is recorded,
    and a replay computes with the arrays' contents at replay time."""
    cublas, lib = cupy.cuda.cublas, fake_cupy.Libcublas()
    handle = cublas.create()
    A, B, C = cupy.asarray(np.eye(3)), cupy.asarray(np.arange(9.0).reshape(3, 3)), cupy.empty((3, 3))
    one, zero = np.ones(1), np.zeros(1)
    args = (0, 0, 3, 3, 3, one.ctypes.data, A.data.ptr, 3, B.data.ptr, 3, zero.ctypes.data, C.data.ptr, 3)
    stream = cupy.cuda.Stream(non_blocking=True)
    with stream:
        cublas.setStream(handle, stream.ptr)
        stream.begin_capture()
        with pytest.raises(NotImplementedError, match="during stream capture is currently unsupported"):
            cublas.dgemm(handle, *args)
        assert lib.cublasDgemm_v2(handle, *args) == 0
        graph = stream.end_capture()
    assert np.isnan(C.get()).all()  # recorded, not run
    B[...] = 2.0
    graph.launch()
    np.testing.assert_array_equal(C.get(), np.full((3, 3), 2.0))
    with pytest.raises(RuntimeError, match="default"):
        cupy.cuda.Stream(null=True).begin_capture()


def test_standin_graph_replay_refuses_freed_memory(cupy, kernels):
    """A graph keeps addresses: replaying a launch whose array was freed fails on the stand-in."""
    rates0 = kernels._module("step", "float64").get_function("rates0")
    x0, r = cupy.zeros((1, 1, 4)), cupy.empty((1, 2, 4))
    stream = cupy.cuda.Stream(non_blocking=True)
    with stream:
        stream.begin_capture()
        rates0((1,), (32,), (x0, np.int32(1), r, np.int32(4), np.uint64(8), np.uint64(8)))
        with pytest.raises(RuntimeError, match="does not capture an allocation"):
            cupy.empty(3)
        graph = stream.end_capture()
    graph.launch()
    np.testing.assert_array_equal(r.get(), np.zeros((1, 2, 4)))
    del r
    with pytest.raises(RuntimeError, match="not live device memory"):
        graph.launch()


def test_a_capture_that_fails_warns_once_and_the_loops_run_eagerly(cupy, kernels, monkeypatch):
    from minirnn.backends import cuda_graphs

    kernels.STRATEGY = "step"
    monkeypatch.setattr(cuda_graphs, "libcublas", lambda: None)  # as where no cuBLAS library can be found
    reset_graphs()
    models = []
    try:
        for graphs in (True, False):
            monkeypatch.setattr(cuda_graphs, "ENABLED", graphs)
            model = Basic(dict(N_in=2, N_rec=8, N_out=2, dt=10, tau=100, seed=3, rec_noise=0.1, backend="cupy"))
            task = PerceptualDiscrimination(dt=10, tau=100, T=200, N_batch=4, seed=1)
            if graphs:
                with pytest.warns(RuntimeWarning, match="CUDA graphs are off for this process .*cuBLAS library"):
                    model.train(task, {"training_iters": 4 * 4, "verbosity": False})
            else:
                model.train(task, {"training_iters": 4 * 4, "verbosity": False})
            models.append(model)
        assert "cuBLAS library" in cuda_graphs.failure
        assert cuda_graphs.counts["captured"] == cuda_graphs.counts["replayed"] == 0
        np.testing.assert_array_equal(models[0].history["loss"], models[1].history["loss"])
    finally:
        reset_graphs()


def test_plans_are_kept_per_configuration_and_released(cupy, kernels, monkeypatch):
    """One plan (buffers and loops) per configuration, the last PLANS_KEPT of them; release() drops them."""
    from minirnn.backends import cupy_update

    kernels.STRATEGY = "step"
    monkeypatch.setattr(cupy_update, "PLANS_KEPT", 2)
    cupy_update.release()
    rng = np.random.default_rng(0)
    model = Basic(dict(N_in=2, N_rec=8, N_out=2, dt=10, tau=100, seed=3, backend="cupy"))
    for B, T in ((3, 5), (3, 5), (4, 5), (3, 6)):
        x, y = rng.standard_normal((B, T, 2)), rng.standard_normal((B, T, 2))
        model.loss_and_grads(x, y, np.ones_like(y))
    sizes = [(key[1], key[2]) for key in cupy_update._plans]  # (T, B) of each configuration, oldest first
    assert sizes == [(5, 4), (6, 3)]
    cupy_update.release()
    assert not cupy_update._plans


@pytest.mark.parametrize("strategy", ["loop", "step"])
@pytest.mark.parametrize("tf32", ["0", "1"])
def test_every_product_of_the_fused_update_follows_cupy_tf32(cupy, kernels, monkeypatch, strategy, tf32):
    """CUPY_TF32=1 (CuPy's switch) puts every cuBLAS call of a float32 update in TF32 math mode: the time
    loops' products (on their own handle, captured into graphs too) and the gradients' products (on CuPy's
    handle, whose mode is put back after); unset or 0, strict float32 everywhere."""
    from minirnn.backends import cupy_update

    monkeypatch.setenv("CUPY_TF32", tf32)
    kernels.STRATEGY = strategy
    cupy_update.release()  # plans made now read the switch
    modes = []
    gemm = fake_cupy._gemm

    def recording(dtype, routine, handle, *args):
        modes.append(fake_cupy._handle(handle)["math_mode"])
        return gemm(dtype, routine, handle, *args)

    monkeypatch.setattr(fake_cupy, "_gemm", recording)
    model = Basic(dict(N_in=2, N_rec=8, N_out=2, dt=10, tau=100, T=80, N_batch=4, seed=3, backend="cupy",
                       dtype="float32", rec_noise=0.05))
    model.train(PerceptualDiscrimination(dt=10, tau=100, T=80, N_batch=4, seed=0),
                {"training_iters": 4 * 3, "verbosity": False})
    assert len(modes) >= 3 * 6  # at least the six gradient products of each update
    assert set(modes) == {3 if tf32 == "1" else 0}
    assert fake_cupy._handle(cupy.cuda.device.get_cublas_handle())["math_mode"] == 0
    cupy_update.release()
