"""``kenomill blend``: the feed blend that maximises expected NSR per day, and how sure it is.

For a scenario with several ore sources (Bellekeno, Onek, Lucky Queen): one year at
constant blend fractions, every source open. Printed: NSR by source alone, the blend of
largest expected NSR per calendar day subject to the zinc grade of the lead concentrate
(``--zn-in-pbcon-max``, a penalty threshold) and supply limits (``--max-fraction``), found
by SLSQP (:func:`kenomill.value.optimal_blend`), and the uncertainty of the optimal
fractions: each posterior draw's own optimum on a grid of the simplex
(:func:`kenomill.value.blend_uncertainty`, common random numbers across blends).
"""

from __future__ import annotations

import click

from kenomill.cli import SEED, guarded
from kenomill.errors import ValidationError


def parse_max_fraction(items, names) -> dict[str, float]:
    """``NAME=SHARE`` options -> {source: largest share}."""
    out = {}
    for it in items:
        name, sep, val = it.partition("=")
        if not sep:
            raise ValidationError(f"--max-fraction: found {it!r}; allowed: SOURCE=SHARE, e.g. onek=0.3")
        if name not in names:
            raise ValidationError(f"--max-fraction: unknown source {name!r}; allowed: {', '.join(names)}")
        try:
            v = float(val)
        except ValueError:
            v = float("nan")
        if not 0.0 <= v <= 1.0:
            raise ValidationError(f"--max-fraction: {name}={val}; allowed: a share in [0, 1]")
        out[name] = v
    return out


@click.command()
@click.argument("scenario_file", metavar="SCENARIO.toml", type=click.Path(dir_okay=False))
@click.option(
    "--year", type=int, default=2013, show_default=True, help="The year blended (whole in the horizon)."
)
@click.option("--draws", type=click.IntRange(2, 2000), default=32, show_default=True, help="Draws per blend.")
@click.option(
    "--seed", type=SEED, default=0, show_default=True, help="Seed (the same draws for every blend)."
)
@click.option(
    "--zn-in-pbcon-max",
    type=click.FloatRange(0.0, 100.0),
    default=7.0,
    show_default=True,
    help="Largest mean zinc grade of the lead concentrate [%] (Pulacayo FS: penalty threshold 5-7 %).",
)
@click.option(
    "--max-fraction",
    multiple=True,
    metavar="SOURCE=SHARE",
    help="Supply limit: the largest share of the feed a source can give (repeatable).",
)
@click.option(
    "--grid-step",
    type=click.FloatRange(0.05, 0.5),
    default=0.1,
    show_default=True,
    help="Step of the simplex grid behind the uncertainty of the optimal fractions.",
)
@click.option(
    "--out", type=str, default=None, help="Write each draw's optimal fractions to FILE (.csv, .xlsx)."
)
@guarded
def blend(scenario_file, year, draws, seed, zn_in_pbcon_max, max_fraction, grid_step, out):
    """The blend of ore sources that maximises expected NSR per day, with its uncertainty."""
    import numpy as np
    import pandas as pd
    from rich.console import Console
    from rich.table import Table

    from kenomill import budget, io, value
    from kenomill import scenario as scn
    from kenomill import simulate as sim

    if out:
        io.check_output_path(out, {".csv": "CSV", ".xlsx": "Excel"})
    names = list(scn.load(scenario_file).sources)
    if len(names) < 2:
        raise ValidationError(f"{scenario_file}: one source ({names[0]}); a blend needs at least two")
    limits = parse_max_fraction(max_fraction, names)
    grid = value.simplex_grid(names, grid_step, limits)
    one = value._blend_scenario(scenario_file, dict.fromkeys(names, 1.0 / len(names)), year)
    plan = sim.compile_plan(one, None)
    per_b, per_s = budget.simulate_estimate(plan, draws)
    # SLSQP takes up to ~35 evaluations, the single sources one each, the grid one per point
    budget.check(f"blend {one.name}", draws, per_b, per_s * (grid.shape[0] + 35 + len(names)))
    from kenomill.progress import phase, progress

    with phase("optimal blend (SLSQP)"):
        opt = value.optimal_blend(
            scenario_file,
            limits or None,
            year=year,
            draws=draws,
            seed=seed,
            zn_in_pbcon_max_pct=zn_in_pbcon_max,
        )
    with progress(grid.shape[0], "blend grid (uncertainty of the optimum)", unit="blends") as bar:
        unc = value.blend_uncertainty(
            scenario_file,
            limits or None,
            year=year,
            draws=draws,
            seed=seed,
            step=grid_step,
            zn_in_pbcon_max_pct=zn_in_pbcon_max,
            progress=bar.advance,
        )
    console = Console(width=150)
    t = Table(title=f"Each source alone, {year} ({draws} draws; typical 2012 terms, 2012 prices)")
    for c in ("source", "NSR kUS$/d", "NSR US$/t ore", "Zn in Pb con %"):
        t.add_column(c, justify="right" if c != "source" else "left")
    for n, a in opt["by_source"].items():
        t.add_row(
            n,
            f"{a['nsr_usd_per_day'] / 1e3:,.1f}",
            f"{a['nsr_usd_per_t_ore']:,.0f}",
            f"{a['pbcon_zn_pct']:.1f}",
        )
    console.print(t)
    t = Table(
        title=f"Blend of largest expected NSR per day: Zn in Pb con <= {zn_in_pbcon_max:g} % (mean)"
        + (f", supply limits {', '.join(f'{k} <= {v:g}' for k, v in limits.items())}" if limits else ""),
        caption=f"uncertainty: each draw's own optimum on a {grid_step:g} grid of the simplex "
        f"({grid.shape[0]} blends, common draws); P10/P50/P90 of each share over the {draws} draws",
    )
    for c in ("source", "optimum (SLSQP)", "grid optimum of the mean", "per-draw optimum P10", "P50", "P90"):
        t.add_column(c, justify="right" if c != "source" else "left")
    for n in names:
        t.add_row(
            n,
            f"{opt['fractions'][n]:.3f}",
            f"{unc['best_mean'][n]:.3f}",
            *(f"{unc[q][n]:.3f}" for q in ("p10", "p50", "p90")),
        )
    console.print(t)
    click.echo(
        f"optimum: NSR {opt['nsr_usd_per_day'] / 1e3:,.1f} kUS$/d "
        f"[P10-P90 {opt['nsr_usd_per_day_p10'] / 1e3:,.1f}-{opt['nsr_usd_per_day_p90'] / 1e3:,.1f}], "
        f"Zn in Pb con {opt['pbcon_zn_pct']:.1f} %"
        + (
            f", P(beats Bellekeno alone) = {opt['p_better_than_bellekeno']:.2f}"
            + (" (Bellekeno alone is beyond its supply limit)" if limits.get("bellekeno", 1.0) < 1.0 else "")
            if opt["p_better_than_bellekeno"] is not None
            else ""
        )
        + ("" if opt["converged"] else " (SLSQP did not report convergence)")
    )
    click.echo(
        "the grid's optimum of the mean is each draw's own optimum in "
        f"{unc['share_at_best_mean']:.0%} of the draws"
        + (
            f"; {unc['draws_without_feasible_blend']} draws have no blend within the zinc limit"
            if unc["draws_without_feasible_blend"]
            else ""
        )
    )
    if out:
        df = pd.DataFrame(unc["per_draw"], columns=names)
        df.insert(0, "draw", np.arange(draws))
        io.write_table(df, out)
        click.echo(f"wrote {out}")
