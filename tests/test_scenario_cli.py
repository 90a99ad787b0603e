"""Command-line options of scenarios: ``kenomill whatif --calibration``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from click.testing import CliRunner

from kenomill import scenario, simulate
from kenomill.calibration_file import Calibration
from kenomill.cli import main

ROOT = Path(__file__).resolve().parents[1]
BASE = ROOT / "scenarios" / "bellekeno_july2012.toml"


def test_whatif_calibration_option_is_used(tmp_path):
    # the uncalibrated plug-flow defaults differ from the packaged calibration: the surface
    # written with --calibration must be the one simulate.whatif gives with that calibration
    cal_path = Calibration.from_defaults("plug_flow").save(tmp_path / "cal.json")
    out = tmp_path / "w.csv"
    args = ["whatif", "--scenario", str(BASE), "--tpd", "250", "--availability", "0.92", "--draws", "6"]
    res = CliRunner().invoke(main, [*args, "--calibration", str(cal_path), "--out", str(out)])
    assert res.exit_code == 0, res.output
    # (rich wraps the caption: compare without whitespace)
    assert "".join(f"calibration: {cal_path}".split()) in "".join(res.output.split())
    got = pd.read_csv(out)
    sc = scenario.load(BASE)
    want = simulate.whatif(sc, [250.0], [0.92], draws=6, calibration=Calibration.load(cal_path))
    np.testing.assert_allclose(
        got.set_index("stat").rec_pb_pct.loc[list(simulate.STATS)].values,
        want.rec_pb_pct.sel(tpd=250.0, availability=0.92).values,
        rtol=1e-12,
    )
    default = simulate.whatif(sc, [250.0], [0.92], draws=6, base_dir=BASE.parent)
    assert not np.allclose(want.rec_pb_pct.values, default.rec_pb_pct.values)


def test_whatif_bad_calibration_is_one_line_exit_2(tmp_path):
    bad = tmp_path / "cal.json"
    bad.write_text("{ not json")
    out = tmp_path / "w.csv"
    res = CliRunner().invoke(
        main, ["whatif", "--tpd", "250", "--draws", "2", "--calibration", str(bad), "--out", str(out)]
    )
    assert res.exit_code == 2
    lines = res.output.strip().splitlines()
    assert len(lines) == 1 and str(bad) in lines[0] and "Traceback" not in res.output
    assert not out.exists()
