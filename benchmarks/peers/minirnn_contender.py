"""minirnn contenders: ``Basic`` trained by ``minirnn.train.trainer.train``, one backend each.

- ``minirnn_numpy``, ``minirnn_numba``: the fixed batch (the same as every peer's), fed through a
  batch generator; each update is exactly the trainer's (``_check_batch``, ``_loss_and_grads``
  with ``noise_rng=model.rng_noise``, finiteness checks, per-parameter clip, Adam in place, the
  loss history).
- ``minirnn_numpy+batch``, ``minirnn_numba+batch``: the same, with minirnn's own
  ``PerceptualDiscrimination`` making a fresh batch every update (PsychRNN's semantics).

``run(n)`` is one ``train()`` call of ``n`` updates, timed whole (its set-up included); the
``Adam`` instance is passed in every call, so the optimizer state carries over between calls.
"""
from __future__ import annotations

import itertools
import os
import sys

import numpy as np

from common import LEARNING_RATE, StepLoop, load_data

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)


def preimport(contender, threads):
    import minirnn  # noqa: F401
    from minirnn.backends import get_backend

    get_backend(_backend_name(contender))  # numba: compile / load the cache now


def _backend_name(contender: str) -> str:
    return contender.split("_", 1)[1].split("+")[0]


class MinirnnContender(StepLoop):
    def __init__(self, contender: str, cfg: dict, data_path: str):
        from minirnn import Basic
        from minirnn.nn.optimizers import Adam
        from minirnn.tasks import PerceptualDiscrimination

        w, x, y, mask = load_data(data_path, np.dtype(cfg["dtype"]))
        B, T = x.shape[:2]
        task = PerceptualDiscrimination(dt=10, tau=100, T=10 * T, N_batch=B, seed=cfg["seed"])
        params = task.get_task_params()
        params.update(N_rec=w["W_rec"].shape[0], dtype=cfg["dtype"], backend=_backend_name(contender),
                      rec_noise=cfg["rec_noise"] if cfg["noise"] else 0.0, seed=cfg["seed"],
                      **{k: np.asarray(v, np.float64) for k, v in w.items()})
        self.model = Basic(params)
        self.optimizer = Adam(learning_rate=LEARNING_RATE, epsilon=float(cfg["eps"]))
        self.B = B
        self.source = task if contender.endswith("+batch") else itertools.repeat((x, y, mask, None))

    def run(self, n):
        self.model.train(self.source, {"training_iters": n * self.B, "verbosity": False, "loss_epoch": 1,
                                       "optimizer": self.optimizer})

    def losses(self, n):
        before = len(self.model.history["loss"]) if self.model.history else 0
        self.run(n)
        return [float(v) for v in self.model.history["loss"][before:]]


def make(contender: str, cfg: dict, data_path: str):
    return MinirnnContender(contender, cfg, data_path)
