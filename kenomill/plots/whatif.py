"""Figures of the throughput x availability what-if: surface, trade-off and NSR."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import xarray as xr

from kenomill import variables
from kenomill.plots._common import METALS, RECOVERIES, nearest, plt

#: the availability the trade-off and NSR figures show by default: the calibration's availability
#: prior (96 % and 90 % reported)
BASELINE_AVAILABILITY = 0.92


#: the report's surface: the median yearly metal
METAL_PANELS = (("ag_oz", "p50"), ("pb_lb", "p50"), ("zn_lb", "p50"))


def _panel_values(w: xr.Dataset, v: str, stat: str) -> tuple[np.ndarray, str]:
    """Values of one panel in shown units, and its colour-bar label."""
    var = variables.get(v)
    f = var.display_factor
    per = "/year" if var.extent == "extensive" else ""
    if stat == "spread":
        return (
            w[v].sel(stat="p90") - w[v].sel(stat="p10")
        ).values * f, f"{var.label}: P90 - P10 [{var.shown_units}{per}]"
    what = "median" if stat == "p50" else stat
    return w[v].sel(stat=stat).values * f, f"{var.label}, {what} [{var.shown_units}{per}]"


def whatif_surface(w: xr.Dataset, panels: Sequence[tuple[str, str]] = METAL_PANELS):
    """Yearly figures over the throughput x availability grid of :func:`kenomill.simulate.whatif`,
    one panel per (variable, statistic); the statistic ``"spread"`` is P90 - P10."""
    fig, axes = plt.subplots(
        1, len(panels), figsize=(4.4 * len(panels), 4.3), layout="constrained", squeeze=False
    )
    tpd = w.tpd.values
    av = 100 * w.availability.values
    for ax, (v, stat) in zip(axes[0], panels, strict=True):
        z, label = _panel_values(w, v, stat)
        im = ax.pcolormesh(tpd, av, z.T, shading="nearest", cmap="viridis")
        if len(tpd) > 1 and len(av) > 1:
            cs = ax.contour(tpd, av, z.T, colors="w", linewidths=0.8, levels=6)
            ax.clabel(cs, fontsize=7, fmt="%.3g")
        fig.colorbar(im, ax=ax, label=label)
        ax.set_xlabel("calendar throughput [t/d]")
        ax.set_ylabel("mill availability [%]")
        ax.set_title(variables.get(v).label + (" per year" if variables.get(v).extent == "extensive" else ""))
    fig.suptitle(
        f"What-if surface, {w.attrs.get('scenario', '')} ore, year {w.attrs.get('year', '')} "
        f"({w.attrs.get('draws', '')} draws per point)"
    )
    return fig


def whatif_tradeoff(
    w: xr.Dataset,
    availability: float = BASELINE_AVAILABILITY,
    calibrated_tpd: tuple[float, float] | None = None,
):
    """Recovery lost and metal gained against throughput, at one availability, with P10-P90 bands."""
    a = nearest(w.availability.values, availability)
    s = w.sel(availability=a)
    tpd = s.tpd.values
    fig, axes = plt.subplots(2, 3, figsize=(13, 7), layout="constrained", sharex=True)
    for j, ((rc, el), (v, name, u, sc)) in enumerate(zip(RECOVERIES, METALS, strict=True)):
        ax = axes[0, j]
        ax.fill_between(
            tpd, s[rc].sel(stat="p10"), s[rc].sel(stat="p90"), color="C1", alpha=0.3, label="P10-P90"
        )
        ax.plot(tpd, s[rc].sel(stat="p50"), "o-", color="C1", label="median")
        ax.set_ylabel(f"{el} recovery [%]")
        med = s[rc].sel(stat="p50").values
        change = float(med[-1] - med[0])
        title = (
            f"{el} recovery: no throughput effect in this model"
            if abs(change) < 0.1
            else f"{el} recovery {'falls' if change < 0 else 'rises'} as throughput rises"
        )
        ax.set_title(title, fontsize=10)
        if calibrated_tpd:
            ax.axvspan(*calibrated_tpd, color="0.9", zorder=0, label="range calibrated on")
        ax.legend(fontsize=7)
        ax = axes[1, j]
        ax.fill_between(
            tpd, s[v].sel(stat="p10") * sc, s[v].sel(stat="p90") * sc, color="C0", alpha=0.3, label="P10-P90"
        )
        ax.plot(tpd, s[v].sel(stat="p50") * sc, "o-", color="C0", label="median")
        ax.set_ylabel(f"{name} [{u}/year]")
        ax.set_xlabel("calendar throughput [t/d]")
        if calibrated_tpd:
            ax.axvspan(*calibrated_tpd, color="0.9", zorder=0)
        ax.set_title(f"...but more {name} is produced", fontsize=10)
        ax.legend(fontsize=7)
    fig.suptitle(
        f"Throughput trade-off at {100 * a:.0f} % availability ({w.attrs.get('scenario', '')} ore, "
        f"year {w.attrs.get('year', '')})"
    )
    return fig


def whatif_nsr(w: xr.Dataset, availability: float = BASELINE_AVAILABILITY):
    """NSR per calendar day and per tonne of ore against throughput, P10-P90 bands, at one
    availability; the calibrated range shaded, the extrapolated rates drawn dashed."""
    a = nearest(w.availability.values, availability)
    s = w.sel(availability=a)
    tpd = s.tpd.values
    ex = np.asarray(w.extrapolated.values, dtype=bool)
    lo, hi = w.attrs.get("calibrated_tpd", [np.nan, np.nan])
    fig, axes = plt.subplots(1, 2, figsize=(13, 4.3), layout="constrained", sharex=True)
    for ax, (v, scale, label) in zip(
        axes,
        (
            ("nsr_usd_per_day", 1e-3, "NSR per calendar day [kUS$/d]"),
            ("nsr_usd_per_t_ore", 1.0, "NSR [US$/t ore]"),
        ),
        strict=True,
    ):
        p10, p50, p90 = (s[v].sel(stat=q).values * scale for q in ("p10", "p50", "p90"))
        ax.fill_between(tpd, p10, p90, color="C2", alpha=0.3, label="P10-P90 (posterior draws)")
        inside = ~ex
        ax.plot(tpd, np.where(inside, p50, np.nan), "o-", color="C2", label="median, calibrated range")
        ax.plot(tpd, p50, ":", color="C2")
        ax.plot(tpd[ex], p50[ex], "o", mfc="white", color="C2", label="median, extrapolation")
        if np.isfinite(lo):
            ax.axvspan(lo, hi, color="0.9", zorder=0, label=f"calibrated {lo:.0f}-{hi:.0f} t/d")
        ax.set_xlabel("calendar throughput [t/d]")
        ax.set_ylabel(label)
        ax.legend(fontsize=7)
    best = float(s.best_tpd)
    if np.isfinite(best):
        y = float(s.best_nsr_usd_per_day.sel(stat="mean")) * 1e-3
        axes[0].plot([best], [y], "*", ms=14, color="C3", label="largest expected NSR per day")
        axes[0].legend(fontsize=7)

    def trend(v):
        m = s[v].sel(stat="p50").values
        return "rises" if m[-1] > m[0] else "falls"

    axes[0].set_title(
        f"NSR per day {trend('nsr_usd_per_day')} with throughput (before mining and milling costs)",
        fontsize=10,
    )
    axes[1].set_title(f"NSR per tonne of ore {trend('nsr_usd_per_t_ore')} with throughput", fontsize=10)
    fig.suptitle(
        f"Net smelter return against throughput at {100 * a:.0f} % availability "
        f"({w.attrs.get('scenario', '')} ore, year {w.attrs.get('year', '')}; "
        f"{w.attrs.get('terms', '')}, 2012 prices)"
    )
    return fig
