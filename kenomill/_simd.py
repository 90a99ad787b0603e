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
from numba import types
from numba.extending import intrinsic

from kenomill._mc_kernels import ZIG_RATIO, ZIG_X, _mix64, normal, stream_key

#: lanes processed together (8 float64 = one AVX-512 register; two AVX2 registers)
BLOCK = 8

_LN2_HI = 6.93147180369123816490e-01  # ln 2 with its low 32 bits zero: n * _LN2_HI is exact
_LN2_LO = 1.90821492927058770002e-10
_INV_LN2 = 1.0 / math.log(2.0)
_SQRT2 = math.sqrt(2.0)
# 1 / k! for the Taylor polynomial of exp on |r| <= ln2 / 2 (truncation 0.347**14/14! ~ 4e-18)
_E = tuple(1.0 / math.factorial(k) for k in range(14))
_GAMMA = np.uint64(0x9E3779B97F4A7C15)
_TWO53 = 1.0 / 9007199254740992.0
_SUB = np.uint64(0xC2B2AE3D27D4EB4F)  # separates a normal's sub-stream key from draw keys


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


# ----------------------------------------------------------------- counter-based normals
@nb.njit(cache=True)
def _finish_normal(key, idx, r):
    # rejected fast-path candidate r of normal idx: the rest of ZIGNOR on its own sub-stream
    st = np.empty(1, np.uint64)
    st[0] = _mix64(key ^ _SUB) + np.uint64(idx) * _GAMMA
    st[0] = _mix64(st[0])
    j = int(r & np.uint64(127))
    u = 2.0 * (float(r >> np.uint64(11)) * _TWO53) - 1.0
    if j == 0:  # tail beyond ZIG_R (Marsaglia 1964), as Doornik's DRanNormalTail
        while True:
            s = st[0] + _GAMMA
            st[0] = s
            x = math.log(1.0 - float(_mix64(s) >> np.uint64(11)) * _TWO53) / ZIG_X[1]
            s = st[0] + _GAMMA
            st[0] = s
            y = math.log(1.0 - float(_mix64(s) >> np.uint64(11)) * _TWO53)
            if -2.0 * y >= x * x:
                return x - ZIG_X[1] if u < 0.0 else ZIG_X[1] - x
    x = u * ZIG_X[j]
    f0 = math.exp(-0.5 * (ZIG_X[j] * ZIG_X[j] - x * x))
    f1 = math.exp(-0.5 * (ZIG_X[j + 1] * ZIG_X[j + 1] - x * x))
    s = st[0] + _GAMMA
    st[0] = s
    if f1 + float(_mix64(s) >> np.uint64(11)) * _TWO53 * (f0 - f1) < 1.0:
        return x
    return normal(st)  # a fresh ziggurat normal from the sub-stream


@nb.njit(cache=True, error_model="numpy")
def normals_at(key, i0, out, flag):
    """Normals ``i0 .. i0 + len(out) - 1`` of the draw keyed ``key``: vector pass, scalar fix-up.

    ``flag`` is an int64 scratch block of the same length.
    """
    n = out.shape[0]
    for t in range(n):
        r = _mix64(key + (np.uint64(i0 + t) + np.uint64(1)) * _GAMMA)
        j = r & np.uint64(127)
        u = 2.0 * (float(r >> np.uint64(11)) * _TWO53) - 1.0
        out[t] = u * ZIG_X[j]
        flag[t] = 0 if abs(u) < ZIG_RATIO[j] else 1
    for t in range(n):
        if flag[t] != 0:
            r = _mix64(key + (np.uint64(i0 + t) + np.uint64(1)) * _GAMMA)
            out[t] = _finish_normal(key, np.uint64(i0 + t), r)


@nb.njit(cache=True, inline="always", error_model="numpy")
def normals_lanes(keys, idx, out, flag):
    """Normal number ``idx`` of each of a block of draws (keys[b]): the lock-step form."""
    n = keys.shape[0]
    ctr = (np.uint64(idx) + np.uint64(1)) * _GAMMA
    for b in range(n):
        r = _mix64(keys[b] + ctr)
        j = r & np.uint64(127)
        u = 2.0 * (float(r >> np.uint64(11)) * _TWO53) - 1.0
        out[b] = u * ZIG_X[j]
        flag[b] = 0 if abs(u) < ZIG_RATIO[j] else 1
    for b in range(n):
        if flag[b] != 0:
            r = _mix64(keys[b] + ctr)
            out[b] = _finish_normal(keys[b], np.uint64(idx), r)


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
    Returns a checksum so that nothing is optimised away.
    """
    nb_blocks = (n_draws + BLOCK - 1) // BLOCK
    total = 0.0
    for blk in nb.prange(nb_blocks):
        keys = np.empty(BLOCK, np.uint64)
        for b in range(BLOCK):
            keys[b] = stream_key(seed, blk * BLOCK + b, 2)
        z = np.empty(BLOCK)
        flag = np.empty(BLOCK, np.int64)
        e = np.empty(BLOCK)
        x = np.zeros(BLOCK)
        w = np.empty(BLOCK)
        a = np.full(BLOCK, 1.7)
        tmp = np.empty(BLOCK)
        acc = np.zeros(BLOCK)  # one sum per lane: a scalar sum would serialise the lanes
        i = 0
        for _t in range(n_steps):
            for _s in range(n_sources):
                for _c in range(4):
                    normals_lanes(keys, i, z, flag)
                    i += 1
                    for b in range(BLOCK):
                        x[b] = 0.9 * x[b] + 0.087 * z[b]
                    vexp(x, e)
                    for b in range(BLOCK):
                        acc[b] += e[b]
                for _c in range(2):
                    for b in range(BLOCK):
                        w[b] = 0.05 + 0.9 / (1.0 + e[b])
                    vpow(w, a, e, tmp)
                    for b in range(BLOCK):
                        acc[b] += e[b]
        total += acc.sum()
    return total
