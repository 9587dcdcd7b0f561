"""Transfer functions ``r = f(x)`` and their derivatives ``f'(x)``, registered as pairs.

Each activation is two adjacent functions of the pre-activation ``x`` (any shape, any array module).
Kernels (numba) identify a built-in activation by its integer ``code``; a user pair ``(f, df)``
has no code and runs on the array-code (numpy/cupy) path only.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from ..backends import get_array_module
from ..errors import ParameterError, did_you_mean


def relu(x):  # f(x) = max(x, 0)
    return get_array_module(x).maximum(x, 0)


def drelu(x):  # f'(x) = 1[x > 0]   (0 at the kink, as TensorFlow)
    return (x > 0).astype(x.dtype)


def tanh(x):  # f(x) = tanh(x)
    return get_array_module(x).tanh(x)


def dtanh(x):  # f'(x) = 1 - tanh(x)^2
    t = get_array_module(x).tanh(x)
    return 1 - t * t


def sigmoid(x):  # f(x) = 1 / (1 + e^-x)
    xp = get_array_module(x)
    with np.errstate(over="ignore"):  # e^-x = inf below x ~ -88 (float32) gives the right 0, not a warning
        return 1 / (1 + xp.exp(-x))


def dsigmoid(x):  # f'(x) = s (1 - s)
    s = sigmoid(x)
    return s * (1 - s)


def softplus(x):  # f(x) = log(1 + e^x), written to avoid overflow for large x
    xp = get_array_module(x)
    return xp.logaddexp(x, x.dtype.type(0))


def dsoftplus(x):  # f'(x) = sigmoid(x)
    return sigmoid(x)


def linear(x):  # f(x) = x
    return x


def dlinear(x):  # f'(x) = 1
    return get_array_module(x).ones_like(x)


@dataclass(frozen=True)
class Activation:
    """A transfer function: ``f``, its derivative ``df`` (both of the pre-activation) and a name.

    ``code`` is the integer numba kernels use; ``None`` for a user-given pair.
    """

    name: str
    f: Callable
    df: Callable
    code: int | None = None

    def __call__(self, x):
        """``f(x)``: PsychRNN's simulators call their ``transfer_function`` directly."""
        return self.f(x)

    def __repr__(self) -> str:
        return f"Activation({self.name!r})"


ACTIVATIONS = {
    "relu": Activation("relu", relu, drelu, 0),
    "tanh": Activation("tanh", tanh, dtanh, 1),
    "sigmoid": Activation("sigmoid", sigmoid, dsigmoid, 2),
    "softplus": Activation("softplus", softplus, dsoftplus, 3),
    "linear": Activation("linear", linear, dlinear, 4),
}

# Names PsychRNN users write (tf.nn.relu has __name__ "relu"; TF1 names some "Relu").
_ALIASES = {"identity": "linear", "Relu": "relu", "Tanh": "tanh", "Sigmoid": "sigmoid", "Softplus": "softplus"}


def get_activation(spec) -> Activation:
    """Resolve ``spec`` into an :class:`Activation`.

    ``spec`` is a name (``"relu"``, ``"tanh"``, ``"sigmoid"``, ``"softplus"``, ``"linear"``), an
    :class:`Activation`, a ``(f, df)`` pair of callables, or a callable whose ``__name__`` is one of
    the names (``tf.nn.relu``, ``np.tanh``), which ports PsychRNN scripts unchanged.
    """
    if isinstance(spec, Activation):
        return spec
    if isinstance(spec, str):
        name = _ALIASES.get(spec, spec)
        if name not in ACTIVATIONS:
            raise ParameterError(
                f"Unknown transfer_function {spec!r}{did_you_mean(spec, ACTIVATIONS)} "
                f"Choose one of {sorted(ACTIVATIONS)} or pass a pair (f, df)."
            )
        return ACTIVATIONS[name]
    if isinstance(spec, (tuple, list)) and len(spec) == 2 and all(callable(g) for g in spec):
        f, df = spec
        return Activation(getattr(f, "__name__", "custom"), f, df, None)
    if callable(spec):
        name = _ALIASES.get(getattr(spec, "__name__", ""), getattr(spec, "__name__", ""))
        if name in ACTIVATIONS:
            return ACTIVATIONS[name]
        raise ParameterError(
            f"transfer_function {spec!r} is a callable without a known derivative. Pass a pair "
            f"(f, df) with df the derivative of f, or one of the names {sorted(ACTIVATIONS)}."
        )
    raise ParameterError(
        f"The 'transfer_function' parameter must be a name in {sorted(ACTIVATIONS)} or a pair "
        f"(f, df). Got {spec!r} instead."
    )
