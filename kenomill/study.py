"""One study of the mill: the pipeline's steps, each computed once and cached.

A :class:`Study` holds the periods it works on (the packaged ones or the user's files) and
runs each step of the pipeline on first use, keeping the result:

periods -> balance -> reconcile (suspects, gross_errors) -> calibrate (fit, calibration) ->
compare, loo -> predict, whatif, whatif_nsr, scenarios.

The report (:func:`kenomill.report.collect`), the command line and the notebooks call
these steps, so one run computes each input once (the report built
``reported_periods()`` 117 times before). Steps with arguments are cached per argument
set. With the packaged periods every step gives exactly what the functions it calls give
(the packaged calibration, :func:`kenomill.calibrate.default_fit`); with user periods the
default model is fitted to them and that calibration drives prediction and Monte Carlo.

"The year" of a summary follows one rule, :func:`summary_year`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Hashable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import xarray as xr

    from kenomill.calibrate import FitResult
    from kenomill.calibration_file import Calibration


def summary_year(yr: xr.Dataset, year: int | None = None) -> int | None:
    """The year a summary reports: ``year`` when the horizon has it (the report's key answers
    ask about the 2012 guidance), else the last complete year (four quarters) of ``yr``.

    ``yr`` is an annual Dataset (:func:`kenomill.simulate.annual`) with ``quarters`` per
    year. Without a complete year, the last year of the horizon; ``None`` for no years.
    """
    from kenomill.scenario import summary_year as rule

    return rule({int(y): int(yr.quarters.sel(year=y)) for y in yr.year.values}, year)


#: figure groups set aside, one group at a time, to see which explains a gross error
FIGURE_GROUPS: dict[str, tuple[str, ...]] = {
    "contained-metal figures (Ag oz, Pb lb, Zn lb)": ("ag_oz", "pb_lb", "zn_lb"),
    "recoveries": ("rec_ag_pct", "rec_pb_pct", "rec_zn_pct"),
    "head grades": ("head_ag_gpt", "head_pb_pct", "head_zn_pct"),
    "concentrate tonnes": ("pbcon_t", "zncon_t"),
    "lead concentrate grades": ("pbcon_ag_gpt", "pbcon_pb_pct"),
    "zinc concentrate grades": ("zncon_ag_gpt", "zncon_zn_pct"),
    "ore tonnes and throughput": ("ore_processed_t", "tpd"),
}


def explain_gross_errors(reported: xr.Dataset, rec: xr.Dataset, alpha: float | None = None) -> dict:
    """For each period failing the global test, reconcile it again with one group of figures set aside.

    A group whose removal leaves figures that agree within their errors (p-value above
    ``alpha``) is a candidate culprit; groups that cannot be estimated from the others
    (not observable) are reported as such. Uses :func:`kenomill.reconcile.reconcile_dataset`
    with ``exclude``.

    Returns
    -------
    dict
        period -> DataFrame with columns group, figures, chi2, dof, p_value (NaN: not testable).
    """
    import numpy as np
    import pandas as pd

    from kenomill.errors import ValidationError
    from kenomill.reconcile import reconcile_dataset

    alpha = float(rec.attrs.get("alpha", 0.05)) if alpha is None else alpha
    out = {}
    for i, p in enumerate(rec.period.values):
        if not bool(rec.gross_error.values[i]):
            continue
        p = str(p)
        sub = reported.sel(period=[p])
        rows = []
        for group, cols in FIGURE_GROUPS.items():
            cols = [c for c in cols if c in sub and np.isfinite(float(sub[c].values[0]))]
            try:
                # the fixed sizes of the report's reconciliation (kenomill.study), not sizes
                # estimated from this one period
                r = reconcile_dataset(
                    sub, exclude=[f"{p}.{c}" for c in cols], alpha=alpha, error_sizes="fixed"
                )
                rows.append(
                    {
                        "group": group,
                        "figures": ", ".join(cols),
                        "chi2": float(r.chi2.values[0]),
                        "dof": int(r.dof.values[0]),
                        "p_value": float(r.p_value.values[0]),
                    }
                )
            except ValidationError:
                # the other figures cannot pin this group down: nothing to test
                rows.append(
                    {"group": group, "figures": ", ".join(cols), "chi2": np.nan, "dof": 0, "p_value": np.nan}
                )
        out[p] = pd.DataFrame(rows).sort_values("p_value", ascending=False, na_position="last")
    return out


def _compare_job(job: tuple) -> dict:
    from kenomill.calibrate import compare_row

    model, data, starts, loo_starts, seed, bands, priors = job
    return compare_row(
        model, data, starts=starts, loo_starts=loo_starts, seed=seed, bands=bands, priors=priors
    )


def compare_table(models: Sequence[str], data, *, starts: int, loo_starts: int, seed: int,
                  workers: int | None = None, bands: bool = False, priors=None,
                  progress: Callable[[int], None] | None = None):  # fmt: skip
    """The rows of :func:`kenomill.calibrate.compare_row` for ``models`` from ``workers`` processes:
    the table of :func:`kenomill.calibrate.compare_models` (without ``loo_cover90`` unless
    ``bands``). ``progress`` is called with 1 after each model, as compare_models does."""
    from kenomill.calibrate import compare_frame

    n = len(models)
    workers = min(n, os.cpu_count() or 1) if workers is None else max(1, min(int(workers), n))
    jobs = [(m, data, starts, loo_starts, seed, bands, priors) for m in models]
    say = progress or (lambda k: None)
    rows = []
    if workers == 1:
        for j in jobs:
            rows.append(_compare_job(j))
            say(1)
    else:
        import multiprocessing as mp
        from concurrent.futures import ProcessPoolExecutor

        # spawn, as kenomill.validation: no fork of a process whose kernels may run threads
        with ProcessPoolExecutor(max_workers=workers, mp_context=mp.get_context("spawn")) as ex:
            for row in ex.map(_compare_job, jobs):
                rows.append(row)
                say(1)
    return compare_frame(rows)


class _Pending:
    """A step running in other processes (:meth:`Study.start_compare`): the cache holds this
    until the step is first asked for, then its result."""

    def __init__(self, pool, results: list, finish: Callable[[list], Any], own: bool = True):
        self.pool, self.results, self.finish, self.own = pool, results, finish, own

    def result(self) -> Any:
        try:
            return self.finish([r.get() for r in self.results])
        finally:
            self.cancel()

    def cancel(self) -> None:
        if self.own:  # a pool given to start_compare is its owner's to close
            self.pool.terminate()


class _Same:
    """A key part equal only to itself: an argument that neither hashes nor pickles, held by
    the key (so its id is not reused while the cache keeps the result)."""

    def __init__(self, v: Any):
        self.v = v

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Same) and other.v is self.v

    def __hash__(self) -> int:
        return id(self.v)


def _freeze(v: Any) -> Hashable:
    """A part of a cache key for an argument: the argument when hashable, else its pickle."""
    try:
        hash(v)
    except TypeError:
        import pickle

        try:
            return ("pickled", type(v).__qualname__, pickle.dumps(v))
        except (TypeError, pickle.PicklingError, AttributeError):
            return _Same(v)
    return v


def _options_key(options: dict) -> tuple:
    return tuple((k, _freeze(v)) for k, v in sorted(options.items()))


class Study:
    """The pipeline's cached steps on one set of periods.

    Parameters
    ----------
    periods : xarray.Dataset, path, sequence of paths or None
        The periods (None: the packaged quarters and aggregates; paths are read with
        :func:`kenomill.read_periods`).
    seed : int
        Seed of every random step (same seed, same results).
    """

    def __init__(self, periods: Any = None, *, seed: int = 0):
        self._periods_arg = periods
        self.seed = int(seed)
        self._cache: dict[Hashable, Any] = {}

    # ------------------------------------------------------------------ helpers
    def _cached(self, key: Hashable, make: Callable[[], Any]) -> Any:
        if key not in self._cache:
            self._cache[key] = make()
        elif isinstance(self._cache[key], _Pending):
            pending = self._cache.pop(key)
            self._cache[key] = pending.result()
        return self._cache[key]

    def cancel_pending(self) -> None:
        """Stop the steps still running in other processes (their results are not kept)."""
        for key, v in list(self._cache.items()):
            if isinstance(v, _Pending):
                v.cancel()
                del self._cache[key]

    @property
    def packaged(self) -> bool:
        """True when the study works on the packaged periods."""
        return self._periods_arg is None

    @property
    def periods_label(self) -> str:
        """Which periods the study used, in words (for the report and the CLI)."""
        if self.packaged:
            return "the packaged periods (Alexco Resource Corp. news releases, 2012)"
        arg = self._periods_arg
        if isinstance(arg, str | os.PathLike):
            arg = [arg]
        if isinstance(arg, Sequence):
            return "periods read from " + ", ".join(Path(p).name for p in arg)
        return "periods given as a Dataset"

    # ------------------------------------------------------------------ steps
    def periods(self) -> xr.Dataset:
        """The periods (:func:`kenomill.reported_periods` or :func:`kenomill.read_periods`)."""

        def make():
            import xarray as xr

            if self.packaged:
                from kenomill.data import reported_periods

                return reported_periods()
            if isinstance(self._periods_arg, xr.Dataset):
                return self._periods_arg
            from kenomill.periods import read_periods

            return read_periods(self._periods_arg)

        return self._cached("periods", make)

    def balance(self) -> xr.Dataset:
        """Reported vs recomputed contained metal (:func:`kenomill.balance.balance_table`)."""
        from kenomill.balance import balance_table

        return self._cached("balance", lambda: balance_table(self.periods()))

    def _given(self) -> xr.Dataset | None:
        # None for the packaged periods: the functions' own default, which some read otherwise
        # than a Dataset of the same periods (reconcile.flagged_figures: the six quarters)
        return None if self.packaged else self.periods()

    def reconcile(self, across_periods: bool = False, *, error_sizes: Any = "fixed", **options) -> xr.Dataset:
        """Reconciled periods (:func:`kenomill.reconcile.reconciled_periods`).

        ``error_sizes``: "fixed" (the default here: the report's narrative speaks of the
        documented 1-2 % sizes), "estimated" (the reconciliation's own default since issue 10,
        what the first notebook shows) or an estimate (:meth:`error_sizes`, what ``kenomill
        reconcile`` passes). ``options``: ``error_model``, ``alpha``, ``exclude`` ... of
        :func:`kenomill.reconcile.reconcile_dataset`.
        """
        from kenomill.reconcile import reconciled_periods

        return self._cached(
            ("reconcile", bool(across_periods), _freeze(error_sizes), _options_key(options)),
            # the packaged Dataset given explicitly: identical result, one read of the periods
            lambda: reconciled_periods(
                across_periods, periods=self.periods(), error_sizes=error_sizes, **options
            ),
        )

    def error_sizes(self, start=None, *, fixed: Sequence[str] = (), alpha: float = 0.05):
        """Error sizes per kind estimated from the periods (:func:`kenomill.errormodel.estimate_sizes`)."""
        from kenomill.errormodel import estimate_sizes

        return self._cached(
            ("error_sizes", _freeze(start), tuple(sorted(fixed)), float(alpha)),
            lambda: estimate_sizes(self.periods(), start=start, fixed=sorted(fixed), alpha=alpha),
        )

    def serial_elimination(self, error_model=None, *, error_sizes: Any = "estimated", alpha: float = 0.05):
        """Gross errors located by serial elimination (:func:`kenomill.reconcile.gross_errors`)."""
        from kenomill.reconcile import gross_errors

        return self._cached(
            ("serial_elimination", _freeze(error_model), _freeze(error_sizes), float(alpha)),
            lambda: gross_errors(self.periods(), error_model, error_sizes=error_sizes, alpha=alpha),
        )

    def suspects(self):
        """The reconciled figures ranked by their measurement test (:func:`kenomill.reconcile.suspects`)."""
        from kenomill.reconcile import suspects

        return self._cached("suspects", lambda: suspects(self.reconcile(), self.periods()))

    def gross_errors(self) -> dict:
        """Each period failing the global test reconciled again with one group of figures set
        aside (:func:`explain_gross_errors`)."""
        return self._cached("gross_errors", lambda: explain_gross_errors(self.periods(), self.reconcile()))

    def fit_data(self, data: str = "raw", error_model=None, *, exclude_flagged: bool = False):
        """The figures a fit sees (:func:`kenomill.calibrate.fit_data`); ``exclude_flagged``: without
        the figures the reconciliation flags as gross errors (:func:`kenomill.reconcile.flagged_figures`)."""
        from kenomill import calibrate

        def make():
            fd = calibrate.fit_data(data, error_model, periods=self._given())
            if exclude_flagged:
                from kenomill.reconcile import flagged_figures

                fd = calibrate.exclude_figures(fd, flagged_figures(self._given(), error_model=error_model))
            return fd

        return self._cached(("fit_data", data, _freeze(error_model), bool(exclude_flagged)), make)

    def fit(self, model: str | None = None, *, starts: int | None = None, priors=None, **choice) -> FitResult:
        """The default model fitted to the study's base periods; or ``model`` fitted from ``starts``
        starting points with ``priors`` (seeded by the study) to :meth:`fit_data` ``(**choice)``."""
        from kenomill import calibrate

        spec = calibrate.DEFAULT_FIT
        if model is None and starts is None and priors is None and not choice:

            def make():
                if self.packaged:
                    return calibrate.default_fit()
                return calibrate.fit(calibrate.DEFAULT_MODEL, self.fit_data(spec["data"]),
                                     starts=spec["starts"], seed=spec["seed"])  # fmt: skip

            return self._cached("fit", make)
        return self._cached(
            ("fit", model, starts, _freeze(priors), _options_key(choice)),
            lambda: calibrate.fit(
                model or calibrate.DEFAULT_MODEL,
                self.fit_data(**choice),
                starts=spec["starts"] if starts is None else starts,
                seed=self.seed,
                priors=priors,
            ),
        )

    def calibration(self) -> Calibration:
        """The calibration every prediction and Monte Carlo of the study uses."""

        def make():
            if self.packaged:
                from kenomill.calibration_file import default_calibration

                return default_calibration()
            return self.fit().to_calibration()

        return self._cached("calibration", make)

    def load_calibration(self, path: str | Path) -> Calibration:
        """A calibration file (``kenomill calibrate``), read and validated once."""
        from kenomill.calibration_file import Calibration

        return self._cached(("load_calibration", str(path)), lambda: Calibration.load(path))

    @staticmethod
    def _compare_key(models, starts, loo_starts, bands, priors, choice) -> tuple:
        return (
            "compare",
            tuple(models),
            starts,
            loo_starts,
            bool(bands),
            _freeze(priors),
            _options_key(choice),
        )

    def start_compare(self, models: Sequence[str], *, starts: int = 2, loo_starts: int = 1,
                      bands: bool = False, priors=None, pool=None, **choice) -> None:  # fmt: skip
        """Start :meth:`compare` in another process and return at once: the next :meth:`compare`
        with the same arguments waits for it and returns the same table (each row comes from its
        own seeded fits, whichever process makes it), while this process does other steps.

        Needs an importable ``__main__`` (the command line, a notebook, a script guarded by
        ``if __name__ == "__main__"``), as ``workers`` > 1 of :meth:`compare`; nothing is started
        on one core, or when the table is already cached. :meth:`cancel_pending` stops it.
        ``pool``: a pool of spawned processes to run it on (:func:`kenomill.cli.report.start_helper`),
        left open for its owner; by default a process of its own, ended once the table is read.
        """
        key = self._compare_key(models, starts, loo_starts, bands, priors, choice)
        if key in self._cache or (os.cpu_count() or 1) < 2:
            return
        import multiprocessing as mp

        from kenomill.calibrate import compare_frame

        data = self.fit_data(**choice)
        own = pool is None
        # spawn, as compare_table: no fork of a process whose kernels may run threads
        pool = mp.get_context("spawn").Pool(1) if own else pool
        jobs = [(m, data, starts, loo_starts, self.seed, bands, priors) for m in models]
        results = [pool.apply_async(_compare_job, (j,)) for j in jobs]
        self._cache[key] = _Pending(pool, results, compare_frame, own=own)

    def compare(self, models: Sequence[str], *, starts: int = 2, loo_starts: int = 1, workers: int | None = 1,
                bands: bool = False, priors=None, progress: Callable[[int], None] | None = None,
                **choice):  # fmt: skip
        """Model comparison on :meth:`fit_data` ``(**choice)``: the table of
        :func:`kenomill.calibrate.compare_models` (same rows, same figures), each model's row
        computed by :func:`kenomill.calibrate.compare_row`.

        ``workers`` processes share the models (default 1: in this process; None: one per core, at
        most one per model; more than one needs an importable ``__main__``, as
        :func:`kenomill.validation.compare`); every row comes from its own seeded fits, so the
        table is the same for any number. Without ``bands`` the table has no ``loo_cover90``
        column (the band coverage of compare_models' leave-one-out, which neither the report nor
        the notebooks show): its leave-one-out runs without bands.
        """
        key = self._compare_key(models, starts, loo_starts, bands, priors, choice)
        return self._cached(
            key,
            lambda: compare_table(
                list(models),
                self.fit_data(**choice),
                starts=starts,
                loo_starts=loo_starts,
                seed=self.seed,
                workers=workers,
                bands=bands,
                priors=priors,
                progress=progress,
            ),  # fmt: skip
        )

    def compare_by_prediction(self, candidates: Sequence[str], *, workers: int | None = None,
                              progress: Callable[[int], None] | None = None, **choice):  # fmt: skip
        """Candidates compared by prediction of held-out quarters (:func:`kenomill.validation.compare`)."""
        from kenomill import validation

        return self._cached(
            ("compare_by_prediction", tuple(candidates), _options_key(choice)),
            lambda: validation.compare(
                list(candidates),
                self.fit_data(**choice),
                periods=self._given(),
                seed=self.seed,
                progress=progress,
                workers=workers,
            ),  # fmt: skip
        )

    def loo(self, *, starts: int = 2):
        """Leave-one-period-out of the default model (:func:`kenomill.calibrate.leave_one_out`)."""
        from kenomill import calibrate

        return self._cached(
            ("loo", starts),
            lambda: calibrate.leave_one_out(self.fit().spec, self.fit().data, starts=starts, seed=self.seed),
        )

    def predict(self, feed, *, n_draws: int = 4000, quantiles=(0.05, 0.95)) -> xr.Dataset:
        """Predictions for new feeds with the study's calibration (not cached: feeds vary)."""
        from kenomill import calibrate

        return calibrate.predict(
            self.calibration(), feed, n_draws=n_draws, seed=self.seed, quantiles=quantiles
        )

    def _calibration_arg(self, calibration_file: str | Path | None = None) -> Calibration | None:
        # a file given wins; None keeps the functions' own default (the scenario's calibration,
        # else the packaged one): identical results
        if calibration_file:
            return self.load_calibration(calibration_file)
        return None if self.packaged else self.calibration()

    def load_scenario(self, path: str | Path):
        """The scenario file ``path``, read and validated once (:func:`kenomill.scenario.load`)."""
        from kenomill import scenario as scn

        return self._cached(("load_scenario", str(path)), lambda: scn.load(path))

    def plan(self, path: str | Path, *, calibration_file: str | Path | None = None):
        """The scenario ``path`` compiled for the kernel (:func:`kenomill.simulate.compile_plan`)."""
        from kenomill import simulate as sim

        return self._cached(
            ("plan", str(path), _freeze(calibration_file)),
            lambda: sim.compile_plan(
                self.load_scenario(path), self._calibration_arg(calibration_file), base_dir=Path(path).parent
            ),
        )

    def _surface(self, func: Callable, path: str | Path, tpd, availability, draws: int, progress,
                 calibration_file, options: dict):  # fmt: skip
        # what-if steps: the scenario read once, the study's seed and calibration, cached per arguments
        key = (func.__module__, func.__name__, str(path), _freeze(tpd), _freeze(availability), int(draws),
               _freeze(calibration_file), _options_key(options))  # fmt: skip
        return self._cached(
            key,
            lambda: func(
                self.load_scenario(path),
                tpd,
                availability,
                draws=draws,
                seed=self.seed,
                calibration=self._calibration_arg(calibration_file),
                base_dir=Path(path).parent,
                **({} if progress is None else {"progress": progress}),
                **options,
            ),  # fmt: skip
        )

    def whatif(self, path: str | Path, tpd: Sequence[float], availability: Sequence[float], *, draws: int,
               progress: Callable[[int], None] | None = None, calibration_file: str | Path | None = None,
               **options) -> xr.Dataset:  # fmt: skip
        """Throughput x availability surface of a scenario (:func:`kenomill.simulate.whatif`;
        ``options``: its other arguments)."""
        from kenomill import simulate as sim

        return self._surface(sim.whatif, path, tpd, availability, draws, progress, calibration_file, options)

    def whatif_nsr(self, path: str | Path, tpd, availability, *, draws: int,
                   progress: Callable[[int], None] | None = None, calibration_file: str | Path | None = None,
                   **options) -> xr.Dataset:  # fmt: skip
        """The what-if surface with its NSR (:func:`kenomill.value.whatif_nsr`; ``options``: its
        terms, prices, costs, move, capacity ...; by default the typical 2012 terms and prices)."""
        from kenomill import value

        return self._surface(
            value.whatif_nsr, path, tpd, availability, draws, progress, calibration_file, options
        )

    def whatif_tornado(self, path: str | Path, rate: float, availability: float | None, *, draws: int,
                       calibration_file: str | Path | None = None, **options):  # fmt: skip
        """Which inputs move NSR most at one rate (:func:`kenomill.value.whatif_tornado`)."""
        from kenomill import value

        return self._surface(
            value.whatif_tornado, path, rate, availability, draws, None, calibration_file, options
        )

    def nsr(self, terms=None, prices=None, *, draws: int = 1000):
        """NSR of every base period (:func:`kenomill.value.nsr_of_periods`).

        The unreported assays come from the packaged calibration, also for user periods (what
        ``kenomill nsr`` has always done; the study's own calibration would change its figures).
        """
        from kenomill import value

        return self._cached(
            ("nsr", _freeze(terms), _freeze(prices), int(draws)),
            lambda: value.nsr_of_periods(self._given(), terms, prices, n_draws=draws, seed=self.seed),
        )

    def nsr_sensitivity(self, terms=None, prices=None):
        """Total NSR with each price and term up 10 %, one at a time (:func:`kenomill.value.sensitivity`)."""
        from kenomill import value

        return self._cached(
            ("nsr_sensitivity", _freeze(terms), _freeze(prices)),
            lambda: value.sensitivity(self._given(), terms, prices),
        )

    def scenario(self, path: str | Path, *, draws: int, daily: bool = False, chunk_size: int | None = None,
                 scheduler=None, block_draws: int | None = None,
                 progress: Callable[[int], None] | None = None) -> xr.Dataset:  # fmt: skip
        """Monte Carlo of a scenario file (:func:`kenomill.simulate.run` of :meth:`plan`).

        ``chunk_size``, ``scheduler`` and ``block_draws`` change how the draws run, not what
        they give (:func:`kenomill.simulate.run`): not part of the cache key.
        """
        from kenomill import simulate as sim

        return self._cached(
            ("scenario", str(path), int(draws), bool(daily)),
            lambda: sim.run(
                self.plan(path),
                draws,
                self.seed,
                chunk_size=chunk_size,
                scheduler=scheduler,
                daily=daily,
                progress=progress,
                block_draws=block_draws,
            ),  # fmt: skip
        )

    def annual(self, path: str | Path, *, draws: int, daily: bool = False) -> xr.Dataset:
        """Calendar-year totals of :meth:`scenario` (:func:`kenomill.simulate.annual`)."""
        from kenomill import simulate as sim

        return self._cached(
            ("annual", str(path), int(draws), bool(daily)),
            lambda: sim.annual(self.scenario(path, draws=draws, daily=daily)),
        )
