"""Checkpoints and resume: a resumed run equals an uninterrupted one bit for bit (numpy backend,
BLAS pinned to one thread), signals write a checkpoint, damaged files give errors that name them,
and a training process killed with SIGKILL at random moments, resumed each time, ends with the
uninterrupted run's files.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from minirnn import Basic
from minirnn.errors import WeightsFileError
from minirnn.io import read_npz
from minirnn.tasks import PerceptualDiscrimination
from minirnn.train.checkpoint import TrainingInterrupted, load_checkpoint, save_checkpoint
from minirnn.train.trainer import train

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
pytestmark = pytest.mark.usefixtures("one_blas_thread")


def make(seed=5, noise=0.1, **extra):
    task = PerceptualDiscrimination(dt=10, tau=100, T=300, N_batch=16, seed=3)
    params = task.get_task_params()
    params.update(N_rec=10, seed=seed, backend="numpy", rec_noise=noise, **extra)
    return Basic(params), task


def accuracy(task):
    return lambda x, y, mask, output, epoch, losses, verbosity: task.accuracy_function(y, output, mask)


def assert_same_model(a, b):
    assert set(a.raw) == set(b.raw)
    for name in a.raw:
        np.testing.assert_array_equal(a.raw[name], b.raw[name], err_msg=name)
    assert a.history["loss"] == b.history["loss"]
    assert a.history["update"] == b.history["update"]
    sa, sb = a.optimizer.state_dict(), b.optimizer.state_dict()
    assert sa.keys() == sb.keys()
    for key in sa:
        np.testing.assert_array_equal(sa[key], sb[key], err_msg=key)
    for rng in ("rng_init", "rng_noise", "rng_eval"):
        assert getattr(a, rng).bit_generator.state == getattr(b, rng).bit_generator.state


@pytest.mark.parametrize("stop", [1, 7, 14])
def test_resume_equals_uninterrupted_bit_for_bit(tmp_path, stop):
    tp = {"training_iters": 16 * 20, "verbosity": False, "loss_epoch": 3, "performance_epoch": 4}
    full, task = make()
    losses_full, _, _ = train(full, task, dict(tp, performance_measure=accuracy(task)))

    # the interrupted run: only `stop` updates, its final checkpoint is marked finished -> unmark it
    part, task_p = make()
    ckpt = str(tmp_path / "ck.npz")
    train(part, task_p, dict(tp, training_iters=16 * stop, checkpoint_path=ckpt, checkpoint_epoch=5,
                             performance_measure=accuracy(task_p)))
    checkpoint = load_checkpoint(ckpt)
    assert checkpoint["meta"]["epoch"] == stop and checkpoint["meta"]["finished"]
    checkpoint["meta"]["finished"] = False

    resumed, task_r = make()
    losses_r, _, _ = train(resumed, task_r, dict(tp, performance_measure=accuracy(task_r)), resume=checkpoint)
    assert losses_r == losses_full
    assert_same_model(full, resumed)
    assert task_r.state_dict() == task.state_dict()
    assert [p[0] for p in resumed.history["performance"]] == [p[0] for p in full.history["performance"]]


def test_checkpoint_layout_keeps_weights_optimizer_and_progress_apart(tmp_path):
    model, task = make()
    train(model, task, {"training_iters": 48, "verbosity": False})
    path = save_checkpoint(tmp_path / "ck", model, epoch=3, tasks=[task])
    assert path.endswith("ck.npz")
    arrays = read_npz(path)
    assert {k for k in arrays if k.startswith("raw/")} == {f"raw/{n}" for n in model.raw}
    assert any(k.startswith("optimizer/slots/") for k in arrays)  # Adam's moments, under a prefix
    meta = json.loads(str(arrays["checkpoint"]))
    assert meta["epoch"] == 3 and meta["update"] == 3
    assert set(meta["rng"]) == {"rng_init", "rng_noise", "rng_eval"}
    assert meta["tasks"] == [task.state_dict()]
    # the weights file has no optimizer state and no raw/ entries
    weights = read_npz(model.save(tmp_path / "w"))
    assert not any("/" in k for k in weights)


def test_periodic_checkpoints_are_written_and_old_one_replaced(tmp_path):
    model, task = make()
    ckpt = tmp_path / "ck.npz"
    seen = []

    def measure(x, y, mask, output, epoch, losses, verbosity):
        if ckpt.exists():
            seen.append(load_checkpoint(ckpt)["meta"]["epoch"])
        return 0.0

    train(model, task, {"training_iters": 16 * 9, "verbosity": False, "checkpoint_path": str(ckpt),
                        "checkpoint_epoch": 4, "performance_measure": measure})
    assert sorted(set(seen)) == [4, 8]
    assert load_checkpoint(ckpt)["meta"]["epoch"] == 9
    assert not [f for f in os.listdir(tmp_path) if f.endswith(".tmp")]


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_signal_writes_checkpoint_then_stops_and_handlers_are_restored(tmp_path, signum):
    before = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    model, task = make()
    ckpt = str(tmp_path / "ck.npz")

    def measure(x, y, mask, output, epoch, losses, verbosity):
        if epoch == 6:
            signal.raise_signal(signum)  # arrives in the middle of update 6
        return 0.0

    with pytest.raises(TrainingInterrupted) as info:
        train(model, task, {"training_iters": 16 * 50, "verbosity": False, "checkpoint_path": ckpt,
                            "checkpoint_epoch": 100, "performance_measure": measure})
    assert isinstance(info.value, KeyboardInterrupt)
    assert info.value.signum == signum and info.value.update == 6
    assert ckpt in str(info.value)
    assert load_checkpoint(ckpt)["meta"]["epoch"] == 6
    assert {s: signal.getsignal(s) for s in before} == before


def test_no_handlers_without_checkpoint_path():
    model, task = make()
    seen = []

    def measure(*args):
        seen.append(signal.getsignal(signal.SIGTERM))
        return 0.0

    train(model, task, {"training_iters": 32, "verbosity": False, "performance_measure": measure})
    assert seen and all(h == signal.getsignal(signal.SIGTERM) for h in seen)


def test_damaged_checkpoints_raise_weights_file_error_naming_the_file(tmp_path):
    model, task = make()
    good = save_checkpoint(tmp_path / "ck.npz", model, epoch=0, tasks=[task])
    data = open(good, "rb").read()
    truncated = tmp_path / "truncated.npz"
    truncated.write_bytes(data[: len(data) // 2])
    flipped = bytearray(data)
    # a byte of the stored record (CRC-checked), not a header field that the zip reader ignores
    flipped[data.index('"format"'.encode("utf-32-le"))] ^= 0xFF
    corrupt = tmp_path / "corrupt.npz"
    corrupt.write_bytes(bytes(flipped))
    for path in (truncated, corrupt):
        with pytest.raises(WeightsFileError, match=path.name):
            load_checkpoint(path)
    weights = model.save(tmp_path / "weights.npz")  # a weights file is not a checkpoint
    with pytest.raises(WeightsFileError, match="not a minirnn checkpoint"):
        load_checkpoint(weights)
    bigger_task = PerceptualDiscrimination(dt=10, tau=100, T=300, N_batch=16, seed=3)
    p = bigger_task.get_task_params()
    p.update(N_rec=12, seed=5, backend="numpy")
    with pytest.raises(WeightsFileError, match=r"ck\.npz.*has shape \(10, 2\)"):
        train(Basic(p), bigger_task, {"training_iters": 16, "verbosity": False}, resume=good)


# ---------------------------------------------------------------------------- SIGKILL, several times

CLI = [sys.executable, "-m", "minirnn.cli"]
TRAIN = ["train", "PerceptualDiscrimination", "--n-rec", "8", "--batch", "8", "--iters", str(8 * 900),
         "--seed", "11", "--backend", "numpy", "--rec-noise", "0.05", "--set", "T=200",
         "--set", "checkpoint_epoch=13", "--set", "performance_epoch=17", "--quiet"]


def _env():
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""),
               OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    return env


def _weights(run_dir):
    arrays = read_npz(os.path.join(run_dir, "weights.npz"))
    return {k: v for k, v in arrays.items() if v.dtype != object and k != "minirnn"}


@pytest.mark.slow
def test_sigkill_at_random_moments_then_resume_equals_uninterrupted(tmp_path):
    rng = np.random.default_rng(2024)
    reference, run = str(tmp_path / "reference"), str(tmp_path / "killed")
    t0 = time.perf_counter()
    subprocess.run(CLI + TRAIN + ["--out", reference], env=_env(), check=True, timeout=120)
    duration = time.perf_counter() - t0

    # four kills, each after 10-30 % of an uninterrupted run's wall time (startup included), so
    # that no process can finish first; then one resume that runs to the end
    kills, from_checkpoint, command = 0, 0, CLI + TRAIN + ["--out", run]
    while kills < 4:
        proc = subprocess.Popen(command, env=_env(), stderr=subprocess.DEVNULL)
        try:
            proc.wait(timeout=rng.uniform(0.1, 0.3) * duration)
        except subprocess.TimeoutExpired:
            proc.kill()  # SIGKILL; TerminateProcess on Windows, which has no SIGKILL
            proc.wait()
            kills += 1
        assert proc.returncode != 0, "a run finished before it could be killed"
        # killed before run.json existed: start again; otherwise continue from the checkpoint
        started = os.path.exists(os.path.join(run, "run.json"))
        from_checkpoint += os.path.exists(os.path.join(run, "checkpoint.npz"))
        command = CLI + (["train", "--resume", run, "--quiet"] if started else TRAIN + ["--out", run])
    proc = subprocess.run(command, env=_env(), timeout=120)
    assert proc.returncode == 0
    assert from_checkpoint >= 2  # the resumes really continued from checkpoints
    for directory in (reference, run):
        assert not [f for f in os.listdir(directory) if f.endswith(".tmp")]
    a, b = _weights(reference), _weights(run)
    assert a.keys() == b.keys()
    for key in a:
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)
    rec_a = json.load(open(os.path.join(reference, "run.json")))
    rec_b = json.load(open(os.path.join(run, "run.json")))
    assert rec_b["status"] == "complete" and rec_b["constraint_audit"]["ok"]
    assert rec_a["history"] == rec_b["history"]
    from minirnn.runs import load_run

    model, task, record = load_run(run)
    assert len(model.history["loss"]) == 900


def test_ensemble_resume_keeps_per_network_streams_and_stopped_networks(tmp_path):
    """K networks, some stopped by performance_cutoff before the checkpoint: the resumed run ends
    where the uninterrupted one does (per-network RNG streams, task copies and 'active' flags)."""
    def make_ensemble():
        task = PerceptualDiscrimination(dt=10, tau=100, T=300, N_batch=16, seed=3)
        params = dict(task.get_task_params(), N_rec=10, seed=5, backend="numpy", rec_noise=0.1)
        return Basic(params, n_networks=3), task

    def last_step_accuracy(x, y, mask, output, *rest):  # one value per network
        return np.array([np.mean(np.argmax(o[:, -1], -1) == np.argmax(t[:, -1], -1)) for o, t in zip(output, y)])

    tp = {"training_iters": 16 * 40, "verbosity": False, "loss_epoch": 1, "performance_measure": last_step_accuracy,
          "performance_cutoff": 0.6, "performance_epoch": 3}
    full, task = make_ensemble()
    train(full, task, tp)
    ckpt = str(tmp_path / "ck.npz")
    part, task_p = make_ensemble()
    train(part, task_p, dict(tp, training_iters=16 * 11, checkpoint_path=ckpt, checkpoint_epoch=4))
    checkpoint = load_checkpoint(ckpt)
    assert len(checkpoint["meta"]["rng"]["rng_noise"]) == 3 and len(checkpoint["meta"]["tasks"]) == 3
    assert 0 < checkpoint["train"]["active"].sum() < 3  # some networks had already stopped
    checkpoint["meta"]["finished"] = False
    resumed, task_r = make_ensemble()
    train(resumed, task_r, tp, resume=checkpoint)
    for name in full.raw:
        np.testing.assert_array_equal(full.raw[name], resumed.raw[name], err_msg=name)
    assert len(full.history["loss"]) == len(resumed.history["loss"])
    for a, b in zip(full.history["loss"], resumed.history["loss"]):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("stop", [7, 17])  # before and after the curriculum moves to stage 1 (update 9)
def test_curriculum_resume_continues_the_stage_and_its_task(tmp_path, stop):
    from minirnn import Curriculum

    def advance_at_update_9(params, x, y, mask, output, epoch, losses, verbosity):
        # the recorded value is the check batch's accuracy: the check streams must be restored too
        return epoch == 9, params["accuracies"][params["stage"]](y, output, mask)

    def make_curriculum():
        tasks = [PerceptualDiscrimination(dt=10, tau=100, T=200, N_batch=16, coherence=c, seed=i)
                 for i, c in enumerate((0.7, 0.5))]
        params = dict(tasks[0].get_task_params(), N_rec=8, seed=0, backend="numpy", rec_noise=0.05)
        return Basic(params), Curriculum(tasks, metric=advance_at_update_9, metric_epoch=3)

    tp = {"training_iters": 16 * 40, "verbosity": False, "loss_epoch": 1}
    full, cur = make_curriculum()
    train(full, None, dict(tp, curriculum=cur))
    assert [s["update"] for s in full.history["stages"]] == [9]
    ckpt = str(tmp_path / "ck.npz")
    part, cur_p = make_curriculum()
    train(part, None, dict(tp, training_iters=16 * stop, curriculum=cur_p, checkpoint_path=ckpt, checkpoint_epoch=5))
    checkpoint = load_checkpoint(ckpt)
    assert checkpoint["meta"]["curriculum"]["stage"] == (0 if stop < 9 else 1)
    checkpoint["meta"]["finished"] = False
    resumed, cur_r = make_curriculum()
    train(resumed, None, dict(tp, curriculum=cur_r), resume=checkpoint)
    for name in full.raw:
        np.testing.assert_array_equal(full.raw[name], resumed.raw[name], err_msg=name)
    assert resumed.history["loss"] == full.history["loss"]
    assert resumed.history["stages"] == full.history["stages"]
    assert cur_r.state_dict() == cur.state_dict()
    assert [t.state_dict() for t in cur_r.tasks] == [t.state_dict() for t in cur.tasks]


@pytest.mark.parametrize("change, named", [
    ({"dtype": "float64"}, "dtype: 'float32' in the checkpoint, 'float64' now"),
    ({"dale_ratio": 0.8}, "dale_ratio: None in the checkpoint, 0.8 now"),
    ({"transfer_function": "tanh"}, "transfer_function: 'relu' in the checkpoint, 'tanh' now"),
    ({"noise": 0.2}, "rec_noise: 0.1 in the checkpoint, 0.2 now"),
    ({"N_batch": 8}, "task 0 N_batch: 16 in the checkpoint, 8 now"),
])
def test_resume_refuses_a_checkpoint_of_other_settings_and_leaves_the_model_alone(tmp_path, change, named):
    path = str(tmp_path / "ck.npz")
    model, task = make()
    train(model, task, {"training_iters": 16 * 4, "verbosity": False, "checkpoint_path": path})
    task_change = {k: v for k, v in change.items() if k == "N_batch"}
    other, _ = make(**{k: v for k, v in change.items() if k != "N_batch"})
    other_task = PerceptualDiscrimination(dt=10, tau=100, T=300, seed=3, **dict({"N_batch": 16}, **task_change))
    before = {k: np.array(v) for k, v in other.raw.items()}
    with pytest.raises(WeightsFileError, match=named.replace("(", r"\(")):
        other.train(other_task, {"training_iters": 16 * 8, "verbosity": False}, resume=path)
    for k, v in before.items():
        np.testing.assert_array_equal(other.raw[k], v)
    assert not other.history


def test_resume_needs_a_checkpoint_path(tmp_path):
    from minirnn.errors import ParameterError

    model, task = make()
    with pytest.raises(ParameterError, match="path"):
        model.train(task, {"verbosity": False}, resume=True)
    with pytest.raises(FileNotFoundError, match="checkpoint .*missing.npz.* does not exist"):
        model.train(task, {"verbosity": False}, resume=str(tmp_path / "missing.npz"))
