"""Sweeps: a grid of configurations x seeds, trained on ``dask.distributed``, one folder per run.

A *run* is one (configuration, seed) pair. It means exactly this single training::

    model = Basic(dict(params, **model_keys, seed=seed))
    model.train(task reseeded with `seed`, dict(train_params, **train_keys))

where a configuration's keys are split by name: a key of ``TRAIN_PARAMS`` (``learning_rate``,
``training_iters``, ...) goes to ``train_params``; a key of the model's params table (``N_rec``,
``rec_noise``, ``L2_rec``, ...) goes to ``params``; any other key is an error with a suggestion,
unless ``task`` is a factory ``task(config) -> Task``, which then receives the whole configuration
and may use keys of its own (``coherence``, ``T``, ...). With a Task *object*, a key that is one
of its settings (``task.get_task_params()``: ``T``, ``N_batch``, ``dt``, ``coherence``, ...) is an
error: the object's trials cannot change with the grid. ``tau`` is the exception: it is the
model's time constant, which a task only records (its trials do not depend on it).

"Reseeded with ``seed``" means the trial stream of the same task built with ``seed=seed`` (the
task's own seed plays no part), so every run is reproducible from its folder alone:
``minirnn.runs.load_run(run_dir)`` gives back the model and its task. A ``curriculum`` in
``train_params`` is copied for every run (it is stateful) and its tasks are reseeded with the
run's seed the same way; its stages go to ``run.json``, its ``output_file`` (base name) into the
run's folder.

Every configuration is checked at planning, before any run is submitted, by the rules that
``model(params)`` and ``train()`` apply (values, ranges, names with a did-you-mean), without
building a model.

Where it pays, the seeds of one configuration are *packed* into one ensemble task
(``Basic(params, n_networks=len(seeds), seeds=seeds)``, DESIGN.md §3): network k of the ensemble
equals the single run with ``seeds[k]`` to float tolerance, and is written out through
``ens.network(k)``. A worker runs one task at a time, one BLAS thread each.

On disk (``out_dir``)::

    out_dir/<config_id>/seed-<seed>/weights.npz     model.save (PsychRNN's keys)
                                    run.json        minirnn.runs' record: params, train_params,
                                                    task and seeds, history, versions, constraint
                                                    audit, and a "sweep" entry (config, packing)
                                    DONE.json       completion marker, written LAST
    out_dir/summary.csv                             one row per finished run
    out_dir/runs.log                                one line per run start / finish (JSON lines)
    out_dir/.sweep.lock                             only while a sweep runs (see below)

A run counts as finished only when its ``DONE.json`` exists, so a run cut short at any moment
(a worker killed while writing) is redone from scratch on the next attempt or the next call;
every file is written to a temporary name and moved into place with ``os.replace``, so no file is
ever torn. A task whose worker dies is retried by the scheduler (up to ``retries`` times). A run
whose training raises a :class:`~minirnn.errors.MinirnnError` (a NaN loss) is not retried (it would
fail again) but reported when the sweep ends. When a pack fails, its seeds are trained again in
parts (the diverging networks alone, the others together; or each seed alone when the error does
not say which network failed or is not a MinirnnError), so one bad seed does not take the others
down; ``summary.csv`` lists every finished run either way.

One sweep at a time per ``out_dir``: a sweep holds an exclusive lock on it (``flock``, or
``msvcrt.locking`` on Windows, on ``out_dir/.sweep.lock``, dropped by the operating system if the sweep's process dies) from before
it looks for finished runs until ``summary.csv`` is written, and a second sweep on the same
``out_dir`` meanwhile is a ParameterError naming the holder's pid and host. Besides, a run counts
only when its marker holds this sweep's *fingerprint* (a hash of everything the run depends on):
a worker does not skip, and the summary does not list, a run finished under another
specification; that is an error, never a reused row.
"""
from __future__ import annotations

import csv
import hashlib
import io as _io
import itertools
import json
import logging
import math
import os
import platform
import socket
import time
import warnings
from contextlib import contextmanager

import numpy as np

from . import __version__
from ._params import MODEL_PARAMS, TRAIN_PARAMS, is_int, resolve_model_params, resolve_train_params
from .errors import MinirnnError, MissingDependencyError, ParameterError, suggest

logger = logging.getLogger("minirnn")

SUMMARY_FIELDS = ("run_id", "config_id", "seed", "final_loss", "eval_loss", "accuracy", "n_updates",
                  "train_time_s", "packed_with", "backend")
#: training options the sweep sets per run (one user value would make every run write the same file)
OWNED_TRAIN_KEYS = ("save_weights_path", "training_weights_path", "checkpoint_path")
MARKER = "DONE.json"
SWEEP_LOCK = ".sweep.lock"  # in out_dir while a sweep runs (minirnn.runs.exclusive_lock)
SUMMARY_FILE = "summary.csv"
DEFAULT_EVAL_SEED = 20_000_000
#: pack_seeds="auto": at most this many networks per ensemble (measured: packing saves the per-step
#: Python overhead, which is large only at small batches; benchmarks/bench_ensemble.py) ...
AUTO_PACK_MAX = 8
#: ... and at most this many bytes of (K, N_steps, N_batch, N_rec) activations per ensemble
AUTO_PACK_BYTES = 2**30
_ACTIVATION_ARRAYS = 10  # such arrays alive during one update, roughly (drive, X, f(X), dX, adjoints, ...)


class SweepResult(list):
    """The rows of ``summary.csv`` (one dict per finished run, grid order then seed order).

    Attributes
    ----------
    csv_path : str, the summary table.
    trained : list of run ids trained by this call (empty when everything was already done).
    skipped : list of run ids found finished on disk and not trained again.
    """

    def __init__(self, rows, csv_path, trained, skipped):
        super().__init__(rows)
        self.csv_path, self.trained, self.skipped = csv_path, list(trained), list(skipped)

    def __repr__(self) -> str:
        return (f"SweepResult({len(self)} runs, trained={len(self.trained)}, skipped={len(self.skipped)}, "
                f"csv_path={self.csv_path!r})")


# ---- the grid -----------------------------------------------------------------------------------
def expand_grid(grid) -> list:
    """A dict of lists -> the cartesian product as a list of dicts (first key varies slowest);
    a list of dicts -> itself (copied).

    In a dict, a list, tuple, range or 1-D NumPy array (``np.logspace(-4, -2, 5)``) is the list of
    values; anything else is one value. An array-valued setting (a per-unit ``tau``) therefore
    goes inside a list: ``{"tau": [tau_a, tau_b]}``. An empty list of values (which would make the
    product empty: no runs at all) and an empty list of dicts are errors."""
    if isinstance(grid, dict):
        keys = list(grid)
        values = [list(v) if isinstance(v, (list, tuple, range)) or (isinstance(v, np.ndarray) and v.ndim == 1)
                  else [v] for v in grid.values()]
        empty = [k for k, v in zip(keys, values) if not v]
        if empty:
            raise ParameterError(f"The grid gives no values for {empty[0]!r} (an empty list): the sweep would have "
                                 f"no configuration at all. Give at least one value, or leave {empty[0]!r} out.")
        return [dict(zip(keys, combo)) for combo in itertools.product(*values)]
    if isinstance(grid, (list, tuple)) and all(isinstance(c, dict) for c in grid):
        if not grid:
            raise ParameterError("The grid is an empty list: give at least one configuration (a dict; {} for the "
                                 "base params alone).")
        return [dict(c) for c in grid]
    raise ParameterError(f"grid must be a dict of lists or a list of dicts. Got {type(grid).__name__} instead.")


#: grid keys of the model table that a Task object also has, and why the grid cannot change them
#: there (``tau`` is not among them: a task only records it, in its ``alpha``; its trials do not use it)
_TASK_SIDE = {"dt": "the model would step by the grid's dt through trials built with the task's dt",
              "N_in": "the model's size would no longer match the task's",
              "N_out": "the model's size would no longer match the task's"}


def split_config(config: dict, model_table: dict, task_factory: bool, task_settings=None) -> tuple:
    """``config`` -> ``(model_keys, train_keys)`` by the rule of the module docstring.

    Raises ParameterError for ``seed`` (given separately), for a training key the sweep owns, for
    ``alpha`` (computed from ``dt / tau``), for a key that is neither a model nor a training key
    (with a did-you-mean) unless a task factory takes it, and, when ``task`` is a Task object, for
    a setting of that task (``task_settings``: its ``get_task_params()``) other than ``tau``:
    the object's trials do not change with the grid, so such keys need a factory."""
    model_keys, train_keys = {}, {}
    for key, value in config.items():
        if key == "seed":
            raise ParameterError("The grid may not set 'seed': pass the seeds as sweep(..., seeds=[...]).")
        if key in OWNED_TRAIN_KEYS:
            raise ParameterError(f"The grid may not set {key!r}: the sweep writes each run's files itself.")
        if key == "alpha":
            raise ParameterError("The grid may not set 'alpha': the model computes it as dt / tau. Sweep 'tau' "
                                 "instead (or 'dt', with task given as a factory task(config) -> Task).")
        if not task_factory and task_settings is not None and key in task_settings and key != "tau":
            why = _TASK_SIDE.get(key, "the task object gives the same trials whatever the grid says")
            raise ParameterError(f"The grid sets {key!r}, a setting of the task ("
                                 f"{key}={task_settings[key]!r}), but task is a Task object: {why}. To sweep {key!r}, "
                                 f"pass task as a factory task(config) -> Task that builds the task with "
                                 f"config[{key!r}] (model and training keys of the configuration still reach "
                                 "the model and train()).")
        if key in TRAIN_PARAMS:
            train_keys[key] = value
        elif key in model_table:
            model_keys[key] = value
        elif not task_factory or suggest(key, list(model_table) + list(TRAIN_PARAMS)):
            hint = suggest(key, list(model_table) + list(TRAIN_PARAMS))
            raise ParameterError(f"Unknown configuration key {key!r}{hint or '.'} A key must name a model "
                                 "parameter (see describe_params()) or a training parameter; to sweep task "
                                 "settings, pass task as a factory task(config) -> Task.")
    return model_keys, train_keys


def config_id(config: dict) -> str:
    """A folder name for ``config``: readable ``key=value`` parts (when short) and a hash of all of it."""
    digest = hashlib.sha1(_canonical(config).encode()).hexdigest()[:8]
    parts = [f"{k}={v}" for k, v in sorted(config.items()) if isinstance(v, (int, float, str, bool))]
    slug = "".join(c if c.isalnum() or c in "=.-_" else "-" for c in "_".join(parts))
    return f"{slug[:80]}_{digest}" if slug else digest


def _stable_name(value):
    """Callables and objects by qualified name: a repr with a memory address would change the
    fingerprint from one session to the next."""
    if callable(value) and hasattr(value, "__qualname__"):
        return f"{getattr(value, '__module__', '?')}.{value.__qualname__}"
    text = repr(value)
    return f"{type(value).__module__}.{type(value).__qualname__}" if " at 0x" in text else text


def _describe(value):
    """JSON-able stand-in for a value (arrays as lists, callables and objects by qualified name)."""
    from .io import jsonable

    return jsonable(value, fallback=_stable_name)


def _canonical(obj) -> str:
    return json.dumps(_describe(obj), sort_keys=True, separators=(",", ":"))


def _task_description(task, config) -> dict:
    """What a finished run's trials depend on, for the fingerprint: a Task object's class and settings;
    for a factory, its name and what it builds for ``config``, so that a factory that now builds
    another task (another closure, an edited body) makes finished runs a different specification."""
    if hasattr(task, "generate_batch"):
        params = {k: v for k, v in task.get_task_params().items() if k != "seed"}
        return {"class": f"{type(task).__module__}.{type(task).__qualname__}", "params": _describe(params)}
    built = task(dict(config))
    if not hasattr(built, "generate_batch"):
        raise ParameterError(f"The task factory {_stable_name(task)} returned {type(built).__name__}, not a Task "
                             "(an object with generate_batch); a factory must be a callable config -> Task.")
    return {"factory": _describe(task), "builds": _built_task_description(built)}


def _built_task_description(task) -> dict:
    """A task's class and its ``get_task_params()`` (seed left out), arrays by their SHA-1."""
    params = task.get_task_params() if hasattr(task, "get_task_params") else {}
    params = {k: v for k, v in params.items() if k != "seed"}
    return {"class": f"{type(task).__module__}.{type(task).__qualname__}", "params": _describe_hashing_arrays(params)}


def _describe_hashing_arrays(value):
    """:func:`_describe`, with each NumPy array as its dtype, shape and SHA-1 (a fingerprint need not
    hold a task's stimulus tables)."""
    if isinstance(value, dict):
        return {str(k): _describe_hashing_arrays(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_describe_hashing_arrays(v) for v in value]
    if isinstance(value, np.ndarray) and value.dtype.hasobject:  # its bytes are addresses: describe the objects
        return _describe_hashing_arrays(value.tolist())
    if isinstance(value, np.ndarray):
        a = np.ascontiguousarray(value)
        digest = hashlib.sha1(a.tobytes()).hexdigest()
        return {"ndarray": {"dtype": str(a.dtype), "shape": list(a.shape), "sha1": digest}}
    return _describe(value)


# ---- the public entry point ---------------------------------------------------------------------
def sweep(grid, seeds, task, params, train_params=None, out_dir="sweep", *, scheduler=None, n_workers=None,
          pack_seeds="auto", retries=2, resume=True, eval_seed=DEFAULT_EVAL_SEED, model=None, blas_threads=1):
    """Train every configuration of ``grid`` with every seed of ``seeds`` on ``dask.distributed``.

    Parameters
    ----------
    grid : dict of lists (cartesian product, first key slowest) or list of dicts
        Configurations. Each key goes to ``train_params`` when it names a training parameter, to
        ``params`` when it names a model parameter (see the module docstring); anything else is a
        ParameterError with a suggestion, checked before anything is submitted. A setting of a
        Task object (``T``, ``N_batch``, ``dt``, ...; ``tau`` excepted) needs ``task`` as a factory.
        An empty list of values is an error.
    seeds : list of int
        Run seeds: model streams ``Basic(..., seed=s)`` and the task's trial stream reseeded with ``s``.
    task : Task, or callable ``config -> Task``
        The task (its own seed is not used), or a factory called on each worker with the configuration.
        A factory is also called once per configuration at planning: what it builds (class and
        ``get_task_params()``) is part of the fingerprint, so a factory that now builds another task
        makes the finished runs a different specification.
    params : dict
        Base model params (PsychRNN style, e.g. ``task.get_task_params()`` plus ``N_rec``).
    train_params : dict, optional
        Base training params; ``verbosity`` defaults to False. ``save_weights_path``,
        ``training_weights_path`` and ``checkpoint_path`` are set by the sweep and may not be given.
    out_dir : str
        Where run folders, ``summary.csv`` and ``runs.log`` go. On a cluster, a shared filesystem.
    scheduler : None, str, ``distributed.Client``, a dask Cluster, or ``"synchronous"``
        None starts an embedded ``LocalCluster`` (processes, one thread each, ``n_workers`` of
        them, default one per usable CPU) and closes it afterwards. A string address
        (``"tcp://10.0.0.1:8786"``), a Client or a Cluster object (``SLURMCluster``) uses that
        cluster. ``"synchronous"`` runs every task in this process, one after the other, once,
        without dask (for debugging: an unexpected exception is the ``__cause__`` of the sweep's
        MinirnnError, raised after the other tasks ran and ``summary.csv`` was written).
    n_workers : int, optional
        Workers of the embedded cluster; with an existing cluster, how many parallel slots to plan
        packs for (default: the threads the cluster has now).
    pack_seeds : "auto", True, False or int
        "auto": pack the seeds of a configuration into ensembles of at most ``AUTO_PACK_MAX`` (8)
        networks and ``AUTO_PACK_BYTES`` (1 GiB) of activations, unless ``train_params`` has a
        ``curriculum`` or a ``performance_measure`` (which would then see ``(K, ...)`` arrays and
        must return one value per network). True: pack every remaining seed of a configuration.
        False: one task per run. An int: packs of at most that many seeds. In every case a
        configuration's seeds are split into more packs when that gives every worker work.
    retries : int
        How often a failed task (an exception, or its worker dying) is retried.
    resume : bool
        True: runs with a completion marker are skipped (a marker left by a different sweep
        specification is an error naming what differs). False: every run is trained again.
    eval_seed : int
        Seed of the evaluation task copy that gives each run's ``eval_loss`` and ``accuracy``
        (the same trials for every run; recurrent noise from ``default_rng([eval_seed, seed])``).
    model : class, optional
        The model class (default :class:`minirnn.Basic`).
    blas_threads : int
        BLAS threads, and threads of the numba kernels, inside each task (1: one task per core).

    Returns
    -------
    SweepResult
        A list of summary rows (dicts with ``run_id, config_id, seed, final_loss, eval_loss,
        accuracy, n_updates, train_time_s, packed_with, backend`` and the configuration's keys),
        with ``.csv_path``, ``.trained`` and ``.skipped``.

    Raises
    ------
    ParameterError
        A bad grid key, seed, option or parameter value of any configuration (before anything
        runs); ``out_dir`` holds a finished run of a different specification; or another sweep
        is running on ``out_dir`` (its lock file names its pid and host).
    MinirnnError
        Some runs failed after their retries. The others are saved and in ``summary.csv``;
        calling again retries only the missing runs.

    Notes
    -----
    One sweep at a time per ``out_dir``: from before it looks for finished runs until it has
    written ``summary.csv``, a sweep holds an exclusive lock on ``out_dir`` (``flock``, or
    ``msvcrt.locking`` on Windows, on ``out_dir/.sweep.lock``, which holds its host, pid and start time; the operating system drops
    it if the process dies, so a killed sweep leaves no stale lock). A finished run counts only
    when its ``DONE.json`` holds this call's fingerprint: one of another specification (written
    by a process that bypassed the lock) is neither skipped nor listed but reported as failed.
    On a filesystem without ``flock`` a warning is logged and nothing is locked.

    *Final loss* is the training loss of the last update (that update's own batch, before it).
    *eval_loss* (loss + regularizers, noise off) and *accuracy* (``task.accuracy_function``; empty
    when the task has none) are measured on one fresh batch of the task reseeded with ``eval_seed``.
    A worker that dies mid-task is retried by the scheduler up to its ``allowed-failures`` setting,
    which the embedded cluster sets to ``retries``; set ``distributed.scheduler.allowed-failures``
    on an external scheduler. Packed networks equal single trainings to float tolerance, so the
    results do not depend on how runs were packed or on which attempt finished them.

    Examples
    --------
    >>> from minirnn.tasks import PerceptualDiscrimination
    >>> task = PerceptualDiscrimination(dt=10, tau=100, T=2000, N_batch=128)
    >>> params = dict(task.get_task_params(), N_rec=50)
    >>> result = sweep({"learning_rate": [1e-3, 3e-3], "rec_noise": [0.0, 0.1]}, seeds=range(10),
    ...                task=task, params=params, train_params={"training_iters": 100_000},
    ...                out_dir="sweeps/pd")                                        # doctest: +SKIP
    >>> result.csv_path                                                             # doctest: +SKIP
    'sweeps/pd/summary.csv'

    On SLURM with ``dask-jobqueue`` (``out_dir`` on a filesystem every node sees)::

        from dask_jobqueue import SLURMCluster
        cluster = SLURMCluster(cores=1, processes=1, memory="4GB", walltime="04:00:00",
                               job_extra_directives=["--cpus-per-task=1"],
                               job_script_prologue=["export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1"])
        cluster.scale(jobs=40)          # or cluster.adapt(minimum_jobs=0, maximum_jobs=100)
        result = sweep(grid, range(20), task, params, tp, "/scratch/me/sweep1",
                       scheduler=cluster, n_workers=40)
    """
    if model is None:
        from .models import Basic as model
    params = params if isinstance(params, dict) else dict(params)  # a dict, or a TaskParams kept with its marks
    factory = not hasattr(task, "generate_batch")
    if factory and not callable(task):
        raise ParameterError(f"task must be a Task or a callable config -> Task. Got {type(task).__name__} instead.")
    seeds = _check_seeds(seeds)
    for name, value, low in (("retries", retries, 0), ("blas_threads", blas_threads, 1)):
        if not is_int(value, low):
            raise ParameterError(f"The {name!r} argument of sweep must be an int >= {low}. "
                                 f"Got {value!r} instead.")
    if not (pack_seeds in ("auto", True, False) or (isinstance(pack_seeds, int) and pack_seeds >= 1)):
        raise ParameterError(f"pack_seeds must be 'auto', True, False or an int >= 1. Got {pack_seeds!r} instead.")
    train_params = dict(train_params or {})
    train_params.setdefault("verbosity", False)
    packs = pack_seeds is True or (not isinstance(pack_seeds, (bool, str)) and pack_seeds > 1)
    if train_params.get("curriculum") is not None and packs:
        raise ParameterError(f"pack_seeds={pack_seeds!r} with a curriculum: the networks of a pack move through the "
                             "stages together, so a packed run would not be the run trained alone with its seed. "
                             "Use pack_seeds='auto' (which does not pack curricula) or False.")
    extra = model._extra_params(None)  # the class's own params table (LSTM's); it reads nothing of self
    model_table = dict(MODEL_PARAMS, **extra)
    for key in OWNED_TRAIN_KEYS:
        if train_params.get(key) is not None:
            raise ParameterError(f"train_params may not set {key!r} in a sweep: each run's files go to its "
                                 "own folder under out_dir.")
    if "seed" in params and params["seed"] is not None:
        logger.info("sweep: params['seed'] is replaced by each run's seed")

    # 1. every configuration validated and planned before anything runs
    plans = _plan_runs(expand_grid(grid), seeds, task, params, train_params, model, model_table, extra,
                       factory, eval_seed, out_dir)

    # 2. out_dir to ourselves until the summary is written: two sweeps there would mix their runs
    from .runs import exclusive_lock

    os.makedirs(out_dir, exist_ok=True)
    with exclusive_lock(out_dir, SWEEP_LOCK, what="sweep", advice="Two sweeps on one out_dir would mix their "
                        "runs: wait for that sweep to finish, or use another out_dir."):
        todo, skipped = _what_is_left(plans, resume)

        # 3. train what is left, in packs
        failed, crashed = [], []
        if todo:
            failed, crashed = _execute(plans, todo, task, model, out_dir, scheduler, n_workers, pack_seeds,
                                       retries, blas_threads)

        # 4. the runs finished under this specification, and their summary
        rows, trained, foreign = _collect(plans, todo)
        reported = {run_id for run_id, _ in failed}  # run_pack reports a foreign run it met, too
        failed += [(run_id, message) for run_id, message in foreign if run_id not in reported]
        csv_path = _write_summary(out_dir, rows)
    if failed or crashed:
        _raise_unfinished(failed, crashed, len(rows), csv_path)
    return SweepResult(rows, csv_path, trained, skipped)


def _what_is_left(plans, resume) -> tuple:
    """``(todo, skipped)``: config id -> seeds to train, and the run ids finished before.

    With ``resume``, a run finished under this specification is skipped and one finished under
    another is a ParameterError naming what differs; without it, every marker is removed (the
    old runs no longer count) and every run is trained."""
    todo, skipped = {}, []
    for plan in plans:
        for seed, run_dir in plan["runs"]:
            state = _marker_state(run_dir, plan)
            if state == "ours" and resume and _read_marker(run_dir).get("fingerprint") == plan["legacy_fingerprint"]:
                warnings.warn(f"{run_dir} finished before minirnn recorded what a task factory builds: it is reused "
                              "because the factory's name matches. Use resume=False if the factory changed.",
                              stacklevel=3)
            if state == "foreign" and resume:
                raise ParameterError(f"{run_dir} holds a finished run of a different sweep specification "
                                     f"({_what_differs(run_dir, plan['spec'])}). Use a new out_dir, or "
                                     "resume=False to train every run again.")
            if state == "ours" and resume:
                skipped.append(_run_id(plan["config_id"], seed))
                continue
            if state != "missing":
                os.remove(os.path.join(run_dir, MARKER))  # resume=False: the old run no longer counts
            todo.setdefault(plan["config_id"], []).append(seed)
    return todo, skipped


def _collect(plans, todo) -> tuple:
    """``(rows, trained, foreign)`` from the markers on disk: the summary rows of the runs finished
    under their plan's fingerprint; those of them trained by this call (whichever attempt finished
    them: a task killed after writing some runs of its pack returns nothing, and its retry only the
    rest); and ``(run id, message)`` for each run whose marker belongs to another specification,
    which is an error, never a row."""
    rows, trained, foreign = [], [], []
    for plan in plans:
        for seed, run_dir in plan["runs"]:
            marker, run_id = _read_marker(run_dir), _run_id(plan["config_id"], seed)
            if marker is None:
                continue
            if marker.get("fingerprint") not in _fingerprints(plan):
                foreign.append((run_id, _foreign_message(run_dir)))
                continue
            rows.append(marker["row"])
            if seed in todo.get(plan["config_id"], ()):
                trained.append(run_id)
    return rows, trained, foreign


def _plan_runs(configs, seeds, task, params, train_params, model, model_table, extra, factory, eval_seed,
               out_dir) -> list:
    """One plan per configuration: its full params and train_params (validated as ``model(...)`` and
    ``train()`` would validate them), its folder name, the fingerprint of everything a finished run
    depends on, and its runs."""
    settings = None if factory or not hasattr(task, "get_task_params") else task.get_task_params()
    if settings is not None:
        settings.pop("seed", None)
    plans = []
    for config in configs:
        model_keys, train_keys = split_config(config, model_table, factory, settings)
        run_params = params | {**model_keys, "seed": None}  # `|` keeps a TaskParams' marks
        where = f" (configuration {_short(config)})" if config else ""
        try:
            resolved = resolve_model_params(run_params, owner=model.__name__, extra=extra)
            _check_model_values(model, resolved, task)
            run_tp = dict(train_params, **train_keys)
            _check_train_values(resolve_train_params(run_tp), resolved)
            task_description = _task_description(task, config)  # a factory is called here, once per configuration
        except MinirnnError as exc:  # the same error, naming the configuration too
            try:
                named = type(exc)(f"{exc}{where}")
            except Exception:  # noqa: BLE001 - an error class with other arguments: raise it as it is
                raise exc from None
            raise named from None
        spec = {"config": config, "params": run_params, "train_params": run_tp, "model": model.__name__,
                "task": task_description, "eval_seed": int(eval_seed)}
        quiet = dict(spec, train_params={k: v for k, v in run_tp.items() if k != "verbosity"})
        cid = config_id(config)
        # a run finished before factories were fingerprinted by what they build recorded the factory's name only
        legacy = (_fingerprint(dict(quiet, task={"factory": task_description["factory"]}))
                  if "builds" in task_description else None)
        plans.append({"config": config, "config_id": cid, "params": run_params, "train_params": run_tp,
                      "fingerprint": _fingerprint(quiet), "legacy_fingerprint": legacy, "spec": spec,
                      "runs": [(s, os.path.join(out_dir, cid, f"seed-{s}")) for s in seeds]})
    if len({p["config_id"] for p in plans}) != len(plans):
        raise ParameterError("The grid holds the same configuration twice.")
    return plans


def _short(config) -> str:
    text = ", ".join(f"{k}={v!r}" for k, v in config.items())
    return text if len(text) <= 120 else text[:117] + "..."


def _check_model_values(model, p, task):
    """The checks ``model(p)`` makes beyond :func:`resolve_model_params` (``p`` is its result), without building a model
    (whose initialisation, a spectral radius at large ``N_rec``, can take long): the same rules and
    messages, from the same validators where they are functions. Raises ParameterError/ShapeError.

    The backend's *name* is checked, not that its library imports here: on a cluster the workers
    may have CuPy or numba while the machine planning the sweep has not."""
    from .backends import BACKENDS, Backend, get_backend
    from .errors import ShapeError
    from .nn.activations import get_activation
    from .nn.losses import get_loss

    owner = model.__name__  # sizes, dtype, dale_ratio and ranges: resolve_model_params checked them
    if not isinstance(p["backend"], Backend) and p["backend"] not in BACKENDS:
        get_backend(p["backend"])  # raises, naming the choices
    get_loss(p["loss_function"], p)
    get_activation(p["transfer_function"])
    variant = p.get("lstm_variant")
    if variant is not None:  # LSTM._build's rule (None: chosen from a weights file, or "standard")
        from .models.lstm import VARIANTS

        if not isinstance(variant, str) or variant not in VARIANTS:
            hint = suggest(variant, VARIANTS) if isinstance(variant, str) else ""
            raise ParameterError(f"The 'lstm_variant' parameter of {owner} must be one of {sorted(VARIANTS)} or "
                                 f"None. Got {variant!r} instead{hint or '.'}")
    if hasattr(task, "generate_batch"):  # a factory's sizes are known only on the worker
        for key in ("N_in", "N_out"):
            if getattr(task, key, p[key]) != p[key]:
                raise ShapeError(f"params[{key!r}] is {p[key]} but the task has {key}={getattr(task, key)}; "
                                 f"the model's {key} must match the task's (params = dict(task.get_task_params(), "
                                 f"N_rec=...) keeps them together).")


def _check_train_values(tp, p):
    """The checks ``train()`` makes beyond :func:`resolve_train_params`: the optimizer's name and
    its learning rate (by building it: cheap, no state until the first update), and a curriculum
    that can train the model and has not already finished (each run trains on a fresh copy of it)."""
    from .nn.optimizers import get_optimizer
    from .train.curriculum import check_curriculum

    lr = tp["learning_rate"]
    get_optimizer(tp["optimizer"], learning_rate=np.asarray(lr, dtype=np.float64) if isinstance(lr, (list, tuple))
                  else lr)
    if tp["curriculum"] is not None:  # each run trains on its own copy of the curriculum as given
        check_curriculum(tp["curriculum"], p["N_in"], p["N_out"])


def _raise_unfinished(failed, crashed, n_rows, csv_path):
    """One MinirnnError naming the runs that failed in training and the tasks that ran out of
    attempts (with only their runs that have no marker: a failed task may have finished some)."""
    lines = [f"  {run_id}: {message}" for run_id, message in failed[:5]]
    unfinished = []
    for s, exc, attempts in crashed:
        left = [seed for seed, d in zip(s["seeds"], s["run_dirs"]) if _read_marker(d) is None]
        if left:
            unfinished.append((s, exc, attempts, left))
    where = [_run_id(s["config_id"], left[0]) if len(left) == 1 else f"{s['config_id']} seeds {left}"
             for s, _, _, left in unfinished[:5]]
    lines += [f"  {w}: task failed {attempts} time{'s' * (attempts > 1)}, last with {type(exc).__name__}: {exc}"
              for w, (s, exc, attempts, left) in zip(where, unfinished[:5])]
    n = len(failed) + sum(len(left) for *_, left in unfinished)
    if n == 0:  # a task that failed after writing all its runs (its retry found nothing to do)
        return
    raise MinirnnError(f"{n} run(s) of the sweep did not finish:\n" + "\n".join(lines) + f"\nThe {n_rows} "
                       f"finished runs are saved and listed in {csv_path}; calling sweep() again retries only "
                       "the unfinished ones.") from (unfinished[0][1] if unfinished else None)


def _check_seeds(seeds) -> list:
    try:
        seeds = list(seeds)
    except TypeError:
        raise ParameterError(f"seeds must be a list of ints. Got {seeds!r} instead.") from None
    if not seeds:
        raise ParameterError("seeds is empty: give at least one seed.")
    for s in seeds:
        if not is_int(s, 0):
            raise ParameterError(f"Each seed must be a non-negative int. Got {s!r} in seeds.")
    if len(set(seeds)) != len(seeds):
        raise ParameterError(f"seeds has repeated values: {seeds}.")
    return [int(s) for s in seeds]


def _run_id(cid, seed) -> str:
    return f"{cid}/seed-{seed}"


def _read_marker(run_dir):
    path = os.path.join(run_dir, MARKER)
    if not os.path.exists(path):
        return None
    try:
        with open(path, encoding="utf-8") as fh:
            return json.load(fh)
    except (OSError, ValueError):  # cannot happen with atomic writes; treat as not finished
        return None


def _marker_state(run_dir, plan) -> str:
    """``"missing"`` (the run has not finished), ``"ours"`` (it finished under one of ``plan``'s
    :func:`_fingerprints`) or ``"foreign"`` (it finished under another sweep specification)."""
    marker = _read_marker(run_dir)
    if marker is None:
        return "missing"
    return "ours" if marker.get("fingerprint") in _fingerprints(plan) else "foreign"


def _fingerprint(spec) -> str:
    """The SHA-256 of a run's specification, in canonical form."""
    return hashlib.sha256(_canonical(spec).encode()).hexdigest()


def _fingerprints(plan) -> set:
    """The fingerprints a finished run of ``plan`` may carry: this version's, and for a task factory the
    one of a run finished before factories were fingerprinted by what they build."""
    return {plan["fingerprint"], plan.get("legacy_fingerprint")} - {None}


def _foreign_message(run_dir) -> str:
    return (f"ParameterError: {run_dir} holds a run of a different sweep specification, finished while this "
            "sweep ran (another process wrote into out_dir); it was left as it is and is not in summary.csv")


def _what_differs(run_dir, spec) -> str:
    try:
        with open(os.path.join(run_dir, "run.json"), encoding="utf-8") as fh:
            old = json.load(fh)["sweep"]["spec"]
    except (OSError, ValueError, KeyError):
        return "its run.json is unreadable"
    new = _describe(spec)
    diffs = [line for section in ("params", "train_params", "task", "model", "eval_seed")
             for line in _differences(section, old.get(section), new.get(section))]
    return "; ".join(diffs[:3]) or "fingerprints differ"


def _differences(where, old, new) -> list:
    """``"where: old then, new now"`` for each entry in which two JSON values differ, dicts compared
    key by key at any depth (``task['builds']['params']['coherence']: 0.5 then, 0.01 now``)."""
    if isinstance(old, dict) and isinstance(new, dict):
        return [line for key in sorted(set(old) | set(new)) if key != "verbosity"
                for line in _differences(f"{where}[{key!r}]", old.get(key), new.get(key))]
    if old == new:
        return []
    return [f"{where}: {_clip(repr(old))} then, {_clip(repr(new))} now"]


def _clip(text, width=80) -> str:
    return text if len(text) <= width else text[:width - 3] + "..."


def _write_summary(out_dir, rows) -> str:
    keys = sorted({k for r in rows for k in r.get("config", {})})
    fields = list(SUMMARY_FIELDS) + [k for k in keys if k not in SUMMARY_FIELDS]
    buffer = _io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=fields, lineterminator="\n")
    writer.writeheader()
    for r in rows:
        flat = {k: r.get(k) for k in SUMMARY_FIELDS}
        flat.update({k: (v if isinstance(v, (int, float, str, bool)) or v is None else json.dumps(_describe(v)))
                     for k, v in r.get("config", {}).items()})
        writer.writerow({k: "" if v is None else v for k, v in flat.items()})
    from .runs import remove_temporaries_of

    remove_temporaries_of(out_dir, [SUMMARY_FILE])  # left by a sweep killed while writing it
    path = os.path.join(out_dir, SUMMARY_FILE)
    _write_text_atomic(path, buffer.getvalue())
    return path


def _write_text_atomic(path, text):
    from .io import atomic_write_text

    atomic_write_text(path, text)


# ---- scheduling ---------------------------------------------------------------------------------
def _packs(seeds, n_packs, pack_seeds) -> list:
    """Split one configuration's remaining seeds into packs (lists of seeds)."""
    if pack_seeds is False:
        return [[s] for s in seeds]
    if pack_seeds is not True:  # an int: packs of at most that many
        n_packs = max(n_packs, math.ceil(len(seeds) / pack_seeds))
    n_packs = max(1, min(n_packs, len(seeds)))
    return [list(chunk) for chunk in np.array_split(np.asarray(seeds), n_packs)]


def _auto_pack_size(params, task) -> int:
    """The largest pack "auto" makes: AUTO_PACK_MAX networks, fewer when their activations would
    pass AUTO_PACK_BYTES (a task factory's sizes are unknown here: AUTO_PACK_MAX)."""
    if not hasattr(task, "generate_batch"):
        return AUTO_PACK_MAX
    itemsize = np.dtype(params.get("dtype") or "float32").itemsize
    per_network = _ACTIVATION_ARRAYS * task.N_steps * task.N_batch * int(params["N_rec"]) * itemsize
    return max(1, min(AUTO_PACK_MAX, AUTO_PACK_BYTES // per_network))


def _execute(plans, todo, task, model, out_dir, scheduler, n_workers, pack_seeds, retries, blas_threads):
    by_id = {p["config_id"]: p for p in plans}
    with _client(scheduler, n_workers, retries) as (client, slots):
        specs = []
        for cid, seeds in todo.items():
            plan = by_id[cid]
            tp = plan["train_params"]
            packing = pack_seeds
            if pack_seeds == "auto":
                unsafe = tp.get("curriculum") is not None or tp.get("performance_measure") is not None
                packing = False if unsafe else _auto_pack_size(plan["params"], task)
            n_packs = math.ceil(slots / len(todo))
            for pack in _packs(seeds, n_packs, packing):
                specs.append(dict(plan, seeds=[int(s) for s in pack], task=task, model_class=model,
                                  out_dir=out_dir, blas_threads=blas_threads,
                                  run_dirs=[os.path.join(out_dir, cid, f"seed-{s}") for s in pack]))
        failed, crashed = [], []  # (run id, message): training errors; (spec, exception, attempts): tasks
        if client is None:  # "synchronous": in this process, once; an unexpected exception is reported at
            for spec in specs:  # the end (as the cause of the sweep's error) without stopping the other tasks
                try:
                    failed += run_pack(spec)["failed"]
                except Exception as exc:  # noqa: BLE001 - reported together below
                    crashed.append((spec, exc, 1))
        else:
            from distributed import as_completed

            futures = {client.submit(run_pack, spec, retries=retries, pure=False,
                                     key=f"minirnn-sweep-{spec['config_id']}-{spec['seeds'][0]}-{os.urandom(4).hex()}"): spec
                       for spec in specs}
            for future in as_completed(futures):
                try:
                    failed += future.result()["failed"]
                except Exception as exc:  # noqa: BLE001 - reported together below
                    crashed.append((futures[future], exc, retries + 1))
        return failed, crashed


@contextmanager
def _client(scheduler, n_workers, retries):
    """Yield ``(client or None, parallel slots)``: an embedded LocalCluster unless told otherwise."""
    if isinstance(scheduler, str) and scheduler == "synchronous":
        yield None, 1
        return
    try:
        import dask
        from distributed import Client, LocalCluster
    except ImportError:
        raise MissingDependencyError('minirnn.sweep needs dask.distributed (not installed). Install it with: '
                                     'pip install "minirnn[dask]"  (or pip install "dask[distributed]"), or '
                                     'pass scheduler="synchronous" to run in this process.') from None
    if scheduler is None:
        n = int(n_workers or _usable_cpus())
        blas = {k: "1" for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")}
        # dask's nanny writes the workers' settings (these, PYTHONHASHSEED, MALLOC_TRIM_THRESHOLD_) into
        # this process's os.environ as it spawns them: the caller gets its environment back afterwards
        saved_env = dict(os.environ)
        try:
            with dask.config.set({"distributed.scheduler.allowed-failures": int(retries)}):
                cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True, dashboard_address=None,
                                       silence_logs=logging.ERROR, env=blas)
            client = Client(cluster)
            try:
                yield client, n
            finally:
                client.close()
                cluster.close()
        finally:
            _restore_environ(saved_env)
        return
    owned = not isinstance(scheduler, Client)
    client = Client(scheduler) if owned else scheduler
    try:
        yield client, int(n_workers or max(1, sum(client.nthreads().values())))
    finally:
        if owned:
            client.close()


def _restore_environ(saved: dict) -> None:
    """Put ``os.environ`` back to ``saved``: keys added since are removed, changed ones restored."""
    for key in set(os.environ) - set(saved):
        del os.environ[key]
    for key, value in saved.items():
        if os.environ.get(key) != value:
            os.environ[key] = value


def _usable_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


# ---- the worker side ----------------------------------------------------------------------------
def run_pack(spec) -> dict:
    """Train the unfinished runs of one pack (same configuration, several seeds) and write each.

    Called on a worker (or in-process with ``scheduler="synchronous"``). Idempotent: runs whose
    marker exists are left alone, so a retried task trains only what its dead attempt had not
    finished. A :class:`MinirnnError` in training (a NaN loss: deterministic, so not worth a
    retry) is returned, not raised. In a pack it stops every network, so the pack is split: the
    networks it names (``NonFiniteError.networks``) are trained alone and the others as a smaller
    pack, or, when it names none, every seed alone; only the culprits fail. Any other exception
    from a pack also makes its seeds train one by one (an ensemble's own trouble, such as memory,
    does not cost the seeds a run); an exception of a single run is raised after its pack-mates
    are done (the scheduler retries the task, which then trains only that run).

    A run whose marker belongs to another sweep specification (another process wrote into
    ``out_dir``) is neither trained nor reused: it is returned as failed.

    Returns ``{"done": [run ids], "failed": [(run id, message)]}``."""
    todo, foreign = [], []
    for seed, run_dir in zip(spec["seeds"], spec["run_dirs"]):
        state = _marker_state(run_dir, spec)
        if state == "foreign":
            foreign.append((_run_id(spec["config_id"], seed), _foreign_message(run_dir)))
        elif state == "missing":
            todo.append((seed, run_dir))
    result = _train_pack(spec, todo) if todo else {"done": [], "failed": []}
    return {"done": result["done"], "failed": foreign + result["failed"]}


def _train_pack(spec, todo) -> dict:
    """:func:`run_pack` for the runs ``todo`` (``(seed, run_dir)`` pairs) that have not finished."""
    with _blas_threads(spec["blas_threads"]):
        for seed, run_dir in todo:
            os.makedirs(run_dir, exist_ok=True)
            _log(spec, seed, "start")
        task = spec["task"] if hasattr(spec["task"], "generate_batch") else spec["task"](dict(spec["config"]))
        try:
            nets, initials, histories, seconds, curriculum = _train(spec, task, [s for s, _ in todo])
        except MinirnnError as exc:
            if len(todo) == 1:
                _log(spec, todo[0][0], "failed")
                return {"done": [], "failed": [(_run_id(spec["config_id"], todo[0][0]), f"{type(exc).__name__}: {exc}")]}
            return _split_pack(spec, todo, getattr(exc, "networks", None))
        except Exception as exc:  # not a training error: train the pack's seeds one by one
            if len(todo) == 1:
                raise
            logger.warning("sweep: a pack of %d seeds of %s raised %s: %s; training them one by one", len(todo),
                           spec["config_id"], type(exc).__name__, exc)
            return _split_pack(spec, todo, None)
        eval_x, eval_y, eval_mask, _ = _reseeded(task, spec["spec"]["eval_seed"]).generate_batch()
        done = []
        for (seed, run_dir), net, initial_raw, history in zip(todo, nets, initials, histories):
            row = _evaluate(spec, task, net, seed, history, (eval_x, eval_y, eval_mask))
            row.update(train_time_s=round(seconds, 3), packed_with=len(todo))
            _write_run(spec, task, run_dir, net, seed, history, row, [s for s, _ in todo], seconds, curriculum,
                       initial_raw)
            _log(spec, seed, "done")
            done.append(_run_id(spec["config_id"], seed))
        return {"done": done, "failed": []}


def _split_pack(spec, todo, culprits) -> dict:
    """Train a failed pack again in parts: each culprit (an index into ``todo``) alone and the
    rest as one pack, or, without culprits, every seed alone. Every part runs even when one raises;
    the first exception is raised afterwards (a retry then trains only the unfinished runs)."""
    culprits = sorted({int(k) for k in culprits or () if 0 <= int(k) < len(todo)})
    if culprits and len(culprits) < len(todo):
        rest = [item for k, item in enumerate(todo) if k not in culprits]
        parts = [[todo[k]] for k in culprits] + [rest]
    else:
        parts = [[item] for item in todo]
    results, errors = [], []
    for part in parts:
        try:
            results.append(run_pack(dict(spec, seeds=[s for s, _ in part], run_dirs=[d for _, d in part])))
        except Exception as exc:  # noqa: BLE001 - raised below, once the other parts are done
            errors.append(exc)
    if errors:
        raise errors[0]
    return {key: [item for result in results for item in result[key]] for key in ("done", "failed")}


def _reseeded(task, seed):
    from .train.batches import _reseeded_copy

    return _reseeded_copy(task, seed)


def _train(spec, task, seeds):
    """Train one single model or one ensemble of ``len(seeds)``; return the networks (single models),
    their raw weights before training (for the constraint audit), their per-network histories, the
    training seconds and the curriculum trained on (or None).

    ``train_params`` is copied for every training, so stateful options (a Curriculum, an Optimizer
    object) start fresh in every run, as they would in a run of its own. A curriculum's tasks are
    reseeded with the run's seed like the task (an ensemble does this per network itself); its
    ``output_file`` is written into each run's folder afterwards (see :func:`_write_run`)."""
    import copy

    from . import runs

    cls, params, tp = spec["model_class"], spec["params"], copy.deepcopy(dict(spec["train_params"]))
    curriculum = tp.get("curriculum")
    if curriculum is not None:
        curriculum.output_file = None  # one file per run, written by _write_run
    t0 = time.perf_counter()
    if len(seeds) == 1:
        if curriculum is not None:
            curriculum.tasks = [_reseeded(t, seeds[0]) for t in curriculum.tasks]
        net = cls(params | {"seed": seeds[0]})
        initial = runs.raw_on_host(net)
        net.train(None if curriculum is not None else _reseeded(task, seeds[0]), tp)
        return [net], [initial], [_plain_history(net.history)], time.perf_counter() - t0, curriculum
    ens = cls(params | {"seed": None}, n_networks=len(seeds), seeds=seeds)
    initial = runs.raw_on_host(ens)  # (K, ...) arrays: network k's are [k], as in ens.network(k)
    # network k trains on the task (or each curriculum task) reseeded with seeds[k] (BatchSource)
    ens.train(None if curriculum is not None else copy.deepcopy(task), tp)  # a fresh stream per run
    seconds = time.perf_counter() - t0
    cutoff = tp.get("performance_cutoff")
    return ([ens.network(k) for k in range(len(seeds))],
            [{name: a[k] for name, a in initial.items()} for k in range(len(seeds))],
            [_network_history(ens.history, k, cutoff) for k in range(len(seeds))], seconds, curriculum)


def _plain_history(h) -> dict:
    return {"loss": [float(v) for v in h["loss"]], "update": [int(u) for u in h["update"]],
            "performance": [[int(u), _describe(v)] for u, v in h["performance"]],
            "stages": _describe(h.get("stages", []))}


def _network_history(h, k, cutoff) -> dict:
    """Network k's history, cut where it reached ``performance_cutoff`` (where its single twin stops).
    Curriculum stages are the ensemble's (one curriculum for all its networks)."""
    last = None
    if cutoff is not None:
        last = next((u for u, v in h["performance"] if np.ndim(v) and np.asarray(v)[k] >= cutoff), None)
    keep = [i for i, u in enumerate(h["update"]) if last is None or u <= last]
    return {"loss": [float(np.asarray(h["loss"][i])[k]) for i in keep], "update": [int(h["update"][i]) for i in keep],
            "performance": [[int(u), _describe(np.asarray(v)[k] if np.ndim(v) else v)] for u, v in h["performance"]
                            if last is None or u <= last],
            "stages": _describe([st for st in h.get("stages", []) if last is None or st["update"] <= last])}


def _evaluate(spec, task, net, seed, history, batch) -> dict:
    """Summary row of one trained network: final training loss, eval loss and accuracy."""
    x, y, mask = batch
    net.rng_eval = np.random.default_rng([int(spec["spec"]["eval_seed"]), int(seed)])
    output, _ = net.test(x)
    accuracy = task.accuracy_function(y, output, mask) if hasattr(task, "accuracy_function") else None
    eval_loss, _ = net.loss_and_grads(x, y, mask)
    return {"run_id": _run_id(spec["config_id"], seed), "config_id": spec["config_id"], "seed": int(seed),
            "final_loss": history["loss"][-1] if history["loss"] else None, "eval_loss": float(eval_loss),
            "accuracy": None if accuracy is None else float(np.mean(accuracy)), "n_updates": len(history["loss"]),
            "backend": net.backend.name, "config": _describe(spec["config"])}


def _write_run(spec, task, run_dir, net, seed, history, row, packed, seconds, curriculum=None, initial_raw=None):
    """``weights.npz`` and ``run.json`` (the run directory of :mod:`minirnn.runs`, so
    ``runs.load_run(run_dir)`` rebuilds the model and its task), the curriculum's metric history
    when the user's curriculum had an ``output_file`` (its base name, in the run folder), then the
    marker: each atomic, the marker last. ``initial_raw`` (the raw weights before training) lets
    the constraint audit check that fixed weights did not move."""
    from . import runs
    from .train.checkpoint import write_json_atomic

    output_file = getattr(spec["train_params"].get("curriculum"), "output_file", None)
    own_files = [runs.WEIGHTS_FILE, runs.RECORD_FILE, MARKER] + ([os.path.basename(output_file)] if output_file else [])
    runs.remove_temporaries_of(run_dir, own_files)  # of an attempt killed while writing
    net.history = {"stages": [], **history}
    if curriculum is not None and output_file:
        curriculum.save(os.path.join(run_dir, os.path.basename(output_file)))
    sweep_record = {"run_id": row["run_id"], "config_id": spec["config_id"], "config": _describe(spec["config"]),
                    "seed": int(seed), "packed_with_seeds": packed, "fingerprint": spec["fingerprint"],
                    "spec": _describe(spec["spec"]), "host": socket.gethostname(), "pid": os.getpid(),
                    "versions": _versions()}
    audit = runs.constraint_audit(net, initial_raw, spec["train_params"].get("fixed_weights"))
    if not audit["ok"]:
        logger.warning("sweep: run %s breaks its constraints: %s", row["run_id"], audit["details"])
    record = runs.run_record(net, task, params=dict(spec["params"], seed=int(seed)), train_params=spec["train_params"],
                             task_seed=int(seed), eval_seed=spec["spec"]["eval_seed"],
                             audit=audit, timings={"train_s": seconds}, extra={"sweep": sweep_record})
    runs.write_run(run_dir, net, record)
    write_json_atomic(os.path.join(run_dir, MARKER), {"fingerprint": spec["fingerprint"], "row": row,
                                                      "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z")})


def _versions() -> dict:
    out = {"minirnn": __version__, "numpy": np.__version__, "python": platform.python_version()}
    for name in ("numba", "distributed"):
        try:
            out[name] = __import__(name).__version__
        except ImportError:
            pass
    return out


def _log(spec, seed, event):
    """One JSON line in ``out_dir/runs.log`` (a single short O_APPEND write: lines never interleave
    on a local filesystem)."""
    line = json.dumps({"run": _run_id(spec["config_id"], seed), "event": event, "pid": os.getpid(),
                       "host": socket.gethostname(), "time": round(time.time(), 3)}) + "\n"
    fd = os.open(os.path.join(spec["out_dir"], "runs.log"), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)


@contextmanager
def _blas_threads(n):
    """BLAS threads, and the numba kernels' threads, limited to ``n`` inside one sweep task."""
    from .backends import set_num_threads

    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        threadpool_limits = None
    before = set_num_threads(int(n))
    try:
        if threadpool_limits is None:
            yield
        else:
            with threadpool_limits(int(n)):
                yield
    finally:
        set_num_threads(before)
