"""JAX contender for the benchmark model (common.py): ``lax.scan`` + ``value_and_grad`` + ``jit``.

The whole update (noise drawn inside the scanned step from a key carried along, forward,
reverse-mode gradient, per-parameter clip to norm 1, TF1's Adam written out) is one jitted
function with the parameters and the optimizer state donated. float64 turns on ``jax_enable_x64``.
With one thread (``--threads 1``) the process is pinned to one CPU: XLA ignores its thread flags.
"""
from __future__ import annotations

import os

import numpy as np

from common import ALPHA, BETA1, BETA2, CLIP_NORM, LEARNING_RATE, StepLoop, load_data, noise_scale


def preimport(contender, threads):
    if threads == 1 and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    import jax  # noqa: F401


class JaxContender(StepLoop):
    def __init__(self, cfg: dict, data_path: str):
        import jax

        if cfg["dtype"] == "float64":
            jax.config.update("jax_enable_x64", True)
        import jax.numpy as jnp
        from jax import lax

        w, x, y, mask = load_data(data_path, np.dtype(cfg["dtype"]))
        sigma, eps = noise_scale(cfg), float(cfg["eps"])
        u = jnp.asarray(np.ascontiguousarray(x.swapaxes(0, 1)))  # time-major (T, B, N_in)
        y_, m_ = jnp.asarray(y), jnp.asarray(mask)
        B = x.shape[0]

        def loss_fn(p, key):
            def step(carry, u_k):
                # x_{k+1} = (1 - a) x_k + a (relu(x_k) W_rec^T + u_k W_in^T + b_rec) + sqrt(2a) s xi_k
                state, key = carry
                new = (1 - ALPHA) * state + ALPHA * (jax.nn.relu(state) @ p["W_rec"].T + u_k @ p["W_in"].T + p["b_rec"])
                if sigma > 0:
                    key, sub = jax.random.split(key)
                    new = new + sigma * jax.random.normal(sub, state.shape, state.dtype)
                return (new, key), new

            x0 = jnp.broadcast_to(p["init_state"], (B, p["init_state"].shape[-1]))
            _, X = lax.scan(step, (x0, key), u)  # (T, B, N)
            z = jax.nn.relu(X) @ p["W_out"].T + p["b_out"]  # z_k = relu(x_{k+1}) W_out^T + b_out
            z = jnp.swapaxes(z, 0, 1)
            return jnp.mean((m_ * (z - y_)) ** 2)

        def update(p, opt, key):
            key, sub = jax.random.split(key)
            loss, g = jax.value_and_grad(loss_fn)(p, sub)
            t = opt["t"] + 1
            b1p, b2p = opt["b1p"] * BETA1, opt["b2p"] * BETA2
            lr_t = LEARNING_RATE * jnp.sqrt(1 - b2p) / (1 - b1p)
            new_p, new_m, new_v = {}, {}, {}
            for k in p:
                gk = g[k] * CLIP_NORM / jnp.maximum(jnp.sqrt(jnp.sum(g[k] * g[k])), CLIP_NORM)  # clip_by_norm
                m = opt["m"][k] + (gk - opt["m"][k]) * (1 - BETA1)
                v = opt["v"][k] + (gk * gk - opt["v"][k]) * (1 - BETA2)
                new_p[k] = p[k] - lr_t * m / (jnp.sqrt(v) + eps)
                new_m[k], new_v[k] = m, v
            return new_p, {"t": t, "b1p": b1p, "b2p": b2p, "m": new_m, "v": new_v}, key, loss

        dt = jnp.dtype(cfg["dtype"])
        self.p = {k: jnp.asarray(v) for k, v in w.items()}
        zeros = {k: jnp.zeros_like(v) for k, v in self.p.items()}
        self.opt = {"t": jnp.asarray(0), "b1p": jnp.asarray(1.0, dt), "b2p": jnp.asarray(1.0, dt),
                    "m": zeros, "v": {k: jnp.zeros_like(v) for k, v in self.p.items()}}
        self.key = jax.random.PRNGKey(cfg["seed"])
        self.update = jax.jit(update, donate_argnums=(0, 1))
        self.loss = None

    def step(self, record=False):
        self.p, self.opt, self.key, self.loss = self.update(self.p, self.opt, self.key)
        return float(self.loss) if record else None

    def sync(self):
        if self.loss is not None:
            import jax

            jax.block_until_ready((self.p, self.opt, self.loss))


def make(contender: str, cfg: dict, data_path: str):
    return JaxContender(cfg, data_path)
