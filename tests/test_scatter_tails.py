"""The quarter-to-quarter scatter has tails a running mill could have.

With the scatter's SD estimated from six quarters (about 5 degrees of freedom) alone, the
Student-t predictive sent draw 270 of ``bellekeno_only`` (seed 0) to 70 times the fitted
SD: 0.06 % lead recovery for a whole year. :data:`SCATTER_PRIOR_DOF` adds prior
information worth six quarters; these tests pin that behaviour.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy import stats

from kenomill.calibration_file import SCATTER_PRIOR_DOF, Calibration, default_calibration

SCENARIOS = Path(__file__).resolve().parents[1] / "scenarios"


def test_predictive_dof_adds_the_prior_to_the_fit():
    cal = default_calibration()
    assert cal.scatter_predictive_dof == cal.meta["scatter_dof"] + SCATTER_PRIOR_DOF
    assert Calibration.from_defaults().scatter_predictive_dof == np.inf  # no fit: Gaussian


def test_no_draw_loses_the_mill():
    from kenomill import simulate

    ds = simulate.simulate(SCENARIOS / "bellekeno_only.toml", draws=1000, seed=0)
    y = simulate.annual(ds).sel(year=2012)
    rec_pb = 100 * y["pb_lb"] / (y["ore_processed_t"] * y["head_pb_pct"] / 100 * 2204.62262)
    # the worst of 1000 draws keeps a lead recovery a bad year of a working mill could have
    assert float(rec_pb.min()) > 50.0, float(rec_pb.min())


def test_tail_probability_matches_student_t():
    # a 1e-3 tail: scatter scale sqrt(dof / chi2) beyond 3x the fitted SD
    dof = default_calibration().scatter_predictive_dof
    p = stats.chi2.cdf(dof / 9.0, dof)
    assert p < 2e-3, p
