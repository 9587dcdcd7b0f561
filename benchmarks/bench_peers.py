"""minirnn side by side with PyTorch, JAX, a hand-written NumPy BPTT and PsychRNN: one update.

The same model in every framework (``peers/common.py``): PsychRNN's ``Basic`` rate RNN, T = 200
steps, N_in = N_out = 2, ReLU, alpha = 0.1, masked MSE, per-parameter clip to norm 1, Adam
(lr 1e-3), trainable W_in, W_rec, W_out, b_rec, b_out, init_state. One update = recurrent-noise
draw (rec_noise 0.05 with ``--noise on``) + forward + BPTT + Adam, on one fixed batch made once
(the ``+batch`` columns make a fresh batch with their own task code every update).

How it measures (BENCHMARKS.md "How to measure here"):

1. The 2-thread matmul peak, float32 and float64 (best of several big matmuls), for the FLOP
   bound ``2 B T N (3N + 2 N_in + 3 N_out)`` FLOPs / peak.
2. Equality: from the same initial weights, every contender's objective over a few updates with
   noise off, float64 (PsychRNN, float32-only, in a float32 check), and the largest difference.
3. For each (N_rec, dtype, noise): every contender in its own worker process (threads pinned
   before import; ``VmHWM`` of that process is its peak memory), warm-up, then rounds that
   interleave the contenders. Each sample is gated on the machine's load: CPU time that other
   processes took during the sample (``/proc/stat`` busy + steal, less the worker's own) above
   ``--max-foreign`` cores means the sample is redone. Medians over rounds, ratios from the same run.

Run ``python benchmarks/bench_peers.py --help``; ``benchmarks/README.md`` says how to install the
peers and what each column means.
"""
from __future__ import annotations

import argparse
import datetime
import importlib.util
import json
import os
import platform
import selectors
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
PEERS = os.path.join(HERE, "peers")
sys.path.insert(0, PEERS)
sys.path.insert(0, ROOT)

# name -> (module in peers/, worker contender id, which python, uses the fixed batch)
CONTENDERS = {
    "minirnn numba": ("minirnn_contender", "minirnn_numba", "main", True),
    "minirnn numpy": ("minirnn_contender", "minirnn_numpy", "main", True),
    "minirnn numba +batch": ("minirnn_contender", "minirnn_numba+batch", "main", False),
    "minirnn numpy +batch": ("minirnn_contender", "minirnn_numpy+batch", "main", False),
    "NumPy proto": ("numpy_proto", "numpy_proto", "main", True),
    "torch eager": ("torch_ctrnn", "torch_eager", "main", True),
    "torch hoisted": ("torch_ctrnn", "torch_hoisted", "main", True),
    "torch jit": ("torch_ctrnn", "torch_jit", "main", True),
    "JAX": ("jax_ctrnn", "jax", "main", True),
    "PsychRNN": ("psychrnn_runner", "psychrnn", "psychrnn", True),
    "PsychRNN +batch": ("psychrnn_runner", "psychrnn+batch", "psychrnn", False),
}
MINIRNN = [c for c in CONTENDERS if c.startswith("minirnn") and "+batch" not in c]
TORCH = ["torch eager", "torch hoisted", "torch jit"]
NEEDS = {"minirnn_contender": "minirnn", "numpy_proto": "numpy", "torch_ctrnn": "torch", "jax_ctrnn": "jax"}


# ---- worker processes --------------------------------------------------------------------------
class WorkerError(RuntimeError):
    pass


class Worker:
    """One contender in its own process, driven by JSON lines (``peers/common.py``)."""

    def __init__(self, name: str, python: str, threads: int, logdir: str):
        module, self.contender, _, _ = CONTENDERS[name]
        self.name = name
        safe = name.replace(" ", "_").replace("+", "p")
        self.log_path = os.path.join(logdir, f"{safe}.{time.time_ns()}.log")
        self.log = open(self.log_path, "w")
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([PEERS, ROOT, os.environ.get("PYTHONPATH", "")]))
        self.proc = subprocess.Popen([python, "-u", os.path.join(PEERS, "worker.py"), module, self.contender,
                                      str(threads)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=self.log, text=True, cwd=ROOT, env=env)
        self.selector = selectors.DefaultSelector()
        self.selector.register(self.proc.stdout, selectors.EVENT_READ)

    def ask(self, timeout: float, **msg) -> dict:
        if self.proc.poll() is not None:
            raise WorkerError(f"{self.name}: worker exited ({self.proc.returncode}). {self.log_tail()}")
        self.proc.stdin.write(json.dumps(msg) + "\n")
        self.proc.stdin.flush()
        if not self.selector.select(timeout):
            self.close()
            raise WorkerError(f"{self.name}: no answer to {msg['cmd']!r} within {timeout:.0f} s")
        line = self.proc.stdout.readline()
        if not line:
            raise WorkerError(f"{self.name}: worker died during {msg['cmd']!r}. {self.log_tail()}")
        reply = json.loads(line)
        if not reply.get("ok"):
            raise WorkerError(f"{self.name}: {reply.get('error')}\n{reply.get('traceback', '')}")
        return reply

    def log_tail(self, n: int = 1500) -> str:
        self.log.flush()
        with open(self.log_path) as f:
            return f.read()[-n:]

    def close(self) -> None:
        try:
            if self.proc.poll() is None:
                self.proc.stdin.write(json.dumps({"cmd": "quit"}) + "\n")
                self.proc.stdin.flush()
                self.proc.wait(timeout=30)
        except (OSError, subprocess.TimeoutExpired, ValueError):
            self.proc.kill()
            self.proc.wait()
        self.log.close()


# ---- the machine: load, peak, description ------------------------------------------------------
CLK_TCK = os.sysconf("SC_CLK_TCK")


def busy_seconds() -> float:
    """CPU seconds the whole machine has spent busy (user, nice, system, irq, softirq, steal)."""
    with open("/proc/stat") as f:
        fields = [int(v) for v in f.readline().split()[1:]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (fields + [0] * 8)[:8]
    return (user + nice + system + irq + softirq + steal) / CLK_TCK


def own_cpu() -> float:
    t = os.times()
    return t.user + t.system


def machine_line(threads: int) -> str:
    model = platform.processor() or "?"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
        with open("/proc/cpuinfo") as f:
            flags = next((ln for ln in f if ln.startswith("flags")), "")
        if "avx512f" in flags:
            model += " (AVX-512)"
        elif "avx2" in flags:
            model += " (AVX2)"
    except OSError:
        pass
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return f"{os.cpu_count()} vCPU {model}, {mem:.0f} GiB RAM, {threads} threads per contender, Linux {platform.release()}"


def versions(psy_version) -> str:
    out = [f"Python {platform.python_version()}"]
    from importlib.metadata import PackageNotFoundError, version

    for mod in ("numpy", "numba", "torch", "jax", "minirnn"):  # metadata only: importing would bloat us
        try:
            out.append(f"{mod} {version(mod)}")
        except PackageNotFoundError:
            if mod == "minirnn":
                import minirnn

                out.append(f"minirnn {minirnn.__version__}")
    if psy_version:
        out.append(psy_version)
    return ", ".join(out)


def matmul_peak(threads: int, n: int, dtype: str, repeats: int = 7) -> float:
    """GFLOP/s of the best of ``repeats`` ``(n, n) @ (n, n)`` products with ``threads`` BLAS threads."""
    import numpy as np
    from threadpoolctl import threadpool_limits

    rng = np.random.default_rng(0)
    a, b = (rng.standard_normal((n, n)).astype(dtype) for _ in range(2))
    out = np.empty((n, n), dtype=dtype)
    best = float("inf")
    with threadpool_limits(limits=threads):
        np.matmul(a, b, out=out)
        for _ in range(repeats):
            t0 = time.perf_counter()
            np.matmul(a, b, out=out)
            best = min(best, time.perf_counter() - t0)
    return 2.0 * n ** 3 / best / 1e9


# ---- availability --------------------------------------------------------------------------------
def available(names, psy_python):
    """-> (runnable names, {name: why not}, PsychRNN version string or None)."""
    ok, why, psy_version = [], {}, None
    psy_checked = None
    for name in names:
        module, _, python, _ = CONTENDERS[name]
        if python == "psychrnn":
            if psy_checked is None:
                try:
                    r = subprocess.run([psy_python, "-c", "import tensorflow as tf, psychrnn; "
                                        "from importlib.metadata import version; "
                                        "print('PsychRNN', version('psychrnn'), 'on TensorFlow', tf.__version__)"],
                                       capture_output=True, text=True, timeout=300,
                                       env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
                    psy_checked = r.returncode == 0
                    psy_version = r.stdout.strip().splitlines()[-1] if psy_checked else None
                    reason = "" if psy_checked else r.stderr.strip().splitlines()[-1:]
                except (OSError, subprocess.TimeoutExpired) as exc:
                    psy_checked, reason = False, [str(exc)]
                psy_reason = f"PsychRNN not importable with {psy_python}: {reason}"
            if not psy_checked:
                why[name] = psy_reason
                continue
        elif importlib.util.find_spec(NEEDS[module]) is None:
            why[name] = f"{NEEDS[module]} not installed"
            continue
        ok.append(name)
    return ok, why, psy_version


def python_for(name, args):
    return args.psychrnn_python if CONTENDERS[name][2] == "psychrnn" else sys.executable


# ---- data ------------------------------------------------------------------------------------------
def make_data(path, N_rec, B, T, seed):
    """Shared initial weights (``common.make_init_weights``) and one batch of minirnn's
    ``PerceptualDiscrimination(dt=10, tau=100, T=10*T)`` (PsychRNN's task) into ``path``."""
    import common

    try:
        from minirnn.tasks import PerceptualDiscrimination

        x, y, mask, _ = PerceptualDiscrimination(dt=10, tau=100, T=10 * T, N_batch=B, seed=seed).generate_batch()
    except Exception:  # noqa: BLE001 - minirnn's tasks broken: any batch of the right shapes will do
        import numpy as np

        rng = np.random.default_rng(seed)
        x = rng.standard_normal((B, T, common.N_IN)) * 0.1 + 1
        y = np.where(rng.random((B, 1, common.N_OUT)) < 0.5, 1.0, 0.2) * np.ones((1, T, 1))
        mask = (np.arange(T) >= T // 2)[None, :, None] * np.ones((B, 1, common.N_OUT))
    common.save_data(path, common.make_init_weights(N_rec, seed), x, y, mask)


def config(args, N_rec, dtype, noise, eps=1e-8):
    return {"N_rec": N_rec, "B": args.batch, "T": args.steps, "dtype": dtype, "noise": noise,
            "rec_noise": args.rec_noise, "threads": args.threads, "seed": args.seed, "eps": eps}


# ---- equality check -------------------------------------------------------------------------------
def equality_check(args, names, dtype, tmp):
    """Objective over ``--check-updates`` updates (noise off, ``eps = --check-eps``) of every
    contender that uses the fixed batch; prints them and the largest difference to the reference."""
    import numpy as np

    names = [n for n in names if CONTENDERS[n][3] and not (dtype == "float64" and CONTENDERS[n][2] == "psychrnn")]
    if not names:
        return None
    N_rec = args.check_size
    path = os.path.join(tmp, f"check_{dtype}.npz")
    make_data(path, N_rec, args.batch, args.steps, args.seed)
    cfg = config(args, N_rec, dtype, False, eps=args.check_eps)
    losses, errors = {}, {}
    for name in names:
        w = Worker(name, python_for(name, args), args.threads, tmp)
        try:
            w.ask(args.setup_timeout, cmd="setup", config=cfg, data=path)
            losses[name] = w.ask(args.setup_timeout, cmd="losses", n=args.check_updates)["losses"]
        except WorkerError as exc:
            errors[name] = str(exc).splitlines()[0]
        finally:
            w.close()
    print(f"\n## Equality check: {dtype}, N_rec {N_rec}, batch {args.batch}, {args.steps} steps, noise off, "
          f"Adam eps {args.check_eps:g}, {args.check_updates} updates from the same weights")
    ref = next((n for n in ("minirnn numpy", "NumPy proto") if n in losses), next(iter(losses), None))
    if ref is None:
        print("no contender ran:", errors)
        return None
    r = np.asarray(losses[ref])
    worst = 0.0
    for name, vals in losses.items():
        v = np.asarray(vals)
        d = float(np.max(np.abs(v - r) / np.abs(r))) if v.shape == r.shape else float("inf")
        worst = max(worst, d)
        print(f"  {name:22s} " + " ".join(f"{x:.17g}" for x in vals) + f"   max rel diff vs {ref}: {d:.2e}")
    for name, e in errors.items():
        print(f"  {name:22s} FAILED: {e}")
    print(f"  => max relative difference of the {dtype} losses across {len(losses)} contenders: {worst:.2e}")
    return {"dtype": dtype, "N_rec": N_rec, "reference": ref, "losses": losses, "errors": errors, "max_rel_diff": worst}


# ---- one configuration ----------------------------------------------------------------------------
def bench_config(args, names, N_rec, dtype, noise, tmp, peaks):
    import common

    cfg = config(args, N_rec, dtype, noise)
    path = os.path.join(tmp, f"data_{N_rec}_{dtype}_{int(noise)}.npz")
    make_data(path, N_rec, args.batch, args.steps, args.seed)
    label = f"N_rec {N_rec}, {dtype}, noise {'on' if noise else 'off'}, batch {args.batch}, {args.steps} steps"
    print(f"\n## {label}", flush=True)
    res = {"N_rec": N_rec, "dtype": dtype, "noise": noise, "results": {}, "skipped": {}}
    workers = {}
    for name in names:
        if dtype == "float64" and CONTENDERS[name][2] == "psychrnn":
            res["skipped"][name] = "float32 only"
            continue
        w = Worker(name, python_for(name, args), args.threads, tmp)
        try:
            setup = w.ask(args.setup_timeout, cmd="setup", config=cfg, data=path)["setup_s"]
            t0 = time.perf_counter()
            w.ask(args.setup_timeout, cmd="run", n=1)  # the first update: compilation, caches
            first = time.perf_counter() - t0
            warm = w.ask(args.run_timeout, cmd="run", n=max(1, args.warmup))
            per = warm["wall"] / max(1, args.warmup)
            inner = max(1, min(args.max_inner, int(-(-args.min_sample_s // max(per, 1e-6)))))
            workers[name] = (w, inner)
            res["results"][name] = {"setup_s": setup, "first_update_s": first, "inner": inner, "samples": [],
                                    "noisy": 0, "redone": 0}
            print(f"  {name:22s} set-up {setup:6.2f} s, first update {first * 1e3:8.1f} ms, "
                  f"warm {per * 1e3:8.2f} ms/update -> {inner} updates per sample", flush=True)
        except WorkerError as exc:
            res["skipped"][name] = str(exc).splitlines()[0]
            print(f"  {name:22s} SKIPPED: {res['skipped'][name]}", flush=True)
            w.close()
    order = list(workers)
    for rnd in range(args.rounds):
        load = os.getloadavg()
        foreign_max, redo_total = 0.0, 0
        for name in order[rnd % len(order):] + order[:rnd % len(order)] if order else []:
            w, inner = workers[name]
            r = res["results"][name]
            best = None
            for attempt in range(args.max_redo + 1):
                b0, c0 = busy_seconds(), own_cpu()
                try:
                    ans = w.ask(args.run_timeout, cmd="run", n=inner)
                except WorkerError as exc:
                    res["skipped"][name] = str(exc).splitlines()[0]
                    break
                foreign = max(0.0, (busy_seconds() - b0) - (own_cpu() - c0) - ans["cpu"]) / ans["wall"]
                sample = (foreign, ans["wall"] / inner)
                best = sample if best is None or sample[0] < best[0] else best
                if foreign <= args.max_foreign:
                    break
                r["redone"] += 1
                redo_total += 1
            if best is None:
                continue
            foreign_max = max(foreign_max, best[0])
            if best[0] > args.max_foreign:
                r["noisy"] += 1
                if not args.keep_noisy:
                    continue
            r["samples"].append(best[1])
        print(f"  round {rnd + 1}/{args.rounds}: load {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}, "
              f"foreign CPU max {foreign_max:.2f} cores, {redo_total} samples redone", flush=True)
    for name, (w, _) in workers.items():
        try:
            mem = w.ask(60, cmd="memory")
            res["results"][name].update(maxrss_mb=mem["maxrss_mb"], import_mb=mem["import_mb"])
        except WorkerError:
            pass
        w.close()
    flops = common.update_flops(args.batch, args.steps, N_rec)
    res["flops"] = flops
    res["bound_ms"] = flops / (peaks[dtype] * 1e9) * 1e3
    for name, r in list(res["results"].items()):
        if not r["samples"]:
            res["skipped"].setdefault(name, "no sample under the load limit")
            del res["results"][name]
            continue
        s = sorted(r["samples"])
        r["median_ms"] = statistics.median(s) * 1e3
        r["min_ms"], r["max_ms"] = s[0] * 1e3, s[-1] * 1e3
        r["pct_bound"] = 100 * res["bound_ms"] / r["median_ms"]
    print_config(res)
    return res


def best_of(res, names):
    got = [(res["results"][n]["median_ms"], n) for n in names if n in res["results"]]
    return min(got) if got else (None, None)


def print_config(res):
    R = res["results"]
    mini_ms, mini = best_of(res, MINIRNN)
    print(f"  FLOP bound {res['bound_ms']:.2f} ms ({res['flops'] / 1e9:.2f} GFLOP per update)")
    print(f"  {'contender':22s} {'ms/update':>10s} {'[min, max]':>20s} {'% bound':>8s} "
          f"{'x ' + (mini or 'minirnn'):>18s} {'peak MB':>8s} {'(+ over import)':>15s} {'samples':>8s}")
    for name, r in sorted(R.items(), key=lambda kv: kv[1]["median_ms"]):
        ratio = f"{r['median_ms'] / mini_ms:.2f}" if mini_ms else "-"
        mem = f"{r.get('maxrss_mb', float('nan')):8.0f} {r.get('maxrss_mb', 0) - r.get('import_mb', 0):+15.0f}"
        noisy = f" ({r['noisy']} noisy kept)" if r["noisy"] else ""
        print(f"  {name:22s} {r['median_ms']:10.2f} [{r['min_ms']:8.2f}, {r['max_ms']:8.2f}] {r['pct_bound']:7.1f}% "
              f"{ratio:>18s} {mem} {len(r['samples']):4d}{noisy}")
    for name, why in res["skipped"].items():
        print(f"  {name:22s} skipped: {why}")


# ---- markdown ---------------------------------------------------------------------------------------
def markdown(all_res, args, machine, vers, peaks, checks):
    cols = [c for c in CONTENDERS if any(c in r["results"] for r in all_res)]
    fmt = lambda v: "—" if v is None else (f"{v:.3g}" if v < 10 else f"{v:.0f}" if v >= 100 else f"{v:.1f}")  # noqa: E731
    lines = [f"## {datetime.date.today().isoformat()}: ms per update, batch {args.batch}, {args.steps} steps "
             f"(bench_peers.py)", "",
             f"Machine: {machine}. {vers}. 2-thread matmul peak: {peaks['float32']:.0f} GFLOP/s float32, "
             f"{peaks['float64']:.0f} GFLOP/s float64. Medians of {args.rounds} interleaved rounds after warm-up, "
             f"samples with more than {args.max_foreign} cores of foreign load redone.", ""]
    for chk in checks:
        if chk:
            lines.append(f"Equality check ({chk['dtype']}, N_rec {chk['N_rec']}, {args.check_updates} updates, "
                         f"noise off): max relative loss difference {chk['max_rel_diff']:.1e} across "
                         f"{len(chk['losses'])} contenders.")
    lines += ["", "| N_rec | dtype | noise | " + " | ".join(cols) + " | FLOP bound | best minirnn: % bound | "
              "× NumPy proto | × best torch | × JAX | × PsychRNN |",
              "|" + "---|" * (len(cols) + 9)]
    for res in all_res:
        R = res["results"]
        mini_ms, _ = best_of(res, MINIRNN)
        cells = [fmt(R[c]["median_ms"]) if c in R else "—" for c in cols]
        torch_ms, _ = best_of(res, TORCH)
        def rel(other, mini_ms=mini_ms):
            return "—" if not (mini_ms and other) else f"{mini_ms / other:.2f}"

        def get(n, R=R):
            return R[n]["median_ms"] if n in R else None

        pct = "—" if not mini_ms else f"{100 * res['bound_ms'] / mini_ms:.0f} %"
        lines.append(f"| {res['N_rec']} | {res['dtype']} | {'on' if res['noise'] else 'off'} | " + " | ".join(cells)
                     + f" | {fmt(res['bound_ms'])} | {pct}"
                     + f" | {rel(get('NumPy proto'))} | {rel(torch_ms)} | {rel(get('JAX'))} | {rel(get('PsychRNN'))} |")
    lines += ["", "Peak memory (MiB, VmHWM of each contender's own process; in brackets: above its "
              "footprint after importing its framework):", "",
              "| N_rec | dtype | noise | " + " | ".join(cols) + " |", "|" + "---|" * (len(cols) + 3)]
    for res in all_res:
        R = res["results"]
        cells = [f"{R[c]['maxrss_mb']:.0f} (+{R[c]['maxrss_mb'] - R[c]['import_mb']:.0f})"
                 if c in R and "maxrss_mb" in R[c] else "—" for c in cols]
        lines.append(f"| {res['N_rec']} | {res['dtype']} | {'on' if res['noise'] else 'off'} | " + " | ".join(cells) + " |")
    lines += ["", "Ratios: best minirnn backend's time / the peer's (< 1: minirnn is faster). `+batch`: a fresh "
              "batch from the framework's own task code every update."]
    return "\n".join(lines)


def measure_peaks(args, before: dict) -> dict:
    """The 2-thread matmul peaks (GFLOP/s), the best of this and any ``before`` measurement."""
    b0, c0, t0 = busy_seconds(), own_cpu(), time.perf_counter()
    peaks = {d: max(before.get(d, 0.0), matmul_peak(args.threads, args.peak_n, d, args.peak_repeats))
             for d in ("float32", "float64")}
    foreign = max(0.0, (busy_seconds() - b0) - (own_cpu() - c0)) / (time.perf_counter() - t0)
    print(f"{args.threads}-thread matmul peak ({args.peak_n}^3, best of {args.peak_repeats}"
          f"{', and of the earlier measurement' if before else ''}): {peaks['float32']:.1f} GFLOP/s float32, "
          f"{peaks['float64']:.1f} GFLOP/s float64 (foreign CPU {foreign:.2f} cores)", flush=True)
    return peaks


# ---- main -------------------------------------------------------------------------------------------
def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    csv = lambda conv: (lambda s: [conv(v) for v in s.split(",") if v])  # noqa: E731
    p.add_argument("--sizes", type=csv(int), default=[50, 256, 1024], help="N_rec values (default 50,256,1024)")
    p.add_argument("--dtypes", type=csv(str), default=["float32", "float64"], help="float32,float64")
    p.add_argument("--noise", type=csv(str), default=["on", "off"], help="on,off: recurrent noise")
    p.add_argument("--rounds", type=int, default=7, help="interleaved timing rounds (default 7)")
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--steps", type=int, default=200, help="time steps T (default 200)")
    p.add_argument("--rec-noise", type=float, default=0.05, help="rec_noise when noise is on")
    p.add_argument("--threads", type=int, default=2, help="threads per contender (default 2)")
    p.add_argument("--contenders", type=csv(str), default=None, help="comma list (default: all installed): "
                   + ", ".join(CONTENDERS))
    p.add_argument("--skip", type=csv(str), default=[], help="contenders to leave out")
    p.add_argument("--warmup", type=int, default=3, help="warm-up updates after the first (default 3)")
    p.add_argument("--min-sample-s", type=float, default=0.5, help="each sample runs enough updates for this long")
    p.add_argument("--max-inner", type=int, default=50, help="at most this many updates per sample")
    p.add_argument("--max-foreign", type=float, default=0.25,
                   help="redo a sample when other processes used more than this many cores during it")
    p.add_argument("--max-redo", type=int, default=3, help="redo a noisy sample at most this often")
    p.add_argument("--keep-noisy", action="store_true", help="keep samples still noisy after the redos")
    p.add_argument("--check-updates", type=int, default=4, help="updates of the equality check (0: none)")
    p.add_argument("--check-size", type=int, default=None, help="N_rec of the equality check (default: first size)")
    p.add_argument("--check-eps", type=float, default=1e-30,
                   help="Adam eps in the check (torch.optim.Adam places eps differently from TF1)")
    p.add_argument("--check-only", action="store_true", help="run the equality check only")
    p.add_argument("--peak-n", type=int, default=2048, help="matrix size of the peak measurement")
    p.add_argument("--peak-repeats", type=int, default=15, help="matmuls of each peak measurement")
    p.add_argument("--psychrnn-python", default=os.environ.get("PSYCHRNN_PYTHON", "/tmp/psyenv/bin/python"))
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--setup-timeout", type=float, default=900)
    p.add_argument("--run-timeout", type=float, default=900)
    p.add_argument("--quick", action="store_true",
                   help="tiny smoke run: N_rec 16, batch 8, 20 steps, float32, noise on, 2 rounds (overrides those flags)")
    p.add_argument("--markdown", action="store_true", help="also print a markdown table for benchmarks/RESULTS.md")
    p.add_argument("--json", default=None, help="write all results to this JSON file")
    args = p.parse_args(argv)
    if args.quick:
        args.sizes, args.batch, args.steps, args.dtypes, args.noise = [16], 8, 20, ["float32"], ["on"]
        args.rounds, args.warmup, args.min_sample_s, args.peak_n, args.keep_noisy = 2, 1, 0.05, 512, True
        args.max_redo = min(args.max_redo, 1)
    if args.check_size is None:
        args.check_size = args.sizes[0]
    for d in args.dtypes:
        if d not in ("float32", "float64"):
            p.error(f"--dtypes: {d!r} is not float32 or float64")
    for n in args.noise:
        if n not in ("on", "off"):
            p.error(f"--noise: {n!r} is not on or off")
    unknown = [c for c in (args.contenders or []) + args.skip if c not in CONTENDERS]
    if unknown:
        p.error(f"unknown contender(s) {unknown}; choose from {list(CONTENDERS)}")
    return args


def main(argv=None):
    args = parse_args(argv)
    os.environ.update({v: str(args.threads) for v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")})
    wanted = [c for c in (args.contenders or CONTENDERS) if c not in args.skip]
    names, why, psy_version = available(wanted, args.psychrnn_python)
    machine = machine_line(args.threads)
    vers = versions(psy_version)
    print(f"# bench_peers.py  {datetime.datetime.now().isoformat(timespec='seconds')}")
    print(f"Machine: {machine}\nVersions: {vers}\nLoad: {os.getloadavg()}")
    for name, reason in why.items():
        print(f"not run: {name}: {reason}")
    peaks = measure_peaks(args, {})
    all_res, checks = [], []
    with tempfile.TemporaryDirectory(prefix="bench_peers_") as tmp:
        if args.check_updates > 0:
            for dtype in ("float64", "float32"):
                checks.append(equality_check(args, names, dtype, tmp))
        if not args.check_only:
            for N_rec in args.sizes:
                for dtype in args.dtypes:
                    for noise in args.noise:
                        all_res.append(bench_config(args, names, N_rec, dtype, noise == "on", tmp, peaks))
            peaks = measure_peaks(args, peaks)  # again at the end: the peak is the best of both
            for res in all_res:  # the bound with the final peak
                res["bound_ms"] = res["flops"] / (peaks[res["dtype"]] * 1e9) * 1e3
                for r in res["results"].values():
                    r["pct_bound"] = 100 * res["bound_ms"] / r["median_ms"]
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"machine": machine, "versions": vers, "peaks": peaks, "checks": checks,
                       "args": vars(args), "results": all_res}, f, indent=1, default=str)
    if args.markdown:
        print("\n" + markdown(all_res, args, machine, vers, peaks, checks))
    return 0


if __name__ == "__main__":
    sys.exit(main())
