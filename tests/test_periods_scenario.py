"""Scenarios that start after the reported periods: the year's reported quarters count.

The 2012 totals of a scenario with ``start_after_reported = true`` are the reported
2012Q1 and 2012Q2 (Alexco news releases of 16 Apr and 16 Jul 2012) plus the simulated
2012Q3 and 2012Q4, draw by draw.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from kenomill import scenario, simulate
from kenomill.data import reported_periods
from kenomill.errors import ValidationError

ROOT = Path(__file__).parents[1]
JULY = ROOT / "scenarios" / "bellekeno_july2012.toml"


@pytest.fixture(scope="module")
def july():
    sc = scenario.load(JULY)
    return sc, simulate.simulate(sc, draws=40, seed=0)


def test_start_after_reported_starts_2012q3(july):
    sc, ds = july
    assert sc.horizon.start == "2012Q3" and sc.horizon.reported_before == ["2012Q1", "2012Q2"]
    assert list(ds.quarter.values[:2]) == ["2012Q3", "2012Q4"]


def test_annual_totals_count_the_reported_first_half(july):
    _, ds = july
    yr = simulate.annual(ds)
    rep = reported_periods().sel(period=["2012Q1", "2012Q2"])
    h2 = ds.sel(quarter=["2012Q3", "2012Q4"])
    ore_h2 = h2.stream_t.sel(stream="feed").sum("quarter").values
    np.testing.assert_allclose(yr.ore_processed_t.sel(year=2012).values, 43460 + ore_h2, rtol=1e-12)
    ag_h2 = simulate.derive(h2).ag_oz.sum("quarter").values
    np.testing.assert_allclose(yr.ag_oz.sel(year=2012).values, float(rep.ag_oz.sum()) + ag_h2, rtol=1e-9)
    assert float(rep.ag_oz.sum()) == 581808 + 458472
    assert yr.quarters.sel(year=2012).item() == 4 and yr.quarters.sel(year=2013).item() == 4
    # 2013 is simulated alone
    np.testing.assert_allclose(
        yr.ore_processed_t.sel(year=2013).values,
        ds.stream_t.sel(stream="feed", quarter=[f"2013Q{i}" for i in range(1, 5)]).sum("quarter").values,
    )
    probs = simulate.target_probabilities(ds, scenario.load(JULY).targets)
    assert ((probs["probability"] >= 0) & (probs["probability"] <= 1)).all()


def test_start_after_reported_refuses_another_start(tmp_path):
    text = JULY.read_text().replace(
        "start_after_reported = true", 'start_after_reported = true\nstart = "2012Q1"'
    )
    f = tmp_path / "x.toml"
    f.write_text(text)
    with pytest.raises(
        ValidationError, match=r"start: found '2012Q1' with start_after_reported = true; allowed: '2012Q3'"
    ):
        scenario.load(f)
