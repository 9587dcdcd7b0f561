"""minirnn inside someone else's process, and option values at their edges: what it leaves changed
(environment, umask), and the errors it gives for values that break the numbers."""
from __future__ import annotations

import os
import warnings

import numpy as np
import pytest

from minirnn.errors import ParameterError, ShapeError


def test_saving_never_opens_the_umask_to_other_threads(tmp_path, monkeypatch):
    """atomic_open gives its file a plain open()'s mode from the umask. Setting the umask to 0 to read it,
    even for an instant, let another thread's new file come out world-writable: it is read from
    /proc/self/status, and elsewhere set to 0o077 (stricter) for the instant."""
    from minirnn import io as mio

    calls, real_umask = [], os.umask
    monkeypatch.setattr(os, "umask", lambda mask: calls.append(mask) or real_umask(mask))
    old = real_umask(0o022)
    try:
        with mio.atomic_open(tmp_path / "f.txt", "w") as fh:
            fh.write("x")
        assert 0 not in calls and all(mask & 0o077 == 0o077 for mask in calls[::2])
        if os.path.exists("/proc/self/status"):
            assert calls == []
        assert (os.stat(tmp_path / "f.txt").st_mode & 0o777) == 0o644
        monkeypatch.setattr(mio, "open", lambda *a, **k: (_ for _ in ()).throw(OSError()), raising=False)
        assert mio._current_umask() == 0o022 and real_umask(0o022) == 0o022  # the fallback puts it back
    finally:
        real_umask(old)


def test_the_environment_is_put_back_as_it_was():
    from minirnn.sweep import _restore_environ

    saved = dict(os.environ)
    os.environ["MINIRNN_TEST_ADDED"] = "1"
    os.environ["PATH"] = "/changed"
    _restore_environ(saved)
    assert dict(os.environ) == saved


@pytest.mark.parametrize("bad", [0, -1, "2", 2.5, True, float("nan")])
def test_set_num_threads_names_a_bad_value(bad):
    from minirnn.backends import numba_kernels

    with pytest.raises(ParameterError, match="set_num_threads needs a positive integer"):
        numba_kernels.set_num_threads(bad)
    previous = numba_kernels.set_num_threads(2.0)  # a whole float is a count
    try:
        assert numba_kernels.num_threads() == 2
    finally:
        numba_kernels.set_num_threads(previous)


def test_a_bad_thread_count_in_the_environment_is_named(monkeypatch):
    from minirnn.backends import numba_kernels

    monkeypatch.setenv("MINIRNN_NUM_THREADS", "two")
    monkeypatch.setattr(numba_kernels, "_threads", None)
    with pytest.raises(ParameterError, match="MINIRNN_NUM_THREADS must be a positive integer, got 'two'"):
        numba_kernels.num_threads()


def test_accuracy_of_arrays_that_do_not_fit_is_a_shape_error():
    from minirnn.tasks.task import choice_accuracy

    y = np.zeros((4, 3, 2))
    with pytest.raises(ShapeError, match="broadcast together"):
        choice_accuracy(y, np.zeros((4, 3, 3)), y)
    assert choice_accuracy(y, np.zeros((2, 4, 3, 2)), np.ones_like(y)).shape == (2,)  # an ensemble's outputs


def test_binary_cross_entropy_refuses_targets_outside_0_1_where_trained():
    from minirnn.nn.losses import binary_cross_entropy

    z, mask = np.full((2, 3, 1), 0.5), np.ones((2, 3, 1))
    with pytest.raises(ParameterError, match=r"targets y in \[0, 1\]"):
        binary_cross_entropy(z, np.full((2, 3, 1), 2.0), mask)
    value, _ = binary_cross_entropy(z, np.full((2, 3, 1), 2.0), 0 * mask)  # masked out: not trained, fine
    assert value == 0


def test_sigmoid_saturates_without_an_overflow_warning():
    from minirnn.nn.activations import dsigmoid, sigmoid

    x = np.array([-1e4, -100.0, 0.0, 100.0], np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        np.testing.assert_array_equal(sigmoid(x), np.array([0, 0, 0.5, 1], np.float32))
        np.testing.assert_array_equal(dsigmoid(x)[:2], np.zeros(2, np.float32))


@pytest.mark.parametrize("dt", [0, -1.0, float("nan"), float("inf"), "1", True])
def test_fixed_point_time_step_must_be_positive(dt):
    from minirnn import Basic
    from minirnn.analysis import find_fixed_points

    model = Basic(dict(N_in=1, N_rec=4, N_out=1, dt=10, tau=100, seed=0, backend="numpy"))
    with pytest.raises(ParameterError, match="'dt' parameter of find_fixed_points"):
        find_fixed_points(model, np.zeros((2, 4)), dt=dt)
