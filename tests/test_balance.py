"""The balance table: both routes by hand, and the rounding tolerance by brute force."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from kenomill.balance import METALS, QUANTITIES, balance_frame, balance_table
from kenomill.data import reported_periods

OZ = 31.1034768  # g per troy oz
LB = 2204.62262  # lb per t


@pytest.fixture(scope="module")
def table():
    return balance_table()


@pytest.fixture(scope="module")
def ds():
    return reported_periods()


def test_routes_by_hand_2012q1(table):
    """2012Q1 (16 Apr 2012 release), every figure recomputed by hand."""
    t = table.sel(period="2012Q1")
    ag = t.sel(quantity="ag_oz")
    assert float(ag.reported) == 581_808
    assert float(ag.via_feed) == pytest.approx(21_251 * 899 * 0.94 / OZ, rel=1e-12)  # 577,375 oz
    assert float(ag.via_concentrate) == pytest.approx((3_376 * 5_144 + 1_583 * 460) / OZ, rel=1e-12)
    pb = t.sel(quantity="pb_lb")
    assert float(pb.via_feed) == pytest.approx(21_251 * 0.113 * 0.93 * LB, rel=1e-12)  # 4,923,512 lb
    assert float(pb.via_concentrate) == pytest.approx(3_376 * 0.66 * LB, rel=1e-12)
    zn = t.sel(quantity="zn_lb")
    assert float(zn.via_feed) == pytest.approx(21_251 * 0.057 * 0.57 * LB, rel=1e-12)
    assert float(zn.via_concentrate) == pytest.approx(1_583 * 0.43 * LB, rel=1e-12)
    # recoveries: reported metal / feed metal, and concentrate metal / feed metal
    rec = t.sel(quantity="rec_pb_pct")
    assert float(rec.via_feed) == pytest.approx(100 * 4_929_079 / LB / (21_251 * 0.113), rel=1e-12)
    assert float(rec.via_concentrate) == pytest.approx(100 * 3_376 * 0.66 / (21_251 * 0.113), rel=1e-12)
    rec = t.sel(quantity="rec_ag_pct")
    assert float(rec.via_concentrate) == pytest.approx(100 * (3_376 * 5_144 + 1_583 * 460) / (21_251 * 899))
    assert float(ag.diff_feed_pct) == pytest.approx(100 * (21_251 * 899 * 0.94 / OZ / 581_808 - 1), rel=1e-12)


def _ratio_range(num, den):
    """Brute force: recomputed / reported over every rounding corner of the true values.

    ``num`` / ``den``: lists of terms, each a list of (printed, resolution) factors;
    recomputed = sum of products of ``num`` terms / product of the ``den`` factors
    (for the comparison against a reported figure, that figure is in ``den``). With the
    true values x = p - d (|d| <= resolution / 2) consistent, the ratio of printed to
    true is prod(p/x) / ...: enumerate all 2^k signs of d.
    """
    factors = [f for term in num for f in term] + list(den)
    p = np.array([v for v, _ in factors], dtype=float)
    h = np.array([0.5 * r for _, r in factors], dtype=float)
    ratios = []
    for signs in itertools.product((-1.0, 1.0), repeat=len(factors)):
        x = p - np.array(signs) * h
        k, top_p, top_x = 0, 0.0, 0.0
        for term in num:
            top_p += np.prod(p[k : k + len(term)])
            top_x += np.prod(x[k : k + len(term)])
            k += len(term)
        bot = p[k:] / x[k:]  # printed / true of the denominator factors
        ratios.append((top_p / top_x) / np.prod(bot))
    return min(ratios), max(ratios)


def _figures(ds, period, *cols):
    return [(float(ds[c].sel(period=period)), float(ds[c + "_resolution"].sel(period=period))) for c in cols]


@pytest.mark.parametrize("period", ["2011Q1", "2011Q4", "2012H1", "2011FY"])
@pytest.mark.parametrize("element", list(METALS))
def test_tolerance_is_the_exact_worst_case(table, ds, period, element):
    m = METALS[element]
    cm, rc, hd, contrib = m.contained, m.recovery, m.head, m.concentrates
    ore_head = _figures(ds, period, "ore_processed_t", hd)
    (reported_metal,) = _figures(ds, period, cm)
    (reported_rec,) = _figures(ds, period, rc)
    terms = [_figures(ds, period, t, g) for t, g in contrib]
    cases = {
        # metal: ore x head x recovery vs reported metal; sum of concentrates vs reported metal
        (cm, "tolerance_feed_pct"): ([[*ore_head, reported_rec]], [reported_metal]),
        (cm, "tolerance_concentrate_pct"): (terms, [reported_metal]),
        # recovery: reported metal / (ore x head) vs reported recovery, and concentrates / (ore x head)
        (rc, "tolerance_feed_pct"): ([[reported_metal]], [*ore_head, reported_rec]),
        (rc, "tolerance_concentrate_pct"): (terms, [*ore_head, reported_rec]),
    }
    for (quantity, column), (num, den) in cases.items():
        lo, hi = _ratio_range(num, den)
        want = 100 * max(hi - 1, 1 - lo)
        got = float(table[column].sel(period=period, quantity=quantity))
        assert got == pytest.approx(want, rel=1e-9), f"{period} {quantity} {column}"


def test_tolerance_is_wider_than_first_order(table, ds):
    """2011Q1 zinc: head 5.0 % (+-1 %) and recovery 56 % (+-0.89 %): the exact worst case
    exceeds the first-order sum of the half-units by their product (about 0.01 pp and more)."""
    t = float(table.tolerance_feed_pct.sel(period="2011Q1", quantity="zn_lb"))
    first_order = 100 * (0.05 / 5.0 + 0.5 / 56 + 0.5 / 18_050 + 0.5 / 1_111_055)
    assert first_order < t < first_order + 0.05


#: figures that do not close within printed rounding (either route): the releases' own
#: inconsistencies, pinned so that a change of data or formula is noticed
KNOWN_NOT_CLOSING = {
    ("2011Q1", "pb_lb"),  # 2,376 t x 68 % Pb = 3,561,965 lb vs 3,592,915 printed (-0.86 %)
    ("2011Q4", "ag_oz"),  # 2011Q4: every contained figure is 2-10 % above both routes
    ("2011Q4", "pb_lb"),
    ("2011Q4", "zn_lb"),
    ("2011Q4", "rec_ag_pct"),
    ("2011Q4", "rec_pb_pct"),
    ("2011Q4", "rec_zn_pct"),
    ("2012Q1", "ag_oz"),  # feed route -0.76 %: 899 g/t x 94 % gives 577,375 oz, not 581,808
    ("2012Q1", "rec_ag_pct"),
    ("2011FY", "ag_oz"),  # the year carries 2011Q4's excess
    ("2011FY", "pb_lb"),
    ("2011FY", "zn_lb"),
    ("2011FY", "rec_ag_pct"),
    ("2011FY", "rec_zn_pct"),
}


def test_which_figures_close(table):
    bad = {(str(p), str(q)) for p in table.period.values for q in table.quantity.values}
    bad = {k for k in bad if not bool(table.closes.sel(period=k[0], quantity=k[1]))}
    assert bad == KNOWN_NOT_CLOSING


def _silver_2012q1(ds, **figures):
    """The packaged periods with some 2012Q1 figures replaced (resolutions unchanged)."""
    out = ds.copy(deep=True)
    for col, value in figures.items():
        out[col].loc["2012Q1"] = value
    return balance_table(out).sel(period="2012Q1", quantity=["ag_oz", "rec_ag_pct"])


def test_closes_needs_both_routes_within_rounding(ds):
    """A hand-made consistent silver quarter closes; one figure moved fails its route only.

    Concentrates (16 Apr 2012 release): 3,376 t x 5,144 g/t + 1,583 t x 460 g/t
    = 18,094,324 g = 581,746 oz. With a head of 906 g/t (printed: 899) the feed route gives
    21,251 t x 906 g/t x 0.94 = 581,871 oz (+0.02 %), both well inside printed rounding
    (feed route about 0.6 %, concentrate route about 0.03 %).
    """
    ok = _silver_2012q1(ds, ag_oz=581_746, head_ag_gpt=906)
    assert float(ok.via_concentrate.sel(quantity="ag_oz")) == pytest.approx(18_094_324 / OZ, rel=1e-12)
    assert float(ok.via_feed.sel(quantity="ag_oz")) == pytest.approx(21_251 * 906 * 0.94 / OZ, rel=1e-12)
    assert ok.closes.values.tolist() == [True, True]
    # the printed head, 899 g/t: the feed route is 0.75 % short, the concentrates still agree
    head = _silver_2012q1(ds, ag_oz=581_746, head_ag_gpt=899)
    assert float(head.diff_feed_pct.sel(quantity="ag_oz")) == pytest.approx(
        100 * (21_251 * 899 * 0.94 / OZ / 581_746 - 1), rel=1e-9
    )  # -0.75 %
    assert abs(float(head.diff_concentrate_pct.sel(quantity="ag_oz"))) < 0.001
    assert head.closes.values.tolist() == [False, False]
    # a zinc-concentrate silver grade of 480 g/t instead of 460: +31,660 g = +0.17 % on the
    # concentrate route only, beyond its 0.03 % but well inside the feed route's 0.6 %
    con = _silver_2012q1(ds, ag_oz=581_746, head_ag_gpt=906, zncon_ag_gpt=480)
    assert float(con.diff_concentrate_pct.sel(quantity="ag_oz")) == pytest.approx(
        100 * ((18_094_324 + 1_583 * 20) / OZ / 581_746 - 1), rel=1e-9
    )
    assert abs(float(con.diff_feed_pct.sel(quantity="ag_oz"))) < 0.05
    # the recovery carries the printed 94 % (+-0.53 %): +0.15 % on it is rounding
    assert con.closes.values.tolist() == [False, True]
    # the concentrate route of silver is tight (0.02-0.03 %), the feed route is not (0.6 %):
    # a single shared tolerance would hide concentrate-route misfits
    ag = balance_table(ds).sel(quantity="ag_oz")
    assert float(ag.tolerance_concentrate_pct.max()) < 0.05 < 0.55 < float(ag.tolerance_feed_pct.min())


def test_table_units_and_frame(table):
    assert list(table.quantity.values) == list(QUANTITIES)
    assert list(table.units.values) == ["troy_oz", "lb", "lb", "%", "%", "%"]
    for name in table.data_vars:
        assert "units" in table[name].attrs and "long_name" in table[name].attrs, name
    df = balance_frame(table)
    assert len(df) == 54 and list(df.columns[:2]) == ["period", "quantity"]


def _no_zinc_2012q2(ds, **figures):
    """2012Q2 (16 Jul 2012 release) with figures replaced, e.g. a mill without zinc."""
    one = ds.sel(period=["2012Q2"]).copy(deep=True)
    for col, v in figures.items():
        one[col].values[:] = v
    return balance_table(one).sel(period="2012Q2")


def test_zero_head_grade_is_legal_and_its_recovery_undefined(ds):
    """A zero head grade: recovery undefined (said in ``note``), no warning, no inf, no crash.

    A mill with no zinc: head 0 %, no zinc concentrate, zinc recovery and contained zinc 0.
    Silver then comes from the lead concentrate alone: 2,954 t x 4,604 g/t = 13,600,216 g =
    437,257 oz against the printed 458,472 (-4.63 %): it does not close, rightly.
    """
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a division by zero would warn
        t = _no_zinc_2012q2(ds, head_zn_pct=0.0, rec_zn_pct=0.0, zn_lb=0.0, zncon_t=0.0, zncon_ag_gpt=0.0,
                            zncon_zn_pct=0.0)  # fmt: skip
    rz = t.sel(quantity="rec_zn_pct")
    assert np.isnan(float(rz.via_feed)) and np.isnan(float(rz.via_concentrate))
    assert not bool(rz.checked) and not bool(rz.closes)
    assert "recovery undefined" in str(rz.note.values) and "Zn" in str(rz.note.values)
    # contained zinc: 0 reported, 0 by both routes: closes, compared by bounds (a printed 0)
    zn = t.sel(quantity="zn_lb")
    assert float(zn.via_feed) == 0.0 and float(zn.diff_feed_pct) == 0.0 and bool(zn.closes)
    assert bool(zn.checked) and "bounds" in str(zn.note.values)
    ag = t.sel(quantity="ag_oz")
    assert float(ag.via_concentrate) == pytest.approx(2_954 * 4_604 / OZ, rel=1e-12)
    assert not bool(ag.closes)
    # lead is untouched by the zinc: as in the packaged table
    pb = balance_table(ds).sel(period="2012Q2", quantity="pb_lb")
    assert float(t.sel(quantity="pb_lb").via_feed) == float(pb.via_feed)
    assert bool(t.sel(quantity="pb_lb").closes) == bool(pb.closes)


def test_zero_head_grade_with_reported_zinc_does_not_close(ds):
    """Head printed 0 % but 1,340,557 lb of zinc reported: rounding cannot explain it.

    The printed 0 stands for at most 0.5 % (resolution 1): the feed route gives at most
    22,209.5 t x 0.005 x 0.555 x 2,204.62 lb/t = 135,874 lb, far below the reported figure
    less its rounding (1,340,556.5 lb). The concentrate route still closes (+0.72 %).
    """
    t = _no_zinc_2012q2(ds, head_zn_pct=0.0, head_zn_pct_resolution=1.0)
    zn = t.sel(quantity="zn_lb")
    assert float(zn.via_feed) == 0.0 and float(zn.diff_feed_pct) == -100.0
    assert np.isinf(float(zn.tolerance_feed_pct)) and not bool(zn.closes)
    hi = 22_209.5 * 0.005 * (55.5 / 100) * LB
    assert hi == pytest.approx(135_874, abs=1) and hi < 1_340_556.5
    rz = t.sel(quantity="rec_zn_pct")
    assert not bool(rz.checked) and "undefined" in str(rz.note.values)
