"""NumPy reference of the Monte Carlo kernel :func:`kenomill._mc_kernels.simulate`.

Written as a good NumPy user would: vectorised over draws, a Python loop over steps and
over the (few) sources. Same arguments, same outputs, same random streams (counter-based
SplitMix64 keyed per draw and the ZIGNOR ziggurat's fast path, here on uint64 arrays, the
~1.2 % rejected candidates finished one by one in Python), so kernel and reference agree
to rounding (the kernel's vector exp and pow and its fused multiply-adds differ from NumPy
by ~1e-16 per operation; 3.5e-15 relative at most in the outputs of 16 draws of the
reference workload): it is the test oracle of the kernel and the baseline of the
benchmarks (issue 6). The mill response is
the NumPy reference of :mod:`kenomill.recovery`'s, in :mod:`kenomill._reference`.
"""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np

from kenomill import recovery
from kenomill._mc_kernels import (
    ARGS,
    F_CAL_H,
    F_DIVERTED_M,
    F_DIVERTED_T,
    F_FEED_M,
    F_FEED_T,
    F_HOLD_M,
    F_HOLD_T,
    F_MINED_M,
    F_MINED_T,
    F_SCATTER,
    F_SRC_T,
    F_STOCK_M,
    F_STOCK_T,
    F_STREAM_M,
    F_STREAM_T,
    F_UP_H,
    MODE_BLEND,
    MODE_RATES,
    N_FAIL,
    NOFF,
    ZIG_RATIO,
    ZIG_X,
)
from kenomill._reference import respond

_GAMMA = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_DRAW_MULT = np.uint64(0xD1B54A32D192ED03)
_TWO53 = 1.0 / 9007199254740992.0


# ----------------------------------------------------------------- random numbers
def _mix64(z: np.ndarray) -> np.ndarray:
    z = (z ^ (z >> np.uint64(30))) * _M1
    z = (z ^ (z >> np.uint64(27))) * _M2
    return z ^ (z >> np.uint64(31))


def stream_keys(seed: int, draws: np.ndarray, stream: int) -> np.ndarray:
    """Keys of stream ``stream`` of the given global draw indices (uint64 array)."""
    d = np.asarray(draws, dtype=np.uint64)
    k = _mix64(np.full(d.shape, np.uint64(seed)) + _GAMMA)
    k = _mix64(k + (d + np.uint64(1)) * _DRAW_MULT)
    # the product as a Python int: NumPy scalars warn on uint64 wrap-around
    return _mix64(k + np.uint64(((stream + 1) * int(_GAMMA)) & ((1 << 64) - 1)))


_MASK = (1 << 64) - 1
_SUB = 0xC2B2AE3D27D4EB4F


def _word(keys: np.ndarray, i: int) -> np.ndarray:
    """Word ``i`` of each stream keyed ``keys``: ``mix64(key + (i + 1) GAMMA)``."""
    return _mix64(keys + np.uint64(((i + 1) * int(_GAMMA)) & _MASK))


class Streams:
    """Per-draw SplitMix64 states; every call advances only the draws it serves."""

    def __init__(self, keys: np.ndarray):
        self.s = keys.copy()

    def u64(self, idx: np.ndarray) -> np.ndarray:
        s = self.s[idx] + _GAMMA
        self.s[idx] = s
        return _mix64(s)

    def uniform(self, idx: np.ndarray) -> np.ndarray:
        return (self.u64(idx) >> np.uint64(11)).astype(np.float64) * _TWO53


class _SubStream:
    """One SplitMix64 stream in Python integers (a rejected normal's sub-stream)."""

    def __init__(self, state: int):
        self.s = state

    def uniform(self) -> float:
        self.s = (self.s + int(_GAMMA)) & _MASK
        return float(int(_mix64(np.array([self.s], dtype=np.uint64))[0]) >> 11) * _TWO53

    def u64(self) -> int:
        self.s = (self.s + int(_GAMMA)) & _MASK
        return int(_mix64(np.array([self.s], dtype=np.uint64))[0])


def _tail(st: _SubStream, negative: bool) -> float:
    # Marsaglia (1964) tail beyond ZIG_R, as the kernel (math.log: the same libm)
    while True:
        x = math.log(1.0 - st.uniform()) / ZIG_X[1]
        y = math.log(1.0 - st.uniform())
        if -2.0 * y >= x * x:
            return float(x - ZIG_X[1] if negative else ZIG_X[1] - x)


def _wedge(st: _SubStream, j: int, u: float) -> float | None:
    x = u * ZIG_X[j]
    f0 = math.exp(-0.5 * (ZIG_X[j] * ZIG_X[j] - x * x))
    f1 = math.exp(-0.5 * (ZIG_X[j + 1] * ZIG_X[j + 1] - x * x))
    return float(x) if f1 + st.uniform() * (f0 - f1) < 1.0 else None


def _finish_normal(key: int, i: int, r: int) -> float:
    """The kernel's ``_simd._finish_normal``: a rejected candidate ``r`` of normal ``i``."""
    k = int(_mix64(np.array([key ^ _SUB], dtype=np.uint64))[0])
    st = _SubStream(int(_mix64(np.array([(k + i * int(_GAMMA)) & _MASK], dtype=np.uint64))[0]))
    j = r & 127
    u = 2.0 * (float(r >> 11) * _TWO53) - 1.0
    if j == 0:
        return _tail(st, u < 0.0)
    x = _wedge(st, j, u)
    if x is not None:
        return x
    while True:  # a fresh sequential ziggurat normal from the sub-stream
        r = st.u64()
        j = r & 127
        u = 2.0 * (float(r >> 11) * _TWO53) - 1.0
        if abs(u) < ZIG_RATIO[j]:
            return float(u * ZIG_X[j])
        if j == 0:
            return _tail(st, u < 0.0)
        x = _wedge(st, j, u)
        if x is not None:
            return x


def normals(keys: np.ndarray, i: int) -> np.ndarray:
    """Normal ``i`` of each draw keyed ``keys``: the ziggurat's fast path from word ``i``,
    the rejected candidates finished one by one (``kenomill._simd.normal_at``)."""
    r = _word(keys, i)
    j = (r & np.uint64(127)).astype(np.intp)
    u = 2.0 * ((r >> np.uint64(11)).astype(np.float64) * _TWO53) - 1.0
    out = u * ZIG_X[j]
    for m in np.flatnonzero(~(np.abs(u) < ZIG_RATIO[j])):
        out[m] = _finish_normal(int(keys[m]), i, int(r[m]))
    return out


def fill_random(seed, draw0, z, u):
    """NumPy twin of :func:`kenomill._mc_kernels.fill_random`."""
    nd = z.shape[0]
    draws = np.arange(draw0, draw0 + nd)
    kn, su = stream_keys(seed, draws, 0), Streams(stream_keys(seed, draws, 1))
    idx = np.arange(nd)
    for i in range(z.shape[1]):
        z[:, i] = normals(kn, i)
    for i in range(u.shape[1]):
        u[:, i] = su.uniform(idx)


class _Source:
    """Random numbers for all draws: from the streams or from pre-generated arrays."""

    def __init__(self, seed, draw0, nd, use_pre, pre_z, pre_u):
        self.idx = np.arange(nd)
        self.pre = use_pre == 1
        self.iz, self.iu = 0, 0
        if self.pre:
            self.z, self.u = pre_z, pre_u
        else:
            draws = np.arange(draw0, draw0 + nd)
            self.kn = stream_keys(seed, draws, 0)
            self.su = Streams(stream_keys(seed, draws, 1))

    def normal(self):
        self.iz += 1
        if self.pre:
            return self.z[:, self.iz - 1]
        return normals(self.kn, self.iz - 1)

    def uniform(self):
        if self.pre:
            self.iu += 1
            return self.u[:, self.iu - 1]
        return self.su.uniform(self.idx)


# ----------------------------------------------------------------- the hot loop
def simulate(*args):
    """NumPy reference of :func:`kenomill._mc_kernels.simulate` (same arguments and outputs, in the
    order of :data:`kenomill._mc_kernels.ARGS`).

    The same step functions as the kernel, each over all draws at once.
    """
    a = SimpleNamespace(**dict(zip(ARGS, args, strict=True)))  # the arguments by name
    nd = a.out_q.shape[0]
    a.supply_d, a.mill_rate_d = draw_rates(a.supply, a.mill_rate, a.draw_supply, a.draw_mill_rate, nd)
    rng = _Source(a.seed, a.draw0, nd, a.use_pre, a.pre_z, a.pre_u)
    a.out_q[:] = 0.0
    st = _setup(a, rng)
    q_prev = -1
    for t in range(a.step_q.shape[0]):
        q = a.step_q[t]
        if q != q_prev:
            zq = np.stack([rng.normal() for _ in range(NOFF)], axis=1)
            corr_z = np.einsum("dji,di->dj", a.post_scatter_chol[st.s_post], zq)
            st.qoff = a.post_offset_mean[st.s_post] + a.post_scatter_sd[st.s_post] * corr_z
            q_prev = q
        rec = np.zeros((nd, a.out_q.shape[2]))
        _deliveries(a, rng, st, t, q)
        up = _operating_hours(a, rng, st)
        demand = a.mill_rate_d[:, q] * up
        if a.mode == MODE_BLEND:
            _blend_deliveries(a, st, t, q, demand)
        _stockpile_in(a, st, t, rec)
        _mill(a, st, demand, q, rec)
        _stockpile_divert(a, st, rec)
        rec[:, F_UP_H] = up
        rec[:, F_CAL_H] = a.step_h
        _levels(st, rec)
        a.out_q[:, q, :F_STOCK_T] += rec[:, :F_STOCK_T]
        a.out_q[:, q, F_STOCK_T:F_SRC_T] = rec[:, F_STOCK_T:F_SRC_T]
        a.out_q[:, q, F_SRC_T:] += rec[:, F_SRC_T:]
        if a.out_d.shape[1] > 0:
            a.out_d[:, t, :] = rec


def draw_rates(supply, mill_rate, draw_supply, draw_mill_rate, nd):
    """Each draw's supply ``[nd, ns, nq]`` and mill feed rate ``[nd, nq]``: the kernel's
    ``draw_supply``/``draw_mill_rate`` when given (first dimension > 0), else the plan's for all."""
    if draw_supply.shape[0] > 0:
        return draw_supply, draw_mill_rate
    return np.broadcast_to(supply, (nd, *supply.shape)), np.broadcast_to(mill_rate, (nd, *mill_rate.shape))


def _levels(st, rec):
    """Stockpile, holds and the quarter's scatter at the end of the step into ``rec``."""
    for s in range(st.st_t.shape[1]):
        rec[:, F_STOCK_T] += st.st_t[:, s]
        rec[:, F_HOLD_T] += st.hd_t[:, s]
        rec[:, F_STOCK_M : F_STOCK_M + 3] += st.st_m[:, s, :]
        rec[:, F_HOLD_M : F_HOLD_M + 3] += st.hd_m[:, s, :]
    rec[:, F_SCATTER : F_SCATTER + NOFF] = st.qoff


def _setup(a, rng):
    """Per-draw setup (all draws): posterior draw, availability, sources, start delays, state."""
    nd = a.out_q.shape[0]
    ns = a.supply.shape[0]
    k = a.post_theta.shape[1]
    od = a.out_draw
    st = SimpleNamespace()
    # the posterior draw of each Monte Carlo draw: its first uniform
    n_post = a.post_theta.shape[0]
    st.s_post = np.minimum((rng.uniform() * n_post).astype(np.int64), n_post - 1)
    theta = a.post_theta[st.s_post]
    st.p = np.tile(a.p_base, (nd, 1))
    st.p[:, a.free_idx] = theta
    od[:, :k] = theta
    od[:, k + 9 * ns] = st.s_post
    st.a_d = np.clip(a.availability + a.availability_sd * rng.normal(), 0.05, 1.0)
    with np.errstate(divide="ignore"):
        st.mtbf_h = np.where(st.a_d < 1.0, st.a_d / (1.0 - st.a_d) * a.mttr_h, np.inf)
    od[:, k + 9 * ns + 1] = st.a_d
    st.src_off = np.empty((nd, ns, NOFF))
    for s in range(ns):
        for j in range(NOFF):
            st.src_off[:, s, j] = a.r_mean[s, j] + a.r_sd[s, j] * rng.normal()
    od[:, k : k + NOFF * ns] = st.src_off.reshape(nd, -1)
    mean_fac = np.empty((nd, ns, 3))
    for s in range(ns):
        for e in range(3):
            sd = a.g_mean_sd[s, e]
            mean_fac[:, s, e] = np.exp(sd * rng.normal() - 0.5 * sd * sd)
    od[:, k + NOFF * ns : k + 8 * ns] = mean_fac.reshape(nd, -1)
    st.x = np.empty((nd, ns, 3))
    for s in range(ns):
        zz = np.stack([rng.normal() for _ in range(3)], axis=1)
        st.x[:, s, :] = a.g_sd[s] * (zz @ a.g_chol[s].T)
    st.innov = np.sqrt(1.0 - a.g_phi * a.g_phi) * a.g_sd
    st.gfac = mean_fac * np.exp(-0.5 * a.g_sd * a.g_sd)
    st.start = np.empty((nd, ns), dtype=np.int64)
    for s in range(ns):
        st.start[:, s] = (a.start_lo[s] + np.floor(rng.uniform() * a.start_span[s])).astype(np.int64)
    od[:, k + 8 * ns : k + 9 * ns] = st.start - a.start_lo
    st.ttf = -st.mtbf_h * np.log1p(-rng.uniform())
    st.st_t = np.tile(a.stock0, (nd, 1)).astype(float)
    st.st_m = st.st_t[:, :, None] * a.g_mean[None, :, 0, :]
    st.hd_t = np.zeros((nd, ns))
    st.hd_m = np.zeros((nd, ns, 3))
    st.down_rem = np.zeros(nd)
    st.qoff = np.zeros((nd, NOFF))
    st.arr_t = np.empty((nd, ns))
    st.arr_g = np.empty((nd, ns, 3))
    return st


def _deliveries(a, rng, st, t, q):
    """Grades and, in rates mode, tonnes of the step's deliveries (4 normals per source)."""
    for s in range(a.supply.shape[0]):
        zz = np.stack([rng.normal() for _ in range(3)], axis=1)
        zr = rng.normal()
        c = zz @ a.g_chol[s].T
        st.x[:, s, :] = a.g_phi[s] * st.x[:, s, :] + st.innov[s] * c
        st.arr_g[:, s, :] = a.g_mean[s, q] * st.gfac[:, s, :] * np.exp(st.x[:, s, :])
        cv = a.rate_cv[s]
        on = (t >= st.start[:, s]) & (a.mode == MODE_RATES)
        st.arr_t[:, s] = np.where(on, a.supply_d[:, s, q] * np.exp(cv * zr - 0.5 * cv * cv), 0.0)


def _operating_hours(a, rng, st):
    """Operating hours of the step (2 N_FAIL uniforms), the failing draws handled together."""
    nd = a.out_q.shape[0]
    ubuf = [rng.uniform() for _ in range(2 * N_FAIL)]
    if a.mttr_h <= 0.0:
        return a.step_h * st.a_d
    rem = np.full(nd, a.step_h)
    down = np.minimum(st.down_rem, rem)
    st.down_rem = st.down_rem - down
    rem = rem - down
    up = np.zeros(nd)
    ttf = st.ttf
    live = rem > 0.0
    j = 0
    while live.any():
        ends = live & (ttf >= rem)  # no (further) failure within this step
        up = np.where(ends, up + rem, up)
        ttf = np.where(ends, ttf - rem, ttf)
        fail = live & ~ends
        up = np.where(fail, up + ttf, up)
        rem = np.where(fail, rem - ttf, rem)
        ttf = np.where(fail, 0.0, ttf)
        if j == N_FAIL:
            up = np.where(fail, up + rem, up)
            break
        dur = -a.mttr_h * np.log1p(-ubuf[2 * j])
        lost = np.minimum(dur, rem)
        rem = np.where(fail, rem - lost, rem)
        st.down_rem = np.where(fail, dur - lost, st.down_rem)
        ttf = np.where(fail, -st.mtbf_h * np.log1p(-ubuf[2 * j + 1]), ttf)
        live = fail & (rem > 0.0)
        j += 1
    st.ttf = ttf
    return up


def _blend_deliveries(a, st, t, q, demand):
    """Blend mode: deliveries meet demand in the quarter's shares of the active sources."""
    active = (t >= st.start) & (t >= a.hold_until[None, :])
    tot = np.zeros(a.out_q.shape[0])
    for s in range(a.supply.shape[0]):
        tot = tot + np.where(active[:, s], a.supply_d[:, s, q], 0.0)
    safe = np.where(tot > 0.0, tot, 1.0)
    for s in range(a.supply.shape[0]):
        st.arr_t[:, s] = np.where(active[:, s] & (tot > 0.0), demand * a.supply_d[:, s, q] / safe, 0.0)


def _stockpile_in(a, st, t, rec):
    """Deliveries to holding piles or the ROM stockpile; holds released."""
    for s in range(a.supply.shape[0]):
        d = st.arr_t[:, s]
        rec[:, F_MINED_T] += d
        for e in range(3):
            rec[:, F_MINED_M + e] += d * st.arr_g[:, s, e]
        if t < a.hold_until[s]:
            st.hd_t[:, s] += d
            st.hd_m[:, s, :] += d[:, None] * st.arr_g[:, s, :]
        else:
            st.st_t[:, s] += d + st.hd_t[:, s]
            st.st_m[:, s, :] += d[:, None] * st.arr_g[:, s, :] + st.hd_m[:, s, :]
            st.hd_m[:, s, :] = 0.0
            st.hd_t[:, s] = 0.0


def _mill(a, st, demand, q, rec):
    """Reclaim the step's blend from the stockpile; each component milled at the blend's grade."""
    ns = a.supply.shape[0]
    stock = st.st_t.sum(axis=1) if ns else np.zeros(a.out_q.shape[0])
    feed = np.minimum(demand, stock)
    f = np.where(stock > 0.0, feed / np.where(stock > 0.0, stock, 1.0), 0.0)
    qr = a.mill_rate_d[:, q] * 24.0 / recovery.REFERENCE_TPD
    part_t = st.st_t * f[:, None]
    part_m = st.st_m * f[:, None, None]
    on = part_t > 0.0
    part_t = np.where(on, part_t, 0.0)
    part_m = np.where(on[..., None], part_m, 0.0)
    st.st_m -= part_m
    st.st_t -= part_t
    bt = part_t.sum(axis=1)
    blend = np.where(bt[:, None] > 0.0, part_m.sum(axis=1) / np.where(bt > 0.0, bt, 1.0)[:, None], 0.0)
    for s in range(ns):
        ts = part_t[:, s]
        head = np.where(on[:, s, None], part_m[:, s, :] / np.where(on[:, s], ts, 1.0)[:, None], 0.0)
        # each ore's minerals at its own offsets, with the blend's grade factor
        split, pull = respond(a.kind, a.grade_dep, st.p, head, qr, st.qoff + st.src_off[:, s, :], blend)
        con0 = pull[:, 0] * ts
        con1 = pull[:, 1] * ts
        rec[:, F_FEED_T] += ts
        rec[:, F_SRC_T + s] += ts
        rec[:, F_STREAM_T] += con0
        rec[:, F_STREAM_T + 1] += con1
        rec[:, F_STREAM_T + 2] += ts - con0 - con1
        for e in range(3):
            el = ts * head[:, e]
            m0 = el * split[:, e, 0]
            m1 = el * split[:, e, 1]
            rec[:, F_FEED_M + e] += el
            rec[:, F_STREAM_M + e] += m0
            rec[:, F_STREAM_M + 3 + e] += m1
            rec[:, F_STREAM_M + 6 + e] += el - m0 - m1


def _stockpile_divert(a, st, rec):
    """Stockpile over capacity: the excess diverted (mixed composition)."""
    stock = st.st_t.sum(axis=1)
    over = stock > a.stock_cap
    g = np.where(over, (stock - a.stock_cap) / np.where(over, stock, 1.0), 0.0)
    for s in range(a.supply.shape[0]):
        dv = st.st_t[:, s] * g
        rec[:, F_DIVERTED_T] += dv
        st.st_t[:, s] -= dv
        dm = st.st_m[:, s, :] * g[:, None]
        rec[:, F_DIVERTED_M : F_DIVERTED_M + 3] += dm
        st.st_m[:, s, :] -= dm
