"""Periods files: the reader, its merge rule, its validation, CSV vs .xlsx.

Reference figures: the packaged periods (``kenomill.reported_periods()``, transcribed from
the Alexco news releases of 23 Jan, 16 Apr and 16 Jul 2012 and checked against them in
test_data.py) must come back unchanged when written out as a periods file.
"""

from __future__ import annotations

import csv
import re
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


def test_figure_sources_are_kept_whole(tmp_path):
    # free-text sources with spaces, "; " and "=" inside: the merge winner of every figure is
    # the whole cell as written (it used to be cut at the first space: "Mill" and "Assay")
    a = dict(Q3_ROW, source="Mill monthly report; September 2012 (rev. A = draft) 2012-10-01", tpd="")
    b = dict(
        {k: Q3_ROW[k] for k in ("period", "period_start", "period_end", "days")},
        source="Assay laboratory certificate 2012-11-02",
        head_ag_gpt="781",
    )
    f = write_csv(tmp_path / "q3.csv", [a, b])
    ds = read_periods(f)
    assert data.figure_source(ds, "2012Q3", "head_ag_gpt") == "Assay laboratory certificate 2012-11-02"
    assert data.figure_source(ds, "2012Q3", "head_pb_pct") == a["source"]
    assert data.figure_sources(ds)["2012Q3"]["ore_processed_t"] == a["source"]
    with pytest.raises(KeyError, match="no release prints tpd for 2012Q3"):
        data.figure_source(ds, "2012Q3", "tpd")
    # the packaged figures keep their release next to the seed file
    pk = kenomill.reported_periods()
    assert (
        data.figure_source(pk, "2011Q1", "tpd") == "001_2d7d3e0911ae9488.txt (Alexco news release 2012-04-16)"
    )
    # netCDF keeps them (the dates' empty "units" attribute clashes with xarray's encoding)
    nc = tmp_path / "p.nc"
    ds.drop_vars(["period_start", "period_end"]).to_netcdf(nc, engine="h5netcdf")
    with xr.open_dataset(nc, engine="h5netcdf") as back:
        assert data.figure_source(back, "2012Q3", "head_ag_gpt") == b["source"]
    # periods check says which source supplied which figure
    res = _invoke("periods", "check", str(f))
    assert res.exit_code == 0, res.output
    assert "  head_ag_gpt: from Assay laboratory certificate 2012-11-02" in res.stdout
    assert f"from {a['source']}" in res.stdout


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


# ------------------------------------------------------------------- every validation rule
def _rows_with(**change):
    return [dict(Q3_ROW, **change)]


RULES = {
    # name: (rows or raw bytes, regex every problem line of this case must include)
    "unknown column": (
        [dict(Q3_ROW, ore_procesed_t="1")],
        r"row 1, column 14: unknown column 'ore_procesed_t'; did you mean 'ore_processed_t'\?",
    ),
    "missing required column": (
        [{k: v for k, v in Q3_ROW.items() if k != "source"}],
        r"missing required column 'source'; required: period, period_start, period_end, source",
    ),
    "grade above pure galena": (
        _rows_with(head_pb_pct="87"),
        r"row 2 \(2012Q3\), column head_pb_pct: found 87 %; allowed: 0 to 86.6 % \(pure galena",
    ),
    "grade above pure sphalerite": (
        _rows_with(head_zn_pct="68.0"),
        r"row 2 \(2012Q3\), column head_zn_pct: found 68.0 %; allowed: 0 to 67.1 % \(pure sphalerite",
    ),
    "recovery above 100 %": (
        _rows_with(rec_ag_pct="100.5"),
        r"row 2 \(2012Q3\), column rec_ag_pct: found 100.5 %; allowed: 0 to 100 %",
    ),
    "negative tonnes": (
        _rows_with(pbcon_t="-1"),
        r"row 2 \(2012Q3\), column pbcon_t: found -1 t; allowed: >= 0 t",
    ),
    "not a number": (
        _rows_with(ore_processed_t="22,500"),
        r"row 2 \(2012Q3\), column ore_processed_t: found '22,500'; allowed: a number in t",
    ),
    "end before start": (
        _rows_with(period_end="2012-06-30"),
        r"row 2 \(2012Q3\), column period_end: found 2012-06-30, before period_start 2012-07-01",
    ),
    "days inconsistent": (
        _rows_with(days="91"),
        r"row 2 \(2012Q3\), column days: found 91; allowed: 92, the calendar days from 2012-07-01",
    ),
    "bad date": (
        _rows_with(period_start="1/7/2012"),
        r"row 2 \(2012Q3\), column period_start: found '1/7/2012'; allowed: a date YYYY-MM-DD",
    ),
    "tpd beyond factor 1.5": (
        _rows_with(tpd="400"),
        r"row 2 \(2012Q3\), column tpd: found 400 t/d, ore_processed_t / days = 22500 / 92 = 244.6 t/d; "
        r"allowed: within a factor 1.5",
    ),
    "same figure same source twice": (
        [Q3_ROW, dict(Q3_ROW, head_ag_gpt="790")],
        r"row 3 \(2012Q3\), column head_ag_gpt: found 790; .*row 2 \(2012Q3\) gives 780 for the same period "
        r"and source",
    ),
    "empty period name": (
        _rows_with(period=""),
        r"row 2 \(no period\), column period: found an empty period name",
    ),
    "empty source": (_rows_with(source=""), r"row 2 \(2012Q3\), column source: found an empty source"),
    "latin-1 file": (
        "period,period_start,period_end,source\nQ3,2012-07-01,2012-09-30,Río\n".encode("latin-1"),
        r"not UTF-8 text.*byte 0xed at line 2, column \d+; save the periods file as UTF-8",
    ),
    "binary file": (b"\x00\x01\x02binary", r"not a text file: a NUL character at line 1"),
}


def _write_case(tmp_path, content) -> Path:
    f = tmp_path / "case.csv"
    if isinstance(content, bytes):
        f.write_bytes(content)
        return f
    return write_csv(f, content)


@pytest.mark.parametrize("rule", sorted(RULES))
def test_validation_rule_api(tmp_path, rule):
    content, pattern = RULES[rule]
    f = _write_case(tmp_path, content)
    with pytest.raises(PeriodsError, match=re.escape(str(f)) + r".*" + pattern):
        read_periods(f)


@pytest.mark.parametrize("rule", sorted(RULES))
def test_validation_rule_cli(tmp_path, rule):
    content, pattern = RULES[rule]
    f = _write_case(tmp_path, content)
    out = tmp_path / "rec.csv"
    res = _invoke("reconcile", "--periods", str(f), "--out", str(out))
    assert res.exit_code == 2
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1, res.stderr  # each case has exactly one problem
    assert re.match(r"kenomill reconcile: error: " + re.escape(str(f)) + ".*" + pattern, lines[0]), lines[0]
    assert res.stdout == "" and not out.exists() and "Traceback" not in res.output


def test_bom_is_accepted(tmp_path):
    f = write_csv(tmp_path / "bom.csv", [Q3_ROW], encoding="utf-8-sig")
    assert f.read_bytes().startswith(b"\xef\xbb\xbf")
    ds = read_periods(f)
    assert list(ds.period.values) == ["2012Q3"] and float(ds.head_ag_gpt[0]) == 780


def test_tpd_within_factor_is_a_warning_everywhere(tmp_path):
    f = write_csv(tmp_path / "w.csv", _rows_with(tpd="250"))
    with pytest.warns(PeriodsWarning, match=r"column tpd: found 250 t/d.*differ beyond printed rounding"):
        ds = read_periods(f)
    assert float(ds.tpd[0]) == 250 and "found 250 t/d" in ds.attrs["warnings"]
    res = _invoke("periods", "check", str(f))
    assert res.exit_code == 0 and "warning:" in res.stdout and "found 250 t/d" in res.stdout
    res = _invoke("balance", "--periods", "packaged", "--periods", str(f))
    assert res.exit_code == 0, res.output
    assert res.stderr.startswith("kenomill balance: warning: ")
    # the new quarter gives no concentrates: not checked, not counted as failing
    assert "40 of 54 figures close within rounding; 14 do not. 6 not checked" in res.stdout


def test_problems_of_several_files_at_once(tmp_path):
    a = write_csv(tmp_path / "a.csv", _rows_with(head_pb_pct="90"))
    b = write_csv(tmp_path / "b.csv", _rows_with(period="2012Q4", rec_pb_pct="120"))
    with pytest.raises(PeriodsError) as info:
        read_periods(["packaged", a, b])
    assert [ln.split(":")[0] for ln in info.value.problems] == [str(a), str(b)]
