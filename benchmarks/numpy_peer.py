"""A fair NumPy peer of the Monte Carlo kernel, written for speed (issue 14, Deliver 1).

:mod:`kenomill._mc_reference` is the kernel's bit-for-bit oracle: it regenerates the
kernel's own ziggurat streams with NumPy masks and builds a 42-field record per step, so
it measures how slow NumPy is when made to imitate a scalar kernel. This module is what
a performance engineer would write in NumPy for the same model:

* structure of arrays: every state field is a contiguous row of ``n_draws`` values
  (``x[3 ns, nd]``, ``st_t[ns, nd]``, ...), so each ufunc streams one row;
* per-quarter constants hoisted: the mill response's feed-independent half
  (:func:`kenomill.recovery.response_constants`: kinetic factors, gangue entrainment,
  ``exp(-offset)``), the quarter's mean grades times the lognormal corrections, computed
  once per quarter and draw;
* the three grade innovations of all sources from one small matrix product (the
  block-diagonal Cholesky factor times ``(3 ns, nd)`` normals);
* flows summed straight into the quarter's accumulator and levels written only at the
  quarter's last step (no per-step record, zeroing or copy) unless per-step output is asked;
* the circuit's grade factor from the step's blend once per step (the kernel's ``mill``
  responds to each source's ore with the blend's grade factor);
* mill downtime (the renewal process) evaluated only on the draws whose mill fails or is
  under repair during the step (a quarter of them at 92 % availability, 8 h repairs);
* random numbers from NumPy's ``Generator`` (PCG64, ziggurat normals) in blocks, or, for
  the exactness check, the kernel's own pre-generated numbers
  (``use_pre = 1``, :func:`kenomill._mc_kernels.fill_random`).

It takes the kernel's arguments and fills the kernel's outputs
(:func:`kenomill._mc_kernels.simulate`). Fed the kernel's pre-generated numbers it equals
the kernel to rounding (the sums run in another order);
with its own Generator its draws are another sample of the same model, checked
statistically against the kernel (``benchmarks/test_bench_hot_loop.py``).
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
)
from kenomill._reference import _kinetic  # recovery.kinetic over arrays of draws (one NumPy copy)


class _Randoms:
    """Normals and uniforms as ``(m, nd)`` blocks: a numpy Generator, or the kernel's pre-made numbers."""

    def __init__(self, seed, draw0, nd, use_pre, pre_z, pre_u):
        self.pre = use_pre == 1
        self.nd = nd
        if self.pre:
            self.z, self.u, self.iz, self.iu = pre_z, pre_u, 0, 0
        else:
            self.gen = np.random.Generator(np.random.PCG64([int(seed), int(draw0)]))

    def normals(self, m):
        if self.pre:
            self.iz += m
            return self.z[:, self.iz - m : self.iz].T
        return self.gen.standard_normal((m, self.nd))

    def uniforms(self, m):
        """``m`` uniforms per draw (rows), for the set-up."""
        if self.pre:
            self.iu += m
            return self.u[:, self.iu - m : self.iu].T
        return self.gen.random((m, self.nd))

    def step_uniforms(self):
        """Start of a step: the kernel consumes 2 N_FAIL uniforms per draw and step."""
        if self.pre:
            self.iu += 2 * N_FAIL
            self.u0 = self.iu - 2 * N_FAIL

    def fail_uniforms(self, idx, j):
        """Uniforms of the ``j``-th repair and failure of this step, on the draws ``idx``."""
        if self.pre:
            return self.u[idx, self.u0 + 2 * j], self.u[idx, self.u0 + 2 * j + 1]
        return self.gen.random(idx.size), self.gen.random(idx.size)


def _logit_shift(r, einv, zero):
    # the kernel's _logit_shift with exp(-off) hoisted; ``zero`` marks off == 0 (r unchanged)
    rc = np.clip(r, 1e-12, 1.0 - 1e-12)
    out = 1.0 / (1.0 + (1.0 - rc) / rc * einv)
    return np.where(zero, r, out) if zero is not None else out


def _relfloat(r, a, a_zero):
    out = 1.0 - (1.0 - np.clip(r, 0.0, 1.0)) ** a
    return np.where(a_zero, 0.0, out) if a_zero is not None else out


def simulate(
    seed,
    draw0,
    kind,
    grade_dep,
    p_base,
    free_idx,
    post_theta,
    post_offset_mean,
    post_scatter_sd,
    post_scatter_chol,
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
    draw_supply,
    draw_mill_rate,
    use_pre,
    pre_z,
    pre_u,
    out_q,
    out_d,
    out_draw,
):
    """The kernel's model, vectorised over draws (same arguments and outputs as the kernel).

    The plan's rates only: draws with their own rates (``draw_supply``) are not part of the
    benchmark's workload.
    """
    if draw_supply.shape[0] > 0:
        raise ValueError("numpy_peer.simulate: per-draw rates (draw_supply) are not supported")
    nd, nq, nf = out_q.shape
    ns = supply.shape[0]
    n_steps = step_q.shape[0]
    k = post_theta.shape[1]
    daily = out_d.shape[1] > 0
    rnd = _Randoms(seed, draw0, nd, use_pre, pre_z, pre_u)
    # ---- per-draw set-up (once per draw: cost ~ 1/547 of the steps)
    # the calibration's posterior draw of each Monte Carlo draw: its first uniform
    n_post = post_theta.shape[0]
    s_post = np.minimum((rnd.uniforms(1)[0] * n_post).astype(np.int64), n_post - 1)
    theta = post_theta[s_post]
    out_draw[:, :k] = theta
    pt = np.repeat(p_base[:, None], nd, axis=1)  # parameters as rows [N_FULL, nd]
    pt[free_idx] = theta.T
    out_draw[:, k + 9 * ns] = s_post
    q_mean = post_offset_mean[s_post].T  # [5, nd]
    q_sd = post_scatter_sd[s_post].T
    q_chol = post_scatter_chol[s_post]  # [nd, 5, 5]
    a_d = np.clip(availability + availability_sd * rnd.normals(1)[0], 0.05, 1.0)
    with np.errstate(divide="ignore"):
        mtbf_h = np.where(a_d < 1.0, a_d / (1.0 - a_d) * mttr_h, np.inf)
    out_draw[:, k + 9 * ns + 1] = a_d
    src_off = r_mean.reshape(-1, 1) + r_sd.reshape(-1, 1) * rnd.normals(ns * NOFF)  # [ns*5, nd]
    out_draw[:, k : k + NOFF * ns] = src_off.T
    src_off = src_off.reshape(ns, NOFF, nd)
    msd = g_mean_sd.reshape(-1, 1)
    mean_fac = np.exp(msd * rnd.normals(3 * ns) - 0.5 * msd * msd)  # [3 ns, nd]
    out_draw[:, k + NOFF * ns : k + 8 * ns] = mean_fac.T
    chol = np.zeros((3 * ns, 3 * ns))  # block-diagonal: all sources' innovations in one product
    for s in range(ns):
        chol[3 * s : 3 * s + 3, 3 * s : 3 * s + 3] = g_chol[s]
    sd = g_sd.reshape(-1, 1)
    z0 = rnd.normals(3 * ns)
    x = sd * (chol @ z0)  # AR(1) log-grade deviations [3 ns, nd]
    phi = g_phi.reshape(-1, 1)
    innov = np.sqrt(1.0 - phi * phi) * sd
    gfac = mean_fac * np.exp(-0.5 * sd * sd)
    start = (start_lo[:, None] + np.floor(rnd.uniforms(ns) * start_span[:, None])).astype(np.int64)
    out_draw[:, k + 8 * ns : k + 9 * ns] = (start - start_lo[:, None]).T
    ttf = -mtbf_h * np.log1p(-rnd.uniforms(1)[0])
    # constants of the mill response that do not depend on the quarter
    pb_tail, zn_tail = pt[2], pt[7]
    a_pb, a_zn, zn_pb, pbzn_f = pt[10], pt[11], pt[12], pt[13]
    a_pb_zero = (a_pb == 0.0) if (a_pb == 0.0).any() else None
    a_zn_zero = (a_zn == 0.0) if (a_zn == 0.0).any() else None
    zn_rest = 1.0 - zn_pb
    # ---- state, one row per field
    st_t = np.repeat(stock0.astype(float)[:, None], nd, axis=1)
    st_m = st_t[:, None, :] * g_mean[:, 0, :, None]  # [ns, 3, nd]
    hd_t = np.zeros((ns, nd))
    hd_m = np.zeros((ns, 3, nd))
    down_rem = np.zeros(nd)
    up = np.empty(nd)
    acc = np.zeros((nf, nd))  # the quarter being summed
    rec = np.zeros((nf, nd)) if daily else acc
    last_of_q = np.r_[step_q[1:] != step_q[:-1], True]
    q_prev = -1
    for t in range(n_steps):
        q = step_q[t]
        if q != q_prev:
            # ---- per-quarter constants
            zq = rnd.normals(NOFF)
            qoff = q_mean + q_sd * np.einsum("dji,id->jd", q_chol, zq)  # [5, nd]
            qr = mill_rate[q] * 24.0 / recovery.REFERENCE_TPD
            inv_q = 1.0 / qr
            g_ratio = (1.0 - np.exp(-recovery.GANGUE_KTAU * inv_q)) / (1.0 - np.exp(-recovery.GANGUE_KTAU))
            resp = []
            for s in range(ns):
                off = qoff + src_off[s]
                zero = [(off[j] == 0.0) if (off[j] == 0.0).any() else None for j in range(3)]
                rpb = pt[0] * _kinetic(kind, pt[1] * inv_q, pt[3], pt[4])
                rzn = pt[5] * _kinetic(kind, pt[6] * inv_q, pt[8], pt[9])
                e_pb = np.clip(pt[14] * g_ratio * np.exp(off[3]), 0.0, 1.0)
                e_zn = np.clip(pt[15] * g_ratio * np.exp(off[4]), 0.0, 1.0)
                resp.append((rpb, rzn, np.exp(-off[:3]), zero, e_pb, (1.0 - e_pb) * e_zn))
            gq = g_mean[:, q, :].reshape(-1, 1) * gfac  # mean grades of deliveries this quarter
            tonnes_q = supply[:, q]
            q_prev = q
            if not daily:
                acc[:] = 0.0
        if daily:
            rec[:] = 0.0
        # ---- grades and tonnes of today's deliveries
        z = rnd.normals(4 * ns)  # rows 4 s + e: grade innovations, 4 s + 3: tonnage
        zg = z.reshape(ns, 4, nd)[:, :3].reshape(3 * ns, nd)
        x *= phi
        x += innov * (chol @ zg)
        arr_g = (gq * np.exp(x)).reshape(ns, 3, nd)
        if mode == MODE_RATES:
            cv = rate_cv[:, None]
            arr_t = tonnes_q[:, None] * np.exp(cv * z[3::4] - 0.5 * cv * cv)
            arr_t *= t >= start
        # ---- mill hours: the renewal process only on draws failing or under repair this step
        rnd.step_uniforms()
        if mttr_h > 0.0:
            busy = np.flatnonzero((down_rem > 0.0) | (ttf < step_h))
            tt = ttf[busy]  # a copy, taken before the whole-step update of the others
            ttf -= step_h
            up.fill(step_h)
            if busy.size:
                dr, mt = down_rem[busy], mtbf_h[busy]
                rem = np.full(busy.size, step_h)
                down = np.minimum(dr, rem)
                dr = dr - down
                rem = rem - down
                u_b = np.zeros(busy.size)
                live = rem > 0.0
                j = 0
                while live.any():
                    ends = live & (tt >= rem)
                    u_b = np.where(ends, u_b + rem, u_b)
                    tt = np.where(ends, tt - rem, tt)
                    fail = live & ~ends
                    u_b = np.where(fail, u_b + tt, u_b)
                    rem = np.where(fail, rem - tt, rem)
                    tt = np.where(fail, 0.0, tt)
                    if j == N_FAIL:
                        u_b = np.where(fail, u_b + rem, u_b)
                        break
                    u1, u2 = rnd.fail_uniforms(busy, j)
                    dur = -mttr_h * np.log1p(-u1)
                    lost = np.minimum(dur, rem)
                    rem = np.where(fail, rem - lost, rem)
                    dr = np.where(fail, dur - lost, dr)
                    tt = np.where(fail, -mt * np.log1p(-u2), tt)
                    live = fail & (rem > 0.0)
                    j += 1
                ttf[busy], down_rem[busy], up[busy] = tt, dr, u_b
        else:
            np.multiply(a_d, step_h, out=up)
        demand = mill_rate[q] * up
        if mode == MODE_BLEND:
            active = (t >= start) & (t >= hold_until[:, None])
            tot = (np.where(active, tonnes_q[:, None], 0.0)).sum(axis=0)
            share = np.divide(demand, tot, out=np.zeros(nd), where=tot > 0.0)
            arr_t = np.where(active & (tot > 0.0), tonnes_q[:, None] * share, 0.0)
        # ---- deliveries: holding piles or the ROM stockpile
        am = arr_t[:, None, :] * arr_g  # [ns, 3, nd]
        rec[F_MINED_T] += arr_t.sum(axis=0)
        rec[F_MINED_M : F_MINED_M + 3] += am.sum(axis=0)
        for s in range(ns):
            if t < hold_until[s]:
                hd_t[s] += arr_t[s]
                hd_m[s] += am[s]
            else:
                st_t[s] += arr_t[s] + hd_t[s]
                st_m[s] += am[s] + hd_m[s]
                hd_t[s] = 0.0
                hd_m[s] = 0.0
        # ---- reclaim in stockpile shares, and the mill's response to each source's ore
        stock = st_t.sum(axis=0)
        feed = np.minimum(demand, stock)
        f = np.divide(feed, stock, out=np.zeros(nd), where=stock > 0.0)
        ts_all = st_t * f
        me_all = st_m * f
        on_all = ts_all > 0.0
        head_all = np.divide(me_all, ts_all[:, None, :], out=np.zeros_like(me_all), where=on_all[:, None, :])
        st_t -= ts_all
        st_m -= me_all
        bt = ts_all.sum(axis=0)
        rec[F_FEED_T] += bt
        rec[F_SRC_T : F_SRC_T + ns] += ts_all
        if grade_dep == 1:
            # the circuit's grade factor from the blend it is fed (one per step, all sources)
            blend = me_all[:, 1:].sum(axis=0)  # Pb, Zn [2, nd]
            np.divide(blend, bt, out=blend, where=bt > 0.0)
            b_pb, b_zn = blend[0], blend[1]
            inf = np.full(nd, np.inf)
            gpb = np.maximum(0.0, 1.0 - np.divide(pb_tail, b_pb, out=inf, where=b_pb > 0.0))
            inf = np.full(nd, np.inf)
            gzn = np.maximum(0.0, 1.0 - np.divide(zn_tail, b_zn, out=inf, where=b_zn > 0.0))
        for s in range(ns):
            ts, head = ts_all[s], head_all[s]
            f_ag, f_pb, f_zn = head[0], head[1], head[2]
            rpb, rzn, einv, zero, e_pb, e_zn2 = resp[s]
            if grade_dep == 1:
                r_pb = _logit_shift(np.clip(rpb * gpb, 0.0, 1.0), einv[0], zero[0])
                r_znc = _logit_shift(np.clip(rzn * gzn, 0.0, 1.0), einv[1], zero[1])
            else:
                r_pb = _logit_shift(np.clip(rpb, 0.0, 1.0), einv[0], zero[0])
                r_znc = _logit_shift(np.clip(rzn, 0.0, 1.0), einv[1], zero[1])
            r_ag_pb = _logit_shift(_relfloat(r_pb, a_pb, a_pb_zero), einv[2], zero[2])
            r_ag_zn = (1.0 - r_ag_pb) * _relfloat(r_znc, a_zn, a_zn_zero)
            pb_zn = (1.0 - r_pb) * pbzn_f
            zn_zn = zn_rest * r_znc
            galena = f_pb / recovery.GALENA_PB
            sphal = f_zn / recovery.SPHALERITE_ZN
            gangue = np.maximum(1.0 - galena - sphal, 0.0)
            con0 = (galena * r_pb + sphal * zn_pb + gangue * e_pb + f_ag * r_ag_pb) * ts
            con1 = (galena * pb_zn + sphal * zn_zn + gangue * e_zn2 + f_ag * r_ag_zn) * ts
            rec[F_STREAM_T] += con0
            rec[F_STREAM_T + 1] += con1
            rec[F_STREAM_T + 2] += ts - con0 - con1
            for e, (s0, s1) in enumerate(((r_ag_pb, r_ag_zn), (r_pb, pb_zn), (zn_pb, zn_zn))):
                el = ts * head[e]
                a = el * s0
                b = el * s1
                rec[F_FEED_M + e] += el
                rec[F_STREAM_M + e] += a
                rec[F_STREAM_M + 3 + e] += b
                rec[F_STREAM_M + 6 + e] += el - a - b
        # ---- stockpile over capacity: divert the excess (mixed composition)
        stock = st_t.sum(axis=0)
        over = stock > stock_cap
        if over.any():
            g = np.divide(stock - stock_cap, stock, out=np.zeros(nd), where=over)
            dv = st_t * g
            dm = st_m * g
            rec[F_DIVERTED_T] += dv.sum(axis=0)
            rec[F_DIVERTED_M : F_DIVERTED_M + 3] += dm.sum(axis=0)
            st_t -= dv
            st_m -= dm
        rec[F_UP_H] += up
        rec[F_CAL_H] += step_h
        if daily or last_of_q[t]:
            # levels: end-of-step state, only needed at the quarter's end unless per-step output
            rec[F_STOCK_T] = st_t.sum(axis=0)
            rec[F_HOLD_T] = hd_t.sum(axis=0)
            rec[F_STOCK_M : F_STOCK_M + 3] = st_m.sum(axis=0)
            rec[F_HOLD_M : F_HOLD_M + 3] = hd_m.sum(axis=0)
            rec[F_SCATTER : F_SCATTER + NOFF] = qoff
        if daily:
            out_d[:, t, :] = rec.T
            acc[:F_STOCK_T] += rec[:F_STOCK_T]
            acc[F_STOCK_T:F_SRC_T] = rec[F_STOCK_T:F_SRC_T]
            acc[F_SRC_T:] += rec[F_SRC_T:]
        if last_of_q[t]:
            out_q[:, q, :] = acc.T
            if daily:
                acc[:] = 0.0
