"""Instructor version -> student version: solution blocks become ``NotImplementedError``.

nbgrader's markers, inside any ``.py`` notebook (jupytext percent format)::

    def euler_step(x, ...):
        ### BEGIN SOLUTION hint: leak (1 - alpha) x, plus alpha times the drive, plus noise
        x_next = ...
        return x_next
        ### END SOLUTION

becomes, at the BEGIN marker's indentation::

    def euler_step(x, ...):
        raise NotImplementedError('Student exercise: leak (1 - alpha) x, plus alpha times the drive, plus noise')

The hint is the text after ``hint:`` on the BEGIN line, or ``# HINT: ...`` comment lines inside the
block (those are also kept, as comments, above the ``raise``). ``### BEGIN HIDDEN TESTS`` /
``### END HIDDEN TESTS`` blocks are removed. A marker without its partner, or nested markers, is
an error naming the file and the line.
"""
from __future__ import annotations

import re
from pathlib import Path

from ..errors import MinirnnError

BEGIN = re.compile(r"^(?P<indent>\s*)### BEGIN (?P<kind>SOLUTION|HIDDEN TESTS)\b(?:\s+hint:\s*(?P<hint>.*?))?\s*$")
END = re.compile(r"^\s*### END (?P<kind>SOLUTION|HIDDEN TESTS)\s*$")
HINT = re.compile(r"^\s*# HINT:\s*(?P<hint>.*?)\s*$")
NOTEBOOK = re.compile(r"^a\d+_.*\.py$")  # the assignment files of a folder


class ReleaseError(MinirnnError, ValueError):
    """The instructor file's markers do not pair up (or the result is not valid Python)."""


def release_text(text: str, source: str = "<text>") -> str:
    """Return the student version of one instructor file's text (see the module docstring)."""
    out, block = [], None  # block: (kind, indent, hint, first line number, # HINT lines)
    for number, line in enumerate(text.splitlines(), start=1):
        begin, end = BEGIN.match(line), END.match(line)
        if begin:
            if block:
                raise ReleaseError(f"{source}:{number}: '### BEGIN {begin['kind']}' inside the "
                                   f"{block[0]} block opened at line {block[3]}; close it first.")
            block = (begin["kind"], begin["indent"], begin["hint"], number, [])
        elif end:
            if not block or block[0] != end["kind"]:
                opened = f"the {block[0]} block opened at line {block[3]}" if block else "no open block"
                raise ReleaseError(f"{source}:{number}: '### END {end['kind']}' does not close anything "
                                   f"({opened}).")
            kind, indent, hint, _, hint_lines = block
            if kind == "SOLUTION":
                hint = hint or " ".join(hint_lines) or "complete this block"
                out += [f"{indent}# HINT: {h}" for h in hint_lines]
                out.append(f"{indent}raise NotImplementedError({'Student exercise: ' + hint!r})")
            block = None
        elif block:
            m = HINT.match(line)
            if m and block[0] == "SOLUTION":
                block[4].append(m["hint"])
        else:
            out.append(line)
    if block:
        raise ReleaseError(f"{source}:{block[3]}: '### BEGIN {block[0]}' is never closed "
                           f"(add '### END {block[0]}').")
    result = "\n".join(out) + ("\n" if text.endswith("\n") else "")
    try:
        compile(result, source, "exec")
    except SyntaxError as e:
        raise ReleaseError(f"{source}: the student version is not valid Python ({e.msg} at line "
                           f"{e.lineno} of the output); check the markers' indentation.") from None
    return result


def release(src, dest) -> list[Path]:
    """Write student versions: ``src`` a file or a folder (its ``a<N>_*.py`` files), ``dest`` a
    file or a folder (created). Files without markers are copied as they are. Returns the paths."""
    src, dest = Path(src), Path(dest)
    if src.is_dir():
        files = sorted(p for p in src.iterdir() if NOTEBOOK.match(p.name))
        if not files:
            raise ReleaseError(f"{src} has no assignment files (a<N>_*.py).")
        pairs = [(p, dest / p.name) for p in files]
    elif src.is_file():
        pairs = [(src, dest / src.name if dest.is_dir() or dest.suffix != ".py" else dest)]
    else:
        raise ReleaseError(f"{src} does not exist.")
    written = []
    for s, d in pairs:
        d.parent.mkdir(parents=True, exist_ok=True)
        d.write_text(release_text(s.read_text(encoding="utf-8"), source=str(s)), encoding="utf-8")
        written.append(d)
    return written
