"""Quarter-level Bayesian calibration (kenomill.bayes): the log posterior and a short run.

``test_log_posterior[walkers]`` evaluates the vectorised log posterior of the default model
on the six reported quarters for 38 walkers (one emcee step's work);
``test_posterior_run`` is 500 emcee steps of it (no convergence check: a measurement of
cost per step, not a calibration). The packaged calibration takes 10000 steps.
``test_quarter_density[numba|numpy]``: the likelihood's core, the nine figures' density of each
quarter for 38 walkers, in the numba kernel and in its batched NumPy twin (same inputs).
``test_single_model_calibration``: what ``kenomill calibrate --no-compare`` computes, the
least-squares fit and a converged posterior (8000 steps, the command's default, R-hat and ESS
checked). ``test_candidate_validation``: one candidate's exact leave-one-quarter-out and
rolling-origin validation (ten importance-sampled fold posteriors), a ninth of the default
comparison's work.
"""

from __future__ import annotations

import numpy as np
import pytest

from kenomill import bayes, calibrate
from kenomill.calibration_file import default_calibration


@pytest.fixture(scope="module")
def lp():
    return bayes.LogPosterior(calibrate.DEFAULT_MODEL, calibrate.fit_data())


@pytest.mark.benchmark(group="calibrate")
def test_log_posterior(benchmark, lp):
    rng = np.random.default_rng(0)
    x = lp.start(default_calibration().theta) + 0.01 * rng.standard_normal((38, lp.d))
    out = benchmark(lp, x)
    assert out.shape == (38,) and np.isfinite(out).all()


@pytest.mark.benchmark(group="calibrate")
def test_posterior_run(benchmark):
    data = calibrate.fit_data()
    theta0 = default_calibration().theta
    post = benchmark.pedantic(
        bayes.sample,
        args=(calibrate.DEFAULT_MODEL, data),
        kwargs={"n_steps": 500, "theta0": theta0, "check": False},
        rounds=1,
        iterations=1,
    )
    assert post.n_draws == 500


@pytest.fixture(scope="module")
def lin(lp):
    rng = np.random.default_rng(0)
    x = lp.start(default_calibration().theta) + 0.01 * rng.standard_normal((38, lp.d))
    f0, jac, sl = lp._linearised(x)  # noqa: SLF001 the kernel's inputs
    return x, f0, jac, sl


@pytest.mark.benchmark(group="calibrate-density")
@pytest.mark.parametrize("impl", ["numba", "numpy"])
def test_quarter_density(benchmark, lp, lin, impl):
    from kenomill._kernels import quarter_logpdf

    x, f0, jac, sl = lin
    if impl == "numba":
        out = np.empty(f0.shape[:2])

        def run():
            quarter_logpdf(lp.y, f0, jac, sl, lp.var, lp.obs, 0.0, out)
            return out

    else:

        def run():
            b = np.einsum("wnoj,wop->wnjp", jac, sl)
            return bayes.gaussian_log_density(lp.y, f0, b, lp.var, lp.obs)

    got = benchmark(run)
    assert got.shape == (38, 6) and np.isfinite(got).all()


@pytest.mark.benchmark(group="calibrate-whole")
def test_single_model_calibration(benchmark):
    def run():
        data = calibrate.fit_data()
        fit = calibrate.fit(calibrate.DEFAULT_MODEL, data, starts=6, seed=0)
        cal = fit.to_calibration()
        return calibrate.attach_posterior(cal, data, seed=0, n_steps=calibrate.POSTERIOR_STEPS)

    post = benchmark.pedantic(run, rounds=1, iterations=1)
    assert max(post.rhat.values()) <= 1.1 and min(post.ess.values()) >= 100


@pytest.mark.benchmark(group="calibrate-whole")
def test_candidate_validation(benchmark):
    from kenomill import validation

    data = validation.time_order(calibrate.fit_data())
    metal = validation.reported_metal(data)
    cand = validation.get_candidate(calibrate.DEFAULT_MODEL)
    rows = benchmark.pedantic(validation.validate_candidate, args=(cand, data, metal), rounds=1, iterations=1)
    assert len(rows) == 6 + 3
