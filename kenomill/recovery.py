"""Recovery-curve models and the mill's metallurgical response.

Two layers, as in pvlib: pure curve functions of physical arguments (usable inside
numba kernels), and one response function that assembles them into the two-stage
differential flotation circuit of the Keno Hill mill. Named models (:data:`MODELS`)
only choose which mechanisms are active and which parameters are free; everything is
evaluated by the same numba function :func:`respond`, which the calibration, the
prediction and the Monte Carlo kernels all call.

Throughput enters through residence time: a bank of cells of fixed volume gives a
residence time tau proportional to 1 / (operating throughput), so
``k tau = ktau_ref * Q_ref / Q`` with ``Q = calendar tpd / availability`` and
``Q_ref = REFERENCE_TPD``.

Concentrate grades come out of the model: each concentrate's mass is the galena
(PbS, 86.6 % Pb) and sphalerite (ZnS, 67.1 % Zn) that report to it plus the gangue
(everything else) that is entrained or slow-floats with it. Higher residence time
floats more of both metal and gangue: the grade-recovery trade-off.

The response, step by step (parameters of :data:`FULL_PARAMS`; ``q = Q / Q_ref``):

* lead circuit: ``R_Pb = rmax_pb * K(ktau_pb / q) * (1 - tail_pb / f_Pb)``, where ``K`` is
  the kinetic factor of the model's kind (1, plug flow, mixed cells, Klimpel or two
  components) and the grade factor is present in grade-dependent models only;
* zinc circuit, of the zinc entering it: ``R_Zn,c = rmax_zn * K(ktau_zn / q) * (1 - tail_zn / f_Zn)``;
  zinc to the zinc con ``= (1 - zn_pb) R_Zn,c``, ``zn_pb`` of the feed zinc misreporting to the
  lead con;
* silver, carried by galena and sulphosalts that float ``ag_pb`` times as fast as
  galena: ``R_Ag,Pbcon = 1 - (1 - R_Pb)^ag_pb``; of the silver left, ``1 - (1 - R_Zn,c)^ag_zn``
  goes to the zinc con (relative floatability in first-order kinetics);
* lead to the zinc con: ``pb_zn`` of the lead-circuit tail;
* gangue to each con: ``e_pb`` and ``e_zn`` at the reference throughput, scaled with residence
  time as a slow floater (``GANGUE_KTAU``).

Valid ranges. Every parameter has bounds in :data:`FULL_PARAMS`. The inputs the models
were calibrated on (the six reported quarters, 2011Q1-2012Q2) span head grades Ag
704-899 g/t, Pb 8.8-11.3 %, Zn 4.9-6.7 %, calendar throughput 201-245 t/d and an operating
``q`` of about 0.8-1.1 (availability 87-98 %). Beyond that the curves are extrapolations
of an assumed mechanism: at 400 t/d the kinetic models' lead recovery rests on the
first-order form, not on observed quarters, and the prediction bounds widen accordingly.

Named models (:data:`MODELS`; ``kenomill calibrate --list-models``):

====================  ========================================================  ====================
name                  mechanisms                                               reference
====================  ========================================================  ====================
constant              constant recoveries                                      metallurgical accounting
fixed_tail            grade: ``R = rmax (1 - t / f)`` in both circuits         Wills & Finch 2016, ch. 3
plug_flow             first-order plug flow ``1 - exp(-k tau)``, both circuits  Wills & Finch 2016, ch. 12
mixed_cells           N = 8 mixed cells ``1 - (1 + k tau / N)^-N``              Dobby & Finch 1986
klimpel               rectangular rate distribution                            Klimpel 1980
two_component         fast + slow floating fractions                           Kelsall 1961
fixed_tail_plug       grade x plug flow, both circuits                         Wills & Finch 2016
fixed_tail_klimpel    grade x Klimpel, both circuits                           Klimpel 1980
plug_pb_tail_zn       lead: plug flow (throughput); zinc: fixed tail (grade)   Wills & Finch 2016
cells_pb_tail_zn      lead: 8 mixed cells; zinc: fixed tail (the default)      Wills & Finch 2016
klimpel_pb_tail_zn    lead: Klimpel; zinc: fixed tail                          Klimpel 1980
====================  ========================================================  ====================

Recoveries are fractions [-], grades mass fractions [-], ``k tau`` dimensionless (rate
[1/min] x residence time [min]) at :data:`REFERENCE_TPD`.

References
----------
Kelsall, D.F., 1961. Application of probability in the assessment of flotation
systems. Trans. IMM 70, 191-204 (floatability components).
Klimpel, R.R., 1980. Selection of chemical reagents for flotation. In: Mineral
Processing Plant Design, 2nd ed., SME, 907-934 (rectangular rate distribution).
Wills, B.A., Finch, J.A., 2016. Wills' Mineral Processing Technology, 8th ed., ch. 12
(first-order kinetics, plug flow and perfectly mixed cells in series).
Dobby, G.S., Finch, J.A., 1986. Flotation column scale-up and modelling. CIM Bull. 79
(N mixed cells in series).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numba as nb
import numpy as np

from kenomill import _kernels, _numba_cache, variables
from kenomill._kernels import forward_row
from kenomill.errors import ValidationError
from kenomill.units import PURE_MINERAL_GRADE

# outputs_rows inlines _kernels.forward_row: its cache must notice when that file changes
_numba_cache.track(__file__, [_kernels.__file__])

#: reference operating throughput at which ``ktau_*`` parameters are stated [t/d].
#: 250 t/d is the mill's quoted running rate in 2012 (Northern Miner, 2012).
REFERENCE_TPD = 250.0
#: number of perfectly mixed cells in series of the ``mixed_cells`` model. Cell count
#: is not public; 8 is a typical rougher-scavenger bank.
N_CELLS = 8.0
#: k*tau of gangue (slow floating plus entrainment) at the reference throughput.
GANGUE_KTAU = 0.2

GALENA_PB = PURE_MINERAL_GRADE["Pb"]
SPHALERITE_ZN = PURE_MINERAL_GRADE["Zn"]

# kinetic kinds
KIN_NONE, KIN_PLUG, KIN_CELLS, KIN_KLIMPEL, KIN_TWO = 0, 1, 2, 3, 4
KINETIC_KINDS = {
    "none": KIN_NONE,
    "plug": KIN_PLUG,
    "cells": KIN_CELLS,
    "klimpel": KIN_KLIMPEL,
    "two_component": KIN_TWO,
}

#: element order of the response: rows of ``split``
ELEMENTS = variables.ELEMENTS

#: number of random offsets :func:`respond` accepts (quarter-to-quarter scatter):
#: 0 logit R_Pb, 1 logit R_Zn (zinc circuit), 2 logit R_Ag to lead con,
#: 3 log gangue to lead con, 4 log gangue to zinc con.
N_OFFSETS = 5
OFFSET_NAMES = ("logit_rec_pb", "logit_rec_zn", "logit_rec_ag_pbcon", "log_gangue_pbcon", "log_gangue_zncon")


@dataclass(frozen=True)
class Param:
    name: str
    default: float
    lo: float
    hi: float
    units: str
    doc: str


#: every parameter of the general response, in the order of the full vector.
#: Defaults are rough values read off the 2012Q1 figures (see the docstring of each).
FULL_PARAMS: tuple[Param, ...] = (
    Param("rmax_pb", 0.95, 0.3, 1.0, "1", "maximum recovery of Pb to the lead concentrate"),
    Param("ktau_pb", 4.0, 0.05, 60.0, "1", "flotation rate x residence time of galena at REFERENCE_TPD"),
    Param("tail_pb", 0.004, 0.0, 0.05, "mass fraction", "fixed lead-circuit tail grade (grade models)"),
    Param("phi_pb", 0.85, 0.0, 1.0, "1", "fast-floating share of the floatable galena (two_component)"),
    Param("kslow_pb", 0.1, 0.001, 1.0, "1", "slow rate / fast rate of galena (two_component)"),
    Param("rmax_zn", 0.75, 0.1, 1.0, "1", "maximum recovery of Zn in the zinc circuit"),
    Param("ktau_zn", 2.0, 0.05, 60.0, "1", "flotation rate x residence time of sphalerite at REFERENCE_TPD"),
    Param("tail_zn", 0.01, 0.0, 0.05, "mass fraction", "fixed zinc-circuit tail grade (grade models)"),
    Param("phi_zn", 0.8, 0.0, 1.0, "1", "fast-floating share of the floatable sphalerite (two_component)"),
    Param("kslow_zn", 0.1, 0.001, 1.0, "1", "slow rate / fast rate of sphalerite (two_component)"),
    Param(
        "ag_pb",
        0.9,
        0.2,
        3.0,
        "1",
        "floatability of the silver carriers relative to galena in the lead circuit: "
        "R_Ag,Pbcon = 1 - (1 - R_Pb)^ag_pb",
    ),
    Param(
        "ag_zn",
        0.55,
        0.0,
        3.0,
        "1",
        "floatability of lead-tail silver relative to sphalerite in the zinc circuit: "
        "share of lead-tail Ag to zinc con = 1 - (1 - R_Zn,circuit)^ag_zn",
    ),
    Param("zn_pb", 0.08, 0.0, 0.3, "1", "share of feed Zn misreporting to the lead concentrate"),
    Param("pb_zn", 0.3, 0.0, 0.9, "1", "share of lead-tail Pb reporting to the zinc concentrate"),
    Param("e_pb", 0.04, 0.0, 0.3, "1", "share of gangue reporting to the lead con at REFERENCE_TPD"),
    Param(
        "e_zn", 0.03, 0.0, 0.3, "1", "share of lead-tail gangue reporting to the zinc con at REFERENCE_TPD"
    ),
)
PARAM_INDEX = {p.name: i for i, p in enumerate(FULL_PARAMS)}
N_FULL = len(FULL_PARAMS)

# Positions in the full parameter vector, by name, for the numba code (which reads module
# constants): ``I_<NAME>`` for every parameter of FULL_PARAMS (tests/test_recovery.py
# checks that the two agree), so a parameter added to the table moves no literal index.
I_RMAX_PB = PARAM_INDEX["rmax_pb"]
I_KTAU_PB = PARAM_INDEX["ktau_pb"]
I_TAIL_PB = PARAM_INDEX["tail_pb"]
I_PHI_PB = PARAM_INDEX["phi_pb"]
I_KSLOW_PB = PARAM_INDEX["kslow_pb"]
I_RMAX_ZN = PARAM_INDEX["rmax_zn"]
I_KTAU_ZN = PARAM_INDEX["ktau_zn"]
I_TAIL_ZN = PARAM_INDEX["tail_zn"]
I_PHI_ZN = PARAM_INDEX["phi_zn"]
I_KSLOW_ZN = PARAM_INDEX["kslow_zn"]
I_AG_PB = PARAM_INDEX["ag_pb"]
I_AG_ZN = PARAM_INDEX["ag_zn"]
I_ZN_PB = PARAM_INDEX["zn_pb"]
I_PB_ZN = PARAM_INDEX["pb_zn"]
I_E_PB = PARAM_INDEX["e_pb"]
I_E_ZN = PARAM_INDEX["e_zn"]
# positions of the offsets (OFFSET_NAMES), likewise
O_LOGIT_REC_PB = OFFSET_NAMES.index("logit_rec_pb")
O_LOGIT_REC_ZN = OFFSET_NAMES.index("logit_rec_zn")
O_LOGIT_REC_AG_PBCON = OFFSET_NAMES.index("logit_rec_ag_pbcon")
O_LOG_GANGUE_PBCON = OFFSET_NAMES.index("log_gangue_pbcon")
O_LOG_GANGUE_ZNCON = OFFSET_NAMES.index("log_gangue_zncon")


# --------------------------------------------------------------------------- curves
@nb.njit(cache=True)
def plug_flow(ktau):
    """Plug-flow first-order recovery fraction 1 - exp(-k tau) [-] (Wills & Finch 2016)."""
    return 1.0 - math.exp(-ktau)


@nb.njit(cache=True)
def mixed_cells(ktau, n_cells):
    """N perfectly mixed cells in series: 1 - (1 + k tau / N)^-N [-]."""
    return 1.0 - (1.0 + ktau / n_cells) ** (-n_cells)


@nb.njit(cache=True)
def klimpel(ktau):
    """Klimpel rectangular rate distribution: 1 - (1 - exp(-k tau)) / (k tau) [-]."""
    if ktau < 1e-12:
        return 0.0
    return 1.0 - (1.0 - math.exp(-ktau)) / ktau


@nb.njit(cache=True)
def two_component(ktau, phi_fast, slow_ratio):
    """Kelsall fast + slow floating fractions: phi (1-e^-k tau) + (1-phi)(1-e^-r k tau) [-]."""
    return phi_fast * (1.0 - math.exp(-ktau)) + (1.0 - phi_fast) * (1.0 - math.exp(-slow_ratio * ktau))


@nb.njit(cache=True)
def fixed_tail(head, tail, con):
    """Fixed-tail recovery R(f) = (1 - t/f) / (1 - t/c), clipped to [0, 1] [-].

    Holding tail and concentrate grades fixed, recovery falls as head grade falls.
    """
    if head <= tail:
        return 0.0
    r = (1.0 - tail / head) / (1.0 - tail / con)
    return min(max(r, 0.0), 1.0)


@nb.njit(cache=True)
def kinetic(kind, ktau, phi, slow_ratio):
    """Kinetic recovery factor of the named kind; 1 for ``KIN_NONE``."""
    if kind == KIN_PLUG:
        return plug_flow(ktau)
    if kind == KIN_CELLS:
        return mixed_cells(ktau, N_CELLS)
    if kind == KIN_KLIMPEL:
        return klimpel(ktau)
    if kind == KIN_TWO:
        return two_component(ktau, phi, slow_ratio)
    return 1.0


@nb.njit(cache=True, inline="always")
def _logit_shift(r, off, einv):
    """sigmoid(logit(r) + off) given ``einv = exp(-off)``: 1 / (1 + exp(-off) (1 - r) / r).

    The same function as the log/exp form with exp(-off) hoisted out of the steps (one
    division per call instead of a log and an exp); einv = inf (off << 0) gives 0, einv = 0
    (off >> 0) gives 1.
    """
    if off == 0.0:
        return r
    r = min(max(r, 1e-12), 1.0 - 1e-12)
    return 1.0 / (1.0 + (1.0 - r) / r * einv)


@nb.njit(cache=True)
def _relative_floatability(r, a):
    """Recovery of a species floating ``a`` times as fast as one recovered ``r``: 1 - (1 - r)^a."""
    if a == 0.0:
        return 0.0
    return 1.0 - (1.0 - min(max(r, 0.0), 1.0)) ** a


@nb.njit(cache=True)
def fold_deviation(dev, idx, side, vecs):
    """Fold a parameter deviation from the optimum back inside the bounds the optimum sits on.

    ``dev[k]`` (in place): a draw minus the optimum; ``idx[m]``, ``side[m]`` (+1: optimum on
    the upper bound, -1: on the lower) and ``vecs[m, k]`` from
    :meth:`kenomill.calibration_file.Calibration.fold_vectors`. A deviation past bound ``j``
    is reflected along ``vecs[j]``, the regression of all parameters on parameter ``j``:
    ``dev -= 2 dev[j] vecs[j]``. For a Gaussian this maps the half beyond the bound onto
    the half inside with the same density, so the result is the Gaussian truncated at the
    bound, and the partners of the pinned parameter move with it along the ridge.
    """
    for r in range(idx.shape[0]):
        j = idx[r]
        if side[r] * dev[j] > 0.0:
            d = dev[j]
            for i in range(dev.shape[0]):
                dev[i] -= 2.0 * d * vecs[r, i]


@nb.njit(cache=True)
def _clip01(x):
    return min(max(x, 0.0), 1.0)


# ------------------------------------------------------------------------ response
# The response in two halves, the only implementation (calibration, prediction and the
# Monte Carlo kernel all use them): what depends only on the parameters, the operating
# throughput and the offsets (kinetic factors, gangue entrainment, exp of the logit
# offsets) once per draw, quarter and source (:func:`response_constants`); what depends on
# the feed every step (:func:`respond_feed`). Measured in the Monte Carlo kernel on the
# reference workload, one core, ns per draw-step: 911-1060 with the whole response in the
# step; 646-843 with kinetics and entrainment hoisted; 444-468 with the logit offsets
# hoisted too (6 of 18 calls to exp/log/pow per source and step left).
#: slots of the response constants ``rc[N_RC]``: recoveries of the two circuits before the
#: grade factor and offsets, gangue entrainment to each con, exp(-offset) of the three
#: logit offsets
RC_RPB, RC_RZN, RC_EPB, RC_EZN, RC_EINV_PB, RC_EINV_ZN, RC_EINV_AG = range(7)
N_RC = 7


@nb.njit(cache=True, inline="always")
def response_constants(kind, p, q_ratio, offsets, rc):
    """Feed-independent half of the response into ``rc[N_RC]`` (slots ``RC_*``).

    Parameters
    ----------
    kind : int
        Kinetic kind (``KIN_*``).
    p : float64[N_FULL]
        Full parameter vector (order of :data:`FULL_PARAMS`).
    q_ratio : float
        Operating throughput / :data:`REFERENCE_TPD` [-]; residence time scales as 1/q_ratio.
    offsets : float64[N_OFFSETS]
        Random perturbations (0 for the deterministic model); see :data:`OFFSET_NAMES`.
    rc : float64[N_RC] (out)
    """
    inv_q = 1.0 / q_ratio
    rc[RC_RPB] = p[I_RMAX_PB] * kinetic(kind, p[I_KTAU_PB] * inv_q, p[I_PHI_PB], p[I_KSLOW_PB])
    rc[RC_RZN] = p[I_RMAX_ZN] * kinetic(kind, p[I_KTAU_ZN] * inv_q, p[I_PHI_ZN], p[I_KSLOW_ZN])
    # gangue floats slowly or is entrained: first order with GANGUE_KTAU, scaled with 1/q
    g_ratio = (1.0 - math.exp(-GANGUE_KTAU * inv_q)) / (1.0 - math.exp(-GANGUE_KTAU))
    rc[RC_EPB] = _clip01(p[I_E_PB] * g_ratio * math.exp(offsets[O_LOG_GANGUE_PBCON]))
    rc[RC_EZN] = _clip01(p[I_E_ZN] * g_ratio * math.exp(offsets[O_LOG_GANGUE_ZNCON]))
    rc[RC_EINV_PB] = math.exp(-offsets[O_LOGIT_REC_PB])
    rc[RC_EINV_ZN] = math.exp(-offsets[O_LOGIT_REC_ZN])
    rc[RC_EINV_AG] = math.exp(-offsets[O_LOGIT_REC_AG_PBCON])


# respond_feed in two pieces around its two powers, so that the Monte Carlo kernel can
# compute those over a block of draws in SIMD lanes (kenomill._simd.pow1) between them
@nb.njit(cache=True, inline="always")
def circuit_recovery(grade_dep, r0, tail, grade, offset, einv):
    """One circuit's recovery of its mineral: ``r0`` (response constant) x grade factor, logit offset.

    ``grade``: the element's mass fraction in the blended feed; ``einv = exp(-offset)``.
    """
    r = r0
    if grade_dep == 1:
        r *= max(0.0, 1.0 - tail / grade) if grade > 0.0 else 0.0
    return _logit_shift(_clip01(r), offset, einv)


@nb.njit(cache=True, inline="always")
def split_pull_values(
    f_ag, f_pb, f_zn, r_pb, r_znc, rel_pb, rel_zn, offset_ag, einv_ag, zn_pb, pb_zn_share, e_pb, e_zn
):
    """:func:`split_pull` as values: ``(split[0, 0], split[0, 1], ..., split[2, 1], pull[0], pull[1])``.

    Scalars in, scalars out, so that the Monte Carlo kernel runs it for a block of draws in
    SIMD lanes; ``f_ag``, ``f_pb``, ``f_zn``: the component's mass fractions (``head``).
    """
    r_ag_pb = _logit_shift(rel_pb, offset_ag, einv_ag)
    r_ag_zn = (1.0 - r_ag_pb) * rel_zn
    pb_zn = (1.0 - r_pb) * pb_zn_share
    zn_zn = (1.0 - zn_pb) * r_znc
    # concentrate masses from minerals + gangue (per tonne of the component)
    galena = f_pb / GALENA_PB
    sphal = f_zn / SPHALERITE_ZN
    gangue = max(1.0 - galena - sphal, 0.0)
    pull0 = galena * r_pb + sphal * zn_pb + gangue * e_pb + f_ag * r_ag_pb
    pull1 = galena * pb_zn + sphal * zn_zn + gangue * (1.0 - e_pb) * e_zn + f_ag * r_ag_zn
    return r_ag_pb, r_ag_zn, r_pb, pb_zn, zn_pb, zn_zn, pull0, pull1


@nb.njit(cache=True, inline="always")
def split_pull(
    head, r_pb, r_znc, rel_pb, rel_zn, offset_ag, einv_ag, zn_pb, pb_zn_share, e_pb, e_zn, split, pull
):
    """Shares ``split[3, 2]`` and pulls ``pull[2]`` from the two circuits' recoveries.

    ``rel_pb``, ``rel_zn``: :func:`_relative_floatability` of ``r_pb`` with ``ag_pb`` and of
    ``r_znc`` with ``ag_zn``; ``offset_ag``, ``einv_ag``: the logit offset of silver to the
    lead con and its ``exp(-offset)``; ``zn_pb``, ``pb_zn_share``: the parameters ``zn_pb``
    and ``pb_zn``; ``e_pb``, ``e_zn``: the gangue entrainment constants (``rc``).
    """
    v = split_pull_values(
        head[0],
        head[1],
        head[2],
        r_pb,
        r_znc,
        rel_pb,
        rel_zn,
        offset_ag,
        einv_ag,
        zn_pb,
        pb_zn_share,
        e_pb,
        e_zn,
    )
    split[0, 0], split[0, 1], split[1, 0], split[1, 1], split[2, 0], split[2, 1], pull[0], pull[1] = v


@nb.njit(cache=True, inline="always")
def respond_feed(grade_dep, p, head, grade, offsets, rc, split, pull):
    """Feed-dependent half of the response, for one component of the circuit feed.

    Parameters
    ----------
    grade_dep : int
        1 to multiply recoveries by the fixed-tail grade factor ``1 - tail / f``.
    p : float64[N_FULL]
        Full parameter vector.
    head : float64[3]
        The component's Ag, Pb, Zn mass fractions: its minerals and gangue per tonne.
    grade : float64[3]
        Ag, Pb, Zn mass fractions of the blended feed the circuit sees: the grade factor is
        the circuit's (its tail assay is set by what it is fed). One ore alone: ``head``.
    offsets : float64[N_OFFSETS]
        The component's offsets (only their signs' zero test is read here; ``rc`` holds
        their exponentials).
    rc : float64[N_RC]
        :func:`response_constants` of the component's offsets.
    split : float64[3, 2] (out)
        Share of the component's Ag, Pb, Zn reporting to (lead con, zinc con).
    pull : float64[2] (out)
        Concentrate tonnes / component tonnes of (lead con, zinc con).
    """
    r_pb = circuit_recovery(
        grade_dep, rc[RC_RPB], p[I_TAIL_PB], grade[1], offsets[O_LOGIT_REC_PB], rc[RC_EINV_PB]
    )
    r_znc = circuit_recovery(
        grade_dep, rc[RC_RZN], p[I_TAIL_ZN], grade[2], offsets[O_LOGIT_REC_ZN], rc[RC_EINV_ZN]
    )
    # Silver carriers float alongside galena (then sphalerite) with a relative rate a: in
    # first-order flotation R_Ag = 1 - exp(-a k tau) = 1 - (1 - R)^a. Unlike a ratio
    # R_Ag = a R, this stays below 1 for any a, with no kink where a R would reach 1.
    rel_pb = _relative_floatability(r_pb, p[I_AG_PB])
    rel_zn = _relative_floatability(r_znc, p[I_AG_ZN])
    split_pull(
        head, r_pb, r_znc, rel_pb, rel_zn, offsets[O_LOGIT_REC_AG_PBCON], rc[RC_EINV_AG],
        p[I_ZN_PB], p[I_PB_ZN], rc[RC_EPB], rc[RC_EZN], split, pull,
    )  # fmt: skip


@nb.njit(cache=True)
def respond(kind, grade_dep, p, head, q_ratio, offsets, split, pull):
    """Metallurgical response of the two-stage circuit for one feed (both halves).

    Parameters
    ----------
    kind, grade_dep : int
        Kinetic kind (``KIN_*``); 1 for the fixed-tail grade factor.
    p : float64[N_FULL]
        Full parameter vector (order of :data:`FULL_PARAMS`).
    head : float64[3]
        Feed mass fractions of Ag, Pb, Zn.
    q_ratio : float
        Operating throughput / :data:`REFERENCE_TPD` [-].
    offsets : float64[N_OFFSETS]
        Random perturbations (0 for the deterministic model); see :data:`OFFSET_NAMES`.
    split : float64[3, 2] (out)
        Share of the feed of Ag, Pb, Zn reporting to (lead con, zinc con).
    pull : float64[2] (out)
        Concentrate tonnes / feed tonnes of (lead con, zinc con).
    """
    rc = np.empty(N_RC)
    response_constants(kind, p, q_ratio, offsets, rc)
    respond_feed(grade_dep, p, head, head, offsets, rc, split, pull)


@nb.njit(
    "void(i8, i8, f8[:, ::1], f8[:, ::1], f8[:, ::1], f8[::1], f8[:, ::1], f8[:, :, ::1], f8[:, ::1])",
    cache=True,
)
def respond_rows(kind, grade_dep, p, head, grade, q_ratio, offsets, split, pull):
    """Both halves over rows: p[n, N_FULL], component head[n, 3] milled in blend grade[n, 3],
    q_ratio[n], offsets[n, N_OFFSETS] -> split[n, 3, 2], pull[n, 2].

    The registry pairs it with its NumPy reference :func:`kenomill._reference.respond_rows`.
    """
    rc = np.empty(N_RC)
    for i in range(head.shape[0]):
        response_constants(kind, p[i], q_ratio[i], offsets[i], rc)
        respond_feed(grade_dep, p[i], head[i], grade[i], offsets[i], rc, split[i], pull[i])


# ------------------------------------------------------------------ mill outputs
#: what :func:`outputs_rows` computes per row, in this order (the first twelve are the
#: columns of ``kenomill predict``'s PRED.csv): contained metal, recoveries, concentrate
#: tonnes and grades, tails. The names carry the reported units ([troy_oz, lb, lb], [%],
#: [t] and [g/t, %], [t, g/t, %, %]); the kernel returns base units (tonnes of metal,
#: fractions, tonnes, mass fractions) and :func:`kenomill.calibrate.mill_outputs` converts
#: at the boundary with :func:`kenomill.units.reported_factors`.
OUTPUTS = (*variables.CONTAINED, *variables.FIT_FIGURES)
#: more columns of :func:`outputs_rows` (the final tails)
EXTRA_OUTPUTS = ("tails_t", "tails_ag_gpt", "tails_pb_pct", "tails_zn_pct")
ALL_OUTPUTS = OUTPUTS + EXTRA_OUTPUTS


@nb.njit(cache=True, inline="always")
def _ratio(part, whole):
    """``part / whole``, 0 for an empty whole (a recovery of no feed, a grade of no stream)."""
    return part / whole if whole > 0.0 else 0.0


@nb.njit(cache=True)
def outputs_rows(kind, grade_dep, p, ore_t, head, q, off, out):
    """Mill outputs for rows of (parameters, feed, q_ratio, offsets), in base units.

    p[n, N_FULL]; ore_t[n] t; head[n, 3] mass fractions (Ag, Pb, Zn); q[n]; off[n, N_OFFSETS]
    -> out[n, len(ALL_OUTPUTS)]: contained metal [t], recoveries [fraction], concentrate
    and tails tonnes [t], grades [mass fraction], in the order of :data:`ALL_OUTPUTS`.
    The streams come from :func:`kenomill._kernels.forward_row` (tails by difference), so
    every prediction closes exactly as :func:`kenomill.circuit.forward` does.
    """
    split = np.empty((3, 2))
    pull = np.empty(2)
    con = np.empty(2)
    st = np.empty(3)
    met = np.empty((3, 3))
    rc = np.empty(N_RC)
    for i in range(ore_t.shape[0]):
        response_constants(kind, p[i], q[i], off[i], rc)
        respond_feed(grade_dep, p[i], head[i], head[i], off[i], rc, split, pull)
        con[0] = ore_t[i] * pull[0]
        con[1] = ore_t[i] * pull[1]
        forward_row(ore_t[i], head[i], split, con, st, met)
        ag = met[0, 0] + met[1, 0]
        o = out[i]
        o[0] = ag
        o[1] = met[0, 1]
        o[2] = met[1, 2]
        o[3] = _ratio(ag, ore_t[i] * head[i, 0])
        o[4] = _ratio(met[0, 1], ore_t[i] * head[i, 1])
        o[5] = _ratio(met[1, 2], ore_t[i] * head[i, 2])
        o[6] = st[0]
        o[7] = _ratio(met[0, 0], st[0])
        o[8] = _ratio(met[0, 1], st[0])
        o[9] = st[1]
        o[10] = _ratio(met[1, 0], st[1])
        o[11] = _ratio(met[1, 2], st[1])
        o[12] = st[2]
        o[13] = _ratio(met[2, 0], st[2])
        o[14] = _ratio(met[2, 1], st[2])
        o[15] = _ratio(met[2, 2], st[2])


# -------------------------------------------------------------------- named models
@dataclass(frozen=True)
class ModelSpec:
    """A named recovery model: active mechanisms and free parameters."""

    name: str
    kind: int
    grade_dep: int
    free: tuple[str, ...]
    doc: str
    reference: str
    #: parameters this model holds at a value other than their FULL_PARAMS default,
    #: e.g. ``(("tail_pb", 0.0),)`` to switch the lead circuit's grade factor off
    fixed: tuple[tuple[str, float], ...] = ()

    def base_full(self) -> np.ndarray:
        """Full parameter vector of the fixed parameters: defaults with ``fixed`` applied."""
        p = default_full()
        for name, value in self.fixed:
            p[PARAM_INDEX[name]] = value
        return p

    @property
    def free_index(self) -> np.ndarray:
        return np.array([PARAM_INDEX[n] for n in self.free], dtype=np.int64)

    def full(self, theta, base=None) -> np.ndarray:
        """Full parameter vector from this model's free parameters ``theta``."""
        p = self.base_full() if base is None else np.array(base, dtype=float)
        theta = np.asarray(theta, dtype=float)
        if theta.shape != (len(self.free),):
            raise ValidationError(
                f"theta: found shape {theta.shape}; model {self.name!r} has "
                f"{len(self.free)} free parameters {self.free}"
            )
        p[self.free_index] = theta
        return p

    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        lo = np.array([FULL_PARAMS[PARAM_INDEX[n]].lo for n in self.free])
        hi = np.array([FULL_PARAMS[PARAM_INDEX[n]].hi for n in self.free])
        return lo, hi

    def defaults(self) -> np.ndarray:
        return np.array([FULL_PARAMS[PARAM_INDEX[n]].default for n in self.free])


def default_full() -> np.ndarray:
    return np.array([p.default for p in FULL_PARAMS])


_COMMON = ("ag_pb", "ag_zn", "e_pb", "e_zn")
#: k*tau that makes a circuit's kinetic factor 1 (to within 1e-6 for every kind): switches
#: throughput dependence off in one circuit of a combined model
_NO_RATE_LIMIT = 1e6
_WF = "Wills & Finch 2016, ch. 12"
MODELS: dict[str, ModelSpec] = {
    m.name: m
    for m in (
        ModelSpec(
            "constant",
            KIN_NONE,
            0,
            ("rmax_pb", "rmax_zn", *_COMMON),
            "constant recoveries, independent of head grade and throughput",
            "metallurgical accounting",
        ),
        ModelSpec(
            "fixed_tail",
            KIN_NONE,
            1,
            ("rmax_pb", "tail_pb", "rmax_zn", "tail_zn", *_COMMON),
            "fixed-tail grade dependence R = Rmax (1 - t/f)",
            "Wills & Finch 2016, ch. 3",
        ),
        ModelSpec(
            "plug_flow",
            KIN_PLUG,
            0,
            ("rmax_pb", "ktau_pb", "rmax_zn", "ktau_zn", *_COMMON),
            "first-order plug flow, R = Rmax (1 - exp(-k tau)), tau ~ 1/throughput",
            _WF,
        ),
        ModelSpec(
            "mixed_cells",
            KIN_CELLS,
            0,
            ("rmax_pb", "ktau_pb", "rmax_zn", "ktau_zn", *_COMMON),
            f"first-order, {N_CELLS:g} mixed cells in series, R = Rmax (1 - (1 + k tau/N)^-N)",
            _WF,
        ),
        ModelSpec(
            "klimpel",
            KIN_KLIMPEL,
            0,
            ("rmax_pb", "ktau_pb", "rmax_zn", "ktau_zn", *_COMMON),
            "Klimpel rectangular rate distribution",
            "Klimpel 1980",
        ),
        ModelSpec(
            "two_component",
            KIN_TWO,
            0,
            ("rmax_pb", "ktau_pb", "phi_pb", "rmax_zn", "ktau_zn", "phi_zn", *_COMMON),
            "fast and slow floating components (slow rate = kslow x fast rate)",
            "Kelsall 1961",
        ),
        ModelSpec(
            "fixed_tail_plug",
            KIN_PLUG,
            1,
            ("rmax_pb", "ktau_pb", "tail_pb", "rmax_zn", "ktau_zn", "tail_zn", *_COMMON),
            "fixed-tail grade dependence x first-order plug-flow throughput dependence",
            _WF,
        ),
        ModelSpec(
            "plug_pb_tail_zn",
            KIN_PLUG,
            1,
            ("rmax_pb", "ktau_pb", "rmax_zn", "tail_zn", *_COMMON),
            "lead circuit first-order plug flow (throughput), zinc circuit fixed tail (head grade)",
            _WF,
            fixed=(("tail_pb", 0.0), ("ktau_zn", _NO_RATE_LIMIT)),
        ),
        ModelSpec(
            "cells_pb_tail_zn",
            KIN_CELLS,
            1,
            ("rmax_pb", "ktau_pb", "rmax_zn", "tail_zn", *_COMMON),
            f"lead circuit {N_CELLS:g} mixed cells in series (throughput), "
            "zinc circuit fixed tail (head grade)",
            _WF,
            fixed=(("tail_pb", 0.0), ("ktau_zn", _NO_RATE_LIMIT)),
        ),
        ModelSpec(
            "klimpel_pb_tail_zn",
            KIN_KLIMPEL,
            1,
            ("rmax_pb", "ktau_pb", "rmax_zn", "tail_zn", *_COMMON),
            "lead circuit Klimpel (throughput), zinc circuit fixed tail (head grade)",
            "Klimpel 1980; Wills & Finch 2016",
            fixed=(("tail_pb", 0.0), ("ktau_zn", _NO_RATE_LIMIT)),
        ),
        ModelSpec(
            "fixed_tail_klimpel",
            KIN_KLIMPEL,
            1,
            ("rmax_pb", "ktau_pb", "tail_pb", "rmax_zn", "ktau_zn", "tail_zn", *_COMMON),
            "fixed-tail grade dependence x Klimpel throughput dependence",
            "Klimpel 1980; Wills & Finch 2016",
        ),
    )
}


def get_model(name) -> ModelSpec:
    """The named model; a wrong name raises an error listing the valid ones."""
    if isinstance(name, ModelSpec):
        return name
    try:
        return MODELS[name]
    except (KeyError, TypeError):
        raise ValidationError(f"model: found {name!r}; allowed: {', '.join(MODELS)}") from None


def respond_many(model, p_full, head, q_ratio, offsets=None):
    """Vectorised :func:`respond` over rows: head[n, 3] fractions, q_ratio[n] -> (split[n,3,2], pull[n,2])."""
    spec = get_model(model)
    head = np.array(head, dtype=float, order="C").reshape(-1, 3)
    n = head.shape[0]
    # writable C-contiguous copies (broadcast views are read-only; the signature wants C arrays)
    q = np.array(np.broadcast_to(np.asarray(q_ratio, dtype=float), (n,)), order="C")
    off = np.zeros((n, N_OFFSETS))
    if offsets is not None:
        off[:] = offsets
    p = np.empty((n, N_FULL))
    p[:] = np.asarray(p_full, dtype=float)
    split = np.empty((n, 3, 2))
    pull = np.empty((n, 2))
    respond_rows(np.int64(spec.kind), np.int64(spec.grade_dep), p, head, head, q, off, split, pull)
    return split, pull
