"""Sweeps (issue 6): grid rules, resuming, exactly-once completion when a worker dies mid-sweep,
and runs equal to single trainings of the same configuration and seed."""
import glob
import importlib
import json
import os
import shutil
import sys

import numpy as np
import pytest

from minirnn import Basic, Curriculum, MinirnnError, ParameterError, runs
from minirnn.errors import ShapeError
from minirnn import io as mio
from minirnn.io import read_npz
from minirnn.sweep import config_id, expand_grid, sweep
from minirnn.tasks import PerceptualDiscrimination

sweep_module = importlib.import_module("minirnn.sweep")  # minirnn.sweep is also the function's name
PARAMS = dict(N_in=2, N_rec=6, N_out=2, dt=10, tau=100, backend="numpy", dtype="float64")
TRAIN = {"training_iters": 16 * 5}
# model keys (N_rec, L2_rec, rec_noise) and training keys (learning_rate) mixed in one grid
GRID = [{"learning_rate": 1e-2}, {"learning_rate": 3e-3, "N_rec": 8},
        {"learning_rate": 1e-2, "L2_rec": 0.01, "rec_noise": 0.05}]
SEEDS = [3, 7]
WEIGHTS = ("W_in", "W_rec", "W_out", "b_rec", "b_out", "init_state")


def make_task(seed=0):
    return PerceptualDiscrimination(dt=10, tau=100, T=300, N_batch=16, seed=seed)


def in_worker() -> bool:
    try:
        from distributed import get_worker

        get_worker()
        return True
    except (ImportError, ValueError):
        return False


class KillOnceTask(PerceptualDiscrimination):
    """PerceptualDiscrimination whose worker process dies once per sweep: at the 2nd accuracy
    evaluation in a process, i.e. after a pack's first run is written and before its second's.
    ``kill_flag`` (created atomically, O_EXCL) makes it happen once, in one worker only."""

    calls = 0  # per process

    def __init__(self, dt, tau, T, N_batch, kill_flag, seed=None):
        super().__init__(dt, tau, T, N_batch, seed=seed)
        self.kill_flag = kill_flag

    def accuracy_function(self, correct_output, test_output, output_mask):
        type(self).calls += 1
        if type(self).calls == 2 and in_worker():
            try:
                fd = os.open(self.kill_flag, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            except FileExistsError:
                pass
            else:
                os.close(fd)
                os._exit(1)  # the worker dies without cleaning up, as on SIGKILL or an OOM kill
        return super().accuracy_function(correct_output, test_output, output_mask)


def read_log(out_dir):
    with open(os.path.join(out_dir, "runs.log")) as fh:
        return [json.loads(line) for line in fh]


def single_training(config, seed):
    """The run (config, seed) done by hand: what every sweep run must equal."""
    model_keys = {k: v for k, v in config.items() if k != "learning_rate"}
    model = Basic(dict(PARAMS, **model_keys, seed=seed))
    model.train(make_task(seed=seed), dict(TRAIN, verbosity=False, learning_rate=config["learning_rate"]))
    return model


# ---- the grid and its validation (no dask needed) ------------------------------------------------
def test_grid_dict_is_a_cartesian_product_first_key_slowest():
    assert expand_grid({"a": [1, 2], "b": [3, 4], "c": 5}) == [
        {"a": 1, "b": 3, "c": 5}, {"a": 1, "b": 4, "c": 5}, {"a": 2, "b": 3, "c": 5}, {"a": 2, "b": 4, "c": 5}]
    assert expand_grid({"learning_rate": np.array([1e-3, 1e-2]), "N_rec": range(5, 7)}) == [
        {"learning_rate": 1e-3, "N_rec": 5}, {"learning_rate": 1e-3, "N_rec": 6},
        {"learning_rate": 1e-2, "N_rec": 5}, {"learning_rate": 1e-2, "N_rec": 6}]
    assert expand_grid(GRID) == GRID
    ids = [config_id(c) for c in GRID]
    assert len(set(ids)) == 3 and ids == [config_id(dict(c)) for c in GRID]  # distinct and stable
    with pytest.raises(ParameterError, match="dict of lists or a list of dicts"):
        expand_grid([1, 2])


@pytest.mark.parametrize("grid, message", [
    ({"learning_rat": [1e-3]}, "'learning_rat'.*did you mean 'learning_rate'"),
    ({"N_recc": [8]}, "'N_recc'.*did you mean 'N_rec'"),
    ({"seed": [1, 2]}, "seeds"),
    ({"save_weights_path": ["w"]}, "save_weights_path"),
    # settings of a Task object: the object's trials would not change (dt: nor would the model match them)
    ({"T": [200, 1000]}, "'T', a setting of the task.*factory"),
    ({"N_batch": [4, 8]}, "'N_batch', a setting of the task.*factory"),
    ({"dt": [5, 10]}, "'dt', a setting of the task.*factory"),
    ({"alpha": [0.2]}, "'alpha'.*dt / tau"),
    # an empty list of values would silently give no runs at all
    ({"L2_rec": []}, "no values for 'L2_rec'"),
    ([], "empty list"),
    # values the model or train() would refuse on a worker, refused at planning
    ({"dale_ratio": [0.5, 1.5]}, r"'dale_ratio'.*\(0, 1\).*Got 1.5.*configuration dale_ratio=1.5"),
    ({"learning_rate": [1e-3, -1]}, "'learning_rate'.*> 0.*Got -1"),
    ({"optimizer": ["adm"]}, "'adm'; did you mean 'adam'"),
    ({"transfer_function": ["tanhh"]}, "'tanhh'; did you mean 'tanh'"),
    ({"N_rec": [5, 0]}, "'N_rec'.*positive int. Got 0"),
    ({"loss_function": ["mse"]}, "loss_function 'mse'"),
    ({"backend": ["nump"]}, "did you mean 'numpy'"),
    ({"dtype": ["float16"]}, "'dtype'.*float16"),
])
def test_bad_grid_keys_are_refused_before_anything_runs(tmp_path, grid, message):
    out = tmp_path / "sweep"
    with pytest.raises(ParameterError, match=message):
        sweep(grid, SEEDS, make_task(), PARAMS, TRAIN, str(out), scheduler="synchronous")
    assert not out.exists()


def test_shape_errors_are_found_at_planning(tmp_path):
    out = tmp_path / "sweep"
    with pytest.raises(ShapeError, match=r"tau has shape \(3,\).*N_rec"):
        sweep({"tau": [[50.0, 60.0, 70.0]]}, [1], make_task(), PARAMS, TRAIN, str(out), scheduler="synchronous")
    with pytest.raises(ShapeError, match="params\\['N_in'\\] is 3 but the task has N_in=2"):
        sweep({"N_rec": [5]}, [1], make_task(), dict(PARAMS, N_in=3), TRAIN, str(out), scheduler="synchronous")
    assert not out.exists()


def test_packing_a_curriculum_is_refused(tmp_path):
    from minirnn import Curriculum

    curriculum = Curriculum([make_task(), make_task()], thresholds=[0.5, 0.5])
    with pytest.raises(ParameterError, match="pack_seeds=True with a curriculum.*'auto'"):
        sweep({"N_rec": [5]}, SEEDS, make_task(), PARAMS, dict(TRAIN, curriculum=curriculum), str(tmp_path / "s"),
              scheduler="synchronous", pack_seeds=True)
    assert not (tmp_path / "s").exists()


def test_tau_of_a_task_object_is_the_models_to_sweep(tmp_path):
    """A task only records tau (in its alpha); the model's time constant is the grid's."""
    per_unit = np.linspace(50.0, 150.0, PARAMS["N_rec"])
    result = sweep({"tau": [per_unit, 100]}, [1], make_task(), PARAMS, TRAIN, str(tmp_path), scheduler="synchronous")
    alphas = [runs.load_run(os.path.join(tmp_path, r["run_id"]))[0].alpha for r in result]
    np.testing.assert_allclose(np.ravel(alphas[0]), 10 / per_unit)
    np.testing.assert_allclose(np.ravel(alphas[1]), 0.1)
    assert result[0]["final_loss"] != result[1]["final_loss"]


def test_a_task_factory_takes_the_task_keys(tmp_path):
    def factory(config):
        return PerceptualDiscrimination(dt=10, tau=100, T=300, N_batch=16, coherence=config["coherence"])

    result = sweep({"coherence": [0.1, 0.7], "N_rec": [5]}, [1], factory, PARAMS, TRAIN, str(tmp_path),
                   scheduler="synchronous")
    assert [(r["config"]["coherence"], r["config"]["N_rec"]) for r in result] == [(0.1, 5), (0.7, 5)]
    assert read_npz(os.path.join(tmp_path, result[0]["run_id"], "weights.npz"))["W_rec"].shape == (5, 5)
    with pytest.raises(ParameterError, match="did you mean 'N_rec'"):  # a near miss is still an error
        sweep({"coherence": [0.1], "N_recc": [5]}, [1], factory, PARAMS, TRAIN, str(tmp_path), scheduler="synchronous")


def test_a_factory_that_builds_another_task_is_a_different_specification(tmp_path):
    def factory_of(coherence):
        return lambda config: PerceptualDiscrimination(dt=10, tau=100, T=300, N_batch=16, coherence=coherence)

    grid, out = {"learning_rate": [1e-3]}, str(tmp_path)
    first = sweep(grid, [1], factory_of(0.5), PARAMS, TRAIN, out, scheduler="synchronous")
    again = sweep(grid, [1], factory_of(0.5), PARAMS, TRAIN, out, scheduler="synchronous")  # same name, same task
    assert again.skipped == first.trained and not again.trained
    with pytest.raises(ParameterError, match=r"different sweep specification \(task\['builds'\]\['params'\]"
                                             r"\['coherence'\]: 0.5 then, 0.01 now\)"):
        sweep(grid, [1], factory_of(0.01), PARAMS, TRAIN, out, scheduler="synchronous")
    with pytest.raises(ParameterError, match="returned dict, not a Task"):
        sweep(grid, [1], lambda config: {}, PARAMS, TRAIN, str(tmp_path / "other"), scheduler="synchronous")


def test_a_factory_run_finished_before_factories_were_fingerprinted_is_reused_with_a_warning(tmp_path, monkeypatch):
    import sys

    sweep_module = sys.modules["minirnn.sweep"]  # (minirnn.sweep the attribute is the function)

    def factory(config):
        return PerceptualDiscrimination(dt=10, tau=100, T=300, N_batch=16)

    grid, out = {"learning_rate": [1e-3]}, str(tmp_path)
    with monkeypatch.context() as m:  # the older record: the factory's name only
        m.setattr(sweep_module, "_task_description", lambda task, config: {"factory": sweep_module._describe(task)})
        first = sweep(grid, [1], factory, PARAMS, TRAIN, out, scheduler="synchronous")
    with pytest.warns(UserWarning, match="finished before minirnn recorded what a task factory builds"):
        again = sweep(grid, [1], factory, PARAMS, TRAIN, out, scheduler="synchronous")
    assert again.skipped == first.trained and not again.trained and len(again) == 1


def test_bad_seeds_and_options(tmp_path):
    for seeds, message in (([1, 1], "repeated"), ([], "empty"), ([1.5], "non-negative int")):
        with pytest.raises(ParameterError, match=message):
            sweep(GRID, seeds, make_task(), PARAMS, TRAIN, str(tmp_path), scheduler="synchronous")
    with pytest.raises(ParameterError, match="pack_seeds"):
        sweep(GRID, SEEDS, make_task(), PARAMS, TRAIN, str(tmp_path), scheduler="synchronous", pack_seeds="yes")


def test_half_written_run_is_redone_and_a_changed_spec_is_refused(tmp_path):
    out = str(tmp_path)
    grid = {"learning_rate": [1e-2]}
    first = sweep(grid, [1, 2], make_task(), PARAMS, TRAIN, out, scheduler="synchronous")
    assert len(first.trained) == 2 and not first.skipped
    half = os.path.join(out, first[1]["config_id"], "seed-2")
    weights_before = read_npz(os.path.join(half, "weights.npz"))
    os.remove(os.path.join(half, "DONE.json"))  # as if killed between its weights and its marker
    left_over = mio._temporary_prefix("weights.npz") + "k3j9x0q1.tmp"  # ... or while writing a file
    open(os.path.join(half, left_over), "wb").close()
    users = ".notes.tmp"  # not minirnn's: it stays
    open(os.path.join(half, users), "wb").close()
    again = sweep(grid, [1, 2], make_task(), PARAMS, TRAIN, out, scheduler="synchronous")
    assert again.trained == [first[1]["run_id"]] and again.skipped == [first[0]["run_id"]]
    assert left_over not in os.listdir(half) and users in os.listdir(half)
    for name in WEIGHTS:  # redone alone (not packed this time), equal to its packed first version
        np.testing.assert_allclose(read_npz(os.path.join(half, "weights.npz"))[name], weights_before[name],
                                   rtol=1e-10, atol=1e-13)
    with pytest.raises(ParameterError, match="training_iters"):
        sweep(grid, [1, 2], make_task(), PARAMS, {"training_iters": 16 * 6}, out, scheduler="synchronous")
    fresh = sweep(grid, [1, 2], make_task(), PARAMS, {"training_iters": 16 * 6}, out, scheduler="synchronous",
                  resume=False)
    assert len(fresh.trained) == 2 and all(r["n_updates"] == 6 for r in fresh)


# ---- one sweep per out_dir; a run counts only under its own specification ------------------------
def test_a_second_sweep_on_the_same_out_dir_is_refused_while_the_first_runs(tmp_path):
    """The second sweep starts while the first trains (from inside its task factory, called on the
    "worker"): it must be refused, naming the first sweep's pid, not mix its runs with the first's."""
    out, grid, refusals = str(tmp_path), {"learning_rate": [1e-2]}, []

    def factory(config):
        factory.calls += 1
        if factory.calls == 2:  # the first sweep's run (call 1 was its planning): start another sweep now
            try:
                sweep(grid, [1], factory, PARAMS, {"training_iters": 16 * 6}, out, scheduler="synchronous")
            except ParameterError as exc:
                refusals.append(str(exc))
            else:
                refusals.append("the second sweep ran")
        return make_task()

    factory.calls = 0
    first = sweep(grid, [1], factory, PARAMS, TRAIN, out, scheduler="synchronous")
    assert len(refusals) == 1 and f"in use by another sweep (pid {os.getpid()} on" in refusals[0], refusals
    assert "wait for that sweep to finish, or use another out_dir" in refusals[0]
    assert first[0]["n_updates"] == 5 and not os.path.exists(os.path.join(out, ".sweep.lock"))
    assert len(sweep(grid, [1], factory, PARAMS, TRAIN, out, scheduler="synchronous").skipped) == 1  # unlocked


@pytest.mark.parametrize("when", ["before the workers", "after the workers"])
def test_a_run_finished_under_another_specification_is_an_error_never_a_row(tmp_path, monkeypatch, when):
    """A run of another specification appears in out_dir while the sweep runs (a process that did
    not take the lock): the worker does not skip it as done, the summary does not list it, and the
    sweep says so; the intruder's files are left alone."""
    grid = {"learning_rate": [1e-2]}
    other = sweep(grid, [1], make_task(), PARAMS, TRAIN, str(tmp_path / "other"), scheduler="synchronous")
    intruder, out = os.path.join(str(tmp_path / "other"), other[0]["run_id"]), str(tmp_path / "out")
    real_execute = sweep_module._execute

    def execute_with_an_intruder(*args):
        copy_intruder = lambda: shutil.copytree(intruder, os.path.join(out, other[0]["run_id"]),
                                                dirs_exist_ok=True)
        if when == "before the workers":
            copy_intruder()
        result = real_execute(*args)
        if when == "after the workers":
            copy_intruder()
        return result

    monkeypatch.setattr(sweep_module, "_execute", execute_with_an_intruder)
    with pytest.raises(MinirnnError, match=r"1 run\(s\) of the sweep did not finish:\n.*seed-1: ParameterError: "
                                           r".*seed-1 holds a run of a different sweep specification"):
        sweep(grid, [1, 2], make_task(), PARAMS, {"training_iters": 16 * 6}, out, scheduler="synchronous",
              pack_seeds=False)
    with open(os.path.join(out, "summary.csv")) as fh:
        summary = fh.read()
    assert "seed-1" not in summary and "seed-2" in summary
    with open(os.path.join(out, other[0]["run_id"], "DONE.json")) as fh:
        assert json.load(fh)["row"]["n_updates"] == 5  # the intruder's run, as it was


def test_a_stale_temporary_of_summary_csv_is_removed(tmp_path):
    out, grid = str(tmp_path), {"learning_rate": [1e-2]}
    sweep(grid, [1], make_task(), PARAMS, TRAIN, out, scheduler="synchronous")
    stale = [mio._temporary_prefix("summary.csv") + "x1y2z3w4.tmp", ".summary.csv.12345678.tmp"]  # new, old naming
    for name in stale + [".notes.tmp"]:  # a sweep killed while writing summary.csv; a user's file
        open(os.path.join(out, name), "wb").close()
    again = sweep(grid, [1], make_task(), PARAMS, TRAIN, out, scheduler="synchronous")
    assert len(again.skipped) == 1
    assert sorted(os.listdir(out)) == sorted([".notes.tmp", "runs.log", "summary.csv", again[0]["config_id"]])


# ---- the constraint audit in each run.json -------------------------------------------------------
def audits(out, result) -> list:
    audits = []
    for row in result:
        with open(os.path.join(out, row["run_id"], "run.json")) as fh:
            audits.append(json.load(fh)["constraint_audit"])
    return audits


@pytest.mark.parametrize("pack_seeds", [False, True])
def test_the_sweeps_constraint_audit_checks_fixed_weights(tmp_path, pack_seeds):
    tp = dict(TRAIN, fixed_weights={"W_in": np.ones((6, 2))})
    result = sweep({"learning_rate": [1e-2]}, [1, 2], make_task(), PARAMS, tp, str(tmp_path),
                   scheduler="synchronous", pack_seeds=pack_seeds)
    assert [r["packed_with"] for r in result] == ([2, 2] if pack_seeds else [1, 1])
    for audit in audits(str(tmp_path), result):
        assert audit["ok"] and audit["fixed_moved"] == 0
        assert audit["details"]["fixed_moved"] == {"W_in": 0}  # compared, not skipped


def test_the_sweeps_audit_reads_lstm_fixed_weights_in_psychrnns_layout_as_the_trainer_does(tmp_path):
    from minirnn.models.lstm import LSTM

    F = np.zeros((6 + 2, 6))  # PsychRNN's (N_rec + N_in, N_rec) gate layout; the model's W_f is (6, 8)
    F[0] = 1
    tp = dict(TRAIN, fixed_weights={"W_f": F})
    result = sweep({"learning_rate": [1e-2]}, [1], make_task(), PARAMS, tp, str(tmp_path), scheduler="synchronous",
                   model=LSTM)
    [audit] = audits(str(tmp_path), result)
    assert audit["ok"] and audit["details"]["fixed_moved"] == {"W_f": 0}


@pytest.mark.parametrize("pack_seeds", [False, True])
def test_the_sweeps_constraint_audit_reports_a_fixed_weight_that_moved(tmp_path, monkeypatch, pack_seeds):
    real_train = sweep_module._train

    def train_then_move_a_fixed_entry(spec, task, seeds):
        nets, *rest = real_train(spec, task, seeds)
        for net in nets:
            net.raw["W_in"][0, 0] += 1.0
        return (nets, *rest)

    monkeypatch.setattr(sweep_module, "_train", train_then_move_a_fixed_entry)
    tp = dict(TRAIN, fixed_weights={"W_in": np.ones((6, 2))})
    result = sweep({"learning_rate": [1e-2]}, [1, 2], make_task(), PARAMS, tp, str(tmp_path),
                   scheduler="synchronous", pack_seeds=pack_seeds)
    for audit in audits(str(tmp_path), result):
        assert not audit["ok"] and audit["fixed_moved"] == 1 and audit["details"]["fixed_moved"] == {"W_in": 1}


def test_unpacked_runs_equal_packed_runs(tmp_path):
    grid = {"learning_rate": [1e-2], "rec_noise": [0.05]}
    packed = sweep(grid, [1, 2, 5], make_task(), PARAMS, TRAIN, str(tmp_path / "p"), scheduler="synchronous")
    alone = sweep(grid, [1, 2, 5], make_task(), PARAMS, TRAIN, str(tmp_path / "a"), scheduler="synchronous",
                  pack_seeds=False)
    pairs = sweep(grid, [1, 2, 5], make_task(), PARAMS, TRAIN, str(tmp_path / "2"), scheduler="synchronous",
                  pack_seeds=2)
    assert [r["packed_with"] for r in packed] == [3, 3, 3] and [r["packed_with"] for r in alone] == [1, 1, 1]
    assert [r["packed_with"] for r in pairs] == [2, 2, 1]
    for p, a, b in zip(packed, alone, pairs):
        for key in ("final_loss", "eval_loss", "accuracy"):
            assert p[key] == pytest.approx(a[key], rel=1e-10) == b[key]


class NaNForSeed2(PerceptualDiscrimination):
    """Trials with a NaN input when the task's stream is that of seed 2 (a run that cannot train)."""

    def build_trials(self, params, rng=None):
        x, y, mask = super().build_trials(params, rng)
        if self.rng.bit_generator.seed_seq.entropy == 2:
            x[0, 0, 0] = np.nan
        return x, y, mask


def test_a_failing_seed_does_not_take_its_pack_down(tmp_path):
    task = NaNForSeed2(dt=10, tau=100, T=300, N_batch=16, seed=0)
    with pytest.raises(MinirnnError, match=r"(?s)1 run\(s\).*seed-2: NonFiniteError") as info:
        sweep({"learning_rate": [1e-2]}, [1, 2, 5], task, PARAMS, TRAIN, str(tmp_path), scheduler="synchronous")
    assert "2 finished runs are saved" in str(info.value)
    with open(tmp_path / "summary.csv") as fh:
        assert [line.split(",")[2] for line in fh.read().splitlines()[1:]] == ["1", "5"]
    assert [e["run"].rsplit("-", 1)[1] for e in read_log(tmp_path) if e["event"] == "failed"] == ["2"]


class InfLossForSeed2(PerceptualDiscrimination):
    """Targets of 1e200 (finite) when the task's stream is that of seed 2: its squared error is inf
    at the first update, so in an ensemble only that network diverges (NonFiniteError.networks)."""

    def build_trials(self, params, rng=None):
        x, y, mask = super().build_trials(params, rng)
        if self.rng.bit_generator.seed_seq.entropy == 2:
            y = np.full_like(y, 1e200)
        return x, y, mask


class RaisesForSeed2(PerceptualDiscrimination):
    """A task with a bug that shows only in seed 2's stream (not a minirnn error)."""

    def build_trials(self, params, rng=None):
        if self.rng.bit_generator.seed_seq.entropy == 2:
            raise RuntimeError("a bug in the task, for seed 2 only")
        return super().build_trials(params, rng)


def check_only_seed_2_lost(out, result_error, healthy_packed_with):
    """summary.csv lists seeds 1 and 5 (trained as they would be alone), the error names seed 2 only."""
    assert "1 run(s) of the sweep did not finish" in str(result_error) and "seed-2" in str(result_error)
    assert "2 finished runs are saved" in str(result_error)
    with open(os.path.join(out, "summary.csv")) as fh:
        rows = [line.split(",") for line in fh.read().splitlines()[1:]]
    assert [r[2] for r in rows] == ["1", "5"] and [r[8] for r in rows] == [healthy_packed_with] * 2
    alone = sweep({"learning_rate": [1e-2]}, [1, 5], make_task(), PARAMS, TRAIN, os.path.join(out, "alone"),
                  scheduler="synchronous", pack_seeds=False)
    for row, single in zip(rows, alone):
        assert float(row[4]) == pytest.approx(single["eval_loss"], rel=1e-10)
        assert float(row[3]) == pytest.approx(single["final_loss"], rel=1e-10)
    assert not os.path.exists(os.path.join(out, config_id({"learning_rate": 1e-2}), "seed-2", "DONE.json"))


def test_a_diverging_network_of_a_pack_fails_alone_and_its_pack_mates_train_together(tmp_path):
    task = InfLossForSeed2(dt=10, tau=100, T=300, N_batch=16, seed=0)
    with pytest.raises(MinirnnError, match=r"seed-2: NonFiniteError: loss became NaN or inf") as info:
        sweep({"learning_rate": [1e-2]}, [1, 2, 5], task, PARAMS, TRAIN, str(tmp_path), scheduler="synchronous",
              pack_seeds=True)
    check_only_seed_2_lost(str(tmp_path), info.value, "2")  # the culprit alone, the other two as a pack
    assert [e["run"].rsplit("-", 1)[1] for e in read_log(tmp_path) if e["event"] == "failed"] == ["2"]


def test_an_unexpected_exception_in_a_pack_loses_only_its_seed(tmp_path):
    task = RaisesForSeed2(dt=10, tau=100, T=300, N_batch=16, seed=0)
    with pytest.raises(MinirnnError, match=r"seed-2: task failed 1 time, last with RuntimeError: a bug") as info:
        sweep({"learning_rate": [1e-2]}, [1, 2, 5], task, PARAMS, TRAIN, str(tmp_path), scheduler="synchronous",
              pack_seeds=True)
    assert isinstance(info.value.__cause__, RuntimeError)  # the traceback to debug is kept
    check_only_seed_2_lost(str(tmp_path), info.value, "1")  # after the pack raised, seed by seed


def curriculum_tasks(seed=0):
    return [PerceptualDiscrimination(dt=10, tau=100, T=300, N_batch=16, coherence=c, seed=seed) for c in (0.5, 0.2)]


def check_curriculum_runs(out, result, user_curriculum):
    """Every run trained on its own fresh curriculum whose tasks have the run's seed, as by hand."""
    assert user_curriculum.stage == 0 and user_curriculum.history == []  # the caller's object is untouched
    assert not os.path.exists(user_curriculum_file(out))  # each run writes its own copy (below) instead
    for row in result:
        run_dir = os.path.join(out, row["run_id"])
        by_hand = Basic(dict(PARAMS, seed=row["seed"]))
        curriculum = Curriculum(curriculum_tasks(seed=row["seed"]), thresholds=[0.0, 0.0], metric_epoch=2)
        by_hand.train(None, dict(TRAIN, verbosity=False, learning_rate=1e-2, curriculum=curriculum))
        model, _, record = runs.load_run(run_dir)
        np.testing.assert_allclose(model.get_weights()["W_rec"], by_hand.get_weights()["W_rec"], rtol=1e-10,
                                   atol=1e-13)
        assert record["history"]["loss"] == pytest.approx(by_hand.history["loss"], rel=1e-10)
        assert [(s["update"], s["stage"]) for s in record["curriculum_stages"]] == [(2, 1), (4, 2)]
        stages, want = record["curriculum_stages"], by_hand.history["stages"]
        assert len(stages) == len(want)
        for got, expected in zip(stages, want):  # pytest 9.2's approx takes no list of dicts
            assert got.keys() == expected.keys()
            assert {k: pytest.approx(v) for k, v in got.items()} == expected
        with open(os.path.join(run_dir, "stages.json")) as fh:
            assert [h["stage"] for h in json.load(fh)["history"]] == [0, 1]
    assert result[0]["final_loss"] != result[1]["final_loss"]  # seeds 1 and 2: different trials


def user_curriculum_file(out):
    return os.path.join(os.path.dirname(out), "user", "stages.json")


def test_each_run_trains_on_its_own_curriculum_reseeded_with_its_seed(tmp_path):
    out = str(tmp_path / "out")
    curriculum = Curriculum(curriculum_tasks(), thresholds=[0.0, 0.0], metric_epoch=2,
                            output_file=user_curriculum_file(out))
    result = sweep({"learning_rate": [1e-2]}, [1, 2], make_task(), PARAMS, dict(TRAIN, curriculum=curriculum), out,
                   scheduler="synchronous")  # the second run used to find the curriculum finished
    assert [r["n_updates"] for r in result] == [4, 4] and [r["packed_with"] for r in result] == [1, 1]
    check_curriculum_runs(out, result, curriculum)
    curriculum.stage, curriculum.stop_training = 2, True
    with pytest.raises(ParameterError, match="curriculum in train_params has already finished"):
        sweep({"learning_rate": [3e-3]}, [1], make_task(), PARAMS, dict(TRAIN, curriculum=curriculum), out,
              scheduler="synchronous")


# ---- on a real LocalCluster, with a worker killed mid-sweep ---------------------------------------
@pytest.fixture(scope="module")
def killed_sweep(tmp_path_factory):
    pytest.importorskip("distributed")
    root = tmp_path_factory.mktemp("sweep")
    out, flag = str(root / "out"), str(root / "killed")
    task = KillOnceTask(dt=10, tau=100, T=300, N_batch=16, seed=0, kill_flag=flag)
    result = sweep(GRID, SEEDS, task, PARAMS, TRAIN, out, n_workers=2, retries=2)
    return {"out": out, "flag": flag, "task": task, "result": result}


@pytest.mark.slow
def test_killed_worker_every_run_completes_exactly_once_with_intact_files(killed_sweep):
    out, result = killed_sweep["out"], killed_sweep["result"]
    assert os.path.exists(killed_sweep["flag"]), "no worker was killed: the test did not test anything"
    run_ids = [f"{config_id(c)}/seed-{s}" for c in GRID for s in SEEDS]
    assert [r["run_id"] for r in result] == run_ids
    assert sorted(result.trained) == sorted(run_ids)
    log = read_log(out)
    done = [e["run"] for e in log if e["event"] == "done"]
    starts = [e["run"] for e in log if e["event"] == "start"]
    assert sorted(done) == sorted(run_ids)  # each run finished exactly once
    assert len(starts) == len(run_ids) + 1  # the run whose worker died was started twice ...
    twice = [run for run in run_ids if starts.count(run) == 2]
    assert len({e["pid"] for e in log if e["run"] == twice[0] and e["event"] == "start"}) == 2  # ... by two processes
    for run_id, row in zip(run_ids, result):
        run_dir = os.path.join(out, run_id)
        weights = read_npz(os.path.join(run_dir, "weights.npz"))
        assert all(np.all(np.isfinite(weights[name])) for name in WEIGHTS)
        model, task, record = runs.load_run(run_dir)  # the model and the run's own task stream back
        assert record["status"] == "complete" and record["constraint_audit"]["ok"]
        assert len(record["history"]["loss"]) == 5 and record["history"]["loss"][-1] == row["final_loss"]
        assert record["sweep"]["seed"] == row["seed"] == record["seeds"]["task"] and record["versions"]["minirnn"]
        np.testing.assert_array_equal(model.get_weights()["W_rec"], weights["W_rec"])
        assert task.kill_flag == killed_sweep["flag"] and task.N_batch == 16
    assert not glob.glob(os.path.join(out, "**", "*.tmp"), recursive=True)
    with open(result.csv_path) as fh:
        assert len(fh.read().strip().splitlines()) == 1 + len(run_ids)


@pytest.mark.slow
def test_sweep_runs_equal_single_trainings(killed_sweep):
    result = {(r["config_id"], r["seed"]): r for r in killed_sweep["result"]}
    for config in GRID:
        for seed in SEEDS:
            single = single_training(config, seed)
            row = result[(config_id(config), seed)]
            saved = read_npz(os.path.join(killed_sweep["out"], row["run_id"], "weights.npz"))
            expected = single.get_weights()
            for name in WEIGHTS:
                np.testing.assert_allclose(saved[name], expected[name], rtol=1e-10, atol=1e-13, err_msg=name)
            assert row["final_loss"] == pytest.approx(single.history["loss"][-1], rel=1e-10)


@pytest.mark.slow
def test_second_call_finds_nothing_to_do(killed_sweep, monkeypatch):
    sweep_module = sys.modules["minirnn.sweep"]  # the module (minirnn.sweep may name the function)

    def no_cluster(*args, **kwargs):
        raise AssertionError("a finished sweep started a cluster")

    monkeypatch.setattr(sweep_module, "_client", no_cluster)
    log_before = read_log(killed_sweep["out"])
    again = sweep(GRID, SEEDS, killed_sweep["task"], PARAMS, TRAIN, killed_sweep["out"], n_workers=2)
    assert again.trained == [] and len(again.skipped) == 6
    assert read_log(killed_sweep["out"]) == log_before
    assert [r["run_id"] for r in again] == [r["run_id"] for r in killed_sweep["result"]]


def test_missing_dask_names_the_install_command(tmp_path, monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_dask(name, *args, **kwargs):
        if name in ("dask", "distributed") or name.startswith(("dask.", "distributed.")):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_dask)
    with pytest.raises(MinirnnError, match=r"pip install .*dask"):
        sweep({"learning_rate": [1e-2]}, [1], make_task(), PARAMS, TRAIN, str(tmp_path))


@pytest.mark.slow
def test_an_existing_cluster_is_used_and_left_running(tmp_path):
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=1, threads_per_worker=2, processes=False,
                                  dashboard_address=None) as cluster, distributed.Client(cluster) as client:
        by_address = sweep({"learning_rate": [1e-2]}, [1, 2], make_task(), PARAMS, TRAIN, str(tmp_path / "a"),
                           scheduler=cluster.scheduler_address)
        # one configuration, two slots: its seeds are split so that both slots have work
        assert [r["packed_with"] for r in by_address] == [1, 1] and len(by_address.trained) == 2
        by_client = sweep({"learning_rate": [1e-2]}, [1, 2], make_task(), PARAMS, TRAIN, str(tmp_path / "b"),
                          scheduler=client, n_workers=1)
        assert [r["packed_with"] for r in by_client] == [2, 2]
        assert client.submit(sum, [1, 2]).result() == 3  # the caller's client still works
    for a, b in zip(by_address, by_client):
        assert a["eval_loss"] == pytest.approx(b["eval_loss"], rel=1e-10)


def test_a_sweep_task_pins_the_kernel_threads_and_restores_them():
    """Inside one sweep task the numba kernels use ``blas_threads`` threads (one task per core must not
    start two kernel threads each); the caller's setting comes back afterwards."""
    nk = pytest.importorskip("minirnn.backends.numba_kernels")
    from minirnn.sweep import _blas_threads

    before = nk.set_num_threads(3)
    try:
        with _blas_threads(1):
            assert nk.num_threads() == 1
        assert nk.num_threads() == 3
    finally:
        nk.set_num_threads(before)


# ---- the same on dask: worker processes, specs pickled -------------------------------------------
@pytest.fixture(scope="module")
def one_worker_cluster():
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster:
        yield cluster.scheduler_address


@pytest.mark.slow
def test_on_dask_a_diverging_network_of_a_pack_fails_alone(tmp_path, one_worker_cluster):
    task = InfLossForSeed2(dt=10, tau=100, T=300, N_batch=16, seed=0)
    with pytest.raises(MinirnnError, match=r"seed-2: NonFiniteError") as info:
        sweep({"learning_rate": [1e-2]}, [1, 2, 5], task, PARAMS, TRAIN, str(tmp_path), scheduler=one_worker_cluster,
              pack_seeds=True, retries=1)
    check_only_seed_2_lost(str(tmp_path), info.value, "2")


@pytest.mark.slow
def test_on_dask_each_run_trains_on_its_own_curriculum(tmp_path, one_worker_cluster):
    out = str(tmp_path / "out")
    curriculum = Curriculum(curriculum_tasks(), thresholds=[0.0, 0.0], metric_epoch=2,
                            output_file=user_curriculum_file(out))
    result = sweep({"learning_rate": [1e-2]}, [1, 2], make_task(), PARAMS, dict(TRAIN, curriculum=curriculum), out,
                   scheduler=one_worker_cluster)
    check_curriculum_runs(out, result, curriculum)
