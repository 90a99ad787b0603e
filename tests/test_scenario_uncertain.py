"""Per-draw uncertain rates and prices of scenarios (kenomill.draw_inputs).

Known truths: scipy.stats' moments of the four distributions; the kernel's own SplitMix64
(kenomill._mc_kernels.stream_key / uniform) for the streams; tonnes from the scenario's
numbers by hand (rate x days x factor; min(target x factor / availability, capacity) x
operating hours); value.price_draws for the prices.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import numba
import numpy as np
import pytest
from click.testing import CliRunner
from scipy import stats

from kenomill import _mc_kernels as K
from kenomill import draw_inputs, scenario, simulate, value
from kenomill.cli import main
from kenomill.errors import ValidationError

ROOT = Path(__file__).resolve().parents[1]

# two quarters, one source, no day-to-day noise: tonnes follow from the numbers by hand
SMALL = """
name = "small"
description = "rate uncertainty by hand"
assumptions = ["x"]
[horizon]
start = "2013Q1"
quarters = 2
[sources.a]
source = "test numbers"
rate_tpd = [200, 260]
ag_gpt = { mean = 800 }
pb_pct = { mean = 10 }
zn_pct = { mean = 5 }
RATE
[stockpile]
initial_t = { a = 500000 }
[mill]
target_tpd = 240
capacity_tpd = 300
availability = 0.8
source = "test numbers"
MILL
[uncertainty]
parameters = false
scatter = false
"""
TRI = 'rate_uncertainty = { distribution = "triangular", low = 0.7, mode = 1.0, high = 1.2, source = "test" }'
UNI = 'target_uncertainty = { distribution = "uniform", low = 0.9, high = 1.4 }'
PRICES = """
[prices]
source = "test prices"
ag = { distribution = "lognormal", median = 31.15, sd_log = 0.2 }
pb = { distribution = "lognormal", median = 0.935, sd_log = 0.15 }
zn = { distribution = "lognormal", median = 0.88, sd_log = 0.15 }
usd_cad = 1.0
correlation = [[1.0, 0.5, 0.4], [0.5, 1.0, 0.8], [0.4, 0.8, 1.0]]
"""


def small(rate="", mill="", extra="") -> scenario.Scenario:
    return scenario.from_dict(tomllib.loads(SMALL.replace("RATE", rate).replace("MILL", mill) + extra))


# ------------------------------------------------------------------ the streams
def test_stream_uniforms_are_the_kernels_splitmix_streams():
    seed, draws = 2012, [0, 1, 7, 123456]
    got = draw_inputs.stream_uniforms(seed, draws, 2, 5)
    for i, d in enumerate(draws):
        st = np.array([K.stream_key(np.uint64(seed), np.int64(d), np.int64(2))], dtype=np.uint64)
        want = [K.uniform(st) for _ in range(5)]
        np.testing.assert_array_equal(got[i], want)
    # a draw's numbers depend on (seed, draw) only, not on which other draws are asked for
    np.testing.assert_array_equal(draw_inputs.stream_uniforms(seed, [7], 2, 5)[0], got[2])
    # other streams and seeds differ
    assert not np.array_equal(draw_inputs.stream_uniforms(seed, draws, 3, 5), got)
    assert not np.array_equal(draw_inputs.stream_uniforms(seed + 1, draws, 2, 5), got)


# ------------------------------------------------------------------ distributions: known truth
DISTS = [
    ({"distribution": "normal", "mean": 1.0, "sd": 0.1}, stats.norm(1.0, 0.1)),
    ({"distribution": "lognormal", "median": 0.9, "sd_log": 0.25}, stats.lognorm(0.25, scale=0.9)),
    ({"distribution": "uniform", "low": 0.85, "high": 1.1}, stats.uniform(0.85, 0.25)),
    (
        {"distribution": "triangular", "low": 0.7, "mode": 1.0, "high": 1.2},
        stats.triang((1.0 - 0.7) / 0.5, loc=0.7, scale=0.5),
    ),
]


@pytest.mark.parametrize(("spec", "truth"), DISTS, ids=[d[0]["distribution"] for d in DISTS])
def test_a_distributions_draws_have_its_mean_and_sd(spec, truth):
    d = scenario.Distribution(**spec)
    n = 200_000
    x = d.ppf(draw_inputs.stream_uniforms(5, np.arange(n), 2, 1)[:, 0])
    # 5 standard errors of the mean and of the SD
    assert x.mean() == pytest.approx(truth.mean(), abs=5 * truth.std() / np.sqrt(n))
    assert x.std() == pytest.approx(truth.std(), rel=5 / np.sqrt(2 * n) * 2)
    assert d.expected == pytest.approx((truth.mean(), truth.std()), rel=1e-12)
    assert stats.kstest(x[:20000], truth.cdf).pvalue > 1e-3


def test_degenerate_distributions_are_fixed_values():
    u = np.linspace(0, 0.999, 7)
    assert (scenario.Distribution(distribution="uniform", low=1.0, high=1.0).ppf(u) == 1.0).all()
    tri = scenario.Distribution(distribution="triangular", low=0.9, mode=0.9, high=0.9)
    assert (tri.ppf(u) == 0.9).all()


# ------------------------------------------------------------------ rates act as stated
def test_mining_rate_factor_scales_the_tonnes_mined_by_hand():
    sc = small(rate=TRI)
    ds = simulate.simulate(sc, draws=50, seed=3)
    f = ds.rate_factor.sel(source="a").values
    np.testing.assert_array_equal(f, TRI_PPF(draw_inputs.stream_uniforms(3, np.arange(50), 2, 2)[:, 0]))
    # rate_cv = 0: 2013Q1 90 d x 200 t/d x factor, 2013Q2 91 d x 260 t/d x factor
    np.testing.assert_allclose(ds.ore_mined_t.sel(quarter="2013Q1"), 90 * 200 * f, rtol=1e-12)
    np.testing.assert_allclose(ds.ore_mined_t.sel(quarter="2013Q2"), 91 * 260 * f, rtol=1e-12)
    assert f.min() < 0.85 and f.max() > 1.1
    assert (ds.target_factor.values == 1.0).all()


def test_a_factor_from_a_quarter_on_leaves_the_earlier_quarters_as_stated():
    sc = small(rate=TRI.replace("source =", 'from_quarter = "2013Q2", source ='))
    ds = simulate.simulate(sc, draws=20, seed=3)
    f = ds.rate_factor.sel(source="a").values
    np.testing.assert_allclose(ds.ore_mined_t.sel(quarter="2013Q1"), 90 * 200, rtol=1e-12)
    np.testing.assert_allclose(ds.ore_mined_t.sel(quarter="2013Q2"), 91 * 260 * f, rtol=1e-12)


def TRI_PPF(u):
    return scenario.Distribution(distribution="triangular", low=0.7, mode=1.0, high=1.2).ppf(u)


def test_mill_target_factor_sets_the_feed_rate_by_hand():
    sc = small(mill=UNI)
    ds = simulate.simulate(sc, draws=40, seed=4)
    f = ds.target_factor.values
    assert f.min() < 0.95 and f.max() > 1.3
    # feed while running min(240 f / 0.8, 300) t/d, the stockpile never empties
    rate = np.minimum(240 * f / 0.8, 300.0)
    want = rate[:, None] * ds.operating_h.values / 24.0
    np.testing.assert_allclose(ds.ore_processed_t.values, want, rtol=1e-12)
    assert "rate_factor" in ds and (ds.rate_factor.values == 1.0).all()


def test_rates_fixed_at_one_give_the_results_without_the_field():
    # the draw-by-draw path with factors of exactly 1 = the scenario without rate uncertainty,
    # bit for bit: the kernel's own numbers are untouched by the new fields
    ones_rate = 'rate_uncertainty = { distribution = "uniform", low = 1.0, high = 1.0 }'
    ones_mill = 'target_uncertainty = { distribution = "triangular", low = 1.0, mode = 1.0, high = 1.0 }'
    onek = scenario.load(ROOT / "scenarios" / "onek_lucky_queen_2012q4.toml").model_dump()
    onek["mill"]["target_uncertainty"] = None
    for src in onek["sources"].values():
        src["rate_uncertainty"] = None
    for base in (small(), scenario.from_dict(onek)):
        assert simulate.compile_plan(base).rates is None
        d = base.model_dump()
        for s in d["sources"].values():
            s["rate_uncertainty"] = tomllib.loads(ones_rate)["rate_uncertainty"]
        d["mill"]["target_uncertainty"] = tomllib.loads(ones_mill)["target_uncertainty"]
        fixed = scenario.from_dict(d)
        assert simulate.compile_plan(fixed).rates is not None
        a = simulate.simulate(base, draws=9, seed=11)
        b = simulate.simulate(fixed, draws=9, seed=11)
        for v in ("stream_t", "metal_t", "operating_h", "ore_mined_t", "stockpile_t", "theta", "ore_offset"):
            np.testing.assert_array_equal(a[v].values, b[v].values, err_msg=v)


def test_rate_uncertainty_reproduces_whatever_the_chunks_and_threads():
    sc = small(rate=TRI, mill=UNI)
    ref = simulate.simulate(sc, draws=13, seed=99)
    n0 = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        one = simulate.simulate(sc, draws=13, seed=99, chunk_size=4)
    finally:
        numba.set_num_threads(n0)
    odd = simulate.simulate(sc, draws=13, seed=99, chunk_size=5)
    for other in (one, odd):
        for v in ("stream_t", "metal_t", "operating_h", "rate_factor", "target_factor"):
            np.testing.assert_array_equal(ref[v].values, other[v].values, err_msg=v)
    # the first draws of a longer run are the same draws
    longer = simulate.simulate(sc, draws=20, seed=99)
    np.testing.assert_array_equal(longer.stream_t.values[:13], ref.stream_t.values)
    assert not np.array_equal(simulate.simulate(sc, draws=13, seed=98).stream_t.values, ref.stream_t.values)


def test_rate_uncertainty_reproduces_on_dask():
    from dask.distributed import Client, LocalCluster

    sc = small(rate=TRI, mill=UNI)
    ref = simulate.simulate(sc, draws=10, seed=21)
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None) as cluster:
        with Client(cluster) as client:
            on_dask = simulate.simulate(sc, draws=10, seed=21, chunk_size=3, scheduler=client)
    for v in ("stream_t", "metal_t", "operating_h", "rate_factor", "target_factor"):
        np.testing.assert_array_equal(ref[v].values, on_dask[v].values, err_msg=v)


def test_whatif_fixes_what_it_overrides_and_attribution_has_the_group():
    sc = small(rate=TRI, mill=UNI)
    assert simulate.compile_plan(sc, target_tpd=250.0, feed_unlimited=True).rates is None
    only_src = simulate.compile_plan(sc, target_tpd=250.0).rates
    assert only_src.mill_dist is None and only_src.source_dists[0] is not None
    df = simulate.spread_attribution(simulate.compile_plan(sc), draws=60, seed=1).set_index("group")
    assert "mining and milling rates (plan)" in df.index
    # the only spread here is the rates': without them, nothing varies but downtime
    assert df.loc["mining and milling rates (plan)", "ag_oz_share"] > 0.5


# ------------------------------------------------------------------ prices
def test_scenario_prices_are_lognormal_correlated_and_keyed_by_draw():
    sc = small(extra=PRICES)
    n = 40_000
    p = draw_inputs.price_draws(sc, 8, np.arange(n))
    assert np.median(p["ag"]) == pytest.approx(31.15, rel=0.01)
    assert np.log(p["ag"]).std() == pytest.approx(0.2, rel=0.02)
    assert np.log(p["zn"]).std() == pytest.approx(0.15, rel=0.02)
    c = np.corrcoef(np.log([p["ag"], p["pb"], p["zn"]]))
    np.testing.assert_allclose(c, sc.prices.correlation, atol=0.02)
    assert p["usd_cad"] == 1.0 and p["source"] == "test prices"
    # value.price_draws with the same normals: the same prices
    from scipy.special import ndtri

    z = ndtri(draw_inputs.stream_uniforms(8, np.arange(n), draw_inputs.PRICE_STREAM, 3))
    again = value.price_draws(
        sc.prices.central(),
        n,
        sd_log={"ag": 0.2, "pb": 0.15, "zn": 0.15},
        corr=sc.prices.correlation,
        normals=z,
    )
    np.testing.assert_array_equal(again["pb"], p["pb"])
    # draw i's prices depend on (seed, i) only
    np.testing.assert_array_equal(draw_inputs.price_draws(sc, 8, [5, 6])["ag"], p["ag"][5:7])
    assert draw_inputs.price_draws(small(), 8, np.arange(3)) is None


def test_nsr_with_scenario_prices_moves_with_the_silver_price(tmp_path):
    sc = small(extra=PRICES)
    ds = simulate.simulate(sc, draws=30, seed=2)
    p = draw_inputs.price_draws(sc, 2, ds.draw.values)
    r = value.simulation_nsr(ds, prices=p)
    fixed = value.simulation_nsr(ds)
    y = r.nsr_year_usd.sel(year="2013").values
    assert np.corrcoef(np.log(p["ag"]), y)[0, 1] > 0.9
    assert y.std() > 5 * fixed.nsr_year_usd.sel(year="2013").values.std()
    f = tmp_path / "s.toml"
    f.write_text(SMALL.replace("RATE", "").replace("MILL", "") + PRICES)
    out = tmp_path / "r.nc"
    res = CliRunner().invoke(main, ["simulate", str(f), "--draws", "6", "--seed", "2", "--out", str(out)])
    assert res.exit_code == 0, res.output
    import xarray as xr

    with xr.open_dataset(out, engine="h5netcdf") as back:
        np.testing.assert_array_equal(
            back.price_ag.values, draw_inputs.price_draws(small(extra=PRICES), 2, range(6))["ag"]
        )
        assert back.price_pb.attrs["units"] == "USD/lb" and back.attrs["prices"] == "test prices"
    flat = "".join(res.output.split())  # rich wraps the title
    assert "thescenario'suncertainprices" in flat and "prices:testprices" in flat


# ------------------------------------------------------------------ validation
BAD = {
    "unknown distribution": (
        TRI.replace('"triangular"', '"gaussian"'),
        "",
        r"sources\.a\.rate_uncertainty\.distribution: found 'gaussian'; input should be 'normal', "
        r"'lognormal', 'uniform' or 'triangular'",
    ),
    "missing parameter": (
        TRI.replace("mode = 1.0, ", ""),
        "",
        r"sources\.a\.rate_uncertainty: distribution 'triangular' takes low, mode, high; found low, high "
        r"\(missing mode\)",
    ),
    "parameter of another distribution": (
        TRI.replace("mode = 1.0", "mode = 1.0, sd = 0.1"),
        "",
        r"sources\.a\.rate_uncertainty: distribution 'triangular' takes low, mode, high; found sd, low, "
        r"mode, high \(sd not allowed\)",
    ),
    "low above high": (
        "",
        UNI.replace("high = 1.4", "high = 0.8"),
        r"mill\.target_uncertainty: found low 0\.9, high 0\.8; allowed: low <= high",
    ),
    "mode outside": (
        TRI.replace("mode = 1.0", "mode = 1.3"),
        "",
        r"sources\.a\.rate_uncertainty: found low 0\.7, mode 1\.3, high 1\.2; allowed: low <= mode <= high",
    ),
    "negative sd": (
        'rate_uncertainty = { distribution = "normal", mean = 1.0, sd = -0.1 }',
        "",
        r"sources\.a\.rate_uncertainty\.sd: found -0\.1; allowed: greater than or equal to 0",
    ),
    "misspelt parameter": (
        TRI.replace("high =", "hihg ="),
        "",
        r"sources\.a\.rate_uncertainty\.hihg: unknown field 'hihg' \(did you mean 'high'\?\)",
    ),
    "from_quarter outside the horizon": (
        TRI.replace("source =", 'from_quarter = "2014Q1", source ='),
        "",
        r"sources\.a\.rate_uncertainty\.from_quarter: found '2014Q1'; allowed: a quarter of the horizon "
        r"\(2013Q1\.\.2013Q2\)",
    ),
    "from_quarter not a quarter": (
        "",
        UNI.replace("high = 1.4", 'high = 1.4, from_quarter = "2013-04"'),
        r"mill\.target_uncertainty\.from_quarter: found '2013-04'; expected a quarter like '2012Q4'",
    ),
    "nan": (
        TRI.replace("low = 0.7", "low = nan"),
        "",
        r"sources\.a\.rate_uncertainty\.low: found nan; a finite number is required",
    ),
}
BAD_PRICES = {
    "price not lognormal": (
        PRICES.replace(
            'ag = { distribution = "lognormal", median = 31.15, sd_log = 0.2 }',
            'ag = { distribution = "uniform", low = 25, high = 35 }',
        ),
        r"prices\.ag: distribution: found 'uniform'; allowed: 'lognormal'",
    ),
    "price median zero": (
        PRICES.replace("median = 0.935", "median = 0"),
        r"prices\.pb\.median: found 0; allowed: greater than 0",
    ),
    "price sd_log too large": (
        PRICES.replace("sd_log = 0.2 }", "sd_log = 20 }"),
        r"prices\.ag\.sd_log: found 20; allowed: less than or equal to 2",
    ),
    "price correlation not positive definite": (
        PRICES.replace(
            "[[1.0, 0.5, 0.4], [0.5, 1.0, 0.8], [0.4, 0.8, 1.0]]",
            "[[1, 0.9, -0.9], [0.9, 1, 0.9], [-0.9, 0.9, 1]]",
        ),
        r"prices\.correlation: the matrix is not positive definite",
    ),
    "missing metal": (
        PRICES.replace('zn = { distribution = "lognormal", median = 0.88, sd_log = 0.15 }\n', ""),
        r"prices\.zn: field required",
    ),
}


def _bad_text(kind):
    if kind in BAD:
        rate, mill, _ = BAD[kind]
        return SMALL.replace("RATE", rate).replace("MILL", mill), BAD[kind][2]
    extra, pattern = BAD_PRICES[kind]
    return SMALL.replace("RATE", "").replace("MILL", "") + extra, pattern


@pytest.mark.parametrize("kind", [*BAD, *BAD_PRICES])
def test_each_bad_uncertain_input_is_one_line(tmp_path, kind):
    text, pattern = _bad_text(kind)
    p = tmp_path / "bad.toml"
    p.write_text(text)
    with pytest.raises(ValidationError, match=re.escape(str(p)) + ": " + pattern) as exc:
        scenario.load(p)
    assert "\n" not in str(exc.value)


@pytest.mark.parametrize("kind", ["unknown distribution", "low above high", "price not lognormal"])
def test_cli_bad_uncertain_input_one_line_exit_2_no_file(tmp_path, kind):
    text, pattern = _bad_text(kind)
    p = tmp_path / "bad.toml"
    p.write_text(text)
    out = tmp_path / "out.nc"
    res = CliRunner().invoke(main, ["simulate", str(p), "--draws", "2", "--out", str(out)])
    assert res.exit_code == 2
    lines = res.output.strip().splitlines()
    assert len(lines) == 1 and re.match(
        r"kenomill simulate: error: " + re.escape(str(p)) + ": " + pattern, lines[0]
    )
    assert not out.exists()


def test_rate_uncertainty_refused_in_blend_mode(tmp_path):
    text = SMALL.replace("RATE", TRI).replace("MILL", "").replace("rate_tpd = [200, 260]", "blend = 1.0")
    text = text.replace("[sources.a]", '[feed]\nmode = "blend"\n[sources.a]')
    p = tmp_path / "b.toml"
    p.write_text(text)
    with pytest.raises(ValidationError, match=r"sources\.a\.rate_uncertainty: not allowed in blend mode"):
        scenario.load(p)
