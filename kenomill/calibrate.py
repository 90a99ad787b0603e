"""Calibrating recovery models to the reported quarters, comparing them, and predicting.

Pipeline
--------
1. :func:`fit_data` turns the six reported quarters (raw, or reconciled by
   :mod:`kenomill.reconcile`) into arrays: the feed of each quarter (ore tonnes, head
   grades, calendar throughput, availability where reported) and the nine figures a
   model is fitted to (:data:`FIT_FIGURES`), each with a standard deviation from the
   error model (:class:`kenomill.errormodel.ErrorModel`: printed rounding combined with
   a relative error per kind of figure).
2. :func:`fit` minimises the weighted sum of squares ``sum ((model - reported) / sigma)^2``
   with :func:`scipy.optimize.least_squares` (trust-region reflective, bounds from
   :data:`kenomill.recovery.FULL_PARAMS`) from several starting points, plus optional
   Gaussian priors. It returns the optimum, the covariance and correlation of the
   parameters, identifiability warnings and the quarter-to-quarter scatter
   (:class:`FitResult`).
3. :func:`compare_models` fits every named model and tabulates AICc, BIC and the
   leave-one-quarter-out prediction errors per metal (:func:`leave_one_out`).
4. :func:`predict` routes a new feed through a :class:`~kenomill.calibration_file.Calibration`:
   a deterministic value (parameters at the optimum, no offsets) and 5 %/95 % prediction
   bounds from draws of the parameters (their covariance), of the availability (where not
   given) and of the quarter-to-quarter offsets (the calibrated scatter).

Assumptions stated once
-----------------------
* Operating throughput = reported calendar tpd / availability (:func:`operating_q_ratio`).
  The releases give availability only for 2011Q4 (96 %) and 2012Q2 (90 %). Elsewhere it is
  unknown: :data:`AVAILABILITY_PRIOR` = 92 +- 4 % (mean of the two reported values, with
  a standard deviation that covers both). In a fit of a throughput-dependent model each
  unknown availability is a nuisance parameter with that Gaussian prior; in a prediction
  it is drawn from the prior, and the deterministic value uses the prior mean.
* The nine fitted figures are not independent (``rec_pb ~ pbcon_t x pbcon_pb / (ore x head_pb)``):
  the model has six observable outputs per quarter (Ag, Pb, Zn to their concentrates and
  the two concentrate masses), so three of the nine figures are redundant. They are fitted
  all the same (each with its own printed rounding), which is what a reader of the
  releases sees; the information criteria use the number of independent outputs
  (6 per quarter) as the sample size, so redundancy does not buy parameters.
* The parameter covariance is ``(J' J)^-1`` scaled by ``max(1, chi2 / dof)``: when the
  model misses the quarters by more than the error model allows, the parameters are
  correspondingly less certain (as :func:`scipy.optimize.curve_fit` with
  ``absolute_sigma=False``).
* Scatter: with the parameters at the optimum, each quarter's five offsets
  (:data:`kenomill.recovery.OFFSET_NAMES`) are fitted to its figures; their root mean
  square, corrected for the degrees of freedom the fit used, is the scatter.

References
----------
Burnham, K.P., Anderson, D.R., 2002. Model Selection and Multimodel Inference, 2nd ed.
Springer (AICc).
Bates, D.M., Watts, D.G., 1988. Nonlinear Regression Analysis and Its Applications.
Wiley (covariance and profiles of nonlinear least squares).
Hastie, T., Tibshirani, R., Friedman, J., 2009. The Elements of Statistical Learning,
2nd ed., ch. 7 (effective number of parameters, cross-validation).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd
import xarray as xr
from scipy import optimize

from kenomill import _jacobian, budget, recovery, units, variables
from kenomill.calibration_file import Calibration, default_calibration
from kenomill.errormodel import resolve
from kenomill.errors import ValidationError
from kenomill.feed import check_feed, read_feed  # noqa: F401 - moved to kenomill.feed; kept here

#: the model `kenomill calibrate` fits when none is named: the best by prediction of held-out
#: quarters (exact leave-one-quarter-out and rolling origin, :func:`kenomill.validation.compare`),
#: ahead of both naive baselines; tests/test_validation.py checks that it still is
DEFAULT_MODEL = "cells_pb_tail_zn"

#: prior of the availability of quarters whose availability the releases do not give:
#: (mean, standard deviation) [fraction]. Mean of the two reported figures (96 % in
#: 2011Q4, 90 % in 2012Q2); the SD of 4 points covers both.
AVAILABILITY_PRIOR = (0.92, 0.04)
#: availability outside this range is refused / clipped in draws [fraction]
AVAILABILITY_RANGE = (0.5, 1.0)

#: the reported figures a model is fitted to, in this order (from :mod:`kenomill.variables`)
FIT_FIGURES = variables.FIT_FIGURES
#: independent model outputs per quarter behind the nine figures (see module docstring)
OUTPUTS_PER_QUARTER = 6

#: what a prediction gives per period, in the order of the PRED.csv columns
OUTPUTS = recovery.OUTPUTS
EXTRA_OUTPUTS = recovery.EXTRA_OUTPUTS
ALL_OUTPUTS = recovery.ALL_OUTPUTS
_OUT_INDEX = {name: i for i, name in enumerate(ALL_OUTPUTS)}
_FIT_INDEX = np.array([_OUT_INDEX[n] for n in FIT_FIGURES], dtype=np.int64)

#: units and long name of every output, from :mod:`kenomill.variables`
OUTPUT_ATTRS: dict[str, tuple[str, str]] = variables.units_and_long_names(ALL_OUTPUTS)
#: base units of :func:`kenomill.recovery.outputs_rows` -> the reported units of OUTPUT_ATTRS
_REPORTED = units.reported_factors([OUTPUT_ATTRS[name][0] for name in ALL_OUTPUTS])
_FIT_REPORTED = _REPORTED[_FIT_INDEX]

#: feed columns: required, then optional
FEED_COLUMNS = ("period", "ore_processed_t", "head_ag_gpt", "head_pb_pct", "head_zn_pct", "tpd")
FEED_OPTIONAL = ("days", "availability_pct")


def operating_q_ratio(tpd, availability):
    """Operating throughput over :data:`kenomill.recovery.REFERENCE_TPD` [-].

    ``tpd`` is the reported calendar rate (tonnes processed / calendar days) [t/d] and
    ``availability`` the share of time the mill runs [fraction]; the mill runs at
    ``tpd / availability`` while it runs, which sets the residence time.
    """
    return np.asarray(tpd, dtype=float) / np.asarray(availability, dtype=float) / recovery.REFERENCE_TPD


def mill_outputs(model, p_full, ore_t, head, q_ratio, offsets=None) -> np.ndarray:
    """Outputs (:data:`ALL_OUTPUTS`, in the units of :data:`OUTPUT_ATTRS`) for rows of feed;
    ``p_full`` [N_FULL] or [n, N_FULL].

    ``head`` are mass fractions [n, 3] (Ag, Pb, Zn); ``q_ratio`` as in
    :func:`kenomill.recovery.respond`; ``offsets`` [n, N_OFFSETS] or None.
    """
    spec = recovery.get_model(model)
    ore_t = np.ascontiguousarray(ore_t, dtype=float).reshape(-1)
    n = ore_t.shape[0]
    head = np.ascontiguousarray(head, dtype=float).reshape(n, 3)
    q = np.ascontiguousarray(np.broadcast_to(np.asarray(q_ratio, dtype=float), (n,)))
    p = np.ascontiguousarray(np.broadcast_to(np.asarray(p_full, dtype=float), (n, recovery.N_FULL)))
    if offsets is None:
        off = np.zeros((n, recovery.N_OFFSETS))
    else:
        off = np.ascontiguousarray(np.broadcast_to(np.asarray(offsets, dtype=float), (n, recovery.N_OFFSETS)))
    out = np.empty((n, len(ALL_OUTPUTS)))
    recovery.outputs_rows(spec.kind, spec.grade_dep, p, ore_t, head, q, off, out)
    out *= _REPORTED  # base units -> the reported ones (OUTPUT_ATTRS)
    return out


# ------------------------------------------------------------------------------ data
@dataclass(frozen=True)
class FitData:
    """The quarters a model is fitted to, as arrays.

    Attributes
    ----------
    periods : tuple of str
    ore_t : float64[n]  ore processed [t]
    head : float64[n, 3]  head grades of Ag, Pb, Zn [mass fraction]
    tpd : float64[n]  calendar throughput [t/d]
    availability : float64[n]  [fraction], NaN where not reported
    y : float64[n, 9]  reported :data:`FIT_FIGURES` (NaN = not reported)
    sigma : float64[n, 9]  their standard deviations
    source : str  "raw" or "reconciled"
    """

    periods: tuple[str, ...]
    ore_t: np.ndarray
    head: np.ndarray
    tpd: np.ndarray
    availability: np.ndarray
    y: np.ndarray
    sigma: np.ndarray
    source: str = "raw"
    error_model: str = ""
    #: figures left out as gross errors ("period.figure"), see :func:`exclude_figures`
    excluded: tuple[str, ...] = ()

    @property
    def n(self) -> int:
        return len(self.periods)

    def subset(self, idx) -> FitData:
        idx = np.asarray(idx)
        return replace(
            self,
            periods=tuple(np.asarray(self.periods)[idx]),
            ore_t=self.ore_t[idx],
            head=self.head[idx],
            tpd=self.tpd[idx],
            availability=self.availability[idx],
            y=self.y[idx],
            sigma=self.sigma[idx],
        )


def fit_data(data: str = "raw", error_model=None, periods=None) -> FitData:
    """The reported base periods (packaged: the quarters) as :class:`FitData`.

    Parameters
    ----------
    data : {"raw", "reconciled"}
        Fit to the figures as printed, or to the reconciled figures of
        :func:`kenomill.reconcile.reconciled_periods` (standard deviations from its
        ``<col>_sd`` variables).
    error_model : ErrorModel, mapping or TOML path, optional
        Standard deviations of raw figures (default :class:`kenomill.errormodel.ErrorModel`).
    periods : xarray.Dataset or sequence of str, optional
        The periods (:func:`kenomill.read_periods`; its base periods are fitted, sums of
        them are not counted twice), or names of packaged quarters to use (default: the
        packaged six quarters).
    """
    import xarray as xr

    from kenomill.data import QUARTERS, base_periods, reported_periods

    if data not in ("raw", "reconciled"):
        raise ValidationError(f"data: found {data!r}; allowed: raw, reconciled")
    em = resolve(error_model)
    given = periods if isinstance(periods, xr.Dataset) else None
    if given is not None:
        names = list(base_periods(given))
        periods = None
    if data == "raw":
        ds = reported_periods("quarter") if given is None else given.sel(period=names)
    else:
        try:
            from kenomill.reconcile import reconciled_periods
        except ImportError as exc:
            raise ValidationError(
                f"data: 'reconciled' needs kenomill.reconcile.reconciled_periods, not available ({exc})"
            ) from None
        # the documented fixed sizes, as before issue 10: the reconciliation's estimated sizes
        # (its default since) are opted into here only by the calibration's owner (contract C2)
        ds = reconciled_periods(periods=given, error_sizes="fixed")
    want = list((QUARTERS if given is None else names) if periods is None else periods)
    have = [str(p) for p in ds.period.values]
    unknown = [p for p in want if p not in have]
    if unknown:
        raise ValidationError(f"periods: unknown {unknown}; allowed: {', '.join(have)}")
    ds = ds.sel(period=want)
    needed = ("ore_processed_t", "head_ag_gpt", "head_pb_pct", "head_zn_pct", "tpd")
    missing = [
        f"{p}.{c}" for c in needed for p, v in zip(want, ds[c].values, strict=True) if not np.isfinite(v)
    ]
    if missing:
        raise ValidationError(
            f"periods: calibration needs {', '.join(needed)} in each base period (the feed); "
            f"not reported: {', '.join(missing)}"
        )
    y = np.stack([ds[c].values.astype(float) for c in FIT_FIGURES], axis=1)
    if data == "raw":
        sig = np.stack([em.sigma(c, ds[c].values, ds[c + "_resolution"].values) for c in FIT_FIGURES], axis=1)
    else:
        sig = np.stack([ds[c + "_sd"].values.astype(float) for c in FIT_FIGURES], axis=1)
        # an exactly constrained figure would get infinite weight; floor at its rounding
        floor = np.stack([em.rounding_sd(_resolution_or_one(ds, c)) for c in FIT_FIGURES], axis=1)
        sig = np.maximum(sig, np.maximum(floor, 1e-9 * np.abs(y)))
    head = np.stack(
        [
            units.to_fraction(ds["head_ag_gpt"].values, "g/t"),
            units.to_fraction(ds["head_pb_pct"].values, "%"),
            units.to_fraction(ds["head_zn_pct"].values, "%"),
        ],
        axis=1,
    )
    avail = ds["availability_pct"].values.astype(float) / 100.0 if "availability_pct" in ds else np.nan
    return FitData(
        periods=tuple(want),
        ore_t=ds["ore_processed_t"].values.astype(float),
        head=head,
        tpd=ds["tpd"].values.astype(float),
        availability=np.broadcast_to(avail, (len(want),)).astype(float),
        y=y,
        sigma=sig,
        source=data,
        error_model=em.describe() if data == "raw" else "reconciled <col>_sd",
    )


def exclude_figures(data: FitData, flags) -> FitData:
    """``data`` without the figures ``flags`` marks (bool (n, 9), or the DataArray of
    :func:`kenomill.reconcile.flagged_figures`): they become "not reported" (NaN), so that
    gross errors the reconciliation finds drive neither the fit nor the posterior."""
    import xarray as xr

    if isinstance(flags, xr.DataArray):
        f = flags.sel(period=list(data.periods), figure=list(FIT_FIGURES)).values.astype(bool)
    else:
        f = np.asarray(flags, dtype=bool)
    if f.shape != data.y.shape:
        raise ValidationError(f"flags: found shape {f.shape}; allowed: {data.y.shape} (periods x figures)")
    names = tuple(
        f"{p}.{c}" for i, p in enumerate(data.periods) for j, c in enumerate(FIT_FIGURES) if f[i, j]
    )
    return replace(data, y=np.where(f, np.nan, data.y), excluded=data.excluded + names)


def _resolution_or_one(ds, col):
    name = col + "_resolution"
    return ds[name].values if name in ds else np.ones(ds.sizes["period"])


def synthetic_data(
    model,
    theta,
    feed: FitData,
    *,
    scatter=None,
    error_model=None,
    availability=None,
    seed=0,
    base=None,
    noise: bool = True,
    resolution=1.0,
) -> FitData:
    """Quarters generated by ``model`` at ``theta`` for the feeds of ``feed`` (tests, studies).

    Offsets are drawn from N(0, ``scatter``); with ``noise`` every figure gets the
    relative measurement error of ``error_model`` (Gaussian) and is rounded to
    ``resolution`` (one unit of the last printed digit; a scalar or [n, 9]). ``sigma``
    follows the error model. ``availability`` [fraction, n] is the true availability
    (default: the feed's where given, else the prior mean); the returned data keep only
    the feed's reported availabilities, so a fit sees what it would see in the releases.
    """
    spec = recovery.get_model(model)
    rng = np.random.default_rng(seed)
    em = resolve(error_model)
    n = feed.n
    a_true = np.where(np.isnan(feed.availability), AVAILABILITY_PRIOR[0], feed.availability)
    if availability is not None:
        a_true = np.broadcast_to(np.asarray(availability, dtype=float), (n,))
    off = np.zeros((n, recovery.N_OFFSETS))
    if scatter is not None:
        off = rng.standard_normal((n, recovery.N_OFFSETS)) * np.asarray(scatter, dtype=float)
    out = mill_outputs(
        spec, spec.full(theta, base), feed.ore_t, feed.head, operating_q_ratio(feed.tpd, a_true), off
    )
    y = out[:, _FIT_INDEX].copy()
    res = np.broadcast_to(np.asarray(resolution, dtype=float), y.shape)
    if noise:
        rel = np.array([em.relative(c) for c in FIT_FIGURES])
        y = y * (1.0 + rel * rng.standard_normal(y.shape))
        y = np.round(y / res) * res
    sig = np.stack(
        [em.sigma(c, y[:, j], res[:, j] if noise else 0.0) for j, c in enumerate(FIT_FIGURES)], axis=1
    )
    sig = np.maximum(sig, 1e-9 * np.abs(y) + 1e-12)
    return replace(feed, y=y, sigma=sig, source="synthetic", error_model=em.describe())


def design_feed(n: int, *, seed: int = 0, tpd=(150.0, 400.0), availability=0.92) -> FitData:
    """``n`` made-up quarterly feeds spanning the reported grades and a throughput range (for studies).

    Ore 15-25 kt, Ag 600-1000 g/t, Pb 7-13 %, Zn 4-8 %, calendar tpd uniform over ``tpd``,
    availability known (``availability``, or NaN for unknown). Figures are left empty (NaN):
    fill them with :func:`synthetic_data`.
    """
    rng = np.random.default_rng(seed)
    head = np.stack(
        [rng.uniform(600, 1000, n) * 1e-6, rng.uniform(7, 13, n) * 1e-2, rng.uniform(4, 8, n) * 1e-2], axis=1
    )
    return FitData(
        periods=tuple(f"S{i:02d}" for i in range(n)),
        ore_t=rng.uniform(15000, 25000, n),
        head=head,
        tpd=rng.uniform(*tpd, n),
        availability=np.full(n, availability, dtype=float),
        y=np.full((n, len(FIT_FIGURES)), np.nan),
        sigma=np.ones((n, len(FIT_FIGURES))),
        source="synthetic",
    )


# ------------------------------------------------------------------------------- fit
@dataclass
class FitResult:
    """Outcome of :func:`fit`. Parameters in the order of ``spec.free``."""

    spec: recovery.ModelSpec
    data: FitData
    theta: np.ndarray
    cov: np.ndarray
    base: np.ndarray
    availability: np.ndarray  # used per quarter [fraction] (fitted where unknown)
    availability_fitted: np.ndarray  # bool mask: nuisance parameter
    chi2: float  # weighted sum of squares of the data residuals
    chi2_prior: float
    n_obs: int  # data residuals
    k_eff: float  # effective number of parameters (trace of the hat matrix)
    fitted: np.ndarray  # model values of FIT_FIGURES [n, 9]
    scatter: np.ndarray
    offsets: np.ndarray  # per-quarter offsets [n, N_OFFSETS]
    start_costs: np.ndarray
    at_bound: np.ndarray  # bool per parameter
    not_identified: np.ndarray  # bool per parameter: in a direction the data do not move
    warnings: list[str] = field(default_factory=list)
    priors: dict = field(default_factory=dict)
    availability_prior: tuple[float, float] = AVAILABILITY_PRIOR
    scale: float = 1.0  # estimated scale of the weighted data residuals (>= 1)
    #: correlation of the offsets within a quarter (shrunk toward identity)
    scatter_corr: np.ndarray = field(default_factory=lambda: np.eye(recovery.N_OFFSETS))

    @property
    def k(self) -> int:
        return len(self.theta)

    @property
    def se(self) -> np.ndarray:
        return np.sqrt(np.clip(np.diag(self.cov), 0.0, None))

    @property
    def corr(self) -> np.ndarray:
        s = self.se
        with np.errstate(divide="ignore", invalid="ignore"):
            c = self.cov / np.outer(s, s)
        c[~np.isfinite(c)] = 0.0
        np.fill_diagonal(c, 1.0)
        return c

    @property
    def residuals(self) -> np.ndarray:
        """Weighted residuals (fitted - reported) / sigma [n, 9]."""
        return (self.fitted - self.data.y) / self.data.sigma

    @property
    def n_eff(self) -> int:
        """Sample size of the information criteria: independent outputs behind the figures."""
        per_q = np.isfinite(self.data.y).sum(1)
        return int(np.minimum(per_q, OUTPUTS_PER_QUARTER).sum())

    def _ll_terms(self):
        n = self.n_eff
        k = self.k_eff + 1.0  # + the residual scale
        # scale the weighted sum of squares to n independent outputs
        rss = self.chi2 * n / self.n_obs
        return n, k, rss

    @property
    def aicc(self) -> float:
        n, k, rss = self._ll_terms()
        aic = n * math.log(rss / n) + 2 * k
        return aic + 2 * k * (k + 1) / max(n - k - 1, 1e-9)

    @property
    def bic(self) -> float:
        n, k, rss = self._ll_terms()
        return n * math.log(rss / n) + k * math.log(n)

    @property
    def n_same_optimum(self) -> int:
        best = self.start_costs.min()
        return int((self.start_costs <= best * (1 + 1e-4) + 1e-9).sum())

    def parameters(self) -> pd.DataFrame:
        """Table of the free parameters: value, standard error, bounds, units, meaning."""
        rows = []
        for j, name in enumerate(self.spec.free):
            prm = recovery.FULL_PARAMS[recovery.PARAM_INDEX[name]]
            rows.append(
                {
                    "parameter": name,
                    "value": self.theta[j],
                    "se": np.inf if self.not_identified[j] else self.se[j],
                    "lo": prm.lo,
                    "hi": prm.hi,
                    "units": prm.units,
                    "at_bound": bool(self.at_bound[j]),
                    "identified": not bool(self.not_identified[j]),
                    "meaning": prm.doc,
                }
            )
        return pd.DataFrame(rows)

    def table(self) -> pd.DataFrame:
        """Per quarter and figure: reported, fitted, residual and weighted residual."""
        rows = []
        for i, p in enumerate(self.data.periods):
            for j, c in enumerate(FIT_FIGURES):
                y = self.data.y[i, j]
                rows.append(
                    {
                        "period": p,
                        "figure": c,
                        "reported": y,
                        "fitted": self.fitted[i, j],
                        "residual": self.fitted[i, j] - y,
                        "z": (self.fitted[i, j] - y) / self.data.sigma[i, j],
                    }
                )
        return pd.DataFrame(rows)

    def to_calibration(self) -> Calibration:
        """The fit as a :class:`~kenomill.calibration_file.Calibration` (what files store)."""
        meta = {
            "periods": list(self.data.periods),
            "error_model": self.data.error_model,
            "availability_prior": list(self.availability_prior),
            "availability_used": {
                p: float(a) for p, a in zip(self.data.periods, self.availability, strict=True)
            },
            "chi2": self.chi2,
            "n_obs": self.n_obs,
            "n_eff": self.n_eff,
            "k_eff": self.k_eff,
            "aicc": self.aicc,
            "bic": self.bic,
            "priors": {k: list(v) for k, v in self.priors.items()},
            "warnings": list(self.warnings),
            "scatter_dof": self.scatter_dof,
            "scatter_corr": self.scatter_corr.tolist(),
            "reference_tpd": recovery.REFERENCE_TPD,
        }
        return Calibration(
            model=self.spec.name,
            theta=self.theta,
            cov=self.cov,
            base=self.base,
            scatter=self.scatter,
            data=self.data.source,
            meta=meta,
        )

    @property
    def scatter_dof(self) -> float:
        return float(self.data.n * (1.0 - self.k_eff / max(self.n_eff, 1)))


def _split_x(x, k):
    return x[:k], x[k:]


def _residual_fn(spec, data: FitData, base, nuis_idx, priors, a_prior, scale=1.0):
    """The residuals of ``x`` (free parameters, then the nuisance availabilities) and their
    Jacobian: ``(fun, jac, n_obs)``. ``jac(x)`` is exact: the derivatives of the mill outputs
    from one :func:`kenomill._jacobian.outputs_jacobian_rows` call (forward-mode
    differentiation of the response), through the chain rule."""
    mask = np.isfinite(data.y) & np.isfinite(data.sigma)
    k = len(spec.free)
    free_idx = spec.free_index
    prior_idx = np.array([spec.free.index(n) for n in priors], dtype=int)
    prior_mu = np.array([priors[n][0] for n in priors], dtype=float)
    prior_sd = np.array([priors[n][1] for n in priors], dtype=float)
    sig = data.sigma * scale
    n = data.n
    avail0 = np.where(np.isnan(data.availability), a_prior[0], data.availability)
    off = np.zeros((n, recovery.N_OFFSETS))
    out = np.empty((n, len(ALL_OUTPUTS)))
    dout = np.empty((n, len(ALL_OUTPUTS), _jacobian.N_GRAD))

    def rows(x):
        avail = avail0.copy()
        avail[nuis_idx] = x[k:]
        p_rows = np.tile(base, (n, 1))
        p_rows[:, free_idx] = x[:k]
        return avail, p_rows, data.tpd / avail / recovery.REFERENCE_TPD

    def fun(x):
        theta, a_nuis = x[:k], x[k:]
        _, p_rows, q = rows(x)
        recovery.outputs_rows(spec.kind, spec.grade_dep, p_rows, data.ore_t, data.head, q, off, out)
        parts = [((out[:, _FIT_INDEX] * _FIT_REPORTED - data.y) / sig)[mask]]
        if len(nuis_idx):
            parts.append((a_nuis - a_prior[0]) / a_prior[1])
        if len(prior_idx):
            parts.append((theta[prior_idx] - prior_mu) / prior_sd)
        return np.concatenate(parts)

    def jac(x):
        avail, p_rows, q = rows(x)
        _jacobian.outputs_jacobian_rows(
            spec.kind, spec.grade_dep, p_rows, data.ore_t, data.head, q, off, dout
        )
        d = dout[:, _FIT_INDEX, :] * (_FIT_REPORTED / sig)[:, :, None]  # d residual / d (p, q)
        j_data = np.zeros((n, len(FIT_FIGURES), x.size))
        j_data[:, :, :k] = d[:, :, free_idx]
        for c, i in enumerate(nuis_idx):  # q = tpd / (availability REFERENCE_TPD): dq/da = -q / a
            j_data[i, :, k + c] = d[i, :, _jacobian.G_Q] * (-q[i] / avail[i])
        parts = [j_data[mask]]
        if len(nuis_idx):
            j_a = np.zeros((len(nuis_idx), x.size))
            j_a[np.arange(len(nuis_idx)), k + np.arange(len(nuis_idx))] = 1.0 / a_prior[1]
            parts.append(j_a)
        if len(prior_idx):
            j_p = np.zeros((len(prior_idx), x.size))
            j_p[np.arange(len(prior_idx)), prior_idx] = 1.0 / prior_sd
            parts.append(j_p)
        return np.concatenate(parts, axis=0)

    return fun, jac, int(mask.sum())


def _starts(spec, n_starts, rng, x_lo, x_hi, x_default):
    starts = [np.clip(x_default, x_lo, x_hi)]
    names = list(spec.free)
    for _ in range(max(n_starts - 1, 0)):
        x = x_default.copy()
        for j in range(len(x_lo)):
            name = names[j] if j < len(names) else "availability"
            lo, hi = x_lo[j], x_hi[j]
            if name.startswith("ktau"):
                # rate x residence time spans decades: draw log-uniformly over 0.3-30
                x[j] = math.exp(rng.uniform(math.log(max(lo, 0.3)), math.log(min(hi, 30.0))))
            elif name == "availability":
                x[j] = x_default[j]
            else:
                # stay away from the edges: a start on a bound stalls trust-region methods
                x[j] = rng.uniform(lo + 0.05 * (hi - lo), hi - 0.05 * (hi - lo))
        starts.append(x)
    return starts


def _check_priors(spec, priors):
    priors = dict(priors or {})
    for name, val in priors.items():
        if name not in spec.free:
            raise ValidationError(
                f"priors: {name!r} is not a free parameter of model {spec.name!r}; "
                f"allowed: {', '.join(spec.free)}"
            )
        try:
            mu, sd = (float(v) for v in val)
        except (TypeError, ValueError):
            raise ValidationError(f"priors.{name}: found {val!r}; expected (mean, sd)") from None
        if not (math.isfinite(mu) and math.isfinite(sd) and sd > 0):
            raise ValidationError(f"priors.{name}: found mean {mu:g}, sd {sd:g}; allowed: finite, sd > 0")
        priors[name] = (mu, sd)
    return priors


def fit(
    model,
    data: FitData | None = None,
    *,
    starts: int = 6,
    seed: int = 0,
    priors=None,
    availability_prior=AVAILABILITY_PRIOR,
    x0=None,
    fix_availability: bool = False,
    scatter: bool = True,
) -> FitResult:
    """Weighted nonlinear least squares of ``model`` to quarters.

    Parameters
    ----------
    model : str or ModelSpec
        A name of :data:`kenomill.recovery.MODELS`.
    data : FitData, optional
        Default: the six raw quarters (:func:`fit_data`).
    starts : int
        Number of starting points: the defaults of :data:`~kenomill.recovery.FULL_PARAMS`
        plus ``starts - 1`` random ones within the bounds (``ktau`` log-uniform).
    seed : int
        Seed of the random starts.
    priors : dict, optional
        ``{name: (mean, sd)}`` Gaussian priors on free parameters [their units].
    availability_prior : (float, float)
        Mean and SD [fraction] of availabilities the data do not give. For models whose
        recovery depends on throughput, each unknown availability is a nuisance parameter
        with this prior; otherwise availability does not enter.
    x0 : array, optional
        An extra starting point for the free parameters (tried first).
    fix_availability : bool
        Hold unknown availabilities at the prior mean instead of fitting them.
    scatter : bool
        Estimate the quarter-to-quarter scatter (default); leave-one-out skips it.

    Returns
    -------
    FitResult
    """
    spec = recovery.get_model(model)
    data = fit_data() if data is None else data
    priors = _check_priors(spec, priors)
    a_prior = (float(availability_prior[0]), float(availability_prior[1]))
    base = spec.base_full()
    kinetic = spec.kind != recovery.KIN_NONE
    nuis_idx = (
        np.flatnonzero(np.isnan(data.availability)) if kinetic and not fix_availability else np.array([], int)
    )
    lo, hi = spec.bounds()
    x_lo = np.concatenate([lo, np.full(len(nuis_idx), AVAILABILITY_RANGE[0])])
    x_hi = np.concatenate([hi, np.full(len(nuis_idx), AVAILABILITY_RANGE[1])])
    x_def = np.concatenate([spec.defaults(), np.full(len(nuis_idx), a_prior[0])])
    start_list = _starts(spec, starts, np.random.default_rng(seed), x_lo, x_hi, x_def)
    if x0 is not None:
        k = len(spec.free)
        start_list.insert(0, np.clip(np.concatenate([np.asarray(x0, float), x_def[k:]]), x_lo, x_hi))
    names = list(spec.free) + [f"availability[{data.periods[i]}]" for i in nuis_idx]
    problem = (spec, data, base, nuis_idx, priors, a_prior)
    x, funs, n_obs, scale, costs = _solve_multistart(problem, start_list, x_lo, x_hi, names)
    result = _fit_result(problem, x, funs, n_obs, scale, costs, x_lo, x_hi, names)
    if scatter:
        result.offsets, result.scatter = _scatter(result)
        result.scatter_corr = shrunk_correlation(result.offsets)
    return result


def _least_squares(funs, xs, x_lo, x_hi):
    """scipy's trust-region reflective least squares from ``xs``, with ``funs = (fun, jac)`` of
    :func:`_residual_fn` (the exact Jacobian of one numba call, not scipy's differences of m calls)."""
    fun, jac = funs
    # keep starts strictly inside the bounds (least_squares requires it)
    xs = np.clip(xs, x_lo + 1e-9 * (x_hi - x_lo), x_hi - 1e-9 * (x_hi - x_lo))
    return optimize.least_squares(
        fun,
        xs,
        jac=jac,
        bounds=(x_lo, x_hi),
        method="trf",
        x_scale="jac",
        xtol=1e-12,
        ftol=1e-12,
        gtol=1e-10,
        max_nfev=4000,
    )


def _solve_multistart(problem, start_list, x_lo, x_hi, names):
    """The optimum from every start at the estimated residual scale: (x, (fun, jac), n_obs, scale, costs).

    The error model fixes the relative weights of the figures; the quarters scatter more
    than it allows, so the overall scale s of the data residuals is estimated
    (s^2 = chi2 / (n - k_eff), at least 1). Priors (availability, parameters) are absolute
    and must be weighed against residuals of the right size: fit at s = 1 from the
    first start, estimate s, then run every start at that s, and refine once if s moved.
    """
    scale = 1.0
    fun, jac, n_obs = _residual_fn(*problem, scale)
    x = _least_squares((fun, jac), start_list[0], x_lo, x_hi).x
    for _ in range(3):
        r = fun(x)
        chi2 = float(np.sum(r[:n_obs] ** 2)) * scale**2
        _, k_eff, _, _ = _covariance(jac(x), n_obs, x, x_lo, x_hi, names)
        new_scale = math.sqrt(max(1.0, chi2 / max(n_obs - k_eff, 1.0)))
        if abs(new_scale - scale) <= 0.02 * scale:
            break
        scale = new_scale
        fun, jac, _ = _residual_fn(*problem, scale)
        x = _least_squares((fun, jac), x, x_lo, x_hi).x
    best, costs = None, []
    for xs in [x, *start_list]:
        res = _least_squares((fun, jac), xs, x_lo, x_hi)
        costs.append(2.0 * res.cost)
        if best is None or res.cost < best.cost:
            best = res
    costs = costs[1:] if len(start_list) > 1 else costs
    return best.x, (fun, jac), n_obs, scale, costs


def _fit_result(problem, x, funs, n_obs, scale, costs, x_lo, x_hi, names) -> FitResult:
    """The :class:`FitResult` at the optimum ``x``: covariance, availability, flags, warnings."""
    spec, data, base, nuis_idx, priors, a_prior = problem
    k = len(spec.free)
    fun, jac = funs
    r = fun(x)
    chi2 = float(np.sum(r[:n_obs] ** 2)) * scale**2
    chi2_prior = float(np.sum(r[n_obs:] ** 2))
    J = jac(x)
    theta, a_nuis = _split_x(x, k)
    avail = data.availability.copy()
    avail[nuis_idx] = a_nuis
    avail = np.where(np.isnan(avail), a_prior[0], avail)
    cov_x, k_eff, warns, flat = _covariance(J, n_obs, x, x_lo, x_hi, names)
    span = x_hi - x_lo
    at_bound = (np.abs(x - x_lo) < 1e-6 * span) | (np.abs(x_hi - x) < 1e-6 * span)
    fitted = mill_outputs(
        spec, spec.full(theta, base), data.ore_t, data.head, data.tpd / avail / recovery.REFERENCE_TPD
    )[:, _FIT_INDEX]
    result = FitResult(
        spec=spec,
        data=data,
        theta=theta,
        cov=cov_x[:k, :k],
        base=base,
        availability=avail,
        availability_fitted=np.isin(np.arange(data.n), nuis_idx),
        chi2=chi2,
        chi2_prior=chi2_prior,
        n_obs=n_obs,
        k_eff=k_eff,
        fitted=fitted,
        scatter=np.zeros(recovery.N_OFFSETS),
        offsets=np.zeros((data.n, recovery.N_OFFSETS)),
        start_costs=np.array(costs),
        at_bound=at_bound[:k],
        not_identified=flat[:k],
        warnings=warns,
        priors=priors,
        availability_prior=a_prior,
    )
    nbest = result.n_same_optimum
    if nbest < len(costs):
        result.warnings.append(
            f"{nbest} of {len(costs)} starting points reached the best optimum (chi2 {min(costs):.4g}); "
            f"others stopped at chi2 {sorted(costs)[nbest] if nbest < len(costs) else np.nan:.4g} and above"
        )
    result.scale = scale
    return result


def _covariance_with_bounds(J, span, at_bound, names, warns):
    """The covariance for draws when parameters sit at a bound (warnings appended to ``warns``).

    The covariance of everything else is conditional on the pinned value and too narrow
    when the two trade off (rmax = 1 at its bound against k tau): the covariance used for
    draws keeps the pinned parameters in, linearised one-sidedly at the bound -- unless the
    data hardly move them there (k tau at its upper bound, where recovery no longer
    changes): such a parameter stays held, or its huge variance would swamp the draws of
    every parameter it correlates with.
    """
    m = J.shape[1]
    keep = np.ones(m, dtype=bool)
    for _ in range(m):
        Ja = J[:, keep] * span[keep]
        wa, va = np.linalg.eigh(Ja.T @ Ja)
        nulla = wa <= 1e-9 * max(wa.max(), 1e-300)
        inv_a = np.where(nulla, 0.0, 1.0 / np.where(nulla, 1.0, wa))
        cov_k = ((va * inv_a) @ va.T) * np.outer(span[keep], span[keep])
        se_k = np.sqrt(np.clip(np.diag(cov_k), 0.0, None))
        loose = at_bound[keep] & (se_k > 0.25 * span[keep])
        if not loose.any():
            break
        keep[np.flatnonzero(keep)[loose]] = False
    cov = np.zeros((m, m))
    cov[np.ix_(keep, keep)] = cov_k
    for j in np.flatnonzero(at_bound & ~keep):
        if not names[j].startswith("availability"):
            warns.append(f"{names[j]} barely moves the fit at its bound: held there in draws")
    return cov


def _covariance(J, n_obs, x, lo, hi, names):
    """Covariance of the estimates, effective parameter count and identifiability warnings.

    ``J`` is the Jacobian of the residuals already divided by their scale, so
    ``(J' J)^-1`` is the covariance. Identifiability is judged on the Jacobian scaled by
    each parameter's range (the change in the residuals when a parameter sweeps its
    whole range): a direction along which even that moves nothing is not identifiable.
    """
    warns = []
    m = J.shape[1]
    span = hi - lo
    at_bound = (np.abs(x - lo) < 1e-6 * span) | (np.abs(hi - x) < 1e-6 * span)
    free = ~at_bound
    cov = np.zeros((m, m))
    for j in np.flatnonzero(at_bound):
        if not names[j].startswith("availability"):
            side = "upper" if abs(hi[j] - x[j]) < abs(x[j] - lo[j]) else "lower"
            warns.append(
                f"{names[j]} is at its {side} bound ({x[j]:.4g}): its uncertainty is the one-sided "
                "linearisation, and draws are folded at the bound (Calibration.draw_theta)"
            )
    Js = J[:, free] * span[free]
    fnames = [n for n, f in zip(names, free, strict=True) if f]
    A = Js.T @ Js
    w, v = np.linalg.eigh(A)
    tol = 1e-9 * max(w.max(), 1e-300)
    null = w <= tol
    inv_w = np.where(null, 0.0, 1.0 / np.where(null, 1.0, w))
    ainv = (v * inv_w) @ v.T
    cov_f = ainv * np.outer(span[free], span[free])
    for i in np.flatnonzero(null):
        comp = sorted(zip(np.abs(v[:, i]), fnames, strict=True), reverse=True)
        comp = [c for c in comp if c[0] > 0.1][:3]
        warns.append(
            "not identifiable: the data do not move with "
            + " + ".join(f"{c:.2f} {n}" for c, n in comp)
            + " (held at the optimum in draws; a prior would pin it down)"
        )
    # effective number of parameters: trace of the hat matrix of the data rows; a parameter
    # pinned at a bound does not count (it spends no freedom on these data)
    Jd = Js[:n_obs]
    k_eff = float(np.trace(Jd @ ainv @ Jd.T))
    cov[np.ix_(free, free)] = cov_f
    if at_bound.any():
        cov = _covariance_with_bounds(J, span, at_bound, names, warns)
    good = w[~null]
    if good.size:
        cond = good.max() / good.min()
        if cond > 1e6:
            i = int(np.flatnonzero(~null)[np.argmin(good)])
            comp = sorted(zip(np.abs(v[:, i]), fnames, strict=True), reverse=True)
            comp = [c for c in comp if c[0] > 0.1][:3]
            warns.append(
                f"weakly identified (condition number {cond:.2g} of the range-scaled information): the "
                "flattest direction is " + " + ".join(f"{c:.2f} {n}" for c, n in comp)
            )
    se = np.sqrt(np.clip(np.diag(cov), 0.0, None))
    with np.errstate(divide="ignore", invalid="ignore"):
        corr = cov / np.outer(se, se)
    for a in range(m):
        for b in range(a + 1, m):
            if np.isfinite(corr[a, b]) and abs(corr[a, b]) > 0.95:
                warns.append(
                    f"{names[a]} and {names[b]} are correlated {corr[a, b]:+.3f}: the data determine "
                    "mainly their combination"
                )
    for j in np.flatnonzero(free):
        if se[j] > 0.5 * span[j]:
            warns.append(
                f"{names[j]} is poorly determined: standard error {se[j]:.3g} exceeds half its range"
            )
    flat = np.zeros(m, dtype=bool)
    for i in np.flatnonzero(null):
        flat[np.flatnonzero(free)[np.abs(v[:, i]) > 0.1]] = True
    return cov, k_eff, warns, flat


def _scatter(res: FitResult):
    """Per-quarter offsets with the parameters at the optimum, and their degrees-of-freedom corrected RMS."""
    spec, data = res.spec, res.data
    p = spec.full(res.theta, res.base)
    q = data.tpd / res.availability / recovery.REFERENCE_TPD
    offs = np.zeros((data.n, recovery.N_OFFSETS))
    for i in range(data.n):
        mask = np.isfinite(data.y[i])
        if not mask.any():
            continue

        def fun(o, i=i, mask=mask):
            out = mill_outputs(spec, p, data.ore_t[i : i + 1], data.head[i : i + 1], q[i : i + 1], o[None, :])
            return ((out[0, _FIT_INDEX] - data.y[i]) / data.sigma[i])[mask]

        r = optimize.least_squares(fun, np.zeros(recovery.N_OFFSETS), bounds=(-5.0, 5.0), method="trf")
        offs[i] = r.x
    dof = max(res.scatter_dof, 1.0)
    scatter = np.sqrt((offs**2).sum(0) / dof)
    return offs, scatter


def shrunk_correlation(x: np.ndarray) -> np.ndarray:
    """Correlation of the columns of ``x`` (rows = zero-mean samples), shrunk toward identity.

    Six quarters cannot estimate a 5 x 5 correlation matrix well; the Ledoit-Wolf (2004)
    shrinkage intensity, computed on the standardised samples, blends the sample
    correlation with the identity by how noisy it is.

    Ledoit, O., Wolf, M., 2004. A well-conditioned estimator for large-dimensional
    covariance matrices. J. Multivariate Anal. 88, 365-411.
    """
    x = np.asarray(x, dtype=float)
    n, p = x.shape
    sd = np.sqrt((x**2).mean(0))
    if n < 2 or (sd <= 0).any():
        return np.eye(p)
    z = x / sd
    S = z.T @ z / n
    d2 = np.sum((S - np.eye(p)) ** 2)
    if d2 <= 0:
        return np.eye(p)
    b2 = min(sum(np.sum((np.outer(r, r) - S) ** 2) for r in z) / n**2, d2)
    delta = b2 / d2
    R = delta * np.eye(p) + (1 - delta) * S
    d = np.sqrt(np.diag(R))
    return R / np.outer(d, d)


def profile(
    model, name: str, grid, data: FitData | None = None, *, priors=None, start=None, scale=None
) -> pd.DataFrame:
    """Profile of the fit over parameter ``name``: the others refitted at each value.

    A flat profile over a wide range says the data cannot pin ``name`` down: the honest
    statement for rate constants when throughput varied only 201-245 t/d.

    Returns a table with columns ``name``, ``chi2`` (weighted sum of squares of the data)
    and ``delta`` = the rise of ``chi2 / s^2 + prior terms`` above its minimum over the
    grid, with ``s`` the residual scale of the full fit (``scale``, fitted when None):
    ``delta`` of 1 is about one standard error away, 4 about two.
    """
    spec = recovery.get_model(model)
    if name not in spec.free:
        raise ValidationError(
            f"profile: {name!r} is not a free parameter of {spec.name!r}; allowed: {', '.join(spec.free)}"
        )
    data = fit_data() if data is None else data
    priors = dict(priors or {})
    if scale is None:
        scale = fit(spec, data, starts=2, priors=priors, scatter=False).scale
    j = spec.free.index(name)
    rest = tuple(n for n in spec.free if n != name)
    pr = {k: val for k, val in priors.items() if k != name}
    rows = []
    for v in np.asarray(grid, dtype=float):
        sub = replace(
            spec, name=f"{spec.name}|{name}={v:g}", free=rest, fixed=(*spec.fixed, (name, float(v)))
        )
        x0 = None if start is None else np.delete(np.asarray(start, float), j)
        r = fit(sub, data, starts=2, priors=pr, x0=x0, scatter=False)
        extra = ((v - priors[name][0]) / priors[name][1]) ** 2 if name in priors else 0.0
        rows.append({name: v, "chi2": r.chi2, "objective": r.chi2 / scale**2 + r.chi2_prior + extra})
    df = pd.DataFrame(rows)
    df["delta"] = df["objective"] - df["objective"].min()
    return df


def profile_grid(value: float, lo: float, hi: float, factors=(0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 4.0)):
    """Values ``value x factors`` kept inside [lo, hi] (for :func:`profile`)."""
    return np.unique(np.clip(value * np.asarray(factors, dtype=float), lo, hi))


# ---------------------------------------------------------------- leave one out, comparison
def leave_one_out(
    model,
    data: FitData | None = None,
    *,
    starts: int = 4,
    seed: int = 0,
    priors=None,
    bands: bool = True,
    n_draws: int = 1000,
) -> xr.Dataset:
    """Predict each quarter from a fit to the other quarters only.

    The held-out quarter's figures never enter its own fit: the fit sees
    ``data.subset(others)``, and the prediction uses only the held-out feed (tonnes,
    head grades, tpd and, where reported, availability; else the prior mean).

    Returns
    -------
    xarray.Dataset
        Dimension ``period``: ``<figure>_reported`` and ``<output>`` (predicted) for every
        output of :data:`OUTPUTS`, and the reported contained metal. With ``bands``, also
        the 5 %/95 % prediction bounds ``<output>_p05``/``_p95`` of the held-out quarter
        from the calibration of the other quarters (:func:`predict`, ``n_draws`` draws):
        the real-data check of the bands.
    """
    from kenomill.data import QUARTERS, reported_periods

    spec = recovery.get_model(model)
    data = fit_data() if data is None else data
    n = data.n
    pred = np.full((n, len(ALL_OUTPUTS)), np.nan)
    lo = np.full_like(pred, np.nan)
    hi = np.full_like(pred, np.nan)
    for h in range(n):
        others = [i for i in range(n) if i != h]
        r = fit(spec, data.subset(others), starts=starts, seed=seed, priors=priors, scatter=bands)
        a = data.availability[h] if np.isfinite(data.availability[h]) else r.availability_prior[0]
        pred[h] = mill_outputs(
            spec,
            spec.full(r.theta, r.base),
            data.ore_t[h : h + 1],
            data.head[h : h + 1],
            operating_q_ratio(data.tpd[h], a)[None],
        )[0]
        if bands:
            feed = pd.DataFrame(
                {
                    "period": [data.periods[h]],
                    "ore_processed_t": data.ore_t[h : h + 1],
                    "head_ag_gpt": data.head[h : h + 1, 0] * 1e6,
                    "head_pb_pct": data.head[h : h + 1, 1] * 100,
                    "head_zn_pct": data.head[h : h + 1, 2] * 100,
                    "tpd": data.tpd[h : h + 1],
                    "availability_pct": data.availability[h : h + 1] * 100,
                }
            )
            pr = predict(r.to_calibration(), feed, n_draws=n_draws, seed=seed)
            lo[h] = [float(pr[nm + "_p05"][0]) for nm in ALL_OUTPUTS]
            hi[h] = [float(pr[nm + "_p95"][0]) for nm in ALL_OUTPUTS]
    v = {}
    for j, name in enumerate(ALL_OUTPUTS):
        u, ln = OUTPUT_ATTRS[name]
        v[name] = (
            "period",
            pred[:, j],
            {"units": u, "long_name": f"{ln}, predicted leaving the quarter out"},
        )
        if bands:
            v[name + "_p05"] = ("period", lo[:, j], {"units": u, "long_name": f"{ln}, 5 % bound, left out"})
            v[name + "_p95"] = ("period", hi[:, j], {"units": u, "long_name": f"{ln}, 95 % bound, left out"})
    for j, c in enumerate(FIT_FIGURES):
        v[c + "_reported"] = ("period", data.y[:, j], {"units": OUTPUT_ATTRS[c][0]})
    if data.source in ("raw", "reconciled") and set(data.periods) <= set(QUARTERS):
        rep = reported_periods("quarter").sel(period=list(data.periods))
        for c in ("ag_oz", "pb_lb", "zn_lb"):
            v[c + "_reported"] = ("period", rep[c].values, {"units": OUTPUT_ATTRS[c][0]})
    ds = xr.Dataset(v, coords={"period": ("period", list(data.periods))})
    ds.attrs.update({"model": spec.name, "data": data.source})
    return ds


def loo_errors(loo: xr.Dataset) -> dict[str, float]:
    """Leave-one-out errors per metal: recovery RMSE [percentage points] and contained-metal RMS error [%]."""
    out = {}
    for el, rec, cont in (
        ("ag", "rec_ag_pct", "ag_oz"),
        ("pb", "rec_pb_pct", "pb_lb"),
        ("zn", "rec_zn_pct", "zn_lb"),
    ):
        d = loo[rec] - loo[rec + "_reported"]
        out[f"loo_rec_{el}_pts"] = float(np.sqrt(np.nanmean(d.values**2)))
        if cont + "_reported" in loo:
            rel = 100 * (loo[cont] / loo[cont + "_reported"] - 1)
            out[f"loo_{cont}_pct"] = float(np.sqrt(np.nanmean(rel.values**2)))
    for g in ("pbcon_pb_pct", "zncon_zn_pct", "pbcon_ag_gpt"):
        rel = 100 * (loo[g] / loo[g + "_reported"] - 1)
        out[f"loo_{g}_relpct"] = float(np.sqrt(np.nanmean(rel.values**2)))
    if "ag_oz_p05" in loo:
        # share of held-out figures inside their 90 % band (nine figures plus contained metal)
        inside = []
        for name in (*FIT_FIGURES, "ag_oz", "pb_lb", "zn_lb"):
            if name + "_reported" not in loo:
                continue
            y = loo[name + "_reported"].values
            ok = np.isfinite(y)
            inside.append(((y >= loo[name + "_p05"].values) & (y <= loo[name + "_p95"].values))[ok])
        out["loo_cover90"] = float(np.mean(np.concatenate(inside)))
    return out


def compare_models(
    models=None,
    data: FitData | None = None,
    *,
    starts: int = 6,
    loo_starts: int = 3,
    seed: int = 0,
    priors=None,
    progress=None,
) -> pd.DataFrame:
    """Fit each model; one row per model with AICc, BIC and leave-one-out errors per metal.

    ``progress``, when given, is called with 1 after each model (:mod:`kenomill.progress`).

    ``loo_score`` is the mean of the three contained-metal leave-one-out RMS errors [%],
    the figure a planner cares about; ``d_aicc`` is AICc minus the best AICc.
    Rows are sorted by AICc.
    """
    data = fit_data() if data is None else data
    names = list(recovery.MODELS) if models is None else list(models)
    rows = []
    for name in names:
        rows.append(compare_row(name, data, starts=starts, loo_starts=loo_starts, seed=seed, priors=priors))
        if progress is not None:
            progress(1)
    return compare_frame(rows)


def compare_row(
    model: str, data: FitData, *, starts: int, loo_starts: int, seed: int, priors=None, bands: bool = True
) -> dict:
    """One row of :func:`compare_models`: ``model`` fitted to ``data`` and left out one period at a time.

    The row's leave-one-out errors use the point predictions only: ``bands=False`` skips
    the predictive draws and the scatter of each fold (they come after the optimum and do
    not move it), for the same figures but ``loo_cover90``.
    """
    spec = recovery.get_model(model)
    pr = {k: v for k, v in (priors or {}).items() if k in spec.free}
    r = fit(spec, data, starts=starts, seed=seed, priors=pr)
    e = loo_errors(leave_one_out(spec, data, starts=loo_starts, seed=seed, priors=pr, bands=bands))
    row = {
        "model": spec.name,
        "k": r.k,
        "k_eff": r.k_eff,
        "chi2": r.chi2,
        "aicc": r.aicc,
        "bic": r.bic,
        **e,
        "same_optimum": f"{r.n_same_optimum}/{len(r.start_costs)}",
        "warnings": len(r.warnings),
    }
    keys = [k for k in ("loo_ag_oz_pct", "loo_pb_lb_pct", "loo_zn_lb_pct") if k in e]
    row["loo_score"] = (
        float(np.mean([e[k] for k in keys]))
        if keys
        else float(np.mean([e["loo_rec_ag_pts"], e["loo_rec_pb_pts"], e["loo_rec_zn_pts"]]))
    )
    return row


def compare_frame(rows: list[dict]) -> pd.DataFrame:
    """Rows of :func:`compare_row` as the comparison table: sorted by AICc, with ``d_aicc``, ``d_bic``."""
    df = pd.DataFrame(rows).sort_values("aicc").reset_index(drop=True)
    df["d_aicc"] = df["aicc"] - df["aicc"].min()
    df["d_bic"] = df["bic"] - df["bic"].min()
    return df


# ---------------------------------------------------------------------------- predict
#: rows (draws x periods) a prediction computes at a time: the per-draw inputs, the response
#: and the settlement live only for one block, so memory grows with the kept outputs alone
PREDICT_BLOCK_ROWS = 32768


@dataclass(frozen=True)
class _PredictSetup:
    """What every block of a prediction shares: the feed as arrays and the posterior draws."""

    spec: object
    base: np.ndarray
    ore: np.ndarray
    head: np.ndarray  # (n, 3) mass fractions
    tpd: np.ndarray
    a_given: np.ndarray  # (n,) fraction, NaN where unknown
    a_det: np.ndarray  # given, or the prior mean
    a_prior: tuple[float, float]
    post: dict
    common_draws: bool

    @property
    def n(self) -> int:
        return int(self.ore.shape[0])


def _predict_setup(cal: Calibration, ds: xr.Dataset, common_draws: bool) -> _PredictSetup:
    head = np.stack(
        [
            units.to_fraction(ds["head_ag_gpt"].values, "g/t"),
            units.to_fraction(ds["head_pb_pct"].values, "%"),
            units.to_fraction(ds["head_zn_pct"].values, "%"),
        ],
        axis=1,
    ).astype(float)
    a_given = ds["availability_pct"].values.astype(float) / 100.0
    a_mu, a_sd = cal.meta.get("availability_prior", AVAILABILITY_PRIOR)
    return _PredictSetup(
        spec=cal.spec,
        base=np.asarray(cal.base, dtype=float),
        ore=ds["ore_processed_t"].values.astype(float),
        head=head,
        tpd=ds["tpd"].values.astype(float),
        a_given=a_given,
        a_det=np.where(np.isnan(a_given), a_mu, a_given),
        a_prior=(float(a_mu), float(a_sd)),
        post=cal.posterior_draws(),
        common_draws=common_draws,
    )


def predictive_inputs(su: _PredictSetup, seed: int, draws) -> dict[str, np.ndarray]:
    """Each draw's inputs of the posterior predictive, one row per (draw, period), draw-major.

    Draw ``s`` takes the first numbers of its own counter-based stream keyed by
    ``(seed, s)`` (:func:`kenomill.draw_inputs.stream_uniforms`, stream
    :data:`kenomill.draw_inputs.PREDICT_STREAM`; the kernel's SplitMix64 keying): column 0
    picks its posterior draw (``floor(u S)``), then per period (one set for all periods with
    ``common_draws``) one normal of the unknown availability and the
    :data:`kenomill.recovery.N_OFFSETS` normals of the quarter's offsets (``ndtri`` of the
    uniforms). A draw's numbers depend on the seed and its index only, never on the block
    it is computed in nor on how many draws run.

    Returns
    -------
    dict
        ``p`` (rows, N_FULL), ``head`` (rows, 3), ``ore`` (rows,), ``q`` (rows,),
        ``off`` (rows, N_OFFSETS) and ``shape`` (draws, periods).
    """
    from scipy.special import ndtri

    from kenomill.draw_inputs import PREDICT_STREAM, stream_uniforms

    d = np.asarray(draws).reshape(-1)
    n, n_off = su.n, recovery.N_OFFSETS
    m = 1 if su.common_draws else n
    u = stream_uniforms(seed, d, PREDICT_STREAM, 1 + m * (1 + n_off))
    s_n = su.post["theta"].shape[0]
    pick = np.minimum((u[:, 0] * s_n).astype(np.int64), s_n - 1)
    # the half-step keeps ndtri away from u = 0 (-inf); the largest u is 1 - 2^-53
    z = ndtri(u[:, 1:] + 2.0**-54).reshape(d.size, m, 1 + n_off)
    a_mu, a_sd = su.a_prior
    a = np.broadcast_to(su.a_det, (d.size, n)).copy()
    unknown = np.isnan(su.a_given)
    if unknown.any():
        za = np.broadcast_to(z[:, :, 0], (d.size, n))
        a[:, unknown] = np.clip(a_mu + a_sd * za[:, unknown], *AVAILABILITY_RANGE)
    # a new quarter's offsets for draw s: offset_mean[s] + scatter_sd[s] * (scatter_chol[s] @ z);
    # correlated within the quarter (a quarter of poor lead recovery keeps more of its silver)
    zc = np.einsum("sij,smj->smi", su.post["scatter_chol"][pick], z[:, :, 1:])
    off = su.post["offset_mean"][pick][:, None, :] + su.post["scatter_sd"][pick][:, None, :] * zc
    p = np.tile(su.base, (d.size, 1))
    p[:, su.spec.free_index] = su.post["theta"][pick]
    return {
        "p": np.repeat(p, n, axis=0),
        "head": np.tile(su.head, (d.size, 1)),
        "ore": np.tile(su.ore, d.size),
        "q": operating_q_ratio(np.tile(su.tpd, d.size), a.reshape(-1)),
        "off": np.broadcast_to(off, (d.size, n, n_off)).reshape(-1, n_off),
        "shape": (d.size, n),
    }


#: what a prediction settles per draw when asked for NSR (:func:`predict` ``nsr``)
NSR_OUTPUTS = ("nsr_usd", "nsr_usd_per_t_ore", "pbcon_zn_pct")
_NSR_ATTRS = {"nsr_usd": "USD", "nsr_usd_per_t_ore": "USD/t", "pbcon_zn_pct": "%"}


def _block_nsr(su: _PredictSetup, x: dict, prices, terms) -> np.ndarray:
    """NSR of each row of a block (:data:`NSR_OUTPUTS`), settled by :func:`kenomill.value.nsr`
    from both concentrates' tonnes and all three assays (the same response as the outputs)."""
    from kenomill import value

    split, pull = recovery.respond_many(su.spec, x["p"], x["head"], x["q"], x["off"])
    shape = x["shape"]

    def con(j):
        assay = {m: x["head"][:, i] * split[:, i, j] / pull[:, j] for i, m in enumerate(("ag", "pb", "zn"))}
        return {k: v.reshape(shape) for k, v in {"dmt": x["ore"] * pull[:, j], **assay}.items()}

    lead, zinc = con(0), con(1)
    r = value.nsr(lead, zinc, prices, terms, ore_t=su.ore, dims=("draw", "period"))
    return np.stack([r["nsr_usd"].values, r["nsr_usd_per_t_ore"].values, 100.0 * lead["zn"]], axis=-1)


def predictive_values(
    su: _PredictSetup, n_draws: int, seed: int, *, nsr=None, block_rows: int = PREDICT_BLOCK_ROWS
) -> np.ndarray:
    """Every draw's outputs (:data:`ALL_OUTPUTS`, then :data:`NSR_OUTPUTS` with ``nsr``), shape
    (n_draws, periods, outputs), computed :data:`PREDICT_BLOCK_ROWS` rows at a time into one
    array: the numbers do not depend on ``block_rows``."""
    k = len(ALL_OUTPUTS) + (len(NSR_OUTPUTS) if nsr is not None else 0)
    out = np.empty((n_draws, su.n, k))
    step = max(int(block_rows) // max(su.n, 1), 1)
    for d0 in range(0, n_draws, step):
        d = np.arange(d0, min(d0 + step, n_draws))
        x = predictive_inputs(su, seed, d)
        o = mill_outputs(su.spec, x["p"], x["ore"], x["head"], x["q"], x["off"])
        out[d0 : d0 + d.size, :, : len(ALL_OUTPUTS)] = o.reshape(d.size, su.n, -1)
        if nsr is not None:
            out[d0 : d0 + d.size, :, len(ALL_OUTPUTS) :] = _block_nsr(su, x, *nsr)
    return out


def predict(
    calibration: Calibration | None = None,
    feed=None,
    *,
    n_draws: int = 4000,
    seed: int = 0,
    quantiles=(0.05, 0.95),
    common_draws: bool = False,
    nsr=None,
    block_rows: int = PREDICT_BLOCK_ROWS,
) -> xr.Dataset:
    """Predict production for new feeds, with prediction bounds.

    Parameters
    ----------
    calibration : Calibration, optional
        Default: the packaged calibration (:func:`kenomill.calibration_file.default_calibration`).
    feed : xarray.Dataset, pandas.DataFrame or mapping
        Columns ``period``, ``ore_processed_t`` [t], ``head_ag_gpt`` [g/t], ``head_pb_pct``
        [%], ``head_zn_pct`` [%], ``tpd`` [t/d, calendar rate], and optionally ``days`` [d]
        and ``availability_pct`` [%].
    n_draws : int
        Monte Carlo draws behind the bounds.
    seed : int
        Seed of the draws (same seed, same bounds): draw ``s`` uses the stream keyed by
        ``(seed, s)`` (:func:`predictive_inputs`).
    quantiles : (float, float)
        Lower and upper bound probabilities (default 5 % and 95 %).
    common_draws : bool
        Use the same offsets and availability draws for every period (common random
        numbers): for curves over a swept input, so bands are smooth. Default False: each
        period is an independent quarter.
    nsr : (prices, terms), optional
        Also settle every draw (:func:`kenomill.value.nsr`): ``nsr_usd``,
        ``nsr_usd_per_t_ore`` and ``pbcon_zn_pct`` (means over draws) with their bounds.
    block_rows : int
        Rows (draws x periods) computed at a time (memory only; same numbers).

    Returns
    -------
    xarray.Dataset
        Dimension ``period``. For every output of :data:`OUTPUTS` (and tails,
        :data:`EXTRA_OUTPUTS`): the deterministic value (parameters at the optimum, no
        offsets, availability as given or the prior mean) and ``<name>_p05`` /
        ``<name>_p95`` bounds that include parameter uncertainty (posterior draws),
        unknown availability (draws from its prior) and the quarter-to-quarter scatter.
        Also ``availability`` [fraction] and ``operating_tpd`` [t/d] used by the
        deterministic value, and ``extrapolation`` (words, empty inside the calibrated range).
    """
    cal = default_calibration() if calibration is None else calibration
    if feed is None:
        raise ValidationError("feed: none given; give a table with columns " + ", ".join(FEED_COLUMNS))
    ds = check_feed(feed)
    if n_draws < 2:
        raise ValidationError(f"n_draws: found {n_draws}; allowed: at least 2")
    su = _predict_setup(cal, ds, common_draws)
    det = mill_outputs(su.spec, cal.full(), su.ore, su.head, operating_q_ratio(su.tpd, su.a_det))
    draws = predictive_values(su, n_draws, seed, nsr=nsr, block_rows=block_rows)
    v = _bound_variables(det, draws, quantiles)
    for c in ("ore_processed_t", "head_ag_gpt", "head_pb_pct", "head_zn_pct", "tpd"):
        v[c] = ("period", ds[c].values, ds[c].attrs)
    v["availability"] = (
        "period",
        su.a_det,
        {"units": "1", "long_name": "availability used (given, or prior mean)"},
    )
    v["operating_tpd"] = (
        "period",
        su.tpd / su.a_det,
        {"units": "t/d", "long_name": "operating throughput = calendar tpd / availability"},
    )
    v["extrapolation"] = (
        "period",
        _extrapolation_words(ds, calibrated_feed_range(cal)),
        {
            "units": "",
            "long_name": "feed outside the range the calibration was fitted on (empty: inside); "
            "there the bounds rest on the model's form and its priors, not on quarters",
        },
    )
    res = xr.Dataset(v, coords={"period": ds.period.values})
    a_mu, a_sd = su.a_prior
    res.attrs.update(
        {
            "model": cal.model,
            "calibration_data": cal.data,
            "n_draws": n_draws,
            "seed": seed,
            "draws": "draw s: counter-based stream keyed by (seed, s), as the simulation kernel's",
            "availability_prior": f"{a_mu:g} +- {a_sd:g} where not given",
            "bounds": f"{100 * quantiles[0]:g} % and {100 * quantiles[1]:g} % prediction bounds: parameter "
            "uncertainty, unknown availability and quarter-to-quarter scatter",
            "posterior": "MCMC draws"
            if cal.posterior is not None
            else "Gaussian approximation (no draws in file)",
        }
    )
    if nsr is not None:
        res.attrs["terms"] = getattr(nsr[1], "name", "")
    return res


def _bound_variables(det: np.ndarray, draws: np.ndarray, quantiles) -> dict:
    """The Dataset's variables of the outputs: value and bounds (quantiles over draws, one
    output at a time so the sort copies one column); NSR's value is its mean over draws."""
    tags = [f"_p{round(100 * qq):02d}" for qq in quantiles]
    names = list(ALL_OUTPUTS) + list(NSR_OUTPUTS[: draws.shape[2] - len(ALL_OUTPUTS)])
    # one Dataset constructor: assigning ~50 variables one by one costs ~8 ms each in xarray
    v, bounds = {}, {}
    for j, name in enumerate(names):
        if j < len(ALL_OUTPUTS):
            u, ln = OUTPUT_ATTRS[name]
            v[name] = ("period", det[:, j], {"units": u, "long_name": ln})
        else:
            u, ln = _NSR_ATTRS[name], f"{name}: mean over draws"
            v[name] = ("period", draws[:, :, j].mean(axis=0), {"units": u, "long_name": ln})
        q = np.quantile(draws[:, :, j], quantiles, axis=0)
        for tag, qq, row in zip(tags, quantiles, q, strict=True):
            bounds[name + tag] = ("period", row, {"units": u, "long_name": f"{ln}, {100 * qq:g} % bound"})
    # the order of the variables: values, then each output's bounds
    for name in names:
        for tag in tags:
            v[name + tag] = bounds[name + tag]
    return v


def _extrapolation_words(ds: xr.Dataset, fr: dict) -> np.ndarray:
    outside = []
    for i in range(ds.sizes["period"]):
        why = []
        for c in ("tpd", "head_ag_gpt", "head_pb_pct", "head_zn_pct"):
            lo_c, hi_c = fr[c]
            val = float(ds[c].values[i])
            if val < lo_c * (1 - 1e-9):
                why.append(f"{c} {val:g} < {lo_c:g}")
            elif val > hi_c * (1 + 1e-9):
                why.append(f"{c} {val:g} > {hi_c:g}")
        outside.append("; ".join(why))
    return np.array(outside, dtype=str)


def prediction_frame(pred: xr.Dataset) -> pd.DataFrame:
    """The PRED.csv table: period, then each of :data:`OUTPUTS` followed by its bounds."""
    cols = {"period": pred.period.values}
    tags = [v[len("ag_oz") :] for v in pred.data_vars if v.startswith("ag_oz_p")]
    for name in OUTPUTS:
        cols[name] = pred[name].values
    for name in OUTPUTS:
        for t in tags:
            cols[name + t] = pred[name + t].values
    return pd.DataFrame(cols)


FEED_RANGE_COLUMNS = ("head_ag_gpt", "head_pb_pct", "head_zn_pct", "tpd")


def feed_range_of(data: FitData) -> dict[str, list[float]]:
    """Range of the feed a calibration is fitted on (contract 3): column -> [lo, hi] in
    g/t, %, %, t/d (calendar)."""
    cols = {
        "head_ag_gpt": data.head[:, 0] * 1e6,
        "head_pb_pct": data.head[:, 1] * 100,
        "head_zn_pct": data.head[:, 2] * 100,
        "tpd": data.tpd,
    }
    return {c: [float(np.min(v)), float(np.max(v))] for c, v in cols.items()}


def calibrated_feed_range(cal: Calibration) -> dict[str, list[float]]:
    """``cal.meta["feed_range"]``, or that of the packaged quarters when the file has none."""
    fr = cal.meta.get("feed_range")
    if isinstance(fr, dict) and all(c in fr for c in FEED_RANGE_COLUMNS):
        return {c: [float(fr[c][0]), float(fr[c][1])] for c in FEED_RANGE_COLUMNS}
    return feed_range_of(fit_data())


def attach_posterior(calibration: Calibration, data: FitData, *, seed: int = 0, progress=None, **kw):
    """Sample the quarter-level posterior (:func:`kenomill.bayes.sample`) and store its thinned
    draws, diagnostics, priors and feed range in ``calibration`` (in place; returns the Posterior)."""
    from kenomill import bayes

    post = bayes.sample(calibration.model, data, seed=seed, theta0=calibration.theta, progress=progress, **kw)
    calibration.posterior = post.draws()
    calibration.meta["feed_range"] = feed_range_of(data)
    calibration.meta["posterior"] = {
        "sampler": "emcee (DE moves), offsets integrated out by linearisation; see kenomill.bayes",
        "n_walkers": post.n_walkers,
        "n_steps": post.n_steps,
        "n_draws": post.n_draws,
        "seed": seed,
        "acceptance": post.acceptance,
        "rhat_max": max(post.rhat.values()),
        "ess_bulk_min": min(post.ess.values()),
        "priors": [list(x) for x in bayes.PRIORS_DOC],
        "availability_mean": {
            p: float(a) for p, a in zip(post.periods, post.availability.mean(0), strict=True)
        },
        "rho_pb_ag_median": float(np.median(post.rho)),
    }
    return post


def fit_and_calibrate(model, data="raw", *, starts=6, seed=0, priors=None, error_model=None) -> FitResult:
    """Convenience: :func:`fit_data` then :func:`fit`."""
    return fit(model, fit_data(data, error_model), starts=starts, seed=seed, priors=priors)


#: how the packaged calibration is made (a test checks the packaged file against a refit)
DEFAULT_FIT = {"data": "raw", "starts": 8, "seed": 0, "steps": 10000}
#: emcee steps per walker of ``kenomill calibrate``'s posterior (:data:`kenomill.budget.POSTERIOR_STEPS`)
POSTERIOR_STEPS = budget.POSTERIOR_STEPS


def default_fit() -> FitResult:
    """The fit behind the packaged calibration: :data:`DEFAULT_MODEL` on :data:`DEFAULT_FIT`."""
    return fit(
        DEFAULT_MODEL, fit_data(DEFAULT_FIT["data"]), starts=DEFAULT_FIT["starts"], seed=DEFAULT_FIT["seed"]
    )


def write_default_calibration(path=None, *, posterior: bool = True, compare: bool = False):
    """Refit :func:`default_fit` and write it as the packaged calibration.

    Run ``python -m kenomill.calibrate`` after changing the data, the models or
    :data:`DEFAULT_MODEL`; with ``compare`` (``python -m kenomill.calibrate --compare``) the
    comparison by prediction that chose the model is recorded in its meta too.
    """
    from importlib import resources

    from kenomill.calibration_file import DEFAULT_CALIBRATION

    target = path or resources.files("kenomill").joinpath(DEFAULT_CALIBRATION)
    cal = default_fit().to_calibration()
    if posterior:
        attach_posterior(
            cal, fit_data(DEFAULT_FIT["data"]), seed=DEFAULT_FIT["seed"], n_steps=DEFAULT_FIT["steps"]
        )
    if compare:
        from kenomill import validation

        cal.meta["comparison_by_prediction"] = validation.compare(
            seed=DEFAULT_FIT["seed"], workers=None
        ).to_meta()
    cal.meta["made_by"] = "kenomill.calibrate.write_default_calibration()"
    return cal.save(target)


if __name__ == "__main__":
    import sys

    print(f"wrote {write_default_calibration(compare='--compare' in sys.argv)}")
