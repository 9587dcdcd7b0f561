"""The grading machinery: call a student's function safely, compare with a reference, explain.

A grader (see :mod:`minirnn.course.grade`) builds a small random float64 case, calls the student's
function through :func:`call`, and compares each returned array with minirnn's reference through
:func:`compare`:

1. nothing returned / not an array          -> "returned None; did you forget `return`?"
2. wrong shape                              -> both shapes, and "transposed" when it is
3. wrong values (``rtol``/``atol`` stated)  -> the first wrong entry, expected vs got, and a
                                               diagnosis: the first *planted mistake* whose output
                                               matches (``mistakes``: hint -> what that mistake
                                               returns), else transpose / sign / constant factor.

A function that raises ``NotImplementedError`` (the student version's placeholder) is reported as
"not attempted yet", never with a traceback; any other exception is reported in one line with the
student's file, line number and source line.
"""
from __future__ import annotations

import functools
import linecache
import os
import sys
import traceback
from dataclasses import dataclass

import numpy as np

PASSED, FAILED, NOT_ATTEMPTED, ERROR = "passed", "failed", "not attempted", "error"
_MARK = {PASSED: "[PASS]", FAILED: "[FAIL]", NOT_ATTEMPTED: "[TODO]", ERROR: "[ERROR]"}
RTOL, ATOL = 1e-7, 1e-10  # float64 comparisons: a correct solution agrees to ~1e-14


@dataclass
class Result:
    """The outcome of one exercise: ``status`` is passed | failed | not attempted | error."""

    exercise: str
    status: str
    message: str = ""

    @property
    def passed(self) -> bool:
        return self.status == PASSED

    def __str__(self):
        if not self.message:
            return f"{_MARK[self.status]} {self.exercise}: {self.status}"
        own = self.message.startswith(self.exercise.split(".")[0])  # the message names it already
        return f"{_MARK[self.status]} {'' if own else self.exercise + ': '}{self.message}"

    def __repr__(self):
        return f"Result({self.exercise!r}, {self.status!r})"

    def to_dict(self) -> dict:
        return {"exercise": self.exercise, "status": self.status, "message": self.message}

    def assert_passed(self):
        """Raise ``AssertionError(message)`` unless passed (for pytest)."""
        if not self.passed:
            raise AssertionError(str(self))


class Fail(Exception):
    """Raised inside a grader: the student's answer is wrong; the argument is the feedback."""


class _NotAttempted(Exception):
    pass


class _StudentError(Exception):
    pass


def grader(exercise):
    """Decorate ``check(fn, ...)`` into a grader ``(fn, verbose=True) -> Result`` that never raises."""

    def wrap(check):
        @functools.wraps(check)
        def run(fn, *args, verbose=True, **kwargs):
            if fn is None or not callable(fn):
                result = Result(exercise, NOT_ATTEMPTED, f"{exercise} is not defined yet")
            else:
                try:
                    check(fn, *args, **kwargs)
                    result = Result(exercise, PASSED)
                except _NotAttempted as e:
                    result = Result(exercise, NOT_ATTEMPTED, f"not attempted yet ({e})")
                except _StudentError as e:
                    result = Result(exercise, ERROR, str(e))
                except Fail as e:
                    result = Result(exercise, FAILED, str(e))
                except Exception as e:  # noqa: BLE001 - e.g. an answer of a type the check cannot use
                    result = Result(exercise, ERROR, f"the grader could not check this answer "
                                                     f"({type(e).__name__}: {e}); check what {exercise} returns.")
            if verbose:
                print(result)
            return result

        run.exercise = exercise
        return run

    return wrap


def _where(tb) -> str:
    """``file:line: source`` of the innermost frame outside minirnn and NumPy (the student's)."""
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # the minirnn package
    frames = [f for f in traceback.extract_tb(tb)
              if not os.path.abspath(f.filename).startswith((here, os.path.dirname(np.__file__)))]
    if not frames:
        return ""
    f = frames[-1]
    line = (f.line or linecache.getline(f.filename, f.lineno)).strip()
    return f" (at {os.path.basename(f.filename)}:{f.lineno}: `{line}`)"


def call(name, fn, *args, **kwargs):
    """Call the student's ``fn``; turn NotImplementedError into "not attempted" and any other
    exception into a one-line error naming ``name`` and the student's line."""
    try:
        return fn(*args, **kwargs)
    except NotImplementedError as e:
        raise _NotAttempted(str(e) or "it raises NotImplementedError") from None
    except Exception as e:  # noqa: BLE001 - every student error becomes feedback
        raise _StudentError(f"{name}{signature(args, kwargs)} raised {type(e).__name__}: {e}"
                            f"{_where(sys.exc_info()[2])}") from None


def signature(args=(), kwargs=None) -> str:
    """``(x (3, 5), alpha 0.1, ...)``: how a function was called, shapes instead of values."""
    def show(v):
        if isinstance(v, np.ndarray):
            return f"{v.shape}"
        if isinstance(v, (int, float, np.floating)):
            return f"{v:g}"
        if isinstance(v, dict):
            return "{" + ", ".join(f"{k}: {show(a)}" for k, a in v.items()) + "}"
        return getattr(v, "__name__", type(v).__name__)
    parts = [show(a) for a in args] + [f"{k}={show(v)}" for k, v in (kwargs or {}).items()]
    return "(" + ", ".join(parts) + ")"


def _close(a, b, rtol, atol):
    return a.shape == b.shape and np.allclose(a, b, rtol=rtol, atol=atol)


def compare(what, got, expected, *, context="", mistakes=(), rtol=RTOL, atol=ATOL, index_names=None):
    """Raise :class:`Fail` unless ``got`` equals ``expected`` (shape first, then values).

    Parameters
    ----------
    what : str
        Names the function and the output, e.g. ``"euler_step: x_next"``.
    got, expected : array-like
    context : str
        How the function was called (``signature(...)``), appended to the message.
    mistakes : iterable of (hint, array or None)
        What each known mistake would have returned; the first that ``got`` matches is named.
    index_names : callable, optional
        ``index tuple -> str`` describing an entry in the task's words (trial, step, t, channel).
    """
    expected = np.asarray(expected, dtype=np.float64)
    called = f"\n    called as {context}" if context else ""
    if got is None:
        raise Fail(f"{what} is None; did you forget `return`?{called}")
    try:
        got = np.asarray(got, dtype=np.float64)
    except (TypeError, ValueError):
        raise Fail(f"{what} must be an array of numbers; got a {type(got).__name__}.{called}") from None
    if got.shape != expected.shape:
        note = ""
        if got.shape == expected.shape[::-1] and got.ndim > 1:
            note = " It looks transposed."
        elif got.size == expected.size:
            note = " Same number of entries: check the order of the axes (reshape/transpose)."
        raise Fail(f"{what} has shape {got.shape}; expected {expected.shape}.{note}{called}")
    bad = ~np.isclose(got, expected, rtol=rtol, atol=atol) | ~np.isfinite(got)
    if not bad.any():
        return
    idx = tuple(int(i) for i in np.argwhere(bad)[0])
    where = list(idx) if idx else ""
    desc = f" ({index_names(idx)})" if index_names and idx else ""
    worst = np.max(np.abs(got - expected) / np.maximum(np.abs(got) + np.abs(expected), 1e-300))
    msg = (f"{what}{where}{desc} is wrong: expected {expected[idx]:.6g}, got {got[idx]:.6g} "
           f"({int(bad.sum())} of {bad.size} entries differ; max rel_error {worst:.1e}, "
           f"tolerance rtol={rtol:g}, atol={atol:g}).")
    hint = diagnose(got, expected, mistakes, rtol, atol)
    raise Fail(msg + (f"\n    Diagnosis: {hint}" if hint else "") + called)


def diagnose(got, expected, mistakes=(), rtol=1e-6, atol=1e-9):
    """The hint of the first planted mistake that ``got`` reproduces, else a generic pattern."""
    for hint, wrong in mistakes:
        if wrong is not None and _close(got, np.asarray(wrong, dtype=np.float64), rtol, atol):
            return hint
    if got.ndim >= 2 and got.shape[-1] == got.shape[-2] and _close(got, np.swapaxes(expected, -1, -2), rtol, atol):
        return "it is the transpose of the expected one (weights are (post, pre): rows = postsynaptic)."
    if _close(got, -expected, rtol, atol):
        return "it has the wrong sign."
    nz = np.abs(expected) > 1e-12
    if nz.any():
        ratio = got[nz] / expected[nz]
        if np.allclose(ratio, ratio[0], rtol=1e-6) and np.allclose(got[~nz], 0, atol=atol):
            return f"it is the expected value times a constant {ratio[0]:.6g} (a missing or extra factor)."
    return ""


def expect_keys(what, got, keys):
    """Raise :class:`Fail` unless ``got`` is a dict with exactly ``keys``."""
    if not isinstance(got, dict):
        raise Fail(f"{what} must return a dict with keys {list(keys)}; got a {type(got).__name__}.")
    missing = [k for k in keys if k not in got]
    if missing:
        raise Fail(f"{what} returned a dict without {missing}; expected keys {list(keys)}, "
                   f"got {list(got)}.")
