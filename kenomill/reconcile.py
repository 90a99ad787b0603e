"""Weighted least-squares data reconciliation and gross-error tests.

Three layers:

* :func:`reconcile_linear`: measured ``x`` (reported as ``y`` with standard deviations
  ``sigma``, optionally correlated), unmeasured ``u``, linear constraints
  ``A x + B u = b``. Unmeasured variables are eliminated by projection (Crowe, Garcia
  Campos & Hrymak, 1983): with the QR decomposition ``B = [Q1 Q2] [R1; 0]`` the rows
  ``Q2' A x = Q2' b`` hold the constraints free of ``u``. Then (Kuehn & Davidson, 1961)

  ``x_hat = y - V A' (A V A')^-1 (A y - b)``,
  ``Cov(x_hat) = V - V A' (A V A')^-1 A V``,
  global test ``chi2 = (A y - b)' (A V A')^-1 (A y - b)`` with ``rank(A)`` degrees of
  freedom, measurement test ``z_i = |y_i - x_hat_i| / sqrt(V_ii - Cov(x_hat)_ii)``
  (Mah & Tamhane, 1982), and ``u_hat = R1^-1 Q1' (b - A x_hat)``.

* :func:`reconcile_bilinear`: constraints that are sums of products of variables
  (:class:`MultilinearConstraints`: tonnes x grade x recovery), solved by successive
  linearisation: linearise at the current estimate, reconcile the linear problem, repeat
  until the step is below ``tol`` standard deviations (Narasimhan & Jordache, 2000,
  section 5.2). The tests are those of the last linearisation, at the solution.

* :func:`reconciled_periods` / :func:`reconcile_dataset`: the mill's figures, period by
  period or all periods together (quarters add up to half years and years), with the
  error model of :mod:`kenomill.errormodel`.

Significance
------------
The global test rejects at level ``alpha`` (default 0.05) when ``p_value < alpha``. The
measurement test flags ``|z_i| > z_crit`` where ``z_crit`` is the two-sided normal quantile
at the Sidak-corrected level ``beta = 1 - (1 - alpha)^(1/m)``, ``m`` the number of
testable measurements (those some constraint adjusts), so that the chance of any false
flag among ``m`` consistent measurements is about ``alpha`` (``correction="bonferroni"``:
``alpha / m``; ``"none"``: ``alpha``). Measurements no constraint involves cannot be
tested: their ``z`` is NaN and they are never flagged.

Figures are treated as measurements with independent errors (except those
:data:`kenomill.errormodel.CORRELATED_WITH` ties together). A gross error in a figure
that enters only a product with another figure (head grade and recovery in
``feed x head x recovery``) cannot be told apart from an error in that other figure:
their ``z`` are equal; the reconciliation says so by giving both the same statistic.

References
----------
Kuehn, D.R., Davidson, H., Computer control II: mathematics of control, *Chem. Eng. Prog.*
57 (1961) 44-47.
Mah, R.S.H., Tamhane, A.C., Detection of gross errors in process data, *AIChE J.* 28
(1982) 828-830.
Crowe, C.M., Garcia Campos, Y.A., Hrymak, A., Reconciliation of process flow rates by
matrix projection. Part I: linear case, *AIChE J.* 29 (1983) 881-888.
Crowe, C.M., Reconciliation of process flow rates by matrix projection. Part II: the
nonlinear case, *AIChE J.* 32 (1986) 616-623.
Narasimhan, S., Jordache, C., *Data Reconciliation and Gross Error Detection*, Gulf,
2000.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd
import scipy.linalg as sla
import xarray as xr
from scipy import stats

from kenomill import units, variables
from kenomill.data import FIGURES, aggregates_of
from kenomill.errormodel import CORRELATED_WITH, ErrorModel, resolve
from kenomill.errors import ValidationError

CORRECTIONS = ("sidak", "bonferroni", "none")
#: relative tolerance of the rank decisions (on row-normalised matrices, so unit-free)
RANK_TOL = 1e-9

__all__ = [
    "Reconciliation",
    "reconcile_linear",
    "MultilinearConstraints",
    "reconcile_bilinear",
    "MILL_FIGURES",
    "reconcile_dataset",
    "reconciled_periods",
    "suspects",
    "summary_frame",
    "summary_dataset",
    "gross_errors",
    "flagged_figures",
]


# ---------------------------------------------------------------------------------------
# result
# ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Reconciliation:
    """Result of a reconciliation; arrays follow the order of the measurements.

    Attributes
    ----------
    x : ndarray (n,)
        Reconciled measured variables [units of y].
    cov : ndarray (n, n)
        Covariance of ``x`` [units of y squared].
    adjustments : ndarray (n,)
        ``x - y``.
    chi2, dof, p_value : float, int, float
        Global test: chi-square statistic, its degrees of freedom (independent
        constraints left after eliminating the unmeasured variables) and
        ``P(chi2_dof >= chi2)``; ``p_value`` is 1 when ``dof`` is 0.
    gross_error : bool
        ``p_value < alpha``.
    z : ndarray (n,)
        Measurement test statistic ``|adjustment| / sd(adjustment)``; NaN where no
        constraint adjusts the measurement.
    flagged : ndarray of bool (n,)
        ``z > z_crit``.
    alpha, z_crit : float
        Significance level and the critical ``z`` after the multiple-test correction.
    u, cov_u : ndarray (p,), (p, p)
        Estimates of the unmeasured variables and their covariance.
    names, unmeasured_names : tuple of str
    iterations : int
        Linearisations used (1 for a linear problem).
    """

    x: np.ndarray
    cov: np.ndarray
    adjustments: np.ndarray
    chi2: float
    dof: int
    p_value: float
    gross_error: bool
    z: np.ndarray
    flagged: np.ndarray
    alpha: float
    z_crit: float
    correction: str
    u: np.ndarray = field(default_factory=lambda: np.zeros(0))
    cov_u: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))
    names: tuple[str, ...] = ()
    unmeasured_names: tuple[str, ...] = ()
    iterations: int = 1

    @property
    def sd(self) -> np.ndarray:
        """Posterior standard deviation of ``x``."""
        return np.sqrt(np.clip(np.diag(self.cov), 0.0, None))

    @property
    def sd_u(self) -> np.ndarray:
        """Standard deviation of ``u``."""
        return np.sqrt(np.clip(np.diag(self.cov_u), 0.0, None))

    def to_frame(self) -> pd.DataFrame:
        """One row per measurement: measured, reconciled, adjustment, sd, z, flagged."""
        return pd.DataFrame(
            {
                "measured": self.x - self.adjustments,
                "reconciled": self.x,
                "adjustment": self.adjustments,
                "sd": self.sd,
                "z": self.z,
                "flagged": self.flagged,
            },
            index=pd.Index(list(self.names), name="variable"),
        )


# ---------------------------------------------------------------------------------------
# validation helpers
# ---------------------------------------------------------------------------------------
def _vector(name: str, v, n: int | None = None) -> np.ndarray:
    a = np.asarray(v, dtype=float)
    if a.ndim != 1:
        raise ValidationError(f"{name}: found an array of shape {a.shape}; a 1-D array is required")
    if n is not None and a.shape[0] != n:
        raise ValidationError(f"{name}: found {a.shape[0]} values; {n} are required (one per measurement)")
    bad = ~np.isfinite(a)
    if bad.any():
        i = int(np.argmax(bad))
        raise ValidationError(f"{name}: found {a[i]} at index {i}; every value must be a finite number")
    return a


def _matrix(name: str, M, shape: tuple[int | None, int | None]) -> np.ndarray:
    a = np.asarray(M, dtype=float)
    if a.ndim != 2:
        raise ValidationError(f"{name}: found an array of shape {a.shape}; a 2-D array is required")
    for axis, (want, what) in enumerate(zip(shape, ("rows", "columns"), strict=True)):
        if want is not None and a.shape[axis] != want:
            raise ValidationError(f"{name}: found shape {a.shape}; {want} {what} are required")
    bad = ~np.isfinite(a)
    if bad.any():
        i = tuple(int(k) for k in np.argwhere(bad)[0])
        raise ValidationError(f"{name}: found {a[i]} at index {i}; every entry must be a finite number")
    return a


def _check_common(y, sigma, corr, alpha, correction, names):
    y = _vector("y", y)
    n = y.shape[0]
    if n == 0:
        raise ValidationError("y: found no measurements; at least one is required")
    sigma = _vector("sigma", sigma, n)
    if (sigma < 0).any():
        i = int(np.argmax(sigma < 0))
        name = f" ({names[i]})" if names is not None and len(names) == n else ""
        raise ValidationError(
            f"sigma: found {sigma[i]:g} at index {i}{name}; a standard deviation must be >= 0"
        )
    if corr is not None:
        corr = _matrix("corr", corr, (n, n))
        if not np.allclose(corr, corr.T, rtol=0, atol=1e-12) or not np.allclose(np.diag(corr), 1.0):
            raise ValidationError("corr: a correlation matrix must be symmetric with ones on the diagonal")
        try:
            chol = np.linalg.cholesky(corr)
        except np.linalg.LinAlgError:
            raise ValidationError(
                "corr: not positive definite; a correlation matrix needs |rho| < 1 and consistent pairs"
            ) from None
    else:
        chol = None
    if not (isinstance(alpha, int | float) and 0.0 < float(alpha) < 1.0):
        raise ValidationError(f"alpha: found {alpha!r}; allowed: a number strictly between 0 and 1")
    if correction not in CORRECTIONS:
        raise ValidationError(f"correction: found {correction!r}; allowed: {', '.join(CORRECTIONS)}")
    return y, sigma, chol, float(alpha), _names("names", names, n, "x", "one per measurement")


def _names(field: str, names, n: int, prefix: str, what: str) -> tuple[str, ...]:
    """``names`` as n strings (``prefix0``, ``prefix1``, ... when None); the count is checked."""
    if names is None:
        return tuple(f"{prefix}{i}" for i in range(n))
    out = tuple(str(s) for s in names)
    if len(out) != n:
        raise ValidationError(f"{field}: found {len(out)} names; {n} are required ({what})")
    return out


def _z_crit(alpha: float, m: int, correction: str) -> float:
    if m == 0:
        return math.inf
    if correction == "sidak":
        beta = -math.expm1(math.log1p(-alpha) / m)  # 1 - (1 - alpha)^(1/m), accurately
    elif correction == "bonferroni":
        beta = alpha / m
    else:
        beta = alpha
    return float(stats.norm.isf(beta / 2.0))


def _row_label(k: int, labels) -> str:
    return f"constraint {k}" + (f" ({labels[k]})" if labels is not None else "")


# ---------------------------------------------------------------------------------------
# linear reconciliation
# ---------------------------------------------------------------------------------------
def _eliminate_unmeasured(A, B, b, unmeasured_names):
    """Crowe's projection: rows free of u, plus the map back to u. Raises if u unobservable."""
    m, p = B.shape
    norms = np.linalg.norm(B, axis=0)
    zero = norms == 0
    if zero.any():
        raise ValidationError(
            "B: unmeasured variable(s) "
            + ", ".join(unmeasured_names[j] for j in np.flatnonzero(zero))
            + " appear in no constraint, so nothing determines them; remove them or add a constraint"
        )
    Bs = B / norms
    Q, R, perm = sla.qr(Bs, mode="full", pivoting=True)
    diag = np.abs(np.diag(R))
    rank = int((diag > RANK_TOL * diag[0]).sum())
    if rank < p:
        _, _, vt = np.linalg.svd(Bs)
        null = vt[rank:].T
        bad = np.flatnonzero(np.linalg.norm(null, axis=1) > 1e-6)
        raise ValidationError(
            "B: the unmeasured variables "
            + ", ".join(unmeasured_names[j] for j in bad)
            + f" are not observable (B has rank {rank} < {p} columns): the constraints fix only "
            "combinations of them; measure one of them or remove the ones not needed"
        )
    Q1, Q2, R1 = Q[:, :p], Q[:, p:], R[:p, :p]
    # u = H (b - A x): v[perm] = R1^-1 Q1' (.), u = v / norms
    Hp = sla.solve_triangular(R1, Q1.T)
    H = np.empty((p, m))
    H[perm] = Hp
    H /= norms[:, None]
    return Q2.T @ A, Q2.T @ b, H, Q2


class _Label:
    """Name of (projected) constraint ``k``, built only when an error message needs it."""

    def __init__(self, k: int, labels, proj):
        self.k, self.labels, self.proj = k, labels, proj

    def __str__(self) -> str:
        if self.proj is None:
            return _row_label(self.k, self.labels)
        rows = np.flatnonzero(np.abs(self.proj[:, self.k]) > 1e-9)
        return "once the unmeasured variables are eliminated, a combination of " + ", ".join(
            _row_label(int(i), self.labels) for i in rows
        )

    def __format__(self, spec: str) -> str:
        return format(str(self), spec)


def _check_rank(Ar, br, L, y, labels, proj):
    """Refuse dependent (redundant or inconsistent) constraints, naming them.

    ``proj`` is Crowe's projection (original rows x projected rows) or None.
    """
    M = Ar @ L
    m = M.shape[0]
    a_norm = np.linalg.norm(Ar, axis=1)
    m_norm = np.linalg.norm(M, axis=1)
    scale_a = a_norm.max() if m and a_norm.max() > 0 else 1.0
    measured_with_error = np.abs(L).sum(axis=1) > 0
    for k in range(m):
        name = _Label(k, labels, proj)
        resid = Ar[k] @ y - br[k]
        if a_norm[k] <= RANK_TOL * scale_a:
            if abs(br[k]) > RANK_TOL * max(1.0, np.abs(br).max()):
                raise ValidationError(
                    f"inconsistent constraints: {name} involves no measured variable and reads "
                    f"0 = {br[k]:g}; no values satisfy it"
                )
            raise ValidationError(
                f"rank-deficient constraints: {name} involves no measured variable; remove it"
            )
        if not np.any((np.abs(Ar[k]) > RANK_TOL * a_norm[k]) & measured_with_error):
            tol = RANK_TOL * (np.abs(Ar[k]) @ np.abs(y) + abs(br[k]))
            if abs(resid) > tol:
                raise ValidationError(
                    f"inconsistent constraints: {name} involves only exact measurements (sigma = 0) "
                    f"and is violated by {resid:g}; give those measurements a sigma > 0"
                )
            raise ValidationError(
                f"rank-deficient constraints: {name} involves only exact measurements (sigma = 0); "
                "remove it or give them a sigma > 0"
            )
    Mn = M / m_norm[:, None]
    s = np.linalg.svd(Mn, compute_uv=False)
    rank = int((s > RANK_TOL * s[0]).sum()) if s.size else 0
    if rank == m:
        return M
    # the first row that adds nothing to the rows before it
    for k in range(1, m):
        sk = np.linalg.svd(Mn[: k + 1], compute_uv=False)
        if (sk > RANK_TOL * sk[0]).sum() < k + 1:
            c, *_ = np.linalg.lstsq(Mn[:k].T, Mn[k], rcond=None)
            c = c * m_norm[k] / m_norm[:k]  # coefficients on the unnormalised rows
            deps = [j for j in range(k) if abs(c[j]) > 1e-9]
            if proj is None:
                dep_txt = "constraint(s) " + ", ".join(str(j) for j in deps)
                name = _row_label(k, labels)
            else:
                # name the original constraints involved in the dependent projected rows
                rows = np.flatnonzero(np.abs(proj[:, [*deps, k]]).sum(axis=1) > 1e-9)
                name = "once the unmeasured variables are eliminated, one of constraints " + ", ".join(
                    _row_label(int(i), labels) for i in rows
                )
                dep_txt = "the others"
            gap = br[k] - c @ br[:k]
            if abs(gap) > 1e-9 * max(1.0, abs(br[k]), np.abs(c) @ np.abs(br[:k])):
                raise ValidationError(
                    f"inconsistent constraints: {name} has the same left side as a combination of "
                    f"{dep_txt} but a right side {gap:g} apart; no values satisfy both"
                )
            raise ValidationError(
                f"rank-deficient constraints: {name} is a combination of {dep_txt} "
                f"(rank {rank} < {m} rows); remove it"
            )
    raise AssertionError("unreachable: rank deficiency not located")  # pragma: no cover


def _solve_linear(y, sigma, chol, A, B, b, alpha, correction, names, unmeasured_names, labels, check=True):
    n = y.shape[0]
    L = sigma[:, None] * (chol if chol is not None else np.eye(n))
    if B is not None and B.shape[1]:
        Ar, br, H, proj = _eliminate_unmeasured(A, B, b, unmeasured_names)
    else:
        Ar, br, H, proj = A, b, np.zeros((0, A.shape[0])), None
    m = Ar.shape[0]
    if m == 0:
        cov = L @ L.T
        adj = np.zeros(n)
        z = np.full(n, np.nan)
        chi2, dof = 0.0, 0
    else:
        # the full rank diagnosis (an SVD) only where asked: successive linearisation checks
        # its first step and relies on the QR diagonal afterwards
        M = _check_rank(Ar, br, L, y, labels, proj) if check else Ar @ L
        Q, R = np.linalg.qr(M.T)  # M M' = R' R; M'(MM')^-1 M = Q Q'
        d = np.abs(np.diag(R))
        if not check and d.min() <= RANK_TOL * d.max():
            _check_rank(Ar, br, L, y, labels, proj)  # raises with the rows named
        r = Ar @ y - br
        g = sla.solve_triangular(R, r, trans="T")
        w = sla.solve_triangular(R, g)
        adj = -(L @ (M.T @ w))
        LQ = L @ Q
        cov_adj = LQ @ LQ.T
        cov = L @ L.T - cov_adj
        chi2, dof = float(g @ g), m
        var_adj = np.diag(cov_adj)
        testable = var_adj > 1e-12 * np.maximum(sigma**2, np.finfo(float).tiny)
        z = np.full(n, np.nan)
        z[testable] = np.abs(adj[testable]) / np.sqrt(var_adj[testable])
    x = y + adj
    m_test = int(np.isfinite(z).sum())
    zc = _z_crit(alpha, m_test, correction)
    flagged = np.where(np.isfinite(z), z > zc, False)
    p_value = float(stats.chi2.sf(chi2, dof)) if dof > 0 else 1.0
    if H.shape[0]:
        u = H @ (b - A @ x)
        G = H @ A
        cov_u = G @ cov @ G.T
    else:
        u, cov_u = np.zeros(0), np.zeros((0, 0))
    return Reconciliation(
        x=x,
        cov=cov,
        adjustments=adj,
        chi2=chi2,
        dof=dof,
        p_value=p_value,
        gross_error=bool(p_value < alpha),
        z=z,
        flagged=flagged,
        alpha=alpha,
        z_crit=zc,
        correction=correction,
        u=u,
        cov_u=cov_u,
        names=names,
        unmeasured_names=unmeasured_names,
    )


def _check_constraints(y, A, B, b, unmeasured_names, labels):
    n = y.shape[0]
    A = _matrix("A", A, (None, n))
    m = A.shape[0]
    if B is not None:
        B = _matrix("B", B, (m, None))
        p = B.shape[1]
    else:
        p = 0
    b = np.zeros(m) if b is None else _vector("b", b, None)
    if b.shape[0] != m:
        raise ValidationError(f"b: found {b.shape[0]} values; {m} are required (one per constraint row of A)")
    unmeasured_names = _names("unmeasured_names", unmeasured_names, p, "u", "one per column of B")
    if labels is not None and len(labels) != m:
        raise ValidationError(f"labels: found {len(labels)} labels; {m} are required (one per constraint)")
    return A, B, b, unmeasured_names


def reconcile_linear(
    y,
    sigma,
    A,
    B=None,
    *,
    b=None,
    corr=None,
    alpha: float = 0.05,
    correction: str = "sidak",
    names: Sequence[str] | None = None,
    unmeasured_names: Sequence[str] | None = None,
    labels: Sequence[str] | None = None,
) -> Reconciliation:
    """Weighted least-squares reconciliation subject to ``A x + B u = b``.

    Parameters
    ----------
    y : array_like (n,)
        Measurements [any units, one per variable].
    sigma : array_like (n,)
        Their standard deviations [units of y], >= 0 (0: exact, never adjusted).
    A : array_like (m, n)
        Coefficients of the measured variables in the ``m`` constraints.
    B : array_like (m, p), optional
        Coefficients of ``p`` unmeasured variables; eliminated by projection and then
        estimated (``result.u``). Each must be observable (``B`` of full column rank).
    b : array_like (m,), optional
        Right-hand side (default 0).
    corr : array_like (n, n), optional
        Correlation matrix of the measurement errors (default: independent).
    alpha : float
        Significance level of the global test and, after the multiple-test correction,
        of the measurement tests (default 0.05).
    correction : {"sidak", "bonferroni", "none"}
        Multiple-test correction of the measurement test (module docstring).
    names, unmeasured_names, labels : sequence of str, optional
        Names of the measured and unmeasured variables and of the constraints, for
        results and error messages.

    Returns
    -------
    Reconciliation

    Raises
    ------
    ValidationError
        Negative or non-finite ``sigma``, NaN or infinite input, shapes that do not
        match, dependent constraints (rank-deficient: a constraint is a combination of
        others; inconsistent: such a combination with a different right side),
        unobservable unmeasured variables.

    Notes
    -----
    ``x_hat = y - V A' (A V A')^-1 (A y - b)`` after projection; see the module
    docstring for the formulas and references. The result does not depend on the units
    of each variable: rescaling ``y_i``, ``sigma_i`` and column ``i`` of ``A`` by the
    inverse factor rescales ``x_i`` and nothing else.
    """
    y, sigma, chol, alpha, names = _check_common(y, sigma, corr, alpha, correction, names)
    A, B, b, unmeasured_names = _check_constraints(y, A, B, b, unmeasured_names, labels)
    if A.shape[0] == 0:
        raise ValidationError("A: found no constraint rows; at least one constraint is required")
    return _solve_linear(y, sigma, chol, A, B, b, alpha, correction, names, unmeasured_names, labels)


# ---------------------------------------------------------------------------------------
# bilinear (multilinear) reconciliation by successive linearisation
# ---------------------------------------------------------------------------------------
class MultilinearConstraints:
    """Constraints ``f_k(z) = sum_t coef_t * prod_{i in t} z_i = 0`` over variables ``z``.

    Each term is a coefficient times a product of distinct variables (a constant term
    has an empty product), which covers tonnes x grade x recovery balances and linear
    ones alike. Every constraint is then linear in each variable alone, which the
    starting-value solver uses.

    Parameters
    ----------
    n_vars : int
        Number of variables ``z`` (measured first, then unmeasured, in the order given
        to :func:`reconcile_bilinear`).
    rows : sequence of sequence of (float, sequence of int)
        For each constraint, its terms ``(coef, variable indices)``.
    labels : sequence of str, optional
        A name for each constraint, used in messages.
    """

    def __init__(self, n_vars: int, rows, labels: Sequence[str] | None = None):
        self.n_vars = int(n_vars)
        self.rows: list[list[tuple[float, tuple[int, ...]]]] = []
        for k, row in enumerate(rows):
            terms = []
            for coef, idx in row:
                idx = tuple(int(i) for i in idx)
                if len(set(idx)) != len(idx):
                    raise ValidationError(f"constraint {k}: a term repeats a variable {idx}; not multilinear")
                if any(i < 0 or i >= self.n_vars for i in idx):
                    raise ValidationError(f"constraint {k}: variable index out of range 0..{self.n_vars - 1}")
                if not math.isfinite(coef):
                    raise ValidationError(f"constraint {k}: coefficient {coef} is not finite")
                terms.append((float(coef), idx))
            self.rows.append(terms)
        self.labels = tuple(labels) if labels is not None else None
        if self.labels is not None and len(self.labels) != len(self.rows):
            raise ValidationError(f"labels: found {len(self.labels)}; {len(self.rows)} are required")

    def __len__(self) -> int:
        return len(self.rows)

    def residual(self, z) -> np.ndarray:
        """``f(z)``, one value per constraint."""
        z = np.asarray(z, dtype=float)
        return np.array([sum(c * np.prod(z[list(idx)]) for c, idx in row) for row in self.rows])

    def magnitude(self, z) -> np.ndarray:
        """``sum_t |term_t(z)|`` per constraint: the scale against which ``f`` is small."""
        z = np.asarray(z, dtype=float)
        return np.array([sum(abs(c * np.prod(z[list(idx)])) for c, idx in row) for row in self.rows])

    def jacobian(self, z) -> np.ndarray:
        """``df/dz``, shape (constraints, variables)."""
        z = np.asarray(z, dtype=float)
        J = np.zeros((len(self.rows), self.n_vars))
        for k, row in enumerate(self.rows):
            for c, idx in row:
                for pos, i in enumerate(idx):
                    others = idx[:pos] + idx[pos + 1 :]
                    J[k, i] += c * np.prod(z[list(others)])
        return J

    def involves(self, k: int) -> set[int]:
        """Indices of the variables in constraint ``k``."""
        return {i for _, idx in self.rows[k] for i in idx}


def reconcile_bilinear(
    y,
    sigma,
    constraints: MultilinearConstraints,
    *,
    u0=None,
    corr=None,
    alpha: float = 0.05,
    correction: str = "sidak",
    names: Sequence[str] | None = None,
    unmeasured_names: Sequence[str] | None = None,
    tol: float = 1e-10,
    max_iter: int = 50,
) -> Reconciliation:
    """Reconcile ``y`` subject to multilinear constraints, by successive linearisation.

    Parameters
    ----------
    y, sigma, corr, alpha, correction, names, unmeasured_names
        As in :func:`reconcile_linear`.
    constraints : MultilinearConstraints
        Over ``n + p`` variables: the ``n`` measured ones, then ``p`` unmeasured ones.
    u0 : array_like (p,), optional
        Starting values of the unmeasured variables (required when ``p > 0``).
    tol : float
        Convergence: every step ``|dx_i| < max(tol * sigma_i, 1e-13 * |y_i|)`` (the second
        term is floating-point resolution) and ``|du_j| < tol * max(|u_j|, sd(u_j))``
        (default 1e-10).
    max_iter : int
        Linearisations allowed before giving up with a ValidationError.

    Returns
    -------
    Reconciliation
        Tests, covariances and ``z`` from the linearisation at the solution;
        ``iterations`` says how many linearisations it took.
    """
    y, sigma, chol, alpha, names = _check_common(y, sigma, corr, alpha, correction, names)
    n = y.shape[0]
    if not isinstance(constraints, MultilinearConstraints):
        raise ValidationError(
            f"constraints: found {type(constraints).__name__}; expected MultilinearConstraints"
        )
    p = constraints.n_vars - n
    if p < 0:
        raise ValidationError(
            f"constraints: over {constraints.n_vars} variables, fewer than the {n} measured"
        )
    u = np.zeros(0) if p == 0 else _vector("u0", np.zeros(0) if u0 is None else u0, None)
    if u.shape[0] != p:
        raise ValidationError(
            f"u0: found {u.shape[0]} starting values; {p} are required (one per unmeasured)"
        )
    if unmeasured_names is None:
        unmeasured_names = tuple(f"u{j}" for j in range(p))
    unmeasured_names = tuple(unmeasured_names)
    if len(unmeasured_names) != p:
        raise ValidationError(f"unmeasured_names: found {len(unmeasured_names)}; {p} are required")
    if len(constraints) == 0:
        raise ValidationError("constraints: found none; at least one constraint is required")
    if not (tol > 0 and max_iter >= 1):
        raise ValidationError(f"tol, max_iter: found {tol}, {max_iter}; need tol > 0 and max_iter >= 1")
    labels = constraints.labels
    x = y.copy()
    # a step below 1e-13 relative is floating-point noise, whatever sigma is (rounding-only
    # sigmas can be 1e-7 of the value): never ask for more than that
    scale_x = np.maximum(np.maximum(sigma, (1e-13 / tol) * np.abs(y)), np.finfo(float).tiny)
    res = None
    for it in range(1, max_iter + 1):  # noqa: B007 - `it` is reported after the loop
        z = np.concatenate([x, u])
        f = constraints.residual(z)
        J = constraints.jacobian(z)
        A, B = J[:, :n], J[:, n:]
        b = A @ x + B @ u - f
        res = _solve_linear(
            y,
            sigma,
            chol,
            A,
            B if p else None,
            b,
            alpha,
            correction,
            names,
            unmeasured_names,
            labels,
            it == 1,
        )
        step_x = np.abs(res.x - x) / scale_x
        step_u = np.abs(res.u - u) / np.maximum(np.maximum(np.abs(u), res.sd_u), 1e-300) if p else np.zeros(0)
        x, u = res.x, res.u
        if max(step_x.max(initial=0.0), step_u.max(initial=0.0)) < tol:
            break
    else:
        raise ValidationError(
            f"successive linearisation did not converge in {max_iter} iterations "
            f"(last step {max(step_x.max(initial=0.0), step_u.max(initial=0.0)):.3g} standard deviations); "
            "check the data for impossible values (zero or negative tonnes/grades) or raise max_iter"
        )
    z = np.concatenate([x, u])
    closure = np.abs(constraints.residual(z)) / np.maximum(constraints.magnitude(z), 1e-300)
    if closure.max(initial=0.0) > 1e-8:  # pragma: no cover - guarded by the step criterion
        raise ValidationError(f"constraints do not close at the solution (relative {closure.max():.3g})")
    return replace(res, iterations=it)


# ---------------------------------------------------------------------------------------
# the mill's figures
# ---------------------------------------------------------------------------------------
#: figures the per-period balances involve (``tpd`` too where it is reported)
MILL_FIGURES: tuple[str, ...] = variables.MILL_FIGURES
#: figures that add up over periods (extensive)
EXTENSIVE: tuple[str, ...] = (
    "ore_mined_t",
    "ore_processed_t",
    "pbcon_t",
    "zncon_t",
    "ag_oz",
    "pb_lb",
    "zn_lb",
)

#: element -> its reported figures (:data:`kenomill.variables.METAL_FIGURES`)
_METALS = variables.METAL_FIGURES


def _factor(ds: xr.Dataset, col: str) -> float:
    """Multiplier that takes ``col`` from its units to tonnes / mass fraction / t per day."""
    unit = ds[col].attrs.get("units", "")
    if col.endswith("_t"):
        dimension = "mass"
    elif col == "tpd":
        dimension = "rate"
    elif col.startswith("rec_"):
        dimension = "fraction"
    elif col in ("ag_oz", "pb_lb", "zn_lb"):
        dimension = "contained"
    else:
        dimension = "grade"
    try:
        return units.base_factor(dimension, unit)
    except ValueError as e:
        raise ValidationError(f"{col}: {e}") from None


class _Builder:
    """Variables (period, column) and constraint rows of the mill's balances."""

    def __init__(self, ds: xr.Dataset):
        self.ds = ds
        self.vars: list[tuple[str, str]] = []
        self.index: dict[tuple[str, str], int] = {}
        self.rows: list[list[tuple[float, tuple[int, ...]]]] = []
        self.labels: list[str] = []
        self.owner: list[str] = []  # period each constraint is attributed to
        # plain arrays: xarray .sel per figure cost more than the reconciliation itself
        self._pos = {str(p): i for i, p in enumerate(ds.period.values)}
        self._arrays: dict[str, np.ndarray] = {}

    def value(self, period: str, col: str) -> float:
        if col not in self._arrays:
            self._arrays[col] = np.asarray(self.ds[col].values, dtype=float)
        return float(self._arrays[col][self._pos[period]])

    def var(self, period: str, col: str) -> int:
        key = (period, col)
        if key not in self.index:
            self.index[key] = len(self.vars)
            self.vars.append(key)
        return self.index[key]

    def add(self, owner: str, label: str, terms):
        self.rows.append(terms)
        self.labels.append(f"{owner}: {label}")
        self.owner.append(owner)

    def period_balances(self, p: str, with_tpd: bool):
        ds, v = self.ds, self.var
        F = v(p, "ore_processed_t")
        kF = _factor(ds, "ore_processed_t")
        for el, m in _METALS.items():
            head, rec, cm, cons = m.head, m.recovery, m.contained, m.concentrates
            k_cm = _factor(ds, cm)
            feed_coef = kF * _factor(ds, head) * _factor(ds, rec)
            # feed x head x recovery = contained metal   [t of metal]
            self.add(
                p,
                f"{el}: feed x head x recovery = contained",
                [(feed_coef, (F, v(p, head), v(p, rec))), (-k_cm, (v(p, cm),))],
            )
            # contained metal = sum of concentrate tonnes x grade   [t of metal]
            terms = [(k_cm, (v(p, cm),))]
            for ct, cg in cons:
                terms.append((-_factor(ds, ct) * _factor(ds, cg), (v(p, ct), v(p, cg))))
            self.add(p, f"{el}: contained = concentrate tonnes x grade", terms)
        if with_tpd and np.isfinite(self.value(p, "tpd")):
            days = self.value(p, "days")
            self.add(
                p,
                "tpd x days = ore processed",
                [(_factor(ds, "tpd") * days, (v(p, "tpd"),)), (-kF, (F,))],
            )

    def aggregate_balances(self, agg: str, quarters: Sequence[str]):
        """Quarters add up: extensive figures, and metal in feed and in lead concentrate.

        Metal in feed (tonnes x head) per element and silver in lead concentrate are the
        independent additions; recoveries and the paying-metal concentrate grades then
        add up through the contained metal and the per-period balances (adding them too
        would make the constraints dependent).
        """
        ds, v = self.ds, self.var
        for col in EXTENSIVE:
            k = _factor(ds, col)
            terms = [(k, (v(agg, col),))] + [(-k, (v(q, col),)) for q in quarters]
            self.add(agg, f"{col} = sum of {'+'.join(quarters)}", terms)
        kF = _factor(ds, "ore_processed_t")
        for el, m in _METALS.items():
            head = m.head
            k = kF * _factor(ds, head)
            terms = [(k, (v(agg, "ore_processed_t"), v(agg, head)))]
            terms += [(-k, (v(q, "ore_processed_t"), v(q, head))) for q in quarters]
            self.add(agg, f"{el} in feed = sum of quarters", terms)
        k = _factor(ds, "pbcon_t") * _factor(ds, "pbcon_ag_gpt")
        terms = [(k, (v(agg, "pbcon_t"), v(agg, "pbcon_ag_gpt")))]
        terms += [(-k, (v(q, "pbcon_t"), v(q, "pbcon_ag_gpt"))) for q in quarters]
        self.add(agg, "Ag in lead concentrate = sum of quarters", terms)


def _starting_values(cons: MultilinearConstraints, z: np.ndarray, known: np.ndarray, names) -> np.ndarray:
    """Fill unknown entries of z from constraints in which they are the only unknown."""
    z, known = z.copy(), known.copy()
    while not known.all():
        progress = False
        for k in range(len(cons)):
            unk = [i for i in cons.involves(k) if not known[i]]
            if len(unk) != 1:
                continue
            i = unk[0]
            zz = z.copy()
            zz[i] = 0.0
            c0 = cons.residual(zz)[k]
            zz[i] = 1.0
            slope = cons.residual(zz)[k] - c0  # each constraint is linear in one variable
            if slope != 0.0:
                z[i], known[i], progress = -c0 / slope, True, True
        if not progress:
            missing = ", ".join(names[i] for i in np.flatnonzero(~known))
            raise ValidationError(
                f"missing figures {missing}: no balance determines them from the reported ones; "
                "report them or leave the period out"
            )
    return z


def _parse_exclude(exclude: Iterable[str], ds: xr.Dataset) -> set[tuple[str, str]]:
    out = set()
    for item in exclude:
        period, sep, col = str(item).partition(".")
        if not sep or period not in ds.period.values or col not in FIGURES:
            raise ValidationError(
                f"exclude: found {item!r}; expected PERIOD.COLUMN with PERIOD in "
                f"{', '.join(map(str, ds.period.values))} and COLUMN a reported figure, e.g. 2011Q4.zn_lb"
            )
        out.add((period, col))
    return out


def _reconcile_block(ds, periods, across, model: ErrorModel, alpha, correction, exclude, with_tpd, tol):
    bld = _Builder(ds)
    for p in periods:
        bld.period_balances(p, with_tpd)
    if across:
        for agg, quarters in aggregates_of(ds).items():
            if agg in periods and all(q in periods for q in quarters):
                bld.aggregate_balances(agg, quarters)
    names = [f"{p}.{c}" for p, c in bld.vars]
    value = np.array([bld.value(p, c) for p, c in bld.vars])
    reso = np.array([bld.value(p, c + "_resolution") for p, c in bld.vars])
    measured = np.isfinite(value) & np.array([key not in exclude for key in bld.vars])
    cons_all = MultilinearConstraints(len(bld.vars), bld.rows, bld.labels)
    start = _starting_values(cons_all, np.where(np.isfinite(value), value, 0.0), np.isfinite(value), names)
    order = np.concatenate([np.flatnonzero(measured), np.flatnonzero(~measured)])
    pos = np.empty_like(order)
    pos[order] = np.arange(order.size)
    rows = [[(c, tuple(int(pos[i]) for i in idx)) for c, idx in row] for row in bld.rows]
    cons = MultilinearConstraints(len(order), rows, bld.labels)
    mi, ui = np.flatnonzero(measured), np.flatnonzero(~measured)
    y = value[mi]
    cols = [bld.vars[i][1] for i in mi]
    sig = np.array([float(model.sigma(c, val, r)) for c, val, r in zip(cols, y, reso[mi], strict=True)])
    corr = None
    for j, (p, c) in enumerate(bld.vars[i] for i in mi):
        partner = CORRELATED_WITH.get(c)
        if partner is None or (p, partner) not in bld.index:
            continue
        i2 = bld.index[(p, partner)]
        if not measured[i2]:
            continue
        j2 = int(pos[i2])
        if corr is None:
            corr = np.eye(mi.size)
        if sig[j] > 0 and sig[j2] > 0:
            rho = float(model.relative_sd(c, y[j]) * model.relative_sd(partner, y[j2])) / (sig[j] * sig[j2])
            if rho >= 1.0 - 1e-9:
                raise ValidationError(
                    f"error model without the printed rounding (--no-rounding or rounding = false): "
                    f"{c}'s error is then entirely {partner}'s weighing error (correlation {rho:.3f}), "
                    f"so the balance {c} = {partner} / days of period {p} has no error of its own to "
                    f"adjust ({c} {y[j]:g} vs {y[j2]:g} t); keep the printed rounding, or --exclude {p}.{c}"
                )
            corr[j, j2] = corr[j2, j] = rho
    res = reconcile_bilinear(
        y,
        sig,
        cons,
        u0=start[ui],
        corr=corr,
        alpha=alpha,
        correction=correction,
        names=[names[i] for i in mi],
        unmeasured_names=[names[i] for i in ui],
        tol=tol,
    )
    # per-period test: the constraints attributed to each period, at the solution
    z = np.concatenate([res.x, res.u])
    J = cons.jacobian(z)
    n = mi.size
    per_period = {}
    for p in periods:
        rows_p = [k for k, o in enumerate(bld.owner) if o == p]
        if not rows_p:
            continue
        cols = np.flatnonzero(np.abs(J[rows_p, :n]).sum(axis=0) > 0)  # only these enter the test
        A = J[np.ix_(rows_p, cols)]
        Bp = J[rows_p, n:]
        used = np.flatnonzero(np.abs(Bp).sum(axis=0) > 0)
        Bp = Bp[:, used]
        b = A @ res.x[cols] + Bp @ res.u[used]
        try:
            sub = _solve_linear(
                y[cols],
                sig[cols],
                None if corr is None else np.linalg.cholesky(corr[np.ix_(cols, cols)]),
                A,
                Bp if used.size else None,
                b,
                alpha,
                correction,
                tuple(res.names[j] for j in cols),
                tuple(res.unmeasured_names[j] for j in used),
                [bld.labels[k] for k in rows_p],
            )
            per_period[p] = (sub.chi2, sub.dof, sub.p_value)
        except ValidationError:
            per_period[p] = (np.nan, 0, np.nan)
    return bld, mi, ui, sig, res, per_period


def _period_system(ds, period: str, model: ErrorModel, with_tpd: bool):
    """One period's balances linearised at its reported figures, for estimating error sizes.

    Returns ``(names, y, resolution, A, r)``: the measured figures (column names, values,
    printed units), and ``A`` (rows x measured) with ``r`` (rows) such that
    ``r = A e`` to first order in the figures' errors ``e`` (unmeasured figures eliminated by
    Crowe's projection; each row scaled by its magnitude, which changes the likelihood
    only by a constant). ``None`` when the period has no balance left to test.
    """
    bld = _Builder(ds)
    bld.period_balances(period, with_tpd)
    value = np.array([bld.value(p, c) for p, c in bld.vars])
    reso = np.array([bld.value(p, c + "_resolution") for p, c in bld.vars])
    names = [f"{p}.{c}" for p, c in bld.vars]
    measured = np.isfinite(value)
    cons = MultilinearConstraints(len(bld.vars), bld.rows, bld.labels)
    z = _starting_values(cons, np.where(measured, value, 0.0), measured, names)
    f = cons.residual(z)
    J = cons.jacobian(z)
    scale = np.maximum(cons.magnitude(z), 1e-300)
    f, J = f / scale, J / scale[:, None]
    mi, ui = np.flatnonzero(measured), np.flatnonzero(~measured)
    A = J[:, mi]
    if ui.size:
        A, f, _, _ = _eliminate_unmeasured(A, J[:, ui], f, [names[i] for i in ui])
    if A.shape[0] == 0:
        return None
    cols = tuple(bld.vars[i][1] for i in mi)
    return cols, value[mi], reso[mi], A, f


def _sized_model(ds, error_model, error_sizes, alpha, correction, with_tpd):
    """The error model a reconciliation uses, and one line on where its sizes come from."""
    from kenomill.errormodel import ERROR_SIZES, SizeEstimate, estimate_sizes

    if isinstance(error_sizes, SizeEstimate):
        return error_sizes.model, error_sizes.describe()
    if error_sizes not in ERROR_SIZES:
        raise ValidationError(
            f"error_sizes: found {error_sizes!r}; allowed: {', '.join(ERROR_SIZES)} or a SizeEstimate"
        )
    model = resolve(error_model)
    if error_sizes == "fixed":
        return model, "fixed: " + model.describe()
    est = estimate_sizes(
        ds, start=model, alpha=alpha, correction=correction, with_tpd=with_tpd, intervals=False
    )
    return est.model, est.describe()


def reconcile_dataset(
    ds: xr.Dataset,
    across_periods: bool = False,
    error_model=None,
    *,
    alpha: float = 0.05,
    correction: str = "sidak",
    exclude: Iterable[str] = (),
    with_tpd: bool = True,
    tol: float = 1e-10,
    error_sizes="estimated",
) -> xr.Dataset:
    """Reconcile the figures of a dataset shaped like :func:`kenomill.reported_periods`.

    Per period (or, with ``across_periods``, all periods at once) the figures of
    :data:`MILL_FIGURES` are adjusted so that, for Ag, Pb and Zn,
    ``ore processed x head grade x recovery = contained metal = sum over concentrates of
    concentrate tonnes x concentrate grade`` (silver in both concentrates), and
    ``tpd x days = ore processed`` where tpd is reported. ``across_periods`` adds, for each
    half year and year whose quarters are present, that ore mined, ore processed,
    concentrate tonnes and contained metal are the sums of the quarters' and that metal
    in feed (tonnes x head grade) and silver in lead concentrate add up too (so head
    grades and concentrate grades are tonnage-weighted means; recoveries follow).

    Parameters
    ----------
    ds : xarray.Dataset
        Figures with ``units`` attributes (t/kt, g/t, %, oz/t, troy_oz, lb ...) and
        ``<col>_resolution``; the result does not depend on the units chosen.
    across_periods : bool
        Reconcile all periods together, with the additivity constraints.
    error_model : ErrorModel, mapping, path or None
        See :mod:`kenomill.errormodel` (None: the documented defaults). With
        ``error_sizes="estimated"`` it is the starting point: its rounding switch, its
        per-column sizes and the kinds it sets (``ErrorModel.given``: those named in its
        ``relative_pct``) are kept; the other kinds are estimated, their sizes standing only
        where the data cannot identify them.
    alpha, correction
        Significance level and multiple-test correction (see :func:`reconcile_linear`).
    exclude : iterable of str
        Figures ``PERIOD.COLUMN`` to treat as not reported: they are estimated from the
        balances instead (use it to see whether a suspect figure explains the chi2).
    with_tpd : bool
        Include ``tpd x days = ore processed`` where tpd is reported.
    tol : float
        Convergence tolerance of the successive linearisation, in standard deviations.
    error_sizes : {"estimated", "fixed"} or SizeEstimate
        ``"estimated"`` (default): the relative error per kind is estimated by maximum
        likelihood from the consistent base periods of ``ds``
        (:func:`kenomill.errormodel.estimate_sizes`, figures in ``exclude`` included:
        the sizes describe the data, ``exclude`` asks a question of them); ``"fixed"``:
        ``error_model``'s sizes as they are (the documented defaults when None); or a
        :class:`~kenomill.errormodel.SizeEstimate` computed before.

    Returns
    -------
    xarray.Dataset
        The variables of ``ds`` with reconciled values (figures in no balance, and tpd
        where not reported, keep their reported value), plus per figure ``<col>_sd``
        (posterior standard deviation; for figures in no balance, their measurement
        standard deviation), ``<col>_z`` (measurement test, NaN where not testable) and
        ``<col>_flagged``; per period ``chi2``, ``dof``, ``p_value``, ``gross_error``.
    """
    _check_columns(ds)
    excl = _parse_exclude(exclude, ds)
    periods = [str(p) for p in ds.period.values]
    with_tpd = bool(with_tpd) and "tpd" in ds
    model, sizes = _sized_model(ds, error_model, error_sizes, alpha, correction, with_tpd)
    blocks = [periods] if across_periods else [[p] for p in periods]
    est = _Estimates.start(ds, model)
    total = [
        est.take(*_reconcile_block(ds, block, across_periods, model, alpha, correction, excl, with_tpd, tol))
        for block in blocks
    ]
    out = ds.copy(deep=True).assign(est.variables(ds, alpha))  # one merge: per-variable assignment cost 0.7 s
    out.attrs.update(
        {
            "title": ds.attrs.get("title", "reported figures") + ", reconciled",
            "method": "weighted least squares subject to the mill balances, successive linearisation "
            "(kenomill.reconcile)",
            "across_periods": int(bool(across_periods)),
            "alpha": alpha,
            "correction": correction,
            "z_crit": ", ".join(f"{r.z_crit:.3f}" for r in total),
            "error_model": model.describe(),
            "error_sizes": sizes,
            "tolerance": f"step < {tol:g} standard deviations",
            "iterations": ", ".join(str(r.iterations) for r in total),
            "excluded": ", ".join(sorted(f"{p}.{c}" for p, c in excl)),
        }
    )
    if across_periods:
        r = total[0]
        out.attrs.update({"chi2_total": r.chi2, "dof_total": r.dof, "p_value_total": r.p_value})
    return out


def _check_columns(ds: xr.Dataset) -> None:
    """Every figure of :data:`MILL_FIGURES` and each figure's printed resolution are there."""
    missing = [c for c in MILL_FIGURES if c not in ds]
    if missing:
        raise ValidationError(
            f"data: missing variable(s) {', '.join(missing)}; reconcile needs {', '.join(MILL_FIGURES)}"
        )
    no_res = [c + "_resolution" for c in (*MILL_FIGURES, "tpd") if c in ds and c + "_resolution" not in ds]
    if no_res:
        raise ValidationError(
            f"data: missing variable(s) {', '.join(no_res)}: one unit of each figure's last printed "
            "digit (0 where a figure is not rounded)"
        )


@dataclass
class _Estimates:
    """Per figure and period: reconciled value, sd, z and flag; per period: chi2, dof, p."""

    figs: list[str]
    pidx: dict[str, int]
    rec: dict[str, np.ndarray]
    sd: dict[str, np.ndarray]
    zval: dict[str, np.ndarray]
    flag: dict[str, np.ndarray]
    chi2: np.ndarray
    dof: np.ndarray
    pval: np.ndarray

    @classmethod
    def start(cls, ds: xr.Dataset, model: ErrorModel) -> _Estimates:
        """The reported values and their measurement sds (what stands where no balance reaches)."""
        n = ds.sizes["period"]
        figs = [c for c in FIGURES if c in ds]
        sd = {}
        for c in figs:
            res_c = ds[c + "_resolution"].values if c + "_resolution" in ds else np.zeros(n)
            sd[c] = np.asarray(model.sigma(c, ds[c].values, res_c), dtype=float)
        return cls(
            figs=figs,
            pidx={str(p): i for i, p in enumerate(ds.period.values)},
            rec={c: ds[c].values.astype(float).copy() for c in figs},
            sd=sd,
            zval={c: np.full(n, np.nan) for c in figs},
            flag={c: np.zeros(n, dtype=bool) for c in figs},
            chi2=np.full(n, np.nan),
            dof=np.zeros(n, dtype=int),
            pval=np.full(n, np.nan),
        )

    def take(self, bld, mi, ui, sig, res, per_period):
        """Store one block's solution (see :func:`_reconcile_block`); return its Reconciliation."""
        pidx = self.pidx
        for j, i in enumerate(mi):
            p, c = bld.vars[i]
            self.rec[c][pidx[p]] = res.x[j]
            self.sd[c][pidx[p]] = res.sd[j]
            self.zval[c][pidx[p]] = res.z[j]
            self.flag[c][pidx[p]] = res.flagged[j]
        for j, i in enumerate(ui):
            p, c = bld.vars[i]
            self.rec[c][pidx[p]] = res.u[j]
            self.sd[c][pidx[p]] = res.sd_u[j]
        for p, (c2, d, pv) in per_period.items():
            self.chi2[pidx[p]], self.dof[pidx[p]], self.pval[pidx[p]] = c2, d, pv
        return res

    def variables(self, ds: xr.Dataset, alpha: float) -> dict:
        """The result's variables, with their attributes, for one ``Dataset.assign``."""
        new = {}
        for c in self.figs:
            attrs = dict(ds[c].attrs)
            new[c] = (
                "period",
                self.rec[c],
                {**attrs, "long_name": f"{attrs.get('long_name', c)} (reconciled)"},
            )
            new[c + "_sd"] = (
                "period",
                self.sd[c],
                {"units": attrs.get("units", ""), "long_name": f"posterior standard deviation of {c}"},
            )
            new[c + "_z"] = (
                "period",
                self.zval[c],
                {"units": "1", "long_name": f"measurement test statistic of {c}"},
            )
            new[c + "_flagged"] = (
                "period",
                self.flag[c],
                {"units": "1", "long_name": f"{c} fails the measurement test (Sidak-corrected)"},
            )
        new["chi2"] = (
            "period",
            self.chi2,
            {"units": "1", "long_name": "global test statistic of the period's balances"},
        )
        new["dof"] = (
            "period",
            self.dof,
            {"units": "1", "long_name": "degrees of freedom (independent balances)"},
        )
        new["p_value"] = ("period", self.pval, {"units": "1", "long_name": "P(chi2_dof >= chi2)"})
        new["gross_error"] = (
            "period",
            np.where(np.isfinite(self.pval), self.pval < alpha, False),
            {"units": "1", "long_name": f"global test rejects at alpha = {alpha:g}"},
        )
        return new


def reconciled_periods(
    across_periods: bool = False, error_model=None, *, periods: xr.Dataset | None = None, **kwargs
) -> xr.Dataset:
    """The reported figures, reconciled: same names and units as :func:`kenomill.reported_periods`.

    Parameters
    ----------
    across_periods : bool
        Reconcile all nine periods together so that quarters add up to the half years
        and the year (default: each period on its own).
    error_model : ErrorModel, mapping, path or None
        Standard deviations of the figures (None: the documented defaults of
        :mod:`kenomill.errormodel`).
    periods : xarray.Dataset, optional
        The periods to reconcile (:func:`kenomill.read_periods`); default the packaged ones.
    **kwargs
        Passed to :func:`reconcile_dataset` (``alpha``, ``correction``, ``exclude``,
        ``with_tpd``, ``tol``).

    Returns
    -------
    xarray.Dataset
        As :func:`reconcile_dataset`: reconciled figures under their reported names and
        units, ``<col>_sd``, ``<col>_z``, ``<col>_flagged``, and per period ``chi2``,
        ``dof``, ``p_value``, ``gross_error``.
    """
    from kenomill.data import reported_periods

    ds = reported_periods() if periods is None else periods
    return reconcile_dataset(ds, across_periods, error_model, **kwargs)


def suspects(rec: xr.Dataset, reported: xr.Dataset, top: int | None = None) -> pd.DataFrame:
    """Measurements sorted by their test statistic, most suspicious first.

    Returns a DataFrame with period, figure, units, reported, reconciled, adjustment
    [% of reported], sd, z, flagged.
    """
    rows = []
    for c in FIGURES:
        if c + "_z" not in rec:
            continue
        for i, p in enumerate(rec.period.values):
            zz = float(rec[c + "_z"].values[i])
            if not np.isfinite(zz):
                continue
            y = float(reported[c].values[i])
            x = float(rec[c].values[i])
            rows.append(
                {
                    "period": str(p),
                    "figure": c,
                    "units": rec[c].attrs.get("units", ""),
                    "reported": y,
                    "reconciled": x,
                    "adjustment_pct": 100.0 * (x - y) / y if y else np.nan,
                    "sd": float(rec[c + "_sd"].values[i]),
                    "z": zz,
                    "flagged": bool(rec[c + "_flagged"].values[i]),
                }
            )
    df = pd.DataFrame(rows).sort_values("z", ascending=False, kind="stable").reset_index(drop=True)
    return df if top is None else df.head(top)


def summary_frame(rec: xr.Dataset) -> pd.DataFrame:
    """One row per period: period, chi2, dof, p_value, gross_error, ``<col>_rec`` and ``<col>_sd``."""
    df = pd.DataFrame({"period": rec.period.values.astype(str)})
    for c in ("chi2", "dof", "p_value", "gross_error"):
        df[c] = rec[c].values
    for c in FIGURES:
        if c in rec:
            df[c + "_rec"] = rec[c].values
    for c in FIGURES:
        if c + "_sd" in rec:
            df[c + "_sd"] = rec[c + "_sd"].values
    return df


def summary_dataset(rec: xr.Dataset) -> xr.Dataset:
    """:func:`summary_frame` as a Dataset with units, for netCDF."""
    out = xr.Dataset(coords={"period": rec.period.values.astype(str)})
    for c in ("chi2", "dof", "p_value"):
        out[c] = rec[c]
    out["gross_error"] = rec["gross_error"].astype("int8")
    out["gross_error"].attrs = {**rec["gross_error"].attrs, "units": "1 (1 = true)"}
    for c in FIGURES:
        if c in rec:
            out[c + "_rec"] = rec[c]
    for c in FIGURES:
        if c + "_sd" in rec:
            out[c + "_sd"] = rec[c + "_sd"]
    out.attrs.update({k: v for k, v in rec.attrs.items() if isinstance(v, str | int | float)})
    return out


# ---------------------------------------------------------------------------------------
# locating gross errors: serial elimination
# ---------------------------------------------------------------------------------------
#: the figures the calibration fits, in the column order of ``kenomill.calibrate.FitData.y``
#: (one tuple, in :mod:`kenomill.variables`, which imports no kernels)
CALIBRATION_FIGURES: tuple[str, ...] = variables.FIT_FIGURES
#: two measurement-test statistics this close (relative) are the same test: the figures
#: enter the balances only together (head grade x recovery) and cannot be told apart
_TIE = 1e-6


def gross_errors(
    ds: xr.Dataset | None = None,
    error_model=None,
    *,
    error_sizes="estimated",
    periods: Sequence[str] | None = None,
    alpha: float = 0.05,
    correction: str = "sidak",
    with_tpd: bool = True,
    tol: float = 1e-10,
) -> pd.DataFrame:
    """Gross errors located by serial elimination of the measurement test, period by period.

    A single gross error smears over every figure of the balances it breaks: the plain
    measurement test flags them all (2011Q4: zinc tonnage, grade and contained zinc
    together). Serial elimination (Ripps, 1965; Narasimhan & Jordache, 2000, ch. 8) takes
    the figure with the largest flagged ``z``, treats it as not reported (estimated from
    the balances), reconciles again, and repeats until nothing is flagged. Figures whose
    ``z`` is the same statistic (head grade and recovery, which enter only as a product)
    are flagged together: the data cannot say which one is wrong; one of them is set aside.

    Parameters
    ----------
    ds : xarray.Dataset, optional
        Periods shaped like :func:`kenomill.reported_periods` (default: the packaged ones).
    error_model, error_sizes, alpha, correction, with_tpd, tol
        As in :func:`reconcile_dataset`; estimated sizes are estimated once from all the
        base periods of ``ds``.
    periods : sequence of str, optional
        Periods to examine (default: all of ``ds``).

    Returns
    -------
    pandas.DataFrame
        One row per flagged figure: ``period``, ``figure``, ``units``, ``step`` (1 = set
        aside first), ``z`` (its measurement test when it was set aside), ``z_crit``,
        ``tied_with`` (figures with the same statistic, ';'-separated), ``reported``,
        ``estimate`` (from the balances without the figures set aside, NaN for a tied
        figure kept), ``reported_vs_estimate_pct``, and the period's global test before
        (``chi2_before``, ``p_before``) and after (``chi2_after``, ``dof_after``,
        ``p_after``) every figure found was set aside.
    """
    from kenomill.data import reported_periods

    ds = reported_periods() if ds is None else ds
    names = [str(p) for p in ds.period.values]
    if periods is None:
        periods = names
    periods = [str(p) for p in periods]
    unknown = [p for p in periods if p not in names]
    if unknown:
        raise ValidationError(f"periods: unknown {', '.join(unknown)}; allowed: {', '.join(names)}")
    with_tpd_ds = bool(with_tpd) and "tpd" in ds
    model, sizes = _sized_model(ds, error_model, error_sizes, alpha, correction, with_tpd_ds)
    figs = [c for c in FIGURES if c in ds]
    cols = [
        "period", "figure", "units", "step", "z", "z_crit", "tied_with", "reported", "estimate",
        "reported_vs_estimate_pct", "chi2_before", "p_before", "chi2_after", "dof_after", "p_after",
    ]  # fmt: skip
    rows = []
    for p in periods:
        sub = ds.sel(period=[p])
        kw = dict(error_model=model, error_sizes="fixed", alpha=alpha, correction=correction)
        kw.update(with_tpd=with_tpd, tol=tol)
        r = reconcile_dataset(sub, **kw)
        chi2_0, p_0 = float(r.chi2.values[0]), float(r.p_value.values[0])
        excl: list[str] = []
        found = []
        for step in range(1, len(figs) + 1):
            z = {c: float(r[c + "_z"].values[0]) for c in figs}
            flagged = [c for c in figs if bool(r[c + "_flagged"].values[0])]
            if not flagged:
                break
            top = max(flagged, key=lambda c: z[c])
            ties = [c for c in figs if np.isfinite(z[c]) and abs(z[c] - z[top]) <= _TIE * z[top]]
            zc = float(r.attrs["z_crit"].split(",")[0])
            for c in ties:
                found.append((c, step, z[c], zc, ";".join(t for t in ties if t != c), c == ties[0]))
            try:
                r_next = reconcile_dataset(sub, exclude=[f"{p}.{c}" for c in [*excl, ties[0]]], **kw)
            except ValidationError:
                break  # setting it aside leaves a figure nothing determines: stop here
            excl.append(ties[0])
            r = r_next
        for c, step, zz, zc, tied, aside in found:
            y = float(ds[c].sel(period=p))
            est = float(r[c].values[0]) if aside and c in excl else math.nan
            rows.append(
                {
                    "period": p,
                    "figure": c,
                    "units": ds[c].attrs.get("units", ""),
                    "step": step,
                    "z": zz,
                    "z_crit": zc,
                    "tied_with": tied,
                    "reported": y,
                    "estimate": est,
                    "reported_vs_estimate_pct": 100.0 * (y / est - 1.0) if est == est and est else math.nan,
                    "chi2_before": chi2_0,
                    "p_before": p_0,
                    "chi2_after": float(r.chi2.values[0]),
                    "dof_after": int(r.dof.values[0]),
                    "p_after": float(r.p_value.values[0]),
                }
            )
    out = pd.DataFrame(rows, columns=cols)
    out.attrs["error_sizes"] = sizes
    out.attrs["error_model"] = model.describe()
    return out


def flagged_figures(periods=None, *, error_model=None, error_sizes="estimated", alpha: float = 0.05):
    """Figures the calibration fits that the reconciliation finds to hold a gross error.

    The measurement test with serial elimination (:func:`gross_errors`), with the error
    sizes estimated from the consistent periods by default, on the quarters the
    calibration fits.

    Parameters
    ----------
    periods : xarray.Dataset or sequence of str, optional
        As :func:`kenomill.calibrate.fit_data`: a Dataset (its base periods are examined;
        the sizes are estimated from it), names of packaged quarters, or None for the six
        packaged quarters (sizes estimated from the packaged base periods).
    error_model, error_sizes, alpha
        As in :func:`reconcile_dataset`.

    Returns
    -------
    xarray.DataArray of bool
        Dims ``("period", "figure")``; ``figure`` is :data:`CALIBRATION_FIGURES` (the
        column order of ``FitData.y``), ``period`` the quarters in the order of
        ``FitData.periods``. True: flagged. A figure tied with another (head grade and
        recovery) is flagged with it: the balances cannot tell which one is wrong.
    """
    from kenomill.data import QUARTERS, base_periods, reported_periods

    if isinstance(periods, xr.Dataset):
        ds = periods
        dated = "period_start" in ds and "period_end" in ds
        names = list(base_periods(ds)) if dated else [str(p) for p in ds.period.values]
    else:
        ds = reported_periods()
        names = list(QUARTERS if periods is None else [str(p) for p in periods])
        have = [str(p) for p in ds.period.values]
        unknown = [p for p in names if p not in have]
        if unknown:
            raise ValidationError(f"periods: unknown {unknown}; allowed: {', '.join(have)}")
    ge = gross_errors(ds, error_model, error_sizes=error_sizes, periods=names, alpha=alpha)
    flags = np.zeros((len(names), len(CALIBRATION_FIGURES)), dtype=bool)
    pos = {p: i for i, p in enumerate(names)}
    fpos = {c: j for j, c in enumerate(CALIBRATION_FIGURES)}
    for row in ge.itertuples():
        if row.figure in fpos:
            flags[pos[row.period], fpos[row.figure]] = True
    return xr.DataArray(
        flags,
        dims=("period", "figure"),
        coords={"period": names, "figure": list(CALIBRATION_FIGURES)},
        name="flagged",
        attrs={
            "long_name": "figure holds a gross error (measurement test, serial elimination)",
            "alpha": alpha,
            "error_sizes": ge.attrs["error_sizes"],
            "flagged_outside_calibration_figures": ", ".join(
                f"{r.period}.{r.figure}" for r in ge.itertuples() if r.figure not in fpos
            ),
        },
    )
