"""The declarative table of every model and training option: name, default, one-line doc.

``Basic(params)`` and ``model.train(task, train_params)`` validate against these tables once, at
the door (STYLE.md P8). A model params dict may also carry a task's parameters (PsychRNN scripts
pass ``task.get_task_params()`` with ``N_rec`` added) and every key of a weights file: those are
ignored. Only a *near miss* of a real option (``dale_ration``, ``N_recs``) is an error.
"""
from __future__ import annotations

import difflib
import os
import warnings

import numpy as np

from .errors import ParameterError, did_you_mean

_REQUIRED = object()


def is_int(value, low: int | None = None) -> bool:
    """True for an integer, Python or NumPy but never a bool, that is ``>= low`` when ``low`` is given."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        return False
    return low is None or value >= low

# name: (default, doc)
MODEL_PARAMS = {
    "name": ("rnn", "a label for the model (PsychRNN's variable scope; any string)"),
    "N_in": (_REQUIRED, "number of inputs"),
    "N_rec": (_REQUIRED, "number of recurrent units"),
    "N_out": (_REQUIRED, "number of outputs"),
    "dt": (_REQUIRED, "time step (ms)"),
    "tau": (_REQUIRED, "time constant (ms): a number or a per-unit array of shape (N_rec,)"),
    "N_steps": (None, "steps per trial (from the task; the model accepts any length)"),
    "N_batch": (None, "trials per batch (from the task; test() accepts any batch size)"),
    "T": (None, "trial duration (ms), from the task"),
    "alpha": (None, "dt / tau, from the task (recomputed from dt and tau)"),
    "rec_noise": (0.0, "recurrent noise level sigma_rec; noise = sqrt(2 alpha) sigma_rec N(0, 1)"),
    "transfer_function": ("relu", "relu | tanh | sigmoid | softplus | linear, or a pair (f, df)"),
    "loss_function": ("mean_squared_error", "mean_squared_error | binary_cross_entropy | a callable"),
    "load_weights_path": (None, "a .npz written by save() (minirnn or PsychRNN) to start from"),
    "initializer": (None, "a WeightInitializer instance (default GaussianSpectralRadius)"),
    "autapses": (True, "False removes self-connections (zero diagonal of rec_connectivity)"),
    "dale_ratio": (None, "fraction of excitatory units, in (0, 1); None: no Dale's principle"),
    "input_connectivity": (None, "0/1 mask (N_rec, N_in) of allowed input weights"),
    "rec_connectivity": (None, "0/1 mask (N_rec, N_rec) of allowed recurrent weights"),
    "output_connectivity": (None, "0/1 mask (N_out, N_rec) of allowed output weights"),
    "which_rand_init": ("glorot_gauss", "glorot_gauss | glorot_unif | const_gauss | const_unif"),
    "which_rand_W_rec_init": (None, "as which_rand_init, for W_rec (default: which_rand_init)"),
    "init_minval": (-0.1, "lower bound of const_unif"),
    "init_maxval": (0.1, "upper bound of const_unif"),
    "spec_rad": (1.1, "spectral radius of the initial W_rec (GaussianSpectralRadius)"),
    "W_in": (None, "initial raw W_in (N_rec, N_in), used verbatim"),
    "W_rec": (None, "initial raw W_rec (N_rec, N_rec), used verbatim"),
    "W_out": (None, "initial raw W_out (N_out, N_rec), used verbatim"),
    "b_rec": (None, "initial b_rec (N_rec,)"),
    "b_out": (None, "initial b_out (N_out,)"),
    "init_state": (None, "initial state (1, N_rec) or (N_rec,)"),
    "W_in_train": (True, "False freezes W_in"),
    "W_rec_train": (True, "False freezes W_rec"),
    "W_out_train": (True, "False freezes W_out"),
    "b_rec_train": (True, "False freezes b_rec"),
    "b_out_train": (True, "False freezes b_out"),
    "init_state_train": (True, "False freezes init_state"),
    "L1_in": (0.0, "L1 penalty on the effective W_in (mean over entries)"),
    "L1_rec": (0.0, "L1 penalty on the effective W_rec"),
    "L1_out": (0.0, "L1 penalty on the effective W_out"),
    "L2_in": (0.0, "L2 penalty on the effective W_in"),
    "L2_rec": (0.0, "L2 penalty on the effective W_rec"),
    "L2_out": (0.0, "L2 penalty on the effective W_out"),
    "L2_firing_rate": (0.0, "L2 penalty on the rates f(x) (mean over trials, steps, units)"),
    "custom_regularization": (None, "callable(weights_eff, rates) -> (value, {name: grad})"),
    "dtype": ("float32", "float32 (training default) or float64 (gradient checks)"),
    "backend": ("auto", "auto | numpy | numba | cupy"),
    "seed": (None, "int, SeedSequence, or a weights file's seed record {'entropy', 'spawn_key'}: init, noise "
                   "and eval streams (None: from np.random)"),
}

TRAIN_PARAMS = {
    "learning_rate": (0.001, "learning rate of an optimizer given by name (a number; an ensemble: or one per "
                             "network); a call without one sets an optimizer built from a name back to 0.001 (as "
                             "PsychRNN) and leaves one built from your object as it is"),
    "training_iters": (50000, "number of trials to train on (updates = ceil(iters / N_batch)); an int or a whole "
                              "float (1e5)"),
    "loss_epoch": (10, "record the loss every this many updates"),
    "verbosity": (True, "show progress (a tqdm bar) and loss reports"),
    "save_weights_path": (None, "save the weights here after training"),
    "save_training_weights_epoch": (100, "save intermediate weights every this many updates"),
    "training_weights_path": (None, "prefix of intermediate weight files (None: none saved)"),
    "curriculum": (None, "a Curriculum: replaces the task"),
    "optimizer": ("adam", "adam | sgd | momentum | rmsprop, or an Optimizer instance (a configuration: each "
                          "model steps its own copy); not given: the model's current optimizer goes on"),
    "clip_grads": (True, "clip each parameter's gradient to norm clip_norm (PsychRNN)"),
    "clip_norm": (1.0, "the norm clip_grads clips to (an ensemble: or one per network)"),
    "clip_global_norm": (None, "clip the global gradient norm (per network) to this value instead (an ensemble: "
                               "or one per network)"),
    "fixed_weights": (None, "dict name -> 0/1 array; entries with 1 never change"),
    "performance_cutoff": (None, "stop when performance_measure reaches this value"),
    "performance_measure": (None, "f(trial_batch, trial_y, output_mask, output, epoch, losses, verbosity)"),
    "performance_epoch": (1, "evaluate performance_measure every this many updates"),
    "blas_threads": ("auto", "BLAS threads while training: 'auto' (1 for N_rec <= 128), an int, or 0 (leave BLAS alone)"),
    "checkpoint_path": (None, "write a resumable checkpoint here"),
    "checkpoint_epoch": (100, "checkpoint every this many updates"),
}

# Keys of weights files (ours and PsychRNN's) that may travel inside params: ignored quietly.
_WEIGHTS_FILE_KEYS = {"Dale_rec", "Dale_out", "minirnn", "init_hidden", "init_cell"}


def check_param_keys(params: dict, table, owner: str, uses=None) -> tuple[dict, list]:
    """Sort the keys of a PsychRNN-style params dict against the option names in ``table``.

    Returns ``(kept, slots)``. ``kept`` holds the known keys, weights-file keys and every other key
    that is not a near miss (a task's own settings: carried, not used); ``slots`` lists the
    optimizer-state keys (``W_rec/Adam``), which ``kept`` leaves out. Raises ParameterError for a
    key that is not a string, a training option (pass it in train_params) and a near miss of a name
    in ``table``: a case-only variant (``Rec_Noise``) or a difflib match at cutoff 0.8 (``N_recs``).

    Keys that ``params.task_keys`` lists (``task.get_task_params()`` returns such a dict) are the
    task's own settings, as in PsychRNN: kept whatever their names (``N_ring`` is no typo of ``N_in``).

    ``uses``: for an owner that reads only a few of ``table``'s keys (the simulators), those keys;
    a near miss's message then lists them, and a non-string key's message names ``owner`` first.
    """
    task_keys = getattr(params, "task_keys", frozenset())  # marked by Task.get_task_params()
    out, slots = {}, []
    for key, value in params.items():
        if key in table or key in _WEIGHTS_FILE_KEYS or key in task_keys:
            out[key] = value
            continue
        if not isinstance(key, str):
            raise ParameterError(f"Parameter names must be strings. Got {key!r}." if uses is None else
                                 f"{owner}: parameter names must be strings. Got {key!r}.")
        if "/" in key:
            slots.append(key)
            continue
        if key in TRAIN_PARAMS:
            raise ParameterError(f"{key!r} is a training parameter, not a parameter of {owner}: pass it in "
                                 f"train_params, as in model.train(task, {{{key!r}: ...}}).")
        close = [k for k in table if k.lower() == key.lower()] or difflib.get_close_matches(key, list(table), n=1,
                                                                                             cutoff=0.8)
        if close:
            raise ParameterError(f"Unknown parameter {key!r} for {owner}; did you mean {close[0]!r}?"
                                 + ("" if uses is None else f" {owner} uses {sorted(uses)}.")
                                 + f" If {key!r} is a setting of your task, pass task.get_task_params() itself "
                                 f"(it marks the task's keys; dict(...) copies do not), or rename the setting.")
        out[key] = value  # a task's own setting (coherence, ...): carried, not used
    return out, slots


def resolve_model_params(params: dict, owner: str = "Basic", extra: dict | None = None) -> dict:
    """Validate a PsychRNN-style params dict; return a new dict with every default filled in.

    Raises ParameterError for a missing required key or a near-miss of a known key. Unknown keys
    that are not near misses (a task's own settings) are kept but ignored. Optimizer slots
    (``W_rec/Adam``) and other weights-file keys give at most one warning.
    """
    if not isinstance(params, dict):
        raise ParameterError(f"{owner} takes a dict of parameters. Got {type(params).__name__} instead.")
    table = dict(MODEL_PARAMS, **(extra or {}))
    out, slots = check_param_keys(params, table, owner)
    if slots:
        warnings.warn(f"Ignoring {len(slots)} optimizer-state entries in params (e.g. {slots[0]!r}); "
                      "minirnn keeps optimizer state out of the weights.", stacklevel=3)
    for key, (default, _) in table.items():
        if out.get(key) is None:
            if default is _REQUIRED:
                raise ParameterError(f"{owner} needs the parameter {key!r} ({table[key][1]}).")
            out[key] = default
    check_model_values(out, owner)
    return out


# ---- value checks (types and ranges), so a bad value never reaches NumPy as a raw error ----------

_NONNEGATIVE = ("rec_noise", "L1_in", "L1_rec", "L1_out", "L2_in", "L2_rec", "L2_out", "L2_firing_rate")
_POSITIVE = ("dt", "tau", "spec_rad")
_FINITE = ("init_minval", "init_maxval")
_BOOLS = ("autapses", "W_in_train", "W_rec_train", "W_out_train", "b_rec_train", "b_out_train", "init_state_train")


def _numbers(value, who: str, rule: str, scalar: bool = False):
    """``value`` (a number, or an array of numbers unless ``scalar``) as a float64 array."""
    if isinstance(value, (str, bytes, bool)) or value is None:
        arr = None
    else:
        try:
            arr = np.asarray(value, dtype=np.float64)
        except (TypeError, ValueError):
            arr = None
    if scalar and arr is not None and arr.ndim != 0:
        raise ParameterError(f"{who} must be a single finite number{rule}. Got {value!r} instead (for one value "
                             "per network of an ensemble, use network_params=[{...}, ...]).")
    if arr is None or arr.size == 0 or not np.all(np.isfinite(arr)):
        raise ParameterError(f"{who} must be a finite number{rule}" + ("" if scalar else " (or an array of them)")
                             + f". Got {value!r} instead.")
    return arr


DTYPES = ("float32", "float64")


def check_dale_ratio(r, owner: str = "Basic", source: str = ""):
    """``r`` as a float in (0, 1), or None; else ParameterError (``source``: where it came from)."""
    if r is None:
        return None
    if isinstance(r, bool) or not isinstance(r, (int, float, np.floating)) or not 0 < r < 1:
        raise ParameterError(f"The 'dale_ratio' parameter of {owner}{source} must be a float in (0, 1) or None. "
                             f"Got {r!r} instead.")
    return float(r)


def check_model_values(p: dict, owner: str = "Basic") -> None:
    """Types and ranges of the model options (ParameterError naming the key): sizes, dtype,
    ``dale_ratio``, the numeric and the boolean ones."""
    for key in ("N_in", "N_rec", "N_out"):
        if key not in p:  # a simulator's params need not say
            continue
        value = p[key]
        if not is_int(value, 1):
            raise ParameterError(f"The {key!r} parameter of {owner} must be a positive int. Got {value!r} instead.")
    if "dtype" in p and p["dtype"] not in DTYPES:
        raise ParameterError(f"The 'dtype' parameter must be one of {list(DTYPES)}. Got {p['dtype']!r} instead.")
    if not isinstance(p.get("dale_ratio"), np.ndarray):  # an array comes from a weights file: checked on loading
        check_dale_ratio(p.get("dale_ratio"), owner)
    if "tau" in p and "N_rec" in p:
        tau = _numbers(p["tau"], f"The 'tau' parameter of {owner}", " > 0")  # a ragged list is named, not a ValueError
        if tau.ndim not in (0, 1) or (tau.ndim == 1 and tau.shape[0] != p["N_rec"]):
            from .errors import ShapeError

            raise ShapeError(f"tau has shape {tau.shape} but must be a number or an array of shape (N_rec,) = "
                             f"({p['N_rec']},).")
    for key in _POSITIVE + _NONNEGATIVE + _FINITE:
        if key not in p or (key == "spec_rad" and p[key] is None):
            continue
        who = f"The {key!r} parameter of {owner}"
        arr = _numbers(p[key], who, " > 0" if key in _POSITIVE else " >= 0" if key in _NONNEGATIVE else "",
                       scalar=key != "tau")  # tau may be per unit, (N_rec,)
        if key in _POSITIVE and (arr <= 0).any() or key in _NONNEGATIVE and (arr < 0).any():
            raise ParameterError(f"{who} must be {'> 0' if key in _POSITIVE else '>= 0'}. Got {p[key]!r} instead.")
    for key in _BOOLS:
        if key in p and not isinstance(p[key], (bool, np.bool_)):
            raise ParameterError(f"The {key!r} parameter of {owner} must be True or False. Got {p[key]!r} instead.")
    if "init_minval" in p and "init_maxval" in p and float(p["init_minval"]) > float(p["init_maxval"]):
        raise ParameterError(f"init_minval ({p['init_minval']!r}) must not exceed init_maxval ({p['init_maxval']!r}) "
                             f"in the parameters of {owner}.")


_POSITIVE_INTS = ("training_iters", "loss_epoch", "save_training_weights_epoch", "performance_epoch",
                  "checkpoint_epoch")
_PATHS = ("save_weights_path", "training_weights_path", "checkpoint_path")


def check_train_values(tp: dict) -> None:
    """Types and ranges of the training options (ParameterError naming the key). The counts of
    :data:`_POSITIVE_INTS` may be whole floats, as in PsychRNN (``training_iters=1e5``): they are
    made ints in ``tp``."""
    for key in _POSITIVE_INTS:
        value = tp[key]
        if isinstance(value, (float, np.floating)) and float(value).is_integer():
            value = int(value)  # 1e5, 16.0; not 2.5, nan or inf
        if not is_int(value, 1):
            raise ParameterError(f"The {key!r} training parameter must be a positive int (a whole float such as "
                                 f"1e5 is accepted). Got {tp[key]!r} instead.")
        tp[key] = int(value)
    for key in ("clip_norm",) + (("clip_global_norm",) if tp["clip_global_norm"] is not None else ()):
        arr = _numbers(tp[key], f"The {key!r} training parameter", " > 0")
        if (arr <= 0).any():
            raise ParameterError(f"The {key!r} training parameter must be > 0. Got {tp[key]!r} instead.")
    for key in ("clip_grads", "verbosity"):
        if not isinstance(tp[key], (bool, np.bool_, int)):
            raise ParameterError(f"The {key!r} training parameter must be True or False. Got {tp[key]!r} instead.")
    if tp["performance_cutoff"] is not None:
        _numbers(tp["performance_cutoff"], "The 'performance_cutoff' training parameter", "")
    measure = tp["performance_measure"]
    if measure is not None and (not callable(measure) or not _takes_positional(measure, 7)):
        raise ParameterError("The 'performance_measure' training parameter must be a callable f(trial_batch, "
                             f"trial_y, output_mask, output, epoch, losses, verbosity) of 7 arguments. Got {measure!r}.")
    for key in _PATHS:
        if tp[key] is not None and not isinstance(tp[key], (str, os.PathLike)):
            raise ParameterError(f"The {key!r} training parameter must be a path (str). Got {tp[key]!r} instead.")
    threads = tp["blas_threads"]
    if threads != "auto" and not is_int(threads, 0):
        raise ParameterError("The 'blas_threads' training parameter must be 'auto', a positive int, or 0 (leave BLAS "
                             f"alone). Got {threads!r} instead.")
    if tp["fixed_weights"] is not None and not isinstance(tp["fixed_weights"], dict):
        raise ParameterError("The 'fixed_weights' training parameter must be a dict name -> 0/1 array. "
                             f"Got {type(tp['fixed_weights']).__name__} instead.")


def _takes_positional(fn, n: int) -> bool:
    """``fn`` can be called with ``n`` positional arguments (True when its signature is unknown)."""
    import inspect

    try:
        inspect.signature(fn).bind(*range(n))
    except TypeError:
        return False
    except ValueError:  # no signature (some builtins): cannot tell
        pass
    return True


def resolve_train_params(train_params: dict | None) -> dict:
    """Validate ``train_params``: unknown keys are errors (with a suggestion); None means default."""
    train_params = {} if train_params is None else train_params
    if not isinstance(train_params, dict):
        raise ParameterError(f"train_params must be a dict. Got {type(train_params).__name__} instead.")
    for key in train_params:
        if key not in TRAIN_PARAMS:
            raise ParameterError(f"Unknown training parameter {key!r}{did_you_mean(key, TRAIN_PARAMS)} "
                                 f"Known: {sorted(TRAIN_PARAMS)}.")
    tp = {k: (d if train_params.get(k) is None else train_params[k]) for k, (d, _) in TRAIN_PARAMS.items()}
    check_train_values(tp)
    return tp


def describe_params() -> str:
    """A printable table of every model and training option with its default and meaning."""
    lines = []
    for title, table in (("Model params", MODEL_PARAMS), ("train_params", TRAIN_PARAMS)):
        lines.append(title)
        for k, (d, doc) in table.items():
            d = "required" if d is _REQUIRED else repr(d)
            lines.append(f"  {k:<24} {d:<22} {doc}")
    return "\n".join(lines)


def reshape_if_flat(value, shape):
    """``value`` reshaped to ``shape`` when it holds the same entries with only size-1 axes added or
    removed (``(N,)`` for ``(1, N)``, a flat copy of a vector); otherwise unchanged, so that a shape
    check can reject it. A transposed matrix is never silently reshaped."""
    current = tuple(np.shape(value))
    if current == tuple(shape) or int(np.prod(current)) != int(np.prod(shape)):
        return value
    squeezed = lambda s: tuple(n for n in s if n != 1)  # noqa: E731
    return np.reshape(value, shape) if squeezed(current) == squeezed(shape) else value
