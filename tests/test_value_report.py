"""The report's margin and tornado (helper value): the figures draw the numbers of the results.

Independent checks: the tornado's bars read back from the figure equal the tornado's own rows
(at low, at high, around the base), largest swing on top; the margin figure's stars sit at the
best rate by margin that a brute force over the per-draw margins finds; the context rows say the
same rates.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from kenomill import plots, scenario, value
from kenomill.report import context

ROOT = Path(__file__).resolve().parents[1]
SCEN = ROOT / "scenarios" / "bellekeno_only.toml"


@pytest.fixture(scope="module")
def sc():
    return scenario.load(SCEN)


def test_tornado_figure_draws_each_inputs_low_and_high(sc):
    df = value.whatif_tornado(sc, 250.0, draws=10, seed=1, base_dir=SCEN.parent)
    fig = plots.tornado(df)
    ax = fig.axes[0]
    bars = [p for p in ax.patches]
    n = len(df)
    lows, highs = bars[:n], bars[n:]
    base = df.attrs["base"]["nsr_usd_per_day"] / 1e3
    # bars are drawn smallest swing first (bottom), largest on top
    order = df.reindex(df["nsr_usd_per_day_swing"].abs().sort_values().index)
    for k, row in enumerate(order.itertuples()):
        assert lows[k].get_x() == pytest.approx(base)
        assert lows[k].get_x() + lows[k].get_width() == pytest.approx(row.nsr_usd_per_day_at_low / 1e3)
        assert highs[k].get_x() + highs[k].get_width() == pytest.approx(row.nsr_usd_per_day_at_high / 1e3)
    r = SimpleNamespace(tornado=df)
    ctx = context.tornado(r)
    assert [row[0] for row in ctx["rows"]] == df["input"].tolist()
    assert ctx["top"] == df["input"].head(3).tolist()


def test_margin_figure_stars_the_brute_force_best_rate_by_margin(sc):
    tpd, avs = [230.0, 260.0, 290.0, 320.0], [0.88, 0.96]
    w = value.whatif_nsr(sc, tpd, avs, draws=10, seed=2, base_dir=SCEN.parent, capacity_tpd=300.0,
                         move=(230.0, 290.0), keep_draws=True)  # fmt: skip
    m = w.margin_usd_per_day_draws.values.mean(axis=-1)  # (tpd, availability)
    allowed = np.array(tpd)[:, None] <= 300.0
    best = [tpd[int(np.argmax(np.where(allowed[:, 0], m[:, j], -np.inf)))] for j in range(len(avs))]
    assert best == [290.0, 290.0]
    fig = plots.whatif_margin(w)
    stars = [ln for ln in fig.axes[1].lines if ln.get_marker() == "*"]
    assert [float(s.get_xdata()[0]) for s in stars] == best
    for j, s in enumerate(stars):
        assert float(s.get_ydata()[0]) == pytest.approx(m[tpd.index(best[j]), j] / 1e3)
    ctx = context.margin(w)
    assert [row[1] for row in ctx["rows"]] == ["290 *", "290 *"]  # outside the calibrated 201-245 t/d
