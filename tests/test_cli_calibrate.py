"""``kenomill calibrate`` and ``kenomill predict``: outputs, column names, one-line errors."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from kenomill import calibrate
from kenomill.calibration_file import Calibration, default_calibration
from kenomill.cli import main
from kenomill.data import reported_periods

PRED_COLUMNS = [
    "period",
    "ag_oz",
    "pb_lb",
    "zn_lb",
    "rec_ag_pct",
    "rec_pb_pct",
    "rec_zn_pct",
    "pbcon_t",
    "pbcon_ag_gpt",
    "pbcon_pb_pct",
    "zncon_t",
    "zncon_ag_gpt",
    "zncon_zn_pct",
]


def run(*args):
    return CliRunner().invoke(main, list(args))


def one_line_error(res, *fragments):
    assert res.exit_code == 2, res.output
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1, res.stderr
    assert lines[0].startswith(f"kenomill {res_cmd(res)}: error: ")
    for f in fragments:
        assert f in lines[0], lines[0]
    assert "Traceback" not in res.stderr


def res_cmd(res):
    return res._cmd  # set by the helpers below


def invoke(cmd, *args):
    res = run(cmd, *args)
    res._cmd = cmd
    return res


@pytest.fixture
def feed_csv(tmp_path):
    ds = reported_periods("quarter")
    cols = ["ore_processed_t", "head_ag_gpt", "head_pb_pct", "head_zn_pct", "tpd", "days", "availability_pct"]
    df = ds[cols].to_dataframe().reset_index()
    p = tmp_path / "feed.csv"
    df.to_csv(p, index=False)
    return p


# ----------------------------------------------------------------------- calibrate
def test_calibrate_prints_fit_parameters_and_comparison_and_saves(tmp_path):
    out = tmp_path / "cal"
    res = invoke(
        "calibrate",
        "--models",
        "constant",
        "--starts",
        "2",
        "--posterior-steps",
        "0",
        "--compare-fit",
        "--workers",
        "1",
        "--out",
        str(out),
    )
    assert res.exit_code == 0, res.output + res.stderr
    for text in (
        "Reported vs fitted",
        "2012Q2",
        "Parameters",
        "ktau_pb",
        "Model comparison",
        "LOQO",
        "naive_mean",
        "naive_last",
        "default by prediction: constant",
    ):
        assert text in res.stdout
    assert "constant" in res.stdout and calibrate.DEFAULT_MODEL in res.stdout
    cal = Calibration.load(out / "calibration.json")
    assert cal.model == calibrate.DEFAULT_MODEL
    np.testing.assert_allclose(cal.theta, default_calibration().theta, rtol=1e-3, atol=1e-5)
    fit = pd.read_csv(out / "fit.csv")
    assert len(fit) == 54 and {"period", "figure", "reported", "fitted", "z"} <= set(fit.columns)
    # by prediction: the candidate named and the two naive baselines, each scored on 6 + 3 quarters
    cmp_ = pd.read_csv(out / "comparison.csv")
    assert set(cmp_["candidate"]) == {"constant", "naive_mean", "naive_last"}
    assert {"lpd_loqo", "crps_rolling", "mape_metal_loqo", "cover90_rolling"} <= set(cmp_.columns)
    q = pd.read_csv(out / "comparison_quarters.csv")
    assert len(q[q.candidate == "constant"]) == 6 + 3
    # by fit (--compare-fit): the older table, with the fitted model added
    fit_cmp = pd.read_csv(out / "comparison_fit.csv")
    assert set(fit_cmp["model"]) == {"constant", calibrate.DEFAULT_MODEL}
    assert {"aicc", "bic", "loo_rec_pb_pts", "loo_zn_lb_pct"} <= set(fit_cmp.columns)


def test_calibrate_model_no_compare_and_plots(tmp_path):
    out = tmp_path / "c2"
    res = invoke(
        "calibrate",
        "--model",
        "fixed_tail",
        "--no-compare",
        "--plot",
        "--posterior-steps",
        "0",
        "--out",
        str(out),
    )
    assert res.exit_code == 0, res.output + res.stderr
    assert "Model comparison" not in res.stdout
    for name in ("reported_vs_fitted.png", "recovery_curves.png"):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert Calibration.load(out / "calibration.json").model == "fixed_tail"


def test_calibrate_reconciled(tmp_path):
    pytest.importorskip("kenomill.reconcile")
    res = invoke(
        "calibrate",
        "--data",
        "reconciled",
        "--no-compare",
        "--starts",
        "1",
        "--posterior-steps",
        "0",
        "--out",
        str(tmp_path / "r"),
    )
    assert res.exit_code == 0, res.output + res.stderr
    assert "reconciled quarters" in res.stdout
    assert Calibration.load(tmp_path / "r" / "calibration.json").data == "reconciled"


def test_calibrate_list_models():
    res = invoke("calibrate", "--list-models")
    assert res.exit_code == 0
    for name in ("constant", "fixed_tail", "plug_flow", "mixed_cells", "klimpel", "two_component"):
        assert name in res.stdout


def test_calibrate_unknown_model_lists_valid_ones(tmp_path):
    res = invoke("calibrate", "--model", "magic", "--out", str(tmp_path / "x"))
    one_line_error(res, "model: found 'magic'; allowed: constant, fixed_tail")
    assert not (tmp_path / "x").exists()
    res = invoke("calibrate", "--models", "constant,nope", "--out", str(tmp_path / "x"))
    one_line_error(res, "candidate: found 'nope'; allowed: constant, constant_ramp")


def test_calibrate_bad_prior_and_out(tmp_path):
    res = invoke("calibrate", "--prior", "ktau_pb=2", "--out", str(tmp_path / "x"))
    one_line_error(res, "--prior: found 'ktau_pb=2'; expected NAME=MEAN,SD")
    f = tmp_path / "file"
    f.write_text("")
    res = invoke("calibrate", "--no-compare", "--out", str(f))
    one_line_error(res, "exists and is not a directory")
    res = invoke("calibrate", "--no-compare", "--out", str(tmp_path / "no" / "such"))
    one_line_error(res, "parent directory")
    res = invoke("calibrate", "--no-compare", "--prior", "ktau_zn=1,1", "--out", str(tmp_path / "y"))
    one_line_error(res, "priors: 'ktau_zn' is not a free parameter")
    assert not (tmp_path / "y").exists()


# ------------------------------------------------------------------------ predict
def test_predict_writes_the_documented_columns(feed_csv, tmp_path):
    out = tmp_path / "pred.csv"
    res = invoke("predict", str(feed_csv), "--out", str(out), "--draws", "300")
    assert res.exit_code == 0, res.output + res.stderr
    df = pd.read_csv(out, dtype={"period": str})
    want = PRED_COLUMNS + [f"{c}{t}" for c in PRED_COLUMNS[1:] for t in ("_p05", "_p95")]
    want += [f"{f}_extrapolated" for f in ("head_ag_gpt", "head_pb_pct", "head_zn_pct", "tpd")]
    nsr = [f"{c}{t}" for c in ("nsr_usd", "nsr_usd_per_t_ore", "pbcon_zn_pct") for t in ("", "_p05", "_p95")]
    assert list(df.columns) == want + nsr
    assert not df[want[-4:]].to_numpy().any()  # the six quarters are the calibration's range
    assert list(df["period"]) == ["2011Q1", "2011Q2", "2011Q3", "2011Q4", "2012Q1", "2012Q2"]
    pred = calibrate.predict(default_calibration(), calibrate.read_feed(feed_csv), n_draws=300)
    np.testing.assert_allclose(df["ag_oz"], pred["ag_oz"], rtol=1e-12)
    np.testing.assert_allclose(df["rec_pb_pct_p95"], pred["rec_pb_pct_p95"], rtol=1e-12)
    assert "Prediction, model" in res.stdout


def test_predict_with_calibration_file_and_netcdf(feed_csv, tmp_path):
    cal = Calibration.from_defaults("constant")
    path = cal.save(tmp_path / "c.json")
    out = tmp_path / "pred.nc"
    res = invoke("predict", str(feed_csv), "--out", str(out), "--calibration", str(path), "--draws", "50")
    assert res.exit_code == 0, res.output + res.stderr
    import xarray as xr

    with xr.open_dataset(out, engine="h5netcdf") as ds:
        assert ds.attrs["model"] == "constant"
        # constant model, no uncertainty: p05 = p95 = the value only when scatter is zero
        np.testing.assert_allclose(ds.rec_pb_pct, 95.0 * np.ones(6), rtol=1e-12)


@pytest.mark.parametrize(
    ("edit", "fragments"),
    [
        (lambda df: df.drop(columns=["head_zn_pct"]), ["missing column(s) head_zn_pct"]),
        (lambda df: df.assign(ore_processed_t=-5), ["ore_processed_t of period 2011Q1: found -5 t"]),
        (lambda df: df.assign(head_pb_pct=101), ["head_pb_pct of period 2011Q1: found 101 %"]),
        (lambda df: df.assign(availability_pct=0), ["availability_pct of period 2011Q1: found 0 %"]),
        (lambda df: df.assign(tpd="fast"), ["tpd of period 2011Q1: found 'fast'"]),
    ],
)
def test_predict_bad_feed_one_line_error_and_no_output(feed_csv, tmp_path, edit, fragments):
    df = pd.read_csv(feed_csv, dtype={"period": str})
    bad = tmp_path / "bad.csv"
    edit(df).to_csv(bad, index=False)
    out = tmp_path / "pred.csv"
    res = invoke("predict", str(bad), "--out", str(out))
    one_line_error(res, *fragments)
    assert not out.exists()


def test_predict_missing_files_and_bad_out(feed_csv, tmp_path):
    out = tmp_path / "pred.csv"
    res = invoke("predict", str(tmp_path / "none.csv"), "--out", str(out))
    one_line_error(res, "file not found", "none.csv")
    res = invoke("predict", str(feed_csv), "--out", str(out), "--calibration", str(tmp_path / "c.json"))
    one_line_error(res, "file not found", "c.json")
    broken = tmp_path / "broken.json"
    broken.write_text(json.dumps({"model": "nope", "theta": [], "cov": []}))
    res = invoke("predict", str(feed_csv), "--out", str(out), "--calibration", str(broken))
    one_line_error(res, "model: found 'nope'; allowed:")
    res = invoke("predict", str(feed_csv), "--out", str(tmp_path / "pred.txt"))
    one_line_error(res, "--out", "allowed extensions: .csv")
    assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["broken.json", "feed.csv"]


def test_calibrate_posterior_draws_in_the_file(tmp_path):
    out = tmp_path / "post"
    res = invoke(
        "calibrate", "--model", "constant", "--no-compare", "--posterior-steps", "3000", "--out", str(out)
    )
    assert res.exit_code == 0, res.output
    assert "Posterior of constant" in res.output
    cal = Calibration.load(out / "calibration.json")
    d = cal.posterior_draws()
    assert d["theta"].shape == (500, len(cal.theta))
    assert cal.meta["posterior"]["rhat_max"] <= 1.1
    assert cal.meta["feed_range"]["tpd"] == [201.0, 245.0]


def test_calibrate_not_converged_is_one_line(tmp_path):
    res = invoke(
        "calibrate",
        "--model",
        "constant",
        "--no-compare",
        "--posterior-steps",
        "40",
        "--out",
        str(tmp_path / "n"),
    )
    assert res.exit_code == 2
    assert "did not converge in 40 steps" in res.output
    assert "Traceback" not in res.output
    assert not (tmp_path / "n").exists()


def test_gross_errors_choice_is_recorded_and_robust_prints_it(tmp_path):
    out = tmp_path / "r"
    res = invoke(
        "calibrate",
        "--model",
        "constant",
        "--no-compare",
        "--gross-errors",
        "robust",
        "--posterior-steps",
        "3000",
        "--out",
        str(out),
    )
    assert res.exit_code == 0, res.output + res.stderr
    assert "robust likelihood" in res.stdout
    cal = Calibration.load(out / "calibration.json")
    assert cal.meta["gross_errors"] == {"choice": "robust", "excluded": []}
    res = invoke("calibrate", "--gross-errors", "maybe", "--out", str(tmp_path / "z"))
    assert res.exit_code == 2 and "maybe" in res.stderr


def test_exclude_flags_figures_as_not_reported():
    data = calibrate.fit_data()
    flags = np.zeros_like(data.y, dtype=bool)
    flags[3, 2] = flags[5, 0] = True  # 2011Q4 rec_zn_pct, 2012Q2 rec_ag_pct
    out = calibrate.exclude_figures(data, flags)
    assert out.excluded == ("2011Q4.rec_zn_pct", "2012Q2.rec_ag_pct")
    assert np.isnan(out.y[3, 2]) and np.isnan(out.y[5, 0])
    assert np.isfinite(out.y).sum() == np.isfinite(data.y).sum() - 2


def test_too_few_periods_for_the_comparison_by_prediction_skip_it_with_a_line(tmp_path, monkeypatch):
    from kenomill import validation

    # six packaged quarters against a rolling origin that would need seven
    monkeypatch.setattr(validation, "ROLLING_MIN", 6)
    res = invoke("calibrate", "--model", "constant", "--posterior-steps", "0", "--out", str(tmp_path / "c"))
    assert res.exit_code == 0, res.output + res.stderr
    assert "comparison by prediction skipped: it needs at least 7 base periods" in res.stdout
    assert not (tmp_path / "c" / "comparison.csv").exists()


def test_the_hint_names_the_command_that_fits_the_best_candidate():
    from kenomill.cli.calibrate import _how_to_fit

    assert (
        _how_to_fit("cells_pb_tail_zn_robust")
        == "kenomill calibrate --model cells_pb_tail_zn --gross-errors robust"
    )
    assert _how_to_fit("fixed_tail") == "kenomill calibrate --model fixed_tail"
    assert "cannot hold" in _how_to_fit("cells_pb_tail_zn_ramp")


def test_calibrate_defaults_converge_the_posterior(tmp_path):
    """The calibration of the README's main job (the default model, the default posterior
    steps) passes its own convergence check: at 4000 steps R-hat was 1.05-1.12 depending on
    a rounding in the fit's optimum, and the command stopped with an error."""
    out = tmp_path / "cal"
    res = invoke("calibrate", "--no-compare", "--out", str(out))
    assert res.exit_code == 0, res.output + res.stderr
    meta = Calibration.load(out / "calibration.json").meta["posterior"]
    assert meta["n_steps"] == 8000 and meta["rhat_max"] <= 1.1 and meta["ess_bulk_min"] >= 100
