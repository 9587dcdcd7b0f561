"""Any NeuroGym environment as a minirnn :class:`~minirnn.tasks.Task` (trial-aligned batches).

NeuroGym (https://github.com/neurogym/neurogym) is an optional extra: ``pip install "minirnn[neurogym]"``.
It is imported only when a :class:`NeurogymTask` is made from an environment *name*.

What a batch is (unlike ``neurogym.Dataset``, which stitches trials into one stream and cuts
windows, so a window may start mid-trial)::

    for each of N_batch trials:  env.new_trial()  ->  env.unwrapped.ob (L_b, N_in), .gt (L_b,)
    L = max(N_steps, max_b L_b)                 every trial starts at step 0, padded to L
    x[b, :L_b]           = ob                   zeros after the trial
    y[b, k, gt[k]]       = 1   for k < L_b      one-hot targets: channel 0 = fixate, k + 1 = choice k
    mask[b, :L_b, :]     = 1                    padding is masked out of the loss

``N_in`` is the observation size, ``N_out`` the number of actions, ``dt`` the environment's.
``N_steps`` is the longest of 100 probe trials (or ``ceil(T / dt)`` when ``T`` is given); a batch
with a longer trial grows ``N_steps`` (the model accepts any length).

Seeding: each batch draws one integer from the task's Generator (``self.rng``, or the ``rng``
passed to :meth:`generate_batch`) and reseeds the environment with it (``env.seed``: its
``RandomState``, the action space and the timing samplers). So batches are a function of the
task's seed, and a checkpointed ``state_dict`` resumes the same sequence.

Accuracy (:meth:`NeurogymTask.accuracy_function`) scores the decision period: the steps whose
target is a choice (``gt != 0``). A trial is correct when the channel with the largest mean output
over those steps is the target's; a trial without a decision period (catch trial) is correct when
the fixate channel wins over its whole (masked) length. A trial with no masked step is not scored.
"""
from __future__ import annotations

import importlib
import importlib.util
import logging

import numpy as np

from ..errors import MissingDependencyError, ParameterError, ParameterTypeError
from .task import Task, TrialParams, fraction_of_scored

logger = logging.getLogger("minirnn")

INSTALL = 'pip install "minirnn[neurogym]"'
N_PROBE_TRIALS = 100

__all__ = ["NeurogymTask", "import_neurogym"]


def import_neurogym():
    """Import neurogym, or raise :class:`MissingDependencyError` saying what to install."""
    if importlib.util.find_spec("neurogym") is None:
        raise MissingDependencyError(f"NeurogymTask needs the optional package neurogym (not installed). "
                                     f"Install it with: {INSTALL}")
    try:
        return importlib.import_module("neurogym")
    except ModuleNotFoundError as err:  # neurogym 2.3.1 imports torch without declaring it
        raise MissingDependencyError(f"neurogym is installed but cannot be imported: it needs {err.name!r}, "
                                     f"which is missing (neurogym 2.3.x imports torch). Install it with: "
                                     f"{INSTALL} torch") from err


def _trial_layer(env):
    """The outermost layer of ``env`` (the env or one of its wrappers) whose class defines ``new_trial``.

    NeuroGym's trial wrappers (SideBias, RandomGroundTruth, TrialHistoryV2, ...) override
    ``new_trial`` to choose the trial's ground truth and then call the wrapped env's ``new_trial``,
    so calling ``env.unwrapped.new_trial()`` would skip them. A wrapper whose class does not define
    it (a step-level one such as Noise, or gymnasium's OrderEnforcing/PassiveEnvChecker, which
    forward it only through a deprecated ``__getattr__``) is passed through to the layer it wraps.
    """
    layer = env
    while not _defines(layer, "new_trial") and hasattr(layer, "env"):
        layer = layer.env
    return layer


def _defines(obj, name) -> bool:
    """``obj``'s class (or a base) defines ``name`` itself, not through ``__getattr__`` forwarding."""
    return any(name in vars(klass) for klass in type(obj).__mro__)


class NeurogymTask(Task):
    """A NeuroGym environment as a minirnn Task with trial-aligned, padded, masked batches.

    Parameters
    ----------
    env_or_name : str or gymnasium.Env
        A registered NeuroGym id (``"PerceptualDecisionMaking-v0"``) or an environment object
        (a NeuroGym ``TrialEnv``, wrapped or not). Trials come from the outermost wrapper's
        ``new_trial`` (so trial wrappers such as ``SideBias`` apply); ``ob`` and ``gt`` are read
        from ``env.unwrapped``. Step-level wrappers (``Noise``, ``PassAction``) act in ``step()``,
        which a batch never calls, so they do not change batches.
    N_batch : int
        Trials per batch.
    dt : float, optional
        Time step (ms). With a name it is passed to ``neurogym.make``; with an env it must equal
        ``env.dt``. Default: the environment's.
    tau : float or (N_rec,) array, default 100
        The network's time constant(s) (ms); ``alpha = dt / tau``.
    seed : int, SeedSequence, Generator or None
        The task's stream (see the module docstring).
    T : float, optional
        Trial length (ms) to pad to; default the longest of 100 probe trials.
    **env_kwargs
        Passed to ``neurogym.make`` (``timing``, ``cohs``, ``sigma``, ...); only with a name.
    """

    def __init__(self, env_or_name, N_batch, dt=None, tau=100, seed=None, T=None, **env_kwargs):
        owner = type(self).__name__
        if isinstance(env_or_name, str):
            ngym = import_neurogym()
            kwargs = dict(env_kwargs) if dt is None else dict(env_kwargs, dt=dt)
            try:
                env = ngym.make(env_or_name, **kwargs)
            except Exception as err:  # gymnasium raises its own errors for unknown ids / kwargs
                raise ParameterError(f"neurogym.make({env_or_name!r}, **{kwargs}) failed: {err}") from err
            self.env_name = env_or_name
        else:
            if env_kwargs:
                raise ParameterError(f"{owner}: env_kwargs {sorted(env_kwargs)} can only be used with an "
                                     f"environment name, not with an environment object.")
            env = env_or_name
            self.env_name = getattr(getattr(env, "spec", None), "id", None) or type(env).__name__
        base = getattr(env, "unwrapped", env)  # the TrialEnv: its ob, gt, seed and spaces
        for attr in ("new_trial", "seed", "dt", "action_space", "observation_space"):
            if not hasattr(base, attr):
                raise ParameterTypeError(f"{owner} needs a NeuroGym TrialEnv (with new_trial, seed, dt). "
                                         f"Got {type(base).__name__}, which has no {attr!r}.")
        if dt is not None and not isinstance(env_or_name, str) and float(dt) != float(base.dt):
            raise ParameterError(f"The 'dt' parameter of {owner} ({dt!r}) differs from the environment's "
                                 f"dt ({base.dt!r}); leave it out or make the env with dt={dt!r}.")
        n_actions = getattr(base.action_space, "n", None)
        if n_actions is None:
            raise ParameterError(f"{owner} needs a discrete action space (choices); "
                                 f"{self.env_name} has {base.action_space}.")
        self._env = base
        self._trial_env = _trial_layer(env)  # new_trial() goes through the trial wrappers (SideBias, ...)
        self.env_kwargs = dict(env_kwargs)
        dt = float(base.dt)
        super().__init__(int(np.prod(base.observation_space.shape)), int(n_actions), dt, tau,
                         dt if T is None else T, N_batch, seed=seed)
        if T is None:  # the longest of a few probe trials, from their own seed (not the task's stream)
            longest = max(len(self._trial(probe_seed)[1]) for probe_seed in range(N_PROBE_TRIALS))
            self.T = float(longest * dt)
            self.N_steps = longest

    # ---- one trial and one batch ------------------------------------------------------------------
    def _trial(self, seed=None):
        """Run ``env.new_trial()`` (after ``env.seed(seed)`` when given): ``(ob, gt, trial dict)``."""
        if seed is not None:
            self._env.seed(int(seed))
        trial = self._trial_env.new_trial()
        ob = np.asarray(self._env.ob, dtype=np.float64).reshape(-1, self.N_in)  # (L, N_in)
        gt = np.asarray(self._env.gt).astype(np.int64).reshape(-1)  # (L,)
        if gt.shape[0] != ob.shape[0]:
            raise ParameterError(f"{self.env_name}: env.gt has {gt.shape[0]} steps but env.ob has {ob.shape[0]}; "
                                 "NeurogymTask needs a ground-truth label per step.")
        return ob, gt, dict(trial or {})

    def generate_batch(self, rng: np.random.Generator | None = None):
        """One batch of ``N_batch`` trial-aligned trials.

        Returns
        -------
        x : (N_batch, N_steps, N_in).  y, mask : (N_batch, N_steps, N_out).
        trial_params : TrialParams, the object array of the trials' dicts (``env.trial``), length N_batch.
        """
        rng, own_stream = self._batch_rng(rng)
        self._env.seed(int(rng.integers(2**32)))  # the batch is a function of the task's stream
        trials = [self._trial() for _ in range(self.N_batch)]
        L = max(len(gt) for _, gt, _ in trials)
        if L > self.N_steps:
            logger.info("%s: a trial of %d steps is longer than N_steps=%d; N_steps grows.", self.env_name, L,
                        self.N_steps)
            self.N_steps, self.T = L, float(L * self.dt)
        B, L = self.N_batch, self.N_steps
        x = np.zeros((B, L, self.N_in))
        y = np.zeros((B, L, self.N_out))
        mask = np.zeros((B, L, self.N_out))
        trial_params = np.empty(B, dtype=object)
        for b, (ob, gt, info) in enumerate(trials):
            n = len(gt)
            if gt.min() < 0 or gt.max() >= self.N_out:
                raise ParameterError(f"{self.env_name}: ground truth {int(gt.max())} is not an action index "
                                     f"in [0, {self.N_out}).")
            x[b, :n] = ob
            y[b, np.arange(n), gt] = 1.0  # one-hot: 0 = fixate, k + 1 = choice k
            mask[b, :n] = 1.0  # padding after the trial is not trained
            trial_params[b] = dict(info, n_steps=n)
        if own_stream:
            self.batch_index += 1
        return (*self._checked(x, y, mask), trial_params.view(TrialParams))

    def accuracy_function(self, correct_output, test_output, output_mask):
        """Fraction of trials whose decision-period choice is right (see the module docstring).

        Parameters
        ----------
        correct_output, test_output, output_mask : (..., N_batch, N_steps, N_out)

        Returns
        -------
        float (or an array over leading network axes); NaN when no trial has a masked step.
        """
        y, z, m = np.asarray(correct_output), np.asarray(test_output), np.asarray(output_mask)
        on = m.max(axis=-1) > 0  # (..., B, T) steps inside the trial
        decision = on & (y[..., 1:].max(axis=-1) > 0) if y.shape[-1] > 1 else np.zeros_like(on)
        has_decision = decision.any(axis=-1, keepdims=True)  # (..., B, 1)
        steps = np.where(has_decision, decision, on)[..., None]  # catch trials: the whole trial
        n = np.maximum(steps.sum(axis=-2), 1)
        chosen = np.argmax((z * steps).sum(axis=-2) / n, axis=-1)  # (..., B)
        truth = np.argmax((y * steps).sum(axis=-2) / n, axis=-1)
        return fraction_of_scored(chosen == truth, on.any(axis=-1))  # a trial with no step is not scored

    def __repr__(self) -> str:
        return (f"NeurogymTask({self.env_name!r}, N_batch={self.N_batch}, dt={self.dt}, tau={self.tau!r}, "
                f"N_in={self.N_in}, N_out={self.N_out}, N_steps={self.N_steps})")
