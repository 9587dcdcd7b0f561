"""Initial weights, PsychRNN-compatible: ``WeightInitializer``, ``GaussianSpectralRadius``,
``AlphaIdentity`` (REFERENCE.md "Initialization").

An initializer draws every raw parameter once, at construction, into ``initializations`` (a dict
of NumPy float64 arrays, as PsychRNN's does), from an explicit ``numpy.random.Generator``:
``rng`` or ``seed``, else (PsychRNN scripts that call ``np.random.seed``) from NumPy's global state.

* ``glorot_gauss(M)``: ``W_ij ~ N(0, 2 / (fan_in_i + fan_out_j))``, fans counted on the mask.
* ``glorot_unif(M)``: ``U(-sqrt(6 / (fan_in_i + fan_out_j)), +...)``.
* ``const_gauss``: ``N(0, 1)``;  ``const_unif``: ``U(init_minval, init_maxval)``.
* Dale balancing: column ``j`` of ``W_rec`` is scaled by ``d_j / n_j`` with ``d_j = 1`` (E) or
  ``dale_ratio / (1 - dale_ratio)`` (I) and ``n_j = || M_rec[j, :] * d ||``.
* ``GaussianSpectralRadius``: ``W_rec ~ N(0, 1)``, Dale-balanced, rescaled to spectral radius
  ``spec_rad`` (1.1) on the raw matrix, as PsychRNN does.

As in PsychRNN, ``WeightInitializer(load_weights_path=path)`` takes everything from a weights file
(``N_in``, ``N_rec``, ``N_out`` from its shapes; read safely, never unpickling code), and
``save(path)`` writes ``initializations`` to a ``.npz`` that both packages load.
"""
from __future__ import annotations

import numpy as np

from .._params import check_model_values
from ..errors import ParameterError, ShapeError, did_you_mean
from .constraints import dale_signs

RAND_INITS = ("glorot_gauss", "glorot_unif", "const_gauss", "const_unif")
WEIGHT_NAMES = ("W_in", "W_rec", "W_out", "b_rec", "b_out", "init_state")


def make_rng(seed=None, rng=None) -> np.random.Generator:
    """A PCG64 Generator from ``rng`` (returned as is) or ``seed`` (int / SeedSequence / None).

    ``None`` takes its root entropy from NumPy's global state, so ``np.random.seed(s)`` beforehand
    makes a PsychRNN-style script reproducible.
    """
    if rng is not None:
        return rng
    if isinstance(seed, np.random.Generator):
        return seed
    if seed is None:
        seed = int(np.random.randint(2**31 - 1))
    return np.random.Generator(np.random.PCG64(seed))


def _fans(connectivity):
    fan_in = connectivity.sum(axis=1)[:, None]  # row sums
    fan_out = connectivity.sum(axis=0)[None, :]  # column sums
    fans = fan_in + fan_out
    return np.where(fans > 0, fans, 1.0)


class WeightInitializer:
    """Draws ``W_in, W_rec, W_out, b_rec, b_out, init_state`` and the constraint arrays.

    Keyword arguments are PsychRNN's: ``N_in, N_rec, N_out``, ``autapses`` (True),
    ``input_connectivity``, ``rec_connectivity``, ``output_connectivity`` (ones), ``dale_ratio``
    (None), ``which_rand_init`` ('glorot_gauss'), ``which_rand_W_rec_init`` (same),
    ``init_minval``/``init_maxval`` (-0.1, 0.1), ``transfer_function`` ('relu'; kept for
    :meth:`get_transfer_function`), and any weight array given verbatim. Other keys (a whole params
    dict) are ignored. ``seed`` or ``rng`` make the draw reproducible.

    ``load_weights_path``: take every array from a weights file (minirnn's or PsychRNN's) instead;
    ``N_in``, ``N_rec``, ``N_out`` come from its shapes (when given too, they must match), and its
    ``dale_ratio`` and ``transfer_function`` (else the ``transfer_function`` argument, else relu).
    """

    def __init__(self, seed=None, rng=None, **kwargs):
        self.rng = make_rng(seed, rng)
        self.load_weights_path = kwargs.get("load_weights_path")
        if self.load_weights_path is not None:
            self._load(self.load_weights_path, kwargs)
            return
        check_model_values(kwargs, type(self).__name__)  # sizes, dale_ratio, spec_rad, ... as Basic checks them
        try:
            self.N_in, self.N_rec, self.N_out = (int(kwargs[k]) for k in ("N_in", "N_rec", "N_out"))
        except KeyError as missing:
            raise ParameterError(f"{type(self).__name__} needs the parameter {missing.args[0]!r}.") from None
        self.init_minval = kwargs.get("init_minval", -0.1) if kwargs.get("init_minval") is not None else -0.1
        self.init_maxval = kwargs.get("init_maxval", 0.1) if kwargs.get("init_maxval") is not None else 0.1
        self.which_rand_init = kwargs.get("which_rand_init") or "glorot_gauss"
        self.which_rand_W_rec_init = kwargs.get("which_rand_W_rec_init") or self.which_rand_init
        for key in ("which_rand_init", "which_rand_W_rec_init"):
            value = getattr(self, key)
            if value not in RAND_INITS:
                raise ParameterError(
                    f"The {key!r} parameter must be one of {list(RAND_INITS)}{did_you_mean(value, RAND_INITS)} "
                    f"Got {value!r} instead."
                )
        ini = self.initializations = {}
        N_in, N_rec, N_out = self.N_in, self.N_rec, self.N_out
        for name, shape in (("input_connectivity", (N_rec, N_in)), ("rec_connectivity", (N_rec, N_rec)),
                            ("output_connectivity", (N_out, N_rec))):
            value = kwargs.get(name)
            try:
                value = np.ones(shape) if value is None else np.array(value, dtype=np.float64)
            except (TypeError, ValueError):
                raise ParameterError(f"{name} must be a 0/1 array of shape {shape}. Got {value!r}.") from None
            if value.shape != shape:
                raise ShapeError(f"{name} has shape {value.shape} but must be {shape} (N_in={N_in}, N_rec={N_rec}, N_out={N_out}).")
            ini[name] = value
        if not kwargs.get("autapses", True):
            ini["rec_connectivity"] = ini["rec_connectivity"] * (1 - np.eye(N_rec))
        dale_ratio = kwargs.get("dale_ratio")
        if isinstance(dale_ratio, np.ndarray):
            dale_ratio = dale_ratio.item()
        ini["dale_ratio"] = dale_ratio
        if dale_ratio is not None:
            s_rec, s_out = dale_signs(dale_ratio, N_rec)
        else:
            s_rec = s_out = np.ones(N_rec)
        ini["Dale_rec"], ini["Dale_out"] = np.diag(s_rec), np.diag(s_out)

        draw_W_rec = self._rand_init(self.which_rand_W_rec_init)
        draw = self._rand_init(self.which_rand_init)
        given = {k: kwargs.get(k) for k in WEIGHT_NAMES}
        ini["W_in"] = draw(ini["input_connectivity"]) if given["W_in"] is None else given["W_in"]
        ini["W_rec"] = draw_W_rec(ini["rec_connectivity"]) if given["W_rec"] is None else given["W_rec"]
        ini["W_out"] = draw(ini["output_connectivity"]) if given["W_out"] is None else given["W_out"]
        ini["b_rec"] = np.zeros(N_rec) if given["b_rec"] is None else given["b_rec"]
        ini["b_out"] = np.zeros(N_out) if given["b_out"] is None else given["b_out"]
        ini["init_state"] = (0.1 + 0.01 * self.rng.standard_normal(N_rec)) if given["init_state"] is None else given["init_state"]
        ini["transfer_function"] = "relu" if kwargs.get("transfer_function") is None else kwargs["transfer_function"]
        self._W_rec_given = given["W_rec"] is not None

    def _load(self, path, kwargs):
        """``initializations`` from the weights file ``path`` (PsychRNN: ``dict(np.load(path))``)."""
        from .. import io

        arrays, info = io.read_weights_file(path, "basic", "a WeightInitializer (the rate network, Basic)",
                                            required=("W_in", "W_rec", "W_out", "b_rec", "b_out", "init_state"),
                                            hint=" Load an LSTM with LSTM(dict(params, load_weights_path=...)).",
                                            stacklevel=4)
        ini = self.initializations = io.weight_arrays(arrays)
        self.N_rec, self.N_in = ini["W_in"].shape
        self.N_out = ini["W_out"].shape[0]
        for key in ("N_in", "N_rec", "N_out"):
            if kwargs.get(key) is not None and int(kwargs[key]) != getattr(self, key):
                raise ShapeError(f"{type(self).__name__}: {key}={kwargs[key]!r} was given but the weights in {path} "
                                 f"have {key}={getattr(self, key)}.")
        N_in, N_rec, N_out = self.N_in, self.N_rec, self.N_out
        for name, shape in (("input_connectivity", (N_rec, N_in)), ("rec_connectivity", (N_rec, N_rec)),
                            ("output_connectivity", (N_out, N_rec))):
            ini.setdefault(name, np.ones(shape))  # a file without masks: everything connected
        ini["dale_ratio"] = dale_ratio = info["dale_ratio"] or None  # 0 is "off", as PsychRNN's `if dale_ratio:`
        if "Dale_rec" not in ini or "Dale_out" not in ini:
            s_rec, s_out = dale_signs(dale_ratio, N_rec) if dale_ratio is not None else (np.ones(N_rec),) * 2
            ini.setdefault("Dale_rec", np.diag(s_rec))
            ini.setdefault("Dale_out", np.diag(s_out))
        given = kwargs.get("transfer_function")
        ini["transfer_function"] = info["transfer_function"] or ("relu" if given is None else given)
        self._W_rec_given = True

    # ---- random draws, each the shape of a connectivity mask --------------------------------
    def _rand_init(self, name):
        return {"glorot_gauss": self.glorot_gauss_init, "glorot_unif": self.glorot_unif_init,
                "const_gauss": self.const_gauss_init, "const_unif": self.const_unif_init}[name]

    def glorot_gauss_init(self, connectivity):
        """``N(0, 2 / (fan_in_i + fan_out_j))`` elementwise (values not zeroed by the mask)."""
        return self.rng.normal(0.0, np.sqrt(2 / _fans(connectivity)))

    def glorot_unif_init(self, connectivity):
        """``U(-sqrt(6 / (fan_in_i + fan_out_j)), +...)`` elementwise."""
        limit = np.sqrt(6 / _fans(connectivity))
        return self.rng.uniform(-limit, limit)

    def const_gauss_init(self, connectivity):
        """``N(0, 1)`` of the mask's shape."""
        return self.rng.standard_normal(connectivity.shape)

    def const_unif_init(self, connectivity):
        """``U(init_minval, init_maxval)`` of the mask's shape."""
        return self.rng.uniform(self.init_minval, self.init_maxval, size=connectivity.shape)

    def get_dale_ratio(self):
        return self.initializations["dale_ratio"]

    def get_transfer_function(self):
        """The transfer function (a name such as ``'relu'``, or what was passed), PsychRNN's getter."""
        return self.initializations["transfer_function"]

    def save(self, save_path):
        """Write :attr:`initializations` to ``save_path`` (``.npz`` appended when missing), atomically.

        The file loads as weights in minirnn (``params["load_weights_path"]``,
        ``WeightInitializer(load_weights_path=...)``) and in PsychRNN. ``dale_ratio`` None is
        stored as PsychRNN stores it (a 0-d object array), the transfer function as its name; a
        ``(f, df)`` pair has no name to store and is left out with a warning. Returns the path.
        """
        import warnings

        from .. import io
        from .activations import ACTIVATIONS, get_activation

        arrays = {}
        for key, value in self.initializations.items():
            if key == "dale_ratio":
                arrays[key] = np.array(None, dtype=object) if value is None else np.array(float(value))
            elif key == "transfer_function":
                try:
                    name = get_activation(value).name
                except ParameterError:
                    name = None
                if name in ACTIVATIONS:
                    arrays[key] = np.array(name)
                else:
                    warnings.warn(f"{type(self).__name__}.save: the transfer function {value!r} has no name to store; "
                                  "the file leaves it out (pass transfer_function when loading it).", stacklevel=2)
            else:
                arrays[key] = np.asarray(value)
        return io.atomic_savez(save_path, arrays)

    def balance_dale_ratio(self):
        """Scale ``W_rec``'s columns so that E and I inputs balance in expectation (Dale only)."""
        dale_ratio = self.get_dale_ratio()
        if dale_ratio is None:
            return
        d = np.ones(self.N_rec)
        d[int(dale_ratio * self.N_rec):] = dale_ratio / (1 - dale_ratio)
        n = np.linalg.norm(self.initializations["rec_connectivity"] * d, axis=1)
        n = np.where(n > 0, n, 1.0)
        self.initializations["W_rec"] = self.initializations["W_rec"] * (d / n)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(N_in={self.N_in}, N_rec={self.N_rec}, N_out={self.N_out})"


class GaussianSpectralRadius(WeightInitializer):
    """``W_rec ~ N(0, 1)``, Dale-balanced, rescaled to spectral radius ``spec_rad`` (default 1.1)."""

    def __init__(self, seed=None, rng=None, **kwargs):
        super().__init__(seed=seed, rng=rng, **kwargs)
        self.spec_rad = 1.1 if kwargs.get("spec_rad") is None else float(kwargs["spec_rad"])  # checked > 0 above
        W = self.rng.standard_normal((self.N_rec, self.N_rec))
        self.initializations["W_rec"] = W
        self.balance_dale_ratio()
        W = self.initializations["W_rec"]
        self.initializations["W_rec"] = self.spec_rad * W / np.max(np.abs(np.linalg.eigvals(W)))


class AlphaIdentity(WeightInitializer):
    """``W_rec = alpha * I`` (then Dale-balanced). ``alpha`` is required and is *this* value,
    not the ``dt / tau`` of a task-params dict (pass it explicitly)."""

    def __init__(self, seed=None, rng=None, **kwargs):
        super().__init__(seed=seed, rng=rng, **kwargs)
        if kwargs.get("alpha") is None:
            raise ParameterError("AlphaIdentity needs the parameter 'alpha' (the diagonal value of W_rec).")
        self.alpha = float(np.asarray(kwargs["alpha"]).mean())
        self.initializations["W_rec"] = np.eye(self.N_rec) * self.alpha
        self.balance_dale_ratio()
