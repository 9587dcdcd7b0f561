"""The exceptions minirnn raises, and the helper that writes "did you mean ...?".

Every error a user can cause derives from :class:`MinirnnError`; the ones about a bad value or
shape also derive from ``ValueError`` (and type problems from ``TypeError``), so code that
catches the built-in exceptions keeps working.
"""
from __future__ import annotations

import difflib
from typing import Iterable


class MinirnnError(Exception):
    """Base class of every error minirnn raises on purpose."""


class ParameterError(MinirnnError, ValueError):
    """A parameter has an unknown name, a wrong type or a value outside its allowed range."""


class ParameterTypeError(MinirnnError, TypeError):
    """A parameter has the wrong type (a string where a number is needed, ...)."""


class ShapeError(MinirnnError, ValueError):
    """An array has a shape that does not fit the model or the task."""


class NonFiniteError(MinirnnError, ValueError):
    """NaN or inf appeared: in task arrays, in the loss, in a gradient or in a weight.

    ``networks``: for an ensemble's training, the indices of the networks that diverged (else None).
    """

    def __init__(self, message: str, networks=None):
        super().__init__(message)
        self.networks = networks


class WeightsFileError(MinirnnError, ValueError):
    """A weights or checkpoint file is unreadable, corrupt, or made for another architecture."""


class MissingDependencyError(MinirnnError, ImportError):
    """An optional package that the chosen feature needs is not installed."""


def suggest(name: str, choices: Iterable[str]) -> str:
    """Return "; did you mean 'x'?" for the closest of ``choices``, or "" when none is close."""
    close = difflib.get_close_matches(str(name), [str(c) for c in choices], n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


def did_you_mean(name: str, choices: Iterable[str]) -> str:
    """End a sentence about an unknown ``name``: "; did you mean 'x'?" or a plain "."."""
    return suggest(name, choices) or "."
