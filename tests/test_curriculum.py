"""Curriculum learning (PsychRNN's ``Curriculum`` semantics): stages advance in order, training stops
at the last threshold, the stage history reaches ``model.history`` and the output file, and bad
arguments are named in the error."""
import json

import numpy as np
import pytest

from minirnn import Basic, Curriculum, default_metric
from minirnn.errors import ParameterError, ParameterTypeError
from minirnn.tasks import PerceptualDiscrimination
from minirnn.train.curriculum import next_stage


def pd_task(coherence, N_batch=16, seed=0, T=200):
    return PerceptualDiscrimination(dt=10, tau=100, T=T, N_batch=N_batch, coherence=coherence, seed=seed)


def small_model(task, seed=0, N_rec=8, **extra):
    params = task.get_task_params()
    params.update(N_rec=N_rec, seed=seed, backend="numpy", **extra)  # numba's JIT time is not ours
    return Basic(params)


class Scripted:
    """An accuracy function that returns the next value of a script at each call."""

    def __init__(self, values):
        self.values, self.calls = list(values), 0

    def __call__(self, correct_output, test_output, output_mask):
        value = self.values[min(self.calls, len(self.values) - 1)]
        self.calls += 1
        return value


def test_next_stage_rule():
    assert next_stage(0, False, 3) == (0, False)
    assert next_stage(0, True, 3) == (1, False)
    assert next_stage(2, True, 3) == (3, True)


def test_stages_advance_in_order_and_stop_at_last_threshold(tmp_path):
    tasks = [pd_task(c, seed=i) for i, c in enumerate((0.7, 0.5, 0.3))]
    # stage 0 passes at its 2nd test, stage 1 at its 1st, stage 2 at its 3rd
    accs = [Scripted([0.5, 0.95]), Scripted([0.99]), Scripted([0.1, 0.2, 0.91, 0.1])]
    out = tmp_path / "new" / "dir" / "curric"  # folder created; ".npy" appended
    cur = Curriculum(tasks, accuracies=accs, thresholds=[0.9, 0.9, 0.9], metric_epoch=2, output_file=out)
    model = small_model(tasks[0])
    losses, _, _ = model.train_curric({"curriculum": cur, "training_iters": 16 * 1000, "verbosity": False,
                                       "loss_epoch": 1})
    # tests at updates 2, 4 (pass 0), 6 (pass 1), 8, 10, 12 (pass 2 -> stop)
    assert cur.stop_training and cur.stage == 3
    assert [h["epoch"] for h in cur.history] == [2, 4, 6, 8, 10, 12]
    assert [s for _, s in cur.metric_values] == [0, 0, 1, 2, 2, 2]
    assert len(losses) == 12 and len(model.history["loss"]) == 12  # stopped at the last threshold
    assert [(s["update"], s["stage"]) for s in model.history["stages"]] == [(4, 1), (6, 2), (12, 3)]
    assert [s["metric"] for s in model.history["stages"]] == [0.95, 0.99, 0.91]
    # each stage trained on its own task: 4, 2 and 6 training batches (metric batches come from each
    # task's check stream and leave its counter alone)
    assert [t.batch_index for t in tasks] == [4, 2, 6]
    values, stages = np.load(str(out) + ".npy", allow_pickle=False).T  # PsychRNN's file: (n, 2)
    np.testing.assert_array_equal(np.stack([values, stages], axis=1), np.array(cur.metric_values))
    # no stale temporary file left behind
    assert sorted(p.name for p in out.parent.iterdir()) == ["curric.npy"]


def test_json_output_and_metric_test_directly(tmp_path):
    tasks = [pd_task(0.5), pd_task(0.1)]
    cur = Curriculum(tasks, accuracies=[Scripted([0.2, 0.8]), Scripted([0.7])], thresholds=[0.8, 0.6],
                     output_file=tmp_path / "hist.json")
    x, y, mask, _ = tasks[0].get_trial_batch()
    assert cur.metric_test(x, y, mask, y, 10, []) is False
    assert cur.get_generator_function is not None and next(cur.batch_generator())[0].shape == x.shape
    assert cur.metric_test(x, y, mask, y, 20, []) is True and cur.stage == 1
    assert cur.metric_test(x, y, mask, y, 30, []) is True and cur.stop_training
    record = json.loads((tmp_path / "hist.json").read_text())
    assert record["metric_values"] == [[0.2, 0], [0.8, 0], [0.7, 1]]
    assert [h["epoch"] for h in record["history"]] == [10, 20, 30] and record["stop_training"]
    assert cur.metric_test(x, y, mask, y, 40, []) is False  # finished: nothing more is recorded


def test_default_metric_signature_and_task_accuracy():
    task = pd_task(0.7)
    cur = Curriculum([task, pd_task(0.1)])
    assert cur.thresholds == [0.9, 0.9] and cur.metric_epoch == 10
    x, y, mask, _ = task.get_trial_batch()
    advance, value = default_metric(cur.__dict__, x, y, mask, y, 1, [], False)
    assert advance is True and value == 1.0  # the target itself is always right
    advance, value = default_metric(cur.__dict__, x, y, mask, y[..., ::-1], 1, [], False)
    assert advance is False and value == 0.0


def test_custom_metric_psychrnn_signature():
    seen = {}

    def metric(curriculum_params, input_data, correct_output, output_mask, output, epoch, losses, verbosity):
        seen.update(stage=curriculum_params["stage"], epoch=epoch)
        return epoch >= 20, -float(epoch)

    cur = Curriculum([pd_task(0.7), pd_task(0.5)], metric=metric)
    x, y, mask, _ = cur.tasks[0].get_trial_batch()
    assert not cur.metric_test(x, y, mask, y, 10, [])
    assert cur.metric_test(x, y, mask, y, 20, []) and seen == {"stage": 0, "epoch": 20}
    assert cur.metric_values == [[-10.0, 0], [-20.0, 0]]


def test_works_with_performance_cutoff():
    tasks = [pd_task(0.7, seed=1), pd_task(0.5, seed=2)]
    cur = Curriculum(tasks, accuracies=[Scripted([0.0]), Scripted([0.0])], metric_epoch=3)
    model = small_model(tasks[0])
    calls = []

    def performance(x, y, mask, output, epoch, losses, verbosity):
        calls.append(epoch)
        return 1.0 if epoch >= 5 else 0.0

    model.train_curric({"curriculum": cur, "training_iters": 16 * 100, "verbosity": False,
                        "performance_measure": performance, "performance_cutoff": 0.9})
    assert calls[-1] == 5 and len(model.history["loss"]) == 5  # the cutoff stopped training
    assert cur.stage == 0 and not cur.stop_training and len(cur.metric_values) == 1


def test_real_training_curriculum_reaches_every_stage():
    """A small network really learns a two-stage coherence curriculum (well under a second)."""
    tasks = [pd_task(c, N_batch=32, seed=3 + i, T=300) for i, c in enumerate((0.7, 0.3))]
    cur = Curriculum(tasks, thresholds=[0.95, 0.95], metric_epoch=5)
    model = small_model(tasks[0], seed=1, N_rec=16)
    model.train_curric({"curriculum": cur, "training_iters": 32 * 600, "learning_rate": 0.01,
                        "verbosity": False})
    assert cur.stop_training and [s["stage"] for s in model.history["stages"]] == [1, 2]
    assert all(s["metric"] >= 0.95 for s in model.history["stages"])
    assert len(model.history["loss"]) == model.history["stages"][-1]["update"]  # stopped right there


@pytest.mark.parametrize("kwargs, match", [
    ({"thresholds": [0.9]}, "'thresholds'.*2 tasks but 1"),
    ({"thresholds": [0.9, "high"]}, r"thresholds\[1\]"),
    ({"thresholds": [0.9, float("nan")]}, r"thresholds\[1\]"),
    ({"thresholds": 0.9}, "'thresholds'"),
    ({"accuracies": [len]}, "'accuracies'.*2 tasks but 1"),
    ({"accuracies": [len, 3]}, r"accuracies\[1\]"),
    ({"metric_epoch": 0}, "'metric_epoch'"),
    ({"metric": "accuracy"}, "'metric'"),
    ({"output_file": 3}, "'output_file'"),
])
def test_validation_errors_name_the_argument(kwargs, match):
    with pytest.raises((ParameterError, ParameterTypeError), match=match):
        Curriculum([pd_task(0.7), pd_task(0.5)], **kwargs)


def test_tasks_validation():
    with pytest.raises(ParameterError, match="'tasks'"):
        Curriculum([])
    with pytest.raises(ParameterTypeError, match=r"tasks\[1\]"):
        Curriculum([pd_task(0.7), "task"])


def test_accuracy_none_is_an_error():
    from minirnn.tasks import Task

    class NoAccuracy(Task):
        pass

    cur = Curriculum([NoAccuracy(2, 2, 10, 100, 10, 4, seed=0)])
    y = np.zeros((4, 10, 2))
    with pytest.raises(ParameterError, match="accuracy function of curriculum stage 0 returned None"):
        cur.metric_test(y, y, y, y, 10, [])


def test_repr():
    assert "n_tasks=2" in repr(Curriculum([pd_task(0.7), pd_task(0.5)]))


def test_state_dict_round_trip_and_partial_history(tmp_path):
    tasks = [pd_task(0.7), pd_task(0.5)]
    cur = Curriculum(tasks, accuracies=[Scripted([0.95]), Scripted([0.1])], output_file=tmp_path / "c")
    x, y, mask, _ = tasks[0].get_trial_batch()
    cur.metric_test(x, y, mask, y, 10, [])
    other = Curriculum(tasks, output_file=tmp_path / "d")
    other.load_state_dict(json.loads(json.dumps(cur.state_dict())))
    assert other.stage == 1 and other.metric_values == cur.metric_values and other.history == cur.history
    with pytest.raises(ParameterError, match="stage 5"):
        other.load_state_dict(dict(cur.state_dict(), stage=5))
    # a resume that restored only metric_values (older checkpoints): the file still has every row
    partial = Curriculum(tasks, accuracies=[Scripted([0.95]), Scripted([0.2])], output_file=tmp_path / "e")
    partial.stage, partial.metric_values = 1, [[0.95, 0]]
    partial.metric_test(x, y, mask, y, 20, [])
    np.testing.assert_array_equal(np.load(tmp_path / "e.npy"), [[0.95, 0], [0.2, 1]])


def test_a_finished_curriculum_is_refused_until_reset():
    curriculum = Curriculum([pd_task(0.5), pd_task(0.2)], thresholds=[0.0, 0.0], metric_epoch=2)
    small_model(pd_task(0.5)).train_curric({"curriculum": curriculum, "training_iters": 16 * 20, "verbosity": False})
    assert curriculum.stop_training
    second = small_model(pd_task(0.5), seed=1)
    with pytest.raises(ParameterError, match=r"already finished \(stage 2 of 2\).*reset\(\)"):
        second.train_curric({"curriculum": curriculum, "training_iters": 16 * 20, "verbosity": False})
    assert not second.history
    curriculum.reset()
    assert (curriculum.stage, curriculum.stop_training, curriculum.metric_values) == (0, False, [])
    second.train_curric({"curriculum": curriculum, "training_iters": 16 * 20, "verbosity": False})
    assert [s["stage"] for s in second.history["stages"]] == [1, 2]


def test_curriculum_must_be_a_curriculum_and_fit_the_model():
    from minirnn.errors import ShapeError
    from minirnn.tasks import FlipFlop

    model = small_model(pd_task(0.5))
    with pytest.raises(ParameterError, match="must be a minirnn Curriculum.*Got list"):
        model.train(None, {"curriculum": [pd_task(0.5)], "verbosity": False})
    three_bits = FlipFlop(dt=10, tau=100, T=200, N_batch=16, N_bits=3, seed=0)
    with pytest.raises(ShapeError, match="stage 1 \\(FlipFlop\\) has N_in=3 but the model has N_in=2"):
        model.train_curric({"curriculum": Curriculum([pd_task(0.5), three_bits]), "verbosity": False})
    assert not model.history  # refused before the first stage trained


def test_a_later_stage_with_another_dt_warns_as_the_first_would():
    tasks = [pd_task(0.7), PerceptualDiscrimination(dt=20, tau=100, T=200, N_batch=16, coherence=0.5, seed=1)]
    cur = Curriculum(tasks, accuracies=[Scripted([0.95]), Scripted([0.0])], thresholds=[0.9, 0.9], metric_epoch=1)
    model = small_model(tasks[0])
    with pytest.warns(UserWarning, match=r"task's dt \(20\) differs from the model's \(10\)"):
        model.train_curric({"curriculum": cur, "training_iters": 16 * 3, "verbosity": False})
    assert cur.stage == 1
