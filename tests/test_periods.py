"""Periods files: the reader, its merge rule, its validation, CSV vs .xlsx.

Reference figures: the packaged periods (``kenomill.reported_periods()``, transcribed from
the Alexco news releases of 23 Jan, 16 Apr and 16 Jul 2012 and checked against them in
test_data.py) must come back unchanged when written out as a periods file.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

import kenomill
from kenomill import data
from kenomill.data import AGGREGATES, QUARTERS
from kenomill.periods import PeriodsError, PeriodsWarning, read_periods

PACKAGED_CSV = Path(data.__file__).parent / "data" / "reported_periods.csv"

# a new quarter of the Keno Hill mill, invented but consistent: 22,500 t at 780 g/t Ag,
# 9.5 % Pb, 5.2 % Zn, 92 / 88 / 57 % recovery, 92 calendar days
Q3_ROW = {
    "period": "2012Q3",
    "period_start": "2012-07-01",
    "period_end": "2012-09-30",
    "days": "92",
    "source": "synthetic quarter for tests (2012-10-15)",
    "ore_processed_t": "22500",
    "head_ag_gpt": "780",
    "head_pb_pct": "9.5",
    "head_zn_pct": "5.2",
    "rec_ag_pct": "92",
    "rec_pb_pct": "88",
    "rec_zn_pct": "57",
    "tpd": "245",
}


def write_csv(path: Path, rows: list[dict[str, str]], columns=None, encoding="utf-8") -> Path:
    columns = columns or list(dict.fromkeys(k for r in rows for k in r))
    with open(path, "w", newline="", encoding=encoding) as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(columns)
        for r in rows:
            w.writerow([r.get(c, "") for c in columns])
    return path


def test_packaged_keyword_is_reported_periods():
    xr.testing.assert_identical(read_periods("packaged"), kenomill.reported_periods())
    xr.testing.assert_identical(kenomill.read_periods(["packaged"]), kenomill.reported_periods())


def test_packaged_csv_as_user_file_gives_the_same_dataset(tmp_path):
    ds = read_periods(PACKAGED_CSV)
    ref = kenomill.reported_periods()
    xr.testing.assert_identical(ds.drop_attrs(), ref.drop_attrs())
    for key in ("sources", "field_sources", "merge_rule"):
        assert ds.attrs[key] == ref.attrs[key]
    assert ds.attrs["warnings"] == ""


def test_aggregates_and_base_periods_of_packaged():
    ds = kenomill.reported_periods()
    assert data.aggregates_of(ds) == AGGREGATES
    assert data.base_periods(ds) == QUARTERS
    assert data.aggregates_of(kenomill.reported_periods("quarter")) == {}


def test_aggregates_of_monthly_file(tmp_path):
    rows = []
    for m, (start, end) in enumerate(
        [("2013-01-01", "2013-01-31"), ("2013-02-01", "2013-02-28"), ("2013-03-01", "2013-03-31")], 1
    ):
        rows.append({"period": f"2013-{m:02d}", "period_start": start, "period_end": end, "source": "s"})
    rows.append({"period": "2013Q1", "period_start": "2013-01-01", "period_end": "2013-03-31", "source": "s"})
    # a quarter with one month missing is not a sum of the file's periods
    for name, start, end in (("2013Q2", "2013-04-01", "2013-06-30"), ("2013-04", "2013-04-01", "2013-04-30")):
        rows.append({"period": name, "period_start": start, "period_end": end, "source": "s"})
    f = write_csv(tmp_path / "m.csv", rows)
    with pytest.warns(PeriodsWarning, match="2013Q2 and 2013-04 overlap"):
        ds = read_periods(f)
    assert data.aggregates_of(ds) == {"2013Q1": ("2013-01", "2013-02", "2013-03")}
    assert data.base_periods(ds) == ("2013-01", "2013-02", "2013-03", "2013Q2", "2013-04")
    np.testing.assert_array_equal(ds["days"].values, [31, 28, 31, 90, 91, 30])


def test_packaged_plus_new_quarter(tmp_path):
    f = write_csv(tmp_path / "q3.csv", [Q3_ROW])
    ds = read_periods(["packaged", f])
    assert list(ds.period.values) == [*kenomill.reported_periods().period.values, "2012Q3"]
    q3 = ds.sel(period="2012Q3")
    assert float(q3.head_pb_pct) == 9.5 and float(q3.head_pb_pct_resolution) == 0.1
    assert float(q3.ore_processed_t_resolution) == 1.0
    assert np.isnan(float(q3.pbcon_t)) and np.isnan(float(q3.pbcon_t_resolution))
    assert str(q3.source.values) == Q3_ROW["source"]
    assert data.base_periods(ds) == (*QUARTERS, "2012Q3")
    # attributes carry which files were used
    assert ds.attrs["periods_files"] == f"packaged; {f}"


def test_merge_latest_release_wins_and_resolution_column(tmp_path):
    a = dict(Q3_ROW, source="first estimate (2012-10-01)", tpd="240", rec_pb_pct="87.5")
    b = dict(
        Q3_ROW,
        source="final release (2012-11-01)",
        rec_pb_pct="",
        head_ag_gpt="781",
        head_ag_gpt_resolution="10",
    )
    f = write_csv(tmp_path / "q3.csv", [b, a])  # order in the file does not matter: the date does
    with pytest.warns(PeriodsWarning, match=r"row 3 \(2012Q3\), column tpd: found 240 t/d.*244.6 t/d"):
        ds = read_periods(f).sel(period="2012Q3")
    assert float(ds.tpd) == 245  # the later release
    assert float(ds.rec_pb_pct) == 87.5 and float(ds.rec_pb_pct_resolution) == 0.1  # only the first prints it
    assert float(ds.head_ag_gpt) == 781 and float(ds.head_ag_gpt_resolution) == 10.0
    assert str(ds.source.values) == "final release (2012-11-01); first estimate (2012-10-01)"


def test_all_problems_at_once(tmp_path):
    bad = dict(Q3_ROW, head_pb_pct="90", period_end="2012-06-30", rec_zn_pct="101")
    f = write_csv(tmp_path / "bad.csv", [bad, dict(Q3_ROW, period="", ore_processed_t="-5")])
    with pytest.raises(PeriodsError) as info:
        read_periods(f)
    lines = info.value.problems
    assert any("row 2 (2012Q3), column head_pb_pct: found 90 %; allowed: 0 to 86.6 %" in ln for ln in lines)
    assert any(
        "row 2 (2012Q3), column period_end: found 2012-06-30, before period_start" in ln for ln in lines
    )
    assert any("row 2 (2012Q3), column rec_zn_pct: found 101 %; allowed: 0 to 100 %" in ln for ln in lines)
    assert any("row 3 (no period), column period: found an empty period name" in ln for ln in lines)
    assert any("row 3 (no period), column ore_processed_t: found -5 t; allowed: >= 0 t" in ln for ln in lines)
    assert all(ln.startswith(str(f)) for ln in lines)


# ------------------------------------------------------------------------- command line
def _invoke(*args):
    from click.testing import CliRunner

    from kenomill.cli import main

    return CliRunner().invoke(main, list(args))


def test_cli_refuses_bad_file_one_line_per_problem_no_output(tmp_path):
    bad = dict(Q3_ROW, head_pb_pct="90", rec_zn_pct="101")
    f = write_csv(tmp_path / "bad.csv", [bad])
    out = tmp_path / "b.csv"
    for cmd in ("balance", "reconcile"):
        res = _invoke(cmd, "--periods", "packaged", "--periods", str(f), "--out", str(out))
        assert res.exit_code == 2, res.output
        lines = res.stderr.strip().splitlines()
        assert len(lines) == 2 and all(
            ln.startswith(f"kenomill {cmd}: error: {f}: row 2 (2012Q3)") for ln in lines
        )
        assert "head_pb_pct: found 90 %" in lines[0] and "rec_zn_pct: found 101 %" in lines[1]
        assert "Traceback" not in res.output and res.stdout == ""
        assert not out.exists()
    res = _invoke("periods", "check", str(f))
    assert res.exit_code == 2 and "2 problem(s)" in res.stderr


def test_cli_template_check_and_balance_xlsx(tmp_path):
    for ext in ("csv", "xlsx"):
        t = tmp_path / f"t.{ext}"
        res = _invoke("periods", "template", "--out", str(t))
        assert res.exit_code == 0, res.output
        res = _invoke("periods", "check", str(t))
        assert res.exit_code == 0, res.output
        assert "2012Q2: 2012-04-01 to 2012-06-30, 91 d, base; 19 of 19 figures" in res.stdout
    a, b = read_periods(tmp_path / "t.csv"), read_periods(tmp_path / "t.xlsx")
    xr.testing.assert_identical(a.drop_attrs(), b.drop_attrs())
    out = tmp_path / "bal.xlsx"
    res = _invoke("balance", "--periods", str(tmp_path / "t.xlsx"), "--out", str(out))
    assert res.exit_code == 0, res.output
    import pandas as pd

    table = pd.read_excel(out, sheet_name="table")
    assert set(table["period"]) == {"2012Q2"}
    res = _invoke("balance", "--periods", str(tmp_path / "t.csv"), "--out", str(tmp_path / "bal.csv"))
    assert res.exit_code == 0, res.output
    pd.testing.assert_frame_equal(table, pd.read_csv(tmp_path / "bal.csv"), check_dtype=False)
