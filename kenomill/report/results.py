"""The report's results: :func:`collect` runs the analyses through a :class:`kenomill.study.Study`
(nothing is recomputed here) and keeps what the page shows in a :class:`ReportResults`.

Sizes: :data:`DEFAULT_DRAWS` draws per scenario and ``draws // 5`` (at least 20) per point
of the what-if surface keep ``kenomill report`` near 9 s on two idle cores (8.7-9.2 s
measured, 2 Dec): the command line's helper process runs the model comparison (every model
fitted seven times for leave-one-out, 3-4 s) while this process runs the other steps
(4 s), then the two draw the page's 15 figures (3 s).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import matplotlib.figure
import pandas as pd
import xarray as xr

from kenomill.errors import ValidationError
from kenomill.plots._common import METALS, nearest
from kenomill.study import FIGURE_GROUPS, explain_gross_errors  # noqa: F401 (the report's names)

#: Monte Carlo draws per scenario by default
DEFAULT_DRAWS = 1000
#: what-if grid: calendar throughput [t/d] and long-run availability [fraction]
DEFAULT_WHATIF_TPD = (200.0, 225.0, 250.0, 275.0, 300.0, 325.0, 350.0, 375.0, 400.0)
DEFAULT_WHATIF_AVAILABILITY = (0.84, 0.88, 0.92, 0.96)
#: the scenario whose ore the what-if surface runs (Bellekeno alone: the only ore calibrated)
WHATIF_SCENARIO = "bellekeno_only"
#: the reference point of the what-if sentence: 2011Q4 and 2012Q2 ran at 245 and 244 t/d
#: calendar; 0.92 is the calibration's availability prior (96 % and 90 % reported)
BASELINE_TPD = 245.0
#: the public news releases the packaged periods transcribe: (date, title, file name the
#: ``source`` column of kenomill/data/reported_periods.csv cites)
RELEASES = (
    (
        "23 Jan 2012",
        "Alexco Silver Production Increases 21% to More Than 600,000 Ounces In Fourth Quarter 2011",
        "003_edb58d776d0c6b1d.txt",
    ),
    (
        "16 Apr 2012",
        "Alexco Reports Silver Production Results for First Quarter 2012",
        "001_2d7d3e0911ae9488.txt",
    ),
    ("16 Jul 2012", "Alexco Reports Silver Production for Second Quarter 2012", "002_daad1b7b2925b44b.txt"),
)
SOURCES_RELEASES = (
    "Alexco Resource Corp. news releases "
    + "; ".join(f"\u201c{title}\u201d ({date})" for date, title, _ in RELEASES)
    + "; transcribed in the package's reported_periods.csv"
)


def _deposit_sources() -> str:
    """The releases the packaged resource estimates of Onek and Lucky Queen come from."""
    from kenomill.scenario import _deposit_rows

    found = [r["source"] for r in _deposit_rows() if r["deposit"] in ("Onek", "Lucky Queen")]
    return "; ".join(dict.fromkeys(found))


#: the footnote that names the transcribed files
SOURCES_FILES = "Files cited by the source column of reported_periods.csv: " + "; ".join(
    f"{f} = release of {d}" for d, _, f in RELEASES
)

Progress = Callable[[str, float], None]
#: the source tree (the shipped scenarios/ when kenomill runs from a checkout)
SOURCE_TREE = Path(__file__).resolve().parents[2]


def _noop(msg: str, advance: float = 0.0) -> None:
    return None


# ------------------------------------------------------------------ results
@dataclass
class ScenarioRun:
    """One scenario's Monte Carlo result and its reductions."""

    path: Path
    scenario: object  # kenomill.scenario.Scenario
    ds: xr.Dataset  # (draw, quarter)
    annual: xr.Dataset  # (draw, year)
    summary: xr.Dataset  # (stat, year)
    targets: pd.DataFrame
    drivers: dict[str, pd.DataFrame]  # metal -> table


@dataclass
class ReportResults:
    """Everything the page shows; produced by :func:`collect`."""

    reported: xr.Dataset
    balance: xr.Dataset
    rec: xr.Dataset
    rec_across: xr.Dataset
    suspects: pd.DataFrame
    explanations: dict[str, pd.DataFrame]  # gross-error period -> p-value with each group set aside
    fit: object  # kenomill.calibrate.FitResult
    calibration: object  # kenomill.calibration_file.Calibration
    comparison: pd.DataFrame | None  # None until complete() when collected with background
    loo: xr.Dataset
    whatif: xr.Dataset
    whatif_scenario: str
    scenarios: list[ScenarioRun]
    settings: dict = field(default_factory=dict)
    #: which inputs move NSR most at one rate (:func:`kenomill.value.whatif_tornado`); None: not run
    tornado: pd.DataFrame | None = None
    #: figures the page shows as given ("reported_vs_fitted", "recovery_curves"); collect leaves
    #: it empty and the page draws them (kenomill.report.context.calibration_figures)
    figures: dict[str, matplotlib.figure.Figure] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    #: the comparison still running in another process (collect(background=True)): :meth:`complete`
    _finish: Callable[[], pd.DataFrame] | None = field(default=None, repr=False)
    #: the helper process that may draw some figures (collect(helper=...)); None: all drawn here
    _helper: object = field(default=None, repr=False)

    def complete(self) -> ReportResults:
        """Wait for what still runs in another process (the model comparison of
        ``collect(background=True)``) and fill it in; returns ``self``."""
        if self._finish is not None:
            t0 = time.perf_counter()
            self.comparison, self._finish = self._finish(), None
            self.timings["compare (wait)"] = time.perf_counter() - t0
        return self


def default_scenario_paths() -> list[Path]:
    """The shipped scenario files: ``scenarios/*.toml`` of the current directory, else of the source tree."""
    here = Path("scenarios")
    tree = SOURCE_TREE / "scenarios"
    for d in (here, tree):
        files = sorted(d.glob("*.toml"))
        if files:
            return files
    raise ValidationError(
        f"scenarios: found no *.toml in {str(here)!r} or {str(tree)!r}; give scenario files with --scenario"
    )


def _scenario_runs(study, scenarios, draws: int, say) -> list[ScenarioRun]:
    """The Monte Carlo of each scenario with its annual summary, targets and drivers."""
    from kenomill import simulate as sim
    from kenomill.study import summary_year

    runs = []
    # chronological, then by name: the page reads from 2012 forward
    for p, sc in sorted(scenarios, key=lambda ps: (ps[1].horizon.start, ps[1].name)):
        say(f"Monte Carlo: {sc.name} ({draws} draws)", 0)
        ds = study.scenario(p, draws=draws)
        yr = study.annual(p, draws=draws)
        summ = sim.summarize(yr[[m for m, *_ in METALS] + ["ore_processed_t"]])
        tp = sim.target_probabilities(ds, sc, yr=yr) if sc.targets else pd.DataFrame()
        year = summary_year(yr)
        dr = {m: sim.drivers(ds, m, year, top=12, yr=yr) for m, *_ in METALS}
        runs.append(ScenarioRun(p, sc, ds, yr, summ, tp, dr))
        say("", 1)
    return runs


def _model_list(models: Sequence[str] | None) -> list[str]:
    """The models to compare (checked by name), the default model always among them."""
    from kenomill import calibrate, recovery

    model_list = list(recovery.MODELS) if models is None else list(models)
    for m in model_list:
        recovery.get_model(m)
    if calibrate.DEFAULT_MODEL not in model_list:
        model_list.append(calibrate.DEFAULT_MODEL)
    return model_list


class _Laps:
    """Wall time of each step, for :attr:`ReportResults.timings`."""

    def __init__(self):
        self.timings: dict[str, float] = {}
        self._t0 = time.perf_counter()

    def __call__(self, name: str) -> None:
        now = time.perf_counter()
        self.timings[name] = now - self._t0
        self._t0 = now


def collect(
    draws: int = DEFAULT_DRAWS,
    seed: int = 0,
    *,
    models: Sequence[str] | None = None,
    scenario_paths: Sequence[str | Path] | None = None,
    whatif_tpd: Sequence[float] = DEFAULT_WHATIF_TPD,
    whatif_availability: Sequence[float] = DEFAULT_WHATIF_AVAILABILITY,
    whatif_draws: int | None = None,
    curve_draws: int = 1000,
    progress: Progress | None = None,
    periods=None,
    study=None,
    background: bool = False,
    helper=None,
) -> ReportResults:
    """Run every analysis the report shows, each through a cached step of ``study``.

    Parameters
    ----------
    draws : int
        Monte Carlo draws per scenario.
    seed : int
        Seed of every random draw (same seed, same page).
    models : sequence of str, optional
        Recovery models to compare (default: all of :data:`kenomill.recovery.MODELS`).
        The default model is always among them.
    scenario_paths : sequence of paths, optional
        Scenario TOML files (default: :func:`default_scenario_paths`).
    whatif_tpd, whatif_availability : sequences
        The what-if grid [t/d calendar], [fraction].
    whatif_draws : int, optional
        Draws per grid point (default ``max(20, draws // 5)``).
    curve_draws : int
        Draws behind the bands of the recovery curves.
    progress : callable(message, advance), optional
        Told about each step; ``advance`` counts steps done (see :func:`n_steps`).
    periods : xarray.Dataset, path or sequence of paths, optional
        The periods to analyse (:func:`kenomill.read_periods`; default the packaged ones).
    study : kenomill.study.Study, optional
        A study whose cached steps to use (its periods and seed win over ``periods``).
    background : bool
        Run the model comparison in another process while this one does the other steps
        (:meth:`kenomill.study.Study.start_compare`: the same table; needs an importable
        ``__main__``, as the command line has). ``comparison`` is then None until
        :meth:`ReportResults.complete` (which :func:`kenomill.report.render_html` calls once
        the figures that do not need it are drawn).
    helper : multiprocessing.pool.Pool, optional
        A pool of one spawned process started before anything else
        (:func:`kenomill.cli.report.start_helper`: it imports what the comparison and the
        figures need while this process imports the same). The background comparison runs
        on it instead of a process of its own, and once it is done the helper draws some of
        the page's figures (:func:`kenomill.report.drawing.draw_all`): the same page. Its
        owner closes it.
    """
    from kenomill.study import Study

    if draws < 2:
        raise ValidationError(f"--draws: found {draws}; allowed: at least 2")
    say = progress or _noop
    study = study if study is not None else Study(periods, seed=seed)
    paths = [Path(p) for p in (scenario_paths or default_scenario_paths())]
    scenarios = [(p, study.load_scenario(p)) for p in paths]  # refuse a broken file before any work
    names = [sc.name for _, sc in scenarios]
    wi_name = WHATIF_SCENARIO if WHATIF_SCENARIO in names else names[0]
    model_list = _model_list(models)
    wd = int(whatif_draws or max(20, draws // 5))
    if background:  # the comparison (most of the work) in another process meanwhile
        study.start_compare(model_list, starts=2, loo_starts=1, pool=helper)
    try:
        return _collect_steps(study, draws, scenarios, names, paths, wi_name, model_list, wd, whatif_tpd,
                              whatif_availability, curve_draws, say, background, helper)  # fmt: skip
    except BaseException:
        study.cancel_pending()
        raise


def _collect_steps(study, draws, scenarios, names, paths, wi_name, model_list, wd, whatif_tpd,
                   whatif_availability, curve_draws, say, background, helper) -> ReportResults:  # fmt: skip
    """The steps of :func:`collect`, in order, each timed; with ``background`` the comparison
    is left to :meth:`ReportResults.complete`."""
    lap = _Laps()

    say("reported figures and their balances", 0)
    parts: dict = {"reported": study.periods(), "balance": study.balance()}
    lap("balance")
    say("reconciling the reported figures", 1)
    parts.update(
        rec=study.reconcile(),
        rec_across=study.reconcile(across_periods=True),
        suspects=study.suspects(),
        explanations=study.gross_errors(),
    )
    lap("reconcile")
    say("calibrating the default recovery model", 1)
    parts.update(fit=study.fit(), calibration=study.calibration())
    lap("calibrate")
    say("leave-one-quarter-out of the default model", 1)
    parts["loo"] = study.loo(starts=2)
    lap("loo")
    n_pts = len(whatif_tpd) * len(whatif_availability)
    say(f"what-if surface: {n_pts} points x {wd} draws ({wi_name})", 1)
    wtpd = [float(v) for v in whatif_tpd]
    wav = [float(v) for v in whatif_availability]
    # the surface and its NSR in one pass (value.whatif_nsr runs simulate.whatif and settles
    # each draw's concentrates under the typical 2012 terms and the 2012 prices)
    wi_path, move = paths[names.index(wi_name)], whatif_move(wtpd)
    parts["whatif"] = study.whatif_nsr(wi_path, wtpd, wav, draws=wd, move=move, progress=lambda k: say("", k))
    parts["tornado"] = _tornado(study, wi_path, wtpd, wav, wd, say)
    lap("whatif")  # the surface and the tornado
    runs = _scenario_runs(study, scenarios, draws, say)
    lap("scenarios")
    say(f"comparing {len(model_list)} recovery models (fits and leave-one-out)", 1)
    finish = None
    if background:  # the other process's table, asked for when the page needs it (complete)
        parts["comparison"] = None
        finish = partial(study.compare, model_list, starts=2, loo_starts=1)
    else:
        parts["comparison"] = study.compare(model_list, starts=2, loo_starts=1)
    lap("compare")
    settings = {
        "draws": int(draws),
        "whatif_draws": wd,
        "seed": study.seed,
        "models": model_list,
        "curve_draws": int(curve_draws),
        "whatif_tpd": wtpd,
        "whatif_availability": wav,
        "periods": study.periods_label,
    }
    return ReportResults(
        **parts,
        whatif_scenario=wi_name,
        scenarios=runs,
        settings=settings,
        timings=lap.timings,
        _finish=finish,
        _helper=helper,
    )


def _tornado(study, path, wtpd, wav, draws: int, say) -> pd.DataFrame:
    """The tornado at the move's first rate (250 t/d when on the grid) and the baseline availability:
    every input at its low and high, the others at their base (helper value, issue 15)."""
    move = whatif_move(wtpd)
    rate = move[0] if move is not None else nearest(wtpd, BASELINE_TPD)
    a = nearest(wav, 0.92)
    say(f"which inputs move NSR most: {rate:g} t/d, availability {a:g}", 1)
    return study.whatif_tornado(path, rate, a, draws=draws)


def whatif_move(tpd: Sequence[float]) -> tuple[float, float] | None:
    """The move whose probability of gain the report gives: 250 -> 300 t/d when both are on the
    grid (the issue's example), else from the rate nearest :data:`BASELINE_TPD` to the next one up."""
    rates = sorted(float(t) for t in tpd)
    if 250.0 in rates and 300.0 in rates:
        return (250.0, 300.0)
    t0 = nearest(rates, BASELINE_TPD)
    up = [t for t in rates if t > t0]
    return (t0, up[0]) if up else None


def n_steps(
    n_scenarios: int, n_tpd: int = len(DEFAULT_WHATIF_TPD), n_avail: int = len(DEFAULT_WHATIF_AVAILABILITY)
) -> int:
    """Number of progress steps :func:`collect` reports (for a progress bar's total)."""
    return 5 + n_tpd * n_avail + n_scenarios


#: plain words for the response offsets of :data:`kenomill.recovery.OFFSET_NAMES` in driver names
OFFSET_WORDS = {
    "logit_rec_ag_pbcon": "response: Ag recovery to lead con",
    "logit_rec_pb": "response: Pb recovery",
    "logit_rec_zn": "response: Zn recovery",
    "log_gangue_pbcon": "response: gangue in lead con",
    "log_gangue_zncon": "response: gangue in zinc con",
}


def plain_driver(name: str) -> str:
    """A driver name of :func:`kenomill.simulate.drivers` in words (source names keep their spelling)."""
    for k, v in OFFSET_WORDS.items():  # longest first: logit_rec_ag_pbcon before logit_rec_pb
        name = name.replace(k, v)
    return name
