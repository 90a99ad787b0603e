"""Figures of Monte Carlo results: the fan chart and the histograms (one function each,
used by the report, ``kenomill simulate`` and the notebooks)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import xarray as xr

from kenomill import units, variables
from kenomill.plots._common import plt

#: the metals, the report's fan chart and histograms
METAL_VARIABLES = ("ag_oz", "pb_lb", "zn_lb")
#: the panels of ``kenomill simulate``'s fan chart
FAN_VARIABLES = ("ag_oz", "pb_lb", "zn_lb", "rec_ag_pct", "rec_pb_pct", "rec_zn_pct")
#: a quarter's silver reads in koz (hundreds of koz) and its ore in kt; other figures in the
#: table of variables' shown units
QUARTER_UNITS = {"ag_oz": "koz", "ore_processed_t": "kt"}


def shown(name: str, unit: str | None = None) -> tuple[str, str, float]:
    """Label, unit and factor from the stored unit of ``name`` (:mod:`kenomill.variables`)."""
    var = variables.get(name)
    u = unit or var.shown_units
    return var.label, u, units.display_factor(var.units, u)


def _as_list(datasets) -> list[xr.Dataset]:
    return [datasets] if isinstance(datasets, xr.Dataset) else list(datasets)


def _quarters(datasets: Sequence[xr.Dataset], reported: bool):
    """The quarters of the x axis (with the reported ones a scenario counts before its start)
    and the reported figures to draw as points (None: none)."""
    from kenomill.data import QUARTERS, reported_periods

    labels = {str(q) for ds in datasets for q in ds.quarter.values}
    if reported:
        for ds in datasets:
            labels |= {q for q in str(ds.attrs.get("reported_before", "")).split(", ") if q}
    labels = sorted(labels)
    shown_q = [q for q in labels if q in QUARTERS] if reported else []
    return labels, (reported_periods().sel(period=shown_q) if shown_q else None)


def fan_chart(
    datasets,
    variables: Sequence[str] = METAL_VARIABLES,
    *,
    bands: Sequence[tuple[float, float]] = ((0.1, 0.9),),
    reported: bool = False,
    ncols: int = 1,
    title: str | None = None,
):
    """Fan charts: quarterly median (line) and quantile bands of each variable, one panel per
    variable and one colour per scenario, in the order given.

    Parameters
    ----------
    datasets : xarray.Dataset or sequence of them
        Results of :func:`kenomill.simulate.simulate` (dims draw, quarter).
    variables : sequence of str
        Panels (names of :mod:`kenomill.variables`).
    bands : sequence of (low, high) quantiles
        Bands drawn, outer first.
    reported : bool
        Draw the reported quarters (the releases' figures) as points, including those before a
        scenario's start that it counts (``start_after_reported``).
    ncols : int
        Panels per row.
    """
    datasets = _as_list(datasets)
    labels, rep = _quarters(datasets, reported)
    x = {q: i for i, q in enumerate(labels)}
    nrows = -(-len(variables) // ncols)
    size = (11, 10) if ncols == 1 else (4.2 * ncols, 3.6 * nrows)
    fig, axes = plt.subplots(nrows, ncols, figsize=size, layout="constrained", sharex=True, squeeze=False)
    alphas = (0.2,) if len(bands) == 1 else np.linspace(0.2, 0.45, len(bands))
    for ax, v in zip(axes.flat, variables, strict=False):
        label, unit, f = shown(v, QUARTER_UNITS.get(v))
        for k, ds in enumerate(datasets):
            xi = np.array([x[str(q)] for q in ds.quarter.values])
            d = ds[v] * f
            for (lo, hi), alpha in zip(bands, alphas, strict=True):
                band = f"P{100 * lo:g}-P{100 * hi:g}" if len(datasets) == 1 else None
                qlo, qhi = (d.quantile(qq, dim="draw").values for qq in (lo, hi))
                ax.fill_between(xi, qlo, qhi, color=f"C{k}", alpha=alpha, label=band)
            med = d.quantile(0.5, dim="draw").values
            ax.plot(xi, med, "o-", color=f"C{k}", label=ds.attrs.get("scenario", f"scenario {k}"), ms=3)
        if rep is not None and v in rep:
            xr_ = [x[str(p)] for p in rep.period.values]
            ax.plot(xr_, rep[v].values * f, "o", color="k", ms=5, label="reported (Alexco releases)")
        ax.set_ylabel(f"{label} per quarter [{unit}]")
        ax.grid(alpha=0.3)
    for ax in axes.flat[len(variables) :]:
        ax.set_visible(False)
    axes.flat[0].legend(fontsize=8, ncol=2)
    for ax in axes[-1]:
        ax.set_xticks(range(len(labels)), labels, rotation=45)
        ax.set_xlabel("quarter")
    fig.suptitle(title or "Scenarios: median (line) and P10-P90 (band) of metal in concentrates per quarter")
    return fig


def _target_band(ax, targets, v: str, year: int, f: float) -> None:
    """Shade the range of the first target on ``v`` in ``year`` (an open end: 0 or the axis' end;
    scenarios repeat the same guidance, so one band per panel)."""
    t = next((t for t in targets if t.variable == v and t.year == year), None)
    if t is not None:
        lo = (t.min if t.min is not None else 0.0) * f
        hi = t.max * f if t.max is not None else ax.get_xlim()[1]
        ax.axvspan(lo, hi, color="C2", alpha=0.15, label=t.name)


def histograms(
    annuals,
    targets: Sequence = (),
    years: Sequence[int] | None = None,
    *,
    variables: Sequence[str] = METAL_VARIABLES,
    percentiles: bool = False,
    title: str | None = None,
):
    """Distribution of each year's metal (one row per year, one panel per variable), one
    outline per scenario in the order given (colours as in :func:`fan_chart`), against the
    target ranges of ``targets`` (:class:`kenomill.scenario.Target`, shaded green).

    ``annuals``: annual Datasets (:func:`kenomill.simulate.annual`); ``years``: the years to
    show (default: every year of the first); a scenario without the year is left out of that
    row. ``percentiles`` draws P10, P50 and P90 of the first scenario as lines.
    """
    annuals = _as_list(annuals)
    years = [int(y) for y in (annuals[0].year.values if years is None else years)]
    fig, axes = plt.subplots(
        len(years), len(variables), figsize=(13, 1.0 + 3.2 * len(years)), layout="constrained", squeeze=False
    )
    for i, year in enumerate(years):
        for ax, v in zip(axes[i], variables, strict=True):
            label, unit, f = shown(v)
            quarters = 4
            for k, yr in enumerate(annuals):
                if year not in [int(y) for y in yr.year.values]:
                    continue
                vals = yr[v].sel(year=year).values * f
                quarters = min(quarters, int(yr.quarters.sel(year=year))) if "quarters" in yr else quarters
                ax.hist(
                    vals,
                    bins=int(np.clip(vals.size // 25, 8, 40)),
                    histtype="step",
                    lw=1.5,
                    color=f"C{k}",
                    density=True,
                    label=yr.attrs.get("scenario", f"scenario {k}"),
                )
                if percentiles and k == 0:
                    for p, ls in ((10, ":"), (50, "-"), (90, ":")):
                        ax.axvline(np.percentile(vals, p), color="k", ls=ls, lw=1)
            _target_band(ax, targets, v, year, f)
            part = "" if quarters == 4 else f" ({quarters} quarters)"
            ax.set_xlabel(f"{label} in {year}{part} [{unit}]")
            ax.set_ylabel("probability density [1/" + unit + "]")
            ax.legend(fontsize=7)
    fig.suptitle(
        title or f"{', '.join(map(str, years))} production per scenario against the target (green band)"
    )
    return fig
