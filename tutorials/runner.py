#!/usr/bin/env python
"""Run tutorials and ported notebooks top to bottom, optionally with capped training (for CI).

The tutorials stay exactly as a user reads them. For a fast run this runner, not the tutorial,
changes training: it wraps :func:`minirnn.train.trainer.train` (the function every
``model.train`` / ``train_curric`` call goes through) so that each call

* trains at most ``max_updates`` updates (``training_iters`` capped at ``max_updates * N_batch``),
* and, when ``cutoff`` is given and the call sets no ``performance_measure`` of its own, stops
  as soon as the task's accuracy on the last two check batches (one every ``check_every``
  updates) reaches ``cutoff`` on average ("train until accurate").

minirnn itself knows nothing of this. Usage::

    python tutorials/runner.py tutorials/01_hello_world.py                      # full length
    python tutorials/runner.py --max-updates 150 --cutoff 0.95 tutorials/*.py   # capped, as in CI
    python tutorials/runner.py --workdir /tmp/nb --figures /tmp/nb/figs tutorials/psychrnn_notebooks/Minimal_Example.py

Files run cell by cell in one namespace, like a notebook (figures are closed after each cell, as
Jupyter's inline backend does). ``MINIRNN_TUTORIAL_FAST=1`` in the environment selects ``--max-updates 150 --cutoff 0.95 --seed 0``
(the ported notebooks' CI setting; ``tests/test_tutorials.py`` lists the per-file settings). Each run prints its wall time, the updates of every ``train`` call
and the accuracy reached.
"""
from __future__ import annotations

import argparse
import contextlib
import os
import pathlib
import sys
import time

import numpy as np


def task_accuracy(task, y, output, mask) -> float:
    """``task.accuracy_function``, or PsychRNN's choice rule when the task defines none."""
    from minirnn.tasks.task import choice_accuracy

    acc = task.accuracy_function(y, output, mask) if hasattr(task, "accuracy_function") else None
    if acc is None:
        acc = choice_accuracy(y, output, mask)
    return float(np.mean(acc))


def evaluate(model, task, n_batches: int = 2) -> float:
    """Accuracy of ``model`` on ``n_batches`` fresh batches of ``task`` (drawn from a separate
    stream, so the task's own sequence is untouched)."""
    rng = np.random.default_rng(12345)
    accs = []
    for _ in range(n_batches):
        x, y, mask, _ = task.generate_batch(rng)
        output, _ = model.test(x)
        accs.append(task_accuracy(task, y, output, mask))
    return float(np.mean(accs))


class TrainRecorder:
    """The wrapper installed over ``minirnn.train.trainer.train``; keeps a record of every call."""

    def __init__(self, original, max_updates=None, cutoff=None, check_every=5):
        self.original, self.max_updates, self.cutoff, self.check_every = original, max_updates, cutoff, check_every
        self.calls = []

    def __call__(self, model, source, train_params=None, **kwargs):
        tp = dict(train_params or {})
        curriculum = tp.get("curriculum")
        task = curriculum.tasks[-1] if curriculum is not None else source
        n_batch = getattr(task, "N_batch", None) or 128
        if self.max_updates is not None:
            tp["training_iters"] = min(int(tp.get("training_iters") or 50000), int(self.max_updates) * n_batch)
        if (self.cutoff is not None and tp.get("performance_measure") is None and curriculum is None
                and hasattr(task, "generate_batch")):
            recent = []

            def until_accurate(trial_batch, trial_y, output_mask, output, epoch, losses, verbosity):
                """The task's accuracy, averaged over the last two checks (less luck in the stop)."""
                recent.append(task_accuracy(task, trial_y, output, output_mask))
                return float(np.mean(recent[-2:]))

            tp.update(performance_measure=until_accurate, performance_cutoff=self.cutoff,
                      performance_epoch=self.check_every)
        n_before = len(model.history["loss"]) if getattr(model, "history", None) else 0
        t0 = time.perf_counter()
        result = self.original(model, source, tp, **kwargs)
        record = {"model": model, "task": task, "seconds": time.perf_counter() - t0,
                  "updates": len(model.history["loss"]) - n_before, "training_iters": tp.get("training_iters", 50000)}
        self.calls.append(record)
        return result


@contextlib.contextmanager
def _patched_train(recorder):
    import minirnn.train.trainer as trainer

    original = trainer.train
    trainer.train = recorder
    try:
        yield
    finally:
        trainer.train = original


def _cells(text: str) -> list[str]:
    """The cells of a jupytext percent script, each padded with blank lines to its place in the
    file (so tracebacks name the right line). Text before the first ``# %%`` is a cell too."""
    lines = text.splitlines(keepends=True)
    starts = [0] + [i for i, line in enumerate(lines) if line.startswith("# %%") and i > 0]
    ends = starts[1:] + [len(lines)]
    return ["\n" * a + "".join(lines[a:b]) for a, b in zip(starts, ends)]


def run_tutorial(path, *, max_updates=None, cutoff=None, check_every=5, workdir=None, figures=None,
                 output_dir=None, seed=None) -> dict:
    """Run one tutorial file top to bottom, cell by cell, as ``__main__``, and return what happened.

    Cells run in one namespace, like a notebook kernel; after each cell the open figures are saved
    (when ``figures`` is given) and closed, as Jupyter's inline backend does, so a notebook that
    plots in several cells without ``plt.figure()`` draws several figures, not one on top of another.

    Parameters
    ----------
    path : the tutorial (a jupytext percent script).
    max_updates, cutoff, check_every : the training cap (see the module docstring); None = full length.
    workdir : folder to run in (created; a ``weights/`` folder is made there, as PsychRNN's
        documentation folder has one). Default: the current folder.
    figures : folder to save the figures into (``<stem>_<cell>_<k>.png``), or None.
    output_dir : sets ``MINIRNN_TUTORIAL_OUTPUT`` (where the workflow tutorials write figures).
    seed : calls ``np.random.seed(seed)`` first. PsychRNN's notebooks set no seeds; minirnn then
        takes its seeds from NumPy's global state, so this makes their runs reproducible.

    Returns
    -------
    dict with ``namespace`` (the script's globals), ``seconds`` (wall time), ``calls`` (one record per
    ``train`` call: model, task, seconds, updates) and ``figures`` (paths saved).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    import minirnn.train.trainer as trainer

    path = pathlib.Path(path).resolve()
    recorder = TrainRecorder(trainer.train, max_updates, cutoff, check_every)
    old_cwd, old_env = os.getcwd(), os.environ.get("MINIRNN_TUTORIAL_OUTPUT")
    if workdir is not None:
        pathlib.Path(workdir).mkdir(parents=True, exist_ok=True)
        os.chdir(workdir)
    made_weights = not pathlib.Path("weights").exists()
    pathlib.Path("weights").mkdir(exist_ok=True)  # PsychRNN's notebooks save into ./weights/
    if output_dir is not None:
        os.environ["MINIRNN_TUTORIAL_OUTPUT"] = str(output_dir)
    plt.close("all")
    random_state = np.random.get_state()
    if seed is not None:
        np.random.seed(seed)
    show, plt.show = plt.show, lambda *a, **k: None  # harmless under Agg; silences its warning
    t0 = time.perf_counter()
    saved = []
    namespace = {"__name__": "__main__", "__file__": str(path), "__builtins__": __builtins__}
    try:
        with _patched_train(recorder):
            for c, cell in enumerate(_cells(path.read_text(encoding="utf-8"))):
                exec(compile(cell, str(path), "exec"), namespace)
                if figures is not None:
                    pathlib.Path(figures).mkdir(parents=True, exist_ok=True)
                    for k, num in enumerate(plt.get_fignums()):
                        target = pathlib.Path(figures) / f"{path.stem}_{c:02d}_{k}.png"
                        plt.figure(num).savefig(target, dpi=80)
                        saved.append(str(target))
                plt.close("all")
        seconds = time.perf_counter() - t0
    finally:
        plt.show = show
        plt.close("all")
        if seed is not None:
            np.random.set_state(random_state)  # the caller's global stream, as it was
        if made_weights and not any(pathlib.Path("weights").iterdir()):
            pathlib.Path("weights").rmdir()  # leave no empty folder behind
        os.chdir(old_cwd)
        if output_dir is not None:
            if old_env is None:
                os.environ.pop("MINIRNN_TUTORIAL_OUTPUT", None)
            else:
                os.environ["MINIRNN_TUTORIAL_OUTPUT"] = old_env
    return {"namespace": namespace, "seconds": seconds, "calls": recorder.calls, "figures": saved}


def main(argv=None) -> int:
    try:
        import minirnn  # noqa: F401
    except ImportError:  # run from a source checkout without installing: use the checkout
        sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("paths", nargs="+")
    parser.add_argument("--max-updates", type=int, default=None, help="cap every train call (default: none)")
    parser.add_argument("--cutoff", type=float, default=None, help="stop a train call at this accuracy")
    parser.add_argument("--workdir", default=None, help="run in this folder (default: here)")
    parser.add_argument("--figures", default=None, help="save open figures here")
    parser.add_argument("--output-dir", default=None, help="MINIRNN_TUTORIAL_OUTPUT for the workflow tutorials")
    parser.add_argument("--seed", type=int, default=None, help="np.random.seed(SEED) before each file")
    args = parser.parse_args(argv)
    if os.environ.get("MINIRNN_TUTORIAL_FAST") == "1":  # the CI setting, unless given explicitly
        args.max_updates = 150 if args.max_updates is None else args.max_updates
        args.cutoff = 0.95 if args.cutoff is None else args.cutoff
        args.seed = 0 if args.seed is None else args.seed
    for p in args.paths:
        result = run_tutorial(p, max_updates=args.max_updates, cutoff=args.cutoff, workdir=args.workdir,
                              figures=args.figures, output_dir=args.output_dir, seed=args.seed)
        print(f"{p}: {result['seconds']:.1f} s")
        for call in result["calls"]:
            acc = evaluate(call["model"], call["task"]) if hasattr(call["task"], "generate_batch") else float("nan")
            loss = call["model"].history["loss"][-1] if call["model"].history["loss"] else float("nan")
            print(f"  train {type(call['model']).__name__}: {call['updates']} updates in {call['seconds']:.1f} s, "
                  f"last loss {np.mean(loss):.4f}, accuracy {acc:.3f}")
        sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
