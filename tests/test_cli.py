"""The ``minirnn`` command line and run directories: help, option checking with did-you-mean, a
self-describing run directory that loads with minirnn + NumPy alone, PsychRNN-readable weights,
the constraint audit, evaluate / plot / gradcheck / bench / describe, and (slow) the paper's
minimal example trained from a TOML file under a pseudo-terminal with a progress bar.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import select
import shutil
import signal
import struct
import subprocess
import sys
import time
import warnings

import numpy as np
import pytest

from minirnn import Basic, cli, runs
from minirnn.errors import WeightsFileError
from minirnn.io import read_npz
from minirnn.runs import constraint_audit, load_run, task_class
from minirnn.tasks import PerceptualDiscrimination

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SMALL = ["--n-rec", "8", "--batch", "16", "--iters", "320", "--seed", "4", "--backend", "numpy",
         "--set", "T=300", "--quiet"]
PSYCHRNN_KEYS = {"init_state", "W_in", "W_rec", "W_out", "b_rec", "b_out", "Dale_rec", "Dale_out",
                 "input_connectivity", "rec_connectivity", "output_connectivity", "dale_ratio"}


def run_cli(*argv):
    return cli.main(list(argv))


def snapshot(directory):
    """Every file under ``directory`` (relative name -> bytes): what a command must leave alone."""
    out = {}
    for root, _, files in os.walk(directory):
        for name in files:
            path = os.path.join(root, name)
            with open(path, "rb") as fh:
                out[os.path.relpath(path, directory)] = fh.read()
    return out


def copy_run(run, tmp_path, status=None):
    """A copy of a run directory (the module's runs stay untouched), with run.json's status changed."""
    copy = str(tmp_path / "copy")
    shutil.copytree(run, copy)
    if status is not None:
        record_path = os.path.join(copy, "run.json")
        record = json.load(open(record_path))
        record["status"] = status
        with open(record_path, "w") as fh:
            json.dump(record, fh)
    return copy


@pytest.fixture(scope="module")
def small_run(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("runs") / "pd")
    assert run_cli("train", "PerceptualDiscrimination", *SMALL, "--dale-ratio", "0.75", "--out", out) == 0
    return out


# ---------------------------------------------------------------------------- help and errors


@pytest.mark.parametrize("verb", ["train", "evaluate", "plot", "gradcheck", "bench", "describe"])
def test_every_verb_has_help_with_examples(verb, capsys):
    with pytest.raises(SystemExit) as info:
        run_cli(verb, "--help")
    assert info.value.code == 0
    text = capsys.readouterr().out
    assert "examples:" in text and f"minirnn {verb}" in text


def test_every_option_of_every_verb_has_a_help_text():
    parser = cli.build_parser()
    [verbs] = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    for verb, sub in verbs.choices.items():
        for action in sub._actions:
            assert action.help, f"minirnn {verb} {'/'.join(action.option_strings) or action.dest} has no help"


def test_the_exit_codes_are_listed():
    doc = " ".join(cli.__doc__.split())
    assert ("1 training diverged, or the constraint audit of the trained network failed (``train``), or a relative "
            "error is above ``--tolerance`` (``gradcheck``)") in doc


def test_task_names_are_case_insensitive_with_did_you_mean(capsys):
    assert task_class("flipflop").__name__ == "FlipFlop"
    assert task_class("match_to_category").__name__ == "MatchToCategory"
    assert run_cli("train", "PerceptualDiscrimation", "--quiet") == 2
    err = capsys.readouterr().err
    assert "Unknown task 'PerceptualDiscrimation'; did you mean 'PerceptualDiscrimination'?" in err


@pytest.mark.parametrize("option, message", [
    ("N_recc=5", "Unknown parameter 'N_recc' in --set; did you mean 'N_rec'?"),
    ("train_params.learning_rat=0.1", "Unknown key 'learning_rat' in [train_params]; did you mean 'learning_rate'?"),
    ("task.coherenc=0.5", "Unknown key 'coherenc' in [task]; did you mean 'coherence'?"),
    ("parms.N_rec=5", "Unknown table 'parms' in --set parms.N_rec; did you mean 'params'?"),
    ("N_rec", "--set takes key=value"),
])
def test_set_is_checked_against_the_tables(tmp_path, capsys, option, message):
    assert run_cli("train", "PerceptualDiscrimination", "--set", option, "--out", str(tmp_path / "r"), "--quiet") == 2
    assert message in capsys.readouterr().err
    assert not os.path.exists(tmp_path / "r" / "run.json")


def test_set_values_are_literals_else_strings(tmp_path):
    class Args:
        config, task, n_rec, seed, backend, dale_ratio, dtype, rec_noise = None, "FlipFlop", None, None, None, None, None, None
        iters, learning_rate, batch = None, None, None
        set = ["N_bits=2", "transfer_function=tanh", "clip_global_norm=None", "task.p_flip=0.1", "L2_rec=1e-3"]
    task_cls, config = cli.build_config(Args)
    assert config["task"]["N_bits"] == 2 and config["task"]["p_flip"] == 0.1
    assert config["params"]["transfer_function"] == "tanh" and config["params"]["L2_rec"] == 1e-3
    assert config["train_params"]["clip_global_norm"] is None


def test_config_file_errors_name_the_file_and_key(tmp_path, capsys):
    bad = tmp_path / "bad.toml"
    bad.write_text("[parms]\nN_rec = 5\n")
    assert run_cli("train", "--config", str(bad), "--quiet") == 2
    assert "Unknown table [parms]" in capsys.readouterr().err
    bad.write_text("[task]\nname = 'FlipFlop'\n[params]\ndale_ration = 0.5\n")
    assert run_cli("train", "--config", str(bad), "--quiet") == 2
    assert "did you mean 'dale_ratio'?" in capsys.readouterr().err
    bad.write_text("[params\n")
    assert run_cli("train", "--config", str(bad), "--quiet") == 2
    assert "is not valid TOML" in capsys.readouterr().err


def test_bad_values_are_reported_without_traceback(tmp_path, capsys):
    assert run_cli("train", "PerceptualDiscrimination", "--dale-ratio", "1.5", "--out", str(tmp_path / "r"), "--quiet") == 2
    err = capsys.readouterr().err
    assert "dale_ratio" in err and "Traceback" not in err


@pytest.mark.parametrize("bad, name", [(["--set", "learning_rate=-1"], "learning_rate"),
                                       (["--dale-ratio", "1.5"], "dale_ratio"),
                                       (["--set", "optimizer='adamm'"], "did you mean 'adam'?"),
                                       (["--set", "task.coherence='abc'"], "coherence")])
def test_force_with_bad_input_keeps_the_saved_run(small_run, tmp_path, capsys, bad, name):
    run = copy_run(small_run, tmp_path)
    before = snapshot(run)
    assert run_cli("train", "PerceptualDiscrimination", *SMALL, *bad, "--force", "--out", run) == 2
    assert name in capsys.readouterr().err
    assert snapshot(run) == before  # trained weights, checkpoint and record: every byte still there


@pytest.mark.parametrize("bad, name", [(["--set", "loss_epoch=0"], "'loss_epoch' training parameter"),
                                       (["--set", "learning_rate=-1"], "'learning_rate'"),
                                       (["--set", "optimizer='adamm'"], "Unknown optimizer 'adamm'"),
                                       (["--set", "blas_threads=-1"], "'blas_threads'"),
                                       (["--set", "performance_cutoff=0.9", "--no-accuracy"], "performance_cutoff"),
                                       (["--n-rec", "0"], "'N_rec'")])
def test_bad_input_writes_nothing(tmp_path, capsys, bad, name):
    out = tmp_path / "r"
    assert run_cli("train", "PerceptualDiscrimination", *SMALL, *bad, "--out", str(out)) == 2
    err = capsys.readouterr().err
    assert name in err and "Traceback" not in err
    assert not out.exists()  # not even an empty directory


def test_a_rejected_command_can_be_retried_without_force(tmp_path, capsys):
    out = str(tmp_path / "r")
    assert run_cli("train", "FlipFlop", *SMALL, "--iters", "32", "--set", "loss_epoch=0", "--out", out) == 2
    assert run_cli("train", "FlipFlop", *SMALL, "--iters", "32", "--out", out) == 0
    assert json.load(open(os.path.join(out, "run.json")))["status"] == "complete"


@pytest.mark.parametrize("option, message", [
    ("alpha=0.5", "'alpha' cannot be set here: the model takes it from the task (dt / tau; set task.dt or task.tau"),
    ("N_steps=5", "'N_steps' cannot be set here: the model takes it from the task (T / dt; set task.T"),
    ("params.N_in=3", "'N_in' cannot be set here"),
    ("custom_regularization=x", "'custom_regularization' takes a callable, which the command line cannot give"),
    ("curriculum=x", "'curriculum' takes a Curriculum"),
    ("alph=0.5", "Unknown parameter 'alph' in --set; did you mean 'alpha'?"),
    ("verbosity=Flase", "The 'verbosity' training parameter must be True or False. Got 'Flase'"),
])
def test_set_rejects_settings_without_effect(tmp_path, capsys, option, message):
    assert run_cli("train", "PerceptualDiscrimination", *SMALL, "--set", option, "--out", str(tmp_path / "r")) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


def test_verbosity_is_honoured_and_quiet_wins(tmp_path):
    task = PerceptualDiscrimination(dt=10, tau=100, T=300, N_batch=16, seed=0)
    bar = lambda tp, quiet: cli.runtime_train_params(tp, task, str(tmp_path), quiet)["verbosity"]  # noqa: E731
    assert bar({}, quiet=False) is True and bar({"verbosity": False}, quiet=False) is False
    assert bar({"verbosity": True}, quiet=True) is False
    out = str(tmp_path / "r")
    assert run_cli("train", "FlipFlop", *SMALL, "--iters", "32", "--set", "verbosity=False", "--out", out) == 0
    assert json.load(open(os.path.join(out, "run.json")))["train_params"]["verbosity"] is False  # resume keeps it


def test_negative_seeds_and_counts_are_refused_without_traceback(small_run, tmp_path, capsys):
    for argv, message in [(["evaluate", small_run, "--seed", "-1"], "argument --seed: must be an int >= 0; got -1"),
                          (["evaluate", small_run, "--trials", "-5"], "argument --trials: must be an int >= 1; got -5"),
                          (["plot", small_run, "--trials", "0"], "argument --trials: must be an int >= 1; got 0"),
                          (["train", "FlipFlop", "--seed", "-5"], "argument --seed: must be an int >= 0; got -5")]:
        with pytest.raises(SystemExit) as info:
            run_cli(*argv)
        assert info.value.code == 2
        assert message in capsys.readouterr().err
    assert run_cli("train", "FlipFlop", *SMALL, "--set", "seed=-5", "--out", str(tmp_path / "r")) == 2
    err = capsys.readouterr().err
    assert "The 'seed' parameter must be an int >= 0. Got -5" in err and "Traceback" not in err
    with pytest.raises(ValueError, match="seed of the fresh trials must be an int >= 0"):
        cli.evaluate_run(small_run, n_trials=16, seed=-1)
    assert not (tmp_path / "r").exists()


def test_plot_format_is_checked_before_any_work(small_run, tmp_path, capsys):
    pytest.importorskip("matplotlib")
    figs = tmp_path / "figs"
    assert run_cli("plot", small_run, "--out", str(figs), "--format", "xyz") == 2
    err = capsys.readouterr().err
    assert "Unknown figure format 'xyz'" in err and "'png'" in err and "Traceback" not in err
    assert run_cli("plot", small_run, "--out", str(figs), "--format", "pnf") == 2
    assert "did you mean 'png'?" in capsys.readouterr().err
    assert not figs.exists()


def test_out_dir_with_a_run_needs_resume_or_force(small_run, capsys):
    assert run_cli("train", "PerceptualDiscrimination", "--out", small_run, "--quiet") == 2
    assert "--resume" in capsys.readouterr().err
    assert run_cli("train", "--resume", small_run, "--n-rec", "9") == 2
    assert "do not give ['--n-rec']" in capsys.readouterr().err


# ---------------------------------------------------------------------------- run directories: one job each


@pytest.mark.parametrize("flock", [True, False])
def test_exclusive_lock_refuses_a_second_holder_and_names_the_first(tmp_path, monkeypatch, flock):
    if not flock:  # neither flock nor msvcrt.locking: an O_EXCL file (tests/test_portability.py: Windows)
        monkeypatch.setattr(runs, "_fcntl", lambda: None)
        monkeypatch.setattr(runs, "_msvcrt", lambda: None)
    elif runs._lock_kind() != "flock":
        pytest.skip("no fcntl here")
    directory = str(tmp_path)
    with runs.exclusive_lock(directory, what="sweep", advice="Use another out_dir.") as path:
        message = (rf"is in use by another sweep \(pid {os.getpid()} on .*; lock file \.run\.lock\)\. "
                   r"Use another out_dir\.")
        with pytest.raises(ValueError, match=message) as info, \
                runs.exclusive_lock(directory, what="sweep", advice="Use another out_dir."):
            pass
        assert ("If no such process runs any more, delete" in str(info.value)) is not flock
        assert json.load(open(path))["pid"] == os.getpid()
    assert os.listdir(directory) == []  # released and removed
    with runs.exclusive_lock(directory):
        pass


def test_jobs_started_in_the_same_second_get_their_own_run_directories(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(cli.time, "strftime", lambda *args: "20260101-000000")  # the same second for both
    for seed in ("1", "2"):
        assert run_cli("train", "FlipFlop", *SMALL, "--iters", "32", "--seed", seed) == 0
    names = sorted(os.listdir("runs"))
    assert len(names) == 2 and all(n.startswith("20260101-000000-") for n in names), names
    assert sorted(json.load(open(os.path.join("runs", n, "run.json")))["seeds"]["model"] for n in names) == [1, 2]


def test_a_run_written_while_the_checks_ran_is_not_overwritten(tmp_path, monkeypatch, capsys):
    """Two jobs given the same --out: the other one wrote its run between this job's first look
    and its training; this job must see that under the lock and stop."""
    out = str(tmp_path / "r")
    real_check = cli.check_training

    def check_while_another_job_writes(*args):
        real_check(*args)
        os.makedirs(out, exist_ok=True)
        with open(os.path.join(out, "run.json"), "w") as fh:
            fh.write('{"format": "minirnn-run", "status": "running"}')

    monkeypatch.setattr(cli, "check_training", check_while_another_job_writes)
    assert run_cli("train", "FlipFlop", *SMALL, "--iters", "32", "--out", out) == 2
    assert "already holds a run" in capsys.readouterr().err
    assert open(os.path.join(out, "run.json")).read() == '{"format": "minirnn-run", "status": "running"}'
    assert sorted(os.listdir(out)) == ["run.json"]  # and its lock is released


def test_a_run_directory_in_training_is_refused_to_a_second_job(tmp_path, capsys):
    """A real job trains into RUN_DIR; a second one with --force, and a --resume, are refused
    (exit 2, naming the job's pid) and change nothing; then SIGTERM stops the job, which records
    its segment's timings and releases the directory."""
    out = str(tmp_path / "r")
    argv = [sys.executable, "-m", "minirnn.cli", "train", "FlipFlop", *SMALL, "--iters", str(16 * 100_000),
            "--set", "checkpoint_epoch=20", "--out", out]
    job = subprocess.Popen(argv, env=dict(os.environ, PYTHONPATH=ROOT, OPENBLAS_NUM_THREADS="1"),
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while not os.path.exists(os.path.join(out, "checkpoint.npz")):  # training is under way
            assert job.poll() is None and time.monotonic() < deadline, job.communicate()
            time.sleep(0.05)
        for second in (["train", "FlipFlop", *SMALL, "--iters", "32", "--force", "--out", out],
                       ["train", "--resume", out, "--quiet"]):
            assert run_cli(*second) == 2
            assert f"is in use by another minirnn train (pid {job.pid} on" in capsys.readouterr().err
        assert job.poll() is None  # the refusals happened while it trained
        assert json.load(open(os.path.join(out, "run.json")))["status"] == "running"
    finally:
        job.send_signal(signal.SIGTERM)
        _, err = job.communicate(timeout=60)
    assert job.returncode == 128 + signal.SIGTERM, err
    record = json.load(open(os.path.join(out, "run.json")))
    assert record["status"] == "interrupted"
    [segment] = record["timings"]["segments"]
    assert segment["ended"] == "interrupted" and record["timings"]["wall_s"] == segment["wall_s"] > 0
    assert ".run.lock" not in os.listdir(out)


def test_force_leaves_no_file_of_the_old_run(small_run, tmp_path, capsys):
    run = copy_run(small_run, tmp_path)
    plots = os.path.join(run, "plots")
    os.makedirs(plots)
    old_files = ["plots/training.png", "plots/weights.pdf", "plots/.minirnn-0123abcd-k3j9x0q1.tmp",
                 "weights_last_good.npz"]
    for name in old_files + ["notes.txt", "plots/my_figure.png"]:  # the last two are the user's
        open(os.path.join(run, name), "wb").close()
    assert run_cli("train", "FlipFlop", *SMALL, "--iters", "32", "--force", "--out", run) == 0
    assert sorted(os.listdir(run)) == ["checkpoint.npz", "notes.txt", "plots", "run.json", "weights.npz"]
    assert os.listdir(plots) == ["my_figure.png"]
    assert json.load(open(os.path.join(run, "run.json")))["task"]["class"] == "FlipFlop"
    os.remove(os.path.join(plots, "my_figure.png"))
    open(os.path.join(plots, "trial.svg"), "wb").close()
    assert run_cli("train", "FlipFlop", *SMALL, "--iters", "32", "--force", "--out", run) == 0
    assert not os.path.exists(plots)  # only the old run's figures were in it
    with pytest.raises(SystemExit):
        run_cli("train", "--help")
    help_text = " ".join(capsys.readouterr().out.split())
    assert ("--force start over in a RUN_DIR that already holds a run: first remove its weights.npz, "
            "weights_last_good.npz, checkpoint.npz, run.json and the figures of 'minirnn plot' in RUN_DIR/plots "
            "(training, trial, weights, psychometric, any format); other files stay") in help_text


def test_resume_adds_this_segment_to_the_earlier_ones(small_run, tmp_path):
    run = copy_run(small_run, tmp_path, status="interrupted")
    record_path = os.path.join(run, "run.json")
    record = json.load(open(record_path))
    earlier = {"ended": "interrupted", "training_s": 100.0, "wall_s": 101.0}
    record["timings"] = cli.run_timings([earlier])
    with open(record_path, "w") as fh:
        json.dump(record, fh)
    assert run_cli("train", "--resume", run, "--quiet") == 0
    timings = json.load(open(record_path))["timings"]
    first, this = timings["segments"]
    assert first == earlier and this["ended"] == "complete"
    assert timings["training_s"] == pytest.approx(100.0 + this["training_s"])
    assert timings["wall_s"] == pytest.approx(101.0 + this["wall_s"])


def test_resume_of_a_record_with_totals_only_counts_them_as_one_segment():
    assert cli.training_segments({"training_s": 4.0, "wall_s": 5.0}) == [
        {"ended": "complete", "training_s": 4.0, "wall_s": 5.0}]
    assert cli.training_segments({}) == [] and cli.training_segments(None) == []


def test_resume_of_a_complete_run_changes_nothing(small_run, tmp_path, capsys):
    run = copy_run(small_run, tmp_path)
    before = snapshot(run)
    assert run_cli("train", "--resume", run, "--quiet") == 0
    assert "is complete (20 updates): nothing to resume" in capsys.readouterr().err
    assert snapshot(run) == before


def test_describe_lists_parameters_and_tasks(capsys):
    assert run_cli("describe") == 0
    out = capsys.readouterr().out
    assert "N_rec" in out and "checkpoint_epoch" in out and "FlipFlop" in out


# ---------------------------------------------------------------------------- the run directory


def test_run_directory_describes_itself(small_run):
    assert sorted(f for f in os.listdir(small_run) if not f.startswith(".")) == ["checkpoint.npz", "run.json", "weights.npz"]
    record = json.load(open(os.path.join(small_run, "run.json")))
    assert record["status"] == "complete"
    assert record["model"]["params"]["N_rec"] == 8 and record["model"]["params"]["dale_ratio"] == 0.75
    assert record["train_params"]["training_iters"] == 320
    assert record["task"]["class"] == "PerceptualDiscrimination" and record["task"]["settings"]["T"] == 300
    assert record["seeds"]["model"] == 4 and isinstance(record["seeds"]["task"], int)
    assert record["versions"]["numpy"] == np.__version__ and "minirnn" in record["versions"]
    assert record["backend"] == "numpy" and record["dtype"] == "float32"
    assert len(record["history"]["loss"]) == 20 and record["history"]["update"][-1] == 20
    assert record["curriculum_stages"] == []
    audit = record["constraint_audit"]
    assert audit["ok"] and audit["dale_sign_violations"] == 0 and audit["masked_nonzero"] == 0
    assert audit["fixed_moved"] == 0 and set(audit["details"]["dale_sign_violations"]) == {"W_in", "W_rec", "W_out"}


def test_weights_file_is_psychrnn_layout_without_optimizer_state(small_run):
    path = os.path.join(small_run, "weights.npz")
    with np.load(path, allow_pickle=True) as f:  # what PsychRNN's WeightInitializer does
        loaded = dict(f)
    assert PSYCHRNN_KEYS <= set(loaded)
    assert not any("/" in k for k in loaded)
    assert float(loaded["dale_ratio"]) == 0.75
    for key in PSYCHRNN_KEYS - {"dale_ratio"}:
        assert loaded[key].dtype == np.float32, key
    assert loaded["W_rec"].shape == (8, 8) and loaded["init_state"].shape == (1, 8)
    # PsychRNN's Dale convention: W_rec columns of E units >= 0, of I units <= 0
    n_exc = int(0.75 * 8)
    assert np.all(loaded["W_rec"][:, :n_exc] >= 0) and np.all(loaded["W_rec"][:, n_exc:] <= 0)


def test_no_dale_weights_store_dale_ratio_none_as_object_array(tmp_path):
    out = str(tmp_path / "r")
    assert run_cli("train", "FlipFlop", *SMALL, "--iters", "32", "--out", out) == 0
    with np.load(os.path.join(out, "weights.npz"), allow_pickle=True) as f:
        assert f["dale_ratio"].dtype == object and f["dale_ratio"].item() is None


def test_load_run_gives_the_trained_network(small_run):
    model, task, record = load_run(small_run)
    assert isinstance(task, PerceptualDiscrimination) and task.T == 300 and task.N_batch == 16
    assert model.params["dale_ratio"] == 0.75 and model.N_rec == 8
    weights = read_npz(os.path.join(small_run, "weights.npz"))
    for key, value in model.get_weights().items():
        if isinstance(value, np.ndarray):
            np.testing.assert_array_equal(value, weights[key], err_msg=key)
    assert model.history["loss"] == record["history"]["loss"]


def test_load_run_errors_name_the_file(tmp_path, small_run):
    with pytest.raises(FileNotFoundError, match="run directory"):
        load_run(tmp_path)
    broken = tmp_path / "broken"
    broken.mkdir()
    text = open(os.path.join(small_run, "run.json")).read()
    (broken / "run.json").write_text(text[: len(text) // 2])
    with pytest.raises(WeightsFileError, match="run.json"):
        load_run(broken)


def test_constraint_audit_counts_moved_fixed_entries():
    task = PerceptualDiscrimination(dt=10, tau=100, T=200, N_batch=8, seed=0)
    params = dict(task.get_task_params(), N_rec=6, seed=1, backend="numpy", dale_ratio=0.5, W_out_train=False)
    model = Basic(params)
    initial = {k: np.array(v) for k, v in model.raw.items()}
    fixed = {"W_rec": np.eye(6)}
    model.train(task, {"training_iters": 40, "verbosity": False, "fixed_weights": fixed})
    audit = constraint_audit(model, initial, fixed)
    assert audit["ok"], audit
    assert not np.array_equal(model.raw["W_rec"], initial["W_rec"])  # the free entries did train
    model.raw["W_rec"][2, 2] += 1.0  # a fixed entry moves
    model.raw["W_out"][0, 0] += 1.0  # W_out_train=False: every entry is fixed
    audit = constraint_audit(model, initial, fixed)
    assert audit["fixed_moved"] == 2 and not audit["ok"]
    assert audit["details"]["fixed_moved"] == {"W_rec": 1, "W_out": 1}


def test_diverging_training_saves_last_good_weights(tmp_path, capsys):
    out = str(tmp_path / "r")
    code = run_cli("train", "PerceptualDiscrimination", *SMALL, "--learning-rate", "1e38", "--set", "clip_grads=False",
                   "--out", out)
    assert code == 1
    err = capsys.readouterr().err
    assert "at update" in err and "weights_last_good.npz" in err
    record = json.load(open(os.path.join(out, "run.json")))
    assert record["status"] == "diverged" and record["files"]["weights"] == "weights_last_good.npz"
    weights = read_npz(os.path.join(out, "weights_last_good.npz"))
    assert all(np.all(np.isfinite(v)) for k, v in weights.items() if v.dtype.kind == "f")
    model, _, _ = load_run(out)  # the run still loads
    assert model.N_rec == 8
    assert run_cli("evaluate", out, "--trials", "16", "--json") == 0  # evaluated, but not as a trained network
    captured = capsys.readouterr()
    assert "diverged" in captured.err and "last good weights" in captured.err
    result = json.loads(captured.out)
    assert result["status"] == "diverged" and "diverged" in result["warning"]


# ---------------------------------------------------------------------------- the other verbs


def test_evaluate_reports_accuracy_loss_and_psychometric_table(small_run, capsys):
    assert run_cli("evaluate", small_run, "--trials", "64", "--json") == 0
    result = json.loads(capsys.readouterr().out)
    assert result["n_trials"] == 64 and 0 <= result["accuracy"] <= 1 and result["loss"] > 0
    table = result["psychometric"]
    assert sum(table["n"]) == 64 and table["signed_coherence"] == sorted(table["signed_coherence"])
    assert run_cli("evaluate", small_run, "--trials", "32") == 0
    out = capsys.readouterr().out
    assert "accuracy" in out and "P(choice 1)" in out and "channel 1 is the correct choice" in out


# ---------------------------------------------------------------------------- the psychometric table and figure


def synthetic_pd_batch(seed, B=3000, mu=0.05, sigma=0.08, choose=None):
    """Perceptual-discrimination trials (PsychRNN's list of dicts) and outputs of an observer whose
    P(choice 1) follows a logistic in the coherence signed + for channel 1 (bias ``mu``), or who
    always chooses channel ``choose``."""
    from minirnn.analysis import psychometric_function

    rng = np.random.default_rng(seed)
    coherence = rng.choice([0.02, 0.05, 0.1, 0.2, 0.4], B)
    direction = rng.integers(0, 2, B)
    trial_params = [{"coherence": float(c), "direction": int(d)} for c, d in zip(coherence, direction)]
    signed1 = np.where(direction == 1, coherence, -coherence)
    chose1 = rng.random(B) < psychometric_function(signed1, mu, sigma, 0.02, 0.03)
    if choose is not None:
        chose1 = np.full(B, bool(choose))
    T = 6
    outputs = np.zeros((B, T, 2))
    outputs[np.arange(B), :, chose1.astype(int)] = 1.0
    outputs[:, :2] = np.nan  # masked out below: must not matter
    mask = np.ones((B, T, 2))
    mask[:, :2] = 0
    x = np.zeros((B, T, 2))
    y = np.zeros((B, T, 2))
    y[np.arange(B), :, direction] = 1.0
    return x, y, mask, trial_params, outputs


def test_evaluate_psychometric_fit_is_the_apis(small_run, capsys):
    """minirnn evaluate and psychometric_from_batch give a lab the same numbers, channel 1 positive."""
    from minirnn.analysis import psychometric_from_batch

    x, y, mask, trial_params, outputs = synthetic_pd_batch(60)
    table = cli.psychometric_table(outputs, mask, trial_params)
    api = psychometric_from_batch(outputs, mask, trial_params)
    assert api.identifiable and table["fit"]["undetermined"] == [] and table["fit"]["lapses"] == "free"
    assert table["fit"]["params"] == api.params and table["fit"]["ci"] == {k: list(v) for k, v in api.ci.items()}
    lo, hi = table["fit"]["ci"]["mu"]
    assert lo < 0.05 < hi and table["fit"]["params"]["mu"] > 0  # the bias of P(choice 1), not its mirror
    assert "channel 1" in table["convention"] and "p_choice_1" in table
    # a run: the table evaluate_run reports is psychometric_from_batch on the same fresh trials
    result = cli.evaluate_run(small_run, n_trials=64, seed=3)
    model, task, _ = load_run(small_run)
    x, _, mask, trial_params = cli.fresh_trials(task, 64, 3)
    outputs, _ = model.test(x)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a barely trained run's fit may warn; the table must say the same
        api = psychometric_from_batch(outputs, mask, trial_params)
    fit = result["psychometric"]["fit"]
    assert fit["undetermined"] == list(api.undetermined) and fit["problem"] == api.problem
    assert fit["params"] == {k: (None if k in api.undetermined else v) for k, v in api.params.items()}


def fake_run(monkeypatch, small_run, batch):
    """Make evaluate / plot of ``small_run`` see ``batch`` (from synthetic_pd_batch) as its fresh trials
    and outputs; everything else (loss, weights) stays the run's."""
    model, task, record = load_run(small_run)
    x, y, mask, trial_params, outputs = batch

    class Model:
        def __getattr__(self, name):
            return getattr(model, name)

        def test(self, inputs):
            return outputs.copy(), None

    monkeypatch.setattr(cli.runs, "load_run", lambda run: (Model(), task, record))
    monkeypatch.setattr(cli, "fresh_trials", lambda task, n, seed: (x, y, mask, trial_params))


@pytest.mark.parametrize("choose, why", [(0, "all 600 trials chose 0"), (1, "all 600 trials chose 1")])
def test_evaluate_says_no_fit_when_choices_never_vary(small_run, monkeypatch, capsys, choose, why):
    x, y, mask, trial_params, outputs = synthetic_pd_batch(61, B=600, choose=choose)
    outputs[:, :2] = 0.0  # the run's loss must stay finite
    fake_run(monkeypatch, small_run, (x, y, mask, trial_params, outputs))
    assert run_cli("evaluate", small_run) == 0
    out = capsys.readouterr().out
    assert f"no psychometric fit: these trials do not determine it: {why}" in out
    assert "mu (bias)" not in out and "sigma (slope)" not in out  # no numbers that mean nothing
    assert run_cli("evaluate", small_run, "--json") == 0
    fit = json.loads(capsys.readouterr().out)["psychometric"]["fit"]
    assert set(fit["undetermined"]) == {"mu", "sigma", "gamma", "lambda"} and why in fit["problem"]
    assert all(v is None for v in fit["params"].values())


def test_evaluate_says_no_fit_for_a_single_coherence_level():
    _, _, mask, trial_params, outputs = synthetic_pd_batch(62, B=400)
    for t in trial_params:
        t.update(coherence=0.5, direction=1)
    table = cli.psychometric_table(outputs, mask, trial_params)
    text = "\n".join(cli.psychometric_lines(table))
    assert table["signed_coherence"] == [0.5]
    assert "no psychometric fit" in text and "one stimulus level (x = 0.5)" in text and "mu (bias)" not in text


def test_evaluate_prints_the_fit_with_intervals_and_names_what_is_undetermined():
    _, _, mask, trial_params, outputs = synthetic_pd_batch(63)
    text = "\n".join(cli.psychometric_lines(cli.psychometric_table(outputs, mask, trial_params)))
    assert "P(choice 1)" in text and "logistic fit, free lapses, 95% CI (hessian)" in text
    assert "mu (bias)" in text and "not determined" not in text
    # a near-perfect observer on coarse levels: only +0.02 on the slope, mu and sigma not determined
    _, _, mask, trial_params, outputs = synthetic_pd_batch(64, mu=0.0, sigma=0.002)
    text = "\n".join(cli.psychometric_lines(cli.psychometric_table(outputs, mask, trial_params)))
    assert "mu (bias)       not determined by these trials" in text and "note: mu, sigma not determined" in text


def test_psychometric_table_refuses_nan_outputs_where_the_mask_counts():
    _, _, mask, trial_params, outputs = synthetic_pd_batch(65, B=200)
    outputs[7, 4, 0] = np.nan
    table = cli.psychometric_table(outputs, mask, trial_params)
    assert "trial 7, step 4, channel 0" in table["error"]
    assert cli.psychometric_lines(table)[0].startswith("psychometric: no psychometric table")


@pytest.mark.parametrize("identifiable", [True, False])
def test_plot_draws_the_fitted_psychometric_curve(small_run, tmp_path, monkeypatch, capsys, identifiable):
    pytest.importorskip("matplotlib")
    from minirnn import plotting
    from minirnn.analysis import PsychometricFit

    batch = synthetic_pd_batch(66, B=2000) if identifiable else synthetic_pd_batch(66, B=300, choose=1)
    if not identifiable:
        batch[4][:, :2] = 0.0
    fake_run(monkeypatch, small_run, batch)
    calls = []
    original = plotting.plot_psychometric
    monkeypatch.setattr(plotting, "plot_psychometric", lambda *a, **k: calls.append((a, k)) or original(*a, **k))
    assert run_cli("plot", small_run, "--out", str(tmp_path / "figs")) == 0
    assert (tmp_path / "figs" / "psychometric.png").exists()
    (args, kwargs), = calls
    assert kwargs["ylabel"] == "P(choice 1)" and "channel 1" in kwargs["xlabel"]
    if identifiable:  # the curve is drawn: the fit evaluate reports
        assert isinstance(args[0], PsychometricFit) and args[0].identifiable
    else:  # data points only, and a line saying why
        assert not args and kwargs["p"] == [1.0] * len(kwargs["x"])
        assert "without a fitted curve: all 300 trials chose 1" in capsys.readouterr().err


def test_evaluate_and_plot_refuse_a_run_that_never_trained(small_run, tmp_path, capsys):
    run = copy_run(small_run, tmp_path, status="running")  # as a training killed before it finished
    assert run_cli("evaluate", run, "--trials", "16") == 2
    err = capsys.readouterr().err
    assert "status 'running'" in err and "untrained initial weights" in err and f"minirnn train --resume {run}" in err
    if importlib.util.find_spec("matplotlib") is not None:
        assert run_cli("plot", run, "--out", str(tmp_path / "figs")) == 2
        assert "status 'running'" in capsys.readouterr().err
        assert not (tmp_path / "figs").exists()


def test_evaluate_warns_about_an_interrupted_run(small_run, tmp_path, capsys):
    run = copy_run(small_run, tmp_path, status="interrupted")
    assert run_cli("evaluate", run, "--trials", "16", "--json") == 0
    captured = capsys.readouterr()
    assert "was interrupted after 20 updates" in captured.err and "--resume" in captured.err
    assert json.loads(captured.out)["status"] == "interrupted"


def break_savefig(monkeypatch):
    """From now on Figure.savefig writes part of a file, then fails (a full disk, a kill in the middle)."""
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    def savefig(self, fname, **kwargs):
        if hasattr(fname, "write"):
            fname.write(b"partial")
        else:
            with open(fname, "wb") as fh:
                fh.write(b"partial")
        raise OSError("No space left on device")

    monkeypatch.setattr(Figure, "savefig", savefig)


def test_plot_replaces_figures_atomically(small_run, tmp_path, monkeypatch):
    pytest.importorskip("matplotlib")
    figs = tmp_path / "figs"
    assert run_cli("plot", small_run, "--out", str(figs), "--trials", "16", "--format", "svg") == 0
    before = snapshot(figs)
    assert before["trial.svg"].lstrip().startswith(b"<?xml")  # the format follows the extension
    break_savefig(monkeypatch)
    with pytest.raises(OSError, match="No space left"):
        run_cli("plot", small_run, "--out", str(figs), "--trials", "16", "--format", "svg")
    assert snapshot(figs) == before  # the old figures, whole, and no temporary file left


def test_demo_figure_is_written_atomically(tmp_path, monkeypatch):
    from minirnn import demo

    break_savefig(monkeypatch)
    def no_training(self, task, train_params):
        self.history = {"loss": [], "update": [], "performance": [], "stages": []}
        return [], 0.0, 0.0

    monkeypatch.setattr(Basic, "train", no_training)
    (tmp_path / "demo_trial.png").write_bytes(b"the old figure")
    with pytest.raises(OSError, match="No space left"):
        demo.main(["--out", str(tmp_path), "--fast"])
    assert snapshot(tmp_path) == {"demo_trial.png": b"the old figure"}


def test_a_closed_pipe_is_not_a_traceback(monkeypatch):
    class ClosedPipe:
        def write(self, text):
            raise BrokenPipeError(32, "Broken pipe")

        def flush(self):
            pass

    monkeypatch.setattr(sys, "stdout", ClosedPipe())
    assert run_cli("describe") == 141  # what a shell reports for 'minirnn describe | head -1'


def test_plot_writes_figures(small_run, tmp_path, capsys):
    pytest.importorskip("matplotlib")
    assert run_cli("plot", small_run, "--out", str(tmp_path / "figs"), "--trials", "32") == 0
    written = sorted(os.listdir(tmp_path / "figs"))
    assert "training.png" in written and "weights.png" in written and "trial.png" in written


def test_gradcheck_and_bench(capsys):
    assert run_cli("gradcheck", "--n-rec", "4", "--steps", "5") == 0
    out = capsys.readouterr().out
    assert "W_rec" in out and "worst" in out
    assert run_cli("bench", "--n-rec", "8", "--batch", "4", "--steps", "10", "--repeats", "2", "--backends", "numpy,nope") == 0
    out = capsys.readouterr().out
    assert "ms/update" in out and "nope" in out and "unavailable" in out


# ---------------------------------------------------------------------------- end to end, in a terminal

MINIMAL_TOML = """
[task]
name = "PerceptualDiscrimination"
dt = 10
tau = 100
T = 2000
N_batch = 128

[params]
N_rec = 50
seed = 1
backend = "numpy"

[train_params]
training_iters = 30000
checkpoint_epoch = 50
"""


def run_in_pty(argv, timeout):
    """Run ``argv`` with stdout and stderr on a pseudo-terminal; return (exit code, output).
    POSIX only: skips the test on Windows (no pty, fcntl, termios; imported here so that the module
    is still collected there)."""
    pty = pytest.importorskip("pty")
    import fcntl
    import termios

    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 120, 0, 0))  # a 120-column terminal
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""),
               OPENBLAS_NUM_THREADS="1", COLUMNS="100")
    proc = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, env=env, close_fds=True)
    os.close(slave)
    chunks, deadline = [], time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([master], [], [], 0.5)
        if ready:
            try:
                data = os.read(master, 4096)
            except OSError:  # the child closed the terminal
                break
            if not data:
                break
            chunks.append(data)
        elif proc.poll() is not None:
            break
    os.close(master)
    code = proc.wait(timeout=max(1, deadline - time.monotonic()))
    return code, b"".join(chunks).decode(errors="replace")


@pytest.mark.slow
def test_paper_minimal_example_from_toml_with_progress_bar(tmp_path):
    config = tmp_path / "run.toml"
    config.write_text(MINIMAL_TOML)
    run = str(tmp_path / "pd")
    code, output = run_in_pty([sys.executable, "-m", "minirnn.cli", "train", "--config", str(config), "--out", run],
                              timeout=170)
    assert code == 0, output
    assert "training:" in output and "update" in output and "loss=" in output and "acc=" in output  # tqdm's bar
    assert "\r" in output  # redrawn in place
    code, output = run_in_pty([sys.executable, "-m", "minirnn.cli", "evaluate", run, "--json"], timeout=60)
    assert code == 0, output
    result = json.loads(output[output.index("{"):])
    assert result["accuracy"] >= 0.9, result


def test_progress_bar_on_a_terminal_only(tmp_path):
    small = [a for a in SMALL if a != "--quiet"]
    argv = [sys.executable, "-m", "minirnn.cli", "train", "PerceptualDiscrimination", *small]
    code, output = run_in_pty(argv + ["--out", str(tmp_path / "tty")], timeout=60)
    assert code == 0, output
    assert "training:" in output and "/20" in output  # the bar (its loss= postfix may not be drawn in 20 fast updates)
    piped = subprocess.run(argv + ["--out", str(tmp_path / "pipe")], capture_output=True, text=True, timeout=60,
                           env=dict(os.environ, PYTHONPATH=ROOT, OPENBLAS_NUM_THREADS="1"))
    assert piped.returncode == 0, piped.stderr
    assert "training:" not in piped.stderr and "run written to" in piped.stdout
    code, output = run_in_pty(argv + ["--out", str(tmp_path / "quiet"), "--quiet"], timeout=60)
    assert code == 0 and "training:" not in output


def test_main_called_in_process_leaves_logging_and_matplotlib_as_they_were(small_run, tmp_path):
    """main() may run inside someone's notebook or pipeline: no handler on the root logger (which would
    route every later log line of theirs, and make their own basicConfig a no-op), and a backend they
    chose is kept."""
    import logging

    import matplotlib
    import matplotlib.pyplot  # noqa: F401 - a program that plots already

    root, ours = logging.getLogger(), logging.getLogger("minirnn")
    before = (list(root.handlers), list(ours.handlers), matplotlib.get_backend())
    matplotlib.use("svg")
    try:
        assert run_cli("plot", small_run, "--out", str(tmp_path / "figs")) == 0
        assert run_cli("describe") == 0
        assert matplotlib.get_backend() == "svg"
        assert (list(root.handlers), list(ours.handlers)) == before[:2]
    finally:
        matplotlib.use(before[2])
