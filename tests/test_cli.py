"""The command line: ``kenomill balance [--out FILE]`` and the one-line error contract."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import click
import pandas as pd
import pytest
import xarray as xr
from click.testing import CliRunner

from kenomill import io
from kenomill.cli import EXIT_BAD_INPUT, guarded, main
from kenomill.data import AGGREGATES, QUARTERS

PERIODS = (*QUARTERS, *AGGREGATES)
QUANTITIES = ("ag_oz", "pb_lb", "zn_lb", "rec_ag_pct", "rec_pb_pct", "rec_zn_pct")
CSV_COLUMNS = [
    "period",
    "quantity",
    "reported",
    "via_feed",
    "via_concentrate",
    "diff_feed_pct",
    "diff_concentrate_pct",
    "tolerance_feed_pct",
    "tolerance_concentrate_pct",
    "closes",
    "units",
    "checked",
    "note",
]


def kenomill_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    """Run the command line as a user would, in a fresh process (``python -m kenomill``)."""
    env = dict(os.environ, COLUMNS="160")
    return subprocess.run(
        [sys.executable, "-m", "kenomill", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def assert_one_line_error(stderr: str, *fragments: str) -> None:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, f"expected one line on stderr, got:\n{stderr}"
    assert lines[0].startswith("kenomill balance: error: "), lines[0]
    assert "Traceback" not in stderr
    for f in fragments:
        assert f in lines[0]


def files_in(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


# ---- kenomill balance, in a real process ---------------------------------------------------


def test_balance_prints_all_nine_periods_and_writes_csv(tmp_path):
    out = tmp_path / "balance.csv"
    res = kenomill_cli("balance", "--out", str(out), cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert res.stderr == ""
    rows = [line for line in res.stdout.splitlines() if line.startswith("│ 20")]
    printed = [line.split("│")[1].strip() for line in rows]
    assert sorted(set(printed)) == sorted(PERIODS)
    assert all(printed.count(p) == len(QUANTITIES) for p in PERIODS)
    # the 2012Q1 silver row: reported 581,808 oz, feed route 21,251 t x 899 g/t x 94 %
    # / 31.1034768 = 577,375 oz, concentrate route (3,376 x 5,144 + 1,583 x 460) / 31.1034768
    # = 581,746 oz
    ag = next(line for line in rows if "2012Q1" in line and "ag_oz" in line)
    assert "581,808" in ag and "577,375" in ag and "581,746" in ag
    assert "of 54 figures close within rounding" in res.stdout
    assert f"wrote {out}" in res.stdout

    df = pd.read_csv(out)
    assert list(df.columns) == CSV_COLUMNS
    assert len(df) == 9 * 6
    assert sorted(df.period.unique()) == sorted(PERIODS)
    q1 = df[(df.period == "2012Q1") & (df.quantity == "ag_oz")].iloc[0]
    assert q1.reported == 581_808
    assert q1.via_feed == pytest.approx(21_251 * 899 * 0.94 / 31.1034768, rel=1e-12)
    assert q1.via_concentrate == pytest.approx((3_376 * 5_144 + 1_583 * 460) / 31.1034768, rel=1e-12)
    assert q1.diff_feed_pct == pytest.approx(100 * (q1.via_feed / 581_808 - 1), rel=1e-12)
    assert files_in(tmp_path) == ["balance.csv"]  # no temporary file left


def test_balance_writes_netcdf(tmp_path):
    out = tmp_path / "balance.nc"
    res = CliRunner().invoke(main, ["balance", "--out", str(out)])
    assert res.exit_code == 0, res.output
    with xr.open_dataset(out, engine="h5netcdf") as ds:
        ds = ds.load()
    assert list(ds.period.values) == list(PERIODS)
    assert list(ds.quantity.values) == list(QUANTITIES)
    for name in CSV_COLUMNS[2:]:
        assert name in ds, name
        assert "units" in ds[name].attrs and "long_name" in ds[name].attrs
    assert ds.tolerance_feed_pct.attrs["units"] == "%"
    assert float(ds.reported.sel(period="2011FY", quantity="ag_oz")) == 2_020_695
    assert files_in(tmp_path) == ["balance.nc"]


BAD_OUT = {
    "balance.txt": [
        "--out: found",
        "balance.txt",
        "allowed extensions: .csv (CSV), .xlsx (Excel), .nc (netCDF)",
    ],
    "no/such/dir/balance.csv": ["--out: directory", "no/such/dir", "does not exist"],
    "adir": ["--out: found", "a directory; give a file name ending in .csv or .xlsx or .nc"],
}


def _check_refused(tmp_path, before, code, stdout, stderr, fragments):
    assert code == EXIT_BAD_INPUT == 2
    assert_one_line_error(stderr, *fragments)
    assert stdout == ""  # refused before any work: no table printed
    assert files_in(tmp_path) == before
    assert files_in(tmp_path / "adir") == []


def test_bad_out_in_a_real_process(tmp_path):
    """Bad extension, in a fresh process: the real stderr has one line and no traceback."""
    (tmp_path / "adir").mkdir()
    before = files_in(tmp_path)
    res = kenomill_cli("balance", "--out", "balance.txt", cwd=tmp_path)
    _check_refused(tmp_path, before, res.returncode, res.stdout, res.stderr, BAD_OUT["balance.txt"])


@pytest.mark.parametrize("target", sorted(BAD_OUT))
def test_bad_out_is_one_line_exit_2_nothing_written(tmp_path, monkeypatch, target):
    (tmp_path / "adir").mkdir()
    monkeypatch.chdir(tmp_path)
    before = files_in(tmp_path)
    res = CliRunner().invoke(main, ["balance", "--out", target])
    _check_refused(tmp_path, before, res.exit_code, res.stdout, res.stderr, BAD_OUT[target])


# ---- no half-written file ------------------------------------------------------------------


def _failing_writer(monkeypatch, exc):
    """Make the CSV writer write part of the file, then fail."""

    def to_csv(self, path, *args, **kwargs):
        Path(path).write_text("period,quantity\n2011Q1,ag_")
        raise exc

    monkeypatch.setattr(pd.DataFrame, "to_csv", to_csv)


@pytest.mark.parametrize("existing", [False, True])
def test_failed_write_leaves_no_file(tmp_path, monkeypatch, existing):
    out = tmp_path / "balance.csv"
    if existing:
        out.write_text("an earlier table\n")
    _failing_writer(monkeypatch, PermissionError(13, "Permission denied"))
    res = CliRunner().invoke(main, ["balance", "--out", str(out)])
    assert res.exit_code == 2
    assert_one_line_error(res.stderr, "Permission denied")
    assert files_in(tmp_path) == (["balance.csv"] if existing else [])
    if existing:
        assert out.read_text() == "an earlier table\n"  # untouched, not half overwritten


def test_failed_computation_writes_nothing(tmp_path, monkeypatch):
    from kenomill import balance as balance_module
    from kenomill.errors import ValidationError

    def broken(*args, **kwargs):
        raise ValidationError("ore_processed_t: found -1 t; allowed: >= 0 t")

    monkeypatch.setattr(balance_module, "balance_table", broken)
    res = CliRunner().invoke(main, ["balance", "--out", str(tmp_path / "balance.nc")])
    assert res.exit_code == 2
    assert_one_line_error(res.stderr, "ore_processed_t: found -1 t")
    assert files_in(tmp_path) == []


def test_unexpected_errors_are_not_swallowed(tmp_path, monkeypatch):
    """Only bad input becomes a one-line message; a bug still raises (and is visible)."""
    _failing_writer(monkeypatch, ZeroDivisionError("a bug"))
    res = CliRunner().invoke(main, ["balance", "--out", str(tmp_path / "b.csv")])
    assert isinstance(res.exception, ZeroDivisionError)
    assert files_in(tmp_path) == []


def test_atomic_path_keeps_nothing_on_failure(tmp_path):
    target = tmp_path / "t.csv"
    with pytest.raises(RuntimeError, match="boom"):
        with io.atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("boom")
    assert files_in(tmp_path) == []


# ---- every bad input of the circuit: one line on the command line --------------------------


@click.command("balance")  # named like the real command: the message prefix is the command's name
@click.argument("case")
@guarded
def _bad_input_command(case):
    from test_circuit import BAD_FORWARD, q1

    q1(**BAD_FORWARD[case][0])


def _bad_cases():
    from test_circuit import BAD_FORWARD

    return sorted(BAD_FORWARD)


@pytest.mark.parametrize("case", _bad_cases())
def test_each_bad_input_is_one_line_and_exit_2(case):
    from test_circuit import BAD_FORWARD

    res = CliRunner().invoke(_bad_input_command, [case])
    assert res.exit_code == 2, res.output
    assert res.stdout == ""
    assert_one_line_error(res.stderr)
    assert re.search(BAD_FORWARD[case][1], res.stderr.strip()), res.stderr


def test_help():
    res = CliRunner().invoke(main, ["balance", "--help"])
    assert res.exit_code == 0
    assert "--out" in res.output and ".csv, .xlsx or .nc" in res.output and "--periods" in res.output
