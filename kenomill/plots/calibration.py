"""Calibration figures: reported vs fitted, recovery curves with bands, profiles, model comparisons.

Each function returns a :class:`matplotlib.figure.Figure`; :func:`save_calibration_plots`
writes them, each file whole or not at all. The Agg backend is used so the figures render
without a display.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from kenomill import calibrate, units, variables
from kenomill.plots._common import METALS, plt, save_figure

_LABELS = {n: variables.get(n).axis_label() for n in calibrate.FIT_FIGURES}


def reported_vs_fitted(fit: calibrate.FitResult):
    """One panel per fitted figure: reported (with 1 sigma of the error model) against fitted."""
    fig, axes = plt.subplots(3, 3, figsize=(11, 10), layout="constrained")
    d = fit.data
    for j, (ax, name) in enumerate(zip(axes.flat, calibrate.FIT_FIGURES, strict=True)):
        y, f, s = d.y[:, j], fit.fitted[:, j], d.sigma[:, j]
        ax.errorbar(f, y, yerr=s, fmt="o", color="C0", ms=4, capsize=2)
        for i, p in enumerate(d.periods):
            ax.annotate(p, (f[i], y[i]), fontsize=7, xytext=(3, 3), textcoords="offset points")
        lo = np.nanmin(np.r_[y - s, f])
        hi = np.nanmax(np.r_[y + s, f])
        pad = 0.05 * (hi - lo + 1e-9)
        ax.plot([lo - pad, hi + pad], [lo - pad, hi + pad], color="0.5", lw=0.8)
        ax.set_xlabel(f"fitted {_LABELS[name]}")
        ax.set_ylabel(f"reported {_LABELS[name]}")
    fig.suptitle(
        f"Reported vs fitted, model {fit.spec.name} ({d.source} quarters); "
        "error bars: 1 sigma of the error model"
    )
    return fig


def _curve_feed(fit, vary: str, grid):
    """Feeds at the mean quarter, with one input swept over ``grid``."""
    d = fit.data
    n = len(grid)
    base = {
        "period": [f"x{i}" for i in range(n)],
        "ore_processed_t": np.full(n, d.ore_t.mean()),
        "head_ag_gpt": np.full(n, units.from_fraction(d.head[:, 0].mean(), "g/t")),
        "head_pb_pct": np.full(n, units.from_fraction(d.head[:, 1].mean(), "%")),
        "head_zn_pct": np.full(n, units.from_fraction(d.head[:, 2].mean(), "%")),
        "tpd": np.full(n, d.tpd.mean()),
    }
    base[vary] = np.asarray(grid, dtype=float)
    return pd.DataFrame(base)


def recovery_curves(fit: calibrate.FitResult, calibration=None, *, n_draws: int = 2000, seed: int = 0):
    """Recovery of Ag, Pb, Zn against head grade and against throughput, with 90 % bands.

    Curves are the calibrated model at the mean of the fitted quarters, one input swept at a
    time (availability from its prior); bands are 5-95 % prediction bounds
    (:func:`kenomill.calibrate.predict`). Points are the reported quarters.
    """
    cal = fit.to_calibration() if calibration is None else calibration
    d = fit.data
    fig, axes = plt.subplots(2, 3, figsize=(13, 8), layout="constrained")
    heads = {
        "rec_ag_pct": ("head_ag_gpt", 0, "g/t"),
        "rec_pb_pct": ("head_pb_pct", 1, "%"),
        "rec_zn_pct": ("head_zn_pct", 2, "%"),
    }
    rep = {name: d.y[:, calibrate.FIT_FIGURES.index(name)] for name in heads}
    for col, (name, (hcol, hj, hu)) in enumerate(heads.items()):
        hv = units.from_fraction(d.head[:, hj], hu)
        grid = np.linspace(0.7 * hv.min(), 1.3 * hv.max(), 40)
        pred = calibrate.predict(
            cal, _curve_feed(fit, hcol, grid), n_draws=n_draws, seed=seed, common_draws=True
        )
        ax = axes[0, col]
        ax.fill_between(
            grid, pred[name + "_p05"], pred[name + "_p95"], color="C0", alpha=0.25, label="5-95 %"
        )
        ax.plot(grid, pred[name], color="C0", label=f"{cal.model}")
        ax.plot(hv, rep[name], "o", color="C3", label="reported quarters")
        for i, p in enumerate(d.periods):
            ax.annotate(p, (hv[i], rep[name][i]), fontsize=7, xytext=(3, 3), textcoords="offset points")
        ax.set_xlabel(f"head grade {hcol} [{hu}]")
        ax.set_ylabel(_LABELS[name])
        ax.legend(fontsize=7)
        tgrid = np.linspace(150.0, 420.0, 40)
        pred_t = calibrate.predict(
            cal, _curve_feed(fit, "tpd", tgrid), n_draws=n_draws, seed=seed, common_draws=True
        )
        ax = axes[1, col]
        ax.fill_between(
            tgrid, pred_t[name + "_p05"], pred_t[name + "_p95"], color="C1", alpha=0.25, label="5-95 %"
        )
        ax.plot(tgrid, pred_t[name], color="C1", label=f"{cal.model}")
        ax.plot(d.tpd, rep[name], "o", color="C3", label="reported quarters")
        ax.axvspan(d.tpd.min(), d.tpd.max(), color="0.9", zorder=0, label="range calibrated on")
        ax.set_xlabel("calendar throughput [t/d]")
        ax.set_ylabel(_LABELS[name])
        ax.legend(fontsize=7)
    fig.suptitle(
        f"Recovery vs head grade (top) and throughput (bottom), model {cal.model}; "
        "other inputs at the mean quarter, availability from its prior"
    )
    return fig


def profile_plot(profile_df: pd.DataFrame, name: str):
    """Profile of the sum of squares over one parameter (flat = not determined by the data)."""
    fig, ax = plt.subplots(figsize=(6, 4), layout="constrained")
    ax.plot(profile_df[name], profile_df["delta"], "o-")
    ax.axhline(1.0, color="0.5", lw=0.8, ls="--", label="1 sigma")
    ax.axhline(4.0, color="0.5", lw=0.8, ls=":", label="2 sigma")
    ax.set_xscale("log")
    ax.set_xlabel(name)
    ax.set_ylabel("rise of the scaled sum of squares (others refitted)")
    ax.set_title(f"Profile of {name}: flat = not determined by the quarters")
    ax.legend(fontsize=8)
    return fig


def predictive_comparison(table: pd.DataFrame, chosen: str | None = None):
    """Candidates' scores on held-out quarters (``Comparison.table`` of
    :func:`kenomill.validation.compare`, or the ``table`` a calibration file records): log
    predictive density and CRPS in both schemes, the naive baselines in grey, the chosen
    model in red."""
    from kenomill import validation

    df = pd.DataFrame(table).sort_values("lpd_loqo")
    names = list(df["candidate"])
    col = ["0.6" if n in validation.BASELINES else ("C3" if n == chosen else "C0") for n in names]
    fig, axes = plt.subplots(1, 2, figsize=(11, 0.35 * len(names) + 1.6), layout="constrained", sharey=True)
    y = np.arange(len(names))
    panels = (
        (axes[0], "lpd", "log predictive density [nats per quarter], higher is better"),
        (axes[1], "crps", "CRPS [percentage points], lower is better"),
    )
    for ax, score, label in panels:
        ax.hlines(y, df[f"{score}_loqo"], df[f"{score}_rolling"], color="0.8", lw=1, zorder=1)
        ax.scatter(df[f"{score}_loqo"], y, c=col, marker="o", s=40, zorder=2, label="leave one quarter out")
        ax.scatter(
            df[f"{score}_rolling"],
            y,
            facecolors="none",
            edgecolors=col,
            marker="s",
            s=40,
            zorder=2,
            label="rolling origin",
        )
        ax.set_xlabel(label)
        ax.grid(axis="x", lw=0.3)
    axes[0].set_yticks(y, names)
    axes[0].legend(fontsize=8, loc="lower right")
    fig.suptitle(
        "Prediction of held-out quarters' recoveries (grey: naive baselines"
        + (f"; red: {chosen}" if chosen else "")
        + ")"
    )
    return fig


def save_calibration_plots(fit: calibrate.FitResult, out_dir, calibration=None) -> list[Path]:
    """Write ``reported_vs_fitted.png`` and ``recovery_curves.png`` into ``out_dir``."""
    out = Path(out_dir)
    figs = [
        ("reported_vs_fitted.png", reported_vs_fitted(fit)),
        ("recovery_curves.png", recovery_curves(fit, calibration)),
    ]
    return [save_figure(f, out / name) for name, f in figs]


def model_comparison(comparison: pd.DataFrame, chosen: str):
    """AICc difference and leave-one-out error of contained metal, per model."""
    df = comparison.sort_values("aicc")
    y = np.arange(len(df))[::-1]
    fig, axes = plt.subplots(1, 2, figsize=(11, 0.45 * len(df) + 1.6), layout="constrained", sharey=True)
    col = ["C3" if m == chosen else "C0" for m in df.model]
    axes[0].barh(y, df.d_aicc, color=col)
    axes[0].axvline(2, color="0.4", ls="--", lw=1, label="2: no real difference below")
    axes[0].set_yticks(y, df.model)
    axes[0].set_xlabel("AICc - lowest AICc [-] (smaller is better)")
    axes[0].legend(fontsize=8)
    w = 0.27
    for k, (c, lab, cc) in enumerate(
        (("loo_ag_oz_pct", "Ag oz", "C7"), ("loo_pb_lb_pct", "Pb lb", "C0"), ("loo_zn_lb_pct", "Zn lb", "C1"))
    ):
        if c in df:
            axes[1].barh(y + (1 - k) * w, df[c], w, color=cc, label=lab)
    axes[1].set_xlabel("leave-one-quarter-out RMS error of contained metal [%]")
    axes[1].legend(fontsize=8)
    fig.suptitle(f"Model comparison (red: {chosen}, the default)")
    return fig


def leave_one_out(loo: xr.Dataset):
    """Each quarter predicted from the other five: error of contained metal [%]."""
    periods = [str(p) for p in loo.period.values]
    x = np.arange(len(periods))
    fig, ax = plt.subplots(figsize=(8, 3.8), layout="constrained")
    w = 0.27
    for k, ((v, name, _u, _s), cc) in enumerate(zip(METALS, ("C7", "C0", "C1"), strict=True)):
        if v + "_reported" in loo:
            err = 100 * (loo[v].values / loo[v + "_reported"].values - 1)
            ax.bar(x + (k - 1) * w, err, w, color=cc, label=name)
    ax.axhline(0, color="k", lw=0.8)
    ax.set_xticks(x, periods)
    ax.set_ylabel("predicted / reported - 1 [%]")
    ax.set_title(f"Leave-one-quarter-out, model {loo.attrs.get('model', '')}: contained metal")
    ax.legend(fontsize=8)
    return fig
