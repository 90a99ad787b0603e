"""Calibration: parameter recovery, optimum from several starts, honest leave-one-out,
coverage of the prediction bands, closure of predictions, and every bad input."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from kenomill import calibrate, circuit, recovery
from kenomill.calibration_file import Calibration, default_calibration
from kenomill.data import reported_periods
from kenomill.errors import ValidationError


@pytest.fixture(scope="module")
def real():
    return calibrate.fit_data()


@pytest.fixture(scope="module")
def default_fit(real):
    return calibrate.fit(calibrate.DEFAULT_MODEL, real, starts=3)


def _feed_frame(periods, ore, head_frac, tpd, availability=None):
    d = {
        "period": list(periods),
        "ore_processed_t": ore,
        "head_ag_gpt": head_frac[:, 0] * 1e6,
        "head_pb_pct": head_frac[:, 1] * 100,
        "head_zn_pct": head_frac[:, 2] * 100,
        "tpd": tpd,
    }
    if availability is not None:
        d["availability_pct"] = np.asarray(availability) * 100
    return pd.DataFrame(d)


def _quarters_feed():
    ds = reported_periods("quarter")
    cols = ["ore_processed_t", "head_ag_gpt", "head_pb_pct", "head_zn_pct", "tpd", "availability_pct"]
    return ds[cols].to_dataframe().reset_index()


# -------------------------------------------------------------------------- data
def test_fit_data_carries_the_reported_figures(real):
    assert real.periods == ("2011Q1", "2011Q2", "2011Q3", "2011Q4", "2012Q1", "2012Q2")
    j = calibrate.FIT_FIGURES.index("rec_pb_pct")
    np.testing.assert_array_equal(real.y[:, j], [90, 93, 90, 86.2, 93, 85])
    # availability reported for 2011Q4 (96 %) and 2012Q2 (90 %) only
    np.testing.assert_array_equal(np.isnan(real.availability), [True, True, True, False, True, False])
    assert real.availability[3] == pytest.approx(0.96) and real.availability[5] == pytest.approx(0.90)
    # sigma of a recovery printed as 93: rounding 1/sqrt(12) with 1 % relative, by hand
    assert real.sigma[0, 1] == pytest.approx(np.hypot(1 / np.sqrt(12), 0.9), rel=1e-12)


def test_fit_data_rejects_bad_kind_and_period():
    with pytest.raises(ValidationError, match=r"data: found 'cooked'; allowed: raw, reconciled"):
        calibrate.fit_data("cooked")
    with pytest.raises(ValidationError, match=r"periods: unknown \['2013Q1'\]"):
        calibrate.fit_data(periods=["2013Q1"])


def test_reconciled_data_fit():
    pytest.importorskip("kenomill.reconcile")
    d = calibrate.fit_data("reconciled")
    assert d.source == "reconciled" and np.isfinite(d.sigma).all() and (d.sigma > 0).all()
    r = calibrate.fit("fixed_tail", d, starts=2)
    # reconciled recoveries are within a point of the raw ones: the fit lands nearby
    raw = calibrate.fit("fixed_tail", calibrate.fit_data(), starts=2)
    assert np.abs(r.theta - raw.theta).max() < 0.1


# ------------------------------------------------------------- parameter recovery
@pytest.mark.parametrize("name", list(recovery.MODELS))
def test_each_model_recovers_its_parameters_from_synthetic_quarters(name):
    """Noise-free quarters generated with known parameters (not the defaults) give them back."""
    spec = recovery.get_model(name)
    feed = calibrate.design_feed(12, seed=1)
    lo, hi = spec.bounds()
    rng = np.random.default_rng(3)
    truth = np.clip(spec.defaults() * rng.uniform(0.85, 0.95, len(lo)), lo, hi)
    data = calibrate.synthetic_data(spec, truth, feed, noise=False)
    r = calibrate.fit(spec, data, starts=2, seed=1)
    np.testing.assert_allclose(r.theta, truth, atol=1e-6 * (hi - lo).max())


def test_recovery_with_noise_lies_within_its_standard_errors():
    spec = recovery.get_model(calibrate.DEFAULT_MODEL)
    feed = calibrate.design_feed(16, seed=2)
    lo, hi = spec.bounds()
    truth = spec.defaults()
    data = calibrate.synthetic_data(spec, truth, feed, seed=5)
    r = calibrate.fit(spec, data, starts=2)
    free = ~r.at_bound
    z = (r.theta[free] - truth[free]) / r.se[free]
    assert np.abs(z).max() < 4.0


# ------------------------------------------------------------ real-data optimum
def test_real_quarters_same_optimum_from_several_starts(real):
    r = calibrate.fit(calibrate.DEFAULT_MODEL, real, starts=5, seed=11)
    assert r.n_same_optimum == 5
    r2 = calibrate.fit(calibrate.DEFAULT_MODEL, real, starts=3, seed=99)
    np.testing.assert_allclose(r2.theta, r.theta, rtol=1e-4, atol=1e-6)
    assert r2.chi2 == pytest.approx(r.chi2, rel=1e-6)


def test_packaged_calibration_is_the_default_fit(default_fit):
    """The packaged file is reproducible: a refit of the default model gives it back."""
    cal = default_calibration()
    assert cal.model == calibrate.DEFAULT_MODEL
    np.testing.assert_allclose(cal.theta, default_fit.theta, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(cal.scatter, default_fit.scatter, rtol=1e-3)


def test_fit_reports_covariance_and_scatter(default_fit):
    r = default_fit
    assert r.cov.shape == (r.k, r.k)
    np.testing.assert_allclose(r.cov, r.cov.T, atol=1e-15)
    assert (np.linalg.eigvalsh(r.cov) > -1e-12).all()
    assert np.allclose(np.diag(r.corr)[~r.at_bound], 1.0)
    assert (r.scatter > 0).all() and r.scale >= 1.0
    # the quarters scatter more than rounding and assay error allow (residual scale > 1)
    assert r.chi2 / (r.n_obs - r.k_eff) == pytest.approx(r.scale**2, rel=0.05)
    t = r.table()
    assert len(t) == 6 * len(calibrate.FIT_FIGURES) and {"reported", "fitted", "z"} <= set(t.columns)


def test_non_identifiable_parameters_are_flagged():
    """Every quarter at one throughput: rmax and k tau of plug flow cannot be told apart."""
    feed = calibrate.design_feed(8, seed=4, tpd=(230.0, 230.0 + 1e-9))
    spec = recovery.get_model("plug_flow")
    data = calibrate.synthetic_data(spec, spec.defaults(), feed, seed=1)
    r = calibrate.fit(spec, data, starts=2)
    text = " | ".join(r.warnings)
    assert "ktau_pb" in text and ("not identifiable" in text or "correlated" in text or "weakly" in text)


def test_unidentified_rate_constant_gets_infinite_standard_error(real):
    """Zinc with 8 mixed cells at 201-245 t/d: k tau of sphalerite runs off to where nothing changes."""
    r = calibrate.fit("mixed_cells", real, starts=2)
    table = r.parameters().set_index("parameter")
    assert not table.loc["ktau_zn", "identified"] and table.loc["ktau_zn", "se"] == np.inf
    assert table.loc["rmax_zn", "identified"] and np.isfinite(table.loc["rmax_zn", "se"])
    assert any("not identifiable" in w and "ktau_zn" in w for w in r.warnings)


def test_profile_is_flat_where_data_say_nothing(real):
    """Zinc recovery with plug flow: the data cannot bound k tau of sphalerite from above."""
    prof = calibrate.profile("fixed_tail_plug", "ktau_zn", [20.0, 40.0, 60.0], real)
    assert prof["delta"].max() < 1.0
    # whereas the lead rate constant is pinned: halving it costs far more than one sigma
    g = calibrate.profile("plug_pb_tail_zn", "ktau_pb", [1.2, 2.4], real)
    assert g["delta"].max() > 4.0


def test_priors_enter_the_fit(real):
    free = calibrate.fit("plug_pb_tail_zn", real, starts=1)
    tight = calibrate.fit("plug_pb_tail_zn", real, starts=1, priors={"ktau_pb": (4.0, 0.01)})
    j = recovery.get_model("plug_pb_tail_zn").free.index("ktau_pb")
    assert abs(tight.theta[j] - 4.0) < 0.05 and abs(free.theta[j] - 4.0) > 0.5


def test_bad_priors_are_refused(real):
    with pytest.raises(
        ValidationError, match=r"priors: 'ktau_pb' is not a free parameter of model 'constant'"
    ):
        calibrate.fit("constant", real, priors={"ktau_pb": (1.0, 1.0)})
    with pytest.raises(ValidationError, match=r"priors.rmax_pb: found mean 0.9, sd -1; allowed"):
        calibrate.fit("constant", real, priors={"rmax_pb": (0.9, -1.0)})
    with pytest.raises(ValidationError, match=r"priors.rmax_pb: found 'x'; expected \(mean, sd\)"):
        calibrate.fit("constant", real, priors={"rmax_pb": "x"})


def test_profile_rejects_unknown_parameter(real):
    with pytest.raises(ValidationError, match=r"profile: 'ktau_pb' is not a free parameter of 'constant'"):
        calibrate.profile("constant", "ktau_pb", [1.0], real)


# ------------------------------------------------------------------ leave one out
def test_leave_one_out_never_sees_the_held_out_quarter(real):
    """Corrupting quarter h's figures changes no prediction of h, and does change the others'."""
    h = 2
    y = real.y.copy()
    y[h] *= 1.3
    corrupted = calibrate.FitData(**{**real.__dict__, "y": y})
    a = calibrate.leave_one_out("fixed_tail", real, starts=2)
    b = calibrate.leave_one_out("fixed_tail", corrupted, starts=2)
    for name in calibrate.OUTPUTS:
        assert a[name].values[h] == b[name].values[h]
        others = np.delete(np.arange(real.n), h)
        assert not np.allclose(a[name].values[others], b[name].values[others], rtol=1e-9, atol=0)


def test_leave_one_out_errors_and_comparison(real):
    df = calibrate.compare_models(["constant", "fixed_tail"], real, starts=2, loo_starts=1)
    assert list(df["model"]) == sorted(df["model"], key=lambda m: float(df.set_index("model").aicc[m]))
    assert df["d_aicc"].min() == 0.0
    for col in ("loo_rec_ag_pts", "loo_rec_pb_pts", "loo_rec_zn_pts", "loo_ag_oz_pct", "loo_zn_lb_pct"):
        assert (df[col] > 0).all()
    # by hand: the constant model predicts a held-out quarter's Zn recovery from the others
    loo = calibrate.leave_one_out("constant", real, starts=1)
    e = calibrate.loo_errors(loo)
    d = loo["rec_zn_pct"].values - real.y[:, calibrate.FIT_FIGURES.index("rec_zn_pct")]
    assert e["loo_rec_zn_pts"] == pytest.approx(np.sqrt(np.mean(d**2)), rel=1e-12)
    # coverage of the held-out figures by their 90 % bands, counted by hand
    inside = [
        (loo[f + "_reported"] >= loo[f + "_p05"]) & (loo[f + "_reported"] <= loo[f + "_p95"])
        for f in (*calibrate.FIT_FIGURES, "ag_oz", "pb_lb", "zn_lb")
    ]
    assert e["loo_cover90"] == pytest.approx(float(np.mean([x.values for x in inside])), rel=1e-12)
    assert 0.5 < e["loo_cover90"] <= 1.0
    # and the grade-dependent model predicts zinc better than constant recovery
    row = df.set_index("model")
    assert row.loc["fixed_tail", "loo_rec_zn_pts"] < row.loc["constant", "loo_rec_zn_pts"]


# --------------------------------------------------------------------- prediction
def test_prediction_closes_and_equals_circuit_forward():
    cal = default_calibration()
    feed = _quarters_feed()
    pred = calibrate.predict(cal, feed, n_draws=200)
    # a copy: circuit.forward refuses read-only arrays (pandas copy-on-write views)
    ore = feed["ore_processed_t"].to_numpy(copy=True)
    t = {c: pred[f"{c}_t"].values for c in ("pbcon", "zncon", "tails")}
    np.testing.assert_allclose(t["pbcon"] + t["zncon"] + t["tails"], ore, rtol=1e-12)
    # the same feed through kenomill.circuit.forward with the split and pull of respond
    avail = np.where(np.isnan(feed["availability_pct"]), 92.0, feed["availability_pct"]) / 100
    head = np.stack([feed["head_ag_gpt"] * 1e-6, feed["head_pb_pct"] / 100, feed["head_zn_pct"] / 100], 1)
    split, pull = recovery.respond_many(cal.spec, cal.full(), head, feed["tpd"].to_numpy() / avail / 250.0)
    dims = ("period", "concentrate")
    rec = {
        el: xr.DataArray(100 * split[:, j, :], dims=dims, coords={"concentrate": ["pbcon", "zncon"]})
        for j, el in enumerate(("Ag", "Pb", "Zn"))
    }
    hd = {
        "Ag": xr.DataArray(feed["head_ag_gpt"].to_numpy(), dims="period", attrs={"units": "g/t"}),
        "Pb": xr.DataArray(feed["head_pb_pct"].to_numpy(), dims="period", attrs={"units": "%"}),
        "Zn": xr.DataArray(feed["head_zn_pct"].to_numpy(), dims="period", attrs={"units": "%"}),
    }
    fw = circuit.forward(
        xr.DataArray(ore, dims="period"),
        hd,
        rec,
        mass_pull=xr.DataArray(100 * pull, dims=dims, coords={"concentrate": ["pbcon", "zncon"]}),
    )
    np.testing.assert_allclose(pred["pbcon_t"], fw.tonnes.sel(stream="pbcon"), rtol=1e-12)
    np.testing.assert_allclose(pred["zncon_zn_pct"], fw.Zn_grade.sel(stream="zncon"), rtol=1e-12)
    np.testing.assert_allclose(pred["tails_pb_pct"], fw.Pb_grade.sel(stream="tails"), rtol=1e-12)
    np.testing.assert_allclose(
        pred["ag_oz"], fw.Ag_contained.sel(stream="pbcon") + fw.Ag_contained.sel(stream="zncon"), rtol=1e-12
    )
    np.testing.assert_allclose(pred["pb_lb"], fw.Pb_contained.sel(stream="pbcon"), rtol=1e-12)
    np.testing.assert_allclose(pred["rec_zn_pct"], fw.Zn_distribution.sel(stream="zncon"), rtol=1e-12)


def test_prediction_bounds_bracket_and_reproduce():
    cal = default_calibration()
    feed = _quarters_feed()
    a = calibrate.predict(cal, feed, n_draws=500, seed=3)
    b = calibrate.predict(cal, feed, n_draws=500, seed=3)
    c = calibrate.predict(cal, feed, n_draws=500, seed=4)
    for name in calibrate.OUTPUTS:
        assert (a[name + "_p05"] <= a[name + "_p95"]).all()
        assert (a[name + "_p05"] <= a[name]).all() and (a[name] <= a[name + "_p95"]).all()
        np.testing.assert_array_equal(a[name + "_p05"], b[name + "_p05"])
    assert not np.array_equal(a["ag_oz_p05"], c["ag_oz_p05"])
    assert a["ag_oz"].attrs["units"] == "troy_oz" and a["rec_pb_pct_p95"].attrs["units"] == "%"
    frame = calibrate.prediction_frame(a)
    want = ["period", *calibrate.OUTPUTS]
    want += [f"{n}{t}" for n in calibrate.OUTPUTS for t in ("_p05", "_p95")]
    assert list(frame.columns)[: len(want)] == want


def test_bounds_come_from_each_source_of_uncertainty():
    """No parameter uncertainty, no scatter: only an unknown availability widens the bounds,
    and only for what depends on throughput (lead circuit), not zinc (fixed tail)."""
    cal = default_calibration()
    quiet = Calibration(
        model=cal.model, theta=cal.theta, cov=np.zeros_like(cal.cov), base=cal.base, meta=cal.meta
    )
    feed = _quarters_feed().assign(availability_pct=np.nan)
    unknown = calibrate.predict(quiet, feed, n_draws=400, seed=1)
    known = calibrate.predict(quiet, feed.assign(availability_pct=92.0), n_draws=400, seed=1)
    np.testing.assert_allclose(known.rec_pb_pct_p05, known.rec_pb_pct, rtol=1e-12)
    np.testing.assert_allclose(known.rec_pb_pct_p95, known.rec_pb_pct, rtol=1e-12)
    assert ((unknown.rec_pb_pct_p95 - unknown.rec_pb_pct_p05) > 1.0).all()
    np.testing.assert_allclose(unknown.rec_zn_pct_p95, unknown.rec_zn_pct_p05, rtol=1e-9)
    np.testing.assert_allclose(unknown.rec_pb_pct, known.rec_pb_pct, rtol=1e-12)  # prior mean 92 %
    # parameter uncertainty alone
    params = calibrate.predict(
        Calibration(model=cal.model, theta=cal.theta, cov=cal.cov, base=cal.base, meta=cal.meta),
        feed.assign(availability_pct=92.0),
        n_draws=400,
    )
    assert ((params.rec_zn_pct_p95 - params.rec_zn_pct_p05) > 0.1).all()
    # the full calibration (plus scatter) is wider still
    full = calibrate.predict(cal, feed.assign(availability_pct=92.0), n_draws=400)
    assert (
        (full.rec_zn_pct_p95 - full.rec_zn_pct_p05) > (params.rec_zn_pct_p95 - params.rec_zn_pct_p05)
    ).all()


def test_prediction_bands_cover_synthetic_held_out_quarters():
    """Quarters from a known model with the calibrated scatter: 90 % bands cover about 90 %.

    Four synthetic histories of six quarters (the real feeds), each calibrated and used to
    predict 30 new quarters drawn from the same truth; coverage over all figures.
    """
    true = default_calibration()
    spec = true.spec
    real = calibrate.fit_data()
    inside = []
    for rep in range(4):
        rng = np.random.default_rng(rep)
        a_hist = np.where(np.isnan(real.availability), rng.normal(0.92, 0.04, real.n), real.availability)
        train = calibrate.synthetic_data(
            spec, true.theta, real, scatter=true.scatter, seed=100 + rep, availability=a_hist
        )
        cal = calibrate.fit(spec, train, starts=2, seed=rep).to_calibration()
        test = calibrate.design_feed(30, seed=200 + rep, tpd=(200.0, 250.0), availability=np.nan)
        a_new = np.clip(rng.normal(0.92, 0.04, test.n), 0.5, 1.0)
        held = calibrate.synthetic_data(
            spec, true.theta, test, scatter=true.scatter, seed=300 + rep, availability=a_new
        )
        pred = calibrate.predict(
            cal, _feed_frame(test.periods, test.ore_t, test.head, test.tpd), n_draws=2000
        )
        for j, f in enumerate(calibrate.FIT_FIGURES):
            y = held.y[:, j]
            inside.append((y >= pred[f + "_p05"].values) & (y <= pred[f + "_p95"].values))
    coverage = np.mean(inside)
    assert 0.84 <= coverage <= 0.97


# ----------------------------------------------------------------------- bad feeds
@pytest.mark.parametrize(
    ("change", "match"),
    [
        (lambda d: d.drop(columns=["tpd"]), r"feed: missing column\(s\) tpd; required: period"),
        (
            lambda d: d.assign(ore_processed_t=-1.0),
            r"ore_processed_t of period 2011Q1: found -1 t; allowed: >= 0",
        ),
        (lambda d: d.assign(tpd=0.0), r"tpd of period 2011Q1: found 0 t/d; allowed: > 0"),
        (
            lambda d: d.assign(head_pb_pct=90.0),
            r"head_pb_pct of period 2011Q1: found 90 %; allowed: between 0",
        ),
        (lambda d: d.assign(head_zn_pct=-2.0), r"head_zn_pct of period 2011Q1: found -2 %"),
        (lambda d: d.assign(availability_pct=120.0), r"availability_pct of period 2011Q1: found 120 %"),
        (lambda d: d.assign(head_pb_pct=60.0, head_zn_pct=40.0), r"need 128.9 % galena \+ sphalerite"),
        (lambda d: d.assign(period="Q"), r"feed: period 'Q' appears twice"),
        (lambda d: d.assign(head_ag_gpt="lots"), r"head_ag_gpt of period 2011Q1: found 'lots'; a number"),
        (lambda d: d.iloc[:0], r"feed: no rows"),
    ],
)
def test_bad_feed_is_refused(change, match):
    with pytest.raises(ValidationError, match=match):
        calibrate.check_feed(change(_quarters_feed()))


def test_tpd_from_days_when_left_empty():
    feed = _quarters_feed().assign(days=[90, 91, 92, 92, 91, 91])
    feed.loc[0, "tpd"] = np.nan
    ds = calibrate.check_feed(feed)
    assert float(ds.tpd[0]) == pytest.approx(18050 / 90)


def test_predict_needs_a_feed_and_draws():
    with pytest.raises(ValidationError, match=r"feed: none given"):
        calibrate.predict(default_calibration())
    with pytest.raises(ValidationError, match=r"n_draws: found 1; allowed: at least 2"):
        calibrate.predict(default_calibration(), _quarters_feed(), n_draws=1)


def test_read_feed_errors(tmp_path):
    with pytest.raises(FileNotFoundError):
        calibrate.read_feed(tmp_path / "none.csv")
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(ValidationError, match=r"empty.csv: not a readable CSV file"):
        calibrate.read_feed(empty)


# -------------------------------------------------------------- calibration file
def test_calibration_round_trip(tmp_path, default_fit):
    cal = default_fit.to_calibration()
    path = cal.save(tmp_path / "c.json")
    back = Calibration.load(path)
    np.testing.assert_array_equal(back.theta, cal.theta)
    np.testing.assert_array_equal(back.cov, cal.cov)
    np.testing.assert_array_equal(back.scatter, cal.scatter)
    assert back.model == cal.model and back.meta["availability_prior"] == [0.92, 0.04]
    draws = back.draw_theta(np.random.default_rng(0), 500)
    lo, hi = back.spec.bounds()
    assert ((draws >= lo) & (draws <= hi)).all()
    # a parameter hardly correlated with those on a bound keeps its Gaussian spread
    j = back.param_names.index("e_pb")
    assert np.std(draws[:, j]) == pytest.approx(np.sqrt(back.cov[j, j]), rel=0.15)


def test_calibration_file_errors(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ValidationError, match=r"bad.json: not valid JSON: .* at line 1"):
        Calibration.load(bad)
    arr = tmp_path / "arr.json"
    arr.write_text("[1, 2]")
    with pytest.raises(ValidationError, match=r"arr.json: not a calibration file \(expected a JSON object\)"):
        Calibration.load(arr)
    d = default_calibration().to_dict()
    miss = tmp_path / "miss.json"
    miss.write_text(json.dumps({k: v for k, v in d.items() if k != "theta"}))
    with pytest.raises(ValidationError, match=r"miss.json: field 'theta' missing"):
        Calibration.load(miss)
    wrong = tmp_path / "wrong.json"
    wrong.write_text(json.dumps({**d, "param_names": ["a"]}))
    with pytest.raises(ValidationError, match=r"wrong.json: param_names \['a'\] do not match model"):
        Calibration.load(wrong)
    with pytest.raises(ValidationError, match=r"calibration cov: found shape \(2, 2\); expected \(8, 8\)"):
        Calibration(model=d["model"], theta=d["theta"], cov=np.eye(2))
    with pytest.raises(ValidationError, match=r"calibration theta: found a non-finite value"):
        Calibration(model=d["model"], theta=[np.nan] * 8, cov=np.eye(8))


def test_from_defaults_uses_model_fixed_parameters():
    cal = Calibration.from_defaults("plug_pb_tail_zn")
    assert cal.base[recovery.PARAM_INDEX["tail_pb"]] == 0.0
    assert cal.full()[recovery.PARAM_INDEX["ktau_zn"]] == 1e6


# ------------------------------------------------------------------ offset correlation
def test_shrunk_correlation_hand_cases():
    rng = np.random.default_rng(0)
    z = rng.standard_normal((4000, 2))
    x = np.stack([z[:, 0], 0.8 * z[:, 0] + 0.6 * z[:, 1]], axis=1)  # correlation 0.8
    r = calibrate.shrunk_correlation(x)
    assert r[0, 1] == pytest.approx(0.8, abs=0.03)  # plenty of data: hardly shrunk
    few = calibrate.shrunk_correlation(rng.standard_normal((6, 5)))
    np.testing.assert_allclose(np.diag(few), 1.0)
    assert np.abs(few - np.eye(5)).max() < 0.5  # six samples of five: shrunk hard
    np.testing.assert_array_equal(calibrate.shrunk_correlation(np.zeros((6, 3))), np.eye(3))


def test_predict_uses_offset_correlation():
    """Pb and Ag-to-lead-con offsets anticorrelated: silver recovery steadier than with independent ones."""
    cal = default_calibration()
    corr = np.eye(recovery.N_OFFSETS)
    corr[0, 2] = corr[2, 0] = -0.9
    meta = {**cal.meta, "scatter_corr": corr.tolist(), "scatter_dof": np.inf}
    args = {"model": cal.model, "theta": cal.theta, "cov": np.zeros_like(cal.cov), "base": cal.base}
    indep = Calibration(**args, scatter=cal.scatter, meta={**meta, "scatter_corr": np.eye(5).tolist()})
    anti = Calibration(**args, scatter=cal.scatter, meta=meta)
    feed = _quarters_feed().assign(availability_pct=92.0)
    w_i = calibrate.predict(indep, feed, n_draws=4000, seed=2)
    w_a = calibrate.predict(anti, feed, n_draws=4000, seed=2)
    width = {k: (v.rec_ag_pct_p95 - v.rec_ag_pct_p05).values for k, v in (("i", w_i), ("a", w_a))}
    assert (width["a"] < 0.8 * width["i"]).all()
    np.testing.assert_allclose(w_i.rec_pb_pct_p95, w_a.rec_pb_pct_p95, rtol=0.02)  # Pb alone unchanged


def test_packaged_calibration_carries_scatter_dof_and_correlation():
    meta = default_calibration().meta
    assert 1.0 < meta["scatter_dof"] < 6.0
    c = np.array(meta["scatter_corr"])
    assert c.shape == (recovery.N_OFFSETS, recovery.N_OFFSETS)
    np.testing.assert_allclose(c, c.T)
    np.testing.assert_allclose(np.diag(c), 1.0)


def test_draws_fold_at_a_bound_into_the_truncated_gaussian():
    """Optimum on rmax's upper bound: folded draws = the Gaussian truncated there (by rejection)."""
    spec = recovery.get_model("plug_pb_tail_zn")
    theta = spec.defaults()
    j_r, j_k = spec.free.index("rmax_pb"), spec.free.index("ktau_pb")
    theta[j_r] = 1.0
    sd = np.full(len(theta), 1e-3)
    sd[j_r], sd[j_k] = 0.05, 0.6
    corr = np.eye(len(theta))
    corr[j_r, j_k] = corr[j_k, j_r] = -0.9
    cov = corr * np.outer(sd, sd)
    cal = Calibration(model=spec.name, theta=theta, cov=cov, base=spec.base_full())
    idx, side, vecs = cal.fold_vectors()
    assert list(idx) == [j_r] and list(side) == [1.0]
    d = cal.draw_theta(np.random.default_rng(0), 20000)
    assert (d[:, j_r] <= 1.0).all()
    # reference: rejection sampling from the same Gaussian
    z = np.random.default_rng(1).multivariate_normal(theta, cov, 60000)
    ref = z[z[:, j_r] <= 1.0]
    for j in (j_r, j_k):
        assert d[:, j].mean() == pytest.approx(ref[:, j].mean(), abs=0.02 * sd[j])
        assert d[:, j].std() == pytest.approx(ref[:, j].std(), rel=0.03)
    # by hand: E[ktau | rmax <= 1] = ktau0 - rho sd_k sqrt(2/pi) (rho < 0: ktau rises)
    assert d[:, j_k].mean() == pytest.approx(theta[j_k] + 0.9 * 0.6 * np.sqrt(2 / np.pi), abs=0.015)


def test_fold_deviation_reflects_only_past_the_bound():
    dev = np.array([0.2, 1.0])
    recovery.fold_deviation(dev, np.array([0]), np.array([1.0]), np.array([[1.0, 0.5]]))
    np.testing.assert_allclose(dev, [-0.2, 0.8])  # reflected: dev - 2 * 0.2 * (1, 0.5)
    inside = np.array([-0.2, 1.0])
    recovery.fold_deviation(inside, np.array([0]), np.array([1.0]), np.array([[1.0, 0.5]]))
    np.testing.assert_allclose(inside, [-0.2, 1.0])
    low = np.array([-0.3, 0.0])
    recovery.fold_deviation(low, np.array([0]), np.array([-1.0]), np.array([[1.0, -1.0]]))
    np.testing.assert_allclose(low, [0.3, -0.6])


def test_write_default_calibration_reproduces_the_packaged_file(tmp_path):
    # the posterior draws' reproducibility is tested on a small case (test_calibrate_bayes)
    path = calibrate.write_default_calibration(tmp_path / "default.json", posterior=False)
    new, packaged = Calibration.load(path), default_calibration()
    assert new.model == packaged.model == calibrate.DEFAULT_MODEL
    np.testing.assert_allclose(new.theta, packaged.theta, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(new.cov, packaged.cov, rtol=1e-4, atol=1e-10)
    assert new.meta["made_by"] == "kenomill.calibrate.write_default_calibration()"


@pytest.mark.parametrize("model", ["fixed_tail", "plug_pb_tail_zn", "two_component", "cells_pb_tail_zn"])
def test_exact_jacobian_equals_differences_of_the_residuals_one_parameter_at_a_time(model):
    """The fit's Jacobian (derivatives of the mill outputs from one numba call) equals the
    central differences of the residual function called once per point (one-sided at a bound),
    to the differences' own error; a prior's row is 1/sd in its parameter's column."""
    spec = recovery.get_model(model)
    data = calibrate.fit_data()
    kinetic = spec.kind != recovery.KIN_NONE
    nuis = np.flatnonzero(np.isnan(data.availability)) if kinetic else np.array([], int)
    priors = {spec.free[0]: (float(spec.defaults()[0]), 0.1)}
    fun, jac, n_obs = calibrate._residual_fn(spec, data, spec.base_full(), nuis, priors, (0.9, 0.05), 1.3)
    lo, hi = spec.bounds()
    lo = np.concatenate([lo, np.full(len(nuis), 0.5)])
    hi = np.concatenate([hi, np.full(len(nuis), 1.0)])
    x = np.concatenate([spec.defaults(), np.full(len(nuis), 0.88)])
    x[-1 if len(nuis) else 1] = hi[-1 if len(nuis) else 1]  # one parameter at its upper bound
    J = jac(x)
    ref = np.empty_like(J)
    for j in range(x.size):
        h = 1e-6 * max(abs(x[j]), 1e-3)
        xp, xm = x.copy(), x.copy()
        xp[j], xm[j] = min(x[j] + h, hi[j]), max(x[j] - h, lo[j])
        ref[:, j] = (fun(xp) - fun(xm)) / (xp[j] - xm[j])
    assert J.shape == (fun(x).size, x.size) and n_obs < J.shape[0]
    # per column: one-sided differences at the bound are O(h) off, central ones O(h^2)
    scale = np.abs(ref).max(axis=0)
    np.testing.assert_allclose(J / scale, ref / scale, rtol=0, atol=1e-5)
    interior = np.flatnonzero((x > lo) & (x < hi))
    np.testing.assert_allclose(
        J[:, interior] / scale[interior], ref[:, interior] / scale[interior], atol=1e-7
    )
    row = J[-1]  # the prior on the first free parameter
    assert row[0] == pytest.approx(1 / 0.1, rel=1e-12) and not np.any(row[1:])
    if len(nuis):  # the first unknown availability's prior row: 1/sd in its column
        assert J[n_obs + 0, x.size - len(nuis)] == pytest.approx(1 / 0.05, rel=1e-12)
