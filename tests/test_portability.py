"""Windows, simulated on Linux: what students' laptops do differently, checked here in CI.

- The run / sweep lock without ``fcntl``: ``msvcrt.locking`` of a byte (``fake_msvcrt`` builds it on
  Linux's per-open-file locks), which the OS drops when its process dies: a killed job never blocks
  ``--resume``.
- Text files in UTF-8 whatever the locale's encoding (cp1252 on most Windows machines).
- File-name length counted in UTF-16 code units on Windows (NTFS allows 255 of them).
- The course grader's per-exercise time limit without ``SIGALRM``/``setitimer``.
- The test modules themselves import without ``fcntl``, ``pty``, ``termios``.
"""
from __future__ import annotations

import _pyio
import builtins
import csv
import io
import json
import locale
import os
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from minirnn import io as mio
from minirnn import runs
from minirnn.course.grader import _STATE, Timeout, time_limit
from minirnn.errors import ParameterError

TESTS = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(TESTS)


def holder_of(path) -> dict:
    """The record in a lock file."""
    with open(path, encoding="utf-8") as fh:
        return json.load(fh)


# ---------------------------------------------------------------------------- the lock, as on Windows


@pytest.fixture
def windows_locks(monkeypatch):
    """No ``fcntl``; ``msvcrt`` is Windows' own there, else the stand-in built on Linux's OFD locks."""
    try:
        import msvcrt
        return msvcrt
    except ImportError:
        pass
    if sys.platform != "linux":
        pytest.skip("the msvcrt stand-in needs Linux's open-file-description locks")
    import fake_msvcrt

    if not fake_msvcrt.AVAILABLE:
        pytest.skip("this Linux has no open-file-description locks (F_OFD_SETLK)")
    monkeypatch.setitem(sys.modules, "fcntl", None)  # `import fcntl` raises ImportError, as on Windows
    monkeypatch.setitem(sys.modules, "msvcrt", fake_msvcrt)
    return fake_msvcrt


def test_windows_lock_refuses_a_second_holder_names_it_and_is_released(tmp_path, windows_locks):
    assert runs._lock_kind() == "msvcrt"
    directory = str(tmp_path)
    refusal = rf"in use by another sweep \(pid {os.getpid()} on .*\.run\.lock\)\. Use another out_dir\.$"
    with runs.exclusive_lock(directory, what="sweep", advice="Use another out_dir.") as path:
        with pytest.raises(ParameterError, match=refusal), \
                runs.exclusive_lock(directory, what="sweep", advice="Use another out_dir."):
            pass
        # the locked byte lies past the holder record: Windows refuses to read a locked byte, and the
        # refusal above must read the record to name the holder
        assert os.path.getsize(path) < runs._MSVCRT_LOCK_BYTE
        assert holder_of(path)["pid"] == os.getpid()
    assert os.listdir(directory) == []
    with runs.exclusive_lock(directory):  # released
        pass


def test_windows_lock_file_left_by_a_killed_job_does_not_block_the_next(tmp_path, windows_locks):
    """What a killed job leaves: the lock file with its record, and no lock (the OS dropped it)."""
    stale = tmp_path / runs.RUN_LOCK
    stale.write_text(json.dumps({"what": "minirnn train", "pid": 4242, "host": "laptop", "since": "then",
                                 "padding": "x" * 200}), encoding="utf-8")
    with runs.exclusive_lock(str(tmp_path)) as path:
        holder = holder_of(path)  # the new holder's record, the old one's tail gone
        assert holder["pid"] == os.getpid() and "padding" not in holder
    assert not stale.exists()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="kills a holder process; stand-in is Linux-only")
def test_windows_lock_of_a_killed_process_is_dropped(tmp_path, windows_locks):
    """A holder in another process is refused while it runs; killed (TerminateProcess on Windows),
    it leaves its lock file, and the next job takes the directory without any cleaning up."""
    child = ("import sys, time; sys.path.insert(0, sys.argv[1]); import fake_msvcrt; "
             "sys.modules.update(msvcrt=fake_msvcrt, fcntl=None); from minirnn import runs\n"
             "with runs.exclusive_lock(sys.argv[2]):\n    print('locked', flush=True); time.sleep(120)")
    holder = subprocess.Popen([sys.executable, "-c", child, TESTS, str(tmp_path)], stdout=subprocess.PIPE, text=True,
                              env=dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", "")))
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(ParameterError, match=rf"in use by another minirnn train \(pid {holder.pid} on"), \
                runs.exclusive_lock(str(tmp_path)):
            pass
    finally:
        holder.kill()
        holder.wait(timeout=30)
        holder.stdout.close()
    assert os.listdir(tmp_path) == [runs.RUN_LOCK]  # what the killed job left behind
    with runs.exclusive_lock(str(tmp_path)) as path:  # --resume works at once
        assert holder_of(path)["pid"] == os.getpid()


@pytest.mark.parametrize("kind", ["flock", "msvcrt", "file"])
def test_releasing_a_lock_survives_a_file_windows_will_not_remove(tmp_path, monkeypatch, request, caplog, kind):
    """On Windows, removing the lock file fails while another process has it open (PermissionError)."""
    if kind == "flock":
        pytest.importorskip("fcntl")
    elif kind == "msvcrt":
        request.getfixturevalue("windows_locks")
    else:  # neither: an O_EXCL file
        monkeypatch.setattr(runs, "_fcntl", lambda: None)
        monkeypatch.setattr(runs, "_msvcrt", lambda: None)
    assert runs._lock_kind() == kind

    def refuse(path, *args, **kwargs):
        raise PermissionError(13, "The process cannot access the file because it is being used by another process",
                              path)

    with monkeypatch.context() as m, runs.exclusive_lock(str(tmp_path)) as path:
        m.setattr(runs.os, "unlink", refuse)  # when the lock is released
    assert os.path.exists(path)
    if kind == "file":  # an O_EXCL file left behind blocks the next job: say so
        assert "cannot remove the lock file" in caplog.text
    else:  # only the byte lock or the flock counts: the file left behind blocks nobody
        with runs.exclusive_lock(str(tmp_path)):
            pass


# ---------------------------------------------------------------------------- text files in UTF-8


@pytest.fixture
def cp1252_text_files(monkeypatch):
    """``open``, ``io.open`` (so ``os.fdopen``) without ``encoding=`` write and read cp1252, Windows'
    usual default (Python < 3.15 without UTF-8 mode); file names stay as they are."""
    monkeypatch.setattr(builtins, "open", _pyio.open)
    monkeypatch.setattr(io, "open", _pyio.open)
    for name in ("getencoding", "getpreferredencoding"):  # what _pyio asks, by Python version
        if hasattr(locale, name):
            monkeypatch.setattr(locale, name, lambda *args: "cp1252")
    with open(os.devnull, "w") as fh:
        assert fh.encoding == "cp1252"


def test_text_files_are_utf8_under_a_cp1252_locale(tmp_path, cp1252_text_files):
    text = "stim,coherence\n\u03b1,0.5\n\u6743,0.1\n"  # Greek and Chinese: not in cp1252
    path = mio.atomic_write_text(tmp_path / "t.csv", text)
    assert (tmp_path / "t.csv").read_bytes() == text.encode("utf-8")  # UTF-8, line ends as given
    assert path == str(tmp_path / "t.csv")
    with mio.atomic_open(tmp_path / "u.txt", "w") as fh:  # a text mode means UTF-8 too
        fh.write("\u03b1")
    assert (tmp_path / "u.txt").read_bytes() == "\u03b1".encode("utf-8")


def test_sweep_summary_with_a_non_ascii_value_under_a_cp1252_locale(tmp_path, cp1252_text_files):
    import importlib

    sweep = importlib.import_module("minirnn.sweep")  # the module (minirnn.sweep is also the function)
    rows = [{"config_id": "stim=\u03b1_458e7a01", "seed": 1, "config": {"stim": "\u03b1"}}]
    path = sweep._write_summary(str(tmp_path), rows)
    with open(path, encoding="utf-8", newline="") as fh:
        [row] = list(csv.DictReader(fh))
    assert row["stim"] == "\u03b1" and row["seed"] == "1"


def test_json_records_read_as_utf8_under_a_cp1252_locale(tmp_path, cp1252_text_files):
    from minirnn.train.checkpoint import read_json

    path = tmp_path / "run.json"
    path.write_bytes(json.dumps({"note": "\u03b1 \u00e9"}, ensure_ascii=False).encode("utf-8"))
    assert read_json(path)["note"] == "\u03b1 \u00e9"  # cp1252 would read mojibake ("Î±")


# ---------------------------------------------------------------------------- file-name length on Windows


def test_name_length_is_utf16_code_units_on_windows(tmp_path, monkeypatch):
    """NTFS allows 255 UTF-16 code units: 100 CJK characters (300 UTF-8 bytes) fit; 126 emoji
    (4 UTF-8 bytes but 2 code units each) and ".npz", 256 units, do not."""
    cjk = str(tmp_path / ("\u6743" * 100))  # + ".npz": 104 units, 304 UTF-8 bytes
    emoji = str(tmp_path / ("\U0001f600" * 126))  # + ".npz": 256 units
    if os.name != "nt" and mio._name_max(str(tmp_path)) < 304:
        with pytest.raises(ParameterError, match=r"is 304 bytes long, .* allows at most \d+ bytes in a file name"):
            mio.check_writable(cjk, "save_weights_path")  # POSIX: bytes
    with monkeypatch.context() as m:
        m.setattr(os, "name", "nt")  # only check_writable runs meanwhile (os.path stays posixpath)
        mio.check_writable(cjk, "save_weights_path")
        with pytest.raises(ParameterError, match=r"is 256 UTF-16 code units long, but the filesystem of .* allows "
                                                 r"at most 255 UTF-16 code units in a file name\. Give a shorter"):
            mio.check_writable(emoji, "save_weights_path")
        mio.check_writable(emoji[:-1], "save_weights_path")  # 254 units


# ---------------------------------------------------------------------------- the grader's time limit


def spin(seconds):
    """Pure Python, never calling into C for long: what a student's `while True: pass` does."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        pass


@pytest.fixture
def no_setitimer(monkeypatch):
    """As on Windows: no SIGALRM, no setitimer."""
    for name in ("setitimer", "SIGALRM", "ITIMER_REAL"):
        if hasattr(signal, name):
            monkeypatch.delattr(signal, name)
    monkeypatch.setattr(time_limit, "REPEAT", 0.2)


def watchdogs():
    return [t for t in threading.enumerate() if t.name == "minirnn-time-limit"]


def test_time_limit_without_setitimer_stops_a_pure_python_loop(no_setitimer):
    start = time.monotonic()
    with pytest.raises(Timeout, match=r"did not finish within 0\.3 s") as info, time_limit(0.3, "exercise"):
        spin(20)  # without a working limit this returns after 20 s and the test fails
    assert 0.25 < time.monotonic() - start < 10
    assert (info.value.seconds, info.value.scope) == (0.3, "exercise")
    assert _STATE.limit is None and not watchdogs()


def test_time_limit_without_setitimer_fires_again_after_a_swallowed_timeout(no_setitimer):
    caught = []

    def stubborn():
        try:
            spin(20)
        except Timeout as e:  # a student's `except BaseException:` around the loop
            caught.append(e)
        spin(20)

    start = time.monotonic()
    with pytest.raises(Timeout), time_limit(0.3):
        stubborn()
    assert len(caught) == 1 and time.monotonic() - start < 10


def test_time_limit_without_setitimer_leaves_nothing_behind(no_setitimer):
    """Blocks that end just as their limit runs out: a Timeout raised then either stops the block
    or is cleared; none arrives after it, and no watchdog thread outlives it."""
    for _ in range(50):
        try:
            with time_limit(0.002):
                spin(0.002)
        except Timeout:
            pass
    with time_limit(5):
        pass
    spin(0.5)  # a late Timeout would be raised here
    assert _STATE.limit is None and not watchdogs()


def test_time_limit_in_a_worker_thread(no_setitimer):
    outcome = []

    def work():
        try:
            with time_limit(0.3):
                spin(20)
            outcome.append("finished")
        except Timeout:
            outcome.append("stopped")

    worker = threading.Thread(target=work)
    worker.start()
    worker.join(30)
    assert outcome == ["stopped"]


def test_grading_without_setitimer_stops_an_endless_exercise_and_grades_the_rest(no_setitimer):
    """The audit's case, in this process: `simulate` never returns; `euler_step` still passes."""
    from minirnn.course.grader import ERROR, PASSED
    from minirnn.course.submissions import grade_namespace

    def euler_step(x, u, W_rec, W_in, b_rec, alpha, sigma_rec, xi, f):
        drive = f(x) @ W_rec.T + u @ W_in.T + b_rec
        return (1 - alpha) * x + alpha * drive + np.sqrt(2 * alpha) * sigma_rec * xi

    def simulate(x0, U, W_rec, W_in, b_rec, alpha, sigma_rec, Xi, f):
        spin(20)

    start = time.monotonic()
    step, sim = grade_namespace({"euler_step": euler_step, "simulate": simulate}, "a1", exercise_timeout=1)
    assert time.monotonic() - start < 15
    assert step.status == PASSED, step
    assert sim.status == ERROR and "did not finish within 1 s" in sim.message, sim
    assert "test_portability.py" in sim.message and "stopped at" in sim.message, sim.message


# ---------------------------------------------------------------------------- the tests, on Windows


def test_test_modules_import_without_posix_only_modules():
    """`python -m pytest` on Windows: test_cli and test_checkpoint are collected without fcntl, pty, termios."""
    code = ("import sys; sys.modules.update(fcntl=None, pty=None, termios=None, resource=None); import pytest; "
            "sys.exit(pytest.main(['--collect-only', '-q', '-p', 'no:cacheprovider', "
            "'tests/test_cli.py', 'tests/test_checkpoint.py']))")
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
                            timeout=300, check=False)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
