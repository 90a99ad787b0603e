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

from kenomill import circuit, units
from kenomill.data import reported_periods

METALS = {  # element -> (contained column, recovery column, head column, contributions)
    "Ag": ("ag_oz", "rec_ag_pct", "head_ag_gpt", (("pbcon_t", "pbcon_ag_gpt"), ("zncon_t", "zncon_ag_gpt"))),
    "Pb": ("pb_lb", "rec_pb_pct", "head_pb_pct", (("pbcon_t", "pbcon_pb_pct"),)),
    "Zn": ("zn_lb", "rec_zn_pct", "head_zn_pct", (("zncon_t", "zncon_zn_pct"),)),
}
QUANTITIES = ("ag_oz", "pb_lb", "zn_lb", "rec_ag_pct", "rec_pb_pct", "rec_zn_pct")


def _half_rel(ds, col):
    """Half a unit of the last printed digit, relative to the printed value."""
    return 0.5 * ds[col + "_resolution"].values / np.abs(ds[col].values)


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
    for h in num:
        hi, lo = hi / (1 - h), lo / (1 + h)
    for h in den:
        hi, lo = hi * (1 + h), lo * (1 - h)
    if sums:
        total = sum(v for v, _, _ in sums)
        hi = hi * total / sum(v * (1 - ha) * (1 - hb) for v, ha, hb in sums)
        lo = lo * total / sum(v * (1 + ha) * (1 + hb) for v, ha, hb in sums)
    return 100 * np.maximum(hi - 1, 1 - lo)


def balance_table(ds: xr.Dataset | None = None) -> xr.Dataset:
    """Reported vs recomputed contained metal and recoveries, per period.

    Returns
    -------
    xarray.Dataset
        Dimensions (period, quantity) with quantity in ag_oz, pb_lb, zn_lb, rec_ag_pct,
        rec_pb_pct, rec_zn_pct; variables ``reported``, ``via_feed``, ``via_concentrate``,
        ``diff_feed_pct``, ``diff_concentrate_pct`` (recomputed / reported - 1, in %),
        ``tolerance_feed_pct``, ``tolerance_concentrate_pct`` (per route) and ``closes``
        (each difference within its route's tolerance).
    """
    ds = reported_periods() if ds is None else ds
    # a period of a user's file may leave figures empty: balance the periods whose feed and
    # concentrate figures are all given, and mark the others as not checked
    needed = ("ore_processed_t", *(m[2] for m in METALS.values()), *(m[1] for m in METALS.values()))
    needed += ("pbcon_t", "zncon_t")
    complete = np.logical_and.reduce([np.isfinite(ds[c].values) for c in needed])
    if not complete.all():
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
        return out
    els = list(METALS)
    head = {
        e: xr.DataArray(ds[METALS[e][2]].values, dims="period", attrs={"units": units.grade_unit(e)})
        for e in els
    }
    zero = np.zeros(ds.sizes["period"])
    rec = {}
    for e in els:
        r = ds[METALS[e][1]].values
        pair = (zero, r) if e == "Zn" else (r, zero)  # Zn recovery is to the zinc concentrate
        rec[e] = xr.DataArray(np.stack(pair, axis=1), dims=("period", "concentrate"))
    con_t = xr.DataArray(np.stack([ds.pbcon_t.values, ds.zncon_t.values], 1), dims=("period", "concentrate"))
    fw = circuit.forward(
        xr.DataArray(ds.ore_processed_t.values, dims="period"), head, rec, concentrate_t=con_t
    )
    feed_metal_t = {e: fw[f"{e}_t"].sel(stream="feed").values for e in els}
    via_feed_t = {e: fw[f"{e}_t"].sel(stream=["pbcon", "zncon"]).sum("stream").values for e in els}
    via_con_t = {
        e: sum(ds[t].values * units.to_fraction(ds[g].values, ds[g].attrs["units"]) for t, g in METALS[e][3])
        for e in els
    }

    names = ("reported", "via_feed", "via_concentrate", "tolerance_feed_pct", "tolerance_concentrate_pct")
    rows: dict[str, dict[str, np.ndarray]] = {q: {} for q in names}
    for e in els:
        cm, rc, hd, contrib = METALS[e]
        cu = units.contained_unit(e)
        rows["reported"][cm] = ds[cm].values
        rows["via_feed"][cm] = units.tonnes_to_contained(via_feed_t[e], cu)
        rows["via_concentrate"][cm] = units.tonnes_to_contained(via_con_t[e], cu)
        rep_t = units.contained_to_tonnes(ds[cm].values, cu)
        rows["reported"][rc] = ds[rc].values
        rows["via_feed"][rc] = 100 * rep_t / feed_metal_t[e]
        rows["via_concentrate"][rc] = 100 * via_con_t[e] / feed_metal_t[e]
        h_ore, h_head, h_rec, h_metal = (_half_rel(ds, c) for c in ("ore_processed_t", hd, rc, cm))
        terms = [(ds[t].values * ds[g].values, _half_rel(ds, t), _half_rel(ds, g)) for t, g in contrib]
        tol = rows["tolerance_feed_pct"], rows["tolerance_concentrate_pct"]
        # metal = ore x head x recovery = sum of concentrate tonnes x grade
        tol[0][cm] = _worst_case_pct(num=(h_ore, h_head, h_rec), den=(h_metal,))
        tol[1][cm] = _worst_case_pct(num=(), den=(h_metal,), sums=terms)
        # recovery = metal / (ore x head), metal as reported or from the concentrates
        tol[0][rc] = _worst_case_pct(num=(h_metal,), den=(h_ore, h_head, h_rec))
        tol[1][rc] = _worst_case_pct(num=(), den=(h_ore, h_head, h_rec), sums=terms)
    out = xr.Dataset(coords={"period": ds.period.values, "quantity": list(QUANTITIES)})
    unit_of = {q: ds[q].attrs["units"] for q in QUANTITIES}
    for name, d in rows.items():
        out[name] = (("period", "quantity"), np.stack([d[q] for q in QUANTITIES], axis=1))
    out["diff_feed_pct"] = 100 * (out.via_feed / out.reported - 1)
    out["diff_concentrate_pct"] = 100 * (out.via_concentrate / out.reported - 1)
    out["closes"] = (abs(out.diff_feed_pct) <= out.tolerance_feed_pct) & (
        abs(out.diff_concentrate_pct) <= out.tolerance_concentrate_pct
    )
    out["checked"] = out.reported.notnull() & out.via_feed.notnull() & out.via_concentrate.notnull()
    out["units"] = ("quantity", [unit_of[q] for q in QUANTITIES])
    attrs = {
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
            "largest |diff_feed_pct| that printed rounding alone can cause (exact worst case)",
        ),
        "tolerance_concentrate_pct": (
            "%",
            "largest |diff_concentrate_pct| that printed rounding alone can cause (exact worst case)",
        ),
        "closes": ("1", "each route within its rounding tolerance"),
        "checked": ("1", "the period gives every figure both routes need"),
        "units": ("", "unit of each quantity"),
    }
    for k, (u, ln) in attrs.items():
        out[k].attrs.update({"units": u, "long_name": ln})
    out.attrs["source"] = ds.attrs["sources"]
    return out


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
    ]
    df = table[cols].to_dataframe().reset_index()
    return df[["period", "quantity", *cols]]
