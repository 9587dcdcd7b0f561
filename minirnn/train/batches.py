"""Where the training batches come from, and the checks on them.

Each update of the loop in :mod:`minirnn.train.trainer` takes one batch ``(x, y, mask, trial_params)``
from a :class:`BatchSource`; its checks (``performance_measure``, curriculum tests) take theirs from
the same source's separate check streams::

    source ──▶ BatchSource ──next()──────────────▶ (x, y, mask, trial_params)   the update's batch
                          └─next_check(kind)──────▶ (x, y, mask, trial_params)   a check's batch

    x: (N_batch, N_steps, N_in); y, mask: (N_batch, N_steps, N_out); an ensemble's: (K, N_batch, ...)

The source is a Task (its own seeded stream, or the batches of an overridden ``batch_generator()`` /
``get_trial_batch()``), any iterator of batches, or for an ensemble of K networks one copy of the
task per network (:func:`_network_copies`) or a list of K tasks. Below the batch source come the
checks the trainer makes on where its batches come from and on what they hold: the curriculum
stage's task (:func:`_curriculum_source`), a task ``dt`` unlike the model's (:func:`_warn_about_dt`)
and an all-zero mask (:func:`_warn_if_mask_is_empty`). The trainer imports this module; it never
imports the trainer.
"""
from __future__ import annotations

import copy
import logging
import warnings
import weakref

import numpy as np

from ..errors import ParameterError, ShapeError, WeightsFileError

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
