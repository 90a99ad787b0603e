"""``kenomill periods check|template`` and the ``--periods`` option shared by the commands."""

from __future__ import annotations

import sys

import click

from kenomill.cli import EXIT_BAD_INPUT, guarded

PERIODS_HELP = (
    "Periods file (.csv or .xlsx, see docs/periods.md), or 'packaged' for the packaged Keno Hill "
    "periods; repeatable: --periods packaged --periods new.csv adds new.csv's periods to the "
    "packaged ones. Default: packaged."
)


def periods_option(func):
    """The repeatable ``--periods FILE`` option (values: paths or the word ``packaged``)."""
    return click.option("--periods", "periods", multiple=True, metavar="FILE", help=PERIODS_HELP)(func)


def load_periods(values, *, quarters_only: bool = False):
    """The periods Dataset the options name (None = packaged, the default), or exit 2.

    Every problem is printed on stderr, one line each, then the command exits with status 2
    before any work; warnings are printed on stderr and the command goes on.
    """
    from kenomill.periods import PACKAGED, PeriodsError, check_periods

    values = tuple(values or ())
    if not values or values == (PACKAGED,):
        return None
    name = click.get_current_context().info_name
    check = check_periods(list(values))
    if check.problems:  # refused: the problems only, one line each (`periods check` shows warnings too)
        for p in check.problems:
            click.echo(f"kenomill {name}: error: {p}", err=True)
        sys.exit(EXIT_BAD_INPUT)
    for w in check.warnings:
        click.echo(f"kenomill {name}: warning: {w}", err=True)
    assert not isinstance(check.dataset, PeriodsError)
    return check.dataset


def periods_label(ds) -> str:
    """Which periods a command used, for its output."""
    if ds is None:
        return "packaged Keno Hill periods (Alexco news releases 23 Jan, 16 Apr, 16 Jul 2012)"
    return f"periods from {ds.attrs.get('periods_files', '?')}: {', '.join(map(str, ds.period.values))}"


@click.group()
def periods():
    """Check a periods file, or write an empty one to fill in."""


@periods.command()
@click.argument("files", nargs=-1, required=True, metavar="FILE...")
@guarded
def check(files):
    """Print what FILE (or FILEs, or 'packaged' and FILE) will give, period by period, and every problem.

    Exit status 0 when the periods can be used (warnings allowed), 2 when any problem is found.
    """
    from kenomill.periods import check_periods, format_check

    result = check_periods(list(files))
    for line in format_check(result):
        click.echo(line)
    for w in result.warnings:
        click.echo(f"warning: {w}")
    if result.problems:
        for p in result.problems:
            click.echo(f"kenomill periods check: error: {p}", err=True)
        click.echo(
            f"kenomill periods check: {len(result.problems)} problem(s); nothing will be used", err=True
        )
        sys.exit(EXIT_BAD_INPUT)
    click.echo(f"ok: {len(result.warnings)} warning(s), no problems")


@periods.command()
@click.option("--out", "out", type=str, required=True, help="FILE.xlsx or FILE.csv: the template to write.")
@guarded
def template(out):
    """Write an empty periods file: the columns, their units (a # row) and one worked example row."""
    from kenomill.periods import write_template

    p = write_template(out)
    click.echo(f"wrote {p}")
