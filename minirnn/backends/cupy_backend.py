"""The CuPy backend: the NumPy reference code run on ``cupy`` arrays (DESIGN.md §6).

Weights, batches and optimizer state live on the device; ``to_host`` brings results back at the
edges (``test``, ``save``). The recurrent noise is made on the device (counter-based, see
:mod:`minirnn.nn.noise`: the same numbers as on the CPU, and no ~800 MB host block crossing the bus
per update at N_rec 1024, batch 1024). :mod:`.cupy_kernels` runs the two time loops and the noise
in a few launches, and :mod:`.cupy_update` a training step's objective and gradients with the
element-wise work inside those loops; everything else is the array-code reference on ``cupy`` arrays.
"""
from __future__ import annotations

import numpy as np

from . import Backend


def make_backend() -> Backend:
    import cupy

    def to_host(a):
        return cupy.asnumpy(a) if isinstance(a, cupy.ndarray) else np.asarray(a)

    from . import cupy_kernels, cupy_update

    kernels = dict(cupy_kernels.KERNELS)
    if cupy_update.ENABLED:
        kernels["rate_loss_and_grads"] = cupy_update.rate_loss_and_grads
    return Backend("cupy", xp=cupy, to_device=cupy.asarray, to_host=to_host, kernels=kernels)
