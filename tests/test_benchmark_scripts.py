"""The CPU benchmark scripts still run against the current package (at toy sizes; nothing is timed or
compared here). A script that calls a function the package no longer has fails here, not in a later
session's benchmark run."""
from __future__ import annotations

import pathlib
import subprocess
import sys

import pytest

pytest.importorskip("numba")

BENCHMARKS = pathlib.Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.mark.numba
@pytest.mark.parametrize("script, args, expect", [
    ("bench_kernels.py", ["--sizes", "8", "--rounds", "1"], "KERNELS['gaussian_noise']"),
    ("bench_blas.py", ["--sizes", "8", "--rounds", "1"], "weight gradient"),
    ("bench_activations.py", ["--sizes", "8", "--rounds", "1"], "softplus"),
])
def test_benchmark_script_runs(script, args, expect):
    done = subprocess.run([sys.executable, str(BENCHMARKS / script), *args], capture_output=True, text=True,
                          timeout=600, cwd=BENCHMARKS)
    assert done.returncode == 0, done.stderr[-2000:]
    assert expect in done.stdout
