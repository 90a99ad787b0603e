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

    model, data, starts, loo_starts, seed = job
    return compare_row(model, data, starts=starts, loo_starts=loo_starts, seed=seed, bands=False)


def compare_table(models: Sequence[str], data, *, starts: int, loo_starts: int, seed: int,
                  workers: int | None = None):  # fmt: skip
    """The rows of :func:`kenomill.calibrate.compare_row` for ``models`` without bands, from
    ``workers`` processes: the table of :func:`kenomill.calibrate.compare_models` but ``loo_cover90``."""
    from kenomill.calibrate import compare_frame

    n = len(models)
    workers = min(n, os.cpu_count() or 1) if workers is None else max(1, min(int(workers), n))
    jobs = [(m, data, starts, loo_starts, seed) for m in models]
    if workers == 1:
        rows = [_compare_job(j) for j in jobs]
    else:
        import multiprocessing as mp
        from concurrent.futures import ProcessPoolExecutor

        # spawn, as kenomill.validation: no fork of a process whose kernels may run threads
        with ProcessPoolExecutor(max_workers=workers, mp_context=mp.get_context("spawn")) as ex:
            rows = list(ex.map(_compare_job, jobs))
    return compare_frame(rows)


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
        return self._cache[key]

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

    def reconcile(self, across_periods: bool = False, *, error_sizes: str = "fixed") -> xr.Dataset:
        """Reconciled periods (:func:`kenomill.reconcile.reconciled_periods`).

        ``error_sizes``: "fixed" (the default here: the report's narrative speaks of the
        documented 1-2 % sizes) or "estimated" (the reconciliation's own default since issue 10,
        what ``kenomill reconcile`` and the first notebook show).
        """
        from kenomill.reconcile import reconciled_periods

        return self._cached(
            ("reconcile", bool(across_periods), error_sizes),
            # the packaged Dataset given explicitly: identical result, one read of the periods
            lambda: reconciled_periods(across_periods, periods=self.periods(), error_sizes=error_sizes),
        )

    def suspects(self):
        """The reconciled figures ranked by their measurement test (:func:`kenomill.reconcile.suspects`)."""
        from kenomill.reconcile import suspects

        return self._cached("suspects", lambda: suspects(self.reconcile(), self.periods()))

    def gross_errors(self) -> dict:
        """Each period failing the global test reconciled again with one group of figures set
        aside (:func:`explain_gross_errors`)."""
        return self._cached("gross_errors", lambda: explain_gross_errors(self.periods(), self.reconcile()))

    def fit(self) -> FitResult:
        """The default model fitted to the study's base periods."""
        from kenomill import calibrate

        def make():
            if self.packaged:
                return calibrate.default_fit()
            spec = calibrate.DEFAULT_FIT
            data = calibrate.fit_data(spec["data"], periods=self.periods())
            return calibrate.fit(calibrate.DEFAULT_MODEL, data, starts=spec["starts"], seed=spec["seed"])

        return self._cached("fit", make)

    def calibration(self) -> Calibration:
        """The calibration every prediction and Monte Carlo of the study uses."""

        def make():
            if self.packaged:
                from kenomill.calibration_file import default_calibration

                return default_calibration()
            return self.fit().to_calibration()

        return self._cached("calibration", make)

    def compare(
        self, models: Sequence[str], *, starts: int = 2, loo_starts: int = 1, workers: int | None = 1
    ):
        """Model comparison on the study's data: the table of :func:`kenomill.calibrate.compare_models`
        (same rows, same figures), each model's row computed by :func:`kenomill.calibrate.compare_row`.

        ``workers`` processes share the models (default 1: in this process; None: one per core, at
        most one per model; more than one needs an importable ``__main__``, as
        :func:`kenomill.validation.compare`); every row comes from its own seeded fits, so the
        table is the same for any number. The table has no ``loo_cover90`` column (the band
        coverage of compare_models' leave-one-out, which neither the report nor the notebooks
        show): its leave-one-out runs without bands (:func:`kenomill.calibrate.compare_row`).
        """
        key = ("compare", tuple(models), starts, loo_starts)
        return self._cached(
            key,
            lambda: compare_table(
                list(models),
                self.fit().data,
                starts=starts,
                loo_starts=loo_starts,
                seed=self.seed,
                workers=workers,
            ),
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

    def _calibration_arg(self) -> Calibration | None:
        # None keeps simulate's own default (the packaged calibration): identical results
        return None if self.packaged else self.calibration()

    def whatif(self, path: str | Path, tpd: Sequence[float], availability: Sequence[float], *, draws: int,
               progress: Callable[[int], None] | None = None) -> xr.Dataset:  # fmt: skip
        """Throughput x availability surface of a scenario (:func:`kenomill.simulate.whatif`)."""
        from kenomill import scenario as scn
        from kenomill import simulate as sim

        path = Path(path)
        key = ("whatif", str(path), tuple(map(float, tpd)), tuple(map(float, availability)), int(draws))
        return self._cached(
            key,
            lambda: sim.whatif(
                scn.load(path),
                list(tpd),
                list(availability),
                draws=draws,
                seed=self.seed,
                calibration=self._calibration_arg(),
                base_dir=path.parent,
                progress=progress,
            ),
        )

    def load_scenario(self, path: str | Path):
        """The scenario file ``path``, read and validated once (:func:`kenomill.scenario.load`)."""
        from kenomill import scenario as scn

        return self._cached(("load_scenario", str(path)), lambda: scn.load(path))

    def whatif_nsr(self, path: str | Path, tpd: Sequence[float], availability: Sequence[float], *, draws: int,
                   move: tuple[float, float] | None = None,
                   progress: Callable[[int], None] | None = None) -> xr.Dataset:  # fmt: skip
        """The what-if surface with its NSR (:func:`kenomill.value.whatif_nsr`, the typical 2012
        terms and prices): what the report shows."""
        from kenomill import value

        path = Path(path)
        key = (
            "whatif_nsr",
            str(path),
            tuple(map(float, tpd)),
            tuple(map(float, availability)),
            int(draws),
            move,
        )
        return self._cached(
            key,
            lambda: value.whatif_nsr(
                self.load_scenario(path),
                list(tpd),
                list(availability),
                draws=draws,
                seed=self.seed,
                calibration=self._calibration_arg(),
                base_dir=path.parent,
                move=move,
                progress=progress,
            ),
        )

    def annual(self, path: str | Path, *, draws: int) -> xr.Dataset:
        """Calendar-year totals of :meth:`scenario` (:func:`kenomill.simulate.annual`)."""
        from kenomill import simulate as sim

        return self._cached(
            ("annual", str(path), int(draws)), lambda: sim.annual(self.scenario(path, draws=draws))
        )

    def scenario(self, path: str | Path, *, draws: int) -> xr.Dataset:
        """Monte Carlo of a scenario file (:func:`kenomill.simulate.simulate`)."""
        from kenomill import simulate as sim

        return self._cached(
            ("scenario", str(path), int(draws)),
            lambda: sim.simulate(path, draws=draws, seed=self.seed, calibration=self._calibration_arg()),
        )
