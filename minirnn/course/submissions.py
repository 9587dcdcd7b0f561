"""Grading whole files: run a notebook top to bottom, then grade the functions it defined.

``grade_file(path)`` runs the file in a fresh Python (a subprocess, ``MINIRNN_FAST=1`` so training
cells are short, ``MPLBACKEND=Agg``, working directory = the file's folder), executes it cell by cell
as one script, and grades every exercise of its assignment (found from the file name, ``a<N>_*``)
on whatever the script defined, even when the script stopped early. The report is a dict::

    {"file", "assignment", "ran": bool, "error": str or None, "seconds",
     "results": [{"exercise", "status", "message"}, ...]}
"""
from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import re
import subprocess
import sys
import time
import traceback
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from ..errors import ParameterError
from .grader import ERROR, Result

_NAME = re.compile(r"^(a\d+)_.*\.py$")
_TAG = "MINIRNN-COURSE-REPORT:"


def assignment_of(path) -> str:
    m = _NAME.match(Path(path).name)
    if not m:
        raise ParameterError(f"{path}: a submission file is named a<N>_<anything>.py "
                             f"(a1_euler_forward.py, ...); cannot tell which assignment it is.")
    return m.group(1)


def grade_namespace(ns: dict, assignment: str) -> list[Result]:
    """Run the graders of ``assignment`` on the names a submission defined (quietly)."""
    from .grade import ASSIGNMENTS

    if assignment not in ASSIGNMENTS:
        raise ParameterError(f"Unknown assignment {assignment!r}; known: {sorted(ASSIGNMENTS)}.")
    return [check(ns.get(name), verbose=False) for name, check in ASSIGNMENTS[assignment]]


def run_and_grade(path) -> dict:
    """In this process: execute ``path`` as ``__main__`` from its folder (output captured), then
    grade it. Matplotlib figures it opened are closed afterwards."""
    path = Path(path).resolve()
    assignment, ns = assignment_of(path), {"__name__": "__main__", "__file__": str(path)}
    start, error, log, cwd = time.perf_counter(), None, io.StringIO(), os.getcwd()
    try:
        code = compile(path.read_text(), str(path), "exec")
        os.chdir(path.parent)
        with contextlib.redirect_stdout(log):
            exec(code, ns)  # noqa: S102 - running the submission is the point
    except BaseException as e:  # noqa: BLE001 - a crash is part of the report, not of the grader
        tb = traceback.extract_tb(e.__traceback__)
        line = next((f for f in reversed(tb) if f.filename == str(path)), None)
        where = f" at line {line.lineno}: `{(line.line or '').strip()}`" if line else ""
        error = f"{type(e).__name__}: {e}{where}"
    finally:
        os.chdir(cwd)
        if "matplotlib.pyplot" in sys.modules:
            sys.modules["matplotlib.pyplot"].close("all")
    results = grade_namespace(ns, assignment)
    return {"file": str(path), "assignment": assignment, "ran": error is None, "error": error,
            "seconds": round(time.perf_counter() - start, 2), "output": log.getvalue()[-2000:],
            "results": [r.to_dict() for r in results]}


def grade_file(path, *, timeout=600, fast=True) -> dict:
    """Run and grade one file in a subprocess of its own (see the module docstring)."""
    return grade_files([path], timeout=timeout, fast=fast)[0]


def grade_files(paths, *, timeout=600, fast=True) -> list[dict]:
    """Run and grade several files one after the other in **one** subprocess (each in a fresh
    namespace, from its own folder): one interpreter start and one set of imports for all."""
    paths = [Path(p).resolve() for p in paths]
    assignments = [assignment_of(p) for p in paths]
    env = dict(os.environ, MPLBACKEND="Agg", PYTHONHASHSEED="0")
    # the child imports the same minirnn as this process, installed or not
    package_root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = os.pathsep.join([package_root] + [p for p in [env.get("PYTHONPATH")] if p])
    if fast:
        env["MINIRNN_FAST"] = "1"
    start = time.perf_counter()
    try:
        proc = subprocess.run([sys.executable, "-m", "minirnn.course", "_grade_one", *map(str, paths)],
                              cwd=paths[0].parent if paths else None, env=env, capture_output=True,
                              text=True, timeout=timeout * max(1, len(paths)))
        found = {r["file"]: r for r in (json.loads(line[len(_TAG):]) for line in proc.stdout.splitlines()
                                        if line.startswith(_TAG))}
        why = f"the grading process failed: {proc.stderr.strip()[-800:]}"
    except subprocess.TimeoutExpired:
        found, why = {}, f"timed out after {timeout} s"
    return [found.get(str(p)) or _failed(p, a, why, start) for p, a in zip(paths, assignments)]


def _failed(path, assignment, why, start):
    from .grade import ASSIGNMENTS

    return {"file": str(path), "assignment": assignment, "ran": False, "error": why,
            "seconds": round(time.perf_counter() - start, 2), "output": "",
            "results": [Result(n, ERROR, why).to_dict() for n, _ in ASSIGNMENTS[assignment]]}


def grade_folder(folder, *, timeout=600, fast=True, csv_path=None, jobs=1) -> list[dict]:
    """Grade every ``a<N>_*.py`` under ``folder`` (any depth: one sub-folder per student is usual),
    ``jobs`` files at a time. Each report gains ``"student"`` (the sub-folder, or ``"."``), in
    sorted file order. Writes a CSV (one row per student, file and exercise) when asked."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ParameterError(f"{folder} is not a folder of submissions.")
    files = sorted(p for p in folder.rglob("a*_*.py") if _NAME.match(p.name))
    with ThreadPoolExecutor(max_workers=max(1, int(jobs))) as pool:  # each file is its own process
        reports = list(pool.map(lambda p: grade_file(p, timeout=timeout, fast=fast), files))
    for p, report in zip(files, reports):
        report["student"] = str(p.parent.relative_to(folder))
    if csv_path is not None:
        with open(csv_path, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["student", "file", "exercise", "status", "message"])
            for r in reports:
                for res in r["results"]:
                    w.writerow([r["student"], Path(r["file"]).name, res["exercise"], res["status"], res["message"]])
    return reports


def format_report(reports) -> str:
    lines = []
    for r in reports:
        passed = sum(res["status"] == "passed" for res in r["results"])
        head = f"{r.get('student', '.')}/{Path(r['file']).name}: {passed}/{len(r['results'])} passed ({r['seconds']} s)"
        lines.append(head + ("" if r["ran"] else f" — stopped early: {r['error']}"))
        lines += [f"    {Result(**res)}".replace("\n", "\n    ") for res in r["results"]]
    return "\n".join(lines)
