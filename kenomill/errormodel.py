"""The error model of the reported figures: printed rounding plus a relative error per kind.

A reported figure ``y`` differs from the quantity it stands for by two independent errors:

* **rounding**: the release prints it to one unit ``u`` of its last digit
  (``<col>_resolution`` of :func:`kenomill.reported_periods`), so the rounding error is
  uniform on [-u/2, u/2], of standard deviation ``u / sqrt(12)``;
* **measurement**: weighing, sampling and assaying, and the bookkeeping that turns them
  into quarterly figures, modelled as a relative standard deviation ``r`` per kind of
  figure, so of standard deviation ``r * |y|``.

The standard deviation used by the reconciliation is
``sigma = sqrt((u / sqrt(12))**2 + (r * |y|)**2)``.

Default relative errors (:data:`DEFAULT_RELATIVE_PCT`) and why
----------------------------------------------------------------
``tonnes`` 1.5 %
    Mill feed (and ore mined) is weighed on a belt weightometer and corrected for
    moisture; in routine service such scales hold 1-2 % (DESIGN.md section 1; Morrison,
    2008, ch. 3). Mid-range.
``concentrate_tonnes`` 1.0 %
    Concentrate is weighed on a truck scale when shipped (a few tenths of a percent),
    but quarterly production also counts concentrate in the shed, estimated from
    stockpile surveys and filter-cake moisture; 1 % covers both.
``assays`` 2.0 %
    Head and concentrate assays: sampling dominates (a Pb-Zn-Ag feed is
    heterogeneous, silver in coarse sulphosalts); DESIGN.md gives 1-3 % relative.
    Mid-range. Concentrate assays are usually better than head assays: override
    per column (``[columns_pct]``) when a site's QA/QC says so.
``recoveries`` 1.0 %
    A reported recovery is not measured directly: the mill computes it from the same
    tonnes and assays (or from tails assays, two-product formula). As an independent
    figure it carries the difference between that computation and the product-based
    one, about 1 %.
``contained_metal`` 1.0 %
    Payable-metal bookkeeping computes contained metal from concentrate tonnes and
    assays before rounding; differences from final (settlement) weights and assays are
    typically within 1 %.

``throughput`` (``tpd``): not a separate measurement. Reported tpd is tonnes processed /
calendar days, so its measurement error *is* the feed tonnage's: it gets the relative
error of ``tonnes`` **fully correlated with** ``ore_processed_t``'s (see
:meth:`ErrorModel.relative_sd`), plus its own rounding. Only its rounding is
independent information, so the constraint ``tpd x days = ore_processed_t`` checks the
transcription, not the weighing.

``availability_pct`` enters no balance; it gets ``recoveries``' relative error only so
that every figure has a standard deviation.

Treating recoveries and contained metal as independent of the tonnes and assays they
are computed from is the usual simplification when only published figures are at hand
(the computation is not published). It makes the tests slightly conservative for the
computed figures; the relative errors above are what a reader is invited to change.

Users override the defaults from a TOML file (:meth:`ErrorModel.from_toml`)::

    # kenomill reconciliation error model; all relative errors in percent
    rounding = true            # include printed rounding, sigma = unit / sqrt(12)
    [relative_pct]             # per kind of figure
    tonnes = 1.5
    concentrate_tonnes = 1.0
    assays = 2.0
    recoveries = 1.0
    contained_metal = 1.0
    [columns_pct]              # per column of reported_periods.csv, wins over the kind
    head_ag_gpt = 3.0

or on the command line (``kenomill reconcile --rel-pct assays=3 --rel-pct zn_lb=0.5``).

Sizes estimated from the data (the reconciliation's default)
-------------------------------------------------------------
:func:`estimate_sizes` estimates each kind's relative error by maximum likelihood from the
balance residuals of the base periods that pass both tests, the printed rounding kept as a
known floor, with profile-likelihood intervals, and says when a kind cannot be estimated
(it then keeps the size above). :func:`kenomill.reconcile.reconcile_dataset` uses it unless
``error_sizes="fixed"``; ``ErrorModel()`` itself (what :func:`resolve` gives for None, and
what the calibration uses) keeps the documented sizes above. On the packaged quarters the
estimated sizes are at or near the rounding floor: the printed figures agree with each
other to their printed digits (contained metal is computed from concentrate tonnes and
assays). That measures their mutual consistency, not their error against the truth:
sampling error carried consistently through the bookkeeping leaves no trace in a balance.

References
----------
Almasy, G.A., Mah, R.S.H., Estimation of measurement error variances from process data,
*Ind. Eng. Chem. Process Des. Dev.* 23 (1984) 779-784.
Morrison, R.D. (ed.), *An Introduction to Metal Balancing and Reconciliation*, JKMRC
Monograph Series in Mining and Mineral Processing 4, Brisbane, 2008.
Narasimhan, S., Jordache, C., *Data Reconciliation and Gross Error Detection*, Gulf,
2000, ch. 2 (measurement errors) and ch. 7 (gross errors).
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from types import MappingProxyType

import numpy as np

from kenomill import variables
from kenomill.errors import ValidationError

#: default relative standard deviation of each kind of figure [%]; reasons in the module doc
DEFAULT_RELATIVE_PCT: Mapping[str, float] = MappingProxyType(
    {
        "tonnes": 1.5,
        "concentrate_tonnes": 1.0,
        "assays": 2.0,
        "recoveries": 1.0,
        "contained_metal": 1.0,
    }
)

#: the kind of each reported figure (column of reported_periods.csv)
# tpd shares the feed tonnage's weighing error (correlated, see module doc): its kind is
# "tonnes" in the table of variables
KIND_OF: Mapping[str, str] = MappingProxyType(variables.kinds())

#: figures whose relative error is the same random variable as another figure's
CORRELATED_WITH: Mapping[str, str] = MappingProxyType({"tpd": "ore_processed_t"})

_KEYS = {"rounding", "relative_pct", "columns_pct"}


def _check_pct(where: str, name: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValidationError(f"{where}{name}: found {value!r}; a number of percent >= 0 is required")
    v = float(value)
    if not math.isfinite(v) or v < 0:
        raise ValidationError(f"{where}{name}: found {v:g} %; allowed: a finite number >= 0 %")
    return v


@dataclass(frozen=True)
class ErrorModel:
    """Standard deviations of the reported figures: rounding plus relative error.

    Parameters
    ----------
    relative_pct : mapping, optional
        Relative standard deviation [%] per kind (``tonnes``, ``concentrate_tonnes``,
        ``assays``, ``recoveries``, ``contained_metal``); kinds not given keep their
        default (:data:`DEFAULT_RELATIVE_PCT`).
    columns_pct : mapping, optional
        Relative standard deviation [%] per column of ``reported_periods.csv``; wins over
        the column's kind.
    rounding : bool
        Include the printed rounding, ``unit / sqrt(12)`` (default True).
    given : iterable of str, optional
        Kinds whose size was set on purpose (default: the kinds in ``relative_pct``). With
        estimated sizes (:func:`estimate_sizes`, the reconciliation's default) these keep
        their size and the other kinds are estimated. Not part of equality.
    """

    relative_pct: Mapping[str, float] = field(default_factory=dict)
    columns_pct: Mapping[str, float] = field(default_factory=dict)
    rounding: bool = True
    given: frozenset[str] | None = field(default=None, compare=False, repr=False)

    def __post_init__(self):
        rel = dict(DEFAULT_RELATIVE_PCT)
        for k, v in dict(self.relative_pct).items():
            if k not in DEFAULT_RELATIVE_PCT:
                raise ValidationError(
                    f"relative_pct: unknown kind {k!r}; allowed: {', '.join(DEFAULT_RELATIVE_PCT)}"
                )
            rel[k] = _check_pct("relative_pct.", k, v)
        cols = {}
        for k, v in dict(self.columns_pct).items():
            if k not in KIND_OF:
                raise ValidationError(f"columns_pct: unknown column {k!r}; allowed: {', '.join(KIND_OF)}")
            cols[k] = _check_pct("columns_pct.", k, v)
        if not isinstance(self.rounding, bool):
            raise ValidationError(f"rounding: found {self.rounding!r}; allowed: true or false")
        given = frozenset(dict(self.relative_pct) if self.given is None else self.given)
        bad = sorted(given - set(DEFAULT_RELATIVE_PCT))
        if bad:
            raise ValidationError(f"given: unknown kind(s) {bad}; allowed: {', '.join(DEFAULT_RELATIVE_PCT)}")
        object.__setattr__(self, "given", given)
        object.__setattr__(self, "relative_pct", MappingProxyType(rel))
        object.__setattr__(self, "columns_pct", MappingProxyType(cols))

    # -- construction ---------------------------------------------------------------
    @classmethod
    def from_mapping(cls, cfg: Mapping, where: str = "") -> ErrorModel:
        """Build from a mapping with keys ``rounding``, ``relative_pct``, ``columns_pct``."""
        unknown = set(cfg) - _KEYS
        if unknown:
            raise ValidationError(
                f"{where}unknown key(s) {sorted(unknown)}; allowed: {', '.join(sorted(_KEYS))}"
            )
        for k in ("relative_pct", "columns_pct"):
            if k in cfg and not isinstance(cfg[k], Mapping):
                raise ValidationError(f"{where}{k}: found {cfg[k]!r}; expected a table of name = percent")
        return cls(
            relative_pct=cfg.get("relative_pct", {}),
            columns_pct=cfg.get("columns_pct", {}),
            rounding=cfg.get("rounding", True),
        )

    @classmethod
    def from_toml(cls, path: str | os.PathLike) -> ErrorModel:
        """Read an error model from a TOML file (format in the module docstring)."""
        from kenomill.io import read_toml

        cfg = read_toml(path, what="error model")
        return cls.from_mapping(cfg, where=f"error model {os.fspath(path)!r}: ")

    def with_overrides(self, overrides: Mapping[str, float]) -> ErrorModel:
        """A copy with relative errors [%] changed; each key is a kind or a column name."""
        rel, cols = dict(self.relative_pct), dict(self.columns_pct)
        for k, v in overrides.items():
            if k in DEFAULT_RELATIVE_PCT:
                rel[k] = v
            elif k in KIND_OF:
                cols[k] = v
            else:
                raise ValidationError(
                    f"--rel-pct: unknown name {k!r}; allowed: a kind ({', '.join(DEFAULT_RELATIVE_PCT)}) "
                    f"or a column ({', '.join(KIND_OF)})"
                )
        given = (self.given or frozenset()) | {k for k in overrides if k in DEFAULT_RELATIVE_PCT}
        return replace(self, relative_pct=rel, columns_pct=cols, given=given)

    # -- use ------------------------------------------------------------------------
    def relative(self, column: str) -> float:
        """Relative standard deviation of ``column`` [fraction]."""
        if column in self.columns_pct:
            return self.columns_pct[column] / 100.0
        if column not in KIND_OF:
            raise ValidationError(f"column {column!r} has no kind; known columns: {', '.join(KIND_OF)}")
        return self.relative_pct[KIND_OF[column]] / 100.0

    def relative_sd(self, column: str, value) -> np.ndarray:
        """The measurement (non-rounding) part of the standard deviation [units of value]."""
        return self.relative(column) * np.abs(np.asarray(value, dtype=float))

    def rounding_sd(self, resolution) -> np.ndarray:
        """The rounding part: ``resolution / sqrt(12)``, or 0 when rounding is off."""
        r = np.asarray(resolution, dtype=float)
        return r / math.sqrt(12.0) if self.rounding else np.zeros_like(r)

    def sigma(self, column: str, value, resolution) -> np.ndarray:
        """Total standard deviation of ``column`` printed as ``value`` to ``resolution``."""
        return np.hypot(self.rounding_sd(resolution), self.relative_sd(column, value))

    def to_toml(self) -> str:
        """This model as a TOML file that :meth:`from_toml` reads back."""
        lines = [
            "# kenomill reconciliation error model (see kenomill.errormodel); relative errors in percent",
            f"rounding = {'true' if self.rounding else 'false'}  # printed rounding, sigma = unit / sqrt(12)",
            "",
            "[relative_pct]  # per kind of figure",
            *(f"{k} = {v!r}" for k, v in self.relative_pct.items()),
            "",
            "[columns_pct]  # per column of reported_periods.csv; wins over the kind",
            *(f"{k} = {v!r}" for k, v in self.columns_pct.items()),
        ]
        return "\n".join(lines) + "\n"

    def describe(self) -> str:
        """One line: the relative errors in force and whether rounding is included."""
        kinds = ", ".join(f"{k} {v:g} %" for k, v in self.relative_pct.items())
        cols = ", ".join(f"{k} {v:g} %" for k, v in self.columns_pct.items())
        return (
            f"relative: {kinds}"
            + (f"; columns: {cols}" if cols else "")
            + f"; rounding {'on' if self.rounding else 'off'}"
        )


def resolve(error_model) -> ErrorModel:
    """Accept None (defaults), an :class:`ErrorModel`, a mapping or a TOML path."""
    if error_model is None:
        return ErrorModel()
    if isinstance(error_model, ErrorModel):
        return error_model
    if isinstance(error_model, Mapping):
        return ErrorModel.from_mapping(error_model)
    if isinstance(error_model, str | os.PathLike):
        return ErrorModel.from_toml(error_model)
    raise ValidationError(
        f"error_model: found {type(error_model).__name__}; give None, an ErrorModel, "
        "a mapping or the path of a TOML file"
    )


# ---------------------------------------------------------------------------------------
# relative error sizes estimated from the data
# ---------------------------------------------------------------------------------------
#: how the reconciliation sizes the relative errors: from the data, or the documented defaults
ERROR_SIZES = ("estimated", "fixed")
#: kinds of figure, each with one relative error size
KINDS: tuple[str, ...] = tuple(DEFAULT_RELATIVE_PCT)
#: upper end of the search [%]: a kind the data cannot bound below this is not identifiable
MAX_RELATIVE_PCT = 30.0

#: variance inflation of a kind's estimate by the others above which only their sum is told
VIF_MAX = 1e4

STATUS_ESTIMATED = "estimated"
STATUS_FLOOR = "estimated: 0, at the rounding floor (no error beyond the printed digits)"
STATUS_NOT_IDENTIFIABLE = "not identifiable from the data: fixed size kept"
STATUS_GIVEN = "given: fixed"


@dataclass(frozen=True)
class SizeEstimate:
    """Relative error sizes per kind, estimated by maximum likelihood from consistent periods.

    Attributes
    ----------
    model : ErrorModel
        The error model to use: estimated sizes, and the starting (fixed) size for kinds
        that are given or that the data cannot identify.
    estimate_pct : mapping kind -> float
        Maximum-likelihood relative standard deviation [%] (NaN where not estimated).
    interval_pct : mapping kind -> (float, float)
        Profile-likelihood interval at ``level`` [%] (NaN where not computed or not estimated).
    status : mapping kind -> str
        One of the ``STATUS_*`` texts.
    periods : tuple of str
        The periods the sizes were fitted to (those that pass both tests with these sizes).
    excluded : tuple of str
        Base periods left out because they fail the global or a measurement test.
    rounds : tuple of tuple of str
        The sets of periods fitted, round by round, until the set was stable.
    n_residuals : int
        Independent balance residuals of the fitted periods (their degrees of freedom).
    chi2 : float
        Sum over the fitted periods of the linearised balances' chi2 at the estimate.
    level : float
        Confidence level of the intervals.
    """

    model: ErrorModel
    estimate_pct: Mapping[str, float]
    interval_pct: Mapping[str, tuple[float, float]]
    status: Mapping[str, str]
    periods: tuple[str, ...]
    excluded: tuple[str, ...]
    rounds: tuple[tuple[str, ...], ...]
    n_residuals: int
    chi2: float
    level: float = 0.95

    def describe(self) -> str:
        """One line: the sizes in force and where they come from."""
        parts = []
        for k in KINDS:
            v = self.model.relative_pct[k]
            st = self.status[k]
            if st.startswith("estimated"):
                lo, hi = self.interval_pct.get(k, (math.nan, math.nan))
                ci = f" [{lo:.2g}-{hi:.2g}]" if math.isfinite(lo) and math.isfinite(hi) else ""
                parts.append(f"{k} {v:.2g} %{ci}")
            elif st == STATUS_GIVEN:
                parts.append(f"{k} {v:g} % (given)")
            else:
                parts.append(f"{k} {v:g} % (fixed, not identifiable)")
        src = ", ".join(self.periods) if self.periods else "no consistent period"
        head = f"relative, ML on {src}"
        if not any(self.status[k].startswith("estimated") for k in KINDS):
            head = f"relative, none estimated (consistent periods: {src})"
        return (
            head
            + (f" ({self.level:.0%} profile-likelihood intervals)" if self.interval_pct else "")
            + ": "
            + ", ".join(parts)
            + (f"; columns: {', '.join(f'{k} {v:g} %' for k, v in self.model.columns_pct.items())}")
            * bool(self.model.columns_pct)
            + f"; rounding {'on' if self.model.rounding else 'off'}"
        )

    def to_frame(self):
        """One row per kind: size used, estimate, interval, status."""
        import pandas as pd

        return pd.DataFrame(
            {
                "kind": list(KINDS),
                "relative_pct": [self.model.relative_pct[k] for k in KINDS],
                "estimate_pct": [self.estimate_pct[k] for k in KINDS],
                "lower_pct": [self.interval_pct.get(k, (math.nan, math.nan))[0] for k in KINDS],
                "upper_pct": [self.interval_pct.get(k, (math.nan, math.nan))[1] for k in KINDS],
                "status": [self.status[k] for k in KINDS],
            }
        )


class _Likelihood:
    """Gaussian likelihood of the balance residuals of several periods in the sizes.

    For a period with linearised balances ``r = A e`` and figure errors ``e ~ N(0, V)``,
    ``r ~ N(0, S)`` with ``S = A V A'``; ``V`` is the printed rounding, the fixed relative
    errors and, for each free kind ``k``, ``theta_k`` (its relative variance [%^2]) times
    ``G_k G_k'`` where column ``j`` of ``G_k`` is one error source (a figure's value
    times its unit error; tpd shares ore processed's source). So
    ``S(theta) = S0 + sum_k theta_k M_k`` with ``M_k = (A G_k)(A G_k)'``, and
    ``-log L = 1/2 sum_p [log det S_p + r_p' S_p^-1 r_p]`` (Almasy & Mah, 1984).
    """

    def __init__(self, systems, start: ErrorModel, free: Sequence[str]):
        self.free = tuple(free)
        self.groups: dict[int, list] = {}  # rows per period -> lists of (S0, M, r)
        self.n = 0
        for cols, y, reso, A, r in systems:
            n = len(cols)
            rnd = start.rounding_sd(reso) ** 2
            pos = {c: i for i, c in enumerate(cols)}
            # error sources: (kind or None if fixed, fixed relative sd, vector over figures)
            srcs = []
            for i, c in enumerate(cols):
                if c in CORRELATED_WITH and CORRELATED_WITH[c] in pos:
                    continue  # joins its partner's source below
                g = np.zeros(n)
                g[i] = y[i]
                partners = [c2 for c2, p in CORRELATED_WITH.items() if p == c and c2 in pos]
                for c2 in partners:
                    g[pos[c2]] = y[pos[c2]]
                involved = [c, *partners]
                kind = KIND_OF[c]
                fixed = kind not in self.free or any(x in start.columns_pct for x in involved)
                if any(x in start.columns_pct for x in involved):
                    rel = start.relative(c)
                else:
                    rel = start.relative_pct[kind] / 100.0
                srcs.append((None if fixed else kind, rel, g))
            V0 = np.diag(rnd)
            for src_kind, rel, g in srcs:
                if src_kind is None:
                    V0 = V0 + rel**2 * np.outer(g, g)
            S0 = A @ V0 @ A.T
            M = np.zeros((len(self.free), A.shape[0], A.shape[0]))
            for src_kind, _, g in srcs:
                if src_kind is not None:
                    h = A @ g * 0.01  # theta in %^2
                    M[self.free.index(src_kind)] += np.outer(h, h)
            m = A.shape[0]
            self.groups.setdefault(m, []).append((S0, M, r))
            self.n += m
        self._arr = {
            m: (
                np.stack([g[0] for g in lst]),
                np.stack([g[1] for g in lst], axis=1),  # (K, P, m, m)
                np.stack([g[2] for g in lst]),
            )
            for m, lst in self.groups.items()
        }
        self.informative = np.array(
            [any(np.abs(M[k]).max() > 0 for S0, M, r in self._arr.values()) for k in range(len(self.free))]
        )

    def _parts(self, theta, info: bool):
        """nll, gradient and (optionally) expected information at ``theta``; nll inf if not PD."""
        theta = np.asarray(theta, dtype=float)
        K = theta.size
        val, g, F = 0.0, np.zeros(K), np.zeros((K, K))
        for S0, M, r in self._arr.values():
            S = S0 + np.tensordot(theta, M, axes=1)
            try:
                L = np.linalg.cholesky(S)
            except np.linalg.LinAlgError:
                return np.inf, g, F
            logdet = 2.0 * np.log(np.diagonal(L, axis1=1, axis2=2)).sum()
            Sinv = np.linalg.inv(S)
            w = np.einsum("pij,pj->pi", Sinv, r)
            val += 0.5 * (logdet + np.einsum("pi,pi->", r, w))
            SM = np.einsum("pij,kpjl->kpil", Sinv, M)  # S^-1 M_k
            g += 0.5 * (np.einsum("kpii->k", SM) - np.einsum("pi,kpij,pj->k", w, M, w))
            if info:
                F += 0.5 * np.einsum("kpij,lpji->kl", SM, SM)
        return val, g, F

    def nll(self, theta, grad: bool = True):
        """``-log L`` (without the constant) and its gradient in ``theta`` [%^2]."""
        v, g, _ = self._parts(theta, False)
        return (v, g) if grad else v

    def chi2(self, theta) -> float:
        """Sum of ``r' S^-1 r`` over the periods at ``theta``."""
        total = 0.0
        for S0, M, r in self._arr.values():
            S = S0 + np.tensordot(np.asarray(theta, dtype=float), M, axes=1)
            total += float(np.einsum("pi,pi->", r, np.linalg.solve(S, r[..., None])[..., 0]))
        return total

    def fit(self, theta0, fixed: Mapping[int, float] | None = None):
        """Maximise over ``theta`` in [0, MAX^2] with some entries held; returns (theta, nll).

        Fisher scoring (the expected information of variance components,
        ``1/2 tr(S^-1 M_j S^-1 M_k)``) with an active set at the bounds and step halving:
        a handful of iterations for five kinds, where a general optimiser spent most of
        its time in its own bookkeeping.
        """
        fixed = dict(fixed or {})
        K = len(self.free)
        top = MAX_RELATIVE_PCT**2
        theta = np.clip(np.asarray(theta0, dtype=float).copy(), 0.0, top)
        for k, v in fixed.items():
            theta[k] = v
        free = np.array([k not in fixed for k in range(K)])
        if K == 0:
            return theta, self.nll(theta, grad=False)
        if not free.any():
            return theta, self.nll(theta, grad=False)
        # start inside, away from the bounds, so that a kind at 0 can leave it
        theta[free] = np.clip(theta[free], 1e-3, top * 0.999)
        val, g, F = self._parts(theta, True)
        if not np.isfinite(val):
            theta[free] = np.minimum(np.maximum(theta[free], 1.0), top * 0.999)
            val, g, F = self._parts(theta, True)
        for _ in range(200):
            active = free & (((theta <= 0.0) & (g > 0)) | ((theta >= top) & (g < 0)))
            move = free & ~active
            if not move.any():
                break
            Fm = F[np.ix_(move, move)]
            Fm = Fm + 1e-12 * np.trace(Fm) / max(Fm.shape[0], 1) * np.eye(Fm.shape[0])
            try:
                d_m = -np.linalg.solve(Fm, g[move])
            except np.linalg.LinAlgError:
                d_m = -g[move]
            d = np.zeros(K)
            d[move] = d_m
            t, improved = 1.0, False
            for _ in range(40):
                cand = np.clip(theta + t * d, 0.0, top)
                v2, g2, F2 = self._parts(cand, True)
                if np.isfinite(v2) and v2 <= val + 1e-4 * t * float(g @ (cand - theta)) / max(t, 1e-300):
                    improved = True
                    break
                t *= 0.5
            if not improved:
                break
            step = np.abs(cand - theta).max()
            dv = val - v2
            theta, val, g, F = cand, v2, g2, F2
            if dv < 1e-12 and step < 1e-9 * max(1.0, np.abs(theta).max()):
                break
        return theta, float(val)


def _profile_interval(lik: _Likelihood, theta_hat, nll_hat: float, k: int, crit: float, held):
    """Profile-likelihood interval of the relative sd of free kind ``k`` [%]; hi is inf if unbounded.

    ``held``: entries of theta kept at their value throughout (kinds not identifiable).
    """
    from scipy.optimize import brentq

    s_hat = math.sqrt(max(theta_hat[k], 0.0))

    def dev(s):
        _, v = lik.fit(theta_hat, {**held, k: s * s})
        return 2.0 * (v - nll_hat) - crit

    lo = 0.0 if s_hat == 0.0 or dev(0.0) <= 0 else brentq(dev, 0.0, s_hat, xtol=1e-4)
    if dev(MAX_RELATIVE_PCT) <= 0:
        hi = math.inf
    else:
        hi = brentq(dev, max(s_hat, 1e-6), MAX_RELATIVE_PCT, xtol=1e-4)
    return lo, hi


def _unidentified(lik: _Likelihood, theta, v, status, free, held, crit) -> list[str]:
    """Kinds still estimated that the data cannot size: (1) not bounded from above below
    :data:`MAX_RELATIVE_PCT`, or (2) not told apart from the other kinds (expected
    information: the variance inflation of the estimate by the others above VIF_MAX means
    only their sum is estimated; the worst such kind is returned alone, the others may
    then be told apart)."""
    est_j = [j for j, k in enumerate(free) if k not in status]
    if not est_j:
        return []
    _, _, F = lik._parts(theta, True)
    Fe = F[np.ix_(est_j, est_j)]
    try:
        vif = np.diag(Fe) * np.diag(np.linalg.inv(Fe))
    except np.linalg.LinAlgError:
        vif = np.full(len(est_j), np.inf)
    vif = np.where(np.isfinite(vif) & (vif > 0), vif, np.inf)
    if (vif >= VIF_MAX).any():
        return [free[est_j[int(np.argmax(vif))]]]
    newly = []
    for j in est_j:
        _, v_top = lik.fit(theta, {**held, j: MAX_RELATIVE_PCT**2})
        if 2.0 * (v_top - v) <= crit:
            newly.append(free[j])
    return newly


def _fit_kinds(systems, start: ErrorModel, free: Sequence[str], crit: float):
    """Fit the free kinds on ``systems``; (sizes used, estimates, status, lik, theta, nll, held)."""
    free = list(free)
    theta_start = np.array([start.relative_pct[k] ** 2 for k in free])
    lik = _Likelihood(systems, start, free)
    status = {k: STATUS_GIVEN for k in KINDS if k not in free}
    for j, k in enumerate(free):  # kinds no residual of these periods depends on
        if not lik.informative[j]:
            status[k] = STATUS_NOT_IDENTIFIABLE
    while True:
        held = {j: theta_start[j] for j, k in enumerate(free) if k in status}
        theta, v = lik.fit(theta_start, held)
        newly = _unidentified(lik, theta, v, status, free, held, crit)
        if not newly:
            break
        for k in newly:
            status[k] = STATUS_NOT_IDENTIFIABLE
    est = dict.fromkeys(KINDS, math.nan)
    rel = dict(start.relative_pct)
    for j, k in enumerate(free):
        if k not in status:
            status[k] = STATUS_ESTIMATED if theta[j] > 1e-10 else STATUS_FLOOR
            est[k] = rel[k] = math.sqrt(max(theta[j], 0.0))
    return rel, est, status, lik, theta, v, held


def _screen(sub, base, systems, model, alpha, correction, with_tpd) -> list[str]:
    """Base periods that pass the global test with no figure flagged, with ``model``."""
    from kenomill.data import FIGURES
    from kenomill.reconcile import reconcile_dataset

    rec = reconcile_dataset(
        sub, error_model=model, error_sizes="fixed", alpha=alpha, correction=correction, with_tpd=with_tpd
    )
    flagged = np.zeros(rec.sizes["period"], dtype=bool)
    for c in FIGURES:
        if c + "_flagged" in rec:
            flagged |= rec[c + "_flagged"].values
    ok = ~rec.gross_error.values & ~flagged
    return [p for p, good in zip(base, ok, strict=True) if good and p in systems]


def _settle(current, screen, fit_on, start, max_rounds):
    """Fit on ``current``, re-test every base period, repeat until the consistent set is stable."""
    rounds: list[tuple[str, ...]] = []
    seen = set()
    for _ in range(max_rounds):
        rounds.append(tuple(current))
        seen.add(tuple(current))
        fitted = fit_on(current)
        if not current:
            return current, rounds, fitted
        consistent = screen(replace(start, relative_pct=fitted[0]))
        if consistent == current:
            return current, rounds, fitted
        if tuple(consistent) in seen:
            # the sets cycle: keep the periods consistent in both (the stricter choice)
            consistent = [p for p in consistent if p in current]
            if tuple(consistent) in seen:
                rounds.append(tuple(consistent))
                return consistent, rounds, fit_on(consistent)
        current = consistent
    raise ValidationError(
        f"error sizes: the set of consistent periods did not settle in {max_rounds} rounds "
        f"(last {', '.join(current)}); use --error-sizes fixed"
    )


_CACHE: dict = {}


def _cache_key(ds, start: ErrorModel, fixed, alpha, correction, with_tpd, intervals, level):
    from kenomill.reconcile import MILL_FIGURES

    parts = [repr((start, tuple(sorted(fixed)), alpha, correction, with_tpd, intervals, level))]
    parts.append(repr([str(p) for p in ds.period.values]))
    for c in (*MILL_FIGURES, "tpd", "days"):
        for v in (c, c + "_resolution"):
            if v in ds:
                parts.append(v + ds[v].attrs.get("units", ""))
                parts.append(np.asarray(ds[v].values, dtype=float).tobytes().hex())
    return "|".join(parts)


def _checked_size_args(start: ErrorModel, fixed: Sequence[str] | None, level, alpha) -> list[str]:
    """The kinds held fixed (sorted), after checking them, ``level`` and ``alpha``."""
    kinds = sorted((start.given or frozenset()) if fixed is None else fixed)
    for k in kinds:
        if k not in KINDS:
            raise ValidationError(f"fixed: unknown kind {k!r}; allowed: {', '.join(KINDS)}")
    if not (isinstance(level, int | float) and 0.0 < float(level) < 1.0):
        raise ValidationError(f"level: found {level!r}; allowed: a number strictly between 0 and 1")
    if isinstance(alpha, bool) or not (isinstance(alpha, int | float) and 0.0 < float(alpha) < 1.0):
        raise ValidationError(f"alpha: found {alpha!r}; allowed: a number strictly between 0 and 1")
    return kinds


def _base_systems(ds, start: ErrorModel, with_tpd: bool):
    """The base periods, and the linearised balance system of each one that has balances."""
    from kenomill.data import base_periods
    from kenomill.reconcile import _period_system

    # without dates no period can be told to be the sum of others: all are base periods
    dated = "period_start" in ds and "period_end" in ds
    base = list(base_periods(ds)) if dated else [str(p) for p in ds.period.values]
    systems = {}
    for p in base:
        s = _period_system(ds, p, start, with_tpd)
        if s is not None:
            systems[p] = s
    return base, systems


def estimate_sizes(
    periods=None,
    *,
    start=None,
    fixed: Sequence[str] | None = None,
    alpha: float = 0.05,
    correction: str = "sidak",
    with_tpd: bool = True,
    intervals: bool = True,
    level: float = 0.95,
    max_rounds: int = 20,
) -> SizeEstimate:
    """Estimate the relative error size of each kind of figure from the consistent periods.

    Maximum likelihood on the balance residuals of the base periods (the packaged
    quarters; aggregates are sums of them and would count the same errors twice), with
    the printed rounding as a known floor: ``sigma^2 = (unit/sqrt 12)^2 + (r_kind |y|)^2``,
    each ``r_kind >= 0``. Honest about which periods agree:

    1. test every base period with the starting sizes (``start``); the consistent ones
       pass the global test and have no figure flagged by the measurement test, both at
       the Sidak level over the base periods (so that consistent periods are all kept with
       probability ``1 - alpha``, and the sizes are not biased low by dropping the largest
       chi2s); all base periods if none passes (a gross error fitted along with the rest
       would inflate the sizes and hide itself, hence no fit on everything first);
    2. fit the sizes to the consistent periods;
    3. re-test every base period with the fitted sizes; refit and repeat until the set of
       consistent periods no longer changes (a cycle ends on the periods common to it).

    A kind whose profile likelihood stays within the ``level`` threshold of its maximum
    all the way up to :data:`MAX_RELATIVE_PCT` is **not identifiable** from the data: it
    keeps its starting (fixed) size and is reported as such; the others are refitted with
    it held. The intervals are profile-likelihood intervals (Wilks: deviance below the
    chi-square(1) quantile at ``level``; conservative at the 0 bound).

    Parameters
    ----------
    periods : xarray.Dataset, optional
        Periods shaped like :func:`kenomill.reported_periods` (default: the packaged ones).
    start : ErrorModel, mapping, path or None
        Sizes kept for kinds that are given or not identifiable, the rounding switch and
        per-column sizes (columns with their own size are not estimated). Default: the
        documented fixed sizes (:data:`DEFAULT_RELATIVE_PCT`).
    fixed : sequence of str, optional
        Kinds not to estimate (kept at ``start``'s size); default ``start.given``, the
        kinds the starting model sets on purpose (none for the documented defaults).
    alpha, correction
        Tests that decide which periods are consistent (see :mod:`kenomill.reconcile`).
    with_tpd : bool
        Include ``tpd x days = ore processed`` (carries rounding only, see module doc).
    intervals : bool
        Compute the profile-likelihood intervals (the point estimate and the
        identifiability check are always computed).
    level : float
        Confidence level of the intervals.
    max_rounds : int
        Rounds of fit and re-test allowed before giving up (ValidationError).

    Returns
    -------
    SizeEstimate

    References
    ----------
    Almasy, G.A., Mah, R.S.H., Estimation of measurement error variances from process data,
    *Ind. Eng. Chem. Process Des. Dev.* 23 (1984) 779-784.
    Narasimhan, S., Jordache, C., *Data Reconciliation and Gross Error Detection*, Gulf, 2000
    (estimation of measurement error variances from constraint residuals).
    """
    from kenomill.data import reported_periods

    start = resolve(start)
    ds = reported_periods() if periods is None else periods
    fixed = _checked_size_args(start, fixed, level, alpha)
    with_tpd = bool(with_tpd) and "tpd" in ds
    key = _cache_key(ds, start, fixed, alpha, correction, with_tpd, intervals, level)
    if key in _CACHE:
        return _CACHE[key]
    out = _estimate(ds, start, fixed, alpha, correction, with_tpd, intervals, level, max_rounds)
    if len(_CACHE) > 16:
        _CACHE.clear()
    _CACHE[key] = out
    return out


def _estimate(ds, start, fixed, alpha, correction, with_tpd, intervals, level, max_rounds) -> SizeEstimate:
    """:func:`estimate_sizes` once its arguments are checked (screen, fit, re-test, intervals)."""
    from scipy import stats

    base, systems = _base_systems(ds, start, with_tpd)
    free = [k for k in KINDS if k not in fixed]
    crit = float(stats.chi2.isf(1.0 - float(level), 1))
    sub = ds.sel(period=base)

    testable = [p for p in base if p in systems]
    # the screen is a test of every base period: Sidak over them, so that a set of
    # consistent periods loses one by chance with probability alpha (a per-period alpha
    # would drop about 2 alpha of them, the largest chi2s, and bias the sizes low)
    alpha_screen = -math.expm1(math.log1p(-alpha) / max(len(testable), 1))

    def screen(model) -> list[str]:
        return _screen(sub, base, systems, model, alpha_screen, correction, with_tpd)

    def fit_on(names):
        return _fit_kinds([systems[p] for p in names], start, free, crit)

    # round 0: the periods consistent with the starting sizes (a gross error fitted along
    # with the rest would inflate the sizes and hide itself); all of them if none is
    current = (screen(start) or testable) if testable else []
    current, rounds, (rel, est, status, lik, theta, v, held) = _settle(
        current, screen, fit_on, start, max_rounds
    )
    ivals = {}
    if intervals:
        for j, k in enumerate(lik.free):
            if status[k].startswith("estimated"):
                ivals[k] = _profile_interval(lik, theta, v, j, crit, held)
    excluded = tuple(p for p in base if p not in current)
    return SizeEstimate(
        model=replace(start, relative_pct=rel),
        estimate_pct=MappingProxyType(est),
        interval_pct=MappingProxyType(ivals),
        status=MappingProxyType(status),
        periods=tuple(current),
        excluded=excluded,
        rounds=tuple(rounds),
        n_residuals=lik.n,
        chi2=lik.chi2(theta) if lik.n else 0.0,
        level=float(level),
    )
