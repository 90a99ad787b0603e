"""circuit.forward's every output against the same arithmetic written out in NumPy, bit for bit.

The wrapper computes its 2 + 4 m outputs per row in one blocked numba pass (element-major,
divisions in SIMD lanes, scratch columns interleaved into (row, stream)); these tests spell
out the formulas stream by stream in plain NumPy, in the same order of operations, and
compare the bits, over row counts that do not fill the last block, zero feed rows, streams
without tonnes, broadcast inputs and units other than fractions.
"""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from kenomill import circuit, units
from kenomill.errors import ValidationError

CON = {"concentrate": list(circuit.CONCENTRATES)}
TOL = 1e-9


def _inputs(n, rng, zero_rows=()):
    feed = rng.uniform(1e3, 3e4, n)
    head = {
        "Ag": rng.uniform(100, 900, n),  # g/t
        "Pb": rng.uniform(1, 12, n),  # %
        "Zn": rng.uniform(1, 10, n),  # %
    }
    rec = {e: np.stack([rng.uniform(0, 60, n), rng.uniform(0, 40, n)], axis=1) for e in head}
    frac = {e: units.to_fraction(v, units.grade_unit(e)) for e, v in head.items()}
    metal_con = sum(feed[:, None] * frac[e][:, None] * rec[e] / 100.0 for e in head)
    con = metal_con / 0.5  # concentrates at twice their metal's mass
    for i in zero_rows:
        feed[i] = 0.0
        con[i] = 0.0
    return feed, head, rec, con


def _expected(feed, head, rec, con):
    """The outputs of forward, one NumPy expression per stream, in the kernel's order of operations."""
    f = feed
    c0, c1 = con[:, 0], con[:, 1]
    t3 = np.maximum(f - c0 - c1, 0.0)
    tonnes = np.stack([f, c0, c1, t3], axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        pull = np.where(f[:, None] != 0.0, 100.0 * tonnes / f[:, None], np.nan)
        out = {"tonnes": tonnes, "mass_pull": pull}
        for e, g in head.items():
            u = units.grade_unit(e)
            ff = units.to_fraction(g, u)
            s = rec[e] / 100.0
            el = f * ff
            a = el * s[:, 0]
            b = el * s[:, 1]
            metal = np.stack([el, a, b, el - a - b], axis=1)
            q = metal / tonnes
            fr = np.where(tonnes > 0.0, q, np.where(metal > 1e-12, np.inf, 0.0))
            out[f"{e}_grade"] = fr / units.GRADE_UNITS[u]
            out[f"{e}_t"] = metal
            out[f"{e}_contained"] = metal * float(units.tonnes_to_contained(1.0, units.contained_unit(e)))
            out[f"{e}_distribution"] = np.where(el[:, None] != 0.0, 100.0 * metal / el[:, None], np.nan)
    return out


def _forward(feed, head, rec, con):
    return circuit.forward(
        xr.DataArray(feed, dims="row"),
        {e: xr.DataArray(v, dims="row", attrs={"units": units.grade_unit(e)}) for e, v in head.items()},
        {e: xr.DataArray(v, dims=("row", "concentrate"), coords=CON) for e, v in rec.items()},
        concentrate_t=xr.DataArray(con, dims=("row", "concentrate"), coords=CON),
    )


def _bits(x):
    return np.ascontiguousarray(x, dtype=float).view(np.int64)


@pytest.mark.parametrize("n", [1, 255, 256, 257, 1000])
def test_forward_outputs_equal_numpy_bit_for_bit(n):
    rng = np.random.default_rng(n)
    zero = (0,) if n < 10 else (0, 7, n - 1)
    feed, head, rec, con = _inputs(n, rng, zero_rows=zero)
    if n > 10:
        rec["Zn"][3] = 0.0  # no zinc to either concentrate: an element with zero metal
        con[5, 1] = 0.0  # a zinc concentrate without tonnes (and without metal)
        for e in head:
            rec[e][5, 1] = 0.0
    ds = _forward(feed, head, rec, con)
    want = _expected(feed, head, rec, con)
    assert list(ds.data_vars) == list(want)
    for v, w in want.items():
        assert ds[v].dims == ("row", "stream")
        assert np.array_equal(_bits(ds[v].values), _bits(w)), v
    assert np.isnan(ds["mass_pull"].values[zero[0]]).all()
    assert (ds["tonnes"].values[zero[0]] == 0).all()


def test_forward_outputs_are_c_ordered_and_cover_the_streams():
    feed, head, rec, con = _inputs(300, np.random.default_rng(3))
    ds = _forward(feed, head, rec, con)
    assert list(ds["stream"].values) == list(circuit.STREAMS)
    assert ds.attrs["elements"] == "Ag,Pb,Zn"
    for v in ds.data_vars:
        assert ds[v].values.flags.c_contiguous, v
    assert {ds[v].attrs["units"] for v in ("Ag_grade", "Pb_grade")} == {"g/t", "%"}


def test_forward_first_bad_row_is_reported_among_several():
    """The blocked pass only counts failed checks; the error names the first bad row, as before."""
    feed, head, rec, con = _inputs(600, np.random.default_rng(5))
    for i in (430, 300):  # two rows with a lead concentrate richer than galena
        con[i, 0] = feed[i] * units.to_fraction(head["Pb"][i], "%") * rec["Pb"][i, 0] / 100 / 0.95
    with pytest.raises(ValidationError, match=r"pbcon Pb grade: found .* at row 300 "):
        _forward(feed, head, rec, con)
    con[550] = feed[550] * 0.6  # more concentrate than feed: that check comes first
    with pytest.raises(ValidationError, match=r"concentrate tonnes: found .* t of concentrate from"):
        _forward(feed, head, rec, con)


# ---- variables=: a selection of the outputs, the same bits ---------------------------------


def _forward_kw(feed, head, rec, con, **kw):
    return circuit.forward(
        xr.DataArray(feed, dims="row"),
        {e: xr.DataArray(v, dims="row", attrs={"units": units.grade_unit(e)}) for e, v in head.items()},
        {e: xr.DataArray(v, dims=("row", "concentrate"), coords=CON) for e, v in rec.items()},
        concentrate_t=xr.DataArray(con, dims=("row", "concentrate"), coords=CON),
        **kw,
    )


def _assert_selection_of(sel, full, names):
    """``sel`` holds ``names`` of ``full`` in ``full``'s order, same bits, attrs, dims and coords."""
    assert list(sel.data_vars) == [v for v in full.data_vars if v in names]
    assert sel.attrs == full.attrs
    assert list(sel.coords) == list(full.coords)
    for c in full.coords:
        assert sel[c].equals(full[c]), c
    for v in sel.data_vars:
        assert sel[v].dims == full[v].dims, v
        assert sel[v].attrs == full[v].attrs, v
        assert sel[v].values.flags.c_contiguous, v
        assert np.array_equal(_bits(sel[v].values), _bits(full[v].values)), v


SELECTIONS = {
    "the kernel's quantities": ("tonnes", "Ag_t", "Pb_t", "Zn_t"),
    "out of order": ("Zn_t", "Ag_t", "tonnes", "Pb_t"),
    "mass_pull alone": ("mass_pull",),
    "one element": ("Zn_grade", "Zn_t", "Zn_contained", "Zn_distribution"),
    "one of each kind": ("Ag_distribution", "Pb_grade", "Zn_contained", "mass_pull"),
    "a name twice": ("Pb_grade", "Pb_grade"),
    "every name, backwards": tuple(reversed(circuit._variable_names(["Ag", "Pb", "Zn"]))),
}


@pytest.mark.parametrize("case", sorted(SELECTIONS))
def test_forward_variables_are_the_full_results_bit_for_bit(case):
    names = SELECTIONS[case]
    n = 600  # three blocks, the last one partial
    feed, head, rec, con = _inputs(n, np.random.default_rng(11), zero_rows=(0, 300, n - 1))
    rec["Zn"][3] = 0.0  # an element with zero metal: NaN distributions
    full = _forward(feed, head, rec, con)
    sel = _forward_kw(feed, head, rec, con, variables=names)
    _assert_selection_of(sel, full, set(names))
    # only the selection is in memory: every variable a view of one (wanted, 4 n) array
    assert sel[names[0]].values.base.shape == (len(sel.data_vars), 4 * n)
    # a generator is an iterable of names too
    assert list(_forward_kw(feed, head, rec, con, variables=iter(names)).data_vars) == list(sel.data_vars)


def test_forward_variables_over_named_dimensions():
    """Periods x draws x a third dim, coordinates and units other than the defaults: same bits."""
    rng = np.random.default_rng(2)
    period = {"period": ["2011Q1", "2011Q2", "2012Q1"]}
    ore = xr.DataArray(rng.uniform(15_000, 22_000, 3), dims="period", coords=period)
    draw = xr.DataArray(rng.uniform(0.8, 1.2, 5), dims="draw")
    lot = xr.DataArray(rng.uniform(0.9, 1.1, 2), dims="lot", coords={"lot": ["a", "b"]})
    head = {
        "Ag": (600.0 * draw * lot).assign_attrs(units="g/t"),
        "Pb": (0.10 * draw).assign_attrs(units="fraction"),
        "Zn": xr.DataArray(5.0e4, attrs={"units": "ppm"}),
    }
    rec = {
        e: xr.DataArray([p, z], dims="concentrate", coords=CON)
        for e, (p, z) in {"Ag": (70, 15), "Pb": (90, 3), "Zn": (6, 80)}.items()
    }
    pull = xr.DataArray([14.0, 9.0], dims="concentrate", coords=CON)
    full = circuit.forward(ore, head, rec, mass_pull=pull)
    assert full["Ag_t"].ndim == 4
    for names in (("tonnes", "Pb_t", "Zn_t", "Ag_t"), ("Ag_grade", "Zn_contained"), ("mass_pull",)):
        sel = circuit.forward(ore, head, rec, mass_pull=pull, variables=names)
        _assert_selection_of(sel, full, set(names))
        xr.testing.assert_identical(sel, full[list(sel.data_vars)])


BAD_VARIABLES = {
    "unknown name": (("tonnes", "Pb_tonnes"), r"found unknown names \['Pb_tonnes'\]"),
    "element not in head": (("Cu_t",), r"found unknown names \['Cu_t'\]"),
    "not a name": ((3,), r"found unknown names \[3\]"),
    "empty": ((), r"found an empty selection; give at least one of"),
    "empty list": ([], r"found an empty selection; give at least one of"),
    "a string": ("tonnes", r"found the string 'tonnes'; give an iterable of names, e\.g\. \('tonnes',\)"),
    "not iterable": (5, r"found int; give an iterable of names"),
}


@pytest.mark.parametrize("case", sorted(BAD_VARIABLES))
def test_forward_variables_refused(case):
    value, match = BAD_VARIABLES[case]
    feed, head, rec, con = _inputs(10, np.random.default_rng(4))
    with pytest.raises(ValidationError, match=r"^variables: " + match) as err:
        _forward_kw(feed, head, rec, con, variables=value)
    msg = str(err.value)
    assert "\n" not in msg
    assert msg.endswith("'Zn_grade', 'Zn_t', 'Zn_contained', 'Zn_distribution']")
    assert "['tonnes', 'mass_pull', 'Ag_grade', 'Ag_t', 'Ag_contained'" in msg


def _richer_than_galena(feed, head, rec, con):
    for i in (430, 300):
        con[i, 0] = feed[i] * units.to_fraction(head["Pb"][i], "%") * rec["Pb"][i, 0] / 100 / 0.95


def _more_concentrate_than_feed(feed, head, rec, con):
    con[550] = feed[550] * 0.6


def _tails_above_100_percent(feed, head, rec, con):
    # concentrates take nearly all the mass and little metal: the tails are mostly metal
    for e in head:
        rec[e][420] = (1.0, 1.0)
    con[420] = feed[420] * np.array([0.6, 0.3999])


BAD_STREAMS = {
    "richer than galena": (_richer_than_galena, r"pbcon Pb grade: found 95 % at row 300 "),
    "more concentrate than feed": (_more_concentrate_than_feed, r"concentrate tonnes: found 1258\.97 t"),
    "tails above 100 %": (_tails_above_100_percent, r"tails: elements add up to 97406\.6 % of its mass"),
}


@pytest.mark.parametrize("case", sorted(BAD_STREAMS))
@pytest.mark.parametrize("names", [("mass_pull",), ("Zn_distribution", "Ag_grade"), ("Pb_t",)])
def test_forward_variables_fail_as_the_full_result_does(case, names):
    """A selection without tonnes or metal (what the messages read) still raises the same message."""
    bad, match = BAD_STREAMS[case]
    feed, head, rec, con = _inputs(600, np.random.default_rng(5))
    bad(feed, head, rec, con)
    with pytest.raises(ValidationError, match=match) as full:
        _forward(feed, head, rec, con)
    with pytest.raises(ValidationError, match=match) as sel:
        _forward_kw(feed, head, rec, con, variables=names)
    assert str(sel.value) == str(full.value)
