"""Fig. 5C of the PsychRNN paper (Ehrlich et al., eNeuro 2021): curriculum learning speeds up training.

For each of 10 seeds, the same initial network (``Basic``, N_rec = 50, seed s) is trained twice on
``PerceptualDiscrimination`` (dt = 10, tau = 100, T = 2000):

* **curriculum**: coherence 0.7 -> 0.5 -> 0.3 -> 0.1, moving on when the accuracy on a fresh batch
  reaches 90 % (``Curriculum``, ``metric_epoch = 10``);
* **direct**: coherence 0.1 alone, with the same 90 % test every 10 updates (a one-stage Curriculum,
  so both arms are measured by the very same rule).

The number compared is the total number of updates until the 90 % test passes at coherence 0.1
(runs that never get there are censored at ``--max-updates`` and counted as that value). Reported:
per-seed numbers, medians, a two-sided Mann-Whitney U test and a paired Wilcoxon signed-rank test
(paired by seed: same initial weights).

Run::

    python benchmarks/fig5c_curriculum.py                 # the full experiment (10 seeds)
    python benchmarks/fig5c_curriculum.py --quick         # a small smoke version (~1 min)
    python benchmarks/fig5c_curriculum.py --out results.json

Set ``OPENBLAS_NUM_THREADS=1`` on a shared machine.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from minirnn import Basic, Curriculum  # noqa: E402
from minirnn.tasks import PerceptualDiscrimination  # noqa: E402

CURRICULUM = (0.7, 0.5, 0.3, 0.1)


def updates_to_criterion(coherences, seed, cfg):
    """Train a fresh network (seed ``seed``) through ``coherences``; updates until the last stage passes."""
    tasks = [PerceptualDiscrimination(dt=cfg["dt"], tau=cfg["tau"], T=cfg["T"], N_batch=cfg["N_batch"],
                                      coherence=c, seed=1000 * seed + i) for i, c in enumerate(coherences)]
    curriculum = Curriculum(tasks, thresholds=[cfg["threshold"]] * len(tasks), metric_epoch=cfg["metric_epoch"])
    params = tasks[0].get_task_params()
    params.update(N_rec=cfg["N_rec"], seed=seed, backend=cfg["backend"])
    model = Basic(params)
    model.train_curric({"curriculum": curriculum, "training_iters": cfg["N_batch"] * cfg["max_updates"],
                        "learning_rate": cfg["learning_rate"], "verbosity": False})
    reached = curriculum.stop_training
    updates = model.history["stages"][-1]["update"] if reached else cfg["max_updates"]
    return {"updates": int(updates), "reached": bool(reached),
            "stages": [(s["update"], s["stage"], round(s["metric"], 4)) for s in model.history["stages"]]}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="3 seeds, a smaller network and shorter trials")
    ap.add_argument("--seeds", type=int, default=None, help="number of seeds (default 10, quick 3)")
    ap.add_argument("--max-updates", type=int, default=None, help="cap per run (default 3000, quick 400)")
    ap.add_argument("--backend", default="auto")
    ap.add_argument("--out", default=None, help="write the results as JSON here")
    args = ap.parse_args(argv)
    cfg = dict(dt=10, tau=100, T=2000, N_batch=64, N_rec=50, learning_rate=0.001, threshold=0.9,
               metric_epoch=10, max_updates=3000, seeds=10, backend=args.backend)
    if args.quick:
        cfg.update(T=1000, N_batch=32, N_rec=30, learning_rate=0.003, max_updates=400, seeds=3)
    if args.seeds is not None:
        cfg["seeds"] = args.seeds
    if args.max_updates is not None:
        cfg["max_updates"] = args.max_updates

    runs = {"curriculum": [], "direct": []}
    for seed in range(cfg["seeds"]):
        for arm, coherences in (("curriculum", CURRICULUM), ("direct", CURRICULUM[-1:])):
            t0 = time.perf_counter()
            run = updates_to_criterion(coherences, seed, cfg)
            run["seconds"] = round(time.perf_counter() - t0, 2)
            runs[arm].append(run)
            print(f"seed {seed:2d} {arm:<10} updates {run['updates']:5d} reached {run['reached']!s:<5} "
                  f"({run['seconds']:.1f} s) stages {run['stages']}", flush=True)

    cur = np.array([r["updates"] for r in runs["curriculum"]], dtype=float)
    direct = np.array([r["updates"] for r in runs["direct"]], dtype=float)
    summary = {"median_curriculum": float(np.median(cur)), "median_direct": float(np.median(direct)),
               "n_seeds": int(cfg["seeds"])}
    try:
        from scipy import stats

        mw = stats.mannwhitneyu(cur, direct, alternative="two-sided")
        summary["mannwhitney_U"], summary["mannwhitney_p"] = float(mw.statistic), float(mw.pvalue)
        if np.any(cur != direct):
            wx = stats.wilcoxon(cur, direct)
            summary["wilcoxon_W"], summary["wilcoxon_p"] = float(wx.statistic), float(wx.pvalue)
    except ImportError:  # scipy is a core dependency; this only guards a broken install
        summary["note"] = "scipy missing: no rank tests"
    print(json.dumps(summary, indent=1))
    print(f"\n| arm | median updates to 90% at coherence 0.1 | per seed |\n|---|---|---|\n"
          f"| curriculum 0.7-0.5-0.3-0.1 | {summary['median_curriculum']:.0f} | {cur.astype(int).tolist()} |\n"
          f"| coherence 0.1 only | {summary['median_direct']:.0f} | {direct.astype(int).tolist()} |")
    if args.out:
        with open(args.out, "w") as fh:
            json.dump({"config": cfg, "summary": summary, "runs": runs}, fh, indent=1)
    return summary


if __name__ == "__main__":
    main()
