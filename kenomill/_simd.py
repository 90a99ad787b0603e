"""Vector math and counter-based normals in plain numba arithmetic (issue 14, Deliver 2).

numba compiles ``math.exp`` and ``x ** a`` to calls into the scalar C library (4.3 and
11 ns here), and Intel's SVML, through which LLVM would vectorise them, is not available
with the llvmlite wheel installed (``numba -s``: "SVML Operational: False"). The
functions here are written so that LLVM vectorises the loop over a block of values:
straight-line arithmetic, no calls, no branches except clamps (``min``/``max``), and the
power-of-two scaling done on the integer bits of an ``int64`` view of the block.

* :func:`vexp`: Cody-Waite reduction ``x = n ln2 + r`` (|r| <= ln2 / 2, ln2 split in a
  part exact in 32 bits and the rest), Taylor polynomial of degree 13 (truncation below
  5e-18), ``2**n`` built in the exponent bits. Relative error below 1e-15 on
  [-708, 709]; 0 below -745 (no subnormals), ``inf`` above 709.78.
* :func:`vlog`: ``x = m 2**e`` with ``m`` in [sqrt(1/2), sqrt(2)) from the bits,
  ``log m = 2 atanh(s)``, ``s = (m - 1) / (m + 1)`` (|s| <= 0.172, odd series to s**23).
  For positive normal ``x``; relative error below 1e-15 away from 1, absolute below
  3e-17 near 1.
* :func:`vpow`: ``exp(a log x)`` for ``x > 0``; relative error ~ 1e-16 (1 + |a log x|).

Normals keyed by ``(seed, draw, i)``: word ``i`` of the draw's SplitMix64 stream is
``mix64(key + (i + 1) GAMMA)``, computable without the words before it, so a block of
draws or of indices is filled in any order, by any thread or Dask worker, with the same
bits. Each normal starts from its own word with the ZIGNOR ziggurat's fast path (Doornik
2005; 128 blocks: ``|u| < x[i+1]/x[i]`` accepts ~ 98.8 % of candidates, no gather-free
rejection needed in the vector loop); the few rejected candidates finish the ziggurat
(wedge or tail test, then fresh candidates) in a scalar pass on their own SplitMix64
sub-stream keyed by ``(key, i)``: the same numbers whatever the block, chunk or thread.

:func:`simd_floor` is the microbenchmark of issue 14's SIMD floor: the random numbers
and transcendentals one draw-step of the reference workload needs (12 normals, 12
``exp``, 6 ``pow``), vectorised over blocks of draws and parallel over blocks.
"""

from __future__ import annotations

import math

import numba as nb
import numpy as np
from llvmlite import ir
from numba import types
from numba.extending import intrinsic

#: lanes processed together: 64 float64 = eight 512-bit vectors per lane loop, enough independent
#: work to hide the latency of the exp/pow polynomials and the hash multiplies (8 lanes were
#: latency-bound: 231 -> 183 ns per draw-step with 16; where LLVM vectorises at 8 doubles, as on
#: AMD Zen 5, 16 lanes are only two vectors: 64 measured faster, see benchmarks/README.md); at
#: most 64, the bits of one uint64 (:func:`normals_lanes`)
BLOCK = 64

_LN2_HI = 6.93147180369123816490e-01  # ln 2 with its low 32 bits zero: n * _LN2_HI is exact
_LN2_LO = 1.90821492927058770002e-10
_INV_LN2 = 1.0 / math.log(2.0)
_SQRT2 = math.sqrt(2.0)
# 1 / k! for the Taylor polynomial of exp on |r| <= ln2 / 2 (truncation 0.347**14/14! ~ 4e-18)
_E = tuple(1.0 / math.factorial(k) for k in range(14))
_GAMMA = np.uint64(0x9E3779B97F4A7C15)
_TWO53 = 1.0 / 9007199254740992.0
_SUB = np.uint64(0xC2B2AE3D27D4EB4F)  # separates a normal's sub-stream key from draw keys


# ----------------------------------------------------------------- SplitMix64 and ZIGNOR
# (the Monte Carlo kernel's generators: kenomill._mc_kernels re-exports these names)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_MASK = (1 << 64) - 1


def _zig_tables(c: int = 128, r: float = 3.442619855899, v: float = 9.91256303526217e-3):
    """ZIGNOR block edges x[0..c] and ratios x[i+1]/x[i] (Doornik 2005, zigNorInit)."""
    x = np.zeros(c + 1)
    f = math.exp(-0.5 * r * r)
    x[0] = v / f
    x[1] = r
    for i in range(2, c):
        x[i] = math.sqrt(-2.0 * math.log(v / x[i - 1] + f))
        f = math.exp(-0.5 * x[i] * x[i])
    x[c] = 0.0
    return x, x[1:] / x[:-1]


ZIG_X, ZIG_RATIO = _zig_tables()
ZIG_R = 3.442619855899

if nb.config.DISABLE_JIT:
    # Pure-Python run (NUMBA_DISABLE_JIT=1): NumPy scalars warn on uint64 wrap-around, which
    # the test suite turns into errors; Python ints masked to 64 bits give the same values.
    def _mix64(z):
        z = int(z)
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK
        return np.uint64(z ^ (z >> 31))

    def stream_key(seed, draw, stream):
        k = int(_mix64((int(seed) + 0x9E3779B97F4A7C15) & _MASK))
        k = int(_mix64((k + (int(draw) + 1) * 0xD1B54A32D192ED03) & _MASK))
        return _mix64((k + (int(stream) + 1) * 0x9E3779B97F4A7C15) & _MASK)

    def _next_u64(st):
        s = (int(st[0]) + 0x9E3779B97F4A7C15) & _MASK
        st[0] = np.uint64(s)
        return _mix64(s)

    def word(key, i):
        return _mix64((int(key) + (int(i) + 1) * 0x9E3779B97F4A7C15) & _MASK)

    def _sub_state(key, i):
        return _mix64((int(_mix64(int(key) ^ 0xC2B2AE3D27D4EB4F)) + int(i) * 0x9E3779B97F4A7C15) & _MASK)

    def _i2f(v):
        return float(np.array(int(v), dtype=np.int64).view(np.float64))

    def _f2i(v):
        return int(np.array(float(v), dtype=np.float64).view(np.int64))

    def _ctz(v):
        v = int(v)
        return (v & -v).bit_length() - 1

else:

    @nb.njit(cache=True, inline="always")
    def _mix64(z):
        z = (z ^ (z >> np.uint64(30))) * _M1
        z = (z ^ (z >> np.uint64(27))) * _M2
        return z ^ (z >> np.uint64(31))

    @nb.njit(cache=True)
    def stream_key(seed, draw, stream):
        """64-bit key of stream ``stream`` of draw ``draw`` under ``seed``."""
        k = _mix64(np.uint64(seed) + _GAMMA)
        k = _mix64(k + (np.uint64(draw) + np.uint64(1)) * np.uint64(0xD1B54A32D192ED03))
        return _mix64(k + (np.uint64(stream) + np.uint64(1)) * _GAMMA)

    @nb.njit(cache=True, inline="always")
    def _next_u64(st):
        s = st[0] + _GAMMA
        st[0] = s
        return _mix64(s)

    @nb.njit(cache=True, inline="always")
    def word(key, i):
        """Word ``i`` (0, 1, ...) of the SplitMix64 stream keyed ``key``, without the words before it."""
        return _mix64(key + (np.uint64(i) + np.uint64(1)) * _GAMMA)

    @nb.njit(cache=True, inline="always")
    def _sub_state(key, i):
        # start of the sub-stream that finishes a rejected candidate of normal i
        return _mix64(_mix64(key ^ _SUB) + np.uint64(i) * _GAMMA)

    @intrinsic
    def _i2f(typingctx, v):
        """The float64 whose bits are the int64 ``v`` (an LLVM bitcast, vectorisable)."""
        sig = types.float64(types.int64)

        def codegen(context, builder, signature, args):
            return builder.bitcast(args[0], context.get_value_type(types.float64))

        return sig, codegen

    @intrinsic
    def _f2i(typingctx, v):
        """The int64 bits of the float64 ``v``."""
        sig = types.int64(types.float64)

        def codegen(context, builder, signature, args):
            return builder.bitcast(args[0], context.get_value_type(types.int64))

        return sig, codegen

    @intrinsic
    def _ctz(typingctx, v):
        """Index of the lowest set bit of the uint64 ``v`` (``v != 0``)."""
        sig = types.int64(types.uint64)

        def codegen(context, builder, signature, args):
            return builder.cttz(args[0], ir.Constant(ir.IntType(1), 1))

        return sig, codegen


@nb.njit(cache=True, inline="always")
def uniform(st):
    """Uniform on [0, 1) with 53 random bits from stream state ``st[1]`` (uint64)."""
    return float(_next_u64(st) >> np.uint64(11)) * _TWO53


@nb.njit(cache=True, inline="always")
def uniform_at(key, i):
    """Uniform ``i`` of the stream keyed ``key``: the same number as the ``i+1``-th :func:`uniform`."""
    return float(word(key, i) >> np.uint64(11)) * _TWO53


@nb.njit(cache=True)
def normal(st):
    """Standard normal from stream state ``st[1]`` (ZIGNOR ziggurat, Doornik 2005), sequential:
    :func:`_normal_from` the state, which then moves past the numbers it read."""
    z, c = _normal_from(st[0], 0)
    for _ in range(c):
        _next_u64(st)
    return z


@nb.njit(cache=True, inline="always", fastmath={"contract"}, error_model="numpy")
def exp1(x):
    """exp(x) in straight-line arithmetic (see :func:`vexp`)."""
    xi = min(max(x, -745.2), 709.79)
    k = math.floor(xi * _INV_LN2 + 0.5)
    r = (xi - k * _LN2_HI) - k * _LN2_LO
    p = _E[13]
    p = p * r + _E[12]
    p = p * r + _E[11]
    p = p * r + _E[10]
    p = p * r + _E[9]
    p = p * r + _E[8]
    p = p * r + _E[7]
    p = p * r + _E[6]
    p = p * r + _E[5]
    p = p * r + _E[4]
    p = p * r + _E[3]
    p = p * r + _E[2]
    p = p * r + 1.0
    p = p * r + 1.0
    # 2**k as two factors so that k from -1075 to 1024 stays representable
    ki = np.int64(k)
    k1 = ki >> 1
    k2 = ki - k1
    v = p * _i2f((k1 + 1023) << 52) * _i2f(max(k2 + 1023, 0) << 52)
    return v if xi > -745.1 else 0.0


@nb.njit(cache=True, inline="always", fastmath={"contract"}, error_model="numpy")
def log1(x):
    """log(x) for positive normal x in straight-line arithmetic (see :func:`vlog`)."""
    b = _f2i(x)
    e = ((b >> 52) & 0x7FF) - 1023
    m = _i2f((b & 0x000FFFFFFFFFFFFF) | 0x3FF0000000000000)
    big = m > _SQRT2
    m = m * 0.5 if big else m
    ef = float(e + 1) if big else float(e)
    s = (m - 1.0) / (m + 1.0)
    s2 = s * s
    q = 1.0 / 23.0
    q = q * s2 + 1.0 / 21.0
    q = q * s2 + 1.0 / 19.0
    q = q * s2 + 1.0 / 17.0
    q = q * s2 + 1.0 / 15.0
    q = q * s2 + 1.0 / 13.0
    q = q * s2 + 1.0 / 11.0
    q = q * s2 + 1.0 / 9.0
    q = q * s2 + 1.0 / 7.0
    q = q * s2 + 1.0 / 5.0
    q = q * s2 + 1.0 / 3.0
    # 2 s + 2 s^3 q: the leading term kept apart for accuracy near m = 1
    return ef * _LN2_HI + (2.0 * s + (2.0 * s * s2 * q + ef * _LN2_LO))


@nb.njit(cache=True, inline="always", fastmath={"contract"}, error_model="numpy")
def log1p1(x):
    """log(1 + x) for x > -1 in straight-line arithmetic: ``log1(u) x / (u - 1)`` with u = 1 + x
    rounded (Goldberg 1991, theorem 4), so small x keep their relative accuracy; x itself
    where u rounds to 1. Replaces libm's ``log1p`` in the kernel's downtime process."""
    u = 1.0 + x
    return x if u == 1.0 else log1(u) * (x / (u - 1.0))


@nb.njit(cache=True, inline="always", fastmath={"contract"}, error_model="numpy")
def vexp(x, out):
    """``out[i] = exp(x[i])`` over a contiguous block (float64)."""
    for i in range(x.shape[0]):
        out[i] = exp1(x[i])


@nb.njit(cache=True, inline="always", fastmath={"contract"}, error_model="numpy")
def vlog(x, out):
    """``out[i] = log(x[i])`` for positive normal float64 values over a contiguous block."""
    for i in range(x.shape[0]):
        out[i] = log1(x[i])


@nb.njit(cache=True, inline="always", fastmath={"contract"}, error_model="numpy")
def vpow(x, a, out, tmp):
    """``out[i] = x[i] ** a[i]`` for ``x > 0`` as ``exp(a log x)``; ``tmp`` is a scratch block."""
    vlog(x, tmp)
    for i in range(x.shape[0]):
        tmp[i] *= a[i]
    vexp(tmp, out)


@nb.njit(cache=True, inline="always", fastmath={"contract"}, error_model="numpy")
def pow1(x, a):
    """``x ** a`` for ``x > 0`` as ``exp(a log x)`` (see :func:`vpow`); 0 for ``x <= 0``."""
    return exp1(a * log1(x)) if x > 0.0 else 0.0


# ----------------------------------------------------------------- counter-based normals
@nb.njit(cache=True, inline="always")
def _sub_uniform(sub, c):
    # uniform c of the sub-stream started at state sub: the (c + 1)-th uniform(st) from st[0] = sub
    return float(word(sub, c) >> np.uint64(11)) * _TWO53


@nb.njit(cache=True, error_model="numpy")
def _tail_from(sub, c, negative):
    """The tail beyond ZIG_R (Marsaglia 1964, as Doornik's DRanNormalTail) from number ``c`` of
    the stream at state ``sub``: (value, the next number's index)."""
    while True:
        x = math.log(1.0 - _sub_uniform(sub, c)) / ZIG_R
        y = math.log(1.0 - _sub_uniform(sub, c + 1))
        c += 2
        if -2.0 * y >= x * x:
            return (x - ZIG_R if negative else ZIG_R - x), c


@nb.njit(cache=True, error_model="numpy")
def _normal_from(sub, c):
    """A ZIGNOR normal from number ``c`` of the stream at state ``sub`` (its numbers are
    ``word(sub, c)``, c = 0, 1, ...: the same as :func:`uniform` on ``st[0] = sub``):
    (value, the next number's index)."""
    while True:
        r = word(sub, c)
        c += 1
        i = int(r & np.uint64(127))
        u = 2.0 * (float(r >> np.uint64(11)) * _TWO53) - 1.0
        if abs(u) < ZIG_RATIO[i]:
            return u * ZIG_X[i], c
        if i == 0:
            return _tail_from(sub, c, u < 0.0)
        x = u * ZIG_X[i]
        f0 = math.exp(-0.5 * (ZIG_X[i] * ZIG_X[i] - x * x))
        f1 = math.exp(-0.5 * (ZIG_X[i + 1] * ZIG_X[i + 1] - x * x))
        v = _sub_uniform(sub, c)
        c += 1
        if f1 + v * (f0 - f1) < 1.0:
            return x, c


@nb.njit(cache=True, error_model="numpy")
def _finish_normal(key, idx, r):
    # rejected fast-path candidate r of normal idx: the rest of ZIGNOR on its own sub-stream
    # (counter-based: no state array per candidate)
    sub = _sub_state(key, idx)
    j = int(r & np.uint64(127))
    u = 2.0 * (float(r >> np.uint64(11)) * _TWO53) - 1.0
    if j == 0:
        return _tail_from(sub, 0, u < 0.0)[0]
    x = u * ZIG_X[j]
    f0 = math.exp(-0.5 * (ZIG_X[j] * ZIG_X[j] - x * x))
    f1 = math.exp(-0.5 * (ZIG_X[j + 1] * ZIG_X[j + 1] - x * x))
    if f1 + _sub_uniform(sub, 0) * (f0 - f1) < 1.0:
        return x
    return _normal_from(sub, 1)[0]  # a fresh ziggurat normal from the sub-stream


@nb.njit(cache=True, inline="always", error_model="numpy")
def normal_at(key, i):
    """Normal ``i`` of the draw keyed ``key`` (one value of :func:`normals_at`)."""
    r = word(key, i)
    j = r & np.uint64(127)
    u = 2.0 * (float(r >> np.uint64(11)) * _TWO53) - 1.0
    if abs(u) < ZIG_RATIO[j]:
        return u * ZIG_X[j]
    return _finish_normal(key, i, r)


@nb.njit(cache=True, error_model="numpy")
def normals_at(key, i0, out, flag):
    """Normals ``i0 .. i0 + len(out) - 1`` of the draw keyed ``key``: vector pass, scalar fix-up.

    ``flag`` is an int64 scratch block of the same length.
    """
    n = out.shape[0]
    for t in range(n):
        r = word(key, i0 + t)
        j = r & np.uint64(127)
        u = 2.0 * (float(r >> np.uint64(11)) * _TWO53) - 1.0
        out[t] = u * ZIG_X[j]
        flag[t] = 0 if abs(u) < ZIG_RATIO[j] else 1
    for t in range(n):
        if flag[t] != 0:
            out[t] = _finish_normal(key, i0 + t, word(key, i0 + t))


@nb.njit(cache=True, inline="always", error_model="numpy")
def normals_lanes(n, keys, idx, out, row, flag):
    """Normal number ``idx`` of each of the first ``n`` draws of a block (keys[b]) into
    ``out[row, b]``: the lock-step form (a row of a 2-D block, so that no view is made per call).

    ``n <= 64``: the rejected lanes are the set bits of one uint64, which the scalar pass
    visits lowest first (``flag`` is not used).
    """
    rejected = np.uint64(0)
    for b in range(n):
        r = word(keys[b], idx)
        j = r & np.uint64(127)
        u = 2.0 * (float(r >> np.uint64(11)) * _TWO53) - 1.0
        out[row, b] = u * ZIG_X[j]
        rejected |= np.uint64(0 if abs(u) < ZIG_RATIO[j] else 1) << np.uint64(b)
    while rejected != np.uint64(0):  # 1 - 0.988**n of the calls (n lanes) have any
        b = _ctz(rejected)
        rejected &= rejected - np.uint64(1)
        out[row, b] = _finish_normal(keys[b], idx, word(keys[b], idx))


@nb.njit("void(u8, i8, f8[:, ::1])", cache=True, parallel=True)
def fill_normals(seed, draw0, z):
    """``z[d, i]`` = normal ``i`` of draw ``draw0 + d`` (stream 2 of the draw's keys)."""
    for d in nb.prange(z.shape[0]):
        key = stream_key(seed, draw0 + np.int64(d), 2)
        flag = np.empty(z.shape[1], np.int64)
        normals_at(key, 0, z[d], flag)


@nb.njit("f8(u8, i8, i8, i8)", cache=True, parallel=True, fastmath={"contract"}, error_model="numpy")
def simd_floor(seed, n_draws, n_steps, n_sources):
    """The vectorised random numbers and transcendentals of ``n_draws x n_steps`` draw-steps.

    Per draw-step and source, as the kernel needs them: 4 normals (3 grade innovations,
    1 tonnage), 4 ``exp`` (3 lognormal grades, 1 lognormal tonnage) and 2 ``pow`` (the
    silver terms ``1 - (1 - R)**a``), over blocks of :data:`BLOCK` draws in lock-step.
    Returns a checksum so that nothing is optimised away. The lane loops run to a lane count
    known only at run time, as the kernel's: LLVM does not vectorise a loop of a constant 8
    iterations that needs run-time alias checks ("tiny trip count"), which kept an earlier
    version of this floor scalar.
    """
    nb_blocks = (n_draws + BLOCK - 1) // BLOCK
    total = 0.0
    for blk in nb.prange(nb_blocks):
        nl = min(BLOCK, n_draws - blk * BLOCK)
        keys = np.empty(BLOCK, np.uint64)
        for b in range(BLOCK):
            keys[b] = stream_key(seed, blk * BLOCK + b, 2)
        z = np.empty((1, BLOCK))
        flag = np.empty(BLOCK, np.int64)
        e = np.empty(BLOCK)
        x = np.zeros(BLOCK)
        acc = np.zeros(BLOCK)  # one sum per lane: a scalar sum would serialise the lanes
        i = 0
        for _t in range(n_steps):
            for _s in range(n_sources):
                for _c in range(4):
                    normals_lanes(nl, keys, i, z, 0, flag)
                    i += 1
                    for b in range(nl):
                        x[b] = 0.9 * x[b] + 0.087 * z[0, b]
                        e[b] = exp1(x[b])
                        acc[b] += e[b]
                for _c in range(2):
                    for b in range(nl):
                        e[b] = pow1(0.05 + 0.9 / (1.0 + e[b]), 1.7)
                        acc[b] += e[b]
        total += acc[:nl].sum()
    return total
