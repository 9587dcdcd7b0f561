"""Optimizers: a gradient in, an update out, in TensorFlow 1's equations (so PsychRNN runs compare).

    SGD       delta = lr g
    Momentum  a = mu a + g;                    delta = lr a            (nesterov: lr g + lr mu a)
    RMSProp   ms = rho ms + (1 - rho) g^2;     mom = mu mom + lr g / sqrt(ms + eps);   delta = mom
              (ms starts at 1 and eps sits inside the square root, as in TF1)
    Adam      m = b1 m + (1 - b1) g;   v = b2 v + (1 - b2) g^2;
              lr_t = lr sqrt(1 - b2^t) / (1 - b1^t);   delta = lr_t m / (sqrt(v) + eps)

An optimizer never touches the weights: ``compute_update(grads, active)`` returns ``{name: delta}``
and the trainer applies ``params[name] -= delta * keep`` (keep = 1 - fixed mask, times the
network's "still training" flag; DESIGN §1). ``step(params, grads)`` applies ``-= delta`` itself.
State (slots keyed by parameter name, per-network step count ``t``) lives here, never among the
weights, and travels through checkpoints as ``state_dict()`` / ``load_state_dict()``. Every check
runs before any value moves, so an update refused with an error leaves the state as it was;
``state_arrays()`` exposes the live arrays so that the trainer can copy them before an update and
write them back when the update turns out bad. ``fresh()`` copies the configuration, not the state.

Network axes: arrays may carry ``n_lead`` leading axes (an ensemble). A hyperparameter is a float
or an array of shape ``lead``, reshaped to ``lead + (1,) * own`` against each parameter, so network
k gets exactly what a single optimizer with its values would give. ``active`` (bool, shape ``lead``)
freezes the state of networks that stopped and gives them a zero update. All state has the
gradients' dtype and array module (float32 stays float32, cupy stays cupy).
"""
from __future__ import annotations

import copy

import numpy as np

from ..backends import get_array_module
from ..errors import ParameterError, ParameterTypeError, did_you_mean

_RULES = {"> 0": lambda v: v > 0, "in [0, 1)": lambda v: (v >= 0) & (v < 1)}


def check_in_dtype(who, value, dtype, rule="> 0"):
    """Raise ParameterError when ``value`` (a float or array, already checked in float64 against
    ``rule``) loses its meaning in ``dtype``: a value > 0 that is 0 or subnormal there (1e-50 in
    float32 trains nothing, or divides 0 by 0), a finite value that is inf there, or, for
    ``"in [0, 1)"``, a value below 1 that rounds to 1. ``who`` names the option in the message."""
    dtype = np.dtype(dtype)
    if dtype.kind != "f":
        return
    info, arr = np.finfo(dtype), np.asarray(_to_host(value), dtype=np.float64)
    with np.errstate(over="ignore", under="ignore"):
        cast = arr.astype(dtype)
    shown = value if isinstance(value, float) else arr.tolist()
    if np.any(np.isinf(cast) & np.isfinite(arr)):
        raise ParameterError(f"{who} is {shown!r}, which is inf in {dtype}: use a value <= {info.max:.8g}.")
    if rule == "> 0" and np.any((arr > 0) & (np.abs(cast) < info.tiny)):
        what = "0" if np.any((arr > 0) & (cast == 0)) else "subnormal (imprecise, or 0 on a GPU)"
        raise ParameterError(f"{who} is {shown!r}, which is {what} in {dtype}: use a value >= {info.tiny:.8g}.")
    if rule == "in [0, 1)" and np.any((arr < 1) & (cast >= 1)):
        below_one = np.nextafter(dtype.type(1), dtype.type(0))
        raise ParameterError(f"{who} is {shown!r}, which is 1 in {dtype}: use a value <= {below_one:.8g}.")


def _to_host(a):
    """A host copy: a NumPy array (cupy's .get()), or the float itself."""
    if isinstance(a, float):
        return a
    return a.get() if get_array_module(a) is not np else np.array(a, copy=True)


class Optimizer:
    """Base class: checked hyperparameters, lazily created slots, per-network counters, state I/O."""

    hyper: dict = {}               # hyperparameter name -> rule in _RULES
    slots: dict = {}               # slot name -> initial value (an array shaped like the gradient)
    counter_names = ("t",)         # per-network arrays of shape lead (t: steps taken)
    _options = ()                  # non-numeric settings shown by repr (Momentum's nesterov)
    user_built = True              # False when train() built it from a name: later calls may reset its learning rate
    built_from = None              # the user's Optimizer that train() copied this one from (see fresh())

    def __init__(self, n_lead=None, **hyper):
        for name, value in hyper.items():
            setattr(self, name, value)                 # checked by __setattr__
        self.n_lead = self._checked_n_lead(n_lead)
        self.reset()

    def _checked_n_lead(self, n_lead):
        if n_lead is not None and not (isinstance(n_lead, (int, np.integer)) and n_lead >= 0):
            raise ParameterError(f"The 'n_lead' parameter of {type(self).__name__} must be an "
                                 f"int >= 0 or None (inferred). Got {n_lead!r} instead.")
        return None if n_lead is None else int(n_lead)

    def fresh(self, n_lead=None):
        """A new optimizer of this type with this one's hyperparameters and options and no state.

        ``n_lead``: its number of network axes (default: this one's). ``train()`` uses it to treat
        an optimizer object in ``train_params`` as a configuration: each model steps its own copy,
        and the object given is never changed.
        """
        new = copy.copy(self)                          # options and attributes of a subclass too
        new._cache = {}
        for h in self.hyper:                           # own copies of array hyperparameters
            value = getattr(self, h)
            setattr(new, h, value if isinstance(value, float) else np.array(value, copy=True))
        new.n_lead = self.n_lead if n_lead is None else self._checked_n_lead(n_lead)
        new.built_from = None
        new.reset()
        return new

    def __setattr__(self, name, value):
        if name in type(self).hyper:                   # checked on every set (schedules too)
            value, self.__dict__["_cache"] = self._check(name, value), {}
        object.__setattr__(self, name, value)

    def _check(self, name, value):
        who, rule = f"The {name!r} parameter of {type(self).__name__}", type(self).hyper[name]
        try:
            arr = None if isinstance(value, bool) else np.asarray(_to_host(value), dtype=np.float64)
        except (TypeError, ValueError):
            arr = None
        if arr is None:
            raise ParameterTypeError(f"{who} must be a float or an array of floats. "
                                     f"Got {value!r} instead.")
        if not (np.all(np.isfinite(arr)) and np.all(_RULES[rule](arr))):
            raise ParameterError(f"{who} must be {rule} (a float, or an array with one value per "
                                 f"network). Got {value!r} instead.")
        return float(arr) if arr.ndim == 0 else arr

    def reset(self):
        """Forget all state (slots and counters): the next update is step 1 again."""
        self.state = {}                # {param name: {slot name: array}}
        self.counters = {}             # {"t": steps taken per network, ...}, each of shape lead
        self._lead, self._loaded = self.n_lead, False

    def check_dtype(self, dtype, remember=True):
        """Raise ParameterError when a hyperparameter, valid in float64, loses its meaning in
        ``dtype`` (the gradients'): ``learning_rate=1e-50`` is 0 in float32. Run by :meth:`prepare`
        (once per dtype until a hyperparameter changes) and by ``train()`` before any work
        (``remember=False``: a configuration object is left as it was)."""
        key, cache = ("dtype checked", np.dtype(dtype).str), self.__dict__.setdefault("_cache", {})
        if key in cache:
            return
        for h, rule in self.hyper.items():
            check_in_dtype(f"The {h!r} parameter of {type(self).__name__}", getattr(self, h), dtype, rule)
        if remember:
            cache[key] = True

    @property
    def t(self):
        """Steps taken by each network (shape ``lead``), or None before the first update."""
        return self.counters.get("t")

    def _h(self, name, like, own):
        """Hyperparameter ``name`` in ``like``'s dtype and array module, shaped lead + (1,)*own
        (its shape was checked by ``_prepare``)."""
        value = getattr(self, name)
        if isinstance(value, float):
            return like.dtype.type(value)              # a float64 constant would promote float32
        key = (name, like.dtype.str, own, get_array_module(like).__name__)
        if key not in self._cache:
            shaped = value.astype(like.dtype).reshape(value.shape + (1,) * own)
            self._cache[key] = get_array_module(like).asarray(shaped)
        return self._cache[key]

    def compute_update(self, grads, active=None):
        """Return ``{name: delta}``; the caller applies ``params[name] -= delta`` (masked).

        ``active``: None or bools of shape ``lead``; a False network keeps its state (slots,
        counters) unchanged and gets ``delta = 0``.
        """
        if not grads:
            return {}
        like, active, inactive = self.prepare(grads, active)  # every check, before any value moves
        self.counters["t"] += 1 if active is None else active.astype(like.dtype)
        ctx = self._begin(like, active)
        deltas = {}
        for name, g in grads.items():
            slots = self._slots_for(name, g)
            frozen = {} if inactive is None else {k: s[inactive] for k, s in slots.items()}
            deltas[name] = delta = self._update(g, slots, g.ndim - self._lead, ctx)
            for k, old in frozen.items():              # stopped networks keep their state ...
                slots[k][inactive] = old
            if inactive is not None:
                delta[inactive] = 0                    # ... and get no update
        return deltas

    def step(self, params, grads, active=None):
        """Apply ``params[name] -= delta`` in place (no fixed-weight mask: see the trainer)."""
        for name, delta in self.compute_update(grads, active).items():
            params[name] -= delta

    def prepare(self, grads, active=None):
        """Make ready the state an update of ``grads`` uses, changing no value: fix n_lead, put
        loaded state on the gradients' device, create missing counters and slots at their initial
        values, and check every shape (hyperparameters, state, ``active``).

        :meth:`compute_update` starts with it, so an update it refuses leaves the state as it was.
        After it, :meth:`state_arrays` holds every array the update will change.
        Returns ``(like, active, inactive)``: one gradient, and the flags (or Nones) of ``_prepare``.
        """
        if not grads:
            raise ParameterError(f"{type(self).__name__}.prepare got no gradients: there is nothing to "
                                 "update (is every parameter frozen by its *_train flag?).")
        like = next(iter(grads.values()))
        active, inactive = self._prepare(like, active)
        for name, g in grads.items():
            self._slots_for(name, g)
        return like, active, inactive

    def state_arrays(self) -> dict:
        """The live state arrays (not copies), under :meth:`state_dict`'s keys: the counters and
        ``slots/<param>/<slot>``. Empty before the first update (or :meth:`prepare`)."""
        arrays = dict(self.counters)
        arrays.update({f"slots/{n}/{k}": a for n, s in self.state.items() for k, a in s.items()})
        return arrays

    def load_state_arrays(self, arrays, networks=None):
        """Write copies of ``arrays`` (:meth:`state_arrays`'s keys and shapes) back into the state:
        for every network, or only for those flagged True in ``networks`` (bools of shape lead)."""
        for key, saved in arrays.items():
            head, _, rest = key.partition("/")
            if head == "slots":
                name, _, slot = rest.rpartition("/")
                where, entry = self.state[name], slot
            else:
                where, entry = self.counters, key
            if networks is None:
                where[entry] = saved.copy()
            else:
                xp = get_array_module(saved)
                flags = networks.reshape(networks.shape + (1,) * (saved.ndim - networks.ndim))
                where[entry] = xp.where(flags, saved, where[entry]).astype(saved.dtype, copy=False)

    def _prepare(self, like, active):
        """Fix n_lead, place loaded state, create counters, check the hyperparameters' shapes;
        return (active, inactive) or Nones."""
        xp = get_array_module(like)
        self.check_dtype(like.dtype)                   # 1e-50 is 0 in float32
        if self._lead is None:                         # from array hyperparameters or active
            self._lead = max([np.ndim(getattr(self, h)) for h in self.hyper] + [np.ndim(active)])
        lead = like.shape[:self._lead]
        if self._loaded:                               # host arrays from load_state_dict
            self.counters = {k: xp.asarray(a, dtype=like.dtype) for k, a in self.counters.items()}
            self.state = {n: {k: xp.asarray(a, dtype=like.dtype) for k, a in s.items()}
                          for n, s in self.state.items()}
            self._loaded = False
        if self.n_lead is None and self._lead == 0 and np.ndim(active) > 0:
            self._lead = np.ndim(active)               # inferred 0 so far; all networks stepped
            lead = like.shape[:self._lead]             # together, so broadcasting t is exact
            self.counters = {k: xp.broadcast_to(a, lead).copy() for k, a in self.counters.items()}
        for h in self.hyper:                           # one value per network, or one for all
            value = getattr(self, h)
            if not isinstance(value, float) and value.shape != lead:
                raise ParameterError(f"The {h!r} parameter of {type(self).__name__} has shape "
                                     f"{value.shape} but the networks' shape is {lead} "
                                     f"(n_lead={self._lead}): give a float, or one value per network.")
        if self.t is not None and self.t.shape != lead:
            raise ParameterError(f"This {type(self).__name__} holds state for networks of shape "
                                 f"{self.t.shape}, but the gradients have lead shape {lead}.")
        if active is not None:
            active = xp.asarray(active, dtype=bool)
            if active.shape != lead:
                raise ParameterError(f"active must have shape {lead} (one flag per network). "
                                     f"Got shape {active.shape} instead.")
        for k in self.counter_names:                   # t starts at 0, beta powers at 1
            self.counters.setdefault(k, xp.full(lead, float(k != "t"), dtype=like.dtype))
        if active is None:
            return None, None
        if self._lead == 0:                            # one network: all or nothing
            return (None, None) if bool(active) else (active, xp.ones((1,) * like.ndim, bool))
        return (active, ~active) if bool((~active).any()) else (None, None)

    def _slots_for(self, name, g):
        s = self.state.get(name)
        if s is None:
            xp = get_array_module(g)
            s = self.state[name] = {k: xp.full(g.shape, init, dtype=g.dtype)
                                    for k, init in self.slots.items()}
        elif any(a.shape != g.shape for a in s.values()):
            raise ParameterError(f"The gradient of {name!r} has shape {g.shape} but this "
                                 f"{type(self).__name__}'s state has another; call reset().")
        return s

    def _begin(self, like, active):
        """Per-step quantities shared by all parameters (Adam's lr_t), passed to _update."""
        return None

    def _update(self, g, slots, own, ctx):
        """Update ``slots`` in place from ``g``; return a fresh array ``delta``."""
        raise NotImplementedError

    def state_dict(self) -> dict:
        """A flat dict of host NumPy arrays and plain values (copies): ``np.savez(f, **d)`` works."""
        d = {"type": type(self).__name__, **({} if self._lead is None else {"n_lead": self._lead})}
        d.update({f"hyper/{h}": _to_host(getattr(self, h)) for h in self.hyper})
        d.update({k: _to_host(a) for k, a in self.counters.items()})
        d.update({f"slots/{n}/{k}": _to_host(a) for n, s in self.state.items() for k, a in s.items()})
        return d

    def load_state_dict(self, d):
        """Restore what ``state_dict()`` returned (or its ``np.load``), hyperparameters included."""
        if str(d.get("type")) != type(self).__name__:
            raise ParameterError(f"This state is for a {d.get('type')!s} optimizer, not "
                                 f"{type(self).__name__}.")
        self.reset()
        for key, value in d.items():
            head, _, rest = key.partition("/")
            name, _, slot = rest.rpartition("/")
            if key == "n_lead":
                self._lead = int(value)
            elif head == "hyper" and rest in self.hyper:
                setattr(self, rest, value)
            elif head == "slots" and slot in self.slots:
                self.state.setdefault(name, {})[slot] = _to_host(value)
            elif key in self.counter_names:
                self.counters[key] = _to_host(value)
            elif key != "type":
                raise ParameterError(f"Unknown entry {key!r} in a {type(self).__name__} state.")
        self._loaded = True

    def __repr__(self):
        def show(v):
            return repr(v) if isinstance(v, (float, bool)) else repr(v.tolist())
        args = [f"{h}={show(getattr(self, h))}" for h in (*self.hyper, *self._options)]
        args += [f"n_lead={self.n_lead}"] if self.n_lead is not None else []
        return f"{type(self).__name__}({', '.join(args)})"


class SGD(Optimizer):
    """Plain gradient descent (TF1 ``GradientDescentOptimizer``): ``delta = lr g``."""

    hyper = {"learning_rate": "> 0"}

    def __init__(self, learning_rate=1e-3, n_lead=None):
        super().__init__(n_lead, learning_rate=learning_rate)

    def _update(self, g, slots, own, ctx):
        return g * self._h("learning_rate", g, own)


class Momentum(Optimizer):
    """TF1 ``MomentumOptimizer``: ``a = mu a + g``; ``delta = lr a`` (nesterov: ``lr g + lr mu a``)."""

    hyper = {"learning_rate": "> 0", "momentum": "in [0, 1)"}
    slots = {"a": 0.0}
    _options = ("nesterov",)

    def __init__(self, learning_rate=1e-3, momentum=0.9, nesterov=False, n_lead=None):
        if not isinstance(nesterov, (bool, np.bool_)):
            raise ParameterTypeError(f"The 'nesterov' parameter of Momentum must be True or False. "
                                     f"Got {nesterov!r} instead.")
        self.nesterov = bool(nesterov)
        super().__init__(n_lead, learning_rate=learning_rate, momentum=momentum)

    def _update(self, g, slots, own, ctx):
        lr, mu, a = self._h("learning_rate", g, own), self._h("momentum", g, own), slots["a"]
        a *= mu
        a += g                                         # a = mu a + g
        return g * lr + a * mu * lr if self.nesterov else a * lr


class RMSProp(Optimizer):
    """TF1 ``RMSPropOptimizer`` (not centered). ``ms`` starts at 1, as TF1 initialises it, so
    early steps are smaller than ``lr sign(g)``; ``eps`` sits inside the square root, as in TF1."""

    hyper = {"learning_rate": "> 0", "decay": "in [0, 1)", "momentum": "in [0, 1)", "epsilon": "> 0"}
    slots = {"ms": 1.0, "mom": 0.0}

    def __init__(self, learning_rate=1e-3, decay=0.9, momentum=0.0, epsilon=1e-10, n_lead=None):
        super().__init__(n_lead, learning_rate=learning_rate, decay=decay, momentum=momentum,
                         epsilon=epsilon)

    def _update(self, g, slots, own, ctx):
        lr, rho, mu, eps = (self._h(h, g, own) for h in self.hyper)
        ms, mom = slots["ms"], slots["mom"]
        tmp = g * g
        tmp -= ms
        tmp *= 1 - rho
        ms += tmp                                      # ms = rho ms + (1 - rho) g^2  (TF's order)
        xp = get_array_module(g)
        xp.sqrt(xp.add(ms, eps, out=tmp), out=tmp)     # sqrt(ms + eps)
        mom *= mu
        mom += g * lr / tmp                            # mom = mu mom + lr g / sqrt(ms + eps)
        return mom.copy()


class Adam(Optimizer):
    """Adam (Kingma & Ba 2015, arXiv:1412.6980) exactly as TF1's ``AdamOptimizer`` computes it.

    Notes
    -----
    TF1 (hence PsychRNN) uses the paper's "efficient" form from just before Section 2.1: the bias
    corrections are folded into the step size, ``lr_t = lr sqrt(1 - b2^t) / (1 - b1^t)``, and
    ``delta = lr_t m / (sqrt(v) + eps)``, so ``eps`` is the paper's *epsilon hat*, not the
    Algorithm 1 epsilon. ``b1^t``, ``b2^t`` are running products (TF1's ``beta1_power``), kept per
    network, as is the step count ``t``: a network frozen by ``active`` keeps its own ``t``.
    """

    hyper = {"learning_rate": "> 0", "beta1": "in [0, 1)", "beta2": "in [0, 1)", "epsilon": "> 0"}
    slots = {"m": 0.0, "v": 0.0}
    counter_names = ("t", "beta1_power", "beta2_power")

    def __init__(self, learning_rate=1e-3, beta1=0.9, beta2=0.999, epsilon=1e-8, n_lead=None):
        super().__init__(n_lead, learning_rate=learning_rate, beta1=beta1, beta2=beta2,
                         epsilon=epsilon)

    def _begin(self, like, active):
        xp, c = get_array_module(like), self.counters
        for p, b in (("beta1_power", "beta1"), ("beta2_power", "beta2")):  # b^t = b^(t-1) * b
            new = c[p] * self._h(b, like, 0)
            c[p] = new if active is None else xp.where(active, new, c[p])
        lr = self._h("learning_rate", like, 0)
        # a network with t = 0 (inactive from the start) has 1 - b1^0 = 0; its update is zeroed
        return lr * xp.sqrt(1 - c["beta2_power"]) / xp.maximum(1 - c["beta1_power"],
                                                               np.finfo(like.dtype).tiny)

    def _update(self, g, slots, own, lr_t):
        b1, b2, eps = (self._h(h, g, own) for h in ("beta1", "beta2", "epsilon"))
        m, v, xp = slots["m"], slots["v"], get_array_module(g)
        lr_t = xp.asarray(lr_t, dtype=g.dtype).reshape(lr_t.shape + (1,) * own)
        if xp is not np:  # CuPy: the lines below in one fused kernel (same operations, same order)
            from ..backends.cupy_kernels import adam_update

            return adam_update(g, m, v, 1 - b1, 1 - b2, eps, lr_t)
        tmp = g - m
        tmp *= 1 - b1
        m += tmp                                       # m = b1 m + (1 - b1) g  (TF: m += (g - m)(1 - b1))
        xp.multiply(g, g, out=tmp)
        tmp -= v
        tmp *= 1 - b2
        v += tmp                                       # v = b2 v + (1 - b2) g^2
        # With m_hat = m / (1 - b1^t) and v_hat = v / (1 - b2^t) (Algorithm 1's bias corrections),
        # delta = lr * m_hat / (sqrt(v_hat) + eps / sqrt(1 - b2^t)): Algorithm 1 with eps rescaled.
        xp.sqrt(v, out=tmp)
        tmp += eps
        delta = m * lr_t
        delta /= tmp                                   # delta = lr_t m / (sqrt(v) + eps)
        return delta


OPTIMIZERS = {"adam": Adam, "sgd": SGD, "momentum": Momentum, "rmsprop": RMSProp}


def get_optimizer(spec="adam", learning_rate=1e-3, n_lead=None) -> Optimizer:
    """An optimizer from a name (case-insensitive; built with ``learning_rate``), an Optimizer
    class (built with ``learning_rate``) or an Optimizer instance (returned as is). ``n_lead``:
    the number of network axes of the one built (default: inferred at the first update)."""
    if isinstance(spec, Optimizer):
        return spec
    if isinstance(spec, type) and issubclass(spec, Optimizer):
        return _built_here(spec(learning_rate=learning_rate), n_lead)
    if not isinstance(spec, str):
        raise ParameterTypeError(f"optimizer must be a name in {sorted(OPTIMIZERS)} or an Optimizer "
                                 f"instance. Got {spec!r} instead.")
    if spec.lower() not in OPTIMIZERS:
        raise ParameterError(f"Unknown optimizer {spec!r}{did_you_mean(spec.lower(), OPTIMIZERS)} "
                             f"Choose one of {sorted(OPTIMIZERS)} or pass an Optimizer instance.")
    return _built_here(OPTIMIZERS[spec.lower()](learning_rate=learning_rate), n_lead)


def _built_here(optimizer, n_lead=None):
    optimizer.user_built = False  # built from a name: a later train() call may set its learning rate
    if n_lead is not None:
        optimizer.n_lead = optimizer._checked_n_lead(n_lead)
        optimizer.reset()
    return optimizer
