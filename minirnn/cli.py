"""The ``minirnn`` command line: train, evaluate, plot, gradcheck, bench, describe.

::

    minirnn train PerceptualDiscrimination --n-rec 50 --iters 50000 --out runs/pd
    minirnn train --config run.toml --out runs/pd          # [params] [train_params] [task] tables
    minirnn train --resume runs/pd                         # after Ctrl-C, SIGTERM or a kill
    minirnn evaluate runs/pd                               # accuracy, loss, psychometric table
    minirnn plot runs/pd                                   # PNG figures into runs/pd/plots
    minirnn gradcheck                                      # finite differences on a small net
    minirnn bench                                          # ms per update on each backend
    minirnn describe                                       # every parameter, default and meaning

Settings are applied in this order, later ones winning: the task's defaults (dt=10, tau=100,
T=2000, N_batch=128, N_rec=50: the paper's minimal example), ``--config``, the named options
(``--n-rec`` ...), then each ``--set key=value`` (``key`` or ``params.key`` /
``train_params.key`` / ``task.key``; the value is read with ``ast.literal_eval``, else kept as a
string). Every name is checked against ``minirnn/_params.py``'s tables and the task's
constructor, with a did-you-mean. ``train`` then checks every setting by building the model and
running one update on copies of the model and the task (no file written, the task's stream
untouched) before it creates, overwrites or deletes anything in the run directory: bad input never
costs a saved run, even with ``--force``. ``evaluate`` and ``plot`` refuse a run whose weights file
still holds its initial weights (status ``running``: training under way, or killed) and warn on
stderr about an ``interrupted`` or ``diverged`` one.

``train`` holds an exclusive lock on its run directory while it trains (``RUN_DIR/.run.lock``,
``flock``, or ``msvcrt.locking`` on Windows: the operating system drops it if the process dies): a second ``train`` or ``--resume``
into the same directory meanwhile is refused (exit code 2). Without ``--out``, every job gets a
new directory ``runs/<date-time>-<6 random hex digits>``, so jobs started in the same second
never share one. ``--force`` removes the old run's files (see its help) before training;
``--resume`` of a complete run changes nothing; ``run.json``'s ``timings`` add up every training
segment (the first training and each resume).

Exit codes: 0 done; 1 training diverged, or the constraint audit of the trained network failed
(``train``), or a relative error is above ``--tolerance`` (``gradcheck``); 2 bad input (a run
directory in use by another ``train`` included); 130 / 143 interrupted by SIGINT / SIGTERM (a
checkpoint was written: ``--resume`` continues).
"""
from __future__ import annotations

import argparse
import ast
import contextlib
import logging
import os
import secrets
import sys
import time

import numpy as np

from . import runs
from ._params import MODEL_PARAMS, TRAIN_PARAMS, describe_params, is_int
from .errors import MinirnnError, NonFiniteError, ParameterError, did_you_mean

TASK_DEFAULTS = {"dt": 10, "tau": 100, "T": 2000, "N_batch": 128}
DEFAULT_N_REC = 50
PERFORMANCE_MARK = "task.accuracy_function"  # run.json's stand-in for the CLI's performance measure
SECTIONS = ("params", "train_params", "task")
# train_params the CLI sets itself (paths inside the run directory); ``verbosity`` is honoured
# (progress bar on / off) and --quiet turns it off
MANAGED_TRAIN_KEYS = ("checkpoint_path", "save_weights_path", "training_weights_path")
# model params the task determines (Basic(params) accepts them; here they would be ignored or clash)
TASK_DERIVED = {"alpha": "dt / tau; set task.dt or task.tau instead",
                "N_steps": "T / dt; set task.T or task.dt instead",
                "N_in": "its number of inputs; choose the task and its settings instead",
                "N_out": "its number of outputs; choose the task and its settings instead"}
DEFAULT_RUNS = "runs"  # the default run directory is DEFAULT_RUNS/<date-time>-<6 hex digits>
PLOTS_DIR = "plots"  # minirnn plot's default output folder, inside the run directory
PLOT_FIGURES = ("training", "trial", "weights", "psychometric")  # minirnn plot's figures (base names)
#: what ``train --force`` removes before training (with the figures in PLOTS_DIR): the old run's files
PREVIOUS_RUN_FILES = runs.RUN_FILES
# options that take a Python object, which neither TOML nor --set can give
PYTHON_ONLY = {"initializer": "a WeightInitializer", "custom_regularization": "a callable",
               "curriculum": "a Curriculum", "performance_measure": "a callable"}


def _print(*args, file=None):
    print(*args, file=file or sys.stdout, flush=True)


# ============================================================================ configuration


def parse_value(text: str):
    """``ast.literal_eval`` of ``text`` (numbers, lists, None, True ...), else the string itself."""
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def read_toml(path) -> dict:
    """Read a run configuration: ``[params]``, ``[train_params]`` and ``[task]`` tables
    (``task.name`` may name the task; ``task.seed`` seeds it)."""
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10: the same parser, as the tomli package
        import tomli as tomllib

    try:
        with open(path, "rb") as fh:
            config = tomllib.load(fh)
    except FileNotFoundError:
        raise ParameterError(f"--config file {os.fspath(path)!r} does not exist.") from None
    except tomllib.TOMLDecodeError as exc:
        raise ParameterError(f"--config file {os.fspath(path)!r} is not valid TOML: {exc}") from None
    for key, value in config.items():
        if key not in SECTIONS:
            raise ParameterError(f"Unknown table [{key}] in {os.fspath(path)!r}{did_you_mean(key, SECTIONS)} "
                                 f"Tables: {list(SECTIONS)}.")
        if not isinstance(value, dict):
            raise ParameterError(f"{key!r} in {os.fspath(path)!r} must be a table [{key}]. Got {value!r}.")
    return {s: dict(config.get(s, {})) for s in SECTIONS}


def _section_of(key: str, task_args) -> str:
    """Which table a bare ``--set`` key belongs to; a ParameterError with a suggestion if none."""
    homes = [s for s, names in (("params", MODEL_PARAMS), ("train_params", TRAIN_PARAMS),
                                ("task", task_args)) if key in names]
    if "task" in homes and "params" in homes:
        homes = ["task"]  # dt, tau, T, N_batch: the task's settings (the model takes them from it)
    if len(homes) == 1:
        return homes[0]
    known = list(MODEL_PARAMS) + list(TRAIN_PARAMS) + list(task_args)
    raise ParameterError(f"Unknown parameter {key!r} in --set{did_you_mean(key, known)} "
                         f"See 'minirnn describe' for the list.")


def check_section_keys(config: dict, task_args) -> None:
    """Every key of each table must be a known name (did-you-mean otherwise)."""
    tables = {"params": MODEL_PARAMS, "train_params": TRAIN_PARAMS}
    for section in ("params", "train_params"):
        for key in config[section]:
            if key not in tables[section]:
                raise ParameterError(f"Unknown key {key!r} in [{section}]{did_you_mean(key, tables[section])} "
                                     f"See 'minirnn describe'.")
            if section == "train_params" and key in MANAGED_TRAIN_KEYS:
                raise ParameterError(f"[train_params] {key!r} is set by 'minirnn train' (files go into the run "
                                     "directory); remove it.")
            if section == "params" and key in TASK_DERIVED:
                raise ParameterError(f"[params] {key!r} cannot be set here: the model takes it from the "
                                     f"task ({TASK_DERIVED[key]}).")
            if key in PYTHON_ONLY:
                raise ParameterError(f"[{section}] {key!r} takes {PYTHON_ONLY[key]}, which the command line "
                                     f"cannot give; use the Python API (model.train(task, train_params)).")
    allowed = set(task_args) | {"name", "seed"}
    for key in config["task"]:
        if key not in allowed:
            raise ParameterError(f"Unknown key {key!r} in [task]{did_you_mean(key, sorted(allowed))} "
                                 f"The task's settings: {sorted(allowed)}.")


def build_config(args) -> tuple:
    """Merge defaults, --config, named options and --set into ``(task_cls, config)``."""
    config = read_toml(args.config) if args.config else {s: {} for s in SECTIONS}
    task_name = args.task or config["task"].pop("name", None)
    config["task"].pop("name", None)
    if task_name is None:
        raise ParameterError("train needs a TASK (e.g. 'minirnn train PerceptualDiscrimination') or "
                             "name = \"...\" in the [task] table of --config.")
    task_cls = runs.task_class(task_name)
    task_args = runs.task_arguments(task_cls)
    named = {("params", "N_rec"): args.n_rec, ("params", "seed"): args.seed,
             ("params", "backend"): args.backend, ("params", "dale_ratio"): args.dale_ratio,
             ("params", "dtype"): args.dtype, ("params", "rec_noise"): args.rec_noise,
             ("train_params", "training_iters"): args.iters,
             ("train_params", "learning_rate"): args.learning_rate, ("task", "N_batch"): args.batch}
    for (section, key), value in named.items():
        if value is not None:
            config[section][key] = value
    for item in args.set or []:
        if "=" not in item:
            raise ParameterError(f"--set takes key=value (e.g. --set L2_rec=0.01). Got {item!r}.")
        key, _, text = item.partition("=")
        key = key.strip()
        section, _, bare = key.rpartition(".")
        if section and section not in SECTIONS:
            raise ParameterError(f"Unknown table {section!r} in --set {key}{did_you_mean(section, SECTIONS)} "
                                 f"Use one of {list(SECTIONS)}.")
        config[section or _section_of(bare, task_args)][bare] = parse_value(text.strip())
    check_section_keys(config, task_args)
    for key in ("dt", "tau", "T", "N_batch"):
        if key in config["params"] and key in task_args:  # the task owns these; move them there
            config["task"].setdefault(key, config["params"].pop(key))
    for key, value in TASK_DEFAULTS.items():
        if key in task_args:
            config["task"].setdefault(key, value)
    config["params"].setdefault("N_rec", DEFAULT_N_REC)
    return task_cls, config


def derived_seed(seed: int, purpose: int) -> int:
    """A 32-bit seed for the task (purpose 1) or evaluation (2), from the run's seed."""
    return int(np.random.SeedSequence([int(seed), purpose]).generate_state(1)[0])


# ============================================================================ train


def _performance_measure(task):
    """``performance_measure`` that scores a batch with the task's ``accuracy_function``."""

    def measure(trial_batch, trial_y, output_mask, output, epoch, losses, verbosity):
        return task.accuracy_function(trial_y, output, output_mask)

    return measure


def _has_accuracy(task) -> bool:
    from .tasks import Task

    return type(task).accuracy_function is not Task.accuracy_function


def runtime_train_params(record_tp: dict, task, run_dir, quiet: bool) -> dict:
    """The train_params dict for ``train()``: the recorded ones plus the CLI's own entries.

    ``run_dir=None`` sets no checkpoint (the dry run of :func:`check_training`). The progress bar
    follows the recorded ``verbosity`` (default True); ``--quiet`` turns it off.
    """
    tp = {k: v for k, v in record_tp.items() if k in TRAIN_PARAMS}
    if tp.get("performance_measure") == PERFORMANCE_MARK:
        tp["performance_measure"] = _performance_measure(task)
    tp["checkpoint_path"] = None if run_dir is None else os.path.join(run_dir, runs.CHECKPOINT_FILE)
    verbosity = tp.get("verbosity")
    tp["verbosity"] = not quiet and (True if verbosity is None else verbosity)
    return tp


def check_training(params: dict, task, record_tp: dict) -> None:
    """Raise now, before anything is written, every error that training would raise at its start.

    ``train_params`` are checked against their table as given (``training_iters`` ...); then a
    model built from ``params`` takes one update on a copy of ``task`` (so the task's stream is
    untouched), without checkpoint, progress bar or file. That is the trainer's own validation:
    model params, optimizer and learning rate, fixed weights, BLAS threads, the shapes of the
    task's batches against the model. A NaN or inf in that one update is left for the real run to
    report (with its last good weights); any other error, a task that makes NaN included, is bad
    input.
    """
    import copy

    from ._params import resolve_train_params
    from .models import Basic
    from .train.trainer import train

    model = Basic(params.copy())  # a TaskParams' copy keeps the marks of the task's keys
    twin = copy.deepcopy(task)
    tp = runtime_train_params(record_tp, twin, None, quiet=False)
    resolve_train_params(tp)  # the values as given, before the dry run changes two of them
    tp.update(training_iters=1, verbosity=False)  # one update, no progress bar
    try:
        twin.generate_batch()  # NaN or inf made by the task: bad input, not a divergence (twin is a copy)
        try:
            train(model, twin, tp)
        except NonFiniteError:
            pass  # the update diverged: the real run reports it, with its last good weights
    except MinirnnError:
        raise
    except (TypeError, ValueError, IndexError, KeyError) as exc:  # a value no check above anticipated
        raise ParameterError(f"training cannot start with these settings: {type(exc).__name__}: {exc}") from exc


def _check_run_dir(run_dir) -> None:
    """A run directory must be a directory (or not exist yet) that we can write into."""
    if os.path.exists(run_dir) and not os.path.isdir(run_dir):
        raise ParameterError(f"--out {run_dir!r} is a file, not a directory.")
    parent = run_dir if os.path.isdir(run_dir) else os.path.dirname(os.path.abspath(run_dir))
    while not os.path.exists(parent):
        parent = os.path.dirname(parent)
    if not os.path.isdir(parent) or not os.access(parent, os.W_OK):
        raise ParameterError(f"cannot write the run directory {run_dir!r}: {parent!r} is not a writable directory.")


def default_run_dir() -> str:
    """``runs/<date-time>-<6 hex digits>``: jobs started in the same second get different names."""
    return os.path.join(DEFAULT_RUNS, f"{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(3)}")


def _holds_run(run_dir) -> bool:
    return os.path.exists(os.path.join(run_dir, runs.RECORD_FILE))


def _refuse_existing_run(run_dir):
    raise ParameterError(f"{run_dir!r} already holds a run. Continue it with 'minirnn train --resume "
                         f"{run_dir}', or pass --force to start over there.")


def _make_run_dir(out) -> str:
    """Create the run directory and return it: for ``--out``, the directory given (one that exists
    is fine: whether it holds a run is decided under its lock); without it, a new directory of
    :func:`default_run_dir`, made with ``os.mkdir`` so that no two jobs can get the same one."""
    if out is not None:
        os.makedirs(out, exist_ok=True)
        return out
    os.makedirs(DEFAULT_RUNS, exist_ok=True)
    while True:
        run_dir = default_run_dir()
        try:
            os.mkdir(run_dir)
            return run_dir
        except FileExistsError:  # 1 in 16 million for two jobs in one second: draw again
            continue


def _lock_run_dir(run_dir):
    """:func:`minirnn.runs.exclusive_lock` on a run directory: one training at a time in it."""
    return runs.exclusive_lock(run_dir, what="minirnn train", advice="Two trainings in one run directory "
                               "would overwrite each other's files: wait for it to finish, or use another --out.")


def remove_previous_run(run_dir) -> list:
    """``--force``: remove what ``minirnn train`` and ``minirnn plot`` wrote into ``run_dir``
    (:data:`PREVIOUS_RUN_FILES` and the figures in ``plots/``, that folder too when nothing else is
    left in it), so that no file of the old run stays beside the new one. Other files stay.
    Returns the paths removed, relative to ``run_dir``."""
    from .io import TEMPORARY_PREFIX

    removed = [name for name in PREVIOUS_RUN_FILES if _remove_file(os.path.join(run_dir, name))]
    plots = os.path.join(run_dir, PLOTS_DIR)
    if os.path.isdir(plots):
        for name in sorted(os.listdir(plots)):
            figure = os.path.splitext(name)[0] in PLOT_FIGURES and name not in PLOT_FIGURES  # training.png ...
            if (figure or name.startswith(TEMPORARY_PREFIX)) and _remove_file(os.path.join(plots, name)):
                removed.append(os.path.join(PLOTS_DIR, name))
        if not os.listdir(plots):
            os.rmdir(plots)
    return removed


def _remove_file(path) -> bool:
    if not os.path.isfile(path):
        return False
    os.remove(path)
    return True


def cmd_train(args) -> int:
    if args.resume:
        return _resume(args)
    if args.out is not None and _holds_run(args.out) and not args.force:
        _refuse_existing_run(args.out)  # now, not after the checks below; checked again under the lock
    _check_run_dir(args.out or os.path.join(DEFAULT_RUNS, "<date-time>"))
    task_cls, config = build_config(args)
    params_cfg, tp_cfg, task_cfg = config["params"], config["train_params"], config["task"]
    seed = params_cfg.get("seed")
    if seed is None:
        seed = params_cfg["seed"] = secrets.randbits(31)
    if not is_int(seed, 0):
        raise ParameterError(f"The 'seed' parameter must be an int >= 0. Got {seed!r} instead.")
    task_seed = task_cfg.pop("seed", None)
    task_seed = derived_seed(seed, 1) if task_seed is None else task_seed
    task = runs.make_task(task_cls, task_cfg, seed=task_seed)
    params = task.get_task_params()
    params.update(params_cfg)
    tp = dict(tp_cfg)
    if _has_accuracy(task) and tp.get("performance_measure") is None and not args.no_accuracy:
        tp["performance_measure"] = PERFORMANCE_MARK
        tp.setdefault("performance_epoch", 10)
    check_training(params, task, tp)  # every setting, before a file is created, replaced or removed
    meta = {"params": params_cfg, "train_params": tp, "task_seed": task_seed,
            "eval_seed": derived_seed(seed, 2), "command": sys.argv[1:] if args.argv is None else args.argv}
    run_dir = _make_run_dir(args.out)
    with _lock_run_dir(run_dir):
        if _holds_run(run_dir) and not args.force:  # another job wrote a run here since the check above
            _refuse_existing_run(run_dir)
        if args.force:
            removed = remove_previous_run(run_dir)  # a new run, not a continuation
            if removed and not args.quiet:
                _print(f"--force: removed {', '.join(removed)} from {run_dir}", file=sys.stderr)
        return _run_training(run_dir, task, meta, params, resume=None, quiet=args.quiet)


def _resume(args) -> int:
    given = [name for name in ("task", "config", "n_rec", "seed", "backend", "iters", "dale_ratio", "dtype",
                               "rec_noise", "learning_rate", "batch", "set", "out")
             if getattr(args, name) not in (None, [])]
    if given:
        raise ParameterError(f"--resume continues a run exactly as it was configured; do not give "
                             f"{['--' + g.replace('_', '-') for g in given]} with it.")
    run_dir = args.resume
    record = runs.read_record(run_dir)
    if record.get("status") == "complete":
        return _nothing_to_resume(run_dir, record)
    task = runs.task_from_record(record["task"])
    params = runs.model_params_from_record(record)
    checkpoint = os.path.join(run_dir, runs.CHECKPOINT_FILE)
    meta = {"params": record.get("cli", {}).get("params", {}), "train_params": record["train_params"],
            "task_seed": record["seeds"]["task"], "eval_seed": record["seeds"]["evaluate"],
            "command": record.get("cli", {}).get("command")}
    check_training(params, task, meta["train_params"])  # before anything in run_dir changes
    with _lock_run_dir(run_dir):
        record = runs.read_record(run_dir)  # as it is now: another job may have resumed it meanwhile
        if record.get("status") == "complete":
            return _nothing_to_resume(run_dir, record)
        if os.path.exists(checkpoint):
            meta["segments"] = training_segments(record.get("timings"))
        else:
            _print(f"{checkpoint} does not exist yet: starting this run from its beginning.", file=sys.stderr)
            checkpoint = None
        return _run_training(run_dir, task, meta, params, resume=checkpoint, quiet=args.quiet)


def _nothing_to_resume(run_dir, record) -> int:
    n_updates = len(record.get("history", {}).get("loss", []))
    _print(f"{run_dir!r} is complete ({n_updates} updates): nothing to resume; its files are unchanged.",
           file=sys.stderr)
    return 0


def training_segments(timings) -> list:
    """The training segments (the first training and each ``--resume``) a run.json ``timings``
    entry records; a record of an older minirnn, with totals only, counts as one segment."""
    if not timings:
        return []
    if "segments" in timings:
        return list(timings["segments"])
    return [{"ended": "complete", "training_s": timings.get("training_s", 0.0), "wall_s": timings.get("wall_s", 0.0)}]


def run_timings(segments) -> dict:
    """run.json's ``timings``: ``training_s`` and ``wall_s`` summed over the segments, and the segments.

    A segment is ``{"ended": status, "training_s": ..., "wall_s": ...}``: ``wall_s`` the seconds of
    its ``train()`` call, ``training_s`` those of its training loop; for a segment cut short (an
    interrupt or a divergence) the loop's seconds are not known and ``training_s`` is its ``wall_s``.
    A segment ended by SIGKILL records nothing: its seconds since the last checkpoint are not counted.
    """
    return {"training_s": sum(s["training_s"] for s in segments), "wall_s": sum(s["wall_s"] for s in segments),
            "segments": segments}


def _run_training(run_dir, task, meta, params, *, resume, quiet) -> int:
    """Build the model, write the 'running' record, train, and write the run (any outcome).

    Call it holding the run directory's lock. ``meta["segments"]`` (when resuming) are the
    earlier training segments, to which this one is added in ``run.json``'s timings."""
    from .models import Basic
    from .train.checkpoint import TrainingInterrupted
    from .train.trainer import train

    runs.remove_stale_temporaries(run_dir)  # left by a process killed while writing
    model = Basic(params)
    initial_raw = runs.raw_on_host(model)
    record_tp = {k: v for k, v in meta["train_params"].items() if k not in MANAGED_TRAIN_KEYS}
    tp = runtime_train_params(record_tp, task, run_dir, quiet)
    fixed = tp.get("fixed_weights")

    def write(status, weights_name=runs.WEIGHTS_FILE, timings=None, extra=None):
        audit = runs.constraint_audit(model, initial_raw, fixed)
        record = runs.run_record(model, task, params=params, train_params=record_tp, task_seed=meta["task_seed"],
                                 eval_seed=meta["eval_seed"], status=status, audit=audit, timings=timings,
                                 extra=dict(extra or {}, cli={"params": meta["params"], "command": meta["command"]}))
        record["files"]["weights"] = weights_name
        runs.write_run(run_dir, model, record, weights_name=weights_name)
        return record

    if resume is None:
        write("running")
    t0 = time.perf_counter()

    def timings(ended, training_s=None):
        """The earlier segments and this one, which ended now (``training_s``: its loop's seconds, if known)."""
        wall_s = time.perf_counter() - t0
        this = {"ended": ended, "training_s": wall_s if training_s is None else training_s, "wall_s": wall_s}
        return run_timings(meta.get("segments", []) + [this])

    try:
        losses, training_time, _ = train(model, task, tp, resume=resume)
    except TrainingInterrupted as exc:
        write("interrupted", timings=timings("interrupted"))
        _print(f"\n{exc}\nResume with: minirnn train --resume {run_dir}", file=sys.stderr)
        return 128 + int(exc.signum)
    except NonFiniteError as exc:
        write("diverged", weights_name=runs.LAST_GOOD_FILE, timings=timings("diverged"), extra={"error": str(exc)})
        stale = os.path.join(run_dir, runs.WEIGHTS_FILE)
        if os.path.exists(stale):
            os.remove(stale)  # the initial weights written at the start; the good ones are LAST_GOOD_FILE
        _print(f"error: training diverged: {exc}\nThe last good weights are in "
               f"{os.path.join(run_dir, runs.LAST_GOOD_FILE)}.", file=sys.stderr)
        return 1
    record = write("complete", timings=timings("complete", training_time))
    audit = record["constraint_audit"]
    history = model.history
    final = history["loss"][-1] if history["loss"] else float("nan")
    acc = history["performance"][-1][1] if history.get("performance") else None
    if not quiet:
        _print(f"trained {len(history['loss'])} updates; final loss {np.mean(final):.4g}"
               + (f", accuracy {float(np.mean(acc)):.3f}" if acc is not None else "")
               + f"; constraint audit {'ok' if audit['ok'] else 'FAILED: ' + str(audit)}")
        _print(f"run written to {run_dir}")
    return 0 if audit["ok"] else 1


# ============================================================================ evaluate


def fresh_trials(task, n_trials: int, seed: int):
    """``n_trials`` (rounded up to whole batches) fresh trials from a Generator seeded ``seed``."""
    if not is_int(n_trials, 1):
        raise ParameterError(f"The number of trials must be a positive int. Got {n_trials!r} instead.")
    if not is_int(seed, 0):
        raise ParameterError(f"The seed of the fresh trials must be an int >= 0. Got {seed!r} instead.")
    rng = np.random.default_rng(seed)
    parts = [task.generate_batch(rng) for _ in range(max(1, -(-n_trials // task.N_batch)))]
    x, y, mask = (np.concatenate([p[i] for p in parts]) for i in range(3))
    trial_params = [tp for p in parts for tp in p[3]]
    return x, y, mask, trial_params


PSYCHOMETRIC_CONVENTION = ("x = signed coherence, + when channel 1 is the correct choice; y = P(choice 1); "
                           "logistic fit with free lapses: minirnn.analysis.psychometric_from_batch's defaults")


def psychometric_table(outputs, mask, trial_params, *, return_fit=False):
    """P(choice 1) per signed coherence (+ when channel 1 is correct) and its psychometric fit, or None.

    The numbers are :func:`minirnn.analysis.psychometric_from_batch`'s with its defaults
    (``positive=1``, logistic, free lapses, Hessian intervals), so the command line and the Python
    API give a lab the same fit. Outputs with NaN or inf where the mask counts give
    ``{"error": ...}`` instead of a table (no choice can be read from them). A fit whose data do not
    determine some parameters says so (``fit["undetermined"]``, ``fit["problem"]``) and has no
    numbers for them. With ``return_fit``, returns ``(table, PsychometricFit or None)``.
    """
    import warnings

    from .analysis.psychometric import (
        PsychometricWarning,
        choices_from_outputs,
        psychometric_from_batch,
    )

    if not trial_params or not all(isinstance(t, dict) and "coherence" in t and "direction" in t
                                   for t in trial_params[:1]):
        return (None, None) if return_fit else None
    try:
        with warnings.catch_warnings():  # the fit's own record (undetermined, problem) says it, once, below
            warnings.simplefilter("ignore", PsychometricWarning)
            fit = psychometric_from_batch(outputs, mask, trial_params)
    except NonFiniteError as exc:
        try:
            choices_from_outputs(outputs, mask)
        except NonFiniteError:  # NaN or inf outputs where the mask counts: no choice can be read
            table = {"error": f"no psychometric table: {exc}"}
            return (table, None) if return_fit else table
        raise  # the outputs were fine: NaN or inf stimulus levels (coherence) are the caller's to fix
    table = {"convention": PSYCHOMETRIC_CONVENTION, "signed_coherence": fit.levels.tolist(),
             "p_choice_1": fit.p.tolist(), "n": fit.n.astype(int).tolist()}  # the fit keeps n as floats
    table["fit"] = {
        "kind": fit.kind, "lapses": "free", "level": fit.level, "ci_method": fit.ci_method,
        "params": {k: (None if k in fit.undetermined else float(v)) for k, v in fit.params.items()},
        "ci": {k: (None if k in fit.undetermined else [float(a) for a in v]) for k, v in fit.ci.items()},
        "se": {k: (None if k in fit.undetermined else float(v)) for k, v in fit.se.items()},
        "undetermined": list(fit.undetermined), "problem": fit.problem,
    }
    return (table, fit) if return_fit else table


def run_status_note(run_dir, record, verb="evaluate") -> str | None:
    """What a user must know about a run that did not complete: None for a complete run, a warning
    line for an interrupted or diverged one; a MinirnnError for a run that never trained (status
    ``running``: its weights file holds the initial weights written when training started)."""
    status = record.get("status")
    if status == "complete":
        return None
    run_dir = os.fspath(run_dir)
    n_updates = len(record.get("history", {}).get("loss", []))
    if status == "running":
        raise MinirnnError(
            f"cannot {verb} {run_dir!r}: its training has not finished (run.json status 'running'), so "
            f"{runs.WEIGHTS_FILE} still holds the untrained initial weights. If that training is still going, "
            f"wait for it; if its process was killed, continue it with 'minirnn train --resume {run_dir}'.")
    if status == "interrupted":
        return (f"warning: the training of {run_dir!r} was interrupted after {n_updates} updates (status "
                f"'interrupted'): these are its weights at that point. Continue it with "
                f"'minirnn train --resume {run_dir}'.")
    if status == "diverged":
        error = record.get("error")
        return (f"warning: the training of {run_dir!r} diverged (status 'diverged'): these are its last good "
                f"weights ({record.get('files', {}).get('weights', runs.LAST_GOOD_FILE)}), not a trained network."
                + (f" The error was: {error}" if error else ""))
    return f"warning: {run_dir!r} has status {status!r}, not 'complete'; its weights may not be trained."


def evaluate_run(run_dir, n_trials=1024, seed=None) -> dict:
    """Accuracy, loss and psychometric table of a run on fresh trials (see ``minirnn evaluate``).

    The result's ``status`` is run.json's (``complete``, ``interrupted``, ``diverged``), with a
    ``warning`` line for a run that did not complete; a run that never trained (``running``)
    raises a MinirnnError saying so.
    """
    note = run_status_note(run_dir, runs.read_record(run_dir))  # raises for a never-trained run
    model, task, record = runs.load_run(run_dir)
    seed = record["seeds"].get("evaluate") if seed is None else seed
    seed = 0 if seed is None else seed
    x, y, mask, trial_params = fresh_trials(task, n_trials, seed)
    # a diverged run's last good weights may overflow: the warning line says why, not numpy's
    with np.errstate(over="ignore", invalid="ignore") if note else contextlib.nullcontext():
        outputs, _ = model.test(x)
        value, _ = model.loss_function(outputs.astype(model.dtype), y.astype(model.dtype), mask.astype(model.dtype))
        accuracy = task.accuracy_function(y, outputs, mask)
        table = psychometric_table(outputs, mask, trial_params)
    result = {"run": os.fspath(run_dir), "task": record["task"]["class"], "status": record.get("status"),
              "n_trials": int(x.shape[0]), "seed": seed, "loss": float(np.sum(value)),
              "accuracy": None if accuracy is None else float(np.mean(accuracy))}
    if note:
        result["warning"] = note
    if table is not None:
        result["psychometric"] = table
    return result


def cmd_evaluate(args) -> int:
    result = evaluate_run(args.run, n_trials=args.trials, seed=args.seed)
    if "warning" in result:
        _print(result["warning"], file=sys.stderr)
    if args.json:
        import json

        _print(json.dumps(result, indent=1))
        return 0
    _print(f"run       {result['run']}  ({result['task']}, {result['n_trials']} fresh trials, seed {result['seed']})")
    _print(f"loss      {result['loss']:.6g}")
    _print(f"accuracy  {'n/a (the task has no accuracy_function)' if result['accuracy'] is None else format(result['accuracy'], '.4f')}")
    table = result.get("psychometric")
    if table:
        for line in psychometric_lines(table):
            _print(line)
    return 0


PARAM_LABELS = {"mu": "mu (bias)", "sigma": "sigma (slope)", "gamma": "gamma (guess)", "lambda": "lambda (lapse)"}


def psychometric_lines(table) -> list:
    """The text ``minirnn evaluate`` prints for a psychometric table."""
    if "error" in table:
        return [f"psychometric: {table['error']}"]
    lines = [("psychometric: P(choice 1) by signed coherence (+: channel 1 is the correct choice; "
              "as minirnn.analysis.psychometric_from_batch)"),
             f"  {'coherence':>10} {'P(choice 1)':>12} {'trials':>7}"]
    for c, p, n in zip(table["signed_coherence"], table["p_choice_1"], table["n"]):
        lines.append(f"  {c:>+10.3f} {p:>12.3f} {n:>7d}")
    fit = table["fit"]
    undetermined = fit["undetermined"]
    if len(undetermined) == len(PARAM_LABELS):
        lines.append(f"  no psychometric fit: these trials do not determine it: {fit['problem']}.")
        return lines
    lines.append(f"  {fit['kind']} fit, {fit['lapses']} lapses, {fit['level']:.0%} CI ({fit['ci_method']}):")
    for name, label in PARAM_LABELS.items():
        if name in undetermined:
            lines.append(f"    {label:<15} not determined by these trials")
            continue
        value, (lo, hi) = fit["params"][name], fit["ci"][name]
        sign = "+" if name == "mu" else ""
        lines.append(f"    {label:<15} {value:{sign}.4f}  [{lo:{sign}.4f}, {hi:{sign}.4f}]")
    if undetermined:
        lines.append(f"  note: {', '.join(undetermined)} not determined: {fit['problem']}.")
    return lines


# ============================================================================ plot


def cmd_plot(args) -> int:
    import importlib.util

    if importlib.util.find_spec("matplotlib") is None:
        _print("error: 'minirnn plot' needs matplotlib: pip install matplotlib", file=sys.stderr)
        return 2
    import matplotlib

    if "matplotlib.pyplot" not in sys.modules and "MPLBACKEND" not in os.environ:
        matplotlib.use("Agg")  # files only; a program that already chose a backend keeps it
    try:
        from . import plotting
    except ImportError:
        plotting = None
    wanted = ("plot_trial", "plot_training", "plot_weights", "plot_psychometric")
    available = [name for name in wanted if plotting is not None and hasattr(plotting, name)]
    if not available:
        _print("error: minirnn.plotting is not available in this installation; nothing to plot.", file=sys.stderr)
        return 2
    fmt = plotting.check_figure_format(args.format)  # before any work or any folder is made
    note = run_status_note(args.run, runs.read_record(args.run), verb="plot")  # raises for a never-trained run
    model, task, record = runs.load_run(args.run)
    x, y, mask, trial_params = fresh_trials(task, args.trials, record["seeds"].get("evaluate") or 0)
    if note:
        _print(note, file=sys.stderr)
    out_dir = args.out or os.path.join(args.run, PLOTS_DIR)
    os.makedirs(out_dir, exist_ok=True)
    outputs, _ = model.test(x)
    figures = {}
    if "plot_training" in available and record["history"]["loss"]:
        # losses at their updates, accuracy where it was measured, a line where each curriculum stage began
        history = dict(record["history"], stages=record.get("curriculum_stages") or [])
        figures["training"] = plotting.plot_training(history=history)
    if "plot_trial" in available:
        figures["trial"] = plotting.plot_trial(x, y, outputs, mask, trial=0, dt=task.dt, title=record["task"]["class"])
    if "plot_weights" in available:
        figures["weights"] = plotting.plot_weights(model.get_weights())
    table, fit = psychometric_table(outputs, mask, trial_params, return_fit=True)
    if "plot_psychometric" in available and table is not None:
        if "error" in table:
            _print(f"note: {table['error']}; the psychometric figure was skipped.", file=sys.stderr)
        else:
            labels = {"xlabel": "signed coherence (+: channel 1 correct)", "ylabel": "P(choice 1)"}
            if fit.identifiable:  # the data and the fitted curve, as evaluate reports them
                figures["psychometric"] = plotting.plot_psychometric(fit, **labels)
            else:  # the data points alone: a curve the trials do not determine would read as a result
                _print(f"note: psychometric figure without a fitted curve: {fit.problem}.", file=sys.stderr)
                figures["psychometric"] = plotting.plot_psychometric(
                    x=table["signed_coherence"], p=table["p_choice_1"], n=table["n"], **labels)
    import matplotlib.pyplot as plt

    for name, fig in figures.items():
        path = os.path.join(out_dir, f"{name}.{fmt}")
        try:
            plotting.save_figure(fig, path, dpi=120, bbox_inches="tight")  # atomic
        finally:
            plt.close(fig)
        _print(f"wrote {path}")
    missing = [n for n in wanted if n not in available]
    if missing:
        _print(f"note: minirnn.plotting has no {missing} yet; those figures were skipped.", file=sys.stderr)
    return 0


# ============================================================================ gradcheck


def _small_net(args, dtype="float64"):
    from .models import Basic

    rng = np.random.default_rng(args.seed)
    n_in, n_out, T, B = 3, 2, args.steps, args.batch
    params = {"N_in": n_in, "N_rec": args.n_rec, "N_out": n_out, "dt": 10, "tau": 50, "seed": args.seed,
              "dtype": dtype, "backend": "numpy", "transfer_function": args.transfer_function,
              "dale_ratio": args.dale_ratio, "L2_rec": 0.01, "L2_firing_rate": 0.01}
    model = Basic(params)
    x = rng.standard_normal((B, T, n_in))
    y = rng.standard_normal((B, T, n_out))
    mask = (rng.random((B, T, n_out)) > 0.3).astype(float)
    return model, x, y, mask


def finite_difference_errors(model, x, y, mask, h=1e-6) -> dict:
    """Worst relative error ``|g - g_fd| / max(|g|, |g_fd|, 1e-12)`` per parameter (central differences)."""
    _, grads = model.loss_and_grads(x, y, mask)
    out = {}
    for name, g in grads.items():
        raw = model.raw[name]
        fd = np.zeros_like(g)
        for idx in np.ndindex(*raw.shape):
            old = raw[idx]
            raw[idx] = old + h
            up = model.loss_and_grads(x, y, mask)[0]
            raw[idx] = old - h
            down = model.loss_and_grads(x, y, mask)[0]
            raw[idx] = old
            fd[idx] = (up - down) / (2 * h)
        out[name] = float(np.linalg.norm(g - fd) / max(np.linalg.norm(g), np.linalg.norm(fd), 1e-12))
    return out


def cmd_gradcheck(args) -> int:
    model, x, y, mask = _small_net(args)
    errors, method, kinks = None, "minirnn.testing.gradcheck", []
    try:
        from .testing import gradcheck as library_gradcheck  # written in parallel; used when present
    except ImportError:
        library_gradcheck = None
    if library_gradcheck is not None:
        try:
            result = library_gradcheck(model, x, y, mask)
            errors = {k: float(np.max(v)) for k, v in dict(result).items()}
            kinks = list(getattr(result, "kinks", []))
        except (TypeError, ValueError, AttributeError) as exc:
            _print(f"note: minirnn.testing.gradcheck could not be used here ({exc}); using the CLI's own "
                   "central differences.", file=sys.stderr)
    if errors is None:
        errors, method = finite_difference_errors(model, x, y, mask), "the CLI's central differences"
    _print(f"gradient check ({method}, h=1e-6, float64): {model!r}, x {x.shape}")
    _print(f"  {'parameter':<12} {'relative error':>15}")
    for name, err in errors.items():
        _print(f"  {name:<12} {err:>15.3e}")
    if kinks:
        _print(f"  {len(kinks)} entries sat on a kink (ReLU / |W|) at every step size and were left out")
    worst = max(errors.values())
    ok = worst < args.tolerance
    _print(f"worst {worst:.3e}: {'ok' if ok else 'FAILED'} (tolerance {args.tolerance:g})")
    return 0 if ok else 1


# ============================================================================ bench


def cmd_bench(args) -> int:
    from .backends import get_backend
    from .models import Basic

    rng = np.random.default_rng(0)
    x = rng.standard_normal((args.batch, args.steps, 2))
    y = rng.standard_normal((args.batch, args.steps, 2))
    mask = np.ones_like(y)
    _print(f"one update (forward + backward + Adam): N_rec={args.n_rec}, batch={args.batch}, "
           f"steps={args.steps}, {args.dtype}")
    for name in args.backends.split(","):
        try:
            get_backend(name)
        except (MinirnnError, ImportError) as exc:
            _print(f"  {name:<7} unavailable: {exc}")
            continue
        model = Basic({"N_in": 2, "N_rec": args.n_rec, "N_out": 2, "dt": 10, "tau": 100, "seed": 0,
                       "backend": name, "dtype": args.dtype, "rec_noise": 0.05})
        batches = iter(lambda: (x, y, mask, None), None)
        model.train(batches, {"training_iters": args.batch, "verbosity": False})  # warm-up (numba compiles)
        _, seconds, _ = model.train(batches, {"training_iters": args.batch * args.repeats, "verbosity": False})
        _print(f"  {model.backend.name:<7} {1000 * seconds / args.repeats:9.2f} ms/update")
    return 0


# ============================================================================ describe


def cmd_describe(args) -> int:
    _print(describe_params())
    _print("\nTasks (minirnn train TASK; settings go in [task] or --set task.KEY=VALUE):")
    for name in runs.TASK_NAMES:
        _print(f"  {name:<26} {', '.join(runs.task_arguments(runs.task_class(name)))}")
    return 0


# ============================================================================ the parser


EXAMPLES = {
    "train": """examples:
  minirnn train PerceptualDiscrimination --n-rec 50 --seed 1 --out runs/pd
  minirnn train perceptualdiscrimination --iters 30000 --dale-ratio 0.8 --set L2_rec=0.01
  minirnn train FlipFlop --set task.N_bits=2 --set T=1000 --backend numpy --quiet
  minirnn train --config run.toml --out runs/pd
  minirnn train --resume runs/pd

run.toml:
  [task]
  name = "PerceptualDiscrimination"
  dt = 10
  tau = 100
  T = 2000
  N_batch = 128
  [params]
  N_rec = 50
  seed = 1
  [train_params]
  training_iters = 50000
  checkpoint_epoch = 50""",
    "evaluate": """examples:
  minirnn evaluate runs/pd
  minirnn evaluate runs/pd --trials 4096 --seed 7 --json""",
    "plot": """examples:
  minirnn plot runs/pd                  # runs/pd/plots/{training,trial,weights,psychometric}.png
  minirnn plot runs/pd --out figs --format pdf""",
    "gradcheck": """examples:
  minirnn gradcheck
  minirnn gradcheck --n-rec 6 --transfer-function tanh --dale-ratio 0.5""",
    "bench": """examples:
  minirnn bench
  minirnn bench --n-rec 256 --batch 128 --steps 200 --backends numpy,numba""",
    "describe": """examples:
  minirnn describe""",
}


def _int_at_least(minimum: int):
    """An argparse ``type``: an int >= ``minimum`` (argparse's own error, exit 2, otherwise)."""

    def parse(text):
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be an int >= {minimum}; got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be an int >= {minimum}; got {value}")
        return value

    parse.__name__ = f"int >= {minimum}"
    return parse


SEED, COUNT = _int_at_least(0), _int_at_least(1)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="minirnn", description="Train and inspect rate RNNs on cognitive tasks (PsychRNN-compatible).",
        epilog="Run 'minirnn VERB --help' for each verb's options and examples.",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="verb", metavar="VERB")
    sub.required = True
    raw = argparse.RawDescriptionHelpFormatter

    t = sub.add_parser("train", help="train a network and write a run directory", epilog=EXAMPLES["train"],
                       formatter_class=raw, description="Train a Basic rate RNN on a task; write weights.npz, "
                       "run.json and checkpoint.npz into the run directory.")
    t.add_argument("task", nargs="?", help=f"one of {', '.join(runs.TASK_NAMES)} (case-insensitive)")
    t.add_argument("--config", metavar="TOML", help="a TOML file with [params], [train_params], [task] tables")
    t.add_argument("--n-rec", type=int, help="recurrent units (params N_rec; default 50)")
    t.add_argument("--seed", type=SEED, help="the run's seed (model streams; task and evaluation seeds derive from it)")
    t.add_argument("--backend", help="auto | numpy | numba | cupy")
    t.add_argument("--iters", type=int, help="training trials (train_params training_iters)")
    t.add_argument("--dale-ratio", type=float, help="fraction of excitatory units, in (0, 1)")
    t.add_argument("--dtype", help="float32 (default) | float64")
    t.add_argument("--rec-noise", type=float, help="recurrent noise sigma_rec")
    t.add_argument("--learning-rate", type=float, help="Adam's learning rate")
    t.add_argument("--batch", type=int, help="trials per batch (task N_batch)")
    t.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="any parameter: KEY, params.KEY, train_params.KEY or task.KEY (repeatable)")
    t.add_argument("--out", metavar="RUN_DIR", help="the run directory (default runs/<date-time>-<6 random hex "
                   "digits>, a new directory for every job)")
    t.add_argument("--resume", metavar="RUN_DIR", help="continue an interrupted run from its checkpoint (a "
                   "complete run is left as it is)")
    t.add_argument("--force", action="store_true",
                   help=f"start over in a RUN_DIR that already holds a run: first remove its "
                   f"{', '.join(PREVIOUS_RUN_FILES)} and the figures of 'minirnn plot' in RUN_DIR/{PLOTS_DIR} "
                   f"({', '.join(PLOT_FIGURES)}, any format); other files stay")
    t.add_argument("--no-accuracy", action="store_true",
                   help="do not measure accuracy during training (it draws extra batches from the task)")
    t.add_argument("--quiet", action="store_true", help="no progress bar and no summary")
    t.set_defaults(func=cmd_train)

    e = sub.add_parser("evaluate", help="accuracy, loss and psychometric table on fresh trials",
                       epilog=EXAMPLES["evaluate"], formatter_class=raw)
    e.add_argument("run", metavar="RUN_DIR", help="a run directory of 'minirnn train' or a sweep's run folder")
    e.add_argument("--trials", type=COUNT, default=1024, help="fresh trials (whole batches; default 1024)")
    e.add_argument("--seed", type=SEED, help="seed of the fresh trials (default: the run's evaluation seed)")
    e.add_argument("--json", action="store_true", help="print the result as JSON")
    e.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("plot", help="figures of a run (training, a trial, weights, psychometric)",
                       epilog=EXAMPLES["plot"], formatter_class=raw)
    p.add_argument("run", metavar="RUN_DIR", help="a run directory of 'minirnn train' or a sweep's run folder")
    p.add_argument("--out", metavar="DIR", help="where to write the figures (default RUN_DIR/plots)")
    p.add_argument("--format", default="png", help="png (default), pdf, svg ... (matplotlib's formats)")
    p.add_argument("--trials", type=COUNT, default=512, help="fresh trials for the trial and psychometric figures")
    p.set_defaults(func=cmd_plot)

    g = sub.add_parser("gradcheck", help="check gradients by finite differences on a small random network",
                       epilog=EXAMPLES["gradcheck"], formatter_class=raw)
    g.add_argument("--n-rec", type=COUNT, default=5, help="recurrent units of the test network (default 5)")
    g.add_argument("--steps", type=COUNT, default=8, help="time steps of the random inputs (default 8)")
    g.add_argument("--batch", type=COUNT, default=2, help="trials in the random batch (default 2)")
    g.add_argument("--seed", type=SEED, default=0, help="seed of the network and of the random data (default 0)")
    g.add_argument("--transfer-function", default="tanh",
                   help="activation, as params transfer_function (default tanh; see 'minirnn describe')")
    g.add_argument("--dale-ratio", type=float, default=None,
                   help="fraction of excitatory units, in (0, 1) (default: no Dale's principle)")
    g.add_argument("--tolerance", type=float, default=1e-5,
                   help="largest accepted relative error (default 1e-5); above it the exit code is 1")
    g.set_defaults(func=cmd_gradcheck)

    b = sub.add_parser("bench", help="milliseconds per training update on each available backend",
                       epilog=EXAMPLES["bench"], formatter_class=raw)
    b.add_argument("--n-rec", type=COUNT, default=128, help="recurrent units (default 128)")
    b.add_argument("--batch", type=COUNT, default=64, help="trials per batch (default 64)")
    b.add_argument("--steps", type=COUNT, default=100, help="time steps per trial (default 100)")
    b.add_argument("--repeats", type=COUNT, default=5, help="timed updates per backend, after one warm-up "
                   "(default 5)")
    b.add_argument("--dtype", default="float32", help="float32 (default) | float64")
    b.add_argument("--backends", default="numpy,numba,cupy",
                   help="comma-separated backends to try (default numpy,numba,cupy; unavailable ones are named)")
    b.set_defaults(func=cmd_bench)

    d = sub.add_parser("describe", help="every model and training parameter with its default",
                       epilog=EXAMPLES["describe"], formatter_class=raw)
    d.set_defaults(func=cmd_describe)
    return parser


def main(argv=None) -> int:
    """Entry point of the ``minirnn`` console script. Returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    args.argv = argv
    # minirnn's log lines (warnings) to stderr for this call, unless the host program set up logging:
    # the root logger is the host's, never configured here (main() may run inside another program)
    log, handler = logging.getLogger("minirnn"), None
    if not log.handlers and not logging.getLogger().handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(name)s: %(message)s"))
        log.addHandler(handler)
    try:
        return int(args.func(args) or 0)
    except (MinirnnError, FileNotFoundError) as exc:
        _print(f"minirnn {args.verb}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        _print(f"minirnn {args.verb}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader went away (minirnn evaluate RUN | head): not an error of ours
        try:  # keep Python's flush at exit from raising again
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        except (AttributeError, OSError, ValueError):
            pass
        return 141  # 128 + SIGPIPE, what a shell reports for a command cut off by a closed pipe
    finally:
        if handler is not None:
            log.removeHandler(handler)


if __name__ == "__main__":
    sys.exit(main())
