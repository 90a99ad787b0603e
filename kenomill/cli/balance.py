"""``kenomill balance``: do the reported figures close?"""

from __future__ import annotations

import click
from rich.console import Console
from rich.table import Table

from kenomill.cli import guarded, table_out_option
from kenomill.cli.periods import load_periods, periods_label, periods_option


def _fmt(q: str, v: float) -> str:
    if v != v:  # NaN
        return "-"
    return f"{v:,.1f}" if q.startswith("rec_") else f"{v:,.0f}"


def _pct(v: float, fmt: str) -> str:
    if v != v:  # NaN: a recovery without feed metal, or a difference to a reported 0
        return "-"
    if v == float("inf"):  # a printed 0 bounds no ratio: compared by bounds (see the notes)
        return "bounds"
    return format(v, fmt)


def print_balance(table, console: Console | None = None, source: str | None = None) -> None:
    console = console or Console(width=140)
    t = Table(
        title="Reported vs recomputed, by two routes (diff = recomputed / reported - 1)",
        caption="feed route: ore processed x head grade x recovery; concentrate route: "
        "concentrate tonnes x grade. tol: what printed rounding alone allows. "
        + (source or "Source: Alexco news releases 2012-01-23, 2012-04-16, 2012-07-16."),
    )
    for col, just in (
        ("period", "left"),
        ("quantity", "left"),
        ("units", "left"),
        ("reported", "right"),
        ("feed route", "right"),
        ("diff %", "right"),
        ("tol %", "right"),
        ("conc. route", "right"),
        ("diff %", "right"),
        ("tol %", "right"),
        ("closes", "center"),
    ):
        t.add_column(col, justify=just)
    for p in table.period.values:
        for q in table.quantity.values:
            r = table.sel(period=p, quantity=q)
            ok = bool(r.closes)
            defined = bool(r.checked) or not str(r.note.values)
            t.add_row(
                str(p),
                str(q),
                str(r.units.values),
                _fmt(q, float(r.reported)),
                _fmt(q, float(r.via_feed)),
                _pct(float(r.diff_feed_pct), "+.2f"),
                _pct(float(r.tolerance_feed_pct), ".2f"),
                _fmt(q, float(r.via_concentrate)),
                _pct(float(r.diff_concentrate_pct), "+.2f"),
                _pct(float(r.tolerance_concentrate_pct), ".2f"),
                ("yes" if ok else "[bold red]NO[/]") if defined else "undefined",
                end_section=(q == table.quantity.values[-1]),
            )
    console.print(t)
    notes = [
        f"{p} {q}: {table.note.sel(period=p, quantity=q).item()}"
        for p in table.period.values
        for q in table.quantity.values
        if "note" in table and table.note.sel(period=p, quantity=q).item()
    ]
    for line in notes:
        console.print("note: " + line, highlight=False, soft_wrap=True)


@click.command()
@table_out_option
@periods_option
@guarded
def balance(out, periods):
    """Recompute contained metal and recoveries of every reported period by two routes."""
    from kenomill import io
    from kenomill.balance import balance_frame
    from kenomill.study import Study

    if out:
        io.check_output_path(out)
    ds = load_periods(periods)
    table = Study(ds).balance()
    print_balance(table, source=None if ds is None else "Periods: " + periods_label(ds) + ".")
    n_checked = int(table.checked.sum())
    n_bad = n_checked - int(table.closes.sum())
    click.echo(
        f"{int(table.closes.sum())} of {n_checked} figures close within rounding; {n_bad} do not."
        + (
            f" {table.closes.size - n_checked} not checked (not reported, or undefined: see the notes)."
            if n_checked < table.closes.size
            else ""
        )
    )
    if out:
        tabular = out.lower().endswith((".csv", ".xlsx"))
        io.write_table(balance_frame(table) if tabular else table, out)
        click.echo(f"wrote {out}")
