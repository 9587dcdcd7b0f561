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
Where the batches come from is :mod:`minirnn.train.batches`; the copies that undo a diverged update,
and the NonFiniteError messages, are :mod:`minirnn.train.divergence`.
"""
from __future__ import annotations

import logging
import math
import os
import threading
import time
import warnings

import numpy as np

from .._params import is_int, reshape_if_flat, resolve_train_params
from ..errors import ParameterError, ShapeError
from ..nn.clipping import clip_by_global_norm, clip_by_norm
from ..nn.optimizers import Optimizer, check_in_dtype, get_optimizer

# The batch sources and the divergence undo used to live in this module: they moved to batches.py and
# divergence.py, unchanged. Imported back here, so `from minirnn.train.trainer import <name>` still works.
from .batches import CHECK_KINDS as CHECK_KINDS  # re-exported only
from .batches import BatchSource, _curriculum_source, _overrides, _warn_about_dt, _warn_if_mask_is_empty
from .divergence import _LastGood, _raise_nonfinite, _undo_diverged_update

logger = logging.getLogger("minirnn")


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


def _check_something_to_train(model, keep):
    """Raise ParameterError when no entry of any weight can change: every ``*_train`` flag is False,
    or ``fixed_weights`` fixes every entry of every trainable weight (of every network). ``keep``:
    :func:`_fixed_keep_masks`'s masks. Checked before any work: such a call would run to the end
    doing nothing."""
    names = model.trainable_names() if hasattr(model, "trainable_names") else list(model.raw)
    if not names:
        flags = [f"{name}_train" for name in model.raw]
        raise ParameterError(f"Nothing is left to train: every *_train flag is False ({', '.join(flags)}). "
                             "Set at least one of them to True.")
    if all(name in keep and not bool(model.xp.any(keep[name])) for name in names):
        raise ParameterError(f"Nothing is left to train: fixed_weights fixes every entry of every trainable "
                             f"weight ({', '.join(names)}). Set some entries of fixed_weights to 0 (trainable).")


def _check_in_model_dtype(model, tp, optimizer=None):
    """The numbers of this call are still what they say in the model's dtype (``learning_rate=1e-50``
    is 0 in float32: every update would be 0). Without ``optimizer``: an Optimizer object's
    hyperparameters or ``learning_rate``, and the clipping norm in use, before any batch is drawn;
    with it: the optimizer the call steps (the model's own, going on). The optimizer checks again
    when it meets the gradients (a schedule may change a value)."""
    dtype = getattr(model, "dtype", None)
    if dtype is None:
        return
    if optimizer is not None:
        optimizer.check_dtype(dtype)
        return
    spec = tp["optimizer"]
    if isinstance(spec, Optimizer):
        spec.check_dtype(dtype, remember=False)  # a configuration: left as it was
    keys = [] if isinstance(spec, Optimizer) else ["learning_rate"]
    keys += ["clip_global_norm"] if tp["clip_global_norm"] is not None else ["clip_norm"] if tp["clip_grads"] else []
    for key in keys:
        if _is_numeric(tp[key]):  # other types: the optimizer's and clipping's own checks
            check_in_dtype(f"The {key!r} training parameter", tp[key], dtype)


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


def _finite_flags(model, arrays) -> list:
    """Whether each array holds only finite numbers, as host bools from one device round trip (on a
    GPU each trip waits for the queued work, so the update's checks share one)."""
    if not arrays:
        return []
    xp = model.xp
    return [bool(f) for f in model.backend.to_host(xp.stack([xp.isfinite(a).all() for a in arrays]))]


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
    if tp["performance_cutoff"] is not None and tp["performance_measure"] is None:
        raise ParameterError("performance_cutoff needs a performance_measure too (train_params['performance_measure']).")
    keep = _fixed_keep_masks(model, tp["fixed_weights"])
    _check_something_to_train(model, keep)
    _check_in_model_dtype(model, tp)  # learning_rate and clipping; the optimizer's own below
    _check_output_paths(tp)
    batches = BatchSource(source, model)
    _warn_about_dt(model, batches)
    N_batch = batches.batch_size()
    n_updates = int(math.ceil(int(tp["training_iters"]) / N_batch))
    lr_given = isinstance(train_params, dict) and train_params.get("learning_rate") is not None
    optimizer = _resolve_optimizer(model, tp, lr_given)
    _check_in_model_dtype(model, tp, optimizer)
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
            host_mask = mask if isinstance(mask, np.ndarray) else None  # checked here: no wait on a GPU
            x, y, mask = model._check_batch(x, y, mask)
            if not empty_mask_warned:
                empty_mask_warned = _warn_if_mask_is_empty(model, mask if host_mask is None else host_mask,
                                                           first_update + epoch)
            with np.errstate(over="ignore", invalid="ignore"):  # non-finite values are checked below
                value, grads = model._loss_and_grads(x, y, mask, noise_rng=model.rng_noise)
            update_index = first_update + epoch
            value_finite, *grads_finite = _finite_flags(model, [value, *grads.values()])
            if not value_finite:  # the previous update made weights with a non-finite loss
                _undo_diverged_update(model, value, history, last_good, checkpointer, update_index)
            if checkpointer is not None:
                checkpointer.confirm()  # a held checkpoint's weights gave this finite loss: write it
            for (name, g), finite in zip(list(grads.items()), grads_finite):
                if not finite:
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
                    _warn_about_dt(model, batches)  # each stage's task, as the first one's
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
    for name, finite in zip(delta, _finite_flags(model, [model.raw[name] for name in delta])):
        if not finite:
            return name, model.raw[name].copy()
    return None
