"""The Monte Carlo hot loop: a time-stepped mill simulation over draws x steps (numba).

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

Order of consumption per draw (``normals``): the long-run availability (1), source
response offsets (5 per source), mean-grade factors (3 per source), AR(1) initial states
(3 per source); then at the first step of each quarter the 5 scatter offsets; at every
step 4 per source (3 grade innovations, 1 tonnage). ``uniforms``: 1 (which posterior draw
of the calibration), 1 per source (start delay), 1 (first failure), then 2 * N_FAIL per
step (downtime). :func:`n_random` gives the counts.

Posterior draws: each Monte Carlo draw takes one of the calibration's S posterior draws
(``Calibration.posterior_draws``), ``s = floor(U S)`` with U its first uniform, and uses
its parameters and its scatter (a new quarter's offsets: offset_mean[s] + scatter_sd[s] *
(scatter_chol[s] @ z)). This replaced (with a new random stream) a Gaussian approximation
of the parameters folded at their bounds and a Student-t scatter with one chi2 scale per
draw.

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


def n_random(n_sources: int, n_quarters: int, n_steps: int) -> tuple[int, int]:
    """Numbers of normals and uniforms one draw consumes (see the module docstring)."""
    nz = 1 + 11 * n_sources + NOFF * n_quarters + 4 * n_sources * n_steps
    nu = 1 + n_sources + 1 + 2 * N_FAIL * n_steps
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


# ----------------------------------------------------------------- the kernel's inputs
#: The kernel's inputs in order, (name, numba type): the one spelling from which the
#: signature (:data:`SIGNATURE`) and :meth:`kenomill.simulate.Plan.kernel_args` are made;
#: tests/test_simulate.py checks that :func:`simulate`, the NumPy reference and the plan
#: agree with it. Units: t, h, mass fractions (see :func:`simulate`).
INPUTS: tuple[tuple[str, str], ...] = (
    ("seed", "u8"),
    ("draw0", "i8"),
    # the recovery model
    ("kind", "i8"),
    ("grade_dep", "i8"),
    ("p_base", "f8[::1]"),
    ("free_idx", "i8[::1]"),
    # the posterior draws of the calibration (Calibration.posterior_draws), S rows each
    ("post_theta", "f8[:, ::1]"),
    ("post_offset_mean", "f8[:, ::1]"),
    ("post_scatter_sd", "f8[:, ::1]"),
    ("post_scatter_chol", "f8[:, :, ::1]"),
    # time
    ("step_q", "i8[::1]"),
    ("step_h", "f8"),
    # supply
    ("mode", "i8"),
    ("supply", "f8[:, ::1]"),
    ("rate_cv", "f8[::1]"),
    ("start_lo", "f8[::1]"),
    ("start_span", "f8[::1]"),
    ("hold_until", "i8[::1]"),
    # grades
    ("g_mean", "f8[:, :, ::1]"),
    ("g_sd", "f8[:, ::1]"),
    ("g_phi", "f8[:, ::1]"),
    ("g_chol", "f8[:, :, ::1]"),
    ("g_mean_sd", "f8[:, ::1]"),
    # response offsets of each source's ore
    ("r_mean", "f8[:, ::1]"),
    ("r_sd", "f8[:, ::1]"),
    # stockpile
    ("stock0", "f8[::1]"),
    ("stock_cap", "f8"),
    # mill
    ("mill_rate", "f8[::1]"),
    ("availability", "f8"),
    ("availability_sd", "f8"),
    ("mttr_h", "f8"),
    # pre-generated random numbers
    ("use_pre", "i8"),
    ("pre_z", "f8[:, ::1]"),
    ("pre_u", "f8[:, ::1]"),
)
#: the outputs the kernel fills, after the inputs
OUTPUTS: tuple[tuple[str, str], ...] = (
    ("out_q", "f8[:, :, ::1]"),
    ("out_d", "f8[:, :, ::1]"),
    ("out_draw", "f8[:, ::1]"),
)
#: inputs given per run (seed, draws, random numbers); the plan compiles all the others
RUN_INPUTS = ("seed", "draw0", "use_pre", "pre_z", "pre_u")
#: the inputs a compiled plan holds, in kernel order
PLAN_INPUTS = tuple(n for n, _ in INPUTS if n not in RUN_INPUTS)
SIGNATURE = "void(" + ", ".join(t for _, t in INPUTS + OUTPUTS) + ")"


# ----------------------------------------------------------------- step functions
# The kernel's parts, inlined by numba into :func:`simulate` (inline="always": the same
# machine code as one body; the split is for reading and for the SIMD work on each part).
# Each works on one draw's state.
@nb.njit(cache=True, inline="always")
def draw_streams(seed, gd):
    """States of draw ``gd``'s normal and uniform streams, and their read positions (pre-generated)."""
    sn = np.empty(1, np.uint64)
    su = np.empty(1, np.uint64)
    sn[0] = stream_key(seed, gd, 0)
    su[0] = stream_key(seed, gd, 1)
    return sn, su, np.zeros(2, np.int64)


@nb.njit(cache=True, inline="always")
def initial_state(stock0, g_mean):
    """ROM stockpile by source [t] and its metal [t] (at each source's first-quarter grade), empty holds."""
    ns = stock0.shape[0]
    st_t = stock0.copy()
    st_m = np.empty((ns, 3))
    for s in range(ns):
        for e in range(3):
            st_m[s, e] = stock0[s] * g_mean[s, 0, e]
    return st_t, st_m, np.zeros(ns), np.zeros((ns, 3))


@nb.njit(cache=True, inline="always")
def step_work(ns, nf):
    """Work arrays of a draw's steps (allocated once per draw; unpacked into locals, see :func:`mill`).

    Deliveries' tonnes and grades, normals, the quarter's scatter, each source's offsets and
    response constants this quarter, the step's record, the downtime uniforms.
    """
    return (
        np.empty(ns),
        np.empty((ns, 3)),
        np.empty(3),
        np.zeros(NOFF),
        np.empty((ns, NOFF)),
        np.empty((ns, N_RC)),
        np.empty(nf),
        np.empty(2 * N_FAIL),
    )


@nb.njit(cache=True, inline="always")
def mill_work(ns):
    """Work arrays of :func:`mill` (its parameters ``part_t`` .. ``o_m``), once per draw."""
    return (
        np.empty(ns),
        np.empty((ns, 3)),
        np.empty(3),
        np.empty(3),
        np.empty((3, 2)),
        np.empty(2),
        np.empty(2),
        np.empty(3),
        np.empty((3, 3)),
    )


@nb.njit(cache=True, inline="always")
def draw_parameters(su, pru, pos, p, free_idx, post_theta, od):
    """The draw's posterior draw (1 uniform) -> its index ``s``; its parameters into ``p``."""
    n_post = post_theta.shape[0]
    s = min(int(_u(su, pru, pos) * n_post), n_post - 1)
    for i in range(post_theta.shape[1]):
        p[free_idx[i]] = post_theta[s, i]
        od[i] = post_theta[s, i]
    return s


@nb.njit(cache=True, inline="always")
def draw_availability(sn, prz, pos, availability, availability_sd, mttr_h):
    """The draw's long-run availability (1 normal) -> (a_d, mean time between failures [h])."""
    a_d = min(max(availability + availability_sd * _z(sn, prz, pos), 0.05), 1.0)
    mtbf_h = a_d / (1.0 - a_d) * mttr_h if a_d < 1.0 else np.inf
    return a_d, mtbf_h


@nb.njit(cache=True, inline="always")
def draw_starts(su, pru, pos, start_lo, start_span, mtbf_h, start, od):
    """First delivery step of each source (1 uniform each) into ``start``; -> hours to the first failure."""
    for s in range(start.shape[0]):
        start[s] = int(start_lo[s] + math.floor(_u(su, pru, pos) * start_span[s]))
        od[s] = start[s] - start_lo[s]
    return -mtbf_h * math.log1p(-_u(su, pru, pos))


@nb.njit(cache=True, inline="always")
def draw_sources(sn, prz, pos, r_mean, r_sd, g_mean_sd, g_sd, g_phi, g_chol, k, src_off, x, innov, gfac, od):
    """Per-draw source constants: response offsets, mean-grade factors, AR(1) start, step constants."""
    ns = r_mean.shape[0]
    for s in range(ns):
        for j in range(NOFF):
            src_off[s, j] = r_mean[s, j] + r_sd[s, j] * _z(sn, prz, pos)
            od[k + NOFF * s + j] = src_off[s, j]
    mean_fac = np.empty((ns, 3))
    for s in range(ns):
        for e in range(3):
            sd = g_mean_sd[s, e]
            mean_fac[s, e] = math.exp(sd * _z(sn, prz, pos) - 0.5 * sd * sd)
            od[k + NOFF * ns + 3 * s + e] = mean_fac[s, e]
    zz = np.empty(3)
    for s in range(ns):  # AR(1) log-grade deviations, stationary start
        for e in range(3):
            zz[e] = _z(sn, prz, pos)
        for e in range(3):
            c = 0.0
            for j in range(e + 1):
                c += g_chol[s, e, j] * zz[j]
            x[s, e] = g_sd[s, e] * c
    # per-step constants: innovation SD of the AR(1) and the lognormal mean correction
    for s in range(ns):
        for e in range(3):
            sd = g_sd[s, e]
            innov[s, e] = math.sqrt(1.0 - g_phi[s, e] * g_phi[s, e]) * sd
            gfac[s, e] = mean_fac[s, e] * math.exp(-0.5 * sd * sd)


@nb.njit(cache=True, inline="always")
def quarter_constants(sn, prz, pos, post, s_post, src_off, kind, p, qr, qoff, soff, rc):
    """A new quarter: its scatter offsets (5 normals), and each source's response constants.

    Offsets of posterior draw ``s``: offset_mean[s] + scatter_sd[s] * (scatter_chol[s] @ z),
    ``post`` = (offset_mean, scatter_sd, scatter_chol) (contract of
    ``Calibration.posterior_draws``).
    """
    om, sd, chol = post
    zq = np.empty(NOFF)
    for j in range(NOFF):
        zq[j] = _z(sn, prz, pos)
    for j in range(NOFF):
        c = 0.0
        for i in range(j + 1):
            c += chol[s_post, j, i] * zq[i]
        qoff[j] = om[s_post, j] + sd[s_post, j] * c
    for s in range(src_off.shape[0]):
        for j in range(NOFF):
            soff[s, j] = qoff[j] + src_off[s, j]
        response_constants(kind, p, qr, soff[s], rc[s])


@nb.njit(cache=True, inline="always")
def deliveries(
    sn, prz, pos, t, q, mode, supply, rate_cv, start, g_mean, g_chol, g_phi, innov, gfac, x, zz, arr_t, arr_g
):
    """Grades (AR(1) in log) and, in rates mode, tonnes of the step's deliveries (4 normals per source).

    The numbers are drawn whether used or not, so that a draw's stream does not depend on
    when its sources start. ``zz[3]``: work array.
    """
    for s in range(supply.shape[0]):
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


@nb.njit(cache=True, inline="always")
def blend_deliveries(t, q, demand, supply, start, hold_until, arr_t):
    """Blend mode: deliveries meet demand in the quarter's shares of the sources started and not held."""
    ns = supply.shape[0]
    tot = 0.0
    for s in range(ns):
        if t >= start[s] and t >= hold_until[s]:
            tot += supply[s, q]
    for s in range(ns):
        if tot > 0.0 and t >= start[s] and t >= hold_until[s]:
            arr_t[s] = demand * supply[s, q] / tot
        else:
            arr_t[s] = 0.0


@nb.njit(cache=True, inline="always")
def operating_hours(su, pru, pos, ubuf, step_h, mttr_h, mtbf_h, a_d, ttf, down_rem):
    """Mill operating hours of a step -> (up, ttf, down_rem).

    Alternating renewal process: exponential times to failure in operating hours,
    exponential repairs carried over between steps. 2 * N_FAIL uniforms per step whether
    used or not (a fixed count keeps the pre-generated variant identical); a failure beyond
    N_FAIL in one step falls at the start of the next. With 1 failure per step the long-run
    availability came out 0.851 instead of 0.80 (MTBF 16 h, daily steps); with 4, 0.800.
    """
    for j in range(2 * N_FAIL):
        ubuf[j] = _u(su, pru, pos)
    if mttr_h <= 0.0:
        return step_h * a_d, ttf, down_rem
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
    return up, ttf, down_rem


@nb.njit(cache=True, inline="always")
def stockpile_in(t, arr_t, arr_g, hold_until, st_t, st_m, hd_t, hd_m, rec):
    """Deliveries to holding piles or the ROM stockpile; holds released when their step comes."""
    for s in range(arr_t.shape[0]):
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


@nb.njit(cache=True, inline="always")
def stockpile_divert(st_t, st_m, stock_cap, rec):
    """Stockpile over capacity: divert the excess (mixed composition)."""
    stock = 0.0
    for s in range(st_t.shape[0]):
        stock += st_t[s]
    if stock > stock_cap:
        g = (stock - stock_cap) / stock
        for s in range(st_t.shape[0]):
            dv = st_t[s] * g
            rec[F_DIVERTED_T] += dv
            st_t[s] -= dv
            for e in range(3):
                dm = st_m[s, e] * g
                rec[F_DIVERTED_M + e] += dm
                st_m[s, e] -= dm


@nb.njit(cache=True, inline="always")
def mill(
    demand, st_t, st_m, grade_dep, p, soff, rc, part_t, part_m, blend, head, split, pull, con_t, o_t, o_m, rec
):
    """Reclaim the step's feed from the mixed stockpile and mill it as one blend.

    Every source is reclaimed in its stockpile share; the circuit responds to the blend
    component by component (:func:`kenomill.recovery.respond_feed`: the blend's grade
    factor, each ore's own offsets). ``part_t[ns]``, ``part_m[ns, 3]`` (each source's tonnes
    and metal in the blend), ``blend[3]``, ``head[3]``, ``split[3, 2]``, ``pull[2]``,
    ``con_t[2]``, ``o_t[3]``, ``o_m[3, 3]``: work arrays of the draw, passed one by one:
    packed in a tuple, the split kernel measured 458 against 389 ns per draw-step for the
    one-body kernel (one core, interleaved runs), one by one the same as it (likely
    numba's reference counting of arrays taken out of a tuple at every step).
    """
    ns = st_t.shape[0]
    stock = 0.0
    for s in range(ns):
        stock += st_t[s]
    f = min(demand, stock) / stock if stock > 0.0 else 0.0
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


@nb.njit(cache=True, inline="always")
def accumulate(rec, up, step_h, st_t, st_m, hd_t, hd_m, qoff, oq, q, out_d, d, t, daily):
    """The step's levels into ``rec``; flows summed into quarter ``q`` of ``oq``, levels as at its end."""
    rec[F_UP_H] = up
    rec[F_CAL_H] = step_h
    for s in range(st_t.shape[0]):
        rec[F_STOCK_T] += st_t[s]
        rec[F_HOLD_T] += hd_t[s]
        for e in range(3):
            rec[F_STOCK_M + e] += st_m[s, e]
            rec[F_HOLD_M + e] += hd_m[s, e]
    for j in range(NOFF):
        rec[F_SCATTER + j] = qoff[j]
    for i in range(rec.shape[0]):
        if i >= F_STOCK_T and i < F_SRC_T:
            oq[q, i] = rec[i]
        else:
            oq[q, i] += rec[i]
    if daily:
        for i in range(rec.shape[0]):
            out_d[d, t, i] = rec[i]


# ----------------------------------------------------------------- the hot loop
@nb.njit(SIGNATURE, cache=True, parallel=True)
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
    post_theta : f8[S, k]
        The calibration's posterior draws of the free parameters (``spec.free`` order);
        each Monte Carlo draw takes row ``s = floor(U S)``, U its first uniform.
    post_offset_mean, post_scatter_sd, post_scatter_chol : f8[S, 5], f8[S, 5], f8[S, 5, 5]
        Per posterior draw: mean and SD of a new quarter's offsets and the lower Cholesky
        factor of their correlation; each quarter of a draw gets offset_mean[s] +
        scatter_sd[s] * (scatter_chol[s] @ z), z standard normal (5 per quarter).
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
        start delay in steps (ns), index of the posterior draw used (1), long-run availability (1).
    """
    nd = out_q.shape[0]
    nf = out_q.shape[2]
    ns = supply.shape[0]
    n_steps = step_q.shape[0]
    k = post_theta.shape[1]
    daily = out_d.shape[1] > 0
    post = (post_offset_mean, post_scatter_sd, post_scatter_chol)
    for d in nb.prange(nd):
        # prange may type its index as unsigned; keep the draw index int64 for the key
        sn, su, pos = draw_streams(seed, draw0 + np.int64(d))
        prz = pre_z[d] if use_pre == 1 else pre_z[0, :0]
        pru = pre_u[d] if use_pre == 1 else pre_u[0, :0]
        oq = out_q[d]
        oq[:, :] = 0.0
        od = out_draw[d]
        # ---- per-draw setup: posterior draw, availability, sources, start delays
        p = p_base.copy()
        s_post = draw_parameters(su, pru, pos, p, free_idx, post_theta, od)
        od[k + 9 * ns] = s_post
        a_d, mtbf_h = draw_availability(sn, prz, pos, availability, availability_sd, mttr_h)
        od[k + 9 * ns + 1] = a_d
        src_off = np.empty((ns, NOFF))
        x = np.empty((ns, 3))
        innov = np.empty((ns, 3))
        gfac = np.empty((ns, 3))
        draw_sources(
            sn, prz, pos, r_mean, r_sd, g_mean_sd, g_sd, g_phi, g_chol, k, src_off, x, innov, gfac, od
        )
        start = np.empty(ns, np.int64)
        ttf = draw_starts(su, pru, pos, start_lo, start_span, mtbf_h, start, od[k + 8 * ns :])
        # ---- state and work arrays (allocated once per draw)
        st_t, st_m, hd_t, hd_m = initial_state(stock0, g_mean)
        arr_t, arr_g, zz, qoff, soff, rc, rec, ubuf = step_work(ns, nf)
        part_t, part_m, blend, head, split, pull, con_t, o_t, o_m = mill_work(ns)
        down_rem = 0.0
        q_prev = -1
        for t in range(n_steps):
            q = step_q[t]
            if q != q_prev:
                qr = mill_rate[q] * 24.0 / recovery.REFERENCE_TPD
                quarter_constants(sn, prz, pos, post, s_post, src_off, kind, p, qr, qoff, soff, rc)
                q_prev = q
            rec[:] = 0.0
            # fmt: off
            deliveries(sn, prz, pos, t, q, mode, supply, rate_cv, start,
                       g_mean, g_chol, g_phi, innov, gfac, x, zz, arr_t, arr_g)
            # fmt: on
            up, ttf, down_rem = operating_hours(
                su, pru, pos, ubuf, step_h, mttr_h, mtbf_h, a_d, ttf, down_rem
            )
            demand = mill_rate[q] * up
            if mode == MODE_BLEND:
                blend_deliveries(t, q, demand, supply, start, hold_until, arr_t)
            stockpile_in(t, arr_t, arr_g, hold_until, st_t, st_m, hd_t, hd_m, rec)
            # fmt: off
            mill(demand, st_t, st_m, grade_dep, p, soff, rc,
                 part_t, part_m, blend, head, split, pull, con_t, o_t, o_m, rec)
            # fmt: on
            stockpile_divert(st_t, st_m, stock_cap, rec)
            accumulate(rec, up, step_h, st_t, st_m, hd_t, hd_m, qoff, oq, q, out_d, d, t, daily)
