"""NumPy references of the kernels in :mod:`kenomill._kernels`.

Vectorised over rows as a careful NumPy user would write them: the test oracle for
every kernel and the baseline of every benchmark. Same arguments, same ``out`` arrays.
"""

from __future__ import annotations

import numpy as np


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
