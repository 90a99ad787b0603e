"""Net smelter return: a settlement computed by hand, edges of the terms, validation errors."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from kenomill import terms, value
from kenomill.cli import main
from kenomill.errors import ValidationError

T = terms.packaged_terms()
PRICES = {"ag": 30.0, "pb": 1.00, "zn": 0.90, "usd_cad": 1.25}
G_OZ = 31.1034768
LB_T = 2204.62262


# ------------------------------------------------------------------ one lot, by hand
def test_lead_concentrate_lot_by_hand():
    # 1000 dry t at 5000 g/t Ag, 65 % Pb, 8 % Zn under the typical 2012 terms
    got = value.settle(1000.0, {"ag": 5000e-6, "pb": 0.65, "zn": 0.08}, PRICES, T.lead_concentrate, T.stream)
    wmt = 1000.0 / (1 - 0.08)  # 8 % moisture
    rec = 1000.0 * (1 - 0.005)  # 0.5 % transport losses -> 995 dmt
    ag_oz = rec * 0.95 * (5000.0 / G_OZ - 1.5)  # deduct 1.5 oz/dmt, pay 95 % of the rest
    pb_lb = rec * (65.0 * 0.95) / 100 * LB_T  # 95 % = 61.75 units beats 65 - 3 = 62
    ag_usd, pb_usd = ag_oz * 30.0, pb_lb * 1.00
    tc_dmt = 300.0 + 0.04 * (LB_T - 2100.0)  # lead at US$2,204.62/t, above the 2,100 basis
    tc = tc_dmt * rec
    rc = ag_oz * 1.50
    pen = 2.0 * (8.0 - 7.0) * rec  # US$2 per unit of zinc above 7 %
    ins = 0.0006 * (ag_usd + pb_usd - tc - rc - pen)
    freight = 150.0 * wmt
    stream = 0.25 * ag_oz * (30.0 - 3.90)
    nsr = ag_usd + pb_usd - tc - rc - pen - ins - freight - stream
    expect = {
        "wmt": wmt,
        "dmt_received": rec,
        "ag_payable_oz": ag_oz,
        "pb_payable_lb": pb_lb,
        "zn_payable_lb": 0.0,
        "payable_value_usd": ag_usd + pb_usd,
        "tc_usd_per_dmt": tc_dmt,
        "tc_usd": tc,
        "rc_usd": rc,
        "penalty_usd": pen,
        "insurance_usd": ins,
        "freight_usd": freight,
        "stream_usd": stream,
        "nsr_usd": nsr,
    }
    for k, v in expect.items():
        assert float(got[k]) == pytest.approx(v, rel=1e-12, abs=1e-9), k
    # 5000 g/t = 160.754 oz/dmt; 995 x 0.95 x (160.754 - 1.5) = 150,534.6 oz; TC 304.18 US$/dmt
    assert float(got["ag_payable_oz"]) == pytest.approx(150_534.6, abs=0.05)
    assert float(got["tc_usd_per_dmt"]) == pytest.approx(304.18, abs=0.005)
    assert float(got["nsr_usd"]) == pytest.approx(nsr)


def test_zinc_concentrate_lot_by_hand():
    # 500 dry t at 50 % Zn, 400 g/t Ag, 4 % Pb: the 8-unit minimum deduction bites (85 % = 42.5 > 42)
    got = value.settle(500.0, {"ag": 400e-6, "pb": 0.04, "zn": 0.50}, PRICES, T.zinc_concentrate, T.stream)
    rec = 500.0 * 0.995
    zn_lb = rec * (50.0 - 8.0) / 100 * LB_T
    ag_oz = rec * 0.70 * (400.0 / G_OZ - 3.0)
    tc_dmt = 191.0 - 0.02 * (2000.0 - 0.90 * LB_T)  # zinc at US$1,984.16/t: de-escalator
    pen = 1.5 * (4.0 - 3.0) * rec
    inv = zn_lb * 0.90 + ag_oz * 30.0 - tc_dmt * rec - pen
    nsr = inv * (1 - 0.0006) - 150.0 * 500.0 / 0.91 - 0.25 * ag_oz * 26.10
    assert float(got["zn_payable_lb"]) == pytest.approx(zn_lb, rel=1e-12)
    assert float(got["tc_usd_per_dmt"]) == pytest.approx(tc_dmt, rel=1e-12)
    assert float(got["penalty_usd"]) == pytest.approx(pen, rel=1e-12)
    assert float(got["rc_usd"]) == 0.0
    assert float(got["nsr_usd"]) == pytest.approx(nsr, rel=1e-12)


def test_nsr_dataset_adds_concentrates_and_converts():
    lead = {"dmt": np.array([1000.0, 0.0]), "ag": 5000e-6, "pb": 0.65, "zn": 0.05}
    zinc = {"dmt": np.array([500.0, 500.0]), "ag": 400e-6, "pb": 0.02, "zn": 0.50}
    ds = value.nsr(lead, zinc, PRICES, T, ore_t=np.array([20_000.0, 10_000.0]), coords={"period": ["a", "b"]})
    tot = ds.pbcon_nsr_usd.values + ds.zncon_nsr_usd.values
    np.testing.assert_allclose(ds.nsr_usd.values, tot)
    np.testing.assert_allclose(ds.nsr_cad.values, tot * 1.25)
    np.testing.assert_allclose(ds.nsr_usd_per_t_ore.values, tot / [20_000.0, 10_000.0])
    assert ds.pbcon_nsr_usd.values[1] == 0.0  # no concentrate, no money
    assert all("units" in ds[v].attrs for v in ds.data_vars)


# ------------------------------------------------------------------ edges
@pytest.mark.parametrize(
    ("price", "tc"),
    [(2000.0, 191.0), (2500.0, 191.0), (3000.0, 216.0), (3500.0, 236.0), (1500.0, 181.0), (2250.0, 191.0)],
)
def test_zinc_escalators_at_their_edges(price, tc):
    zt = T.zinc_concentrate.tc
    bands = [(b.lo, b.hi, b.rate) for b in zt.bands]
    got = value.treatment_charge(price, zt.base_usd_per_dmt.value, zt.basis_usd_per_t.value, bands)
    assert float(got) == pytest.approx(tc, abs=1e-9)


@pytest.mark.parametrize(
    ("price", "tc"), [(2100.0, 300.0), (2200.0, 304.0), (2000.0, 299.0), (1100.0, 290.0)]
)
def test_lead_escalators_at_their_edges(price, tc):
    lt = T.lead_concentrate.tc
    bands = [(b.lo, b.hi, b.rate) for b in lt.bands]
    got = value.treatment_charge(price, lt.base_usd_per_dmt.value, lt.basis_usd_per_t.value, bands)
    assert float(got) == pytest.approx(tc, abs=1e-9)


def test_minimum_deduction_edges():
    # 85 % with 8 units minimum: equal at 53.33 % Zn (15 % of it is 8 units)
    c = np.array([40.0, 160.0 / 3.0, 60.0, 5.0])
    got = value.payable_content(c, 0.85, 0.0, 8.0)
    np.testing.assert_allclose(got, [32.0, 0.85 * 160.0 / 3.0, 51.0, 0.0], atol=1e-12)
    # deduct-then-pay (silver in zinc concentrate): nothing paid at or below the deduction
    np.testing.assert_allclose(value.payable_content([3.0, 2.0, 13.0], 0.70, 3.0), [0.0, 0.0, 7.0])


def test_penalties_switch_on_at_their_thresholds():
    lead = T.lead_concentrate
    zn = np.array([0.0699, 0.07, 0.0701, 0.08])
    got = value.settle(1.0, {"ag": 5000e-6, "pb": 0.65, "zn": zn}, PRICES, lead, T.stream)["penalty_usd"]
    np.testing.assert_allclose(got, 0.995 * 2.0 * np.array([0.0, 0.0, 0.01, 1.0]), atol=1e-9)
    pb = np.array([0.0299, 0.03, 0.04])
    got = value.settle(1.0, {"ag": 400e-6, "pb": pb, "zn": 0.5}, PRICES, T.zinc_concentrate, T.stream)[
        "penalty_usd"
    ]
    np.testing.assert_allclose(got, 0.995 * 1.5 * np.array([0.0, 0.0, 1.0]), atol=1e-9)


def test_stream_costs_nothing_below_the_stream_price():
    low = dict(PRICES, ag=3.50)
    got = value.settle(100.0, {"ag": 5000e-6, "pb": 0.65, "zn": 0.03}, low, T.lead_concentrate, T.stream)
    assert float(got["stream_usd"]) == 0.0


# ------------------------------------------------------------------ data
def test_packaged_terms_and_prices_carry_sources():
    text = Path(terms.__file__).with_name("data").joinpath(terms.PACKAGED_TERMS).read_text()
    # every number in a { value = ... } table has a source next to it
    values = re.findall(r"\{ value = [^}]*\}", text)
    assert values and all("source = " in v for v in values)
    deck = terms.read_prices()
    assert deck["source"].str.len().min() > 10
    p = terms.prices_for(deck, "2012")
    assert (p["ag"], p["pb"], p["zn"]) == (31.15, 0.9349, 0.88)  # market.md 3.1
    assert terms.prices_for(deck, "2012Q2")["ag"] == 27.84  # Alexco NR, 7 Aug 2012


def _terms_dict():
    import tomllib

    text = Path(terms.__file__).with_name("data").joinpath(terms.PACKAGED_TERMS).read_text()
    return tomllib.loads(text)


@pytest.mark.parametrize(
    ("edit", "match"),
    [
        (
            lambda d: d["lead_concentrate"].update(freigth_usd_per_wmt=1),
            r"x\.toml: lead_concentrate\.freigth_usd_per_wmt: unknown field 'freigth_usd_per_wmt' "
            r"\(did you mean 'freight_usd_per_wmt'\?\)",
        ),
        (
            lambda d: d["stream"]["share_pct"].update(value=125.0),
            r"x\.toml: stream\.share_pct\.value: found 125\.0; allowed: less than or equal to 100",
        ),
        (
            lambda d: d["zinc_concentrate"]["tc"].update(metal="cu"),
            r"x\.toml: zinc_concentrate\.tc\.metal: found 'cu'; allowed: 'pb' or 'zn'",
        ),
        (
            lambda d: d["lead_concentrate"]["moisture_pct"].update(value="wet"),
            r"x\.toml: lead_concentrate\.moisture_pct\.value: found 'wet'; allowed: .*valid number",
        ),
        (
            lambda d: d["lead_concentrate"]["moisture_pct"].pop("source"),
            r"x\.toml: lead_concentrate\.moisture_pct\.source: field required",
        ),
        (
            lambda d: d["lead_concentrate"]["tc"]["bands"].append({"lo": 5.0, "hi": 1.0, "rate": 0.1}),
            r"x\.toml: lead_concentrate\.tc\.bands\.2: found lo = 5, hi = 1; allowed: hi > lo",
        ),
    ],
)
def test_terms_errors_are_one_line(edit, match):
    d = _terms_dict()
    edit(d)
    with pytest.raises(ValidationError, match=match) as e:
        terms.terms_from_dict(d, where="x.toml")
    assert "\n" not in str(e.value)


def _deck(tmp_path, line):
    p = tmp_path / "deck.csv"
    p.write_text("period,item,value,unit,source\n2012,ag,31,USD/troy_oz,me\n" + line + "\n")
    return p


@pytest.mark.parametrize(
    ("line", "match"),
    [
        ("2012,cu,3,USD/lb,me", r"deck\.csv: line 3: item: found 'cu'; allowed: ag, pb, zn, usd_cad"),
        (
            "2012,pb,-1,USD/lb,me",
            r"deck\.csv: line 3: value: found '-1' for pb; allowed: 0\.01 to 100 USD/lb",
        ),
        ("2012,pb,abc,USD/lb,me", r"deck\.csv: line 3: value: found 'abc'; allowed: a number"),
        ("2012,pb,0.9,USD/t,me", r"deck\.csv: line 3: unit: found 'USD/t' for pb; allowed: USD/lb"),
        ("2012,pb,0.9,USD/lb,", r"deck\.csv: line 3: source: empty"),
        ("2012,ag,30,USD/troy_oz,me", r"deck\.csv: line 3: period: '2012' gives ag twice"),
    ],
)
def test_price_deck_errors_are_one_line(tmp_path, line, match):
    with pytest.raises(ValidationError, match=match):
        terms.read_prices(_deck(tmp_path, line))


def test_price_deck_missing_item_and_period(tmp_path):
    deck = terms.read_prices(_deck(tmp_path, "2012,pb,0.9,USD/lb,me"))
    with pytest.raises(ValidationError, match=r"period 2012: item 'zn' missing"):
        terms.prices_for(deck, "2012", where="deck.csv")
    with pytest.raises(ValidationError, match=r"deck.csv: period: found no rows for '1999'; allowed: 2012"):
        terms.prices_for(deck, "1999", where="deck.csv")


# ------------------------------------------------------------------ CLI
def test_cli_bad_terms_one_line_exit_2_no_output(tmp_path):
    bad = tmp_path / "t.toml"
    bad.write_text(
        (Path(terms.__file__).with_name("data") / terms.PACKAGED_TERMS)
        .read_text()
        .replace("share_pct", "shares_pct")
    )
    out = tmp_path / "nsr.csv"
    r = CliRunner().invoke(main, ["nsr", "--terms", str(bad), "--out", str(out)])
    assert r.exit_code == 2
    lines = r.output.strip().splitlines()
    assert (
        len(lines) == 1
        and lines[0].startswith("kenomill nsr: error: ")
        and "stream.shares_pct: unknown field 'shares_pct'" in lines[0]
    )
    assert not out.exists()


def test_cli_bad_prices_one_line_exit_2_no_output(tmp_path):
    out = tmp_path / "nsr.xlsx"
    r = CliRunner().invoke(
        main, ["nsr", "--prices", str(_deck(tmp_path, "2012,zn,9999,USD/lb,me")), "--out", str(out)]
    )
    assert (
        r.exit_code == 2
        and len(r.output.strip().splitlines()) == 1
        and "allowed: 0.01 to 100 USD/lb" in r.output
    )
    assert not out.exists()
    r = CliRunner().invoke(main, ["nsr", "--year", "1999", "--out", str(out)])
    assert r.exit_code == 2 and "found no rows for '1999'" in r.output and not out.exists()


def test_cli_nsr_writes_every_line(tmp_path):
    import pandas as pd

    out = tmp_path / "nsr.csv"
    r = CliRunner().invoke(main, ["nsr", "--draws", "50", "--out", str(out)])
    assert r.exit_code == 0, r.output
    df = pd.read_csv(out)
    assert list(df.period) == ["2011Q1", "2011Q2", "2011Q3", "2011Q4", "2012Q1", "2012Q2"]
    lines = [
        "tc_usd",
        "rc_usd",
        "penalty_usd",
        "freight_usd",
        "stream_usd",
        "insurance_usd",
        "payable_value_usd",
    ]
    for tag in ("pbcon", "zncon"):
        d = sum(df[f"{tag}_{k}"] * (1 if k == "payable_value_usd" else -1) for k in lines)
        np.testing.assert_allclose(df[f"{tag}_nsr_usd"], d, rtol=1e-12)
    assert (df.nsr_usd_p10 <= df.nsr_usd + 1e-6).all() and (df.nsr_usd <= df.nsr_usd_p90 + 1e-6).all()
    # 2012Q1 lead concentrate by hand from the release figures (3,376 t at 5,144 g/t Ag, 2012 prices)
    ag_oz = 3376 * 0.995 * 0.95 * (5144 / G_OZ - 1.5)
    q1 = df.set_index("period").loc["2012Q1"]
    assert q1.pbcon_ag_payable_oz == pytest.approx(ag_oz, rel=1e-9)
    assert q1.pbcon_stream_usd == pytest.approx(0.25 * ag_oz * (31.15 - 3.90), rel=1e-9)
    assert "calibrated model" in q1.unreported_assays_from


def test_sensitivity_of_silver_price_by_hand():
    # d NSR / d P_ag = payable oz x (1 - stream share - insurance share): the stream takes
    # 25 % of the payable oz at the fixed US$3.90, insurance 0.06 % of the invoice
    res = value.nsr_of_periods(n_draws=10)
    oz = float(res.pbcon_ag_payable_oz.sum() + res.zncon_ag_payable_oz.sum())
    df = value.sensitivity().set_index("input")
    assert df.loc["silver price", "change_usd"] == pytest.approx(
        0.1 * 31.15 * oz * (1 - 0.25 - 0.0006), rel=1e-9
    )
    # the stream share, 25 -> 27.5 %: 2.5 % of the payable oz at (31.15 - 3.90), less no insurance
    assert df.loc["stream share", "change_usd"] == pytest.approx(-0.025 * oz * (31.15 - 3.90), rel=1e-9)
    assert df.index[0] == "silver price"


def test_whatif_nsr_per_day_and_per_tonne():
    from kenomill import scenario

    root = Path(__file__).resolve().parents[1] / "scenarios"
    sc = scenario.load(root / "bellekeno_only.toml")
    ds = value.whatif_nsr(sc, [200.0, 250.0, 300.0], draws=30, seed=1, base_dir=root, capacity_tpd=260.0)
    per_t = ds.nsr_usd_per_t_ore.sel(stat="mean").values
    # less residence time, lower recovery: NSR per tonne of ore falls with throughput
    assert per_t[0] > per_t[1] > per_t[2]
    assert ds.attrs["best_tpd"] == 250.0  # capacity 260 t/d excludes 300
    assert 0.0 <= ds.attrs["p_gain"] <= 1.0
    st = ds.nsr_usd_per_day.values
    assert (st[:, 1] <= st[:, 2]).all() and (st[:, 2] <= st[:, 3]).all()


def test_cli_bad_throughput_one_line(tmp_path):
    out = tmp_path / "w.csv"
    r = CliRunner().invoke(main, ["nsr", "--throughput", "abc", "--out", str(out)])
    assert r.exit_code == 2 and len(r.output.strip().splitlines()) == 1 and "--throughput" in r.output
    assert not out.exists()
