"""Pyflakes-class lint (ruff's F rules): unused imports, undefined names, duplicate test names (F811)."""
import pathlib
import shutil
import subprocess

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_no_pyflakes_errors_in_package_tests_and_benchmarks():
    ruff = shutil.which("ruff")
    if ruff is None:
        pytest.skip("ruff is not installed (it is in the test extra)")
    result = subprocess.run([ruff, "check", "--select", "F,E9", "--output-format", "concise", "--no-cache",
                             "minirnn", "tests", "benchmarks"], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
