"""Derivatives of the mill outputs, by forward-mode differentiation of the mill response.

:func:`outputs_jacobian_rows` gives, for rows of (parameters, feed, q_ratio, offsets), the
derivative of every output of :func:`kenomill.recovery.outputs_rows` (base units: tonnes,
fractions, mass fractions) with respect to each of the :data:`kenomill.recovery.N_FULL`
parameters and to the operating throughput ratio ``q``: the calibration's Jacobian from one
numba call instead of finite differences.

The values along the way come from the response itself (:func:`kenomill.recovery.response_constants`,
:func:`~kenomill.recovery.circuit_recovery`, :func:`~kenomill.recovery.respond_feed`); only the
derivative of each step is written here, each next to the formula it differentiates (the
formulas are in :mod:`kenomill.recovery`'s docstring). Where the response clips (a recovery
to [0, 1], a grade factor at 0) the derivative is that of the clipped branch, as a one-sided
difference from inside would give. ``tests/test_jacobian.py`` checks every output against
central differences of :func:`~kenomill.recovery.outputs_rows`, for every named model.
"""

from __future__ import annotations

import math

import numba as nb
import numpy as np

from kenomill import _kernels, _numba_cache, recovery
from kenomill import recovery as rv

# the derivatives inline the response of kenomill.recovery and forward_row of _kernels
_numba_cache.track(__file__, [recovery.__file__, _kernels.__file__])

#: derivatives per output: one per parameter of FULL_PARAMS, then d/dq
N_GRAD = rv.N_FULL + 1
#: position of d/dq (operating throughput / REFERENCE_TPD) in a gradient
G_Q = rv.N_FULL
#: outputs per row (:data:`kenomill.recovery.ALL_OUTPUTS`)
N_OUT = len(recovery.ALL_OUTPUTS)


@nb.njit(cache=True, inline="always")
def kinetic_derivatives(kind, ktau, phi, slow_ratio):
    """d K / d ktau, d K / d phi and d K / d slow_ratio of :func:`kenomill.recovery.kinetic`."""
    if kind == rv.KIN_PLUG:  # K = 1 - exp(-x)
        return math.exp(-ktau), 0.0, 0.0
    if kind == rv.KIN_CELLS:  # K = 1 - (1 + x/N)^-N
        return (1.0 + ktau / rv.N_CELLS) ** (-rv.N_CELLS - 1.0), 0.0, 0.0
    if kind == rv.KIN_KLIMPEL:  # K = 1 - (1 - exp(-x)) / x
        if ktau < 1e-12:
            return 0.0, 0.0, 0.0
        e = math.exp(-ktau)
        return (1.0 - e) / (ktau * ktau) - e / ktau, 0.0, 0.0
    if kind == rv.KIN_TWO:  # K = phi (1 - exp(-x)) + (1 - phi) (1 - exp(-s x))
        e1 = math.exp(-ktau)
        e2 = math.exp(-slow_ratio * ktau)
        return phi * e1 + (1.0 - phi) * slow_ratio * e2, e2 - e1, (1.0 - phi) * ktau * e2
    return 0.0, 0.0, 0.0


@nb.njit(cache=True, inline="always")
def _circuit_constant_grad(kind, p, inv_q, i_rmax, i_ktau, i_phi, i_kslow, g):
    """Gradient ``g[N_GRAD]`` of ``rmax K(ktau / q, phi, kslow)`` (``rc[rv.RC_RPB]`` or ``rc[rv.RC_RZN]``)."""
    ktau = p[i_ktau] * inv_q
    dk, dphi, dslow = kinetic_derivatives(kind, ktau, p[i_phi], p[i_kslow])
    rmax = p[i_rmax]
    g[:] = 0.0
    g[i_rmax] = recovery.kinetic(kind, ktau, p[i_phi], p[i_kslow])
    g[i_ktau] = rmax * dk * inv_q
    g[i_phi] += rmax * dphi
    g[i_kslow] += rmax * dslow
    g[G_Q] = -rmax * dk * ktau  # d(ktau/q)/dq = -(ktau/q) / q, the last 1/q applied by the caller


@nb.njit(cache=True, inline="always")
def _gangue_grad(p, i_e, inv_q, log_off, g):
    """Gradient of ``clip01(e g_ratio(q) exp(log_off))`` (``rc[rv.RC_EPB]`` or ``rc[rv.RC_EZN]``)."""
    norm = 1.0 / (1.0 - math.exp(-rv.GANGUE_KTAU))
    g_ratio = (1.0 - math.exp(-rv.GANGUE_KTAU * inv_q)) * norm
    scale = math.exp(log_off)
    raw = p[i_e] * g_ratio * scale
    g[:] = 0.0
    if 0.0 <= raw <= 1.0:
        g[i_e] = g_ratio * scale
        # d g_ratio / dq = rv.GANGUE_KTAU exp(-rv.GANGUE_KTAU / q) norm x d(1/q)/dq, the 1/q by the caller
        g[G_Q] = -p[i_e] * scale * rv.GANGUE_KTAU * math.exp(-rv.GANGUE_KTAU * inv_q) * norm * inv_q


@nb.njit(cache=True, inline="always")
def _logit_shift_factor(r, off, einv):
    """d/dr of :func:`kenomill.recovery._logit_shift`: ``einv / (r + (1 - r) einv)^2`` (1 without offset)."""
    if off == 0.0:
        return 1.0
    if r <= 1e-12 or r >= 1.0 - 1e-12:
        return 0.0
    den = r + (1.0 - r) * einv
    return einv / (den * den)


@nb.njit(cache=True, inline="always")
def _circuit_recovery_grad(grade_dep, r0, g0, i_tail, tail, grade, off, einv, g):
    """Gradient ``g`` of :func:`kenomill.recovery.circuit_recovery` given ``r0`` and its gradient ``g0``."""
    g[:] = g0
    r = r0
    if grade_dep == 1:
        factor = 1.0 - tail / grade if grade > 0.0 else 0.0
        if factor > 0.0:
            g *= factor
            g[i_tail] -= r0 / grade
            r = r0 * factor
        else:
            g[:] = 0.0
            r = 0.0
    if r < 0.0 or r > 1.0:
        g[:] = 0.0
        r = min(max(r, 0.0), 1.0)
    g *= _logit_shift_factor(r, off, einv)


@nb.njit(cache=True, inline="always")
def _relative_floatability_grad(r, gr, a, i_a, g):
    """Gradient ``g`` of ``1 - (1 - r)^a`` (:func:`kenomill.recovery._relative_floatability`)."""
    g[:] = 0.0
    if a == 0.0 or r < 0.0 or r >= 1.0:
        return
    base = 1.0 - r
    g[:] = a * base ** (a - 1.0) * gr
    g[i_a] -= base**a * math.log(base)


@nb.njit(cache=True, inline="always")
def _ratio_grad(part, dpart, whole, dwhole, g):
    """Gradient of ``part / whole`` (0 for an empty whole, as :func:`kenomill.recovery._ratio`)."""
    if whole > 0.0:
        g[:] = (dpart - part / whole * dwhole) / whole
    else:
        g[:] = 0.0


@nb.njit(cache=True, inline="always")
def _response_grad(kind, grade_dep, p, f, q, off, rc, split, dsplit, dpull):
    """Gradients of the response's ``split[3, 2]`` and ``pull[2]`` into ``dsplit[3, 2, N_GRAD]``
    and ``dpull[2, N_GRAD]``, for one feed of mass fractions ``f`` (``rc``, ``split``: the values)."""
    inv_q = 1.0 / q
    d = np.empty((8, N_GRAD))  # rpb0, rzn0, e_pb, e_zn, r_pb, r_znc, rel_pb, rel_zn
    _circuit_constant_grad(kind, p, inv_q, rv.I_RMAX_PB, rv.I_KTAU_PB, rv.I_PHI_PB, rv.I_KSLOW_PB, d[0])
    _circuit_constant_grad(kind, p, inv_q, rv.I_RMAX_ZN, rv.I_KTAU_ZN, rv.I_PHI_ZN, rv.I_KSLOW_ZN, d[1])
    _gangue_grad(p, rv.I_E_PB, inv_q, off[rv.O_LOG_GANGUE_PBCON], d[2])
    _gangue_grad(p, rv.I_E_ZN, inv_q, off[rv.O_LOG_GANGUE_ZNCON], d[3])
    for j in range(4):
        d[j, G_Q] *= inv_q  # the 1/q of d(x/q)/dq = -(x/q)/q
    r_pb = recovery.circuit_recovery(
        grade_dep, rc[rv.RC_RPB], p[rv.I_TAIL_PB], f[1], off[rv.O_LOGIT_REC_PB], rc[rv.RC_EINV_PB]
    )
    r_znc = recovery.circuit_recovery(
        grade_dep, rc[rv.RC_RZN], p[rv.I_TAIL_ZN], f[2], off[rv.O_LOGIT_REC_ZN], rc[rv.RC_EINV_ZN]
    )
    _circuit_recovery_grad(
        grade_dep, rc[rv.RC_RPB], d[0], rv.I_TAIL_PB, p[rv.I_TAIL_PB], f[1], off[rv.O_LOGIT_REC_PB],
        rc[rv.RC_EINV_PB], d[4],
    )  # fmt: skip
    _circuit_recovery_grad(
        grade_dep, rc[rv.RC_RZN], d[1], rv.I_TAIL_ZN, p[rv.I_TAIL_ZN], f[2], off[rv.O_LOGIT_REC_ZN],
        rc[rv.RC_EINV_ZN], d[5],
    )  # fmt: skip
    _relative_floatability_grad(r_pb, d[4], p[rv.I_AG_PB], rv.I_AG_PB, d[6])
    _relative_floatability_grad(r_znc, d[5], p[rv.I_AG_ZN], rv.I_AG_ZN, d[7])
    rel_pb = recovery._relative_floatability(r_pb, p[rv.I_AG_PB])
    # split[0, 0] = logit_shift(rel_pb); split[0, 1] = (1 - split[0, 0]) rel_zn
    dsplit[0, 0] = _logit_shift_factor(rel_pb, off[rv.O_LOGIT_REC_AG_PBCON], rc[rv.RC_EINV_AG]) * d[6]
    dsplit[0, 1] = (1.0 - split[0, 0]) * d[7] - recovery._relative_floatability(
        r_znc, p[rv.I_AG_ZN]
    ) * dsplit[0, 0]
    # split[1] = (r_pb, (1 - r_pb) pb_zn); split[2] = (zn_pb, (1 - zn_pb) r_znc)
    dsplit[1, 0] = d[4]
    dsplit[1, 1] = -p[rv.I_PB_ZN] * d[4]
    dsplit[1, 1, rv.I_PB_ZN] += 1.0 - r_pb
    dsplit[2, 0] = 0.0
    dsplit[2, 0, rv.I_ZN_PB] = 1.0
    dsplit[2, 1] = (1.0 - p[rv.I_ZN_PB]) * d[5]
    dsplit[2, 1, rv.I_ZN_PB] -= r_znc
    # pulls: minerals and gangue to each con (recovery.split_pull_values)
    galena = f[1] / rv.GALENA_PB
    sphal = f[2] / rv.SPHALERITE_ZN
    gangue = max(1.0 - galena - sphal, 0.0)
    dpull[0] = galena * dsplit[1, 0] + sphal * dsplit[2, 0] + gangue * d[2] + f[0] * dsplit[0, 0]
    dpull[1] = (
        galena * dsplit[1, 1]
        + sphal * dsplit[2, 1]
        + gangue * ((1.0 - rc[rv.RC_EPB]) * d[3] - rc[rv.RC_EZN] * d[2])
        + f[0] * dsplit[0, 1]
    )


@nb.njit(cache=True)
def outputs_jacobian_rows(kind, grade_dep, p, ore_t, head, q, off, dout):
    """Derivatives of :func:`kenomill.recovery.outputs_rows` (base units) for the same rows.

    ``dout[n, N_OUT, N_GRAD]`` (out): ``dout[i, o, j]`` = d out[i, o] / d p[i, j] for
    ``j < rv.N_FULL`` and d out[i, o] / d q[i] for ``j = G_Q``; offsets and feed held fixed.
    """
    rc = np.empty(rv.N_RC)
    split = np.empty((3, 2))
    pull = np.empty(2)
    dsplit = np.empty((3, 2, N_GRAD))
    dpull = np.empty((2, N_GRAD))
    dmet = np.empty((3, 3, N_GRAD))  # d (tonnes of element j in stream k)
    for i in range(ore_t.shape[0]):
        f = head[i]
        ore = ore_t[i]
        recovery.response_constants(kind, p[i], q[i], off[i], rc)
        recovery.respond_feed(grade_dep, p[i], f, f, off[i], rc, split, pull)
        _response_grad(kind, grade_dep, p[i], f, q[i], off[i], rc, split, dsplit, dpull)
        for j in range(3):  # forward_row: element j's tonnes e split to the cons, tails by difference
            e = ore * f[j]
            dmet[0, j] = e * dsplit[j, 0]
            dmet[1, j] = e * dsplit[j, 1]
            dmet[2, j] = -dmet[0, j] - dmet[1, j]
        st0, st1 = ore * pull[0], ore * pull[1]
        st2 = ore - st0 - st1
        met01, met12 = ore * f[1] * split[1, 0], ore * f[2] * split[2, 1]
        o = dout[i]
        o[0] = dmet[0, 0] + dmet[1, 0]
        o[1] = dmet[0, 1]
        o[2] = dmet[1, 2]
        for j in range(3):  # recoveries: contained metal / the feed's (fixed) tonnes of it
            feed_j = ore * f[j]
            o[3 + j] = o[j] / feed_j if feed_j > 0.0 else 0.0 * o[j]
        o[6] = ore * dpull[0]
        _ratio_grad(ore * f[0] * split[0, 0], dmet[0, 0], st0, o[6], o[7])
        _ratio_grad(met01, dmet[0, 1], st0, o[6], o[8])
        o[9] = ore * dpull[1]
        _ratio_grad(ore * f[0] * split[0, 1], dmet[1, 0], st1, o[9], o[10])
        _ratio_grad(met12, dmet[1, 2], st1, o[9], o[11])
        o[12] = -o[6] - o[9]
        for j in range(3):
            tails_j = ore * f[j] * (1.0 - split[j, 0] - split[j, 1])
            _ratio_grad(tails_j, dmet[2, j], st2, o[12], o[13 + j])
