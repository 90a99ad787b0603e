"""One self-contained HTML page of kenomill's answers, for readers who do not use Python.

:func:`collect` runs the analyses through the public API of the other modules (nothing
is recomputed here):

* the reported figures (:func:`kenomill.reported_periods`) and whether they close
  (:func:`kenomill.balance.balance_table`);
* their reconciliation and gross-error tests (:func:`kenomill.reconcile.reconciled_periods`,
  :func:`kenomill.reconcile.reconcile_dataset` with figures set aside, :func:`kenomill.reconcile.suspects`);
* the calibration of the recovery curves, the model comparison and leave-one-quarter-out
  (:mod:`kenomill.calibrate`, figures of :mod:`kenomill.plots`);
* the throughput x availability what-if surface (:func:`kenomill.simulate.whatif`);
* the Monte Carlo scenarios (:func:`kenomill.simulate.simulate`, ``annual``, ``summarize``,
  ``target_probabilities``, ``drivers``).

:func:`render_html` turns the results into one HTML page: figures embedded as base64 PNG,
tables as HTML, no script or style sheet from elsewhere, no external URL (the page must
read the same offline and in ten years). Every section has a sentence on how to read it
and the assumptions behind it; every figure names its source. :func:`write_report` writes
the page atomically (:func:`kenomill.io.atomic_path`).

The ``fig_*`` functions return matplotlib figures and are shared with the notebooks.

Sizes: :data:`DEFAULT_DRAWS` draws per scenario and ``draws // 5`` (at least 20) per point
of the what-if surface keep ``kenomill report`` under a minute on two cores (39 s measured
idle, 66 s with other jobs running); the model comparison (every model fitted seven times
for leave-one-out) is most of it.
"""

from __future__ import annotations

import base64
import datetime as _dt
import html
import io as _io
import math
import os
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import xarray as xr  # noqa: E402

from kenomill import data, units, variables  # noqa: E402
from kenomill.errors import ValidationError  # noqa: E402

#: Monte Carlo draws per scenario by default
DEFAULT_DRAWS = 1000
#: what-if grid: calendar throughput [t/d] and long-run availability [fraction]
DEFAULT_WHATIF_TPD = (200.0, 225.0, 250.0, 275.0, 300.0, 325.0, 350.0, 375.0, 400.0)
DEFAULT_WHATIF_AVAILABILITY = (0.84, 0.88, 0.92, 0.96)
#: the scenario whose ore the what-if surface runs (Bellekeno alone: the only ore calibrated)
WHATIF_SCENARIO = "bellekeno_only"
#: the reference point of the what-if sentence: 2011Q4 and 2012Q2 ran at 245 and 244 t/d
#: calendar; 0.92 is the calibration's availability prior (96 % and 90 % reported)
BASELINE_TPD = 245.0
BASELINE_AVAILABILITY = 0.92
#: figure groups set aside, one group at a time, to see which explains a gross error
FIGURE_GROUPS: dict[str, tuple[str, ...]] = {
    "contained-metal figures (Ag oz, Pb lb, Zn lb)": ("ag_oz", "pb_lb", "zn_lb"),
    "recoveries": ("rec_ag_pct", "rec_pb_pct", "rec_zn_pct"),
    "head grades": ("head_ag_gpt", "head_pb_pct", "head_zn_pct"),
    "concentrate tonnes": ("pbcon_t", "zncon_t"),
    "lead concentrate grades": ("pbcon_ag_gpt", "pbcon_pb_pct"),
    "zinc concentrate grades": ("zncon_ag_gpt", "zncon_zn_pct"),
    "ore tonnes and throughput": ("ore_processed_t", "tpd"),
}

#: plain names and units of the reported columns
LABELS: dict[str, tuple[str, str]] = {
    n: (variables.get(n).label, variables.get(n).units) for n in data.FIGURES
}
#: metals as the report shows them: contained variable, plain name, display unit, scale
METALS = (
    ("ag_oz", "silver", "Moz", 1e-6),
    ("pb_lb", "lead", "Mlb", 1e-6),
    ("zn_lb", "zinc", "Mlb", 1e-6),
)
RECOVERIES = (("rec_ag_pct", "Ag"), ("rec_pb_pct", "Pb"), ("rec_zn_pct", "Zn"))
#: the public news releases the packaged periods transcribe: (date, title, file name the
#: ``source`` column of kenomill/data/reported_periods.csv cites)
RELEASES = (
    (
        "23 Jan 2012",
        "Alexco Silver Production Increases 21% to More Than 600,000 Ounces In Fourth Quarter 2011",
        "003_edb58d776d0c6b1d.txt",
    ),
    (
        "16 Apr 2012",
        "Alexco Reports Silver Production Results for First Quarter 2012",
        "001_2d7d3e0911ae9488.txt",
    ),
    ("16 Jul 2012", "Alexco Reports Silver Production for Second Quarter 2012", "002_daad1b7b2925b44b.txt"),
)
SOURCES_RELEASES = (
    "Alexco Resource Corp. news releases "
    + "; ".join(f"\u201c{title}\u201d ({date})" for date, title, _ in RELEASES)
    + "; transcribed in the package's reported_periods.csv"
)


def _deposit_sources() -> str:
    """The releases the packaged resource estimates of Onek and Lucky Queen come from."""
    from kenomill.scenario import _deposit_rows

    found = [r["source"] for r in _deposit_rows() if r["deposit"] in ("Onek", "Lucky Queen")]
    return "; ".join(dict.fromkeys(found))


#: the footnote that names the transcribed files
SOURCES_FILES = "Files cited by the source column of reported_periods.csv: " + "; ".join(
    f"{f} = release of {d}" for d, _, f in RELEASES
)

Progress = Callable[[str, float], None]


def _noop(msg: str, advance: float = 0.0) -> None:
    return None


# ------------------------------------------------------------------ results
@dataclass
class ScenarioRun:
    """One scenario's Monte Carlo result and its reductions."""

    path: Path
    scenario: object  # kenomill.scenario.Scenario
    ds: xr.Dataset  # (draw, quarter)
    annual: xr.Dataset  # (draw, year)
    summary: xr.Dataset  # (stat, year)
    targets: pd.DataFrame
    drivers: dict[str, pd.DataFrame]  # metal -> table


@dataclass
class ReportResults:
    """Everything the page shows; produced by :func:`collect`."""

    reported: xr.Dataset
    balance: xr.Dataset
    rec: xr.Dataset
    rec_across: xr.Dataset
    suspects: pd.DataFrame
    explanations: dict[str, pd.DataFrame]  # gross-error period -> p-value with each group set aside
    fit: object  # kenomill.calibrate.FitResult
    calibration: object  # kenomill.calibration_file.Calibration
    comparison: pd.DataFrame
    loo: xr.Dataset
    whatif: xr.Dataset
    whatif_scenario: str
    scenarios: list[ScenarioRun]
    settings: dict = field(default_factory=dict)
    figures: dict[str, matplotlib.figure.Figure] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)


def default_scenario_paths() -> list[Path]:
    """The shipped scenario files: ``scenarios/*.toml`` of the current directory, else of the source tree."""
    here = Path("scenarios")
    tree = Path(__file__).resolve().parent.parent / "scenarios"
    for d in (here, tree):
        files = sorted(d.glob("*.toml"))
        if files:
            return files
    raise ValidationError(
        f"scenarios: found no *.toml in {str(here)!r} or {str(tree)!r}; give scenario files with --scenario"
    )


def explain_gross_errors(reported: xr.Dataset, rec: xr.Dataset, alpha: float | None = None) -> dict:
    """For each period failing the global test, reconcile it again with one group of figures set aside.

    A group whose removal leaves figures that agree within their errors (p-value above
    ``alpha``) is a candidate culprit; groups that cannot be estimated from the others
    (not observable) are reported as such. Uses :func:`kenomill.reconcile.reconcile_dataset`
    with ``exclude``.

    Returns
    -------
    dict
        period -> DataFrame with columns group, figures, chi2, dof, p_value (NaN: not testable).
    """
    from kenomill.reconcile import reconcile_dataset

    alpha = float(rec.attrs.get("alpha", 0.05)) if alpha is None else alpha
    out = {}
    for i, p in enumerate(rec.period.values):
        if not bool(rec.gross_error.values[i]):
            continue
        p = str(p)
        sub = reported.sel(period=[p])
        rows = []
        for group, cols in FIGURE_GROUPS.items():
            cols = [c for c in cols if c in sub and np.isfinite(float(sub[c].values[0]))]
            try:
                # the fixed sizes of the report's reconciliation (kenomill.study), not sizes
                # estimated from this one period
                r = reconcile_dataset(
                    sub, exclude=[f"{p}.{c}" for c in cols], alpha=alpha, error_sizes="fixed"
                )
                rows.append(
                    {
                        "group": group,
                        "figures": ", ".join(cols),
                        "chi2": float(r.chi2.values[0]),
                        "dof": int(r.dof.values[0]),
                        "p_value": float(r.p_value.values[0]),
                    }
                )
            except ValidationError:
                # the other figures cannot pin this group down: nothing to test
                rows.append(
                    {"group": group, "figures": ", ".join(cols), "chi2": np.nan, "dof": 0, "p_value": np.nan}
                )
        out[p] = pd.DataFrame(rows).sort_values("p_value", ascending=False, na_position="last")
    return out


def _scenario_runs(study, scenarios, draws: int, say) -> list[ScenarioRun]:
    """The Monte Carlo of each scenario with its annual summary, targets and drivers."""
    from kenomill import simulate as sim
    from kenomill.study import summary_year

    runs = []
    # chronological, then by name: the page reads from 2012 forward
    for p, sc in sorted(scenarios, key=lambda ps: (ps[1].horizon.start, ps[1].name)):
        say(f"Monte Carlo: {sc.name} ({draws} draws)", 0)
        ds = study.scenario(p, draws=draws)
        yr = sim.annual(ds)
        summ = sim.summarize(yr[[m for m, *_ in METALS] + ["ore_processed_t"]])
        tp = sim.target_probabilities(ds, sc) if sc.targets else pd.DataFrame()
        year = summary_year(yr)
        dr = {m: sim.drivers(ds, m, year, top=12) for m, *_ in METALS}
        runs.append(ScenarioRun(p, sc, ds, yr, summ, tp, dr))
        say("", 1)
    return runs


def collect(
    draws: int = DEFAULT_DRAWS,
    seed: int = 0,
    *,
    models: Sequence[str] | None = None,
    scenario_paths: Sequence[str | Path] | None = None,
    whatif_tpd: Sequence[float] = DEFAULT_WHATIF_TPD,
    whatif_availability: Sequence[float] = DEFAULT_WHATIF_AVAILABILITY,
    whatif_draws: int | None = None,
    curve_draws: int = 1000,
    progress: Progress | None = None,
    periods=None,
    study=None,
) -> ReportResults:
    """Run every analysis the report shows.

    Parameters
    ----------
    draws : int
        Monte Carlo draws per scenario.
    seed : int
        Seed of every random draw (same seed, same page).
    models : sequence of str, optional
        Recovery models to compare (default: all of :data:`kenomill.recovery.MODELS`).
        The default model is always among them.
    scenario_paths : sequence of paths, optional
        Scenario TOML files (default: :func:`default_scenario_paths`).
    whatif_tpd, whatif_availability : sequences
        The what-if grid [t/d calendar], [fraction].
    whatif_draws : int, optional
        Draws per grid point (default ``max(20, draws // 5)``).
    curve_draws : int
        Draws behind the bands of the recovery curves.
    progress : callable(message, advance), optional
        Told about each step; ``advance`` counts steps done (see :func:`n_steps`).
    periods : xarray.Dataset, path or sequence of paths, optional
        The periods to analyse (:func:`kenomill.read_periods`; default the packaged ones).
    study : kenomill.study.Study, optional
        A study whose cached steps to use (its periods and seed win over ``periods``).
    """
    from kenomill import calibrate, plots, recovery
    from kenomill import scenario as scn
    from kenomill.reconcile import suspects
    from kenomill.study import Study

    if draws < 2:
        raise ValidationError(f"--draws: found {draws}; allowed: at least 2")
    say = progress or _noop
    study = study if study is not None else Study(periods, seed=seed)
    seed = study.seed
    timings: dict[str, float] = {}
    t0 = time.perf_counter()

    def lap(name):
        nonlocal t0
        now = time.perf_counter()
        timings[name] = now - t0
        t0 = now

    paths = [Path(p) for p in (scenario_paths or default_scenario_paths())]
    scenarios = [(p, scn.load(p)) for p in paths]  # refuse a broken file before any work
    names = [sc.name for _, sc in scenarios]
    wi_name = WHATIF_SCENARIO if WHATIF_SCENARIO in names else names[0]
    model_list = list(recovery.MODELS) if models is None else list(models)
    for m in model_list:
        recovery.get_model(m)
    if calibrate.DEFAULT_MODEL not in model_list:
        model_list.append(calibrate.DEFAULT_MODEL)
    wd = int(whatif_draws or max(20, draws // 5))

    say("reported figures and their balances", 0)
    reported = study.periods()
    balance = study.balance()
    lap("balance")
    say("reconciling the reported figures", 1)
    rec = study.reconcile()
    rec_across = study.reconcile(across_periods=True)
    sus = suspects(rec, reported)
    explanations = explain_gross_errors(reported, rec)
    lap("reconcile")
    say("calibrating the default recovery model", 1)
    fit = study.fit()
    cal = study.calibration()
    lap("calibrate")
    say(f"comparing {len(model_list)} recovery models (fits and leave-one-out)", 1)
    comparison = study.compare(model_list, starts=2, loo_starts=1)
    lap("compare")
    say("leave-one-quarter-out of the default model", 1)
    loo = study.loo(starts=2)
    lap("loo")
    say("figures of the calibration", 1)
    figures = {
        "reported_vs_fitted": plots.reported_vs_fitted(fit),
        "recovery_curves": plots.recovery_curves(fit, cal, n_draws=curve_draws, seed=seed),
    }
    lap("calibration figures")
    wi_path, wi_sc = scenarios[names.index(wi_name)]
    n_pts = len(whatif_tpd) * len(whatif_availability)
    say(f"what-if surface: {n_pts} points x {wd} draws ({wi_name})", 1)
    # the surface and its NSR in one pass (value.whatif_nsr runs simulate.whatif and settles
    # each draw's concentrates under the typical 2012 terms and the 2012 prices)
    from kenomill import value

    wtpd = [float(v) for v in whatif_tpd]
    whatif = value.whatif_nsr(
        wi_sc,
        wtpd,
        [float(v) for v in whatif_availability],
        draws=wd,
        seed=seed,
        calibration=study._calibration_arg(),
        base_dir=wi_path.parent,
        move=whatif_move(wtpd),
        progress=lambda k: say("", k),
    )
    lap("whatif")
    runs = _scenario_runs(study, scenarios, draws, say)
    lap("scenarios")
    settings = {
        "draws": int(draws),
        "whatif_draws": wd,
        "seed": int(seed),
        "models": model_list,
        "curve_draws": int(curve_draws),
        "whatif_tpd": [float(v) for v in whatif_tpd],
        "whatif_availability": [float(v) for v in whatif_availability],
        "periods": study.periods_label,
    }
    return ReportResults(
        reported=reported,
        balance=balance,
        rec=rec,
        rec_across=rec_across,
        suspects=sus,
        explanations=explanations,
        fit=fit,
        calibration=cal,
        comparison=comparison,
        loo=loo,
        whatif=whatif,
        whatif_scenario=wi_name,
        scenarios=runs,
        settings=settings,
        figures=figures,
        timings=timings,
    )


def whatif_move(tpd: Sequence[float]) -> tuple[float, float] | None:
    """The move whose probability of gain the report gives: 250 -> 300 t/d when both are on the
    grid (the issue's example), else from the rate nearest :data:`BASELINE_TPD` to the next one up."""
    rates = sorted(float(t) for t in tpd)
    if 250.0 in rates and 300.0 in rates:
        return (250.0, 300.0)
    t0 = _nearest(rates, BASELINE_TPD)
    up = [t for t in rates if t > t0]
    return (t0, up[0]) if up else None


def n_steps(
    n_scenarios: int, n_tpd: int = len(DEFAULT_WHATIF_TPD), n_avail: int = len(DEFAULT_WHATIF_AVAILABILITY)
) -> int:
    """Number of progress steps :func:`collect` reports (for a progress bar's total)."""
    return 6 + n_tpd * n_avail + n_scenarios


# ------------------------------------------------------------------ figures
#: plain words for the response offsets of :data:`kenomill.recovery.OFFSET_NAMES` in driver names
OFFSET_WORDS = {
    "logit_rec_ag_pbcon": "response: Ag recovery to lead con",
    "logit_rec_pb": "response: Pb recovery",
    "logit_rec_zn": "response: Zn recovery",
    "log_gangue_pbcon": "response: gangue in lead con",
    "log_gangue_zncon": "response: gangue in zinc con",
}


def plain_driver(name: str) -> str:
    """A driver name of :func:`kenomill.simulate.drivers` in words (source names keep their spelling)."""
    for k, v in OFFSET_WORDS.items():  # longest first: logit_rec_ag_pbcon before logit_rec_pb
        name = name.replace(k, v)
    return name


def fig_reported(reported: xr.Dataset):
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


def fig_balance(table: xr.Dataset):
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


def fig_reconciliation(rec: xr.Dataset, reported: xr.Dataset):
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


def fig_model_comparison(comparison: pd.DataFrame, chosen: str):
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


def fig_loo(loo: xr.Dataset):
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


def _nearest(values, target) -> float:
    v = np.asarray(values, dtype=float)
    return float(v[np.argmin(np.abs(v - target))])


def fig_whatif_surface(w: xr.Dataset):
    """Median annual metal over the throughput x availability grid."""
    fig, axes = plt.subplots(1, 3, figsize=(13, 4.3), layout="constrained")
    tpd = w.tpd.values
    av = 100 * w.availability.values
    for ax, (v, name, u, s) in zip(axes, METALS, strict=True):
        z = w[v].sel(stat="p50").values * s
        im = ax.pcolormesh(tpd, av, z.T, shading="nearest", cmap="viridis")
        if len(tpd) > 1 and len(av) > 1:
            cs = ax.contour(tpd, av, z.T, colors="w", linewidths=0.8, levels=6)
            ax.clabel(cs, fontsize=7, fmt="%.1f")
        fig.colorbar(im, ax=ax, label=f"{name}, median [{u}/year]")
        ax.set_xlabel("calendar throughput [t/d]")
        ax.set_ylabel("mill availability [%]")
        ax.set_title(f"{name} produced per year")
    fig.suptitle(f"What-if surface, {w.attrs.get('scenario', '')} ore, year {w.attrs.get('year', '')}")
    return fig


def fig_whatif_tradeoff(
    w: xr.Dataset,
    availability: float = BASELINE_AVAILABILITY,
    calibrated_tpd: tuple[float, float] | None = None,
):
    """Recovery lost and metal gained against throughput, at one availability, with P10-P90 bands."""
    a = _nearest(w.availability.values, availability)
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


def fig_whatif_nsr(w: xr.Dataset, availability: float = BASELINE_AVAILABILITY):
    """NSR per calendar day and per tonne of ore against throughput, P10-P90 bands, at one
    availability; the calibrated range shaded, the extrapolated rates drawn dashed."""
    a = _nearest(w.availability.values, availability)
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


def fig_fan(datasets: Sequence[xr.Dataset]):
    """Fan charts: quarterly metal of each scenario (results of :func:`kenomill.simulate.simulate`),
    median and P10-P90 band; one colour per scenario, in the order given."""
    qs = sorted({str(q) for ds in datasets for q in ds.quarter.values})
    x = {q: i for i, q in enumerate(qs)}
    fig, axes = plt.subplots(3, 1, figsize=(11, 10), layout="constrained", sharex=True)
    for ax, (v, name, _u, _s) in zip(axes, METALS, strict=True):
        scale, unit = (1e-3, "koz") if v == "ag_oz" else (1e-6, "Mlb")
        for k, ds in enumerate(datasets):
            xi = np.array([x[str(q)] for q in ds.quarter.values])
            d = ds[v] * scale
            lo, med, hi = (d.quantile(qq, dim="draw").values for qq in (0.1, 0.5, 0.9))
            ax.fill_between(xi, lo, hi, color=f"C{k}", alpha=0.2)
            ax.plot(xi, med, "o-", color=f"C{k}", label=ds.attrs.get("scenario", f"scenario {k}"), ms=3)
        ax.set_ylabel(f"{name} per quarter [{unit}]")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8, ncol=2)
    axes[-1].set_xticks(range(len(qs)), qs, rotation=45)
    axes[-1].set_xlabel("quarter")
    fig.suptitle("Scenarios: median (line) and P10-P90 (band) of metal in concentrates per quarter")
    return fig


def fig_targets(datasets: Sequence[xr.Dataset], targets: Sequence = (), year: int = 2012):
    """Distribution of a year's metal in each scenario that covers ``year``, against target ranges.

    ``targets``: :class:`kenomill.scenario.Target` objects (e.g. the 2012 guidance); the first
    one per metal and year is shaded. Colours follow the order of ``datasets`` as in :func:`fig_fan`.
    """
    from kenomill.simulate import annual

    fig, axes = plt.subplots(1, 3, figsize=(13, 4.2), layout="constrained")
    annuals = [annual(ds) for ds in datasets]
    for ax, (v, name, u, s) in zip(axes, METALS, strict=True):
        for k, (ds, yr) in enumerate(zip(datasets, annuals, strict=True)):
            if year not in [int(y) for y in yr.year.values]:
                continue
            vals = yr[v].sel(year=year).values * s
            ax.hist(
                vals,
                bins=int(np.clip(vals.size // 25, 8, 40)),
                histtype="step",
                lw=1.5,
                color=f"C{k}",
                density=True,
                label=ds.attrs.get("scenario", f"scenario {k}"),
            )
        t = next((t for t in targets if t.variable == v and t.year == year), None)
        if t is not None:
            lo = (t.min if t.min is not None else 0.0) * s
            hi = t.max * s if t.max is not None else ax.get_xlim()[1]
            ax.axvspan(lo, hi, color="C2", alpha=0.15, label="target")
        ax.set_xlabel(f"{name} in {year} [{u}]")
        ax.set_ylabel("probability density [1/" + u + "]")
        ax.legend(fontsize=7)
    fig.suptitle(f"{year} production per scenario against the target (green band)")
    return fig


# ------------------------------------------------------------------ html helpers
def fig_to_data_uri(fig, dpi: int = 80) -> str:
    """PNG of ``fig`` as a ``data:`` URI (the figure is closed)."""
    buf = _io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _e(text) -> str:
    return html.escape(str(text), quote=True)


def _num(v, digits: int = 3) -> str:
    """Plain number: thousands separators for large values, ``digits`` significant otherwise."""
    try:
        v = float(v)
    except (TypeError, ValueError):
        return _e(v)
    if not math.isfinite(v):
        return "&ndash;"
    if abs(v) >= 1000:
        return f"{v:,.0f}"
    return f"{v:.{digits}g}"


def _fixed(v, nd: int = 1) -> str:
    v = float(v)
    return "&ndash;" if not math.isfinite(v) else f"{v:,.{nd}f}"


def _pct(p: float) -> str:
    """Probability as a percentage a reader can say aloud."""
    p = float(p)
    if not math.isfinite(p):
        return "&ndash;"
    if p == 0:
        return "0 %"
    if p < 0.01:
        return f"{100 * p:.1f} %"
    return f"{100 * p:.0f} %"


def _pval(p: float) -> str:
    p = float(p)
    if not math.isfinite(p):
        return "&ndash;"
    return f"{p:.2g}" if p >= 1e-3 else f"{p:.1e}"


def _is_text(cell: str) -> bool:
    """Words are left-aligned, numbers right-aligned (a word: two letters in a row)."""
    plain = re.sub(r"<[^>]+>|&[a-z]+;", "", str(cell))
    return re.search(r"[A-Za-z]{2,}", plain) is not None


def table_html(rows: Sequence[Sequence[str]], header: Sequence[str], *, cls: str = "", highlight=None) -> str:
    """An HTML table from already formatted (HTML-safe) cells; ``highlight`` marks rows (bool per row)."""
    out = [f'<table class="{cls}"><thead><tr>']
    out += [f"<th>{h}</th>" for h in header]
    out.append("</tr></thead><tbody>")
    for i, r in enumerate(rows):
        mark = ' class="hl"' if highlight is not None and highlight[i] else ""
        out.append(
            f"<tr{mark}>" + "".join(f'<td class="l">{c}</td>' if _is_text(c) else f"<td>{c}</td>" for c in r)
        )
        out.append("</tr>")
    out.append("</tbody></table>")
    return "".join(out)


def _figure(uri: str, caption: str, source: str, alt: str) -> str:
    return (
        f'<figure><img src="{uri}" alt="{_e(alt)}"><figcaption>{caption} '
        f'<span class="src">Source: {source}</span></figcaption></figure>'
    )


def _template_text(name: str) -> str:
    from importlib import resources

    return resources.files("kenomill").joinpath("templates", name).read_text(encoding="utf-8")


#: the page's style sheet (kenomill/templates/report.css)
CSS = _template_text("report.css")

#: marks the page's own check: every image decoded (read back by the report test through
#: Chromium's --dump-dom). Inline, so the page stays self-contained.
#: marks the page's own check: every image decoded (kenomill/templates/report.js)
IMAGE_CHECK_JS = _template_text("report.js")


# ------------------------------------------------------------------ sections
def _printed(v, resolution) -> str:
    """A figure with as many decimals as the release printed (``resolution``: one unit of the last digit)."""
    v, res = float(v), float(resolution)
    if not math.isfinite(v):
        return "&ndash;"
    if not (math.isfinite(res) and res > 0):
        return _num(v)
    return f"{v:,.{max(0, -math.floor(math.log10(res) + 1e-9))}f}"


def _fmt_fig(col: str, v) -> str:
    if col.startswith(("head_", "rec_", "pbcon_pb", "zncon_zn", "availability")) and not col.endswith("_gpt"):
        return _fixed(v, 1)
    return _num(v)


def _error_range() -> str:
    """The default relative errors of the reconciliation, as a range ("1-2 %")."""
    from kenomill.errormodel import ErrorModel

    v = [float(x) for x in ErrorModel().relative_pct.values() if float(x) > 0]
    if not v:
        return "no"
    lo, hi = min(v), max(v)
    return f"{lo:g} %" if lo == hi else f"{lo:g}-{hi:g} %"


def _balance_facts(r: ReportResults):
    b = r.balance
    closes = b.closes.values
    n_ok, n = int(closes.sum()), int(closes.size)
    bad_periods = [str(p) for i, p in enumerate(b.period.values) if not closes[i].all()]
    gross = [str(p) for p, g in zip(r.rec.period.values, r.rec.gross_error.values, strict=True) if g]
    return n_ok, n, bad_periods, gross


def _why_sentence(r: ReportResults, p: str) -> str:
    i = [str(x) for x in r.rec.period.values].index(p)
    s = r.suspects[r.suspects.period == p]
    top = s.iloc[0]
    lab, unit = LABELS.get(top.figure, (top.figure, top.units))
    text = (
        f"<b>{_e(p)}</b> fails the global test (chi2 = {float(r.rec.chi2.values[i]):.1f} on "
        f"{int(r.rec.dof.values[i])} balances, p = {_pval(r.rec.p_value.values[i])}). Its most suspect "
        "figure "
        f"is {_e(lab)} ({_num(top.reported)} {_e(unit)} reported, {_num(top.reconciled)} reconciled, "
        f"{top.adjustment_pct:+.1f} %)."
    )
    ex = r.explanations.get(p)
    alpha = float(r.rec.attrs.get("alpha", 0.05))
    if ex is not None and len(ex):
        best = ex.iloc[0]
        ok = ex[ex.p_value > alpha]
        if len(ok) == 1:
            text += (
                f" Setting aside its {_e(best.group)} leaves the other figures in agreement "
                f"(p = {_pval(best.p_value)}); setting aside any other group does not (next best p = "
                f"{_pval(ex.iloc[1].p_value)}): the {_e(best.group)} are the figures to distrust."
            )
        elif len(ok) > 1:
            text += (
                " Setting aside any one of these groups restores agreement: "
                + ", ".join(f"{_e(g)} (p = {_pval(pv)})" for g, pv in zip(ok.group, ok.p_value, strict=True))
                + "; the figures cannot tell which is wrong."
            )
        else:
            text += " No single group of figures explains it."
    b = r.balance.sel(period=p)
    parts = []
    for v, name, *_ in METALS:
        d = float(b.diff_concentrate_pct.sel(quantity=v))
        if not bool(b.closes.sel(quantity=v)):
            # diff is recomputed / published - 1; the reader wants published / recomputed - 1
            parts.append(f"{name} {100 * (1 / (1 + d / 100) - 1):+.1f} %")
    if parts:
        text += (
            " Compared with concentrate tonnes x grade, the published contained metal differs by "
            + ", ".join(parts)
            + " (published / recomputed - 1)."
        )
    return text


def _key_answers(r: ReportResults) -> str:
    n_ok, n, bad_periods, gross = _balance_facts(r)
    items = []
    # 1. data
    quiet = [p for p in bad_periods if p not in gross]
    t = (
        f"<b>Do the published figures close?</b> {n_ok} of {n} recomputed contained-metal and recovery "
        f"figures agree with the published ones within printed rounding; the others fall in "
        f"{', '.join(bad_periods)}. "
    )
    if gross:
        t += (
            f"Allowing for realistic sampling and assay error as well, only {', '.join(gross)} "
            f"{'holds' if len(gross) == 1 else 'hold'} a gross error. "
        )
    else:
        t += "Allowing for realistic sampling and assay error as well, no period holds a gross error. "
    if quiet:
        t += (
            f"The differences in {', '.join(quiet)} are larger than rounding but within the "
            f"{_error_range()} measurement error the reconciliation allows."
        )
    items.append(t)
    for p in gross:
        items.append(_why_sentence(r, p))
    # 2. calibration
    pred = _predictive_sentence(r)
    if pred:
        items.append(pred)
    cmp_ = r.comparison.sort_values("aicc").reset_index(drop=True)
    chosen = r.fit.spec.name
    rank = int(np.flatnonzero(cmp_.model.values == chosen)[0]) + 1
    row = cmp_[cmp_.model == chosen].iloc[0]
    near = cmp_[(cmp_.d_aicc < 2) & (cmp_.model != chosen)].model.tolist()
    t = (
        f"<b>Which recovery model?</b> <i>{_e(chosen)}</i> ({_e(r.fit.spec.doc)}): ranked {rank} of "
        f"{len(cmp_)} models by AICc"
        + (f" (as good within 2 AICc units: {', '.join(_e(m) for m in near)})" if near else "")
        + ". Predicting each reported quarter from the other five, its contained metal is off by "
        f"{row.loo_ag_oz_pct:.1f} % (silver), {row.loo_pb_lb_pct:.1f} % (lead) and {row.loo_zn_lb_pct:.1f} % "
        "(zinc), root mean square: the error to expect on a quarter the model has not seen."
    )
    items.append(t)
    # 3. scenarios and targets
    rows = []
    for run in r.scenarios:
        years = [int(y) for y in run.annual.year.values]
        y = 2012 if 2012 in years else years[0]
        row = [f"<i>{_e(run.scenario.name)}</i>", str(y)]
        for v, _name, _u, s in METALS:
            q = run.summary[v].sel(year=y)
            row.append(
                f"{_fixed(q.sel(stat='p50') * s, 2)} "
                f"({_fixed(q.sel(stat='p10') * s, 2)}-{_fixed(q.sel(stat='p90') * s, 2)})"
            )
        tp = run.targets
        probs = [] if tp is None or tp.empty else [t for t in tp.itertuples() if int(t.year) == y]
        row.append("<br>".join(f"{_e(t.target)}: <b>{_pct(t.probability)}</b>" for t in probs) or "&ndash;")
        rows.append(row)
    items.append(
        "<b>How much metal, and the chance of meeting the 2012 guidance?</b> Median, with P10-P90 in "
        "brackets (one year in ten below P10, one in ten above P90); guidance of the 23 Jan 2012 release: "
        "2.2-2.5 Moz Ag, about 19 Mlb Pb, more than 7.5 Mlb Zn."
        + table_html(
            rows,
            ["scenario", "year", "Ag [Moz]", "Pb [Mlb]", "Zn [Mlb]", "probability of meeting the target"],
            cls="keyt",
        )
    )
    # 5. throughput
    items.append("<b>What does more throughput buy?</b> " + _throughput_sentence(r))
    return '<div class="key"><ul>' + "".join(f"<li>{t}</li>" for t in items) + "</ul></div>"


def _throughput_sentence(r: ReportResults) -> str:
    w = r.whatif
    a = _nearest(w.availability.values, BASELINE_AVAILABILITY)
    t0 = _nearest(w.tpd.values, BASELINE_TPD)
    t1 = float(w.tpd.values.max())
    if t1 == t0:
        return "The what-if grid has a single throughput; give a range to see the trade-off."
    s0 = w.sel(availability=a, tpd=t0, stat="p50")
    s1 = w.sel(availability=a, tpd=t1, stat="p50")
    gains = []
    for v, name, u, s in METALS:
        gains.append(
            f"{name} from {_fixed(s0[v] * s, 2)} to {_fixed(s1[v] * s, 2)} {u} "
            f"({100 * (float(s1[v]) / float(s0[v]) - 1):+.0f} %)"
        )
    recs = []
    for c, el in RECOVERIES:
        r0, r1 = float(s0[c]), float(s1[c])
        if abs(r1 - r0) < 0.05:
            recs.append(f"{el} stays at {r0:.1f} % (the model's {el} recovery does not depend on throughput)")
        else:
            recs.append(f"{el} {'falls' if r1 < r0 else 'rises'} from {r0:.1f} to {r1:.1f} %")
    ore = 100 * (float(s1.ore_processed_t) / float(s0.ore_processed_t) - 1)
    ag_lo = float(w.ag_oz.sel(availability=a, tpd=t1, stat="p10")) * 1e-6
    ag_hi = float(w.ag_oz.sel(availability=a, tpd=t1, stat="p90")) * 1e-6
    lo, hi = _calibrated_tpd(r)
    return (
        f"At {100 * a:.0f} % availability, raising the calendar rate from {t0:.0f} to {t1:.0f} t/d "
        f"({ore:+.0f} % ore) raises the median yearly {', '.join(gains)}; at {t1:.0f} t/d silver is "
        f"between {ag_lo:.2f} and {ag_hi:.2f} Moz with 80 % probability. Recoveries: "
        f"{'; '.join(recs)} ({_e(r.whatif_scenario)} ore, feed unlimited). The calibration saw only "
        f"{lo:.0f}-{hi:.0f} t/d, so what happens to recovery above it is an extrapolation of the "
        "residence-time model."
    )


def _ktau_prior(r: ReportResults) -> str:
    """The prior of the lead flotation rate x residence time, as the calibration records it."""
    post = (getattr(r.calibration, "meta", None) or {}).get("posterior") or {}
    for name, text in post.get("priors", []):
        if str(name).startswith("ktau_pb"):
            return f"{name}: {text}"
    return ""


def _nsr_sentence(r: ReportResults) -> str:
    """NSR against throughput in words: the move's gain, its probability, the best rate, and
    which rates are extrapolation (with the prior that decides there)."""
    w = r.whatif
    if "nsr_usd_per_day" not in w:
        return ""
    a = _nearest(w.availability.values, BASELINE_AVAILABILITY)
    s = w.sel(availability=a)
    parts = []
    move = whatif_move(w.tpd.values)
    if move is not None:
        x0, x1 = (s.sel(tpd=t) for t in move)

        def band(x, v, sc, nd):
            q = {k: float(x[v].sel(stat=k)) * sc for k in ("p50", "p10", "p90")}
            return f"{_fixed(q['p50'], nd)} ({_fixed(q['p10'], nd)}-{_fixed(q['p90'], nd)})"

        parts.append(
            f"At {100 * a:.0f} % availability, NSR per calendar day is "
            f"{band(x0, 'nsr_usd_per_day', 1e-3, 1)} kUS$/d at {move[0]:g} t/d and "
            f"{band(x1, 'nsr_usd_per_day', 1e-3, 1)} at {move[1]:g} t/d "
            "(median, P10-P90 over the posterior draws); NSR per tonne of ore goes from "
            f"{band(x0, 'nsr_usd_per_t_ore', 1, 0)} to {band(x1, 'nsr_usd_per_t_ore', 1, 0)} US$/t"
        )
        if "p_gain" in s:
            parts.append(
                f"the move {move[0]:g} -> {move[1]:g} t/d gains NSR per day in {_pct(float(s.p_gain))} of "
                f"{int(w.attrs.get('draws', 0))} common draws"
            )
    best = float(s.best_tpd)
    if np.isfinite(best):
        top = best == float(np.max(w.tpd.values))
        parts.append(
            f"the largest expected NSR per day on the grid is at {best:g} t/d"
            + (
                ", the grid's top: before mining and milling costs more tonnes pay, so the best rate is "
                "whatever capacity limit applies (kenomill whatif --capacity, --max-operating-tpd)"
                if top
                else ""
            )
        )
    return "; ".join(parts) + ". " + _extrapolation_sentence(r)


def _extrapolation_sentence(r: ReportResults) -> str:
    w = r.whatif
    if "extrapolated" not in w:
        return ""
    lo, hi = w.attrs.get("calibrated_tpd", _calibrated_tpd(r))
    ex = [float(t) for t, e in zip(w.tpd.values, w.extrapolated.values, strict=True) if e]
    if not ex:
        return f"Every rate of the grid lies inside the {lo:g}-{hi:g} t/d the calibration was fitted on."
    prior = _ktau_prior(r)
    return (
        f"<b>Extrapolation:</b> the calibration saw {lo:g}-{hi:g} t/d only; "
        f"{', '.join(f'{t:g}' for t in ex)} t/d lie outside it (open markers and dotted line in the NSR "
        "figure, marked * in the table). There the fall of recovery with throughput, and so the NSR per "
        "tonne, follows the residence-time model and its prior more than the six quarters"
        + (f" (prior {_e(prior)})" if prior else "")
        + ": the bands shown are under this one prior; the quarters cannot tell priors apart there"
        + (
            f" ({_e(w.attrs['prior_sensitivity'])}; section 4)"
            if w.attrs.get("prior_sensitivity")
            else ", and a different prior on the rate constant gives a different band"
        )
        + ", so read those rates as assumption-driven."
    )


def _calibrated_tpd(r: ReportResults) -> tuple[float, float]:
    """Range of calendar throughput [t/d] of the quarters the calibration saw."""
    tpd = np.asarray(r.fit.data.tpd, dtype=float)
    return float(np.nanmin(tpd)), float(np.nanmax(tpd))


def _section_data(r: ReportResults) -> str:
    rep = r.reported
    from kenomill.reconcile import MILL_FIGURES

    # the balances' figures (feed, recoveries, concentrates, metal) with days and throughput
    cols = ["days", MILL_FIGURES[0], "tpd", "availability_pct", *MILL_FIGURES[1:]]
    header = ["figure [unit]"] + [_e(p) for p in rep.period.values]
    rows = []
    for c in cols:
        lab, u = LABELS.get(c, (c, rep[c].attrs.get("units", "")))
        if c == "days":
            lab, u = "calendar days", "d"
        res = rep[c + "_resolution"].values if c + "_resolution" in rep else np.ones(rep.sizes["period"])
        rows.append(
            [f"{_e(lab)} [{_e(u)}]"] + [_printed(v, d) for v, d in zip(rep[c].values, res, strict=True)]
        )
    uri = fig_to_data_uri(fig_reported(rep))
    return (
        '<h2 id="data">1. The reported figures</h2>'
        '<p class="read"><b>How to read:</b> the figures exactly as the operator printed them, one '
        "column per "
        "period (quarters, half years H1 and the 2011 year FY). Recoveries are metal in concentrate "
        "over metal "
        "in feed; silver counts both concentrates. Throughput is tonnes processed per calendar day; "
        "availability is given only for 2011Q4 and 2012Q2. <b>Assumptions:</b> none beyond the "
        f"transcription; where two releases print the same period, {_e(rep.attrs.get('merge_rule', ''))} "
        "(the overlapping figures agree).</p>"
        + table_html(rows, header, cls="data")
        + _figure(
            uri,
            "The six quarters: what went in, at which grade, and what was recovered.",
            _e(SOURCES_RELEASES) + "; kenomill.reported_periods().",
            "bar and line charts of the reported quarters",
        )
    )


def _section_balance(r: ReportResults) -> str:
    from kenomill import units

    n_ok, n, bad_periods, gross = _balance_facts(r)
    b = r.balance
    rows = []
    for p in b.period.values:
        for q in b.quantity.values:
            x = b.sel(period=p, quantity=q)
            if bool(x.closes):
                continue
            lab, u = LABELS[str(q)]
            rows.append(
                [
                    _e(p),
                    f"{_e(lab)} [{_e(u)}]",
                    _fmt_fig(str(q), x.reported),
                    _fmt_fig(str(q), x.via_feed),
                    f"{float(x.diff_feed_pct):+.2f}",
                    f"{float(x.tolerance_feed_pct):.2f}",
                    _fmt_fig(str(q), x.via_concentrate),
                    f"{float(x.diff_concentrate_pct):+.2f}",
                    f"{float(x.tolerance_concentrate_pct):.2f}",
                ]
            )
    header = [
        "period",
        "figure [unit]",
        "reported",
        "feed route",
        "diff [%]",
        "rounding allows [%]",
        "concentrate route",
        "diff [%]",
        "rounding allows [%]",
    ]
    uri = fig_to_data_uri(fig_balance(b))
    return (
        '<h2 id="balance">2. Do the figures close?</h2>'
        f"<p>{n_ok} of {n} figures close within printed rounding. Each contained-metal figure and each "
        "recovery is recomputed two ways: from the feed (ore processed x head grade x recovery) and from the "
        "concentrates (concentrate tonnes x concentrate grade). A figure closes when both "
        "recomputations agree "
        "with the published one within what the rounding of the printed digits alone can cause (exact worst "
        "case).</p>"
        '<p class="read"><b>How to read:</b> each cell is the larger of the two differences, in % of the '
        "published figure; green cells close, red cells marked NO do not. A figure that misses by more than "
        f"rounding is not necessarily wrong: sampling and assaying add {_error_range()} (next section). "
        "<b>Assumptions:</b> each printed figure is the true value rounded to its last printed digit; "
        f"contained metal is converted with {units.GRAMS_PER_TROY_OZ:.9g} g per troy ounce and "
        f"{units.LB_PER_TONNE:,.5f} lb per tonne.</p>"
        + _figure(
            uri,
            "Recomputed vs published figures, per period and figure.",
            "kenomill.balance.balance_table() on the reported figures.",
            "heat map of discrepancies",
        )
        + "<h3>Figures that do not close within rounding</h3>"
        + table_html(rows, header)
    )


def _reconcile_period_table(r: ReportResults) -> str:
    """Section 3's table: the global test of each period and its most suspect figure."""
    rec = r.rec
    rows = []
    for i, p in enumerate(rec.period.values):
        s = r.suspects[r.suspects.period == str(p)]
        top = s.iloc[0] if len(s) else None
        ge = bool(rec.gross_error.values[i])
        rows.append(
            [
                _e(p),
                f"{float(rec.chi2.values[i]):.2f}",
                str(int(rec.dof.values[i])),
                _pval(rec.p_value.values[i]),
                '<span class="bad">YES</span>' if ge else '<span class="ok">no</span>',
                "&ndash;"
                if top is None
                else f"{_e(LABELS.get(top.figure, (top.figure,))[0])} [{_e(top.units)}]",
                "&ndash;" if top is None else _num(top.reported),
                "&ndash;" if top is None else _num(top.reconciled),
                "&ndash;" if top is None else f"{top.adjustment_pct:+.2f}",
                "&ndash;" if top is None else f"{top.z:.2f}",
            ]
        )
    t1 = table_html(
        rows,
        [
            "period",
            "chi2 [-]",
            "balances (dof)",
            "p-value [-]",
            "gross error",
            "most suspect figure",
            "reported",
            "reconciled",
            "adjustment [%]",
            "z [sd]",
        ],
        highlight=list(rec.gross_error.values),
    )
    return t1


def _section_reconcile(r: ReportResults) -> str:
    rec, ra = r.rec, r.rec_across
    alpha = float(rec.attrs.get("alpha", 0.05))
    t1 = _reconcile_period_table(r)
    parts = [_why_sentence(r, p) for p in r.explanations]
    ex_tables = ""
    for p, ex in r.explanations.items():
        ex_rows = [
            [
                _e(g.group),
                _e(g.figures),
                "&ndash;" if not np.isfinite(g.chi2) else f"{g.chi2:.2f}",
                str(int(g.dof)) if np.isfinite(g.chi2) else "&ndash;",
                "not estimable from the others" if not np.isfinite(g.p_value) else _pval(g.p_value),
            ]
            for g in ex.itertuples()
        ]
        ex_tables += f"<h3>{_e(p)}: which group of figures explains the gross error?</h3>" + table_html(
            ex_rows,
            ["figures set aside", "columns", "chi2 [-]", "balances (dof)", "p-value [-]"],
            highlight=list((ex.p_value > alpha).fillna(False)),
        )
    from kenomill.reconcile import suspects

    sa = suspects(ra, r.reported, top=5)
    rows_a = [
        [
            _e(s.period),
            f"{_e(LABELS.get(s.figure, (s.figure,))[0])} [{_e(s.units)}]",
            _num(s.reported),
            _num(s.reconciled),
            f"{s.adjustment_pct:+.2f}",
            f"{s.z:.2f}",
            '<span class="bad">YES</span>' if s.flagged else "no",
        ]
        for s in sa.itertuples()
    ]
    from kenomill.reconcile import MILL_FIGURES

    rep = r.reported
    rec_rows = []
    for c in (*MILL_FIGURES, "tpd"):
        if c not in rec:
            continue
        lab, u = LABELS.get(c, (c, rec[c].attrs.get("units", "")))
        cells = [f"{_e(lab)} [{_e(u)}]"]
        for i in range(rec.sizes["period"]):
            y, x, sd = float(rep[c].values[i]), float(rec[c].values[i]), float(rec[c + "_sd"].values[i])
            if not math.isfinite(y):
                cells.append("&ndash;")
                continue
            sd_txt = f"{sd:,.0f}" if abs(sd) >= 10 else f"{sd:.2g}"  # never scientific notation
            cell = f"{_num(x, 4)}<br><small>&plusmn; {sd_txt}</small>"
            if bool(rec[c + "_flagged"].values[i]):
                cell = f'<span class="bad">{cell}</span>'
            cells.append(cell)
        rec_rows.append(cells)
    t_rec = (
        "<details><summary>The reconciled figures of every period, with their standard deviations "
        "(red: fails the measurement test)</summary>"
        + table_html(rec_rows, ["figure [unit]"] + [_e(p) for p in rec.period.values])
        + "</details>"
    )
    uri = fig_to_data_uri(fig_reconciliation(rec, r.reported))
    return (
        '<h2 id="reconcile">3. Reconciliation: which figures are suspect</h2>'
        "<p>The figures of each period are adjusted as little as their errors allow (weighted least "
        "squares) so "
        "that every balance holds exactly: ore x head grade x recovery = contained metal = concentrate "
        "tonnes x "
        "grade for Ag, Pb and Zn, and throughput x days = ore processed. The global test asks whether the "
        "adjustments needed are plausible for the errors assumed; the measurement test says which "
        "figure moved "
        "most, in standard deviations.</p>"
        f'<p class="read"><b>How to read:</b> a period with p-value below {alpha:g} holds a gross error '
        "(a figure wrong by more than its measurement error: a typo, a late assay, a different basis). "
        "<b>Assumptions:</b> "
        + _e(rec.attrs.get("error_model", ""))
        + "; errors independent. Head grade and recovery enter only as a product, so a gross error in one "
        "cannot be told from one in the other (they get the same z).</p>"
        + t1
        + t_rec
        + "".join(f"<p>{t}</p>" for t in parts)
        + _figure(
            uri,
            "Left: global test statistic per period against its limit. Right: figures ranked by how far the "
            "reconciliation had to move them.",
            "kenomill.reconcile.reconciled_periods() and suspects(), default error model.",
            "bar charts of reconciliation tests",
        )
        + ex_tables
        + "<h3>All nine periods together (quarters must add up to half years and the year)</h3>"
        + f"<p>chi2 = {float(ra.attrs['chi2_total']):.1f} on {int(ra.attrs['dof_total'])} balances, "
        f"p = {_pval(ra.attrs['p_value_total'])}: "
        + (
            "taken together the figures are consistent with the error model; the large number of "
            "balances dilutes one bad quarter, so the per-period test above is the sharper one."
            if float(ra.attrs["p_value_total"]) >= alpha
            else "taken together the figures are not consistent with the error model."
        )
        + " Most suspect figures:</p>"
        + table_html(
            rows_a,
            ["period", "figure [unit]", "reported", "reconciled", "adjustment [%]", "z [sd]", "flagged"],
        )
    )


def _recorded_comparison(r: ReportResults) -> dict | None:
    """The comparison by prediction that chose the calibration's model, as its file records it."""
    rec = getattr(r.calibration, "meta", {}).get("comparison_by_prediction")
    return rec if isinstance(rec, dict) and rec.get("table") else None


def _predictive_sentence(r: ReportResults) -> str:
    rec = _recorded_comparison(r)
    if rec is None:
        return ""
    t = pd.DataFrame(rec["table"]).set_index("candidate")
    chosen = rec["chosen"]
    if chosen not in t.index:
        return ""
    c = t.loc[chosen]
    base = t.loc[[b for b in ("naive_mean", "naive_last") if b in t.index]]
    n_c = len(t) - len(base)
    return (
        f"<b>Does it predict?</b> Of {n_c} candidate models, <i>{_e(chosen)}</i> predicts quarters it was "
        f"not fitted on best (log predictive density {c.lpd_loqo:.2f} leaving one quarter out, "
        f"{c.lpd_rolling:.2f} forecasting each quarter from the earlier ones, against "
        f"{base.lpd_loqo.max():.2f} and {base.lpd_rolling.max():.2f} for the better naive baseline). "
        f"Its contained metal is off by {c.mape_metal_loqo:.1f} % on a held-out quarter "
        f"({base.mape_metal_loqo.min():.1f} % for a naive average) and its 90 % bands held "
        f"{c.cover90_loqo:.0f} % of the held-out recoveries."
        + (
            f" {', '.join(_e(x) for x in ties)} predict as well within the Monte Carlo error of the "
            "comparison: the choice between them is not decided by six quarters."
            if (ties := rec.get("ties_within_monte_carlo_error"))
            else ""
        )
    )


def _predictive_part(r: ReportResults) -> str:
    """Section 4's comparison by prediction: the recorded table and its figure."""
    from kenomill import plots

    rec = _recorded_comparison(r)
    if rec is None:
        return (
            "<p>The calibration in use records no comparison by prediction (run <code>kenomill calibrate"
            "</code> on these periods to make one).</p>"
        )
    t = pd.DataFrame(rec["table"])
    rows = []
    for c in t.itertuples():
        k = c.pareto_k_max
        w = c.stacking_weight
        rows.append(
            [_e(c.candidate)]
            + [
                f"{getattr(c, f'{s}_{sch}'):.{d}f}"
                for sch in ("loqo", "rolling")
                for s, d in (("lpd", 2), ("crps", 2), ("mape_metal", 1), ("cover50", 0), ("cover90", 0))
            ]
            + ["" if w != w else f"{w:.2f}", "" if k != k else f"{k:.2f}"]
        )
    heads = ["candidate"] + [
        f"{sch} {h}"
        for sch in ("LOQO", "rolling")
        for h in ("lpd [nats]", "CRPS [pts]", "metal error [%]", "50 % band [%]", "90 % band [%]")
    ]
    table = table_html(
        rows, heads + ["stacking weight", "Pareto k"], highlight=[m == rec["chosen"] for m in t.candidate]
    )
    uri = fig_to_data_uri(plots.predictive_comparison(t, rec["chosen"]))
    return (
        "<h3>Which model predicts quarters it has not seen</h3>"
        "<p>Six quarters are six observations of the mill, so the candidates are compared by prediction: "
        "each quarter predicted from the other five (LOQO), and each of the last three from the quarters "
        "before it only (rolling origin), next to two naive baselines: the training quarters' mean "
        "recovery (naive_mean) and the latest quarter's recovery (naive_last).</p>"
        '<p class="read"><b>How to read:</b> lpd, the log predictive density of the held-out quarter\'s '
        "silver, lead and zinc recoveries, higher is better; CRPS in percentage points of recovery and the "
        "contained-metal error, lower is better; the bands should hold about 50 % and 90 % of the held-out "
        "recoveries. The stacking weight is the share each candidate gets in the best mixture of their "
        "predictions; a Pareto k above 0.7 marks a fold whose posterior is only approximate.</p>"
        + table
        + _figure(
            uri,
            "Scores of the held-out quarters per candidate: filled circles leaving one quarter out, open "
            "squares rolling origin; grey: naive baselines; red: the default model.",
            "kenomill.validation.compare() as recorded in the calibration file (kenomill calibrate).",
            "comparison by prediction, dot charts",
        )
        + "<h3>The comparison by fit (for reference)</h3>"
    )


def _sensitivity_part(r: ReportResults) -> str:
    """How much of a 250-400 t/d answer is the prior: the table the calibration file records."""
    rows = getattr(r.calibration, "meta", {}).get("prior_sensitivity")
    if not rows:
        return ""
    tpds = sorted({float(k.rsplit("_", 1)[1]) for k in rows[0] if k.startswith("rec_pb_p05_")})
    body = [
        [
            _e(x["prior"]),
            f"{x['ktau_pb_p05']:.1f} / {x['ktau_pb_p50']:.1f} / {x['ktau_pb_p95']:.1f}",
            *(f"{x[f'rec_pb_p05_{t:g}']:.1f}-{x[f'rec_pb_p95_{t:g}']:.1f}" for t in tpds),
        ]
        for x in rows
    ]
    lo = [x[f"rec_pb_p05_{tpds[-1]:g}"] for x in rows]
    return (
        "<h3>How much of a high-throughput answer is assumption</h3>"
        "<p>The quarters ran at 201-245 t/d, so they say little about the lead circuit's rate constant "
        "k&tau; beyond that; its prior comes from public mill facts (320 t/d days in 2011 Q1 at 90 % lead "
        "recovery, a mill that runs at 250 t/d, a 400 t/d licence). The same posterior under other priors "
        f"moves the lower end of the 90 % band of lead recovery at {tpds[-1]:g} t/d from {min(lo):.1f} % "
        f"to {max(lo):.1f} %; at {tpds[0]:g} t/d the priors nearly agree. Throughput beyond the "
        "calibrated range is extrapolation by this much.</p>"
        + table_html(
            body,
            ["k&tau; prior", "k&tau; 5/50/95 %"] + [f"lead recovery at {t:g} t/d [%]" for t in tpds],
        )
        + '<p class="read"><b>How to read:</b> each row is the 90 % band of lead recovery at 10 % Pb '
        "and 92 % availability under one prior; the packaged calibration uses the median-6 prior. Source: "
        "kenomill.validation.prior_sensitivity() as recorded in the calibration file "
        "(kenomill calibrate --sensitivity).</p>"
    )


def _calibration_tables(r: ReportResults, cmp_: pd.DataFrame, chosen: str) -> tuple[str, str, str]:
    """The model comparison, parameter and leave-one-out tables of section 4."""
    from kenomill import recovery

    fit = r.fit
    rows = []
    for c in cmp_.itertuples():
        rows.append(
            [
                _e(c.model),
                str(c.k),
                f"{c.aicc:.1f}",
                f"{c.d_aicc:.1f}",
                f"{c.d_bic:.1f}",
                f"{c.loo_rec_ag_pts:.2f}",
                f"{c.loo_rec_pb_pts:.2f}",
                f"{c.loo_rec_zn_pts:.2f}",
                f"{getattr(c, 'loo_ag_oz_pct', float('nan')):.2f}",
                f"{getattr(c, 'loo_pb_lb_pct', float('nan')):.2f}",
                f"{getattr(c, 'loo_zn_lb_pct', float('nan')):.2f}",
            ]
        )
    t_cmp = table_html(
        rows,
        [
            "model",
            "free parameters",
            "AICc [-]",
            "&Delta;AICc [-]",
            "&Delta;BIC [-]",
            "LOO Ag recovery [pts]",
            "LOO Pb recovery [pts]",
            "LOO Zn recovery [pts]",
            "LOO Ag oz [%]",
            "LOO Pb lb [%]",
            "LOO Zn lb [%]",
        ],
        highlight=[m == chosen for m in cmp_.model],
    )
    prm = fit.parameters()
    p_rows = [
        [
            _e(x.parameter),
            f"{x.value:.4g}",
            "at bound" if x.at_bound else (f"{x.se:.2g}" if np.isfinite(x.se) else "not identified"),
            f"{x.lo:g} to {x.hi:g}",
            _e(x.units),
            # the docs name the constant; the reader wants its value
            _e(x.meaning.replace("REFERENCE_TPD", f"{recovery.REFERENCE_TPD:g} t/d (operating)")),
        ]
        for x in prm.itertuples()
    ]
    t_prm = table_html(p_rows, ["parameter", "value", "standard error", "allowed range", "unit", "meaning"])
    loo = r.loo
    l_rows = []
    for i, p in enumerate(loo.period.values):
        row = [_e(p)]
        for v, *_ in METALS:
            rep = float(loo[v + "_reported"].values[i])
            pr = float(loo[v].values[i])
            row += [_num(rep), _num(pr), f"{100 * (pr / rep - 1):+.1f}"]
        l_rows.append(row)
    t_loo = table_html(
        l_rows,
        [
            "quarter left out",
            "Ag reported [oz]",
            "Ag predicted [oz]",
            "error [%]",
            "Pb reported [lb]",
            "Pb predicted [lb]",
            "error [%]",
            "Zn reported [lb]",
            "Zn predicted [lb]",
            "error [%]",
        ],
    )
    return t_cmp, t_prm, t_loo


def _section_calibration(r: ReportResults) -> str:
    fit = r.fit
    chosen = fit.spec.name
    cmp_ = r.comparison.sort_values("aicc").reset_index(drop=True)
    t_cmp, t_prm, t_loo = _calibration_tables(r, cmp_, chosen)
    loo = r.loo
    warn = "".join(f"<li>{_e(w)}</li>" for w in fit.warnings)
    avail = ", ".join(
        f"{_e(p)} {100 * a:.0f} %{' (fitted)' if f else ''}"
        for p, a, f in zip(fit.data.periods, fit.availability, fit.availability_fitted, strict=True)
    )
    lo, hi = _calibrated_tpd(r)
    u1 = fig_to_data_uri(fig_model_comparison(cmp_, chosen))
    u2 = fig_to_data_uri(r.figures["reported_vs_fitted"])
    u3 = fig_to_data_uri(r.figures["recovery_curves"])
    u4 = fig_to_data_uri(fig_loo(loo))
    return (
        '<h2 id="calibration">4. Recovery curves: which model and how good</h2>'
        "<p>Each candidate model describes how recovery and concentrate grade respond to head grade and to "
        "throughput (residence time in the cells falls as throughput rises). Each is fitted to the six "
        f"quarters by weighted least squares. The default model is <b>{_e(chosen)}</b>; the packaged "
        "calibration, which the scenarios use, is this fit.</p>"
        + _predictive_part(r)
        + '<p class="read"><b>How to read:</b> AICc and BIC balance fit against the number of parameters: '
        "lower "
        "is better and differences under about 2 mean no real difference. LOO (leave one quarter out): each "
        "quarter is predicted by a fit to the other five, the honest error on a quarter the model has "
        "not seen; "
        "recoveries in percentage points, contained metal in % (root mean square over the six quarters).</p>"
        + t_cmp
        + _figure(
            u1,
            "Left: AICc difference to the best model. Right: leave-one-out error of contained metal.",
            "kenomill.calibrate.compare_models() on the six reported quarters (raw figures).",
            "model comparison bar charts",
        )
        + _sensitivity_part(r)
        + f"<h3>The fitted parameters of {_e(chosen)}</h3>"
        + t_prm
        + '<p class="read"><b>How to read:</b> the standard error is the parameter\'s 1-sigma uncertainty; '
        '"at bound": the best fit lies on the edge of the allowed range; "not identified": the six '
        "quarters do not determine this parameter: its value carries no information from the data.</p>"
        + f"<p>Availability used per quarter: {avail}. Quarters scatter {fit.scale:.1f} times more than the "
        "error model of the figures allows; that quarter-to-quarter scatter is carried into every prediction "
        "and scenario.</p>"
        + (f"<p>Warnings from the fit:</p><ul>{warn}</ul>" if warn else "")
        + '<p class="read"><b>Assumptions:</b> operating throughput = calendar throughput / availability '
        f"(availability {100 * fit.availability_prior[0]:.0f} &plusmn; "
        f"{100 * fit.availability_prior[1]:.0f} % "
        f"where not reported); throughput varied only from {lo:.0f} to {hi:.0f} t/d, so rate constants are "
        "weakly determined and their uncertainty is wide.</p>"
        + _figure(
            u2,
            "Each reported figure against the model's value (on the line: perfect fit; bars: one standard "
            "deviation of the figure's error).",
            "kenomill.plots.reported_vs_fitted() of kenomill.calibrate.default_fit().",
            "reported versus fitted scatter plots",
        )
        + _figure(
            u3,
            "Recovery against head grade (top) and throughput (bottom): the calibrated curve, its 5-95 % "
            "prediction band, and the reported quarters; the grey band is the throughput range "
            "calibrated on.",
            "kenomill.plots.recovery_curves() with the packaged calibration "
            f"({r.settings.get('curve_draws', '')} draws).",
            "recovery curves",
        )
        + "<h3>Leave-one-quarter-out predictions</h3>"
        + t_loo
        + _figure(
            u4,
            "Error of each quarter's contained metal when the quarter was left out of the fit.",
            f"kenomill.calibrate.leave_one_out() of {_e(chosen)}.",
            "bar chart of leave-one-out errors",
        )
    )


def _section_whatif(r: ReportResults) -> str:
    w = r.whatif
    a = _nearest(w.availability.values, BASELINE_AVAILABILITY)
    s = w.sel(availability=a)
    rows = []
    for t in s.tpd.values:
        x = s.sel(tpd=t)
        row = [
            f"{t:.0f}",
            _fixed(x.operating_tpd.sel(stat="p50"), 0),
            _fixed(x.ore_processed_t.sel(stat="p50") / 1e3, 1),
        ]
        row += [_fixed(x[c].sel(stat="p50"), 1) for c, _ in RECOVERIES]
        for v, _n, _u, sc in METALS:
            row.append(
                f"{_fixed(x[v].sel(stat='p50') * sc, 2)} "
                f"({_fixed(x[v].sel(stat='p10') * sc, 2)}-{_fixed(x[v].sel(stat='p90') * sc, 2)})"
            )
        rows.append(row)
    t = table_html(
        rows,
        [
            "calendar throughput [t/d]",
            "operating rate [t/d]",
            "ore [kt/year]",
            "Ag recovery [%]",
            "Pb recovery [%]",
            "Zn recovery [%]",
            "Ag [Moz/year] median (P10-P90)",
            "Pb [Mlb/year]",
            "Zn [Mlb/year]",
        ],
    )
    nsr_html = ""
    if "nsr_usd_per_day" in w:
        ex = w.extrapolated.values
        nrows = []
        for k, tp in enumerate(s.tpd.values):
            x = s.sel(tpd=tp)
            d = {q: float(x.nsr_usd_per_day.sel(stat=q)) / 1e3 for q in ("p50", "p10", "p90")}
            o = {q: float(x.nsr_usd_per_t_ore.sel(stat=q)) for q in ("p50", "p10", "p90")}
            nrows.append(
                [
                    f"{tp:.0f}" + (" *" if bool(ex[k]) else ""),
                    f"{_fixed(d['p50'], 1)} ({_fixed(d['p10'], 1)}-{_fixed(d['p90'], 1)})",
                    f"{_fixed(o['p50'], 0)} ({_fixed(o['p10'], 0)}-{_fixed(o['p90'], 0)})",
                    "extrapolation" if bool(ex[k]) else "calibrated range",
                ]
            )
        u3 = fig_to_data_uri(fig_whatif_nsr(w, a))
        nsr_html = (
            f"<h3>Net smelter return against throughput</h3><p>{_nsr_sentence(r)}</p>"
            + _figure(
                u3,
                "NSR per calendar day (left) and per tonne of ore (right) against throughput at "
                f"{100 * a:.0f} % availability, median and P10-P90 band; grey: the calibrated range; "
                "open markers: extrapolation.",
                f"kenomill.value.whatif_nsr() on scenario {_e(r.whatif_scenario)}: "
                f"{_e(w.attrs.get('terms', ''))} (kenomill/data/terms_typical_2012.toml, every term with its "
                f"source or marked as an assumption); prices: {_e(w.attrs.get('prices', ''))}.",
                "NSR against throughput",
            )
            + table_html(
                nrows,
                [
                    "calendar throughput [t/d]",
                    "NSR [kUS$/d] median (P10-P90)",
                    "NSR [US$/t ore] median (P10-P90)",
                    "calibration",
                ],
            )
        )
    u1 = fig_to_data_uri(fig_whatif_surface(w))
    u2 = fig_to_data_uri(fig_whatif_tradeoff(w, a, _calibrated_tpd(r)))
    return (
        '<h2 id="whatif">5. Throughput what-ifs</h2>'
        f"<p>{_throughput_sentence(r)}</p>"
        '<p class="read"><b>How to read:</b> each point of the grid is a year of milling at that calendar '
        "throughput and availability, simulated day by day with the same random draws at every point (so "
        "differences between points are the mill's, not noise). The surface shows the median; the trade-off "
        "charts show the P10-P90 band: recovery falls as residence time shortens, yet the extra tonnes more "
        "than make up for it. <b>Assumptions:</b> "
        + _e(w.attrs.get("note", ""))
        + f"; ore as in scenario {_e(r.whatif_scenario)}; {int(w.attrs.get('draws', 0))} draws per point.</p>"
        + _figure(
            u1,
            "Median yearly metal over calendar throughput and availability.",
            f"kenomill.simulate.whatif() on scenario {_e(r.whatif_scenario)}, year "
            f"{_e(w.attrs.get('year', ''))}.",
            "what-if surfaces",
        )
        + _figure(
            u2,
            "Recoveries (top) and yearly metal (bottom) against throughput, at "
            f"{100 * a:.0f} % availability; grey: throughput range of the calibration.",
            f"kenomill.simulate.whatif() on scenario {_e(r.whatif_scenario)}.",
            "throughput trade-off",
        )
        + f"<h3>At {100 * a:.0f} % availability</h3>"
        + t
        + nsr_html
    )


def _section_scenarios(r: ReportResults) -> str:
    rows = []
    for run in r.scenarios:
        for y in run.annual.year.values:
            nq = int(run.annual.quarters.sel(year=y))
            row = [_e(run.scenario.name), f"{int(y)}" + ("" if nq == 4 else f" ({nq} quarters)")]
            q = run.summary.sel(year=y)
            row.append(_fixed(q.ore_processed_t.sel(stat="p50") / 1e3, 1))
            for v, _n, _u, sc in METALS:
                row += [_fixed(q[v].sel(stat=st) * sc, 2) for st in ("p10", "p50", "p90")]
            rows.append(row)
    hdr = ["scenario", "year", "ore milled, median [kt]"]
    hdr += [
        "Ag P10 [Moz]",
        "Ag P50 [Moz]",
        "Ag P90 [Moz]",
        "Pb P10 [Mlb]",
        "Pb P50 [Mlb]",
        "Pb P90 [Mlb]",
        "Zn P10 [Mlb]",
        "Zn P50 [Mlb]",
        "Zn P90 [Mlb]",
    ]
    t_sum = table_html(rows, hdr)
    trows = []
    for run in r.scenarios:
        for t in run.targets.itertuples() if not run.targets.empty else []:
            trows.append(
                [
                    _e(run.scenario.name),
                    _e(t.target),
                    str(t.year),
                    _pct(t.probability),
                    _pct(t.p_at_least_min),
                    _e(t.source),
                ]
            )
    t_tg = table_html(
        trows,
        [
            "scenario",
            "target",
            "year",
            "probability of meeting it",
            "probability of at least the minimum",
            "source",
        ],
    )
    drows = []
    for run in r.scenarios:
        for v, name, *_ in METALS:
            d = run.drivers[v]
            # inputs only: realised availability and head grades are consequences (share 0)
            d = d[d.share > 0].head(4) if "share" in d else d
            if d.empty:
                continue
            drows.append(
                [
                    _e(run.scenario.name),
                    f"{name} {int(d.year.iloc[0])}",
                    "; ".join(f"{_e(plain_driver(x.driver))} ({x.rho:+.2f})" for x in d.itertuples()),
                ]
            )
    t_dr = table_html(
        drows, ["scenario", "yearly metal", "strongest drivers (rank correlation with the result)"]
    )
    det = ""
    for run in r.scenarios:
        sc = run.scenario
        det += (
            f"<details><summary><b>{_e(sc.name)}</b>: {_e(sc.description)}</summary><ul>"
            + "".join(f"<li>{_e(a)}</li>" for a in sc.assumptions)
            + f"</ul><p class='src'>File: {_e(run.path.name)}</p></details>"
        )
    u1 = fig_to_data_uri(fig_fan([run.ds for run in r.scenarios]))
    guidance = [t for run in r.scenarios for t in run.scenario.targets if t.year == 2012]
    u2 = fig_to_data_uri(fig_targets([run.ds for run in r.scenarios], guidance, 2012))
    d = r.settings.get("draws", "")
    return (
        '<h2 id="scenarios">6. Scenarios: Bellekeno, Onek and Lucky Queen</h2>'
        "<p>Each scenario is simulated day by day over its horizon: mine deliveries, a run-of-mine "
        "stockpile, "
        "mill stoppages, ore grades that wander from day to day, and the metallurgical response of each ore, "
        f"all uncertain; {d} draws per scenario. No metallurgical test work on Onek or Lucky Queen ore is "
        "public, so their response is the Bellekeno calibration shifted by an uncertain offset.</p>"
        '<p class="read"><b>How to read:</b> P50 is the median outcome; P10 and P90 bound the middle 80 % of '
        "outcomes (one year in ten below P10, one in ten above P90). The probabilities are the share of "
        "draws "
        "that meet each target. Expand a scenario below to read every assumption it makes.</p>"
        + det
        + t_sum
        + "<h3>Probability of meeting targets</h3>"
        + t_tg
        + _figure(
            u1,
            "Metal per quarter: median and P10-P90 band of each scenario.",
            "kenomill.simulate.simulate() of each scenario file.",
            "fan charts",
        )
        + _figure(
            u2,
            "How 2012 production is distributed in each scenario with 2012 in its horizon, against the "
            "guidance.",
            "kenomill.simulate.annual() of each scenario; guidance: Alexco news releases 23 Jan and 16 "
            "Apr 2012.",
            "histograms of 2012 production",
        )
        + "<h3>What drives the spread</h3>"
        + '<p class="read">Spearman rank correlation of the yearly metal (last full year of the '
        "horizon) with "
        'each uncertain input drawn per run (+: more of the input, more metal). "calibration" inputs are the '
        'recovery-curve parameters, "mean grade" the uncertain average grade of a mine, "ore ..." the '
        'uncertain response of a new ore, "scatter" the quarter-to-quarter variation of the mill.</p>' + t_dr
    )


def _section_limits(r: ReportResults) -> str:
    lo, hi = _calibrated_tpd(r)
    a_mu, a_sd = r.fit.availability_prior
    items = [
        "The data are nine published periods (six quarters) of one mill and one ore; every model is "
        "calibrated on them alone. No plant survey, cell count or residence time is public.",
        f"Throughput varied only from {lo:.0f} to {hi:.0f} t/d in the quarters: the fall of recovery at "
        "higher "
        "throughput comes from the model form (first-order flotation, residence time inversely "
        "proportional to "
        "throughput), not from observation.",
        "Availability was reported for two quarters only (96 % and 90 %); elsewhere it is uncertain "
        f"({100 * a_mu:.0f} &plusmn; {100 * a_sd:.0f} %).",
        "The reconciliation treats the published figures as independent measurements with the stated errors; "
        "figures computed by the operator from one another are not independent, which makes the tests "
        "somewhat optimistic.",
        "Onek and Lucky Queen: grades from NI 43-101 Indicated resources with assumed dilution; mining "
        "rates, "
        "timing and metallurgical response are assumptions stated in each scenario file.",
        "Prices, payables and smelter terms are outside the model: results are metal in concentrates, not "
        "payable metal or revenue.",
    ]
    refs = [
        SOURCES_RELEASES + ". " + SOURCES_FILES + ".",
        "Deposit facts (Onek, Lucky Queen resources): " + _deposit_sources() + " (transcribed in the "
        "package's deposits.csv).",
        "Kuehn, D.R., Davidson, H. (1961) Computer control II: mathematics of control. Chem. Eng. Prog. 57, "
        "44-47 (weighted least-squares reconciliation).",
        "Narasimhan, S., Jordache, C. (2000) Data Reconciliation and Gross Error Detection. Gulf "
        "(bilinear reconciliation, global and measurement tests).",
        "Morrison, R.D. (ed.) (2008) An Introduction to Metal Balancing and Reconciliation. JKMRC.",
        "Wills, B.A., Finch, J.A. (2016) Wills' Mineral Processing Technology, 8th ed., ch. 12 "
        "(flotation kinetics: plug flow, mixed cells).",
        "Klimpel, R.R. (1980) Selection of chemical reagents for flotation. Mineral Processing Plant Design, "
        "2nd ed., SME (rectangular rate distribution).",
        "Kelsall, D.F. (1961) Application of probability in the assessment of flotation systems. Trans. "
        "IMM 70, "
        "191-204 (fast and slow floating components).",
        "Burnham, K.P., Anderson, D.R. (2002) Model Selection and Multimodel Inference, 2nd ed. "
        "Springer (AICc).",
    ]
    return (
        '<h2 id="limits">7. Assumptions, limits and sources</h2><ul>'
        + "".join(f"<li>{t}</li>" for t in items)
        + "</ul><h3>Sources and references</h3><ol>"
        + "".join(f"<li>{_e(t)}</li>" for t in refs)
        + "</ol>"
    )


def render_html(r: ReportResults, command: str = "kenomill report") -> str:
    """The whole page as one HTML string (figures embedded, no external reference).

    The page is the Jinja2 template ``kenomill/templates/report.html.j2`` (autoescaped)
    with the style sheet and script of the same directory inlined; the sections are
    assembled here from the results.
    """
    import jinja2
    from markupsafe import Markup

    import kenomill

    env = jinja2.Environment(
        loader=jinja2.PackageLoader("kenomill", "templates"),
        autoescape=jinja2.select_autoescape(["html", "j2"]),
        keep_trailing_newline=True,
    )
    sections = [
        _key_answers(r),
        _section_data(r),
        _section_balance(r),
        _section_reconcile(r),
        _section_calibration(r),
        _section_whatif(r),
        _section_scenarios(r),
        _section_limits(r),
    ]
    context = {
        "version": kenomill.__version__,
        "generated": _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "settings": r.settings,
        "command": command,
        # the sections escape every figure and name they print (_e): already markup
        "sections": [Markup(x) for x in sections],
    }
    return env.get_template("report.html.j2").render(**context)


def check_output_path(path) -> Path:
    """Refuse an output path that is not an .html file in an existing directory (before any work)."""
    from kenomill import io

    return io.check_output_path(path, allowed={".html": "HTML page", ".htm": "HTML page"})


def save_html(results: ReportResults, path, *, command: str = "kenomill report") -> Path:
    """Render ``results`` (:func:`render_html`) and write the page to ``path``: whole or not at all."""
    from kenomill.io import atomic_path

    p = check_output_path(path)
    text = render_html(results, command=command)
    with atomic_path(p) as tmp:
        tmp.write_text(text, encoding="utf-8")
        make_readable(tmp)
    return p


def write_report(path="report.html", *, command: str = "kenomill report", **kwargs) -> Path:
    """Run :func:`collect` with ``kwargs`` and write the page to ``path`` (:func:`save_html`)."""
    check_output_path(path)  # refuse a bad path before a minute of work
    return save_html(collect(**kwargs), path, command=command)


def make_readable(path) -> None:
    """Give ``path`` the permissions of a new file (mkstemp makes it private, 0600; a report is to share)."""
    mask = os.umask(0)
    os.umask(mask)
    os.chmod(path, 0o666 & ~mask)
