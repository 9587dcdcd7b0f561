"""Write the PsychRNN golden files in tests/data/ (weights files + PsychRNN's own outputs).

minirnn's tests compare against these files and never import TensorFlow; only this script does.

Install (a separate virtualenv -- never put TensorFlow into minirnn's environment)::

    python -m venv /tmp/psyenv
    /tmp/psyenv/bin/pip install "pip==24.0"
    /tmp/psyenv/bin/pip install tensorflow-cpu
    /tmp/psyenv/bin/pip install psychrnn==1.0.0 --no-deps

PsychRNN's GitHub master (for the master-format file) is not on PyPI: unpack its source, e.g.::

    git clone https://github.com/murraylab/PsychRNN /tmp/psy_master
    # or, from a bare mirror: git --git-dir=<mirror> archive HEAD | tar -x -C /tmp/psy_master

Run (from the repository root; each flavour runs in its own process because both install a
top-level package called ``psychrnn``)::

    /tmp/psyenv/bin/python tests/data/make_psychrnn_golden.py                 # both flavours
    /tmp/psyenv/bin/python tests/data/make_psychrnn_golden.py --master-src /tmp/psy_master
    /tmp/psyenv/bin/python tests/data/make_psychrnn_golden.py --timing        # + the benchmark
    /tmp/psyenv/bin/python tests/data/make_psychrnn_golden.py --timing-only   # benchmark only

The script runs itself once with ``--flavour pypi`` (PsychRNN 1.0.0 from site-packages) and once
with ``--flavour master`` (PYTHONPATH=<master-src>), then writes ``golden_meta.json``.

Files written (all small; the weights files are exactly what ``model.save`` writes):

* ``psychrnn100_basic.npz``       Basic N_in=2 N_rec=8 N_out=2, relu, no Dale, 5 Adam updates on
                                  PerceptualDiscrimination (dt=10, tau=100, T=200 -> 20 steps)
* ``psychrnn100_basic_dale.npz``  same, dale_ratio=0.75, autapses=False, partial input / rec /
                                  output connectivity masks, 5 Adam updates
* ``psychrnn100_lstm.npz``        LSTM N_rec=6, 5 Adam updates
* ``psychrnn_master_tanh_dale.npz``  PsychRNN master, Basic, transfer_function=tf.nn.tanh,
                                  dale_ratio=0.5, 5 Adam updates (holds a pickled
                                  ``transfer_function`` and Dale_out = diag(1 E, 0 I))
* ``<name>_io.npz`` for each: ``x`` (3, 20, 2) float32 fixed inputs (seeded numpy), and
  ``outputs`` (3, 20, N_out), ``states`` (3, 20, N_rec) from ``model.test(x)`` with rec_noise=0,
  float32 as PsychRNN returns them.
* ``golden_meta.json``: versions (PsychRNN, TensorFlow, numpy, master commit when known) and the
  parameters of every network.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
N_BATCH = 3  # PsychRNN's test() needs batch == N_batch (LSTM's init_hidden is (N_batch, N_rec))
N_UPDATES = 5
SEED = 20240611


def _inputs(n_steps, n_in, seed):
    import numpy as np
    rng = np.random.RandomState(seed)
    # Values like PerceptualDiscrimination's (0..1 plus noise) but not from the task, so the
    # golden inputs do not depend on the task code.
    return (rng.uniform(0.0, 1.0, size=(N_BATCH, n_steps, n_in))
            + 0.05 * rng.randn(N_BATCH, n_steps, n_in)).astype("float32")


def _fresh_graph(seed):
    import numpy as np
    import tensorflow as tf
    tf.compat.v1.reset_default_graph()
    tf.compat.v1.set_random_seed(seed)
    np.random.seed(seed)


def _train_updates(model, task, n_updates, flavour):
    """Run exactly ``n_updates`` Adam updates with PsychRNN's own train()."""
    B = task.N_batch
    if flavour == "pypi":    # 1.0.0: while epoch * B < training_iters
        training_iters = (n_updates + 1) * B
    else:                    # master: while (epoch - 1) * B < training_iters
        training_iters = n_updates * B
    model.train(task, {"training_iters": training_iters, "verbosity": False})


def _save(model, name, x, params_record, out_meta):
    import numpy as np
    path = os.path.join(HERE, name + ".npz")
    model.save(path)
    outputs, states = model.test(x)
    np.savez(os.path.join(HERE, name + "_io.npz"), x=x, outputs=outputs, states=states)
    with np.load(path, allow_pickle=True) as f:
        keys = {k: [list(f[k].shape), str(f[k].dtype)] for k in f.files}
    out_meta[name] = {"params": params_record, "keys": keys,
                      "io": {"x": list(x.shape), "outputs": list(outputs.shape),
                             "states": list(states.shape)}}
    print(f"wrote {path} ({len(keys)} keys) and {name}_io.npz")


def _plain(params):
    """JSON-able copy of a params dict (arrays summarised, functions named)."""
    import numpy as np
    rec = {}
    for k, v in params.items():
        if isinstance(v, np.ndarray):
            rec[k] = v.astype(float).tolist()
        elif callable(v):
            rec[k] = getattr(v, "__module__", "") + "." + getattr(v, "__name__", repr(v))
        elif isinstance(v, (np.integer, np.floating)):
            rec[k] = v.item()
        else:
            rec[k] = v
    return rec


def run_pypi(out_meta):
    import numpy as np
    import tensorflow as tf
    from psychrnn.backend.models.basic import Basic
    from psychrnn.backend.models.lstm import LSTM
    from psychrnn.tasks.perceptual_discrimination import PerceptualDiscrimination
    import psychrnn  # noqa: F401  (fail early if this interpreter has no PsychRNN)
    from psychrnn._version import __version__ as psychrnn_version

    out_meta["_pypi"] = {"psychrnn": psychrnn_version, "tensorflow": tf.__version__,
                         "numpy": np.__version__}

    def task():
        return PerceptualDiscrimination(dt=10, tau=100, T=200, N_batch=N_BATCH)

    # (1) Basic, relu, no Dale
    _fresh_graph(SEED + 1)
    pd = task()
    params = pd.get_task_params()
    params.update(name="basic", N_rec=8, rec_noise=0.0)
    model = Basic(params)
    _train_updates(model, pd, N_UPDATES, "pypi")
    x = _inputs(params["N_steps"], params["N_in"], SEED + 101)
    rec = _plain(params)
    rec.update(seed=SEED + 1, transfer_function="relu (PsychRNN default)", updates=N_UPDATES)
    _save(model, "psychrnn100_basic", x, rec, out_meta)
    model.destruct()

    # (2) Basic, Dale 0.75, autapses off, partial masks
    _fresh_graph(SEED + 2)
    pd = task()
    params = pd.get_task_params()
    rng = np.random.RandomState(SEED + 202)
    n_rec = 8
    in_conn = np.ones((n_rec, 2))
    in_conn[[1, 6], 0] = 0
    in_conn[3, 1] = 0
    rec_conn = (rng.uniform(size=(n_rec, n_rec)) < 0.7).astype(float)
    out_conn = np.ones((2, n_rec))
    out_conn[0, [1, 4]] = 0
    out_conn[1, [0, 5, 7]] = 0
    params.update(name="basic_dale", N_rec=n_rec, rec_noise=0.0, dale_ratio=0.75,
                  autapses=False, input_connectivity=in_conn, rec_connectivity=rec_conn,
                  output_connectivity=out_conn)
    rec = _plain(params)  # before the initializer zeroes the diagonal of rec_conn in place
    model = Basic(params)
    _train_updates(model, pd, N_UPDATES, "pypi")
    x = _inputs(params["N_steps"], params["N_in"], SEED + 102)
    rec.update(seed=SEED + 2, transfer_function="relu (PsychRNN default)", updates=N_UPDATES)
    _save(model, "psychrnn100_basic_dale", x, rec, out_meta)
    model.destruct()

    # (3) LSTM
    _fresh_graph(SEED + 3)
    pd = task()
    params = pd.get_task_params()
    params.update(name="lstm", N_rec=6, rec_noise=0.0)
    model = LSTM(params)
    _train_updates(model, pd, N_UPDATES, "pypi")
    x = _inputs(params["N_steps"], params["N_in"], SEED + 103)
    rec = _plain(params)
    rec.update(seed=SEED + 3, updates=N_UPDATES)
    _save(model, "psychrnn100_lstm", x, rec, out_meta)
    model.destruct()


def run_master(out_meta):
    import numpy as np
    import tensorflow as tf
    import psychrnn
    from psychrnn._version import __version__ as psychrnn_version
    from psychrnn.backend.models.basic import Basic
    from psychrnn.tasks.perceptual_discrimination import PerceptualDiscrimination

    assert "site-packages" not in psychrnn.__file__, psychrnn.__file__
    out_meta["_master"] = {"psychrnn": psychrnn_version + " (GitHub master)",
                           "source": os.path.dirname(os.path.dirname(psychrnn.__file__)),
                           "commit": os.environ.get("PSYCHRNN_MASTER_COMMIT"),
                           "tensorflow": tf.__version__, "numpy": np.__version__}

    # (4) Basic, tanh, Dale 0.5
    _fresh_graph(SEED + 4)
    pd = PerceptualDiscrimination(dt=10, tau=100, T=200, N_batch=N_BATCH)
    params = pd.get_task_params()
    params.pop("_batch_generator", None)  # master's Task puts its generator here
    params.update(name="master_tanh", N_rec=8, rec_noise=0.0, dale_ratio=0.5,
                  transfer_function=tf.nn.tanh)
    model = Basic(params)
    _train_updates(model, pd, N_UPDATES, "master")
    x = _inputs(params["N_steps"], params["N_in"], SEED + 104)
    rec = _plain(params)
    rec.update(seed=SEED + 4, transfer_function="tensorflow tf.nn.tanh", updates=N_UPDATES)
    _save(model, "psychrnn_master_tanh_dale", x, rec, out_meta)
    model.destruct()


def run_timing():
    """PsychRNN 1.0.0 on the paper's minimal example: median seconds per update."""
    import numpy as np
    import tensorflow as tf
    from psychrnn.backend.models.basic import Basic
    from psychrnn.tasks.perceptual_discrimination import PerceptualDiscrimination

    n_updates, B = 20, 128
    _fresh_graph(SEED)
    pd = PerceptualDiscrimination(dt=10, tau=100, T=2000, N_batch=B)
    gen_times = []
    for _ in range(n_updates):
        t0 = time.perf_counter()
        pd.get_trial_batch()
        gen_times.append(time.perf_counter() - t0)
    params = pd.get_task_params()
    params.update(name="timing", N_rec=50)
    model = Basic(params)
    stamps = []

    def timed_generator():
        gen = pd.batch_generator()
        while True:
            stamps.append(time.perf_counter())
            yield next(gen)

    t0 = time.perf_counter()
    # 1.0.0: first next() sizes the batch, then `while epoch*B < training_iters` -> 20 updates
    model.train(timed_generator(), {"training_iters": (n_updates + 1) * B, "verbosity": False})
    stamps.append(time.perf_counter())
    total = time.perf_counter() - t0
    # stamps[0]: sizing batch; stamps[k] (1 <= k <= 20) taken when update k asks for its batch,
    # stamps[21] when train() returns, so stamps[k+1] - stamps[k] = batch generation + update k
    # (+ a loss evaluation at epochs 10 and 20: loss_epoch default). Interval 1 includes TF's
    # first-run graph setup; the median ignores it.
    per_update = np.diff(stamps[1:])
    res = {"tensorflow": tf.__version__, "N_rec": 50, "N_batch": B, "N_steps": 200,
           "updates_timed": int(per_update.size),
           "median_s_per_update_incl_batch": float(np.median(per_update)),
           "min_s_per_update_incl_batch": float(np.min(per_update)),
           "mean_s_per_update_incl_batch": float(np.mean(per_update)),
           "median_s_batch_generation": float(np.median(gen_times)),
           "train_call_total_s_incl_graph_build": total}
    print(json.dumps(res, indent=1))
    model.destruct()
    return res


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--flavour", choices=["pypi", "master"], default=None,
                    help="internal: run one flavour in this process")
    ap.add_argument("--master-src", default="/tmp/psy_master",
                    help="directory holding PsychRNN master's source (psychrnn/ inside)")
    ap.add_argument("--timing", action="store_true",
                    help="also time PsychRNN 1.0.0 on the minimal example (T=2000, B=128)")
    ap.add_argument("--skip-master", action="store_true")
    ap.add_argument("--timing-only", action="store_true",
                    help="only run the timing (PsychRNN 1.0.0), write no files")
    args = ap.parse_args()

    if args.timing_only:
        run_timing()
        return
    if args.flavour is not None:
        meta = {}
        if args.flavour == "pypi":
            run_pypi(meta)
            if args.timing:
                meta["_timing"] = run_timing()
        else:
            run_master(meta)
        print("META_JSON " + json.dumps(meta))
        return

    meta = {}
    for flavour in ("pypi", "master"):
        if flavour == "master" and args.skip_master:
            continue
        env = dict(os.environ, PYTHONHASHSEED="0", TF_CPP_MIN_LOG_LEVEL="2",
                   CUDA_VISIBLE_DEVICES="", TF_DETERMINISTIC_OPS="1")
        cmd = [sys.executable, os.path.abspath(__file__), "--flavour", flavour]
        if flavour == "master":
            env["PYTHONPATH"] = os.path.abspath(args.master_src)
            if not env.get("PSYCHRNN_MASTER_COMMIT"):  # set it yourself for an unpacked archive
                try:
                    env["PSYCHRNN_MASTER_COMMIT"] = subprocess.run(
                        ["git", "-C", args.master_src, "rev-parse", "HEAD"],
                        capture_output=True, text=True, check=True).stdout.strip()
                except (OSError, subprocess.CalledProcessError):
                    pass
        elif args.timing:
            cmd.append("--timing")
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
        sys.stderr.write(proc.stderr[-3000:] if proc.returncode else "")
        for line in proc.stdout.splitlines():
            if line.startswith("META_JSON "):
                meta.update(json.loads(line[len("META_JSON "):]))
            else:
                print(line)
        if proc.returncode:
            raise SystemExit(f"{flavour} run failed (exit {proc.returncode})")
    timing = meta.pop("_timing", None)
    meta["_note"] = ("Written by tests/data/make_psychrnn_golden.py. Weights files are PsychRNN's "
                     "model.save output; *_io.npz hold x and model.test(x) outputs/states "
                     f"(rec_noise=0, batch {N_BATCH} == N_batch).")
    with open(os.path.join(HERE, "golden_meta.json"), "w") as fh:
        json.dump(meta, fh, indent=1, sort_keys=True)
        fh.write("\n")
    if timing is not None:
        print("timing:", json.dumps(timing, indent=1))


if __name__ == "__main__":
    main()
