"""Model choice by prediction: leave-one-quarter-out and rolling-origin validation.

A calibration exists to predict quarters it has not seen, so candidate models are compared
by how well they predict held-out quarters, not by how well they fit:

* **exact leave-one-quarter-out (LOQO)**: for each quarter, the posterior is computed from the
  other quarters and the held-out quarter is predicted;
* **rolling origin**: fit on quarters 1..k in time order, predict quarter k+1, for every k
  from :data:`ROLLING_MIN` to n - 1 (3, 4, 5 on the six packaged quarters): what a metallurgist
  predicting next quarter from the past would have got.

Scores of each held-out quarter (all on the three reported recoveries, silver, lead and zinc,
which is what the naive baselines predict):

``lpd``
    log predictive density of the three recoveries jointly [nats per quarter]; higher is better.
``crps``
    continuous ranked probability score [percentage points of recovery], mean over the three
    metals (Gneiting & Raftery 2007); lower is better.
``mape_metal``
    absolute % error of the predicted contained metal (median) against the release's figure of
    metal in concentrates (silver oz, lead and zinc lb), mean over the three metals.
``cover50``, ``cover90``
    share of the three recoveries inside the central 50 % and 90 % predictive bands [%]; near
    50 and 90 when the bands are honest.

Naive baselines, fitted on the same training quarters: ``naive_mean`` (each metal's mean
recovery over the training quarters, Student-t predictive with the quarters' SD and n - 1
degrees of freedom) and ``naive_last`` (the recovery of the latest training quarter before the
held-out one, or the earliest after it when none is before; Student-t with the root mean
square of the training quarters' successive changes).

Posterior of each fold: the posterior of :class:`kenomill.bayes.LogPosterior` (offsets per
quarter integrated out) is approximated by a Laplace approximation at its mode in the
sampler's unconstrained coordinates, corrected by importance sampling from a multivariate
Student-t proposal with Pareto-smoothed weights (PSIS, Vehtari et al. 2024). The Pareto
shape ``k`` says when the correction cannot be trusted (above 0.7); such folds are counted
and shown. This is exact cross-validation (each fold refitted), with the posterior of each
fold computed by importance sampling instead of MCMC, so that every candidate's ten
posteriors take about a second each.

Stacking: the weights of the candidates' predictive distributions that maximise the
leave-one-quarter-out log score of their mixture (Yao, Vehtari, Simpson & Gelman 2018).

References
----------
Gneiting, T., Raftery, A.E., 2007. Strictly proper scoring rules, prediction, and estimation.
JASA 102, 359-378.
Vehtari, A., Simpson, D., Gelman, A., Yao, Y., Gabry, J., 2024. Pareto smoothed importance
sampling. JMLR 25(72), 1-58.
Yao, Y., Vehtari, A., Simpson, D., Gelman, A., 2018. Using stacking to average Bayesian
predictive distributions. Bayesian Analysis 13, 917-1007.
Hyndman, R.J., Athanasopoulos, G., 2021. Forecasting: principles and practice, 3rd ed.,
ch. 5.10 (time series cross-validation: rolling forecasting origin).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd

from kenomill import bayes, recovery, units, variables
from kenomill.errors import ValidationError

#: first training size of the rolling origin (fit on quarters 1..k, predict k+1, k >= 3)
ROLLING_MIN = 3
METALS = variables.METALS
#: the recoveries scored, as indices into the fitted figures (rec_ag, rec_pb, rec_zn)
REC_INDEX = tuple(variables.FIT_FIGURES.index(f"rec_{m}_pct") for m in METALS)
#: importance-sampling draws per fold, and the Student-t proposal's degrees of freedom
N_DRAWS = 8000
PROPOSAL_DF = 3.0
#: Pareto k above which the importance-sampling correction is not trusted (Vehtari et al. 2024)
PARETO_K_MAX = 0.7
#: adaptive importance sampling: rounds of moment matching until k <= PARETO_K_GOOD, and the
#: widening of the matched covariance (a proposal must be wider than its target)
ADAPT_ROUNDS = 4
PARETO_K_GOOD = 0.5
ADAPT_WIDEN = 2.0
#: draws of the last round when k stays above PARETO_K_MAX, as a multiple of N_DRAWS
RETRY_FACTOR = 3
#: predictive samples per held-out quarter (CRPS, bands, contained metal)
N_PRED = 4000
SCORES = ("lpd", "crps", "mape_metal", "cover50", "cover90")


@dataclass(frozen=True)
class Candidate:
    """A model to compare: a recovery model of :data:`kenomill.recovery.MODELS` and options."""

    name: str
    model: str
    doc: str
    #: parameters the named model fixes that this candidate frees (with the priors of
    #: :data:`kenomill.bayes.THETA_PRIORS`)
    free_extra: tuple[str, ...] = ()
    #: ramp-up: a linear trend in time of the recovery offsets (:data:`kenomill.bayes.TREND_OFFSETS`)
    trend: bool = False
    #: priors on rate parameters; None = :data:`kenomill.bayes.THETA_PRIORS`, {} = uniform
    theta_priors: dict | None = None
    #: robust likelihood (degrees of freedom of the quarters' multivariate Student-t); None = Gaussian
    robust_df: float | None = None

    def spec(self) -> recovery.ModelSpec:
        base = recovery.get_model(self.model)
        if not self.free_extra:
            return base
        return replace(base, name=self.name, free=base.free + tuple(self.free_extra))

    def priors(self) -> dict:
        return bayes.THETA_PRIORS if self.theta_priors is None else self.theta_priors


_FLAT = {"zn_pb": bayes.THETA_PRIORS["zn_pb"], "pb_zn": bayes.THETA_PRIORS["pb_zn"]}
#: the candidates `kenomill calibrate` compares by default
CANDIDATES: tuple[Candidate, ...] = (
    Candidate("constant", "constant", "constant recoveries (no head-grade or throughput effect)"),
    Candidate("constant_ramp", "constant", "constant recoveries + ramp-up trend in time", trend=True),
    Candidate("fixed_tail", "fixed_tail", "head-grade dependence (fixed tail) in both circuits"),
    Candidate(
        "cells_pb_tail_zn",
        "cells_pb_tail_zn",
        "lead: 8 mixed cells (throughput, k tau prior from the mill facts); zinc: fixed tail",
    ),
    Candidate(
        "cells_pb_tail_zn_flat",
        "cells_pb_tail_zn",
        "as cells_pb_tail_zn, uniform prior on k tau (no residence-time facts)",
        theta_priors=_FLAT,
    ),
    Candidate(
        "cells_pb_tail_zn_ramp",
        "cells_pb_tail_zn",
        "as cells_pb_tail_zn + ramp-up trend in time",
        trend=True,
    ),
    Candidate(
        "cells_pb_tail_zn_free",
        "cells_pb_tail_zn",
        "as cells_pb_tail_zn, zn_pb and pb_zn free with priors instead of constants",
        free_extra=("zn_pb", "pb_zn"),
    ),
    Candidate(
        "cells_pb_tail_zn_robust",
        "cells_pb_tail_zn",
        "as cells_pb_tail_zn, robust likelihood (quarters' figures Student-t, 4 degrees of freedom)",
        robust_df=bayes.ROBUST_DF,
    ),
    Candidate("plug_pb_tail_zn", "plug_pb_tail_zn", "lead: plug flow (throughput); zinc: fixed tail"),
    Candidate("mixed_cells", "mixed_cells", "8 mixed cells (throughput) in both circuits"),
)
BASELINES = ("naive_mean", "naive_last")


def get_candidate(name: str) -> Candidate:
    for c in CANDIDATES:
        if c.name == name:
            return c
    if name in recovery.MODELS:
        return Candidate(name, name, recovery.MODELS[name].doc)
    allowed = ", ".join([c.name for c in CANDIDATES] + [m for m in recovery.MODELS if m not in _names()])
    raise ValidationError(f"candidate: found {name!r}; allowed: {allowed}")


def _names():
    return {c.name for c in CANDIDATES}


# ----------------------------------------------------------------------------- time and folds
_QUARTER = re.compile(r"^(\d{4})Q([1-4])$")
_MONTH = re.compile(r"^(\d{4})-(0[1-9]|1[0-2])$")


def quarter_times(periods) -> np.ndarray:
    """Time of each period [years]: mid-quarter for names ``YYYYQn``, mid-month for ``YYYY-MM``;
    otherwise the periods are taken as consecutive quarters in the order given (an assumption)."""
    out = []
    for p in periods:
        q = _QUARTER.match(str(p))
        m = _MONTH.match(str(p))
        if q is not None:
            out.append(int(q.group(1)) + (int(q.group(2)) - 0.5) / 4.0)
        elif m is not None:
            out.append(int(m.group(1)) + (int(m.group(2)) - 0.5) / 12.0)
        else:
            return 0.25 * np.arange(len(periods), dtype=float)
    return np.asarray(out, dtype=float)


def folds(n: int, scheme: str) -> list[tuple[np.ndarray, int]]:
    """(training indices, held-out index) of each fold, periods in time order.

    ``loqo``: every quarter held out once, the others fitted; ``rolling``: quarters 0..k-1
    fitted, quarter k predicted, for k = :data:`ROLLING_MIN` .. n - 1.
    """
    if scheme == "loqo":
        return [(np.array([j for j in range(n) if j != i]), i) for i in range(n)]
    if scheme == "rolling":
        return [(np.arange(k), k) for k in range(ROLLING_MIN, n)]
    raise ValidationError(f"scheme: found {scheme!r}; allowed: loqo, rolling")


def time_order(data):
    """``data`` with its periods sorted by :func:`quarter_times` (a stable sort)."""
    order = np.argsort(quarter_times(data.periods), kind="stable")
    return data.subset(order)


# ----------------------------------------------------------------------------- fold posterior
@dataclass
class WeightedDraws:
    """Importance-weighted draws of a fold posterior in the sampler's coordinates."""

    x: np.ndarray  # (S, d)
    log_w: np.ndarray  # (S,) normalised log weights (Pareto smoothed)
    pareto_k: float
    lp: bayes.LogPosterior
    t_ref: float

    @property
    def ess(self) -> float:
        w = np.exp(self.log_w)
        return float(1.0 / np.sum(w**2))


def _psis(log_w: np.ndarray) -> tuple[np.ndarray, float]:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import arviz as az

        lw, k = az.psislw(log_w - np.max(log_w))
    lw = np.asarray(lw, dtype=float)
    lw = lw - np.logaddexp.reduce(lw)
    return lw, float(k)


def _mvt_draws(rng, mean, cov, n, df):
    chol = np.linalg.cholesky(cov + 1e-12 * np.eye(cov.shape[0]))
    z = rng.standard_normal((n, mean.size))
    g = rng.chisquare(df, size=n) / df
    x = mean + (z @ chol.T) / np.sqrt(g)[:, None]
    # log density of the multivariate t (up to nothing: normalised)
    d = mean.size
    u = np.linalg.solve(chol, (x - mean).T).T
    q = np.sum(u**2, axis=1)
    logdet = 2 * np.sum(np.log(np.diag(chol)))
    lq = (
        math.lgamma((df + d) / 2)
        - math.lgamma(df / 2)
        - 0.5 * d * math.log(df * math.pi)
        - 0.5 * logdet
        - 0.5 * (df + d) * np.log1p(q / df)
    )
    return x, lq


def fold_posterior(cand: Candidate, data, train, *, seed: int = 0, x0=None) -> WeightedDraws:
    """Posterior of ``cand`` fitted on the quarters ``train`` of ``data`` (time-ordered FitData)."""
    sub = data.subset(np.asarray(train))
    t_all = quarter_times(data.periods)
    t_tr = t_all[np.asarray(train)]
    t_ref = float(t_tr.mean())
    lp = bayes.LogPosterior(
        cand.spec(),
        sub,
        theta_priors=cand.priors(),
        trend_time=(t_tr - t_ref) if cand.trend else None,
        robust_df=cand.robust_df,
    )
    start = lp.start() if x0 is None or len(x0) != lp.d else np.asarray(x0, dtype=float)
    mode = bayes.find_mode(lp, start)
    cov = bayes.laplace_cov(bayes.hessian(lp, mode))
    rng = np.random.default_rng([seed, len(train), int(np.sum(2 ** np.asarray(train)))])
    best = None
    mean = mode
    for _ in range(ADAPT_ROUNDS):
        draws = _importance_round(lp, rng, mean, cov, N_DRAWS, t_ref)
        if draws is None:
            continue
        if best is None or draws.pareto_k < best.pareto_k:
            best = draws
        if draws.pareto_k <= PARETO_K_GOOD:
            break
        mean, cov = _moment_matched(best)
    if best is None:
        raise ValidationError(f"{cand.name}: importance sampling failed for training quarters {list(train)}")
    if best.pareto_k > PARETO_K_MAX:
        # one last, larger round from the best matched proposal (a k estimate also falls with n)
        mean, cov = _moment_matched(best)
        draws = _importance_round(lp, rng, mean, cov, RETRY_FACTOR * N_DRAWS, t_ref)
        if draws is not None and draws.pareto_k < best.pareto_k:
            best = draws
    return best


def _importance_round(lp, rng, mean, cov, n, t_ref) -> WeightedDraws | None:
    """``n`` draws from the multivariate-t proposal, Pareto-smoothed weights (None: < 10 usable)."""
    x, lq = _mvt_draws(rng, mean, cov, n, PROPOSAL_DF)
    lpx = np.concatenate([lp(x[i : i + 500]) for i in range(0, x.shape[0], 500)])
    log_w = np.where(np.isfinite(lpx), lpx - lq, -np.inf)
    keep = np.isfinite(log_w)
    if keep.sum() < 10:
        return None
    lw, k = _psis(log_w[keep])
    return WeightedDraws(x=x[keep], log_w=lw, pareto_k=k, lp=lp, t_ref=t_ref)


def _moment_matched(draws: WeightedDraws) -> tuple[np.ndarray, np.ndarray]:
    """Mean and (widened by :data:`ADAPT_WIDEN`) covariance of the weighted draws: the next proposal."""
    w = np.exp(draws.log_w)
    mean = w @ draws.x
    dx = draws.x - mean
    return mean, ADAPT_WIDEN * (dx.T * w) @ dx + 1e-10 * np.eye(draws.x.shape[1])


# ----------------------------------------------------------------------------- predictive scores
def crps_sample(samples: np.ndarray, y: float) -> float:
    """CRPS of a sample predictive distribution at ``y``: E|X - y| - E|X - X'| / 2."""
    x = np.sort(np.asarray(samples, dtype=float))
    n = x.size
    i = np.arange(1, n + 1)
    e_xy = np.mean(np.abs(x - y))
    e_xx = 2.0 * np.sum((2 * i - n - 1) * x) / (n * n)
    return float(e_xy - 0.5 * e_xx)


def _contained(rec_pct, ore_t, head):
    """Contained metal in concentrates (oz Ag, lb Pb, lb Zn) for recoveries [%] (..., 3)."""
    t = ore_t * head * np.asarray(rec_pct) / 100.0
    return np.stack(
        [
            units.tonnes_to_contained(t[..., 0], "troy_oz"),
            units.tonnes_to_contained(t[..., 1], "lb"),
            units.tonnes_to_contained(t[..., 2], "lb"),
        ],
        axis=-1,
    )


def _score_samples(sim: np.ndarray, lpd: float, y: np.ndarray, metal: np.ndarray, ore_t, head) -> dict:
    """Scores of a held-out quarter from predictive samples ``sim`` (N, 3) of the recoveries [%]."""
    ok = np.isfinite(y)
    crps = [crps_sample(sim[:, m], y[m]) for m in range(3) if ok[m]]
    lo50, hi50 = np.quantile(sim, [0.25, 0.75], axis=0)
    lo90, hi90 = np.quantile(sim, [0.05, 0.95], axis=0)
    med = _contained(np.median(sim, axis=0), ore_t, head)
    okm = np.isfinite(metal)
    return {
        "lpd": lpd,
        "crps": float(np.mean(crps)) if crps else float("nan"),
        "mape_metal": float(np.mean(np.abs(med[okm] / metal[okm] - 1.0)) * 100.0)
        if okm.any()
        else float("nan"),
        "cover50": float(np.mean((y[ok] >= lo50[ok]) & (y[ok] <= hi50[ok])) * 100.0),
        "cover90": float(np.mean((y[ok] >= lo90[ok]) & (y[ok] <= hi90[ok])) * 100.0),
    }


def predict_quarter(post: WeightedDraws, cand: Candidate, data, j: int, *, seed: int = 0):
    """Predictive samples (N, 3) of held-out quarter ``j``'s recoveries [%] and their log density."""
    test = data.subset([j])
    t = quarter_times(data.periods)[j] - post.t_ref
    lp_t = bayes.LogPosterior(
        cand.spec(), test, theta_priors=cand.priors(), trend_time=np.array([t]) if cand.trend else None
    )
    lp_f = post.lp
    s_n = post.x.shape[0]
    x = np.empty((s_n, lp_t.d))
    kk = lp_f.k + 6
    x[:, :kk] = post.x[:, :kk]
    rng = np.random.default_rng([seed, 7919, j])
    if lp_t.m:
        x[:, kk : kk + lp_t.m] = np.clip(
            lp_t.a_mu + lp_t.a_sd * rng.standard_normal((s_n, lp_t.m)),
            bayes.AVAILABILITY_RANGE[0],
            bayes.AVAILABILITY_RANGE[1],
        )
    if lp_t.n_trend:
        x[:, lp_t.d - lp_t.n_trend :] = post.x[:, lp_f.d - lp_f.n_trend :]
    f0, b = lp_t.moments(x)
    rec = list(REC_INDEX)
    obs = np.zeros_like(lp_t.obs)
    obs[:, rec] = lp_t.obs[:, rec]
    ll = bayes.gaussian_log_density(lp_t.y, f0, b, lp_t.var, obs, df=cand.robust_df)[:, 0]
    lpd = float(np.logaddexp.reduce(post.log_w + ll))
    # Monte Carlo SE of that estimate (self-normalised importance sampling, delta method on the log)
    rel = np.exp(ll - lpd) - 1.0  # p_s / p_hat - 1
    lpd_se = float(np.sqrt(np.sum(np.exp(2 * post.log_w) * rel**2)))
    # predictive samples: draws resampled by weight, offsets and measurement error on top
    w = np.exp(post.log_w)
    idx = rng.choice(s_n, size=N_PRED, p=w / w.sum())
    z = rng.standard_normal((N_PRED, b.shape[-1]))
    eps = rng.standard_normal((N_PRED, len(rec)))
    sd = np.sqrt(np.asarray(test.sigma, dtype=float)[0, rec])
    sd = np.where(np.isfinite(sd), sd, 0.0)
    dev = np.einsum("njp,np->nj", b[idx, 0][:, rec, :], z) + sd * eps
    if cand.robust_df is not None:  # the Student-t predictive: a Gaussian over a chi2 scale
        dev /= np.sqrt(rng.chisquare(cand.robust_df, size=N_PRED) / cand.robust_df)[:, None]
    sim = f0[idx, 0][:, rec] + dev
    return sim, lpd, lpd_se


def _student_t_scores(mu, scale, dof, y, metal, ore_t, head, rng) -> dict:
    from scipy import stats

    ok = np.isfinite(y) & np.isfinite(mu) & np.isfinite(scale) & (scale > 0)
    lpd = float(np.sum(stats.t.logpdf(y[ok], dof, loc=mu[ok], scale=scale[ok])))
    sim = mu + scale * rng.standard_t(dof, size=(N_PRED, 3))
    return _score_samples(sim, lpd, y, metal, ore_t, head)


def baseline_scores(kind: str, data, train, j: int, metal_j, *, seed: int = 0) -> dict:
    """Scores of a naive baseline fitted on ``train`` predicting quarter ``j`` (see module doc)."""
    rec = data.y[:, list(REC_INDEX)]
    tr = np.asarray(train)
    rng = np.random.default_rng([seed, 104729, j, len(tr)])
    if kind == "naive_mean":
        r = rec[tr]
        n = np.sum(np.isfinite(r), axis=0)
        mu = np.nanmean(r, axis=0)
        sd = np.nanstd(r, axis=0, ddof=1)
        scale = sd * np.sqrt(1.0 + 1.0 / n)
        dof = float(max(int(n.min()) - 1, 1))
    elif kind == "naive_last":
        before = tr[tr < j]
        last = before.max() if before.size else tr[tr > j].min()
        mu = rec[last]
        diffs = np.diff(rec[np.sort(tr)], axis=0)
        scale = np.sqrt(np.nanmean(diffs**2, axis=0))
        dof = float(max(diffs.shape[0], 1))
    else:
        raise ValidationError(f"baseline: found {kind!r}; allowed: {', '.join(BASELINES)}")
    return _student_t_scores(
        mu, scale, dof, data.y[j, list(REC_INDEX)], metal_j, data.ore_t[j], data.head[j], rng
    )


def reported_metal(data, periods=None) -> np.ndarray:
    """The releases' metal in concentrates (n, 3): oz Ag, lb Pb, lb Zn, NaN where not given."""
    from kenomill.data import reported_periods

    ds = reported_periods("quarter") if periods is None else periods
    have = [str(p) for p in ds.period.values]
    out = np.full((data.n, 3), np.nan)
    for i, p in enumerate(data.periods):
        if p in have:
            for m, col in enumerate(("ag_oz", "pb_lb", "zn_lb")):
                if col in ds:
                    out[i, m] = float(ds[col].sel(period=p).values)
    return out


# ----------------------------------------------------------------------------- the comparison
def validate_candidate(
    cand: Candidate, data, metal, *, seed: int = 0, schemes=("loqo", "rolling")
) -> list[dict]:
    """One row per (scheme, held-out quarter) of ``cand``'s scores, plus the fold's Pareto k."""
    full = fold_posterior(cand, data, np.arange(data.n), seed=seed)
    x_full = full.x[np.argmax(full.log_w)]
    rows = []
    done: dict[tuple[int, ...], WeightedDraws] = {}  # rolling k = n - 1 is the last LOQO fold
    for scheme in schemes:
        for train, j in folds(data.n, scheme):
            key = tuple(int(i) for i in train)
            if key not in done:
                done[key] = fold_posterior(cand, data, train, seed=seed, x0=x_full)
            post = done[key]
            sim, lpd, lpd_se = predict_quarter(post, cand, data, j, seed=seed)
            sc = _score_samples(sim, lpd, data.y[j, list(REC_INDEX)], metal[j], data.ore_t[j], data.head[j])
            sc["lpd_se"] = lpd_se
            rows.append(
                {
                    "candidate": cand.name,
                    "scheme": scheme,
                    "period": data.periods[j],
                    "pareto_k": post.pareto_k,
                    "ess": post.ess,
                    **sc,
                }
            )
    return rows


def validate_baselines(data, metal, *, seed: int = 0, schemes=("loqo", "rolling")) -> list[dict]:
    rows = []
    for kind in BASELINES:
        for scheme in schemes:
            for train, j in folds(data.n, scheme):
                sc = baseline_scores(kind, data, train, j, metal[j], seed=seed)
                rows.append(
                    {
                        "candidate": kind,
                        "scheme": scheme,
                        "period": data.periods[j],
                        "pareto_k": float("nan"),
                        "ess": float("nan"),
                        **sc,
                        "lpd_se": 0.0,  # a closed-form density: no Monte Carlo error
                    }
                )
    return rows


def _one(args):
    from threadpoolctl import threadpool_limits

    cand, data, metal, seed = args
    with threadpool_limits(1):
        return validate_candidate(cand, data, metal, seed=seed)


def _map_candidates(cands, data, metal, seed, workers, progress):
    """Each candidate's rows, in the order of ``cands``, from ``workers`` processes."""
    import os

    n = len(cands)
    workers = min(n, os.cpu_count() or 1) if workers is None else max(1, min(int(workers), n))
    jobs = [(c, data, metal, seed) for c in cands]
    if workers == 1:
        for job in jobs:
            out = _one(job)
            if progress is not None:
                progress(1)
            yield out
        return
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor, as_completed

    results: dict[int, list] = {}
    with ProcessPoolExecutor(max_workers=workers, mp_context=mp.get_context("spawn")) as ex:
        futs = {ex.submit(_one, job): i for i, job in enumerate(jobs)}
        for f in as_completed(futs):
            results[futs[f]] = f.result()
            if progress is not None:
                progress(1)
    for i in range(n):
        yield results[i]


def stacking_weights(lpd: np.ndarray) -> np.ndarray:
    """Stacking weights (Yao et al. 2018) from held-out log densities ``lpd`` (quarters, models):
    the simplex weights maximising ``sum_i log sum_k w_k exp(lpd_ik)``."""
    from scipy import optimize

    lpd = np.asarray(lpd, dtype=float)
    k = lpd.shape[1]
    if k == 1:
        return np.ones(1)
    lpd = np.where(np.isfinite(lpd), lpd, -1e6)

    def obj(z):
        w = np.exp(z - np.logaddexp.reduce(z))
        return -np.sum(np.logaddexp.reduce(lpd + np.log(np.maximum(w, 1e-300)), axis=1))

    best = None
    for z0 in (np.zeros(k), *np.eye(k) * 5):
        r = optimize.minimize(obj, z0, method="Nelder-Mead" if k <= 2 else "BFGS")
        if best is None or r.fun < best.fun:
            best = r
    z = best.x
    return np.exp(z - np.logaddexp.reduce(z))


def summarise(rows: list[dict]) -> pd.DataFrame:
    """Mean score per (candidate, scheme): the comparison table (one row per candidate)."""
    df = pd.DataFrame(rows)
    agg = df.groupby(["candidate", "scheme"], sort=False)[list(SCORES)].mean().unstack("scheme")
    agg.columns = [f"{s}_{sch}" for s, sch in agg.columns]
    # Monte Carlo SE of each mean lpd: folds independent, SE of the mean = sqrt(sum se^2) / n
    se = df.groupby(["candidate", "scheme"], sort=False)["lpd_se"].agg(
        lambda v: float(np.sqrt(np.sum(v**2)) / len(v))
    )
    se = se.unstack("scheme")
    for sch in se.columns:
        agg[f"lpd_se_{sch}"] = se[sch]
    kmax = df.groupby("candidate", sort=False)["pareto_k"].max()
    agg["pareto_k_max"] = kmax
    return agg.reset_index()


@dataclass
class Comparison:
    """What :func:`compare` found: the per-quarter scores, the table, stacking weights, the choice."""

    rows: pd.DataFrame
    table: pd.DataFrame
    stacking: dict
    chosen: str
    beats_baselines: dict
    n_periods: int
    #: candidates whose LOQO lpd is within 2 Monte Carlo SE of the chosen one's
    ties: list = field(default_factory=list)

    def to_meta(self) -> dict:
        """What a calibration file records of the comparison that chose its model."""
        return {
            "method": "exact leave-one-quarter-out and rolling origin (kenomill.validation.compare)",
            "n_periods": self.n_periods,
            "chosen": self.chosen,
            "ties_within_monte_carlo_error": list(self.ties),
            "beats_baselines": self.beats_baselines,
            "stacking": self.stacking,
            "table": [
                {k: (round(v, 4) if isinstance(v, float) else v) for k, v in row.items()}
                for row in self.table.to_dict(orient="records")
            ],
        }

    def describe_choice(self) -> str:
        b = ", ".join(f"{k}: {'yes' if v else 'NO'}" for k, v in self.beats_baselines.items())
        tie = (
            f"; within the importance sampling's Monte Carlo error (2 SE) of: {', '.join(self.ties)}"
            if self.ties
            else ""
        )
        return f"default by prediction: {self.chosen} (beats both naive baselines on {b}){tie}"


def compare(
    candidates=None, data=None, *, periods=None, seed: int = 0, progress=None, workers: int | None = 1
) -> Comparison:
    """Compare ``candidates`` (names or :class:`Candidate`; default :data:`CANDIDATES`) by
    exact LOQO and rolling-origin prediction of ``data`` (FitData; default the packaged quarters)
    next to the naive baselines. ``progress(n)`` is called after each candidate. ``workers``
    processes share the candidates (default 1: in this process; None: one per core, at most one
    per candidate; more than one needs an importable ``__main__``, as in a script, a notebook or
    the command line); each candidate is computed from its own seeded streams, so the result is
    the same for any number.

    The choice: the candidate with the highest mean LOQO log predictive density among those
    that beat both baselines on LOQO and rolling-origin lpd; if none does, the best by lpd
    all the same (and ``beats_baselines`` says so).
    """
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):  # one BLAS thread: same digits whatever the machine's threads
        return _compare(candidates, data, periods=periods, seed=seed, progress=progress, workers=workers)


def _compare(candidates, data, *, periods, seed, progress, workers) -> Comparison:
    from kenomill.calibrate import fit_data

    data = time_order(fit_data() if data is None else data)
    if data.n < ROLLING_MIN + 1:
        raise ValidationError(
            f"periods: found {data.n} base periods; allowed: at least {ROLLING_MIN + 1} "
            "for rolling-origin validation"
        )
    cands = [c if isinstance(c, Candidate) else get_candidate(c) for c in (candidates or CANDIDATES)]
    metal = reported_metal(data, periods)
    rows = validate_baselines(data, metal, seed=seed)
    for r in _map_candidates(cands, data, metal, seed, workers, progress):
        rows += r
    df = pd.DataFrame(rows)
    table = summarise(rows)
    loqo = df[df.scheme == "loqo"].pivot(index="period", columns="candidate", values="lpd")
    names = [c.name for c in cands]
    w = stacking_weights(loqo[names].to_numpy())
    stacking = dict(zip(names, (float(v) for v in w), strict=True))
    t = table.set_index("candidate")
    base_lpd = {sch: max(t.loc[b, f"lpd_{sch}"] for b in BASELINES) for sch in ("loqo", "rolling")}
    beats = {
        n: bool(t.loc[n, "lpd_loqo"] > base_lpd["loqo"] and t.loc[n, "lpd_rolling"] > base_lpd["rolling"])
        for n in names
    }
    pool = [n for n in names if beats[n]] or names
    chosen = max(pool, key=lambda n: t.loc[n, "lpd_loqo"])
    # candidates the Monte Carlo error cannot tell from the chosen one (within 2 SE of the difference)
    se_c = t.loc[chosen, "lpd_se_loqo"]
    ties = [
        n
        for n in names
        if n != chosen
        and t.loc[chosen, "lpd_loqo"] - t.loc[n, "lpd_loqo"]
        <= 2.0 * math.hypot(se_c, t.loc[n, "lpd_se_loqo"])
    ]
    table["stacking_weight"] = [stacking.get(n, float("nan")) for n in table["candidate"]]
    table = table.sort_values("lpd_loqo", ascending=False, kind="stable").reset_index(drop=True)
    cb = {}
    for sch in ("loqo", "rolling"):
        for sc in ("lpd", "crps", "mape_metal"):
            better = (lambda a, b: a > b) if sc == "lpd" else (lambda a, b: a < b)
            cb[f"{sc}_{sch}"] = all(
                better(t.loc[chosen, f"{sc}_{sch}"], t.loc[b, f"{sc}_{sch}"]) for b in BASELINES
            )
    return Comparison(
        rows=df,
        table=table,
        stacking=stacking,
        chosen=chosen,
        beats_baselines=cb,
        n_periods=data.n,
        ties=ties,
    )


# ----------------------------------------------------------------------------- prior sensitivity
#: the priors on ``ktau_pb`` that :func:`prior_sensitivity` compares: (label, (median, log-SD) or
#: None for uniform within the bounds); the packaged prior is median 6
SENSITIVITY_PRIORS = (
    ("log-normal, median 3", (3.0, 0.75)),
    ("log-normal, median 6 (packaged)", (6.0, 0.75)),
    ("log-normal, median 12", (12.0, 0.75)),
    ("uniform within the bounds", None),
)
#: the throughputs [t/d, calendar] and the feed at which lead recovery is shown
SENSITIVITY_TPD = (250.0, 300.0, 350.0, 400.0)
SENSITIVITY_FEED = {"head_ag_gpt": 800.0, "head_pb_pct": 10.0, "head_zn_pct": 5.5, "availability_pct": 92.0}


def prior_sensitivity(
    data=None, *, model=None, n_steps: int = 4000, seed: int = 0, n_draws: int = 4000, progress=None
) -> pd.DataFrame:
    """Lead recovery at :data:`SENSITIVITY_TPD` under each prior of :data:`SENSITIVITY_PRIORS`.

    For each prior on ``ktau_pb`` (the others as packaged), the quarter-level posterior of
    ``model`` (default :data:`kenomill.calibrate.DEFAULT_MODEL`) on ``data`` is sampled
    (:func:`kenomill.bayes.sample`, convergence not enforced but its R-hat reported) and
    :func:`kenomill.calibrate.predict` gives the 90 % band of lead recovery at each throughput
    (common draws), :data:`SENSITIVITY_FEED` otherwise. One row per prior: ``ktau_pb`` 5/50/95 %,
    ``rec_pb_p05_<tpd>`` and ``rec_pb_p95_<tpd>`` [%], ``rhat_max``. ``progress(n)`` after each.
    """
    from kenomill import calibrate

    name = model or calibrate.DEFAULT_MODEL
    data = calibrate.fit_data() if data is None else data
    spec = recovery.get_model(name)
    if "ktau_pb" not in spec.free:
        raise ValidationError(f"model: found {name!r}; allowed: a model with a free ktau_pb")
    days = 92.0
    feed = pd.DataFrame(
        {
            "period": [f"{t:g} t/d" for t in SENSITIVITY_TPD],
            "ore_processed_t": [t * days for t in SENSITIVITY_TPD],
            "tpd": list(SENSITIVITY_TPD),
            "days": [days] * len(SENSITIVITY_TPD),
            **{k: [v] * len(SENSITIVITY_TPD) for k, v in SENSITIVITY_FEED.items()},
        }
    )
    cal = calibrate.fit(name, data, starts=4, seed=seed).to_calibration()
    j = spec.free.index("ktau_pb")
    rows = []
    for label, prior in SENSITIVITY_PRIORS:
        tp = {k: v for k, v in bayes.THETA_PRIORS.items() if k != "ktau_pb"}
        if prior is not None:
            tp["ktau_pb"] = prior
        post = bayes.sample(name, data, n_steps=n_steps, seed=seed, theta_priors=tp, check=False)
        cal.posterior = post.draws()
        pred = calibrate.predict(cal, feed, n_draws=n_draws, seed=seed, common_draws=True)
        q = np.percentile(post.theta[:, j], [5, 50, 95])
        row = {"prior": label, "ktau_pb_p05": q[0], "ktau_pb_p50": q[1], "ktau_pb_p95": q[2]}
        for i, t in enumerate(SENSITIVITY_TPD):
            row[f"rec_pb_p05_{t:g}"] = float(pred["rec_pb_pct_p05"].values[i])
            row[f"rec_pb_p95_{t:g}"] = float(pred["rec_pb_pct_p95"].values[i])
        row["rhat_max"] = max(post.rhat.values())
        rows.append(row)
        if progress is not None:
            progress(1)
    return pd.DataFrame(rows)
