"""The mill's mass-balance core: hand-computed cases, round trips, closure, bad input."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr
from hypothesis import given
from hypothesis import strategies as st

from kenomill import circuit, units
from kenomill.errors import ValidationError

CON = ["pbcon", "zncon"]


def along_con(pb, zn):
    """A value per concentrate (lead, zinc) along the ``concentrate`` dimension."""
    return xr.DataArray([float(pb), float(zn)], dims="concentrate", coords={"concentrate": CON})


# 2012Q1 as printed in the 16 Apr 2012 release; the Ag split between the concentrates is
# a plausible choice (only the total, 94 %, is printed)
Q1_ORE = 21_251.0
Q1_HEAD = {"Ag": 899.0, "Pb": 11.3, "Zn": 5.7}
Q1_REC = {"Ag": along_con(80, 14), "Pb": along_con(93, 2), "Zn": along_con(5, 57)}
Q1_CON = along_con(3_376, 1_583)


def q1(**kw):
    args = {"ore_t": Q1_ORE, "head": Q1_HEAD, "recovery": Q1_REC, "concentrate_t": Q1_CON} | kw
    return circuit.forward(args.pop("ore_t"), args.pop("head"), args.pop("recovery"), **args)


# ---- hand-computed cases -------------------------------------------------------------------


def test_contained_silver_by_hand():
    # 21,251 t x 899 g/t = 19,104,649 g; / 31.1034768 g/oz = 614,228.728 oz in the feed,
    # x 94 % = 577,375.005 oz in the two concentrates
    ds = q1()
    assert ds.Ag_contained.attrs["units"] == "troy_oz"
    assert ds.Ag_contained.sel(stream="feed") == pytest.approx(614_228.728281592, rel=1e-12)
    both = ds.Ag_contained.sel(stream=["pbcon", "zncon"]).sum()
    assert float(both) == pytest.approx(577_375.004584696, rel=1e-12)


def test_contained_lead_by_hand():
    # 21,251 t x 11.3 % = 2,401.363 t Pb x 2,204.62262 lb/t = 5,294,099.19 lb;
    # x 93 % to the lead concentrate = 4,923,512.25 lb
    ds = q1()
    assert ds.Pb_contained.attrs["units"] == "lb"
    assert ds.Pb_t.sel(stream="feed") == pytest.approx(2_401.363, rel=1e-12)
    assert ds.Pb_contained.sel(stream="feed") == pytest.approx(5_294_099.18863106, rel=1e-12)
    assert ds.Pb_contained.sel(stream="pbcon") == pytest.approx(4_923_512.24542689, rel=1e-12)


def test_stream_grades_and_tails_by_hand():
    # lead concentrate Pb grade = 2,401.363 t x 0.93 / 3,376 t = 2,233.268 / 3,376 = 66.1513 %; tails are
    # 21,251 - 3,376 - 1,583 = 16,292 t carrying 5 % of the Pb: 120.06815 t -> 0.736976 %
    ds = q1()
    assert ds.tonnes.sel(stream="tails") == 16_292.0
    assert ds.Pb_grade.sel(stream="pbcon") == pytest.approx(100 * 2_401.363 * 0.93 / 3_376, rel=1e-12)
    assert ds.Pb_grade.sel(stream="pbcon") == pytest.approx(66.1513, abs=5e-5)
    assert ds.Pb_grade.sel(stream="tails") == pytest.approx(0.736976, abs=5e-7)
    assert ds.Pb_grade.attrs["units"] == "%" and ds.Ag_grade.attrs["units"] == "g/t"
    assert ds.mass_pull.sel(stream="pbcon") == pytest.approx(100 * 3_376 / 21_251, rel=1e-12)
    np.testing.assert_allclose(ds.Zn_distribution.values, [100, 5, 57, 38], rtol=1e-12)


def test_two_product_formula_by_hand():
    # f = 10 %, c = 60 %, t = 1 %: C/F = (10 - 1)/(60 - 1) = 9/59 = 15.2542 %;
    # R = 60 x 9 / (10 x 59) = 91.5254 %
    ds = circuit.two_product_formula(10.0, 60.0, 1.0, "%")
    assert float(ds.mass_pull) == pytest.approx(100 * 9 / 59, rel=1e-14)
    assert float(ds.recovery) == pytest.approx(100 * 540 / 590, rel=1e-14)
    assert ds.mass_pull.attrs["units"] == "%" and ds.recovery.attrs["units"] == "%"


def test_two_product_formula_is_scale_free():
    # the same silver assays in g/t and oz/t give the same split
    g = circuit.two_product_formula([829.0], [5645.0], [40.0], "g/t")
    oz = circuit.two_product_formula([829.0 / 31.1034768], [5645.0 / 31.1034768], [40.0 / 31.1034768], "oz/t")
    np.testing.assert_allclose(g.mass_pull, oz.mass_pull, rtol=1e-12)
    np.testing.assert_allclose(g.recovery, oz.recovery, rtol=1e-12)
    # (829 - 40)/(5645 - 40) = 789/5605
    assert float(g.mass_pull[0]) == pytest.approx(100 * 789 / 5605, rel=1e-14)


def test_three_product_formula_by_hand():
    # feed Pb 10, Zn 5; Pb con 70, 5; Zn con 2, 50; tails 0.5, 1 (%).
    # 9.5 = 69.5 y1 + 1.5 y2 and 4 = 4 y1 + 49 y2; det = 69.5 x 49 - 1.5 x 4 = 3399.5
    # y1 = (9.5 x 49 - 1.5 x 4)/3399.5 = 459.5/3399.5; y2 = (69.5 x 4 - 4 x 9.5)/3399.5 = 240/3399.5
    ds = circuit.backward(
        {"Pb": 10.0, "Zn": 5.0},
        {"Pb": along_con(70, 2), "Zn": along_con(5, 50)},
        {"Pb": 0.5, "Zn": 1.0},
    )
    y1, y2 = 459.5 / 3399.5, 240 / 3399.5
    np.testing.assert_allclose(ds.mass_pull.values, [100 * y1, 100 * y2], rtol=1e-13)
    np.testing.assert_allclose(ds.Pb_recovery.values, [100 * y1 * 70 / 10, 100 * y2 * 2 / 10], rtol=1e-13)
    np.testing.assert_allclose(ds.Zn_recovery.values, [100 * y1 * 5 / 5, 100 * y2 * 50 / 5], rtol=1e-13)
    assert ds.attrs["method"] == "three-product formula"
    assert ds.mass_pull.attrs["units"] == "%"


def test_concentrate_grade_and_mass_pull_routes_match_concentrate_tonnes():
    """The three ways of giving concentrate mass agree when they describe the same mill."""
    by_t = q1()
    pb_grade = float(by_t.Pb_grade.sel(stream="pbcon"))
    zn_grade = float(by_t.Zn_grade.sel(stream="zncon"))
    by_grade = q1(
        concentrate_t=None, concentrate_grade={"pbcon": ("Pb", pb_grade), "zncon": ("Zn", zn_grade)}
    )
    by_pull = q1(concentrate_t=None, mass_pull=along_con(100 * 3_376 / Q1_ORE, 100 * 1_583 / Q1_ORE))
    for other in (by_grade, by_pull):
        np.testing.assert_allclose(other.tonnes, by_t.tonnes, rtol=1e-12)
        np.testing.assert_allclose(other.Ag_grade, by_t.Ag_grade, rtol=1e-12)


def test_forward_over_named_dimensions():
    """Periods x draws broadcast through the same kernel; coordinates are kept."""
    ore = xr.DataArray([18_050.0, 21_251.0], dims="period", coords={"period": ["2011Q1", "2012Q1"]})
    draws = xr.DataArray([1.0, 1.1, 0.9], dims="draw")
    ds = circuit.forward(ore, {"Pb": 10.0 * draws}, {"Pb": along_con(90, 1)}, mass_pull=along_con(13, 6))
    assert set(ds.tonnes.dims) == {"period", "draw", "stream"}
    assert list(ds.period.values) == ["2011Q1", "2012Q1"]
    want = 18_050.0 * 0.11 * 0.90
    got = ds.Pb_t.sel(period="2011Q1", stream="pbcon").isel(draw=1)
    assert float(got) == pytest.approx(want, rel=1e-12)


# ---- forward then backward returns the inputs ----------------------------------------------


def _round_trip(head, recovery, con_t, ore=20_000.0):
    fw = circuit.forward(ore, head, recovery, concentrate_t=con_t)
    grade = {e: fw[f"{e}_grade"].assign_attrs(units=fw[f"{e}_grade"].attrs["units"]) for e in head}
    bw = circuit.backward(
        {e: grade[e].sel(stream="feed", drop=True) for e in head},
        {e: grade[e].sel(stream=CON).rename(stream="concentrate").drop_vars("concentrate") for e in head},
        {e: grade[e].sel(stream="tails", drop=True) for e in head},
    )
    np.testing.assert_allclose(bw.mass_pull.values, 100 * con_t.values / ore, rtol=1e-9)
    for e in head:
        np.testing.assert_allclose(bw[f"{e}_recovery"].values, recovery[e].values, rtol=1e-9)
    return bw


def test_forward_then_backward_two_elements_three_product():
    bw = _round_trip({"Pb": 11.3, "Zn": 5.7}, {"Pb": along_con(93, 2), "Zn": along_con(5, 57)}, Q1_CON)
    assert bw.attrs["method"] == "three-product formula"


def test_forward_then_backward_three_elements_least_squares():
    bw = _round_trip(Q1_HEAD, Q1_REC, Q1_CON)
    assert bw.attrs["method"] == "least squares"


def test_forward_then_backward_with_gold_and_iron():
    """Au (g/t) and Fe (%) pass through the same kernels as Ag, Pb and Zn."""
    head = {
        "Ag": 899.0,
        "Pb": 11.3,
        "Zn": 5.7,
        "Au": xr.DataArray(0.4, attrs={"units": "g/t"}),
        "Fe": xr.DataArray(8.0, attrs={"units": "%"}),
    }
    rec = Q1_REC | {"Au": along_con(40, 10), "Fe": along_con(3, 12)}
    fw = circuit.forward(20_000.0, head, rec, concentrate_t=Q1_CON)
    assert fw.Au_contained.attrs["units"] == "troy_oz" and fw.Fe_contained.attrs["units"] == "lb"
    # 20,000 t x 0.4 g/t / 31.1034768 = 257.2060 oz of gold in the feed
    assert float(fw.Au_contained.sel(stream="feed")) == pytest.approx(8_000 / 31.1034768, rel=1e-12)
    bw = _round_trip(head, rec, Q1_CON)
    assert bw.attrs["method"] == "least squares"


def test_two_product_round_trip():
    """Two-product formula recovers a forward split with one concentrate."""
    fw = circuit.forward(10_000.0, {"Pb": 9.0}, {"Pb": along_con(88, 0)}, concentrate_t=along_con(1_300, 0))
    g = fw.Pb_grade
    tp = circuit.two_product_formula(
        float(g.sel(stream="feed")), float(g.sel(stream="pbcon")), float(g.sel(stream="tails")), "%"
    )
    assert float(tp.mass_pull) == pytest.approx(13.0, rel=1e-12)
    assert float(tp.recovery) == pytest.approx(88.0, rel=1e-12)


# ---- closure through the public API --------------------------------------------------------


@st.composite
def mills(draw):
    """Physically valid mills: grades sum <= 15 %, concentrates within pure-mineral grades."""
    els = draw(
        st.lists(st.sampled_from(["Ag", "Pb", "Zn", "Au", "Fe", "Cu"]), min_size=1, max_size=5, unique=True)
    )
    n = draw(st.integers(1, 5))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    ore = rng.uniform(0.0, 50_000.0, n)
    ore[0] = draw(st.floats(0.0, 1e7, allow_nan=False))
    frac = rng.dirichlet(np.ones(len(els) + 1), n)[:, :-1] * draw(st.floats(0.0, 0.15))
    r0 = rng.uniform(0.0, 1.0, (n, len(els)))
    r0[0, 0] = draw(st.floats(0.0, 1.0))
    r1 = rng.uniform(0.0, 1.0, (n, len(els))) * (1 - r0)
    metal0 = (ore[:, None] * frac * r0).sum(1)
    metal1 = (ore[:, None] * frac * r1).sum(1)
    pull = rng.uniform(0.0, 0.3, (n, 2))
    # enough concentrate that no element exceeds 67.1 % (sphalerite, the lowest limit)
    con = np.maximum(pull * ore[:, None], np.stack([metal0, metal1], 1) / 0.6)
    head, rec = {}, {}
    for j, e in enumerate(els):
        u = units.grade_unit(e)
        head[e] = xr.DataArray(units.from_fraction(frac[:, j], u), dims="row", attrs={"units": u})
        rec[e] = xr.DataArray(100 * np.stack([r0[:, j], r1[:, j]], 1), dims=("row", "concentrate"))
    return xr.DataArray(ore, dims="row"), head, rec, xr.DataArray(con, dims=("row", "concentrate"))


@pytest.mark.kernel  # also run with NUMBA_DISABLE_JIT=1: the public path over the Python kernel
@given(mill=mills())
def test_public_forward_closes(mill):
    ore, head, rec, con = mill
    ds = circuit.forward(ore, head, rec, concentrate_t=con)
    products = ["pbcon", "zncon", "tails"]
    feed_t = ds.tonnes.sel(stream="feed")
    np.testing.assert_allclose(ds.tonnes.sel(stream=products).sum("stream"), feed_t, rtol=1e-9, atol=0)
    for e in head:
        for var in (f"{e}_t", f"{e}_contained"):
            feed = ds[var].sel(stream="feed")
            np.testing.assert_allclose(
                ds[var].sel(stream=products).sum("stream"), feed, rtol=1e-9, atol=1e-300
            )
            assert (ds[var] >= -1e-9 * feed).all()
        # distributions add to 100 % wherever the feed carries the element (else 0/0 = NaN)
        dist = ds[f"{e}_distribution"].sel(stream=products).sum("stream", skipna=False)
        carried = ds[f"{e}_t"].sel(stream="feed") > 0
        np.testing.assert_allclose(dist.where(carried, 100.0), 100.0, rtol=1e-9)
        assert dist.where(~carried).isnull().all()
        # grade x tonnes = metal in every stream with mass
        g = units.to_fraction(ds[f"{e}_grade"], ds[f"{e}_grade"].attrs["units"])
        has_mass = ds.tonnes > 0
        np.testing.assert_allclose(
            (g * ds.tonnes).where(has_mass, 0.0), ds[f"{e}_t"].where(has_mass, 0.0), rtol=1e-9, atol=1e-9
        )


# ---- bad input: one ValidationError each, naming field and value ---------------------------


BAD_FORWARD = {
    "negative tonnes": ({"ore_t": -1.0}, r"ore_t \[t\]: found -1 t; allowed: >= 0 t"),
    "NaN tonnes": ({"ore_t": float("nan")}, r"ore_t \[t\]: found nan; a finite number is required"),
    "infinite tonnes": ({"ore_t": float("inf")}, r"ore_t \[t\]: found inf"),
    "negative concentrate tonnes": (
        {"concentrate_t": along_con(-5, 1_583)},
        r"concentrate_t \[t\]: found -5 t at index \(0,\); allowed: >= 0 t",
    ),
    "NaN concentrate tonnes": (
        {"concentrate_t": along_con(3_376, float("nan"))},
        r"concentrate_t \[t\]: found nan at index \(1,\)",
    ),
    "grade above 100 %": (
        {"head": Q1_HEAD | {"Pb": 120.0}},
        r"head\.Pb \[%\]: found 120 %; allowed: between 0 and 100 %",
    ),
    "negative grade": ({"head": Q1_HEAD | {"Zn": -0.5}}, r"head\.Zn \[%\]: found -0\.5 %"),
    "silver above 100 % in g/t": (
        {"head": Q1_HEAD | {"Ag": 2e6}},
        r"head\.Ag \[g/t\]: found 2e\+06 g/t; allowed: between 0 and 1e\+06 g/t",
    ),
    "NaN grade": ({"head": Q1_HEAD | {"Ag": float("nan")}}, r"head\.Ag \[g/t\]: found nan"),
    "lead concentrate richer than galena": (
        {"concentrate_t": along_con(2_000, 1_583)},
        r"pbcon Pb grade: found 111\.663 %.*allowed: at most 86\.6 % \(pure mineral\)",
    ),
    "zinc concentrate richer than sphalerite": (
        {"concentrate_t": along_con(3_376, 900)},
        r"zncon Zn grade: found 76\.7\d* %.*allowed: at most 67\.1 % \(pure mineral\)",
    ),
    "concentrate grade above galena": (
        {"concentrate_t": None, "concentrate_grade": {"pbcon": ("Pb", 90.0), "zncon": ("Zn", 45.0)}},
        r"pbcon Pb grade: found 90 %.*at most 86\.6 % \(pure mineral\): lower concentrate_grade",
    ),
    "recovery above 100 %": (
        {"recovery": Q1_REC | {"Pb": along_con(101, 0)}},
        r"recovery\.Pb \[%\]: found 101 % at index \(0,\); allowed: between 0 and 100 %",
    ),
    "negative recovery": (
        {"recovery": Q1_REC | {"Zn": along_con(5, -1)}},
        r"recovery\.Zn \[%\]: found -1 %",
    ),
    "more metal out than in": (
        {"recovery": Q1_REC | {"Ag": along_con(80, 30)}},
        r"recovery\.Ag \[%\]: found 110 % to the two concentrates together.*more metal out than in",
    ),
    "more concentrate than feed": (
        {"concentrate_t": along_con(15_000, 7_000)},
        r"concentrate tonnes: found 22000 t of concentrate from 21251 t of feed",
    ),
    "mass pull above 100 %": (
        {"concentrate_t": None, "mass_pull": along_con(16, 120)},
        r"mass_pull \[%\]: found 120 %",
    ),
    "no concentrate mass": ({"concentrate_t": None}, r"concentrate mass: found none; give exactly one of"),
    "two concentrate masses": (
        {"mass_pull": along_con(16, 7)},
        r"found \['concentrate_t', 'mass_pull'\]; give exactly one",
    ),
    "misspelt element": (
        {"recovery": {"Ag": Q1_REC["Ag"], "Pbb": Q1_REC["Pb"], "Zn": Q1_REC["Zn"]}},
        r"missing \['Pb'\], unknown \['Pbb'\]",
    ),
    "missing element": (
        {"recovery": {"Ag": Q1_REC["Ag"], "Pb": Q1_REC["Pb"]}},
        r"recovery: elements \['Ag', 'Pb'\] do not match .*missing \['Zn'\], unknown \[\]",
    ),
    "unknown grade unit": (
        {"head": Q1_HEAD | {"Pb": xr.DataArray(11.3, attrs={"units": "percent"})}},
        r"unknown grade unit 'percent'; allowed: %",
    ),
    "recovery without concentrate dim": (
        {"recovery": Q1_REC | {"Pb": xr.DataArray([93.0, 2.0], dims="x")}},
        r"recovery\.Pb: found dims \('x',\); a dimension 'concentrate'",
    ),
    "head not a mapping": ({"head": [899.0, 11.3]}, r"head: found list; expected an xarray\.Dataset"),
    "no elements": ({"head": {}, "recovery": {}}, r"head: found no elements"),
    "concentrate_grade of an unknown element": (
        {"concentrate_t": None, "concentrate_grade": {"pbcon": ("Cu", 30.0), "zncon": ("Zn", 45.0)}},
        r"concentrate_grade\.pbcon: unknown element 'Cu'",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_FORWARD))
def test_forward_refuses(case):
    kw, match = BAD_FORWARD[case]
    with pytest.raises(ValidationError, match=match):
        q1(**kw)


def test_validation_error_is_a_value_error():
    with pytest.raises(ValueError, match="ore_t"):
        q1(ore_t=-1.0)


TWO_ELEMENT = (
    {"Pb": 10.0, "Zn": 5.0},
    {"Pb": along_con(70, 2), "Zn": along_con(5, 50)},
    {"Pb": 0.5, "Zn": 1.0},
)
BAD_BACKWARD = {
    "concentrate richer than galena": (
        {1: {"Pb": along_con(90, 2), "Zn": along_con(5, 50)}},
        r"concentrate_grade\.Pb \[%\]: found 90 %; allowed: at most 86\.6 % \(pure mineral\)",
    ),
    "concentrate richer than sphalerite": (
        {1: {"Pb": along_con(70, 2), "Zn": along_con(5, 70)}},
        r"concentrate_grade\.Zn \[%\]: found 70 %; allowed: at most 67\.1 %",
    ),
    "grade above 100 %": ({0: {"Pb": 101.0, "Zn": 5.0}}, r"head\.Pb \[%\]: found 101 %"),
    "NaN tails assay": ({2: {"Pb": float("nan"), "Zn": 1.0}}, r"tails_grade\.Pb \[%\]: found nan"),
    "missing tails element": ({2: {"Pb": 0.5}}, r"tails_grade: element 'Zn' missing; found \['Pb'\]"),
    "misspelt concentrate element": (
        {1: {"Pb": along_con(70, 2), "Zinc": along_con(5, 50)}},
        r"concentrate_grade: element 'Zn' missing",
    ),
    "one element": (
        {0: {"Pb": 10.0}},
        r"head: found 1 element; the three-product formula needs at least two",
    ),
    "alike concentrates": (
        {1: {"Pb": along_con(70, 70), "Zn": along_con(5, 5)}},
        r"the two concentrates have proportional assays",
    ),
    "inconsistent assays": (
        {1: {"Pb": along_con(7, 2), "Zn": along_con(5, 50)}},
        r"assays: imply yields 147 % and -3\.84 %; allowed: each >= 0",
    ),
    "element absent from the feed": ({0: {"Pb": 10.0, "Zn": 0.0}}, r"head: found a zero grade"),
}


@pytest.mark.parametrize("case", sorted(BAD_BACKWARD))
def test_backward_refuses(case):
    replace, match = BAD_BACKWARD[case]
    args = [replace.get(i, a) for i, a in enumerate(TWO_ELEMENT)]
    with pytest.raises(ValidationError, match=match):
        circuit.backward(*args)


@pytest.mark.parametrize(
    ("f", "c", "t", "match"),
    [
        (10.0, 60.0, 11.0, r"assays: found feed 10, concentrate 60, tails 11 %; allowed: tails <= feed"),
        (10.0, 160.0, 1.0, r"concentrate \[%\]: found 160 %; allowed: between 0 and 100 %"),
        (10.0, 60.0, -1.0, r"tails \[%\]: found -1 %"),
        (float("nan"), 60.0, 1.0, r"feed \[%\]: found nan; a finite number is required"),
        (70.0, 60.0, 1.0, r"assays: found feed 70, concentrate 60"),
    ],
)
def test_two_product_formula_refuses(f, c, t, match):
    with pytest.raises(ValidationError, match=match):
        circuit.two_product_formula(f, c, t, "%")
