"""Undoing an update that diverged: copies taken before each update, put back when a loss turns NaN or inf.

A NaN or inf loss shows on the forward pass *after* the update that caused it, so the loop in
:mod:`minirnn.train.trainer` keeps, before each update, a copy of the weights and the optimizer
state (:class:`_LastGood`) and undoes that update when the next loss is not finite::

    loss, g = model._loss_and_grads(x, y, mask, noise)
    if not finite(loss): theta, state = saved; raise     # _undo_diverged_update (an ensemble: the
                                                         #   diverged networks only)
    ...
    saved = copy(theta, optimizer.state)                 # _LastGood.save, before the update
    theta -= delta * (1 - F)                             # the update (trainer._apply_update)

:func:`_raise_nonfinite` builds the :class:`~minirnn.errors.NonFiniteError` message for every such
case (a loss, a gradient, or a weight that would become NaN or inf): which networks of an ensemble
diverged, the last finite loss of the weights they keep, and what to try. The trainer decides when
to save, restore and raise; this module never imports the trainer.
"""
from __future__ import annotations

import numpy as np

from ..errors import NonFiniteError


def _raise_nonfinite(model, what, array, kept_loss, kept, advice="", no_loss="no finite loss yet"):
    """Raise NonFiniteError for ``what``, naming an ensemble's diverged networks (those whose entries of
    ``array``, shape (*lead, ...), are not all finite) and, for each, the loss of the weights it keeps
    (``kept_loss``: host float or (*lead,) array; None: there is none, ``no_loss`` says so); ``kept``
    says which weights those are."""
    networks = None
    if model.lead:
        finite = np.asarray(model.backend.to_host(model.xp.isfinite(array)))
        finite = finite.reshape(model.lead + (-1,)).all(axis=-1)
        networks = [int(k) for k in np.flatnonzero(~finite.ravel())]
        what += f" in network(s) {networks} of the ensemble"
        if kept_loss is not None:
            kept_loss = np.asarray(kept_loss).ravel()[networks]
    if kept_loss is None:
        last_text = no_loss
    elif np.ndim(kept_loss) == 0:
        last_text = f"last finite loss {float(kept_loss):.6g}"
    else:
        last_text = "last finite losses " + ", ".join(f"{float(v):.6g}" for v in kept_loss)
    raise NonFiniteError(f"{what} ({last_text}). {kept} {advice}".rstrip(), networks=networks)


class _LastGood:
    """The weights and optimizer state just before the latest update, so that it can be undone.

    :meth:`save` copies them (``copyto`` into buffers made at the first save: one copy per update,
    on the backend's device), after :meth:`Optimizer.prepare` has checked the update and made every
    state array it changes; :meth:`restore` writes them back, for every network or only for those of
    an ensemble flagged in ``networks`` (bools of shape ``lead``). An optimizer that had no state
    before the update is reset when the whole update is undone, so it is again as it was.
    """

    def __init__(self, model, optimizer):
        self.model, self.optimizer = model, optimizer
        self.raw = self.state = None
        self.had_no_state = False

    @property
    def saved(self) -> bool:
        return self.raw is not None

    def save(self, grads, active):
        xp = self.model.xp
        self.had_no_state = not self.optimizer.state_arrays()
        self.optimizer.prepare(grads, active)  # refuses a bad update before anything moves
        state = self.optimizer.state_arrays()
        if self.raw is None:
            self.raw = {name: xp.empty_like(a) for name, a in self.model.raw.items()}
        if self.state is None or self.state.keys() != state.keys():
            self.state = {key: xp.empty_like(a) for key, a in state.items()}
        for name, a in self.model.raw.items():
            xp.copyto(self.raw[name], a)
        for key, a in state.items():
            xp.copyto(self.state[key], a)

    def restore(self, networks=None):
        xp = self.model.xp
        for name, saved in self.raw.items():  # in place: views of model.raw stay valid
            target = self.model.raw[name]
            if networks is None:
                xp.copyto(target, saved)
            else:  # only the flagged networks: where= broadcasts the flags over each one's own axes
                xp.copyto(target, saved, where=networks.reshape(networks.shape + (1,) * (target.ndim - networks.ndim)))
        if networks is None and self.had_no_state:
            self.optimizer.reset()
        else:
            self.optimizer.load_state_arrays(self.state, networks)


def _first_loss_advice(model, trained_before) -> str:
    """What to check when the loss is NaN or inf before any update of this train() call: no update of
    the call has run, so its learning rate played no part; the loss itself comes out non-finite.
    ``trained_before``: an earlier call updated these weights (its last update may have diverged)."""
    dtype = None if getattr(model, "dtype", None) is None else np.dtype(model.dtype)
    largest = f" (the largest {dtype} is {np.finfo(dtype).max:.3g})" if dtype is not None and dtype.kind == "f" else ""
    advice = ("The loss is NaN or inf before any update of this call, so the learning rate played no part: the "
              "inputs, targets, mask weights or model parameters (tau, rec_noise, regularizer coefficients, weights) "
              f"give a non-finite loss. Check them, e.g. for values that overflow{largest}.")
    if trained_before:
        advice += (" Or the last update of an earlier train() call made these weights diverge: then try a smaller "
                   "learning_rate or clip_grads=True.")
    return advice


def _undo_diverged_update(model, value, history, last_good, checkpointer, update_index):
    """The loss at update ``update_index`` is not finite: the weights left by the previous update give
    it. Undo that update (for an ensemble, in the diverged networks only): weights and optimizer state
    back to the copies taken before it, whose loss is that update's recorded loss; a checkpoint written
    after it is not written (the one before stays). Then raise NonFiniteError."""
    advice = "Try a smaller learning_rate or clip_grads=True."
    what = f"loss became NaN or inf at update {update_index}"
    if not last_good.saved:  # the first update of this call: nothing of this call to undo
        kept = "The weights are those this train() call started with; nothing was undone."
        no_loss = "no finite loss yet" if not history["loss"] else "the weights this train() call started with give it"
        _raise_nonfinite(model, what, value, None, kept, _first_loss_advice(model, bool(history["loss"])),
                         no_loss=no_loss)
    xp = model.xp
    diverged = ~xp.isfinite(value)                                    # () or (*lead,)
    everyone = bool(diverged.all())
    last_good.restore(None if not model.lead or everyone else diverged)
    kept_loss = history["loss"][-1]  # the loss of the weights restored, measured at the undone update
    if everyone:  # the model is as after update_index - 2: drop the undone update's records too
        history["loss"].pop()
        undone = history["update"].pop()
        history["performance"][:] = [p for p in history.get("performance", []) if p[0] < undone]
    if checkpointer is not None:
        checkpointer.discard()
    kept = (f"Update {update_index - 1}, after which the loss is not finite, was undone"
            + (" for these networks" if model.lead and not everyone else "")
            + ": the weights and optimizer state are back to those before it, whose loss that was.")
    _raise_nonfinite(model, what, value, kept_loss, kept, advice)
