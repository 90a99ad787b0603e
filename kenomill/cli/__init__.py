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


def _say(ctx, text: str) -> None:
    click.echo(f"kenomill {ctx.info_name}: {text}", err=True)


def guarded(func):
    """Turn expected failures of a command into one line on stderr and an exit status.

    Bad input (:class:`~kenomill.ValidationError`, a missing or unreadable file, a full
    disk) exits 2; Ctrl-C exits 130 and SIGTERM/SIGHUP 143/129, each with one line; files
    being written are removed (:func:`kenomill.io.atomic_path`), so none is left half written.
    A run that does not fit in memory despite the size check before work also ends in one
    line (exit 2) rather than a traceback.
    """

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        from kenomill.io import Terminated, terminate_on_signals

        ctx = click.get_current_context()
        try:
            with terminate_on_signals():
                return func(*args, **kwargs)
        except ValidationError as exc:
            _say(ctx, "error: " + str(exc).replace("\n", " "))
            sys.exit(EXIT_BAD_INPUT)
        except KeyboardInterrupt as exc:
            signum = exc.signum if isinstance(exc, Terminated) else 2
            name = "SIGINT (Ctrl-C)" if signum == 2 else str(exc)
            _say(ctx, f"interrupted by {name}; no partial output file was left")
            sys.exit(128 + signum)
        except MemoryError:
            _say(
                ctx,
                "error: out of memory; use fewer draws, steps or grid points "
                "(or --chunk-size where the command has it)",
            )
            sys.exit(EXIT_BAD_INPUT)
        except OSError as exc:
            if isinstance(exc, FileNotFoundError) and exc.filename:
                msg = f"file not found: {exc.filename}"
            elif exc.filename:
                msg = f"{exc.filename}: {exc.strerror or exc}"
            else:
                msg = str(exc).replace("\n", " ")
            _say(ctx, "error: " + msg)
            sys.exit(EXIT_BAD_INPUT)

    return wrapper


def table_out_option(func):
    """``--out FILE``: the command's table written as .csv, .xlsx or .nc (netCDF), by extension."""
    return click.option(
        "--out",
        "out",
        # a plain string: kenomill.io.check_output_path refuses bad paths in one line, where
        # click.Path(dir_okay=False) would print a three-line usage error
        type=str,
        default=None,
        help="Write the table to FILE: .csv, .xlsx or .nc (netCDF), by extension.",
    )(func)


#: seeds: what numpy's SeedSequence and the kernels' counter-based streams accept
SEED = click.IntRange(0, 2**63 - 1)
#: Monte Carlo draws: at least one (the size check before work bounds the top)
DRAWS = click.IntRange(min=1)


class _OneLineGroup(click.Group):
    """The ``kenomill`` group: a bad option or argument is one line on stderr, exit 2.

    Click's default prints the usage, a hint and the error on three lines; a log or a
    script wants one line naming the command, the option and what is allowed.
    """

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode, **extra)
        try:
            rv = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except click.UsageError as exc:
            # the root is named kenomill whatever argv[0] was (python -m kenomill, a test runner)
            name = " ".join(["kenomill", *exc.ctx.command_path.split(" ")[1:]]) if exc.ctx else "kenomill"
            msg = exc.format_message().replace("\n", " ").rstrip(".")
            click.echo(f"{name}: error: {msg} (see {name} --help)", err=True)
            sys.exit(EXIT_BAD_INPUT)
        except click.ClickException as exc:
            click.echo(f"kenomill: error: {exc.format_message()}", err=True)
            sys.exit(exc.exit_code)
        except click.Abort:
            click.echo("kenomill: interrupted; no partial output file was left", err=True)
            sys.exit(130)
        sys.exit(rv if isinstance(rv, int) else 0)


@click.group(cls=_OneLineGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="kenomill")
def main():
    """kenomill: mass balance, reconciliation, calibration and Monte Carlo of the Keno Hill mill."""


def _register():
    from kenomill.cli import (
        balance,
        blend,
        calibrate,
        nsr,
        periods,
        reconcile,
        report,
        simulate,
        warmup,
        whatif,
    )

    for command in (
        balance.balance,
        reconcile.reconcile,
        calibrate.calibrate,
        calibrate.predict,
        simulate.simulate,
        whatif.whatif,
        report.report,
        periods.periods,
        nsr.nsr,
        blend.blend,
        warmup.warmup,
    ):
        main.add_command(command)


_register()
