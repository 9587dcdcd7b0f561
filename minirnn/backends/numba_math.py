"""Numba building blocks shared by the kernels: a caching ``njit``, and ``exp``, ``sigmoid``, ``tanh``
and ``softplus`` that vectorise.

Numba's ``np.exp`` / ``np.tanh`` call libm one number at a time (tanhf ~20 ns, expf ~7 ns on the
2-core machine), so a loop that calls them does not vectorise, while NumPy's own ufuncs are SIMD.
The versions below are branch-free, so LLVM vectorises the loops that call them (~1.2-1.5 ns per
float32 sigmoid or tanh), and they are within 3 ulp of the exact values, as NumPy's are
(softplus: 4; tests/test_backends_lstm.py).
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit as _numba_njit
from numba import types
from numba.extending import overload


def njit(**options):
    """``numba.njit(cache=True, ...)``, compiling without a cache where no cache directory is writable.

    Numba caches next to this file, or (read-only install) under ``~/.cache/numba`` or
    ``NUMBA_CACHE_DIR``; with none writable ``cache=True`` raises at import, which would make the
    backend unusable rather than just slower to start.
    """
    return lambda fn: cached(_numba_njit, options, fn)


def cached(decorator, options, fn):
    """``decorator(**options)(fn)``; without ``cache`` (and one warning) where Numba has nowhere to cache."""
    try:
        return decorator(**options)(fn)
    except RuntimeError:  # "cannot cache function ...: no locator available"
        _warn_no_cache()
        return decorator(**{k: v for k, v in options.items() if k != "cache"})(fn)


_warned_no_cache = []


def _warn_no_cache():
    if not _warned_no_cache:
        import warnings

        _warned_no_cache.append(True)
        warnings.warn("Numba has no writable folder to cache minirnn's compiled kernels in (the package folder and "
                      "~/.cache/numba are read-only), so every process compiles them again (about 20 s). Set "
                      "NUMBA_CACHE_DIR to a writable folder to keep them.", stacklevel=4)


def flush_if_sources_changed(namespace: dict, sources) -> bool:
    """Drop the cached machine code of the jitted functions in ``namespace`` when a file in ``sources``
    changed since it was cached; returns True when it did.

    Numba checks only the file that defines a cached function, not the modules whose functions it
    inlines (numba issue #1833): after an edit of this file or of ``nn/noise.py``'s constants the
    kernels would run their old code. A hash of ``sources`` is kept beside the cache.
    """
    import hashlib
    import os
    from pathlib import Path

    from numba.core.registry import CPUDispatcher

    dispatchers = [f for f in namespace.values() if isinstance(f, CPUDispatcher)]
    folder = next((getattr(f._cache, "cache_path", None) for f in dispatchers), None)
    if folder is None:
        return False
    digest = hashlib.sha256(b"".join(Path(path).read_bytes() for path in sorted(sources))).hexdigest()
    stamp = os.path.join(folder, f"{namespace['__name__'].rpartition('.')[2]}.sources.sha256")
    try:
        with open(stamp, encoding="utf-8") as fh:
            if fh.read().strip() == digest:
                return False
    except OSError:
        pass
    for f in dispatchers:
        f._cache.flush()
    try:
        os.makedirs(folder, exist_ok=True)
        with open(stamp, "w", encoding="utf-8") as fh:
            fh.write(digest)
    except OSError:  # a read-only cache: it is flushed each time, which is correct, only slower
        pass
    return True


# x = n ln2 + r with
# |r| <= ln2 / 2 (Cody-Waite), e^r - 1 by its Taylor polynomial (to r^7 in float32, r^13 in float64),
# 2^n from its exponent bits, x clamped so that 2^n stays a normal number (e^x then saturates at
# about 1e-38 / 1e38 in float32, 1e-308 / 1e308 in float64: sigmoid and tanh saturate long before).
# Within 3 ulp of the exact values, as NumPy's own (tests/test_backends_lstm.py).

LN2_HI, LN2_LO = 0.693145751953125, 1.42860682030941723212e-6  # ln 2 = LN2_HI + LN2_LO; n LN2_HI is exact
_EXP_FORMATS = {  # int type, mantissa bits, exponent bias, Taylor degree, clamp of x
    "float32": (np.int32, 23, 127, 7, (-87.0, 88.0)),
    "float64": (np.int64, 52, 1023, 13, (-708.0, 709.0)),
}


def _exp_parts(x):
    """``(2^n, e^r - 1)`` with ``x = n ln2 + r``, so that ``e^x = 2^n (1 + q)`` (the NumPy meaning;
    inside kernels, the branch-free implementation below for x's dtype)."""
    n = np.floor(x / np.log(2) + 0.5)
    return 2.0 ** n, np.expm1(x - n * np.log(2))


@overload(_exp_parts, jit_options={"error_model": "numpy"})
def _exp_parts_kernel(x):
    f = np.float32 if x == types.float32 else np.float64
    i, bits, bias, degree, (lo, hi) = _EXP_FORMATS[np.dtype(f).name]
    coefs = tuple(f(1 / math.factorial(k)) for k in range(degree, 0, -1))  # 1/degree!, ..., 1/1!
    lo, hi, log2e, ln2_hi, ln2_lo, half, zero = (f(v) for v in (lo, hi, 1 / np.log(2), LN2_HI, LN2_LO, 0.5, 0))
    bias = i(bias)

    def impl(x):
        x = min(max(x, lo), hi)
        n = np.floor(x * log2e + half)
        r = (x - n * ln2_hi) - n * ln2_lo
        q = zero
        for c in coefs:  # Horner: q = r (1 + r (1/2 + r (1/6 + ...))) = e^r - 1
            q = (q + c) * r
        return i((i(n) + bias) << bits).view(f), q  # 2^n: exponent field n + bias, mantissa 0

    return impl


@njit(cache=True, inline="always", error_model="numpy")
def _sigmoid(x, one):  # 1 / (1 + e^-x)
    s, q = _exp_parts(-x)
    return one / (one + (s + s * q))


@njit(cache=True, inline="always", error_model="numpy")
def _tanh(x, one):  # tanh|x| = -t / (2 + t) with t = e^(-2|x|) - 1, accurate near 0 too
    s, q = _exp_parts(-(abs(x) + abs(x)))
    t = s * q + (s - one)
    return np.copysign(-t / (one + one + t), x)


# log1p(t) for t in [0, 1] as 2 atanh(u), u = t / (2 + t) in [0, 1/3]: an odd series in u whose terms
# fall by 9x each, so a fixed polynomial (to u^15 in float32, u^33 in float64) is enough.
_ATANH_DEGREES = {"float32": 7, "float64": 16}  # terms u^(2k+1) / (2k+1) after the first


def _log1p_unit(t):
    """``log1p(t)`` for ``0 <= t <= 1`` (the NumPy meaning; inside kernels, the series below)."""
    return np.log1p(t)


@overload(_log1p_unit, jit_options={"error_model": "numpy"})
def _log1p_unit_kernel(t):
    f = np.float32 if t == types.float32 else np.float64
    coefs = tuple(f(1 / (2 * k + 1)) for k in range(_ATANH_DEGREES[np.dtype(f).name], 0, -1))
    one, two = f(1), f(2)

    def impl(t):
        u = t / (two + t)
        w = u * u
        p = w * coefs[0]
        for c in coefs[1:]:  # Horner: p = w (1/3 + w (1/5 + ...))
            p = (p + c) * w
        return (u + u) * (one + p)

    return impl


@njit(cache=True, inline="always", error_model="numpy")
def _softplus(x, one):  # log(1 + e^x) = max(x, 0) + log1p(e^-|x|), as np.logaddexp(x, 0)
    # Within 4 ulp of the exact value down to x = -87 (float32) / -708 (float64), where _exp_parts
    # clamps; below, 0 (the exact value is under 2e-38 / 4e-308 there).
    s, q = _exp_parts(-abs(x))
    zero = one - one
    t = s + s * q if abs(x) <= _softplus_edge(x) else zero
    return (x if x > zero else zero) + _log1p_unit(t)


def _softplus_edge(x):
    """The largest ``|x|`` for which ``_exp_parts(-|x|)`` is not clamped (NumPy meaning: no clamp)."""
    return np.inf


@overload(_softplus_edge)
def _softplus_edge_kernel(x):
    edge = -_EXP_FORMATS["float32" if x == types.float32 else "float64"][4][0]
    f = np.float32 if x == types.float32 else np.float64
    edge = f(edge)
    return lambda x: edge
