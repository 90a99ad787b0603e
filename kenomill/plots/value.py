"""Figures of what the metal is worth: NSR and margin against throughput, and the tornado."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import xarray as xr

from kenomill.plots._common import plt


def _tx(text: str) -> str:
    """Dollar signs shown as such (two of them would start matplotlib's mathtext)."""
    return str(text).replace("$", r"\$")


def _shown(avs: Sequence[float]) -> list[float]:
    avs = list(avs)
    return sorted({float(avs[0]), float(avs[len(avs) // 2]), float(avs[-1])})


def whatif_margin(w: xr.Dataset):
    """NSR (left) and margin = NSR - operating cost (right) per calendar day against throughput,
    median and P10-P90 band at the lowest, middle and highest availability of the grid; the best
    rate by expected margin within the capacity limits starred; the calibrated range shaded,
    extrapolated rates drawn with open markers. ``w``: :func:`kenomill.value.whatif_nsr`."""
    tpd = w.tpd.values
    ex = np.asarray(w.extrapolated.values, dtype=bool)
    lo, hi = w.attrs.get("calibrated_tpd", [np.nan, np.nan])
    fig, axes = plt.subplots(1, 2, figsize=(13, 4.5), layout="constrained", sharex=True)
    panels = (
        ("nsr_usd_per_day", "best_tpd", "best_nsr_usd_per_day", "NSR per calendar day [kUS$/d]"),
        ("margin_usd_per_day", "best_margin_tpd", "best_margin_margin_usd_per_day",
         "margin = NSR - operating cost [kUS$/d]"),
    )  # fmt: skip
    for ax, (v, best_v, best_y, label) in zip(axes, panels, strict=True):
        for k, a in enumerate(_shown(w.availability.values)):
            s = w.sel(availability=a)
            p10, p50, p90 = (s[v].sel(stat=q).values * 1e-3 for q in ("p10", "p50", "p90"))
            c = f"C{k}"
            ax.fill_between(tpd, p10, p90, color=c, alpha=0.15)
            ax.plot(tpd, p50, "-", color=c, label=f"availability {100 * a:.0f} %: median, P10-P90")
            ax.plot(tpd[ex], p50[ex], "o", mfc="white", color=c, ms=4)
            ax.plot(tpd[~ex], p50[~ex], "o", color=c, ms=4)
            b = float(s[best_v])
            if np.isfinite(b):
                ax.plot([b], [float(s[best_y].sel(stat="mean")) * 1e-3], "*", ms=13, color=c, mec="k")
        if np.isfinite(lo):
            ax.axvspan(lo, hi, color="0.9", zorder=0, label=f"calibrated {lo:.0f}-{hi:.0f} t/d")
        ax.set_xlabel("calendar throughput [t/d]")
        ax.set_ylabel(_tx(label))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    axes[0].set_title("NSR per day (star: largest expected, within the capacity limits)", fontsize=10)
    axes[1].set_title(
        _tx(
            f"margin per day, operating cost C${w.attrs.get('variable_cad_per_t', float('nan')):g}/t + "
            f"C${w.attrs.get('fixed_cad_per_day', float('nan')):g}/d (star: best rate by margin)"
        ),
        fontsize=10,
    )
    fig.suptitle(
        _tx(
            f"NSR and margin against throughput ({w.attrs.get('scenario', '')} ore, year "
            f"{w.attrs.get('year', '')}; {w.attrs.get('terms', '')}; {w.attrs.get('costs', '')}); "
            "open markers: extrapolation"
        )
    )
    return fig


def tornado(df, figure: str = "nsr_usd_per_day", label: str = "expected NSR per calendar day [kUS$/d]"):
    """Tornado: expected NSR (or margin) per day with each input at its low and its high value,
    the others at their base (:func:`kenomill.value.whatif_tornado`), largest swing on top."""
    base = float(df.attrs["base"][figure]) * 1e-3
    d = df.reindex(df[f"{figure}_swing"].abs().sort_values().index)
    lo = d[f"{figure}_at_low"].values * 1e-3
    hi = d[f"{figure}_at_high"].values * 1e-3
    y = np.arange(len(d))
    fig, ax = plt.subplots(figsize=(11, 0.42 * len(d) + 1.6), layout="constrained")
    ax.barh(y, lo - base, left=base, color="C0", alpha=0.8, label="input at its low")
    ax.barh(y, hi - base, left=base, color="C3", alpha=0.8, label="input at its high")
    ax.axvline(base, color="k", lw=1)
    ticks = [
        _tx(f"{n}  ({a:.3g} - {b:.3g})") for n, a, b in zip(d["input"], d["low"], d["high"], strict=True)
    ]
    ax.set_yticks(y, ticks, fontsize=8)
    ax.set_xlabel(_tx(label))
    ax.legend(fontsize=8, loc="lower right")
    ax.grid(axis="x", alpha=0.3)
    ax.set_title(
        _tx(
            f"Which inputs move NSR most: {df.attrs.get('rate_tpd', float('nan')):g} t/d, availability "
            f"{df.attrs.get('availability', float('nan')):g}, year {df.attrs.get('year', '')} "
            f"(base {base:,.1f} kUS$/d)"
        ),
        fontsize=10,
    )
    return fig
