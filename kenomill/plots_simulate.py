"""Figures of the Monte Carlo results: fan charts, histograms and the what-if surface (PNG)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import xarray as xr

from kenomill import units, variables
from kenomill.io import atomic_path

#: charts show tonnes of ore in kt (the table of variables keeps t for the tables)
_SHOWN = {"ore_processed_t": "kt"}
_LABELS = {
    n: (
        variables.get(n).label,
        _SHOWN.get(n, variables.get(n).shown_units),
        units.display_factor(variables.get(n).units, _SHOWN.get(n, variables.get(n).shown_units)),
    )
    for n in ("ag_oz", "pb_lb", "zn_lb", "ore_processed_t", "rec_ag_pct", "rec_pb_pct", "rec_zn_pct")
}


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> Path:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    _plt().close(fig)
    return path


FAN_VARIABLES = ("ag_oz", "pb_lb", "zn_lb", "rec_ag_pct", "rec_pb_pct", "rec_zn_pct")


def _reported_points(ds: xr.Dataset):
    """Reported quarters to show as points: labels before the horizon, and (label, x) pairs."""
    from kenomill.data import QUARTERS, reported_periods

    before = [q for q in str(ds.attrs.get("reported_before", "")).split(", ") if q]
    labels = [*before, *map(str, ds.quarter.values)]
    shown = [q for q in labels if q in QUARTERS]
    return before, labels, (reported_periods().sel(period=shown) if shown else None)


def fan_chart(ds: xr.Dataset, path, variables=FAN_VARIABLES):
    """Quarterly P10-P90 and P25-P75 bands with the median, one panel per variable.

    Reported quarters (the releases' figures) inside the horizon, and those before its
    start that a scenario counts (``start_after_reported``), are drawn as points.
    """
    plt = _plt()
    n = len(variables)
    fig, axes = plt.subplots(2, (n + 1) // 2, figsize=(4.2 * ((n + 1) // 2), 7), squeeze=False)
    before, labels, rep = _reported_points(ds)
    x = np.arange(ds.sizes["quarter"]) + len(before)
    for ax, v in zip(axes.ravel(), variables, strict=False):
        name, unit, f = _LABELS.get(v, (v, ds[v].attrs.get("units", ""), 1.0))
        q = ds[v].quantile([0.1, 0.25, 0.5, 0.75, 0.9], dim="draw").values * f
        ax.fill_between(x, q[0], q[4], alpha=0.25, color="C0", label="P10-P90")
        ax.fill_between(x, q[1], q[3], alpha=0.45, color="C0", label="P25-P75")
        ax.plot(x, q[2], color="C0", lw=2, label="median")
        if rep is not None and v in rep:
            xr_ = [labels.index(str(p)) for p in rep.period.values]
            ax.plot(xr_, rep[v].values * f, "o", color="k", ms=5, label="reported (Alexco releases)")
        ax.set_xticks(np.arange(len(labels)), labels, rotation=45, fontsize=8)
        ax.set_title(f"{name} per quarter [{unit}]", fontsize=10)
        ax.grid(alpha=0.3)
    for ax in axes.ravel()[n:]:
        ax.set_visible(False)
    axes.ravel()[0].legend(fontsize=8)
    fig.suptitle(f"{ds.attrs.get('scenario', '')}: {ds.sizes['draw']} draws, seed {ds.attrs.get('seed', '')}")
    fig.tight_layout()
    return _save(fig, Path(path))


def histograms(yr: xr.Dataset, path, targets=()):
    """Histograms of annual Ag oz, Pb lb, Zn lb per year, with target ranges shaded."""
    plt = _plt()
    variables = ("ag_oz", "pb_lb", "zn_lb")
    years = yr.year.values
    fig, axes = plt.subplots(len(years), 3, figsize=(12, 2.8 * len(years)), squeeze=False)
    for i, y in enumerate(years):
        for j, v in enumerate(variables):
            ax = axes[i, j]
            name, unit, f = _LABELS[v]
            vals = yr[v].sel(year=y).values * f
            ax.hist(vals, bins=40, color="C0", alpha=0.8)
            for p, ls in ((10, ":"), (50, "-"), (90, ":")):
                ax.axvline(np.percentile(vals, p), color="k", ls=ls, lw=1)
            for t in targets:
                if t.variable == v and t.year == int(y):
                    lo = (t.min if t.min is not None else vals.min() / f) * f
                    hi = (t.max if t.max is not None else vals.max() / f) * f
                    ax.axvspan(lo, hi, color="C2", alpha=0.2, label=t.name)
                    ax.legend(fontsize=7)
            q = int(yr.quarters.sel(year=y))
            ax.set_title(f"{name} {y} [{unit}]" + ("" if q == 4 else f" ({q} quarters)"), fontsize=10)
    fig.suptitle(f"{yr.attrs.get('scenario', '')}: annual production (lines: P10, P50, P90)")
    fig.tight_layout()
    return _save(fig, Path(path))


def whatif_surface(wi: xr.Dataset, path):
    """Median Ag oz, Ag and Pb recovery over throughput x availability, and the Ag P10-P90 width."""
    plt = _plt()
    panels = (("ag_oz", "p50"), ("rec_ag_pct", "p50"), ("rec_pb_pct", "p50"), ("ag_oz", "spread"))
    fig, axes = plt.subplots(1, 4, figsize=(18, 4.2))
    a = wi.availability.values
    t = wi.tpd.values
    for ax, (v, stat) in zip(axes, panels, strict=True):
        name, unit, f = _LABELS[v]
        if stat == "spread":
            z = (wi[v].sel(stat="p90") - wi[v].sel(stat="p10")).values * f
            title = f"{name}: P90 - P10 [{unit}]"
        else:
            z = wi[v].sel(stat=stat).values * f
            title = f"{name}, median [{unit}]"
        im = ax.pcolormesh(a, t, z, shading="nearest", cmap="viridis")
        cs = ax.contour(a, t, z, colors="w", linewidths=0.7)
        ax.clabel(cs, fontsize=7, fmt="%.3g")
        fig.colorbar(im, ax=ax)
        ax.set_xlabel("availability [-]")
        ax.set_ylabel("calendar throughput target [t/d]")
        ax.set_title(title, fontsize=10)
    fig.suptitle(
        f"what-if ({wi.attrs.get('scenario', '')}, year {wi.attrs.get('year', '')}, "
        f"{wi.attrs.get('draws', '')} draws per point)"
    )
    fig.tight_layout()
    return _save(fig, Path(path))
