"""PsychRNN's initializer API beyond the draws: ``WeightInitializer(load_weights_path=...)`` on its
own, ``save(path)`` and ``get_transfer_function()`` (psychrnn/backend/initializations.py, master)."""
from __future__ import annotations

import os

import numpy as np
import pytest

from minirnn import AlphaIdentity, Basic, GaussianSpectralRadius, WeightInitializer
from minirnn import io as mio
from minirnn.errors import ShapeError, WeightsFileError

DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data")
MASTER = os.path.join(DATA, "psychrnn_master_tanh_dale.npz")  # PsychRNN master: dale 0.5, tf.nn.tanh


def params(**kw):
    p = dict(N_in=2, N_rec=6, N_out=3, dt=10, tau=100, dtype="float64", seed=3, backend="numpy")
    p.update(kw)
    return p


@pytest.mark.filterwarnings("ignore:.*optimizer-state")
def test_load_weights_path_alone_reads_sizes_dale_and_transfer_function_from_the_file():
    ini = WeightInitializer(load_weights_path=MASTER)  # PsychRNN: no N_in, N_rec, N_out needed
    assert (ini.N_in, ini.N_rec, ini.N_out) == (2, 8, 2)
    assert ini.get_dale_ratio() == 0.5 and ini.get_transfer_function() == "tanh"
    w = mio.read_npz(MASTER)
    for key in ("W_in", "W_rec", "W_out", "b_rec", "b_out", "init_state", "rec_connectivity", "Dale_out"):
        assert np.array_equal(ini.initializations[key], w[key]), key
    assert not any("/" in k for k in ini.initializations)  # no optimizer slots among weights
    # the initializer builds PsychRNN's network: PsychRNN's own outputs (golden file)
    io = np.load(os.path.join(DATA, "psychrnn_master_tanh_dale_io.npz"))
    model = Basic(dict(N_in=2, N_rec=8, N_out=2, dt=10, tau=100, backend="numpy", transfer_function="tanh",
                       initializer=ini))
    np.testing.assert_allclose(model.test(io["x"])[0], io["outputs"], atol=1e-6)
    # sizes given too must match the file's
    with pytest.raises(ShapeError, match="N_rec=5 was given but the weights"):
        WeightInitializer(load_weights_path=MASTER, N_rec=5)
    with pytest.raises(WeightsFileError, match="LSTM"):
        WeightInitializer(load_weights_path=os.path.join(DATA, "psychrnn100_lstm.npz"))


def test_transfer_function_is_kept_for_get_transfer_function():
    assert WeightInitializer(**params(W_rec=np.eye(6))).get_transfer_function() == "relu"  # PsychRNN's default
    assert GaussianSpectralRadius(**params(transfer_function="tanh")).get_transfer_function() == "tanh"


@pytest.mark.parametrize("cls, kw", [(GaussianSpectralRadius, dict(dale_ratio=0.5)), (AlphaIdentity, dict(alpha=0.3)),
                                     (WeightInitializer, dict(W_rec=np.eye(6), transfer_function="softplus"))])
def test_save_writes_a_weights_file_that_loads_back(tmp_path, cls, kw):
    ini = cls(**params(**kw))
    path = ini.save(str(tmp_path / "ini"))
    assert path.endswith(".npz") and os.path.exists(path)
    again = WeightInitializer(load_weights_path=path)
    assert (again.N_in, again.N_rec, again.N_out) == (2, 6, 3)
    assert again.get_dale_ratio() == ini.get_dale_ratio()
    assert again.get_transfer_function() == ini.get_transfer_function()
    for key, value in ini.initializations.items():
        if isinstance(value, np.ndarray):
            assert np.array_equal(again.initializations[key], value), key
    # the file is a weights file: a model loading it is the model built from the initializer
    x = np.random.default_rng(0).standard_normal((2, 7, 2))
    p = params(dale_ratio=ini.get_dale_ratio(), transfer_function=ini.get_transfer_function())
    from_file = Basic(dict(p, load_weights_path=path))
    from_ini = Basic(dict(p, initializer=ini))
    assert np.array_equal(from_file.test(x)[0], from_ini.test(x)[0])


def test_save_leaves_out_a_transfer_function_without_a_name(tmp_path):
    pair = (lambda x: x ** 3, lambda x: 3 * x ** 2)
    ini = WeightInitializer(**params(W_rec=np.eye(6), transfer_function=pair))
    assert ini.get_transfer_function() is pair
    with pytest.warns(UserWarning, match="no name to store"):
        path = ini.save(str(tmp_path / "ini.npz"))
    assert "transfer_function" not in mio.read_npz(path)


@pytest.mark.filterwarnings("ignore:.*optimizer-state")
def test_an_initializer_from_a_psychrnn_100_file_builds_what_load_weights_path_builds():
    """PsychRNN 1.0.0's +-1 Dale_out reaches the model through the initializer too (golden outputs)."""
    path = os.path.join(DATA, "psychrnn100_basic_dale.npz")
    io = np.load(os.path.join(DATA, "psychrnn100_basic_dale_io.npz"))
    base = dict(N_in=2, N_rec=8, N_out=2, dt=10, tau=100, backend="numpy", dtype="float64")
    by_initializer = Basic(dict(base, initializer=WeightInitializer(load_weights_path=path)))
    by_path = Basic(dict(base, load_weights_path=path))
    assert by_initializer.params["dale_ratio"] == 0.75
    np.testing.assert_array_equal(by_initializer.test(io["x"])[0], by_path.test(io["x"])[0])
    np.testing.assert_allclose(by_initializer.test(io["x"])[0], io["outputs"], atol=1e-6)


@pytest.mark.filterwarnings("ignore:.*optimizer-state")
def test_the_initializers_transfer_function_is_the_models_unless_params_say():
    ini = WeightInitializer(load_weights_path=MASTER)  # tanh
    base = dict(N_in=2, N_rec=8, N_out=2, dt=10, tau=100, backend="numpy")
    assert Basic(dict(base, initializer=ini)).activation.name == "tanh"
    assert Basic(dict(base, initializer=ini, transfer_function="relu")).activation.name == "relu"


@pytest.mark.parametrize("bad, message", [
    (dict(spec_rad=0), r"'spec_rad' parameter of GaussianSpectralRadius must be > 0"),  # was silently 1.1
    (dict(spec_rad="2"), r"'spec_rad' parameter of GaussianSpectralRadius must be a finite number"),
    (dict(N_rec=None), r"'N_rec' parameter of GaussianSpectralRadius must be a positive int"),
])
def test_initializer_arguments_are_checked_as_basic_checks_them(bad, message):
    from minirnn.errors import ParameterError

    with pytest.raises(ParameterError, match=message):
        GaussianSpectralRadius(**dict(dict(N_in=2, N_rec=5, N_out=2, seed=1), **bad))
    assert GaussianSpectralRadius(N_in=2, N_rec=5, N_out=2, seed=1, spec_rad=0.5).spec_rad == 0.5
