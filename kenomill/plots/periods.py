"""Figures of the reported periods: the quarters, their closure and their reconciliation."""

from __future__ import annotations

import numpy as np
import xarray as xr

from kenomill import units, variables
from kenomill.plots._common import LABELS, RECOVERIES, plt


def reported_quarters(reported: xr.Dataset):
    """The six reported quarters: feed, head grades, recoveries and contained metal."""
    q = reported.sel(period=[p for p in reported.period.values if "Q" in str(p)])
    x = np.arange(q.sizes["period"])
    lab = [str(p) for p in q.period.values]
    fig, axes = plt.subplots(2, 2, figsize=(11, 7), layout="constrained")
    ax = axes[0, 0]
    ax.bar(x, q.ore_processed_t.values / 1e3, color="0.7", label="ore processed")
    ax.set_ylabel("ore processed [kt per quarter]")
    ax2 = ax.twinx()
    ax2.plot(x, q.tpd.values, "o-", color="C3", label="throughput")
    ax2.set_ylabel("calendar throughput [t/d]", color="C3")
    ax2.set_ylim(0, 1.2 * np.nanmax(q.tpd.values))
    ax.set_title("Feed")
    ax = axes[0, 1]
    ax.plot(x, q.head_ag_gpt.values, "o-", color="C7", label="Ag")
    ax.set_ylabel("head grade Ag [g/t]")
    ax.set_ylim(0, 1.15 * np.nanmax(q.head_ag_gpt.values))
    ax2 = ax.twinx()
    ax2.plot(x, q.head_pb_pct.values, "s-", color="C0", label="Pb")
    ax2.plot(x, q.head_zn_pct.values, "^-", color="C1", label="Zn")
    ax2.set_ylabel("head grade Pb, Zn [%]")
    ax2.set_ylim(0, 1.15 * np.nanmax(q.head_pb_pct.values))
    h1, l1 = ax.get_legend_handles_labels()
    h2, l2 = ax2.get_legend_handles_labels()
    ax.legend(h1 + h2, l1 + l2, loc="lower left", fontsize=8)
    ax.set_title("Head grades")
    ax = axes[1, 0]
    for (c, el), m, col in zip(RECOVERIES, "os^", ("C7", "C0", "C1"), strict=True):
        ax.plot(x, q[c].values, m + "-", color=col, label=el)
    ax.set_ylabel("recovery [%]")
    ax.set_ylim(40, 100)
    ax.legend(fontsize=8, loc="lower left")
    ax.set_title("Recoveries (Ag to both concentrates)")
    ax = axes[1, 1]
    # one unit per axis: silver [koz] on the left, lead and zinc [Mlb] on the right (on one
    # axis the Mlb bars were too small to see next to hundreds of koz)
    w = 0.27
    ag = variables.get("ag_oz")
    ax.bar(x - w, q.ag_oz.values * units.display_factor(ag.units, "koz"), w, color="C7", label="silver [koz]")
    ax.set_ylabel("silver in both concentrates [koz]")
    ax2 = ax.twinx()
    for k, (v, name, col) in enumerate((("pb_lb", "lead", "C0"), ("zn_lb", "zinc", "C1"))):
        var = variables.get(v)
        label = f"{name} [{var.shown_units}]"
        ax2.bar(x + k * w, q[v].values * var.display_factor, w, color=col, label=label)
    ax2.set_ylabel("lead in lead con, zinc in zinc con [Mlb]")
    h1, l1 = ax.get_legend_handles_labels()
    h2, l2 = ax2.get_legend_handles_labels()
    ax.legend(h1 + h2, l1 + l2, fontsize=8, loc="lower left")
    ax.set_title("Metal in concentrates")
    for a in axes.flat:
        a.set_xticks(x, lab)
    fig.suptitle("The six reported quarters (Alexco news releases, 2012)")
    return fig


def balance_discrepancies(table: xr.Dataset):
    """Discrepancy of each recomputed figure as a multiple of what printed rounding allows."""
    ratio = np.maximum(
        np.abs(table.diff_feed_pct) / table.tolerance_feed_pct,
        np.abs(table.diff_concentrate_pct) / table.tolerance_concentrate_pct,
    )
    worst = np.where(
        np.abs(table.diff_feed_pct) / table.tolerance_feed_pct
        >= np.abs(table.diff_concentrate_pct) / table.tolerance_concentrate_pct,
        table.diff_feed_pct,
        table.diff_concentrate_pct,
    )
    periods = [str(p) for p in table.period.values]
    quantities = [str(q) for q in table.quantity.values]
    fig, ax = plt.subplots(figsize=(9, 5.2), layout="constrained")
    r = ratio.values
    colours = np.log10(np.clip(r, 0.1, 1000))
    im = ax.imshow(colours.T, cmap="RdYlGn_r", vmin=-1, vmax=2, aspect="auto")
    for i in range(len(periods)):
        for j in range(len(quantities)):
            ax.text(
                i,
                j,
                f"{worst[i, j]:+.1f}%" + ("" if r[i, j] <= 1 else "\nNO"),
                ha="center",
                va="center",
                fontsize=7.5,
                fontweight="bold" if r[i, j] > 1 else "normal",
            )
    ax.set_xticks(range(len(periods)), periods)
    ax.set_yticks(range(len(quantities)), [f"{LABELS[q][0]} [{LABELS[q][1]}]" for q in quantities])
    cb = fig.colorbar(im, ax=ax, ticks=[-1, 0, 1, 2])
    cb.ax.set_yticklabels(["0.1", "1", "10", "100"])
    cb.set_label("discrepancy / rounding tolerance [-] (above 1: does not close)")
    ax.set_title("Recomputed vs reported: largest difference of the two routes [% of reported]", fontsize=10)
    return fig


def reconciliation_tests(rec: xr.Dataset, reported: xr.Dataset):
    """Global test per period, and the measurement test of the figures of failing periods."""
    from scipy import stats

    from kenomill.reconcile import suspects

    periods = [str(p) for p in rec.period.values]
    alpha = float(rec.attrs.get("alpha", 0.05))
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.6), layout="constrained", width_ratios=[1, 1.3])
    ax = axes[0]
    chi2, dof = rec.chi2.values, rec.dof.values
    crit = stats.chi2.ppf(1 - alpha, np.maximum(dof, 1))
    colours = ["C3" if g else "C0" for g in rec.gross_error.values]
    ax.bar(range(len(periods)), chi2 / np.maximum(dof, 1), color=colours)
    ax.plot(
        range(len(periods)),
        crit / np.maximum(dof, 1),
        "_",
        color="k",
        ms=22,
        mew=2,
        label=f"limit at {100 * alpha:g} % significance",
    )
    ax.set_xticks(range(len(periods)), periods, rotation=45)
    ax.set_ylabel("chi2 / degrees of freedom [-]")
    ax.set_title("Global test per period (red: gross error)")
    ax.legend(fontsize=8)
    ax = axes[1]
    sus = suspects(rec, reported)
    bad = [p for p, g in zip(periods, rec.gross_error.values, strict=True) if g]
    show = sus[sus.period.isin(bad)] if bad else sus.head(12)
    show = show.head(12)
    zc = float(str(rec.attrs.get("z_crit", "nan")).split(",")[0])
    y = np.arange(len(show))[::-1]
    ax.barh(y, show.z, color=["C3" if f else "C0" for f in show.flagged])
    ax.set_yticks(
        y,
        [
            f"{r.period} {LABELS.get(r.figure, (r.figure,))[0]} ({r.adjustment_pct:+.1f} %)"
            for r in show.itertuples()
        ],
    )
    if np.isfinite(zc):
        ax.axvline(zc, color="k", lw=1, ls="--", label=f"flag limit z = {zc:.2f}")
        ax.legend(fontsize=8, loc="lower right")
    ax.set_xlabel("measurement test z [standard deviations]")
    ax.set_title("Most suspect figures" + (f" of {', '.join(bad)}" if bad else "") + " (adjustment [%])")
    fig.suptitle("Reconciliation (weighted least squares, rounding + measurement error)")
    return fig
