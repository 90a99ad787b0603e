"""Model choice by prediction (kenomill.validation): folds, scores, baselines, stacking, coverage."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest
from scipy import stats

from kenomill import calibrate, validation
from kenomill.errors import ValidationError


def test_folds_by_hand():
    loqo = validation.folds(6, "loqo")
    assert [j for _, j in loqo] == [0, 1, 2, 3, 4, 5]
    for train, j in loqo:
        assert sorted(train.tolist() + [j]) == list(range(6))
    rolling = validation.folds(6, "rolling")
    assert [(t.tolist(), j) for t, j in rolling] == [([0, 1, 2], 3), ([0, 1, 2, 3], 4), ([0, 1, 2, 3, 4], 5)]
    with pytest.raises(ValidationError, match="scheme"):
        validation.folds(6, "kfold")


def test_quarter_times_mid_quarter_and_order():
    t = validation.quarter_times(["2011Q1", "2011Q4", "2012Q2"])
    assert t.tolist() == [2011.125, 2011.875, 2012.375]
    assert validation.quarter_times(["2013-01", "2013-12"]).tolist() == [2013 + 0.5 / 12, 2013 + 11.5 / 12]
    data = calibrate.fit_data()
    shuffled = data.subset([3, 0, 5, 1, 4, 2])
    assert validation.time_order(shuffled).periods == data.periods


def test_crps_sample_matches_closed_form_normal():
    # Gneiting & Raftery (2007): CRPS(N(mu, s), y) = s [z (2 Phi(z) - 1) + 2 phi(z) - 1/sqrt(pi)]
    rng = np.random.default_rng(1)
    x = 2.0 + 3.0 * rng.standard_normal(200_000)
    for y in (2.0, 4.5, -3.0):
        z = (y - 2.0) / 3.0
        exact = 3.0 * (z * (2 * stats.norm.cdf(z) - 1) + 2 * stats.norm.pdf(z) - 1 / math.sqrt(math.pi))
        assert validation.crps_sample(x, y) == pytest.approx(exact, rel=0.01)


def _toy(rec):
    """FitData of len(rec) quarters with the given recoveries (Ag, Pb, Zn) [%]."""
    data = calibrate.fit_data().subset(np.arange(len(rec)))
    y = data.y.copy()
    y[:, :3] = rec
    return replace(data, y=y)


def test_naive_mean_baseline_by_hand():
    rec = np.array([[90.0, 88.0, 60.0], [92.0, 90.0, 62.0], [94.0, 86.0, 58.0], [93.0, 91.0, 61.0]])
    data = _toy(rec)
    metal = np.full(3, np.nan)
    sc = validation.baseline_scores("naive_mean", data, np.array([0, 1, 2]), 3, metal)
    # by hand: training mean and SD (n = 3), scale s sqrt(1 + 1/3), t with 2 degrees of freedom
    lpd = 0.0
    for m in range(3):
        r = rec[:3, m]
        mu = sum(r) / 3
        sd = math.sqrt(sum((v - mu) ** 2 for v in r) / 2)
        s = sd * math.sqrt(4 / 3)
        u = (rec[3, m] - mu) / s
        lpd += (
            math.lgamma(1.5)
            - math.lgamma(1.0)
            - 0.5 * math.log(2 * math.pi)
            - math.log(s)
            - 1.5 * math.log1p(u * u / 2)
        )
    assert sc["lpd"] == pytest.approx(lpd, rel=1e-12)


def test_naive_last_baseline_uses_latest_earlier_quarter():
    rec = np.array([[90.0, 88.0, 60.0], [92.0, 90.0, 62.0], [94.0, 86.0, 58.0], [93.0, 91.0, 61.0]])
    data = _toy(rec)
    sc = validation.baseline_scores("naive_last", data, np.array([0, 1, 3]), 2, np.full(3, np.nan))
    # centre: quarter 1's recoveries; scale: RMS of successive changes of quarters 0, 1, 3
    diffs = np.diff(rec[[0, 1, 3]], axis=0)
    scale = np.sqrt(np.mean(diffs**2, axis=0))
    lpd = np.sum(stats.t.logpdf(rec[2], 2, loc=rec[1], scale=scale))
    assert sc["lpd"] == pytest.approx(lpd, rel=1e-12)


def test_stacking_weights_by_hand():
    # two quarters, densities A = (3, 1), B = (1, 2): d/dw of the log score is zero at w_A = 3/4
    lpd = np.log(np.array([[3.0, 1.0], [1.0, 2.0]]))
    w = validation.stacking_weights(lpd)
    assert w == pytest.approx([0.75, 0.25], abs=1e-4)
    # a model better on every quarter takes all the weight
    w = validation.stacking_weights(np.array([[-1.0, -5.0], [-2.0, -6.0], [-1.5, -4.0]]))
    assert w[0] > 0.999


def test_bands_cover_at_nominal_rate_on_synthetic_quarters():
    """Quarters drawn from a known truth (the constant model, known scatter and measurement
    error): the LOQO predictive bands of the same model cover near their nominal rate."""
    feed = calibrate.fit_data()
    cand = validation.get_candidate("constant")
    theta = np.array([0.93, 0.72, 1.0, 0.45, 0.035, 0.028])
    inside50 = inside90 = total = 0
    for rep in range(3):
        data = calibrate.synthetic_data(
            "constant", theta, feed, scatter=[0.3, 0.2, 0.25, 0.3, 0.3], seed=100 + rep, resolution=0.01
        )
        metal = np.full((data.n, 3), np.nan)
        rows = validation.validate_candidate(cand, data, metal, seed=rep, schemes=("loqo",))
        for r in rows:
            inside50 += r["cover50"] / 100 * 3
            inside90 += r["cover90"] / 100 * 3
            total += 3
    # 54 recoveries: binomial SD of the share is about 7 points at 50 %, 4 at 90 %
    assert 0.30 <= inside50 / total <= 0.70
    assert 0.78 <= inside90 / total <= 1.0


def test_same_seed_same_rows_and_workers_do_not_matter():
    data = calibrate.fit_data().subset(np.arange(4))
    a = validation.compare(["constant", "fixed_tail"], data, workers=1)
    b = validation.compare(["constant", "fixed_tail"], data, workers=2)
    assert a.rows.equals(b.rows)
    assert a.table.equals(b.table)
    assert a.chosen == b.chosen
    # Monte Carlo SE of the importance-sampled lpd: zero for the closed-form baselines only
    t = a.table.set_index("candidate")
    assert (t.loc[list(validation.BASELINES), "lpd_se_loqo"] == 0).all()
    assert (t.loc[["constant", "fixed_tail"], "lpd_se_loqo"].between(1e-6, 0.5)).all()
    other = "fixed_tail" if a.chosen == "constant" else "constant"
    gap = t.loc[a.chosen, "lpd_loqo"] - t.loc[other, "lpd_loqo"]
    se = float(np.hypot(t.loc[a.chosen, "lpd_se_loqo"], t.loc[other, "lpd_se_loqo"]))
    assert (other in a.ties) == (gap <= 2 * se)


def test_default_model_beats_naive_baselines_on_the_packaged_quarters():
    cmp_ = validation.compare([calibrate.DEFAULT_MODEL], workers=1)
    t = cmp_.table.set_index("candidate")
    for scheme in ("loqo", "rolling"):
        for base in validation.BASELINES:
            assert t.loc[calibrate.DEFAULT_MODEL, f"lpd_{scheme}"] > t.loc[base, f"lpd_{scheme}"]
            assert t.loc[calibrate.DEFAULT_MODEL, f"crps_{scheme}"] < t.loc[base, f"crps_{scheme}"]
    assert cmp_.chosen == calibrate.DEFAULT_MODEL


def test_unknown_candidate_is_refused_with_the_allowed_ones():
    with pytest.raises(ValidationError, match="candidate: found 'nope'; allowed: constant"):
        validation.get_candidate("nope")


def test_prior_sensitivity_moves_recovery_only_where_the_quarters_are_silent(monkeypatch):
    """A small k tau prior (median 3) against a uniform one: at 250 t/d, inside the quarters'
    201-245 t/d neighbourhood, the bands nearly agree; at 400 t/d the small prior's lower bound
    is lower (first-order kinetics: less residence time costs a slow floater more)."""
    monkeypatch.setattr(validation, "SENSITIVITY_PRIORS", (("median 3", (3.0, 0.75)), ("uniform", None)))
    df = validation.prior_sensitivity(n_steps=600, n_draws=500, seed=0).set_index("prior")
    assert df.loc["median 3", "ktau_pb_p50"] < df.loc["uniform", "ktau_pb_p50"]
    assert abs(df.loc["median 3", "rec_pb_p05_250"] - df.loc["uniform", "rec_pb_p05_250"]) < 2.0
    assert df.loc["uniform", "rec_pb_p05_400"] - df.loc["median 3", "rec_pb_p05_400"] > 4.0
