"""Quarter-level Bayesian calibration (kenomill.bayes): the log posterior and a short run.

``test_log_posterior[walkers]`` evaluates the vectorised log posterior of the default model
on the six reported quarters for 38 walkers (one emcee step's work);
``test_posterior_run`` is 500 emcee steps of it (no convergence check: a measurement of
cost per step, not a calibration). The packaged calibration takes 10000 steps.
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
