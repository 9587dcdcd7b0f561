"""Run directories: a trained network that describes itself, and the audit of its constraints.

A run directory (written by ``minirnn train``, read by :func:`load_run`) holds::

    weights.npz       model.save(): effective weights, masks, Dale_rec / Dale_out, dale_ratio (a 0-d
                      object array holding None, or a float) -- PsychRNN's keys and layout, so
                      PsychRNN's Basic(load_weights_path=...) reads it -- plus one 'minirnn' JSON
                      string. No optimizer state.
    run.json          the record: params, train_params, task class and parameters, every seed,
                      package / NumPy / Python versions, backend and dtype, training history,
                      curriculum stages, the constraint audit, status and timings.
    checkpoint.npz    the resumable checkpoint (minirnn.train.checkpoint): raw weights, optimizer
                      state, RNG and task states, counters, history.
    weights_last_good.npz   only after a divergence (NaN / inf): the weights before the bad update.
    .run.lock         while ``minirnn train`` trains into the directory (see :func:`exclusive_lock`); on
                      Windows a killed job's may stay, locking nothing.

Every file is written atomically (temporary file, fsync, ``os.replace``): a kill at any moment leaves
the old file or the new one. Loading a run needs nothing but minirnn and NumPy.

Constraint audit (all counts must be 0)::

    dale_sign_violations    entries of an effective weight whose sign breaks Dale's principle
                            (W_rec column j of sign s_j; W_out columns of I units 0; W_in >= 0)
    masked_nonzero          effective entries that are non-zero where the connectivity mask is 0
    fixed_moved             raw entries that are fixed (fixed_weights == 1, or <name>_train False)
                            and differ from their value when training started
"""
from __future__ import annotations

import contextlib
import difflib
import importlib
import inspect
import json
import logging
import os
import platform
import socket
import sys
import time

import numpy as np

from .errors import ParameterError, WeightsFileError, did_you_mean
from .models.rnn import seed_record
from .train.checkpoint import _jsonable, read_json, write_json_atomic

RUN_FORMAT = "minirnn-run"
RUN_VERSION = 1
WEIGHTS_FILE = "weights.npz"
RECORD_FILE = "run.json"
CHECKPOINT_FILE = "checkpoint.npz"
LAST_GOOD_FILE = "weights_last_good.npz"
RUN_FILES = (WEIGHTS_FILE, LAST_GOOD_FILE, CHECKPOINT_FILE, RECORD_FILE)  # what a run writes (plots aside)
RUN_LOCK = ".run.lock"

logger = logging.getLogger("minirnn")

#: the task classes the command line knows, by name
TASK_NAMES = ("PerceptualDiscrimination", "DelayedDiscrimination", "MatchToCategory", "FlipFlop")


# ---------------------------------------------------------------------------- tasks


def task_class(name: str):
    """A built-in task class from its name, case-insensitive (``perceptualdiscrimination``).

    Raises ParameterError with a suggestion for an unknown name.
    """
    from . import tasks

    by_lower = {n.lower(): n for n in TASK_NAMES}
    key = str(name).replace("_", "").replace("-", "").lower()
    if key not in by_lower:
        close = difflib.get_close_matches(key, list(by_lower), n=1, cutoff=0.6)
        hint = f"; did you mean {by_lower[close[0]]!r}?" if close else "."
        raise ParameterError(f"Unknown task {name!r}{hint} Choose one of {list(TASK_NAMES)} (case-insensitive).")
    return getattr(tasks, by_lower[key])


def task_arguments(cls) -> list:
    """The constructor arguments of a task class, besides ``self`` and ``seed``."""
    return [p for p in inspect.signature(cls.__init__).parameters if p not in ("self", "seed")]


def make_task(cls, settings: dict, seed=None):
    """Build ``cls(**settings, seed=seed)``; an unknown setting is a ParameterError naming it."""
    allowed = task_arguments(cls)
    for key in settings:
        if key not in allowed:
            raise ParameterError(f"Unknown setting {key!r} for task {cls.__name__}{did_you_mean(key, allowed)} "
                                 f"Its settings: {allowed}.")
    missing = [a for a in ("dt", "tau", "T", "N_batch") if a in allowed and a not in settings]
    if missing:
        raise ParameterError(f"Task {cls.__name__} needs the setting(s) {missing}.")
    return cls(**settings, seed=seed)


def task_record(task, seed=None) -> dict:
    """What rebuilds ``task``: its class (module and name), constructor arguments and seed."""
    cls = type(task)
    settings = {a: _jsonable(getattr(task, a)) for a in task_arguments(cls) if hasattr(task, a)}
    return {"class": cls.__name__, "module": cls.__module__, "settings": settings, "seed": seed}


def task_from_record(record: dict, seed="record"):
    """Rebuild a task from :func:`task_record`'s dict (``seed="record"``: the recorded seed)."""
    try:
        module = importlib.import_module(record["module"])
        cls = getattr(module, record["class"])
    except (ImportError, AttributeError, KeyError) as exc:
        raise WeightsFileError(f"the run's task {record.get('class')!r} (module {record.get('module')!r}) "
                               f"cannot be imported: {exc}") from None
    settings = dict(record.get("settings", {}))
    allowed = task_arguments(cls)
    settings = {k: v for k, v in settings.items() if k in allowed}
    return cls(**settings, seed=record.get("seed") if seed == "record" else seed)


# ---------------------------------------------------------------------------- the audit


def raw_on_host(model) -> dict:
    """A host copy of the model's raw parameters (what :func:`constraint_audit`'s ``fixed_moved``
    compares with): take it before training."""
    return {name: np.array(model.backend.to_host(a)) for name, a in model.raw.items()}


def constraint_audit(model, initial_raw: dict | None = None, fixed_weights: dict | None = None) -> dict:
    """Count constraint violations of a model's current weights (every count must be 0).

    Parameters
    ----------
    model : a minirnn model.
    initial_raw : name -> array, the raw parameters when training started (for ``fixed_moved``).
    fixed_weights : name -> 0/1 array (1 = fixed), as given to ``train``.

    Returns
    -------
    dict : ``{"dale_sign_violations": int, "masked_nonzero": int, "fixed_moved": int, "ok": bool,
    "details": {check: {weight name: count}}}``.
    """
    host = model.backend.to_host
    eff = {k: np.asarray(host(v)) for k, v in model.effective_weights().items()}
    details = {"dale_sign_violations": {}, "masked_nonzero": {}, "fixed_moved": {}}
    for name in getattr(model, "constrained", ()):
        W = eff[name]
        mask = np.asarray(host(model.masks[name]))
        details["masked_nonzero"][name] = int(np.count_nonzero((mask == 0) & (W != 0)))
        signs = getattr(model, "signs", {}).get(name)
        if signs is not None:
            s = np.broadcast_to(np.asarray(host(signs)), W.shape)  # one sign per column (presynaptic)
            wrong = np.where(s == 0, W != 0, W * s < 0)
            details["dale_sign_violations"][name] = int(np.count_nonzero(wrong))
    fixed = {}
    for name in model.raw:
        F = None
        if fixed_weights and fixed_weights.get(name) is not None:
            from .train.trainer import fixed_mask

            F = fixed_mask(model, name, fixed_weights[name])  # as the trainer reads it
        if not model.params.get(f"{name}_train", True):
            F = np.ones(np.shape(model.raw[name]))
        if F is not None:
            fixed[name] = F
    for name, F in fixed.items():
        if initial_raw is None or name not in initial_raw:
            continue
        moved = (F == 1) & (np.asarray(host(model.raw[name])) != np.asarray(initial_raw[name]))
        details["fixed_moved"][name] = int(np.count_nonzero(moved))
    out = {check: int(sum(counts.values())) for check, counts in details.items()}
    out["ok"] = all(v == 0 for v in out.values())
    out["details"] = details
    return out


# ---------------------------------------------------------------------------- the lock

#: The byte that ``msvcrt.locking`` locks on Windows: far past the holder record at the file's start.
#: Windows byte locks are mandatory (nobody else can read a locked byte), and a second job must read
#: the record to name the holder. SQLite puts its lock bytes at 1 GiB for the same reason; a region
#: beyond the end of a file can be locked, and the file stays a few bytes long.
_MSVCRT_LOCK_BYTE = 2 ** 30


@contextlib.contextmanager
def exclusive_lock(directory, name=RUN_LOCK, *, what="minirnn train", advice=""):
    """Hold an exclusive lock on ``directory`` for the ``with`` block, or raise ParameterError.

    The lock file ``directory/name`` holds the holder's host, pid and start time (for the error
    message) and is removed on release. The lock is one the operating system drops when its process
    dies, however it dies, so a killed job never leaves a stale lock:

    * POSIX: ``flock`` on the file;
    * Windows: ``msvcrt.locking`` of one byte of the file (:data:`_MSVCRT_LOCK_BYTE`). A lock file
      that a killed job left behind is then only a file: the next job locks it and takes over.

    Only where neither exists is the file created with ``O_CREAT | O_EXCL`` instead; one left by a
    killed process must then be deleted by hand (the error says so). On a filesystem that refuses
    locks (some NFS or Lustre mounts) a warning is logged and nothing is locked.

    Parameters
    ----------
    directory : an existing directory.
    name : the lock file's base name.
    what : who takes the lock, for the message (``"sweep"``, ``"minirnn train"``).
    advice : a sentence appended to the error (what to do instead).
    """
    path = os.path.join(os.fspath(directory), name)
    kind = _lock_kind()
    try:
        fd = _create_exclusively(path, what, advice) if kind == "file" else _lock_file(path, what, advice, kind)
    except PermissionError as exc:
        raise ParameterError(f"cannot lock {os.fspath(directory)!r}: {exc}. It must be a writable directory.") from None
    try:
        if fd is not None:
            holder = {"what": what, "pid": os.getpid(), "host": socket.gethostname(),
                      "since": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
            os.ftruncate(fd, 0)  # the record a killed holder left may be longer
            os.write(fd, json.dumps(holder).encode())
        yield path
    finally:
        if fd is not None:
            _release(fd, path, kind)


def _lock_kind() -> str:
    """``"flock"`` (POSIX), ``"msvcrt"`` (Windows) or ``"file"`` (neither: an ``O_EXCL`` file)."""
    if _fcntl() is not None:
        return "flock"
    return "msvcrt" if _msvcrt() is not None else "file"


def _release(fd, path, kind):
    """Unlock, close and remove the lock file.

    With flock, unlink while still locked: a process that opened the file just before and locks it
    after the close then sees it is gone (see _lock_file). Windows cannot remove an open file: close
    first there. Removing it can still fail there (PermissionError: another job has just opened it to
    take the lock); the file then stays, which is harmless since only the byte lock counts. Only an
    ``O_EXCL`` file left behind blocks the next job, and a warning says so.
    """
    try:
        if kind == "flock":
            with contextlib.suppress(FileNotFoundError, PermissionError):  # the directory was removed, or locked down
                os.unlink(path)
            return
        if kind == "msvcrt":
            msvcrt = _msvcrt()
            with contextlib.suppress(OSError):  # closing unlocks too; unlocking first is Microsoft's advice
                os.lseek(fd, _MSVCRT_LOCK_BYTE, os.SEEK_SET)
                msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)
    finally:
        os.close(fd)
    try:
        os.unlink(path)
    except FileNotFoundError:  # the directory was removed meanwhile
        pass
    except PermissionError as exc:
        if kind == "file":
            logger.warning("cannot remove the lock file %s (%s): delete it, or the next job there is refused",
                           path, exc)


def _fcntl():
    try:
        import fcntl
    except ImportError:  # Windows
        return None
    return fcntl


def _msvcrt():
    try:
        import msvcrt
    except ImportError:  # not Windows
        return None
    return msvcrt


def _lock_file(path, what, advice, kind):
    """An fd of ``path`` holding its lock (None: the filesystem has no locks), or ParameterError."""
    import errno

    held = {errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES, getattr(errno, "EDEADLOCK", errno.EACCES)}
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_BINARY", 0), 0o644)
        try:
            _try_lock(fd, kind)
        except OSError as exc:
            os.close(fd)
            if exc.errno in held:
                raise _locked_error(path, what, advice) from None
            logger.warning("cannot lock %s (%s): this filesystem has no file locks; make sure no other %s uses "
                           "the directory at the same time", path, exc, what)
            with contextlib.suppress(FileNotFoundError, PermissionError):  # nobody can hold it: leave no file
                os.unlink(path)
            return None
        if _is_file_at(fd, path):
            return fd
        os.close(fd)  # the previous holder removed the file between our open and our lock: lock the new one


def _try_lock(fd, kind):
    """Lock ``fd`` without waiting (OSError when another process, or another fd, holds it)."""
    if kind == "flock":
        fcntl = _fcntl()
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return
    msvcrt = _msvcrt()
    os.lseek(fd, _MSVCRT_LOCK_BYTE, os.SEEK_SET)  # msvcrt.locking locks from the file position
    try:
        msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
    finally:
        os.lseek(fd, 0, os.SEEK_SET)  # the holder record is written at the start


def _is_file_at(fd, path) -> bool:
    try:
        now = os.stat(path)
    except FileNotFoundError:
        return False
    mine = os.fstat(fd)
    return (now.st_dev, now.st_ino) == (mine.st_dev, mine.st_ino)


def _create_exclusively(path, what, advice):
    try:
        return os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o644)
    except FileExistsError:
        raise _locked_error(path, what, advice + f" If no such process runs any more, delete {path!r}.") from None


def _locked_error(path, what, advice):
    try:
        with open(path, encoding="utf-8") as fh:
            holder = json.load(fh)
        who = f"pid {holder['pid']} on {holder['host']}, since {holder['since']}"
    except (OSError, ValueError, KeyError, TypeError):  # its holder is still writing it, or it is gone
        who = "holder not known yet"
    return ParameterError(f"{os.path.dirname(path)!r} is in use by another {what} ({who}; lock file "
                          f"{os.path.basename(path)}).{' ' + advice if advice else ''}")


# ---------------------------------------------------------------------------- the record


def versions() -> dict:
    from . import __version__

    return {"minirnn": __version__, "numpy": np.__version__, "python": sys.version.split()[0],
            "platform": platform.platform()}


def json_params(params: dict) -> dict:
    """A JSON-safe copy of a params dict (arrays as lists; objects such as callables as their repr,
    listed under ``"_not_json"`` so that a reader knows they cannot be rebuilt)."""
    out, not_json = {}, []
    for key, value in params.items():
        safe = _jsonable(value)
        if isinstance(safe, str) and not isinstance(value, str):
            not_json.append(key)
        out[key] = safe
    if not_json:
        out["_not_json"] = not_json
    return out


def run_record(model, task, *, params: dict, train_params: dict, task_seed=None, eval_seed=None,
               status="complete", audit=None, timings=None, extra=None) -> dict:
    """The ``run.json`` dict of a run (see the module docstring)."""
    history = model.history or {"loss": [], "update": [], "performance": [], "stages": []}
    record = {
        "format": RUN_FORMAT,
        "version": RUN_VERSION,
        "status": status,
        "written": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "model": {"class": type(model).__name__, "module": type(model).__module__, "params": json_params(params),
                  "repr": repr(model)},
        "train_params": json_params(train_params),
        "task": task_record(task, task_seed),
        "seeds": {"model": params.get("seed"), "model_seed_sequence": seed_record(model.seed_sequence),
                  "streams": {"init": 0, "noise": 1, "eval": 2,
                              "rule": "SeedSequence(model seed).spawn(3), PCG64 each"},
                  "task": task_seed, "evaluate": eval_seed},
        "versions": versions(),
        "backend": model.backend.name,
        "dtype": str(model.dtype),
        "history": {"loss": _jsonable(history["loss"]), "update": _jsonable(history["update"]),
                    "performance": _jsonable(history.get("performance", []))},
        "curriculum_stages": _jsonable(history.get("stages", [])),
        "constraint_audit": audit,
        "timings": timings or {},
        "files": {"weights": WEIGHTS_FILE, "checkpoint": CHECKPOINT_FILE},
    }
    if extra:
        record.update(_jsonable(extra))
    return record


def write_run(run_dir, model, record: dict, *, weights_name=WEIGHTS_FILE) -> str:
    """Write ``weights.npz`` (model.save) and ``run.json`` into ``run_dir`` (created), atomically."""
    os.makedirs(run_dir, exist_ok=True)
    model.save(os.path.join(run_dir, weights_name))
    return write_json_atomic(os.path.join(run_dir, RECORD_FILE), record)


def remove_stale_temporaries(run_dir) -> list:
    """Delete the temporary files a killed writer left in ``run_dir`` (``.minirnn-<hash>-*.tmp``, or
    ``.weights.npz.*.tmp`` from older versions).

    Atomic writes never tear a file, but a SIGKILL in the middle of one leaves its temporary file
    behind. Only the temporaries of a run's own files are removed (:func:`minirnn.io.is_temporary_of`).
    Call this only when no other process writes into ``run_dir``. Returns the names removed.
    """
    return remove_temporaries_of(run_dir, RUN_FILES)


def remove_temporaries_of(directory, final_names) -> list:
    """Delete the temporary files of an atomic write of any of ``final_names`` (base names) in
    ``directory``, left there by a process killed while writing; other files stay. Call this only
    when no other process writes into ``directory``. Returns the names removed."""
    from .io import is_temporary_of

    removed = []
    if not os.path.isdir(directory):
        return removed
    for name in sorted(os.listdir(directory)):
        if any(is_temporary_of(name, final) for final in final_names):
            os.remove(os.path.join(directory, name))
            removed.append(name)
    return removed


def read_record(run_dir) -> dict:
    """Read and check ``run_dir/run.json``; a missing, corrupt or foreign file raises naming it."""
    path = os.path.join(run_dir, RECORD_FILE) if os.path.isdir(run_dir) else os.fspath(run_dir)
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path!r} does not exist: is {os.fspath(run_dir)!r} a run directory "
                                f"written by 'minirnn train'?")
    record = read_json(path, "run record")
    if record.get("format") != RUN_FORMAT:
        raise WeightsFileError(f"{path!r} is not a minirnn run record (format {record.get('format')!r}).")
    return record


def model_params_from_record(record: dict) -> dict:
    """The params dict the run's model was built with (JSON lists back as they were given)."""
    params = dict(record["model"]["params"])
    bad = params.pop("_not_json", [])
    for key in bad:
        params.pop(key, None)
    return params


def load_run(path):
    """Load a run directory: ``(model, task, record)``.

    The model is built from the recorded params with ``load_weights_path=weights.npz`` (same
    outputs as the trained model, bit for bit); the task is rebuilt from its class and settings
    with its recorded seed (a fresh stream). Needs only minirnn and NumPy.

    Raises
    ------
    FileNotFoundError : no run.json / weights.npz.  WeightsFileError : a file is corrupt (named).
    """
    run_dir = os.fspath(path)
    record = read_record(run_dir)
    weights = os.path.join(run_dir, record.get("files", {}).get("weights", WEIGHTS_FILE))
    if not os.path.exists(weights):
        raise FileNotFoundError(f"run directory {run_dir!r} has no weights file {os.path.basename(weights)!r}.")
    params = model_params_from_record(record)
    params["load_weights_path"] = weights
    module = importlib.import_module(record["model"].get("module", "minirnn.models"))
    model = getattr(module, record["model"]["class"])(params)
    task = task_from_record(record["task"])
    history = record.get("history", {})
    model.history = {"loss": list(history.get("loss", [])), "update": list(history.get("update", [])),
                     "performance": list(history.get("performance", [])),
                     "stages": list(record.get("curriculum_stages", []))}
    return model, task, record
