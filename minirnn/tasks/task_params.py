"""What ``Task.get_task_params()`` returns: a copy of the task's settings that knows they are the task's.

PsychRNN's idiom is ``params = task.get_task_params(); params["N_rec"] = 50; Basic(params)``: the
model's params dict carries every task attribute, and PsychRNN ignores the ones it does not use.
minirnn checks the keys of that dict for misspelt options (``dale_ration``), so a task attribute
whose name happens to be close to an option (``N_ring`` and ``N_in``) would be taken for a typo.
A :class:`TaskParams` remembers which keys the task put there, and the key check lets those through.
"""
from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from typing import Any


def _copy_or_share(value: Any) -> Any:
    """A deep copy of ``value``, or ``value`` itself when it cannot be copied.

    A task may hold objects that ``copy.deepcopy`` refuses (a generator of coherence levels, a lock,
    an open file). PsychRNN hands out the task's own ``__dict__``, so such a task works there; here
    those values are shared with the task rather than failing the whole call.
    """
    try:
        return copy.deepcopy(value)
    except (TypeError, copy.Error, NotImplementedError):  # "cannot pickle 'generator' object", ...
        return value


class TaskParams(dict):
    """A plain dict of a task's settings that remembers which keys came from the task.

    Parameters
    ----------
    items : mapping or iterable of (key, value) pairs
        The dict's contents, as for ``dict(items)``.
    task_keys : iterable of str
        The keys that are the task's own settings (``get_task_params()`` passes all of its keys).

    Attributes
    ----------
    task_keys : frozenset of str
        Keys the key check of ``Basic(params)`` accepts whatever their names. A key added later
        (``params["dale_ration"] = 0.8``) is not among them, so a misspelt option is still caught.

    Notes
    -----
    It is a real dict (``isinstance(params, dict)``, the same repr, ``json.dumps``), and copies,
    pickles, ``params.copy()`` and ``params | {...}`` keep ``task_keys``. ``dict(params, ...)`` and
    ``{**params}`` make plain dicts, which forget it.
    """

    def __init__(self, items: Mapping | Iterable = (), task_keys: Iterable[str] = ()):
        super().__init__(items)
        self.task_keys = frozenset(task_keys)

    def copy(self) -> "TaskParams":
        return TaskParams(self, self.task_keys)

    def __or__(self, other):
        if not isinstance(other, Mapping):
            return NotImplemented
        return TaskParams({**self, **other}, self.task_keys | getattr(other, "task_keys", frozenset()))

    def __ror__(self, other):
        if not isinstance(other, Mapping):
            return NotImplemented
        return TaskParams({**other, **self}, self.task_keys | getattr(other, "task_keys", frozenset()))
