"""Array-module choice (numpy / cupy) and the table of fast kernels, chosen once per model.

A :class:`Backend` is a small frozen record: its name, its array module ``xp``, how to move an
array onto it and back, and ``kernels``: the functions that replace the sequential part of the
dynamics (``rate_forward``, ``rate_backward``, ``lstm_forward``, ...). A name missing from
``kernels`` means "use the array-code reference in :mod:`minirnn.dynamics`", which runs on any
array module. Optional libraries (numba, cupy) are imported only when their backend is chosen.
"""
from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

BACKENDS = ("auto", "numpy", "numba", "cupy")


def get_array_module(*arrays) -> Any:
    """The array module (numpy or cupy) of ``arrays``: cupy if any is a cupy array, else numpy."""
    for a in arrays:
        if type(a).__module__.startswith("cupy"):
            import cupy

            return cupy
    return np


def _identity(a):
    return a


@dataclass(frozen=True)
class Backend:
    """Where a model's arrays live and which kernels run its time loops."""

    name: str
    xp: Any = np
    to_device: Callable = _identity
    to_host: Callable = _identity
    kernels: dict = field(default_factory=dict)

    def __repr__(self) -> str:
        return f"Backend({self.name!r})"


NUMPY = Backend("numpy")


def _numba_backend() -> Backend:
    from . import numba_kernels, numba_lstm  # imported here so that numba is loaded only when chosen

    return Backend("numba", kernels={**numba_kernels.KERNELS, **numba_lstm.KERNELS})


def _cupy_backend() -> Backend:
    from . import cupy_backend

    return cupy_backend.make_backend()


def numba_available() -> bool:
    return importlib.util.find_spec("numba") is not None


def get_backend(name: str = "auto") -> Backend:
    """Resolve a backend name into a :class:`Backend`.

    ``"auto"`` is numba when it imports, else numpy. Asking explicitly for ``"numba"`` or
    ``"cupy"`` when the library is missing raises :class:`MissingDependencyError` with the command
    that installs it: an explicit request never falls back silently.
    """
    from ..errors import MissingDependencyError, ParameterError, did_you_mean

    if isinstance(name, Backend):
        return name
    if name not in BACKENDS:
        raise ParameterError(
            f"Unknown backend {name!r}{did_you_mean(name, BACKENDS)} Choose one of {list(BACKENDS)}."
        )
    if name == "numpy":
        return NUMPY
    if name == "auto":
        if numba_available():
            try:
                return _numba_backend()
            except Exception as exc:  # noqa: BLE001 (an installed but broken numba / llvmlite: fall back, loudly)
                _warn_fallback(exc)
                return NUMPY
        return NUMPY
    if name == "numba":
        if not numba_available():
            raise MissingDependencyError(
                "backend='numba' needs Numba (not installed). Install it with: pip install numba"
            )
        return _numba_backend()
    if importlib.util.find_spec("cupy") is None:
        raise MissingDependencyError(
            "backend='cupy' needs CuPy (not installed). Install the wheel matching your CUDA, e.g. "
            'pip install "minirnn[cuda12]" (cupy-cuda12x) or "minirnn[cuda13]" (cupy-cuda13x).'
        )
    return _cupy_backend()


_fallback_warned = []


def _warn_fallback(exc):
    if not _fallback_warned:
        import warnings

        _fallback_warned.append(True)
        warnings.warn(f"backend='auto' runs the NumPy reference (about 3x slower): Numba is installed but its "
                      f"backend did not load ({type(exc).__name__}: {exc}). backend='numba' shows the full error.",
                      stacklevel=4)


def set_num_threads(n):
    """Threads the numba kernels use (``None``: ``MINIRNN_NUM_THREADS``, else every usable core);
    returns the previous setting, to restore later.

    Results do not depend on it: the fused update splits a batch into chunks by batch size only.
    A sweep that runs one worker process per core should set 1. Without Numba this does nothing.
    """
    if numba_available():
        try:
            from . import numba_kernels
        except Exception:  # noqa: BLE001 (numba installed but unusable: the NumPy backend has no threads to set)
            return None
        return numba_kernels.set_num_threads(n)
    return None
