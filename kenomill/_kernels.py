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

import math

import numba as nb
import numpy as np

# stream order used by every kernel
PBCON, ZNCON, TAILS = 0, 1, 2


@nb.njit(cache=True, inline="always")
def forward_element(feed_t, frac, split0, split1):
    """One element of :func:`forward_row` as values: (to lead con, to zinc con, to tails) [t]."""
    e = feed_t * frac
    a = e * split0
    b = e * split1
    return a, b, e - a - b


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
        out_metal[PBCON, j], out_metal[ZNCON, j], out_metal[TAILS, j] = forward_element(
            feed_t, feed_frac[j], split[j, 0], split[j, 1]
        )


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


@nb.njit(cache=True, inline="always")
def _quarter_cov(jac, sl, var, w, i, idx, p, b, c):
    """``c[:p, :p]`` = B B' + diag(var) of the ``p`` observed figures ``idx`` (lower triangle)."""
    r = sl.shape[1]
    for a in range(p):
        fa = idx[a]
        for k in range(r):
            s = 0.0
            for o in range(r):
                s += jac[w, i, o, fa] * sl[w, o, k]
            b[a, k] = s
    for a in range(p):
        for e in range(a + 1):
            s = 0.0
            for k in range(r):
                s += b[a, k] * b[e, k]
            c[a, e] = s
        c[a, a] += var[i, idx[a]]


@nb.njit(cache=True, inline="always")
def _cholesky_logdet(c, p):
    """Lower Cholesky factor of ``c[:p, :p]`` in place; its log determinant, or NaN if not
    positive definite."""
    logdet = 0.0
    for a in range(p):
        for e in range(a + 1):
            s = c[a, e]
            for k in range(e):
                s -= c[a, k] * c[e, k]
            if a == e:
                if not s > 0.0:
                    return np.nan
                c[a, a] = np.sqrt(s)
                logdet += 2.0 * np.log(c[a, a])
            else:
                c[a, e] = s / c[e, e]
    return logdet


@nb.njit(
    "void(f8[:, :], f8[:, :, :], f8[:, :, :, :], f8[:, :, :], f8[:, :], b1[:, :], f8, f8[:, :])",
    cache=True,
)
def quarter_logpdf(y, f0, jac, sl, var, obs, df, out):
    """Log density of each quarter's figures per walker, offsets integrated (linearised).

    ``y`` (n, F) figures, ``f0`` (W, n, F) model at the offsets' mean, ``jac`` (W, n, r, F) their
    derivatives in the ``r`` offsets, ``sl`` (W, r, r) the offsets' covariance factor (scales x
    Cholesky factor of the correlation), ``var`` (n, F) measurement variances, ``obs`` (n, F)
    which figures are reported. Covariance ``B B' + diag(var)`` with ``B = jac' sl`` over the
    observed figures; ``df`` > 0: multivariate Student-t with ``df`` degrees of freedom, else
    Gaussian. ``out`` (W, n) [nats]; ``-inf`` where the covariance is not positive definite.
    The NumPy twin is :func:`kenomill.bayes.gaussian_log_density`.
    """
    n_w, n, r, n_f = jac.shape
    idx = np.empty(n_f, dtype=np.int64)
    b = np.empty((n_f, r))
    c = np.empty((n_f, n_f))
    z = np.empty(n_f)
    for i in range(n):
        p = 0
        for f in range(n_f):
            if obs[i, f]:
                idx[p] = f
                p += 1
        for w in range(n_w):
            _quarter_cov(jac, sl, var, w, i, idx, p, b, c)
            logdet = _cholesky_logdet(c, p)
            if np.isnan(logdet):
                out[w, i] = -np.inf
                continue
            q = 0.0  # squared Mahalanobis distance by forward substitution
            for a in range(p):
                s = y[i, idx[a]] - f0[w, i, idx[a]]
                for k in range(a):
                    s -= c[a, k] * z[k]
                z[a] = s / c[a, a]
                q += z[a] * z[a]
            if df > 0.0:
                out[w, i] = (
                    math.lgamma(0.5 * (df + p))
                    - math.lgamma(0.5 * df)
                    - 0.5 * p * np.log(df * np.pi)
                    - 0.5 * logdet
                    - 0.5 * (df + p) * np.log1p(q / df)
                )
            else:
                out[w, i] = -0.5 * (q + logdet + p * np.log(2.0 * np.pi))
