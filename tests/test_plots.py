"""kenomill.plots: the one fan chart, surface and histogram functions draw what they are given.

Synthetic inputs with known answers: draws 0..99 (median 49.5, P10 9.9, P90 89.1 by numpy's
linear rule), values stored in troy ounces and pounds and shown in koz / Moz / Mlb.
"""

from __future__ import annotations

from types import SimpleNamespace

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import xarray as xr  # noqa: E402

from kenomill import plots  # noqa: E402

QUARTERS = ["2012Q3", "2012Q4", "2013Q1"]


def _runs(scale: float = 1.0, name: str = "synthetic") -> xr.Dataset:
    draws = np.arange(100.0)
    values = np.repeat(draws[:, None], len(QUARTERS), axis=1) * scale
    data = {
        v: (("draw", "quarter"), values * k) for v, k in (("ag_oz", 1000.0), ("pb_lb", 1e6), ("zn_lb", 2e6))
    }
    return xr.Dataset(data, coords={"draw": draws, "quarter": QUARTERS}, attrs={"scenario": name})


def test_fan_chart_draws_the_median_and_band_of_each_scenario_in_shown_units():
    fig = plots.fan_chart([_runs(), _runs(2.0, "twice")])
    ag = fig.axes[0]
    assert ag.get_ylabel().endswith("per quarter [koz]")
    medians = [line.get_ydata() for line in ag.get_lines()]
    # ag_oz = draw x 1000 oz = draw koz: the median of draws 0..99 is 49.5 koz, of twice that 99
    np.testing.assert_allclose(medians[0], [49.5] * 3)
    np.testing.assert_allclose(medians[1], [99.0] * 3)
    band = ag.collections[0].get_paths()[0].vertices[:, 1]
    assert band.min() == pytest.approx(9.9) and band.max() == pytest.approx(89.1)
    pb = fig.axes[1]
    assert pb.get_ylabel().endswith("[Mlb]")
    np.testing.assert_allclose(pb.get_lines()[0].get_ydata(), [49.5] * 3)  # 1e6 lb x draw = draw Mlb


def test_histograms_shade_the_target_range_and_integrate_to_one():
    yr = xr.Dataset(
        {"ag_oz": (("draw", "year"), np.arange(100.0)[:, None] * 1e4 + 2e6)},
        coords={"draw": np.arange(100), "year": [2012]},
        attrs={"scenario": "s"},
    )
    yr["quarters"] = ("year", [4])
    target = SimpleNamespace(variable="ag_oz", year=2012, min=2.2e6, max=2.5e6, name="guidance")
    fig = plots.histograms(yr, [target], [2012], variables=("ag_oz",))
    ax = fig.axes[0]
    assert ax.get_xlabel() == "Ag in concentrates in 2012 [Moz]"
    span = next(p for p in ax.patches if p.get_label() == "guidance")
    lo, hi = span.get_x(), span.get_x() + span.get_width()
    assert (lo, hi) == (pytest.approx(2.2), pytest.approx(2.5))  # Moz
    step = next(p for p in ax.patches if p.get_label() == "s")
    x, y = step.get_path().vertices.T
    # a density: the area inside the outline and the axis is one (shoelace formula)
    area = 0.5 * abs(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1)))
    assert area == pytest.approx(1.0, rel=1e-9)


def test_whatif_surface_shows_the_statistic_of_each_panel():
    tpd, av = [200.0, 300.0], [0.9, 0.95]
    stats = ["p10", "p50", "p90"]
    ag = np.arange(12.0).reshape(2, 2, 3) * 1e6  # oz
    w = xr.Dataset(
        {"ag_oz": (("tpd", "availability", "stat"), ag)},
        coords={"tpd": tpd, "availability": av, "stat": stats},
        attrs={"scenario": "s", "year": 2013, "draws": 20},
    )
    fig = plots.whatif_surface(w, [("ag_oz", "p50"), ("ag_oz", "spread")])
    med, spread = (ax.collections[0].get_array() for ax in fig.axes[:2])
    np.testing.assert_allclose(
        np.asarray(med).ravel(), (ag[..., 1] / 1e6).T.ravel()
    )  # Moz, availability rows
    np.testing.assert_allclose(np.asarray(spread).ravel(), 2.0)  # p90 - p10 = 2 Moz everywhere
