"""Sweeps: a grid of configurations x seeds, trained on ``dask.distributed``, one folder per run.

A *run* is one (configuration, seed) pair. It means exactly this single training::

    model = Basic(dict(params, **model_keys, seed=seed))
    model.train(task reseeded with `seed`, dict(train_params, **train_keys))

where a configuration's keys are split by name: a key of ``TRAIN_PARAMS`` (``learning_rate``,
``training_iters``, ...) goes to ``train_params``; a key of the model's params table (``N_rec``,
``rec_noise``, ``L2_rec``, ...) goes to ``params``; any other key is an error with a suggestion,
unless ``task`` is a factory ``task(config) -> Task``, which then receives the whole configuration
and may use keys of its own (``coherence``, ``T``, ...). "Reseeded with ``seed``" means the trial
stream of the same task built with ``seed=seed`` (the task's own seed plays no part), so every run
is reproducible from its folder alone: ``minirnn.runs.load_run(run_dir)`` gives back the model
and its task.

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

A run counts as finished only when its ``DONE.json`` exists, so a run cut short at any moment
(a worker killed while writing) is redone from scratch on the next attempt or the next call;
every file is written to a temporary name and moved into place with ``os.replace``, so no file is
ever torn. A task whose worker dies is retried by the scheduler (up to ``retries`` times). A run
whose training raises a :class:`~minirnn.errors.MinirnnError` (a NaN loss) is not retried (it would
fail again) but reported when the sweep ends; its pack-mates are trained alone, so one diverging
seed does not take the others down.
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
from contextlib import contextmanager

import numpy as np

from . import __version__
from ._params import MODEL_PARAMS, TRAIN_PARAMS, resolve_model_params, resolve_train_params
from .errors import MinirnnError, MissingDependencyError, ParameterError, suggest

logger = logging.getLogger("minirnn")

SUMMARY_FIELDS = ("run_id", "config_id", "seed", "final_loss", "eval_loss", "accuracy", "n_updates",
                  "train_time_s", "packed_with", "backend")
#: training options the sweep sets per run (one user value would make every run write the same file)
OWNED_TRAIN_KEYS = ("save_weights_path", "training_weights_path", "checkpoint_path")
MARKER = "DONE.json"
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
    goes inside a list: ``{"tau": [tau_a, tau_b]}``."""
    if isinstance(grid, dict):
        keys = list(grid)
        values = [list(v) if isinstance(v, (list, tuple, range)) or (isinstance(v, np.ndarray) and v.ndim == 1)
                  else [v] for v in grid.values()]
        return [dict(zip(keys, combo)) for combo in itertools.product(*values)]
    if isinstance(grid, (list, tuple)) and all(isinstance(c, dict) for c in grid):
        return [dict(c) for c in grid]
    raise ParameterError(f"grid must be a dict of lists or a list of dicts. Got {type(grid).__name__} instead.")


def split_config(config: dict, model_table: dict, task_factory: bool) -> tuple:
    """``config`` -> ``(model_keys, train_keys)`` by the rule of the module docstring.

    Raises ParameterError for ``seed`` (given separately), for a training key the sweep owns, and
    for a key that is neither (with a did-you-mean) unless a task factory takes it."""
    model_keys, train_keys = {}, {}
    for key, value in config.items():
        if key == "seed":
            raise ParameterError("The grid may not set 'seed': pass the seeds as sweep(..., seeds=[...]).")
        if key in OWNED_TRAIN_KEYS:
            raise ParameterError(f"The grid may not set {key!r}: the sweep writes each run's files itself.")
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


def _task_description(task) -> dict:
    if hasattr(task, "generate_batch"):
        params = {k: v for k, v in task.get_task_params().items() if k != "seed"}
        return {"class": f"{type(task).__module__}.{type(task).__qualname__}", "params": _describe(params)}
    return {"factory": _describe(task)}


# ---- the public entry point ---------------------------------------------------------------------
def sweep(grid, seeds, task, params, train_params=None, out_dir="sweep", *, scheduler=None, n_workers=None,
          pack_seeds="auto", retries=2, resume=True, eval_seed=DEFAULT_EVAL_SEED, model=None, blas_threads=1):
    """Train every configuration of ``grid`` with every seed of ``seeds`` on ``dask.distributed``.

    Parameters
    ----------
    grid : dict of lists (cartesian product, first key slowest) or list of dicts
        Configurations. Each key goes to ``train_params`` when it names a training parameter, to
        ``params`` when it names a model parameter (see the module docstring); anything else is a
        ParameterError with a suggestion, checked before anything is submitted.
    seeds : list of int
        Run seeds: model streams ``Basic(..., seed=s)`` and the task's trial stream reseeded with ``s``.
    task : Task, or callable ``config -> Task``
        The task (its own seed is not used), or a factory called on each worker with the configuration.
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
        cluster. ``"synchronous"`` runs every task in this process, one after the other, without
        dask (for debugging: exceptions surface directly).
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
        A bad grid key, seed or option (before anything runs), or ``out_dir`` holds a finished run
        of a different specification.
    MinirnnError
        Some runs failed after their retries. The others are saved and in ``summary.csv``;
        calling again retries only the missing runs.

    Notes
    -----
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
    factory = not hasattr(task, "generate_batch")
    if factory and not callable(task):
        raise ParameterError(f"task must be a Task or a callable config -> Task. Got {type(task).__name__} instead.")
    seeds = _check_seeds(seeds)
    for name, value in (("retries", retries), ("blas_threads", blas_threads)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < (name == "blas_threads"):
            raise ParameterError(f"The {name!r} argument of sweep must be an int >= {int(name == 'blas_threads')}. "
                                 f"Got {value!r} instead.")
    if not (pack_seeds in ("auto", True, False) or (isinstance(pack_seeds, int) and pack_seeds >= 1)):
        raise ParameterError(f"pack_seeds must be 'auto', True, False or an int >= 1. Got {pack_seeds!r} instead.")
    train_params = dict(train_params or {})
    train_params.setdefault("verbosity", False)
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

    # 2. what is already done
    os.makedirs(out_dir, exist_ok=True)
    todo, skipped = {}, []
    for plan in plans:
        for seed, run_dir in plan["runs"]:
            marker = _read_marker(run_dir)
            if marker is not None and resume and marker.get("fingerprint") != plan["fingerprint"]:
                raise ParameterError(f"{run_dir} holds a finished run of a different sweep specification "
                                     f"({_what_differs(run_dir, plan['spec'])}). Use a new out_dir, or "
                                     "resume=False to train every run again.")
            if marker is not None and resume:
                skipped.append(_run_id(plan["config_id"], seed))
                continue
            if marker is not None:
                os.remove(os.path.join(run_dir, MARKER))  # resume=False: the old run no longer counts
            todo.setdefault(plan["config_id"], []).append(seed)

    # 3. train what is left, in packs
    failed, crashed = [], []
    if todo:
        failed, crashed = _execute(plans, todo, task, model, out_dir, scheduler, n_workers, pack_seeds, retries,
                                   blas_threads)
    # finished by this call, whichever attempt finished it (a task killed after writing some runs
    # of its pack returns nothing; its retry returns only the rest)
    trained = [_run_id(p["config_id"], s) for p in plans for s, d in p["runs"]
               if s in todo.get(p["config_id"], ()) and _read_marker(d) is not None]
    rows = [r for plan in plans for seed, run_dir in plan["runs"]
            if (r := (_read_marker(run_dir) or {}).get("row")) is not None]
    csv_path = _write_summary(out_dir, rows)
    if failed or crashed:
        _raise_unfinished(failed, crashed, retries, len(rows), csv_path)
    return SweepResult(rows, csv_path, trained, skipped)


def _plan_runs(configs, seeds, task, params, train_params, model, model_table, extra, factory, eval_seed,
               out_dir) -> list:
    """One plan per configuration: its full params and train_params (validated against the tables),
    its folder name, the fingerprint of everything a finished run depends on, and its runs."""
    plans = []
    for config in configs:
        model_keys, train_keys = split_config(config, model_table, factory)
        run_params = dict(params, **model_keys, seed=None)
        resolve_model_params(run_params, owner=model.__name__, extra=extra)
        run_tp = dict(train_params, **train_keys)
        resolve_train_params(run_tp)
        spec = {"config": config, "params": run_params, "train_params": run_tp, "model": model.__name__,
                "task": _task_description(task), "eval_seed": int(eval_seed)}
        quiet = dict(spec, train_params={k: v for k, v in run_tp.items() if k != "verbosity"})
        cid = config_id(config)
        plans.append({"config": config, "config_id": cid, "params": run_params, "train_params": run_tp,
                      "fingerprint": hashlib.sha256(_canonical(quiet).encode()).hexdigest(), "spec": spec,
                      "runs": [(s, os.path.join(out_dir, cid, f"seed-{s}")) for s in seeds]})
    if len({p["config_id"] for p in plans}) != len(plans):
        raise ParameterError("The grid holds the same configuration twice.")
    return plans


def _raise_unfinished(failed, crashed, retries, n_rows, csv_path):
    """One MinirnnError naming the runs that failed in training and the tasks that ran out of retries."""
    lines = [f"  {run_id}: {message}" for run_id, message in failed[:5]]
    lines += [f"  {s['config_id']} seeds {s['seeds']}: task failed {retries + 1} times, last with "
              f"{type(exc).__name__}: {exc}" for s, exc in crashed[:5]]
    n = len(failed) + sum(len(s["seeds"]) for s, _ in crashed)
    raise MinirnnError(f"{n} run(s) of the sweep did not finish:\n" + "\n".join(lines) + f"\nThe {n_rows} "
                       f"finished runs are saved and listed in {csv_path}; calling sweep() again retries only "
                       "the unfinished ones.") from (crashed[0][1] if crashed else None)


def _check_seeds(seeds) -> list:
    try:
        seeds = list(seeds)
    except TypeError:
        raise ParameterError(f"seeds must be a list of ints. Got {seeds!r} instead.") from None
    if not seeds:
        raise ParameterError("seeds is empty: give at least one seed.")
    for s in seeds:
        if isinstance(s, bool) or not isinstance(s, (int, np.integer)) or s < 0:
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
        with open(path) as fh:
            return json.load(fh)
    except (OSError, ValueError):  # cannot happen with atomic writes; treat as not finished
        return None


def _what_differs(run_dir, spec) -> str:
    try:
        with open(os.path.join(run_dir, "run.json")) as fh:
            old = json.load(fh)["sweep"]["spec"]
    except (OSError, ValueError, KeyError):
        return "its run.json is unreadable"
    new = _describe(spec)
    diffs = []
    for section in ("params", "train_params", "task", "model", "eval_seed"):
        a, b = old.get(section), new.get(section)
        if isinstance(a, dict) and isinstance(b, dict):
            diffs += [f"{section}[{k!r}]: {a.get(k)!r} then, {b.get(k)!r} now" for k in sorted(set(a) | set(b))
                      if k != "verbosity" and a.get(k) != b.get(k)]
        elif a != b:
            diffs.append(f"{section}: {a!r} then, {b!r} now")
    return "; ".join(diffs[:3]) or "fingerprints differ"


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
    path = os.path.join(out_dir, "summary.csv")
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
        failed, crashed = [], []  # (run id, message): training errors; (spec, exception): tasks
        if client is None:  # "synchronous": in this process; unexpected exceptions surface directly
            for spec in specs:
                failed += run_pack(spec)["failed"]
        else:
            from distributed import as_completed

            futures = {client.submit(run_pack, spec, retries=retries, pure=False,
                                     key=f"minirnn-sweep-{spec['config_id']}-{spec['seeds'][0]}-{os.urandom(4).hex()}"): spec
                       for spec in specs}
            for future in as_completed(futures):
                try:
                    failed += future.result()["failed"]
                except Exception as exc:  # noqa: BLE001 - reported together below
                    crashed.append((futures[future], exc))
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
        with dask.config.set({"distributed.scheduler.allowed-failures": int(retries)}):
            cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True, dashboard_address=None,
                                   silence_logs=logging.ERROR, env=blas)
        client = Client(cluster)
        try:
            yield client, n
        finally:
            client.close()
            cluster.close()
        return
    owned = not isinstance(scheduler, Client)
    client = Client(scheduler) if owned else scheduler
    try:
        yield client, int(n_workers or max(1, sum(client.nthreads().values())))
    finally:
        if owned:
            client.close()


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
    retry) is returned, not raised; in a pack it stops every network, so the pack's seeds are then
    trained one by one and only the culprit fails. Returns ``{"done": [run ids], "failed":
    [(run id, message)]}``; other exceptions propagate (the scheduler retries the task)."""
    todo = [(s, d) for s, d in zip(spec["seeds"], spec["run_dirs"]) if _read_marker(d) is None]
    if not todo:
        return {"done": [], "failed": []}
    with _blas_threads(spec["blas_threads"]):
        for seed, run_dir in todo:
            os.makedirs(run_dir, exist_ok=True)
            _log(spec, seed, "start")
        task = spec["task"] if hasattr(spec["task"], "generate_batch") else spec["task"](dict(spec["config"]))
        try:
            nets, histories, seconds = _train(spec, task, [s for s, _ in todo])
        except MinirnnError as exc:
            if len(todo) == 1:
                _log(spec, todo[0][0], "failed")
                return {"done": [], "failed": [(_run_id(spec["config_id"], todo[0][0]), f"{type(exc).__name__}: {exc}")]}
            alone = [run_pack(dict(spec, seeds=[s], run_dirs=[d])) for s, d in todo]
            return {key: [item for result in alone for item in result[key]] for key in ("done", "failed")}
        eval_x, eval_y, eval_mask, _ = _reseeded(task, spec["spec"]["eval_seed"]).generate_batch()
        done = []
        for (seed, run_dir), net, history in zip(todo, nets, histories):
            row = _evaluate(spec, task, net, seed, history, (eval_x, eval_y, eval_mask))
            row.update(train_time_s=round(seconds, 3), packed_with=len(todo))
            _write_run(spec, task, run_dir, net, seed, history, row, [s for s, _ in todo], seconds)
            _log(spec, seed, "done")
            done.append(_run_id(spec["config_id"], seed))
        return {"done": done, "failed": []}


def _reseeded(task, seed):
    from .train.trainer import _reseeded_copy

    return _reseeded_copy(task, seed)


def _train(spec, task, seeds):
    """Train one single model or one ensemble of ``len(seeds)``; return the networks (single models),
    their per-network histories and the training seconds."""
    cls, params, tp = spec["model_class"], spec["params"], dict(spec["train_params"])
    t0 = time.perf_counter()
    if len(seeds) == 1:
        net = cls(dict(params, seed=seeds[0]))
        net.train(_reseeded(task, seeds[0]), tp)
        return [net], [_plain_history(net.history)], time.perf_counter() - t0
    ens = cls(dict(params, seed=None), n_networks=len(seeds), seeds=seeds)
    ens.train(task, tp)  # network k trains on the task reseeded with seeds[k] (BatchSource)
    seconds = time.perf_counter() - t0
    cutoff = tp.get("performance_cutoff")
    return ([ens.network(k) for k in range(len(seeds))],
            [_network_history(ens.history, k, cutoff) for k in range(len(seeds))], seconds)


def _plain_history(h) -> dict:
    return {"loss": [float(v) for v in h["loss"]], "update": [int(u) for u in h["update"]],
            "performance": [[int(u), _describe(v)] for u, v in h["performance"]]}


def _network_history(h, k, cutoff) -> dict:
    """Network k's history, cut where it reached ``performance_cutoff`` (where its single twin stops)."""
    last = None
    if cutoff is not None:
        last = next((u for u, v in h["performance"] if np.ndim(v) and np.asarray(v)[k] >= cutoff), None)
    keep = [i for i, u in enumerate(h["update"]) if last is None or u <= last]
    return {"loss": [float(np.asarray(h["loss"][i])[k]) for i in keep], "update": [int(h["update"][i]) for i in keep],
            "performance": [[int(u), _describe(np.asarray(v)[k] if np.ndim(v) else v)] for u, v in h["performance"]
                            if last is None or u <= last]}


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


def _write_run(spec, task, run_dir, net, seed, history, row, packed, seconds):
    """``weights.npz`` and ``run.json`` (the run directory of :mod:`minirnn.runs`, so
    ``runs.load_run(run_dir)`` rebuilds the model and its task), then the marker: each atomic, the
    marker last."""
    from . import runs
    from .train.checkpoint import write_json_atomic

    for name in os.listdir(run_dir):  # temporaries of an attempt killed while writing
        if name.startswith(".") and name.endswith(".tmp"):
            os.remove(os.path.join(run_dir, name))
    net.history = dict(history, stages=[])
    sweep_record = {"run_id": row["run_id"], "config_id": spec["config_id"], "config": _describe(spec["config"]),
                    "seed": int(seed), "packed_with_seeds": packed, "fingerprint": spec["fingerprint"],
                    "spec": _describe(spec["spec"]), "host": socket.gethostname(), "pid": os.getpid(),
                    "versions": _versions()}
    record = runs.run_record(net, task, params=dict(spec["params"], seed=int(seed)), train_params=spec["train_params"],
                             task_seed=int(seed), eval_seed=spec["spec"]["eval_seed"],
                             audit=runs.constraint_audit(net), timings={"train_s": seconds},
                             extra={"sweep": sweep_record})
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
