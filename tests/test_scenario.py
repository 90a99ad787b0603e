"""Scenario files: the shipped ones load with their sources; each kind of bad file gets its error."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from kenomill import scenario as scn
from kenomill.cli import main
from kenomill.errors import ValidationError

ROOT = Path(__file__).resolve().parents[1]
SCENARIOS = sorted((ROOT / "scenarios").glob("*.toml"))
BASE = (ROOT / "scenarios" / "bellekeno_only.toml").read_text()


def test_the_four_required_scenarios_are_shipped():
    names = {p.stem for p in SCENARIOS}
    assert {"bellekeno_only", "onek_lucky_queen_2012q4", "permitting_delay_2013", "mill_400tpd"} <= names


@pytest.mark.parametrize("path", SCENARIOS, ids=lambda p: p.stem)
def test_shipped_scenarios_validate_and_state_their_assumptions(path):
    sc = scn.load(path)
    assert sc.name == path.stem
    assert len(sc.assumptions) >= 5
    for name, s in sc.sources.items():
        assert s.source, f"{path.name}: source {name} does not say where its figures come from"
    assert sc.mill.source


def test_bellekeno_grades_are_the_tonnage_weighted_reported_quarters():
    # hand-typed from the releases (23 Jan, 16 Apr, 16 Jul 2012): ore processed and head grades
    t = np.array([18050, 18928, 21532, 22554, 21251, 22209.0])
    ag = np.array([829, 822, 792, 889, 899, 704.0])
    pb = np.array([10.0, 10.5, 9.2, 11.1, 11.3, 8.8])
    zn = np.array([5.0, 6.5, 5.8, 6.7, 5.7, 4.9])
    g = scn.load(ROOT / "scenarios" / "bellekeno_only.toml").sources["bellekeno"].mean_grades()
    assert g["ag_gpt"] == pytest.approx((t * ag).sum() / t.sum(), rel=1e-12)
    assert g["pb_pct"] == pytest.approx((t * pb).sum() / t.sum(), rel=1e-12)
    assert g["zn_pct"] == pytest.approx((t * zn).sum() / t.sum(), rel=1e-12)
    assert g["ag_gpt"] == pytest.approx(822.06, abs=0.01)


def test_deposit_grades_and_sources_come_from_deposits_md():
    g, src = scn.grades_from("deposit:Onek:Indicated")
    assert g == {"ag_gpt": 194.0, "pb_pct": 1.23, "zn_pct": 13.74}
    assert "27 Jul 2011" in src
    g, src = scn.grades_from("deposit:Lucky Queen:Indicated")
    assert g == {"ag_gpt": 1227.0, "pb_pct": 2.57, "zn_pct": 1.72}
    df = scn.deposits()
    # contained silver of deposits.md = tonnes x grade within the rounding of the table
    oz = df.tonnes * df.ag_gpt / 31.1034768
    np.testing.assert_allclose(oz, df.ag_oz, rtol=0.005)


def test_reported_single_period_and_quarter_days():
    g, _ = scn.grades_from("reported:2012H1")
    assert g == {"ag_gpt": 800.0, "pb_pct": 10.0, "zn_pct": 5.3}
    assert [scn.quarter_days(q) for q in ("2012Q1", "2012Q2", "2012Q3", "2012Q4", "2013Q1")] == [
        91,
        91,
        92,
        92,
        90,
    ]
    assert scn.quarter_range("2012Q3", 3) == ["2012Q3", "2012Q4", "2013Q1"]


# ------------------------------------------------------------------ bad files
def _write(tmp_path, text, name="bad.toml"):
    p = tmp_path / name
    p.write_text(text)
    return p


def _sub(old, new, text=BASE, count=1):
    assert old in text, old
    return text.replace(old, new, count)


BAD = {
    "missing field": (
        _sub("[mill]\ntarget_tpd = [255, 270, 270, 270, 270, 270]\n", "[mill]\n"),
        r"mill\.target_tpd: field required",
    ),
    "misspelt field": (
        _sub("availability = 0.92", "availabilty = 0.92"),
        r"mill\.availabilty: unknown field 'availabilty' \(did you mean 'availability'\?\)",
    ),
    "misspelt top-level table": (
        _sub("[stockpile]", "[stockpiles]"),
        r"stockpiles: unknown field 'stockpiles' \(did you mean 'stockpile'\?\)",
    ),
    "unknown source name": (
        _sub("initial_t = { bellekeno = 2200 }", "initial_t = { belekeno = 2200 }"),
        r"stockpile\.initial_t\.belekeno: unknown source 'belekeno' \(did you mean 'bellekeno'\?\)",
    ),
    "negative tonnes": (
        _sub("rate_tpd = [255, 270, 270, 270, 270, 270]", "rate_tpd = -235"),
        r"sources\.bellekeno\.rate_tpd: found -235; allowed: greater than or equal to 0",
    ),
    "grade over 100 %": (
        _sub('grades_from = "reported:2011Q1..2012Q2"', 'grades_from = "reported:2011Q1..2012Q2"').replace(
            "pb_pct = { cv = 0.25", "pb_pct = { mean = 120, cv = 0.22"
        ),
        r"sources\.bellekeno: pb_pct\.mean: found 120 %; allowed: between 0 and 100 %",
    ),
    "NaN": (
        _sub("target_tpd = [255, 270, 270, 270, 270, 270]", "target_tpd = nan"),
        r"mill\.target_tpd: found nan; a finite number is required",
    ),
    "broken TOML": (
        _sub("[mill]", "[mill"),
        r"not valid TOML: .*line \d+",
    ),
    "negative tonnes in a per-quarter list": (
        _sub("rate_tpd = [255, 270, 270, 270, 270, 270]", "rate_tpd = [235, -1, 235, 235, 235, 235]"),
        r"sources\.bellekeno\.rate_tpd\.1: found -1; allowed: greater than or equal to 0",
    ),
    "text for a number": (
        _sub("rate_tpd = [255, 270, 270, 270, 270, 270]", 'rate_tpd = "a lot"'),
        r"sources\.bellekeno\.rate_tpd: found 'a lot'; input should be a valid number",
    ),
    "wrong number of quarters": (
        _sub("rate_tpd = [255, 270, 270, 270, 270, 270]", "rate_tpd = [235, 235, 235]"),
        r"sources\.bellekeno\.rate_tpd: found 3 values; give one number or one per quarter \(6\)",
    ),
    "misspelt response offset": (
        _sub(
            "zn_pct = { cv = 0.32, autocorrelation = 0.9, mean_uncertainty = 0.10 }",
            "zn_pct = { cv = 0.32, autocorrelation = 0.9, mean_uncertainty = 0.10 }\n"
            "response = { logit_rec_pbb = { sd = 0.5 } }",
        ),
        r"sources\.bellekeno\.response: unknown offset 'logit_rec_pbb' \(did you mean 'logit_rec_pb'\?\)",
    ),
    "bad quarter": (
        _sub(
            'start_after_reported = true   # 2012Q1-Q2 as reported count in 2012\nstart = "2012Q3"',
            'start = "2012Q5"',
        ),
        r"horizon\.start: found '2012Q5'; expected a quarter like '2012Q4'",
    ),
    "availability above one": (
        _sub("availability = 0.92", "availability = 92"),
        r"mill\.availability: found 92; allowed: less than or equal to 1",
    ),
    "target outside the horizon": (
        _sub("year = 2012", "year = 2015"),
        r"targets\.0\.year: found 2015; the horizon covers 2012, 2013",
    ),
    "correlation not positive definite": (
        _sub(
            "[[1.0, 0.94, 0.60], [0.94, 1.0, 0.63], [0.60, 0.63, 1.0]]",
            "[[1.0, 0.99, -0.9], [0.99, 1.0, 0.9], [-0.9, 0.9, 1.0]]",
        ),
        r"sources\.bellekeno\.grade_correlation: the matrix is not positive definite",
    ),
    "unknown deposit": (
        _sub('grades_from = "reported:2011Q1..2012Q2"', 'grades_from = "deposit:Oneck:Indicated"'),
        r"sources\.bellekeno\.grades_from: found 'deposit:Oneck:Indicated'; allowed: .*Onek:Indicated",
    ),
    "blend in rates mode": (
        _sub("rate_cv = 0.30", "rate_cv = 0.30\nblend = 1.0"),
        r"sources\.bellekeno\.blend: not allowed in rates mode",
    ),
}

BLEND_BASE = """
name = "b"
description = "blend"
assumptions = ["x"]
[horizon]
start = "2012Q1"
quarters = 2
[feed]
mode = "blend"
[sources.a]
blend = [0.7, 0.5]
ag_gpt = { mean = 800 }
pb_pct = { mean = 10 }
zn_pct = { mean = 5 }
[sources.b]
blend = 0.3
grades_from = "deposit:Onek:Indicated"
[mill]
target_tpd = 250
capacity_tpd = 320
availability = 0.92
"""


@pytest.mark.parametrize("kind", sorted(BAD))
def test_each_kind_of_bad_file_gets_its_one_line_error(tmp_path, kind):
    text, pattern = BAD[kind]
    p = _write(tmp_path, text)
    with pytest.raises(ValidationError, match=re.escape(str(p)) + ": " + pattern) as exc:
        scn.load(p)
    assert "\n" not in str(exc.value)


def test_blend_not_summing_to_one(tmp_path):
    p = _write(tmp_path, BLEND_BASE)
    with pytest.raises(
        ValidationError,
        match=r"sources\.\*\.blend: quarter 2012Q2: blend fractions sum to 0\.8; must sum to 1",
    ):
        scn.load(p)
    ok = scn.load(_write(tmp_path, BLEND_BASE.replace("blend = [0.7, 0.5]", "blend = [0.7, 0.7]"), "ok.toml"))
    assert ok.feed.mode == "blend"


def test_missing_grade_without_grades_from(tmp_path):
    p = _write(tmp_path, BLEND_BASE.replace("ag_gpt = { mean = 800 }\n", ""))
    with pytest.raises(
        ValidationError, match=r"sources\.a: ag_gpt\.mean: field required \(or give grades_from\)"
    ):
        scn.load(p)


def test_missing_file_raises_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError):
        scn.load(tmp_path / "nope.toml")


@pytest.mark.parametrize("kind", ["misspelt field", "broken TOML", "NaN"])
def test_cli_prints_one_line_exits_2_and_writes_nothing(tmp_path, kind):
    text, pattern = BAD[kind]
    p = _write(tmp_path, text)
    out = tmp_path / "out.nc"
    res = CliRunner().invoke(main, ["simulate", str(p), "--draws", "2", "--out", str(out)])
    assert res.exit_code == 2
    lines = res.stderr.strip().splitlines() if hasattr(res, "stderr") else res.output.strip().splitlines()
    assert len(lines) == 1
    assert re.match(r"kenomill simulate: error: " + re.escape(str(p)) + ": " + pattern, lines[0])
    assert "Traceback" not in res.output
    assert not out.exists()
    assert list(tmp_path.iterdir()) == [p]


#: the compile phase's own lines (kenomill.cli.simulate._import_simulate, plain mode: started
#: and done), printed by design when numba's cache is cold in the subprocess
_COMPILING = re.compile(
    r"^\S+Z kenomill: compiling the simulation kernels, once per install, [^:]*: (started|done in .*)$"
)


def test_cli_error_in_a_real_process_has_no_traceback(tmp_path):
    p = _write(tmp_path, BAD["unknown source name"][0])
    r = subprocess.run(
        [sys.executable, "-m", "kenomill", "simulate", str(p), "--draws", "2"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert r.returncode == 2 and "Traceback" not in r.stderr
    # whether or not the kernels compiled first (cold cache), the error is the one other line
    lines = [ln for ln in r.stderr.splitlines() if not _COMPILING.match(ln)]
    assert len(lines) == 1 and r.stderr.endswith("\n"), r.stderr
    assert "stockpile.initial_t.belekeno: unknown source 'belekeno'" in lines[0]
    assert r.stdout == ""


def test_the_compile_lines_are_recognised_as_printed(monkeypatch):
    """The filter above matches what a cold cache prints (a phase over START_DELAY_S), and
    nothing else."""
    import io
    import time

    from kenomill import progress

    monkeypatch.setattr(progress, "START_DELAY_S", 0.0)
    monkeypatch.setenv("KENOMILL_PROGRESS", "plain")
    buf = io.StringIO()
    with progress.phase("compiling the simulation kernels, once per install, about 1-2 min", stream=buf):
        time.sleep(0.3)
    printed = buf.getvalue().splitlines()
    assert len(printed) == 2 and all(_COMPILING.match(ln) for ln in printed), printed
    assert not _COMPILING.match("kenomill simulate: error: compiling the simulation kernels: started")


# ------------------------------------------------------------------ the July-2012 planner's scenarios
@pytest.mark.parametrize("path", SCENARIOS, ids=lambda p: p.stem)
def test_shipped_scenarios_start_from_the_reported_first_half(path):
    # issue 11: a planner in July 2012 (release of 16 Jul 2012) starts from 2012Q1-Q2 as reported
    sc = scn.load(path)
    assert sc.horizon.start_after_reported and sc.horizon.start == "2012Q3"
    assert sc.horizon.reported_before == ["2012Q1", "2012Q2"]
    # uncertain inputs carry their source in words
    assert sc.prices is not None and "7 May 2012" in sc.prices.ag.source
    assert (sc.prices.ag.median, sc.prices.pb.median, sc.prices.zn.median) == (32.81, 0.95, 0.92)
    for s in sc.sources.values():
        if s.rate_uncertainty is not None:
            assert s.rate_uncertainty.source
    if sc.mill.target_uncertainty is not None:
        assert sc.mill.target_uncertainty.source


@pytest.fixture(scope="module")
def bellekeno_run():
    from kenomill import simulate

    sc = scn.load(ROOT / "scenarios" / "bellekeno_only.toml")
    return sc, simulate.simulate(sc, draws=300, seed=5)


def test_bellekeno_only_mines_the_stated_rates_times_the_draws_factor(bellekeno_run):
    sc, ds = bellekeno_run
    f = ds.rate_factor.sel(source="bellekeno").values
    # triangular(0.87, 1, 1.10): mean (0.87 + 1 + 1.10) / 3 = 0.99, all inside [0.87, 1.10]
    assert f.min() >= 0.87 and f.max() <= 1.10
    assert f.mean() == pytest.approx(0.99, abs=0.01)
    # 2012Q3: 92 d x 255 t/d x factor; 2013: 365 d x 270 t/d x factor (day-to-day CV 0.30,
    # mean-preserving: a quarter's sum varies by about 0.30 / sqrt(92) = 3 %)
    q3 = ds.ore_mined_t.sel(quarter="2012Q3").values
    np.testing.assert_allclose(q3 / (92 * 255 * f), 1.0, atol=0.15)
    assert (q3 / (92 * 255 * f)).mean() == pytest.approx(1.0, abs=0.01)
    y13 = ds.ore_mined_t.sel(quarter=[f"2013Q{i}" for i in range(1, 5)]).sum("quarter").values
    assert (y13 / (365 * 270 * f)).mean() == pytest.approx(1.0, abs=0.01)
    assert y13.mean() == pytest.approx(365 * 270 * 0.99, rel=0.015)


def test_bellekeno_only_mill_never_runs_faster_than_its_drawn_target(bellekeno_run):
    sc, ds = bellekeno_run
    f = ds.target_factor.values
    assert f.min() >= 0.90 and f.max() <= 1.10
    # while running it feeds min(target x factor / 0.92, 320) t per operating day
    tgt = np.array([255, 270, 270, 270, 270, 270.0])
    bound = np.minimum(tgt[None, :] * f[:, None] / 0.92, 320.0)
    assert (ds.operating_tpd.values <= bound * (1 + 1e-9)).all()


def test_bellekeno_only_2012_counts_the_reported_first_half(bellekeno_run):
    from kenomill import simulate

    _, ds = bellekeno_run
    yr = simulate.annual(ds).sel(year=2012)
    h2 = ds.ag_oz.sel(quarter=["2012Q3", "2012Q4"]).sum("quarter").values
    # 581,808 oz (2012Q1, release 16 Apr 2012) + 458,472 oz (2012Q2, release 16 Jul 2012)
    np.testing.assert_allclose(yr.ag_oz.values, 581_808 + 458_472 + h2, rtol=1e-12)


def test_permitting_delay_holds_the_stated_new_ore_until_2013():
    from kenomill import simulate

    sc = scn.load(ROOT / "scenarios" / "permitting_delay_2013.toml")
    ds = simulate.simulate(sc, draws=60, seed=6)
    # held at the end of 2012Q4: (92 d - delay) x stated rate x the draw's factor, per mine
    # (Onek 40 t/d, Lucky Queen 25 t/d in 2012Q4); day-to-day CV 0.40 over ~70 days: ~5 %
    want = 0.0
    for name, rate in (("onek", 40.0), ("lucky_queen", 25.0)):
        days = 92 - ds.start_delay_days.sel(source=name).values
        want = want + days * rate * ds.rate_factor.sel(source=name).values
    got = ds.held_t.sel(quarter="2012Q4").values
    assert (got / want).mean() == pytest.approx(1.0, abs=0.03)
    np.testing.assert_allclose(got / want, 1.0, atol=0.25)
    # expected over draws: (92 - 22.5) d x 65 t/d x 0.9 (triangular 0.5, 1, 1.2) = 4,066 t
    assert got.mean() == pytest.approx(69.5 * 65 * 0.9, rel=0.1)
    assert (ds.held_t.sel(quarter="2013Q1") == 0).all()


def test_mill_400tpd_reaches_between_300_and_400_tpd_in_2013():
    from kenomill import simulate

    sc = scn.load(ROOT / "scenarios" / "mill_400tpd.toml")
    ds = simulate.simulate(sc, draws=40, seed=7)
    f = ds.target_factor.values
    assert f.min() >= 0.75 and f.max() <= 1.0
    tgt = np.array([255, 300] + [400] * 8, dtype=float)
    on = np.arange(10) >= 2  # from 2013Q1
    bound = np.minimum(tgt[None, :] * np.where(on, f[:, None], 1.0) / 0.92, 440.0)
    assert (ds.operating_tpd.values <= bound * (1 + 1e-9)).all()
    # 2012 at the stated targets: the factor starts in 2013
    assert (ds.operating_tpd.sel(quarter="2012Q3").values <= 255 / 0.92 * (1 + 1e-9)).all()
