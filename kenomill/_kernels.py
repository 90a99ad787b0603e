"""numba kernels on plain float64 arrays: the hot loops.

Rules (see ``../shared/DESIGN.md`` section 3): kernels take 1-D/2-D/3-D float64 arrays
in fixed units (tonnes and mass fractions, never g/t or %), fill ``out`` arrays, do not
validate (the public wrappers in :mod:`kenomill.circuit` do) and carry explicit
signatures with ``cache=True`` so a second process pays no compilation. Each kernel has
a NumPy twin in :mod:`kenomill._reference`; :mod:`kenomill._registry` pairs them for the
tests and the benchmarks. No fastmath: closure to 1e-9 is a contract and reassociation
would only buy a few percent here.
"""

from __future__ import annotations

import numba as nb
import numpy as np

# stream order used by every kernel
PBCON, ZNCON, TAILS = 0, 1, 2


@nb.njit(cache=True, inline="always")
def forward_row(feed_t, feed_frac, split, con_t, out_t, out_metal):
    """One separation: feed -> lead con, zinc con, tails (solids and each element).

    ``feed_frac[m]`` mass fractions, ``split[m, 2]`` fraction of each element's feed to
    the two concentrates, ``con_t[2]`` concentrate tonnes. Tails by difference, so every
    balance closes by construction.
    """
    out_t[PBCON] = con_t[0]
    out_t[ZNCON] = con_t[1]
    out_t[TAILS] = feed_t - con_t[0] - con_t[1]
    for j in range(feed_frac.shape[0]):
        e = feed_t * feed_frac[j]
        a = e * split[j, 0]
        b = e * split[j, 1]
        out_metal[PBCON, j] = a
        out_metal[ZNCON, j] = b
        out_metal[TAILS, j] = e - a - b


@nb.njit("void(f8[:], f8[:, :], f8[:, :, :], f8[:, :], f8[:, :], f8[:, :, :])", cache=True)
def circuit_forward(feed_t, feed_frac, split, con_t, out_t, out_metal):
    """Forward mass balance over ``n`` rows (periods or draws).

    feed_t[n] t; feed_frac[n, m]; split[n, m, 2]; con_t[n, 2] t ->
    out_t[n, 3] t (pbcon, zncon, tails); out_metal[n, 3, m] t of element.
    """
    for i in range(feed_t.shape[0]):
        forward_row(feed_t[i], feed_frac[i], split[i], con_t[i], out_t[i], out_metal[i])


@nb.njit("void(f8[:], f8[:], f8[:], f8[:], f8[:])", cache=True)
def two_product(f, c, t, out_yield, out_rec):
    """Two-product formula: C/F = (f - t)/(c - t); R = c (f - t) / (f (c - t))."""
    for i in range(f.shape[0]):
        y = (f[i] - t[i]) / (c[i] - t[i])
        out_yield[i] = y
        out_rec[i] = c[i] * y / f[i]


@nb.njit("void(f8[:, :], f8[:, :], f8[:, :], f8[:, :], f8[:, :], f8[:, :, :])", cache=True)
def three_product(f, c1, c2, t, out_yield, out_rec):
    """Yields of two concentrates from the assays of feed, both concentrates and tails.

    For each element j: (f_j - t_j) = y1 (c1_j - t_j) + y2 (c2_j - t_j), scaled by 1/f_j so
    that g/t and % assays weigh alike. Two elements: the exact three-product formula;
    more: least squares through the 2x2 normal equations. out_yield[n, 2] = C1/F, C2/F;
    out_rec[n, 2, m] = recovery of element j to concentrate k. A singular system (the
    concentrates alike) gives NaN; the wrapper reports it.
    """
    n, m = f.shape
    for i in range(n):
        a11 = 0.0
        a12 = 0.0
        a22 = 0.0
        b1 = 0.0
        b2 = 0.0
        for j in range(m):
            s = 1.0 / f[i, j]
            u = (c1[i, j] - t[i, j]) * s
            v = (c2[i, j] - t[i, j]) * s
            r = (f[i, j] - t[i, j]) * s
            a11 += u * u
            a12 += u * v
            a22 += v * v
            b1 += u * r
            b2 += v * r
        det = a11 * a22 - a12 * a12
        if det == 0.0:
            y1 = np.nan
            y2 = np.nan
        else:
            y1 = (a22 * b1 - a12 * b2) / det
            y2 = (a11 * b2 - a12 * b1) / det
        out_yield[i, 0] = y1
        out_yield[i, 1] = y2
        for j in range(m):
            out_rec[i, 0, j] = y1 * c1[i, j] / f[i, j]
            out_rec[i, 1, j] = y2 * c2[i, j] / f[i, j]
