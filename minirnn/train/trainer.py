"""The training loop: batch -> gradient -> fixed mask -> clip -> optimizer update -> bookkeeping.

One update (DESIGN.md §1)::

    loss, g = model._loss_and_grads(x, y, mask, noise)     # true gradient, nothing zeroed
    if not finite(loss): theta, state = saved; raise        # the previous update diverged: undo it
    g      *= 1 - F                                         # fixed entries get no gradient
    saved   = copy(theta, optimizer.state)                  # to undo this update if it diverges
    g       = clip(g)                                       # per parameter (PsychRNN) or global norm
    delta   = optimizer.compute_update(g)                   # the optimizer owns its state
    theta  -= delta * (1 - F)                               # masking the *update* too keeps fixed
                                                            # entries still under old Adam momentum

This module takes any model object with that small interface and never imports ``minirnn.models``.
"""
from __future__ import annotations

import copy
import logging
import math
import os
import threading
import time
import warnings
import weakref

import numpy as np

from .._params import is_int, reshape_if_flat, resolve_train_params
from ..errors import NonFiniteError, ParameterError, ShapeError, WeightsFileError
from ..nn.clipping import clip_by_global_norm, clip_by_norm
from ..nn.optimizers import Optimizer, get_optimizer

logger = logging.getLogger("minirnn")


class BatchSource:
    """Where batches come from: a Task (its own seeded stream) or any iterator of
    ``(x, y, mask, trial_params)``. A batch peeked to learn the batch size is not thrown away.

    A Task's training batches are those of its ``batch_generator()`` or ``get_trial_batch()`` when a
    subclass overrides one (PsychRNN trains on them), else those of ``generate_batch()``.

    For an ensemble of K networks, network k draws its trials from its own copy of the task,
    seeded with the ensemble's ``seeds[k]`` (the stream of ``TaskClass(..., seed=seeds[k])``), or
    from ``source[k]`` when a list of K tasks is given; batches are stacked to ``(K, B, T, ·)``.
    Each copy's overridden ``batch_generator()`` is its own generator, drawing from its own stream.

    Check batches (:meth:`next_check`: ``performance_measure`` and curriculum tests) are made the same
    way from separate *check streams* per task, one per kind of check, derived from the task's stream
    without advancing it (:func:`_derive_check_rng`): checks never shift the training batches (PsychRNN
    issue #43), and adding a ``performance_measure`` leaves a curriculum's tests as they were.
    :meth:`check_states` / :meth:`load_check_states` carry those streams through checkpoints. A plain
    iterator has no other stream: its check batches are simply its next batches.
    """

    def __init__(self, source, model=None):
        lead = getattr(model, "lead", ())
        self.tasks = None  # an ensemble's per-network tasks
        if lead and isinstance(source, (list, tuple)):
            if len(source) != lead[0]:
                raise ShapeError(f"train() got {len(source)} tasks for an ensemble of {lead[0]} networks.")
            self.tasks = list(source)
        elif lead and hasattr(source, "generate_batch"):
            self.tasks = _network_copies(source, model)
        self.task = source if self.tasks is None and hasattr(source, "generate_batch") else None
        if self.task is None and self.tasks is None and not hasattr(source, "__iter__"):
            raise ParameterError(f"train() needs a Task or an iterator of (x, y, mask, trial_params) batches. "
                                 f"Got {type(source).__name__}.")
        self._streams = self.tasks or ([self.task] if self.task is not None else [])
        self._iterator = None if self._streams else iter(source)
        self._draws = [_batch_maker(t) for t in self._streams]
        # per kind of check, per task: its own stream and batch maker (an overridden generator is a new one)
        self._check_rngs = {kind: [_derive_check_rng(t, jumps) for t in self._streams]
                            for jumps, kind in enumerate(CHECK_KINDS, start=1)}
        self._check_draws = {kind: [_batch_maker(t) for t in self._streams] for kind in CHECK_KINDS}
        self._peeked = None

    def next(self):
        """The next training batch."""
        if self._peeked is not None:
            batch, self._peeked = self._peeked, None
            return batch
        if self._iterator is not None:
            return _next_batch(self._iterator)
        return self._combine([draw() for draw in self._draws])

    def next_check(self, kind: str):
        """A batch for a check of ``kind`` (one of :data:`CHECK_KINDS`), from that kind's check streams."""
        if self._iterator is not None:
            return self.next()
        return self._combine([_check_batch(task, rng, draw) for task, rng, draw
                              in zip(self._streams, self._check_rngs[kind], self._check_draws[kind])])

    def check_states(self) -> dict:
        """``{kind: [bit_generator.state of each task's check stream (None for a task without one)]}``,
        for checkpoints."""
        return {kind: [None if rng is None else rng.bit_generator.state for rng in rngs]
                for kind, rngs in self._check_rngs.items()}

    def load_check_states(self, states: dict) -> None:
        """Put back what :meth:`check_states` saved (a checkpoint without check streams: nothing)."""
        for kind, saved in (states or {}).items():
            rngs = self._check_rngs.get(kind, [])
            if len(saved) != len(rngs):
                raise WeightsFileError(f"The checkpoint holds {len(saved)} {kind} check stream(s) but this "
                                       f"training has {len(rngs)} task(s): it is of another training.")
            for rng, state in zip(rngs, saved):
                if rng is not None and state is not None:
                    rng.bit_generator.state = state

    def _combine(self, parts):
        """One task's batch, or an ensemble's per-network batches stacked to ``(K, B, T, ·)``."""
        if self.tasks is None:
            return parts[0]
        shapes = [tuple(np.shape(b[0])) for b in parts]
        if len(set(shapes)) > 1:
            raise ShapeError(f"The ensemble's tasks give batches of different shapes {shapes} (N_batch, N_steps, "
                             "N_in); the networks are trained together, so every task needs the same N_batch "
                             "and T.")
        return tuple(np.stack([b[i] for b in parts]) for i in range(3)) + ([b[3] for b in parts],)

    def batch_size(self) -> int:
        task = self._streams[0] if self._streams else None
        if task is not None and getattr(task, "N_batch", None):
            return int(task.N_batch)
        self._peeked = self.next()
        try:
            shape = np.shape(self._peeked[0])
        except (TypeError, ValueError, IndexError, KeyError):
            raise ShapeError("the batch generator must yield (x, y, mask, trial_params) with x an array of shape "
                             "(N_batch, N_steps, N_in).") from None
        if len(shape) < 3:
            raise ShapeError(f"x from the batch generator has shape {shape}; it must be (N_batch, N_steps, N_in).")
        return int(shape[-3])


def _next_batch(iterator):
    """The next ``(x, y, mask, trial_params)`` of a batch generator, checked to be 4 items."""
    try:
        batch = next(iterator)
    except StopIteration:
        raise ParameterError("The batch generator ran out of batches before training ended; give it more "
                             "batches (or an endless generator) or lower training_iters.") from None
    if not (isinstance(batch, (tuple, list)) and len(batch) == 4):
        raise ShapeError("The batch generator must yield (x, y, mask, trial_params), 4 items. Got "
                         + (f"{len(batch)} items." if isinstance(batch, (tuple, list)) else f"{type(batch).__name__}."))
    return batch


def _overrides(task, method) -> bool:
    """``task``'s class replaces the Task base class's ``method`` (PsychRNN's training loop draws from
    ``batch_generator()``, which calls ``get_trial_batch()``: a subclass may override either)."""
    from ..tasks.task import Task

    return isinstance(task, Task) and getattr(type(task), method) is not getattr(Task, method)


def _batch_maker(task):
    """A function that makes ``task``'s next batch: from its own overridden ``batch_generator()`` (a new
    generator, drawing from ``task``) or ``get_trial_batch()``, else ``generate_batch``."""
    if not _overrides(task, "batch_generator"):
        return task.get_trial_batch if _overrides(task, "get_trial_batch") else task.generate_batch
    iterator = None

    def next_from_generator():
        nonlocal iterator
        if iterator is None:  # made at the first batch: after a resume's restore, inside a check's swap
            iterator = iter(task.batch_generator())
        return _next_batch(iterator)

    return next_from_generator


#: the kinds of check batches, each from its own streams
CHECK_KINDS = ("performance", "curriculum")


def _derive_check_rng(task, jumps=1):
    """A Generator for ``task``'s check batches: a copy of its stream jumped ``jumps`` times far ahead
    (2**127 draws and more for PCG64), where training never reaches; the task's own stream does not move.

    None for an object without a Generator ``rng``: its check batches come from its own stream.
    """
    rng = getattr(task, "rng", None)
    if not isinstance(rng, np.random.Generator):
        return None
    if hasattr(rng.bit_generator, "jumped"):
        return np.random.Generator(rng.bit_generator.jumped(jumps))
    # a bit generator that cannot jump (SFC64): seed a PCG64 with the next numbers of a copy of the stream
    entropy = copy.deepcopy(rng).integers(2**63, size=4)
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence([int(e) for e in entropy] + [jumps])))


def _check_batch(task, check_rng, draw):
    """``draw()`` with ``task``'s stream swapped for ``check_rng``: the batch is made exactly as a
    training batch is (a subclass's overrides included), and the task's own stream and
    ``batch_index`` are as they were afterwards."""
    if check_rng is None:
        return draw()
    own_rng, own_index = task.rng, getattr(task, "batch_index", None)
    task.rng = check_rng
    try:
        return draw()
    finally:
        task.rng = own_rng
        if own_index is not None:
            task.batch_index = own_index


def _network_copies(task, model) -> list:
    """One copy of ``task`` per network of ``model`` (:func:`_reseeded_copy` with ``model.seeds[k]``).

    Each call copies the task's current settings (``N_batch``, ``T``, ``coherence``, ... as they are
    now), and a later call with the same task continues each copy's stream where the last call left
    it, as one network's later call continues its task's stream: network k stays the network trained
    alone on ``seed=seeds[k]``. The streams are kept on the model (``model._task_streams``, weakly
    keyed by the task).
    """
    copies = [_reseeded_copy(task, seed) for seed in model.seeds]
    streams = getattr(model, "_task_streams", None)
    if streams is None:
        streams = model._task_streams = weakref.WeakKeyDictionary()
    try:
        earlier = streams.get(task)
        streams[task] = copies
    except TypeError:  # a task that cannot be weakly referenced or hashed: fresh streams every call
        earlier = None
    for twin, before in zip(copies, earlier or ()):
        twin.rng.bit_generator.state = before.rng.bit_generator.state
        if hasattr(twin, "batch_index"):
            twin.batch_index = before.batch_index
    return copies


def _reseeded_copy(task, seed):
    """A copy of ``task`` whose trial stream is that of the same task built with ``seed``."""
    from ..tasks.task import make_rng  # what Task(..., seed=seed) does with its seed

    try:
        twin = copy.deepcopy(task)
    except (TypeError, copy.Error, NotImplementedError) as error:
        raise ParameterError(
            f"An ensemble trains each network on its own copy of the task, but {type(task).__name__} cannot be "
            f"copied ({_uncopyable(task) or error}). Store plain data instead (a list rather than a generator), "
            f"define __deepcopy__, or pass a list of tasks, one per network.") from None
    twin.rng = make_rng(seed)
    if hasattr(twin, "batch_index"):
        twin.batch_index = 0
    return twin


def _uncopyable(task) -> str:
    """"<Class>.<attribute> (a <type>)" for the first attribute of ``task`` that deepcopy refuses, or ""."""
    for name, value in vars(task).items():
        try:
            copy.deepcopy(value)
        except (TypeError, copy.Error, NotImplementedError):
            return f"{type(task).__name__}.{name} is a {type(value).__name__}"
    return ""


#: keys of get_weights() that are not parameters (a fixed_weights dict built from it may hold them)
_WEIGHTS_NOT_PARAMETERS = ("input_connectivity", "rec_connectivity", "output_connectivity", "Dale_rec", "Dale_out",
                           "dale_ratio")


def fixed_mask(model, name, F) -> np.ndarray:
    """``fixed_weights[name]`` as the trainer reads it: a host float64 array of ``model.raw[name]``'s
    shape (PsychRNN's LSTM layout converted, a flat or per-network array broadcast over the networks)."""
    try:
        F = np.asarray(F, dtype=np.float64)
    except (TypeError, ValueError):
        raise ParameterError(f"fixed_weights[{name!r}] must be an array of 0s and 1s. Got {F!r}.") from None
    if hasattr(model, "to_model_layout"):  # e.g. LSTM gates given in PsychRNN's transposed layout
        F = model.to_model_layout(name, F)
    shape = tuple(model.raw[name].shape)
    F = reshape_if_flat(F, shape[len(model.lead):])
    try:
        return np.broadcast_to(F, shape)
    except ValueError:
        raise ShapeError(f"fixed_weights[{name!r}] has shape {F.shape} but {name} has shape {shape}.") from None


def _fixed_keep_masks(model, fixed_weights):
    """``fixed_weights`` (name -> 0/1 array, 1 = fixed) -> ``keep = 1 - F`` on the model's backend."""
    if not fixed_weights:
        return {}
    if not isinstance(fixed_weights, dict):
        raise ParameterError(f"fixed_weights must be a dict name -> 0/1 array. Got {type(fixed_weights).__name__}.")
    keep = {}
    for name, F in fixed_weights.items():
        if name in _WEIGHTS_NOT_PARAMETERS:  # PsychRNN only looks at its trainable variables' names
            warnings.warn(f"fixed_weights[{name!r}] is ignored: {name} is not a trainable parameter.", stacklevel=4)
            continue
        if name not in model.raw:
            from ..errors import did_you_mean

            raise ParameterError(f"fixed_weights names unknown parameter {name!r}{did_you_mean(name, model.raw)} "
                                 f"Parameters: {list(model.raw)}.")
        F = fixed_mask(model, name, F)
        if not np.all((F == 0) | (F == 1)):
            raise ParameterError(f"fixed_weights[{name!r}] must hold only 0 (trainable) and 1 (fixed).")
        keep[name] = model.xp.asarray(1 - F, dtype=model.dtype)
    return keep


def _curriculum_source(model, curriculum, source, checkpoint):
    """The task of the curriculum's current stage (the checkpoint's stage when resuming), after
    checking the curriculum can train ``model``."""
    from .curriculum import check_curriculum

    # a resumed call restores the curriculum's progress from the checkpoint: it may have finished
    check_curriculum(curriculum, model.N_in, model.N_out, finished_ok=checkpoint is not None)
    if source is not None and not any(source is task for task in curriculum.tasks):
        logger.warning("train() got both a task and a curriculum: the curriculum's tasks are trained on and "
                       "the task argument (%s) is not used", type(source).__name__)
    stage = curriculum.stage
    if checkpoint is not None and checkpoint["meta"].get("curriculum") is not None:
        stage = int(checkpoint["meta"]["curriculum"]["stage"])  # restored into the curriculum by _resume
    return curriculum.tasks[min(stage, len(curriculum.tasks) - 1)]  # a finished curriculum: its last task


def _warn_about_dt(model, batches):
    """Warn when a task's time step differs from the model's (PsychRNN did not check)."""
    dt = model.params.get("dt")
    for task in ([batches.task] if batches.task is not None else batches.tasks or []):
        task_dt = getattr(task, "dt", None)
        if task_dt is not None and dt is not None and not np.isclose(float(task_dt), float(dt)):
            warnings.warn(f"The task's dt ({task_dt}) differs from the model's ({dt}): the model steps by its own dt "
                          "(alpha = dt / tau) through trials built with the task's.", stacklevel=4)
            return


def _check_output_paths(tp):
    """Every file the call will write can be written: checked before the first update, not after the
    last. Missing folders are made (PsychRNN makes those of its weight paths)."""
    from ..io import check_writable

    for key in ("save_weights_path", "checkpoint_path"):
        if tp[key] is not None:
            check_writable(tp[key], key, create_dir=True)
    if tp["training_weights_path"] is not None:  # a prefix: f"{path}{epoch}.npz"
        check_writable(tp["training_weights_path"], "training_weights_path", suffix="1", create_dir=True)


def _check_per_network_values(model, tp):
    """``learning_rate``, ``clip_norm`` and ``clip_global_norm``: one number, or for an ensemble one
    value per network (shape ``model.lead``). Checked before any work; a list becomes an array."""
    for key in ("learning_rate", "clip_norm", "clip_global_norm"):
        value = tp[key]
        if value is None or callable(value) or isinstance(value, (str, bytes)):
            continue  # None: not used; other types: the optimizer's and clipping's own checks
        try:
            shape = np.shape(value)
        except ValueError:  # a ragged list
            shape = None
        if shape == ():
            continue
        if not model.lead:
            raise ParameterError(f"The {key!r} training parameter must be a single number for one network. "
                                 f"Got {value!r} (one value per network needs an ensemble: n_networks=...).")
        if shape != model.lead:
            raise ParameterError(f"The {key!r} training parameter must be a number or one value per network, "
                                 f"an array of shape {model.lead} (n_networks={model.lead[0]}). Got "
                                 f"{value!r}" + ("." if shape is None else f", of shape {shape}."))
        tp[key] = np.asarray(value, dtype=np.float64)


def _resolve_optimizer(model, tp, lr_given):
    """The optimizer of this call (see :func:`train`'s Notes). ``lr_given``: train_params named a
    learning_rate.

    * An Optimizer object is a configuration: the model's optimizer when it was built from that
      same object (its state carries over) or is that object, else a fresh copy (:meth:`Optimizer.fresh`).
    * A name or class: the model's current optimizer when it is of that type (its state carries over;
      one built from a name takes this call's learning_rate, a user's keeps its own unless this call
      names one), else a new one.
    """
    spec, current, n_lead = tp["optimizer"], model.optimizer, len(model.lead)
    if isinstance(spec, Optimizer):
        if lr_given and not np.array_equal(np.asarray(tp["learning_rate"]), np.asarray(spec.learning_rate)):
            warnings.warn(f"train_params['learning_rate'] ({tp['learning_rate']!r}) is not used: the optimizer object "
                          f"has its own ({spec.learning_rate!r}), as in PsychRNN.", stacklevel=4)
        if current is not None and (current is spec or current.built_from is spec):
            optimizer = current
            for h in (*spec.hyper, *spec._options):  # the object may have been edited since (a lower rate)
                setattr(optimizer, h, getattr(spec, h))
        else:
            optimizer = spec.fresh(n_lead=n_lead)
            optimizer.built_from = spec
    elif current is not None and type(current).__name__.lower() == str(spec).lower():
        if lr_given or not current.user_built:
            current.learning_rate = tp["learning_rate"]
        optimizer = current
    else:
        optimizer = get_optimizer(spec, learning_rate=tp["learning_rate"], n_lead=n_lead)
    for h in optimizer.hyper:  # e.g. Adam(learning_rate=[...]) of the wrong length
        value = getattr(optimizer, h)
        if not isinstance(value, float) and value.shape != model.lead:
            shown = spec if isinstance(spec, Optimizer) else optimizer  # the object the user gave
            raise ParameterError(f"The {h!r} of {shown!r} has shape {value.shape}, but "
                                 + (f"the ensemble has {model.lead[0]} networks" if model.lead else "the model is one "
                                    "network") + f": give a float{' or an array of shape ' + str(model.lead) if model.lead else ''}.")
    return optimizer


def _is_numeric(value) -> bool:
    try:
        return np.asarray(value).dtype.kind in "biuf"
    except (TypeError, ValueError):
        return False


def _all_finite(xp, arrays) -> bool:
    return all(bool(xp.isfinite(a).all()) for a in arrays)


def train(model, source, train_params=None, *, resume=None):
    """Train ``model`` on batches from ``source``; PsychRNN's ``train`` semantics.

    Parameters
    ----------
    model : a minirnn model (``Basic``, ``LSTM``, ...).
    source : a Task, an iterator of ``(x, y, mask, trial_params)``, or None with a curriculum.
    train_params : dict, see ``minirnn.describe_params()``; unknown keys are errors.
    resume : a checkpoint path (or :func:`minirnn.train.checkpoint.load_checkpoint`'s dict) written by
        an interrupted call with the same model params, task and train_params: training continues
        from it and ends where the uninterrupted call would have (bit for bit on numpy). A checkpoint
        of a call that had ended (``finished``) resumes to nothing. For a task written against
        PsychRNN's API (per-trial methods, or an overridden ``get_trial_batch`` / ``batch_generator``),
        which may draw from ``np.random``, the checkpoint also holds NumPy's global random state and
        resuming sets it back (overwriting the script's): bit for bit as long as nothing but training
        draws from ``np.random`` while the resumed call runs. A plain batch generator's position
        cannot be saved (resuming warns).

    Returns
    -------
    losses : list of the objective every ``loss_epoch`` updates (floats; arrays for an ensemble).
    training_time : seconds in the loop.  initialization_time : seconds of set-up before it.

    Notes
    -----
    Checks (``performance_measure`` every ``performance_epoch`` updates, curriculum tests every
    ``metric_epoch``) run on batches from a separate stream of each task (:class:`BatchSource`), so
    they never change the training batches; with a plain batch generator they take its next batches.
    A training batch whose mask is all zero trains nothing (loss 0): warned once per call.
    ``training_weights_path`` snapshots are named ``f"{path}{epoch}.npz"`` with ``epoch`` counted from
    1 in each call, as in PsychRNN, so a second call writes over the first's: warned once per call.

    ``training_iters`` counts trials: ``ceil(training_iters / N_batch)`` updates (PsychRNN's master
    branch; 1.0.0 did one fewer when divisible). The recorded loss is the objective of the update's
    own batch before the update (PsychRNN re-ran the batch after it: one more forward pass).

    **The optimizer.** ``train_params["optimizer"]`` as an Optimizer object (``Adam(0.01)``) is a
    *configuration*: the first time a model meets that object it builds its own optimizer from the
    object's hyperparameters (:meth:`~minirnn.nn.optimizers.Optimizer.fresh`), so the object itself is
    never changed and one object can serve many models, each starting from fresh state, as in
    PsychRNN, whose ``train()`` re-initialises the slots. A later call on the same model with the same
    object continues the model's optimizer (its slots and step count); another object, or another
    model, starts fresh. ``model.optimizer`` is the optimizer the model steps (its ``state_dict()`` goes
    into checkpoints). A name (``"adam"``) or class continues the model's optimizer when it is of that
    type, else builds a new one with ``learning_rate``. A call that gives no ``optimizer`` keeps the
    model's current optimizer, with its settings and state: after ``Adam(0.05, beta1=0.5)``, a call
    with ``train_params={}`` goes on with that Adam, where PsychRNN would build a fresh
    ``AdamOptimizer(0.001)``; it takes ``learning_rate`` only when the call names one (or when the
    optimizer was built from a name). ``learning_rate``, ``clip_norm`` and ``clip_global_norm`` are
    numbers, or for an ensemble arrays of shape ``(n_networks,)``, checked before any work.

    **Divergence.** A NaN or inf loss shows on the forward pass *after* the update that caused it.
    Before each update the trainer copies the weights and the optimizer state, so that update is then
    undone: the model keeps the weights and optimizer state from before it, whose (finite) loss is the
    "last finite loss" that :class:`~minirnn.errors.NonFiniteError` quotes, equal to those of the same
    run stopped one update earlier. Its record is dropped from ``model.history`` (for an ensemble, only
    the networks that diverged are put back, and ``NonFiniteError.networks`` names them; the record,
    which holds the other networks' losses, stays). A NaN or inf gradient, or an update that would make
    a weight NaN or inf, changes no weight and no optimizer state. A periodic checkpoint is written only
    once the next forward pass has shown its weights give a finite loss, so the checkpoint of an undone
    update is never written (the one before it stays). A NaN or inf at the
    first update of a call is in the weights the call started with: nothing is undone.
    """
    t_start = time.perf_counter()
    tp = resolve_train_params(train_params)
    _check_per_network_values(model, tp)
    checkpoint = _load_resume(resume)  # None, or the checkpoint to continue from
    curriculum = tp["curriculum"]
    if curriculum is not None:
        source = _curriculum_source(model, curriculum, source, checkpoint)
    if source is None:
        raise ParameterError("train() needs a Task or a batch generator (or train_params['curriculum']).")
    if (tp["performance_cutoff"] is None) != (tp["performance_measure"] is None) and tp["performance_cutoff"] is not None:
        raise ParameterError("performance_cutoff needs a performance_measure too (train_params['performance_measure']).")
    _check_output_paths(tp)
    batches = BatchSource(source, model)
    _warn_about_dt(model, batches)
    N_batch = batches.batch_size()
    n_updates = int(math.ceil(int(tp["training_iters"]) / N_batch))
    keep = _fixed_keep_masks(model, tp["fixed_weights"])
    lr_given = isinstance(train_params, dict) and train_params.get("learning_rate") is not None
    optimizer = _resolve_optimizer(model, tp, lr_given)
    epoch0, finished, resumed_active = _resume(model, checkpoint, batches, curriculum, optimizer)  # 0, False, None
    model.optimizer = optimizer  # only now: a call that fails during set-up keeps the model's optimizer
    xp, n_lead = model.xp, len(model.lead)
    # per-network "still training" flags: a network that reaches performance_cutoff stops updating
    active = np.ones(model.lead, dtype=bool) if n_lead else None
    if active is not None and resumed_active is not None:
        active[...] = resumed_active  # networks that had reached performance_cutoff stay stopped
    history = model.history = model.history or {"loss": [], "update": [], "performance": [], "stages": []}
    first_update = len(history["loss"]) - epoch0
    losses = _losses_so_far(history, first_update, epoch0, int(tp["loss_epoch"]))
    initialization_time = time.perf_counter() - t_start

    t_loop = time.perf_counter()
    epoch = epoch0
    progress = checkpointer = blas = None
    try:  # everything set up here is put back in the finally below, also when setting it up fails
        blas = _limit_blas_threads(model, tp["blas_threads"])
        progress = _progress_bar(n_updates, tp["verbosity"], initial=epoch0)
        checkpointer = _start_checkpointing(model, tp, lambda: _checkpoint_tasks(batches, curriculum),
                                            lambda: batches.check_states(), curriculum, active,
                                            np_random=_may_draw_from_np_random(batches, curriculum))
        snapshots = _Snapshots(tp["training_weights_path"], tp["verbosity"], resumed=checkpoint is not None)
        empty_mask_warned = False
        last_good = _LastGood(model, optimizer)  # weights and optimizer state before the latest update
        for epoch in range(epoch0 + 1, (epoch0 if finished else n_updates) + 1):
            x, y, mask, trial_params = batches.next()
            x, y, mask = model._check_batch(x, y, mask)
            if not empty_mask_warned:
                empty_mask_warned = _warn_if_mask_is_empty(model, mask, first_update + epoch)
            with np.errstate(over="ignore", invalid="ignore"):  # non-finite values are checked below
                value, grads = model._loss_and_grads(x, y, mask, noise_rng=model.rng_noise)
            update_index = first_update + epoch
            if not _all_finite(xp, [value]):  # the previous update made weights with a non-finite loss
                _undo_diverged_update(model, value, history, last_good, checkpointer, update_index)
            if checkpointer is not None:
                checkpointer.confirm()  # a held checkpoint's weights gave this finite loss: write it
            for name, g in grads.items():
                if not _all_finite(xp, [g]):
                    _raise_nonfinite(model, f"the gradient of {name} became NaN or inf at update {update_index}", g,
                                     _loss_of(model, value), "The weights and optimizer state were kept as they were "
                                     "before this update, whose loss that was.")
                if name in keep:
                    grads[name] = g * keep[name]
            flags = None if active is None else xp.asarray(active)
            last_good.save(grads, flags)  # checks the update first (Optimizer.prepare), then copies
            with np.errstate(over="ignore", invalid="ignore"):  # huge gradients: the new weights are checked
                if tp["clip_global_norm"] is not None:
                    grads = clip_by_global_norm(grads, tp["clip_global_norm"], n_lead=n_lead)
                elif tp["clip_grads"]:
                    grads = clip_by_norm(grads, tp["clip_norm"], n_lead=n_lead)
                delta = optimizer.compute_update(grads, active=flags)
                refused = _apply_update(model, delta, keep)  # theta -= delta * (1 - F); inactive networks: d = 0
            if refused is not None:  # all or nothing: every weight and the optimizer's state put back
                last_good.restore()
                _raise_nonfinite(model, f"the weight {refused[0]} would become NaN or inf at update {update_index}",
                                 refused[1], _loss_of(model, value), "The weights and optimizer state were kept as "
                                 "they were before this update, whose loss that was.", "Try a smaller learning_rate.")
            history["loss"].append(_loss_of(model, value))
            history["update"].append(update_index)
            if epoch % int(tp["loss_epoch"]) == 0:
                losses.append(history["loss"][-1])
                if tp["verbosity"]:
                    say(f"Iter {epoch * N_batch}, Minibatch Loss= {_six_places(history['loss'][-1])}")
            _show_progress(progress, history)

            if curriculum is not None and epoch % int(curriculum.metric_epoch) == 0:
                cx, cy, cmask, _ = batches.next_check("curriculum")
                output, _ = model.test(cx)
                advanced = curriculum.metric_test(cx, cy, cmask, output, epoch, losses, tp["verbosity"])
                if advanced:
                    history["stages"].append({"update": update_index, "stage": curriculum.stage,
                                              "metric": curriculum.metric_values[-1][0]})
                if curriculum.stop_training:
                    break
                if advanced:
                    batches = BatchSource(curriculum.tasks[curriculum.stage], model)
            if tp["training_weights_path"] is not None and epoch % int(tp["save_training_weights_epoch"]) == 0:
                snapshots.save(model, epoch)
            if tp["performance_measure"] is not None and epoch % int(tp["performance_epoch"]) == 0:
                px, py, pmask, _ = batches.next_check("performance")
                output, _ = model.test(px)
                performance = tp["performance_measure"](px, py, pmask, output, epoch, losses, tp["verbosity"])
                history["performance"].append((update_index, performance))
                if tp["verbosity"]:
                    say(f"performance: {performance}")
                if tp["performance_cutoff"] is not None and not _is_numeric(performance):
                    raise ParameterError(f"performance_measure returned {performance!r} at update {update_index}; "
                                         "with a performance_cutoff it must return a number (one per network for "
                                         "an ensemble).")
                if tp["performance_cutoff"] is not None:
                    reached = np.asarray(performance) >= tp["performance_cutoff"]
                    if active is not None and reached.shape == active.shape:
                        active &= ~reached  # this network is done; the others go on
                        if not active.any():
                            break
                    elif np.all(reached):
                        logger.info("performance %s reached the cutoff %s at update %d", performance,
                                    tp["performance_cutoff"], update_index)
                        break
            if checkpointer is not None:
                checkpointer.after_update(epoch)  # every checkpoint_epoch updates, and on SIGINT/SIGTERM
    finally:
        if blas is not None:
            blas.restore_original_limits()
        if progress is not None:
            progress.close()
        if checkpointer is not None:
            checkpointer.close()
    training_time = time.perf_counter() - t_loop
    if checkpointer is not None:
        checkpointer.save(epoch, finished=True)
        checkpointer.raise_if_interrupted()
    if tp["verbosity"]:
        say("Optimization finished!")
    if tp["save_weights_path"] is not None:
        written = model.save(tp["save_weights_path"])
        if tp["verbosity"]:
            say(f"Model saved in file: {written}")
    return losses, training_time, initialization_time


#: Below this N_rec, "auto" runs BLAS on one thread while training: the per-step matmuls are too small
#: for a second thread to pay, and two BLAS threads slow down 10-100x whenever another process holds
#: a core (measured here, see benchmarks/RESULTS.md).
SINGLE_THREAD_MAX_N = 128


def _limit_blas_threads(model, setting):
    """Apply ``train_params["blas_threads"]`` ("auto", an int >= 1, or 0: leave BLAS alone) for the loop.

    Returns a limiter to restore afterwards (``restore_original_limits()``), or None.
    """
    if setting is None or setting == 0 or model.backend.name == "cupy":
        return None
    if setting == "auto":
        if model.N_rec > SINGLE_THREAD_MAX_N:
            return None
        setting = 1
    if not is_int(setting, 1):
        raise ParameterError(f"The 'blas_threads' training parameter must be 'auto', a positive int, or 0 (leave BLAS alone). "
                             f"Got {setting!r} instead.")
    if model.backend.name == "numba":
        import scipy.linalg  # noqa: F401  (load SciPy's BLAS, the kernels' fallback, so that it is limited too)
    return _SharedBlasLimit(int(setting))


class _SharedBlasLimit:
    """threadpoolctl's process-wide BLAS limit, shared by train() calls that overlap in threads: the
    first one in sets it (later ones run under it), the last one out puts the original back."""

    _lock = threading.Lock()
    _users = 0
    _limiter = None

    def __init__(self, threads):
        from threadpoolctl import threadpool_limits

        with self._lock:
            if _SharedBlasLimit._users == 0:
                _SharedBlasLimit._limiter = threadpool_limits(limits=threads, user_api="blas")
            _SharedBlasLimit._users += 1

    def restore_original_limits(self):
        with self._lock:
            _SharedBlasLimit._users -= 1
            if _SharedBlasLimit._users == 0:
                _SharedBlasLimit._limiter.restore_original_limits()
                _SharedBlasLimit._limiter = None


def say(text):
    """Print a progress line as PsychRNN does with ``verbosity`` (stdout; above a tqdm bar if one is shown)."""
    from tqdm.auto import tqdm

    tqdm.write(text)


def _six_places(loss):
    """PsychRNN's ``"{:.6f}"`` of a loss; an ensemble's losses, one per network."""
    return f"{float(loss):.6f}" if np.ndim(loss) == 0 else "[" + ", ".join(f"{float(v):.6f}" for v in np.ravel(loss)) + "]"


def _progress_bar(total, verbosity, initial=0):
    """A tqdm bar on stderr when ``verbosity`` is on and stderr is a terminal (from ``initial`` on resume)."""
    if not verbosity:
        return None
    try:
        from tqdm.auto import tqdm
    except ImportError:  # tqdm is a core dependency; this only guards a broken install
        return None
    return tqdm(total=total, initial=initial, disable=None, desc="training", unit="update", leave=False)


# ---- checkpoints and resume (issue 5), kept apart from the loop above ------------------------------


def _checkpoint_tasks(batches, curriculum) -> list:
    """The Tasks whose streams a checkpoint saves: an ensemble's per-network copies, every
    curriculum task, or the task; none for a plain generator (its state cannot be saved)."""
    if batches.tasks is not None:
        return list(batches.tasks)
    if curriculum is not None:
        return list(curriculum.tasks)
    return [batches.task] if batches.task is not None else []


def _may_draw_from_np_random(batches, curriculum) -> bool:
    """Some task of this call makes its batches with code written against PsychRNN's API (per-trial
    methods, or an overridden ``get_trial_batch`` / ``batch_generator``), which may draw from NumPy's
    global stream: checkpoints then save that stream too."""
    from ..tasks.task import Task

    def psychrnn_style(task):
        if not isinstance(task, Task):
            return False
        return (not task._uses_vectorised_path() or _overrides(task, "get_trial_batch")
                or _overrides(task, "batch_generator"))

    tasks = list(curriculum.tasks) if curriculum is not None else []
    return any(psychrnn_style(task) for task in tasks + _checkpoint_tasks(batches, curriculum))


def _start_checkpointing(model, tp, tasks, check_states, curriculum, active, np_random=False):
    """A :class:`~minirnn.train.checkpoint.Checkpointer` with SIGINT/SIGTERM handlers installed,
    or None when ``checkpoint_path`` is not set. ``tasks`` and ``check_states`` are callables (the
    batch source changes with the curriculum's stage); ``np_random``: save NumPy's global state too."""
    if tp["checkpoint_path"] is None:
        return None
    from .checkpoint import Checkpointer

    return Checkpointer(model, tp["checkpoint_path"], tp["checkpoint_epoch"], tasks=tasks, check_rngs=check_states,
                        curriculum=curriculum, active=active, np_random=np_random).install()


def _load_resume(resume):
    """The checkpoint to resume from (``resume`` is a path or :func:`load_checkpoint`'s dict), or None."""
    if resume is None:
        return None
    from .checkpoint import load_checkpoint

    return resume if isinstance(resume, dict) else load_checkpoint(resume)


def _resume(model, checkpoint, batches, curriculum, optimizer):
    """Restore a loaded checkpoint into the model, its tasks and their check streams, the curriculum,
    ``optimizer`` (and NumPy's global random state when the checkpoint holds it).

    ``batches`` must already be the source of the checkpoint's stage (an ensemble's per-network task
    copies are those of the stage's task). Returns ``(epoch0, finished, active)``: updates already
    done in the interrupted call, whether it had ended, and the saved per-network flags (or None).
    ``(0, False, None)`` when ``checkpoint`` is None.
    """
    if checkpoint is None:
        return 0, False, None
    from .checkpoint import restore_checkpoint

    tasks = _checkpoint_tasks(batches, curriculum)
    if not tasks:
        logger.warning("resuming with a batch generator: its position cannot be restored, so the "
                       "batches after the checkpoint differ from the interrupted run's")
        checkpoint = dict(checkpoint, meta=dict(checkpoint["meta"], tasks=[], check_rngs={}))
    epoch0 = restore_checkpoint(model, checkpoint, tasks=tasks, curriculum=curriculum, optimizer=optimizer)
    batches.load_check_states(checkpoint["meta"].get("check_rngs") or {})  # older checkpoints have none
    active = checkpoint.get("train", {}).get("active")
    return epoch0, bool(checkpoint["meta"].get("finished", False)), active


def _warn_if_mask_is_empty(model, mask, update_index) -> bool:
    """Warn when the training batch's mask (an ensemble's: any network's) is all zero, so the loss
    sees no output and nothing is learned from the batch. Returns whether it warned."""
    has_targets = mask.reshape(tuple(mask.shape[:-3]) + (-1,)).any(axis=-1)  # () or (*lead,) per network
    if bool(has_targets.all()):
        return False
    where = ""
    if has_targets.ndim:
        where = f" of network(s) {np.flatnonzero(~model.backend.to_host(has_targets)).tolist()}"
    warnings.warn(f"The mask{where} of the training batch at update {update_index} is all zero: the loss sees no "
                  "output, so nothing is trained on that batch (only regularizers act). Check the task's mask. "
                  "(Warned once per train() call.)", UserWarning, stacklevel=4)
    return True


class _Snapshots:
    """``training_weights_path`` snapshots, ``f"{path}{epoch}.npz"`` with ``epoch`` counted from 1 in
    each train() call (PsychRNN's names, kept for compatibility), so a later call writes over an
    earlier one's files: the first such file is warned about, once per call, and written anyway.

    A resumed call does not warn: it rewrites the interrupted call's snapshots of the same updates.
    """

    def __init__(self, prefix, verbosity, resumed):
        self.prefix, self.verbosity = prefix, verbosity
        self.warned = resumed

    def save(self, model, epoch):
        from ..io import _with_npz_suffix  # the name model.save writes

        path = f"{self.prefix}{epoch}"
        if not self.warned and os.path.exists(_with_npz_suffix(path)):
            # each epoch is written once per call, so an existing file predates this call
            self.warned = True
            warnings.warn(f"training_weights_path: {_with_npz_suffix(path)!r} already exists (from an earlier "
                          "train() call?) and is being overwritten; snapshots are numbered from 1 in every call, "
                          "as in PsychRNN. Give each call its own training_weights_path to keep both. "
                          "(Warned once per train() call.)", UserWarning, stacklevel=4)
        written = model.save(path)
        if self.verbosity:
            say(f"Training weights saved in file: {written}")


def _losses_so_far(history, first_update, epoch0, loss_epoch) -> list:
    """The ``losses`` list the interrupted call had built (every ``loss_epoch``-th update's loss)."""
    return [history["loss"][first_update + k - 1] for k in range(loss_epoch, epoch0 + 1, loss_epoch)]


def _show_progress(progress, history):
    """Advance the bar by one update; show the latest loss and, once measured, the performance."""
    if progress is None:
        return
    progress.update(1)
    postfix = {"loss": f"{np.mean(history['loss'][-1]):.4g}"}
    if history.get("performance"):
        try:
            postfix["acc"] = f"{float(np.mean(history['performance'][-1][1])):.3f}"
        except (TypeError, ValueError):  # a custom performance_measure may return anything
            pass
    progress.set_postfix(postfix, refresh=False)


def _raise_nonfinite(model, what, array, kept_loss, kept, advice="", no_loss="no finite loss yet"):
    """Raise NonFiniteError for ``what``, naming an ensemble's diverged networks (those whose entries of
    ``array``, shape (*lead, ...), are not all finite) and, for each, the loss of the weights it keeps
    (``kept_loss``: host float or (*lead,) array; None: there is none, ``no_loss`` says so); ``kept``
    says which weights those are."""
    networks = None
    if model.lead:
        finite = np.asarray(model.backend.to_host(model.xp.isfinite(array)))
        finite = finite.reshape(model.lead + (-1,)).all(axis=-1)
        networks = [int(k) for k in np.flatnonzero(~finite.ravel())]
        what += f" in network(s) {networks} of the ensemble"
        if kept_loss is not None:
            kept_loss = np.asarray(kept_loss).ravel()[networks]
    if kept_loss is None:
        last_text = no_loss
    elif np.ndim(kept_loss) == 0:
        last_text = f"last finite loss {float(kept_loss):.6g}"
    else:
        last_text = "last finite losses " + ", ".join(f"{float(v):.6g}" for v in kept_loss)
    raise NonFiniteError(f"{what} ({last_text}). {kept} {advice}".rstrip(), networks=networks)


def _loss_of(model, value):
    """A loss as the history records it: a float, or a host array (one per network)."""
    value = model.backend.to_host(value)
    return float(value) if np.ndim(value) == 0 else np.asarray(value)


def _apply_update(model, delta, keep):
    """``theta -= delta * (1 - F)`` for every parameter, in place (views of ``model.raw`` stay valid).
    Returns the name and a copy of the first weight that now holds NaN or inf (the caller puts every
    weight back from its :class:`_LastGood` copy), or None."""
    for name, d in delta.items():
        model.raw[name] -= d * keep[name] if name in keep else d
    for name in delta:
        if not _all_finite(model.xp, [model.raw[name]]):
            return name, model.raw[name].copy()
    return None


class _LastGood:
    """The weights and optimizer state just before the latest update, so that it can be undone.

    :meth:`save` copies them (``copyto`` into buffers made at the first save: one copy per update,
    on the backend's device), after :meth:`Optimizer.prepare` has checked the update and made every
    state array it changes; :meth:`restore` writes them back, for every network or only for those of
    an ensemble flagged in ``networks`` (bools of shape ``lead``). An optimizer that had no state
    before the update is reset when the whole update is undone, so it is again as it was.
    """

    def __init__(self, model, optimizer):
        self.model, self.optimizer = model, optimizer
        self.raw = self.state = None
        self.had_no_state = False

    @property
    def saved(self) -> bool:
        return self.raw is not None

    def save(self, grads, active):
        xp = self.model.xp
        self.had_no_state = not self.optimizer.state_arrays()
        self.optimizer.prepare(grads, active)  # refuses a bad update before anything moves
        state = self.optimizer.state_arrays()
        if self.raw is None:
            self.raw = {name: xp.empty_like(a) for name, a in self.model.raw.items()}
        if self.state is None or self.state.keys() != state.keys():
            self.state = {key: xp.empty_like(a) for key, a in state.items()}
        for name, a in self.model.raw.items():
            xp.copyto(self.raw[name], a)
        for key, a in state.items():
            xp.copyto(self.state[key], a)

    def restore(self, networks=None):
        xp = self.model.xp
        for name, saved in self.raw.items():  # in place: views of model.raw stay valid
            target = self.model.raw[name]
            if networks is None:
                xp.copyto(target, saved)
            else:  # only the flagged networks: where= broadcasts the flags over each one's own axes
                xp.copyto(target, saved, where=networks.reshape(networks.shape + (1,) * (target.ndim - networks.ndim)))
        if networks is None and self.had_no_state:
            self.optimizer.reset()
        else:
            self.optimizer.load_state_arrays(self.state, networks)


def _undo_diverged_update(model, value, history, last_good, checkpointer, update_index):
    """The loss at update ``update_index`` is not finite: the weights left by the previous update give
    it. Undo that update (for an ensemble, in the diverged networks only): weights and optimizer state
    back to the copies taken before it, whose loss is that update's recorded loss; a checkpoint written
    after it is not written (the one before stays). Then raise NonFiniteError."""
    advice = "Try a smaller learning_rate or clip_grads=True."
    what = f"loss became NaN or inf at update {update_index}"
    if not last_good.saved:  # the first update of this call: nothing of this call to undo
        kept = "The weights are those this train() call started with; nothing was undone."
        no_loss = "no finite loss yet" if not history["loss"] else "the weights this train() call started with give it"
        _raise_nonfinite(model, what, value, None, kept, advice, no_loss=no_loss)
    xp = model.xp
    diverged = ~xp.isfinite(value)                                    # () or (*lead,)
    everyone = bool(diverged.all())
    last_good.restore(None if not model.lead or everyone else diverged)
    kept_loss = history["loss"][-1]  # the loss of the weights restored, measured at the undone update
    if everyone:  # the model is as after update_index - 2: drop the undone update's record too
        history["loss"].pop()
        history["update"].pop()
    if checkpointer is not None:
        checkpointer.discard()
    kept = (f"Update {update_index - 1}, after which the loss is not finite, was undone"
            + (" for these networks" if model.lead and not everyone else "")
            + ": the weights and optimizer state are back to those before it, whose loss that was.")
    _raise_nonfinite(model, what, value, kept_loss, kept, advice)
