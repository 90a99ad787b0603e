"""Operating costs and margin, uncertain prices in the what-if, realized prices per period, the tornado.

Independent checks: margin per day of one draw by hand from the kernel's own records (ore
milled, calendar hours) and a costs file written here; price draws against
:func:`kenomill.draw_inputs.price_draws` draw by draw and chunk sizes 5 / 37 / all
bit-identical; one reported period settled line by line by hand at Alexco's realized
prices as market.md section 3.3 prints them and the default terms as literal numbers; a
tornado on a synthetic function whose swings are known; the what-if tornado's rows against
fresh what-if runs with the input moved.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from kenomill import _mc_kernels as K
from kenomill import data, draw_inputs, scenario, terms, value
from kenomill import simulate as sim
from kenomill.cli import main

ROOT = Path(__file__).resolve().parents[1]
SCEN = ROOT / "scenarios" / "bellekeno_only.toml"
LB_PER_T = 2204.62262
G_PER_OZ = 31.1034768
COSTS = """name = "test costs"
variable_cad_per_t = { value = 150.0, source = "test" }
fixed_cad_per_day = { value = 20000.0, source = "test" }
"""


@pytest.fixture(scope="module")
def sc():
    return scenario.load(SCEN)


def test_packaged_costs_are_the_pea_figure_all_variable():
    c = terms.packaged_costs()
    assert c.variable_cad_per_t.value == 206.0  # market.md 1.4: PEA 9 Jul 2008, LOM opex C$206/t
    assert "9 Jul 2008" in c.variable_cad_per_t.source
    assert c.fixed_cad_per_day.value == 0.0 and "assumption" in c.fixed_cad_per_day.source


def test_margin_of_one_draw_by_hand(sc, tmp_path):
    f = tmp_path / "costs.toml"
    f.write_text(COSTS)
    costs = terms.load_costs(f)
    pr = terms.prices_for(terms.read_prices(), "2013")  # usd_cad 1.0300
    seen = {}
    sim.whatif(sc, [280.0], [0.9], draws=4, seed=3, base_dir=SCEN.parent,
               on_chunk=lambda i, j, d0, o: seen.setdefault((i, j), o.copy()))  # fmt: skip
    o = seen[(0, 0)][1]  # draw 1
    days = o[:, K.F_CAL_H].sum() / 24.0
    ore = o[:, K.F_FEED_T].sum()
    ds = value.whatif_nsr(sc, [280.0], 0.9, draws=4, seed=3, base_dir=SCEN.parent, prices=pr, costs=costs,
                          keep_draws=True, move=None)  # fmt: skip
    nsr_day = float(ds.nsr_usd_per_day_draws.values[0, 1])
    want = nsr_day - (150.0 * ore / days + 20000.0) / 1.03
    assert float(ds.margin_usd_per_day_draws.values[0, 1]) == pytest.approx(want, rel=1e-12)
    assert float(ds.ore_t_per_day_draws.values[0, 1]) == pytest.approx(ore / days, rel=1e-12)


def test_best_rate_by_margin_moves_when_the_variable_cost_exceeds_the_extra_tonnes_nsr(sc, tmp_path):
    """At C$206/t the best rate by margin is the capacity limit (each extra tonne brings ~C$600);
    at C$5000/t, above any tonne's NSR, margin falls with tonnes: the lowest rate is best."""
    grid = [230.0, 260.0, 290.0]
    base = value.whatif_nsr(sc, grid, 0.92, draws=16, seed=1, base_dir=SCEN.parent, move=(230.0, 290.0),
                            keep_draws=True)  # fmt: skip
    mean = base.margin_usd_per_day_draws.values.mean(axis=-1)
    assert float(base.best_margin_tpd) == grid[int(np.argmax(mean))] == 290.0
    be = float(base.move_breakeven_cad_per_t.sel(stat="mean"))
    assert 206.0 < be < 5000.0
    f = tmp_path / "dear.toml"
    f.write_text(COSTS.replace("150.0", "5000.0"))
    dear = value.whatif_nsr(sc, grid, 0.92, draws=16, seed=1, base_dir=SCEN.parent, move=(230.0, 290.0),
                            costs=terms.load_costs(f), keep_draws=True)  # fmt: skip
    assert float(dear.best_margin_tpd) == 230.0
    m = dear.margin_usd_per_day_draws.values
    assert float(dear.p_gain_margin) == pytest.approx(float((m[2] > m[0]).mean()))
    assert float(dear.p_gain_margin) == 0.0


def test_uncertain_prices_are_the_scenario_streams_and_do_not_depend_on_chunks(sc):
    args = dict(draws=41, seed=7, base_dir=SCEN.parent, price_model=sc.prices, keep_draws=True,
                move=(240.0, 300.0))  # fmt: skip
    runs = [value.whatif_nsr(sc, [240.0, 300.0], [0.9], chunk_size=c, **args) for c in (5, 37, None)]
    for r in runs[1:]:
        for v in runs[0].data_vars:
            assert np.array_equal(runs[0][v].values, r[v].values, equal_nan=True), v
    # draw d's prices are the scenario's stream of (seed, d), as kenomill simulate draws them
    pd_ = draw_inputs.price_draws(sc, 7, np.arange(41))
    got = value.whatif_prices(sc, {}, sc.prices, 7, 41)
    for m in ("ag", "pb", "zn"):
        assert np.array_equal(got[m], pd_[m])
    sub = draw_inputs.price_draws(sc, 7, np.arange(20, 25))
    assert np.array_equal(sub["ag"], pd_["ag"][20:25])
    # the band widens with price uncertainty; P(gain) is a count over the common draws
    fixed = value.whatif_nsr(
        sc, [240.0, 300.0], [0.9], draws=41, seed=7, base_dir=SCEN.parent, keep_draws=True
    )
    w = lambda r: float(r.nsr_usd_per_day.sel(stat="p90")[0, 0] - r.nsr_usd_per_day.sel(stat="p10")[0, 0])  # noqa: E731
    assert w(runs[0]) > w(fixed)
    d = runs[0].nsr_usd_per_day_draws.values[:, 0]
    assert float(runs[0].p_gain[0]) == float((d[1] > d[0]).mean())


def test_realized_price_nsr_of_2011q2_by_hand():
    """2011Q2 (release 23 Jan 2012: 2,683 dmt Pb con at 5,164 g/t Ag and 69 % Pb; 1,687 dmt Zn con
    at 348 g/t Ag and 48 % Zn) at Alexco's realized Jan-Jun 2011 prices (NR 15 Sep 2011: Ag 37.45
    US$/oz, Pb 1.16, Zn 1.02 US$/lb; the quarter was not reported alone), default terms typed here."""
    res = value.nsr_of_periods(None, None, terms.realized_prices(
        list(data.base_periods(data.reported_periods())), terms.read_prices()), n_draws=20)  # fmt: skip
    r = res.sel(period="2011Q2")
    assert str(r.price_period.values) == "2011H1" and "15 Sep 2011" in str(r.price_source.values)
    ag, pb, zn = 37.45, 1.16, 1.02
    zn_in_pb = float(r.pbcon_zn_pct)  # not reported: the model's (its penalty threshold is 7 %)
    pb_in_zn = float(r.zncon_pb_pct)
    # lead concentrate
    rec = 2683 * (1 - 0.005)
    wet = 2683 / (1 - 0.08)
    oz_t = 5164 / G_PER_OZ
    oz = rec * 0.95 * (oz_t - 1.5)
    pb_lb = rec * min(0.95 * 69, 69 - 3.0) / 100 * LB_PER_T
    val = oz * ag + pb_lb * pb
    tc = rec * (300 + 0.04 * (pb * LB_PER_T - 2100))
    rc = oz * 1.50
    pen = rec * 2.0 * max(0.0, zn_in_pb - 7.0)
    ins = 0.0006 * (val - tc - rc - pen)
    fr = wet * 150
    stream = 0.25 * oz * (ag - 3.90)
    lines = {"ag_payable_oz": oz, "pb_payable_lb": pb_lb, "payable_value_usd": val, "tc_usd": tc,
             "rc_usd": rc, "penalty_usd": pen, "insurance_usd": ins, "freight_usd": fr, "stream_usd": stream,
             "nsr_usd": val - tc - rc - pen - ins - fr - stream}  # fmt: skip
    for k, v in lines.items():
        assert float(r[f"pbcon_{k}"]) == pytest.approx(v, rel=1e-12, abs=1e-9), k
    # zinc concentrate: the 8-unit minimum deduction binds (0.85 x 48 = 40.8 > 48 - 8 = 40)
    rec = 1687 * (1 - 0.005)
    wet = 1687 / (1 - 0.09)
    oz = rec * 0.70 * (348 / G_PER_OZ - 3.0)
    zn_lb = rec * (48 - 8.0) / 100 * LB_PER_T
    val = oz * ag + zn_lb * zn
    tc = rec * 191.0  # 1.02 US$/lb = 2,249 US$/t: inside the flat 2,000-2,500 band
    pen = rec * 1.5 * max(0.0, pb_in_zn - 3.0)
    ins = 0.0006 * (val - tc - pen)
    fr = wet * 150
    stream = 0.25 * oz * (ag - 3.90)
    zlines = {"ag_payable_oz": oz, "zn_payable_lb": zn_lb, "payable_value_usd": val, "tc_usd": tc,
              "rc_usd": 0.0, "penalty_usd": pen, "insurance_usd": ins, "freight_usd": fr,
              "stream_usd": stream, "nsr_usd": val - tc - pen - ins - fr - stream}  # fmt: skip
    for k, v in zlines.items():
        assert float(r[f"zncon_{k}"]) == pytest.approx(v, rel=1e-12, abs=1e-9), k
    total = lines["nsr_usd"] + zlines["nsr_usd"]
    assert float(r.nsr_usd) == pytest.approx(total, rel=1e-12)
    assert float(r.nsr_cad) == pytest.approx(total * 0.989, rel=1e-12)
    assert float(r.nsr_usd_per_t_ore) == pytest.approx(total / 18928, rel=1e-12)


def test_realized_period_mapping_and_missing_period():
    deck = terms.read_prices()
    got = [
        terms.realized_period(p, deck) for p in ("2011Q1", "2011Q2", "2011Q3", "2011Q4", "2012Q1", "2012Q2")
    ]
    assert got == ["2011Q1", "2011H1", "2011Q3", "2011H2", "2012Q1", "2012Q2"]
    assert terms.realized_period("2012Q4", deck) == "2012FY"
    with pytest.raises(terms.ValidationError, match="2014Q1: no realized prices"):
        terms.realized_period("2014Q1", deck)


def test_tornado_on_a_synthetic_function_with_known_swings():
    base = {"a": 1.0, "b": 2.0, "c": 5.0}

    def f(name, v):
        x = dict(base)
        if name is not None:
            x[name] = v
        return 2 * x["a"] - 3 * x["b"] + 0 * x["c"], x["c"] ** 2

    df = value.tornado(f, [("a", 0.0, 4.0, "s"), ("b", 1.5, 2.5, "s"), ("c", 4.0, 6.0, "s")], ("y", "z"))
    assert df["input"].tolist() == ["a", "b", "c"]  # |8| > |-3| > |0|, then by z
    assert df["y_swing"].tolist() == [8.0, -3.0, 0.0]
    assert df["z_swing"].tolist() == [0.0, 0.0, 20.0]
    assert df.attrs["base"] == {"y": 2 - 6, "z": 25.0}
    assert df.loc[0, "y_at_low"] == -6.0 and df.loc[0, "y_at_high"] == 2.0


def test_whatif_tornado_rows_equal_fresh_runs_with_the_input_moved(sc):
    df = value.whatif_tornado(sc, 250.0, draws=12, seed=5, base_dir=SCEN.parent).set_index("input")
    kw = dict(draws=12, seed=5, base_dir=SCEN.parent, move=None)
    t0 = terms.packaged_terms()
    no_stream = value.terms_with(t0, ("stream", "share_pct"), 0.0)
    fresh = value.whatif_nsr(sc, [250.0], 0.92, terms=no_stream, **kw)
    row = df.loc["silver stream share [%]"]
    assert row.nsr_usd_per_day_at_low == pytest.approx(
        float(fresh.nsr_usd_per_day.sel(stat="mean")[0]), rel=1e-12
    )
    base = value.whatif_nsr(sc, [250.0], 0.92, keep_draws=True, **kw)
    assert df.attrs["base"]["nsr_usd_per_day"] == pytest.approx(
        float(base.nsr_usd_per_day.sel(stat="mean")[0])
    )
    x = base.nsr_usd_per_day_draws.values[0]
    m = df.loc["all the simulation's uncertainty together (P10/P90 of draws)"]
    assert (m.nsr_usd_per_day_at_low, m.nsr_usd_per_day_at_high) == pytest.approx(
        tuple(np.quantile(x, [0.1, 0.9]))
    )
    hi = 0.92 + value.Z90 * 0.02  # the scenario's availability_uncertainty 0.02
    at_hi = value.whatif_nsr(sc, [250.0], hi, **kw)
    a = df.loc["availability [-]"]
    assert a.high == pytest.approx(hi)
    assert a.nsr_usd_per_day_at_high == pytest.approx(
        float(at_hi.nsr_usd_per_day.sel(stat="mean")[0]), rel=1e-12
    )
    # US$ NSR does not depend on USD/CAD; the margin (costs in C$) does
    fx = df.loc["USD/CAD [C$ per US$]"]
    assert fx.nsr_usd_per_day_swing == 0.0 and fx.margin_usd_per_day_swing > 0.0


@pytest.mark.parametrize(
    ("content", "words"),
    [
        (COSTS.replace("150.0", "-1"), "variable_cad_per_t.value: found -1"),
        (COSTS.replace("fixed_cad_per_day", "fixed_cad_per_dya"), "did you mean 'fixed_cad_per_day'"),
        (COSTS.replace('150.0, source = "test"', "150.0"), "variable_cad_per_t.source: field required"),
        ("name = [", "not valid TOML"),
    ],
)
def test_cli_bad_costs_one_line_exit_2_no_output(tmp_path, content, words):
    f = tmp_path / "c.toml"
    f.write_text(content)
    out = tmp_path / "w.csv"
    res = CliRunner().invoke(main, ["whatif", "--tpd", "250", "--availability", "0.9", "--draws", "2",
                                    "--costs", str(f), "--out", str(out)])  # fmt: skip
    assert res.exit_code == 2, res.output
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and words in lines[0] and str(f) in lines[0], res.stderr
    assert not out.exists()


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--prices-from", "NOPRICES"], "no [prices] table"),
        (["--sensitivity-at", "260"], "--sensitivity-at: 260 t/d is not on the --tpd grid"),
    ],
)
def test_cli_whatif_bad_price_and_tornado_options(tmp_path, args, words):
    nop = tmp_path / "nop.toml"
    text = SCEN.read_text(encoding="utf-8")
    nop.write_text(text[: text.index("[prices]")] + text[text.index("[[targets]]") :])
    args = [str(nop) if a == "NOPRICES" else a for a in args]
    out = tmp_path / "w.csv"
    res = CliRunner().invoke(main, ["whatif", "--tpd", "250", "--availability", "0.9", "--draws", "2", *args,
                                    "--out", str(out)])  # fmt: skip
    assert res.exit_code == 2, res.output
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and words in lines[0], res.stderr
    assert not out.exists()


def test_cli_whatif_prints_margin_best_rate_and_tornado(tmp_path):
    out = tmp_path / "w.nc"
    args = ["--price-uncertainty", "--sensitivity-at", "250", "--out", str(out)]
    res = CliRunner().invoke(
        main, ["whatif", "--tpd", "250,300", "--availability", "0.92", "--draws", "8", *args]
    )
    assert res.exit_code == 0, res.output
    assert "Margin per calendar day" in res.output
    assert "best by margin 300 t/d (extrapolation)" in res.output
    assert "P(margin per day gains, 250 -> 300 t/d)" in res.output
    assert "uncertain prices of scenario" in res.output
    assert "Which inputs move NSR most" in res.output
    assert "a fixed cost per calendar day lowers the margin at every rate alike" in res.output


def test_cli_nsr_realized_basis_names_each_periods_prices(tmp_path):
    out = tmp_path / "n.csv"
    res = CliRunner().invoke(main, ["nsr", "--price-basis", "realized", "--draws", "10", "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert "Price basis: realized" in res.output and "2011Q4 at 2011H2" in res.output
    import pandas as pd

    df = pd.read_csv(out)
    assert df.set_index("period").loc["2011Q2", "price_ag"] == 37.45


def test_tornado_component_is_a_run_with_only_that_uncertainty_on(sc, tmp_path):
    """The scatter-alone row: the scenario file edited by hand (parameters off, no per-draw grade,
    availability or target uncertainty) and run fresh; its P10/P90 of NSR per day over the draws."""
    df = value.whatif_tornado(sc, 250.0, draws=12, seed=5, base_dir=SCEN.parent).set_index("input")
    text = SCEN.read_text(encoding="utf-8")
    text = text.replace("parameters = true", "parameters = false").replace(
        "mean_uncertainty = 0.10", "mean_uncertainty = 0.0"
    )
    text = text.replace("availability_uncertainty = 0.02", "availability_uncertainty = 0.0")
    text = "\n".join(ln for ln in text.splitlines() if not ln.startswith("target_uncertainty"))
    f = tmp_path / "scatter_only.toml"
    f.write_text(text, encoding="utf-8")
    kw = dict(draws=12, seed=5, base_dir=SCEN.parent, move=None, keep_draws=True)
    alone = value.whatif_nsr(scenario.load(f), [250.0], 0.92, **kw)
    x = alone.nsr_usd_per_day_draws.values[0]
    row = df.loc["recovery model: new-quarter scatter alone (P10/P90 of draws)"]
    assert (row.nsr_usd_per_day_at_low, row.nsr_usd_per_day_at_high) == pytest.approx(
        tuple(np.quantile(x, [0.1, 0.9]))
    )
