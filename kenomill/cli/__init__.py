"""The ``kenomill`` command line.

Every subcommand lives in its own module of this package and is added to :data:`main`
below. Errors from bad input (:class:`kenomill.ValidationError`, missing files, broken
scenario files) print one line, ``kenomill <command>: error: ...``, and exit with
status 2, never a traceback; outputs are written atomically (:mod:`kenomill.io`).
"""

from __future__ import annotations

import functools
import sys

import click

from kenomill.errors import ValidationError

EXIT_BAD_INPUT = 2


def guarded(func):
    """Turn expected failures of a command into one line on stderr and exit status 2."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        ctx = click.get_current_context()
        try:
            return func(*args, **kwargs)
        except (ValidationError, FileNotFoundError, IsADirectoryError, PermissionError) as exc:
            msg = str(exc).replace("\n", " ")
            if isinstance(exc, FileNotFoundError) and exc.filename:
                msg = f"file not found: {exc.filename}"
            click.echo(f"kenomill {ctx.info_name}: error: {msg}", err=True)
            sys.exit(EXIT_BAD_INPUT)

    return wrapper


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="kenomill")
def main():
    """kenomill: mass balance, reconciliation, calibration and Monte Carlo of the Keno Hill mill."""


def _register():
    from kenomill.cli import balance, calibrate, periods, reconcile, report, simulate

    for command in (
        balance.balance,
        reconcile.reconcile,
        calibrate.calibrate,
        calibrate.predict,
        simulate.simulate,
        simulate.whatif,
        report.report,
        periods.periods,
    ):
        main.add_command(command)


_register()
