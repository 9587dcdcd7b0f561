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
"not attempted yet", never with a traceback; any other exception (``sys.exit()`` and
``KeyboardInterrupt`` included) is reported in one line with the student's file, line number and
source line. :func:`call` also checks that the function left the arrays it was given unchanged (and
the grader, at its end, that no later call changed an array given earlier), naming the argument.

:class:`time_limit` bounds the time the code inside it may take: when it runs out, a
:class:`Timeout` is raised *in the student's code*, so the message can say where it hung.
"""
from __future__ import annotations

import functools
import inspect
import linecache
import os
import signal
import sys
import sysconfig
import threading
import traceback
import types
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


class Timeout(BaseException):
    """Raised in the running code when a :class:`time_limit` runs out.

    A ``BaseException``, so that ``except Exception`` in the student's code does not swallow it.
    ``scope`` is ``"script"`` (running a whole file) or ``"exercise"`` (grading one exercise).
    """

    def __init__(self, seconds, scope):
        super().__init__(f"did not finish within {seconds:g} s")
        self.seconds, self.scope = seconds, scope


# Run-time state, in one object that is never rebound (the grading process restores this package's
# module globals after each student call; see submissions.py): the armed time_limit (at most one),
# and while a grader runs, [(name, call number, watched arrays)] of every call() it made.
# serving: the grading subprocess (submissions._serve) runs; there a KeyboardInterrupt is the student
# code's own and becomes feedback, while in a notebook it is the user's Ctrl-C and must stop the cell
_STATE = types.SimpleNamespace(limit=None, calls=None, serving=False)


def _in_course_code(frame) -> bool:
    return frame is not None and str(frame.f_globals.get("__name__", "")).startswith(__package__)


class time_limit:
    """``with time_limit(seconds, scope):`` raise :class:`Timeout` in the code that is running when
    ``seconds`` have passed, and again every second until the block ends (so that a bare
    ``except:`` in a student's loop cannot hold it). It never fires inside this package's own
    code (the graders), only in the student's code or the libraries it calls.

    In the main thread of a POSIX system it is ``SIGALRM`` (``setitimer``). Elsewhere (Windows, a
    worker thread) a watchdog thread raises the Timeout in the thread that runs the block
    (``PyThreadState_SetAsyncExc``): that stops any Python code, a ``while True: pass`` included,
    but not one long call into C (``time.sleep(1e9)``, one huge NumPy operation), which then stops
    when it returns; the grading command's per-process limit still applies. Without ``ctypes`` (not
    CPython) it does nothing. ``seconds`` None or 0: no limit.
    """

    REPEAT = 1.0

    def __init__(self, seconds, scope="exercise"):
        self.seconds, self.scope, self.armed, self._old = seconds, scope, False, None
        self._watchdog = None

    def __enter__(self):
        if not (self.seconds and self.seconds > 0 and _STATE.limit is None):
            return self
        if hasattr(signal, "setitimer") and threading.current_thread() is threading.main_thread():
            self._old = signal.signal(signal.SIGALRM, self._fire)
            self.armed, _STATE.limit = True, self
            signal.setitimer(signal.ITIMER_REAL, self.seconds, self.REPEAT)
        elif _set_async_exc is not None:
            self.armed, _STATE.limit = True, self
            self._watchdog = _Watchdog(self)
        return self

    def _fire(self, signum, frame):
        if self.armed and not _in_course_code(frame):
            raise Timeout(self.seconds, self.scope)

    def __exit__(self, *exc):
        if _STATE.limit is self:
            self.armed = False
            try:
                if self._watchdog is not None:
                    self._watchdog.stop()
                else:
                    signal.setitimer(signal.ITIMER_REAL, 0)
                    signal.signal(signal.SIGALRM, self._old)
            finally:
                self._watchdog, _STATE.limit = None, None
        return False


def _async_exc_setter():
    """``PyThreadState_SetAsyncExc(thread id, exception class or None)``, or None without ctypes."""
    try:
        import ctypes

        setter = ctypes.pythonapi.PyThreadState_SetAsyncExc
    except (ImportError, AttributeError):  # not CPython
        return None
    # argtypes left alone (the function object is shared with any other user of ctypes.pythonapi):
    # each argument wrapped here, None passed as NULL (which clears a pending exception)
    return lambda ident, exc: setter(ctypes.c_ulong(ident), None if exc is None else ctypes.py_object(exc))


_set_async_exc = _async_exc_setter()


class _Watchdog:
    """The thread that plays ``SIGALRM`` for a :class:`time_limit` where there is none: after
    ``seconds`` and then every ``REPEAT`` seconds, raise the Timeout in the thread that entered the
    block, unless that thread is in this package's own code (then it tries again at the next one)."""

    def __init__(self, limit):
        self.limit, self.target = limit, threading.get_ident()
        # An exception raised this way is created without arguments: a subclass that knows them
        self.timeout = type("Timeout", (Timeout,), {"__init__": lambda e: Timeout.__init__(e, limit.seconds,
                                                                                             limit.scope),
                                                    "__module__": __name__, "__qualname__": "Timeout"})
        self.lock, self.done = threading.Lock(), threading.Event()
        self.thread = threading.Thread(target=self._run, name="minirnn-time-limit", daemon=True)
        self.thread.start()

    def _run(self):
        delay = self.limit.seconds
        while not self.done.wait(delay) and self.limit.armed:  # disarmed: its Timeout is being handled
            with self.lock:  # stop() waits for this: no Timeout is raised after the block ended
                if self.limit.armed and _may_interrupt(sys._current_frames().get(self.target)):
                    _set_async_exc(self.target, self.timeout)
            delay = self.limit.REPEAT

    def stop(self):
        """Called by the target thread when its block ends: no more Timeouts, and none pending."""
        self.done.set()
        with self.lock:
            _set_async_exc(self.target, None)  # one raised just as the block ended and not delivered yet
        self.thread.join()


def _may_interrupt(frame) -> bool:
    """Whether the watchdog may raise a Timeout in the thread whose innermost frame is ``frame``: as
    for ``SIGALRM``, not in this package's own code; and never while a :class:`time_limit` is set
    up or taken down, even in the library code that runs below it there (``Thread.start``,
    ``Event.set``, ``Thread.join``): a Timeout there would leave the limit half made."""
    if frame is None or _in_course_code(frame):
        return False
    while frame is not None:
        if frame.f_code in _SETUP_CODE:
            return False
        frame = frame.f_back
    return True


_SETUP_CODE = frozenset(f.__code__ for f in (time_limit.__enter__, time_limit.__exit__, _Watchdog.__init__,
                                             _Watchdog.stop))


def _disarm():
    """Stop the running limit from firing again (its Timeout is being handled)."""
    if _STATE.limit is not None:
        _STATE.limit.armed = False


# Run after every student call (the grading process restores the graders' modules there, so a
# submission's function cannot rewrite them while it is being graded). See submissions.py.
AFTER_CALL: list = []

# What to do instead, per function name, when a function changes an argument in place.
IN_PLACE_HINTS: dict = {}


def grader(exercise):
    """Decorate ``check(fn, ...)`` into a grader ``(fn, verbose=True) -> Result`` that never raises."""

    def wrap(check):
        @functools.wraps(check)
        def run(fn, *args, verbose=True, **kwargs):
            if fn is None or not callable(fn):
                result = Result(exercise, NOT_ATTEMPTED, f"{exercise} is not defined yet")
            else:
                outer = _STATE.calls
                _STATE.calls = calls = []
                try:
                    check(fn, *args, **kwargs)
                    _check_kept_arrays(calls)
                    result = Result(exercise, PASSED)
                except _NotAttempted as e:
                    result = Result(exercise, NOT_ATTEMPTED, f"not attempted yet ({e})")
                except _StudentError as e:
                    result = Result(exercise, ERROR, str(e))
                except Fail as e:
                    result = Result(exercise, FAILED, str(e))
                except Timeout as e:
                    if e.scope != "exercise":
                        raise  # the whole script's limit: it stops the script, not this check
                    _disarm()
                    result = Result(exercise, ERROR, f"grading {exercise} did not finish within {e.seconds:g} s.")
                except KeyboardInterrupt:
                    if not _STATE.serving:
                        raise  # the user's Ctrl-C in a notebook: stop, do not grade on
                    result = Result(exercise, ERROR, f"grading {exercise} was interrupted (KeyboardInterrupt).")
                except BaseException as e:  # noqa: BLE001 - e.g. an answer of a type the check cannot use
                    result = Result(exercise, ERROR, f"the grader could not check this answer "
                                                     f"({type(e).__name__}: {_one_line(e)}); check what "
                                                     f"{exercise} returns.")
                finally:
                    _STATE.calls = outer
            if verbose:
                print(result)
            return result

        run.exercise = exercise
        return run

    return wrap


_HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # the minirnn package
# not the student's: minirnn, NumPy, the standard library and installed packages
_LIBRARIES = tuple({_HERE, os.path.dirname(np.__file__)} | {sysconfig.get_paths()[k] + os.sep for k in
                                                           ("stdlib", "platstdlib", "purelib", "platlib")})


def _where(tb, word="at") -> str:
    """``file:line: source`` of the innermost frame outside minirnn, NumPy, the standard library
    and installed packages (the student's)."""
    frames = [f for f in traceback.extract_tb(tb) if not f.filename.startswith("<frozen")
              and not os.path.abspath(f.filename).startswith(_LIBRARIES)]
    if not frames:
        return ""
    f = frames[-1]
    line = (f.line or linecache.getline(f.filename, f.lineno)).strip()
    return f" ({word} {os.path.basename(f.filename)}:{f.lineno}: `{line}`)"


def _one_line(e, limit=300) -> str:
    """The first line of an exception's message (or of a string), at most ``limit`` characters."""
    lines = [line.strip() for line in str(e).splitlines() if line.strip()]
    text = lines[0] if lines else ""
    return text if len(text) <= limit else text[:limit - 1] + "…"


def call(name, fn, *args, **kwargs):
    """Call the student's ``fn``; turn NotImplementedError into "not attempted" and any other
    exception (``SystemExit``, ``KeyboardInterrupt`` and a running-out :class:`time_limit` of an
    exercise included) into a one-line error naming ``name`` and the student's line. Then check
    that ``fn`` left the arrays it was given (also inside dicts, lists, tuples) unchanged."""
    watched = _watch(fn, args, kwargs)
    hooks = tuple(AFTER_CALL)
    called = f"{name}{signature(args, kwargs)}"
    try:
        out = fn(*args, **kwargs)
    except NotImplementedError as e:
        raise _NotAttempted(_one_line(e) or "it raises NotImplementedError") from None
    except Timeout as e:
        if e.scope != "exercise":
            raise  # the whole script's limit: let it stop the script
        _disarm()
        raise _StudentError(f"{called} did not finish within {e.seconds:g} s{_where(sys.exc_info()[2], 'stopped at')}"
                            f"; an endless loop, or a loop that never reaches its end condition?") from None
    except SystemExit as e:
        raise _StudentError(f"{called} called sys.exit({e.code!r}){_where(sys.exc_info()[2])}, which ends the "
                            f"whole program; a function should `return` its result (or raise an error).") from None
    except KeyboardInterrupt:
        if not _STATE.serving:
            raise  # the user's Ctrl-C (in-process grading): stop, as any cell stops
        raise _StudentError(f"{called} was interrupted (KeyboardInterrupt){_where(sys.exc_info()[2])}.") from None
    except BaseException as e:  # noqa: BLE001 - every student error becomes feedback
        raise _StudentError(f"{called} raised {type(e).__name__}: {_one_line(e)}"
                            f"{_where(sys.exc_info()[2])}") from None
    finally:
        for hook in hooks:
            hook()
    for label, array, before in watched:
        if _changed(array, before):
            hint = IN_PLACE_HINTS.get(name, "build new arrays (`y = a * x`, not `x *= a`; `z = x + y`, not "
                                            "`x += y`), or work on a copy (`x = x.copy()`).")
            raise Fail(f"{name} changed its argument `{label}` in place{_first_change(label, array, before)}; "
                       f"the caller's arrays must stay as they were: {hint}\n    called as {called}")
    calls = _STATE.calls
    if calls is not None:
        calls.append((name, sum(n == name for n, _, _ in calls) + 1, watched))
    return out


def _arrays(label, value, depth=0):
    """``(label, array)`` for an array argument, or the arrays inside a dict / list / tuple one."""
    if isinstance(value, np.ndarray):
        yield label, value
    elif depth == 0 and isinstance(value, dict):
        for k, v in value.items():
            yield from _arrays(f"{label}[{k!r}]", v, 1)
    elif depth == 0 and isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            yield from _arrays(f"{label}[{i}]", v, 1)


def _watch(fn, args, kwargs):
    """``[(label, array, copy)]`` for every array passed, labelled by the parameter's own name."""
    try:
        bound = inspect.signature(fn).bind(*args, **kwargs)
        named = []
        for pname, value in bound.arguments.items():
            kind = bound.signature.parameters[pname].kind
            if kind is inspect.Parameter.VAR_POSITIONAL:
                named += [(f"{pname}[{i}]", v) for i, v in enumerate(value)]
            elif kind is inspect.Parameter.VAR_KEYWORD:
                named += list(value.items())
            else:
                named.append((pname, value))
    except Exception:  # noqa: BLE001 - no signature (a builtin) or one that does not fit: number them
        named = [(f"argument {i + 1}", a) for i, a in enumerate(args)] + list(kwargs.items())
    return [(label, a, a.copy()) for pname, v in named for label, a in _arrays(pname, v)]


def _changed(array, before) -> bool:
    if array.shape != before.shape:
        return True
    try:
        return not np.array_equal(array, before, equal_nan=True)
    except TypeError:  # a dtype without NaN
        return not np.array_equal(array, before)


def _first_change(label, array, before) -> str:
    if array.shape != before.shape:
        return f" (its shape changed from {before.shape} to {array.shape})"
    try:
        diff = np.argwhere(~((array == before) | ((array != array) & (before != before))))
        idx = tuple(int(i) for i in diff[0])
        return f" ({label}{list(idx) if idx else ''} was {before[idx]:.6g}, is now {array[idx]:.6g})"
    except Exception:  # noqa: BLE001 - a dtype that does not compare or format as numbers
        return ""


def _check_kept_arrays(calls):
    """Raise :class:`Fail` when an array given to an earlier call changed afterwards (the function
    kept a reference to the caller's array and modified it during a later call)."""
    for name, number, watched in calls:
        for label, array, before in watched:
            if _changed(array, before):
                raise Fail(f"{name} changed `{label}`, an array it was given at its call {number}, during a "
                           f"later call{_first_change(label, array, before)}: it keeps a reference to the "
                           f"caller's array and then modifies it in place. Store a copy (`g.copy()`) or build "
                           f"new arrays (`a = mu * a + g`, not `a *= mu; a += g`).")


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
    if not np.any(got) and np.any(expected):
        return ("your output is all zeros (an array made with np.zeros and never filled, a `return` before "
                "the loop ends, or a factor that is 0?).")
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
