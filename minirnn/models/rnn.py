"""The shared base of every model: validated parameters, raw weights and their constraints,
randomness, and the wiring of ``train`` / ``test`` / ``save`` / ``get_weights``.

The math of a model lives in its subclass (:mod:`minirnn.models.basic`, :mod:`minirnn.models.lstm`):
``_forward`` and ``_loss_and_grads``. This file knows only that a model has raw parameters
(``self.raw``, a dict of arrays with optional leading network axes ``self.lead``), some of which
pass through masks and Dale's signs (:mod:`minirnn.nn.constraints`) on their way to the dynamics.
"""
from __future__ import annotations


import numpy as np

from .. import __version__
from .._params import check_model_values, is_int, reshape_if_flat, resolve_model_params
from ..backends import get_backend
from ..errors import NonFiniteError, ParameterError, ShapeError, did_you_mean
from ..nn import losses
from ..nn.activations import get_activation
from ..nn.constraints import effective_weight

#: parameters that may differ between the networks of an ensemble (``network_params``)
PER_NETWORK_PARAMS = ("rec_noise", "tau", "dale_ratio", "L1_in", "L1_rec", "L1_out", "L2_in", "L2_rec",
                      "L2_out", "L2_firing_rate", "init_state", "W_in", "W_rec", "W_out", "b_rec", "b_out",
                      "input_connectivity", "rec_connectivity", "output_connectivity", "spec_rad")


#: NumPy's default SeedSequence pool size (a record leaves it out when it is this)
_DEFAULT_POOL_SIZE = np.random.SeedSequence(0).pool_size
_SEED_RECORD_KEYS = ("entropy", "spawn_key", "pool_size")


def root_seed_sequence(seed) -> np.random.SeedSequence:
    """``params["seed"]`` -> a SeedSequence. ``None`` takes its entropy from ``np.random``.

    ``seed`` is an int >= 0, a SeedSequence, None, or the dict :func:`seed_record` writes into a
    weights file (``{"entropy": 11, "spawn_key": [1]}``: network 1 of an ensemble built with ``seed=11``).
    """
    if isinstance(seed, np.random.SeedSequence):
        # a fresh copy: spawning from the caller's object would advance it, and the same seed must
        # always give the same streams
        return np.random.SeedSequence(entropy=seed.entropy, spawn_key=seed.spawn_key, pool_size=seed.pool_size)
    if isinstance(seed, dict):
        return _seed_sequence_from_record(seed)
    if seed is None:
        seed = int(np.random.randint(2**31 - 1))
    if not is_int(seed, 0):
        raise ParameterError("The 'seed' parameter must be an int >= 0, a numpy SeedSequence, a recorded seed "
                             f"(a dict with 'entropy' and 'spawn_key') or None. Got {seed!r} instead.")
    return np.random.SeedSequence(int(seed))


def seed_record(seed_seq: np.random.SeedSequence) -> dict:
    """What reproduces ``seed_seq``, as JSON: ``{"entropy": ..., "spawn_key": [...]}``, plus
    ``"pool_size"`` when it is not NumPy's default.

    The entropy alone is not enough: network k of an ensemble built with ``seed=11`` runs on
    ``SeedSequence(11, spawn_key=(k,))``. ``params["seed"]`` takes this dict back, so
    ``Basic(dict(params, seed=seed_record(ens.seed_sequences[k])))`` is network k, bit for bit.
    """
    from ..io import jsonable

    record = {"entropy": jsonable(seed_seq.entropy), "spawn_key": [int(k) for k in seed_seq.spawn_key]}
    if seed_seq.pool_size != _DEFAULT_POOL_SIZE:
        record["pool_size"] = int(seed_seq.pool_size)
    return record


def _seed_sequence_from_record(record: dict) -> np.random.SeedSequence:
    """The SeedSequence of a :func:`seed_record` dict; a malformed one is a ParameterError."""
    unknown = [key for key in record if key not in _SEED_RECORD_KEYS]
    problem = (f"it has unknown keys {unknown} (allowed: {', '.join(_SEED_RECORD_KEYS)})" if unknown
               else "it has no 'entropy'" if record.get("entropy") is None else None)
    if problem is None:
        try:
            return np.random.SeedSequence(entropy=record["entropy"], spawn_key=tuple(record.get("spawn_key", ())),
                                          pool_size=record.get("pool_size", _DEFAULT_POOL_SIZE))
        except (TypeError, ValueError) as exc:
            problem = str(exc)
    raise ParameterError(f"The 'seed' parameter is a dict but not a recorded seed such as {{'entropy': 11, "
                         f"'spawn_key': [1]}} (a weights file's 'seed' entry): {problem}. Got {record!r} instead.")


def spawn_rngs(seed_seq: np.random.SeedSequence):
    """The three streams of DESIGN.md §5, in order: init (weights), noise (training), eval."""
    return tuple(np.random.Generator(np.random.PCG64(s)) for s in seed_seq.spawn(3))


def _shape_of(a, name) -> tuple:
    """The shape of an array-like; a ragged nested list is a ShapeError naming ``name``."""
    if hasattr(a, "shape"):
        return tuple(a.shape)
    try:
        return tuple(np.shape(a))
    except ValueError:
        raise ShapeError(f"{name} is a ragged nested sequence (rows of different lengths); it must be a "
                         "rectangular array.") from None


def _takes_psychrnn_arguments(fn) -> bool:
    """``fn`` looks like PsychRNN's ``custom_regularization(model, params)``: its first parameter is
    named ``model``, or its second ``params``."""
    import inspect

    try:
        names = list(inspect.signature(fn).parameters)
    except (TypeError, ValueError):
        return False
    return names[:1] == ["model"] or names[1:2] == ["params"]


class RNN:
    """Base class of minirnn's models. Subclasses define the dynamics.

    Attributes
    ----------
    raw : dict name -> array, the trainable raw parameters (``(*lead, ...)``).
    masks : dict name -> 0/1 connectivity mask of a constrained weight.
    signs : dict name -> Dale sign vector ``(*lead, 1, pre)``, or None without Dale.
    lead : tuple, the leading network axes (``()`` for one network).
    """

    #: raw parameter names, in a fixed order (subclasses override)
    param_names: tuple = ()
    #: the raw parameters that pass through masks / Dale's signs
    constrained: tuple = ()
    #: attributes besides raw / masks / signs / reg_coefs holding one entry per network of an ensemble
    per_network_arrays: tuple = ()

    def __init__(self, params: dict, n_networks: int | None = None, seeds=None, network_params=None):
        p = self.params = resolve_model_params(params, owner=type(self).__name__, extra=self._extra_params())
        self._user_keys = {k for k, v in params.items() if v is not None}
        self._network_keys = frozenset()  # an ensemble's network_params keys (_init_ensemble)
        self._task_keys = frozenset(getattr(params, "task_keys", ()))  # a task's own settings (TaskParams)
        self.name = p["name"]
        self.dtype = np.dtype(p["dtype"])  # sizes, dtype and the other values were checked by resolve_model_params
        self.backend = get_backend(p["backend"])
        self.xp = self.backend.xp
        self.N_in, self.N_rec, self.N_out = int(p["N_in"]), int(p["N_rec"]), int(p["N_out"])
        self.loss_function = losses.get_loss(p["loss_function"], params)
        custom = p["custom_regularization"]
        if custom is not None and (not callable(custom) or _takes_psychrnn_arguments(custom)):
            raise ParameterError("The 'custom_regularization' parameter must be a callable(weights_eff, rates) -> "
                                 f"(value, {{name: gradient}}). Got {custom!r} instead" + (
                                     ", which takes PsychRNN's (model, params): that form builds a TensorFlow term "
                                     "for autodiff; minirnn's gets the effective weights and the rates and returns "
                                     "the penalty with its gradient." if callable(custom) else "."))
        self.activation = get_activation(p["transfer_function"])
        self.optimizer = None  # created by the first train() call, kept across calls
        self.history = None
        if n_networks is None:
            if seeds is not None or network_params is not None:
                raise ParameterError("seeds and network_params describe an ensemble: give n_networks too.")
            self.lead = ()
            self.seed_sequence = root_seed_sequence(p["seed"])
            self.rng_init, self.rng_noise, self.rng_eval = spawn_rngs(self.seed_sequence)
            self.network_params = [p]
        else:
            self._init_ensemble(n_networks, seeds, network_params)
        self._build()

    def _init_ensemble(self, K, seeds, network_params):
        """K networks on a leading axis: network k gets the streams of a single model with
        ``seed=seeds[k]`` and the params ``{**params, **network_params[k]}``."""
        if not is_int(K, 1):
            raise ParameterError(f"n_networks must be a positive int. Got {K!r} instead.")
        K = int(K)
        if seeds is None:
            seeds = root_seed_sequence(self.params["seed"]).spawn(K)
        seeds = list(seeds)
        if len(seeds) != K:
            raise ShapeError(f"seeds has {len(seeds)} entries but n_networks={K}.")
        network_params = [{}] * K if network_params is None else list(network_params)
        # their keys are lost once merged into each network's params: kept for the warnings that name them
        self._network_keys = frozenset(key for o in network_params if isinstance(o, dict)
                                       for key, value in o.items() if value is not None)
        if len(network_params) != K:
            raise ShapeError(f"network_params has {len(network_params)} entries but n_networks={K}.")
        per_network = set(PER_NETWORK_PARAMS)
        self.network_params = []
        for k, override in enumerate(network_params):
            if not isinstance(override, dict):
                raise ParameterError(f"network_params[{k}] must be a dict of per-network parameters. "
                                     f"Got {override!r} instead.")
            for key in override:
                if key not in per_network:
                    known = key in self.params or key in per_network
                    raise ParameterError(f"network_params[{k}] sets {key!r}" + (
                        f", which cannot differ between the networks of an ensemble; per-network parameters: "
                        f"{sorted(per_network)}." if known else f", which is not a parameter"
                        f"{did_you_mean(key, per_network)} Per-network parameters: {sorted(per_network)}."))
            pk = dict(self.params, **override, seed=seeds[k])
            check_model_values(pk, f"{type(self).__name__} (network_params[{k}])")
            self.network_params.append(pk)
        self.lead = (K,)
        self.seeds = seeds
        self.seed_sequences = [root_seed_sequence(s) for s in seeds]
        self.seed_sequence = self.seed_sequences[0]
        streams = [spawn_rngs(s) for s in self.seed_sequences]
        self.rng_init, self.rng_noise, self.rng_eval = (list(r) for r in zip(*streams))

    # ---- ensembles ----------------------------------------------------------------------------
    def network(self, k: int) -> "RNN":
        """Network ``k`` of an ensemble as an ordinary single model.

        Its weights, constraints and random streams (continuing where the ensemble's stream for
        network ``k`` stands) are copies; the optimizer state is not carried over.
        """
        import copy

        if not self.lead:
            raise ParameterError("network(k) is for ensembles; this model is a single network.")
        if not 0 <= k < self.lead[0]:
            raise ParameterError(f"network index {k} is out of range for an ensemble of {self.lead[0]} networks.")
        single = copy.copy(self)
        single.lead = ()
        single.params = dict(self.network_params[k])
        single.network_params = [single.params]
        single.seed_sequence = self.seed_sequences[k]
        single.rng_init, single.rng_noise, single.rng_eval = (copy.deepcopy(r[k]) for r in
                                                               (self.rng_init, self.rng_noise, self.rng_eval))
        take = lambda a: a[k].copy()  # noqa: E731
        single.raw = {n: take(a) for n, a in self.raw.items()}
        single.masks = {n: take(a) for n, a in self.masks.items()}
        single.signs = {n: take(a) for n, a in self.signs.items()}
        for name in self.per_network_arrays:  # e.g. Basic's alpha and noise_scale
            setattr(single, name, take(getattr(self, name)))
        if hasattr(single, "noise_scale"):
            single.has_noise = bool((single.noise_scale > 0).any())
        single.reg_coefs = {n: take(c) for n, c in self.reg_coefs.items()}
        single.optimizer, single.history = None, None
        for name in ("seeds", "seed_sequences"):
            single.__dict__.pop(name, None)
        return single

    #: PsychRNN's model attributes that are its params (``model.dt``, ``model.N_batch``, ...), read from ``params``
    PARAMS_AS_ATTRIBUTES = ("dt", "tau", "N_steps", "N_batch", "rec_noise", "transfer_function", "dale_ratio",
                            "load_weights_path", "initializer", "W_in_train", "W_rec_train", "W_out_train",
                            "b_rec_train", "b_out_train", "init_state_train")

    def __getattr__(self, name):
        # only called when normal lookup fails; "params" is checked first so that copy/pickle do not recurse
        params = self.__dict__.get("params")
        if params is not None and name in self.PARAMS_AS_ATTRIBUTES:
            return params.get(name)
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    @property
    def n_networks(self) -> int | None:
        """K for an ensemble, None for a single network."""
        return self.lead[0] if self.lead else None

    # ---- hooks for subclasses ----------------------------------------------------------------
    def _extra_params(self) -> dict:
        return {}

    def _build(self):
        raise NotImplementedError

    # ---- checks shared by every entry point --------------------------------------------------
    def _as_array(self, a, name, shape=None, nonnegative=False):
        """Cast a user array to the model's dtype and backend once, checking shape and finiteness (and,
        for a mask, that it is ``>= 0``). A host array is cast and checked on the host, then moved: on a
        GPU a check of device data would wait for all the work queued before it."""
        on_device = hasattr(a, "__cuda_array_interface__")
        a = a if on_device else np.asarray(a)
        if shape is not None and tuple(a.shape) != tuple(shape):
            raise ShapeError(f"{name} has shape {tuple(a.shape)} but must be {tuple(shape)}.")
        if a.dtype.kind not in "fiub":
            raise ParameterError(f"{name} must hold numbers. Got dtype {a.dtype}.")
        xp = self.xp if on_device else np
        a = xp.asarray(a, dtype=self.dtype)  # the cast first: 1e300 is inf in float32
        if not bool(xp.isfinite(a).all()):
            raise NonFiniteError(f"{name} contains NaN or inf.")
        if nonnegative and bool((a < 0).any()):
            raise ParameterError(f"{name} must hold weights >= 0 (1: the output is trained at that step, 0: "
                                 "ignored). It has negative entries.")
        return a if on_device else self.xp.asarray(a)

    def _check_batch(self, x, y=None, mask=None):
        """Validate and cast a batch: ``x (B, T, N_in)``, ``y, mask (B, T, N_out)``."""
        lead_names = "(*lead, N_batch, N_steps, {})" if self.lead else "(N_batch, N_steps, {})"
        ndims = {3, 3 + len(self.lead)}  # an ensemble takes shared (B, T, N) or per-network (*lead, B, T, N)
        shape_x = _shape_of(x, "x")
        if len(shape_x) not in ndims or shape_x[-1] != self.N_in or shape_x[:-3] not in ((), self.lead):
            raise ShapeError(f"x has shape {shape_x} but this model has N_in={self.N_in}; "
                             f"x must be {lead_names.format('N_in')}.")
        if 0 in shape_x[-3:-1]:
            raise ShapeError(f"x has shape {shape_x}: a batch needs at least one trial and one time step.")
        x = self._as_array(x, "x")
        if y is None:
            return x
        want = tuple(x.shape[:-1]) + (self.N_out,)
        arrays = [x]
        for name, a in (("y", y), ("mask", mask)):
            shape_a = _shape_of(a, name)
            if shape_a[-3:] != want[-3:] or len(shape_a) not in ndims or shape_a[:-3] not in ((), self.lead):
                raise ShapeError(f"{name} has shape {shape_a} but must be {want} to match x {tuple(x.shape)} "
                                 f"with N_out={self.N_out}.")
            arrays.append(self._as_array(a, name, nonnegative=name == "mask"))
        return tuple(arrays)

    # ---- weights --------------------------------------------------------------------------------
    def effective_weights(self) -> dict:
        """Raw parameters with masks and Dale's signs applied (the weights the dynamics use)."""
        eff = dict(self.raw)
        for name in self.constrained:
            eff[name] = effective_weight(self.raw[name], self.masks[name], self.signs.get(name))
        return eff

    def get_weights(self) -> dict:
        """Effective weights and constraint arrays as NumPy arrays, PsychRNN's keys (no optimizer state)."""
        raise NotImplementedError

    def set_weights(self, weights: dict):
        """Set raw parameters from a dict of arrays (e.g. effective weights of a file)."""
        for name, value in weights.items():
            if name not in self.raw:
                raise ParameterError(f"Unknown weight {name!r}; this model has {list(self.raw)}.")
            self.raw[name] = self._as_array(reshape_if_flat(value, self.raw[name].shape), name, self.raw[name].shape)

    def metadata(self) -> dict:
        """The JSON record saved with the weights (DESIGN.md §7)."""
        p = self.params
        tau = np.asarray(p["tau"]).tolist()
        return {
            "format_version": 1,
            "minirnn_version": __version__,
            "class": type(self).__name__,
            "transfer_function": self.activation.name,
            "dtype": str(self.dtype),
            "dt": float(p["dt"]),
            "tau": tau,
            "rec_noise": float(np.asarray(p["rec_noise"]).mean()),
            "dale_ratio": p["dale_ratio"],
            "seed": seed_record(self.seed_sequence),  # params["seed"] takes it back: the same network
            "seed_entropy": str(self.seed_sequence.entropy),  # the older record, kept for readers of it
            "N_in": self.N_in, "N_rec": self.N_rec, "N_out": self.N_out,
        }

    def save(self, save_path: str) -> str:
        """Write the weights to ``save_path`` (``.npz`` appended if missing), atomically.

        The file holds PsychRNN's keys (effective weights, masks, ``Dale_rec``/``Dale_out``,
        ``dale_ratio``), so PsychRNN tools read it, plus a ``minirnn`` JSON string. No optimizer
        state. Returns the path written.
        """
        from .. import io

        if self.lead:
            raise ParameterError(f"save() writes one network; this is an ensemble of {self.lead[0]}. "
                                 "Save each with model.network(k).save(path_k).")
        return io.save_model(self, save_path)

    # ---- use ------------------------------------------------------------------------------------
    def test(self, trial_batch):
        """Run trials forward (recurrent noise on when ``rec_noise > 0``, from the eval stream).

        Parameters
        ----------
        trial_batch : x ``(B, T, N_in)`` (an array or nested lists), or the tuple ``(x, y, mask, params)``
            that ``task.get_trial_batch()`` returns. An ensemble of K networks takes the same ``x`` for
            every network, or one batch per network, ``(K, B, T, N_in)``.

        Returns
        -------
        outputs : NumPy array ``(B, T, N_out)``; for an ensemble ``(K, B, T, N_out)``, network k at ``[k]``.
        states : NumPy array ``(B, T, N_rec)``; for an ensemble ``(K, B, T, N_rec)``.
        """
        x = trial_batch[0] if isinstance(trial_batch, tuple) else trial_batch
        x = self._check_batch(x)
        z, states = self._run(x, noise_rng=self.rng_eval)
        return self.backend.to_host(z), self.backend.to_host(states)

    def _run(self, x, noise_rng=None, perturb=None):
        raise NotImplementedError

    def loss_and_grads(self, x, y, mask):
        """The objective (loss + regularizers), noise off, and its gradient for every trainable
        raw parameter: ``(float, {name: NumPy array})``. Nothing is zeroed or clipped."""
        x, y, mask = self._check_batch(x, y, mask)
        value, grads = self._loss_and_grads(x, y, mask, noise_rng=None)
        return float(self.backend.to_host(value).sum()), {k: self.backend.to_host(g) for k, g in grads.items()}

    def trainable_names(self) -> list:
        return [n for n in self.param_names if self.params.get(f"{n}_train", True)]

    def train(self, trial_batch_generator, train_params=None, *, resume=None):
        """Train with Adam (by default) on batches from a Task or a generator. See
        :func:`minirnn.train.trainer.train` (also for ``resume``, a checkpoint to continue from).
        Returns ``(losses, training_time, initialization_time)``. A second call continues from the
        current weights and optimizer state."""
        from ..train.trainer import train

        return train(self, trial_batch_generator, train_params, resume=resume)

    def train_curric(self, train_params):
        """PsychRNN's curriculum entry point: ``train_params["curriculum"]`` supplies the tasks."""
        if not train_params or train_params.get("curriculum") is None:
            raise ParameterError("train_curric needs train_params['curriculum'] (a Curriculum).")
        return self.train(None, train_params)

    def destruct(self):
        """Kept for PsychRNN scripts: there is no TensorFlow graph to reset, so it does nothing."""

    def __repr__(self) -> str:
        extra = ""
        if self.params.get("dale_ratio") is not None:
            extra += f", dale_ratio={self.params['dale_ratio']}"
        if self.lead:
            extra += f", n_networks={self.lead[0]}"
        return (f"{type(self).__name__}(N_in={self.N_in}, N_rec={self.N_rec}, N_out={self.N_out}, "
                f"transfer_function={self.activation.name!r}{extra}, dtype={str(self.dtype)!r}, "
                f"backend={self.backend.name!r})")
