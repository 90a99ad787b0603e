"""``kenomill whatif``: production, recoveries and NSR over throughput x availability.

Every grid point runs the same draws (common random numbers) of a base scenario with its
feed unlimited and its capacity cap lifted (:func:`kenomill.simulate.whatif`); each draw's
concentrates are settled under smelter terms and a price deck
(:func:`kenomill.value.whatif_nsr`). Printed: the production surface, NSR per calendar day
and per tonne of ore with P10-P90 bands, the throughput that maximises the expected NSR
per day within the stated capacity limits (and the share of draws that agree), and the
probability that a move (``--move 250:300``) gains, a count over the common draws. Rates
outside the calibration's feed range are marked as extrapolation.
"""

from __future__ import annotations

from pathlib import Path

import click
import numpy as np
from rich.console import Console
from rich.table import Table

from kenomill.cli import DRAWS, SEED, guarded
from kenomill.cli import simulate as cli_simulate
from kenomill.cli.simulate import _TABLE, DEFAULT_WHATIF_SCENARIO, _import_simulate
from kenomill.cli.value_options import costs_option, load_terms_prices, terms_prices_options
from kenomill.errors import ValidationError


def parse_move(text: str, tpds: np.ndarray) -> tuple[float, float]:
    """``A:B`` (or ``A,B``) -> (A, B), both rates of the ``--tpd`` grid."""
    parts = text.replace(",", ":").split(":")
    try:
        a, b = (float(p) for p in parts)
    except ValueError:
        raise ValidationError(f"--move: found {text!r}; allowed: FROM:TO, two rates of --tpd [t/d]") from None
    for v in (a, b):
        if not np.isfinite(v) or not np.isclose(tpds, v, rtol=0, atol=1e-9).any():
            raise ValidationError(
                f"--move: {v:g} t/d is not on the --tpd grid ({', '.join(f'{x:g}' for x in tpds)}); "
                "allowed: FROM:TO, two rates of --tpd"
            )
    snap = [float(tpds[np.argmin(np.abs(tpds - v))]) for v in (a, b)]
    return snap[0], snap[1]


def _shown(avs: np.ndarray) -> list[float]:
    return sorted({float(avs[0]), float(avs[len(avs) // 2]), float(avs[-1])})


def print_production(wi, avs, console: Console) -> None:
    cols = _shown(avs)
    t = Table(
        title=f"What-if on {wi.attrs['scenario']}, year {wi.attrs['year']}: "
        "Ag Moz P50 [P10-P90] | Ag / Pb / Zn recovery P50 %",
        caption="feed unlimited (rate shares as blend), capacity cap lifted; same draws at every point; "
        "* rate outside the calibrated range (extrapolation); " + wi.attrs.get("calibration_note", ""),
    )
    t.add_column("tpd", justify="right")
    for a in cols:
        t.add_column(f"availability {a:.2f}", justify="right")
    for k, tp in enumerate(wi.tpd.values):
        cells = []
        for a in cols:
            s = wi.sel(tpd=tp, availability=a)
            ag = {q: float(s.ag_oz.sel(stat=q)) / 1e6 for q in ("p10", "p50", "p90")}
            cells.append(
                f"{ag['p50']:.2f} [{ag['p10']:.2f}-{ag['p90']:.2f}]"
                f" | {float(s.rec_ag_pct.sel(stat='p50')):.1f} / {float(s.rec_pb_pct.sel(stat='p50')):.1f}"
                f" / {float(s.rec_zn_pct.sel(stat='p50')):.1f}"
            )
        star = "*" if bool(wi.extrapolated.values[k]) else ""
        t.add_row(f"{tp:g}{star}", *cells)
    console.print(t)


def print_nsr(wi, avs, console: Console, *, price_label: str) -> None:
    cols = _shown(avs)
    t = Table(
        title=f"NSR per calendar day, kUS$/d P50 [P10-P90] | per tonne of ore, US$/t P50 "
        f"({wi.attrs['terms']}; {price_label}; {wi.attrs['draws']} draws)",
        caption="NSR before mining and milling costs. * rate outside the calibrated range (extrapolation); "
        "- rate beyond the stated capacity limits",
    )
    _band_rows(t, wi, cols, "nsr_usd_per_day", lambda s: f"{float(s.nsr_usd_per_t_ore.sel(stat='p50')):,.0f}")
    console.print(t)


def print_margin(wi, avs, console: Console) -> None:
    cols = _shown(avs)
    t = Table(
        title="Margin per calendar day = NSR - operating cost, kUS$/d P50 [P10-P90] | operating cost kUS$/d "
        f"({wi.attrs['costs']}: C${wi.attrs['variable_cad_per_t']:g}/t milled + "
        f"C${wi.attrs['fixed_cad_per_day']:g}/calendar day)",
        caption=wi.attrs.get("costs_note", ""),
    )
    _band_rows(
        t, wi, cols, "margin_usd_per_day", lambda s: f"{float(s.cost_usd_per_day.sel(stat='p50')) / 1e3:,.1f}"
    )
    console.print(t)


def _band_rows(t: Table, wi, cols, per_day: str, second) -> None:
    """Rows of a what-if table: per rate and availability, ``per_day`` in kUS$/d as P50
    [P10-P90], then ``second(point)``; * marks extrapolated rates, - rates beyond the limits."""
    t.add_column("tpd", justify="right")
    for a in cols:
        t.add_column(f"availability {a:.2f}", justify="right")
    for k, tp in enumerate(wi.tpd.values):
        cells = []
        for a in cols:
            s = wi.sel(tpd=tp, availability=a)
            d = {q: float(s[per_day].sel(stat=q)) / 1e3 for q in ("p10", "p50", "p90")}
            mark = "" if bool(s.allowed) else " -"
            cells.append(f"{d['p50']:,.1f} [{d['p10']:,.1f}-{d['p90']:,.1f}] | {second(s)}{mark}")
        star = "*" if bool(wi.extrapolated.values[k]) else ""
        t.add_row(f"{tp:g}{star}", *cells)


def margin_lines(wi, avs, within: str) -> list[str]:
    """The best rate by margin, P(the move gains margin) and what the answer depends on."""
    lines = []
    for a in _shown(avs):
        s = wi.sel(availability=a)
        if not np.isfinite(float(s.best_margin_tpd)):
            continue
        b = {q: float(s.best_margin_margin_usd_per_day.sel(stat=q)) / 1e3 for q in ("mean", "p10", "p90")}
        ex = " (extrapolation)" if bool(s.extrapolated.sel(tpd=float(s.best_margin_tpd))) else ""
        line = (
            f"availability {a:.2f}: best by margin {float(s.best_margin_tpd):g} t/d{ex} {within}: "
            f"mean margin {b['mean']:,.1f} kUS$/d [P10-P90 {b['p10']:,.1f}-{b['p90']:,.1f}], "
            f"the best allowed rate in {float(s.best_margin_share):.0%} of the draws"
        )
        if "p_gain_margin" in wi:
            be = {q: float(s.move_breakeven_cad_per_t.sel(stat=q)) for q in ("mean", "p10", "p90")}
            line += (
                f"; P(margin per day gains, {wi.attrs['move']}) = {float(s.p_gain_margin):.3f}; each extra "
                f"tonne of the move brings NSR C${be['mean']:,.0f}/t "
                f"[P10-P90 {be['p10']:,.0f}-{be['p90']:,.0f}], so the move pays while the variable cost "
                "is below that"
            )
        lines.append(line)
    var = wi.attrs["variable_cad_per_t"]
    lines.append(
        f"what the best rate by margin depends on: the variable cost per tonne (here C${var:g}/t) against "
        "the NSR each extra tonne brings (recovery falling with throughput lowers it); a fixed cost per "
        "calendar day lowers the margin at every rate alike and never moves the best rate. The split of the "
        "PEA's C$206/t into fixed and variable is not public"
        + (
            " (the packaged file takes all of it as variable, an assumption)"
            if wi.attrs["fixed_cad_per_day"] == 0
            else ""
        )
    )
    return lines


def _within(capacity, max_operating) -> str:
    limits = []
    if capacity is not None:
        limits.append(f"calendar rate <= {capacity:g} t/d")
    if max_operating is not None:
        limits.append(f"operating rate <= {max_operating:g} t/d")
    return f"within {' and '.join(limits)}" if limits else "on the grid (no capacity limit given)"


def nsr_lines(wi, avs, capacity, max_operating) -> list[str]:
    """The answers in words: best rate per shown availability, P(gain) of the move, extrapolation."""
    within = _within(capacity, max_operating)
    lines = []
    for a in _shown(avs):
        s = wi.sel(availability=a)
        if not np.isfinite(float(s.best_tpd)):
            lines.append(f"availability {a:.2f}: no rate of --tpd is {within}")
            continue
        b = {q: float(s.best_nsr_usd_per_day.sel(stat=q)) / 1e3 for q in ("mean", "p10", "p90")}
        ex = " (extrapolation)" if bool(s.extrapolated.sel(tpd=float(s.best_tpd))) else ""
        line = (
            f"availability {a:.2f}: best {float(s.best_tpd):g} t/d{ex} {within}: mean NSR {b['mean']:,.1f} "
            f"kUS$/d [P10-P90 {b['p10']:,.1f}-{b['p90']:,.1f}], the best allowed rate in "
            f"{float(s.best_share):.0%} of the draws"
        )
        if "p_gain" in wi:
            line += f"; P(NSR per day gains, {wi.attrs['move']}) = {float(s.p_gain):.3f}"
        lines.append(line)
    lo, hi = wi.attrs["calibrated_tpd"]
    out = [float(x) for x, e in zip(wi.tpd.values, wi.extrapolated.values, strict=True) if e]
    if out:
        lines.append(
            f"extrapolation: {', '.join(f'{x:g}' for x in out)} t/d lie outside the {lo:g}-{hi:g} t/d the "
            "calibration was fitted on; there the recovery-throughput curve is the prior's as much as the "
            "data's" + (f": {wi.attrs['prior_sensitivity']}" if wi.attrs.get("prior_sensitivity") else "")
        )
    mean = wi.nsr_usd_per_day.sel(stat="mean").values  # (tpd, availability)
    if mean.shape[0] > 1 and (mean[1:] > mean[:-1]).all():
        lines.append(
            "NSR per day rises with every step of throughput at every availability: before mining and "
            "milling costs the best rate is the capacity limit"
        )
    return lines


def price_model_of(sc, price_uncertainty: bool, prices_from):
    """The uncertain prices asked for: the base scenario's ``[prices]`` or another scenario file's."""
    if prices_from is None and not price_uncertainty:
        return None, None
    from kenomill import scenario

    src = scenario.load(prices_from) if prices_from else sc
    where = f"--prices-from {prices_from}" if prices_from else f"--price-uncertainty: scenario {sc.name}"
    if src.prices is None:
        raise ValidationError(
            f"{where}: no [prices] table; allowed: a scenario with [prices] (lognormal ag, pb, zn)"
        )
    p = src.prices
    label = (
        f"uncertain prices of scenario {src.name} (lognormal, medians Ag {p.ag.median:g} US$/oz, "
        f"Pb {p.pb.median:g}, Zn {p.zn.median:g} US$/lb; log-SD {p.ag.sd_log:g}/{p.pb.sd_log:g}/"
        f"{p.zn.sd_log:g}" + (", correlated" if p.correlation else "") + f"; {p.source or 'no source given'})"
    )
    return p, label


@click.command()
@click.option(
    "--scenario",
    "scenario_file",
    type=click.Path(dir_okay=False),
    default=None,
    help=f"Base scenario (default: {DEFAULT_WHATIF_SCENARIO.name} of the repository).",
)
@click.option("--tpd", default="200:400:25", show_default=True, help="Calendar targets [t/d], A:B:STEP.")
@click.option(
    "--availability", default="0.85:0.98:0.01", show_default=True, help="Mill availabilities [-], A:B:STEP."
)
@click.option("--draws", type=DRAWS, default=100, show_default=True, help="Draws per grid point.")
@click.option("--seed", type=SEED, default=0, show_default=True, help="Seed (the same draws at every point).")
@click.option(
    "--year", type=int, default=None, help="Year reported (default: the last complete year of the horizon)."
)
@terms_prices_options
@click.option("--price-year", default="2012", show_default=True, help="Period of the price deck used.")
@costs_option
@click.option(
    "--price-uncertainty",
    is_flag=True,
    help="Prices as uncertain inputs: each draw its own prices from the scenario's [prices] "
    "(lognormal, correlated as stated), instead of the fixed --price-year row.",
)
@click.option(
    "--prices-from",
    type=click.Path(dir_okay=False),
    default=None,
    metavar="SCENARIO.toml",
    help="As --price-uncertainty, with the [prices] of another scenario file.",
)
@click.option(
    "--capacity",
    type=click.FloatRange(min=0.0, min_open=True),
    default=None,
    help="Capacity limit on the calendar rate [t/d]: the best throughput is chosen at or below it.",
)
@click.option(
    "--max-operating-tpd",
    type=click.FloatRange(min=0.0, min_open=True),
    default=None,
    help="Capacity limit on the operating rate (calendar rate / availability) [t/d].",
)
@click.option(
    "--move",
    default=None,
    metavar="FROM:TO",
    help="Print P(NSR per day gains) of this move (two rates of --tpd). Default 250:300 when on the grid.",
)
@click.option(
    "--sensitivity-at",
    type=click.FloatRange(min=0.0, min_open=True),
    default=None,
    metavar="TPD",
    help="Also print a tornado at this calendar rate [t/d]: NSR and margin per day with each uncertain "
    "input at its P10 and P90, the others at their medians.",
)
@click.option(
    "--chunk-size",
    type=click.IntRange(min=1),
    default=None,
    help="Draws per chunk (results do not depend on it; default chosen to fit in memory).",
)
@click.option(
    "--calibration",
    "calibration_file",
    type=click.Path(dir_okay=False),
    default=None,
    help="calibration.json from `kenomill calibrate` (default: the scenario's uncertainty.calibration).",
)
@click.option("--out", type=click.Path(dir_okay=False), default=None, help="Write to FILE.nc or .csv.")
@click.option("--plot", is_flag=True, help="Write the surface as PNG beside --out or here.")
@guarded
def whatif(scenario_file, tpd, availability, draws, seed, year, terms_file, prices_file, price_year,
           costs_file, price_uncertainty, prices_from, capacity, max_operating_tpd, move, sensitivity_at,
           chunk_size, calibration_file, out, plot):  # fmt: skip
    """Production, recoveries, NSR and margin over throughput x availability, with uncertainty."""
    sim = _import_simulate()
    from kenomill import io
    from kenomill import terms as _terms
    from kenomill.study import Study

    if out:
        io.check_output_path(out, _TABLE)
    tpds, avs, mv = _grid(sim, tpd, availability, move)
    t, deck, pr = load_terms_prices(terms_file, prices_file, price_year)
    costs = _terms.load_costs(costs_file)
    # looked up at run time: kenomill.cli.simulate holds the default (and tests replace it)
    path = Path(scenario_file) if scenario_file else cli_simulate.DEFAULT_WHATIF_SCENARIO
    if not scenario_file and not path.is_file():
        raise ValidationError(
            f"--scenario: none given and the default {path} is not here (kenomill installed without its "
            "repository); give --scenario FILE"
        )
    study = Study(seed=seed)
    sc = study.load_scenario(path)
    pm, price_label = price_model_of(sc, price_uncertainty, prices_from)
    if sensitivity_at is not None and not np.isclose(tpds, sensitivity_at, rtol=0, atol=1e-9).any():
        raise ValidationError(
            f"--sensitivity-at: {sensitivity_at:g} t/d is not on the --tpd grid "
            f"({', '.join(f'{x:g}' for x in tpds)}); allowed: a rate of --tpd"
        )
    # a calibration of the user's periods (`kenomill calibrate --periods ...`) overrides the
    # scenario's; it is read (and refused with one line) before any work
    if calibration_file:
        study.load_calibration(calibration_file)
    from kenomill import budget

    plan = study.plan(path, calibration_file=calibration_file)
    years = sorted({int(q[:4]) for q in plan.quarters})
    if year is not None and year not in years:
        raise ValidationError(f"--year: found {year}; the horizon covers {', '.join(map(str, years))}")
    chunk = budget.whatif_chunk(plan, draws, tpds.size * avs.size, chunk_size, what=f"whatif {sc.name}")
    from kenomill.progress import progress

    with progress(tpds.size * avs.size, "what-if grid", unit="grid points") as bar:
        wi = study.whatif_nsr(
            path, tpds, avs, draws=draws, year=year, terms=t, prices=pr, costs=costs,
            price_model=pm, calibration_file=calibration_file, move=mv,
            capacity_tpd=capacity if capacity is not None else np.inf,
            max_operating_tpd=max_operating_tpd if max_operating_tpd is not None else np.inf,
            progress=bar.advance, chunk_size=chunk,
        )  # fmt: skip
    console = Console(width=160)
    meta = plan.calibration.meta
    wi = wi.copy()  # the study's cached surface stays as computed
    wi.attrs["calibration_note"] = f"calibration: {calibration_file or plan.calibration_note}" + (
        f" (periods: {meta['periods_files']})" if meta.get("periods_files") else ""
    )
    print_production(wi, avs, console)
    print_nsr(wi, avs, console, price_label=price_label or f"{price_year} prices")
    print_margin(wi, avs, console)
    click.echo(
        f"prices: {price_label}; every grid point sees the same draws' prices"
        if price_label
        else f"prices: the fixed {price_year} row of the price deck (no price uncertainty; "
        "--price-uncertainty draws them from the scenario's [prices])"
    )
    for line in nsr_lines(wi, avs, capacity, max_operating_tpd) + margin_lines(
        wi, avs, _within(capacity, max_operating_tpd)
    ):
        click.echo(line)
    if sensitivity_at is not None:
        _tornado(study, path, sensitivity_at, float(avs[len(avs) // 2]), draws, year, t, pr, costs, deck,
                 calibration_file, pm, console)  # fmt: skip
    if out:
        io.write_table(wi, out)
        click.echo(f"wrote {out}")
    if plot:
        from kenomill import plots

        base = Path(out).with_suffix("") if out else Path(f"whatif_{sc.name}")
        panels = (("ag_oz", "p50"), ("rec_ag_pct", "p50"), ("rec_pb_pct", "p50"), ("ag_oz", "spread"))
        click.echo(f"wrote {plots.save_figure(plots.whatif_surface(wi, panels), f'{base}_surface.png')}")


def _grid(sim, tpd, availability, move):
    tpds = sim.parse_range(tpd, "--tpd")
    avs = sim.parse_range(availability, "--availability")
    # the same checks as simulate.whatif, before any work or progress line
    if tpds.size == 0 or (tpds <= 0).any():
        raise ValidationError(f"--tpd: found {tpds.tolist()}; allowed: positive numbers")
    if avs.size == 0 or (avs <= 0).any() or (avs > 1).any():
        raise ValidationError(f"--availability: found {avs.tolist()}; allowed: fractions in (0, 1]")
    if move is not None:
        mv: tuple[float, float] | None = parse_move(move, tpds)
    else:
        mv = (250.0, 300.0) if {250.0, 300.0} <= set(tpds.tolist()) else None
    return tpds, avs, mv


def _tornado(study, path, rate, availability, draws, year, t, pr, costs, deck, calibration_file, pm, console):
    df = study.whatif_tornado(
        path, rate, availability, draws=draws, year=year, terms=t, prices=pr, costs=costs,
        price_model=pm, deck=deck, calibration_file=calibration_file,
    )  # fmt: skip
    base = df.attrs["base"]
    tab = Table(
        title=f"Which inputs move NSR most: {rate:g} t/d, availability {df.attrs['availability']:g}, year "
        f"{df.attrs['year']} ({draws} draws). Expected NSR {base['nsr_usd_per_day'] / 1e3:,.1f} kUS$/d, "
        f"margin {base['margin_usd_per_day'] / 1e3:,.1f} kUS$/d; each input at its low and high, "
        "the others at their base",
        caption="low-high: P10-P90 of the uncertain inputs (prices, availability, the simulation's draws: "
        "all together and each part alone, the others off); "
        "the sourced range of a term, or an assumed range where the source says so",
        caption_justify="left",
    )
    for col in (
        "input",
        "low",
        "high",
        "NSR kUS$/d at low",
        "at high",
        "swing",
        "margin swing",
        "range from",
    ):
        tab.add_column(col, justify="left" if col in ("input", "range from") else "right")
    for r in df.itertuples():
        tab.add_row(
            r.input, f"{r.low:.4g}", f"{r.high:.4g}", f"{r.nsr_usd_per_day_at_low / 1e3:,.1f}",
            f"{r.nsr_usd_per_day_at_high / 1e3:,.1f}", f"{r.nsr_usd_per_day_swing / 1e3:+,.1f}",
            f"{r.margin_usd_per_day_swing / 1e3:+,.1f}", r.source,
        )  # fmt: skip
    console.print(tab)
    return df
