"""Feeds outside the calibration's domain, tpd against tonnes and days, unknown columns."""

from __future__ import annotations

import pandas as pd
import pytest
from click.testing import CliRunner

from kenomill import calibrate, feed
from kenomill.calibration_file import Calibration, default_calibration
from kenomill.cli import main
from kenomill.errors import ValidationError

# 2011Q4 as printed in the news release of the fourth quarter of 2011 (tonnes, grades, t/d)
Q4 = {
    "period": "2011Q4",
    "ore_processed_t": 22554,
    "head_ag_gpt": 889,
    "head_pb_pct": 11.1,
    "head_zn_pct": 6.7,
    "tpd": 245,
}


def _feed(**change) -> pd.DataFrame:
    return pd.DataFrame([{**Q4, **change}])


def test_reexported_from_calibrate():
    assert calibrate.read_feed is feed.read_feed and calibrate.check_feed is feed.check_feed


def test_feed_range_of_the_packaged_quarters_and_of_meta():
    r = feed.feed_range(Calibration.from_defaults())
    # the six quarters 2011Q1-2012Q2 of the releases: Ag 704-899 g/t, Pb 8.8-11.3 %, Zn 4.9-6.7 %, 201-245 t/d
    assert r == {
        "head_ag_gpt": (704.0, 899.0),
        "head_pb_pct": (8.8, 11.3),
        "head_zn_pct": (4.9, 6.7),
        "tpd": (201.0, 245.0),
    }
    cal = Calibration.from_defaults()
    cal.meta["feed_range"] = {"tpd": [100, 400]}
    assert feed.feed_range(cal) == {"tpd": (100.0, 400.0)}


def test_inside_outside_and_unit_mistakes():
    cal = default_calibration()
    flags, warn = feed.check_domain(feed.check_feed(_feed()), cal)
    assert not any(f.any() for f in flags.values()) and warn == []
    flags, warn = feed.check_domain(feed.check_feed(_feed(tpd=300)), cal)
    assert flags["tpd"].tolist() == [True] and "tpd of period 2011Q4: 300 t/d is above the range" in warn[0]
    cases = {
        "head_pb_pct": (0.111, r"head_pb_pct .* by a factor of 79.3: a fraction given for a percent"),
        "head_ag_gpt": (25.9, r"head_ag_gpt .*: oz per short ton given for g/t\? \(25.9 oz/st is 888 g/t\)"),
        "tpd": (22554, r"tpd .*the quarter's tonnes given for t/d"),
    }
    for f, (v, match) in cases.items():
        with pytest.raises(ValidationError, match=match):
            feed.check_domain(feed.check_feed(_feed(**{f: v})), cal)
        flags, warn = feed.check_domain(feed.check_feed(_feed(**{f: v})), cal, extrapolate=True)
        assert flags[f].tolist() == [True] and len(warn) == 1


def test_tpd_against_tonnes_and_days():
    # 22554 t / 92 d = 245.2 t/d: the release's 245 is within printed rounding
    assert feed.check_feed(_feed(days=92)).attrs["warnings"] == []
    # 248 t/d is 1.2 % off: the release may have counted other days; a warning naming all three
    w = feed.check_feed(_feed(days=92, tpd=248)).attrs["warnings"]
    assert (
        len(w) == 1 and "tpd 248 t/d but ore_processed_t / days = 22554 t / 92 d = 245.2 t/d (+1.2 %)" in w[0]
    )
    with pytest.raises(ValidationError, match=r"tpd 2450 t/d but ore_processed_t / days .* factor of 1.5"):
        feed.check_feed(_feed(days=92, tpd=2450))


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"availabilty_pct": 95}, r"unknown column 'availabilty_pct' \(did you mean 'availability_pct'\?\)"),
        ({"moisture": 3}, r"unknown column 'moisture'; allowed: period, ore_processed_t"),
        ({"period": ""}, r"row 1: the period name is empty"),
        ({"period": None}, r"row 1: the period name is empty"),
        ({"days": 0}, r"days of period 2011Q4: found 0 d; allowed: > 0"),
    ],
)
def test_refused(change, match):
    with pytest.raises(ValidationError, match=match):
        feed.check_feed(_feed(**change))


def test_cli_predict_flags_extrapolated_figures(tmp_path):
    f = tmp_path / "feed.csv"
    _feed(head_ag_gpt=1000).to_csv(f, index=False)
    out = tmp_path / "pred.csv"
    res = CliRunner().invoke(main, ["predict", str(f), "--out", str(out), "--draws", "50"])
    assert res.exit_code == 0, res.output
    assert "warning: " in res.stderr and "1000 g/t is above the range" in res.stderr
    got = pd.read_csv(out)
    assert got["head_ag_gpt_extrapolated"].tolist() == [True] and got["tpd_extrapolated"].tolist() == [False]
    f.write_text("period,ore_processed_t,head_ag_gpt,head_pb_pct,head_zn_pct,tpd\n,1,2,3,4,5\n")
    res = CliRunner().invoke(main, ["predict", str(f), "--out", str(tmp_path / "p2.csv")])
    assert res.exit_code == 2 and len(res.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "p2.csv").exists()
