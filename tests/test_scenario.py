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
        _sub("[mill]\ntarget_tpd = 245\n", "[mill]\n"),
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
        _sub("initial_t = { bellekeno = 3000 }", "initial_t = { belekeno = 3000 }"),
        r"stockpile\.initial_t\.belekeno: unknown source 'belekeno' \(did you mean 'bellekeno'\?\)",
    ),
    "negative tonnes": (
        _sub("rate_tpd = 235", "rate_tpd = -235"),
        r"sources\.bellekeno\.rate_tpd: found -235; allowed: greater than or equal to 0",
    ),
    "grade over 100 %": (
        _sub('grades_from = "reported:2011Q1..2012Q2"', 'grades_from = "reported:2011Q1..2012Q2"').replace(
            "pb_pct = { cv = 0.25", "pb_pct = { mean = 120, cv = 0.22"
        ),
        r"sources\.bellekeno: pb_pct\.mean: found 120 %; allowed: between 0 and 100 %",
    ),
    "NaN": (
        _sub("target_tpd = 245", "target_tpd = nan"),
        r"mill\.target_tpd: found nan; a finite number is required",
    ),
    "broken TOML": (
        _sub("[mill]", "[mill"),
        r"not valid TOML: .*line \d+",
    ),
    "negative tonnes in a per-quarter list": (
        _sub("rate_tpd = 235", "rate_tpd = [235, -1, 235, 235, 235, 235, 235, 235]"),
        r"sources\.bellekeno\.rate_tpd\.1: found -1; allowed: greater than or equal to 0",
    ),
    "text for a number": (
        _sub("rate_tpd = 235", 'rate_tpd = "a lot"'),
        r"sources\.bellekeno\.rate_tpd: found 'a lot'; input should be a valid number",
    ),
    "wrong number of quarters": (
        _sub("rate_tpd = 235", "rate_tpd = [235, 235, 235]"),
        r"sources\.bellekeno\.rate_tpd: found 3 values; give one number or one per quarter \(8\)",
    ),
    "misspelt response offset": (
        _sub(
            "zn_pct = { cv = 0.32, autocorrelation = 0.9, mean_uncertainty = 0.05 }",
            "zn_pct = { cv = 0.32, autocorrelation = 0.9, mean_uncertainty = 0.05 }\n"
            "response = { logit_rec_pbb = { sd = 0.5 } }",
        ),
        r"sources\.bellekeno\.response: unknown offset 'logit_rec_pbb' \(did you mean 'logit_rec_pb'\?\)",
    ),
    "bad quarter": (
        _sub('start = "2012Q1"', 'start = "2012Q5"'),
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
        _sub("rate_tpd = 235", "rate_tpd = 235\nblend = 1.0"),
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


def test_cli_error_in_a_real_process_has_no_traceback(tmp_path):
    p = _write(tmp_path, BAD["unknown source name"][0])
    r = subprocess.run(
        [sys.executable, "-m", "kenomill", "simulate", str(p), "--draws", "2"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert r.returncode == 2
    assert r.stderr.count("\n") == 1 and "Traceback" not in r.stderr
    assert "stockpile.initial_t.belekeno: unknown source 'belekeno'" in r.stderr
