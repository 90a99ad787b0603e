"""``calibrate.predict`` in blocks of draws on counter-based streams, and ``kenomill predict``'s sizing.

A draw of the posterior predictive depends on (seed, draw) only: the same numbers whatever
the block size or how many draws run. A prediction that does not fit all at once is computed
in blocks; one whose per-draw outputs alone do not fit is refused in one line.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import xarray as xr
from click.testing import CliRunner

from kenomill import budget, calibrate, recovery, terms, value
from kenomill.calibration_file import default_calibration
from kenomill.cli import main
from kenomill.data import reported_periods
from kenomill.draw_inputs import PREDICT_STREAM, stream_uniforms


def _feed():
    ds = reported_periods("quarter")
    cols = ["ore_processed_t", "head_ag_gpt", "head_pb_pct", "head_zn_pct", "tpd", "availability_pct"]
    return ds[cols].to_dataframe().reset_index()


def _nsr():
    return terms.prices_for(terms.read_prices(), "2012"), terms.packaged_terms()


def test_prediction_is_the_same_whatever_the_block_size():
    cal, feed = default_calibration(), _feed()
    a = calibrate.predict(cal, feed, n_draws=301, seed=5, nsr=_nsr())
    for rows in (1, 7, 6 * 50, 10**6):
        xr.testing.assert_identical(
            a, calibrate.predict(cal, feed, n_draws=301, seed=5, nsr=_nsr(), block_rows=rows)
        )
    b = calibrate.predict(cal, feed, n_draws=301, seed=5, common_draws=True, block_rows=13)
    xr.testing.assert_identical(b, calibrate.predict(cal, feed, n_draws=301, seed=5, common_draws=True))


def test_a_draw_depends_on_seed_and_index_only():
    su = calibrate._predict_setup(default_calibration(), calibrate.check_feed(_feed()), False)
    few = calibrate.predictive_values(su, 10, 3)
    many = calibrate.predictive_values(su, 500, 3, block_rows=12)
    np.testing.assert_array_equal(few, many[:10])
    assert not np.array_equal(many[:10], calibrate.predictive_values(su, 10, 4))


def test_draw_seven_by_hand_from_its_stream():
    """Draw 7 rebuilt from the first uniforms of its stream (seed 11, stream 4): posterior
    pick floor(u0 S), then per period the availability normal and the five offset normals."""
    from scipy.stats import norm

    cal, feed = default_calibration(), _feed()
    su = calibrate._predict_setup(cal, calibrate.check_feed(feed), False)
    post = cal.posterior_draws()
    n, k = len(feed), recovery.N_OFFSETS
    u = stream_uniforms(11, [7], PREDICT_STREAM, 1 + n * (1 + k))[0]
    s = int(u[0] * post["theta"].shape[0])
    p = np.array(cal.base, dtype=float)
    p[cal.spec.free_index] = post["theta"][s]
    rows = []
    for i in range(n):
        z = norm.ppf(u[1 + i * (1 + k) : 1 + (i + 1) * (1 + k)] + 2.0**-54)
        a = feed["availability_pct"][i] / 100
        if np.isnan(a):
            a = min(max(0.92 + 0.04 * z[0], calibrate.AVAILABILITY_RANGE[0]), calibrate.AVAILABILITY_RANGE[1])
        off = post["offset_mean"][s] + post["scatter_sd"][s] * (post["scatter_chol"][s] @ z[1:])
        head = [feed["head_ag_gpt"][i] * 1e-6, feed["head_pb_pct"][i] / 100, feed["head_zn_pct"][i] / 100]
        q = calibrate.operating_q_ratio(feed["tpd"][i], a)
        rows.append(
            calibrate.mill_outputs(cal.spec, p, [feed["ore_processed_t"][i]], [head], q, off[None, :])[0]
        )
    got = calibrate.predictive_values(su, 8, 11)[7]
    np.testing.assert_allclose(got, np.array(rows), rtol=1e-12)


def test_nsr_bounds_agree_with_value_predict_nsr():
    """The same settlement on other streams (value.predict_nsr, NumPy's generator): the NSR
    bounds of 20,000 draws agree within Monte Carlo error (1 %)."""
    cal, feed = default_calibration(), _feed()
    ours = calibrate.predict(cal, feed, n_draws=20000, seed=0, nsr=_nsr())
    theirs = value.predict_nsr(feed, cal, n_draws=20000, seed=1)
    for c in ("nsr_usd", "nsr_usd_p05", "nsr_usd_p95", "nsr_usd_per_t_ore_p05"):
        np.testing.assert_allclose(ours[c], theirs[c], rtol=0.01)


def _memory(monkeypatch, nbytes):
    monkeypatch.setattr(budget, "available_memory", lambda: float(nbytes))


def test_cli_predict_in_blocks_when_only_the_outputs_fit(tmp_path, monkeypatch):
    """400,000 draws of one period: all at once they would need about 430 MB (1.08 kB per
    draw and period, measured); the outputs kept 64 MB: with 600 MB (480 MB usable, 300 MB
    for the interpreter) the run computes in blocks and writes the same file as with plenty."""
    f = tmp_path / "feed.csv"
    _feed().iloc[:1].to_csv(f, index=False)
    args = ["predict", str(f), "--draws", "400000", "--seed", "2", "--out"]
    _memory(monkeypatch, 600e6)
    res = CliRunner().invoke(main, [*args, str(tmp_path / "a.csv")])
    assert res.exit_code == 0, res.output
    monkeypatch.undo()
    res = CliRunner().invoke(main, [*args, str(tmp_path / "b.csv")])
    assert res.exit_code == 0, res.output
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "a.csv"), pd.read_csv(tmp_path / "b.csv"))


def test_cli_predict_refuses_what_cannot_fit_in_one_line(tmp_path, monkeypatch):
    f = tmp_path / "feed.csv"
    _feed().to_csv(f, index=False)
    _memory(monkeypatch, 8e9)
    out = tmp_path / "p.csv"
    res = CliRunner().invoke(main, ["predict", str(f), "--draws", "1000000000", "--out", str(out)])
    assert res.exit_code == 2
    lines = res.stderr.strip().splitlines()
    # 10^9 draws x 6 periods x 160 B (19 outputs and the sorted column, float64) = 960 GB
    assert len(lines) == 1 and "1,000,000,000 draws need about 960.3 GB" in lines[0], lines
    assert "this machine has 8.0 GB available" in lines[0]
    # allowed: (0.8 x 8e9 - 300e6 - 32,768 rows x 1,200 B) / 960 B = 6,060,678,400 / 960 = 6,313,206.7
    assert "at most about 6,313,206 draws" in lines[0]
    assert not out.exists()
