"""The error model (defaults, TOML, overrides) and `kenomill reconcile`."""

from __future__ import annotations

import math
import re

import pandas as pd
import pytest
from click.testing import CliRunner

from kenomill.cli import main
from kenomill.data import FIGURES
from kenomill.errormodel import DEFAULT_RELATIVE_PCT, KIND_OF, ErrorModel, resolve
from kenomill.errors import ValidationError


# ------------------------------------------------------------------------------------
# error model
# ------------------------------------------------------------------------------------
def test_documented_defaults():
    assert dict(DEFAULT_RELATIVE_PCT) == {
        "tonnes": 1.5,
        "concentrate_tonnes": 1.0,
        "assays": 2.0,
        "recoveries": 1.0,
        "contained_metal": 1.0,
    }
    assert set(FIGURES) <= set(KIND_OF)


def test_sigma_is_rounding_and_relative_in_quadrature():
    m = ErrorModel()
    # 22,554 t printed to 1 t: sqrt((1/sqrt 12)^2 + (0.015 x 22554)^2)
    assert float(m.sigma("ore_processed_t", 22554.0, 1.0)) == pytest.approx(
        math.sqrt(1 / 12 + (0.015 * 22554) ** 2), rel=1e-14
    )
    # 93 % printed to 1 %: sqrt(1/12 + 0.93^2)
    assert float(m.sigma("rec_ag_pct", 93.0, 1.0)) == pytest.approx(math.sqrt(1 / 12 + 0.93**2), rel=1e-14)
    no_round = ErrorModel(rounding=False)
    assert float(no_round.sigma("head_pb_pct", 10.0, 0.1)) == pytest.approx(0.2, rel=1e-14)
    only_round = ErrorModel(relative_pct=dict.fromkeys(DEFAULT_RELATIVE_PCT, 0))
    assert float(only_round.sigma("head_pb_pct", 10.0, 0.1)) == pytest.approx(0.1 / math.sqrt(12), rel=1e-14)


def test_toml_file_and_overrides(tmp_path):
    p = tmp_path / "em.toml"
    p.write_text("rounding = false\n[relative_pct]\nassays = 3.0\n[columns_pct]\nzn_lb = 0.5\n")
    m = ErrorModel.from_toml(p)
    assert m.relative("head_ag_gpt") == pytest.approx(0.03)
    assert m.relative("zn_lb") == pytest.approx(0.005)
    assert m.relative("pb_lb") == pytest.approx(0.01)  # default kept
    assert not m.rounding
    m2 = m.with_overrides({"tonnes": 2.0, "head_ag_gpt": 4.0})
    assert m2.relative("ore_processed_t") == pytest.approx(0.02)
    assert m2.relative("head_ag_gpt") == pytest.approx(0.04)
    assert m2.relative("head_pb_pct") == pytest.approx(0.03)
    assert (
        resolve(p) == m and resolve(None) == ErrorModel() and resolve({"rounding": False}).rounding is False
    )


@pytest.mark.parametrize(
    "text, match",
    [
        ("[relative_pct]\nassay = 3.0\n", r"relative_pct: unknown kind 'assay'; allowed: tonnes"),
        (
            "[relative_pct]\nassays = -3.0\n",
            r"relative_pct.assays: found -3 %; allowed: a finite number >= 0 %",
        ),
        ("[relative_pct]\nassays = 'x'\n", r"relative_pct.assays: found 'x'; a number of percent >= 0"),
        ("[columns_pct]\nzn = 1.0\n", r"columns_pct: unknown column 'zn'; allowed: ore_mined_t"),
        ("relative = 1\n", r"unknown key\(s\) \['relative'\]; allowed: columns_pct, relative_pct, rounding"),
        ("rounding = 1\n", r"rounding: found 1; allowed: true or false"),
        ("relative_pct = 3\n", r"relative_pct: found 3; expected a table of name = percent"),
        ("[relative_pct\n", r"not valid TOML"),
    ],
)
def test_bad_error_model_files(tmp_path, text, match):
    p = tmp_path / "em.toml"
    p.write_text(text)
    with pytest.raises(ValidationError, match=match):
        ErrorModel.from_toml(p)


def test_bad_overrides_and_types():
    with pytest.raises(ValidationError, match=r"--rel-pct: unknown name 'grade'; allowed: a kind"):
        ErrorModel().with_overrides({"grade": 1.0})
    with pytest.raises(ValidationError, match=r"error_model: found int; give None, an ErrorModel"):
        resolve(3)


# ------------------------------------------------------------------------------------
# command line
# ------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def run():
    runner = CliRunner()

    def _run(*args):
        return runner.invoke(main, ["reconcile", *args], catch_exceptions=False)

    return _run


def test_cli_prints_tests_and_writes_csv(run, tmp_path):
    out = tmp_path / "rec.csv"
    r = run("--out", str(out), "--top", "5", "--error-sizes", "fixed")
    assert r.exit_code == 0, r.output
    assert "gross error (p < 0.05) in: 2011Q4\n" in r.output
    assert "most suspicious measurements" in r.output and "zn_lb" in r.output
    df = pd.read_csv(out)
    assert list(df.period) == [
        "2011Q1",
        "2011Q2",
        "2011Q3",
        "2011Q4",
        "2012Q1",
        "2012Q2",
        "2011H1",
        "2012H1",
        "2011FY",
    ]
    for c in ("period", "chi2", "dof", "p_value", "gross_error", *[f + "_rec" for f in FIGURES]):
        assert c in df.columns, c
    assert df.set_index("period").gross_error.to_dict()["2011Q4"] in (True, "True")
    assert df.gross_error.sum() == 1
    # reconciled Q4 zinc: pulled down from the printed 2,473,561 lb
    assert df.set_index("period").zn_lb_rec["2011Q4"] < 2_473_561


def test_cli_across_periods_netcdf(run, tmp_path):
    pytest.importorskip("h5py")
    import xarray as xr

    out = tmp_path / "rec.nc"
    r = run("--across-periods", "--out", str(out), "--top", "3")
    assert r.exit_code == 0, r.output
    assert "all periods together: chi2 = " in r.output
    with xr.open_dataset(out) as ds:
        assert ds.zn_lb_rec.attrs["units"] == "lb"
        assert int(ds.gross_error.sel(period="2011Q4")) == 1
        q = ds.ore_processed_t_rec.sel(period=["2011Q1", "2011Q2", "2011Q3", "2011Q4"]).sum()
        assert float(q) == pytest.approx(float(ds.ore_processed_t_rec.sel(period="2011FY")), rel=1e-9)


def test_cli_error_model_options(run, tmp_path):
    r = run("--rounding-only", "--top", "0")
    assert r.exit_code == 0, r.output
    assert "gross error (p < 0.05) in: 2011Q4, 2011FY" in r.output
    p = tmp_path / "em.toml"
    p.write_text("[relative_pct]\ncontained_metal = 20\n")  # contained metal nearly uninformative
    r = run("--error-model", str(p), "--top", "0")
    assert r.exit_code == 0, r.output
    assert "no period fails the global test at 0.05" in r.output
    r = run("--rel-pct", "contained_metal=20", "--exclude", "2011Q1.head_ag_gpt", "--top", "0")
    assert r.exit_code == 0 and "no period fails" in r.output


def test_cli_excluded_figures_are_estimated_and_compared(run):
    ex = ["--exclude", "2011Q4.zn_lb", "--exclude", "2011Q4.ag_oz", "--exclude", "2011Q4.pb_lb"]
    r = run(*ex, "--top", "0", "--error-sizes", "fixed")
    assert r.exit_code == 0, r.output
    assert "Excluded figures, estimated from the balances" in r.output
    row = next(ln for ln in r.output.splitlines() if "zn_lb" in ln and "2011Q4" in ln)
    assert "2,473,561" in row and "+10.9" in row  # printed Zn is 10.9 % above the balances' estimate
    assert "no period fails the global test at 0.05" in r.output


@pytest.mark.parametrize(
    "args, match",
    [
        (["--out", "{d}/rec.txt"], r"--out: found '.*rec.txt'; allowed extensions: .csv"),
        (["--out", "{d}/rec.csv", "--rel-pct", "assays=-1"], r"relative_pct.assays: found -1 %"),
        (
            ["--out", "{d}/rec.csv", "--rel-pct", "assays"],
            r"--rel-pct: found 'assays'; expected NAME=PERCENT",
        ),
        (["--out", "{d}/rec.csv", "--rel-pct", "assays=two"], r"--rel-pct: found 'assays=two'"),
        (["--out", "{d}/rec.csv", "--error-model", "{d}/missing.toml"], r"file not found: .*missing.toml"),
        (["--out", "{d}/rec.csv", "--error-model", "{d}/bad.toml"], r"not valid TOML"),
        (["--out", "{d}/rec.csv", "--exclude", "Q4.zn_lb"], r"exclude: found 'Q4.zn_lb'"),
        (["--out", "{d}/rec.csv", "--alpha", "2"], r"alpha: found 2.0; allowed: a number strictly between"),
        (
            ["--out", "{d}/rec.csv", "--rounding-only", "--no-rounding"],
            r"inconsistent constraints: constraint 0 \(2011Q1: Ag: feed x head x recovery = contained\) "
            r"involves only exact measurements",
        ),
    ],
)
def test_cli_bad_input_one_line_exit_2_no_file(run, tmp_path, args, match):
    (tmp_path / "bad.toml").write_text("[relative_pct\n")
    args = [a.format(d=tmp_path) for a in args]
    r = run(*args)
    assert r.exit_code == 2
    lines = [ln for ln in r.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("kenomill reconcile: error: "), r.output
    assert re.search(match, lines[0]), lines[0]
    written = sorted(p.name for p in tmp_path.iterdir())
    assert written == ["bad.toml"], written  # no output, no temporary file


def test_error_model_toml_round_trip(run, tmp_path):
    m = ErrorModel(relative_pct={"assays": 2.5}, columns_pct={"zn_lb": 0.5}, rounding=False)
    p = tmp_path / "em.toml"
    p.write_text(m.to_toml())
    assert ErrorModel.from_toml(p) == m
    r = run("--rel-pct", "tonnes=1.2", "--show-error-model", "--error-sizes", "fixed")
    assert r.exit_code == 0
    p.write_text(r.output)
    assert ErrorModel.from_toml(p) == ErrorModel(relative_pct={"tonnes": 1.2})


def test_cli_help_lists_the_options(run):
    r = run("--help")
    assert r.exit_code == 0
    for opt in (
        "--out",
        "--across-periods",
        "--error-model",
        "--rel-pct",
        "--rounding-only",
        "--exclude",
        "--alpha",
    ):
        assert opt in r.output
