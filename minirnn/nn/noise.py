"""Recurrent noise: standard normals as a pure function of ``(key, element index)``.

One forward pass needs ``T * B * N_rec`` standard normals (1.28 million for the paper's batch).
NumPy's ``Generator.standard_normal`` draws them one after another from one stream, about 14 ns
each on a 2-core machine: more than the whole rest of a training update at N_rec = 50. A stream
also cannot be split: the numbers a kernel needs for trials 64-127 are known only after trials
0-63 have been drawn. So the noise is *counter-based* instead: element ``j`` of a network's
``(T, B, N_rec)`` block (C order) is

    xi_j = ziggurat(mix64(key + (j + 1) * GAMMA))

with ``mix64`` the SplitMix64 output function (Steele, Lea & Flood 2014) and Marsaglia & Tsang's
256-layer ziggurat (the one NumPy uses), one 64-bit word per element. ``key`` is one draw from
the model's noise Generator per forward pass (``draw_key``), so the Generators, their checkpointed
states and the seed contract of DESIGN.md §5 are unchanged; what changed is how a key becomes
normals. Consequences:

- any piece of the block can be computed on its own: a kernel makes its trials' noise inside the
  time loop, on any number of threads, and gets the same numbers;
- the NumPy code below, a Numba kernel and CuPy give equal noise. The accepted first try
  (98.8 % of elements) is integer compares and one float64 product: bit for bit equal
  everywhere. The rare rejection steps call ``exp``/``log1p``, whose last bit may differ between
  math libraries;
- the float32 noise is the float64 value rounded, so a float32 and a float64 model see the same
  noise up to rounding.

A rejected element retries with words from its own second stream (``key2``; the normal tail uses
a third, ``key3``), so retries never shift other elements. An element gives up after
``MAX_RETRIES`` rejections in a row (probability about 1e-60) and keeps its last candidate.

``gaussian_noise`` is the reference and runs on any array module (``xp``): the first try for
every element at once, then the few rejected ones as shrinking whole-array rounds.
"""
from __future__ import annotations

import math

import numpy as np

GAMMA = np.uint64(0x9E3779B97F4A7C15)  # SplitMix64's increment: 2^64 / golden ratio, odd
MIX1 = np.uint64(0xBF58476D1CE4E5B9)
MIX2 = np.uint64(0x94D049BB133111EB)
KEY2_SALT = np.uint64(0x5851F42D4C957F2D)  # derive the retry and tail streams' keys from the key
KEY3_SALT = np.uint64(0x14057B7EF767814F)
MAX_RETRIES = 32  # words one element may take from its retry stream (and pairs from its tail stream)

_S30, _S27, _S31 = np.uint64(30), np.uint64(27), np.uint64(31)


def mix64(z):
    """SplitMix64's output function on uint64 scalars or arrays (wrapping arithmetic)."""
    z = (z ^ (z >> _S30)) * MIX1
    z = (z ^ (z >> _S27)) * MIX2
    return z ^ (z >> _S31)


def _ziggurat_tables(n_layers=256, r=3.6541528853610088, v=4.92867323399e-3):
    """Marsaglia & Tsang's tables for ``n_layers`` layers of area ``v``, base strip edge ``r``.

    ``ki[i]``: below this 52-bit integer a candidate of layer ``i`` is accepted outright;
    ``wi[i]``: the layer's width over 2^52 (candidate = integer * wi); ``fi[i] = exp(-x_i^2 / 2)``.
    """
    m1 = 2.0 ** 52
    f = lambda x: math.exp(-0.5 * x * x)  # noqa: E731
    ki = np.zeros(n_layers, np.uint64)
    wi = np.zeros(n_layers)
    fi = np.zeros(n_layers)
    dn = tn = r
    q = v / f(dn)
    ki[0] = int(dn / q * m1)
    wi[0], wi[-1] = q / m1, dn / m1
    fi[0], fi[-1] = 1.0, f(dn)
    for i in range(n_layers - 2, 0, -1):
        dn = math.sqrt(-2.0 * math.log(v / dn + f(dn)))
        ki[i + 1] = int(dn / tn * m1)
        tn = dn
        fi[i], wi[i] = f(dn), dn / m1
    return ki, wi, fi


ZIG_R = 3.6541528853610088
ZIG_KI, ZIG_WI, ZIG_FI = _ziggurat_tables(r=ZIG_R)
_TWO53 = 2.0 ** -53


def draw_key(rng) -> np.uint64:
    """One noise key from ``rng`` (a ``numpy.random.Generator``): one 64-bit draw per forward pass."""
    return rng.integers(0, 2 ** 64, dtype=np.uint64)


def stream_keys(key):
    """``(key, key2, key3)``: the first-try, retry and tail streams' keys of one noise key."""
    keys = np.full(3, key, np.uint64) ^ np.array([0, KEY2_SALT, KEY3_SALT], np.uint64)
    keys[1:] = mix64(keys[1:])  # arrays: wrapping uint64 arithmetic without overflow warnings
    return keys[0], keys[1], keys[2]


def _word(key, counter):
    # the counter-th word of the stream ``key``: SplitMix64 started at ``key``
    return mix64(key + (counter + np.uint64(1)) * GAMMA)


def _first_words(xp, key, j):
    """``_word(key, j)`` for a uint64 array ``j``, in place (the hot loop of the NumPy reference)."""
    z = j + np.uint64(1)
    z *= GAMMA
    z += key
    t = z >> _S30
    for mult, shift in ((MIX1, _S27), (MIX2, _S31)):
        z ^= t
        z *= mult
        xp.right_shift(z, shift, out=t)
    z ^= t
    return z


# Bits 0-8 of a word pick the layer and the sign together: SIGNED_WI[i] = +wi[i], SIGNED_WI[256 + i] = -wi[i].
SIGNED_WI = np.concatenate([ZIG_WI, -ZIG_WI])
SIGNED_KI = np.concatenate([ZIG_KI, ZIG_KI])


def _candidate(xp, word):
    """A ziggurat candidate from one 64-bit word: layer (bits 0-7), sign (bit 8), a 52-bit magnitude
    ``rabs`` (bits 12-63). Returns ``(layer, signed x = ±rabs * wi[layer], accepted outright: rabs <
    ki[layer])``."""
    i9 = (word & np.uint64(0x1FF)).astype(np.intp)
    rabs = word >> np.uint64(12)
    x = rabs.astype(np.float64)
    x *= xp.asarray(SIGNED_WI)[i9]
    return i9 & 0xFF, x, rabs < xp.asarray(SIGNED_KI)[i9]


def _uniform(word):
    """[0, 1) from a word's top 53 bits."""
    return (word >> np.uint64(11)).astype(np.float64) * _TWO53


CHUNK = 1 << 15  # first tries per NumPy pass: arrays that stay in cache (3x faster than whole-block passes)


def gaussian_noise(key, shape, dtype=np.float64, xp=np):
    """Standard normals of ``shape`` (the ``(T, B, N_rec)`` block of one network) from ``key``.

    ``key``: a uint64 (``draw_key``). Returns an ``xp`` array of ``dtype``, C order; element ``j``
    of the flattened block depends only on ``(key, j)``.
    """
    shape = (shape,) if np.ndim(shape) == 0 else tuple(shape)
    n = int(np.prod(shape, dtype=np.int64))
    key, key2, key3 = stream_keys(key)
    out = xp.empty(n, np.float64)
    pending = []
    chunk = CHUNK if xp is np else max(n, 1)
    for start in range(0, n, chunk):
        stop = min(start + chunk, n)
        _, x, done = _candidate(xp, _first_words(xp, key, xp.arange(start, stop, dtype=np.uint64)))
        out[start:stop] = x
        pending.append(xp.nonzero(~done)[0] + start)
    pending = xp.concatenate(pending) if pending else xp.zeros(0, np.intp)
    fi = xp.asarray(ZIG_FI)
    # rejected first tries: round a takes word 2a (a new candidate from round 1 on) and word 2a+1
    # (the wedge's uniform) of the element's retry stream; layer 0 leaves for the tail instead.
    for a in range(MAX_RETRIES):
        if pending.size == 0:
            break
        base = pending.astype(np.uint64) * np.uint64(2 * MAX_RETRIES + 2)
        if a > 0:
            layer, x_p, done_p = _candidate(xp, _word(key2, base + np.uint64(2 * a)))
            out[pending] = x_p
        else:
            x_p = out[pending]
            layer = (_first_words(xp, key, pending.astype(np.uint64)) & np.uint64(0xFF)).astype(np.intp)
            done_p = xp.zeros(pending.size, bool)
        in_tail = (layer == 0) & ~done_p
        in_wedge = (layer > 0) & ~done_p
        # wedge: y uniform between fi[layer] and fi[layer - 1]; accept when y < exp(-x^2 / 2)
        u = _uniform(_word(key2, base + np.uint64(2 * a + 1)))
        i_w = xp.where(in_wedge, layer, 1)
        y = (fi[i_w - 1] - fi[i_w]) * u + fi[i_w]
        done_p = done_p | (in_wedge & (y < xp.exp(-0.5 * x_p * x_p)))
        if bool(in_tail.any()):
            tail = pending[in_tail]
            out[tail] = xp.copysign(_normal_tail(xp, key3, tail.astype(np.uint64)), out[tail])
            done_p = done_p | in_tail
        pending = pending[~done_p]
    return out.astype(dtype, copy=False).reshape(shape)


def _normal_tail(xp, key3, j):
    """Marsaglia's tail method for ``|x| > r``, pair m from words 2m, 2m+1 of the tail stream."""
    out = xp.full(j.shape, ZIG_R + 0.0)
    pending = xp.arange(j.size)
    base = j * np.uint64(2 * MAX_RETRIES + 2)
    for m in range(MAX_RETRIES):
        if pending.size == 0:
            break
        b = base[pending]
        xx = -xp.log1p(-_uniform(_word(key3, b + np.uint64(2 * m)))) / ZIG_R
        yy = -xp.log1p(-_uniform(_word(key3, b + np.uint64(2 * m + 1))))
        out[pending] = ZIG_R + xx
        pending = pending[~(yy + yy > xx * xx)]
    return out
