"""``kenomill reconcile``: adjust the reported figures so every balance holds; find gross errors."""

from __future__ import annotations

import click
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from kenomill.cli import guarded
from kenomill.cli.periods import load_periods, periods_label, periods_option


def _num(v: float) -> str:
    if v != v:  # NaN
        return "-"
    return f"{v:,.0f}" if abs(v) >= 1000 else f"{v:.4g}"


def _zrange(text: str) -> str:
    vals = sorted({float(v) for v in str(text).split(",")})
    return f"{vals[0]:.2f}" if vals[-1] - vals[0] < 0.005 else f"{vals[0]:.2f}-{vals[-1]:.2f}"


def _parse_rel(items) -> dict[str, float]:
    from kenomill.errors import ValidationError

    out = {}
    for item in items:
        name, sep, value = item.partition("=")
        try:
            out[name.strip()] = float(value)
        except ValueError:
            sep = ""
        if not sep:
            raise ValidationError(
                f"--rel-pct: found {item!r}; expected NAME=PERCENT, e.g. assays=2.5 or zn_lb=0.5"
            )
    return out


def print_reconciliation(rec, reported, top: int = 10, console: Console | None = None, model=None) -> None:
    """Print the per-period tests, the most suspicious measurements and any excluded figures."""
    from kenomill.errormodel import resolve
    from kenomill.reconcile import suspects

    model = resolve(model)

    console = console or Console(width=140)
    sus = suspects(rec, reported)
    t = Table(
        title="Global test per period (chi2 of the balances; gross error when p < alpha)",
        caption=f"error model: {rec.attrs['error_model']}. alpha = {rec.attrs['alpha']:g}; "
        f"measurement test: z > {_zrange(rec.attrs['z_crit'])} (Sidak-corrected). "
        + (
            f"Periods: {reported.attrs['periods_files']}."
            if "periods_files" in reported.attrs
            else "Source: Alexco news releases 2012-01-23, 2012-04-16, 2012-07-16."
        ),
    )
    for col, just in (
        ("period", "left"),
        ("chi2", "right"),
        ("dof", "right"),
        ("p-value", "right"),
        ("gross error", "center"),
        ("most suspect figure", "left"),
        ("reported", "right"),
        ("reconciled", "right"),
        ("adj %", "right"),
        ("z", "right"),
    ):
        t.add_column(col, justify=just)
    for i, p in enumerate(rec.period.values):
        s = sus[sus.period == str(p)]
        worst = s.iloc[0] if len(s) else None
        ge = bool(rec.gross_error.values[i])
        t.add_row(
            str(p),
            f"{float(rec.chi2.values[i]):.2f}",
            str(int(rec.dof.values[i])),
            f"{float(rec.p_value.values[i]):.3g}",
            "[bold red]YES[/]" if ge else "no",
            "-" if worst is None else escape(f"{worst.figure} [{worst.units}]"),
            "-" if worst is None else _num(worst.reported),
            "-" if worst is None else _num(worst.reconciled),
            "-" if worst is None else f"{worst.adjustment_pct:+.2f}",
            "-" if worst is None else f"{worst.z:.2f}",
        )
    console.print(t)
    t2 = Table(title=f"The {top} most suspicious measurements (largest measurement-test z)")
    for col, just in (
        ("period", "left"),
        ("figure", "left"),
        ("units", "left"),
        ("reported", "right"),
        ("reconciled", "right"),
        ("adj %", "right"),
        ("sd", "right"),
        ("z", "right"),
        ("flagged", "center"),
    ):
        t2.add_column(col, justify=just)
    for r in sus.head(top).itertuples():
        t2.add_row(
            r.period,
            r.figure,
            r.units,
            _num(r.reported),
            _num(r.reconciled),
            f"{r.adjustment_pct:+.2f}",
            _num(r.sd),
            f"{r.z:.2f}",
            "[bold red]YES[/]" if r.flagged else "no",
        )
    if top:
        console.print(t2)
    excluded = [e for e in rec.attrs.get("excluded", "").split(", ") if e]
    if excluded:
        t3 = Table(
            title="Excluded figures, estimated from the balances",
            caption="z = (reported - estimate) / sqrt(sd(estimate)^2 + sigma(reported)^2)",
        )
        for col in ("period", "figure", "units", "reported", "estimate", "sd", "reported vs estimate %", "z"):
            t3.add_column(col, justify="left" if col in ("period", "figure", "units") else "right")
        for item in excluded:
            p, c = item.split(".", 1)
            y = float(reported[c].sel(period=p))
            est, sd = float(rec[c].sel(period=p)), float(rec[c + "_sd"].sel(period=p))
            sig = float(model.sigma(c, y, float(reported[c + "_resolution"].sel(period=p))))
            t3.add_row(
                p,
                c,
                rec[c].attrs.get("units", ""),
                _num(y),
                _num(est),
                _num(sd),
                f"{100 * (y / est - 1):+.2f}",
                f"{(y - est) / (sd**2 + sig**2) ** 0.5:.2f}" if y == y else "-",
            )
        console.print(t3)


def print_sizes(est, console: Console | None = None) -> None:
    """Print the estimated error sizes: estimate, interval, status, and the periods used."""
    import math

    console = console or Console(width=140)
    t = Table(
        title="Relative error sizes per kind of figure (maximum likelihood on the consistent periods)",
        caption=(
            f"fitted to {', '.join(est.periods) or 'no period'}"
            + (f"; left out as inconsistent: {', '.join(est.excluded)}" if est.excluded else "")
            + f"; rounds: {len(est.rounds)}; sum of chi2 {est.chi2:.2f} on {est.n_residuals} residuals "
            + (f"(chi2/dof {est.chi2 / est.n_residuals:.2f})" if est.n_residuals else "")
            + ". Printed rounding (unit/sqrt 12) is always included: a size of 0 means the "
            "figures agree to their printed digits. Sizes describe how far the printed figures "
            "disagree with each other, not sampling errors that the bookkeeping carries through "
            "consistently."
        ),
    )
    for col, just in (
        ("kind", "left"),
        ("size used %", "right"),
        ("ML estimate %", "right"),
        (f"{est.level:.0%} interval %", "right"),
        ("status", "left"),
    ):
        t.add_column(col, justify=just)
    for row in est.to_frame().itertuples():
        ci = (
            f"{row.lower_pct:.3g} - {row.upper_pct:.3g}"
            if math.isfinite(row.lower_pct) and math.isfinite(row.upper_pct)
            else "-"
        )
        t.add_row(
            row.kind,
            f"{row.relative_pct:.3g}",
            f"{row.estimate_pct:.3g}" if math.isfinite(row.estimate_pct) else "-",
            ci,
            escape(row.status),
        )
    console.print(t)


def print_gross_errors(ge, console: Console | None = None) -> None:
    """Print the figures serial elimination sets aside, period by period."""
    console = console or Console(width=140)
    if not len(ge):
        console.print("serial elimination: no figure is flagged in any period")
        return
    t = Table(
        title="Gross errors located by serial elimination (largest flagged z set aside, test again)",
        caption="estimate: from the balances once every figure found in the period is set aside; "
        "tied: the same statistic (the balances cannot tell the figures apart)",
    )
    for col in ("period", "step", "figure", "units", "z", "reported", "estimate", "reported vs estimate %"):
        t.add_column(col, justify="left" if col in ("period", "figure", "units") else "right")
    t.add_column("tied with", justify="left")
    t.add_column("chi2/dof after", justify="right")
    t.add_column("p after", justify="right")
    for r in ge.itertuples():
        t.add_row(
            r.period,
            str(r.step),
            r.figure,
            r.units,
            f"{r.z:.1f}",
            _num(r.reported),
            _num(r.estimate),
            f"{r.reported_vs_estimate_pct:+.2f}" if r.estimate == r.estimate else "-",
            r.tied_with.replace(";", ", ") or "-",
            f"{r.chi2_after:.2f}/{r.dof_after}",
            f"{r.p_after:.3g}",
        )
    console.print(t)


def _kinds_in_toml(path) -> list[str]:
    from kenomill.io import read_toml

    cfg = read_toml(path, what="error model")
    rel = cfg.get("relative_pct", {})
    return list(rel) if isinstance(rel, dict) else []


@click.command()
@click.option(
    "--out",
    type=click.Path(dir_okay=False),
    default=None,
    help="Write one row per period to FILE: .csv or .nc.",
)
@click.option(
    "--across-periods",
    is_flag=True,
    help="Reconcile all periods together, so quarters add up to their half years and the year.",
)
@click.option(
    "--error-model",
    "error_model",
    type=click.Path(dir_okay=False),
    default=None,
    help="TOML file with [relative_pct], [columns_pct] and rounding (see kenomill.errormodel).",
)
@click.option(
    "--rel-pct",
    "rel_pct",
    multiple=True,
    metavar="NAME=PCT",
    help="Relative error [%] of a kind (tonnes, concentrate_tonnes, assays, recoveries, "
    "contained_metal) or of one column (e.g. zn_lb=0.5). Repeatable; wins over --error-model.",
)
@click.option(
    "--error-sizes",
    "error_sizes",
    type=click.Choice(["estimated", "fixed"]),
    default="estimated",
    show_default=True,
    help="Relative error per kind: estimated by maximum likelihood from the periods that pass "
    "both tests (kinds set by --rel-pct, --error-model or --rounding-only are kept as given), "
    "or the documented fixed sizes.",
)
@click.option("--rounding-only", is_flag=True, help="Set every relative error to 0: printed rounding only.")
@click.option("--no-rounding", is_flag=True, help="Leave the printed rounding out of the error model.")
@click.option(
    "--alpha",
    type=float,
    default=0.05,
    show_default=True,
    help="Significance level of the tests.",
)
@click.option(
    "--exclude",
    multiple=True,
    metavar="PERIOD.COLUMN",
    help="Treat a figure as not reported (estimate it from the balances), e.g. 2011Q4.zn_lb. Repeatable.",
)
@click.option(
    "--show-error-model",
    is_flag=True,
    help="Print the error model in force as TOML (a starting point for --error-model) and stop.",
)
@click.option("--top", type=click.IntRange(min=0), default=10, show_default=True, help="Suspects to list.")
@periods_option
@guarded
def reconcile(
    out,
    across_periods,
    error_model,
    rel_pct,
    error_sizes,
    rounding_only,
    no_rounding,
    alpha,
    exclude,
    show_error_model,
    top,
    periods,
):
    """Reconcile the reported figures (weighted least squares) and test them for gross errors.

    Per period, ore processed x head grade x recovery = contained metal = concentrate
    tonnes x grade for Ag, Pb and Zn (silver in both concentrates), and tpd x days = ore
    processed; figures are adjusted by successive linearisation so that all hold, and the
    chi-square (global) and measurement tests say whether and where the figures hold a
    gross error.
    """
    from dataclasses import replace

    from kenomill import io
    from kenomill.errormodel import DEFAULT_RELATIVE_PCT, KINDS, ErrorModel
    from kenomill.reconcile import summary_dataset, summary_frame
    from kenomill.study import Study

    if out:
        io.check_output_path(out)
    model = ErrorModel.from_toml(error_model) if error_model else ErrorModel()
    given_kinds = set(_kinds_in_toml(error_model)) if error_model else set()
    if rounding_only:
        model = replace(
            model, relative_pct=dict.fromkeys(DEFAULT_RELATIVE_PCT, 0.0), columns_pct={}, given=KINDS
        )
        given_kinds = set(KINDS)
    overrides = _parse_rel(rel_pct)
    model = model.with_overrides(overrides)
    given_kinds |= {k for k in overrides if k in KINDS}
    if no_rounding:
        model = replace(model, rounding=False)
    given = load_periods(periods) if (error_sizes == "estimated" or not show_error_model) else None
    study = Study(given)
    reported = study.periods()
    est = None
    if error_sizes == "estimated":
        est = study.error_sizes(model, fixed=sorted(given_kinds), alpha=alpha)
        model = est.model
    if show_error_model:
        click.echo(model.to_toml(), nl=False)
        return
    if given is not None:
        click.echo(periods_label(given))
    sizes = est if est is not None else "fixed"
    rec = study.reconcile(across_periods, error_sizes=sizes, error_model=model, alpha=alpha, exclude=exclude)
    if est is not None:
        print_sizes(est)
    print_reconciliation(rec, reported, top=top, model=model)
    print_gross_errors(study.serial_elimination(model, error_sizes=sizes, alpha=alpha))
    bad = [str(p) for p, g in zip(rec.period.values, rec.gross_error.values, strict=True) if g]
    if across_periods:
        click.echo(
            f"all periods together: chi2 = {rec.attrs['chi2_total']:.2f}, dof = {rec.attrs['dof_total']}, "
            f"p = {rec.attrs['p_value_total']:.3g}"
        )
    click.echo(
        f"gross error (p < {alpha:g}) in: {', '.join(bad)}"
        if bad
        else f"no period fails the global test at {alpha:g}"
    )
    if out:
        tabular = out.lower().endswith((".csv", ".xlsx"))
        io.write_table(summary_frame(rec) if tabular else summary_dataset(rec), out)
        click.echo(f"wrote {out}")
