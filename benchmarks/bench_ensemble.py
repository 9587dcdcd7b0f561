"""Ensembles vs sequential single trainings: network-updates per second (issue 6).

K networks of N_rec = 50 on PerceptualDiscrimination (batch 128, T = 2000 ms at dt = 10: 200
steps), float32, trained as one ensemble ``Basic(params, n_networks=K, seeds=range(K))`` or as
K separate single trainings. One "update" is what ``train()`` does per batch: make the batch
(each network its own trials), forward, backward, clip, Adam. So::

    ensemble throughput   = K * n_updates / (seconds of n_updates ensemble updates)
    sequential throughput = n_updates / (seconds of n_updates single-network updates)

(K sequential runs take K times one run's time, so their throughput does not depend on K.)
The ratio is the speed-up of packing K seeds into one ensemble. Target (issue 6): K = 32 at
least 8x on 2 CPU cores.

How it measures (BENCHMARKS.md, "How to measure here"): BLAS threads pinned with threadpoolctl
(``--threads``), one warm-up call per contender (numba compiles there), then ``--rounds``
rounds in which every contender runs once, interleaved; medians over rounds. The 1-minute load
average is printed with each round: rounds taken while other processes held the cores are noisy.

    python benchmarks/bench_ensemble.py                  # K = 1 8 32 128, numpy and numba
    python benchmarks/bench_ensemble.py --quick          # K = 1 8, 2 rounds: checks the script runs
    python benchmarks/bench_ensemble.py --profile 32     # cProfile of one K = 32 ensemble update
"""
from __future__ import annotations

import argparse
import cProfile
import json
import os
import pstats
import statistics
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from threadpoolctl import threadpool_limits  # noqa: E402

from minirnn import Basic  # noqa: E402
from minirnn.tasks import PerceptualDiscrimination  # noqa: E402

N_REC, N_BATCH, T, DT, TAU = 50, 128, 2000, 10, 100
ACTIVATION_ARRAYS = 10  # (K, T, B, N_rec) arrays alive in one update, roughly: drive, X, R, dX, A, dF, ...


def make_task(seed=0):
    return PerceptualDiscrimination(dt=DT, tau=TAU, T=T, N_batch=N_BATCH, seed=seed)


def make_model(backend, K):
    params = dict(make_task().get_task_params(), N_rec=N_REC, backend=backend, dtype="float32", seed=0)
    if K is None:
        return Basic(params)
    return Basic(params, n_networks=K, seeds=list(range(K)))


def timed_updates(model, n_updates) -> tuple:
    """Wall seconds (the trainer's own loop time) and CPU seconds of this process for ``n_updates``
    training updates; training continues from where the last call stopped."""
    cpu0 = time.process_time()
    _, seconds, _ = model.train(make_task(), {"training_iters": N_BATCH * n_updates, "verbosity": False})
    return seconds, time.process_time() - cpu0


def backend_status(name) -> str | None:
    """None when the backend builds, else why not (numba's kernels are written in parallel)."""
    try:
        model = make_model(name, None)
    except Exception as exc:  # noqa: BLE001 - reported in the table
        return f"{type(exc).__name__}: {exc}"
    if model.backend.name != name:
        return f"asked for {name!r}, got {model.backend.name!r}"
    return None


def bench(backend, Ks, rounds, n_updates):
    """Median (wall, CPU) seconds per update for one single network and for each ensemble size.

    CPU time is this process's: with one BLAS thread it is the work done, whatever else runs on the
    machine, so its ratio is the robust one on a loaded machine; wall time is what a user waits."""
    contenders = {"single": make_model(backend, None)}
    contenders.update({K: make_model(backend, K) for K in Ks})
    for model in contenders.values():  # warm-up: numba compiles, caches fill, Adam state exists
        timed_updates(model, 1)
    wall, cpu = {name: [] for name in contenders}, {name: [] for name in contenders}
    for r in range(rounds):
        for name, model in contenders.items():  # interleaved: every contender once per round
            w, c = timed_updates(model, n_updates)
            wall[name].append(w / n_updates)
            cpu[name].append(c / n_updates)
        print(f"  [{backend}] round {r + 1}/{rounds}: load {os.getloadavg()[0]:.1f}; wall/cpu ms per update: "
              + ", ".join(f"{'K=' + str(n) if n != 'single' else 'single'} {1e3 * wall[n][-1]:.0f}/{1e3 * cpu[n][-1]:.0f}"
                          for n in contenders), flush=True)
    return ({name: statistics.median(t) for name, t in wall.items()},
            {name: statistics.median(t) for name, t in cpu.items()})


def profile(backend, K, n_updates=3):
    model = make_model(backend, K)
    timed_updates(model, 1)
    profiler = cProfile.Profile(time.process_time)  # CPU time: robust to other processes on the cores
    profiler.enable()
    timed_updates(model, n_updates)
    profiler.disable()
    pstats.Stats(profiler).sort_stats("tottime").print_stats(18)


def main(argv=None):
    global N_BATCH
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--K", type=int, nargs="+", default=[1, 8, 32, 128])
    parser.add_argument("--backends", nargs="+", default=["numpy", "numba"])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--updates", type=int, default=3, help="updates per timed call")
    parser.add_argument("--threads", type=int, default=2, help="BLAS threads (the target is for 2 cores)")
    parser.add_argument("--quick", action="store_true", help="K = 1 8, 2 rounds of 2 updates")
    parser.add_argument("--profile", type=int, metavar="K", help="cProfile one ensemble of K instead")
    parser.add_argument("--batch", type=int, default=N_BATCH, help="trials per batch (issue 6: 128)")
    parser.add_argument("--max-gb", type=float, default=8.0,
                        help="skip ensembles whose activations (about 10 arrays of K*T*B*N_rec) exceed this")
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args(argv)
    if args.quick:
        args.K, args.rounds, args.updates = [1, 8], 2, 2
    N_BATCH = args.batch
    too_big = [K for K in args.K if ACTIVATION_ARRAYS * K * (T // DT) * N_BATCH * N_REC * 4 / 2**30 > args.max_gb]
    if too_big:
        print(f"skipping K={too_big}: more than --max-gb={args.max_gb} GB of activations")
        args.K = [K for K in args.K if K not in too_big]
    with threadpool_limits(args.threads):
        if args.profile:
            profile(args.backends[0], args.profile)
            return
        print(f"N_rec={N_REC}, batch={N_BATCH}, steps={T // DT}, float32, {args.threads} BLAS thread(s), "
              f"{os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}; medians of {args.rounds} rounds "
              f"x {args.updates} updates")
        results = {}
        for backend in args.backends:
            why = backend_status(backend)
            if why:
                print(f"\n{backend}: skipped ({why})")
                results[backend] = {"skipped": why}
                continue
            wall, cpu = bench(backend, args.K, args.rounds, args.updates)
            single, single_cpu = 1.0 / wall["single"], 1.0 / cpu["single"]
            rows = []
            print(f"\n{backend}: one network {1e3 * wall['single']:.1f} ms/update wall "
                  f"({1e3 * cpu['single']:.1f} ms CPU) = {single:.1f} network-updates/s\n")
            print("| K | ensemble ms/update (wall) | ensemble net-updates/s | sequential net-updates/s | "
                  "ratio (wall) | ratio (CPU time) |")
            print("|---|---|---|---|---|---|")
            for K in args.K:
                ens, ens_cpu = K / wall[K], K / cpu[K]
                rows.append({"K": K, "ensemble_s_per_update": wall[K], "ensemble_cpu_s_per_update": cpu[K],
                             "ensemble_throughput": ens, "sequential_throughput": single,
                             "ratio": ens / single, "ratio_cpu": ens_cpu / single_cpu})
                print(f"| {K} | {1e3 * wall[K]:.1f} | {ens:.1f} | {single:.1f} | {ens / single:.2f}x | "
                      f"{ens_cpu / single_cpu:.2f}x |")
            results[backend] = {"single_s_per_update": wall["single"], "single_cpu_s_per_update": cpu["single"],
                                "rows": rows}
        if args.json:
            with open(args.json, "w") as fh:
                json.dump({"threads": args.threads, "rounds": args.rounds, "updates": args.updates,
                           "time": time.strftime("%Y-%m-%d %H:%M"), "results": results}, fh, indent=1)


if __name__ == "__main__":
    main()
