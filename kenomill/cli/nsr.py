"""``kenomill nsr``: what each reported period's concentrates were worth after the smelter and the stream."""

from __future__ import annotations

import click

from kenomill.cli import guarded, table_out_option
from kenomill.cli.periods import load_periods, periods_label, periods_option
from kenomill.cli.value_options import load_terms_prices, terms_prices_options

#: rows of the printed settlement: (variable suffix, label, scale, unit shown)
_ROWS = (
    ("dmt", "concentrate", 1.0, "dmt"),
    ("ag_payable_oz", "payable silver", 1e-3, "koz"),
    ("pb_payable_lb", "payable lead", 1e-3, "klb"),
    ("zn_payable_lb", "payable zinc", 1e-3, "klb"),
    ("payable_value_usd", "payable value", 1e-3, "kUS$"),
    ("tc_usd", "- treatment charge", 1e-3, "kUS$"),
    ("rc_usd", "- silver refining", 1e-3, "kUS$"),
    ("penalty_usd", "- penalties", 1e-3, "kUS$"),
    ("insurance_usd", "- insurance", 1e-3, "kUS$"),
    ("freight_usd", "- freight", 1e-3, "kUS$"),
    ("stream_usd", "- silver stream", 1e-3, "kUS$"),
    ("nsr_usd", "= NSR", 1e-3, "kUS$"),
)


def _print(res, source: str) -> None:
    from rich.console import Console
    from rich.table import Table

    periods = [str(p) for p in res.period.values]
    t = Table(
        title=f"Net smelter return per period ({res.attrs['terms']})",
        caption=source,
        caption_justify="left",
    )
    t.add_column("line", justify="left")
    t.add_column("unit", justify="left")
    for p in periods:
        t.add_column(p, justify="right")
    for tag, name in (("pbcon", "lead concentrate"), ("zncon", "zinc concentrate")):
        t.add_row(f"[bold]{name}[/bold]", "", *[""] * len(periods))
        assay = "pbcon_zn_pct" if tag == "pbcon" else "zncon_pb_pct"
        for suffix, label, scale, unit in _ROWS:
            v = res[f"{tag}_{suffix}"].values * scale
            t.add_row("  " + label, unit, *[f"{x:,.0f}" for x in v])
            if suffix == "dmt":
                lo, hi = res[assay + "_p10"].values, res[assay + "_p90"].values
                what = "Zn" if tag == "pbcon" else "Pb"
                t.add_row(
                    f"  {what} assay (model, P10-P90)",
                    "%",
                    *[
                        f"{c:.2f} ({a:.2f}-{b:.2f})"
                        for c, a, b in zip(res[assay].values, lo, hi, strict=True)
                    ],
                )
    t.add_row("[bold]NSR, both concentrates[/bold]", "kUS$", *[f"{x / 1e3:,.0f}" for x in res.nsr_usd.values])
    t.add_row(
        "  P10-P90 (unreported assays)",
        "kUS$",
        *[
            f"{a / 1e3:,.0f}-{b / 1e3:,.0f}"
            for a, b in zip(res.nsr_usd_p10.values, res.nsr_usd_p90.values, strict=True)
        ],
    )
    t.add_row("NSR in C$", "kC$", *[f"{x / 1e3:,.0f}" for x in res.nsr_cad.values])
    t.add_row("[bold]prices used[/bold]", "", *[str(x) for x in res.price_period.values])
    for m, unit, fmt in (("ag", "US$/oz", ".2f"), ("pb", "US$/lb", ".4g"), ("zn", "US$/lb", ".4g"),
                         ("usd_cad", "C$/US$", ".3f")):  # fmt: skip
        t.add_row(f"  {m}", unit, *[f"{x:{fmt}}" for x in res[f"price_{m}"].values])
    t.add_row("NSR per tonne of ore", "US$/t", *[f"{x:,.1f}" for x in res.nsr_usd_per_t_ore.values])
    t.add_row("NSR per tonne of ore", "C$/t", *[f"{x:,.1f}" for x in res.nsr_cad_per_t_ore.values])
    Console(width=160).print(t)


def _print_sensitivity(df) -> None:
    from rich.console import Console
    from rich.table import Table

    total = df.attrs["base_nsr_usd"]
    t = Table(
        title=f"Total NSR of the periods (US${total / 1e6:,.2f}M): "
        f"each input up {100 * df.attrs['rel']:g} %, one at a time"
    )
    for col in ("input", "base value", "NSR change kUS$", "NSR change %"):
        t.add_column(col, justify="left" if col == "input" else "right")
    for r in df.itertuples():
        t.add_row(r.input, f"{r.base:g}", f"{r.change_usd / 1e3:+,.0f}", f"{r.change_pct:+.2f}")
    Console(width=160).print(t)


@click.command()
@periods_option
@terms_prices_options
@click.option(
    "--year",
    type=str,
    default="2012",
    show_default=True,
    help="Period of the price deck that prices every period (2011, 2013, or 2012Q1: Alexco realized), "
    "with --price-basis annual.",
)
@click.option(
    "--price-basis",
    type=click.Choice(["annual", "realized"]),
    default="annual",
    show_default=True,
    help="annual: every period at the --year row; realized: each period at Alexco's realized prices of "
    "that period (or of the half-year holding it when the quarter was not reported alone).",
)
@click.option(
    "--draws",
    type=click.IntRange(min=10, max=100_000),
    default=1000,
    show_default=True,
    help="Posterior draws behind the P10-P90 band of the unreported assays.",
)
@click.option(
    "--seed",
    type=click.IntRange(min=0, max=2**63 - 1),
    default=0,
    show_default=True,
    help="Seed of the draws.",
)
@click.option(
    "--sensitivity",
    is_flag=True,
    default=False,
    help="Also print how total NSR moves when each price and term goes up 10 %, one at a time.",
)
@click.option(
    "--throughput",
    type=str,
    default=None,
    metavar="RANGE",
    help="Instead of the reported periods: NSR per calendar day across throughput targets "
    "(a:b:step or a,b,c t/d) on a scenario's what-if grid.",
)
@click.option(
    "--scenario",
    "scenario_file",
    type=str,
    default=None,
    metavar="FILE",
    help="Scenario of --throughput (default scenarios/bellekeno_only.toml).",
)
@click.option(
    "--availability",
    type=click.FloatRange(min=0.0, max=1.0, min_open=True),
    default=0.92,
    show_default=True,
    help="Availability of --throughput [fraction].",
)
@click.option(
    "--capacity",
    type=click.FloatRange(min=0.0, min_open=True),
    default=None,
    help="Capacity limit of --throughput [t/d]: the best throughput is chosen at or below it.",
)
@table_out_option
@guarded
def nsr(
    periods,
    terms_file,
    prices_file,
    year,
    price_basis,
    draws,
    seed,
    sensitivity,
    throughput,
    scenario_file,
    availability,
    capacity,
    out,
):
    """Net smelter return of each reported base period under smelter terms and a price deck.

    Every settlement line per concentrate: payable metal and its value, treatment charge
    with escalators, silver refining, penalties, insurance, freight, the silver stream; NSR
    in US$ and C$ and per tonne of ore. Zinc in the lead concentrate and lead in the zinc
    concentrate are not reported: they come from the calibrated model (central value, and a
    P10-P90 band over posterior draws).
    """
    from kenomill import data, io, terms
    from kenomill.study import Study

    if out:
        io.check_output_path(out)
    t, deck, pr = load_terms_prices(terms_file, prices_file, year)
    if throughput is not None:
        if price_basis == "realized":
            raise click.UsageError("--price-basis realized: settles reported periods; not with --throughput")
        _throughput(throughput, scenario_file, availability, capacity, draws, seed, t, pr, year, out)
        return
    ds = load_periods(periods)
    study = Study(ds, seed=seed)
    if price_basis == "realized":
        base = data.base_periods(study.periods())
        pr = terms.realized_prices(list(base), deck, where=prices_file or "packaged prices")
        basis = "Price basis: realized, each period at Alexco's realized prices of its own period"
    else:
        basis = f"Price basis: annual, every period at the {year} row"
    res = study.nsr(t, pr, draws=draws)
    per = "; ".join(
        f"{p} at {q}: {s}"
        for p, q, s in zip(res.period.values, res.price_period.values, res.price_source.values, strict=True)
    )
    src = (
        f"Periods: {periods_label(ds)}. {basis}. "
        + (f"Prices: {per}. " if price_basis == "realized" else f"Prices ({year}): {res.attrs['prices']}. ")
        + f"Unreported assays: {res.attrs['unreported_assays']}. Terms: {(t.note or t.name).rstrip('.')}."
    )
    _print(res, src)
    if sensitivity:
        _print_sensitivity(study.nsr_sensitivity(t, pr))
    if out:
        io.write_table(res, out)
        click.echo(f"wrote {out}")


def _throughput(throughput, scenario_file, availability, capacity, draws, seed, t, pr, year, out) -> None:
    from pathlib import Path

    from rich.console import Console
    from rich.table import Table

    from kenomill import io
    from kenomill import simulate as sim
    from kenomill.cli.simulate import DEFAULT_WHATIF_SCENARIO
    from kenomill.progress import progress
    from kenomill.study import Study

    tpds = sim.parse_range(throughput, "--throughput")
    path = Path(scenario_file) if scenario_file else DEFAULT_WHATIF_SCENARIO
    study = Study(seed=seed)
    sc = study.load_scenario(path)
    with progress(1, "NSR what-if grid") as bar:
        wi = study.whatif_nsr(
            path,
            tpds,
            availability,
            draws=draws,
            terms=t,
            prices=pr,
            capacity_tpd=capacity if capacity is not None else float("inf"),
        )
        bar.advance()
    tab = Table(
        title=f"NSR across throughput: {sc.name}, year {wi.attrs['year']}, availability {availability:g}, "
        f"{draws} draws ({t.name}, prices {year})",
        caption=wi.attrs["note"],
        caption_justify="left",
    )
    cols = ("t/d", "NSR kUS$/d mean", "P10", "P90", "NSR US$/t ore mean", "P10", "P90")
    for col in (*cols, "margin kUS$/d mean", "P10", "P90"):
        tab.add_column(col, justify="right")
    for i, rate in enumerate(wi.tpd.values):
        d = wi.nsr_usd_per_day.values[i] / 1e3
        o = wi.nsr_usd_per_t_ore.values[i]
        m = wi.margin_usd_per_day.values[i] / 1e3
        tab.add_row(f"{rate:g}", *(f"{x[k]:,.1f}" for x in (d, o, m) for k in (0, 1, 3)))
    Console(width=150).print(tab)
    limit = "" if capacity is None else f" at or below the {capacity:g} t/d capacity"
    click.echo(
        f"best throughput on the grid{limit}: {wi.attrs['best_tpd']:g} t/d (maximum of the mean NSR per day)"
    )
    click.echo(
        f"best throughput by margin (NSR - operating cost, {wi.attrs['costs']}){limit}: "
        f"{wi.attrs['best_margin_tpd']:g} t/d"
    )
    if "p_gain" in wi.attrs:
        click.echo(
            f"P(NSR per day gains, {wi.attrs['move']}) = {wi.attrs['p_gain']:.3f} over {draws} common draws"
        )
    mean = wi.nsr_usd_per_day.sel(stat="mean").values
    rises = (
        "rises with every step of throughput on this grid"
        if (mean[1:] > mean[:-1]).all()
        else "does not rise steadily"
    )
    click.echo(f"NSR is before mining and milling costs; its mean per day {rises}.")
    if out:
        io.write_table(wi, out)
        click.echo(f"wrote {out}")
