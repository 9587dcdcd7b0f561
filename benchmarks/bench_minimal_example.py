"""The paper's minimal example (PsychRNN, Ehrlich et al. 2021, Fig. 2E) end to end, in fresh processes.

Each run is a new Python process executing the paper's code with only the imports changed::

    pd = PerceptualDiscrimination(dt=10, tau=100, T=2000, N_batch=128)
    network_params = pd.get_task_params(); network_params["name"] = "model"; network_params["N_rec"] = 50
    model = Basic(network_params)
    model.train(pd)                       # default train_params: 50000 trials, ~390 updates
    x, target_output, mask, trial_params = pd.get_trial_batch()
    model_output, model_state = model.test(x)
    accuracy = pd.accuracy_function(target_output, model_output, mask)

timed from before ``import minirnn`` (or ``import psychrnn``) to the accuracy of the tested network
(``import -> tested``), plus the whole process (interpreter start to exit) and the training time
alone. Contenders: minirnn with ``backend="numpy"`` and ``backend="numba"``, and PsychRNN 1.0.0 in
its own virtual environment when ``--psychrnn`` is given (see README.md). Runs interleave the
contenders; medians over ``--repeats``. The target is accuracy >= 0.9; a run below it is flagged.

    python benchmarks/bench_minimal_example.py                  # minirnn numpy + numba, 3 repeats
    python benchmarks/bench_minimal_example.py --psychrnn       # and PsychRNN in the same run
    python benchmarks/bench_minimal_example.py --quick          # 10 updates: a smoke test only
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

_MINIRNN = """
import time
t0 = time.perf_counter()
import minirnn
from minirnn import Basic
from minirnn.tasks import PerceptualDiscrimination
t_import = time.perf_counter()
pd = PerceptualDiscrimination(dt=10, tau=100, T=2000, N_batch=128{seed})
network_params = pd.get_task_params()
network_params["name"] = "model"
network_params["N_rec"] = 50
network_params["backend"] = {backend!r}{model_seed}
model = Basic(network_params)
losses, training_time, initialization_time = model.train(pd{train_params})
x, target_output, mask, trial_params = pd.get_trial_batch()
model_output, model_state = model.test(x)
accuracy = pd.accuracy_function(target_output, model_output, mask)
t1 = time.perf_counter()
model.destruct()
import json
print("@@RESULT@@" + json.dumps({{"total": t1 - t0, "import": t_import - t0, "train": training_time,
      "accuracy": float(accuracy), "updates": len(model.history["loss"]), "final_loss": float(losses[-1]) if losses else None}}))
"""

_PSYCHRNN = """
import time
t0 = time.perf_counter()
from psychrnn.tasks.perceptual_discrimination import PerceptualDiscrimination
from psychrnn.backend.models.basic import Basic
t_import = time.perf_counter()
pd = PerceptualDiscrimination(dt=10, tau=100, T=2000, N_batch=128)
network_params = pd.get_task_params()
network_params["name"] = "model"
network_params["N_rec"] = 50
model = Basic(network_params)
losses, training_time, initialization_time = model.train(pd{train_params})
x, target_output, mask, trial_params = pd.get_trial_batch()
model_output, model_state = model.test(x)
accuracy = pd.accuracy_function(target_output, model_output, mask)
t1 = time.perf_counter()
model.destruct()
import json
print("@@RESULT@@" + json.dumps({{"total": t1 - t0, "import": t_import - t0, "train": training_time,
      "accuracy": float(accuracy), "updates": None, "final_loss": float(losses[-1]) if losses else None}}))
"""


def script(name: str, args) -> str:
    train_params = "" if not args.quick else ", {'training_iters': 1280}"
    if name == "PsychRNN":
        return _PSYCHRNN.format(train_params=train_params)
    seed = "" if args.seed is None else f", seed={args.seed}"
    model_seed = "" if args.seed is None else f"\nnetwork_params['seed'] = {args.seed}"
    return _MINIRNN.format(backend=name.split()[-1], seed=seed, model_seed=model_seed, train_params=train_params)


def run_once(name: str, args) -> dict:
    python = args.psychrnn_python if name == "PsychRNN" else sys.executable
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([ROOT, os.environ.get("PYTHONPATH", "")]),
               TF_CPP_MIN_LOG_LEVEL="2")
    env.update({v: str(args.threads) for v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                                               "NUMBA_NUM_THREADS", "TF_NUM_INTRAOP_THREADS")})
    load = os.getloadavg()[0]
    t0 = time.perf_counter()
    proc = subprocess.run([python, "-c", script(name, args)], capture_output=True, text=True, cwd=ROOT, env=env,
                          timeout=args.timeout)
    wall = time.perf_counter() - t0
    line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("@@RESULT@@")), None)
    if proc.returncode != 0 or line is None:
        return {"error": (proc.stderr.strip().splitlines() or ["no output"])[-1], "process": wall, "load": load}
    res = json.loads(line[len("@@RESULT@@"):])
    res.update(process=wall, load=load)
    return res


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--backends", default="numpy,numba", help="minirnn backends (default numpy,numba)")
    p.add_argument("--psychrnn", action="store_true", help="also run PsychRNN 1.0.0 (its own venv)")
    p.add_argument("--psychrnn-python", default=os.environ.get("PSYCHRNN_PYTHON", "/tmp/psyenv/bin/python"))
    p.add_argument("--repeats", type=int, default=3, help="runs per contender, interleaved (default 3)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=None, help="seed minirnn's task and model (default: none, as the paper)")
    p.add_argument("--timeout", type=float, default=1800, help="seconds per run")
    p.add_argument("--quick", action="store_true", help="10 updates, 1 repeat: checks that it runs, not the accuracy")
    p.add_argument("--markdown", action="store_true", help="also print a markdown table for RESULTS.md")
    args = p.parse_args(argv)
    if args.quick:
        args.repeats = 1
    names = [f"minirnn {b}" for b in args.backends.split(",") if b] + (["PsychRNN"] if args.psychrnn else [])
    print(f"# bench_minimal_example.py  {datetime.datetime.now().isoformat(timespec='seconds')}, "
          f"{os.cpu_count()} CPUs, {args.threads} threads, load {os.getloadavg()}")
    runs = {n: [] for n in names}
    for rep in range(args.repeats):
        for name in names[rep % len(names):] + names[:rep % len(names)]:
            r = run_once(name, args)
            runs[name].append(r)
            if "error" in r:
                print(f"  {name:14s} run {rep + 1}: FAILED after {r['process']:.1f} s: {r['error']}", flush=True)
            else:
                flag = "" if r["accuracy"] >= 0.9 or args.quick else "  (accuracy < 0.9!)"
                print(f"  {name:14s} run {rep + 1}: import->tested {r['total']:7.2f} s (import {r['import']:.2f}, "
                      f"train {r['train']:.2f}), process {r['process']:7.2f} s, accuracy {r['accuracy']:.3f}, "
                      f"load {r['load']:.2f}{flag}", flush=True)
    print(f"\n{'contender':14s} {'import->tested':>15s} {'process':>9s} {'train':>8s} {'accuracy':>9s} {'runs ok':>8s}")
    med = {}
    for name, rs in runs.items():
        ok = [r for r in rs if "error" not in r]
        if not ok:
            print(f"{name:14s} {'failed':>15s}")
            continue
        m = {k: statistics.median(r[k] for r in ok) for k in ("total", "process", "train")}
        m["accuracy"] = min(r["accuracy"] for r in ok)
        med[name] = m
        print(f"{name:14s} {m['total']:13.2f} s {m['process']:7.2f} s {m['train']:6.2f} s {m['accuracy']:9.3f} "
              f"{len(ok):4d}/{len(rs)}")
    if "PsychRNN" in med:
        for name, m in med.items():
            if name != "PsychRNN":
                print(f"{name}: {med['PsychRNN']['total'] / m['total']:.1f}x faster than PsychRNN (import->tested)")
    if args.markdown:
        print("\n| contender | import → tested (s) | whole process (s) | training (s) | min accuracy |\n|---|---|---|---|---|")
        for name, m in med.items():
            print(f"| {name} | {m['total']:.2f} | {m['process']:.2f} | {m['train']:.2f} | {m['accuracy']:.3f} |")
        print(f"\nMedians of {args.repeats} fresh-process runs per contender, interleaved, "
              f"{datetime.date.today().isoformat()}, {os.cpu_count()} CPUs, {args.threads} threads.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
