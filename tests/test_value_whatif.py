"""NSR across throughput and availability (``value.whatif_nsr``, ``kenomill whatif``).

Independent checks: one draw's NSR per day settled by hand from the terms file (scalar
arithmetic on the TOML, not :mod:`kenomill.terms`), the best rate against a brute-force
evaluation of each rate on its own, the probability of a gain against a direct count over
draws, the extrapolation flags against the calibration file's own feed range, and chunked
runs bit-identical to unchunked ones.
"""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from kenomill import _mc_kernels as K
from kenomill import scenario, value
from kenomill import simulate as sim
from kenomill.cli import main

ROOT = Path(__file__).resolve().parents[1]
SCEN = ROOT / "scenarios" / "bellekeno_only.toml"
TERMS = ROOT / "kenomill" / "data" / "terms_typical_2012.toml"
LB_PER_T = 2204.62262
G_PER_OZ = 31.1034768
# 2012 annual prices of the packaged deck (kenomill/data/prices.csv: Silver Institute LBMA
# average; ILZSG via E&MJ LME lead; Teck Q4 2012 results LME zinc)
PRICES_2012 = {"ag": 31.15, "pb": 0.9349, "zn": 0.88}


@pytest.fixture(scope="module")
def sc():
    return scenario.load(SCEN)


def _v(x):
    return x["value"] if isinstance(x, dict) else x


def settle_by_hand(dmt: float, assay: dict, con: dict, stream: dict, prices: dict) -> float:
    """NSR [US$] of one concentrate lot, line by line from the terms file (scalar arithmetic).

    ``assay``: mass fractions of ag, pb, zn. Pb and Zn in % (units per dmt), Ag in oz/dmt.
    """
    received = dmt * (1 - _v(con["losses_pct"]) / 100)
    wet = dmt / (1 - _v(con["moisture_pct"]) / 100)
    grade = {"ag": assay["ag"] * 1e6 / G_PER_OZ, "pb": assay["pb"] * 100, "zn": assay["zn"] * 100}
    payable_value = 0.0
    payable_oz = 0.0
    for m, terms in con["metals"].items():
        p = _v(terms["payable_pct"]) / 100
        d = _v(terms.get("deduct", 0.0))
        md = _v(terms.get("min_deduction", 0.0))
        per_dmt = max(0.0, min(p * (grade[m] - d), grade[m] - md))
        if m == "ag":
            payable_oz = received * per_dmt
            payable_value += payable_oz * prices["ag"]
        else:
            payable_value += received * per_dmt / 100 * LB_PER_T * prices[m]
    tc = con["tc"]
    price_t = prices[tc["metal"]] * LB_PER_T
    basis = _v(tc["basis_usd_per_t"])
    tc_per_dmt = _v(tc["base_usd_per_dmt"])
    for band in tc["bands"]:
        lo, hi, rate = band["lo"], band["hi"], band["rate"]
        tc_per_dmt += rate * (min(max(price_t, lo), hi) - min(max(basis, lo), hi))
    tc_usd = tc_per_dmt * received
    rc_usd = payable_oz * _v(con["metals"]["ag"].get("refining_usd_per_oz", 0.0))
    pen = 0.0
    for pt in con.get("penalties", []):
        over = grade[pt["element"]] - _v(pt["threshold_pct"])
        pen += _v(pt["rate_usd_per_dmt_per_pct"]) * max(0.0, over) * received
    invoice = payable_value - tc_usd - rc_usd - pen
    insurance = max(invoice, 0.0) * _v(con["insurance_pct"]) / 100
    freight = wet * _v(con["freight_usd_per_wmt"])
    share = _v(stream["share_pct"]) / 100
    stream_usd = share * payable_oz * (prices["ag"] - min(_v(stream["price_usd_per_oz"]), prices["ag"]))
    return invoice - insurance - freight - stream_usd


def test_one_draw_nsr_per_day_by_hand_from_the_terms_file(sc):
    """Capture one draw's kernel records at 300 t/d, settle each quarter by hand, sum the year."""
    terms = tomllib.loads(TERMS.read_text(encoding="utf-8"))
    seen = {}

    def keep(i, j, d0, o):
        seen[(i, j, d0)] = o.copy()

    wi = sim.whatif(sc, [300.0], [0.92], draws=3, seed=11, base_dir=SCEN.parent, on_chunk=keep)
    o = seen[(0, 0, 0)][2]  # draw 2: (quarter, field) of the what-if's year
    total = 0.0
    for q in range(o.shape[0]):
        for stream, name in ((0, "lead_concentrate"), (1, "zinc_concentrate")):
            dmt = o[q, K.F_STREAM_T + stream]
            assay = {e: o[q, K.F_STREAM_M + 3 * stream + k] / dmt for k, e in enumerate(("ag", "pb", "zn"))}
            total += settle_by_hand(dmt, assay, terms[name], terms["stream"], PRICES_2012)
    days = o[:, K.F_CAL_H].sum() / 24.0
    import calendar

    assert o.shape[0] == 4  # a complete year of the scenario's horizon (its last)
    assert days == (366.0 if calendar.isleap(int(wi.attrs["year"])) else 365.0)
    ds = value.whatif_nsr(sc, [300.0], [0.92], draws=3, seed=11, base_dir=SCEN.parent, keep_draws=True)
    got = float(ds.nsr_usd_per_day_draws.sel(tpd=300.0, availability=0.92).values[2])
    assert got == pytest.approx(total / days, rel=1e-12)
    per_t = float(ds.nsr_usd_per_t_ore_draws.sel(tpd=300.0, availability=0.92).values[2])
    assert per_t == pytest.approx(total / o[:, K.F_FEED_T].sum(), rel=1e-12)


@pytest.fixture(scope="module")
def grid(sc):
    tpd = [200.0, 230.0, 250.0, 275.0, 300.0, 350.0]
    avs = [0.85, 0.95]
    ds = value.whatif_nsr(
        sc,
        tpd,
        avs,
        draws=24,
        seed=4,
        base_dir=SCEN.parent,
        capacity_tpd=320.0,
        max_operating_tpd=300.0,
        move=(250.0, 275.0),
        keep_draws=True,
    )
    return tpd, avs, ds


def test_best_rate_equals_brute_force_over_single_rate_runs(sc, grid):
    """Each rate run on its own (its own call, same seed): the allowed rate of largest mean."""
    tpd, avs, ds = grid
    alone = {
        (t, a): value.whatif_nsr(sc, [t], a, draws=24, seed=4, base_dir=SCEN.parent, keep_draws=True)
        for t in tpd
        for a in avs
    }
    for a in avs:
        # limits: calendar <= 320 t/d and operating = calendar / availability <= 300 t/d
        ok = [t for t in tpd if t <= 320.0 and t / a <= 300.0]
        means = {t: float(alone[(t, a)].nsr_usd_per_day.sel(stat="mean").item()) for t in ok}
        brute = max(means, key=means.get)
        assert float(ds.best_tpd.sel(availability=a)) == brute
        assert ds.allowed.sel(availability=a).values.tolist() == [t in ok for t in tpd]
        best = float(ds.best_nsr_usd_per_day.sel(availability=a, stat="mean"))
        assert best == means[brute]
    # at 0.85 the operating limit binds (250 / 0.85 = 294; 275 / 0.85 = 324 > 300)
    assert float(ds.best_tpd.sel(availability=0.85)) == 250.0
    assert float(ds.best_tpd.sel(availability=0.95)) == 275.0  # 300 / 0.95 = 316 > 300


def test_probability_of_gain_is_a_count_over_the_common_draws(sc, grid):
    tpd, avs, ds = grid
    for a in avs:
        d = ds.nsr_usd_per_day_draws.sel(availability=a)
        count = sum(float(d.sel(tpd=275.0).values[k]) > float(d.sel(tpd=250.0).values[k]) for k in range(24))
        p = float(ds.p_gain.sel(availability=a))
        assert 0.0 <= p <= 1.0 and p == count / 24
    # the reverse move loses in exactly the draws the forward move gains (no ties)
    rev = value.whatif_nsr(
        sc, [250.0, 275.0], 0.85, draws=24, seed=4, base_dir=SCEN.parent, move=(275.0, 250.0)
    )
    assert rev.attrs["p_gain"] == pytest.approx(1.0 - float(ds.p_gain.sel(availability=0.85)))


def test_extrapolation_flags_exactly_outside_the_calibration_feed_range(sc):
    cal = json.loads((ROOT / "kenomill" / "data" / "default_calibration.json").read_text(encoding="utf-8"))
    lo, hi = cal["meta"]["feed_range"]["tpd"]
    assert (lo, hi) == (201.0, 245.0)  # the six quarters of the 2011-2012 releases
    tpd = [200.0, 201.0, 230.0, 245.0, 245.5, 300.0]
    ds = value.whatif_nsr(sc, tpd, 0.92, draws=2, seed=0, base_dir=SCEN.parent)
    assert ds.extrapolated.values.tolist() == [True, False, False, False, True, True]
    assert ds.attrs["calibrated_tpd"] == [201.0, 245.0]


def test_chunked_runs_are_bit_identical(sc):
    args = dict(draws=37, seed=9, base_dir=SCEN.parent, keep_draws=True)
    a = value.whatif_nsr(sc, [240.0, 320.0], [0.9], **args)  # one chunk
    b = value.whatif_nsr(sc, [240.0, 320.0], [0.9], chunk_size=5, **args)
    for v in a.data_vars:
        assert np.array_equal(a[v].values, b[v].values, equal_nan=True), v


def test_cli_whatif_prints_nsr_best_rate_gain_and_extrapolation(tmp_path):
    out = tmp_path / "w.nc"
    res = CliRunner().invoke(
        main,
        ["whatif", "--tpd", "230,250,300", "--availability", "0.92", "--draws", "12", "--capacity", "280",
         "--out", str(out)],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    assert "NSR per calendar day" in res.output
    assert "best 250 t/d (extrapolation) within calendar rate <= 280 t/d" in res.output
    assert "P(NSR per day gains, 250 -> 300 t/d) = 1.000" in res.output
    assert "extrapolation: 250, 300 t/d lie outside the 201-245 t/d" in res.output
    import xarray as xr

    with xr.open_dataset(out) as ds:
        assert ds.extrapolated.values.tolist() == [False, True, True]
        assert ds.best_tpd.values.tolist() == [250.0]


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--move", "250:333"], "--move: 333 t/d is not on the --tpd grid"),
        (["--move", "abc"], "--move: found 'abc'"),
        (["--capacity", "0"], "--capacity"),
        (["--max-operating-tpd", "-5"], "--max-operating-tpd"),
        (["--price-year", "1999"], "1999"),
    ],
)
def test_cli_whatif_bad_new_options_one_line(tmp_path, args, words):
    out = tmp_path / "w.csv"
    res = CliRunner().invoke(main, ["whatif", "--tpd", "250,300", "--availability", "0.9", "--draws", "2",
                                    *args, "--out", str(out)])  # fmt: skip
    assert res.exit_code == 2, res.output
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and words in lines[0], res.stderr
    assert not out.exists()


def test_prior_sensitivity_band_in_words_from_the_calibration_file(sc):
    """The what-if says how far the priors move the answer where it extrapolates: the range of
    the lower 90 % lead-recovery bound across the ktau_pb priors the calibration file records."""
    cal = json.loads((ROOT / "kenomill" / "data" / "default_calibration.json").read_text(encoding="utf-8"))
    rows = cal["meta"]["prior_sensitivity"]
    lo400 = [r["rec_pb_p05_400"] for r in rows]
    ds = value.whatif_nsr(sc, [400.0], 0.92, draws=2, seed=0, base_dir=SCEN.parent)
    words = ds.attrs["prior_sensitivity"]
    assert f"400 t/d {min(lo400):.1f}-{max(lo400):.1f} %" in words
    assert f"under the {len(rows)} ktau_pb priors" in words
