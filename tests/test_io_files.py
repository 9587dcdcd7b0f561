"""File-level I/O: atomic writes, safe reading of PsychRNN files, classification (minirnn.io).

The golden files in tests/data/ were written by real PsychRNN (tests/data/make_psychrnn_golden.py);
nothing here imports TensorFlow.
"""
from __future__ import annotations

import json
import os
import pickle
import sys
import types

import numpy as np
import pytest

from minirnn import io as mio
from minirnn.errors import WeightsFileError

DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data")
GOLDEN = {
    "psychrnn100_basic": dict(arch="basic", dale_ratio=None, dale_out="01", tf=None, slots=12),
    "psychrnn100_basic_dale": dict(arch="basic", dale_ratio=0.75, dale_out="pm1", tf=None,
                                   slots=12),
    "psychrnn100_lstm": dict(arch="lstm", dale_ratio=None, dale_out="01", tf=None, slots=28),
    "psychrnn_master_tanh_dale": dict(arch="basic", dale_ratio=0.5, dale_out="01", tf="tanh",
                                      slots=12),
}
BASIC_KEYS = {"init_state", "W_in", "W_rec", "W_out", "b_rec", "b_out", "Dale_rec", "Dale_out",
              "input_connectivity", "rec_connectivity", "output_connectivity", "dale_ratio"}
LSTM_EXTRA = {"init_hidden", "init_cell", "W_f", "W_i", "W_c", "W_o", "b_f", "b_i", "b_c", "b_o"}


def golden(name):
    return os.path.join(DATA, name + ".npz")


def listdir_tmp(directory):
    return sorted(f for f in os.listdir(directory) if f.endswith(".tmp"))


# ---------------------------------------------------------------------------------------------
# atomic_savez


def test_atomic_savez_roundtrip_appends_suffix(tmp_path):
    arrays = {"W_rec": np.arange(4.0).reshape(2, 2), "W_rec/Adam": np.ones(3, np.float32),
              "minirnn": np.array(json.dumps({"format_version": 1}))}
    final = mio.atomic_savez(tmp_path / "weights", arrays)
    assert final == str(tmp_path / "weights.npz")
    assert os.listdir(tmp_path) == ["weights.npz"]
    back = mio.read_npz(final)
    assert set(back) == set(arrays)
    np.testing.assert_array_equal(back["W_rec"], arrays["W_rec"])
    assert back["W_rec/Adam"].dtype == np.float32
    # a path that already ends in .npz is kept; the file is readable by plain numpy
    final2 = mio.atomic_savez(str(tmp_path / "w2.npz"), arrays)
    assert final2 == str(tmp_path / "w2.npz")
    with np.load(final2, allow_pickle=False) as f:
        assert json.loads(str(f["minirnn"]))["format_version"] == 1


def test_atomic_savez_file_mode_is_not_private(tmp_path):
    final = mio.atomic_savez(tmp_path / "m", {"a": np.zeros(1)})
    umask = os.umask(0)
    os.umask(umask)
    assert os.stat(final).st_mode & 0o777 == 0o666 & ~umask


def test_atomic_savez_failure_leaves_old_file_and_no_temp(tmp_path, monkeypatch):
    path = tmp_path / "weights.npz"
    mio.atomic_savez(path, {"W_rec": np.full((2, 2), 7.0)})
    before = path.read_bytes()

    real_savez = np.savez

    def exploding_savez(file, *args, **kwds):
        file.write(b"PK\x03\x04 half a zip")  # something torn is on disk when it fails
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(np, "savez", exploding_savez)
    with pytest.raises(RuntimeError, match="disk on fire"):
        mio.atomic_savez(path, {"W_rec": np.zeros((2, 2))})
    monkeypatch.setattr(np, "savez", real_savez)

    assert path.read_bytes() == before
    assert listdir_tmp(tmp_path) == []
    assert sorted(os.listdir(tmp_path)) == ["weights.npz"]
    np.testing.assert_array_equal(mio.read_npz(path)["W_rec"], np.full((2, 2), 7.0))


def test_atomic_savez_keyboard_interrupt_cleans_up(tmp_path, monkeypatch):
    def interrupted(file, *args, **kwds):
        raise KeyboardInterrupt

    monkeypatch.setattr(np, "savez", interrupted)
    with pytest.raises(KeyboardInterrupt):
        mio.atomic_savez(tmp_path / "w", {"a": np.zeros(1)})
    assert os.listdir(tmp_path) == []


def test_atomic_savez_missing_directory(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope"):
        mio.atomic_savez(tmp_path / "nope" / "w", {"a": np.zeros(1)})


def name_max(directory) -> int:
    try:
        return os.pathconf(directory, "PC_NAME_MAX")
    except (AttributeError, OSError):
        return 255


def test_atomic_savez_writes_the_longest_name_the_filesystem_allows(tmp_path):
    longest = "w" * (name_max(tmp_path) - len(".npz"))
    final = mio.atomic_savez(tmp_path / longest, {"a": np.zeros(1)})
    assert os.listdir(tmp_path) == [longest + ".npz"]
    np.testing.assert_array_equal(mio.read_npz(final)["a"], np.zeros(1))


def test_check_writable_refuses_a_name_too_long_before_any_work(tmp_path):
    from minirnn.errors import ParameterError

    too_long = "w" * (name_max(tmp_path) - len(".npz") + 1)
    with pytest.raises(ParameterError, match=r"save_weights_path .* is \d+ bytes long, but the filesystem .* allows "
                                             r"at most \d+ bytes in a file name"):
        mio.check_writable(tmp_path / too_long, "save_weights_path")
    mio.check_writable(tmp_path / too_long[1:], "save_weights_path")  # one byte less fits


def test_atomic_savez_through_a_symlink_updates_its_target_and_keeps_the_link(tmp_path):
    target = mio.atomic_savez(tmp_path / "run1.npz", {"a": np.zeros(1)})
    os.symlink("run1.npz", tmp_path / "latest.npz")
    assert mio.atomic_savez(tmp_path / "latest.npz", {"a": np.ones(1)}) == str(tmp_path / "latest.npz")
    assert os.path.islink(tmp_path / "latest.npz") and os.readlink(tmp_path / "latest.npz") == "run1.npz"
    np.testing.assert_array_equal(mio.read_npz(target)["a"], np.ones(1))
    assert listdir_tmp(tmp_path) == []


def test_stale_temporaries_of_a_killed_writer_are_recognised(tmp_path, monkeypatch):
    from minirnn import runs

    monkeypatch.setattr(os, "unlink", lambda path: None)  # the writer dies before it can clean up (SIGKILL)
    for name in ("weights.npz", "run.json", "notes.txt"):
        with pytest.raises(RuntimeError):
            with mio.atomic_open(tmp_path / name) as fh:
                fh.write(b"half")
                raise RuntimeError("killed")
    monkeypatch.undo()
    old_style = ".checkpoint.npz.k3j9x0q1.tmp"  # minirnn before the short temporary names
    (tmp_path / old_style).write_bytes(b"half")
    notes_tmp = [n for n in os.listdir(tmp_path) if mio.is_temporary_of(n, "notes.txt")]
    assert len(notes_tmp) == 1 and len(listdir_tmp(tmp_path)) == 4
    removed = runs.remove_stale_temporaries(tmp_path)
    assert len(removed) == 3 and old_style in removed
    assert listdir_tmp(tmp_path) == notes_tmp  # not a run file's: left alone


def test_the_module_docstring_names_where_psychrnn_layouts_are_converted():
    from minirnn import _model_files
    from minirnn.models.lstm import LSTM

    doc = " ".join(mio.__doc__.split())
    assert "nowhere else" not in doc  # the LSTM's layouts are converted in the model, not here
    assert "LSTM._given_array" in doc and hasattr(LSTM, "_given_array")
    assert ":mod:`minirnn._model_files`" in doc and hasattr(_model_files, "load_weights_for_model")


def test_atomic_savez_compressed(tmp_path):
    final = mio.atomic_savez(tmp_path / "c", {"a": np.zeros(1000)}, compress=True)
    assert os.path.getsize(final) < 1000
    np.testing.assert_array_equal(mio.read_npz(final)["a"], np.zeros(1000))


# ---------------------------------------------------------------------------------------------
# reading the golden PsychRNN files


@pytest.mark.parametrize("name", sorted(GOLDEN))
def test_read_golden_weights_without_tensorflow(name):
    w = mio.read_npz(golden(name))
    assert "tensorflow" not in sys.modules and "keras" not in sys.modules
    expect = GOLDEN[name]
    assert BASIC_KEYS <= set(w)
    if expect["arch"] == "lstm":
        assert LSTM_EXTRA <= set(w)
    for key, value in w.items():
        assert isinstance(value, np.ndarray), key
        if key not in ("dale_ratio", "transfer_function"):
            assert value.dtype == np.float32, key
    if expect["dale_ratio"] is None:
        assert w["dale_ratio"].dtype == object and w["dale_ratio"].shape == ()
        assert w["dale_ratio"].item() is None
    else:
        assert float(w["dale_ratio"]) == expect["dale_ratio"]
    if expect["tf"] is not None:
        assert w["transfer_function"].shape == () and w["transfer_function"].item() == "tanh"
        assert type(w["transfer_function"].item()) is str
    else:
        assert "transfer_function" not in w


@pytest.mark.parametrize("name", sorted(GOLDEN))
def test_classify_golden(name):
    info = mio.classify_weights(mio.read_npz(golden(name)))
    expect = GOLDEN[name]
    assert info["format"] == "psychrnn" and info["meta"] is None
    assert info["architecture"] == expect["arch"]
    assert info["dale_ratio"] == expect["dale_ratio"]
    assert info["dale_out"] == expect["dale_out"]
    assert info["transfer_function"] == expect["tf"]
    assert len(info["optimizer_slots"]) == expect["slots"]
    assert all(s.endswith(("/Adam", "/Adam_1")) for s in info["optimizer_slots"])
    assert not any("/" in k for k in info["weight_keys"])
    assert "W_rec/Adam" in info["optimizer_slots"]


def _numpy_forward(w, x, transfer):
    """REFERENCE.md "Math" / "LSTM step", on the file's effective weights, in float64."""
    if "W_f" in w:
        sig = lambda z: 1.0 / (1.0 + np.exp(-z))  # noqa: E731
        h, c = w["init_hidden"].astype(float), w["init_cell"].astype(float)
        outs, states = [], []
        for k in range(x.shape[1]):
            hin = np.concatenate([h, x[:, k]], axis=1)  # hidden first, then input
            f, i, o = (sig(hin @ w[g] + w[b]) for g, b in
                       (("W_f", "b_f"), ("W_i", "b_i"), ("W_o", "b_o")))
            c = f * c + i * np.tanh(hin @ w["W_c"] + w["b_c"])
            h = o * sig(c)
            states.append(h)
            outs.append(h @ w["W_out"].T + w["b_out"])
        return np.stack(outs, 1), np.stack(states, 1)
    f = {"relu": lambda z: np.maximum(z, 0.0), "tanh": np.tanh}[transfer]
    alpha = 10 / 100
    s = np.tile(w["init_state"].astype(float), (x.shape[0], 1))
    outs, states = [], []
    for k in range(x.shape[1]):
        s = (1 - alpha) * s + alpha * (f(s) @ w["W_rec"].T + x[:, k] @ w["W_in"].T + w["b_rec"])
        states.append(s)
        outs.append(f(s) @ w["W_out"].T + w["b_out"])
    return np.stack(outs, 1), np.stack(states, 1)


@pytest.mark.parametrize("name", sorted(GOLDEN))
def test_golden_io_matches_reference_math(name):
    """The golden outputs are PsychRNN's; a float64 NumPy pass over the saved weights agrees."""
    w = mio.read_npz(golden(name))
    io = mio.read_npz(os.path.join(DATA, name + "_io.npz"))
    assert io["x"].shape == (3, 20, 2)
    assert io["outputs"].dtype == np.float32 and io["states"].dtype == np.float32
    info = mio.classify_weights(w)
    out, states = _numpy_forward(w, io["x"].astype(float), info["transfer_function"] or "relu")
    np.testing.assert_allclose(out, io["outputs"], atol=2e-6, rtol=1e-5)
    np.testing.assert_allclose(states, io["states"], atol=2e-6, rtol=1e-5)


def test_golden_dale_file_invariants():
    w = mio.read_npz(golden("psychrnn100_basic_dale"))
    n_e = int(0.75 * 8)
    assert np.all(np.diag(w["rec_connectivity"]) == 0)  # autapses off
    assert np.all(w["W_rec"][:, :n_e] >= 0) and np.all(w["W_rec"][:, n_e:] <= 0)
    assert np.all(w["W_rec"][w["rec_connectivity"] == 0] == 0)
    assert np.all(w["W_out"][w["output_connectivity"] == 0] == 0)
    assert np.all(w["W_in"] >= 0)
    np.testing.assert_array_equal(np.diag(w["Dale_out"]), [1] * n_e + [-1] * (8 - n_e))
    m = mio.read_npz(golden("psychrnn_master_tanh_dale"))
    np.testing.assert_array_equal(np.diag(m["Dale_out"]), [1, 1, 1, 1, 0, 0, 0, 0])
    assert np.all(m["W_out"][:, 4:] == 0)


def test_read_npz_accepts_path_without_suffix():
    w = mio.read_npz(os.path.join(DATA, "psychrnn100_basic"))
    assert "W_rec" in w


def test_golden_meta_json():
    with open(os.path.join(DATA, "golden_meta.json")) as fh:
        meta = json.load(fh)
    assert meta["_pypi"]["psychrnn"] == "1.0.0"
    for name in GOLDEN:
        assert name in meta and meta[name]["io"]["x"] == [3, 20, 2]


# ---------------------------------------------------------------------------------------------
# the restricted unpickler


class _Evil:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


class _EvalEvil:
    def __reduce__(self):
        return (eval, ("__import__('os').getpid()",))


@pytest.mark.parametrize("payload", ["system", "eval", "list", "str"])
def test_malicious_pickle_is_refused(tmp_path, payload):
    marker = tmp_path / "pwned"
    value = {"system": _Evil(marker), "eval": _EvalEvil(), "list": [1, 2],
             "str": "rm -rf /"}[payload]
    arr = np.empty((), dtype=object)
    arr[()] = value
    path = tmp_path / "evil.npz"
    np.savez(path, W_rec=np.zeros((2, 2)), transfer_function=arr)
    with pytest.raises(WeightsFileError) as err:
        mio.read_npz(path)
    msg = str(err.value)
    assert "transfer_function" in msg and "refuses to unpickle" in msg and "evil.npz" in msg
    assert not marker.exists()


def test_restricted_loads_primitives():
    assert mio.restricted_loads(pickle.dumps(None)) is None
    assert mio.restricted_loads(pickle.dumps(0.75)) == 0.75
    assert mio.restricted_loads(pickle.dumps(3)) == 3
    assert mio.restricted_loads(pickle.dumps(np.float64(0.5), protocol=3)) == 0.5
    for bad in (pickle.dumps(os.system), pickle.dumps({"a": 1}), pickle.dumps(b"xx"),
                b"not a pickle", b"\x80\x03ctensorflow.python.ops.gen_nn_ops\nrelu\n"
                b"X\x01\x00\x00\x00x\x85R."):  # a *call* of relu is refused too
        with pytest.raises(pickle.UnpicklingError):
            mio.restricted_loads(bad)


def _fake_module(monkeypatch, dotted, func_name):
    """Install stand-ins for a TF/Keras module so pickle can reference func by name."""
    parts = dotted.split(".")
    for i in range(1, len(parts) + 1):
        name = ".".join(parts[:i])
        monkeypatch.setitem(sys.modules, name, types.ModuleType(name))
    mod = sys.modules[dotted]

    def func(x):  # pragma: no cover - never called
        return x

    func.__module__, func.__name__, func.__qualname__ = dotted, func_name, func_name
    setattr(mod, func_name, func)
    return func


@pytest.mark.parametrize("module,name,ours", [
    ("tensorflow.python.ops.gen_nn_ops", "relu", "relu"),       # tf.nn.relu, TF 2.x
    ("tensorflow.python.ops.gen_math_ops", "tanh", "tanh"),     # tf.nn.tanh
    ("tensorflow.python.ops.math_ops", "sigmoid", "sigmoid"),   # tf.nn.sigmoid
    ("tensorflow.python.ops.math_ops", "softplus", "softplus"),  # tf.nn.softplus (TF 2.21)
    ("tensorflow.python.ops.array_ops", "identity", "linear"),   # tf.identity
    ("tensorflow_core.python.ops.gen_nn_ops", "relu", "relu"),  # TF 1.15 / 2.0 layout
    ("keras.src.activations.activations", "relu", "relu"),      # tf.keras.activations.relu
    ("keras.src.activations.activations", "linear", "linear"),
    ("tf_keras.src.activations", "tanh", "tanh"),
])
def test_tf_activation_references_map_to_names(tmp_path, monkeypatch, module, name, ours):
    func = _fake_module(monkeypatch, module, name)
    arr = np.empty((), dtype=object)
    arr[()] = func
    path = tmp_path / "tf.npz"
    np.savez(path, W_rec=np.zeros((2, 2)), transfer_function=arr,
             dale_ratio=np.array(None, dtype=object))
    for mod in [m for m in sys.modules if m.split(".")[0] == module.split(".")[0]]:
        monkeypatch.delitem(sys.modules, mod)
    w = mio.read_npz(path)
    assert w["transfer_function"].item() == ours
    assert w["dale_ratio"].item() is None
    assert mio.classify_weights(w)["transfer_function"] == ours


def test_unknown_tf_function_is_refused(tmp_path, monkeypatch):
    func = _fake_module(monkeypatch, "tensorflow.python.ops.gen_nn_ops", "elu")
    arr = np.empty((), dtype=object)
    arr[()] = func
    np.savez(tmp_path / "elu.npz", W_rec=np.zeros((2, 2)), transfer_function=arr)
    with pytest.raises(WeightsFileError, match="transfer_function.*refuses"):
        mio.read_npz(tmp_path / "elu.npz")


def test_custom_python_transfer_function_is_refused(tmp_path):
    arr = np.empty((), dtype=object)
    arr[()] = np.tanh  # a numpy ufunc, not a TF function by reference
    np.savez(tmp_path / "np.npz", W_rec=np.zeros((2, 2)), transfer_function=arr)
    with pytest.raises(WeightsFileError, match="'transfer_function'"):
        mio.read_npz(tmp_path / "np.npz")


# ---------------------------------------------------------------------------------------------
# broken files


def test_missing_file_names_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothing_here"):
        mio.read_npz(tmp_path / "nothing_here.npz")


@pytest.mark.parametrize("how", ["half", "tail", "empty", "garbage", "text", "flip_data",
                                 "flip_header"])
def test_corrupt_files_name_the_file(tmp_path, how):
    with open(golden("psychrnn100_basic"), "rb") as fh:
        good = fh.read()
    if how == "half":
        data = good[: len(good) // 2]
    elif how == "tail":
        data = good[:-10]
    elif how == "empty":
        data = b""
    elif how == "garbage":
        data = os.urandom(2000)
    elif how == "text":
        data = b"W_rec = [[1, 2], [3, 4]]\n"
    else:
        # corrupt a byte inside the first member (data -> CRC error; header -> bad .npy header)
        start = good.index(b"\x93NUMPY")
        pos = start + (140 if how == "flip_data" else 12)  # init_state: 128-byte header + 32
        data = good[:pos] + bytes([good[pos] ^ 0x5A]) + good[pos + 1:]
    path = tmp_path / f"broken_{how}.npz"
    path.write_bytes(data)
    with pytest.raises(WeightsFileError, match=f"broken_{how}.npz"):
        mio.read_npz(path)


def test_npy_file_is_not_a_weights_file(tmp_path):
    np.save(tmp_path / "single.npy", np.zeros(3))
    with pytest.raises(WeightsFileError, match="single.npy"):
        mio.read_npz(tmp_path / "single.npy")


def test_directory_is_not_a_weights_file(tmp_path):
    (tmp_path / "d.npz").mkdir()
    with pytest.raises(WeightsFileError, match="d.npz"):
        mio.read_npz(tmp_path / "d.npz")


# ---------------------------------------------------------------------------------------------
# classify_weights on synthetic dicts


def _basic(n=4, **extra):
    d = {"W_in": np.zeros((n, 2)), "W_rec": np.zeros((n, n)), "W_out": np.zeros((2, n)),
         "Dale_out": np.eye(n)}
    d.update(extra)
    return d


def test_classify_minirnn_format():
    meta = {"format_version": 1, "class": "Basic", "transfer_function": "softplus"}
    info = mio.classify_weights(_basic(minirnn=np.array(json.dumps(meta)),
                                       dale_ratio=np.array(0.8),
                                       transfer_function=np.array("relu", dtype=object)))
    assert info["format"] == "minirnn" and info["meta"] == meta
    assert info["transfer_function"] == "softplus"  # the JSON wins
    assert info["dale_ratio"] == 0.8 and isinstance(info["dale_ratio"], float)
    assert info["optimizer_slots"] == []


def test_classify_psychrnn_variants():
    d = _basic(**{"W_rec/Adam": np.zeros((4, 4)), "W_rec/Adam_1": np.zeros((4, 4)),
                  "W_rec/RMSProp": np.zeros((4, 4)), "dale_ratio": np.array(None, dtype=object)})
    d["Dale_out"] = np.diag([1.0, 1.0, -1.0, -1.0])
    info = mio.classify_weights(d)
    assert info["format"] == "psychrnn" and info["architecture"] == "basic"
    assert info["optimizer_slots"] == ["W_rec/Adam", "W_rec/Adam_1", "W_rec/RMSProp"]
    assert info["dale_ratio"] is None and info["dale_out"] == "pm1"
    d["Dale_out"] = np.diag([1.0, 1.0, 0.0, 0.0])
    assert mio.classify_weights(d)["dale_out"] == "01"
    del d["Dale_out"]
    assert mio.classify_weights(d)["dale_out"] is None
    assert mio.classify_weights(_basic(dale_ratio=np.array(0)))["dale_ratio"] == 0.0
    assert mio.classify_weights(_basic(dale_ratio=np.array(np.nan)))["dale_ratio"] is None
    lstm = {k: np.zeros((6, 4)) for k in ("W_f", "W_i", "W_c", "W_o", "W_rec", "W_out")}
    assert mio.classify_weights(lstm)["architecture"] == "lstm"


def test_classify_rejects_unknown_and_bad_json():
    with pytest.raises(WeightsFileError, match="neither a Basic"):
        mio.classify_weights({"foo": np.zeros(2)})
    with pytest.raises(WeightsFileError, match="minirnn"):
        mio.classify_weights(_basic(minirnn=np.array("{not json")))
    with pytest.raises(WeightsFileError, match="dale_ratio"):
        mio.classify_weights(_basic(dale_ratio=np.array("high", dtype=object)))


def test_a_files_transfer_function_wins_over_an_explicit_one_with_a_warning(tmp_path):
    import warnings

    from minirnn import Basic

    base = {"N_in": 2, "N_rec": 6, "N_out": 2, "dt": 10, "tau": 100, "backend": "numpy"}
    path = Basic(dict(base, seed=1, transfer_function="tanh")).save(str(tmp_path / "w.npz"))
    with pytest.warns(UserWarning, match=r"the file's transfer_function 'tanh' is used, not the given 'relu'"):
        loaded = Basic(dict(base, transfer_function="relu", load_weights_path=path))
    assert loaded.activation.name == "tanh"  # the saved network, as PsychRNN (master) and as for dale_ratio
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the same function, or none given: nothing to say
        assert Basic(dict(base, transfer_function="tanh", load_weights_path=path)).activation.name == "tanh"
        assert Basic(dict(base, load_weights_path=path)).activation.name == "tanh"


def test_an_ensembles_per_network_mask_that_a_file_overrides_warns(tmp_path):
    from minirnn import Basic

    base = {"N_in": 2, "N_rec": 6, "N_out": 2, "dt": 10, "tau": 100, "backend": "numpy"}
    path = Basic(dict(base, seed=1)).save(str(tmp_path / "w.npz"))
    mask = np.ones((6, 6))
    mask[0, 1] = 0
    with pytest.warns(UserWarning, match=r"the given \['rec_connectivity'\] are ignored"):
        Basic(dict(base, load_weights_path=path), n_networks=2, network_params=[{"rec_connectivity": mask}, {}])
