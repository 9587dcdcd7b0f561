"""The device session's scripts (benchmarks/bench_gpu.py, benchmarks/profile_gpu.py) run end to end on the
CuPy stand-in (tests/fake_cupy.py), each in its own process: a device session has minutes, and a harness
that breaks there wastes them. Timings on the stand-in mean nothing; the tables' shape and the contenders'
presence are what is checked."""
from __future__ import annotations

import os
import pathlib
import subprocess
import sys

import pytest

import cuda_emu

ROOT = pathlib.Path(__file__).resolve().parents[1]
RUN_ON_STANDIN = """
import runpy, sys
sys.path[:0] = [{tests!r}, {benchmarks!r}, {root!r}]
import fake_cupy
with fake_cupy.installed():
    from minirnn.backends import cuda_graphs
    library = fake_cupy.Libcublas()
    cuda_graphs.libcublas = lambda: library
    sys.argv = {argv!r}
    runpy.run_path({script!r}, run_name="__main__")
"""


def run_on_standin(script, *args):
    cuda_emu.gxx()  # skips without a C++ compiler
    path = ROOT / "benchmarks" / script
    code = RUN_ON_STANDIN.format(tests=str(ROOT / "tests"), benchmarks=str(ROOT / "benchmarks"), root=str(ROOT),
                                 argv=[script, *args], script=str(path))
    env = dict(os.environ, PYTHONWARNINGS="error::RuntimeWarning")  # a failed graph capture warns
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600, env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    return [line for line in done.stdout.splitlines() if line.startswith("| ")]


@pytest.mark.slow
def test_bench_gpu_runs_every_minirnn_contender_on_the_standin():
    names = ["minirnn", "minirnn nograph", "minirnn unfused", "minirnn predrawn", "minirnn loop"]
    rows = run_on_standin("bench_gpu.py", "--configs", "16x4,40x3", "--rounds", "1", "--sample-s", "0.01",
                          "--steps", "12", "--contenders", ",".join(names))
    assert rows[0].startswith("| N_rec | batch | minirnn (ms) | minirnn nograph (ms)")
    assert [r.split("|")[1:3] for r in rows[1:]] == [[" 16 ", " 4 "], [" 40 ", " 3 "]]
    for row in rows[1:]:
        cells = row.split("|")[3:3 + len(names)]
        assert all(float(c) > 0 for c in cells), row  # every contender timed, none dropped ("—")


@pytest.mark.slow
def test_profile_gpu_runs_every_variant_on_the_standin():
    rows = run_on_standin("profile_gpu.py", "--configs", "16x4", "--reps", "1", "--steps", "12",
                          "--strategies", "loop,step")
    body = [r.split("|")[1:-1] for r in rows[1:]]
    assert [(c[2].strip(), c[3].strip()) for c in body] == [
        (s, v) for s in ("loop", "step") for v in ("fused", "nograph", "unfused")]
    for cells in body:
        times = [float(c) for c in cells[4:]]
        graphed = cells[2].strip() == "step" and cells[3].strip() != "nograph"  # the loops alone, as graphs
        assert all(t > 0 for t in times[:6]) and all((t > 0) == graphed for t in times[6:]), cells


@pytest.mark.parametrize("script", ["trace_gpu.py", "products_gpu.py"])
def test_device_only_scripts_parse_their_options_without_a_device(script):
    """trace_gpu.py needs PyTorch's CUPTI and products_gpu.py warp shuffles, which neither the stand-in nor
    the emulator has: here they must at least import and answer --help (they import CuPy and torch only
    once the options are read)."""
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / script), "--help"], capture_output=True,
                          text=True, timeout=120, env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert done.returncode == 0, done.stderr
    assert "--configs" in done.stdout


def test_no_graphs_turns_graphs_off_for_every_minirnn_contender(tmp_path):
    """bench_gpu.py --no-graphs (gpu_session.sh passes it where the graph preflight crashed or hung): no minirnn
    contender replays its loops as graphs; without it, only "nograph" contenders run launch by launch."""
    sys.path[:0] = [str(ROOT / "benchmarks"), str(ROOT / "benchmarks" / "peers")]
    try:
        import bench_gpu

        data = str(tmp_path / "data.npz")
        bench_gpu.make_data(data, 8, 4, 5)
        graphs = {(name, on): bench_gpu.minirnn_contender(name, "numpy", data, 0.0, graphs=on).graphs
                  for name in ("minirnn", "minirnn nograph") for on in (True, False)}
    finally:
        del sys.path[:2]
    assert graphs == {("minirnn", True): True, ("minirnn nograph", True): False,
                      ("minirnn", False): False, ("minirnn nograph", False): False}
