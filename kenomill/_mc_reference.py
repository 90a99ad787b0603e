"""NumPy reference of the Monte Carlo kernel :func:`kenomill._mc_kernels.simulate`.

Written as a good NumPy user would: vectorised over draws, a Python loop over steps and
over the (few) sources. Same arguments, same outputs, same random streams (SplitMix64
keyed per draw and the ZIGNOR ziggurat, here on uint64 arrays with the rejection loop run
on the still-pending draws), so kernel and reference agree to rounding: it is the test
oracle of the kernel and the baseline of the benchmarks (issue 6). The mill response is
the NumPy reference of :mod:`kenomill.recovery`'s, in :mod:`kenomill._reference`.
"""

from __future__ import annotations

import numpy as np

from kenomill import recovery
from kenomill._mc_kernels import (
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
    ZIG_R,
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

    def _tail(self, idx: np.ndarray, negative: np.ndarray) -> np.ndarray:
        out = np.empty(idx.size)
        pend = np.arange(idx.size)
        while pend.size:
            x = np.log(1.0 - self.uniform(idx[pend])) / ZIG_R
            y = np.log(1.0 - self.uniform(idx[pend]))
            ok = -2.0 * y >= x * x
            p = pend[ok]
            out[p] = np.where(negative[p], x[ok] - ZIG_R, ZIG_R - x[ok])
            pend = pend[~ok]
        return out

    def normal(self, idx: np.ndarray) -> np.ndarray:
        """One standard normal for each draw of ``idx`` (ZIGNOR, as the kernel)."""
        out = np.empty(idx.size)
        pend = np.arange(idx.size)
        while pend.size:
            r = self.u64(idx[pend])
            i = (r & np.uint64(127)).astype(np.intp)
            u = 2.0 * ((r >> np.uint64(11)).astype(np.float64) * _TWO53) - 1.0
            acc = np.abs(u) < ZIG_RATIO[i]
            out[pend[acc]] = u[acc] * ZIG_X[i[acc]]
            tail = ~acc & (i == 0)
            if tail.any():
                out[pend[tail]] = self._tail(idx[pend[tail]], u[tail] < 0.0)
            wedge = ~acc & (i != 0)
            pw, iw = pend[wedge], i[wedge]
            x = u[wedge] * ZIG_X[iw]
            f0 = np.exp(-0.5 * (ZIG_X[iw] * ZIG_X[iw] - x * x))
            f1 = np.exp(-0.5 * (ZIG_X[iw + 1] * ZIG_X[iw + 1] - x * x))
            ok = f1 + self.uniform(idx[pw]) * (f0 - f1) < 1.0
            out[pw[ok]] = x[ok]
            pend = pw[~ok]
        return out


def fill_random(seed, draw0, z, u):
    """NumPy twin of :func:`kenomill._mc_kernels.fill_random`."""
    nd = z.shape[0]
    draws = np.arange(draw0, draw0 + nd)
    sn, su = Streams(stream_keys(seed, draws, 0)), Streams(stream_keys(seed, draws, 1))
    idx = np.arange(nd)
    for i in range(z.shape[1]):
        z[:, i] = sn.normal(idx)
    for i in range(u.shape[1]):
        u[:, i] = su.uniform(idx)


class _Source:
    """Random numbers for all draws: from the streams or from pre-generated arrays."""

    def __init__(self, seed, draw0, nd, use_pre, pre_z, pre_u):
        self.idx = np.arange(nd)
        self.pre = use_pre == 1
        if self.pre:
            self.z, self.u, self.iz, self.iu = pre_z, pre_u, 0, 0
        else:
            draws = np.arange(draw0, draw0 + nd)
            self.sn = Streams(stream_keys(seed, draws, 0))
            self.su = Streams(stream_keys(seed, draws, 1))

    def normal(self):
        if self.pre:
            self.iz += 1
            return self.z[:, self.iz - 1]
        return self.sn.normal(self.idx)

    def uniform(self):
        if self.pre:
            self.iu += 1
            return self.u[:, self.iu - 1]
        return self.su.uniform(self.idx)


# ----------------------------------------------------------------- the hot loop
def simulate(
    seed,
    draw0,
    kind,
    grade_dep,
    p_base,
    free_idx,
    theta0,
    theta_fac,
    theta_lo,
    theta_hi,
    fold_idx,
    fold_side,
    fold_vecs,
    scatter_sd,
    scatter_chol,
    scatter_dof,
    step_q,
    step_h,
    mode,
    supply,
    rate_cv,
    start_lo,
    start_span,
    hold_until,
    g_mean,
    g_sd,
    g_phi,
    g_chol,
    g_mean_sd,
    r_mean,
    r_sd,
    stock0,
    stock_cap,
    mill_rate,
    availability,
    availability_sd,
    mttr_h,
    use_pre,
    pre_z,
    pre_u,
    out_q,
    out_d,
    out_draw,
):
    """NumPy reference of :func:`kenomill._mc_kernels.simulate` (same arguments and outputs)."""
    nd, _, nf = out_q.shape
    ns = supply.shape[0]
    n_steps = step_q.shape[0]
    k = theta0.shape[0]
    daily = out_d.shape[1] > 0
    rng = _Source(seed, draw0, nd, use_pre, pre_z, pre_u)
    out_q[:] = 0.0
    # ---- per-draw setup
    zt = np.stack([rng.normal() for _ in range(k)], axis=1) if k else np.zeros((nd, 0))
    dev = zt @ theta_fac.T
    for r in range(fold_idx.size):  # as recovery.fold_deviation, on all draws at once
        j = fold_idx[r]
        past = fold_side[r] * dev[:, j] > 0.0
        dev[past] -= 2.0 * dev[past, j][:, None] * fold_vecs[r]
    theta = np.clip(theta0 + dev, theta_lo, theta_hi)
    p = np.tile(p_base, (nd, 1))
    p[:, free_idx] = theta
    out_draw[:, :k] = theta
    zs = rng.normal()
    if scatter_dof > 0.0:
        c9 = 2.0 / (9.0 * scatter_dof)
        wh = np.maximum(1.0 - c9 + zs * np.sqrt(c9), 1e-3)
        s_scale = 1.0 / np.sqrt(wh * wh * wh)
    else:
        s_scale = np.ones(nd)
    out_draw[:, k + 9 * ns] = s_scale
    a_d = np.clip(availability + availability_sd * rng.normal(), 0.05, 1.0)
    with np.errstate(divide="ignore"):
        mtbf_h = np.where(a_d < 1.0, a_d / (1.0 - a_d) * mttr_h, np.inf)
    out_draw[:, k + 9 * ns + 1] = a_d
    src_off = np.empty((nd, ns, NOFF))
    for s in range(ns):
        for j in range(NOFF):
            src_off[:, s, j] = r_mean[s, j] + r_sd[s, j] * rng.normal()
    out_draw[:, k : k + NOFF * ns] = src_off.reshape(nd, -1)
    mean_fac = np.empty((nd, ns, 3))
    for s in range(ns):
        for e in range(3):
            sd = g_mean_sd[s, e]
            mean_fac[:, s, e] = np.exp(sd * rng.normal() - 0.5 * sd * sd)
    out_draw[:, k + NOFF * ns : k + 8 * ns] = mean_fac.reshape(nd, -1)
    x = np.empty((nd, ns, 3))
    for s in range(ns):
        zz = np.stack([rng.normal() for _ in range(3)], axis=1)
        x[:, s, :] = g_sd[s] * (zz @ g_chol[s].T)
    innov = np.sqrt(1.0 - g_phi * g_phi) * g_sd
    gfac = mean_fac * np.exp(-0.5 * g_sd * g_sd)
    start = np.empty((nd, ns), dtype=np.int64)
    for s in range(ns):
        start[:, s] = (start_lo[s] + np.floor(rng.uniform() * start_span[s])).astype(np.int64)
    out_draw[:, k + 8 * ns : k + 9 * ns] = start - start_lo
    ttf = -mtbf_h * np.log1p(-rng.uniform())
    # ---- state
    st_t = np.tile(stock0, (nd, 1)).astype(float)
    st_m = st_t[:, :, None] * g_mean[None, :, 0, :]
    hd_t = np.zeros((nd, ns))
    hd_m = np.zeros((nd, ns, 3))
    down_rem = np.zeros(nd)
    qoff = np.zeros((nd, NOFF))
    arr_t = np.empty((nd, ns))
    arr_g = np.empty((nd, ns, 3))
    q_prev = -1
    for t in range(n_steps):
        q = step_q[t]
        if q != q_prev:
            zq = np.stack([rng.normal() for _ in range(NOFF)], axis=1)
            qoff = scatter_sd * s_scale[:, None] * (zq @ scatter_chol.T)
            q_prev = q
        rec = np.zeros((nd, nf))
        for s in range(ns):
            zz = np.stack([rng.normal() for _ in range(3)], axis=1)
            zr = rng.normal()
            c = zz @ g_chol[s].T
            x[:, s, :] = g_phi[s] * x[:, s, :] + innov[s] * c
            arr_g[:, s, :] = g_mean[s, q] * gfac[:, s, :] * np.exp(x[:, s, :])
            cv = rate_cv[s]
            on = (t >= start[:, s]) & (mode == MODE_RATES)
            arr_t[:, s] = np.where(on, supply[s, q] * np.exp(cv * zr - 0.5 * cv * cv), 0.0)
        ubuf = [rng.uniform() for _ in range(2 * N_FAIL)]
        if mttr_h > 0.0:
            rem = np.full(nd, step_h)
            down = np.minimum(down_rem, rem)
            down_rem = down_rem - down
            rem = rem - down
            up = np.zeros(nd)
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
                dur = -mttr_h * np.log1p(-ubuf[2 * j])
                lost = np.minimum(dur, rem)
                rem = np.where(fail, rem - lost, rem)
                down_rem = np.where(fail, dur - lost, down_rem)
                ttf = np.where(fail, -mtbf_h * np.log1p(-ubuf[2 * j + 1]), ttf)
                live = fail & (rem > 0.0)
                j += 1
        else:
            up = step_h * a_d
        demand = mill_rate[q] * up
        if mode == MODE_BLEND:
            active = (t >= start) & (t >= hold_until[None, :])
            tot = np.zeros(nd)
            for s in range(ns):
                tot = tot + np.where(active[:, s], supply[s, q], 0.0)
            safe = np.where(tot > 0.0, tot, 1.0)
            for s in range(ns):
                arr_t[:, s] = np.where(active[:, s] & (tot > 0.0), demand * supply[s, q] / safe, 0.0)
        for s in range(ns):
            a = arr_t[:, s]
            rec[:, F_MINED_T] += a
            for e in range(3):
                rec[:, F_MINED_M + e] += a * arr_g[:, s, e]
            if t < hold_until[s]:
                hd_t[:, s] += a
                hd_m[:, s, :] += a[:, None] * arr_g[:, s, :]
            else:
                st_t[:, s] += a + hd_t[:, s]
                st_m[:, s, :] += a[:, None] * arr_g[:, s, :] + hd_m[:, s, :]
                hd_m[:, s, :] = 0.0
                hd_t[:, s] = 0.0
        stock = np.zeros(nd)
        for s in range(ns):
            stock = stock + st_t[:, s]
        feed = np.minimum(demand, stock)
        f = np.where(stock > 0.0, feed / np.where(stock > 0.0, stock, 1.0), 0.0)
        qr = mill_rate[q] * 24.0 / recovery.REFERENCE_TPD
        # the sources reclaimed in their stockpile shares make one blended circuit feed
        part_t = np.zeros((nd, ns))
        part_m = np.zeros((nd, ns, 3))
        for s in range(ns):
            ts = st_t[:, s] * f
            on = ts > 0.0
            me = st_m[:, s, :] * f[:, None]
            part_t[:, s] = np.where(on, ts, 0.0)
            part_m[:, s, :] = np.where(on[:, None], me, 0.0)
            st_m[:, s, :] -= part_m[:, s, :]
            st_t[:, s] -= part_t[:, s]
        bt = part_t.sum(axis=1)
        blend = np.where(bt[:, None] > 0.0, part_m.sum(axis=1) / np.where(bt > 0.0, bt, 1.0)[:, None], 0.0)
        for s in range(ns):
            ts = part_t[:, s]
            on = ts > 0.0
            head = np.where(on[:, None], part_m[:, s, :] / np.where(on, ts, 1.0)[:, None], 0.0)
            off = qoff + src_off[:, s, :]
            # each ore's minerals at its own offsets, with the blend's grade factor
            split, pull = respond(kind, grade_dep, p, head, qr, off, blend)
            con0 = pull[:, 0] * ts
            con1 = pull[:, 1] * ts
            rec[:, F_FEED_T] += ts
            rec[:, F_SRC_T + s] += ts
            rec[:, F_STREAM_T] += con0
            rec[:, F_STREAM_T + 1] += con1
            rec[:, F_STREAM_T + 2] += ts - con0 - con1
            for e in range(3):
                el = ts * head[:, e]
                a = el * split[:, e, 0]
                b = el * split[:, e, 1]
                rec[:, F_FEED_M + e] += el
                rec[:, F_STREAM_M + e] += a
                rec[:, F_STREAM_M + 3 + e] += b
                rec[:, F_STREAM_M + 6 + e] += el - a - b
        stock = np.zeros(nd)
        for s in range(ns):
            stock = stock + st_t[:, s]
        over = stock > stock_cap
        g = np.where(over, (stock - stock_cap) / np.where(over, stock, 1.0), 0.0)
        for s in range(ns):
            dv = st_t[:, s] * g
            rec[:, F_DIVERTED_T] += dv
            st_t[:, s] -= dv
            dm = st_m[:, s, :] * g[:, None]
            rec[:, F_DIVERTED_M : F_DIVERTED_M + 3] += dm
            st_m[:, s, :] -= dm
        rec[:, F_UP_H] = up
        rec[:, F_CAL_H] = step_h
        for s in range(ns):
            rec[:, F_STOCK_T] += st_t[:, s]
            rec[:, F_HOLD_T] += hd_t[:, s]
            rec[:, F_STOCK_M : F_STOCK_M + 3] += st_m[:, s, :]
            rec[:, F_HOLD_M : F_HOLD_M + 3] += hd_m[:, s, :]
        rec[:, F_SCATTER : F_SCATTER + NOFF] = qoff
        out_q[:, q, :F_STOCK_T] += rec[:, :F_STOCK_T]
        out_q[:, q, F_STOCK_T:F_SRC_T] = rec[:, F_STOCK_T:F_SRC_T]
        out_q[:, q, F_SRC_T:] += rec[:, F_SRC_T:]
        if daily:
            out_d[:, t, :] = rec
