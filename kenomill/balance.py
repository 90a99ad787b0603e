"""Do the reported figures close? Contained metal and recoveries by two independent routes.

For every period and metal:

* feed route: ore processed [t] x head grade x reported recovery, through the circuit
  kernel (:func:`kenomill.circuit.forward`);
* concentrate route: concentrate tonnes x concentrate grade (silver from both
  concentrates, lead from the lead concentrate, zinc from the zinc concentrate).

Each is compared with the reported contained metal, and the recovery implied by each
with the reported recovery. The ``tolerance_feed_pct`` and ``tolerance_concentrate_pct``
columns are, for each route, the largest relative difference that the printed rounding
alone can cause (half a unit of the last printed digit of every figure involved, exact
worst case); a difference beyond it cannot be rounding.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import xarray as xr

from kenomill import circuit, units, variables
from kenomill.data import reported_periods

#: element -> its reported figures (:data:`kenomill.variables.METAL_FIGURES`)
METALS = variables.METAL_FIGURES
QUANTITIES = ("ag_oz", "pb_lb", "zn_lb", "rec_ag_pct", "rec_pb_pct", "rec_zn_pct")


def _half_rel(ds, col):
    """Half a unit of the last printed digit, relative to the printed value (inf for a printed 0)."""
    half = 0.5 * ds[col + "_resolution"].values
    p = np.abs(ds[col].values)
    return np.divide(half, p, out=np.full(p.shape, np.inf), where=p > 0)


def _bounds(ds, col, to=lambda v: v):
    """(low, high) of what a printed figure can be: value -/+ half its last digit, not below 0."""
    p = ds[col].values
    half = 0.5 * ds[col + "_resolution"].values
    return to(np.maximum(p - half, 0.0)), to(p + half)


def _div_bounds(num, den):
    """Bounds of num / den from the bounds of each (den's low bound may be 0: then unbounded)."""
    lo = np.divide(num[0], den[1], out=np.zeros_like(num[0]), where=den[1] > 0)
    hi = np.divide(num[1], den[0], out=np.full_like(num[1], np.inf), where=den[0] > 0)
    return lo, hi


def _worst_case_pct(num, den, sums=()):
    """Largest |recomputed / reported - 1| [%] that printed rounding alone can cause.

    The recomputed figure is the product of printed factors ``num`` (and, if given, of a
    sum of printed products ``sums`` = [(value, h_a, h_b), ...]) divided by the printed
    factors ``den`` (the reported figure among them); each argument is the relative
    half-unit h = 0.5 x resolution / |printed|. With true values consistent and every
    printed value p = x + d, |d| <= h |p|, a factor p/x lies in [1/(1+h), 1/(1-h)] and
    x/p in [1-h, 1+h]; a sum of positive terms lies between the terms' extremes
    weighted by the terms. Exact, not first order: the first-order sum of the h's
    understates the upper bound by about the products h_i h_j (0.03 pp for a 5.0 %
    head grade and a 56 % recovery).
    """
    hi = np.ones_like(np.asarray(den[0], dtype=float))
    lo = hi.copy()
    # a printed 0 (h = inf) or a value below its own half unit (h >= 1) bounds no ratio: the
    # tolerance is infinite there and balance_table compares such figures by their bounds
    hs = [np.asarray(h) for h in (*num, *den)] + [np.asarray(h) for _, ha, hb in sums for h in (ha, hb)]
    unbounded = np.logical_or.reduce([h >= 1 for h in hs])

    def ok(h):
        return np.where(np.asarray(h) >= 1, 0.0, h)

    num, den = [ok(h) for h in num], [ok(h) for h in den]
    sums = [(v, ok(ha), ok(hb)) for v, ha, hb in sums]
    for h in num:
        hi, lo = hi / (1 - h), lo / (1 + h)
    for h in den:
        hi, lo = hi * (1 + h), lo * (1 - h)
    if sums:
        total = sum(v for v, _, _ in sums)
        with np.errstate(invalid="ignore", divide="ignore"):  # all terms 0: handled by bounds
            hi = hi * total / sum(v * (1 - ha) * (1 - hb) for v, ha, hb in sums)
            lo = lo * total / sum(v * (1 + ha) * (1 + hb) for v, ha, hb in sums)
    return np.where(unbounded, np.inf, 100 * np.maximum(hi - 1, 1 - lo))


def balance_table(ds: xr.Dataset | None = None) -> xr.Dataset:
    """Reported vs recomputed contained metal and recoveries, per period.

    Returns
    -------
    xarray.Dataset
        Dimensions (period, quantity) with quantity in ag_oz, pb_lb, zn_lb, rec_ag_pct,
        rec_pb_pct, rec_zn_pct; variables ``reported``, ``via_feed``, ``via_concentrate``,
        ``diff_feed_pct``, ``diff_concentrate_pct`` (recomputed / reported - 1, in %),
        ``tolerance_feed_pct``, ``tolerance_concentrate_pct`` (per route), ``closes``
        (each difference within its route's tolerance), ``checked`` and ``note``.

        A zero head grade is legal data (no such metal in the feed): that metal's
        recovery is undefined, ``via_*`` NaN, ``checked`` False and ``note`` says so.
        Where a printed figure is 0 its relative rounding bounds nothing: the tolerance
        is inf and the figure closes when the bounds of the printed values (value -/+
        half its last digit) of the route and of the reported figure overlap.
    """
    ds = reported_periods() if ds is None else ds
    # a period of a user's file may leave figures empty: balance the periods whose feed and
    # concentrate figures are all given, and mark the others as not checked
    needed = ("ore_processed_t", *(m.head for m in METALS.values()), *(m.recovery for m in METALS.values()))
    needed += ("pbcon_t", "zncon_t")
    complete = np.logical_and.reduce([np.isfinite(ds[c].values) for c in needed])
    if not complete.all():
        return _balance_complete_periods(ds, complete, needed)
    feed_metal_t, via_feed_t, via_con_t = _routes_t(ds)
    rows: dict[str, dict[str, np.ndarray]] = {q: {} for q in _ROWS}
    # where a printed figure is 0 (a mill without zinc, say) relative rounding bounds nothing:
    # those figures are compared by the bounds of what each printed value can be
    bound_ok: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    undefined: dict[str, np.ndarray] = {}
    for e, m in METALS.items():
        cu = units.contained_unit(e)
        rows["reported"][m.contained] = ds[m.contained].values
        rows["via_feed"][m.contained] = units.tonnes_to_contained(via_feed_t[e], cu)
        rows["via_concentrate"][m.contained] = units.tonnes_to_contained(via_con_t[e], cu)
        rep_t = units.contained_to_tonnes(ds[m.contained].values, cu)
        rows["reported"][m.recovery] = ds[m.recovery].values
        # a zero head grade is legal data (no such metal in the feed): its recovery is undefined
        feed = feed_metal_t[e]
        nofeed = ~(feed > 0)
        undefined[m.recovery] = nofeed
        rows["via_feed"][m.recovery] = np.divide(
            100 * rep_t, feed, out=np.full(feed.shape, np.nan), where=~nofeed
        )
        rows["via_concentrate"][m.recovery] = np.divide(
            100 * via_con_t[e], feed, out=np.full(feed.shape, np.nan), where=~nofeed
        )
        _tolerances(ds, m, rows["tolerance_feed_pct"], rows["tolerance_concentrate_pct"])
        bound_ok.update(_bounds_overlap(ds, m))
    return _assemble(ds, rows, bound_ok, undefined)


#: the rows of the table per (period, quantity), before the differences and verdicts
_ROWS = ("reported", "via_feed", "via_concentrate", "tolerance_feed_pct", "tolerance_concentrate_pct")


def _balance_complete_periods(ds: xr.Dataset, complete: np.ndarray, needed: tuple[str, ...]) -> xr.Dataset:
    """The table of the periods that give every figure, the others as rows not checked."""
    if not complete.any():
        from kenomill.errors import ValidationError

        raise ValidationError(
            f"balance: no period gives all of {', '.join(needed)}; found periods "
            f"{', '.join(map(str, ds.period.values))} with some empty"
        )
    part = balance_table(ds.isel(period=np.flatnonzero(complete)))
    out = part.reindex(period=ds.period.values)
    out["closes"] = out.closes.fillna(False).astype(bool)
    out["checked"] = out.reported.notnull() & xr.DataArray(
        complete, dims="period", coords={"period": ds.period.values}
    )
    out["units"] = part["units"]
    out["checked"].attrs = part["checked"].attrs
    missing = "not checked: the period does not give every figure both routes need"
    out["note"] = out.note.fillna(missing).astype(str)
    out["note"].attrs = part["note"].attrs
    return out


def _routes_t(ds: xr.Dataset):
    """Per element: metal in the feed, and in the concentrates by each route [t]."""
    head = {
        e: xr.DataArray(ds[m.head].values, dims="period", attrs={"units": units.grade_unit(e)})
        for e, m in METALS.items()
    }
    zero = np.zeros(ds.sizes["period"])
    rec = {}
    for e, m in METALS.items():
        r = ds[m.recovery].values
        pair = (zero, r) if e == "Zn" else (r, zero)  # Zn recovery is to the zinc concentrate
        rec[e] = xr.DataArray(np.stack(pair, axis=1), dims=("period", "concentrate"))
    con_t = xr.DataArray(np.stack([ds.pbcon_t.values, ds.zncon_t.values], 1), dims=("period", "concentrate"))
    fw = circuit.forward(
        xr.DataArray(ds.ore_processed_t.values, dims="period"), head, rec, concentrate_t=con_t
    )
    feed_metal_t = {e: fw[f"{e}_t"].sel(stream="feed").values for e in METALS}
    via_feed_t = {e: fw[f"{e}_t"].sel(stream=["pbcon", "zncon"]).sum("stream").values for e in METALS}
    via_con_t = {
        e: sum(
            ds[t].values * units.to_fraction(ds[g].values, ds[g].attrs["units"]) for t, g in m.concentrates
        )
        for e, m in METALS.items()
    }
    return feed_metal_t, via_feed_t, via_con_t


def _tolerances(ds: xr.Dataset, m: variables.MetalFigures, tol_feed: dict, tol_con: dict) -> None:
    """Worst-case rounding tolerance [%] of each route, for the metal's contained and recovery rows."""
    h_ore, h_head, h_rec, h_metal = (
        _half_rel(ds, c) for c in ("ore_processed_t", m.head, m.recovery, m.contained)
    )
    terms = [(ds[t].values * ds[g].values, _half_rel(ds, t), _half_rel(ds, g)) for t, g in m.concentrates]
    # metal = ore x head x recovery = sum of concentrate tonnes x grade
    tol_feed[m.contained] = _worst_case_pct(num=(h_ore, h_head, h_rec), den=(h_metal,))
    tol_con[m.contained] = _worst_case_pct(num=(), den=(h_metal,), sums=terms)
    # recovery = metal / (ore x head), metal as reported or from the concentrates
    tol_feed[m.recovery] = _worst_case_pct(num=(h_metal,), den=(h_ore, h_head, h_rec))
    tol_con[m.recovery] = _worst_case_pct(num=(), den=(h_ore, h_head, h_rec), sums=terms)


def _overlap(a, b):
    return (a[0] <= b[1]) & (a[1] >= b[0])


def _bounds_overlap(ds: xr.Dataset, m: variables.MetalFigures) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Whether the bounds of each route's printed figures overlap those of the reported one."""
    ore_b = _bounds(ds, "ore_processed_t")
    head_b = _bounds(ds, m.head, lambda v: units.to_fraction(v, ds[m.head].attrs["units"]))
    rec_b = _bounds(ds, m.recovery, lambda v: v / 100.0)
    cu = units.contained_unit(m.element)
    metal_b = _bounds(ds, m.contained, lambda v: units.contained_to_tonnes(v, cu))
    feed_b = (ore_b[0] * head_b[0], ore_b[1] * head_b[1])
    con_b = [np.zeros(ds.sizes["period"]), np.zeros(ds.sizes["period"])]
    for t, g in m.concentrates:
        tb = _bounds(ds, t)
        gb = _bounds(ds, g, lambda v, g=g: units.to_fraction(v, ds[g].attrs["units"]))
        con_b[0], con_b[1] = con_b[0] + tb[0] * gb[0], con_b[1] + tb[1] * gb[1]
    return {
        m.contained: (
            _overlap((feed_b[0] * rec_b[0], feed_b[1] * rec_b[1]), metal_b),
            _overlap(tuple(con_b), metal_b),
        ),
        m.recovery: (
            _overlap(_div_bounds(metal_b, feed_b), rec_b),
            _overlap(_div_bounds(con_b, feed_b), rec_b),
        ),
    }


def _assemble(ds: xr.Dataset, rows: dict, bound_ok: dict, undefined: dict) -> xr.Dataset:
    """The table: rows stacked by quantity, differences, verdicts, notes and attributes."""
    out = xr.Dataset(coords={"period": ds.period.values, "quantity": list(QUANTITIES)})
    unit_of = {q: ds[q].attrs["units"] for q in QUANTITIES}
    for name, d in rows.items():
        out[name] = (("period", "quantity"), np.stack([d[q] for q in QUANTITIES], axis=1))
    undef = np.stack([undefined.get(q, np.zeros(ds.sizes["period"], bool)) for q in QUANTITIES], axis=1)
    rep = out.reported.values
    notes = np.full(rep.shape, "", dtype=object)
    for route, tol_name, k in (
        ("feed", "tolerance_feed_pct", 0),
        ("concentrate", "tolerance_concentrate_pct", 1),
    ):
        via = out[f"via_{route}"].values
        # a relative difference to a reported 0 exists only when the recomputed figure is 0 too
        diff = np.divide(100 * via, rep, out=np.full(rep.shape, np.nan), where=rep != 0) - 100
        diff = np.where((rep == 0) & (via == 0), 0.0, diff)
        out[f"diff_{route}_pct"] = (("period", "quantity"), diff)
        by_bounds = ~np.isfinite(out[tol_name].values)
        by_bounds_ok = np.stack([bound_ok[q][k] for q in QUANTITIES], axis=1)
        ok = np.where(by_bounds, by_bounds_ok, np.abs(diff) <= out[tol_name].values)
        out[f"_ok_{route}"] = (("period", "quantity"), ok & ~undef)
        msg = f"{route} route compared by the bounds of its printed figures (a printed 0)"
        notes = np.where(by_bounds & ~undef & (notes == ""), msg, notes)
    for j, q in enumerate(QUANTITIES):
        if q.startswith("rec_"):
            e = q[4:6].capitalize()
            notes[undef[:, j], j] = f"recovery undefined: no {e} in the feed (head grade or ore 0)"
    out["closes"] = out._ok_feed & out._ok_concentrate
    out = out.drop_vars(["_ok_feed", "_ok_concentrate"])
    out["checked"] = out.reported.notnull() & ~xr.DataArray(undef, dims=("period", "quantity"))
    out["note"] = (("period", "quantity"), notes.astype(str))
    out["units"] = ("quantity", [unit_of[q] for q in QUANTITIES])
    for name, (u, ln) in _ATTRS.items():
        out[name].attrs.update({"units": u, "long_name": ln})
    out.attrs["source"] = ds.attrs["sources"]
    return out


_ATTRS = {
    "reported": ("as printed", "reported figure"),
    "via_feed": (
        "as reported",
        "recomputed from ore processed x head grade x recovery "
        "(recoveries: reported contained metal / feed metal)",
    ),
    "via_concentrate": ("as reported", "recomputed from concentrate tonnes x concentrate grade"),
    "diff_feed_pct": ("%", "via_feed / reported - 1"),
    "diff_concentrate_pct": ("%", "via_concentrate / reported - 1"),
    "tolerance_feed_pct": (
        "%",
        "largest |diff_feed_pct| that printed rounding alone can cause (exact worst case; "
        "inf where a printed 0 bounds no ratio: compared by bounds, see note)",
    ),
    "tolerance_concentrate_pct": (
        "%",
        "largest |diff_concentrate_pct| that printed rounding alone can cause (exact worst case; "
        "inf where a printed 0 bounds no ratio: compared by bounds, see note)",
    ),
    "closes": ("1", "each route within its rounding tolerance"),
    "checked": ("1", "the period gives every figure both routes need, and the figure is defined"),
    "note": ("", "why a figure is not checked or how it was compared (empty: relative tolerance)"),
    "units": ("", "unit of each quantity"),
}


def balance_frame(table: xr.Dataset) -> pd.DataFrame:
    """The balance table as a tidy DataFrame, one row per (period, quantity)."""
    cols = [
        "reported",
        "via_feed",
        "via_concentrate",
        "diff_feed_pct",
        "diff_concentrate_pct",
        "tolerance_feed_pct",
        "tolerance_concentrate_pct",
        "closes",
        "units",
        "checked",
        "note",
    ]
    df = table[cols].to_dataframe().reset_index()
    return df[["period", "quantity", *cols]]
