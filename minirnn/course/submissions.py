"""Grading whole files: run a notebook top to bottom, then grade the functions it defined.

``grade_file(path)`` runs the file in a fresh Python (a subprocess, ``MINIRNN_FAST=1`` so training
cells are short, ``MPLBACKEND=Agg``, working directory = the file's folder, no stdin), executes it
cell by cell as one script, and grades every exercise of its assignment (found from the file name,
``a<N>_*``) on whatever the script defined, even when the script stopped early. The report is a
dict::

    {"file", "assignment", "ran": bool, "error": str or None, "seconds", "output",
     "results": [{"exercise", "status", "message"}, ...]}

Time limits: running the script gets ``timeout`` seconds; then each exercise gets its own
``exercise_timeout`` (default ``min(timeout, 60)``). When one runs out, the code is stopped where it
is (``SIGALRM``; elsewhere, as on Windows, a watchdog thread) and the report names that line; the rest is still graded. The parent process also
stops the whole subprocess, as a last resort, if it outlives all its limits put together.

The subprocess sends its report through a file of its own, never through stdout, so whatever the
submission prints (or does to ``sys.stdout``) cannot hide it.

What a submission can and cannot change: it runs in the same interpreter as its graders, so the
graders, the reference code and the modules they use are imported *before* it runs, the runner keeps
its own list of graders, and after the script and after each call of a student function it puts back
every global of ``minirnn.course`` and every function, class or module bound in the rest of
``minirnn``, in ``numpy``, ``numpy.linalg``, ``json`` and ``builtins`` that the submission rebound
(plus the ``minirnn.course`` classes' attributes and functions' code). Rewriting
``grade.ASSIGNMENTS``, a grader, ``compare`` or a tolerance therefore has no effect. This is not a
sandbox: code written to defeat it (editing closures, NumPy's C internals, the report file, or the
process itself) can. The parent checks that each report lists the assignment's exercises in order
with valid statuses; a surprising full mark is worth a look at the file.
"""
from __future__ import annotations

import ast
import contextlib
import csv
import importlib
import io
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import traceback
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from ..errors import ParameterError
from .guard import Guard
from .grader import _STATE as _grader_state
from .grader import AFTER_CALL, ERROR, FAILED, NOT_ATTEMPTED, PASSED, Result, Timeout, _one_line, time_limit

_NAME = re.compile(r"^(a\d+)_.*\.py$")
_STATUSES = {PASSED, FAILED, NOT_ATTEMPTED, ERROR}
_STARTUP = 60  # seconds: the subprocess's imports, on a slow shared machine


def assignment_of(path) -> str:
    m = _NAME.match(Path(path).name)
    if not m:
        raise ParameterError(f"{path}: a submission file is named a<N>_<anything>.py "
                             f"(a1_euler_forward.py, ...); cannot tell which assignment it is.")
    return m.group(1)


def _assignment_or_none(path):
    m = _NAME.match(Path(path).name)
    return m.group(1) if m else None


def _assignments():
    from .grade import ASSIGNMENTS

    return ASSIGNMENTS


def _labels(assignment) -> list[str]:
    """The exercises of an assignment as reports and the CSV name them (the graders' own names)."""
    return [check.exercise for _, check in _assignments()[assignment]]


def _unknown(assignment) -> str:
    known = sorted(_assignments(), key=lambda a: int(a[1:]))
    return (f"unknown assignment {assignment!r} (this course has {', '.join(known)}): rename the file "
            f"a<N>_<anything>.py with N its assignment number, or remove it from the submissions.")


def _default_exercise_timeout(timeout):
    return min(timeout, 60) if timeout else 60


# ------------------------------------------------------------------ in the grading subprocess

def _line(frame) -> str:
    return (frame.line or "").strip()


def _stopped(e, path) -> tuple[str, str]:
    """Why and where the script stopped, in one line (the line of the script and, when that is
    inside a function of the file, the function's line too), and in a few words."""
    frames = [f for f in traceback.extract_tb(e.__traceback__) if f.filename == str(path)]
    where = at = ""
    if frames:
        top, inner = frames[0], frames[-1]
        where, at = f" at line {top.lineno}: `{_line(top)}`", f" at line {top.lineno}"
        if inner is not top:
            where += f" (inside {inner.name}, line {inner.lineno}: `{_line(inner)}`)"
    if isinstance(e, Timeout):
        return (f"timed out: the script did not finish within {e.seconds:g} s; it was stopped{where}",
                f"timed out{at}")
    if isinstance(e, SystemExit):
        return f"the script called sys.exit({e.code!r}){where}", f"sys.exit(){at}"
    if isinstance(e, KeyboardInterrupt):
        return f"the script was interrupted (KeyboardInterrupt){where}", f"KeyboardInterrupt{at}"
    message = _one_line(e)
    return f"{type(e).__name__}{': ' + message if message else ''}{where}", f"{type(e).__name__}{at}"


def _prepare(assignments):
    """Before any submission runs: our own copy of the graders of ``assignments``, the modules they
    import on first use, and a :class:`~minirnn.course.guard.Guard` of it all."""
    from .grade import PRELOAD

    ASSIGNMENTS = _assignments()
    unknown = [a for a in assignments if a not in ASSIGNMENTS]
    if unknown:
        raise ParameterError(_unknown(unknown[0]))
    for a in assignments:
        for module in PRELOAD.get(a, ()):
            importlib.import_module(module)
    return {a: tuple(ASSIGNMENTS[a]) for a in assignments}, Guard()


def run_and_grade(path, *, timeout=None, exercise_timeout=None, emit=None, prepared=None) -> dict:
    """In this process: execute ``path`` as ``__main__`` from its folder (output captured, at most
    ``timeout`` s), then grade every exercise of its assignment (each at most ``exercise_timeout``
    s). Matplotlib figures it opened are closed afterwards. ``emit(**event)`` is told of progress
    (``ran``, ``grading``, ``result``), so that a parent that has to stop this process knows how far
    it got. ``prepared``: what :func:`_prepare` returned before any submission ran."""
    path = Path(path).resolve()
    assignment = assignment_of(path)
    emit = emit or (lambda **event: None)
    all_graders, guard = prepared or _prepare([assignment])
    if assignment not in all_graders:
        raise ParameterError(_unknown(assignment))
    graders = all_graders[assignment]
    guard.restore()  # undo what an earlier file in this process rebound
    ns = {"__name__": "__main__", "__file__": str(path)}
    start, stopped, short, syntax = time.perf_counter(), None, None, False
    log, cwd, argv = io.StringIO(), os.getcwd(), sys.argv
    defined = None  # the names the file defines at its top level (None: unknown)
    try:
        try:
            source = path.read_bytes()
            code = compile(source, str(path), "exec")
            defined = _top_level_names(source)
        except SyntaxError as e:  # nothing in the file can run
            stopped, syntax = (f"{type(e).__name__}: {e.msg} at line {e.lineno}: "
                               f"`{(e.text or '').strip()}`"), True
        else:
            os.chdir(path.parent)
            sys.argv = [str(path)]
            with contextlib.redirect_stdout(log), contextlib.redirect_stderr(log), time_limit(timeout, "script"):
                exec(code, ns)  # noqa: S102 - running the submission is the point
    except BaseException as e:  # noqa: BLE001 - a crash is part of the report, not of the grader
        stopped, short = _stopped(e, path)
    finally:
        os.chdir(cwd)
        sys.argv = argv
        if "matplotlib.pyplot" in sys.modules:
            with contextlib.suppress(Exception):
                sys.modules["matplotlib.pyplot"].close("all")
        guard.restore()
    output = log.getvalue()[-2000:]
    emit(event="ran", error=stopped, output=output)
    if stopped and not syntax and defined is not None:  # what the file never defines is simply not attempted
        ns = {**{name: _NEVER for name, _ in graders if name not in defined}, **ns}
    results = grade_namespace(ns, assignment, stopped=short or stopped, syntax=syntax and stopped, graders=graders,
                              guard=guard,
                              exercise_timeout=exercise_timeout or _default_exercise_timeout(timeout), emit=emit)
    return {"file": str(path), "assignment": assignment, "ran": stopped is None, "error": stopped,
            "seconds": round(time.perf_counter() - start, 2), "output": output,
            "results": [r.to_dict() for r in results]}


def grade_namespace(ns: dict, assignment: str, *, stopped=None, syntax=None, graders=None, guard=None,
                    exercise_timeout=None, emit=None) -> list[Result]:
    """Run the graders of ``assignment`` on the names a submission defined (quietly), each within
    ``exercise_timeout`` seconds. ``stopped``: why the script stopped early, in a few words (a name
    it never reached is then an error saying so, not "not attempted"); ``syntax``: the syntax error
    that kept the whole file from running. ``guard``: restored before each exercise and after each
    student call."""
    if graders is None:
        ASSIGNMENTS = _assignments()
        if assignment not in ASSIGNMENTS:
            raise ParameterError(_unknown(assignment))
        graders = ASSIGNMENTS[assignment]
    emit = emit or (lambda **event: None)
    results, sink = [], io.StringIO()
    if guard is not None:
        AFTER_CALL.append(guard.restore)
    try:
        for name, check in graders:
            if guard is not None:
                guard.restore()
            emit(event="grading", exercise=check.exercise)
            result = _grade_one_exercise(ns, name, check, stopped, syntax, exercise_timeout, sink)
            results.append(result)
            emit(event="result", result=result.to_dict())
    finally:
        if guard is not None:
            AFTER_CALL.remove(guard.restore)
    return results


_NEVER = object()  # in a namespace: the file has no definition of this name at all


def _top_level_names(source) -> set:
    """Names a module binds at its top level (def, class, assignment, import)."""
    names = set()
    for node in ast.parse(source).body:
        for sub in ast.walk(node) if isinstance(node, (ast.If, ast.Try, ast.With, ast.For, ast.While)) else [node]:
            if isinstance(sub, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                names.add(sub.name)
            elif isinstance(sub, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
                targets = sub.targets if isinstance(sub, ast.Assign) else [sub.target]
                names |= {n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name)}
            elif isinstance(sub, (ast.Import, ast.ImportFrom)):
                names |= {(a.asname or a.name).split(".")[0] for a in sub.names}
    return names


def _grade_one_exercise(ns, name, check, stopped, syntax, seconds, sink) -> Result:
    label = check.exercise
    if ns.get(name) is _NEVER:
        return Result(label, NOT_ATTEMPTED, f"{name} is not defined (no `def {name}` or `class {name}` in the "
                                            f"file).")
    if syntax:
        return Result(label, ERROR, f"not graded: the file has a {syntax}, so none of it could run. "
                                    f"Fix that line, run the file top to bottom, and submit it again.")
    if ns.get(name) is None and stopped:
        return Result(label, ERROR, f"{name} is not defined: the script stopped early ({stopped}) before "
                                    f"defining it.")
    if ns.get(name) is None:
        return Result(label, NOT_ATTEMPTED, f"{name} is not defined yet (no `def {name}` or `class {name}` "
                                            f"in the file).")
    try:
        with contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink), time_limit(seconds, "exercise"):
            result = check(ns[name], verbose=False)
    except BaseException as e:  # noqa: BLE001 - the grader's own guard should have caught it already
        result = Result(label, ERROR, f"grading stopped: {type(e).__name__}: {_one_line(e)}")
    sink.seek(0)
    sink.truncate()
    if not isinstance(result, Result):
        result = Result(label, ERROR, "the grader did not return a result (was it replaced?).")
    return result


def _serve(paths, report, timeout=None, exercise_timeout=None):
    """The subprocess's loop (``python -m minirnn.course _grade_one``): one file after another, each
    report written to ``report`` (JSON lines, flushed), never to stdout."""
    out = open(report, "a", encoding="utf-8")  # noqa: SIM115 - open for the whole run, before any submission
    dumps, flush, write = json.dumps, out.flush, out.write  # our own references
    _grader_state.serving = True  # a KeyboardInterrupt here is the submission's: feedback, not a stop
    known = [a for a in dict.fromkeys(map(_assignment_or_none, paths)) if a in _assignments()]
    prepared = _prepare(known)

    for path in paths:
        def emit(_file=str(Path(path).resolve()), **event):
            write(dumps({"file": _file, **event}) + "\n")
            flush()

        emit(event="start")
        try:
            report_ = run_and_grade(path, timeout=timeout, exercise_timeout=exercise_timeout, emit=emit,
                                    prepared=prepared)
        except BaseException as e:  # noqa: BLE001 - one file's failure must not stop the others
            emit(event="failed", error=f"{type(e).__name__}: {_one_line(e)}")
            continue
        emit(event="report", report=report_)
    out.close()


# ------------------------------------------------------------------ in the parent

def grade_file(path, *, timeout=600, fast=True, exercise_timeout=None) -> dict:
    """Run and grade one file in a subprocess of its own (see the module docstring)."""
    return grade_files([path], timeout=timeout, fast=fast, exercise_timeout=exercise_timeout)[0]


def grade_files(paths, *, timeout=600, fast=True, exercise_timeout=None) -> list[dict]:
    """Run and grade several files one after the other in **one** subprocess (each in a fresh
    namespace, from its own folder): one interpreter start and one set of imports for all.

    A file whose assignment number is unknown (``a7_extra.py``) is reported, not run. If the
    subprocess ends before it reported every file (a submission ended the process, or outlived all
    its time limits), the files it never started are graded in a new one.
    """
    paths = [Path(p).resolve() for p in paths]
    ASSIGNMENTS = _assignments()
    reports = {}
    for p in paths:
        a = assignment_of(p)
        if a not in ASSIGNMENTS:
            reports[p] = _not_graded(p, a, _unknown(a))
    todo = list(dict.fromkeys(p for p in paths if p not in reports))
    ex_timeout = exercise_timeout or _default_exercise_timeout(timeout)
    while todo:
        events, why = _run_subprocess(todo, timeout, ex_timeout, fast)
        started = [p for p in todo if any(e.get("event") == "start" for e in events.get(str(p), []))]
        for p in started:
            reports[p] = _assemble(p, assignment_of(p), events[str(p)], why)
        rest = [p for p in todo if p not in started]
        if rest and not started:  # the subprocess could not even begin: nothing to retry with
            for p in rest:
                reports[p] = _failed(p, assignment_of(p), why, 0.0)
            break
        todo = rest
    return [reports[p] for p in paths]


def _run_subprocess(paths, timeout, exercise_timeout, fast):
    """Run ``_grade_one`` on ``paths``; return ``({file: [events]}, why it ended, if abnormally)``."""
    env = dict(os.environ, MPLBACKEND="Agg", PYTHONHASHSEED="0")
    # the child imports the same minirnn as this process, installed or not
    package_root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = os.pathsep.join([package_root] + [p for p in [env.get("PYTHONPATH")] if p])
    if fast:
        env["MINIRNN_FAST"] = "1"
    else:
        env.pop("MINIRNN_FAST", None)
    n_ex = sum(len(_assignments()[assignment_of(p)]) for p in paths)
    limit = _STARTUP + len(paths) * timeout + n_ex * exercise_timeout if timeout else None  # the last resort
    fd, report = tempfile.mkstemp(prefix="minirnn-course-", suffix=".jsonl")
    os.close(fd)
    command = [sys.executable, "-m", "minirnn.course", "_grade_one", "--report", report,
               "--exercise-timeout", str(exercise_timeout)]
    if timeout:
        command += ["--timeout", str(timeout)]
    try:
        try:
            proc = subprocess.run(command + ["--", *map(str, paths)], cwd=paths[0].parent, env=env,
                                  stdin=subprocess.DEVNULL, capture_output=True, encoding="utf-8",
                                  errors="replace", timeout=limit)
            why = _ended(proc.returncode, proc.stderr)
        except subprocess.TimeoutExpired:
            why = (f"the grading process was stopped after {limit:g} s, all its time limits together "
                   f"(the code kept running after its own limit ran out)")
        events = {}
        with open(report, encoding="utf-8", errors="replace") as f:
            for line in f:
                try:
                    event = json.loads(line)
                    events.setdefault(str(event["file"]), []).append(event)
                except (ValueError, KeyError, TypeError):
                    continue  # a line cut short when the process was stopped
    finally:
        with contextlib.suppress(OSError):
            os.remove(report)
    return events, why


def _ended(returncode, stderr) -> str:
    lines = [line.strip() for line in (stderr or "").splitlines() if line.strip()]
    last = f": {lines[-1][:300]}" if lines else ""
    return f"the grading process ended (exit code {returncode}) before finishing this file{last}"


def _assemble(path, assignment, events, why) -> dict:
    """The report of a file the subprocess started: its own report, checked against this process's
    list of exercises; or, if the process ended first, what it got done and where it stopped."""
    labels = _labels(assignment)
    final = next((e["report"] for e in events if e.get("event") == "report"), None)
    if isinstance(final, dict):
        return _checked(path, assignment, final, labels)
    failed = next((e.get("error") for e in events if e.get("event") == "failed"), None)
    ran = next((e for e in events if e.get("event") == "ran"), None)
    done = {r["exercise"]: r for r in (e.get("result") for e in events if e.get("event") == "result")
            if isinstance(r, dict) and r.get("exercise") in labels}
    current = next((e.get("exercise") for e in reversed(events) if e.get("event") == "grading"), None)
    why = failed or why
    error = f"{why}, while the script was running" if ran is None else ran.get("error")
    results = []
    for label in labels:
        if label in done:
            results.append(done[label])
        elif ran is None:
            results.append(Result(label, ERROR, f"not graded: {why}, while the script was running.").to_dict())
        elif label == current:
            results.append(Result(label, ERROR, f"not graded: {why}, while grading {label}.").to_dict())
        else:
            results.append(Result(label, ERROR, f"not graded: {why} (before {label} was graded).").to_dict())
    return {"file": str(path), "assignment": assignment, "ran": ran is not None and not error,
            "error": error, "seconds": None,
            "output": (ran or {}).get("output", ""), "results": results}


def _checked(path, assignment, report, labels) -> dict:
    """``report`` with its results checked: the assignment's exercises, in order, valid statuses."""
    results = report.get("results")
    ok = (isinstance(results, list) and len(results) == len(labels)
          and all(isinstance(r, dict) and r.get("exercise") == label and r.get("status") in _STATUSES
                  and isinstance(r.get("message", ""), str) for r, label in zip(results, labels)))
    if not ok:
        results = [Result(label, ERROR, "the grading report for this file was incomplete or altered; grade "
                                        "it again, and look at what the file does to the grader.").to_dict()
                   for label in labels]
    return {"file": str(path), "assignment": assignment, "ran": bool(report.get("ran")),
            "error": report.get("error") if isinstance(report.get("error"), str) else None,
            "seconds": report.get("seconds"), "output": str(report.get("output", ""))[-2000:],
            "results": [{"exercise": r["exercise"], "status": r["status"], "message": r.get("message", "")}
                        for r in results]}


def _failed(path, assignment, why, seconds):
    return {"file": str(path), "assignment": assignment, "ran": False, "error": why,
            "seconds": seconds, "output": "",
            "results": [Result(label, ERROR, why).to_dict() for label in _labels(assignment)]}


def _not_graded(path, assignment, why):
    """A file that is not run at all (an unknown assignment number): one row, for the CSV."""
    return {"file": str(path), "assignment": assignment, "ran": False, "error": why, "seconds": 0.0,
            "output": "", "graded": False, "results": [Result("(file)", ERROR, why).to_dict()]}


def _hidden(path: Path, folder: Path) -> bool:
    """Inside a hidden or tool folder (``.ipynb_checkpoints``, ``.git``, ``__MACOSX``, ...)?"""
    return any(part.startswith((".", "__")) for part in path.relative_to(folder).parts[:-1])


def grade_folder(folder, *, timeout=600, fast=True, csv_path=None, jobs=1, exercise_timeout=None) -> list[dict]:
    """Grade every ``a<N>_*.py`` under ``folder`` (any depth: one sub-folder per student is usual;
    hidden folders such as ``.ipynb_checkpoints`` are skipped), ``jobs`` files at a time. Each report
    gains ``"student"`` (the sub-folder, or ``"."``), in sorted file order. Writes a CSV (one row per
    student, file and exercise) when asked."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ParameterError(f"{folder} is not a folder of submissions (it does not exist or is a file).")
    files = sorted(p for p in folder.rglob("a*_*.py") if _NAME.match(p.name) and not _hidden(p, folder))
    with ThreadPoolExecutor(max_workers=max(1, int(jobs))) as pool:  # each file is its own process
        reports = list(pool.map(lambda p: grade_file(p, timeout=timeout, fast=fast,
                                                     exercise_timeout=exercise_timeout), files))
    for p, report in zip(files, reports):
        report["student"] = str(p.parent.relative_to(folder))
    if csv_path is not None:
        with open(csv_path, "w", newline="", encoding="utf-8") as f:
            w = csv.writer(f)
            w.writerow(["student", "file", "exercise", "status", "message", "stopped_early"])
            for r in reports:
                for res in r["results"]:
                    stopped = "" if r["ran"] or r.get("graded") is False else (r["error"] or "")
                    w.writerow([r["student"], Path(r["file"]).name, res["exercise"], res["status"],
                                res["message"], stopped])
    return reports


def format_report(reports) -> str:
    lines = []
    for r in reports:
        name = f"{r.get('student', '.')}/{Path(r['file']).name}"
        if r.get("graded") is False:
            lines.append(f"{name}: not graded — {r['error']}")
            continue
        passed = sum(res["status"] == PASSED for res in r["results"])
        seconds = f" ({r['seconds']} s)" if r.get("seconds") is not None else ""
        head = f"{name}: {passed}/{len(r['results'])} passed{seconds}"
        lines.append(head + ("" if r["ran"] else f" — stopped early: {r['error']}"))
        lines += [f"    {Result(**res)}".replace("\n", "\n    ") for res in r["results"]]
    return "\n".join(lines)
