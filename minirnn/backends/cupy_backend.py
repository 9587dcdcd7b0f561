"""The CuPy backend: the NumPy reference code run on ``cupy`` arrays (DESIGN.md §6).

Weights, batches and optimizer state live on the device; ``to_host`` brings results back at the
edges (``test``, ``save``). Training noise is drawn on the device from a CuPy generator seeded
from the model's own noise stream, so no ~800 MB host block crosses the bus per update. The
recurrence itself is the array-code reference of :mod:`minirnn.dynamics.rate`.
"""
from __future__ import annotations

import numpy as np

from . import Backend


def make_backend() -> Backend:
    import cupy

    def standard_normal(rng, shape, dtype):
        """Device normals, reproducible from the host Generator ``rng`` (one 64-bit seed drawn from it)."""
        seed = int(rng.integers(2**63 - 1))
        return cupy.random.Generator(cupy.random.XORWOW(seed)).standard_normal(shape, dtype=dtype) \
            if hasattr(cupy.random, "XORWOW") else cupy.random.RandomState(seed).standard_normal(shape, dtype=dtype)

    return Backend("cupy", xp=cupy, to_device=cupy.asarray, to_host=lambda a: cupy.asnumpy(a) if isinstance(a, cupy.ndarray) else np.asarray(a),
                   kernels={"standard_normal": standard_normal})
