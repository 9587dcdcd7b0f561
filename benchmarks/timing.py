"""The one timing helper the small benchmark scripts share (``from timing import median_ms``)."""
from __future__ import annotations

import time

import numpy as np


def median_ms(f, n=30, sync=None):
    """Median wall time of ``f()`` in ms over ``n`` calls after one warm-up call. ``sync``: called after
    each call and inside the timing (a device synchronisation, so that queued GPU work is counted)."""
    def call():
        f()
        if sync is not None:
            sync()

    call()
    times = []
    for _ in range(n):
        t = time.perf_counter()
        call()
        times.append(time.perf_counter() - t)
    return 1e3 * float(np.median(times))
