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
from kenomill.cli.value_options import load_terms_prices, terms_prices_options
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
@terms_prices_options
@click.option("--price-year", default="2012", show_default=True, help="Period of the price deck used.")
@click.option(
    "--out", type=str, default=None, help="Write each draw's optimal fractions to FILE (.csv, .xlsx)."
)
@guarded
def blend(scenario_file, year, draws, seed, zn_in_pbcon_max, max_fraction, grid_step, terms_file, prices_file,
          price_year, out):  # fmt: skip
    """The blend of ore sources that maximises expected NSR per day, with its uncertainty."""
    import numpy as np
    import pandas as pd

    from kenomill import budget, io, value
    from kenomill import simulate as sim
    from kenomill.study import Study

    if out:
        io.check_output_path(out, {".csv": "CSV", ".xlsx": "Excel"})
    names = list(Study(seed=seed).load_scenario(scenario_file).sources)
    if len(names) < 2:
        raise ValidationError(f"{scenario_file}: one source ({names[0]}); a blend needs at least two")
    limits = parse_max_fraction(max_fraction, names)
    t, _, pr = load_terms_prices(terms_file, prices_file, price_year)
    money = dict(terms=t, prices=pr)
    grid = value.simplex_grid(names, grid_step, limits)
    one = value._blend_scenario(scenario_file, dict.fromkeys(names, 1.0 / len(names)), year)
    plan = sim.compile_plan(one, None)
    per_b, per_s = budget.simulate_estimate(plan, draws)
    # SLSQP takes up to ~35 evaluations, the single sources one each, the grid one per point,
    # each draw's own SLSQP from its grid optimum ~12 (measured: 186 blends for 16 draws)
    budget.check(f"blend {one.name}", draws, per_b, per_s * (grid.shape[0] + 35 + len(names) + 15 * draws))
    from kenomill.progress import phase, progress

    # the same scenario, draws, limits and money terms for the optimum, its grid and each draw's own
    common = dict(year=year, draws=draws, seed=seed, zn_in_pbcon_max_pct=zn_in_pbcon_max, **money)
    with phase("optimal blend (SLSQP)"):
        opt = value.optimal_blend(scenario_file, limits or None, **common)
    with progress(grid.shape[0], "blend grid (uncertainty of the optimum)", unit="blends") as bar:
        unc = value.blend_uncertainty(
            scenario_file, limits or None, step=grid_step, progress=bar.advance, **common
        )
    with progress(draws, "each draw's own optimum (SLSQP from its grid optimum)", unit="draws") as bar:
        own = value.per_draw_optimum(
            scenario_file, limits or None, start=unc["per_draw"], progress=bar.advance, **common
        )
    _print_result(
        opt, unc, own, names, limits, draws=draws, year=year, price_year=price_year, terms_name=t.name,
        zn_max=zn_in_pbcon_max, grid_step=grid_step, n_grid=grid.shape[0],
    )  # fmt: skip
    click.echo(_own_line(own, unc, zn_in_pbcon_max, grid_step))
    if out:
        df = pd.DataFrame(own["fractions"], columns=names)
        for k, n in enumerate(names):
            df[f"{n}_grid"] = unc["per_draw"][:, k]
        df["nsr_usd_per_day"] = own["nsr_usd_per_day"]
        df["pbcon_zn_pct"] = own["pbcon_zn_pct"]
        df["feasible"] = own["feasible"]
        df.insert(0, "draw", np.arange(draws))
        io.write_table(df, out)
        click.echo(f"wrote {out}")


def _alone_breaks_limit(opt: dict, zn_max: float) -> str:
    """Words for a comparison with Bellekeno alone when that blend is itself outside the zinc limit."""
    zn = opt["by_source"].get("bellekeno", {}).get("pbcon_zn_pct", 0.0)
    if zn <= zn_max:
        return ""
    return f" (Bellekeno alone breaks the zinc limit: {zn:.1f} % Zn in Pb con > {zn_max:g} %)"


def _own_line(own, unc, zn_max, step) -> str:
    """Each draw's SLSQP optimum against its grid optimum, in words (the measurement of the grid)."""
    import numpy as np

    draws = own["nsr_usd_per_day"].size
    nsr, zn = unc["nsr_usd_per_day"], unc["pbcon_zn_pct"]
    grid_best = np.where(zn <= zn_max, nsr, -np.inf).max(axis=0)
    ok = own["feasible"] & np.isfinite(grid_best)
    gain = (own["nsr_usd_per_day"] - grid_best)[ok] / 1e3
    x = own["nsr_usd_per_day"][own["feasible"]] / 1e3
    words = (
        f"each draw's own optimum (SLSQP, {own['evaluations']} blends run): NSR mean {x.mean():,.1f} kUS$/d "
        f"[P10-P90 {np.percentile(x, 10):,.1f}-{np.percentile(x, 90):,.1f}]"
        if x.size
        else "no draw has a blend within the zinc limit"
    )
    if gain.size:
        words += (
            f"; it beats its {step:g}-grid optimum by {gain.mean():,.2f} kUS$/d on average, at most "
            f"{gain.max():,.2f} kUS$/d ({100 * gain.max() / np.abs(grid_best[ok]).min() * 1e3:.1f} %)"
        )
    words += f"; the zinc limit binds in {int(own['binding'].sum())} of {draws} draws"
    bad = int((~own["feasible"]).sum())
    return words + (f"; {bad} draws have no blend within the zinc limit" if bad else "")


def _print_result(
    opt, unc, own, names, limits, *, draws, year, price_year, terms_name, zn_max, grid_step, n_grid
):
    """The tables and lines of ``kenomill blend``."""
    import numpy as np
    from rich.console import Console
    from rich.table import Table

    console = Console(width=150)
    t = Table(title=f"Each source alone, {year} ({draws} draws; {terms_name}, {price_year} prices)")
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
        title=f"Blend of largest expected NSR per day: Zn in Pb con <= {zn_max:g} % (mean)"
        + (f", supply limits {', '.join(f'{k} <= {v:g}' for k, v in limits.items())}" if limits else ""),
        caption="uncertainty: each draw's own optimum by SLSQP on that draw's NSR and zinc grade (common "
        f"draws), started at its optimum on a {grid_step:g} grid of the simplex ({n_grid} blends); "
        f"P10/P50/P90 of each share over the {draws} draws",
    )
    cols = ("source", "optimum (SLSQP)", "grid optimum of the mean", "per-draw SLSQP P10", "P50", "P90",
            "per-draw grid P50")  # fmt: skip
    for c in cols:
        t.add_column(c, justify="right" if c != "source" else "left")
    ok = own["feasible"]
    q = (
        np.percentile(own["fractions"][ok], [10, 50, 90], axis=0)
        if ok.any()
        else np.full((3, len(names)), np.nan)
    )
    for k, n in enumerate(names):
        t.add_row(
            n,
            f"{opt['fractions'][n]:.3f}",
            f"{unc['best_mean'][n]:.3f}",
            *(f"{q[i, k]:.3f}" for i in range(3)),
            f"{unc['p50'][n]:.3f}",
        )
    console.print(t)
    click.echo(
        f"optimum: NSR {opt['nsr_usd_per_day'] / 1e3:,.1f} kUS$/d "
        f"[P10-P90 {opt['nsr_usd_per_day_p10'] / 1e3:,.1f}-{opt['nsr_usd_per_day_p90'] / 1e3:,.1f}], "
        f"Zn in Pb con {opt['pbcon_zn_pct']:.1f} %"
        + (
            f", P(beats Bellekeno alone) = {opt['p_better_than_bellekeno']:.2f}"
            + (" (Bellekeno alone is beyond its supply limit)" if limits.get("bellekeno", 1.0) < 1.0 else "")
            + _alone_breaks_limit(opt, zn_max)
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
