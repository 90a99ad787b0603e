"""Write the four kenomill notebooks (without outputs) from the cells below.

Run from the repository root after changing a cell:

    .venv/bin/python notebooks/make_notebooks.py

The notebooks are generated rather than edited by hand so that they stay free of outputs
and execution counts (the repository stores none) and so that a change shows as a plain
diff of this file. Each notebook runs top to bottom on small sizes by default, fast enough
for CI (``pytest --nbmake notebooks``, run by ``python3 dev.py test``); the environment
variable ``KENOMILL_DRAWS`` (and ``KENOMILL_FULL=1`` for the model comparison) makes them
bigger, e.g.

    cd notebooks && KENOMILL_DRAWS=2000 KENOMILL_FULL=1 ../.venv/bin/jupyter execute \\
        --output=/tmp/04_executed 04_onek_lucky_queen.ipynb

(``jupyter execute`` comes with nbclient; ``--output`` writes a copy with outputs outside
notebooks/, which leaves the stored notebook clean and out of ``pytest --nbmake notebooks``.)
"""

from __future__ import annotations

from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

HERE = Path(__file__).resolve().parent

SETUP = '''\
import os
from pathlib import Path

import io

import matplotlib
import numpy as np
import pandas as pd

matplotlib.use("Agg")  # figures are shown as PNG by show() below, whatever the front end
import matplotlib.pyplot as plt
from IPython.display import Image, display


def show(fig):
    """Display a matplotlib figure as a PNG and close it."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    plt.close(fig)
    display(Image(buf.getvalue()))


pd.set_option("display.width", 160)
pd.set_option("display.max_columns", 30)
# Small sizes by default so CI runs this notebook quickly; for smoother bands run with
# e.g. KENOMILL_DRAWS=2000 (see notebooks/make_notebooks.py).
DRAWS = int(os.environ.get("KENOMILL_DRAWS", "{draws}"))
# the repository root (scenario files live in scenarios/), whether run from notebooks/ or the root
ROOT = Path.cwd() if (Path.cwd() / "scenarios").is_dir() else Path.cwd().parent
'''

NB01 = [
    (
        "md",
        """\
# 01 The reported quarters: do they close, and which figures are suspect?

The operator (Alexco Resource Corp.) published quarterly production of the Keno Hill mill
in news releases: ore processed, head grades, recoveries, concentrate tonnes and grades,
and contained silver, lead and zinc. Six quarters (2011Q1-2012Q2), two half years and the
2011 year are transcribed in `kenomill/data/reported_periods.csv` with their sources.

This notebook shows

1. the figures as printed;
2. whether they close: contained metal recomputed from the feed (ore x head grade x
   recovery) and from the concentrates (tonnes x grade), against what printed rounding
   alone allows;
3. their reconciliation by weighted least squares, the global test per period and the
   measurement test per figure: which figures are suspect, and why.""",
    ),
    ("code", SETUP.format(draws=100)),
    (
        "code",
        """\
from kenomill import plots, report
from kenomill.data import FIGURES
from kenomill.study import Study

study = Study()  # the packaged periods; each step below is computed once and kept
reported = study.periods()
cols = [c for c in FIGURES if c in reported]
table = reported[cols].to_dataframe().T
table.insert(0, "units", [reported[c].attrs.get("units", "") for c in cols])
table""",
    ),
    (
        "md",
        """\
Units: t = metric tonnes, g/t = grams per tonne, % = mass per cent (recoveries: per cent
of the metal in the feed), troy_oz = troy ounces, lb = pounds, t/d = tonnes per calendar day.
Silver recovery counts both concentrates; lead recovery the lead concentrate; zinc
recovery the zinc concentrate.""",
    ),
    ("code", "show(plots.reported_quarters(reported))"),
    (
        "md",
        """\
## Do the figures close?

`kenomill.balance.balance_table` recomputes each contained-metal figure and each
recovery by two routes and compares them with the printed figure. The tolerance is the
largest difference that rounding of the printed digits alone can cause (exact worst
case); a figure closes when both routes are within it.""",
    ),
    (
        "code",
        """\
from kenomill.balance import balance_frame

bal = study.balance()
frame = balance_frame(bal)
print(f"{int(bal.closes.sum())} of {bal.closes.size} figures close within printed rounding")
frame[~frame.closes].round(2)""",
    ),
    ("code", "show(plots.balance_discrepancies(bal))"),
    (
        "md",
        """\
## Reconciliation

Rounding is not the only error: sampling, weighing and assaying add about 1-2 %. The
reconciliation (`kenomill.reconcile.reconciled_periods`) adjusts every figure of a period
as little as its error allows so that all balances hold exactly, then asks whether the
adjustments are plausible (global chi-square test, per period) and which figure moved
most (measurement test, in standard deviations, Sidak-corrected). The error model is
printed below; `kenomill reconcile --rel-pct` changes it.""",
    ),
    (
        "code",
        """\
from kenomill.reconcile import reconciled_periods, suspects, summary_frame

rec = study.reconcile(error_sizes="estimated")  # the sizes estimated from the periods
print("error model:", rec.attrs["error_model"])
summary_frame(rec)[["period", "chi2", "dof", "p_value", "gross_error"]].round(4)""",
    ),
    ("code", "suspects(rec, reported, top=10).round(3)"),
    ("code", "show(plots.reconciliation_tests(rec, reported))"),
    (
        "md",
        """\
### Why does a period fail?

For each period that fails the global test, the figures are reconciled again with one
group of figures set aside (treated as unknown and estimated from the others). A group
whose removal leaves the remaining figures consistent (p-value above 0.05) is the likely
culprit; if several groups do, the figures cannot tell which one is wrong.""",
    ),
    (
        "code",
        """\
for period, table in report.explain_gross_errors(reported, rec).items():
    print(period)
    display(table.round(4))""",
    ),
    (
        "md",
        """\
### Rounding only, and all periods together

With rounding as the only error (no sampling or assay error), more periods fail: the
differences there are real but small. Reconciling all nine periods together adds the
constraint that quarters add up to their half years and to the year.""",
    ),
    (
        "code",
        """\
from kenomill.errormodel import DEFAULT_RELATIVE_PCT, ErrorModel

rounding_only = ErrorModel(relative_pct=dict.fromkeys(DEFAULT_RELATIVE_PCT, 0.0), columns_pct={})
rec_r = reconciled_periods(error_model=rounding_only)
pd.DataFrame(
    {
        "default error model": rec.gross_error.values,
        "rounding only": rec_r.gross_error.values,
    },
    index=[str(p) for p in rec.period.values],
)""",
    ),
    (
        "code",
        """\
rec_all = study.reconcile(across_periods=True, error_sizes="estimated")
print(
    f"all periods together: chi2 = {rec_all.attrs['chi2_total']:.1f}, "
    f"dof = {rec_all.attrs['dof_total']}, p = {rec_all.attrs['p_value_total']:.3g}"
)
suspects(rec_all, reported, top=5).round(3)""",
    ),
    (
        "md",
        """\
**Reading.** The tables above name the periods whose figures do not close within
rounding, the periods whose figures are inconsistent even with realistic measurement
errors, the figure that moves most in each, and the group of figures whose removal makes
it consistent. The reconciled figures (`reconciled_periods()`) are what the calibration
can fit to (`kenomill calibrate --data reconciled`).""",
    ),
]

NB02 = [
    (
        "md",
        """\
# 02 Recovery curves: calibration, model comparison, leave-one-out

A family of recovery models (constant, grade-dependent fixed tail, first-order kinetics
with residence time proportional to 1/throughput as plug flow or mixed cells, Klimpel,
two-component, and combinations) is fitted to the six reported quarters by weighted
least squares. Which one to trust is decided by AICc/BIC and by leave-one-quarter-out
prediction error.""",
    ),
    ("code", SETUP.format(draws=300)),
    (
        "code",
        """\
from kenomill import calibrate, plots, recovery
from kenomill.study import Study

study = Study()  # the packaged periods and calibration; each step computed once and kept

pd.DataFrame(
    [(m.name, ", ".join(m.free), m.doc) for m in recovery.MODELS.values()],
    columns=["model", "free parameters", "description"],
)""",
    ),
    (
        "md",
        """\
## The default model, fitted

`calibrate.default_fit()` is the fit behind the packaged calibration that the scenarios
use. Parameters come with standard errors; the warnings say what the six quarters cannot
pin down.""",
    ),
    (
        "code",
        """\
fit = study.fit()  # the packaged periods: calibrate.default_fit()
print(f"model {fit.spec.name}: chi2 = {fit.chi2:.1f} over {fit.n_obs} figures")
print(f"residual scale {fit.scale:.2f} (quarters scatter that many times more than the error model allows)")
for w in fit.warnings:
    print("warning:", w)
fit.parameters()""",
    ),
    (
        "code",
        """\
t = fit.table()
t.pivot(index="period", columns="figure", values="z").round(2)  # (fitted - reported) / sigma""",
    ),
    ("code", "show(plots.reported_vs_fitted(fit))"),
    (
        "md",
        """\
## Model comparison by prediction

Six quarters are six observations of the mill, so the candidates are compared by how well
they predict quarters they were not fitted on: exact leave-one-quarter-out and rolling
origin (fit on quarters 1..k, predict k+1), next to two naive baselines (the training
quarters' mean recovery; the latest quarter's recovery). The packaged calibration records
the comparison that chose its model; `validation.compare` reruns it (all candidates take a
minute or two; here two of them, or all with `KENOMILL_FULL=1`).""",
    ),
    (
        "code",
        """\
from kenomill import validation

recorded = study.calibration().meta.get("comparison_by_prediction")
if recorded:
    show(plots.predictive_comparison(recorded["table"], recorded["chosen"]))
cands = None if os.environ.get("KENOMILL_FULL") else ["constant", calibrate.DEFAULT_MODEL]
live = validation.compare(cands, fit.data, workers=1)
print(live.describe_choice())
live.table.round(2)""",
    ),
    (
        "md",
        """\
## Model comparison by fit (for reference)

Lower AICc/BIC is better (differences under about 2 are no real difference). LOO columns:
each quarter predicted from a fit to the other five, root mean square over the six
quarters; recoveries in percentage points (`_pts`), contained metal in % (`_pct`). By
default a few models are compared to keep the notebook quick; `KENOMILL_FULL=1` compares
all of them.""",
    ),
    (
        "code",
        """\
if os.environ.get("KENOMILL_FULL"):
    models = list(recovery.MODELS)
else:
    models = ["constant", "fixed_tail", "plug_pb_tail_zn", calibrate.DEFAULT_MODEL]
cmp_ = study.compare(models, starts=2, loo_starts=1)
shown = ["model", "k", "aicc", "d_aicc", "d_bic", "loo_ag_oz_pct", "loo_pb_lb_pct", "loo_zn_lb_pct"]
cmp_[shown].round(2)""",
    ),
    ("code", "show(plots.model_comparison(cmp_, fit.spec.name))"),
    (
        "md",
        """\
## Recovery curves with bands

Recovery against head grade and against throughput, other inputs at the mean quarter,
with 5-95 % prediction bands (parameter uncertainty, unknown availability and the
quarter-to-quarter scatter). The grey band is the throughput range the calibration saw:
outside it the curve is the model's extrapolation.""",
    ),
    ("code", "show(plots.recovery_curves(fit, study.calibration(), n_draws=DRAWS))"),
    (
        "md",
        """\
Throughput varied only from 201 to 245 t/d in the quarters, so the rate constants are
weakly identified: the profile of the fit's chi2 over the lead rate constant (others
refitted) is nearly flat over a wide range.""",
    ),
    (
        "code",
        """\
name = next((p for p in fit.spec.free if p.startswith("ktau")), None)
if name is not None:
    prof = calibrate.profile(fit.spec.name, name, np.geomspace(0.5, 20, 7), fit.data)
    display(prof.round(2))
    show(plots.profile_plot(prof, name))""",
    ),
    (
        "md",
        """\
## Leave-one-quarter-out

Each quarter's figures are predicted by a fit that never saw them; this is the error to
expect on a new quarter.""",
    ),
    (
        "code",
        """\
loo = study.loo(starts=2)
display(pd.Series(calibrate.loo_errors(loo)).round(2).to_frame("RMS error"))
show(plots.leave_one_out(loo))""",
    ),
    (
        "md",
        """\
## Predicting a quarter the model has not seen

A hypothetical feed: 22,000 t at 800 g/t Ag, 9.5 % Pb, 5.5 % Zn, 240 t/d calendar,
availability unknown (drawn from its prior). `_p05`/`_p95` are 5 % and 95 % prediction
bounds (the same as `kenomill predict FEED.csv --out PRED.csv`).""",
    ),
    (
        "code",
        """\
feed = pd.DataFrame(
    {
        "period": ["2012Q3"],
        "ore_processed_t": [22000.0],
        "head_ag_gpt": [800.0],
        "head_pb_pct": [9.5],
        "head_zn_pct": [5.5],
        "tpd": [240.0],
    }
)
pred = study.predict(feed, n_draws=max(DRAWS, 200))
calibrate.prediction_frame(pred).T""",
    ),
]

NB03 = [
    (
        "md",
        """\
# 03 Throughput what-ifs: recovery lost, metal gained

What does the mill produce if it runs faster? Residence time in the flotation cells falls
as throughput rises, so recovery falls; more tonnes go through, so more metal comes out.
`kenomill.simulate.whatif` sweeps calendar throughput and availability with Bellekeno ore
(feed unlimited, capacity cap lifted), a year of daily steps per grid point, the same
random draws at every point.""",
    ),
    ("code", SETUP.format(draws=40)),
    (
        "code",
        """\
from kenomill import plots, scenario, simulate
from kenomill.study import Study

study = Study()  # the packaged calibration; each run computed once and kept

path = ROOT / "scenarios" / "bellekeno_only.toml"
sc = scenario.load(path)
tpd = [200.0, 250.0, 300.0, 350.0, 400.0]
availability = [0.86, 0.92, 0.98]
w = study.whatif(path, tpd, availability, draws=DRAWS)
w""",
    ),
    (
        "code",
        """\
cols = ["ore_processed_t", "rec_ag_pct", "rec_pb_pct", "rec_zn_pct", "ag_oz", "pb_lb", "zn_lb"]
median = w[cols].sel(stat="p50").to_dataframe()[cols]
median["ag_oz"] /= 1e6  # Moz
median["pb_lb"] /= 1e6  # Mlb
median["zn_lb"] /= 1e6  # Mlb
names = {"ag_oz": "Ag [Moz]", "pb_lb": "Pb [Mlb]", "zn_lb": "Zn [Mlb]", "ore_processed_t": "ore [t]"}
median.rename(columns=names).round(2)""",
    ),
    ("code", "show(plots.whatif_surface(w))"),
    (
        "code",
        """\
from kenomill import calibrate

quarters = study.fit().data  # the quarters the calibration saw
fit_tpd = (float(np.nanmin(quarters.tpd)), float(np.nanmax(quarters.tpd)))
print(f"calibrated on {fit_tpd[0]:.0f}-{fit_tpd[1]:.0f} t/d (calendar)")
show(plots.whatif_tradeoff(w, 0.92, fit_tpd))""",
    ),
    (
        "md",
        """\
## What each extra tonne buys

Between neighbouring throughputs at 92 % availability: extra metal per extra tonne of ore
processed, against the metal per tonne at the lower rate. Below 1 means the extra tonnes
are recovered less well than the average tonne (the recovery loss); the extra tonnes
still add metal.""",
    ),
    (
        "code",
        """\
s = w.sel(availability=0.92, stat="p50")
rows = []
for a, b in zip(s.tpd.values[:-1], s.tpd.values[1:]):
    d_ore = float(s.ore_processed_t.sel(tpd=b) - s.ore_processed_t.sel(tpd=a))
    row = {"from [t/d]": a, "to [t/d]": b}
    for v, unit in (("ag_oz", "oz/t"), ("pb_lb", "lb/t"), ("zn_lb", "lb/t")):
        marginal = float(s[v].sel(tpd=b) - s[v].sel(tpd=a)) / d_ore
        average = float(s[v].sel(tpd=a) / s.ore_processed_t.sel(tpd=a))
        row[f"{v} extra [{unit}]"] = marginal
        row[f"{v} marginal / average"] = marginal / average
    rows.append(row)
pd.DataFrame(rows).round(3)""",
    ),
    (
        "md",
        """\
The same surface as `kenomill whatif --plot` draws it (median silver, recoveries, and the
P90-P10 width of the silver outcome):""",
    ),
    (
        "code",
        """\
# the same surface function with the panels of `kenomill whatif --plot`: the median silver,
# the silver and lead recoveries, and the width of the silver band
panels = [("ag_oz", "p50"), ("rec_ag_pct", "p50"), ("rec_pb_pct", "p50"), ("ag_oz", "spread")]
show(plots.whatif_surface(w, panels))""",
    ),
    (
        "md",
        """\
**Limits.** The calibration saw 201-245 t/d only; the loss of recovery above it comes from
the model form (first-order flotation, residence time proportional to 1/throughput) and
the spread of the rate constants, not from observation. Availability above about 96 % was
never reported.""",
    ),
]

NB04 = [
    (
        "md",
        """\
# 04 Onek and Lucky Queen: Monte Carlo scenarios

What will the mill produce, quarter by quarter, when Onek (zinc-rich) and Lucky Queen
(high-grade silver) ore joins Bellekeno feed, given everything that is uncertain: mine
deliveries, grades, mill stoppages, the calibration, and the metallurgical response of
ores no one has tested in public? Each scenario file in `scenarios/` states its
assumptions; this notebook runs them all.""",
    ),
    ("code", SETUP.format(draws=200)),
    (
        "code",
        """\
from kenomill import plots, scenario, simulate
from kenomill.study import Study

study = Study()  # the packaged calibration; each run computed once and kept

paths = sorted((ROOT / "scenarios").glob("*.toml"))
scenarios = {p.stem: scenario.load(p) for p in paths}
for name, sc in scenarios.items():
    print(f"{sc.name}: {sc.description}")""",
    ),
    (
        "code",
        """\
print("\\n".join(scenarios["onek_lucky_queen_2012q4"].assumptions))""",
    ),
    (
        "code",
        """\
runs = {name: study.scenario(p, draws=DRAWS) for name, p in zip(scenarios, paths)}
rows = []
for name, ds in runs.items():
    summary = simulate.summarize(simulate.annual(ds)[["ag_oz", "pb_lb", "zn_lb"]])
    for y in summary.year.values:
        row = {"scenario": name, "year": int(y)}
        for v, unit in (("ag_oz", "Moz"), ("pb_lb", "Mlb"), ("zn_lb", "Mlb")):
            for st in ("p10", "p50", "p90"):
                row[f"{v[:2]} {st.upper()} [{unit}]"] = float(summary[v].sel(year=y, stat=st)) / 1e6
        rows.append(row)
pd.DataFrame(rows).round(2)""",
    ),
    (
        "md",
        """\
## Fan charts

Median (line) and P10-P90 band (the middle 80 % of draws) of the metal in concentrates,
quarter by quarter.""",
    ),
    ("code", "show(plots.fan_chart(list(runs.values())))"),
    (
        "md",
        """\
## The 2012 guidance

The operator guided 2.2-2.5 Moz silver, about 19 Mlb lead (read as 18.05-19.95 Mlb) and
more than 7.5 Mlb zinc for 2012 (releases of 23 Jan and 16 Apr 2012). The probability of
meeting each is the share of draws that do.""",
    ),
    (
        "code",
        """\
tables = []
for name, ds in runs.items():
    if scenarios[name].targets:
        tables.append(simulate.target_probabilities(ds, scenarios[name]).assign(scenario=name))
pd.concat(tables)[["scenario", "target", "year", "probability", "p_at_least_min"]].round(3)""",
    ),
    (
        "code",
        """\
guidance = [t for sc in scenarios.values() for t in sc.targets if t.year == 2012]
show(plots.histograms([simulate.annual(ds) for ds in runs.values()], guidance, [2012]))""",
    ),
    (
        "md",
        """\
## What drives the spread

Spearman rank correlation of 2013 silver with each uncertain input drawn per run
(`share`: rough split of the explained spread among the inputs; realised availability and
head grades are consequences, share 0).""",
    ),
    (
        "code",
        """\
from kenomill.study import summary_year

ds = runs["onek_lucky_queen_2012q4"]
year = summary_year(simulate.annual(ds))  # the one rule: the last complete year (2013 here)
simulate.drivers(ds, "ag_oz", year, top=8).round(3)""",
    ),
    ("code", """simulate.drivers(ds, "zn_lb", year, top=8).round(3)"""),
    (
        "md",
        """\
One scenario in detail, as `kenomill simulate SCENARIO.toml --plot` draws it (recoveries
too):""",
    ),
    (
        "code",
        """\
# one scenario with every figure of `kenomill simulate --plot`, two bands and the reported quarters
show(
    plots.fan_chart(
        runs["onek_lucky_queen_2012q4"],
        plots.FAN_VARIABLES,
        bands=((0.1, 0.9), (0.25, 0.75)),
        reported=True,
        ncols=3,
    )
)""",
    ),
    (
        "md",
        """\
**Limits.** No metallurgical test work on Onek or Lucky Queen ore is public: their
response is the Bellekeno calibration shifted by per-draw offsets whose size is an
assumption. Mining rates and timing are assumptions too (no schedule was published).
Results are metal in concentrates, not payable metal.""",
    ),
]

NOTEBOOKS = {
    "01_reported_quarters.ipynb": NB01,
    "02_calibration.ipynb": NB02,
    "03_throughput_whatifs.ipynb": NB03,
    "04_onek_lucky_queen.ipynb": NB04,
}


def build(cells) -> nbformat.NotebookNode:
    nb = new_notebook(
        cells=[new_markdown_cell(src) if kind == "md" else new_code_cell(src) for kind, src in cells],
        metadata={
            "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
            "language_info": {"name": "python"},
        },
    )
    # stable cell ids: regenerating gives the same file, so git shows only real changes
    for i, c in enumerate(nb.cells):
        c["id"] = f"cell-{i:02d}"
    return nb


def main() -> None:
    for name, cells in NOTEBOOKS.items():
        nb = build(cells)
        nbformat.validate(nb)
        nbformat.write(nb, HERE / name)
        print(f"wrote {HERE / name}")


if __name__ == "__main__":
    main()
