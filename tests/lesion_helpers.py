"""A counting lesion for the reference time loops' tests (dynamics/rate.py and dynamics/lstm.py): how
often a loop reads a step's mask."""
from minirnn.simulate import StepMasks


class CountingMasks:
    """A :class:`minirnn.simulate.StepMasks` that counts the steps whose mask the time loop reads."""

    def __init__(self, masks, index):
        self.step_masks, self.reads = StepMasks(masks, index), 0
        self.masks, self.index = self.step_masks.masks, self.step_masks.index

    def __getitem__(self, k):
        self.reads += 1
        return self.step_masks[k]


class Lesion:
    """A perturbation that only masks the recurrent weights (``W_mask``)."""

    def __init__(self, W_mask):
        self.W_mask = W_mask
