"""Quarter-level Bayesian calibration (kenomill.bayes): likelihood, recovery, seeds, failure."""

import math

import numpy as np
import pytest
from scipy import stats

from kenomill import bayes, calibrate, recovery
from kenomill.calibration_file import Calibration


def _synthetic(seed, n=10, scatter=(0.15, 0.1, 0.1, 0.1, 0.1)):
    feed = calibrate.design_feed(n, seed=seed, tpd=(200.0, 250.0))
    spec = recovery.get_model("constant")
    truth = np.array([0.9, 0.8, 0.95, 0.5, 0.035, 0.03])
    data = calibrate.synthetic_data(spec, truth, feed, scatter=np.array(scatter), seed=seed + 100)
    return spec, truth, data


def test_likelihood_without_scatter_is_the_independent_gaussian():
    """With the offsets' scales -> 0 the quarter likelihood is the product of the figures' normals."""
    spec, truth, data = _synthetic(1)
    lp = bayes.LogPosterior(spec, data)
    x = lp.start(truth)
    x[lp.k : lp.k + 5] = math.log(1e-9)
    ll = lp.log_like_quarters(x[None])[0]
    theta = lp.unpack(x[None])[0][0]
    f = calibrate.mill_outputs(
        spec,
        spec.full(theta),
        data.ore_t,
        data.head,
        calibrate.operating_q_ratio(data.tpd, data.availability),
    )[:, calibrate._FIT_INDEX]
    ref = stats.norm.logpdf(data.y, f, data.sigma).sum(1)
    np.testing.assert_allclose(ll, ref, rtol=1e-9)


def test_likelihood_integrates_the_offsets():
    """With scatter, the linearised marginal matches a Monte Carlo average over offsets."""
    # figures that the offsets' distribution explains (not a far tail, where a Monte Carlo
    # average is unreliable): data with offsets of the size integrated over
    spec, truth, data = _synthetic(2, n=1, scatter=(0.05,) * 5)
    lp = bayes.LogPosterior(spec, data)
    x = lp.start(truth)
    s = np.full(5, 0.05)
    x[lp.k : lp.k + 5] = np.log(s)
    ll = lp.log_like_quarters(x[None])[0, 0]
    theta = lp.unpack(x[None])[0][0]
    rng = np.random.default_rng(0)
    off = rng.standard_normal((100000, 5)) * s
    f = calibrate.mill_outputs(
        spec,
        spec.full(theta),
        np.repeat(data.ore_t, 100000),
        np.repeat(data.head, 100000, axis=0),
        calibrate.operating_q_ratio(np.repeat(data.tpd, 100000), np.repeat(data.availability, 100000)),
        off,
    )[:, calibrate._FIT_INDEX]
    dens = stats.norm.logpdf(data.y[0], f, data.sigma[0]).sum(1)
    mc = dens.max() + np.log(np.mean(np.exp(dens - dens.max())))
    # linearisation in the offsets: within 0.1 nat at scales of 0.05 (logit units)
    assert abs(ll - mc) < 0.1


def test_seed_reproduces_bit_for_bit():
    spec, truth, data = _synthetic(3, n=6)
    a = bayes.sample(spec, data, n_steps=200, n_keep=50, seed=7, check=False)
    b = bayes.sample(spec, data, n_steps=200, n_keep=50, seed=7, check=False)
    c = bayes.sample(spec, data, n_steps=200, n_keep=50, seed=8, check=False)
    for key, v in a.draws().items():
        assert np.array_equal(v, b.draws()[key])
    assert not np.array_equal(a.theta, c.theta)


def test_no_convergence_fails_loudly():
    spec, truth, data = _synthetic(4, n=6)
    with pytest.raises(bayes.ConvergenceError, match="did not converge in 30 steps"):
        bayes.sample(spec, data, n_steps=30, burn=10, seed=0)


def test_posterior_recovers_known_parameters():
    """Credible intervals cover the truth near their nominal rate over repeated synthetic data."""
    inside50, inside90 = [], []
    for rep in range(3):
        spec, truth, data = _synthetic(10 + rep)
        post = bayes.sample(spec, data, n_steps=800, seed=rep, check=False)
        lo90, lo50, hi50, hi90 = np.quantile(post.theta, [0.05, 0.25, 0.75, 0.95], axis=0)
        inside90 += list((truth >= lo90) & (truth <= hi90))
        inside50 += list((truth >= lo50) & (truth <= hi50))
    # 18 parameter-intervals: nominal 90 % and 50 %; binomial 99 % ranges
    assert np.mean(inside90) >= 12 / 18
    assert 3 / 18 <= np.mean(inside50) <= 15 / 18


def test_predict_marks_extrapolation_and_uses_draws():
    spec, truth, data = _synthetic(5, n=6)
    post = bayes.sample(spec, data, n_steps=200, n_keep=50, seed=0, check=False)
    cal = Calibration(model="constant", theta=truth, cov=np.zeros((6, 6)), base=spec.base_full())
    cal.posterior = post.draws()
    cal.meta["feed_range"] = calibrate.feed_range_of(data)
    hi_tpd = cal.meta["feed_range"]["tpd"][1]
    feed = {
        "period": ["in", "out"],
        "ore_processed_t": [100000.0, 100000.0],
        "head_ag_gpt": [800.0, 800.0],
        "head_pb_pct": [10.0, 10.0],
        "head_zn_pct": [6.0, 6.0],
        "tpd": [225.0, 400.0],
    }
    pred = calibrate.predict(cal, feed, n_draws=200)
    assert pred["extrapolation"].values[0] == ""
    assert pred["extrapolation"].values[1] == f"tpd 400 > {hi_tpd:g}"
    assert pred.attrs["posterior"] == "MCMC draws"


def test_robust_likelihood_ignores_a_planted_gross_error():
    """One quarter's lead recovery printed 12 points low (a gross error planted in data from a
    known truth): the Gaussian posterior mode of rmax_pb is pulled towards it, the robust
    (Student-t) one stays near the mode on the clean data."""
    from dataclasses import replace

    feed = calibrate.fit_data()
    theta = np.array([0.93, 0.72, 1.0, 0.45, 0.035, 0.028])
    clean = calibrate.synthetic_data("constant", theta, feed, scatter=[0.1] * 5, seed=3, resolution=0.01)
    y = clean.y.copy()
    y[2, 1] -= 12.0
    planted = replace(clean, y=y)

    def mode(data, df):
        lp = bayes.LogPosterior("constant", data, robust_df=df)
        x = bayes.find_mode(lp, lp.start())
        return lp.unpack(x[None])[0][0]

    ref = mode(clean, bayes.ROBUST_DF)
    pulled = mode(planted, None)[0] - mode(clean, None)[0]
    robust = mode(planted, bayes.ROBUST_DF)[0] - ref[0]
    assert pulled < -0.01  # the Gaussian follows the bad figure by more than a point of recovery
    assert abs(robust) < 0.35 * abs(pulled)


def test_student_t_density_matches_scipy():
    from scipy import stats

    rng = np.random.default_rng(0)
    n, p = 2, 9
    y = rng.normal(size=(n, p))
    f0 = rng.normal(size=(1, n, p))
    b = 0.3 * rng.normal(size=(1, n, p, 5))
    var = rng.uniform(0.1, 0.5, size=(n, p))
    obs = np.ones((n, p), dtype=bool)
    got = bayes.gaussian_log_density(y, f0, b, var, obs, df=4.0)[0]
    gauss = bayes.gaussian_log_density(y, f0, b, var, obs)[0]
    for i in range(n):
        cov = b[0, i] @ b[0, i].T + np.diag(var[i])
        assert got[i] == pytest.approx(stats.multivariate_t(f0[0, i], cov, df=4.0).logpdf(y[i]), rel=1e-10)
        assert gauss[i] == pytest.approx(stats.multivariate_normal(f0[0, i], cov).logpdf(y[i]), rel=1e-10)


@pytest.mark.parametrize("df", [None, 4.0])
def test_numba_quarter_density_equals_its_numpy_twin(df):
    data = calibrate.fit_data()
    y = data.y.copy()
    y[1, 3] = np.nan  # a figure not reported
    from dataclasses import replace

    lp = bayes.LogPosterior(calibrate.DEFAULT_MODEL, replace(data, y=y), robust_df=df)
    x = lp.start() + 0.05 * np.random.default_rng(0).standard_normal((7, lp.d))
    f0, b = lp.moments(x)
    ref = bayes.gaussian_log_density(lp.y, f0, b, lp.var, lp.obs, df=df)
    np.testing.assert_allclose(lp.log_like_quarters(x), ref, rtol=1e-12, atol=1e-10)
