"""The course kit (issue 9): release, graders, whole assignments, the grading command.

* every instructor version in tutorials/assignments passes its graders, run as a script in a
  subprocess (``grade_folder``, ``MINIRNN_FAST=1``);
* every released student version runs top to bottom and reports each exercise "not attempted",
  without a traceback;
* planted typical mistakes each get a message that names the mistake;
* broken submissions (printing without a newline, sys.exit, KeyboardInterrupt, os._exit, endless
  loops, code that rewrites the graders, unknown assignment numbers, syntax errors) cost only what
  they broke, with a one-line message; work that ignores its f/df/rng arguments or changes its
  arguments in place gets no credit.

Runtime: the 12 notebook runs share one module fixture (two at a time), the broken submissions
another (three processes at a time, ~10 s of wall time spent in deliberate time limits); ~30 s in all.
"""
import csv
import shutil
from pathlib import Path

import numpy as np
import pytest

from minirnn.course import grade, grade_files, rel_error, release, release_text
from minirnn.course.__main__ import main
from minirnn.course.grader import ERROR, FAILED, NOT_ATTEMPTED, PASSED
from minirnn.course.release import ReleaseError
from minirnn.course.reference import SimplePD, simplepd_arrays
from minirnn.nn import constraints, optimizers

ASSIGN = Path(__file__).resolve().parents[1] / "tutorials" / "assignments"
FILES = sorted(ASSIGN.glob("a[0-9]_*.py"))
KEYS = ["a1", "a2", "a3", "a4", "a5", "a6"]


def test_six_assignments_each_registered():
    assert [p.name[:2] for p in FILES] == KEYS
    assert sorted(grade.ASSIGNMENTS) == KEYS
    for p in FILES:
        text = p.read_text()
        assert "### BEGIN SOLUTION" in text and "minirnn/" in text  # solutions; the engine file it rebuilds


# ------------------------------------------------------------------ release

INSTRUCTOR = '''\
def f(x):
    """Double it."""
    ### BEGIN SOLUTION hint: multiply by 2
    y = 2 * x
    return y
    ### END SOLUTION


class A:
    def g(self):
        ### BEGIN SOLUTION
        # HINT: give back three
        return 3
        ### END SOLUTION

### BEGIN HIDDEN TESTS
assert f(1) == 2
### END HIDDEN TESTS
'''


def test_release_turns_solutions_into_exercises_with_hints():
    out = release_text(INSTRUCTOR)
    assert "2 * x" not in out and "return 3" not in out and "assert f(1)" not in out
    assert "    raise NotImplementedError('Student exercise: multiply by 2')" in out
    assert "        # HINT: give back three\n        raise NotImplementedError('Student exercise: give back three')" in out
    ns = {}
    exec(out, ns)
    with pytest.raises(NotImplementedError, match="Student exercise: multiply by 2"):
        ns["f"](1)


@pytest.mark.parametrize("text, where", [
    ("### BEGIN SOLUTION\nx = 1\n", "<text>:1: '### BEGIN SOLUTION' is never closed"),
    ("x = 1\n### END SOLUTION\n", "<text>:2: '### END SOLUTION' does not close anything"),
    ("### BEGIN SOLUTION\n### BEGIN SOLUTION\n### END SOLUTION\n", "<text>:2: '### BEGIN SOLUTION' inside"),
    ("if True:\n### BEGIN SOLUTION\n    x = 1\n### END SOLUTION\n", "not valid Python"),
])
def test_release_errors_name_the_line(text, where):
    with pytest.raises(ReleaseError, match=where.replace("(", r"\(")):
        release_text(text)


def test_release_command_writes_every_assignment(tmp_path):
    assert main(["release", str(ASSIGN), str(tmp_path / "student")]) == 0
    written = sorted(p.name for p in (tmp_path / "student").iterdir())
    assert written == [p.name for p in FILES]
    for p in (tmp_path / "student").iterdir():
        assert "### BEGIN SOLUTION" not in p.read_text() and "Student exercise:" in p.read_text()


# ------------------------------------------------------------------ whole notebooks, in subprocesses

@pytest.fixture(scope="module")
def reports(tmp_path_factory):
    """Each version of every assignment run as a script (MINIRNN_FAST=1) and graded: the six
    instructor files in one subprocess, the six released student files in another, concurrently."""
    from concurrent.futures import ThreadPoolExecutor

    root = tmp_path_factory.mktemp("submissions")
    (root / "instructor").mkdir()
    for p in FILES:
        shutil.copy(p, root / "instructor" / p.name)
    students = release(ASSIGN, root / "student")
    groups = {"instructor": sorted((root / "instructor").iterdir()), "student": students}
    with ThreadPoolExecutor(2) as pool:
        done = {who: pool.submit(grade_files, files, timeout=120) for who, files in groups.items()}
    return {(who, Path(r["file"]).name[:2]): r for who, f in done.items() for r in f.result()}


@pytest.mark.parametrize("key", KEYS)
def test_instructor_version_passes_its_graders(reports, key):
    r = reports[("instructor", key)]
    assert r["ran"], r["error"]
    assert len(r["results"]) == len(grade.ASSIGNMENTS[key])
    for res in r["results"]:
        assert res["status"] == PASSED, res


@pytest.mark.parametrize("key", KEYS)
def test_student_version_runs_and_reports_not_attempted(reports, key):
    r = reports[("student", key)]
    assert r["ran"], r["error"]  # top to bottom, as a script
    assert "Traceback" not in r["output"]
    assert r["output"].count("[TODO]") == len(grade.ASSIGNMENTS[key])  # the notebook's own grader cells
    for res in r["results"]:
        assert res["status"] == NOT_ATTEMPTED, res
        assert res["message"].startswith("not attempted yet (Student exercise:")
        assert "Traceback" not in res["message"]


# ------------------------------------------------------------------ correct references pass in-process

def euler_step(x, u, W_rec, W_in, b_rec, alpha, sigma_rec, xi, f):
    return (1 - alpha) * x + alpha * (f(x) @ W_rec.T + u @ W_in.T + b_rec) + np.sqrt(2 * alpha) * sigma_rec * xi


def euler_step_backward(dx_next, x, u, W_rec, W_in, alpha, f, df):
    d = alpha * dx_next
    return {"dx": (1 - alpha) * dx_next + df(x) * (d @ W_rec), "du": d @ W_in, "dW_rec": d.T @ f(x),
            "dW_in": d.T @ u, "db_rec": d.sum(0)}


def bptt(dX, X, x0, U, W_rec, W_in, alpha, f, df):
    g, carry = {"dW_rec": 0, "dW_in": 0, "db_rec": 0}, 0 * x0
    for k in reversed(range(X.shape[1])):
        s = euler_step_backward(dX[:, k] + carry, X[:, k - 1] if k else x0, U[:, k], W_rec, W_in, alpha, f, df)
        g = {n: g[n] + s[n] for n in g}
        carry = s["dx"]
    return {**g, "dx0": carry}


class MyAdam:
    def __init__(self, learning_rate, beta1, beta2, epsilon, bias_correction=True):
        self.lr, self.b1, self.b2, self.eps, self.bias = learning_rate, beta1, beta2, epsilon, bias_correction
        self.m, self.v, self.t = {}, {}, 0

    def compute_update(self, grads):
        self.t += 1
        lr_t = self.lr * np.sqrt(1 - self.b2**self.t) / (1 - self.b1**self.t) if self.bias else self.lr
        out = {}
        for k, g in grads.items():
            self.m[k] = self.b1 * self.m.get(k, 0) + (1 - self.b1) * g
            self.v[k] = self.b2 * self.v.get(k, 0) + (1 - self.b2) * g * g
            out[k] = lr_t * self.m[k] / (np.sqrt(self.v[k]) + self.eps)
        return out


def test_reference_answers_pass():
    checks = [(grade.euler_step, euler_step), (grade.euler_step_backward, euler_step_backward), (grade.bptt, bptt),
              (grade.effective_weight, constraints.effective_weight),
              (grade.effective_weight_backward, constraints.effective_weight_backward),
              (grade.dale_signs, constraints.dale_signs), (grade.no_autapses, constraints.no_autapses),
              (grade.sgd, optimizers.SGD), (grade.momentum, optimizers.Momentum), (grade.adam, optimizers.Adam),
              (grade.adam, MyAdam), (grade.simplepd_sample, SimplePD), (grade.simplepd_build, SimplePD)]
    for check, fn in checks:
        result = check(fn, verbose=False)
        assert result.passed, result


# ------------------------------------------------------------------ planted mistakes

def no_alpha(x, u, W_rec, W_in, b_rec, alpha, sigma_rec, xi, f):
    return (1 - alpha) * x + (f(x) @ W_rec.T + u @ W_in.T + b_rec) + np.sqrt(2 * alpha) * sigma_rec * xi


def transposed_dW_rec(*args):
    g = euler_step_backward(*args)
    return {**g, "dW_rec": g["dW_rec"].T}


def bptt_transposed(*args):
    g = bptt(*args)
    return {**g, "dW_rec": g["dW_rec"].T}


def dale_rows(W, mask, sign=None):
    return W * mask if sign is None else np.abs(W * mask) * sign.reshape(-1, 1)


def dale_rows_backward(dW, W, mask, sign=None):
    return dW * mask if sign is None else dW * sign.reshape(-1, 1) * np.sign(W * mask) * mask


def forward_difference(f, x, h=1e-5):
    g, f0 = np.zeros_like(x), f(x)
    for i in np.ndindex(x.shape):
        old = x[i]
        x[i] = old + h
        g[i] = (f(x) - f0) / h
        x[i] = old
    return g


class MomentumEMA:
    def __init__(self, learning_rate, momentum):
        self.lr, self.mu, self.a = learning_rate, momentum, {}

    def compute_update(self, grads):
        for k, g in grads.items():
            self.a[k] = self.mu * self.a.get(k, 0) + (1 - self.mu) * g
        return {k: self.lr * self.a[k] for k in grads}


class SimplePDMaskLate(SimplePD):
    def build_trials(self, params, rng=None):
        return simplepd_arrays(self, params, rng, mask_from_decision=True)


PLANTED = [
    ("missing alpha", grade.euler_step, no_alpha, ["x_next[", "expected", "got", "missing alpha"]),
    ("transposed gradient", grade.euler_step_backward, transposed_dW_rec,
     ["dW_rec[", "your dW_rec is the transpose of the expected one"]),
    ("transposed gradient, BPTT", grade.bptt, bptt_transposed, ["bptt: dW_rec", "your dW_rec is the transpose"]),
    ("Dale on rows", grade.effective_weight, dale_rows, ["W_eff[", "Dale's sign applied on rows instead of columns"]),
    ("Dale on rows, adjoint", grade.effective_weight_backward, dale_rows_backward,
     ["Dale's sign applied on rows instead of columns"]),
    ("Adam without bias correction", grade.adam,
     lambda **h: MyAdam(**h, bias_correction=False), ["at update 1", "Adam without bias correction"]),
    ("one-sided differences", grade.numerical_gradient, forward_difference, ["one-sided difference"]),
    ("dale_ratio rounded", grade.dale_signs,
     lambda r, N: (np.where(np.arange(N) < round(r * N), 1.0, -1.0), (np.arange(N) < round(r * N)) * 1.0),
     ["unit 28", "truncates"]),
    ("EMA momentum", grade.momentum, MomentumEMA, ["no (1 - mu) factor"]),
    ("reversed fixed mask", grade.apply_update, lambda W, d, F: W - d * F, ["1 = fixed"]),
    ("Jacobian scaled by rows", grade.map_jacobian,
     lambda x, W, a, df: (1 - a) * np.eye(x.shape[1]) + a * W * df(x)[:, :, None], ["multiplies the columns"]),
    ("mask from the decision", grade.simplepd_build, SimplePDMaskLate,
     ["SimplePD.build_trials: mask[", "t = ", "the 20 ms gap is trained"]),
]


@pytest.mark.parametrize("name, check, fn, phrases", PLANTED, ids=[p[0] for p in PLANTED])
def test_planted_mistakes_are_named(name, check, fn, phrases):
    result = check(fn, verbose=False)
    assert result.status == FAILED
    for phrase in phrases:
        assert phrase in result.message, (phrase, result.message)
    assert "Traceback" not in result.message


def test_unfinished_broken_and_odd_answers_get_one_line_feedback(capsys):
    def todo(*args):
        raise NotImplementedError("Student exercise: write it")

    def broken(x, u, W_rec, W_in, b_rec, alpha, sigma_rec, xi, f):
        return x @ u  # shapes do not fit

    r = grade.euler_step(todo)
    assert r.status == NOT_ATTEMPTED and "not attempted yet" in capsys.readouterr().out
    r = grade.euler_step(broken, verbose=False)
    assert r.status == ERROR and "euler_step(" in r.message and "raised ValueError" in r.message
    assert "test_course.py:" in r.message and "`return x @ u" in r.message and "Traceback" not in r.message
    r = grade.euler_step(lambda *a: None, verbose=False)
    assert r.status == FAILED and "did you forget `return`" in r.message
    r = grade.euler_step(lambda x, *a: x.T, verbose=False)
    assert r.status == FAILED and "shape (5, 3); expected (3, 5)" in r.message and "transposed" in r.message
    assert grade.bptt(None, verbose=False).status == NOT_ATTEMPTED
    assert grade.bptt(lambda *a: [1, 2], verbose=False).status == FAILED


def test_rel_error():
    assert rel_error(np.ones(3), np.ones(3)) == 0
    assert rel_error([1.0, 0.0], [1.0, 1e-3]) == pytest.approx(1.0)


# ------------------------------------------------------------------ the grading command

def test_grade_command_prints_and_writes_csv(tmp_path, capsys):
    (tmp_path / "subs" / "alice").mkdir(parents=True)
    shutil.copy(ASSIGN / "a2_bptt.py", tmp_path / "subs" / "alice" / "a2_bptt.py")
    out_csv = tmp_path / "grades.csv"
    assert main(["grade", str(tmp_path / "subs"), "--csv", str(out_csv)]) == 0
    printed = capsys.readouterr().out
    assert "alice/a2_bptt.py: 3/3 passed" in printed and "[PASS] bptt" in printed
    rows = list(csv.DictReader(out_csv.open()))
    assert [(r["student"], r["exercise"], r["status"]) for r in rows] == [
        ("alice", "euler_step_backward", "passed"), ("alice", "numerical_gradient", "passed"),
        ("alice", "bptt", "passed")]


# ------------------------------------------------------------------ broken submissions (audit fixes)

def plant(name, *replacements, append=""):
    """The instructor version of ``name`` with each ``(old, new)`` replaced once, plus ``append``."""
    text = (ASSIGN / name).read_text()
    for old, new in replacements:
        assert text.count(old) == 1, (name, old)
        text = text.replace(old, new)
    return text + append


def write(root, student, name, text):
    path = root / student / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


SKELETON_A2 = release_text((ASSIGN / "a2_bptt.py").read_text())
OVERRIDES = {  # a student version that tries to award itself full marks
    "slice": "from minirnn.course import grade as _g, Result as _R\n"
             "_g.ASSIGNMENTS['a2'][:] = [(n, (lambda n: lambda fn, verbose=True: _R(n, 'passed'))(n))"
             " for n, _ in _g.ASSIGNMENTS['a2']]\n",
    "rebind": "import minirnn.course.grade as _g, minirnn.course.grader as _G\n"
              "_g.ASSIGNMENTS = {'a2': [(n, lambda fn, verbose=True, n=n: _G.Result(n, 'passed'))"
              " for n in ('euler_step_backward', 'numerical_gradient', 'bptt')]}\n"
              "_g.call = lambda name, fn, *a, **k: None\n_g.compare = _g.expect_keys = lambda *a, **k: None\n"
              "_G.RTOL = _G.ATOL = 1e9\n",
}
IN_FUNCTION = '''
def euler_step_backward(dx_next, x, u, W_rec, W_in, alpha, f, df):
    import minirnn.course.grade as g
    g.compare = g.expect_keys = lambda *a, **k: None   # rewrites the grader while it is being graded
    return {}
'''


CATCHER = """\
import numpy as np


def euler_step(x, u, W_rec, W_in, b_rec, alpha, sigma_rec, xi, f):
    return (1 - alpha) * x + alpha * (f(x) @ W_rec.T + u @ W_in.T + b_rec) + np.sqrt(2 * alpha) * sigma_rec * xi


while True:  # holds on to its time limit
    try:
        while True:
            pass
    except BaseException:
        pass
"""


@pytest.fixture(scope="module")
def broken(tmp_path_factory):
    """Broken submissions graded as files: most in one subprocess (one of them ends that process, so
    the rest go to a second one), the slow ones (time limits) in two others, concurrently."""
    from concurrent.futures import ThreadPoolExecutor

    from minirnn.course import grade_file, submissions

    root = tmp_path_factory.mktemp("broken")
    fast = [
        write(root, "noeol", "a4_optimizers.py", plant(
            "a4_optimizers.py", ("        return {name: self.learning_rate * g for",
                                 "        print('debug', end=' ')\n        return {name: self.learning_rate * g for"),
            append="\nimport sys\nsys.stdout = open(__import__('os').devnull, 'w')\nprint('bye', end='')\n")),
        write(root, "fnexit", "a3_constraints.py", plant(
            "a3_constraints.py",
            ("    return WM if sign is None else np.abs(WM) * sign", "    import sys; sys.exit(1)"))),
        write(root, "osexit", "a1_euler_forward.py", plant("a1_euler_forward.py", append="\nimport os\nos._exit(3)\n")),
        write(root, "toperr", "a3_constraints.py", plant(
            "a3_constraints.py", ("def apply_update(", "undefined_name + 1\n\n\ndef apply_update("))),
        write(root, "kbint", "a5_new_task.py", plant(
            "a5_new_task.py", ('        return {"coherence": rng.exponential(',
                               '        raise KeyboardInterrupt\n        return {"coherence": rng.exponential('))),
        *[write(root, f"mallory_{k}", "a2_bptt.py", SKELETON_A2 + "\n" + v) for k, v in OVERRIDES.items()],
        write(root, "mallory_fn", "a2_bptt.py", SKELETON_A2 + IN_FUNCTION),
    ]
    slow = [
        write(root, "toploop", "a3_constraints.py", plant("a3_constraints.py", append="\nwhile True:\n    pass\n")),
        write(root, "fnloop", "a2_bptt.py", plant(
            "a2_bptt.py",
            ("    grad = np.zeros_like(x)\n", "    grad = np.zeros_like(x)\n    while True:\n        pass\n"),
            ("r_num = grade.numerical_gradient(numerical_gradient)", "r_num = grade.numerical_gradient(None)"))),
    ]
    catcher = write(root, "catcher", "a1_euler_forward.py", CATCHER)
    startup, submissions._STARTUP = submissions._STARTUP, 4  # the last-resort limit: 4 + 2 + 2 * 1 s
    try:
        with ThreadPoolExecutor(3) as pool:
            jobs = [pool.submit(grade_files, fast, timeout=120), pool.submit(grade_files, slow, timeout=6,
                                                                             exercise_timeout=1),
                    pool.submit(grade_file, catcher, timeout=2, exercise_timeout=1)]
            reports = [r for j in jobs[:2] for r in j.result()] + [jobs[2].result()]
    finally:
        submissions._STARTUP = startup
    return {Path(r["file"]).parent.name: r for r in reports}


def statuses(report):
    return {res["exercise"]: res["status"] for res in report["results"]}


def test_printing_without_newline_or_replacing_stdout_keeps_the_report(broken):
    r = broken["noeol"]
    assert r["ran"], r["error"]
    assert set(statuses(r).values()) == {PASSED}, r["results"]


def test_sys_exit_and_keyboard_interrupt_cost_one_exercise_with_one_line(broken):
    r = broken["fnexit"]
    assert statuses(r) == {"effective_weight": ERROR, "effective_weight_backward": PASSED, "dale_signs": PASSED,
                           "no_autapses": PASSED, "apply_update": PASSED}
    message = r["results"][0]["message"]
    assert "called sys.exit(1)" in message and "a3_constraints.py:54" in message and "\n" not in message
    r = broken["kbint"]
    assert statuses(r) == {"SimplePD.sample_trial_params": ERROR, "SimplePD.build_trials": PASSED,
                           "choice_fractions": PASSED}
    message = r["results"][0]["message"]
    assert "KeyboardInterrupt" in message and "Traceback" not in message and "\n" not in message


def test_direct_sys_exit_is_feedback_and_ctrl_c_stops_in_process(monkeypatch):
    """In a notebook a KeyboardInterrupt is the user's Ctrl-C: it stops the cell instead of being graded. In
    the grading subprocess (serving) it is the submission's own, and becomes feedback."""
    from minirnn.course import grader as grader_module

    def exits(*args):
        import sys
        sys.exit(1)

    def interrupted(*args):
        raise KeyboardInterrupt

    r = grade.euler_step(exits, verbose=False)
    assert r.status == ERROR and "called sys.exit(1)" in r.message and "test_course.py:" in r.message
    with pytest.raises(KeyboardInterrupt):
        grade.bptt(interrupted, verbose=False)
    monkeypatch.setattr(grader_module._STATE, "serving", True)
    r = grade.bptt(interrupted, verbose=False)
    assert r.status == ERROR and "KeyboardInterrupt" in r.message and "Traceback" not in r.message


def test_a_submission_cannot_rewrite_its_graders(broken):
    for k in [*OVERRIDES, "fn"]:
        r = broken[f"mallory_{k}"]
        assert [res["exercise"] for res in r["results"]] == ["euler_step_backward", "numerical_gradient", "bptt"]
        assert PASSED not in statuses(r).values(), (k, r["results"])
    assert broken["mallory_fn"]["results"][0]["status"] == FAILED  # returned {}: the real expect_keys ran


def test_a_function_the_script_never_reached_is_an_error_saying_so(broken):
    r = broken["toperr"]
    assert not r["ran"] and r["error"].startswith("NameError: name 'undefined_name' is not defined at line")
    assert statuses(r) == {"effective_weight": PASSED, "effective_weight_backward": PASSED, "dale_signs": PASSED,
                           "no_autapses": PASSED, "apply_update": ERROR}
    assert r["results"][-1]["message"].startswith("apply_update is not defined: the script stopped early "
                                                  "(NameError at line")


def test_a_process_that_dies_costs_only_its_own_file(broken):
    r = broken["osexit"]  # os._exit(3) at the end of the script: no report from that process
    assert not r["ran"] and "exit code 3" in r["error"]
    assert [res["exercise"] for res in r["results"]] == ["euler_step", "simulate"]
    assert all(res["status"] == ERROR and "exit code 3" in res["message"] for res in r["results"])
    assert set(statuses(broken["kbint"]).values()) == {ERROR, PASSED}  # graded after it, in a new process


def test_a_script_that_hangs_is_graded_on_what_it_defined(broken):
    r = broken["toploop"]
    assert set(statuses(r).values()) == {PASSED}, r["results"]
    assert not r["ran"] and "did not finish within 6 s" in r["error"] and "`while True:`" in r["error"]
    r = broken["fnloop"]
    assert statuses(r) == {"euler_step_backward": PASSED, "numerical_gradient": ERROR, "bptt": PASSED}
    message = r["results"][1]["message"]
    assert "did not finish within 1 s" in message and "a2_bptt.py:" in message and "while True" in message


def test_code_that_swallows_its_time_limit_is_stopped_by_the_parent(broken):
    r = broken["catcher"]
    assert not r["ran"] and "stopped after" in r["error"]
    assert [res["exercise"] for res in r["results"]] == ["euler_step", "simulate"]
    assert all(res["status"] == ERROR for res in r["results"])


def test_unknown_assignments_and_hidden_folders(tmp_path, capsys):
    subs = tmp_path / "subs"
    a3 = (ASSIGN / "a3_constraints.py").read_text()
    write(subs, "alice", "a3_constraints.py", a3)
    write(subs, "alice/.ipynb_checkpoints", "a3_constraints-checkpoint.py", a3)
    for name in ("a7_extra.py", "a0_scratch.py", "a10_x.py"):
        write(subs, "bob", name, "print('hello')\n")
    out_csv = tmp_path / "grades.csv"
    assert main(["grade", str(subs), "--csv", str(out_csv)]) == 0
    printed = capsys.readouterr().out
    assert "alice/a3_constraints.py: 5/5 passed" in printed and "checkpoint" not in printed
    assert "bob/a7_extra.py: not graded — unknown assignment 'a7'" in printed
    rows = list(csv.DictReader(out_csv.open()))
    assert sorted({(r["student"], r["file"]) for r in rows}) == [
        ("alice", "a3_constraints.py"), ("bob", "a0_scratch.py"), ("bob", "a10_x.py"), ("bob", "a7_extra.py")]
    assert {r["status"] for r in rows if r["student"] == "bob"} == {"error"}


def test_grading_a_missing_folder_is_one_line(tmp_path, capsys):
    assert main(["grade", str(tmp_path / "nope")]) == 2
    err = capsys.readouterr().err
    assert "is not a folder of submissions" in err and "Traceback" not in err and err.count("\n") == 1


def test_csv_names_each_exercise_and_says_why_a_file_stopped(tmp_path):
    subs = tmp_path / "subs"
    write(subs, "carol", "a1_euler_forward.py", plant(
        "a1_euler_forward.py",
        ("    return (1 - alpha) * x + alpha * drive +", "    return (1 - alpha) * x + alpha * drive) +")))
    write(subs, "carol", "a5_new_task.py", "import os\nos._exit(1)\n")
    out_csv = tmp_path / "grades.csv"
    from minirnn.course import grade_folder

    grade_folder(subs, csv_path=out_csv, jobs=2)
    rows = list(csv.DictReader(out_csv.open()))
    a1 = [r for r in rows if r["file"] == "a1_euler_forward.py"]
    assert [r["status"] for r in a1] == ["error", "error"]
    assert all("SyntaxError" in r["message"] and "line 72" in r["message"] for r in a1)
    assert all("SyntaxError" in r["stopped_early"] for r in a1)
    assert [r["exercise"] for r in rows if r["file"] == "a5_new_task.py"] == [
        "SimplePD.sample_trial_params", "SimplePD.build_trials", "choice_fractions"]


def test_release_script_writes_to_student_in_the_current_folder(tmp_path):
    import os
    import subprocess
    import sys

    env = dict(os.environ, PYTHONPATH=str(ASSIGN.parents[1]))
    subprocess.run([sys.executable, str(ASSIGN / "release.py")], cwd=tmp_path, env=env, check=True,
                   capture_output=True)
    assert sorted(p.name for p in (tmp_path / "student").iterdir()) == [p.name for p in FILES]
    assert not (ASSIGN / "student").exists()


# ------------------------------------------------------------------ credit only for right work

def euler_step_tanh(x, u, W_rec, W_in, b_rec, alpha, sigma_rec, xi, f):
    return euler_step(x, u, W_rec, W_in, b_rec, alpha, sigma_rec, xi, np.tanh)


def euler_step_backward_tanh_df(dx_next, x, u, W_rec, W_in, alpha, f, df):
    return euler_step_backward(dx_next, x, u, W_rec, W_in, alpha, f, lambda z: 1 - np.tanh(z) ** 2)


def bptt_tanh(dX, X, x0, U, W_rec, W_in, alpha, f, df):
    return bptt(dX, X, x0, U, W_rec, W_in, alpha, np.tanh, lambda z: 1 - np.tanh(z) ** 2)


def euler_map(x, u, W_rec, W_in, b_rec, alpha, f):
    return (1 - alpha) * x + alpha * (f(x) @ W_rec.T + u @ W_in.T + b_rec)


def map_jacobian(x, W_rec, alpha, df):
    return (1 - alpha) * np.eye(x.shape[1]) + alpha * W_rec * df(x)[:, None, :]


def newton_fixed_point(x0, u, W_rec, W_in, b_rec, alpha, f, df, n_iter=50):
    x = np.array(x0, dtype=float)
    for _ in range(n_iter):
        A = map_jacobian(x, W_rec, alpha, df) - np.eye(x.shape[1])
        x = x - np.linalg.solve(A, (euler_map(x, u, W_rec, W_in, b_rec, alpha, f) - x)[..., None])[..., 0]
    return x


class SimplePDOwnSeed(SimplePD):
    def sample_trial_params(self, rng, N_batch):
        return super().sample_trial_params(np.random.default_rng(123), N_batch)


class SimplePDOwnNoise(SimplePD):
    def build_trials(self, params, rng=None):
        return super().build_trials(params, np.random.default_rng(123))


def test_reference_answers_with_other_transfer_functions_pass():
    for check, fn in [(grade.euler_map, euler_map), (grade.map_jacobian, map_jacobian),
                      (grade.newton_fixed_point, newton_fixed_point), (grade.euler_step, euler_step),
                      (grade.euler_step_backward, euler_step_backward), (grade.bptt, bptt)]:
        result = check(fn, verbose=False)
        assert result.passed, result


@pytest.mark.parametrize("check, fn, phrases", [
    (grade.euler_step, euler_step_tanh, ["relu", "uses tanh instead of the transfer function `f`"]),
    (grade.euler_step_backward, euler_step_backward_tanh_df,
     ["dx[", "tanh's derivative", "instead of the derivative `df`"]),
    (grade.bptt, bptt_tanh, ["uses tanh", "f = relu"]),
    (grade.euler_map, lambda x, u, W, Wi, b, a, f: euler_map(x, u, W, Wi, b, a, np.tanh), ["uses tanh instead of"]),
    (grade.map_jacobian, lambda x, W, a, df: map_jacobian(x, W, a, lambda z: 1 - np.tanh(z) ** 2),
     ["tanh's derivative"]),
    (grade.newton_fixed_point, lambda *a: newton_fixed_point(*a[:6], np.tanh, lambda z: 1 - np.tanh(z) ** 2),
     ["linear", "uses tanh and its derivative"]),
    (grade.simplepd_sample, SimplePDOwnSeed, ["two different rngs", "gave the same"]),
    (grade.simplepd_build, SimplePDOwnNoise, ["two different rngs", "gave the same x"]),
], ids=["euler_step", "euler_step_backward", "bptt", "euler_map", "map_jacobian", "newton", "sample", "build"])
def test_work_that_ignores_its_arguments_gets_no_credit(check, fn, phrases):
    result = check(fn, verbose=False)
    assert result.status == FAILED
    for phrase in phrases:
        assert phrase in result.message, (phrase, result.message)


def euler_step_in_place(x, u, W_rec, W_in, b_rec, alpha, sigma_rec, xi, f):
    drive = f(x) @ W_rec.T + u @ W_in.T + b_rec
    x *= 1 - alpha
    x += alpha * drive + np.sqrt(2 * alpha) * sigma_rec * xi
    return x


def simulate_with(step):
    def simulate(x0, U, W_rec, W_in, b_rec, alpha, sigma_rec, Xi, f):
        x, states = x0, []
        for k in range(U.shape[1]):
            x = step(x, U[:, k], W_rec, W_in, b_rec, alpha, sigma_rec, Xi[:, k], f)
            states.append(x)
        return np.stack(states, axis=1)
    return simulate


def bptt_in_place(dX, X, x0, U, W_rec, W_in, alpha, f, df):
    g, carry = {"dW_rec": 0, "dW_in": 0, "db_rec": 0}, 0 * x0
    for k in reversed(range(X.shape[1])):
        dX[:, k] += carry
        s = euler_step_backward(dX[:, k], X[:, k - 1] if k else x0, U[:, k], W_rec, W_in, alpha, f, df)
        g = {n: g[n] + s[n] for n in g}
        carry = s["dx"]
    return {**g, "dx0": carry}


class SGDInPlace:
    def __init__(self, learning_rate):
        self.lr = learning_rate

    def compute_update(self, grads):
        for g in grads.values():
            g *= self.lr
        return grads


class MomentumKeepsGradient:
    def __init__(self, learning_rate, momentum):
        self.lr, self.mu, self.a = learning_rate, momentum, {}

    def compute_update(self, grads):
        for k, g in grads.items():
            if k in self.a:
                self.a[k] *= self.mu
                self.a[k] += g
            else:
                self.a[k] = g  # the caller's array, changed in place at the next update
        return {k: self.lr * self.a[k] for k in grads}


def apply_update_in_place(W, delta, fixed):
    W -= delta * (1 - fixed)
    return W


def numerical_gradient_no_restore(f, x, h=1e-5):
    g = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        old = x[i]
        x[i] = old + h
        up = f(x)
        x[i] = old - h
        g[i] = (up - f(x)) / (2 * h)
    return g


@pytest.mark.parametrize("check, fn, phrases", [
    (grade.euler_step, euler_step_in_place, ["euler_step changed its argument `x` in place", "x[0, 0] was"]),
    (grade.simulate, simulate_with(euler_step_in_place), ["simulate changed its argument `x0` in place"]),
    (grade.bptt, bptt_in_place, ["bptt changed its argument `dX` in place", "dX[:, k] += carry"]),
    (grade.apply_update, apply_update_in_place, ["apply_update changed its argument `W` in place"]),
    (grade.sgd, SGDInPlace, ["changed its argument `grads['W_rec']` in place", "scales the caller's gradients"]),
    (grade.momentum, MomentumKeepsGradient, ["changed `grads['W_rec']`, an array it was given at its call 1",
                                             "keeps a reference"]),
    (grade.numerical_gradient, numerical_gradient_no_restore, ["changed its argument `x` in place",
                                                               "put each entry back"]),
], ids=["euler_step", "simulate", "bptt", "apply_update", "SGD", "Momentum", "numerical_gradient"])
def test_changing_an_argument_in_place_is_named(check, fn, phrases):
    result = check(fn, verbose=False)
    assert result.status == FAILED
    for phrase in phrases:
        assert phrase in result.message, (phrase, result.message)


def test_all_zeros_are_called_all_zeros():
    result = grade.euler_step(lambda x, *a: np.zeros_like(x), verbose=False)
    assert result.status == FAILED and "your output is all zeros" in result.message
    assert "constant" not in result.message


def bptt_state_after(dX, X, x0, U, W_rec, W_in, alpha, f, df):  # x_k = X[:, k]
    g, carry = {"dW_rec": 0, "dW_in": 0, "db_rec": 0}, 0 * x0
    for k in reversed(range(X.shape[1])):
        s = euler_step_backward(dX[:, k] + carry, X[:, k], U[:, k], W_rec, W_in, alpha, f, df)
        g = {n: g[n] + s[n] for n in g}
        carry = s["dx"]
    return {**g, "dx0": carry}


def bptt_skips_first(dX, X, x0, U, W_rec, W_in, alpha, f, df):  # loop starts at 1
    g, carry = {"dW_rec": 0, "dW_in": 0, "db_rec": 0}, 0 * x0
    for k in reversed(range(1, X.shape[1])):
        s = euler_step_backward(dX[:, k] + carry, X[:, k - 1], U[:, k], W_rec, W_in, alpha, f, df)
        g = {n: g[n] + s[n] for n in g}
        carry = s["dx"]
    return {**g, "dx0": carry}


@pytest.mark.parametrize("fn, phrase", [(bptt_state_after, "X[:, k] is the state after the step"),
                                        (bptt_skips_first, "the loop must also run the first step")])
def test_bptt_off_by_one_is_diagnosed(fn, phrase):
    result = grade.bptt(fn, verbose=False)
    assert result.status == FAILED and "off by one" in result.message and phrase in result.message, result.message


def test_reports_and_releases_are_utf8_whatever_the_locale(tmp_path):
    """On Windows, text files default to the locale's encoding (cp1252): a student named Łukasz in the
    grades CSV, a ρ in an instructor's file, and the ⊙ of a hint in a report redirected to a file must
    neither crash nor be written in cp1252. Simulated with Python's pure-Python open and a cp1252 locale."""
    import os
    import subprocess
    import sys

    subs, src, dest = tmp_path / "subs", tmp_path / "src", tmp_path / "dest"
    (subs / "Łukasz").mkdir(parents=True)
    (subs / "Łukasz" / "a1_euler.py").write_text("def euler_step(:\n", encoding="utf-8")  # a syntax error: quick
    src.mkdir()
    (src / "a9_rho.py").write_text("rho = 0.9  # ρ, the spectral radius\n", encoding="utf-8")
    code = ("import _pyio, builtins, io, locale, sys\n"
            "locale.getencoding = lambda: 'cp1252'\n"
            "builtins.open = io.open = _pyio.open\n"
            "sys.stdout = io.TextIOWrapper(sys.stdout.buffer, encoding='cp1252')\n"
            "from minirnn.course import grade_folder, release\n"
            f"grade_folder({str(subs)!r}, csv_path={str(tmp_path / 'grades.csv')!r}, timeout=60)\n"
            f"release({str(src)!r}, {str(dest)!r})\n"
            "from minirnn.course.__main__ import main\n"
            "print('⊙ hint')\n"  # what a report with a hint prints, below through main()'s reconfigure
            )
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, env=env, timeout=120)
    assert run.returncode != 0 and b"UnicodeEncodeError" in run.stderr  # the bare print: the control
    code = code.replace("print('⊙ hint')\n", "import minirnn.course.__main__ as m\n"
                        "m.format_report = lambda reports: '⊙ hint'\n"  # as if a hint were in the report
                        "main(['grade', " + repr(str(subs)) + "])\n")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, env=env, timeout=120)
    assert run.returncode == 0, run.stderr.decode()
    assert "Łukasz" in (tmp_path / "grades.csv").read_text(encoding="utf-8")
    assert "ρ" in (dest / "a9_rho.py").read_text(encoding="utf-8")
    assert b"? hint" in run.stdout
