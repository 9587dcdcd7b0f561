"""The rate RNN model: API, errors, reproducibility, dtype, constraints, save/load, training."""
import warnings

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

from minirnn import Basic, NonFiniteError, ParameterError, ShapeError, WeightsFileError, describe_params
from minirnn.tasks import PerceptualDiscrimination


def small_params(**kw):
    p = dict(N_in=2, N_rec=8, N_out=2, dt=10, tau=100, backend="numpy", seed=0, dtype="float64")
    p.update(kw)
    return p


def small_task(seed=0, N_batch=16, T=300):
    return PerceptualDiscrimination(dt=10, tau=100, T=T, N_batch=N_batch, seed=seed)


# ---- errors name the problem ----------------------------------------------------------------
@pytest.mark.parametrize("key, right", [("dale_ration", "dale_ratio"), ("N_recs", "N_rec"),
                                        ("trasnfer_function", "transfer_function")])
def test_near_miss_model_key_suggests_the_right_one(key, right):
    with pytest.raises(ParameterError, match=f"'{key}'.*did you mean '{right}'"):
        Basic(small_params(**{key: 1}))


def test_a_training_option_in_model_params_names_train_params():
    with pytest.raises(ParameterError, match="'learning_rate' is a training parameter.*train_params"):
        Basic(small_params(learning_rate=0.1))


def test_a_wrongly_cased_key_suggests_the_real_one():
    with pytest.raises(ParameterError, match="'n_rec'.*did you mean 'N_rec'"):
        Basic(small_params(n_rec=8))


def test_dale_ratio_without_an_excitatory_unit_is_refused():
    with pytest.raises(ParameterError, match=r"dale_ratio=0.05 with N_rec=8 gives .* = 0 excitatory units"):
        Basic(small_params(dale_ratio=0.05))


@pytest.mark.parametrize("key", ["rec_noise", "L2_rec", "dt"])
def test_a_list_where_one_number_is_needed_points_to_network_params(key):
    with pytest.raises(ParameterError, match=f"'{key}'.*single finite number.*network_params"):
        Basic(small_params(**{key: [0.1, 0.2]}))


def test_ensemble_network_params_are_checked_like_params():
    with pytest.raises(ParameterError, match=r"'L2_rec' parameter of Basic \(network_params\[1\]\) must be >= 0"):
        Basic(small_params(), n_networks=2, network_params=[{}, {"L2_rec": -1}])
    with pytest.raises(ParameterError, match=r"network_params\[0\] sets 'rec_nosie'.*did you mean 'rec_noise'"):
        Basic(small_params(), n_networks=2, network_params=[{"rec_nosie": 0.1}, {}])
    with pytest.raises(ParameterError, match=r"network_params\[0\] must be a dict"):
        Basic(small_params(), n_networks=2, network_params=[5, 6])


def test_a_custom_loss_or_regularizer_of_the_wrong_form_is_named():
    model = Basic(small_params(loss_function=lambda z, y, mask: 1.0))
    x, y, mask, _ = small_task().get_trial_batch()
    with pytest.raises(ParameterError, match="loss_function <lambda> must return a pair \\(value, dz\\)"):
        model.loss_and_grads(x, y, mask)
    ensemble = Basic(small_params(loss_function=lambda z, y, mask: (1.0, z * 0)), n_networks=2)
    with pytest.raises(ParameterError, match=r"returned a value of shape \(\); it must hold one number per network"):
        ensemble.loss_and_grads(x, y, mask)
    with pytest.raises(ParameterError, match="'custom_regularization' parameter must be a callable"):
        Basic(small_params(custom_regularization=5))
    model = Basic(small_params(custom_regularization=lambda w, r: (0.0, {"W_recc": 0})))
    with pytest.raises(ParameterError, match="gradient for 'W_recc'.*did you mean 'W_rec'"):
        model.loss_and_grads(x, y, mask)


def test_task_keys_in_params_are_accepted():
    p = small_task().get_task_params()
    p.update(N_rec=8, name="m")
    model = Basic(p)
    assert model.N_rec == 8


def test_unknown_train_param_suggests():
    model = Basic(small_params())
    with pytest.raises(ParameterError, match="'learning_rat'.*did you mean 'learning_rate'"):
        model.train(small_task(), {"learning_rat": 0.1})


@pytest.mark.parametrize("ratio", [0, 1, 1.5, -0.2, "half"])
def test_dale_ratio_outside_open_interval(ratio):
    with pytest.raises(ParameterError, match="dale_ratio"):
        Basic(small_params(dale_ratio=ratio))


def test_missing_required_key_is_named():
    p = small_params()
    del p["N_rec"]
    with pytest.raises(ParameterError, match="'N_rec'"):
        Basic(p)


@pytest.mark.parametrize("name, shape", [("rec_connectivity", (8, 7)), ("input_connectivity", (2, 8)),
                                         ("output_connectivity", (8, 2))])
def test_mask_of_wrong_shape(name, shape):
    with pytest.raises(ShapeError, match=name):
        Basic(small_params(**{name: np.ones(shape)}))


def test_mask_values_must_be_binary():
    with pytest.raises(ParameterError, match="rec_connectivity"):
        Basic(small_params(rec_connectivity=np.full((8, 8), 0.5)))


def test_inputs_of_wrong_shape_and_nonfinite():
    model = Basic(small_params())
    with pytest.raises(ShapeError, match="N_in=2"):
        model.test(np.zeros((3, 10, 3)))
    x = np.zeros((3, 10, 2))
    x[1, 2, 0] = np.nan
    with pytest.raises(NonFiniteError, match="x"):
        model.test(x)
    with pytest.raises(ShapeError, match="mask"):
        model.loss_and_grads(np.zeros((3, 10, 2)), np.zeros((3, 10, 2)), np.zeros((3, 9, 2)))


def test_tau_per_unit_shape_checked():
    with pytest.raises(ShapeError, match="tau"):
        Basic(small_params(tau=np.ones(5) * 100))


def test_describe_params_lists_options():
    text = describe_params()
    assert "dale_ratio" in text and "training_iters" in text


# ---- reproducibility --------------------------------------------------------------------------
def test_same_seed_same_weights_bit_for_bit():
    a, b = Basic(small_params(seed=7)), Basic(small_params(seed=7))
    c = Basic(small_params(seed=8))
    for name in a.raw:
        assert np.array_equal(a.raw[name], b.raw[name])
    assert not np.array_equal(a.raw["W_rec"], c.raw["W_rec"])


def test_an_ensemble_networks_file_records_the_seed_that_rebuilds_it(tmp_path):
    import json

    from minirnn.io import read_npz

    p = small_params(seed=11)
    ens = Basic(p, n_networks=3)  # network k runs on SeedSequence(11, spawn_key=(k,))
    for k in range(3):
        meta = json.loads(str(read_npz(ens.network(k).save(str(tmp_path / f"net{k}")))["minirnn"]))
        assert meta["seed"] == {"entropy": 11, "spawn_key": [k]}
        again = Basic(dict(p, seed=meta["seed"]))
        for name, value in ens.network(k).raw.items():
            assert np.array_equal(again.raw[name], value), (k, name)
        assert again.rng_noise.bit_generator.state == ens.network(k).rng_noise.bit_generator.state
    odd = np.random.SeedSequence(5, spawn_key=(2, 7), pool_size=8)  # a user's SeedSequence: all of it is kept
    record = Basic(small_params(seed=odd)).metadata()["seed"]
    assert record == {"entropy": 5, "spawn_key": [2, 7], "pool_size": 8}
    assert np.array_equal(Basic(small_params(seed=record)).raw["W_rec"], Basic(small_params(seed=odd)).raw["W_rec"])
    with pytest.raises(ParameterError, match=r"unknown keys \['spawn_kye'\]"):
        Basic(small_params(seed={"entropy": 11, "spawn_kye": [1]}))


def test_a_file_with_the_old_seed_record_still_loads(tmp_path):
    import json

    from minirnn.io import atomic_savez, read_npz

    model = Basic(small_params(seed=4))
    arrays = read_npz(model.save(str(tmp_path / "w")))
    meta = json.loads(str(arrays["minirnn"]))
    meta["seed_entropy"] = str(meta.pop("seed")["entropy"])  # as minirnn wrote it before the seed record
    path = atomic_savez(str(tmp_path / "old"), dict(arrays, minirnn=np.array(json.dumps(meta))))
    again = Basic(small_params(load_weights_path=path))
    assert np.array_equal(again.raw["W_rec"], model.raw["W_rec"])


def test_seed_none_follows_numpy_global_seed():
    np.random.seed(3)
    a = Basic(small_params(seed=None))
    np.random.seed(3)
    b = Basic(small_params(seed=None))
    assert np.array_equal(a.raw["W_rec"], b.raw["W_rec"])


def test_default_init_matches_psychrnn_recipe():
    model = Basic(small_params(N_rec=40))
    W = model.raw["W_rec"]
    assert np.max(np.abs(np.linalg.eigvals(W))) == pytest.approx(1.1, rel=1e-9)
    assert np.all(model.raw["b_rec"] == 0) and np.all(model.raw["b_out"] == 0)
    assert abs(model.raw["init_state"].mean() - 0.1) < 0.01


def test_test_accepts_any_batch_size():
    model = Basic(small_params())
    for B in (1, 5):
        z, s = model.test(np.ones((B, 12, 2)))
        assert z.shape == (B, 12, 2) and s.shape == (B, 12, 8)


# ---- dtype is applied once ------------------------------------------------------------------
@pytest.mark.parametrize("backend", ["numpy", pytest.param("numba", marks=pytest.mark.numba)])
def test_float32_everywhere(backend):
    if backend == "numba":
        pytest.importorskip("numba")
    model = Basic(small_params(dtype="float32", rec_noise=0.1, L2_firing_rate=0.1, L1_rec=0.01, backend=backend))
    assert model.backend.name == backend
    x, y, mask, _ = small_task().generate_batch()
    model.train(small_task(), {"training_iters": 32, "verbosity": False})
    z, states = model.test(x)
    assert z.dtype == np.float32 and states.dtype == np.float32
    _, grads = model.loss_and_grads(x, y, mask)
    assert all(g.dtype == np.float32 for g in grads.values())
    assert all(a.dtype == np.float32 for a in model.raw.values())
    slots = [v for v in model.optimizer.state_dict().values() if isinstance(v, np.ndarray) and v.dtype.kind == "f"]
    assert slots and all(s.dtype == np.float32 for s in slots)


# ---- constraints hold bit for bit after training ----------------------------------------------
def test_dale_masks_and_fixed_weights_hold_after_training():
    rng = np.random.default_rng(0)
    N = 10
    rec_mask = (rng.random((N, N)) > 0.3).astype(float)
    out_mask = np.ones((2, N))
    out_mask[:, 0] = 0
    fixed_rec = np.zeros((N, N))
    fixed_rec[:4, 4:] = 1  # I -> E block fixed
    fixed_in = np.zeros((N, 2))
    fixed_in[0] = 1
    model = Basic(small_params(N_rec=N, dale_ratio=0.6, autapses=False, rec_connectivity=rec_mask,
                               output_connectivity=out_mask, dtype="float32"))
    before = model.get_weights()
    model.train(small_task(), {"training_iters": 16 * 15, "verbosity": False, "learning_rate": 0.05,
                               "fixed_weights": {"W_rec": fixed_rec, "W_in": fixed_in}})
    w = model.get_weights()
    M = rec_mask * (1 - np.eye(N))
    assert np.all(w["W_rec"][M == 0] == 0) and np.all(np.diag(w["W_rec"]) == 0)
    assert np.all(w["W_rec"][:, :6] >= 0) and np.all(w["W_rec"][:, 6:] <= 0)  # E columns +, I columns -
    assert np.all(w["W_in"] >= 0)
    assert np.all(w["W_out"][:, 6:] == 0) and np.all(w["W_out"][:, 0] == 0)  # I units do not project out
    assert np.array_equal(w["W_rec"][fixed_rec == 1], before["W_rec"][fixed_rec == 1])
    assert np.array_equal(w["W_in"][fixed_in == 1], before["W_in"][fixed_in == 1])
    assert not np.array_equal(w["W_rec"], before["W_rec"])  # the rest did train


def test_frozen_parameter_does_not_move():
    model = Basic(small_params(W_rec_train=False, b_out_train=False))
    W, b = model.raw["W_rec"].copy(), model.raw["b_out"].copy()
    model.train(small_task(), {"training_iters": 64, "verbosity": False})
    assert np.array_equal(model.raw["W_rec"], W) and np.array_equal(model.raw["b_out"], b)
    assert "W_rec" not in model.loss_and_grads(*small_task().generate_batch()[:3])[1]


def test_fixed_weights_of_wrong_shape_or_name():
    model = Basic(small_params())
    with pytest.raises(ShapeError, match="W_rec"):
        model.train(small_task(), {"fixed_weights": {"W_rec": np.ones((3, 3))}, "verbosity": False})
    with pytest.raises(ParameterError, match="W_recc.*did you mean 'W_rec'"):
        model.train(small_task(), {"fixed_weights": {"W_recc": np.ones((8, 8))}, "verbosity": False})


# ---- training semantics ---------------------------------------------------------------------
def test_training_iters_counts_trials_and_loss_epoch_records():
    model = Basic(small_params())
    losses, train_time, init_time = model.train(small_task(N_batch=16), {"training_iters": 16 * 20 + 1,
                                                                        "loss_epoch": 5, "verbosity": False})
    assert len(model.history["loss"]) == 21  # ceil(321 / 16)
    assert len(losses) == 4 and train_time > 0 and init_time >= 0


def test_second_train_call_continues():
    model = Basic(small_params())
    model.train(small_task(), {"training_iters": 32, "verbosity": False})
    opt = model.optimizer
    t1 = int(np.asarray(opt.t))
    model.train(small_task(seed=1), {"training_iters": 32, "verbosity": False})
    assert model.optimizer is opt and int(np.asarray(opt.t)) == t1 + 2


def test_nan_loss_stops_and_keeps_last_good_weights():
    model = Basic(small_params())
    good = {k: v.copy() for k, v in model.raw.items()}

    def batches():
        x, y, mask, p = small_task().generate_batch()
        y = y.copy()
        y[0, 0, 0] = np.inf
        while True:
            yield x, y, mask, p

    with pytest.raises(NonFiniteError, match="y"):
        model.train(batches(), {"training_iters": 64, "verbosity": False})
    for k in good:
        assert np.array_equal(model.raw[k], good[k])


def test_diverging_training_stops_with_message():
    model = Basic(small_params(transfer_function="linear", W_rec=np.eye(8) * 1.5))
    with pytest.raises(NonFiniteError, match="update"):
        model.train(small_task(T=2000), {"training_iters": 16 * 50, "verbosity": False, "learning_rate": 1e6,
                                         "clip_grads": False, "optimizer": "sgd"})
    assert all(np.all(np.isfinite(v)) for v in model.raw.values())


def test_diverging_ensemble_names_the_network_and_keeps_every_weight():
    model = Basic(small_params(transfer_function="linear"), n_networks=2)
    tp = {"training_iters": 16 * 50, "verbosity": False, "learning_rate": [1e-4, 1e4], "clip_grads": False,
          "optimizer": "sgd"}
    with pytest.raises(NonFiniteError, match=r"in network\(s\) \[1\] of the ensemble \(last finite losses") as info:
        model.train(small_task(T=2000), tp)
    assert info.value.networks == [1]
    assert all(np.all(np.isfinite(v)) for v in model.raw.values())


@pytest.mark.parametrize("method", ["batch_generator", "get_trial_batch"])
def test_a_task_subclass_that_overrides_its_batches_is_trained_on_them(method):
    """PsychRNN's train(task) draws from task.batch_generator(), which calls get_trial_batch()."""
    served = []

    class Premade(PerceptualDiscrimination):
        def get_trial_batch(self):
            batch = super().get_trial_batch()
            served.append(batch[0])
            return batch

        def batch_generator(self):
            while True:
                yield self.get_trial_batch()

    if method == "get_trial_batch":
        del Premade.batch_generator
    task = Premade(dt=10, tau=100, T=300, N_batch=16, seed=0)
    model = Basic(small_params())
    model.train(task, {"training_iters": 16 * 5, "verbosity": False})
    assert len(served) == 5
    fresh = Basic(small_params())
    assert fresh.loss_and_grads(*PerceptualDiscrimination(dt=10, tau=100, T=300, N_batch=16, seed=0)
                                .get_trial_batch()[:3])[0] == pytest.approx(model.history["loss"][0], rel=1e-12)


def test_verbosity_prints_psychrnns_progress_lines(capsys, tmp_path):
    model = Basic(small_params())
    measure = lambda x, y, mask, output, epoch, losses, verbosity: 0.5  # noqa: E731
    model.train(small_task(), {"training_iters": 16 * 20, "loss_epoch": 10, "performance_measure": measure,
                               "performance_epoch": 20, "save_weights_path": str(tmp_path / "w")})
    out = capsys.readouterr().out.splitlines()
    loss_lines = [line for line in out if line.startswith("Iter ")]
    assert [line.split(",")[0] for line in loss_lines] == ["Iter 160", "Iter 320"]
    assert loss_lines[1] == f"Iter 320, Minibatch Loss= {model.history['loss'][19]:.6f}"
    assert "performance: 0.5" in out and "Optimization finished!" in out
    assert out[-1] == f"Model saved in file: {tmp_path / 'w.npz'}"
    model.train(small_task(), {"training_iters": 16 * 20, "verbosity": False})
    assert capsys.readouterr().out == ""


def test_fixed_weights_refuse_a_transposed_mask_and_skip_non_parameters():
    model = Basic(small_params())  # W_in: (8, 2)
    F = np.zeros((8, 2))
    F[:, 0] = 1
    with pytest.raises(ShapeError, match=r"fixed_weights\['W_in'\] has shape \(2, 8\) but W_in has shape \(8, 2\)"):
        model.train(small_task(), {"training_iters": 16, "verbosity": False, "fixed_weights": {"W_in": F.T}})
    with pytest.raises(ShapeError, match="W_in has shape \\(2, 8\\) but must be \\(8, 2\\)"):
        model.set_weights({"W_in": model.raw["W_in"].T})
    before = model.raw["W_in"].copy()
    with pytest.warns(UserWarning, match="fixed_weights\\['rec_connectivity'\\] is ignored"):
        model.train(small_task(), {"training_iters": 16 * 3, "verbosity": False,
                                   "fixed_weights": {"W_in": F, "rec_connectivity": np.ones((8, 8))}})
    assert np.array_equal(model.raw["W_in"][:, 0], before[:, 0]) and not np.array_equal(model.raw["W_in"], before)
    model.set_weights({"b_rec": np.zeros((1, 8)), "init_state": np.zeros(8)})  # size-1 axes are fine
    assert model.raw["b_rec"].shape == (8,) and model.raw["init_state"].shape == (1, 8)


def test_psychrnns_model_attributes_read_the_params():
    task = small_task()
    model = Basic(dict(task.get_task_params(), N_rec=8, rec_noise=0.05, W_rec_train=False, backend="numpy"))
    assert (model.dt, model.tau, model.N_batch, model.N_steps) == (10, 100, 16, 30)
    assert (model.rec_noise, model.dale_ratio, model.transfer_function, model.W_rec_train) == (0.05, None, "relu", False)
    with pytest.raises(AttributeError, match="no attribute 'N_recs'"):
        model.N_recs


def test_a_task_with_another_dt_and_an_unused_learning_rate_warn():
    from minirnn.nn.optimizers import Adam

    model = Basic(small_params(dt=20))
    with pytest.warns(UserWarning, match=r"task's dt \(10\) differs from the model's \(20\)"):
        model.train(small_task(), {"training_iters": 16, "verbosity": False})
    model = Basic(small_params())
    with pytest.warns(UserWarning, match=r"'learning_rate'\] \(0.1\) is not used.*its own \(0.01\)"):
        model.train(small_task(), {"training_iters": 16, "verbosity": False, "learning_rate": 0.1,
                                   "optimizer": Adam(learning_rate=0.01)})
    assert model.optimizer.learning_rate == 0.01


def test_a_train_call_that_fails_to_start_leaves_optimizer_and_signal_handlers_alone(tmp_path):
    import signal

    model = Basic(small_params())
    model.train(small_task(), {"training_iters": 16 * 2, "verbosity": False})
    adam, handler = model.optimizer, signal.getsignal(signal.SIGINT)
    with pytest.raises(ParameterError, match="blas_threads"):
        model.train(small_task(), {"verbosity": False, "blas_threads": -3, "checkpoint_path": str(tmp_path / "c")})
    (tmp_path / "a_file").write_text("")
    with pytest.raises(ParameterError, match="save_weights_path"):  # its folder cannot be made inside a file
        model.train(small_task(), {"verbosity": False, "optimizer": "sgd", "save_weights_path": str(tmp_path / "a_file" / "w")})
    assert model.optimizer is adam and signal.getsignal(signal.SIGINT) is handler


def test_performance_cutoff_stops_early():
    model = Basic(small_params())
    calls = []

    def measure(x, y, mask, output, epoch, losses, verbosity):
        calls.append(epoch)
        return 1.0 if epoch >= 3 else 0.0

    model.train(small_task(), {"training_iters": 16 * 100, "verbosity": False, "performance_cutoff": 0.9,
                               "performance_measure": measure})
    assert calls[-1] == 3 and len(model.history["loss"]) == 3


# ---- saving and loading -----------------------------------------------------------------------
def test_a_weights_file_missing_parameters_names_them(tmp_path):
    from minirnn.io import read_npz

    weights = read_npz(Basic(small_params()).save(str(tmp_path / "w")))
    np.savez(tmp_path / "partial.npz", **{k: v for k, v in weights.items() if k not in ("b_rec", "init_state")})
    with pytest.raises(WeightsFileError, match=r"has no \['b_rec', 'init_state'\] entries"):
        Basic(small_params(load_weights_path=str(tmp_path / "partial.npz")))


def test_params_that_a_weights_file_overrides_warn(tmp_path):
    path = Basic(small_params(dale_ratio=0.5)).save(str(tmp_path / "w"))
    with pytest.warns(UserWarning, match="the file's dale_ratio 0.5 is used, not the given 0.75"):
        model = Basic(small_params(dale_ratio=0.75, load_weights_path=path))
    assert model.params["dale_ratio"] == 0.5
    with pytest.warns(UserWarning, match=r"the given \['W_rec'\] are ignored"):
        Basic(small_params(W_rec=np.zeros((8, 8)), load_weights_path=path))


def test_save_reload_identical_outputs(tmp_path):
    model = Basic(small_params(dtype="float32", dale_ratio=0.5, transfer_function="tanh",
                               tau=np.linspace(50, 150, 8)))
    model.train(small_task(), {"training_iters": 32, "verbosity": False})
    path = model.save(str(tmp_path / "w"))
    assert path.endswith(".npz")
    p = small_params(dtype="float32", tau=np.linspace(50, 150, 8), load_weights_path=path)
    again = Basic(p)
    assert again.activation.name == "tanh" and again.params["dale_ratio"] == 0.5
    x = small_task().generate_batch()[0]
    assert np.array_equal(model.test(x)[0], again.test(x)[0])
    with np.load(path, allow_pickle=True) as f:
        assert not any("/" in k for k in f.files)  # no optimizer state in a weights file


def test_loading_a_file_trained_with_another_tau_warns_and_keeps_the_params(tmp_path, datadir):
    tau = np.linspace(50, 150, 8)
    path = Basic(small_params(tau=tau)).save(str(tmp_path / "w"))
    with pytest.warns(UserWarning, match=r"Basic: params give dt=10, tau=100 but .*w.npz was trained with dt=10.0, "
                                         r"tau=\[50.0, .*the model runs with the params' dt and tau"):
        model = Basic(small_params(load_weights_path=path))  # the README's reload with the task's params
    assert model.params["tau"] == 100 and np.allclose(model.alpha, 0.1)  # told, not changed
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        Basic(small_params(tau=tau, load_weights_path=path))  # the file's own dt and tau: nothing to say
        Basic(small_params(dt=5, tau=tau / 2, load_weights_path=path))  # the same alpha
        warnings.filterwarnings("ignore", message=".*optimizer-state")
        Basic(dict(N_in=2, N_rec=8, N_out=2, dt=10, tau=50, backend="numpy",  # PsychRNN's file records no tau
                   load_weights_path=str(datadir / "psychrnn100_basic.npz")))


def test_params_update_with_get_weights_builds_same_network():
    model = Basic(small_params(dale_ratio=0.75))
    p = small_params(seed=99)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        p.update(model.get_weights())
        twin = Basic(p)
    x = np.random.default_rng(0).standard_normal((2, 10, 2))
    assert np.array_equal(model.test(x)[0], twin.test(x)[0])


def test_weights_file_of_other_size_is_refused(tmp_path):
    path = Basic(small_params()).save(str(tmp_path / "w.npz"))
    with pytest.raises(WeightsFileError, match="N_rec=9"):
        Basic(small_params(N_rec=9, load_weights_path=path))


@pytest.mark.parametrize("name", ["psychrnn100_basic", "psychrnn100_basic_dale", "psychrnn_master_tanh_dale"])
def test_psychrnn_weight_files_reproduce_psychrnn_outputs(name, datadir):
    io = np.load(datadir / f"{name}_io.npz")
    with pytest.warns(UserWarning, match="optimizer-state"):
        model = Basic(dict(N_in=2, N_rec=8, N_out=2, dt=10, tau=100, backend="numpy",
                           load_weights_path=str(datadir / f"{name}.npz")))
    z, states = model.test(io["x"])
    np.testing.assert_allclose(z, io["outputs"], atol=1e-6)
    np.testing.assert_allclose(states, io["states"], atol=1e-6)


# ---- ensembles --------------------------------------------------------------------------------
def test_ensemble_equals_single_trainings_with_per_network_hyperparameters():
    seeds = [3, 4, 5, 6]
    overrides = [{"rec_noise": 0.01}, {"rec_noise": 0.1, "L2_rec": 0.01}, {"dale_ratio": 0.5, "rec_noise": 0.0},
                 {"tau": 50.0, "L2_firing_rate": 0.1}]
    base = small_params(rec_noise=0.05, N_rec=10)
    lrs = [1e-3, 2e-3, 3e-3, 1e-3]
    with threadpool_limits(1):
        for dale in (False, True):
            nps = [dict(o, dale_ratio=0.5 if dale else None) for o in overrides]
            ens = Basic(base, n_networks=4, seeds=seeds, network_params=nps)
            ens.train(small_task(), {"training_iters": 16 * 8, "verbosity": False, "learning_rate": lrs})
            for k in range(4):
                single = Basic(dict(base, seed=seeds[k], **nps[k]))
                single.train(small_task(seed=seeds[k]), {"training_iters": 16 * 8, "verbosity": False,
                                                         "learning_rate": lrs[k]})
                net = ens.network(k)
                for name in single.raw:
                    np.testing.assert_allclose(net.raw[name], single.raw[name], rtol=1e-12, atol=1e-14)
                assert ens.history["loss"][-1][k] == pytest.approx(single.history["loss"][-1], rel=1e-12)


def test_ensemble_per_network_early_stopping():
    ens = Basic(small_params(), n_networks=3, seeds=[1, 2, 3])

    def measure(x, y, mask, output, epoch, losses, verbosity):
        return np.array([epoch >= 2, epoch >= 4, epoch >= 6], dtype=float)

    start = {k: v.copy() for k, v in ens.raw.items()}
    ens.train(small_task(), {"training_iters": 16 * 50, "verbosity": False, "performance_cutoff": 0.5,
                             "performance_measure": measure})
    assert len(ens.history["loss"]) == 6
    assert np.array_equal(np.asarray(ens.optimizer.t), [2, 4, 6])
    assert not np.array_equal(ens.raw["W_rec"][0], start["W_rec"][0])


def test_an_ensembles_test_returns_a_leading_network_axis_as_documented():
    ens = Basic(small_params(N_out=3), n_networks=4)
    for x in (np.zeros((5, 7, 2)), np.zeros((4, 5, 7, 2))):  # one batch for all, or one per network
        outputs, states = ens.test(x)
        assert outputs.shape == (4, 5, 7, 3) and states.shape == (4, 5, 7, 8)
    doc = " ".join(Basic.test.__doc__.split())
    assert "(K, B, T, N_out)" in doc and "(K, B, T, N_rec)" in doc


def test_ensemble_errors():
    with pytest.raises(ShapeError, match="seeds"):
        Basic(small_params(), n_networks=3, seeds=[1, 2])
    with pytest.raises(ParameterError, match="N_rec"):
        Basic(small_params(), n_networks=2, network_params=[{"N_rec": 3}, {}])
    with pytest.raises(ParameterError, match="dale_ratio"):
        Basic(small_params(), n_networks=2, network_params=[{"dale_ratio": 0.5}, {"dale_ratio": None}])


# ---- the paper's minimal example ------------------------------------------------------------
@pytest.mark.slow
def test_paper_minimal_example_reaches_accuracy():
    pd = PerceptualDiscrimination(dt=10, tau=100, T=2000, N_batch=128, seed=1)
    network_params = pd.get_task_params()
    network_params["name"] = "model"
    network_params["N_rec"] = 50
    network_params["seed"] = 0
    model = Basic(network_params)
    model.train(pd, {"verbosity": False})
    x, y, mask, _ = PerceptualDiscrimination(dt=10, tau=100, T=2000, N_batch=256, seed=123).get_trial_batch()
    output, _ = model.test(x)
    assert pd.accuracy_function(y, output, mask) >= 0.9


@pytest.mark.parametrize("name", ["psychrnn100_basic", "psychrnn100_basic_dale"])
def test_params_update_with_every_key_of_a_psychrnn_file(name, datadir):
    """PsychRNN's SavingLoadingWeights notebook: params.update(dict(np.load(file))) builds the network."""
    io = np.load(datadir / f"{name}_io.npz")
    params = {"N_batch": 50, "N_in": 2, "N_out": 2, "dt": 10, "tau": 100, "T": 2000, "N_steps": 200, "N_rec": 8,
              "name": "dict", "backend": "numpy"}
    params.update(dict(np.load(datadir / f"{name}.npz", allow_pickle=True)))
    with pytest.warns(UserWarning, match="optimizer-state"):
        model = Basic(params)
    np.testing.assert_allclose(model.test(io["x"])[0], io["outputs"], atol=1e-6)


def test_edited_weights_file_loads_the_edit(tmp_path):
    model = Basic(small_params(dtype="float32"))
    path = model.save(str(tmp_path / "w"))
    weights = dict(np.load(path, allow_pickle=True))
    weights["W_rec"][:3, :3] = 0
    np.savez(tmp_path / "edited.npz", **weights)
    edited = Basic(small_params(dtype="float32", load_weights_path=str(tmp_path / "edited.npz")))
    assert np.all(edited.get_weights()["W_rec"][:3, :3] == 0)
    assert np.array_equal(edited.get_weights()["W_rec"][3:], model.get_weights()["W_rec"][3:])


def test_ensemble_default_seeds_reproduce_single_models():
    p = small_params()
    ens = Basic(p, n_networks=3)
    for k in range(3):
        assert np.array_equal(Basic(dict(p, seed=ens.seeds[k])).raw["W_rec"], ens.network(k).raw["W_rec"])
        assert np.array_equal(Basic(dict(p, seed=ens.seeds[k])).raw["W_rec"], ens.network(k).raw["W_rec"])


# ---- training options: each one's effect ------------------------------------------------------
def _blas_threads_now():
    from threadpoolctl import threadpool_info

    return {lib["filepath"]: lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"}


@pytest.mark.parametrize("N_rec, setting, expected", [(8, "auto", 1), (8, 2, 2), (200, "auto", None), (8, 0, None)])
def test_blas_threads_during_training_and_restored_after(N_rec, setting, expected):
    from threadpoolctl import threadpool_limits

    model = Basic(small_params(N_rec=N_rec))
    seen = []

    def measure(x, y, mask, output, epoch, losses, verbosity):
        seen.append(_blas_threads_now())
        return 0.0

    with threadpool_limits(limits=2, user_api="blas"):
        before = _blas_threads_now()
        model.train(small_task(), {"training_iters": 32, "verbosity": False, "blas_threads": setting,
                                   "performance_measure": measure})
        assert _blas_threads_now() == before  # restored
    for threads in seen:
        assert set(threads.values()) == ({expected} if expected is not None else set(before.values()))


def test_blas_threads_must_be_auto_or_a_count():
    with pytest.raises(ParameterError, match="blas_threads"):
        Basic(small_params()).train(small_task(), {"training_iters": 16, "verbosity": False, "blas_threads": -1})


def test_clip_options_change_the_update():
    """clip_norm bounds each parameter's step; clip_global_norm bounds all parameters together."""
    def first_step(**tp):
        model = Basic(small_params(seed=3))
        start = {k: v.copy() for k, v in model.raw.items()}
        model.train(small_task(), dict({"training_iters": 16, "verbosity": False, "optimizer": "sgd",
                                        "learning_rate": 1.0}, **tp))
        return {k: start[k] - model.raw[k] for k in start}

    x, y, mask, _ = small_task().generate_batch()
    _, g = Basic(small_params(seed=3)).loss_and_grads(x, y, mask)
    unclipped = first_step(clip_grads=False)
    for k in g:
        np.testing.assert_allclose(unclipped[k], g[k], rtol=1e-10, atol=1e-14)  # sgd, lr 1: step = gradient
    small = 1e-3
    per_param = first_step(clip_norm=small)
    for k in g:
        assert np.linalg.norm(per_param[k]) == pytest.approx(min(small, np.linalg.norm(g[k])), rel=1e-9)
    global_ = first_step(clip_global_norm=small)
    total = np.sqrt(sum(np.linalg.norm(global_[k]) ** 2 for k in g))
    assert total == pytest.approx(small, rel=1e-9)


def test_training_weights_saved_every_epoch_and_final_weights_saved(tmp_path):
    model = Basic(small_params(dtype="float32"))
    model.train(small_task(), {"training_iters": 16 * 6, "verbosity": False, "save_training_weights_epoch": 2,
                               "training_weights_path": str(tmp_path / "w_"),
                               "save_weights_path": str(tmp_path / "final")})
    assert sorted(p.name for p in tmp_path.glob("w_*.npz")) == ["w_2.npz", "w_4.npz", "w_6.npz"]
    final = Basic(small_params(dtype="float32", load_weights_path=str(tmp_path / "final.npz")))
    for name in model.raw:
        assert np.array_equal(final.get_weights()[name], model.get_weights()[name])


def test_performance_epoch_sets_how_often_performance_is_measured():
    calls = []

    def measure(x, y, mask, output, epoch, losses, verbosity):
        calls.append(epoch)
        return 0.0

    Basic(small_params()).train(small_task(), {"training_iters": 16 * 9, "verbosity": False,
                                               "performance_measure": measure, "performance_epoch": 3})
    assert calls == [3, 6, 9]
