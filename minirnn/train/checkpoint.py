"""Checkpoints: everything a training run needs to continue bit for bit (DESIGN.md §5, §7; STYLE P14).

A checkpoint is one ``.npz`` file, separate from the weights file, written atomically
(:func:`minirnn.io.atomic_savez`: a kill at any moment leaves the old file or the new one)::

    raw/<name>          raw parameters (model dtype; an ensemble keeps its leading axes)
    mask/<name>         connectivity masks of the constrained weights
    optimizer/<key>     optimizer.state_dict() (its keys contain "/": hence the prefix)
    history/loss        (n,) or (n, K) objective of every update so far
    history/update      (n,) update index of each entry
    train/active        (K,) an ensemble's per-network "still training" flags (when there are any)
    checkpoint          one JSON string: format, version, update counter, the epoch reached in the
                        current train() call, bit_generator.state of rng_init / rng_noise / rng_eval,
                        task.state_dict() (every curriculum task's, when there is a curriculum), the
                        ``check_rngs``: the states of the streams that the performance and curriculum
                        checks draw from (one per task of the current stage, or per network copy),
                        ``np_random``: NumPy's global random state when the task is written against
                        PsychRNN's API (it may draw from ``np.random``; else None), the curriculum's
                        stage and metric values, performance records, stages, and ``finished`` once
                        the train() call has ended (resuming it then does nothing).

Limits: a plain batch generator's position cannot be saved (resuming warns; the batches differ);
an ensemble trained with a curriculum gets fresh per-network task copies at each stage change.
Restoring ``np_random`` overwrites the script's global NumPy state: a resume is bit for bit only if
nothing but training draws from ``np.random`` while it runs.

Restoring (``restore_checkpoint``) puts every piece back in place on an already built model of the
same configuration, so the next update draws the same batch and the same noise, and Adam takes the
same step, as the uninterrupted run would have.
"""
from __future__ import annotations

import json
import os

import numpy as np

from ..errors import ParameterError, WeightsFileError

FORMAT = "minirnn-checkpoint"
VERSION = 1


# ---------------------------------------------------------------------------- JSON helpers


def _jsonable(value):
    """Plain Python for JSON: arrays -> lists, NumPy scalars -> numbers; others as their repr."""
    from ..io import jsonable

    return jsonable(value)


def write_json_atomic(path, obj) -> str:
    """Write ``obj`` as JSON to ``path`` atomically (temporary file, fsync, ``os.replace``)."""
    from ..io import atomic_write_text

    return atomic_write_text(path, json.dumps(obj, indent=1, allow_nan=True))


def read_json(path, what="JSON file") -> dict:
    """Read a JSON object; a missing, truncated or corrupt file raises WeightsFileError naming it."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"{what} {path!r} does not exist")
    try:
        with open(path, encoding="utf-8") as fh:
            obj = json.load(fh)
    except (ValueError, UnicodeDecodeError) as exc:
        raise WeightsFileError(f"{what} {path!r} is not valid JSON (truncated or corrupt): {exc}") from None
    if not isinstance(obj, dict):
        raise WeightsFileError(f"{what} {path!r} holds JSON but not an object.")
    return obj


# ---------------------------------------------------------------------------- writing


def _rng_states(rng):
    """``bit_generator.state`` of a Generator, or the list of them for an ensemble's per-network streams."""
    if isinstance(rng, (list, tuple)):
        return [g.bit_generator.state for g in rng]
    return rng.bit_generator.state


def _set_rng_states(rng, state, where):
    if isinstance(rng, (list, tuple)) != isinstance(state, list) or (isinstance(state, list) and len(state) != len(rng)):
        raise WeightsFileError(f"{where}: the saved random streams do not match this model's (one network vs an "
                               "ensemble, or another number of networks).")
    for g, s in (zip(rng, state) if isinstance(state, list) else [(rng, state)]):
        g.bit_generator.state = s


#: Model settings a resumed run must share with the checkpointed one (besides the parameter shapes).
CONFIG_KEYS = ("dt", "tau", "rec_noise", "dale_ratio", "autapses", "L1_in", "L1_rec", "L1_out", "L2_in", "L2_rec",
               "L2_out", "L2_firing_rate", "lstm_variant")


def run_config(model, tasks=()) -> dict:
    """What a checkpoint must be resumed with (JSON): dtype, transfer function, :data:`CONFIG_KEYS`
    (a list per network for an ensemble) and each task's class, ``N_batch``, ``T`` and ``dt``."""
    network_params = getattr(model, "network_params", None) or [getattr(model, "params", {})]
    lead = bool(getattr(model, "lead", ()))
    config = {"dtype": str(model.dtype)}
    activation = getattr(model, "activation", None)
    if activation is not None:
        config["transfer_function"] = getattr(activation, "name", None)
    for key in CONFIG_KEYS:
        if key in network_params[0]:
            values = [_jsonable(p.get(key)) for p in network_params]
            config[key] = values if lead else values[0]
    config["tasks"] = [{"class": type(t).__name__, **{k: _jsonable(getattr(t, k)) for k in ("N_batch", "T", "dt")
                                                       if getattr(t, k, None) is not None}} for t in tasks]
    return config


def _check_config(name, saved, current):
    """WeightsFileError listing every setting in which the resuming run differs from the checkpointed one."""
    differ = [f"{key}: {saved[key]!r} in the checkpoint, {current[key]!r} now" for key in saved
              if key != "tasks" and key in current and saved[key] != current[key]]
    for i, (then, now) in enumerate(zip(saved.get("tasks", []), current.get("tasks", []))):
        differ += [f"task {i} {key}: {then[key]!r} in the checkpoint, {now.get(key)!r} now" for key in then
                   if then[key] != now.get(key)]
    if differ:
        raise WeightsFileError(f"{name!r} was written by a run with other settings, so resuming would not continue "
                               "it. Resume with the same model params, task and dtype; differences: "
                               + "; ".join(differ) + ".")


def checkpoint_arrays(model, *, epoch: int, tasks=(), curriculum=None, check_rngs=None, np_random=False) -> dict:
    """The arrays of a checkpoint of ``model`` (see the module docstring).

    Parameters
    ----------
    model : a minirnn model (raw, masks, optimizer, history, rng_init / rng_noise / rng_eval).
    epoch : int, the number of updates done in the current ``train()`` call.
    tasks : sequence of Tasks whose streams to save (the task, or every curriculum task).
    curriculum : the Curriculum, or None.
    check_rngs : ``{kind: [bit_generator.state of each task's check stream (None: a task without one)]}``.
    np_random : bool, also save NumPy's global random state (``np.random.get_state()``).
    """
    host = model.backend.to_host
    arrays = {f"raw/{k}": np.array(host(v)) for k, v in model.raw.items()}
    arrays.update({f"mask/{k}": np.array(host(v)) for k, v in getattr(model, "masks", {}).items()})
    if model.optimizer is not None:
        for key, value in model.optimizer.state_dict().items():
            arrays[f"optimizer/{key}"] = np.asarray(value)
    history = model.history or {"loss": [], "update": [], "performance": [], "stages": []}
    arrays["history/loss"] = np.asarray(history["loss"], dtype=np.float64)
    arrays["history/update"] = np.asarray(history["update"], dtype=np.int64)
    meta = {
        "format": FORMAT,
        "version": VERSION,
        "model_class": type(model).__name__,
        "dtype": str(model.dtype),
        "update": int(history["update"][-1]) if history["update"] else 0,
        "epoch": int(epoch),
        "rng": {name: _rng_states(getattr(model, name)) for name in ("rng_init", "rng_noise", "rng_eval")},
        "tasks": [t.state_dict() if hasattr(t, "state_dict") else None for t in tasks],
        "check_rngs": _jsonable(dict(check_rngs or {})),
        "np_random": _jsonable(np.random.get_state(legacy=False)) if np_random else None,
        "curriculum": None if curriculum is None else _jsonable(curriculum.state_dict()) if hasattr(
            curriculum, "state_dict") else {
            "stage": int(curriculum.stage),
            "stop_training": bool(getattr(curriculum, "stop_training", False)),
            "metric_values": _jsonable(getattr(curriculum, "metric_values", [])),
        },
        "performance": _jsonable(history.get("performance", [])),
        "stages": _jsonable(history.get("stages", [])),
        "config": run_config(model, tasks),
    }
    arrays["checkpoint"] = np.array(json.dumps(meta))
    return arrays


def save_checkpoint(path, model, *, epoch: int, tasks=(), curriculum=None, check_rngs=None, np_random=False) -> str:
    """Write a checkpoint of ``model`` to ``path`` (``.npz`` appended when missing), atomically;
    the arguments are :func:`checkpoint_arrays`'s."""
    from ..io import atomic_savez

    return atomic_savez(path, checkpoint_arrays(model, epoch=epoch, tasks=tasks, curriculum=curriculum,
                                                check_rngs=check_rngs, np_random=np_random))


# ---------------------------------------------------------------------------- reading


def load_checkpoint(path) -> dict:
    """Read a checkpoint file.

    Returns
    -------
    dict with ``raw``, ``mask``, ``optimizer`` (name -> array dicts), ``history`` (loss, update
    lists), ``meta`` (the JSON record) and ``path``.

    Raises
    ------
    FileNotFoundError : no such file.
    WeightsFileError : truncated, corrupt, or not a minirnn checkpoint (the message names the file).
    """
    from ..io import read_npz

    if not isinstance(path, (str, bytes, os.PathLike)):
        raise ParameterError(f"A checkpoint must be given as a path (or load_checkpoint's dict). Got {path!r}.")
    name = os.fspath(path)
    try:
        arrays = read_npz(path)
    except FileNotFoundError:
        raise FileNotFoundError(f"checkpoint {name!r} does not exist") from None
    if "checkpoint" not in arrays:
        raise WeightsFileError(f"{name!r} is not a minirnn checkpoint (no 'checkpoint' entry; a weights "
                               f"file? keys: {sorted(arrays)[:8]}).")
    try:
        meta = json.loads(str(arrays["checkpoint"]))
    except ValueError as exc:
        raise WeightsFileError(f"{name!r}: the 'checkpoint' entry is not valid JSON ({exc}).") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise WeightsFileError(f"{name!r} is not a minirnn checkpoint (format {meta.get('format') if isinstance(meta, dict) else None!r}).")
    if int(meta.get("version", 0)) > VERSION:
        raise WeightsFileError(f"{name!r} is a checkpoint of format version {meta['version']}; this minirnn "
                               f"reads versions <= {VERSION}. Upgrade minirnn.")
    for key in ("epoch", "rng", "tasks"):
        if key not in meta:
            raise WeightsFileError(f"{name!r}: the checkpoint record lacks {key!r}.")
    out = {"path": name, "meta": meta, "raw": {}, "mask": {}, "optimizer": {}, "train": {}}
    for key, value in arrays.items():
        head, _, rest = key.partition("/")
        if head in ("raw", "mask", "optimizer", "train"):
            out[head][rest] = value
    if not out["raw"]:
        raise WeightsFileError(f"{name!r}: the checkpoint holds no raw parameters.")
    loss = arrays.get("history/loss", np.zeros(0))
    out["history"] = {
        "loss": [float(v) if np.ndim(v) == 0 else np.asarray(v) for v in loss],
        "update": [int(v) for v in arrays.get("history/update", np.zeros(0, dtype=np.int64))],
        "performance": [tuple(p) if isinstance(p, list) else p for p in meta.get("performance", [])],
        "stages": list(meta.get("stages", [])),
    }
    if len(out["history"]["loss"]) != len(out["history"]["update"]):
        raise WeightsFileError(f"{name!r}: history/loss and history/update differ in length.")
    return out


def _optimizer_state(flat: dict) -> dict:
    """``optimizer/...`` arrays back to what ``Optimizer.load_state_dict`` takes."""
    state = {}
    for key, value in flat.items():
        value = np.asarray(value)
        if key == "type":
            state[key] = str(value)
        elif key == "n_lead":
            state[key] = int(value)
        elif value.ndim == 0 and key.startswith("hyper/"):
            state[key] = float(value)
        else:
            state[key] = value
    return state


def restore_checkpoint(model, checkpoint, *, tasks=(), curriculum=None, optimizer=None) -> int:
    """Put a loaded checkpoint back into ``model`` (and its tasks, curriculum, optimizer, and NumPy's
    global random state when the checkpoint holds it). The check streams (``meta["check_rngs"]``) are
    the trainer's to restore, into its batch source.

    Parameters
    ----------
    model : a model built with the same params as the checkpointed one.
    checkpoint : dict from :func:`load_checkpoint`, or a path.
    tasks : the Tasks whose streams were saved, in the same order (the task, or curriculum.tasks).
    curriculum : the Curriculum, or None.
    optimizer : the Optimizer to load the state into (default: a new one of the saved type).

    Returns
    -------
    epoch : int, the updates already done in the interrupted ``train()`` call.

    Raises
    ------
    WeightsFileError : the checkpoint does not fit the model (names, shapes, class, task count).
    """
    if not isinstance(checkpoint, dict):
        checkpoint = load_checkpoint(checkpoint)
    name, meta = checkpoint["path"], checkpoint["meta"]
    if meta.get("model_class") not in (None, type(model).__name__):
        raise WeightsFileError(f"{name!r} is a checkpoint of a {meta['model_class']} model, not {type(model).__name__}.")
    if set(checkpoint["raw"]) != set(model.raw):
        raise WeightsFileError(f"{name!r} holds the parameters {sorted(checkpoint['raw'])} but the model has "
                               f"{sorted(model.raw)}.")
    # check everything first: a checkpoint that does not fit leaves the model as it was
    for key, value in checkpoint["raw"].items():
        if tuple(value.shape) != tuple(model.raw[key].shape):
            raise WeightsFileError(f"{name!r}: raw {key} has shape {tuple(value.shape)} but the model's is "
                                   f"{tuple(model.raw[key].shape)} (another N_rec / N_in / N_out, or one network "
                                   "vs an ensemble?).")
    masks = {key: value for key, value in checkpoint["mask"].items() if key in getattr(model, "masks", {})}
    for key, value in masks.items():
        if tuple(value.shape) != tuple(model.masks[key].shape):
            raise WeightsFileError(f"{name!r}: mask of {key} has shape {tuple(value.shape)}, the model's "
                                   f"{tuple(model.masks[key].shape)}.")
    saved_tasks = meta["tasks"]
    if len(saved_tasks) != len(tasks):
        raise WeightsFileError(f"{name!r} holds the state of {len(saved_tasks)} task(s) but {len(tasks)} were given.")
    if "config" in meta:  # checkpoints from before the record was added are not checked
        _check_config(name, meta["config"], run_config(model, tasks))
    if meta.get("np_random") is not None:
        try:
            np.random.RandomState().set_state(meta["np_random"])  # on a throwaway stream first
        except (TypeError, ValueError, KeyError) as exc:
            raise WeightsFileError(f"{name!r}: the saved state of np.random is damaged ({exc}).") from None
    if checkpoint["optimizer"]:
        state = _optimizer_state(checkpoint["optimizer"])
        if optimizer is None:
            from ..nn.optimizers import get_optimizer

            try:
                optimizer = get_optimizer(state["type"].lower())
            except ParameterError as exc:
                raise WeightsFileError(f"{name!r}: {exc}") from None
        try:
            optimizer.load_state_dict(state)
        except ParameterError as exc:
            raise WeightsFileError(f"{name!r}: the optimizer state does not fit: {exc}") from None
        model.optimizer = optimizer
    xp = model.xp
    for key, value in checkpoint["raw"].items():
        model.raw[key] = xp.asarray(value, dtype=model.dtype)
    for key, value in masks.items():
        model.masks[key] = xp.asarray(value, dtype=model.dtype)
    for rng_name, state in meta["rng"].items():
        _set_rng_states(getattr(model, rng_name), state, repr(name))
    for task, state in zip(tasks, saved_tasks):
        if state is not None and hasattr(task, "load_state_dict"):
            task.load_state_dict(state)
    if curriculum is not None and meta.get("curriculum") is not None and hasattr(curriculum, "load_state_dict"):
        curriculum.load_state_dict(meta["curriculum"])
    elif curriculum is not None and meta.get("curriculum") is not None:
        c = meta["curriculum"]
        curriculum.stage = int(c["stage"])
        if hasattr(curriculum, "stop_training"):
            curriculum.stop_training = bool(c["stop_training"])
        if hasattr(curriculum, "metric_values"):
            curriculum.metric_values = [tuple(v) if isinstance(v, list) else v for v in c["metric_values"]]
    if meta.get("np_random") is not None:  # a PsychRNN-API task may draw its trials from np.random
        np.random.set_state(meta["np_random"])
    model.history = {k: list(v) for k, v in checkpoint["history"].items()}
    return int(meta["epoch"])


# ---------------------------------------------------------------------------- the trainer's hook


class TrainingInterrupted(KeyboardInterrupt):
    """SIGINT or SIGTERM stopped training after a checkpoint was written.

    A ``KeyboardInterrupt`` (so ``except Exception`` does not swallow it). ``signum`` is the
    signal, ``checkpoint_path`` the file written, ``update`` the last update it holds.
    """

    def __init__(self, signum: int, checkpoint_path: str, update: int):
        import signal as _signal

        self.signum, self.checkpoint_path, self.update = signum, checkpoint_path, update
        super().__init__(f"{_signal.Signals(signum).name} received: stopped after update {update}; "
                         f"checkpoint written to {checkpoint_path!r} (resume from it).")


class Checkpointer:
    """Periodic checkpoints and SIGINT/SIGTERM handling for one ``train()`` call.

    The trainer calls :meth:`after_update` at the end of every update: it writes a checkpoint every
    ``checkpoint_epoch`` updates and, when a signal arrived during the update, writes one and
    raises :class:`TrainingInterrupted`. Signal handlers are installed by :meth:`install` (only in
    the main thread) and the previous ones put back by :meth:`close`. A second SIGINT while the
    update finishes interrupts at once (Python's usual ``KeyboardInterrupt``).
    """

    SIGNALS = ("SIGINT", "SIGTERM")

    def __init__(self, model, path, every: int, *, tasks=(), curriculum=None, active=None, check_rngs=None,
                 np_random=False):
        self.model, self.path, self.every = model, path, int(every)
        self.tasks = tasks if callable(tasks) else (lambda: tuple(tasks))  # tasks() -> current Tasks
        # check_rngs() -> current check-stream states
        self.check_rngs = check_rngs if callable(check_rngs) else (lambda: dict(check_rngs or {}))
        self.curriculum, self.active, self.np_random = curriculum, active, np_random
        self.pending = None
        self.held = None  # a due checkpoint, written once its weights prove to give a finite loss
        self._previous = {}

    def install(self):
        import signal
        import threading

        if threading.current_thread() is not threading.main_thread():
            return self  # signal.signal works only in the main thread; periodic checkpoints still do
        for name in self.SIGNALS:
            signum = getattr(signal, name, None)
            if signum is not None:
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def _handle(self, signum, frame):
        import signal

        if self.pending is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt  # second Ctrl-C: stop now
        self.pending = signum

    def close(self):
        import signal

        for signum, handler in self._previous.items():
            signal.signal(signum, handler if handler is not None else signal.SIG_DFL)
        self._previous = {}

    def arrays(self, epoch: int, *, finished: bool = False) -> dict:
        """The checkpoint of the training as it is now (host copies)."""
        arrays = checkpoint_arrays(self.model, epoch=epoch, tasks=self.tasks(), curriculum=self.curriculum,
                                   check_rngs=self.check_rngs(), np_random=self.np_random)
        arrays = {key: np.array(value, copy=True) for key, value in arrays.items()}  # no views of live state
        if self.active is not None:
            arrays["train/active"] = np.asarray(self.active, dtype=bool)
        if finished:
            meta = json.loads(str(arrays["checkpoint"]))
            meta["finished"] = True
            arrays["checkpoint"] = np.array(json.dumps(meta))
        return arrays

    def save(self, epoch: int, *, finished: bool = False) -> str:
        """Write the checkpoint of the training as it is now (a held one is superseded)."""
        self.held = None
        return self._write(self.arrays(epoch, finished=finished))

    def _write(self, arrays) -> str:
        from ..io import atomic_savez

        return atomic_savez(self.path, arrays)

    def after_update(self, epoch: int):
        """When a signal arrived: write a checkpoint now and raise. When one is due: take it and hold
        it until :meth:`confirm` (the next forward pass gave a finite loss), so a periodic checkpoint
        never holds weights known to diverge; :meth:`discard` drops it when that update is undone."""
        if self.pending is not None:
            self.raise_if_interrupted(self.save(epoch))
        elif epoch % self.every == 0:
            self.held = self.arrays(epoch)

    def confirm(self):
        """The weights of the held checkpoint gave a finite loss: write it."""
        if self.held is not None:
            held, self.held = self.held, None
            self._write(held)

    def discard(self):
        """The update that made the held checkpoint's weights was undone: drop it."""
        self.held = None

    def raise_if_interrupted(self, written=None):
        if self.pending is not None:
            signum, self.pending = self.pending, None
            history = self.model.history or {"update": []}
            update = history["update"][-1] if history["update"] else 0
            raise TrainingInterrupted(signum, written or self.path, update)
