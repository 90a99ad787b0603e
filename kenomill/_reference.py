"""NumPy references of the kernels in :mod:`kenomill._kernels`.

Vectorised over rows as a careful NumPy user would write them: the test oracle for
every kernel and the baseline of every benchmark. Same arguments, same ``out`` arrays.
"""

from __future__ import annotations

import numpy as np

from kenomill import recovery as R


def circuit_forward(feed_t, feed_frac, split, con_t, out_t, out_metal):
    out_t[:, 0] = con_t[:, 0]
    out_t[:, 1] = con_t[:, 1]
    out_t[:, 2] = feed_t - con_t[:, 0] - con_t[:, 1]
    e = feed_t[:, None] * feed_frac
    a = e * split[:, :, 0]
    b = e * split[:, :, 1]
    out_metal[:, 0, :] = a
    out_metal[:, 1, :] = b
    out_metal[:, 2, :] = e - a - b


def two_product(f, c, t, out_yield, out_rec):
    with np.errstate(divide="ignore", invalid="ignore"):
        y = (f - t) / (c - t)
        out_yield[:] = y
        out_rec[:] = c * y / f


def three_product(f, c1, c2, t, out_yield, out_rec):
    n, m = f.shape
    with np.errstate(divide="ignore", invalid="ignore"):
        s = 1.0 / f
        u = (c1 - t) * s
        v = (c2 - t) * s
        r = (f - t) * s
        a11 = (u * u).sum(1)
        a12 = (u * v).sum(1)
        a22 = (v * v).sum(1)
        b1 = (u * r).sum(1)
        b2 = (v * r).sum(1)
        det = a11 * a22 - a12 * a12
        ok = det != 0.0
        y1 = np.where(ok, (a22 * b1 - a12 * b2) / np.where(ok, det, 1.0), np.nan)
        y2 = np.where(ok, (a11 * b2 - a12 * b1) / np.where(ok, det, 1.0), np.nan)
        out_yield[:, 0] = y1
        out_yield[:, 1] = y2
        out_rec[:, 0, :] = y1[:, None] * c1 / f
        out_rec[:, 1, :] = y2[:, None] * c2 / f


# ----------------------------------------------------------------- mill response
# NumPy reference of kenomill.recovery's mill response (response_constants + respond_feed),
# written from the equations in recovery's docstring in the log/exp form of the logit
# shift (the kernel's hoisted form must agree with it to rounding), parameters by name.
def _clip01(x):
    return np.minimum(np.maximum(x, 0.0), 1.0)


def _logit_shift(r, off):
    rc = np.minimum(np.maximum(r, 1e-12), 1.0 - 1e-12)
    with np.errstate(divide="ignore", over="ignore"):
        z = np.log(rc / (1.0 - rc)) + off
        shifted = 1.0 / (1.0 + np.exp(-z))
    return np.where(off == 0.0, r, shifted)


def _kinetic(kind, ktau, phi, slow):
    if kind == R.KIN_PLUG:
        return 1.0 - np.exp(-ktau)
    if kind == R.KIN_CELLS:
        return 1.0 - (1.0 + ktau / R.N_CELLS) ** (-R.N_CELLS)
    if kind == R.KIN_KLIMPEL:
        safe = np.where(ktau < 1e-12, 1.0, ktau)
        return np.where(ktau < 1e-12, 0.0, 1.0 - (1.0 - np.exp(-safe)) / safe)
    if kind == R.KIN_TWO:
        return phi * (1.0 - np.exp(-ktau)) + (1.0 - phi) * (1.0 - np.exp(-slow * ktau))
    return np.ones_like(ktau)


def _relative_floatability(r, a):
    return np.where(a == 0.0, 0.0, 1.0 - (1.0 - _clip01(r)) ** a)


def _grade_factor(f, tail):
    safe = np.where(f > 0.0, f, 1.0)
    return np.where(f > 0.0, np.maximum(0.0, 1.0 - tail / safe), 0.0)


def respond(kind, grade_dep, p, head, q_ratio, offsets, grade=None):
    """Vectorised mill response: rows of p[n, N_FULL], head[n, 3], offsets[n, N_OFFSETS].

    ``grade[n, 3]``: the blended circuit feed the component ``head`` is milled in (its grade
    factor; default ``head``, one ore alone). Returns split[n, 3, 2] and pull[n, 2].
    """
    pi = {name: p[:, i] for name, i in R.PARAM_INDEX.items()}
    off = {name: offsets[:, i] for i, name in enumerate(R.OFFSET_NAMES)}
    f_ag, f_pb, f_zn = head[:, 0], head[:, 1], head[:, 2]
    grade = head if grade is None else grade
    inv_q = 1.0 / q_ratio
    r_pb = pi["rmax_pb"] * _kinetic(kind, pi["ktau_pb"] * inv_q, pi["phi_pb"], pi["kslow_pb"])
    if grade_dep == 1:
        r_pb = r_pb * _grade_factor(grade[:, 1], pi["tail_pb"])
    r_pb = _logit_shift(_clip01(r_pb), off["logit_rec_pb"])
    r_znc = pi["rmax_zn"] * _kinetic(kind, pi["ktau_zn"] * inv_q, pi["phi_zn"], pi["kslow_zn"])
    if grade_dep == 1:
        r_znc = r_znc * _grade_factor(grade[:, 2], pi["tail_zn"])
    r_znc = _logit_shift(_clip01(r_znc), off["logit_rec_zn"])
    # silver carriers float a times as fast as galena (then sphalerite): 1 - (1 - R)^a
    r_ag_pb = _logit_shift(_relative_floatability(r_pb, pi["ag_pb"]), off["logit_rec_ag_pbcon"])
    r_ag_zn = (1.0 - r_ag_pb) * _relative_floatability(r_znc, pi["ag_zn"])
    zn_pb = pi["zn_pb"]
    n = head.shape[0]
    split = np.empty((n, 3, 2))
    split[:, 0, 0] = r_ag_pb
    split[:, 0, 1] = r_ag_zn
    split[:, 1, 0] = r_pb
    split[:, 1, 1] = (1.0 - r_pb) * pi["pb_zn"]
    split[:, 2, 0] = zn_pb
    split[:, 2, 1] = (1.0 - zn_pb) * r_znc
    galena = f_pb / R.GALENA_PB
    sphal = f_zn / R.SPHALERITE_ZN
    gangue = np.maximum(1.0 - galena - sphal, 0.0)
    g_ratio = (1.0 - np.exp(-R.GANGUE_KTAU * inv_q)) / (1.0 - np.exp(-R.GANGUE_KTAU))
    e_pb = _clip01(pi["e_pb"] * g_ratio * np.exp(off["log_gangue_pbcon"]))
    e_zn = _clip01(pi["e_zn"] * g_ratio * np.exp(off["log_gangue_zncon"]))
    pull = np.empty((n, 2))
    pull[:, 0] = galena * split[:, 1, 0] + sphal * split[:, 2, 0] + gangue * e_pb + f_ag * split[:, 0, 0]
    pull[:, 1] = (
        galena * split[:, 1, 1]
        + sphal * split[:, 2, 1]
        + gangue * (1.0 - e_pb) * e_zn
        + f_ag * split[:, 0, 1]
    )
    return split, pull


def respond_rows(kind, grade_dep, p, head, grade, q_ratio, offsets, split, pull):
    """:func:`respond` with the argument order of :func:`kenomill.recovery.respond_rows`."""
    split[:], pull[:] = respond(kind, grade_dep, p, head, q_ratio, offsets, grade)
