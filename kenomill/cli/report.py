"""``kenomill report``: one self-contained HTML page with every answer, for readers without Python."""

from __future__ import annotations

import shlex
import time

import click

from kenomill.cli import SEED, guarded


def start_helper():
    """A pool of one spawned process for ``kenomill report`` (None on one core), started before
    this process imports the analyses: meanwhile it imports what the model comparison and the
    figures need (:func:`kenomill.report.drawing.warm`). :func:`kenomill.report.collect` runs the
    comparison on it (``helper=``) and the page shares its figures with it; the caller ends it
    (``terminate``)."""
    import multiprocessing as mp
    import os

    if (os.cpu_count() or 1) < 2:
        return None
    # spawn, as kenomill.study: no fork of a process whose kernels may run threads
    return mp.get_context("spawn").Pool(1, initializer=_helper_start)


def _helper_start() -> None:
    # only a head start: a pool whose initializer raises starts new workers without end, and
    # a real failure shows in the first task instead
    try:
        from kenomill.report import drawing

        drawing.warm()
    except Exception:
        pass


@click.command()
@click.option(
    "--out",
    "out",
    # a plain string: kenomill.report.check_output_path refuses bad paths in one line
    type=str,
    default="report.html",
    show_default=True,
    help="The HTML page to write (.html).",
)
@click.option(
    "--draws",
    type=click.IntRange(min=2),
    default=None,
    help="Monte Carlo draws per scenario [default: 1000]; each what-if point runs draws/5 (at least 20).",
)
@click.option("--seed", type=SEED, default=0, show_default=True, help="Seed of every random draw.")
@click.option(
    "--scenario",
    "scenarios",
    multiple=True,
    metavar="FILE.toml",
    help="Scenario file to include (repeatable; default: every scenarios/*.toml).",
)
@click.option(
    "--models",
    default=None,
    metavar="NAME,NAME",
    help="Recovery models to compare (default: all).",
)
@click.option(
    "--periods",
    "periods",
    multiple=True,
    metavar="FILE",
    help="Periods file (.csv or .xlsx, as `kenomill periods` describes; repeatable): analyse these "
    "periods instead of the packaged ones. The page says which periods it used.",
)
@guarded
def report(out, draws, seed, scenarios, models, periods):
    """Write one HTML page: the reported figures and their reconciliation, the calibration and model
    comparison, the throughput what-if surface and the Monte Carlo scenarios.

    Figures are embedded and nothing is loaded from elsewhere: the page can be mailed,
    archived or opened offline. The what-if surface runs the ore of bellekeno_only (or of
    the first scenario given). Takes about 10 s on two idle cores with the defaults; fewer
    --draws or --models make it quicker.
    """
    helper = start_helper()  # first: its imports run while this process imports the same
    try:
        _report(out, draws, seed, scenarios, models, periods, helper)
    finally:
        if helper is not None:
            helper.terminate()


def _report(out, draws, seed, scenarios, models, periods, helper) -> None:
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from kenomill import recovery
    from kenomill import report as rp
    from kenomill.study import Study

    path = rp.check_output_path(out)
    draws = rp.DEFAULT_DRAWS if draws is None else draws
    model_list = [m.strip() for m in models.split(",") if m.strip()] if models else None
    for m in model_list or ():
        recovery.get_model(m)
    paths = list(scenarios) or rp.default_scenario_paths()
    study = Study(list(periods) or None, seed=seed)
    # a broken file is refused in one line before any work; the study keeps it for the run
    loaded = [study.load_scenario(p) for p in paths]
    # size before work: every scenario's draws are kept for the page (kenomill.budget.report_check)
    from pathlib import Path

    from kenomill import budget
    from kenomill import simulate as sim

    plans = [sim.compile_plan(sc, base_dir=Path(p).parent) for p, sc in zip(paths, loaded, strict=True)]
    names = [sc.name for sc in loaded]
    wi_plan = plans[names.index(rp.WHATIF_SCENARIO)] if rp.WHATIF_SCENARIO in names else plans[0]
    n_points = len(rp.DEFAULT_WHATIF_TPD) * len(rp.DEFAULT_WHATIF_AVAILABILITY)
    budget.report_check(plans, draws, wi_plan, n_points, max(20, draws // 5))
    study.periods()  # a bad periods file is refused in one line before any work
    console = Console(stderr=True)
    t0 = time.perf_counter()
    with Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        TextColumn("{task.completed:.0f}/{task.total:.0f}"),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    ) as bar:
        task = bar.add_task("starting", total=rp.n_steps(len(paths)))

        def progress(msg: str, advance: float) -> None:
            bar.update(task, advance=advance, **({"description": msg} if msg else {}))

        results = rp.collect(
            draws,
            seed,
            models=model_list,
            scenario_paths=paths,
            progress=progress,
            study=study,
            background=True,
            helper=helper,
        )
        bar.update(task, description="writing the page")
        command = f"kenomill report --out {shlex.quote(str(out))} --draws {draws} --seed {seed}"
        command += "".join(f" --scenario {shlex.quote(str(s))}" for s in scenarios)
        command += f" --models {shlex.quote(models)}" if models else ""
        command += "".join(f" --periods {shlex.quote(str(p))}" for p in periods)
        rp.save_html(results, path, command=command)
    size = path.stat().st_size
    click.echo(f"wrote {path} ({size / 1e6:.1f} MB) in {time.perf_counter() - t0:.0f} s")
