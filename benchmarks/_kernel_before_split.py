"""FROZEN COPY for one benchmark run: the Monte Carlo kernel as one body, before its split.

Kept to measure the split in the same pytest-benchmark run (test_bench_kernel_split.py);
not part of the package. Original docstring follows.

The Monte Carlo hot loop: a time-stepped mill simulation over draws x steps (numba).

One numba kernel, :func:`simulate`, parallel over draws (``prange``). Each draw owns two
random streams derived only from ``(seed, global draw index)``, so a draw's numbers do
not depend on which thread, chunk or Dask worker computes it: results are bit-identical
whatever the thread count or chunk size. The NumPy twin is :mod:`kenomill._mc_reference`.

Random numbers
--------------
SplitMix64 (Steele, Lea & Flood 2014) keyed per draw: ``state = key(seed, draw, stream)``,
``next = mix64(state += GAMMA)``. Normals by Doornik's ZIGNOR ziggurat (128 blocks,
Doornik 2005): one 64-bit word gives both the block index (low 7 bits) and the uniform
(top 53 bits), so most normals cost one multiply-xorshift hash and one table compare.
Box-Muller (log, sqrt, sin, cos per pair) would cost about as much as the whole mill
response per step, which issue 6's "within 1.5x of pre-generated numbers" forbids.
Normals and uniforms come from two separate streams of the draw, each consumed in a fixed
order (setup, then per quarter, then per step), so the same kernel can instead read
pre-generated numbers (``use_pre=1``, filled by :func:`fill_random` from the same streams):
identical results, and the compute floor for the benchmark.

Order of consumption per draw (``normals``): theta (k), the scatter scale (1), the
long-run availability (1), source response offsets (5 per source), mean-grade factors
(3 per source), AR(1) initial states (3 per source); then at the first step of each
quarter the 5 scatter offsets; at every step 4 per source (3 grade innovations, 1
tonnage). ``uniforms``: 1 per source (start delay), 1 (first failure), then
2 * N_FAIL per step (downtime). :func:`n_random` gives the counts.

The blend
---------
The mill reclaims every source in its stockpile share and the circuit responds to the
blended feed of the step, component by component (:func:`kenomill.recovery.respond_feed`): the fixed-tail
grade factor ``1 - tail / f`` is the blend's (the circuit's tail assay is set by what it is
fed, not by each ore on its own), while each ore's minerals and gangue float with that
ore's offsets (liberation and surface chemistry are properties of the ore, which blending
does not change). Concentrate masses are the components' minerals and gangue summed, so
the blend's recovery of an element is the metal-weighted recovery of its components and
its gangue entrainment the gangue-weighted one. Averaging the offsets themselves
(tonnage- or metal-weighted logits) was not chosen: a logit average is not the recovery of
any mixture, and tonnage weights give Lucky Queen's 1.4 % zinc as much say over zinc
flotation as Onek's 12 %. Identical sources give exactly the single-source response. Before
this, each source went through the response at its own head grade, so Lucky Queen ore
(1.4 % Zn, below the fitted zinc tail) got 0 % zinc recovery.

Layout of the output records (quarterly sums and, on request, per-step values) is given by
the ``F_*`` constants; units are tonnes, hours and mass fractions (no g/t, no %).

References
----------
Steele, G.L., Lea, D., Flood, C.H., 2014. Fast splittable pseudorandom number generators.
OOPSLA '14, 453-472. Doornik, J.A., 2005. An improved ziggurat method to generate normal
random samples. University of Oxford working paper.
"""

from __future__ import annotations

import math

import numba as nb
import numpy as np

from kenomill import _kernels, _numba_cache, recovery
from kenomill._kernels import forward_row
from kenomill.recovery import respond_feed, response_constants

# the kernel inlines the mill response (recovery) and forward_row (_kernels): its cache
# must notice when those files change, not only this one
_numba_cache.track(__file__, [recovery.__file__, _kernels.__file__])

# ----------------------------------------------------------------- record layout
F_FEED_T = 0  # mill feed [t]
F_FEED_M = 1  # mill feed metal Ag, Pb, Zn [t]  (3)
F_STREAM_T = 4  # pbcon, zncon, tails [t]  (3)
F_STREAM_M = 7  # metal [t] in pbcon(Ag,Pb,Zn), zncon(...), tails(...)  (9): 7 + 3*stream + element
F_UP_H = 16  # mill operating hours [h]
F_CAL_H = 17  # calendar hours [h]
F_MINED_T = 18  # ore delivered by the mines (to stockpile or holding piles) [t]
F_MINED_M = 19  # metal in it [t] (3)
F_DIVERTED_T = 22  # ore diverted off the full ROM stockpile [t]
F_DIVERTED_M = 23  # (3)
F_STOCK_T = 26  # ROM stockpile at the end of the step / quarter [t]
F_STOCK_M = 27  # (3)
F_HOLD_T = 30  # ore held in holding piles (permitting) at the end [t]
F_HOLD_M = 31  # (3)
F_SCATTER = 34  # the quarter's scatter offsets (5, OFFSET_NAMES order; copied per step)
F_SRC_T = 39  # mill feed by source [t] (n_sources)
N_FIXED = F_SRC_T
#: fields that are levels (end-of-period state or per-quarter constants), not flows
LEVEL_FIELDS = tuple(range(F_STOCK_T, F_SRC_T))

MODE_RATES, MODE_BLEND = 0, 1
#: most mill failures simulated within one step (see the downtime comment in simulate)
N_FAIL = 4
NOFF = recovery.N_OFFSETS

# ----------------------------------------------------------------- random numbers
_GAMMA = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_MASK = (1 << 64) - 1
_TWO53 = 1.0 / 9007199254740992.0  # 2**-53


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
def uniform(st):
    """Uniform on [0, 1) with 53 random bits from stream state ``st[1]`` (uint64)."""
    return float(_next_u64(st) >> np.uint64(11)) * _TWO53


@nb.njit(cache=True)
def _normal_tail(st, negative):
    # Marsaglia (1964) tail beyond ZIG_R, as in Doornik's DRanNormalTail
    while True:
        x = math.log(1.0 - uniform(st)) / ZIG_R
        y = math.log(1.0 - uniform(st))
        if -2.0 * y >= x * x:
            return x - ZIG_R if negative else ZIG_R - x


@nb.njit(cache=True)
def normal(st):
    """Standard normal from stream state ``st[1]`` (ZIGNOR ziggurat, Doornik 2005)."""
    while True:
        r = _next_u64(st)
        i = int(r & np.uint64(127))
        u = 2.0 * (float(r >> np.uint64(11)) * _TWO53) - 1.0
        if abs(u) < ZIG_RATIO[i]:
            return u * ZIG_X[i]
        if i == 0:
            return _normal_tail(st, u < 0.0)
        x = u * ZIG_X[i]
        f0 = math.exp(-0.5 * (ZIG_X[i] * ZIG_X[i] - x * x))
        f1 = math.exp(-0.5 * (ZIG_X[i + 1] * ZIG_X[i + 1] - x * x))
        if f1 + uniform(st) * (f0 - f1) < 1.0:
            return x


def n_random(n_theta: int, n_sources: int, n_quarters: int, n_steps: int) -> tuple[int, int]:
    """Numbers of normals and uniforms one draw consumes (see the module docstring)."""
    nz = n_theta + 2 + 11 * n_sources + NOFF * n_quarters + 4 * n_sources * n_steps
    nu = n_sources + 1 + 2 * N_FAIL * n_steps
    return nz, nu


@nb.njit("void(u8, i8, f8[:, ::1], f8[:, ::1])", cache=True, parallel=True)
def fill_random(seed, draw0, z, u):
    """Pre-generate each draw's normals ``z[d, :]`` and uniforms ``u[d, :]`` from its streams."""
    for d in nb.prange(z.shape[0]):
        gd = draw0 + np.int64(d)
        sn = np.empty(1, np.uint64)
        su = np.empty(1, np.uint64)
        sn[0] = stream_key(seed, gd, 0)
        su[0] = stream_key(seed, gd, 1)
        for i in range(z.shape[1]):
            z[d, i] = normal(sn)
        for i in range(u.shape[1]):
            u[d, i] = uniform(su)


@nb.njit(cache=True, inline="always")
def _z(sn, pre, pos):
    # next normal: from the stream, or from the pre-generated row when one is given
    if pre.shape[0] > 0:
        v = pre[pos[0]]
        pos[0] += 1
        return v
    return normal(sn)


@nb.njit(cache=True, inline="always")
def _u(su, pre, pos):
    if pre.shape[0] > 0:
        v = pre[pos[1]]
        pos[1] += 1
        return v
    return uniform(su)


# ----------------------------------------------------------------- mill response
# the two halves of recovery's mill response: response_constants per draw, quarter and
# source (hoisted out of the steps), respond_feed per step and source
N_RC = recovery.N_RC


# ----------------------------------------------------------------- the hot loop
_SIG = (
    "void(u8, i8, i8, i8, f8[::1], i8[::1], f8[::1], f8[:, ::1], f8[::1], f8[::1],"  # model
    " i8[::1], f8[::1], f8[:, ::1],"  # folding theta at active bounds
    " f8[::1], f8[:, ::1], f8,"  # scatter
    " i8[::1], f8,"  # time
    " i8, f8[:, ::1], f8[::1], f8[::1], f8[::1], i8[::1],"  # supply
    " f8[:, :, ::1], f8[:, ::1], f8[:, ::1], f8[:, :, ::1], f8[:, ::1],"  # grades
    " f8[:, ::1], f8[:, ::1],"  # response offsets of each source
    " f8[::1], f8,"  # stockpile
    " f8[::1], f8, f8, f8,"  # mill
    " i8, f8[:, ::1], f8[:, ::1],"  # pre-generated numbers
    " f8[:, :, ::1], f8[:, :, ::1], f8[:, ::1])"  # outputs
)


@nb.njit(_SIG, cache=True, parallel=True)
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
    """Simulate ``out_q.shape[0]`` draws (global indices ``draw0 + d``) over ``step_q.size`` steps.

    Parameters (units: t, h, mass fractions; ``ns`` sources, ``nq`` quarters, ``k`` free parameters)
    ----------
    seed : uint64
        Seed; with ``draw0 + d`` the only input of draw ``d``'s random streams.
    kind, grade_dep : int
        Recovery model (:func:`kenomill.recovery.respond`).
    p_base : f8[N_FULL]
        Full parameter vector; ``free_idx`` entries replaced by each draw's theta.
    theta0, theta_fac, theta_lo, theta_hi : f8[k], f8[k, k], f8[k], f8[k]
        theta = clip(theta0 + fold(theta_fac @ z), lo, hi), as ``Calibration.draw_theta``;
        a zero ``theta_fac`` gives the calibrated parameters in every draw.
    fold_idx, fold_side, fold_vecs : i8[m], f8[m], f8[m, k]
        Parameters whose optimum is on a bound, and how to fold a draw past it
        (:func:`kenomill.recovery.fold_deviation`, ``Calibration.fold_vectors``).
    scatter_sd, scatter_chol, scatter_dof : f8[N_OFFSETS], f8[N_OFFSETS, N_OFFSETS], float
        SD, Cholesky factor of the correlation and degrees of freedom of the
        quarter-to-quarter offsets. Each quarter draws correlated normal offsets; each
        draw scales them by sqrt(dof / chi2(dof)) (the scatter estimated from a few
        quarters is itself uncertain: one scale per draw makes every quarter's offset
        Student-t, as the calibration's predictions, with the quarters of a draw sharing
        it). chi2 by the Wilson-Hilferty cube (one normal); ``dof <= 0``: no scaling.
    step_q : i8[n_steps]
        Quarter index of each step (non-decreasing); ``step_h`` hours per step.
    mode : int
        ``MODE_RATES``: ``supply[s, q]`` = tonnes mined per step; ``MODE_BLEND``:
        ``supply[s, q]`` = share of the mill's demand delivered by source ``s``.
    rate_cv : f8[ns]
        Step-to-step log-SD of tonnes mined (rates mode; lognormal, mean kept).
    start_lo, start_span : f8[ns]
        First step of deliveries = start_lo + floor(U * start_span) (uncertain start).
    hold_until : i8[ns]
        Deliveries before this step wait in a holding pile; it joins the ROM stockpile then.
    g_mean : f8[ns, nq, 3]
        Mean Ag, Pb, Zn mass fractions of delivered ore.
    g_sd, g_phi, g_chol, g_mean_sd : f8[ns, 3], f8[ns, 3], f8[ns, 3, 3], f8[ns, 3]
        Stationary log-SD, AR(1) coefficient per step, Cholesky factor of the correlation
        of the innovations, and the per-draw log-SD of the mean grade (resource uncertainty).
    r_mean, r_sd : f8[ns, N_OFFSETS]
        Per-draw response offsets of each source's ore (mean, SD).
    stock0 : f8[ns]
        Initial ROM stockpile by source (at the source's first-quarter mean grade) [t].
    stock_cap : float
        ROM stockpile capacity [t]; the excess is diverted (mixed composition).
    mill_rate : f8[nq]
        Feed rate while operating [t/h].
    availability, availability_sd, mttr_h : float
        Long-run availability, its per-draw SD (the long-run value is itself uncertain:
        each draw runs at clip(availability + SD z, 0.05, 1)) and the mean repair time
        [h]; ``mttr_h == 0``: every step runs ``availability * step_h`` hours (no
        stochastic downtime). The mill's feed rate (``mill_rate``) is planned on the
        stated availability whatever a draw's turns out to be.
    use_pre, pre_z, pre_u : int, f8[nd, nz], f8[nd, nu]
        1 to read the random numbers from ``pre_z``/``pre_u`` (:func:`fill_random`).
    out_q : f8[nd, nq, N_FIXED + ns] (out)
        Quarterly sums (flows) and end-of-quarter levels (``LEVEL_FIELDS``).
    out_d : f8[nd, n_steps or 0, N_FIXED + ns] (out)
        Per-step records when its second dimension is ``n_steps``.
    out_draw : f8[nd, k + 9 ns + 2] (out)
        Per-draw drivers: theta, response offsets (5 ns), mean-grade factors (3 ns),
        start delay in steps (ns), scatter scale (1), long-run availability (1).
    """
    nd = out_q.shape[0]
    nf = out_q.shape[2]
    ns = supply.shape[0]
    n_steps = step_q.shape[0]
    k = theta0.shape[0]
    daily = out_d.shape[1] > 0
    for d in nb.prange(nd):
        # prange may type its index as unsigned; keep the draw index int64 for the key
        gd = draw0 + np.int64(d)
        sn = np.empty(1, np.uint64)
        su = np.empty(1, np.uint64)
        sn[0] = stream_key(seed, gd, 0)
        su[0] = stream_key(seed, gd, 1)
        pos = np.zeros(2, np.int64)
        prz = pre_z[d] if use_pre == 1 else pre_z[0, :0]
        pru = pre_u[d] if use_pre == 1 else pre_u[0, :0]
        oq = out_q[d]
        oq[:, :] = 0.0
        # ---- per-draw setup: parameters, source responses, mean grades, start delays
        p = p_base.copy()
        zt = np.empty(k)
        for i in range(k):
            zt[i] = _z(sn, prz, pos)
        dev = np.empty(k)
        for i in range(k):
            v = 0.0
            for j in range(k):
                v += theta_fac[i, j] * zt[j]
            dev[i] = v
        recovery.fold_deviation(dev, fold_idx, fold_side, fold_vecs)
        for i in range(k):
            v = min(max(theta0[i] + dev[i], theta_lo[i]), theta_hi[i])
            p[free_idx[i]] = v
            out_draw[d, i] = v
        zs = _z(sn, prz, pos)
        if scatter_dof > 0.0:
            c9 = 2.0 / (9.0 * scatter_dof)
            wh = max(1.0 - c9 + zs * math.sqrt(c9), 1e-3)  # Wilson-Hilferty: chi2/dof = wh^3
            s_scale = 1.0 / math.sqrt(wh * wh * wh)
        else:
            s_scale = 1.0
        out_draw[d, k + 9 * ns] = s_scale
        a_d = min(max(availability + availability_sd * _z(sn, prz, pos), 0.05), 1.0)
        mtbf_h = a_d / (1.0 - a_d) * mttr_h if a_d < 1.0 else np.inf
        out_draw[d, k + 9 * ns + 1] = a_d
        src_off = np.empty((ns, NOFF))
        for s in range(ns):
            for j in range(NOFF):
                src_off[s, j] = r_mean[s, j] + r_sd[s, j] * _z(sn, prz, pos)
                out_draw[d, k + NOFF * s + j] = src_off[s, j]
        mean_fac = np.empty((ns, 3))
        for s in range(ns):
            for e in range(3):
                sd = g_mean_sd[s, e]
                mean_fac[s, e] = math.exp(sd * _z(sn, prz, pos) - 0.5 * sd * sd)
                out_draw[d, k + NOFF * ns + 3 * s + e] = mean_fac[s, e]
        x = np.empty((ns, 3))  # AR(1) log-grade deviations, stationary start
        zz = np.empty(3)
        for s in range(ns):
            for e in range(3):
                zz[e] = _z(sn, prz, pos)
            for e in range(3):
                c = 0.0
                for j in range(e + 1):
                    c += g_chol[s, e, j] * zz[j]
                x[s, e] = g_sd[s, e] * c
        # per-step constants: innovation SD of the AR(1) and the lognormal mean correction
        innov = np.empty((ns, 3))
        gfac = np.empty((ns, 3))
        for s in range(ns):
            for e in range(3):
                sd = g_sd[s, e]
                innov[s, e] = math.sqrt(1.0 - g_phi[s, e] * g_phi[s, e]) * sd
                gfac[s, e] = mean_fac[s, e] * math.exp(-0.5 * sd * sd)
        start = np.empty(ns, np.int64)
        for s in range(ns):
            start[s] = int(start_lo[s] + math.floor(_u(su, pru, pos) * start_span[s]))
            out_draw[d, k + 8 * ns + s] = start[s] - start_lo[s]
        ttf = -mtbf_h * math.log1p(-_u(su, pru, pos))  # operating hours to the first failure
        # ---- state
        st_t = np.zeros(ns)  # ROM stockpile by source [t]
        st_m = np.zeros((ns, 3))  # and its metal [t]
        hd_t = np.zeros(ns)  # holding piles [t]
        hd_m = np.zeros((ns, 3))
        for s in range(ns):
            st_t[s] = stock0[s]
            for e in range(3):
                st_m[s, e] = stock0[s] * g_mean[s, 0, e]
        arr_t = np.empty(ns)
        arr_g = np.empty((ns, 3))
        qoff = np.zeros(NOFF)
        zq = np.empty(NOFF)
        soff = np.empty((ns, NOFF))  # offsets of each source's ore this quarter
        rc = np.empty((ns, N_RC))  # response constants of each source this quarter
        split = np.empty((3, 2))
        pull = np.empty(2)
        head = np.empty(3)
        blend = np.empty(3)  # Ag, Pb, Zn mass fractions of the step's blended circuit feed
        part_t = np.empty(ns)  # tonnes of each source in it
        part_m = np.empty((ns, 3))  # and their metal [t]
        con_t = np.empty(2)
        o_t = np.empty(3)
        o_m = np.empty((3, 3))
        rec = np.empty(nf)
        ubuf = np.empty(2 * N_FAIL)
        down_rem = 0.0
        q_prev = -1
        for t in range(n_steps):
            q = step_q[t]
            if q != q_prev:
                for j in range(NOFF):
                    zq[j] = _z(sn, prz, pos)
                for j in range(NOFF):
                    c = 0.0
                    for i in range(j + 1):
                        c += scatter_chol[j, i] * zq[i]
                    qoff[j] = scatter_sd[j] * s_scale * c
                # the quarter's response constants of each source's ore (hoisted out of the steps)
                qr = mill_rate[q] * 24.0 / recovery.REFERENCE_TPD
                for s in range(ns):
                    for j in range(NOFF):
                        soff[s, j] = qoff[j] + src_off[s, j]
                    response_constants(kind, p, qr, soff[s], rc[s])
                q_prev = q
            rec[:] = 0.0
            # -- grades and tonnes of today's deliveries (numbers drawn whether used or not)
            for s in range(ns):
                for e in range(3):
                    zz[e] = _z(sn, prz, pos)
                zr = _z(sn, prz, pos)
                for e in range(3):
                    c = 0.0
                    for j in range(e + 1):
                        c += g_chol[s, e, j] * zz[j]
                    x[s, e] = g_phi[s, e] * x[s, e] + innov[s, e] * c
                    arr_g[s, e] = g_mean[s, q, e] * gfac[s, e] * math.exp(x[s, e])
                if mode == MODE_RATES and t >= start[s]:
                    cv = rate_cv[s]
                    arr_t[s] = supply[s, q] * math.exp(cv * zr - 0.5 * cv * cv)
                else:
                    arr_t[s] = 0.0
            # -- mill operating hours: alternating renewal process (exponential times to
            #    failure in operating hours, exponential repairs carried over between steps).
            #    2 * N_FAIL uniforms per step whether used or not (a fixed count keeps the
            #    pre-generated variant identical); a failure beyond N_FAIL in one step falls
            #    at the start of the next. With 1 failure per step the long-run availability
            #    came out 0.851 instead of 0.80 (MTBF 16 h, daily steps); with 4, 0.800.
            for j in range(2 * N_FAIL):
                ubuf[j] = _u(su, pru, pos)
            if mttr_h > 0.0:
                rem = step_h
                down = min(down_rem, rem)
                down_rem -= down
                rem -= down
                up = 0.0
                j = 0
                while rem > 0.0:
                    if ttf >= rem:
                        ttf -= rem
                        up += rem
                        break
                    up += ttf
                    rem -= ttf
                    ttf = 0.0
                    if j == N_FAIL:
                        up += rem
                        break
                    dur = -mttr_h * math.log1p(-ubuf[2 * j])
                    lost = min(dur, rem)
                    rem -= lost
                    down_rem = dur - lost
                    ttf = -mtbf_h * math.log1p(-ubuf[2 * j + 1])
                    j += 1
            else:
                up = step_h * a_d
            demand = mill_rate[q] * up
            # -- blend mode: deliveries meet demand in the quarter's shares of the sources
            #    that have started and are not held
            if mode == MODE_BLEND:
                tot = 0.0
                for s in range(ns):
                    if t >= start[s] and t >= hold_until[s]:
                        tot += supply[s, q]
                for s in range(ns):
                    if tot > 0.0 and t >= start[s] and t >= hold_until[s]:
                        arr_t[s] = demand * supply[s, q] / tot
                    else:
                        arr_t[s] = 0.0
            # -- deliveries to holding piles or the ROM stockpile; holds released
            for s in range(ns):
                a = arr_t[s]
                rec[F_MINED_T] += a
                for e in range(3):
                    rec[F_MINED_M + e] += a * arr_g[s, e]
                if t < hold_until[s]:
                    hd_t[s] += a
                    for e in range(3):
                        hd_m[s, e] += a * arr_g[s, e]
                else:
                    st_t[s] += a + hd_t[s]
                    for e in range(3):
                        st_m[s, e] += a * arr_g[s, e] + hd_m[s, e]
                        hd_m[s, e] = 0.0
                    hd_t[s] = 0.0
            # -- reclaim from the mixed stockpile: every source in its stockpile share; the
            #    reclaimed sources are one blended circuit feed
            stock = 0.0
            for s in range(ns):
                stock += st_t[s]
            feed = min(demand, stock)
            f = feed / stock if stock > 0.0 else 0.0
            bt = 0.0
            for e in range(3):
                blend[e] = 0.0
            for s in range(ns):
                ts = st_t[s] * f
                part_t[s] = ts
                if ts <= 0.0:
                    continue
                for e in range(3):
                    me = st_m[s, e] * f
                    part_m[s, e] = me
                    blend[e] += me
                    st_m[s, e] -= me
                st_t[s] -= ts
                bt += ts
            if bt > 0.0:
                for e in range(3):
                    blend[e] /= bt
            # -- the circuit's response to the blend, component by component: each ore's
            #    minerals float with that ore's offsets (its floatability) at the grade
            #    factor of the blend; concentrate masses are the components' minerals and
            #    gangue summed (see respond_feed)
            for s in range(ns):
                ts = part_t[s]
                if ts <= 0.0:
                    continue
                for e in range(3):
                    head[e] = part_m[s, e] / ts
                respond_feed(grade_dep, p, head, blend, soff[s], rc[s], split, pull)
                con_t[0] = pull[0] * ts
                con_t[1] = pull[1] * ts
                forward_row(ts, head, split, con_t, o_t, o_m)
                rec[F_FEED_T] += ts
                rec[F_SRC_T + s] += ts
                for e in range(3):
                    rec[F_FEED_M + e] += ts * head[e]
                for i in range(3):
                    rec[F_STREAM_T + i] += o_t[i]
                    for e in range(3):
                        rec[F_STREAM_M + 3 * i + e] += o_m[i, e]
            # -- stockpile over capacity: divert the excess (mixed composition)
            stock = 0.0
            for s in range(ns):
                stock += st_t[s]
            if stock > stock_cap:
                g = (stock - stock_cap) / stock
                for s in range(ns):
                    dv = st_t[s] * g
                    rec[F_DIVERTED_T] += dv
                    st_t[s] -= dv
                    for e in range(3):
                        dm = st_m[s, e] * g
                        rec[F_DIVERTED_M + e] += dm
                        st_m[s, e] -= dm
            rec[F_UP_H] = up
            rec[F_CAL_H] = step_h
            for s in range(ns):
                rec[F_STOCK_T] += st_t[s]
                rec[F_HOLD_T] += hd_t[s]
                for e in range(3):
                    rec[F_STOCK_M + e] += st_m[s, e]
                    rec[F_HOLD_M + e] += hd_m[s, e]
            for j in range(NOFF):
                rec[F_SCATTER + j] = qoff[j]
            # -- accumulate: flows summed over the quarter, levels as at its end
            for i in range(nf):
                if i >= F_STOCK_T and i < F_SRC_T:
                    oq[q, i] = rec[i]
                else:
                    oq[q, i] += rec[i]
            if daily:
                for i in range(nf):
                    out_d[d, t, i] = rec[i]
