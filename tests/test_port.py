"""port.py (tutorials/psychrnn_notebooks): PsychRNN names and TensorFlow optimizers port faithfully.

The shipped notebooks and the basic substitutions are checked in test_tutorials.py; here: the LSTM
cell a ported script trains, PsychRNN's other backend names, the optimizer arguments (names,
positions, values), and the reasons given for what cannot be ported.
"""
from __future__ import annotations

import importlib.util
import pathlib

import numpy as np
import pytest

import minirnn
from minirnn.nn import optimizers

ROOT = pathlib.Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("psychrnn_port_tests", ROOT / "tutorials" / "psychrnn_notebooks" / "port.py")
port = importlib.util.module_from_spec(spec)
spec.loader.exec_module(port)


def run(code: str) -> dict:
    namespace = {}
    exec(compile(code, "<ported>", "exec"), namespace)  # noqa: S102 - the ported code under test
    return namespace


# ---- PsychRNN's backend names ------------------------------------------------------------------


@pytest.mark.parametrize("line, ported", [
    ("from psychrnn.backend.models.lstm import LSTM", "from minirnn import PsychRNNLSTM as LSTM"),
    ("  from psychrnn.backend.models.lstm import LSTM as L", "  from minirnn import PsychRNNLSTM as L"),
    ("from psychrnn.backend.models.basic import Basic, BasicScan", "from minirnn import Basic, BasicScan"),
    ("from psychrnn.backend.simulation import Simulator", "from minirnn import Simulator"),
    ("from psychrnn.backend.simulation import BasicSimulator, relu, sigmoid",
     "from minirnn.simulate import BasicSimulator, relu, sigmoid"),
    ("from psychrnn.backend.initializations import WeightInitializer, GaussianSpectralRadius, AlphaIdentity",
     "from minirnn import WeightInitializer, GaussianSpectralRadius, AlphaIdentity"),
    ("from psychrnn.backend.curriculum import Curriculum, default_metric",
     "from minirnn import Curriculum, default_metric"),
])
def test_backend_imports_port_to_minirnn_names(line, ported):
    assert port.port_line(line) == ported
    run(ported.strip())  # it imports


def test_a_ported_lstm_is_psychrnns_cell():
    ns = run(port.port_line("from psychrnn.backend.models.lstm import LSTM"))
    model = ns["LSTM"](dict(N_in=2, N_out=2, N_rec=12, dt=10, tau=100, N_batch=16, name="lstm", seed=4))
    assert model.lstm_variant == "psychrnn"  # h' = o * sigmoid(c'), as PsychRNN's LSTM
    assert isinstance(model, minirnn.LSTM)
    assert minirnn.LSTM(dict(N_in=2, N_out=2, N_rec=3, dt=10, tau=100)).lstm_variant == "standard"
    ns = run(port.port_line("from psychrnn.backend.models.basic import BasicScan"))
    assert ns["BasicScan"] is minirnn.Basic  # PsychRNN's Basic computed with tf.scan: the same model


@pytest.mark.parametrize("line, name", [
    ("from psychrnn.backend.regularizations import Regularizer", "Regularizer"),
    ("from psychrnn.backend.loss_functions import LossFunction", "LossFunction"),
])
def test_tensorflow_graph_classes_are_reported_with_the_reason(tmp_path, line, name):
    assert port.port_line(line) == line
    assert "TensorFlow" in port.why_unported(line) and name in port.why_unported(line)
    script = tmp_path / "script.py"
    script.write_text(f"{line}\nfrom psychrnn.backend.models.basic import Basic\n")
    target, unported = port.port_file(script, tmp_path / "out")
    assert unported == [line]
    text = target.read_text()
    assert f"NOT PORTED (still TensorFlow / psychrnn): `{line}`: {name}: PsychRNN's {name}" in text
    assert port.main([str(script), "-o", str(tmp_path / "out2")]) == 1


def test_unknown_backend_name_is_reported():
    line = "from psychrnn.backend.simulation import BasicSimulator, Foo"
    assert port.port_line(line) == line
    assert "'Foo'" in port.why_unported(line)


# ---- TensorFlow optimizers: the same optimizer, the same values ---------------------------------


@pytest.mark.parametrize("call, ported, cls, values", [
    ("tf.compat.v1.train.AdamOptimizer(learning_rate=0.01)", "Adam(learning_rate=0.01)", optimizers.Adam,
     dict(learning_rate=0.01, beta1=0.9, beta2=0.999, epsilon=1e-8)),
    ("tf.compat.v1.train.AdamOptimizer(0.01, 0.8, 0.99, 1e-7)",
     "Adam(learning_rate=0.01, beta1=0.8, beta2=0.99, epsilon=1e-7)", optimizers.Adam,
     dict(learning_rate=0.01, beta1=0.8, beta2=0.99, epsilon=1e-7)),
    ("tf.train.AdamOptimizer()", "Adam()", optimizers.Adam, dict(learning_rate=0.001)),  # TF1's defaults
    ("tf.compat.v1.train.MomentumOptimizer(0.05, momentum=0.5)", "Momentum(learning_rate=0.05, momentum=0.5)",
     optimizers.Momentum, dict(learning_rate=0.05, momentum=0.5, nesterov=False)),
    ("tf.compat.v1.train.MomentumOptimizer(0.05, 0.5, False, use_nesterov=True)",
     "Momentum(learning_rate=0.05, momentum=0.5, nesterov=True)", optimizers.Momentum,
     dict(learning_rate=0.05, momentum=0.5, nesterov=True)),
    ("tf.compat.v1.train.GradientDescentOptimizer(learning_rate=0.1)", "SGD(learning_rate=0.1)", optimizers.SGD,
     dict(learning_rate=0.1)),
    ("tf.compat.v1.train.RMSPropOptimizer(0.01, 0.95, 0.1, 1e-6, centered=False)",
     "RMSProp(learning_rate=0.01, decay=0.95, momentum=0.1, epsilon=1e-6)", optimizers.RMSProp,
     dict(learning_rate=0.01, decay=0.95, momentum=0.1, epsilon=1e-6)),
    ("tf.compat.v1.train.RMSPropOptimizer(learning_rate=lr * 2)", "RMSProp(learning_rate=lr * 2)",
     optimizers.RMSProp, dict(learning_rate=0.02, decay=0.9, momentum=0.0, epsilon=1e-10)),
])
def test_tensorflow_optimizers_keep_their_arguments(call, ported, cls, values):
    line = f"train_params['optimizer'] = {call}  # comment"
    assert port.port_line(line) == f"train_params['optimizer'] = {ported}  # comment"
    ns = run(f"{port.optimizer_import([cls.__name__])}\nlr = 0.01\ntrain_params = {{}}\n{port.port_line(line)}")
    opt = ns["train_params"]["optimizer"]
    assert type(opt) is cls
    for key, value in values.items():
        assert getattr(opt, key) == value, key


@pytest.mark.parametrize("call, reason", [
    ("tf.compat.v1.train.AdamOptimizer(0.01, name='opt')", "has no name"),
    ("tf.compat.v1.train.GradientDescentOptimizer(0.1, True)", "use_locking=True"),
    ("tf.compat.v1.train.RMSPropOptimizer(0.01, centered=True)", "centered=True"),
    ("tf.compat.v1.train.AdamOptimizer(**kwargs)", "**kwargs"),
    ("tf.compat.v1.train.MomentumOptimizer(0.1)", "without ['momentum']"),
    ("tf.compat.v1.train.AdamOptimizer(0.01, amsgrad=True)", "no argument 'amsgrad'"),
])
def test_optimizer_arguments_without_a_minirnn_counterpart_are_reported_not_dropped(call, reason):
    line = f"opt = {call}"
    assert port.port_line(line) == line  # left as TensorFlow, so it is reported
    assert reason in port.why_unported(line)


def test_two_optimizers_on_a_line_one_unported():
    line = ("a, b = tf.compat.v1.train.AdamOptimizer(name='x'), "
            "tf.compat.v1.train.GradientDescentOptimizer(0.5)")
    assert port.port_line(line) == "a, b = tf.compat.v1.train.AdamOptimizer(name='x'), SGD(learning_rate=0.5)"


SCRIPT = """\
import numpy as np
import tensorflow as tf
from psychrnn.backend.models.lstm import LSTM
from psychrnn.tasks.perceptual_discrimination import PerceptualDiscrimination

pd = PerceptualDiscrimination(dt=10, tau=100, T=200, N_batch=8)
params = pd.get_task_params()
params['name'] = 'model'
params['N_rec'] = 5
model = LSTM(params)
before = model.get_weights()
train_params = {'training_iters': 16, 'verbosity': False,
                'optimizer': tf.compat.v1.train.MomentumOptimizer(0.05, momentum=0.5)}
losses, _, _ = model.train(pd, train_params)
"""


def test_ported_script_trains_with_the_scripts_optimizer(tmp_path):
    script = tmp_path / "script.py"
    script.write_text(SCRIPT)
    target, unported = port.port_file(script, tmp_path / "out")
    assert unported == []
    code = target.read_text()
    # the optimizer import takes the place of the TensorFlow import: the line count is kept
    assert "from minirnn.nn.optimizers import Momentum  # [port] replaces: import tensorflow as tf" in code
    assert "from minirnn import PsychRNNLSTM as LSTM" in code and "PsychRNN's LSTM cell" in code
    ns = run(code)
    model, opt = ns["model"], ns["train_params"]["optimizer"]
    assert model.lstm_variant == "psychrnn"
    assert model.optimizer.built_from is opt  # the model steps its own copy of the configured object
    assert (model.optimizer.learning_rate, model.optimizer.momentum) == (0.05, 0.5)
    assert not np.array_equal(ns["before"]["W_f"], model.get_weights()["W_f"])  # it trained


def test_optimizer_import_is_added_when_no_tensorflow_import_is_left(tmp_path):
    script = tmp_path / "script.py"
    script.write_text("x = 1\nopt = tf.compat.v1.train.AdamOptimizer(0.02)\n")
    target, unported = port.port_file(script, tmp_path / "out")
    assert unported == []
    ns = run(target.read_text())
    assert type(ns["opt"]) is optimizers.Adam and ns["opt"].learning_rate == 0.02
