"""The quarter-to-quarter scatter has tails a running mill could have.

With the scatter's SD estimated from six quarters (about 5 degrees of freedom) alone, the
Student-t predictive sent draw 270 of ``bellekeno_only`` (seed 0) to 70 times the fitted
SD: 0.06 % lead recovery for a whole year. :data:`SCATTER_PRIOR_DOF` adds prior
information worth six quarters; these tests pin that behaviour.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from kenomill.calibration_file import SCATTER_PRIOR_DOF, Calibration, default_calibration

SCENARIOS = Path(__file__).resolve().parents[1] / "scenarios"


def test_predictive_dof_adds_the_prior_to_the_fit():
    cal = default_calibration()
    assert cal.scatter_predictive_dof == cal.meta["scatter_dof"] + SCATTER_PRIOR_DOF
    assert Calibration.from_defaults().scatter_predictive_dof == np.inf  # no fit: Gaussian


@pytest.fixture(scope="module")
def bellekeno_1000():
    from kenomill import simulate

    return simulate.simulate(SCENARIOS / "bellekeno_only.toml", draws=1000, seed=0)


def test_no_draw_loses_the_mill(bellekeno_1000):
    from kenomill import simulate

    y = simulate.annual(bellekeno_1000).sel(year=2012)
    rec_pb = 100 * y["pb_lb"] / (y["ore_processed_t"] * y["head_pb_pct"] / 100 * 2204.62262)
    # the worst of 1000 draws keeps a lead recovery a bad year of a working mill could have
    assert float(rec_pb.min()) > 50.0, float(rec_pb.min())


def test_kernel_scatter_scale_is_student_t_scale(bellekeno_1000):
    """The Monte Carlo draws' scatter against scipy's exact law of the fallback posterior.

    Each Monte Carlo draw takes one posterior draw s (``Calibration.posterior_draws``) and
    its scatter SD. Without stored posterior draws the calibration's fallback sets
    scatter_sd[s] = scatter * sqrt(dof / chi2(dof)), one factor for all offsets; the CDF of
    that factor is P(S <= x) = P(chi2 >= dof / x^2). A wrong dof, an inverted ratio or a
    missing square root fails the Kolmogorov-Smirnov test by far.
    """
    cal = default_calibration()
    sd = cal.posterior_draws()["scatter_sd"][bellekeno_1000["posterior_draw"].values]
    ratio = sd / cal.scatter
    if not np.allclose(ratio, ratio[:, :1]):
        pytest.skip("the calibration carries posterior draws of the scatter: no single scale")
    scale = ratio[:, 0]
    dof = cal.scatter_predictive_dof
    test = stats.kstest(scale, lambda s: stats.chi2.sf(dof / np.square(s), dof))
    assert test.pvalue > 1e-3, (dof, test)
    # the scale's tail beyond 3x the fitted SD is the 1e-3 tail the prior buys (5 dof alone: 2 %)
    assert stats.chi2.cdf(dof / 9.0, dof) < 2e-3
    assert np.sum(scale > 3.0) <= 5
