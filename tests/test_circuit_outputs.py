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
