"""Bayesian calibration at the level of the quarter: posterior draws with emcee.

The statistical model
---------------------
Quarter ``i`` of the mill has five offsets ``o_i`` (:data:`kenomill.recovery.OFFSET_NAMES`:
logit lead recovery, logit zinc-circuit recovery, logit silver-to-lead-con recovery, log
gangue to each concentrate), a random effect common to all of its figures: a campaign, a
mechanical problem or an ore type moves every figure of the quarter together. They are
drawn ``o_i ~ N(0, S R S)`` with scales ``S = diag(s)`` and a correlation ``R`` whose one
free entry is the lead-silver correlation ``rho`` (the quarters' fitted offsets correlate
at about -0.7: a quarter of poor lead recovery keeps more of its silver than galena alone
would); the other correlations are zero because six quarters cannot estimate ten.
On top, each printed figure ``y_ij`` carries the error model's measurement error
``sigma_ij`` (:mod:`kenomill.errormodel`). The offsets are integrated out by linearising
the mill response in them: ``y_i ~ N(f(theta, a_i), J_i S R S J_i' + diag(sigma_i^2))``
with ``J_i`` the forward-difference Jacobian of the nine figures in the five offsets at
``o = 0``. The likelihood is therefore a product over quarters, not over the 54 figures:
six quarters are six observations of the mill.

Unknowns: the model's free parameters ``theta``, ``log s`` (5), ``atanh rho`` and the
availability of each quarter whose release gives none.

Priors (each with its source or stated as an assumption): see :data:`PRIORS_DOC`.

Sampling: emcee's affine-invariant ensemble (Foreman-Mackey et al. 2013), chosen because
it needs no gradients (the response has kinks at its clips and bounds) and evaluates all
walkers in one vectorised call of the numba response. Convergence is checked with ArviZ
(rank-normalised split R-hat and bulk ESS, Vehtari et al. 2021) over the walkers as
chains; :class:`ConvergenceError` is raised when not reached.

References
----------
Foreman-Mackey, D., Hogg, D.W., Lang, D., Goodman, J., 2013. emcee: the MCMC hammer.
PASP 125, 306-312.
Vehtari, A., Gelman, A., Simpson, D., Carpenter, B., Buerkner, P.-C., 2021. Rank-normalization,
folding, and localization: an improved R-hat. Bayesian Analysis 16, 667-718.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from kenomill import recovery
from kenomill.errors import ValidationError

#: SD of the half-normal prior on each offset's quarter-to-quarter scale s [logit or log units].
#: Assumption: a running mill's quarter rarely moves a recovery by more than about one logit
#: unit (90 % -> 96 %) or its gangue pull by a factor e; half-normal(0.5) puts 95 % below 1.
SCALE_PRIOR_SD = 0.5
#: availability prior of quarters whose release gives none: (mean, SD) [fraction]. Mean of the
#: two reported availabilities (96 % in the 2011Q4 release, 90 % in "Alexco Reports Silver
#: Production for Second Quarter 2012", 16 Jul 2012); the SD of 4 points covers both.
AVAILABILITY_PRIOR = (0.92, 0.04)
#: 2012Q1: "Alexco Reports Silver Production Results for First Quarter 2012" (16 Apr 2012)
#: puts its lower throughput down to "planned downtime related to a previously-announced
#: campaign of throughput and metallurgical testing". Assumption: that costs about as much
#: time as 2012Q2's mechanical delays, so its prior is centred on 2012Q2's reported 90 %
#: with the same SD (instead of the 92 % of the other quarters).
AVAILABILITY_PRIOR_BY_PERIOD = {"2012Q1": (0.90, 0.04)}
AVAILABILITY_RANGE = (0.5, 1.0)
#: log-normal priors on rate parameters: name -> (median, SD of the log). ``ktau_pb`` (k tau of
#: galena at 250 t/d): six quarters at 201-245 t/d cannot tell a mill far from its
#: residence-time limit (large k tau) from one near it, so the ridge rmax x K(k tau) runs to
#: the bound. Public facts bound it: 2011Q1 had daily throughputs up to 320 t/d and 90 %
#: lead recovery (Alexco news release, 3 May 2011), the mill "runs at 250 tonnes per day"
#: (Northern Miner, 2012) and was later licensed for 400 t/d. Assumption: median k tau 6
#: (8 mixed cells: 6 % of the floatable galena lost at 250 t/d, 10 % at 400 t/d), a factor
#: e^0.75 ~ 2 either way at one SD. Prior sensitivity: ``kenomill calibrate --sensitivity``
#: (:func:`kenomill.validation.prior_sensitivity`).
THETA_PRIORS = {"ktau_pb": (6.0, 0.75), "ktau_zn": (6.0, 0.75), "zn_pb": (0.08, 0.5), "pb_zn": (0.3, 0.5)}
# ``zn_pb`` and ``pb_zn`` (zinc to the lead con, lead to the zinc con) are fixed constants in the
# named models; the candidates that free them (kenomill.validation) use the priors above: no figure
# of the releases identifies them. ``zn_pb``: Glencore (Dec 2010) found "no notable deleterious
# elements" in Bellekeno concentrates, so zinc in the lead con sat below the usual 5-7 % penalty
# threshold (Pulacayo technical report, p. 238); at the quarters' mass pulls that is zn_pb below
# about 0.16. Assumption: median 0.08 (about 3 % Zn in the lead con), a factor e^0.5 either way at
# one SD. ``pb_zn``: assumption, median 0.3 of the lead-circuit tail lead, same spread.

#: ramp-up candidate: offsets whose mean moves linearly with time (the recoveries), and the SD of
#: the Gaussian prior on each slope [logit units per year]. Assumption: a new mill's recoveries
#: improve in its first years by up to about half a logit unit a year (e.g. 88 -> 92 %); no source
#: gives Bellekeno's ramp-up, so the prior is centred on no trend.
TREND_OFFSETS = (recovery.O_LOGIT_REC_PB, recovery.O_LOGIT_REC_ZN, recovery.O_LOGIT_REC_AG_PBCON)
TREND_PRIOR_SD = 0.5

PRIORS_DOC = (
    ("theta", "uniform within the bounds of kenomill.recovery.FULL_PARAMS (assumption: physical ranges)"),
    (
        "ktau_pb, ktau_zn",
        "log-normal(median 6, log-SD 0.75): 320 t/d days in 2011Q1 (3 May 2011 release), "
        "250 t/d running rate (Northern Miner 2012), 400 t/d licence; assumption on the spread",
    ),
    (
        "zn_pb, pb_zn (candidates that free them)",
        "log-normal(median 0.08 / 0.3, log-SD 0.5): no notable deleterious elements in Bellekeno "
        "concentrates (Glencore, Dec 2010) below a 5-7 % Zn penalty threshold (Pulacayo technical "
        "report, p. 238); assumption on the rest",
    ),
    (
        "ramp-up slopes (ramp-up candidates)",
        f"N(0, {TREND_PRIOR_SD}) logit units per year on the lead, zinc and silver offsets (assumption)",
    ),
    ("s (5 offset scales)", f"half-normal(0, {SCALE_PRIOR_SD}) (assumption, see SCALE_PRIOR_SD)"),
    ("rho (lead-silver offset correlation)", "uniform(-1, 1) (assumption: no information)"),
    (
        "availability, quarters without one",
        f"N({AVAILABILITY_PRIOR[0]}, {AVAILABILITY_PRIOR[1]}) in [0.5, 1]: mean of the reported 96 % "
        "(2011Q4) and 90 % (2012Q2, release of 16 Jul 2012)",
    ),
    (
        "availability 2012Q1",
        "N(0.90, 0.04): planned test-campaign downtime (release of 16 Apr 2012); assumption: as 2012Q2",
    ),
)

#: degrees of freedom of the robust likelihood (``kenomill calibrate --gross-errors robust``):
#: 4 is the usual robust choice (Lange, Little & Taylor 1989): tails heavy enough that a quarter
#: with a gross error pulls the parameters far less than under a Gaussian, a finite variance.
ROBUST_DF = 4.0
#: offset step of the forward-difference Jacobian [logit / log units]
_H = 1e-4
#: index of the correlated pair in OFFSET_NAMES (logit_rec_pb, logit_rec_ag_pbcon)
_RHO_PAIR = (0, 2)


class ConvergenceError(ValidationError):
    """The sampler did not converge (R-hat too high or effective sample size too low)."""


@dataclass
class Posterior:
    """Draws of a :func:`sample` run and what they were sampled from."""

    model: str
    periods: tuple[str, ...]
    theta: np.ndarray  # (S, k)
    scale: np.ndarray  # (S, 5)
    rho: np.ndarray  # (S,)
    availability: np.ndarray  # (S, n) used per quarter (known ones constant)
    log_post: np.ndarray  # (S,)
    rhat: dict = field(default_factory=dict)
    ess: dict = field(default_factory=dict)
    acceptance: float = float("nan")
    n_steps: int = 0
    n_walkers: int = 0

    @property
    def n_draws(self) -> int:
        return self.theta.shape[0]

    def chol(self) -> np.ndarray:
        """Lower Cholesky factor of the offsets' correlation per draw (S, 5, 5)."""
        return correlation_chol(self.rho)

    def draws(self) -> dict[str, np.ndarray]:
        """The contract-2 dict of :meth:`kenomill.calibration_file.Calibration.posterior_draws`."""
        s_n = self.n_draws
        return {
            "theta": np.ascontiguousarray(self.theta, dtype=np.float64),
            "offset_mean": np.zeros((s_n, recovery.N_OFFSETS)),
            "scatter_sd": np.ascontiguousarray(self.scale, dtype=np.float64),
            "scatter_chol": self.chol(),
            "rho_pb_ag": self.rho.astype(np.float64),
        }


def correlation_chol(rho) -> np.ndarray:
    """Cholesky factors of the offset correlation with only the lead-silver entry ``rho`` (S, 5, 5)."""
    rho = np.atleast_1d(np.asarray(rho, dtype=float))
    m = recovery.N_OFFSETS
    c = np.broadcast_to(np.eye(m), (rho.size, m, m)).copy()
    a, b = _RHO_PAIR
    c[:, b, a] = rho
    c[:, b, b] = np.sqrt(1.0 - rho**2)
    return c


class LogPosterior:
    """Vectorised log posterior of a model on :class:`kenomill.calibrate.FitData`.

    Call with ``x`` (W, d): rows of ``[theta (k), log s (5), atanh rho, a_unknown (m)]``;
    returns (W,) log posterior (``-inf`` outside the support).
    """

    def __init__(
        self, model, data, *, base=None, exclude=None, theta_priors=None, trend_time=None, robust_df=None
    ):
        from kenomill.calibrate import _FIT_INDEX

        self.spec = recovery.get_model(model)
        self.data = data
        self.base = self.spec.base_full() if base is None else np.asarray(base, dtype=float)
        self.k = len(self.spec.free)
        self.lo, self.hi = self.spec.bounds()
        self.unknown = np.flatnonzero(np.isnan(data.availability))
        self.m = len(self.unknown)
        #: ramp-up: time of each quarter [years] for a linear trend in the mean of the recovery
        #: offsets (:data:`TREND_OFFSETS`); None = no trend (offsets centred on 0)
        self.trend_time = None if trend_time is None else np.asarray(trend_time, dtype=float)
        self.n_trend = 0 if trend_time is None else len(TREND_OFFSETS)
        #: robust likelihood: a quarter's figures multivariate Student-t with these degrees of
        #: freedom instead of Gaussian (None: Gaussian), so that a gross error weighs less
        self.robust_df = None if robust_df is None else float(robust_df)
        self.d = self.k + recovery.N_OFFSETS + 1 + self.m + self.n_trend
        mu = [AVAILABILITY_PRIOR_BY_PERIOD.get(data.periods[i], AVAILABILITY_PRIOR) for i in self.unknown]
        self.a_mu = np.array([v[0] for v in mu])
        self.a_sd = np.array([v[1] for v in mu])
        y = np.array(data.y, dtype=float)
        obs = np.isfinite(y) & np.isfinite(data.sigma)
        if exclude is not None:
            obs &= ~np.asarray(exclude, dtype=bool)
        self.obs = obs
        self.y = np.where(obs, y, 0.0)
        self.var = np.where(obs, np.asarray(data.sigma, dtype=float) ** 2, 1.0)
        self.fit_index = _FIT_INDEX
        n = data.n
        self.n = n
        # row r of a walker: quarter r // 6, offset perturbation r % 6 - 1 (-1 = none)
        off = np.zeros((6, recovery.N_OFFSETS))
        off[1:] = _H * np.eye(recovery.N_OFFSETS)
        self._off1 = off
        self.n_obs = int(obs.sum())
        #: log-normal priors (index in theta, (log median, log SD))
        self.theta_priors = [
            (self.spec.free.index(nm), (math.log(med), sd))
            for nm, (med, sd) in (THETA_PRIORS if theta_priors is None else theta_priors).items()
            if nm in self.spec.free
        ]

    def unpack(self, x):
        x = np.atleast_2d(x)
        k = self.k
        theta = self.lo + (self.hi - self.lo) * _sigmoid(x[:, :k])
        scale = np.exp(x[:, k : k + 5])
        rho = np.tanh(x[:, k + 5])
        a = np.tile(np.where(np.isnan(self.data.availability), 0.0, self.data.availability), (x.shape[0], 1))
        a[:, self.unknown] = x[:, k + 6 : k + 6 + self.m]
        return theta, scale, rho, a

    def offset_mean(self, x) -> np.ndarray:
        """Mean of each quarter's offsets per walker (W, n, 5): the ramp-up trend, else 0."""
        x = np.atleast_2d(x)
        mean = np.zeros((x.shape[0], self.n, recovery.N_OFFSETS))
        if self.n_trend:
            beta = x[:, self.d - self.n_trend :]
            mean[:, :, list(TREND_OFFSETS)] = beta[:, None, :] * self.trend_time[None, :, None]
        return mean

    def log_prior(self, x) -> np.ndarray:
        theta, scale, rho, a = self.unpack(x)
        k = self.k
        ok = np.all(np.isfinite(theta), axis=1)
        u = x[:, :k]
        # uniform on theta within its bounds, sampled in u = logit of its position: Jacobian p (1 - p)
        lp0 = np.sum(-np.logaddexp(0.0, -u) - np.logaddexp(0.0, u), axis=1)
        au = a[:, self.unknown]
        ok &= np.all((au >= AVAILABILITY_RANGE[0]) & (au <= AVAILABILITY_RANGE[1]), axis=1)
        ok &= np.abs(rho) < 0.999
        ls = x[:, k : k + 5]
        # half-normal on s, sampled in log s: density of s times the Jacobian ds/dlog s = s
        lp = lp0 + np.sum(-0.5 * (scale / SCALE_PRIOR_SD) ** 2 + ls, axis=1)
        # uniform rho, sampled in atanh rho: Jacobian 1 - rho^2
        lp += np.log1p(-np.minimum(rho**2, 1 - 1e-12))
        for j, (mu, sd) in self.theta_priors:
            lt = np.log(np.maximum(theta[:, j], 1e-300))  # a bound at 0 has zero prior density
            lp += -0.5 * ((lt - mu) / sd) ** 2 - lt
        lp += np.sum(-0.5 * ((au - self.a_mu) / self.a_sd) ** 2, axis=1)
        if self.n_trend:
            lp += np.sum(-0.5 * (x[:, self.d - self.n_trend :] / TREND_PRIOR_SD) ** 2, axis=1)
        return np.where(ok, lp, -np.inf)

    def _linearised(self, x):
        """Figures at the offsets' mean (W, n, 9), their offset Jacobian (W, n, 5, 9) and the
        offsets' covariance factor (W, 5, 5)."""
        from kenomill.calibrate import mill_outputs, operating_q_ratio

        theta, scale, rho, a = self.unpack(x)
        w = theta.shape[0]
        n = self.n
        p = np.tile(self.base, (w, 1))
        p[:, self.spec.free_index] = np.clip(theta, self.lo, self.hi)
        rows_p = np.repeat(p, n * 6, axis=0)
        ore = np.tile(np.repeat(self.data.ore_t, 6), w)
        head = np.tile(np.repeat(self.data.head, 6, axis=0), (w, 1))
        q = operating_q_ratio(np.tile(np.repeat(self.data.tpd, 6), w), np.repeat(a, 6, axis=1).reshape(-1))
        off = np.tile(self._off1, (w * n, 1))
        if self.n_trend:
            off += np.repeat(self.offset_mean(x).reshape(w * n, -1), 6, axis=0)
        out = mill_outputs(self.spec, rows_p, ore, head, q, off)[:, self.fit_index]
        out = out.reshape(w, n, 6, -1)
        f0 = out[:, :, 0, :]  # (w, n, 9)
        jac = (out[:, :, 1:, :] - f0[:, :, None, :]) / _H  # (w, n, 5, 9)
        chol = correlation_chol(rho)  # (w, 5, 5)
        # S L: the offsets' covariance factor
        return f0, jac, scale[:, :, None] * chol

    def moments(self, x) -> tuple[np.ndarray, np.ndarray]:
        """Mean (W, n, 9) of the nine figures per walker and quarter, and the factor ``B``
        (W, n, 9, 5) of their offset covariance ``B B'`` (measurement error not included)."""
        f0, jac, sl = self._linearised(x)
        # J S L: columns of the offsets' covariance factor mapped to the figures
        return f0, np.einsum("wnoj,wop->wnjp", jac, sl)

    def log_like_quarters(self, x) -> np.ndarray:
        """Log likelihood per walker and quarter (W, n), offsets integrated out (numba kernel
        :func:`kenomill._kernels.quarter_logpdf`; NumPy twin :func:`gaussian_log_density`)."""
        from kenomill._kernels import quarter_logpdf

        f0, jac, sl = self._linearised(x)
        out = np.empty(f0.shape[:2])
        quarter_logpdf(
            self.y,
            np.ascontiguousarray(f0),
            np.ascontiguousarray(jac),
            np.ascontiguousarray(sl),
            self.var,
            self.obs,
            0.0 if self.robust_df is None else self.robust_df,
            out,
        )
        return np.where(np.isfinite(out), out, -np.inf)

    def __call__(self, x) -> np.ndarray:
        x = np.atleast_2d(x)
        lp = self.log_prior(x)
        out = np.full(x.shape[0], -np.inf)
        ok = np.isfinite(lp)
        if ok.any():
            out[ok] = lp[ok] + self.log_like_quarters(x[ok]).sum(1)
        return out

    def start(self, theta0=None) -> np.ndarray:
        """A start: ``theta0`` (default: the model defaults), s = 0.2, rho = 0, prior-mean availability."""
        th = self.spec.defaults() if theta0 is None else np.asarray(theta0, dtype=float)
        pos = np.clip((th - self.lo) / (self.hi - self.lo), 1e-3, 1 - 1e-3)
        return np.concatenate(
            [np.log(pos / (1 - pos)), np.full(5, math.log(0.2)), [0.0], self.a_mu, np.zeros(self.n_trend)]
        )


def gaussian_log_density(y, f0, b, var, obs, df=None) -> np.ndarray:
    """``log N(y | f0, B B' + diag(var))`` over the figures where ``obs`` (W, n) per row.

    ``y``, ``var``, ``obs``: (n, 9); ``f0`` (W, n, 9); ``b`` (W, n, 9, r). Figures not observed
    are left out (their rows and columns masked), so a quarter with no figures scores 0.
    With ``df``, the multivariate Student-t of that scale matrix and ``df`` degrees of freedom.
    """
    b = b * obs[None, :, :, None]
    cov = b @ np.swapaxes(b, -1, -2)
    idx = np.arange(cov.shape[-1])
    cov[..., idx, idx] += np.where(obs, var, 1.0)[None]
    r = np.where(obs[None], np.where(obs, y, 0.0)[None] - f0, 0.0)
    try:
        lc = np.linalg.cholesky(cov)
    except np.linalg.LinAlgError:
        return np.full(f0.shape[:2], -np.inf)
    z = np.linalg.solve(lc, r[..., None])[..., 0]
    logdet = 2.0 * np.sum(np.log(np.diagonal(lc, axis1=-2, axis2=-1)) * obs[None], axis=-1)
    nobs = obs.sum(1)
    q = np.sum(z**2, axis=-1)
    if df is None:
        ll = -0.5 * (q + logdet + nobs * math.log(2 * math.pi))
    else:
        from scipy.special import gammaln

        ll = (
            gammaln(0.5 * (df + nobs))
            - gammaln(0.5 * df)
            - 0.5 * nobs * math.log(df * math.pi)
            - 0.5 * logdet
            - 0.5 * (df + nobs) * np.log1p(q / df)
        )
    return np.where(np.isfinite(ll), ll, -np.inf)


def _sigmoid(u):
    return 0.5 * (1.0 + np.tanh(0.5 * u))


def find_mode(lp: LogPosterior, x0: np.ndarray) -> np.ndarray:
    """Mode of ``lp`` by L-BFGS-B with central-difference gradients (one vectorised call each)."""
    from scipy import optimize

    d = lp.d
    h = 1e-5
    eye = np.eye(d) * h
    lo = np.full(d, -np.inf)
    hi = np.full(d, np.inf)
    k = lp.k
    lo[k + 5], hi[k + 5] = -3.0, 3.0  # atanh rho: |rho| < 0.995
    lo[k + 6 : k + 6 + lp.m] = AVAILABILITY_RANGE[0] + 1e-3
    hi[k + 6 : k + 6 + lp.m] = AVAILABILITY_RANGE[1] - 1e-3
    x0 = np.clip(x0, lo + 1e-9, hi - 1e-9)

    def fg(x):
        v = lp(np.vstack([x[None], x + eye, x - eye]))
        if not np.all(np.isfinite(v)):
            return 1e30, np.zeros(d)
        return -v[0], -(v[1 : d + 1] - v[d + 1 :]) / (2 * h)

    res = optimize.minimize(
        fg, x0, jac=True, method="L-BFGS-B", bounds=list(zip(lo, hi, strict=True)), options={"maxiter": 500}
    )
    return res.x


def hessian(lp: LogPosterior, x: np.ndarray, h: float = 1e-3) -> np.ndarray:
    """Hessian of ``lp`` at ``x`` by central differences, all points in one vectorised call."""
    d = x.size
    pts = [x]
    pairs = [(i, j) for i in range(d) for j in range(i + 1, d)]
    e = np.eye(d) * h
    for i in range(d):
        pts += [x + e[i], x - e[i]]
    for i, j in pairs:
        pts += [x + e[i] + e[j], x + e[i] - e[j], x - e[i] + e[j], x - e[i] - e[j]]
    v = lp(np.array(pts))
    f0 = v[0]
    hess = np.empty((d, d))
    for i in range(d):
        hess[i, i] = (v[1 + 2 * i] - 2 * f0 + v[2 + 2 * i]) / h**2
    base = 1 + 2 * d
    for m, (i, j) in enumerate(pairs):
        a, b, c, dd = v[base + 4 * m : base + 4 * m + 4]
        hess[i, j] = hess[j, i] = (a - b - c + dd) / (4 * h * h)
    return hess


def laplace_cov(hess: np.ndarray) -> np.ndarray:
    """Covariance of the Laplace approximation, ``(-H)^-1`` with its eigenvalues kept positive."""
    a = -0.5 * (hess + hess.T)
    if not np.all(np.isfinite(a)):
        return np.eye(a.shape[0]) * 0.1
    vals, vecs = np.linalg.eigh(a)
    vals = np.where(vals > 1e-8, vals, 1.0)  # flat or wrong-signed directions: unit variance
    return (vecs / vals) @ vecs.T


def sample(
    model,
    data,
    *,
    n_walkers: int | None = None,
    n_steps: int = 4000,
    burn: int | None = None,
    n_keep: int = 500,
    seed: int = 0,
    theta0=None,
    exclude=None,
    theta_priors=None,
    robust_df=None,
    check: bool = True,
    rhat_max: float = 1.1,
    ess_min: float = 100.0,
    progress=None,
) -> Posterior:
    """Sample the posterior of ``model`` on ``data`` (:class:`kenomill.calibrate.FitData`).

    Parameters
    ----------
    n_walkers : int, optional
        emcee walkers (default ``2 d + 2``, ``d`` the number of unknowns).
    n_steps, burn : int
        Steps per walker and how many are discarded (default a quarter: the walkers start
        from the Laplace approximation at the mode, already spread like the posterior).
    n_keep : int
        Thinned draws returned (evenly spaced over the kept chain).
    seed : int
        Same seed, bit-identical draws (emcee with a seeded ``RandomState`` and a
        deterministic start).
    exclude : bool[n, 9], optional
        Figures left out of the likelihood (e.g. those the reconciliation flags).
    robust_df : float, optional
        Robust likelihood: each quarter's figures multivariate Student-t with ``robust_df``
        degrees of freedom (:data:`ROBUST_DF` is the calibration's choice) instead of Gaussian.
    check : bool
        Raise :class:`ConvergenceError` when R-hat > ``rhat_max`` or bulk ESS < ``ess_min``
        for any parameter.
    progress : callable(n), optional
        Called with the number of steps done, every 100 steps.
    """
    import emcee

    lp = LogPosterior(model, data, exclude=exclude, theta_priors=theta_priors, robust_df=robust_df)
    d = lp.d
    w = n_walkers or 2 * d + 2
    burn = n_steps // 4 if burn is None else burn
    if burn >= n_steps:
        raise ValidationError(f"burn: found {burn}; allowed: below n_steps = {n_steps}")
    # walkers start from the Laplace approximation at the mode: already spread like the
    # posterior, so the burn-in is short
    x0 = find_mode(lp, lp.start(theta0))
    rng = np.random.default_rng(seed)
    cov = laplace_cov(hessian(lp, x0))
    p0 = x0 + rng.standard_normal((w, d)) @ np.linalg.cholesky(cov + 1e-12 * np.eye(d)).T
    bad = ~np.isfinite(lp(p0))
    p0[bad] = x0 + 1e-3 * rng.standard_normal((int(bad.sum()), d))
    # differential-evolution moves mix faster than the stretch move in ~18 dimensions here
    moves = [(emcee.moves.DEMove(), 0.8), (emcee.moves.DESnookerMove(), 0.2)]
    sampler = emcee.EnsembleSampler(w, d, lp, vectorize=True, moves=moves)
    sampler._random = np.random.RandomState(seed)  # noqa: SLF001 emcee's documented seeding route
    state = p0
    done = 0
    while done < n_steps:
        m = min(100, n_steps - done)
        state = sampler.run_mcmc(state, m, progress=False)
        done += m
        if progress is not None:
            progress(m)
    chain = sampler.get_chain(discard=burn)  # (steps, walkers, d)
    logp = sampler.get_log_prob(discard=burn)
    rhat, ess = _diagnostics(chain, lp)
    if check:
        bad_r = {k: v for k, v in rhat.items() if not v <= rhat_max}
        bad_e = {k: v for k, v in ess.items() if not v >= ess_min}
        if bad_r or bad_e:
            raise ConvergenceError(
                f"{recovery.get_model(model).name}: the sampler did not converge in {n_steps} steps x "
                f"{w} walkers"
                f" (R-hat > {rhat_max}: {', '.join(f'{k}={v:.3f}' for k, v in bad_r.items()) or 'none'};"
                f" bulk ESS < {ess_min:g}: {', '.join(f'{k}={v:.0f}' for k, v in bad_e.items()) or 'none'});"
                " give more steps"
            )
    flat = chain.reshape(-1, d)
    flat_lp = logp.reshape(-1)
    pick = np.linspace(0, flat.shape[0] - 1, min(n_keep, flat.shape[0])).round().astype(int)
    x = flat[pick]
    theta, scale, rho, a = lp.unpack(x)
    return Posterior(
        model=lp.spec.name,
        periods=tuple(data.periods),
        theta=theta.copy(),
        scale=scale,
        rho=rho,
        availability=a,
        log_post=flat_lp[pick],
        rhat=rhat,
        ess=ess,
        acceptance=float(np.mean(sampler.acceptance_fraction)),
        n_steps=n_steps,
        n_walkers=w,
    )


def param_names(lp: LogPosterior) -> list[str]:
    unk = [f"availability_{lp.data.periods[i]}" for i in lp.unknown]
    return [
        *(f"logit_{n}" for n in lp.spec.free),
        *(f"log_s_{o}" for o in recovery.OFFSET_NAMES),
        "atanh_rho_pb_ag",
        *unk,
    ]


def _diagnostics(chain, lp):
    import warnings

    with warnings.catch_warnings():
        # ArviZ announces its refactor on import, and warns when chains outnumber draws (short
        # runs, where R-hat then fails anyway)
        warnings.simplefilter("ignore")
        import arviz as az

        names = param_names(lp)
        # arviz wants (chain, draw): the walkers as chains
        post = {nm: np.ascontiguousarray(chain[:, :, j].T) for j, nm in enumerate(names)}
        ds = az.convert_to_dataset(post)
        rh = az.rhat(ds)
        es = az.ess(ds, method="bulk")
    return ({nm: float(rh[nm]) for nm in names}, {nm: float(es[nm]) for nm in names})


def quarter_log_predictive(post: Posterior, data, *, n_sub: int = 200) -> np.ndarray:
    """Log predictive density of each quarter of ``data`` under the draws, offsets integrated.

    For each held-out quarter: log mean over draws of its likelihood, availabilities (where
    unknown) from their priors; returns (n,) [nats].
    """
    lp = LogPosterior(post.model, data)
    s_n = post.n_draws
    pick = np.linspace(0, s_n - 1, min(n_sub, s_n)).round().astype(int)
    rng = np.random.default_rng(12345)
    x = np.empty((pick.size, lp.d))
    pos = np.clip((post.theta[pick] - lp.lo) / (lp.hi - lp.lo), 1e-12, 1 - 1e-12)
    x[:, : lp.k] = np.log(pos / (1 - pos))
    x[:, lp.k : lp.k + 5] = np.log(post.scale[pick])
    x[:, lp.k + 5] = np.arctanh(np.clip(post.rho[pick], -0.999, 0.999))
    x[:, lp.k + 6 : lp.k + 6 + lp.m] = np.clip(
        lp.a_mu + lp.a_sd * rng.standard_normal((pick.size, lp.m)), *AVAILABILITY_RANGE
    )
    ll = lp.log_like_quarters(x)  # (S, n)
    mx = ll.max(0)
    return mx + np.log(np.mean(np.exp(ll - mx), axis=0))
