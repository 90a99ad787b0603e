"""``kenomill simulate``: Monte Carlo of a scenario (``kenomill whatif`` is in :mod:`kenomill.cli.whatif`)."""

from __future__ import annotations

from pathlib import Path

import click
import numpy as np
from rich.console import Console
from rich.table import Table

from kenomill import variables
from kenomill.cli import DRAWS, SEED, guarded

_NC = {".nc": "netCDF"}
_TABLE = {".nc": "netCDF", ".csv": "CSV"}
#: the scenario `kenomill whatif` uses when none is given (shipped in the repository)
DEFAULT_WHATIF_SCENARIO = Path(__file__).resolve().parents[2] / "scenarios" / "bellekeno_only.toml"


def _kernels_cached() -> bool:
    """Whether numba's cache holds the Monte Carlo kernel (else importing it compiles, ~30 s)."""
    import glob
    import os

    # numba writes beside the package, or only under NUMBA_CACHE_DIR when that is set
    if os.environ.get("NUMBA_CACHE_DIR"):
        dirs = [Path(os.environ["NUMBA_CACHE_DIR"])]
    else:
        dirs = [Path(__file__).resolve().parents[1] / "__pycache__"]
    names = ("_mc_kernels.simulate-*.nbi", "_kernels.circuit_forward-*.nbi")
    return all(any(glob.glob(str(d / "**" / n), recursive=True) for d in dirs) for n in names)


def _import_simulate():
    """``kenomill.simulate``, saying so when its kernels compile first (eager signatures).

    Call it before importing anything else of kenomill: the circuit kernels compile on the
    import of :mod:`kenomill.recovery` (which the scenario module imports).
    """
    import sys

    if "kenomill.simulate" in sys.modules or _kernels_cached():
        from kenomill import simulate

        return simulate
    from kenomill.progress import phase

    with phase("compiling the simulation kernels, once per install, about 1-2 min"):
        from kenomill import simulate
    return simulate


def _fmt(v: str, x: float) -> str:
    if v.startswith("rec_") or v.endswith("_pct"):
        return f"{x:.1f}"
    var = variables.get(v)
    if var.display_factor != 1.0:
        return f"{x * var.display_factor:,.3f}"
    return f"{x:,.0f}"


#: the summary's quantities and the unit each is shown in (kenomill.variables)
_UNITS = {
    v: variables.get(v).shown_units
    for v in ("ag_oz", "pb_lb", "zn_lb", "ore_processed_t", "rec_ag_pct", "rec_pb_pct", "rec_zn_pct")
}


def print_summary(ds, yr, console: Console) -> None:
    from kenomill.simulate import summarize

    sm = summarize(yr, list(_UNITS))
    t = Table(
        title=f"Scenario {ds.attrs['scenario']}: {ds.attrs['draws']} draws, seed {ds.attrs['seed']} "
        "(P10 / P50 / P90 over draws; mean in the last column)",
        caption=f"calibration: {ds.attrs['calibration']} (model {ds.attrs['calibration_model']})",
    )
    t.add_column("year")
    t.add_column("quantity")
    t.add_column("units")
    for c in ("P10", "P50", "P90", "mean"):
        t.add_column(c, justify="right")
    for y in yr.year.values:
        q = int(yr.quarters.sel(year=y))
        label = str(y) if q == 4 else f"{y} ({q}q)"
        for v, u in _UNITS.items():
            s = sm[v].sel(year=y)
            t.add_row(
                label,
                v,
                u,
                *(_fmt(v, float(s.sel(stat=k))) for k in ("p10", "p50", "p90", "mean")),
                end_section=v == "rec_zn_pct",
            )
    console.print(t)


def print_targets(df, console: Console) -> None:
    if df.empty:
        return
    t = Table(title="Probability of meeting the scenario's targets")
    for c in ("target", "year", "P(in range)", "P(>= min)", "source"):
        t.add_column(c)
    for _, r in df.iterrows():
        t.add_row(
            r.target + ("" if r.complete_year else " [partial year]"),
            str(r.year),
            f"{r.probability:.1%}",
            "-" if np.isnan(r.p_at_least_min) else f"{r.p_at_least_min:.1%}",
            r.source,
        )
    console.print(t)


def print_drivers(ds, console: Console, yr=None) -> None:
    from kenomill.scenario import summary_year
    from kenomill.simulate import annual, drivers

    yr = annual(ds) if yr is None else yr
    year = summary_year({int(y): int(yr.quarters.sel(year=y)) for y in yr.year.values})
    t = Table(
        title=f"What drives the spread in {year} (Spearman rank correlation with the year's output)",
        caption="share: rho^2 / sum rho^2 over the independent inputs; realised availability and "
        "head grades are consequences, shown for reading",
    )
    for c in ("output", "driver", "rho", "share"):
        t.add_column(c)
    for v in ("ag_oz", "pb_lb", "zn_lb"):
        df = drivers(ds, v, year, top=5, yr=yr)
        for i, r in df.iterrows():
            t.add_row(v if i == 0 else "", r.driver, f"{r.rho:+.2f}", f"{r.share:.0%}" if r.share else "-")
        t.add_section()
    console.print(t)


def print_attribution(df, console: Console) -> None:
    if df.empty:
        return
    t = Table(
        title=f"Share of the {int(df.year.iloc[0])} variance carried by each source of uncertainty "
        "(1 - var without it / var with all; same draws)",
        caption="P10-P90 width with all: "
        + ", ".join(f"{v} {df.attrs[v + '_p10_p90'] / 1e6:.3f} M" for v in ("ag_oz", "pb_lb", "zn_lb")),
    )
    for c in ("source of uncertainty", "Ag oz", "Pb lb", "Zn lb"):
        t.add_column(c, justify="left" if c.startswith("source") else "right")
    for _, r in df.iterrows():
        t.add_row(r.group, *(f"{r[v + '_share']:.0%}" for v in ("ag_oz", "pb_lb", "zn_lb")))
    console.print(t)


def print_nsr(ds, target, console: Console, prices=None, block: int | None = None) -> None:
    """NSR per year, P10/P50/P90, under the typical 2012 terms (kenomill.value).

    ``prices``: the scenario's price draws (:func:`kenomill.draw_inputs.price_draws`); None:
    the packaged 2012 prices, fixed. ``block``: settle that many draws at a time (:func:`settle_nsr`).
    """
    r = settle_nsr(ds, prices, target, block)
    said = "2012 prices" if prices is None else "the scenario's uncertain prices"
    t = Table(
        title=f"NSR per year, M US$ ({r.attrs.get('terms', '')}, {said})",
        caption=None if prices is None or not prices.get("source") else f"prices: {prices['source']}",
    )
    for c in ("year", "P10", "P50", "P90") + (("P(>= target)",) if target is not None else ()):
        t.add_column(c, justify="right")
    # the NSR settles the simulated quarters only: a year with reported quarters before the
    # start (start_after_reported) says how many of its quarters it holds
    n_sim = {str(y): sum(str(q).startswith(str(y)) for q in ds.quarter.values) for y in r.year.values}
    for y in r.year.values:
        q = r["nsr_year_usd_q"].sel(year=y).values / 1e6
        label = str(y) if n_sim[str(y)] == 4 else f"{y} ({n_sim[str(y)]}q simulated)"
        row = [label, *(f"{v:,.1f}" for v in q)]
        if target is not None:
            row.append(f"{float(r['p_target'].sel(year=y)):.2f}")
        t.add_row(*row)
    console.print(t)


def settle_nsr(ds, prices=None, target=None, block: int | None = None):
    """:func:`kenomill.value.simulation_nsr` of ``ds``, settled ``block`` draws at a time.

    The settlement's lines (about 40 arrays per draw and quarter) live only for one block;
    what stays is each draw's annual NSR, from which the quantiles and ``p_target`` are
    taken over all draws at the end (the same numbers as settling all draws at once:
    each draw's settlement is its own). ``block`` None (or no fewer draws than ``ds``
    holds): all at once, the full result.
    """
    import xarray as xr

    from kenomill import value

    nd = ds.sizes["draw"]
    if block is None or block >= nd:
        return value.simulation_nsr(ds, prices=prices, target_usd=target)
    years, attrs, parts = None, {}, []
    for d0 in range(0, nd, block):
        sl = slice(d0, min(d0 + block, nd))
        pr = None if prices is None else {k: _draw_slice(v, nd, sl) for k, v in prices.items()}
        r = value.simulation_nsr(ds.isel(draw=sl), prices=pr)
        parts.append(r["nsr_year_usd"].values)
        years, attrs = r["nsr_year_usd"].year, dict(r.attrs)
    y = xr.DataArray(
        np.concatenate(parts), dims=("draw", "year"), coords={"draw": ds.draw.values, "year": years}
    )
    res = xr.Dataset({"nsr_year_usd": y.assign_attrs(units="USD")}, attrs={**attrs, "draws": nd})
    res["nsr_year_usd_q"] = y.quantile([0.1, 0.5, 0.9], dim="draw")
    if target is not None:
        res["p_target"] = (y >= float(target)).mean("draw")
    return res


def _draw_slice(v, nd: int, sl: slice):
    """A price entry for the draws ``sl``: arrays over draws are sliced, the rest kept."""
    a = np.asarray(v) if not isinstance(v, str) else None
    return a[sl] if a is not None and a.ndim == 1 and a.shape[0] == nd else v


@click.command()
@click.argument("scenario_file", metavar="SCENARIO.toml", type=click.Path(dir_okay=False))
@click.option("--draws", type=DRAWS, default=1000, show_default=True, help="Number of Monte Carlo draws.")
@click.option("--seed", type=SEED, default=0, show_default=True, help="Seed: same seed, same numbers.")
@click.option("--out", type=click.Path(dir_okay=False), default=None, help="Write the draws to FILE.nc.")
@click.option(
    "--scheduler",
    default=None,
    help="Run chunks on dask.distributed: 'local' (a LocalCluster of 2 workers) or a scheduler ADDRESS.",
)
@click.option(
    "--chunk-size",
    type=click.IntRange(min=1),
    default=None,
    help="Draws per chunk (results do not depend on it).",
)
@click.option("--daily", is_flag=True, help="Also keep every step in --out (memory grows with draws x days).")
@click.option("--plot", is_flag=True, help="Write fan charts and histograms (PNG) beside --out or here.")
@click.option(
    "--attribution",
    is_flag=True,
    help="Also rerun with each source of uncertainty off in turn: the share of variance it carries.",
)
@click.option(
    "--revenue-target",
    type=click.FloatRange(min=0.0),
    default=None,
    help="Annual NSR target [US$]: print P(the year's NSR reaches it).",
)
@guarded
def simulate(
    scenario_file, draws, seed, out, scheduler, chunk_size, daily, plot, attribution, revenue_target
):
    """Monte Carlo of SCENARIO.toml: quarterly production with uncertainty, targets, drivers."""
    sim = _import_simulate()
    from kenomill import io
    from kenomill.study import Study

    if out:
        io.check_output_path(out, _NC)
    study = Study(seed=seed)
    sc = study.load_scenario(scenario_file)
    plan = study.plan(scenario_file)
    from kenomill import budget

    reruns = 1 + (len(sim.UNCERTAINTY_GROUPS) if attribution else 0)
    # a run that does not fit the usual way but fits built block by block (in process or on
    # dask; with --attribution too) is chunked to fit: the same numbers
    block = budget.simulate_blocks(plan, draws, daily=daily, reruns=reruns, what=f"simulate {sc.name}")
    console = Console(width=150)
    from kenomill.progress import progress

    with progress(draws, f"simulating {sc.name}", unit="draws") as bar:
        ds = study.scenario(
            scenario_file,
            draws=draws,
            chunk_size=chunk_size,
            scheduler=scheduler,
            daily=daily,
            progress=bar.advance,
            block_draws=block,
        )
    yr = study.annual(scenario_file, draws=draws, daily=daily)
    print_summary(ds, yr, console)
    # one annual() for all three (each would hold another copy of the years per draw)
    print_targets(sim.target_probabilities(ds, sc.targets, yr=yr), console)
    print_drivers(ds, console, yr=yr)
    from kenomill import draw_inputs

    prices = draw_inputs.price_draws(sc, seed, ds.draw.values)
    print_nsr(ds, revenue_target, console, prices=prices, block=block)
    if prices is not None:
        ds = ds.copy()  # the study's cached run stays as simulated
        # the draws file carries the prices each draw was valued at
        for m, unit in (("ag", "USD/troy_oz"), ("pb", "USD/lb"), ("zn", "USD/lb")):
            ds[f"price_{m}"] = ("draw", prices[m], {"units": unit, "long_name": f"{m} price drawn"})
        ds.attrs["prices"] = prices.get("source", "")
    if attribution:
        print_attribution(sim.spread_attribution(plan, draws, seed), console)
    if out:
        io.write_table(ds, out)
        click.echo(f"wrote {out}")
    if plot:
        from kenomill import plots

        base = Path(out).with_suffix("") if out else Path(sc.name)
        title = f"{sc.name}: {ds.sizes['draw']} draws, seed {seed}"
        fan = plots.fan_chart(
            ds, plots.FAN_VARIABLES, bands=((0.1, 0.9), (0.25, 0.75)), reported=True, ncols=3, title=title
        )
        hist = plots.histograms(yr, sc.targets, percentiles=True, title=f"{title}: yearly production")
        for name, fig in (("fan", fan), ("hist", hist)):
            click.echo(f"wrote {plots.save_figure(fig, f'{base}_{name}.png')}")
