"""Divergence: when a loss, a gradient or a weight turns NaN or inf, training stops and the model
keeps the weights *and* optimizer state of the last update whose loss was finite, bit for bit those
of the same run stopped there; a rejected update moves no optimizer state; a checkpoint left behind
never holds the weights that diverged.

A NaN or inf loss shows on the forward pass after the update that caused it, so that update is
undone. "Bitwise" means assert_array_equal. The settings below diverge after a few updates on numpy
(the tests check that there are some updates to compare, not the exact update).
"""
from __future__ import annotations

import os

import numpy as np
import pytest

from minirnn import Basic, NonFiniteError
from minirnn.nn.optimizers import Momentum
from minirnn.tasks import PerceptualDiscrimination
from minirnn.train.checkpoint import load_checkpoint

pytestmark = pytest.mark.usefixtures("one_blas_thread")

#: (optimizer, learning_rate, clip_grads): each makes the loss non-finite after a few updates (T=500)
DIVERGING = [("sgd", 1.0, False), ("momentum", 1.0, False), ("rmsprop", 3.0, False), ("adam", 2.5, True)]


def task_and_model(n_networks=None, T=500):
    task = PerceptualDiscrimination(dt=10, tau=100, T=T, N_batch=8, seed=1)
    params = dict(task.get_task_params(), N_rec=8, seed=2, backend="numpy")
    return task, Basic(params) if n_networks is None else Basic(params, n_networks=n_networks, seeds=[3, 4])


def train_params(optimizer, lr, clip, updates=40, **extra):
    return dict(training_iters=8 * updates, optimizer=optimizer, learning_rate=lr, clip_grads=clip,
                verbosity=False, **extra)


def stopped_after(updates, optimizer, lr, clip, n_networks=None, T=500):
    """The same run as the diverging one, stopped after ``updates`` updates."""
    task, model = task_and_model(n_networks, T)
    model.train(task, train_params(optimizer, lr, clip, updates))
    return model


def assert_same_state(a, b):
    """Weights, optimizer state (every slot and counter) and history, bitwise."""
    for name in a.raw:
        np.testing.assert_array_equal(a.raw[name], b.raw[name], err_msg=name)
    sa, sb = a.optimizer.state_dict(), b.optimizer.state_dict()
    assert sorted(sa) == sorted(sb)
    for key in sa:
        np.testing.assert_array_equal(sa[key], sb[key], err_msg=key)
    assert a.history["update"] == b.history["update"]
    np.testing.assert_array_equal(np.asarray(a.history["loss"]), np.asarray(b.history["loss"]))


def loss_on_batch(model, n):
    """The loss of the model's weights on batch ``n`` (from 1) of the task's training stream."""
    task, _ = task_and_model()
    for _ in range(n):
        x, y, mask, _ = task.get_trial_batch()
    return model.loss_and_grads(x, y, mask)[0]


@pytest.mark.parametrize("optimizer, lr, clip", DIVERGING)
def test_a_nonfinite_loss_undoes_the_update_that_caused_it(optimizer, lr, clip):
    task, model = task_and_model()
    with pytest.raises(NonFiniteError, match="loss became NaN or inf") as info:
        model.train(task, train_params(optimizer, lr, clip))
    kept = len(model.history["loss"])  # updates kept: update kept + 1 was undone, found at kept + 2
    assert kept >= 1, "these settings should diverge after a few updates"
    assert f"at update {kept + 2} " in str(info.value) and f"Update {kept + 1}, " in str(info.value)
    assert_same_state(model, stopped_after(kept, optimizer, lr, clip))
    # the loss quoted is that of the weights kept, measured on the undone update's batch: finite
    quoted = float(str(info.value).split("last finite loss ")[1].split(")")[0])
    loss = loss_on_batch(model, kept + 1)
    assert np.isfinite(loss) and loss == pytest.approx(quoted, rel=1e-5)


def test_after_divergence_the_model_trains_on_from_the_kept_state():
    """The optimizer state kept is a real one: a next call goes on from the stopped run's state."""
    task, model = task_and_model()
    with pytest.raises(NonFiniteError):
        model.train(task, train_params("momentum", 1.0, False))
    kept = len(model.history["loss"])
    reference = stopped_after(kept, "momentum", 1.0, False)
    for m in (model, reference):  # tiny steps: momentum's slots hold the large gradients before the divergence
        m.train(PerceptualDiscrimination(dt=10, tau=100, T=500, N_batch=8, seed=9),
                train_params("momentum", 1e-12, True, updates=3))
    assert len(model.history["loss"]) == kept + 3
    assert_same_state(model, reference)


def test_an_ensemble_undoes_the_update_in_the_diverged_network_only():
    lr = [0.01, 3.0]  # network 1 diverges (T=1000), network 0 trains on
    task, model = task_and_model(n_networks=2, T=1000)
    with pytest.raises(NonFiniteError, match=r"in network\(s\) \[1\] of the ensemble \(last finite losses") as info:
        model.train(task, train_params("sgd", lr, False))
    assert info.value.networks == [1]
    done = len(model.history["loss"])  # network 0 took update `done`; network 1's was undone
    assert done >= 2
    np.testing.assert_array_equal(np.asarray(model.optimizer.t), [done, done - 1])
    after, before = (stopped_after(n, "sgd", lr, False, n_networks=2, T=1000) for n in (done, done - 1))
    for name in model.raw:
        np.testing.assert_array_equal(model.raw[name][0], after.raw[name][0], err_msg=name)
        np.testing.assert_array_equal(model.raw[name][1], before.raw[name][1], err_msg=name)
    # the last finite loss quoted for network 1 is that of the weights it keeps
    quoted = float(str(info.value).split("last finite losses ")[1].split(")")[0])
    assert quoted == pytest.approx(model.history["loss"][-1][1], rel=1e-5)


def test_a_rejected_update_leaves_the_optimizer_as_it_was():
    """Adam at lr 2 (no clipping) would make a weight NaN at update 3: nothing of update 3 stays."""
    task, model = task_and_model()
    with pytest.raises(NonFiniteError, match=r"would become NaN or inf at update (\d+) \(last finite loss") as info:
        model.train(task, train_params("adam", 2.0, False))
    done = len(model.history["loss"])
    assert done >= 1 and f"at update {done + 1} " in str(info.value)
    assert_same_state(model, stopped_after(done, "adam", 2.0, False))


def test_a_first_update_rejected_by_the_weight_check_moves_nothing_and_quotes_its_loss():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((8, 20, 2)).astype(np.float32)
    y = 100 * rng.standard_normal((8, 20, 2)).astype(np.float32)
    batch = (x, y, np.ones_like(y), None)
    model = Basic(dict(N_in=2, N_rec=8, N_out=2, dt=10, tau=100, seed=2, backend="numpy"))
    start = {k: v.copy() for k, v in model.raw.items()}
    loss = model.loss_and_grads(x, y, np.ones_like(y))[0]
    tp = dict(training_iters=8, optimizer=Momentum(3e38, momentum=0.9), clip_grads=False, verbosity=False)
    with pytest.raises(NonFiniteError, match="would become NaN or inf at update 1") as info:
        model.train(iter([batch] * 3), tp)
    assert "no finite loss yet" not in str(info.value) and f"last finite loss {loss:.6g}" in str(info.value)
    assert model.history["loss"] == [] and model.optimizer.t is None and model.optimizer.state == {}
    for name in start:
        np.testing.assert_array_equal(model.raw[name], start[name])


def test_no_finite_loss_yet_only_when_there_was_none():
    task, model = task_and_model()
    x, y, mask, p = task.get_trial_batch()
    with pytest.raises(NonFiniteError, match=r"at update 1 \(no finite loss yet\)"):
        model.train(iter([(x, np.full_like(y, 1e30), mask, p)] * 3), dict(training_iters=8, verbosity=False))
    model.train(iter([(x, y, mask, p)] * 3), dict(training_iters=8, verbosity=False))  # one good update
    with pytest.raises(NonFiniteError, match=r"at update 2 \(the weights this train\(\) call started with give it\)"):
        model.train(iter([(x, np.full_like(y, 1e30), mask, p)] * 3), dict(training_iters=8, verbosity=False))


@pytest.mark.parametrize("every", [1, 2, "undone"])
def test_a_checkpoint_never_keeps_the_weights_that_diverged(tmp_path, every):
    """Checkpoints every update, every 2nd, or first at the undone update (the file is then removed)."""
    task, probe = task_and_model()
    with pytest.raises(NonFiniteError):
        probe.train(task, train_params("sgd", 1.0, False))
    kept = len(probe.history["loss"])
    epoch = kept + 1 if every == "undone" else every
    task, model = task_and_model()
    path = tmp_path / "ckpt.npz"
    with pytest.raises(NonFiniteError):
        model.train(task, train_params("sgd", 1.0, False, checkpoint_path=str(path), checkpoint_epoch=epoch))
    assert_same_state(model, probe)
    if every == "undone":
        assert not os.path.exists(path)
        return
    checkpoint = load_checkpoint(path)
    saved_at = kept // epoch * epoch  # the last checkpoint before the undone update
    assert checkpoint["meta"]["epoch"] == saved_at and not checkpoint["meta"].get("finished", False)
    reference = stopped_after(saved_at, "sgd", 1.0, False)
    for name in model.raw:
        np.testing.assert_array_equal(checkpoint["raw"][name], reference.raw[name], err_msg=name)
    assert np.isfinite(loss_on_batch(reference, saved_at + 1))  # the checkpoint's weights give a finite loss
    # resuming it replays the same run: the same divergence, the same kept state
    task, resumed = task_and_model()
    with pytest.raises(NonFiniteError):
        resumed.train(task, train_params("sgd", 1.0, False, checkpoint_path=str(tmp_path / "again"),
                                         checkpoint_epoch=epoch), resume=str(path))
    assert_same_state(resumed, probe)


def test_the_undone_update_leaves_no_performance_record():
    """A performance check recorded after the update that was undone measured weights the model no longer
    has: it goes with that update's loss record."""
    def measure(x, y, mask, output, epoch, losses, verbosity):
        return float(np.mean(output))

    extra = dict(performance_measure=measure, performance_epoch=1)
    task, model = task_and_model()
    with pytest.raises(NonFiniteError):
        model.train(task, train_params("sgd", 1.0, False, **extra))
    kept = len(model.history["loss"])
    assert kept >= 1
    assert [p[0] for p in model.history["performance"]] == model.history["update"]
    task, same = task_and_model()
    same.train(task, train_params("sgd", 1.0, False, kept, **extra))
    assert model.history["performance"] == same.history["performance"]
