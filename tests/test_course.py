"""The course kit (issue 9): release, graders, whole assignments, the grading command.

* every instructor version in tutorials/assignments passes its graders, run as a script in a
  subprocess (``grade_folder``, ``MINIRNN_FAST=1``);
* every released student version runs top to bottom and reports each exercise "not attempted",
  without a traceback;
* planted typical mistakes each get a message that names the mistake.

Runtime: the 12 notebook runs share one module fixture (two at a time), ~20 s of CPU in all.
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
