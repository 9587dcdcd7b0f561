"""What a submission could rebind to fool its graders, saved before it runs and put back after.

The grading subprocess runs a student's file in the same interpreter as the graders (see
:mod:`minirnn.course.submissions`); a :class:`Guard` taken before the file runs restores the graders,
the reference code and the library functions they call after the script and after every call of a
student function. A guard against accidents and casual tampering, not a sandbox.
"""
from __future__ import annotations

import contextlib
import sys
import types


class Guard:
    """What the graders rely on, as it was before a submission ran; :meth:`restore` puts it back.

    ``minirnn.course`` modules: every global. The rest of ``minirnn``, ``numpy``, ``numpy.linalg``,
    ``json``, ``builtins``: globals bound to a function, class or module (what a monkeypatch
    replaces; not data such as caches). Also the attributes of ``minirnn.course``'s classes and the
    code and defaults of its functions (the graders).
    """

    _OTHERS = ("numpy", "numpy.linalg", "json", "builtins")
    _KINDS = (types.FunctionType, types.BuiltinFunctionType, type, types.ModuleType)

    def __init__(self):
        self.modules, self.classes, self.functions = [], [], []
        for name, module in list(sys.modules.items()):
            if module is None or not (name == "minirnn" or name.startswith("minirnn.") or name in self._OTHERS):
                continue
            ours = name.startswith("minirnn.course")
            saved = {k: v for k, v in vars(module).items() if ours or isinstance(v, self._KINDS)}
            self.modules.append((module, saved))
            if not ours:
                continue
            for value in list(saved.values()):
                functions = [value, getattr(value, "__wrapped__", None)]
                if isinstance(value, type) and value.__module__ == name:
                    self.classes.append((value, dict(vars(value))))
                for f in functions:
                    if isinstance(f, types.FunctionType) and f.__module__ == name:
                        self.functions.append((f, f.__code__, f.__defaults__, f.__kwdefaults__))

    def restore(self):
        missing = object()
        for module, saved in self.modules:
            d = vars(module)
            for k, v in saved.items():
                if d.get(k, missing) is not v:
                    d[k] = v
        for cls, saved in self.classes:
            for k in [k for k in vars(cls) if k not in saved]:
                with contextlib.suppress(Exception):
                    delattr(cls, k)
            for k, v in saved.items():
                if vars(cls).get(k, missing) is not v:
                    with contextlib.suppress(Exception):
                        setattr(cls, k, v)
        for f, code, defaults, kwdefaults in self.functions:
            if f.__code__ is not code or f.__defaults__ is not defaults or f.__kwdefaults__ is not kwdefaults:
                f.__code__, f.__defaults__, f.__kwdefaults__ = code, defaults, kwdefaults
