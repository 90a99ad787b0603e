"""Monte Carlo of the mill over scenarios, and throughput what-ifs.

Data flow: a validated :class:`kenomill.scenario.Scenario` and a calibration are compiled
into float64 arrays (:class:`Plan`, units converted once), the numba kernel
:func:`kenomill._mc_kernels.simulate` runs chunks of draws (parallel over draws inside a
chunk; chunks in turn, or on dask.distributed), and the raw quarterly sums become an
``xarray.Dataset`` with units (:func:`to_dataset`). :func:`annual`, :func:`summarize`,
:func:`target_probabilities` and :func:`drivers` reduce it; :func:`whatif` sweeps
throughput x availability.

Reproducibility: draw ``i`` depends only on ``(seed, i)`` (per-draw random streams), so a
seed gives bit-identical results whatever the number of threads, the chunk size or the
Dask cluster.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from kenomill import _mc_kernels as K
from kenomill import recovery, units, variables
from kenomill.calibration_file import Calibration, default_calibration
from kenomill.draw_inputs import RateDraws, rate_draws
from kenomill.errors import ValidationError
from kenomill.scenario import GRADES, Scenario, per_quarter, quarter_days, quarter_index, summary_year

if TYPE_CHECKING:
    # annotations only; imported inside the functions that build outputs so that
    # importing this module (the Monte Carlo path) does not load pandas/xarray (~0.4 s).
    import pandas as pd
    import xarray as xr

ELEMENTS = variables.ELEMENTS
STREAMS = variables.STREAMS
STATS = ("mean", "p10", "p50", "p90")
_GRADE_UNIT = {"ag_gpt": "g/t", "pb_pct": "%", "zn_pct": "%"}
#: default draws per chunk: small enough for a live progress bar, large enough to keep
#: both cores busy inside a chunk (prange over draws)
DEFAULT_CHUNK = 256
#: default draws per task on dask.distributed: a worker runs one thread, and with 256 draws
#: per task (3 907 tasks at 10^6 draws) the client's process (its scheduler, the results'
#: messages) took a third of a core from the two workers (issue 14, scale-out)
DASK_CHUNK = 2048
#: how long to try to reach a dask scheduler given by address
SCHEDULER_TIMEOUT = "10s"


# ------------------------------------------------------------------ compiled scenario
@dataclass
class Plan:
    """A scenario compiled to the kernel's arrays (tonnes, hours, mass fractions)."""

    scenario: Scenario
    calibration: Calibration
    quarters: list[str]
    days: np.ndarray
    sources: list[str]
    arrays: dict = field(repr=False)
    calibration_note: str = ""
    #: per-draw factors on the rates (kenomill.draw_inputs); None: the rates are as stated
    rates: RateDraws | None = None

    def draw_rates(self, seed: int, draw0: int, n: int) -> tuple[np.ndarray, np.ndarray]:
        """Each draw's supply ``[n, ns, nq]`` and mill feed rate ``[n, nq]`` (the kernel's
        ``draw_supply``, ``draw_mill_rate``); empty (first dimension 0) without rate uncertainty.

        Elementwise the same arithmetic as :meth:`kenomill.draw_inputs.RateDraws.arrays_for`
        for one draw, so that a draw's results do not depend on how many run together.
        """
        a = self.arrays
        ns, nq = a["supply"].shape
        if self.rates is None or n == 0:
            return np.empty((0, ns, nq)), np.empty((0, nq))
        r = self.rates
        fs, fm = r.factors(seed, np.arange(draw0, draw0 + n))
        fq = np.where(r.source_on[None, :, :], fs[:, :, None], 1.0)
        fmq = np.where(r.mill_on[None, :], fm[:, None], 1.0)
        mill = np.minimum(r.target_tpd[None, :] * fmq / r.availability, r.capacity_tpd) / 24.0
        return np.ascontiguousarray(a["supply"][None, :, :] * fq), np.ascontiguousarray(mill)

    @property
    def n_steps(self) -> int:
        return int(self.arrays["step_q"].size)

    @property
    def n_fields(self) -> int:
        return K.N_FIXED + len(self.sources)

    @property
    def n_draw_fields(self) -> int:
        return self.arrays["post_theta"].shape[1] + 9 * len(self.sources) + 2

    def n_random(self) -> tuple[int, int]:
        """Normals and uniforms per draw (size of pre-generated arrays)."""
        return K.n_random(len(self.sources), len(self.quarters), self.n_steps)

    def kernel_args(self, seed: int, draw0: int, n: int, daily: bool = False, pre=None, rates: bool = True):
        """(inputs, outputs) of :func:`kenomill._mc_kernels.simulate` for ``n`` draws from ``draw0``.

        The inputs in the order of :data:`kenomill._mc_kernels.INPUTS`: the plan's arrays
        (:data:`~kenomill._mc_kernels.PLAN_INPUTS`) and the run's seed, first draw,
        per-draw rates (when the plan has rate uncertainty and ``rates``) and pre-generated
        numbers.
        """
        if pre is None:
            use_pre, (pz, pu) = 0, (np.empty((1, 0)), np.empty((1, 0)))
        else:
            use_pre, (pz, pu) = 1, pre
        run = {"seed": np.uint64(seed), "draw0": np.int64(draw0), "use_pre": np.int64(use_pre)}
        run.update(pre_z=pz, pre_u=pu)
        run["draw_supply"], run["draw_mill_rate"] = self.draw_rates(seed, draw0, n if rates else 0)
        inputs = tuple(run[name] if name in run else self.arrays[name] for name, _ in K.INPUTS)
        nf = self.n_fields
        outputs = (
            np.empty((n, len(self.quarters), nf)),
            np.empty((n, self.n_steps if daily else 0, nf)),
            np.empty((n, self.n_draw_fields)),
        )
        return inputs, outputs


def _calibration(sc: Scenario, calibration, base_dir: Path | None) -> tuple[Calibration, str]:
    if calibration is not None:
        return calibration, "given"
    spec = sc.uncertainty.calibration
    if spec == "default":
        return default_calibration(), "packaged default calibration"
    if spec.startswith("defaults:"):
        model = spec.split(":", 1)[1]
        return Calibration.from_defaults(model), f"uncalibrated defaults of model {model!r}"
    p = Path(spec)
    if not p.is_absolute() and base_dir is not None:
        p = base_dir / p
    return Calibration.load(p), str(p)


def _posterior(cal: Calibration, *, parameters: bool = True, scatter: bool = True) -> dict:
    """The kernel's posterior arrays from ``Calibration.posterior_draws()`` (contract 2).

    ``parameters=False``: every posterior draw at the calibrated parameters;
    ``scatter=False``: no quarter-to-quarter offsets (mean and SD 0).
    """
    draws = cal.posterior_draws()
    theta = np.asarray(draws["theta"], dtype=float)
    n_post, k = theta.shape
    if k != len(cal.spec.free):
        raise ValidationError(
            f"calibration posterior draws: theta has {k} columns; model {cal.model!r} has "
            f"{len(cal.spec.free)} free parameters"
        )
    if not parameters:
        theta = np.tile(cal.theta, (n_post, 1))
    out = {
        "post_theta": theta,
        "post_offset_mean": np.asarray(draws["offset_mean"], dtype=float),
        "post_scatter_sd": np.asarray(draws["scatter_sd"], dtype=float),
        "post_scatter_chol": np.asarray(draws["scatter_chol"], dtype=float),
    }
    if not scatter:
        out["post_offset_mean"] = np.zeros_like(out["post_offset_mean"])
        out["post_scatter_sd"] = np.zeros_like(out["post_scatter_sd"])
    return {name: np.ascontiguousarray(v) for name, v in out.items()}


def compile_plan(
    scenario: Scenario,
    calibration: Calibration | None = None,
    *,
    base_dir: Path | None = None,
    target_tpd=None,
    availability: float | None = None,
    capacity_tpd: float | None = None,
    feed_unlimited: bool = False,
) -> Plan:
    """Compile a scenario into the kernel's arrays.

    Parameters
    ----------
    scenario : Scenario
        Validated scenario.
    calibration : Calibration, optional
        Overrides the scenario's ``uncertainty.calibration``.
    base_dir : Path, optional
        Directory that relative calibration paths of the scenario are relative to.
    target_tpd, availability, capacity_tpd : optional
        Overrides of the mill's calendar target [t/d], long-run availability [fraction]
        and capacity [t per operating day] (what-ifs); ``capacity_tpd=inf`` lifts the cap.
    feed_unlimited : bool
        Turn rates mode into blend mode with each quarter's rate shares, so that supply
        never limits the mill (what-ifs about the mill alone).
    """
    sc = scenario
    cal, note = _calibration(sc, calibration, base_dir)
    spec = cal.spec
    quarters = sc.horizon.labels
    spd = sc.horizon.steps_per_day
    days = np.array([quarter_days(q) for q in quarters])
    step_q = np.repeat(np.arange(len(quarters), dtype=np.int64), days * spd)
    step_h = 24.0 / spd
    names = list(sc.sources)
    mode, supply = _supply(sc, names, len(quarters), step_h, feed_unlimited)
    m = sc.mill
    a = float(m.availability if availability is None else availability)
    cap = float(m.capacity_tpd if capacity_tpd is None else capacity_tpd)
    tgt = per_quarter(m.target_tpd if target_tpd is None else target_tpd, len(quarters))
    mill_rate = np.minimum(tgt / a, cap) / 24.0
    if (mill_rate <= 0).any():
        raise ValidationError("mill.target_tpd: found 0; the mill needs a positive throughput target")
    post = _posterior(cal, parameters=sc.uncertainty.parameters, scatter=sc.uncertainty.scatter)
    arrays = {
        "kind": np.int64(spec.kind),
        "grade_dep": np.int64(spec.grade_dep),
        "p_base": np.ascontiguousarray(cal.full(), dtype=float),
        "free_idx": np.ascontiguousarray(spec.free_index, dtype=np.int64),
        **post,
        "step_q": step_q,
        "step_h": float(step_h),
        "mode": np.int64(K.MODE_RATES if mode == "rates" else K.MODE_BLEND),
        "supply": np.ascontiguousarray(supply),
        **_source_arrays(sc, names, days * spd),
        "stock_cap": float(np.inf if sc.stockpile.capacity_t is None else sc.stockpile.capacity_t),
        "mill_rate": np.ascontiguousarray(mill_rate),
        "availability": a,
        "availability_sd": float(m.availability_uncertainty),
        "mttr_h": float(m.mean_repair_h) if a < 1.0 else 0.0,
    }
    rates = rate_draws(
        sc, target_tpd=target_tpd, availability=a, capacity_tpd=cap, feed_unlimited=feed_unlimited
    )
    return Plan(sc, cal, quarters, days, names, arrays, note, rates)


def _supply(sc: Scenario, names: list[str], nq: int, step_h: float, feed_unlimited: bool):
    """(mode, supply[ns, nq]): tonnes mined per step (rates) or each source's share (blend)."""
    mode = sc.feed.mode
    ns = len(names)
    supply = np.zeros((ns, nq))
    if mode == "rates":
        for i, n in enumerate(names):
            supply[i] = per_quarter(sc.sources[n].rate_tpd, nq) * step_h / 24.0
        if feed_unlimited:
            tot = supply.sum(axis=0)
            supply = np.divide(supply, tot, out=np.full_like(supply, 1.0 / ns), where=tot > 0)
            mode = "blend"
    else:
        for i, n in enumerate(names):
            supply[i] = per_quarter(sc.sources[n].blend, nq)
    return mode, supply


def _source_arrays(sc: Scenario, names: list[str], steps_per_quarter: np.ndarray) -> dict:
    """The kernel's per-source arrays: start and hold steps, rate CV, grades, response offsets, stockpile."""
    nq = len(steps_per_quarter)
    spd = sc.horizon.steps_per_day
    n_steps = int(steps_per_quarter.sum())
    q_first = np.concatenate([[0], np.cumsum(steps_per_quarter)])

    def step_of(label: str | None) -> int:
        qi = quarter_index(sc, label)
        return int(q_first[min(max(qi, 0), nq)]) if qi >= 0 else 0

    ns = len(names)
    out = {k: np.zeros(ns) for k in ("rate_cv", "start_lo", "start_span", "stock0")}
    out["hold_until"] = np.zeros(ns, dtype=np.int64)
    out.update(_grade_arrays(sc, names, nq))
    out["r_mean"] = np.zeros((ns, recovery.N_OFFSETS))
    out["r_sd"] = np.zeros((ns, recovery.N_OFFSETS))
    for i, n in enumerate(names):
        s = sc.sources[n]
        for j, off in enumerate(recovery.OFFSET_NAMES):
            if off in s.response:
                out["r_mean"][i, j] = s.response[off].mean
                out["r_sd"][i, j] = s.response[off].sd
        lo, hi = s.start_delay_days
        out["start_lo"][i] = (step_of(s.start) if quarter_index(sc, s.start) < nq else n_steps) + lo * spd
        out["start_span"][i] = (hi - lo) * spd
        out["hold_until"][i] = (
            step_of(s.hold_until)
            if s.hold_until and quarter_index(sc, s.hold_until) < nq
            else (n_steps if s.hold_until else 0)
        )
        out["rate_cv"][i] = s.rate_cv
        out["stock0"][i] = sc.stockpile.initial_t.get(n, 0.0)
    return out


def _grade_arrays(sc: Scenario, names: list[str], nq: int) -> dict:
    """Delivered grades per source: mean mass fractions per quarter, log-SD, AR(1) per step,
    Cholesky factor of the innovations' correlation, per-draw log-SD of the mean."""
    ns = len(names)
    spd = sc.horizon.steps_per_day
    g_mean = np.zeros((ns, nq, 3))
    g_sd, g_phi, g_mean_sd = np.zeros((ns, 3)), np.zeros((ns, 3)), np.zeros((ns, 3))
    g_chol = np.zeros((ns, 3, 3))
    for i, n in enumerate(names):
        s = sc.sources[n]
        means = s.mean_grades()
        for e, el in enumerate(GRADES):
            g = getattr(s, el)
            g_mean[i, :, e] = units.to_fraction(per_quarter(means[el], nq), _GRADE_UNIT[el]) / (
                1.0 + s.dilution
            )
            g_sd[i, e] = math.sqrt(math.log1p(g.cv**2))
            g_phi[i, e] = g.autocorrelation ** (1.0 / spd)
            g_mean_sd[i, e] = g.mean_uncertainty
        corr = np.eye(3) if s.grade_correlation is None else np.asarray(s.grade_correlation, dtype=float)
        g_chol[i] = np.linalg.cholesky(corr)
    return {
        "g_mean": np.ascontiguousarray(g_mean),
        "g_sd": g_sd,
        "g_phi": g_phi,
        "g_chol": np.ascontiguousarray(g_chol),
        "g_mean_sd": g_mean_sd,
    }


# ------------------------------------------------------------------ running
def run_chunk(plan: Plan, seed: int, draw0: int, n: int, daily: bool = False, n_threads: int | None = None):
    """Run draws ``draw0 .. draw0 + n - 1``: returns (out_q, out_d, out_draw) arrays.

    Draws with their own rates (scenario rate uncertainty) run in the same call, in blocks
    and threads: the kernel takes each draw's supply and mill rate (``draw_supply``,
    ``draw_mill_rate``).
    """
    if n_threads is not None:
        import numba

        numba.set_num_threads(max(1, min(n_threads, numba.config.NUMBA_NUM_THREADS)))
    inputs, outputs = plan.kernel_args(seed, draw0, n, daily)
    K.simulate(*inputs, *outputs)
    return outputs


def _chunks(draws: int, chunk_size: int) -> list[tuple[int, int]]:
    return [(d0, min(chunk_size, draws - d0)) for d0 in range(0, draws, chunk_size)]


def _client(scheduler: str):
    from dask.distributed import Client, LocalCluster

    if scheduler == "local":
        cluster = LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=None)
        return Client(cluster), cluster
    try:
        return Client(scheduler, timeout=SCHEDULER_TIMEOUT), None
    except (OSError, TimeoutError, ValueError) as exc:
        raise ValidationError(
            f"--scheduler: could not reach {scheduler!r} ({type(exc).__name__}: {exc}); "
            "give 'local' or the address of a running dask scheduler, e.g. tcp://host:8786"
        ) from None


def run(
    plan: Plan,
    draws: int = 1000,
    seed: int = 0,
    *,
    chunk_size: int | None = None,
    scheduler=None,
    daily: bool = False,
    progress: Callable[[int], None] | None = None,
    block_draws: int | None = None,
) -> xr.Dataset:
    """Run ``draws`` draws of a compiled scenario; see :func:`simulate`.

    ``block_draws`` (in process or on dask): turn the kernel's records into the Dataset every
    ``block_draws`` draws, written into arrays allocated once for all draws, instead of
    holding every chunk's records until the end. The peak memory falls from about the
    records twice plus the Dataset to about the Dataset alone (what
    :func:`kenomill.budget.simulate_blocks` chooses when a run would not fit otherwise);
    the values are the same bit for bit (every variable is per draw).
    """
    if draws < 1:
        raise ValidationError(f"--draws: found {draws}; allowed: >= 1")
    if seed < 0 or seed >= 2**64:
        raise ValidationError(f"--seed: found {seed}; allowed: 0 .. 2**64 - 1")
    chunk = int(chunk_size or (DEFAULT_CHUNK if scheduler is None else DASK_CHUNK))
    if chunk < 1:
        raise ValidationError(f"chunk_size: found {chunk}; allowed: >= 1")
    parts = _chunks(draws, chunk)
    with _dask_client(scheduler) as client:
        if block_draws is not None and int(block_draws) < draws:
            return _run_in_blocks(plan, draws, seed, chunk, int(block_draws), daily, progress, client)
        results = _chunk_results(plan, seed, 0, parts, daily, progress, client)
    out_q = np.concatenate([r[0] for r in results])
    out_d = np.concatenate([r[1] for r in results]) if daily else None
    out_draw = np.concatenate([r[2] for r in results])
    return to_dataset(plan, out_q, out_draw, seed=seed, out_d=out_d)


@contextmanager
def _dask_client(scheduler):
    """None without a scheduler; else a dask.distributed Client (one made here is closed after)."""
    if scheduler is None:
        yield None
        return
    from dask.distributed import Client

    if isinstance(scheduler, Client):
        yield scheduler
        return
    client, cluster = _client(str(scheduler))
    try:
        yield client
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def _chunk_results(plan, seed, d0_all, parts, daily, progress, client) -> list:
    """run_chunk of each (d0, n) of ``parts`` (offset by ``d0_all``), in order: in process, or
    on the dask ``client`` (one thread per task), collected as they complete."""
    results: list = [None] * len(parts)
    if client is None:
        for i, (d0, n) in enumerate(parts):
            results[i] = run_chunk(plan, seed, d0_all + d0, n, daily)
            if progress:
                progress(n)
        return results
    from dask.distributed import as_completed

    # the plan (~0.4 MB pickled) sent to every worker once, not with every task
    plan_on_workers = client.scatter(plan, broadcast=True, hash=False)
    futs = [
        client.submit(run_chunk, plan_on_workers, seed, d0_all + d0, n, daily, 1, pure=False)
        for d0, n in parts
    ]
    index = {f.key: i for i, f in enumerate(futs)}
    for fut in as_completed(futs):
        results[index[fut.key]] = fut.result()
        if progress:
            progress(parts[index[fut.key]][1])
    return results


def _run_in_blocks(plan, draws, seed, chunk, block, daily, progress, client=None) -> xr.Dataset:
    """:func:`run` converting every ``block`` draws into a preallocated Dataset (in process, or
    each block's chunks on the dask ``client``)."""
    import xarray as xr

    block = max(block, chunk)
    full = None
    for b0 in range(0, draws, block):
        nb = min(block, draws - b0)
        res = _chunk_results(plan, seed, b0, _chunks(nb, chunk), daily, progress, client)
        out_d = np.concatenate([r[1] for r in res]) if daily else None
        blk = to_dataset(
            plan,
            np.concatenate([r[0] for r in res]),
            np.concatenate([r[2] for r in res]),
            seed=seed,
            out_d=out_d,
            draw0=b0,
        )
        del res, out_d
        if full is None:
            data_vars = {}
            for v, da in blk.data_vars.items():
                shape = tuple(draws if d == "draw" else n_ for d, n_ in zip(da.dims, da.shape, strict=True))
                data_vars[v] = xr.Variable(da.dims, np.empty(shape, dtype=da.dtype), da.attrs)
            coords = {k: c.variable for k, c in blk.coords.items() if "draw" not in c.dims}
            full = xr.Dataset(data_vars, coords={**coords, "draw": np.arange(draws)}, attrs=dict(blk.attrs))
            full.attrs["draws"] = int(draws)
        for v, da in blk.data_vars.items():
            ax = da.dims.index("draw")
            index = (slice(None),) * ax + (slice(b0, b0 + nb),)
            full[v].variable.data[index] = da.values
        del blk
    assert full is not None
    return full


def simulate(
    scenario: Scenario | str | Path,
    draws: int = 1000,
    seed: int = 0,
    *,
    calibration: Calibration | None = None,
    chunk_size: int | None = None,
    scheduler=None,
    daily: bool = False,
    progress: Callable[[int], None] | None = None,
) -> xr.Dataset:
    """Monte Carlo of a scenario: quarterly results per draw.

    Parameters
    ----------
    scenario : Scenario or path
        A validated scenario or a scenario TOML file.
    draws : int
        Number of draws.
    seed : int
        Seed (0 .. 2**64 - 1); draw ``i`` depends only on ``(seed, i)``.
    calibration : Calibration, optional
        Overrides the scenario's calibration.
    chunk_size : int, optional
        Draws per chunk (default :data:`DEFAULT_CHUNK`, on dask :data:`DASK_CHUNK`); results
        do not depend on it.
    scheduler : None, "local", an address or a ``dask.distributed.Client``
        None runs the chunks here (numba threads); "local" starts a LocalCluster of 2
        single-threaded workers; an address connects to a running scheduler.
    daily : bool
        Also return every step (variables with a ``step`` dimension): memory grows with
        draws x steps, so only on request.
    progress : callable, optional
        Called with the number of draws finished after each chunk.

    Returns
    -------
    xarray.Dataset
        Dimensions ``draw`` and ``quarter`` (and ``source``, ``stream``, ``element``);
        see :func:`to_dataset`.
    """
    from kenomill import scenario as scn

    base_dir = None
    if not isinstance(scenario, Scenario):
        base_dir = Path(scenario).parent
        scenario = scn.load(scenario)
    plan = compile_plan(scenario, calibration, base_dir=base_dir)
    return run(plan, draws, seed, chunk_size=chunk_size, scheduler=scheduler, daily=daily, progress=progress)


# ------------------------------------------------------------------ results
#: units and long name of the result variables, from :mod:`kenomill.variables`
_ATTRS = variables.units_and_long_names(
    (
        "ore_processed_t",
        "ore_mined_t",
        "ore_diverted_t",
        "stockpile_t",
        "held_t",
        "operating_h",
        "days",
        "availability",
        "tpd",
        "operating_tpd",
        *variables.HEADS,
        *variables.RECOVERIES,
        "pbcon_t",
        "pbcon_ag_gpt",
        "pbcon_pb_pct",
        "pbcon_zn_pct",
        "zncon_t",
        "zncon_ag_gpt",
        "zncon_pb_pct",
        "zncon_zn_pct",
        "tails_t",
        "ag_oz",
        "pb_lb",
        "zn_lb",
        "stream_t",
        "metal_t",
        "feed_by_source_t",
    )
)
#: variables summed over a year (the rest are derived from them or are levels)
FLOWS = ("stream_t", "metal_t", "operating_h", "days", "ore_mined_t", "ore_diverted_t", "feed_by_source_t")


def _div(a, b, scale=1.0):
    a = np.asarray(a, dtype=float)
    b = np.asarray(b, dtype=float)
    return np.divide(a * scale, b, out=np.full(np.broadcast(a, b).shape, np.nan), where=b > 0)


def derive(raw: xr.Dataset) -> xr.Dataset:
    """Reported-style variables from the raw sums (stream_t, metal_t, operating_h, days)."""
    import xarray as xr

    ds = raw.copy()
    st = raw.stream_t
    mt = raw.metal_t
    feed_t = st.sel(stream="feed", drop=True)
    ds["ore_processed_t"] = feed_t
    ds["availability"] = xr.apply_ufunc(_div, raw.operating_h, raw.days * 24.0)
    ds["tpd"] = xr.apply_ufunc(_div, feed_t, raw.days)
    ds["operating_tpd"] = xr.apply_ufunc(_div, feed_t * 24.0, raw.operating_h)
    for e, el, unit in (("Ag", "ag_gpt", 1e6), ("Pb", "pb_pct", 100.0), ("Zn", "zn_pct", 100.0)):
        ds[f"head_{el}"] = xr.apply_ufunc(_div, mt.sel(stream="feed", element=e, drop=True) * unit, feed_t)
        for s in ("pbcon", "zncon"):
            ds[f"{s}_{el}"] = xr.apply_ufunc(
                _div, mt.sel(stream=s, element=e, drop=True) * unit, st.sel(stream=s, drop=True)
            )
    for s in ("pbcon", "zncon", "tails"):
        ds[f"{s}_t"] = st.sel(stream=s, drop=True)
    ag_con = mt.sel(stream="pbcon", element="Ag", drop=True) + mt.sel(stream="zncon", element="Ag", drop=True)
    pb_con = mt.sel(stream="pbcon", element="Pb", drop=True)
    zn_con = mt.sel(stream="zncon", element="Zn", drop=True)
    ds["rec_ag_pct"] = xr.apply_ufunc(_div, ag_con * 100.0, mt.sel(stream="feed", element="Ag", drop=True))
    ds["rec_pb_pct"] = xr.apply_ufunc(_div, pb_con * 100.0, mt.sel(stream="feed", element="Pb", drop=True))
    ds["rec_zn_pct"] = xr.apply_ufunc(_div, zn_con * 100.0, mt.sel(stream="feed", element="Zn", drop=True))
    ds["ag_oz"] = ag_con * float(units.tonnes_to_contained(1.0, "troy_oz"))
    ds["pb_lb"] = pb_con * float(units.tonnes_to_contained(1.0, "lb"))
    ds["zn_lb"] = zn_con * float(units.tonnes_to_contained(1.0, "lb"))
    for name, (u, ln) in _ATTRS.items():
        if name in ds:
            ds[name].attrs = {"units": u, "long_name": ln}
    return ds


def to_dataset(
    plan: Plan, out_q: np.ndarray, out_draw: np.ndarray, *, seed: int = 0, out_d=None, draw0: int = 0
) -> xr.Dataset:
    """Kernel outputs -> Dataset (draw, quarter) with units and the per-draw drivers.

    ``draw0``: the index of the first draw (a block of a run built block by block)."""
    import xarray as xr

    nd, nq, _ = out_q.shape
    names = plan.sources
    ns = len(names)
    coords = {
        "draw": np.arange(draw0, draw0 + nd),
        "quarter": plan.quarters,
        "source": names,
        "stream": list(STREAMS),
        "element": list(ELEMENTS),
    }

    ds = derive(xr.Dataset(_raw_vars(out_q, ("draw", "quarter"), ns), coords=coords))
    ds["scatter_offset"] = (("draw", "quarter", "offset"), out_q[..., K.F_SCATTER : K.F_SCATTER + K.NOFF])
    ds = ds.assign_coords(offset=list(recovery.OFFSET_NAMES))
    ds["scatter_offset"].attrs = {
        "units": "1",
        "long_name": "quarter-to-quarter offsets of the mill response",
    }
    ds = _draw_drivers(ds, plan, out_draw, seed)
    if out_d is not None:
        steps = np.arange(out_d.shape[1])
        daily = derive(xr.Dataset(_raw_vars(out_d, ("draw", "step"), ns), coords={**coords, "step": steps}))
        for v in _STEP_VARIABLES:
            ds[f"step_{v}"] = daily[v]
        ds = ds.assign_coords(step_quarter=("step", np.asarray(plan.quarters)[plan.arrays["step_q"]]))
    sc = plan.scenario
    ds.attrs = {
        "title": f"kenomill Monte Carlo: scenario {sc.name}",
        "scenario": sc.name,
        "description": sc.description,
        "assumptions": "\n".join(sc.assumptions),
        "seed": int(seed),
        "draws": int(nd),
        "step": sc.horizon.step,
        "calibration_model": plan.calibration.model,
        "calibration": plan.calibration_note,
        "parameter_uncertainty": int(sc.uncertainty.parameters),
        "quarterly_scatter": int(sc.uncertainty.scatter),
        # annual() adds these reported quarters to their year's totals (start_after_reported)
        "reported_before": ", ".join(sc.horizon.reported_before),
    }
    return ds


#: per-step variables of a run with per-step output (``step_<name>``)
_STEP_VARIABLES = (
    "ore_processed_t",
    "ag_oz",
    "pb_lb",
    "zn_lb",
    *variables.HEADS,
    *variables.RECOVERIES,
    "stockpile_t",
    "availability",
    "stream_t",
    "metal_t",
)


def _raw_vars(o: np.ndarray, dims: tuple[str, str], ns: int) -> dict:
    """The kernel's record fields (``F_*``) of ``o[..., nf]`` as Dataset variables over ``dims``."""
    stream_t = np.stack(
        [o[..., K.F_FEED_T], o[..., K.F_STREAM_T], o[..., K.F_STREAM_T + 1], o[..., K.F_STREAM_T + 2]],
        axis=-1,
    )
    metal = np.concatenate(
        [
            o[..., None, K.F_FEED_M : K.F_FEED_M + 3],
            o[..., K.F_STREAM_M : K.F_STREAM_M + 9].reshape(*o.shape[:-1], 3, 3),
        ],
        axis=-2,
    )
    return {
        "stream_t": ((*dims, "stream"), stream_t),
        "metal_t": ((*dims, "stream", "element"), metal),
        "operating_h": (dims, o[..., K.F_UP_H]),
        "days": (dims, o[..., K.F_CAL_H] / 24.0),
        "ore_mined_t": (dims, o[..., K.F_MINED_T]),
        "ore_diverted_t": (dims, o[..., K.F_DIVERTED_T]),
        "stockpile_t": (dims, o[..., K.F_STOCK_T]),
        "held_t": (dims, o[..., K.F_HOLD_T]),
        "feed_by_source_t": ((*dims, "source"), o[..., K.F_SRC_T : K.F_SRC_T + ns]),
    }


def _draw_drivers(ds: xr.Dataset, plan: Plan, out_draw: np.ndarray, seed: int) -> xr.Dataset:
    """The per-draw drivers of the spread (the kernel's ``out_draw`` and the rate factors) into ``ds``."""
    nd = out_draw.shape[0]
    ns = len(plan.sources)
    cal = plan.calibration
    k = len(cal.param_names)
    ds["theta"] = (("draw", "parameter"), out_draw[:, :k])
    ds = ds.assign_coords(parameter=list(cal.param_names))
    ds["theta"].attrs = {"units": "1", "long_name": "calibration parameters drawn"}
    ds["ore_offset"] = (
        ("draw", "source", "offset"),
        out_draw[:, k : k + K.NOFF * ns].reshape(nd, ns, K.NOFF),
    )
    ds["ore_offset"].attrs = {"units": "1", "long_name": "response offsets of each source's ore"}
    ds["grade_factor"] = (
        ("draw", "source", "element"),
        out_draw[:, k + K.NOFF * ns : k + 8 * ns].reshape(nd, ns, 3),
    )
    ds["grade_factor"].attrs = {"units": "1", "long_name": "mean grade drawn / stated mean grade"}
    spd = plan.scenario.horizon.steps_per_day
    ds["start_delay_days"] = (("draw", "source"), out_draw[:, k + 8 * ns : k + 9 * ns] / spd)
    ds["start_delay_days"].attrs = {
        "units": "d",
        "long_name": "delay of the first delivery after the start quarter",
    }
    ds["availability_drawn"] = ("draw", out_draw[:, k + 9 * ns + 1])
    ds["availability_drawn"].attrs = {"units": "1", "long_name": "the draw's long-run mill availability"}
    ds["posterior_draw"] = ("draw", out_draw[:, k + 9 * ns].astype(np.int64))
    ds["posterior_draw"].attrs = {
        "units": "1",
        "long_name": "index of the calibration's posterior draw the draw used",
    }
    if plan.rates is not None:
        fs, fm = plan.rates.factors(seed, ds.draw.values)
        ds["rate_factor"] = (("draw", "source"), fs)
        ds["rate_factor"].attrs = {"units": "1", "long_name": "the draw's factor on the stated mining rate"}
        ds["target_factor"] = ("draw", fm)
        ds["target_factor"].attrs = {"units": "1", "long_name": "the draw's factor on the stated mill target"}
    return ds


def annual(ds: xr.Dataset) -> xr.Dataset:
    """Calendar-year totals per draw (dims draw, year); recoveries and grades from the sums."""
    import xarray as xr

    years = np.array([int(str(q)[:4]) for q in ds.quarter.values])
    raw = xr.Dataset({v: ds[v] for v in FLOWS}).assign_coords(year=("quarter", years))
    tot = raw.groupby("year").sum("quarter")
    before = [q for q in str(ds.attrs.get("reported_before", "")).split(", ") if q]
    if before:
        rep = reported_flows(before, list(ds.source.values))
        add = rep.groupby("year").sum("quarter").reindex(year=tot.year.values, fill_value=0.0)
        tot = tot + add
        tot.attrs["reported_before"] = ", ".join(before)
    levels = xr.Dataset({v: ds[v] for v in ("stockpile_t", "held_t")}).assign_coords(year=("quarter", years))
    last = levels.groupby("year").last("quarter")
    out = derive(xr.merge([tot, last]))
    nq = xr.DataArray(
        np.bincount(years - years.min())[np.unique(years) - years.min()],
        dims="year",
        coords={"year": np.unique(years)},
    )
    if before:
        nq = nq + xr.DataArray(
            [sum(int(q[:4]) == y for q in before) for y in nq.year.values], dims="year", coords=nq.coords
        )
    out["quarters"] = nq
    out["quarters"].attrs = {
        "units": "1",
        "long_name": "quarters of the year inside the horizon, reported ones included",
    }
    out.attrs = {**ds.attrs, "title": ds.attrs.get("title", "") + " (calendar years)"}
    return out


def reported_flows(quarters: Sequence[str], sources: Sequence[str]) -> xr.Dataset:
    """The reported quarters as the simulation's flows (dims quarter, stream, element, source).

    Feed, concentrate and contained metal as printed in the releases (silver split between
    the concentrates in proportion to tonnes x grade, so that both add up to the reported
    ounces); lead in the zinc concentrate and zinc in the lead concentrate are not
    reported and count as tails; operating hours from the reported availability, else
    0.92 (:data:`kenomill.calibrate.AVAILABILITY_PRIOR`); all feed is the first source's
    (the reported quarters are Bellekeno ore).
    """
    import xarray as xr

    from kenomill.data import reported_periods

    ds = reported_periods().sel(period=list(quarters))
    lb, oz = float(units.tonnes_to_contained(1.0, "lb")), float(units.tonnes_to_contained(1.0, "troy_oz"))
    feed = ds.ore_processed_t.values
    pbcon, zncon = ds.pbcon_t.values, ds.zncon_t.values
    ag_p, ag_z = pbcon * ds.pbcon_ag_gpt.values * 1e-6, zncon * ds.zncon_ag_gpt.values * 1e-6
    ag_con = ds.ag_oz.values / oz
    share = ag_p / (ag_p + ag_z)
    metal = np.zeros((len(quarters), len(STREAMS), len(ELEMENTS)))
    metal[:, 0] = feed[:, None] * np.stack(
        [ds.head_ag_gpt.values * 1e-6, ds.head_pb_pct.values / 100, ds.head_zn_pct.values / 100], axis=1
    )
    metal[:, 1, 0], metal[:, 2, 0] = ag_con * share, ag_con * (1 - share)
    metal[:, 1, 1] = ds.pb_lb.values / lb
    metal[:, 2, 2] = ds.zn_lb.values / lb
    metal[:, 3] = metal[:, 0] - metal[:, 1] - metal[:, 2]
    stream = np.stack([feed, pbcon, zncon, feed - pbcon - zncon], axis=1)
    avail = np.where(np.isfinite(ds.availability_pct.values), ds.availability_pct.values / 100, 0.92)
    by_source = np.zeros((len(quarters), len(sources)))
    by_source[:, 0] = feed
    coords = {
        "quarter": list(quarters),
        "stream": list(STREAMS),
        "element": list(ELEMENTS),
        "source": list(sources),
    }
    return xr.Dataset(
        {
            "stream_t": (("quarter", "stream"), stream),
            "metal_t": (("quarter", "stream", "element"), metal),
            "operating_h": ("quarter", ds.days.values * 24.0 * avail),
            "days": ("quarter", ds.days.values),
            "ore_mined_t": ("quarter", ds.ore_mined_t.values),
            "ore_diverted_t": ("quarter", np.zeros(len(quarters))),
            "feed_by_source_t": (("quarter", "source"), by_source),
        },
        coords=coords,
    ).assign_coords(year=("quarter", [int(q[:4]) for q in quarters]))


def summarize(ds: xr.Dataset, variables: Sequence[str] | None = None) -> xr.Dataset:
    """Mean, P10, P50 and P90 over draws (dim ``stat``) of the numeric variables."""
    import pandas as pd
    import xarray as xr

    variables = variables or [v for v in ds.data_vars if "draw" in ds[v].dims]
    sub = ds[list(variables)]
    parts = [sub.mean("draw", skipna=True)]
    for q in (0.1, 0.5, 0.9):
        parts.append(sub.quantile(q, dim="draw", skipna=True).drop_vars("quantile"))
    out = xr.concat(parts, dim=pd.Index(list(STATS), name="stat"))
    for v in variables:
        out[v].attrs = ds[v].attrs
    out.attrs = {**ds.attrs, "summary": "mean and 10th/50th/90th percentiles over draws"}
    return out


def target_probabilities(ds: xr.Dataset, targets, yr: xr.Dataset | None = None) -> pd.DataFrame:
    """Probability (share of draws) that each target (``Scenario.targets``) is met in its year.

    ``probability`` is P(min <= annual value <= max); ``p_at_least_min`` is P(value >= min).
    ``yr``: :func:`annual` of ``ds`` when the caller has it (memory: not made again).
    """
    import pandas as pd

    if isinstance(targets, Scenario):
        targets = targets.targets
    yr = annual(ds) if yr is None else yr
    rows = []
    for t in targets:
        if t.year not in yr.year.values:
            raise ValidationError(f"targets: year {t.year} is outside the horizon")
        v = yr[t.variable].sel(year=t.year).values
        ok = np.ones(v.shape, dtype=bool)
        if t.min is not None:
            ok &= v >= t.min
        if t.max is not None:
            ok &= v <= t.max
        rows.append(
            {
                "target": t.name,
                "variable": t.variable,
                "year": t.year,
                "min": t.min,
                "max": t.max,
                "probability": float(ok.mean()),
                "p_at_least_min": float((v >= t.min).mean()) if t.min is not None else np.nan,
                "complete_year": int(yr.quarters.sel(year=t.year)) == 4,
                "source": t.source,
            }
        )
    return pd.DataFrame(rows)


def drivers(
    ds: xr.Dataset,
    variable: str = "ag_oz",
    year: int | None = None,
    top: int = 6,
    yr: xr.Dataset | None = None,
) -> pd.DataFrame:
    """What drives the spread: Spearman rank correlation of a year's output with each per-draw driver.

    Drivers: calibration parameters, each source's response offsets, mean-grade factors
    and start delays, the year's mean scatter offsets, realised availability and head
    grades. Drivers that do not vary are skipped. ``share`` = rho^2 / sum(rho^2): a rough
    split of the explained spread (drivers are nearly independent by construction).
    ``yr``: :func:`annual` of ``ds`` when the caller has it (memory: not made again).
    """
    import pandas as pd

    yr = annual(ds) if yr is None else yr
    if year is None:
        year = summary_year({int(y): int(yr.quarters.sel(year=y)) for y in yr.year.values})
    year = int(year)
    y = yr[variable].sel(year=year).values
    cand: dict[str, np.ndarray] = {}
    for p in ds.parameter.values:
        cand[f"calibration {p}"] = ds.theta.sel(parameter=p).values
    for s in ds.source.values:
        for o in ds.offset.values:
            cand[f"{s} ore {o}"] = ds.ore_offset.sel(source=s, offset=o).values
        for e in ds.element.values:
            cand[f"{s} mean {e} grade"] = ds.grade_factor.sel(source=s, element=e).values
        cand[f"{s} start delay"] = ds.start_delay_days.sel(source=s).values
        if "rate_factor" in ds:
            cand[f"{s} mining rate"] = ds.rate_factor.sel(source=s).values
    if "target_factor" in ds:
        cand["mill target"] = ds.target_factor.values
    qs = [i for i, q in enumerate(ds.quarter.values) if str(q).startswith(str(year))]
    for o in ds.offset.values:
        cand[f"scatter {o} ({year} mean)"] = (
            ds.scatter_offset.sel(offset=o).isel(quarter=qs).mean("quarter").values
        )
    cand["long-run availability"] = ds.availability_drawn.values
    cand[f"availability {year}"] = yr.availability.sel(year=year).values
    for el in ("ag_gpt", "pb_pct", "zn_pct"):
        cand[f"head {el} {year}"] = yr[f"head_{el}"].sel(year=year).values
    cand[f"ore processed {year}"] = yr.ore_processed_t.sel(year=year).values
    rows = []
    for name, x in cand.items():
        ok = np.isfinite(x) & np.isfinite(y)
        if ok.sum() < 3:
            continue
        rx = pd.Series(x[ok]).rank().to_numpy()
        ry = pd.Series(y[ok]).rank().to_numpy()
        # ties everywhere (a driver held fixed, up to rounding) carry no information
        if rx.std() == 0.0 or ry.std() == 0.0:
            continue
        rows.append({"driver": name, "rho": float(np.corrcoef(rx, ry)[0, 1])})
    df = pd.DataFrame(rows, columns=["driver", "rho"])
    if df.empty:
        return df.assign(share=[])
    # realised quantities (availability, head grades, ore) are consequences, not inputs:
    # they are listed but left out of the share of the independent inputs
    inputs = ~df.driver.str.startswith(("availability", "head", "ore processed"))
    r2 = (df.rho**2).where(inputs, 0.0)
    df["share"] = r2 / r2.sum() if r2.sum() > 0 else 0.0
    df["variable"] = variable
    df["year"] = year
    return df.reindex(df.rho.abs().sort_values(ascending=False).index).head(top).reset_index(drop=True)


#: groups of uncertainty that :func:`spread_attribution` switches off one at a time
UNCERTAINTY_GROUPS = {
    "calibration parameters": ("post_theta",),
    "quarter-to-quarter scatter": ("post_offset_mean", "post_scatter_sd"),
    "mean grades (resource / plan)": ("g_mean_sd",),
    "day-to-day grades": ("g_sd",),
    "new-ore metallurgy (offsets)": ("r_sd",),
    "start dates": ("start_span",),
    "tonnes mined and mill downtime": ("rate_cv", "mttr_h", "availability_sd"),
    # the plan's per-draw factors (Plan.rates, not a kernel array)
    "mining and milling rates (plan)": ("rates",),
}


def _group_on(plan: Plan, keys) -> bool:
    # the posterior parameters are "on" when the draws differ, every other group when nonzero
    for key in keys:
        if key == "rates":
            if plan.rates is not None:
                return True
            continue
        v = plan.arrays[key]
        if key == "post_theta" and v.shape[0] > 1 and np.ptp(v, axis=0).any():
            return True
        if key != "post_theta" and np.any(v):
            return True
    return False


def _without(plan: Plan, group: str) -> Plan:
    a = dict(plan.arrays)
    rates = plan.rates
    for key in UNCERTAINTY_GROUPS[group]:
        if key == "rates":
            rates = None
            continue
        if key == "start_span":
            # fixed at the middle of the stated range, so only the spread goes
            a["start_lo"] = a["start_lo"] + np.floor(a["start_span"] / 2.0)
        if key == "post_theta":
            # every posterior draw at the calibrated parameters
            a[key] = np.ascontiguousarray(np.tile(plan.calibration.theta, (a[key].shape[0], 1)))
            continue
        a[key] = np.zeros_like(a[key]) if isinstance(a[key], np.ndarray) else 0.0
    return Plan(
        plan.scenario,
        plan.calibration,
        plan.quarters,
        plan.days,
        plan.sources,
        a,
        plan.calibration_note,
        rates,
    )


def spread_attribution(
    plan: Plan,
    draws: int = 1000,
    seed: int = 0,
    year: int | None = None,
    variables=("ag_oz", "pb_lb", "zn_lb"),
) -> pd.DataFrame:
    """What drives the spread: the variance of a year's output removed by switching off each source of it.

    Each group of :data:`UNCERTAINTY_GROUPS` is switched off in turn, with the same draws
    (same seed and streams: every other random number is unchanged), and
    ``share = 1 - var(without group) / var(all)`` is the part of the variance that group
    accounts for (a total effect; shares need not add to 1 when groups interact).
    Groups that are already off in the scenario are left out.
    """
    import pandas as pd

    years = np.array([int(q[:4]) for q in plan.quarters])
    y = year if year is not None else summary_year(years.tolist())
    qsel = years == y

    def values(p: Plan) -> dict[str, np.ndarray]:
        # the year summed chunk by chunk: only one chunk's records live at a time
        year_q = [
            run_chunk(p, seed, d0, n)[0][:, qsel].sum(axis=1) for d0, n in _chunks(draws, 4 * DEFAULT_CHUNK)
        ]
        return _period_values(np.concatenate(year_q))

    base = values(plan)
    rows = []
    for group, keys in UNCERTAINTY_GROUPS.items():
        if not _group_on(plan, keys):
            continue
        w = values(_without(plan, group))
        row = {"group": group, "year": y}
        for v in variables:
            # an output that does not vary (beyond rounding) has no spread to attribute
            varies = np.std(base[v]) > 1e-9 * abs(np.mean(base[v]))
            row[f"{v}_share"] = 1.0 - np.var(w[v]) / np.var(base[v]) if varies else np.nan
            row[f"{v}_p10_p90_without"] = np.percentile(w[v], 90) - np.percentile(w[v], 10)
        rows.append(row)
    df = pd.DataFrame(rows)
    for v in variables:
        df.attrs[f"{v}_p10_p90"] = float(np.percentile(base[v], 90) - np.percentile(base[v], 10))
    return df


# ------------------------------------------------------------------ what-ifs
WHATIF_VARIABLES = (
    "ag_oz",
    "pb_lb",
    "zn_lb",
    "ore_processed_t",
    "rec_ag_pct",
    "rec_pb_pct",
    "rec_zn_pct",
    "operating_tpd",
    "pbcon_pb_pct",
    "pbcon_ag_gpt",
    "zncon_zn_pct",
)


def _period_values(o: np.ndarray) -> dict[str, np.ndarray]:
    """Production figures from summed kernel records o[..., fields] (flows only)."""

    def m(stream, e):
        return o[..., K.F_STREAM_M + 3 * stream + e]

    feed = o[..., K.F_FEED_T]
    ag = m(0, 0) + m(1, 0)
    return {
        "ag_oz": ag * float(units.tonnes_to_contained(1.0, "troy_oz")),
        "pb_lb": m(0, 1) * units.LB_PER_TONNE,
        "zn_lb": m(1, 2) * units.LB_PER_TONNE,
        "ore_processed_t": feed,
        "rec_ag_pct": _div(ag, o[..., K.F_FEED_M], 100.0),
        "rec_pb_pct": _div(m(0, 1), o[..., K.F_FEED_M + 1], 100.0),
        "rec_zn_pct": _div(m(1, 2), o[..., K.F_FEED_M + 2], 100.0),
        "operating_tpd": _div(feed, o[..., K.F_UP_H], 24.0),
        "pbcon_pb_pct": _div(m(0, 1), o[..., K.F_STREAM_T], 100.0),
        "pbcon_ag_gpt": _div(m(0, 0), o[..., K.F_STREAM_T], 1e6),
        "zncon_zn_pct": _div(m(1, 2), o[..., K.F_STREAM_T + 1], 100.0),
    }


#: grid points of one axis of a what-if (a typo in STEP must not allocate gigabytes)
MAX_GRID_POINTS = 1000


def parse_range(text: str, name: str) -> np.ndarray:
    """'a:b:step' (inclusive of b when it falls on the grid) or 'a,b,c' -> array."""
    try:
        if ":" in text:
            a, b, s = (float(x) for x in text.split(":"))
            if not all(map(math.isfinite, (a, b, s))) or s <= 0 or b < a:
                raise ValueError
            n = int(math.floor((b - a) / s + 1e-9)) + 1
            if n > MAX_GRID_POINTS:
                raise ValidationError(
                    f"{name}: found {text!r}, {n:,} grid points; allowed: at most {MAX_GRID_POINTS} "
                    "(a larger STEP)"
                )
            return np.round(a + s * np.arange(n), 10)
        vals = [float(x) for x in text.split(",")]
        if not all(map(math.isfinite, vals)) or len(vals) > MAX_GRID_POINTS:
            raise ValueError
        return np.array(vals)
    except ValidationError:
        raise
    except ValueError:
        raise ValidationError(
            f"{name}: found {text!r}; expected START:STOP:STEP (STEP > 0) or a,b,c"
        ) from None


def whatif(
    scenario: Scenario,
    tpd: Sequence[float],
    availability: Sequence[float],
    *,
    draws: int = 200,
    seed: int = 0,
    year: int | None = None,
    calibration: Calibration | None = None,
    base_dir: Path | None = None,
    progress: Callable[[int], None] | None = None,
    on_chunk: Callable[[int, int, int, np.ndarray], None] | None = None,
    chunk_size: int | None = None,
) -> xr.Dataset:
    """Throughput x availability surface of production and recoveries, with uncertainty.

    Every grid point runs the same draws (common random numbers: same seed, so the
    surface is smooth and differences between points are the mill's, not noise). The
    scenario's feed is made unlimited (rates become blend shares) and the capacity cap is
    lifted, so the surface shows what the circuit does at each rate: more tonnes, less
    residence time, lower recovery.

    Returns
    -------
    xarray.Dataset
        Dims (tpd, availability, stat): ag_oz, pb_lb, zn_lb, ore_processed_t, rec_*_pct,
        head grades and the operating rate, for the year ``year`` (default: the year of
        :func:`kenomill.scenario.summary_year`, the last complete year of the horizon).

    Each grid point runs its draws in chunks of ``chunk_size`` (default 1024) and keeps
    only the year's figures per draw, so memory grows by ~100 B per draw, not by the
    kernel's records; results do not depend on ``chunk_size`` (draw i depends only on
    the seed and i). ``on_chunk(i, j, draw0, records)``, when given, sees each chunk's
    records of the year's quarters (draw, quarter, field) at grid point (tpd[i],
    availability[j]): :func:`kenomill.value.whatif_nsr` settles concentrates there.
    """
    import xarray as xr

    tpd = np.asarray(tpd, dtype=float)
    availability = np.asarray(availability, dtype=float)
    if tpd.size == 0 or (tpd <= 0).any() or not np.isfinite(tpd).all():
        raise ValidationError(f"--tpd: found {tpd.tolist()}; allowed: positive numbers")
    if availability.size == 0 or (availability <= 0).any() or (availability > 1).any():
        raise ValidationError(f"--availability: found {availability.tolist()}; allowed: fractions in (0, 1]")
    plan0 = compile_plan(scenario, calibration, base_dir=base_dir)
    years = np.array([int(q[:4]) for q in plan0.quarters])
    y = year if year is not None else summary_year(years.tolist())
    if y is not None and y not in years:
        raise ValidationError(
            f"--year: found {y}; the horizon covers {', '.join(map(str, np.unique(years)))}"
        )
    qsel = years == y if y is not None else np.ones(years.size, dtype=bool)
    # NumPy on the raw sums: an xarray Dataset per grid point cost more than the kernel
    values = {v: np.empty((tpd.size, availability.size, len(STATS))) for v in WHATIF_VARIABLES}
    for i, t in enumerate(tpd):
        for j, a in enumerate(availability):
            plan = compile_plan(
                scenario,
                plan0.calibration,
                base_dir=base_dir,
                target_tpd=float(t),
                availability=float(a),
                capacity_tpd=np.inf,
                feed_unlimited=True,
            )
            per_draw = {v: np.empty(draws) for v in WHATIF_VARIABLES}
            for d0, n in _chunks(draws, chunk_size or 4 * DEFAULT_CHUNK):
                out_q = run_chunk(plan, seed, d0, n)[0][:, qsel]
                for v, x in _period_values(out_q.sum(axis=1)).items():
                    per_draw[v][d0 : d0 + n] = x
                if on_chunk is not None:
                    on_chunk(i, j, d0, out_q)
            for v, x in per_draw.items():
                values[v][i, j] = [np.nanmean(x), *np.nanpercentile(x, [10, 50, 90])]
            if progress:
                progress(1)
    out = xr.Dataset(
        {
            v: (
                ("tpd", "availability", "stat"),
                values[v],
                {"units": _ATTRS[v][0], "long_name": _ATTRS[v][1]},
            )
            for v in WHATIF_VARIABLES
        },
        coords={"tpd": tpd, "availability": availability, "stat": list(STATS)},
    )
    out["tpd"].attrs = {"units": "t/d", "long_name": "calendar throughput target"}
    out["availability"].attrs = {"units": "1", "long_name": "long-run mill availability"}
    out.attrs = {
        "title": f"kenomill what-if: throughput x availability, scenario {scenario.name}",
        "scenario": scenario.name,
        "draws": int(draws),
        "seed": int(seed),
        "year": "horizon total" if y is None else int(y),
        "note": "feed unlimited (rate shares as blend), capacity cap lifted; same draws at every point",
    }
    return out


# ------------------------------------------------------------------ reference workload
def reference_workload() -> Scenario:
    """Issue 6's reference workload: three sources, daily steps, six quarters (all uncertainty on)."""
    from kenomill.scenario import from_dict

    g = {"cv": 0.2, "autocorrelation": 0.9}
    return from_dict(
        {
            "name": "reference_workload",
            "description": "three feed sources, daily steps over six quarters (benchmark workload)",
            "assumptions": [
                "synthetic: rates and grades of the shipped onek_lucky_queen_2012q4 scenario, rounded"
            ],
            "horizon": {"start": "2012Q1", "quarters": 6},
            "sources": {
                "bellekeno": {
                    "rate_tpd": 235,
                    "rate_cv": 0.2,
                    "ag_gpt": {"mean": 822, **g},
                    "pb_pct": {"mean": 10.1, **g},
                    "zn_pct": {"mean": 5.8, **g},
                },
                "onek": {
                    "rate_tpd": 60,
                    "rate_cv": 0.3,
                    "grades_from": "deposit:Onek:Indicated",
                    "ag_gpt": {**g, "mean_uncertainty": 0.15},
                    "pb_pct": g,
                    "zn_pct": g,
                    "response": {n: {"sd": 0.5} for n in recovery.OFFSET_NAMES},
                },
                "lucky_queen": {
                    "rate_tpd": 40,
                    "rate_cv": 0.3,
                    "grades_from": "deposit:Lucky Queen:Indicated",
                    "ag_gpt": {**g, "mean_uncertainty": 0.2},
                    "pb_pct": g,
                    "zn_pct": g,
                    "response": {n: {"sd": 0.5} for n in recovery.OFFSET_NAMES},
                },
            },
            "stockpile": {"initial_t": {"bellekeno": 2000}, "capacity_t": 40000},
            "mill": {"target_tpd": 300, "capacity_tpd": 400, "availability": 0.92, "mean_repair_h": 8},
            "uncertainty": {"calibration": "default"},
        },
        where="reference_workload",
    )
