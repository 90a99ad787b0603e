"""Guarded reading, atomic writing with the umask's permissions, signals, progress lines."""

from __future__ import annotations

import io as _io
import os
import re
import signal
import stat
import subprocess
import sys
import textwrap
import time

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from kenomill import io, progress
from kenomill.errors import ValidationError


# ------------------------------------------------------------------------------ reading
@pytest.mark.parametrize(
    "reader",
    [io.read_text, io.read_toml, io.read_json, io.read_csv],
)
def test_not_utf8_is_one_error_naming_file_line_and_column(tmp_path, reader):
    p = tmp_path / "latin1.txt"
    p.write_bytes('a = "ok"\nb = "Bellekeno \u00e9t\u00e9"\n'.encode("latin-1"))
    with pytest.raises(ValidationError, match=r"latin1.txt: not UTF-8 text: byte 0xe9 at line 2, column 16"):
        reader(p, what="scenario")


def test_utf16_is_recognised_and_bom_is_accepted(tmp_path):
    p = tmp_path / "u16.toml"
    p.write_bytes("a = 1\n".encode("utf-16"))
    with pytest.raises(ValidationError, match=r"u16.toml: not UTF-8 text \(it looks like UTF-16\)"):
        io.read_toml(p)
    b = tmp_path / "bom.toml"
    b.write_bytes(b"\xef\xbb\xbfa = 1\n")
    assert io.read_toml(b) == {"a": 1}


def test_binary_and_truncated_files(tmp_path):
    p = tmp_path / "bin.json"
    p.write_bytes(b'{"a": 1\x00}')
    with pytest.raises(ValidationError, match=r"bin.json: not a text file: a NUL character at line 1"):
        io.read_json(p)
    t = tmp_path / "cut.json"
    t.write_text('{"model": "plug_flow", "theta": [1, 2')
    with pytest.raises(ValidationError, match=r"cut.json: not valid JSON: .* at line 1, column \d+"):
        io.read_json(t)
    c = tmp_path / "cut.toml"
    c.write_text("[mill]\ntarget_tpd = 24 25\n")
    with pytest.raises(ValidationError, match=r"cut.toml: not valid TOML: .*line 2"):
        io.read_toml(c)
    e = tmp_path / "empty.csv"
    e.write_text("\n\n")
    with pytest.raises(ValidationError, match=r"empty.csv: not a readable CSV file \(the file is empty\)"):
        io.read_csv(e)
    r = tmp_path / "ragged.csv"
    r.write_text("a,b\n1,2\n3,4,5,6\n")
    with pytest.raises(ValidationError, match=r"ragged.csv: not a readable CSV file \(Error tokenizing"):
        io.read_csv(r)


def test_missing_directory_and_wrong_format(tmp_path):
    with pytest.raises(FileNotFoundError) as exc:
        io.read_text(tmp_path / "none.toml")
    assert exc.value.filename.endswith("none.toml")
    with pytest.raises(ValidationError, match=r": is a directory; give a file"):
        io.read_text(tmp_path)
    fake = tmp_path / "fake.nc"
    fake.write_text("period,tpd\n")
    with pytest.raises(ValidationError, match=r"fake.nc: not a netCDF file"):
        io.read_netcdf(fake)
    x = tmp_path / "fake.xlsx"
    x.write_text("period,tpd\n")
    with pytest.raises(ValidationError, match=r"fake.xlsx: not an .xlsx workbook"):
        io.read_excel(x)


def test_netcdf_round_trip_and_truncated(tmp_path):
    ds = xr.Dataset({"a": ("x", np.arange(4.0))})
    p = io.write_table(ds, tmp_path / "a.nc")
    xr.testing.assert_identical(io.read_netcdf(p), ds)
    cut = tmp_path / "cut.nc"
    cut.write_bytes(p.read_bytes()[:300])
    with pytest.raises(ValidationError, match=r"cut.nc: not a readable netCDF file"):
        io.read_netcdf(cut)


def test_unreadable_file(tmp_path):
    if os.geteuid() == 0:
        pytest.skip("root reads any file")
    p = tmp_path / "secret.toml"
    p.write_text("a = 1")
    p.chmod(0)
    with pytest.raises(ValidationError, match=r"secret.toml: permission denied"):
        io.read_toml(p)


# ------------------------------------------------------------------------------ writing
def _mode(p) -> int:
    return stat.S_IMODE(os.stat(p).st_mode)


@pytest.fixture(params=[0o022, 0o027, 0o077])
def umask(request):
    old = os.umask(request.param)
    yield request.param
    os.umask(old)


def _writers(tmp_path):
    """Every way kenomill writes a file, each returning the path written."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from kenomill import plots
    from kenomill.calibration_file import Calibration

    df = pd.DataFrame({"a": [1.0, 2.0]})
    ds = xr.Dataset({"a": ("x", np.arange(3.0))})

    def fig():
        f, ax = plt.subplots()
        ax.plot([0, 1])
        return f

    return {
        "csv": lambda: io.write_table(df, tmp_path / "t.csv"),
        "netcdf": lambda: io.write_table(ds, tmp_path / "t.nc"),
        "text": lambda: io.write_text("x", tmp_path / "t.txt"),
        "calibration json": lambda: Calibration.from_defaults().save(tmp_path / "c.json"),
        # one PNG writer since the figures became one package (kenomill.plots)
        "png (plots)": lambda: plots.save_figure(fig(), tmp_path / "a.png"),
    }


@pytest.mark.parametrize("name", ["csv", "netcdf", "text", "calibration json", "png (plots)"])
def test_every_writer_gives_the_umask_permissions(tmp_path, umask, name):
    p = _writers(tmp_path)[name]()
    # what the shell would give: touch a file with open() under the same umask
    ref = tmp_path / "reference"
    ref.write_text("")
    assert _mode(p) == _mode(ref) == 0o666 & ~umask
    assert [q.name for q in tmp_path.iterdir() if q.name.startswith(".")] == []


def test_html_report_gets_the_umask_permissions(tmp_path, umask):
    # report.save_html writes through atomic_path like every other writer
    with io.atomic_path(tmp_path / "r.html") as tmp:
        tmp.write_text("<html></html>")
    assert _mode(tmp_path / "r.html") == 0o666 & ~umask


def test_new_file_mode_reads_the_umask_without_changing_it(umask):
    assert io.new_file_mode() == 0o666 & ~umask
    assert os.umask(umask) == umask


def test_failed_write_leaves_nothing_and_keeps_the_old_file(tmp_path):
    p = tmp_path / "t.csv"
    p.write_text("old")
    with pytest.raises(RuntimeError), io.atomic_path(p) as tmp:
        tmp.write_text("half")
        raise RuntimeError("disk full")
    assert p.read_text() == "old"
    assert sorted(q.name for q in tmp_path.iterdir()) == ["t.csv"]


def test_output_directory_not_writable(tmp_path):
    if os.geteuid() == 0:
        pytest.skip("root writes anywhere")
    d = tmp_path / "ro"
    d.mkdir()
    d.chmod(0o555)
    try:
        with pytest.raises(ValidationError, match=r"--out: directory .*ro' is not writable"):
            io.check_output_path(d / "x.csv")
    finally:
        d.chmod(0o755)


# ------------------------------------------------------------------------------ signals
_NO_PARTIAL = "no partial output file was left"
_SCRIPT = textwrap.dedent(
    """
    import sys, time
    import click
    from kenomill import io
    from kenomill.cli import guarded

    @click.command()
    @guarded
    def slow():
        print("ready", flush=True)
        with io.atomic_path("{out}") as tmp:
            tmp.write_text("partial")
            time.sleep(30)

    slow(prog_name="slow")
    """
)


@pytest.mark.parametrize(
    ("sig", "code", "line"),
    [
        (signal.SIGTERM, 143, "kenomill slow: interrupted by SIGTERM; " + _NO_PARTIAL),
        (signal.SIGINT, 130, "kenomill slow: interrupted by SIGINT (Ctrl-C); " + _NO_PARTIAL),
    ],
)
def test_interrupted_run_leaves_no_partial_file_and_says_one_line(tmp_path, sig, code, line):
    out = tmp_path / "out.csv"
    proc = subprocess.Popen(
        [sys.executable, "-c", _SCRIPT.format(out=out)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
        # a shell starts background jobs with SIGINT ignored, and Python then keeps it
        # ignored (as a user's `nohup` run would): give the child the default disposition
        # that an interactive terminal gives, so that Ctrl-C is what is tested
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    assert proc.stdout.readline().strip() == "ready"
    time.sleep(0.2)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == code
    assert err.strip() == line
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------------------------ progress
@pytest.fixture(autouse=True)
def _no_start_delay(monkeypatch):
    # every test here looks at the lines of quick work: no grace period
    monkeypatch.setattr(progress, "START_DELAY_S", 0.0)


_LINE = r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ kenomill: "


def test_plain_progress_lines_every_ten_percent(monkeypatch):
    monkeypatch.delenv("KENOMILL_PROGRESS", raising=False)
    buf = _io.StringIO()
    with progress.progress(50, "simulating x", unit="draws", stream=buf) as bar:
        for _ in range(50):
            bar.advance()
    lines = buf.getvalue().splitlines()
    assert all(re.match(_LINE, s) for s in lines)
    assert lines[0].endswith("simulating x: 0/50 draws")
    shares = [int(m.group(1)) for s in lines if (m := re.search(r"\((\d+) %\)", s))]
    assert shares == [10, 20, 30, 40, 50, 60, 70, 80, 90]
    assert re.search(r"simulating x: done, 50 draws in \d", lines[-1])
    assert len(lines) == 11


def test_plain_progress_every_ten_seconds(monkeypatch):
    clock = [0.0]
    monkeypatch.setattr(progress.time, "monotonic", lambda: clock[0])
    buf = _io.StringIO()
    with progress.progress(10_000, "fitting", stream=buf) as bar:
        for _ in range(30):  # 30 units, 1 s apart: far below 10 %, a line per 10 s
            clock[0] += 1.0
            bar.advance()
    lines = buf.getvalue().splitlines()
    assert len(lines) == 1 + 3 + 1
    assert "fitting: 10/10000 (0 %), 10 s, about 2 h 46 min left" in lines[1]


def test_phase_and_failure_lines():
    buf = _io.StringIO()
    with pytest.raises(KeyboardInterrupt), progress.progress(4, "models", unit="models", stream=buf) as p:
        p.advance()
        raise KeyboardInterrupt
    assert buf.getvalue().splitlines()[-1].endswith("(1/4 models)")
    assert "models: stopped after" in buf.getvalue()
    buf = _io.StringIO()
    with progress.phase("compiling", stream=buf):
        pass
    a, b = buf.getvalue().splitlines()
    assert a.endswith("compiling: started") and re.search(r"compiling: done in \d", b)


def test_quick_work_is_silent(monkeypatch):
    monkeypatch.setattr(progress, "START_DELAY_S", 2.0)
    buf = _io.StringIO()
    with pytest.raises(ValueError), progress.phase("fitting", stream=buf):
        raise ValueError("bad prior")
    with progress.progress(3, "x", stream=buf) as p:
        p.advance(3)
    assert buf.getvalue() == ""


def test_progress_off_and_rich(monkeypatch):
    buf = _io.StringIO()
    monkeypatch.setenv("KENOMILL_PROGRESS", "off")
    with progress.progress(3, "x", stream=buf) as p:
        p.advance(3)
    progress.log("hello", stream=buf)
    assert buf.getvalue() == ""
    monkeypatch.setenv("KENOMILL_PROGRESS", "rich")
    with progress.progress(3, "rich bar", stream=buf) as p:
        p.advance(3)
    assert "rich bar" in buf.getvalue()
