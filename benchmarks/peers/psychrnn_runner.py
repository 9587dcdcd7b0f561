"""PsychRNN 1.0.0 (TensorFlow 2.x, graph mode) as a contender, run in its own virtual environment.

The driver starts ``worker.py psychrnn_runner ...`` with PsychRNN's interpreter
(``--psychrnn-python``, default ``/tmp/psyenv/bin/python``; README.md has the recipe). The update
is exactly the one ``RNN.train`` builds: ``AdamOptimizer(lr).compute_gradients(reg_loss)``, each
gradient ``tf.clip_by_norm(g, 1.0)``, ``apply_gradients``, one ``sess.run(optimize, feed_dict)``
per update; the session is remade with ``intra_op_parallelism_threads = THREADS`` and one
inter-op thread (PsychRNN's own ``tf.compat.v1.Session()`` takes every core).

- ``psychrnn``: the fixed batch fed every update (the same as every other contender's).
- ``psychrnn+batch``: a fresh batch from PsychRNN's ``PerceptualDiscrimination`` batch generator
  every update, as ``RNN.train`` does.

PsychRNN 1.0.0 is float32 only (its placeholders and variables are ``float``): float64 is refused.
"""
from __future__ import annotations

import numpy as np

from common import ALPHA, LEARNING_RATE, StepLoop, load_data

_threads = 2


def preimport(contender, threads):
    global _threads
    _threads = threads
    import tensorflow  # noqa: F401
    import psychrnn  # noqa: F401


class PsychRNNContender(StepLoop):
    def __init__(self, contender: str, cfg: dict, data_path: str):
        if cfg["dtype"] != "float32":
            raise ValueError("PsychRNN 1.0.0 is float32 only")
        import tensorflow as tf
        from psychrnn.backend.models.basic import Basic

        w, x, y, mask = load_data(data_path, np.float32)
        B, T, N_in = x.shape
        dt = 10
        params = {"name": f"bench{id(self)}", "N_in": N_in, "N_rec": w["W_rec"].shape[0], "N_out": y.shape[-1],
                  "N_steps": T, "dt": dt, "tau": dt / ALPHA, "N_batch": B,
                  "rec_noise": float(cfg["rec_noise"]) if cfg["noise"] else 0.0,
                  **{k: np.asarray(v, np.float64) for k, v in w.items()}}
        tf.compat.v1.reset_default_graph()
        tf.compat.v1.set_random_seed(cfg["seed"])
        model = Basic(params)
        model.build()
        model.sess.close()
        model.sess = tf.compat.v1.Session(config=tf.compat.v1.ConfigProto(
            intra_op_parallelism_threads=_threads, inter_op_parallelism_threads=1))
        optimizer = tf.compat.v1.train.AdamOptimizer(learning_rate=LEARNING_RATE, epsilon=float(cfg["eps"]))
        grads = optimizer.compute_gradients(model.reg_loss)
        grads = [(tf.clip_by_norm(g, 1.0), v) for g, v in grads if g is not None]
        self.optimize = optimizer.apply_gradients(grads)
        model.sess.run(tf.compat.v1.global_variables_initializer())
        self.model = model
        self.feed = {model.x: x, model.y: y, model.output_mask: mask}
        self.generator = None
        if contender.endswith("+batch"):
            from psychrnn.tasks.perceptual_discrimination import PerceptualDiscrimination

            np.random.seed(cfg["seed"])  # PsychRNN's tasks draw from the global np.random
            self.generator = PerceptualDiscrimination(dt=dt, tau=dt / ALPHA, T=dt * T, N_batch=B).batch_generator()

    def step(self, record=False):
        m = self.model
        if self.generator is not None:
            bx, by, bm, _ = next(self.generator)
            self.feed = {m.x: bx, m.y: by, m.output_mask: bm}
        loss = m.sess.run(m.reg_loss, feed_dict=self.feed) if record else None
        m.sess.run(self.optimize, feed_dict=self.feed)
        return None if loss is None else float(loss)


def make(contender: str, cfg: dict, data_path: str):
    return PsychRNNContender(contender, cfg, data_path)
