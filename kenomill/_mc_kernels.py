"""The Monte Carlo hot loop: a time-stepped mill simulation over draws x steps (numba).

One numba kernel, :func:`simulate`, parallel over blocks of :data:`BLOCK` draws
(``prange``), the draws of a block in lock-step: structure of arrays inside the block
(the draw is the last, contiguous index of every state array), so the grades' and
tonnages' ``exp``, the silver terms' powers and the normals are computed for the whole
block in SIMD lanes (:mod:`kenomill._simd`: ``exp1``, ``pow1``, ``normals_lanes``), while the
branchy parts (downtime, stockpile, the mill's reclaim) run draw by draw inside the block.
Each draw's random numbers depend only on ``(seed, global draw index)`` and a counter, and
every lane runs the same floating-point operations (``fastmath={"contract"}`` only: a
multiply and the add that uses it may fuse into one FMA, decided on the code, not on the
data, so a vector lane and a scalar remainder iteration give the same bits; no
reassociation, no approximations), so a
draw's results do not depend on its lane, block, thread, chunk or Dask worker: bit-identical
whatever the thread count or chunk size (a chunk that is not a multiple of :data:`BLOCK`
ends with a partial block; a one-draw call computes one lane). The NumPy twin is
:mod:`kenomill._mc_reference`.

Flows go straight into the block's quarterly sums (no per-step record is zeroed or
copied); a per-step record exists only when per-step output is asked for, and then only
as that output. Levels (stockpile, holds, the quarter's scatter) are written at each
quarter's last step.

Random numbers
--------------
SplitMix64 (Steele, Lea & Flood 2014) keyed per draw: ``key = key(seed, draw, stream)``,
word ``i`` of a stream = ``mix64(key + (i + 1) GAMMA)``: a counter, so number ``i`` of a
draw is computed without the ones before it. Uniform ``i`` = the top 53 bits of word ``i``
of stream 1. Normal ``i`` of stream 0 = Doornik's ZIGNOR ziggurat (128 blocks, Doornik 2005)
started from word ``i``: the fast path (one hash, one table compare; ~98.8 % of
candidates) is computed for a block of draws in SIMD lanes, the rejected candidates
finish the ziggurat on their own sub-stream keyed by ``(key, i)``
(:func:`kenomill._simd.normal_at`). Box-Muller (log, sqrt, sin, cos per pair) would cost
about as much as the whole mill response per step. Each draw consumes its numbers in a
fixed order (setup, then per quarter, then per step), so the same kernel can instead read
pre-generated numbers (``use_pre=1``, filled by :func:`fill_random` from the same
streams): identical results, and the compute floor for the benchmark.

Until issue 14 the normals came from one sequential ziggurat stream per draw (a rejection
consumed the next word), which ties number ``i`` to all before it; the counter form gives
the same distribution with other numbers (same seed, other results; the uniforms kept
their bits).

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

from kenomill import _kernels, _numba_cache, _simd, recovery
from kenomill._kernels import PBCON, TAILS, ZNCON, forward_element
from kenomill._simd import (  # noqa: F401  (ZIG_*, normal, uniform: re-exported for the reference and tests)
    BLOCK,
    ZIG_R,
    ZIG_RATIO,
    ZIG_X,
    exp1,
    normal,
    normal_at,
    normals_at,
    normals_lanes,
    pow1,
    stream_key,
    uniform,
    uniform_at,
)
from kenomill.recovery import (
    I_AG_PB,
    I_AG_ZN,
    I_PB_ZN,
    I_TAIL_PB,
    I_TAIL_ZN,
    I_ZN_PB,
    O_LOGIT_REC_AG_PBCON,
    O_LOGIT_REC_PB,
    O_LOGIT_REC_ZN,
    RC_EINV_AG,
    RC_EINV_PB,
    RC_EINV_ZN,
    RC_EPB,
    RC_EZN,
    RC_RPB,
    RC_RZN,
    circuit_recovery,
    response_constants,
    split_pull_values,
)

# the kernel inlines the mill response (recovery), forward_row (_kernels) and the vector
# math and generators (_simd): its cache must notice when those files change, not only this one
_numba_cache.track(__file__, [recovery.__file__, _kernels.__file__, _simd.__file__])

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
        kn = stream_key(seed, gd, 0)
        ku = stream_key(seed, gd, 1)
        flag = np.empty(z.shape[1], np.int64)
        normals_at(kn, 0, z[d], flag)
        for i in range(u.shape[1]):
            u[d, i] = uniform_at(ku, i)


@nb.njit(cache=True, inline="always")
def _z_at(key, i, use_pre, pre_z, row):
    # normal i of one draw: from its stream, or from its row of pre-generated numbers
    if use_pre == 1:
        return pre_z[row, i]
    return normal_at(key, i)


@nb.njit(cache=True, inline="always")
def _u_at(key, i, use_pre, pre_u, row):
    if use_pre == 1:
        return pre_u[row, i]
    return uniform_at(key, i)


@nb.njit(cache=True, inline="always")
def lane_normals(nl, keys, i, use_pre, pre_z, rows, out, row, flag):
    """Normal ``i`` of each draw of the block into ``out[row, :]`` (``flag``: int64 scratch)."""
    if use_pre == 1:
        for b in range(nl):
            out[row, b] = pre_z[rows[b], i]
    else:
        normals_lanes(nl, keys, i, out, row, flag)


# ----------------------------------------------------------------- mill response
# the two halves of recovery's mill response: response_constants per draw, quarter and
# source (hoisted out of the steps), respond_feed per step and source
N_RC = recovery.N_RC


# ----------------------------------------------------------------- the kernel's inputs
#: The kernel's inputs in order, (name, numba type): the one spelling from which the
#: signature (:data:`SIGNATURE`) and :meth:`kenomill.simulate.Plan.kernel_args` are made;
#: tests/test_simulate.py checks that :func:`simulate`, the NumPy reference (which names its
#: positional arguments by :data:`ARGS`) and the plan agree with it.
#:
#: The kernel's arguments (units: t, h, mass fractions; ``ns`` sources, ``nq`` quarters,
#: ``k`` free parameters, ``nd`` draws of the call):
#:
#: seed : uint64
#:     Seed; with ``draw0 + d`` the only input of draw ``d``'s random streams.
#: kind, grade_dep : int
#:     Recovery model (:func:`kenomill.recovery.respond`).
#: p_base : f8[N_FULL]
#:     Full parameter vector; ``free_idx`` entries replaced by each draw's theta.
#: post_theta : f8[S, k]
#:     The calibration's posterior draws of the free parameters (``spec.free`` order);
#:     each Monte Carlo draw takes row ``s = floor(U S)``, U its first uniform.
#: post_offset_mean, post_scatter_sd, post_scatter_chol : f8[S, 5], f8[S, 5], f8[S, 5, 5]
#:     Per posterior draw: mean and SD of a new quarter's offsets and the lower Cholesky
#:     factor of their correlation; each quarter of a draw gets offset_mean[s] +
#:     scatter_sd[s] * (scatter_chol[s] @ z), z standard normal (5 per quarter).
#: step_q : i8[n_steps]
#:     Quarter index of each step (non-decreasing); ``step_h`` hours per step.
#: mode : int
#:     ``MODE_RATES``: ``supply[s, q]`` = tonnes mined per step; ``MODE_BLEND``:
#:     ``supply[s, q]`` = share of the mill's demand delivered by source ``s``.
#: rate_cv : f8[ns]
#:     Step-to-step log-SD of tonnes mined (rates mode; lognormal, mean kept).
#: start_lo, start_span : f8[ns]
#:     First step of deliveries = start_lo + floor(U * start_span) (uncertain start).
#: hold_until : i8[ns]
#:     Deliveries before this step wait in a holding pile; it joins the ROM stockpile then.
#: g_mean : f8[ns, nq, 3]
#:     Mean Ag, Pb, Zn mass fractions of delivered ore.
#: g_sd, g_phi, g_chol, g_mean_sd : f8[ns, 3], f8[ns, 3], f8[ns, 3, 3], f8[ns, 3]
#:     Stationary log-SD, AR(1) coefficient per step, Cholesky factor of the correlation
#:     of the innovations, and the per-draw log-SD of the mean grade (resource uncertainty).
#: r_mean, r_sd : f8[ns, N_OFFSETS]
#:     Per-draw response offsets of each source's ore (mean, SD).
#: stock0 : f8[ns]
#:     Initial ROM stockpile by source (at the source's first-quarter mean grade) [t].
#: stock_cap : float
#:     ROM stockpile capacity [t]; the excess is diverted (mixed composition).
#: mill_rate : f8[nq]
#:     Feed rate while operating [t/h].
#: availability, availability_sd, mttr_h : float
#:     Long-run availability, its per-draw SD (the long-run value is itself uncertain:
#:     each draw runs at clip(availability + SD z, 0.05, 1)) and the mean repair time
#:     [h]; ``mttr_h == 0``: every step runs ``availability * step_h`` hours (no
#:     stochastic downtime). The mill's feed rate (``mill_rate``) is planned on the
#:     stated availability whatever a draw's turns out to be.
#: draw_supply, draw_mill_rate : f8[nd, ns, nq], f8[nd, nq]
#:     Each draw's own ``supply`` and ``mill_rate`` (rate uncertainty), or arrays with a
#:     first dimension 0: every draw at ``supply`` and ``mill_rate``.
#: use_pre, pre_z, pre_u : int, f8[nd, nz], f8[nd, nu]
#:     1 to read the random numbers from ``pre_z``/``pre_u`` (:func:`fill_random`).
#: out_q : f8[nd, nq, N_FIXED + ns] (out)
#:     Quarterly sums (flows) and end-of-quarter levels (``LEVEL_FIELDS``).
#: out_d : f8[nd, n_steps or 0, N_FIXED + ns] (out)
#:     Per-step records when its second dimension is ``n_steps``.
#: out_draw : f8[nd, k + 9 ns + 2] (out)
#:     Per-draw drivers: theta, response offsets (5 ns), mean-grade factors (3 ns),
#:     start delay in steps (ns), index of the posterior draw used (1), long-run availability (1).
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
    # per-draw rates (scenario rate uncertainty): supply[d] and mill_rate[d] of each draw, or
    # empty (first dimension 0): every draw at the plan's supply and mill_rate
    ("draw_supply", "f8[:, :, ::1]"),
    ("draw_mill_rate", "f8[:, ::1]"),
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
RUN_INPUTS = ("seed", "draw0", "draw_supply", "draw_mill_rate", "use_pre", "pre_z", "pre_u")
#: the inputs a compiled plan holds, in kernel order
PLAN_INPUTS = tuple(n for n, _ in INPUTS if n not in RUN_INPUTS)
#: the kernel's arguments in order: its inputs, then its outputs
ARGS = tuple(n for n, _ in INPUTS + OUTPUTS)
SIGNATURE = "void(" + ", ".join(t for _, t in INPUTS + OUTPUTS) + ")"


# ----------------------------------------------------------------- step functions
# The kernel's parts, inlined by numba into :func:`simulate` (inline="always": one body of
# machine code; the split is for reading). State arrays of a block have the draw (lane) as
# their last index, ``[..., BLOCK]``; functions taking a lane ``b`` work on one draw of the
# block, the others on its first ``nl`` lanes (BLOCK but in a call's last block). ``acc``
# is the block's quarterly sums of the current quarter, ``[nf, BLOCK]``; ``rec`` the
# block's per-step record, written only when ``daily``.
@nb.njit(cache=True, inline="always")
def _flow(acc, rec, daily, f, b, v):
    # a flow of the step: into the quarter's sum, and the step's record if one is kept
    acc[f, b] += v
    if daily:
        rec[f, b] += v


@nb.njit(cache=True, inline="always")
def draw_parameters(b, key_u, use_pre, pre_u, row, p, free_idx, post_theta, od):
    """Draw ``b``'s posterior draw (uniform 0) -> its index ``s``; its parameters into ``p[b]``."""
    n_post = post_theta.shape[0]
    s = min(int(_u_at(key_u, 0, use_pre, pre_u, row) * n_post), n_post - 1)
    for i in range(post_theta.shape[1]):
        p[b, free_idx[i]] = post_theta[s, i]
        od[b, i] = post_theta[s, i]
    return s


@nb.njit(cache=True, inline="always")
def draw_availability(key_n, use_pre, pre_z, row, availability, availability_sd, mttr_h):
    """The draw's long-run availability (normal 0) -> (a_d, mean time between failures [h])."""
    a_d = min(max(availability + availability_sd * _z_at(key_n, 0, use_pre, pre_z, row), 0.05), 1.0)
    mtbf_h = a_d / (1.0 - a_d) * mttr_h if a_d < 1.0 else np.inf
    return a_d, mtbf_h


@nb.njit(cache=True, inline="always")
def draw_starts(b, key_u, use_pre, pre_u, row, start_lo, start_span, mtbf_h, start, od, o0):
    """First delivery step of each source (uniforms 1 .. ns) into ``start[:, b]``.

    Returns the hours to the first failure (uniform ns + 1).
    """
    ns = start.shape[0]
    for s in range(ns):
        start[s, b] = int(start_lo[s] + math.floor(_u_at(key_u, 1 + s, use_pre, pre_u, row) * start_span[s]))
        od[b, o0 + s] = start[s, b] - start_lo[s]
    return -mtbf_h * math.log1p(-_u_at(key_u, 1 + ns, use_pre, pre_u, row))


@nb.njit(cache=True, inline="always")
def draw_sources(
    b,
    key_n,
    use_pre,
    pre_z,
    row,
    r_mean,
    r_sd,
    g_mean_sd,
    g_sd,
    g_phi,
    g_chol,
    k,
    src_off,
    x,
    innov,
    gfac,
    od,
):
    """Draw ``b``'s source constants (normals 1 .. 11 ns): response offsets, mean-grade factors,
    AR(1) start, step constants."""
    ns = r_mean.shape[0]
    i = 1
    for s in range(ns):
        for j in range(NOFF):
            src_off[b, s, j] = r_mean[s, j] + r_sd[s, j] * _z_at(key_n, i, use_pre, pre_z, row)
            i += 1
            od[b, k + NOFF * s + j] = src_off[b, s, j]
    for s in range(ns):
        for e in range(3):
            sd = g_mean_sd[s, e]
            mean_fac = math.exp(sd * _z_at(key_n, i, use_pre, pre_z, row) - 0.5 * sd * sd)
            i += 1
            od[b, k + NOFF * ns + 3 * s + e] = mean_fac
            # per-step constant: the mean-grade factor with the lognormal mean correction
            sg = g_sd[s, e]
            gfac[s, e, b] = mean_fac * math.exp(-0.5 * sg * sg)
    for s in range(ns):  # AR(1) log-grade deviations, stationary start
        z0 = _z_at(key_n, i, use_pre, pre_z, row)
        z1 = _z_at(key_n, i + 1, use_pre, pre_z, row)
        z2 = _z_at(key_n, i + 2, use_pre, pre_z, row)
        i += 3
        for e in range(3):
            x[s, e, b] = g_sd[s, e] * _chol_row(g_chol, s, e, z0, z1, z2)
            # per-step constant: innovation SD of the AR(1)
            innov[s, e, b] = math.sqrt(1.0 - g_phi[s, e] * g_phi[s, e]) * g_sd[s, e]


@nb.njit(cache=True, inline="always")
def _chol_row(g_chol, s, e, z0, z1, z2):
    # row e of the lower Cholesky factor times (z0, z1, z2), the terms j <= e in order
    c = g_chol[s, e, 0] * z0
    if e >= 1:
        c += g_chol[s, e, 1] * z1
    if e >= 2:
        c += g_chol[s, e, 2] * z2
    return c


@nb.njit(cache=True, inline="always")
def setup_draws(
    nl, kn, ku, rows, use_pre, pre_z, pre_u, p_base, free_idx, post_theta, availability,
    availability_sd, mttr_h, r_mean, r_sd, g_mean_sd, g_sd, g_phi, g_chol, start_lo, start_span, bod,
):  # fmt: skip
    """Per-draw setup of a block (uniforms 0 .. ns + 1, normals 0 .. 11 ns): posterior draw,
    availability, sources, start delays; the drivers into ``bod[BLOCK, :]``.

    Returns (p[BLOCK, N_FULL], its lane-last copy pl[N_FULL, BLOCK], s_post, a_d, mtbf_h, time
    to the first failure, src_off, x, innov, gfac, start).
    """
    ns = r_mean.shape[0]
    k = post_theta.shape[1]
    p = np.empty((BLOCK, p_base.shape[0]))
    pl = np.zeros((p_base.shape[0], BLOCK))
    s_post = np.empty(BLOCK, np.int64)
    a_d, mtbf_h, ttf = np.empty(BLOCK), np.empty(BLOCK), np.empty(BLOCK)
    src_off = np.empty((BLOCK, ns, NOFF))
    x, innov, gfac = np.empty((ns, 3, BLOCK)), np.empty((ns, 3, BLOCK)), np.empty((ns, 3, BLOCK))
    start = np.empty((ns, BLOCK), np.int64)
    for b in range(nl):
        p[b, :] = p_base
        s_post[b] = draw_parameters(b, ku[b], use_pre, pre_u, rows[b], p, free_idx, post_theta, bod)
        bod[b, k + 9 * ns] = s_post[b]
        a_d[b], mtbf_h[b] = draw_availability(
            kn[b], use_pre, pre_z, rows[b], availability, availability_sd, mttr_h
        )
        bod[b, k + 9 * ns + 1] = a_d[b]
        # fmt: off
        draw_sources(b, kn[b], use_pre, pre_z, rows[b], r_mean, r_sd, g_mean_sd, g_sd, g_phi, g_chol,
                     k, src_off, x, innov, gfac, bod)
        ttf[b] = draw_starts(b, ku[b], use_pre, pre_u, rows[b], start_lo, start_span, mtbf_h[b],
                             start, bod, k + 8 * ns)
        # fmt: on
        for i in range(p_base.shape[0]):
            pl[i, b] = p[b, i]
    return p, pl, s_post, a_d, mtbf_h, ttf, src_off, x, innov, gfac, start


@nb.njit(cache=True, inline="always")
def initial_state(stock0, g_mean):
    """ROM stockpile by source [t] and its metal [t] (at each source's first-quarter grade), empty holds."""
    ns = stock0.shape[0]
    st_t = np.empty((ns, BLOCK))
    st_m = np.empty((ns, 3, BLOCK))
    for s in range(ns):
        for b in range(BLOCK):
            st_t[s, b] = stock0[s]
            for e in range(3):
                st_m[s, e, b] = stock0[s] * g_mean[s, 0, e]
    return st_t, st_m, np.zeros((ns, BLOCK)), np.zeros((ns, 3, BLOCK))


@nb.njit(cache=True, inline="always")
def quarter_constants(
    nl, keys, iz, use_pre, pre_z, rows, zq, flag, post, s_post, src_off, kind, p, mr_l, q,
    qoff, soff, rc, offl, rcl,
):  # fmt: skip
    """A new quarter (normals iz .. iz + 4): its scatter offsets ``qoff[5, BLOCK]``, and each
    draw's and source's offsets ``soff[b, s]`` and response constants ``rc[b, s]`` (and their
    lane-last copies ``offl[s, :, b]``, ``rcl[s, :, b]``).

    Offsets of posterior draw ``s``: offset_mean[s] + scatter_sd[s] * (scatter_chol[s] @ z),
    ``post`` = (offset_mean, scatter_sd, scatter_chol) (contract of
    ``Calibration.posterior_draws``).
    """
    om, sd, chol = post
    for j in range(NOFF):
        lane_normals(nl, keys, iz + j, use_pre, pre_z, rows, zq, j, flag)
    for b in range(nl):
        qr = mr_l[q, b] * 24.0 / recovery.REFERENCE_TPD
        sp = s_post[b]
        for j in range(NOFF):
            c = 0.0
            for i in range(j + 1):
                c += chol[sp, j, i] * zq[i, b]
            qoff[j, b] = om[sp, j] + sd[sp, j] * c
        for s in range(src_off.shape[1]):
            for j in range(NOFF):
                soff[b, s, j] = qoff[j, b] + src_off[b, s, j]
            response_constants(kind, p[b], qr, soff[b, s], rc[b, s])
            for j in range(NOFF):  # lane-last copies for the mill's SIMD lanes
                offl[s, j, b] = soff[b, s, j]
            for j in range(N_RC):
                rcl[s, j, b] = rc[b, s, j]


@nb.njit(cache=True, inline="always")
def deliveries(
    nl, keys, iz, use_pre, pre_z, rows, zb, flag, t, q, mode, supply, rate_cv, start,
    g_mean, g_chol, g_phi, innov, gfac, x, arr_t, arr_g,
):  # fmt: skip
    """Grades (AR(1) in log) and, in rates mode, tonnes of the block's deliveries
    (normals iz .. iz + 4 ns - 1: per source 3 grade innovations and 1 tonnage; ``supply``:
    the block's draws' ``[ns, nq, BLOCK]``).

    The numbers are drawn whether used or not, so that a draw's stream does not depend on
    when its sources start. The ``exp`` of a block's grades and tonnes run in SIMD lanes
    (``zb[4, BLOCK]``: the normals).
    """
    for s in range(supply.shape[0]):
        for c in range(4):
            lane_normals(nl, keys, iz + 4 * s + c, use_pre, pre_z, rows, zb, c, flag)
        for e in range(3):
            ph = g_phi[s, e]
            gm = g_mean[s, q, e]
            a0 = g_chol[s, e, 0]
            a1 = g_chol[s, e, 1] if e >= 1 else 0.0
            a2 = g_chol[s, e, 2] if e >= 2 else 0.0
            for b in range(nl):
                # the same sum as _chol_row: a zero coefficient adds an exact zero
                c = a0 * zb[0, b] + a1 * zb[1, b] + a2 * zb[2, b]
                xv = ph * x[s, e, b] + innov[s, e, b] * c
                x[s, e, b] = xv
                arr_g[s, e, b] = gm * gfac[s, e, b] * exp1(xv)
        if mode == MODE_RATES:
            cv = rate_cv[s]
            h = 0.5 * cv * cv
            for b in range(nl):
                v = supply[s, q, b] * exp1(cv * zb[3, b] - h)
                arr_t[s, b] = v if t >= start[s, b] else 0.0
        else:
            for b in range(nl):
                arr_t[s, b] = 0.0


@nb.njit(cache=True, inline="always")
def blend_deliveries(b, t, q, demand, supply, start, hold_until, arr_t):
    """Blend mode, draw ``b``: deliveries meet demand in the quarter's shares ``supply[s, q, b]`` of the
    active sources.

    Active: started and not held.
    """
    ns = supply.shape[0]
    tot = 0.0
    for s in range(ns):
        if t >= start[s, b] and t >= hold_until[s]:
            tot += supply[s, q, b]
    for s in range(ns):
        if tot > 0.0 and t >= start[s, b] and t >= hold_until[s]:
            arr_t[s, b] = demand * supply[s, q, b] / tot
        else:
            arr_t[s, b] = 0.0


@nb.njit(cache=True, inline="always")
def mill_demand(nl, t, q, mode, step_h, mr_l, up, supply, start, hold_until, arr_t, demand, acc, rec, daily):
    """The mill's demand of step ``t`` into ``demand[BLOCK]``: its feed rate ``mr_l[q, b]`` [t/h] times
    the operating hours ``up[b]``, which go into the sums with the calendar hours; in blend mode
    the deliveries ``arr_t`` that meet it (:func:`blend_deliveries`)."""
    for b in range(nl):
        demand[b] = mr_l[q, b] * up[b]
        _flow(acc, rec, daily, F_UP_H, b, up[b])
        _flow(acc, rec, daily, F_CAL_H, b, step_h)
    if mode == MODE_BLEND:
        for b in range(nl):
            blend_deliveries(b, t, q, demand[b], supply, start, hold_until, arr_t)


@nb.njit(cache=True, inline="always")
def operating_hours(key_u, iu, use_pre, pre_u, row, step_h, mttr_h, mtbf_h, a_d, ttf, down_rem):
    """Mill operating hours of one draw's step (uniforms iu .. iu + 2 N_FAIL - 1) -> (up, ttf, down_rem).

    Alternating renewal process: exponential times to failure in operating hours,
    exponential repairs carried over between steps. 2 * N_FAIL uniforms per step are
    reserved whether used or not (a fixed count keeps the pre-generated variant identical;
    being counter-based, only those used are computed); a failure beyond N_FAIL in one step
    falls at the start of the next. With 1 failure per step the long-run availability came
    out 0.851 instead of 0.80 (MTBF 16 h, daily steps); with 4, 0.800.
    """
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
        dur = -mttr_h * _simd.log1p1(-_u_at(key_u, iu + 2 * j, use_pre, pre_u, row))
        lost = min(dur, rem)
        rem -= lost
        down_rem = dur - lost
        ttf = -mtbf_h * _simd.log1p1(-_u_at(key_u, iu + 2 * j + 1, use_pre, pre_u, row))
        j += 1
    return up, ttf, down_rem


@nb.njit(cache=True, inline="always")
def block_hours(nl, ku, iu, use_pre, pre_u, rows, step_h, mttr_h, mtbf_h, a_d, ttf, down_rem, up, slow):
    """The block's operating hours of the step into ``up[BLOCK]`` (:func:`operating_hours` per draw).

    The common step (no repair carried over, no failure within it: ``up = step_h``, ``ttf``
    less ``step_h``, the values :func:`operating_hours` returns then) in a lane loop; the
    other draws (``slow[BLOCK]``: int64 scratch) through :func:`operating_hours`.
    """
    n_slow = 0
    for b in range(nl):
        t = ttf[b]
        fast = (mttr_h > 0.0) & (down_rem[b] == 0.0) & (t >= step_h)
        up[b] = step_h
        ttf[b] = t - step_h if fast else t
        v = 0 if fast else 1
        slow[b] = v
        n_slow += v
    if n_slow > 0:
        for b in range(nl):
            if slow[b] != 0:
                up[b], ttf[b], down_rem[b] = operating_hours(
                    ku[b], iu, use_pre, pre_u, rows[b], step_h, mttr_h, mtbf_h[b], a_d[b], ttf[b], down_rem[b]
                )


@nb.njit(cache=True, inline="always")
def stockpile_in(nl, t, arr_t, arr_g, hold_until, st_t, st_m, hd_t, hd_m, acc, rec, daily):
    """Deliveries to holding piles or the ROM stockpile; holds released when their step comes.

    Flat lane views (:func:`flat_views`): ``arr_g``, ``st_m``, ``hd_m`` ``[ns, 3 * BLOCK]``, the
    quarter's sums ``acc`` and the step's record ``rec`` ``[nf * BLOCK]``, so that LLVM checks
    each array once for aliasing and vectorises the lane loops (on ``[ns, 3, BLOCK]`` arrays it
    made strided gathers and scatters). Each location sees the same operations in the same
    order as in one loop.
    """
    B = BLOCK
    for s in range(arr_t.shape[0]):
        if t < hold_until[s]:
            for b in range(nl):
                a = arr_t[s, b]
                for e in range(3):
                    hd_m[s, e * B + b] += a * arr_g[s, e * B + b]
                hd_t[s, b] += a
        else:
            for b in range(nl):
                a = arr_t[s, b]
                for e in range(3):
                    st_m[s, e * B + b] += a * arr_g[s, e * B + b] + hd_m[s, e * B + b]
                    hd_m[s, e * B + b] = 0.0
                st_t[s, b] += a + hd_t[s, b]
                hd_t[s, b] = 0.0
        _mined(nl, s, arr_t, arr_g, acc)
        if daily:
            _mined(nl, s, arr_t, arr_g, rec)


@nb.njit(cache=True, inline="always")
def _mined(nl, s, arr_t, arr_g, acc):
    # source s's deliveries and their metal into the flat sums acc[nf * BLOCK]
    B = BLOCK
    for b in range(nl):
        a = arr_t[s, b]
        acc[F_MINED_T * B + b] += a
        for e in range(3):
            acc[(F_MINED_M + e) * B + b] += a * arr_g[s, e * B + b]


@nb.njit(cache=True, inline="always")
def stock_total(nl, st_t, stock):
    """The block's ROM stockpile [t] per draw into ``stock[BLOCK]`` (sources added in order)."""
    for b in range(nl):
        stock[b] = 0.0
    for s in range(st_t.shape[0]):
        for b in range(nl):
            stock[b] += st_t[s, b]


@nb.njit(cache=True, inline="always")
def stockpile_divert(nl, st_t, st_m, stock_cap, acc, rec, daily, stock):
    """Stockpile over capacity: divert the excess (mixed composition); ``stock[BLOCK]``: scratch."""
    ns = st_t.shape[0]
    stock_total(nl, st_t, stock)
    for b in range(nl):
        v = stock[b]
        over = v > stock_cap
        stock[b] = (v - stock_cap) / v if over else 0.0  # the diverted fraction (0: none)
    for s in range(ns):
        for b in range(nl):
            g = stock[b]
            over = g > 0.0
            dv = st_t[s, b] * g
            _flow(acc, rec, daily, F_DIVERTED_T, b, dv if over else 0.0)
            st_t[s, b] = st_t[s, b] - dv if over else st_t[s, b]
            for e in range(3):
                dm = st_m[s, e, b] * g
                _flow(acc, rec, daily, F_DIVERTED_M + e, b, dm if over else 0.0)
                st_m[s, e, b] = st_m[s, e, b] - dm if over else st_m[s, e, b]


@nb.njit(cache=True, inline="always")
def reclaim(nl, demand, st_t, st_m, part_t, part_m, blend, stock, frac, bt):
    """The block's feed from the mixed stockpile: every source in its stockpile share.

    ``part_t[ns, BLOCK]``, ``part_m[ns, 3, BLOCK]`` (each source's tonnes and metal in the
    blend; ``part_m`` is left as it was where ``part_t <= 0``), ``blend[3, BLOCK]`` (the
    blend's mass fractions). Lane loops (SIMD); ``stock``, ``frac``, ``bt``: ``[BLOCK]`` scratch.
    """
    ns = st_t.shape[0]
    stock_total(nl, st_t, stock)
    for b in range(nl):
        v = stock[b]
        frac[b] = min(demand[b], v) / v if v > 0.0 else 0.0
        bt[b] = 0.0
        for e in range(3):
            blend[e, b] = 0.0
    for s in range(ns):
        for b in range(nl):
            ts = st_t[s, b] * frac[b]
            part_t[s, b] = ts
            on = ts > 0.0
            for e in range(3):
                me = st_m[s, e, b] * frac[b]
                part_m[s, e, b] = me if on else part_m[s, e, b]
                blend[e, b] += me if on else 0.0
                st_m[s, e, b] = st_m[s, e, b] - me if on else st_m[s, e, b]
            st_t[s, b] = st_t[s, b] - ts if on else st_t[s, b]
            bt[b] += ts if on else 0.0
    for b in range(nl):
        v = bt[b]
        d = v if v > 0.0 else 1.0
        for e in range(3):
            blend[e, b] = blend[e, b] / d if v > 0.0 else blend[e, b]


@nb.njit(cache=True, inline="always")
def flat_views(pl, offl, rcl, part_m, rr, bq, rec):
    """The mill's lane-last arrays as views with each row's lanes side by side, ``[..., k * BLOCK + b]``.

    ``pl`` and ``rr`` 1-D, ``offl``, ``rcl`` and ``part_m`` by source ``[ns, k * BLOCK]``, the
    quarterly sums by quarter ``[nq, nf * BLOCK]``, ``rec`` 1-D. Rows of one array are then a
    constant distance apart, which lets LLVM check the mill's loop for aliasing once per
    array (not per row: more than its limit of 128 checks) and vectorise it.
    """
    ns = offl.shape[0]
    return (
        pl.reshape(pl.size),
        offl.reshape((ns, offl.shape[1] * BLOCK)),
        rcl.reshape((ns, rcl.shape[1] * BLOCK)),
        part_m.reshape((ns, 3 * BLOCK)),
        rr.reshape(rr.size),
        bq.reshape((bq.shape[0], bq.shape[1] * BLOCK)),
        rec.reshape(rec.size),
    )


@nb.njit(cache=True, inline="always")
def mill(nl, grade_dep, pl, offl, rcl, part_t, part_m, blend, rr, acc, rec, daily):
    """Mill the block's blends: every source's component at its own offsets, the blend's grade factor.

    The response (:func:`kenomill.recovery.respond_feed`, in its pieces:
    :func:`~kenomill.recovery.circuit_recovery`, the silver terms ``1 - (1 - R)^a`` by
    ``pow1``, :func:`~kenomill.recovery.split_pull_values`) and the closed balance
    (:func:`~kenomill._kernels.forward_element`), source by source, in lane loops on the
    views of :func:`flat_views` (row ``k`` of lane ``b`` at ``k * BLOCK + b``): parameters
    ``pl``, offsets ``offl[s]``, response constants ``rcl[s]``, the components' metal
    ``part_m[s]``, ``rr`` scratch (the two recoveries and their silver terms), the quarter's
    sums ``acc`` and the step's record ``rec``. A component with no feed adds exact zeros.
    With per-step output the same flows go to ``rec`` too.
    """
    B = BLOCK
    for s in range(part_t.shape[0]):
        for b in range(nl):
            rr[b] = circuit_recovery(
                grade_dep, rcl[s, RC_RPB * B + b], pl[I_TAIL_PB * B + b], blend[1, b],
                offl[s, O_LOGIT_REC_PB * B + b], rcl[s, RC_EINV_PB * B + b],
            )  # fmt: skip
            rr[B + b] = circuit_recovery(
                grade_dep, rcl[s, RC_RZN * B + b], pl[I_TAIL_ZN * B + b], blend[2, b],
                offl[s, O_LOGIT_REC_ZN * B + b], rcl[s, RC_EINV_ZN * B + b],
            )  # fmt: skip
        for b in range(nl):
            # kenomill.recovery._relative_floatability, its power in lanes
            a = pl[I_AG_PB * B + b]
            rr[2 * B + b] = 1.0 - pow1(1.0 - min(max(rr[b], 0.0), 1.0), a) if a != 0.0 else 0.0
            a = pl[I_AG_ZN * B + b]
            rr[3 * B + b] = 1.0 - pow1(1.0 - min(max(rr[B + b], 0.0), 1.0), a) if a != 0.0 else 0.0
        mill_source(nl, s, pl, offl[s], rcl[s], part_t, part_m[s], rr, acc)
        if daily:
            mill_source(nl, s, pl, offl[s], rcl[s], part_t, part_m[s], rr, rec)


@nb.njit(cache=True, inline="always")
def mill_source(nl, s, pl, off, rc, part_t, pm, rr, acc):
    """Source ``s``'s component of the block's feed: shares, pulls, closed balance; flows into ``acc``.

    Flat rows (:func:`flat_views`): ``off``, ``rc``, ``pm`` are source ``s``'s offsets,
    response constants and metal; ``acc`` the sums ``[nf * BLOCK]``. The feed by source
    (row ``F_SRC_T + s``, at a distance from the others that LLVM cannot bound) is added
    in a loop of its own.
    """
    B = BLOCK
    for b in range(nl):
        ts = part_t[s, b]
        on = ts > 0.0
        tsd = ts if on else 1.0  # lanes without feed: finite numbers, discarded below
        h0 = pm[b] / tsd
        h1 = pm[B + b] / tsd
        h2 = pm[2 * B + b] / tsd
        s00, s01, s10, s11, s20, s21, pull0, pull1 = split_pull_values(
            h0, h1, h2, rr[b], rr[B + b], rr[2 * B + b], rr[3 * B + b], off[O_LOGIT_REC_AG_PBCON * B + b],
            rc[RC_EINV_AG * B + b], pl[I_ZN_PB * B + b], pl[I_PB_ZN * B + b], rc[RC_EPB * B + b],
            rc[RC_EZN * B + b],
        )  # fmt: skip
        c0 = pull0 * ts
        c1 = pull1 * ts
        acc[F_FEED_T * B + b] += ts if on else 0.0
        acc[(F_STREAM_T + PBCON) * B + b] += c0 if on else 0.0
        acc[(F_STREAM_T + ZNCON) * B + b] += c1 if on else 0.0
        acc[(F_STREAM_T + TAILS) * B + b] += ts - c0 - c1 if on else 0.0
        _element_flows(acc, b, on, 0, ts, h0, s00, s01)
        _element_flows(acc, b, on, 1, ts, h1, s10, s11)
        _element_flows(acc, b, on, 2, ts, h2, s20, s21)
    src = (F_SRC_T + s) * B
    for b in range(nl):
        ts = part_t[s, b]
        acc[src + b] += ts if ts > 0.0 else 0.0


@nb.njit(cache=True, inline="always")
def _element_flows(acc, b, on, e, ts, h, split0, split1):
    # element e of a component: its feed and its three products (kenomill._kernels.forward_element)
    B = BLOCK
    to_pb, to_zn, to_tails = forward_element(ts, h, split0, split1)
    acc[(F_FEED_M + e) * B + b] += ts * h if on else 0.0
    acc[(F_STREAM_M + 3 * PBCON + e) * B + b] += to_pb if on else 0.0
    acc[(F_STREAM_M + 3 * ZNCON + e) * B + b] += to_zn if on else 0.0
    acc[(F_STREAM_M + 3 * TAILS + e) * B + b] += to_tails if on else 0.0


@nb.njit(cache=True, inline="always")
def levels(nl, st_t, st_m, hd_t, hd_m, qoff, out):
    """The block's levels at the end of the step into ``out[nf, BLOCK]``: stockpile, holds, scatter."""
    for b in range(nl):
        out[F_STOCK_T, b] = 0.0
        out[F_HOLD_T, b] = 0.0
        for e in range(3):
            out[F_STOCK_M + e, b] = 0.0
            out[F_HOLD_M + e, b] = 0.0
        for s in range(st_t.shape[0]):
            out[F_STOCK_T, b] += st_t[s, b]
            out[F_HOLD_T, b] += hd_t[s, b]
            for e in range(3):
                out[F_STOCK_M + e, b] += st_m[s, e, b]
                out[F_HOLD_M + e, b] += hd_m[s, e, b]
        for j in range(NOFF):
            out[F_SCATTER + j, b] = qoff[j, b]


@nb.njit(cache=True, inline="always")
def block_streams(seed, draw0, d0, nd):
    """Keys of the normal and uniform streams of the block's draws ``d0 .. d0 + BLOCK - 1``, and
    their rows of pre-generated numbers (lanes past ``nd`` are never run)."""
    kn = np.empty(BLOCK, np.uint64)
    ku = np.empty(BLOCK, np.uint64)
    rows = np.empty(BLOCK, np.int64)
    for b in range(BLOCK):
        kn[b] = stream_key(seed, draw0 + d0 + b, 0)
        ku[b] = stream_key(seed, draw0 + d0 + b, 1)
        rows[b] = min(d0 + b, nd - 1)
    return kn, ku, rows


@nb.njit(cache=True, inline="always")
def block_rates(nl, d0, supply, mill_rate, draw_supply, draw_mill_rate):
    """The block's draws' supply ``[ns, nq, BLOCK]`` and mill feed rate ``[nq, BLOCK]``: their own
    (``draw_*``) or the plan's."""
    ns, nq = supply.shape
    sup_l = np.zeros((ns, nq, BLOCK))
    mr_l = np.zeros((nq, BLOCK))
    own = draw_supply.shape[0] > 0
    for b in range(nl):
        for q in range(nq):
            mr_l[q, b] = draw_mill_rate[d0 + b, q] if own else mill_rate[q]
            for s in range(ns):
                sup_l[s, q, b] = draw_supply[d0 + b, s, q] if own else supply[s, q]
    return sup_l, mr_l


@nb.njit(cache=True, inline="always")
def quarter_work(ns):
    """The block's work arrays of the quarter's constants (allocated once per block).

    ``zq[NOFF, BLOCK]``, ``zb[4, BLOCK]`` normals and ``flag[BLOCK]`` (:func:`lane_normals`);
    the scatter offsets ``qoff[NOFF, BLOCK]``, by source ``soff[BLOCK, ns, NOFF]`` with the
    response constants ``rc[BLOCK, ns, N_RC]``, and their lane-last copies ``offl``, ``rcl``
    (:func:`quarter_constants`).
    """
    return (
        np.empty((NOFF, BLOCK)),
        np.empty((4, BLOCK)),
        np.empty(BLOCK, np.int64),
        np.zeros((NOFF, BLOCK)),
        np.empty((BLOCK, ns, NOFF)),
        np.empty((BLOCK, ns, N_RC)),
        np.zeros((ns, NOFF, BLOCK)),
        np.zeros((ns, N_RC, BLOCK)),
    )


@nb.njit(cache=True, inline="always")
def step_work(ns, nf):
    """The block's work arrays of a step (allocated once per block, overwritten every step).

    Scratch ``stock``, ``frac``, ``bt`` and the operating hours ``up``, the mill's demand
    ``demand`` ``[BLOCK]``; the recoveries ``rr[4, BLOCK]`` and the blend ``blend[3, BLOCK]``;
    the deliveries ``arr_t[ns, BLOCK]``, ``arr_g[ns, 3, BLOCK]``; the feed by source
    ``part_t[ns, BLOCK]``, ``part_m[ns, 3, BLOCK]``; the step's record ``rec[nf, BLOCK]``
    (only written when daily).
    """
    return (
        np.empty(BLOCK),
        np.empty(BLOCK),
        np.empty(BLOCK),
        np.empty(BLOCK),
        np.empty(BLOCK),
        np.empty((4, BLOCK)),
        np.empty((3, BLOCK)),
        np.empty((ns, BLOCK)),
        np.empty((ns, 3, BLOCK)),
        np.empty((ns, BLOCK)),
        np.zeros((ns, 3, BLOCK)),
        np.zeros((nf, BLOCK)),
    )


@nb.njit(cache=True, inline="always")
def end_of_step(nl, d0, t, step_q, daily, st_t, st_m, hd_t, hd_m, qoff, acc, rec, out_d):
    """The block's levels at the end of step ``t``: into the quarter's sums ``acc`` at the quarter's
    last step; with per-step output into the step's record ``rec``, which is stored."""
    if t + 1 == step_q.shape[0] or step_q[t + 1] != step_q[t]:
        levels(nl, st_t, st_m, hd_t, hd_m, qoff, acc)
    if daily:
        levels(nl, st_t, st_m, hd_t, hd_m, qoff, rec)
        store_step(d0, t, rec, out_d)


@nb.njit(cache=True, inline="always")
def store_step(d0, t, rec, out_d):
    """The step's record of the block's kept draws into ``out_d[:, t]``."""
    for b in range(BLOCK):
        if d0 + b < out_d.shape[0]:
            out_d[d0 + b, t, :] = rec[:, b]


@nb.njit(cache=True, inline="always")
def store_block(d0, bq, bod, out_q, out_draw):
    """The block's quarterly records and per-draw drivers of its kept draws into the outputs."""
    for b in range(BLOCK):
        d = d0 + b
        if d < out_q.shape[0]:
            for q in range(bq.shape[0]):
                for f in range(bq.shape[1]):
                    out_q[d, q, f] = bq[q, f, b]
            out_draw[d, :] = bod[b]


# ----------------------------------------------------------------- the hot loop
# The mill's lane loop (mill_source) reads lane-last rows of six arrays and adds into 17 rows
# of the quarter's sums. On [..., BLOCK] arrays every row is a pointer of its own to LLVM (the
# row stride is a run-time value), which needed more run-time alias checks than its limit of
# 128 ("loop not vectorized: too many memory checks needed") and kept the loop scalar; on the
# flat views of flat_views the rows of an array are a constant distance apart, one check per
# array suffices and the loop is vectorised (-pass-remarks=loop-vectorize: width 8).
# fastmath={"contract"} (issue 14, 3 Dec): the inlined exp/pow polynomials and the mill's
# products-and-sums as FMA, as kenomill._simd compiles them on their own: 13 % less CPU time
# per draw-step on one core (paired runs, benchmarks/README.md), every result changed in its
# last bits (with the downtime's log1p1, the NumPy twin agrees within 3.4e-15 relative, was
# 2.4e-15); bit-identity across lanes, blocks, threads and chunks is kept
# (tests/test_kernels.py, tests/test_dask_chunks.py).
@nb.njit(SIGNATURE, cache=True, parallel=True, fastmath={"contract"}, error_model="numpy")
def simulate(
    seed, draw0, kind, grade_dep, p_base, free_idx, post_theta, post_offset_mean, post_scatter_sd,
    post_scatter_chol, step_q, step_h, mode, supply, rate_cv, start_lo, start_span, hold_until, g_mean,
    g_sd, g_phi, g_chol, g_mean_sd, r_mean, r_sd, stock0, stock_cap, mill_rate, availability,
    availability_sd, mttr_h, draw_supply, draw_mill_rate, use_pre, pre_z, pre_u, out_q, out_d, out_draw,
):  # fmt: skip
    """Simulate ``out_q.shape[0]`` draws (global indices ``draw0 + d``) over ``step_q.size`` steps.

    The arguments are :data:`ARGS` (:data:`INPUTS`, then :data:`OUTPUTS`; units, shapes and
    meaning in the comment above :data:`INPUTS`). Parallel over blocks of :data:`BLOCK`
    draws; inside a block the step functions above run the draws in lock-step.
    """
    nd = out_q.shape[0]
    nq = out_q.shape[1]
    nf = out_q.shape[2]
    ns = supply.shape[0]
    n_steps = step_q.shape[0]
    daily = out_d.shape[1] > 0
    post = (post_offset_mean, post_scatter_sd, post_scatter_chol)
    # error_model="numpy": no division-by-zero checks (every division is guarded), which
    # would otherwise keep LLVM from vectorising the block's loops
    for blk in nb.prange((nd + BLOCK - 1) // BLOCK):
        d0 = np.int64(blk) * BLOCK  # prange may type its index as unsigned
        # ---- the block's draws: keys of their streams, their rows of pre-generated numbers
        nl = min(BLOCK, nd - d0)  # draws in the block (the last one may be partial)
        kn, ku, rows = block_streams(seed, draw0, d0, nd)
        sup_l, mr_l = block_rates(nl, d0, supply, mill_rate, draw_supply, draw_mill_rate)
        # ---- per-draw setup: posterior draw, availability, sources, start delays
        bq = np.zeros((nq, nf, BLOCK))  # the block's quarterly sums and levels
        bod = np.zeros((BLOCK, out_draw.shape[1]))
        # fmt: off
        p, pl, s_post, a_d, mtbf_h, ttf, src_off, x, innov, gfac, start = setup_draws(
            nl, kn, ku, rows, use_pre, pre_z, pre_u, p_base, free_idx, post_theta, availability,
            availability_sd, mttr_h, r_mean, r_sd, g_mean_sd, g_sd, g_phi, g_chol, start_lo, start_span, bod,
        )
        # fmt: on
        down_rem = np.zeros(BLOCK)
        iz = 1 + 11 * ns  # next normal and uniform of every draw of the block (lock-step)
        iu = 2 + ns
        # ---- state and work arrays (allocated once per block)
        st_t, st_m, hd_t, hd_m = initial_state(stock0, g_mean)
        zq, zb, flag, qoff, soff, rc, offl, rcl = quarter_work(ns)
        stock, frac, bt, up, demand, rr, blend, arr_t, arr_g, part_t, part_m, rec = step_work(ns, nf)
        plf, offf, rcf, pmf, rrf, bqf, recf = flat_views(pl, offl, rcl, part_m, rr, bq, rec)
        argf = arr_g.reshape((ns, 3 * BLOCK))  # flat lane views for stockpile_in
        stmf, hdmf = st_m.reshape((ns, 3 * BLOCK)), hd_m.reshape((ns, 3 * BLOCK))
        q_prev = -1
        for t in range(n_steps):
            q = step_q[t]
            if q != q_prev:
                # fmt: off
                quarter_constants(nl, kn, iz, use_pre, pre_z, rows, zq, flag, post, s_post, src_off, kind,
                                  p, mr_l, q, qoff, soff, rc, offl, rcl)
                # fmt: on
                iz += NOFF
                q_prev = q
            acc = bq[q]
            if daily:
                rec[:, :] = 0.0
            # fmt: off
            deliveries(nl, kn, iz, use_pre, pre_z, rows, zb, flag, t, q, mode, sup_l, rate_cv, start,
                       g_mean, g_chol, g_phi, innov, gfac, x, arr_t, arr_g)
            # fmt: on
            iz += 4 * ns
            block_hours(
                nl, ku, iu, use_pre, pre_u, rows, step_h, mttr_h, mtbf_h, a_d, ttf, down_rem, up, flag
            )  # fmt: skip
            mill_demand(
                nl, t, q, mode, step_h, mr_l, up, sup_l, start, hold_until, arr_t, demand, acc, rec, daily
            )
            iu += 2 * N_FAIL
            stockpile_in(nl, t, arr_t, argf, hold_until, st_t, stmf, hd_t, hdmf, bqf[q], recf, daily)
            reclaim(nl, demand, st_t, st_m, part_t, part_m, blend, stock, frac, bt)
            mill(nl, grade_dep, plf, offf, rcf, part_t, pmf, blend, rrf, bqf[q], recf, daily)
            stockpile_divert(nl, st_t, st_m, stock_cap, acc, rec, daily, stock)
            end_of_step(nl, d0, t, step_q, daily, st_t, st_m, hd_t, hd_m, qoff, acc, rec, out_d)
        store_block(d0, bq, bod, out_q, out_draw)
