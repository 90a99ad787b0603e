"""Size before work: peak memory and run time of a command, estimated before it starts.

A number typed on the command line (``--draws 1000000000``) must not end in the
operating system killing the process for memory, nor in hours of silent work. Each
command that allocates by draws, steps or grid points calls :func:`check` with its
estimate first: a run that does not fit in the memory available is refused with one
line naming the estimate, the memory available and the largest run that fits; a long
run prints its estimate (and then shows progress).

The per-unit figures are measured, not derived: peak resident memory and wall time of
the CLI at two sizes, the slope between them (``/usr/bin/time -f "%M kB %e s" kenomill
simulate scenarios/bellekeno_only.toml --draws 2000`` and ``--draws 20000``; the same for
``kenomill predict FEED.csv --draws 20000`` and ``200000``), measured on a 2-core machine
shared with other work, and rounded up.
"""

from __future__ import annotations

import os

from kenomill.errors import ValidationError

#: peak memory per Monte Carlo draw of simulate, per float64 of the kernel's outputs [-]:
#: measured 8.0 kB per draw for 339 output values (2.7 kB): the Dataset, the annual sums
#: and the summaries copy them about three times; 4 leaves a margin
SIMULATE_COPIES = 4.0
#: wall time per draw, per daily step and feed source [s]: measured 0.58 ms per draw over
#: 731 steps of one source (0.79 us), rounded up
SIMULATE_SECONDS_PER_STEP = 1.0e-6
#: memory predict keeps per draw and feed period [bytes]: its 16 outputs and 3 NSR figures
#: (float64) until the quantiles, plus the one column the quantile sorts at a time
PREDICT_BYTES_PER_DRAW = 8.0 * (16 + 3 + 1)
#: working memory of one row (draw x period) of a block of predict [bytes]: the draws'
#: inputs, the response and the settlement (:data:`kenomill.calibrate.PREDICT_BLOCK_ROWS` at a time)
PREDICT_BLOCK_ROW_BYTES = 1200.0
#: wall time of predict per draw and feed period [s]
PREDICT_SECONDS_PER_DRAW = 3e-6
#: memory kenomill needs besides the run (interpreter, numpy, xarray, numba) [bytes]: measured 250 MB
BASE_BYTES = 300e6
#: runs estimated longer than this print their estimate before they start [s]
ANNOUNCE_SECONDS = 20.0
#: share of the available memory a run may plan to use [-]
MEMORY_SHARE = 0.8


def available_memory() -> float:
    """Memory the system can give this process now [bytes] (``MemAvailable`` on Linux)."""
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return float(line.split()[1]) * 1024.0
    except (OSError, ValueError, IndexError):
        pass
    try:
        return float(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return float("inf")


def fmt_bytes(n: float) -> str:
    """``1.5 GB``-style size (decimal units, as ``free -h`` shows roughly)."""
    for unit, f in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= f:
            return f"{n / f:.1f} {unit}"
    return f"{n:.0f} B"


def fmt_seconds(s: float) -> str:
    """``about 3 min``-style duration."""
    if s < 90:
        return f"{s:.0f} s"
    if s < 5400:
        return f"{s / 60:.0f} min"
    if s < 2 * 86400:
        return f"{s / 3600:.1f} h"
    return f"{s / 86400:.0f} days"


def check(
    what: str,
    units: int,
    bytes_per_unit: float,
    seconds_per_unit: float,
    *,
    unit: str = "draws",
    option: str = "--draws",
    fixed_bytes: float = 0.0,
    announce: bool = True,
) -> tuple[float, float]:
    """Refuse a run that cannot fit in memory; announce a long one.

    Parameters
    ----------
    what : str
        The command, e.g. ``"simulate bellekeno_only"``.
    units : int
        Draws (or grid points x draws) the user asked for.
    bytes_per_unit, seconds_per_unit : float
        Peak memory [bytes] and wall time [s] per unit.
    unit, option : str
        Words for the message: the unit and the option that sets it.
    fixed_bytes : float
        Memory the run needs whatever its size [bytes] (besides :data:`BASE_BYTES`).

    Returns
    -------
    (peak_bytes, seconds) : tuple of float
        The estimate.

    Raises
    ------
    ValidationError
        When the estimated peak exceeds :data:`MEMORY_SHARE` of the available memory.
    """
    peak = BASE_BYTES + fixed_bytes + units * bytes_per_unit
    seconds = units * seconds_per_unit
    avail = available_memory()
    if peak > MEMORY_SHARE * avail:
        fit = max(int((MEMORY_SHARE * avail - BASE_BYTES - fixed_bytes) / bytes_per_unit), 0)
        raise ValidationError(
            f"{option}: {units:,} {unit} need about {fmt_bytes(peak)} of memory "
            f"({fmt_bytes(bytes_per_unit)} per {unit.rstrip('s')}) and about {fmt_seconds(seconds)}; "
            f"this machine has {fmt_bytes(avail)} available; allowed here: at most about {fit:,} {unit}"
        )
    if announce and seconds > ANNOUNCE_SECONDS:
        from kenomill.progress import log

        log(
            f"{what}: {units:,} {unit}, estimated about {fmt_seconds(seconds)} and "
            f"{fmt_bytes(peak)} of memory ({fmt_bytes(avail)} available)"
        )
    return peak, seconds


def predict_check(draws: int, periods: int) -> tuple[float, float]:
    """Size ``kenomill predict`` before work.

    The draws are computed in blocks (:data:`kenomill.calibrate.PREDICT_BLOCK_ROWS` rows of
    draws x periods, same numbers whatever the block): only each draw's outputs stay until the
    quantiles, so a run is refused (one line, exit 2) only when those cannot fit.
    """
    from kenomill.calibrate import PREDICT_BLOCK_ROWS

    rows = min(draws * periods, PREDICT_BLOCK_ROWS)
    return check(
        "predict",
        draws,
        PREDICT_BYTES_PER_DRAW * periods,
        PREDICT_SECONDS_PER_DRAW * periods,
        fixed_bytes=rows * PREDICT_BLOCK_ROW_BYTES,
    )


def simulate_estimate(plan, draws: int, *, daily: bool = False, reruns: int = 1) -> tuple[float, float]:
    """(bytes per draw, seconds per draw) of a compiled plan (:func:`kenomill.simulate.compile_plan`)."""
    values = len(plan.quarters) * plan.n_fields + plan.n_draw_fields
    if daily:
        values += plan.n_steps * plan.n_fields
    per_draw_bytes = SIMULATE_COPIES * 8.0 * values
    per_draw_s = SIMULATE_SECONDS_PER_STEP * plan.n_steps * max(len(plan.sources), 1) * reruns
    return per_draw_bytes, per_draw_s


#: draws per chunk of a chunked run unless memory asks for fewer (what-if, simulate summaries)
CHUNK_DRAWS = 1024


def _chunk_bytes_per_draw(plan) -> float:
    """Working memory of one draw inside a chunk: the kernel's records, copied about
    :data:`SIMULATE_COPIES` times, plus the settlement's lines (about 20 per quarter)."""
    values = len(plan.quarters) * plan.n_fields + plan.n_draw_fields
    return SIMULATE_COPIES * 8.0 * values + 2 * 20 * 8.0 * len(plan.quarters)


def whatif_chunk(
    plan, draws: int, points: int, chunk_size: int | None = None, *, what: str = "whatif"
) -> int:
    """Size a what-if before work and choose its chunk: the draws it can hold at once.

    The what-if keeps, per draw, the year's production figures of one grid point (11
    values) and the NSR per day and per tonne of every grid point (2 per point), about
    twice over while taking percentiles; the kernel's records live only for one chunk.
    So a run refuses (one line, exit 2) only when those per-draw figures cannot fit; the
    chunk is :data:`CHUNK_DRAWS` draws, fewer if memory is short, or ``chunk_size``.

    Returns
    -------
    int
        Draws per chunk.
    """
    from kenomill.simulate import WHATIF_VARIABLES

    kept = 2 * 8.0 * (len(WHATIF_VARIABLES) + 2 * points)
    per_chunk_draw = _chunk_bytes_per_draw(plan)
    _, per_s = simulate_estimate(plan, 1)
    chunk = min(int(chunk_size or CHUNK_DRAWS), draws)
    avail = MEMORY_SHARE * available_memory() - BASE_BYTES - draws * kept
    if chunk_size is None and chunk * per_chunk_draw > avail / 2:
        chunk = max(int(avail / 2 / per_chunk_draw), 1)
    check(
        what,
        draws,
        kept,
        per_s * points,
        fixed_bytes=chunk * per_chunk_draw,
        unit="draws",
    )
    return chunk


#: peak memory of simulate per float64 of the kernel's outputs when the Dataset is built block
#: by block and the NSR settled as many draws at a time (:func:`simulate_blocks`) [-]: peak RSS of
#: the whole command (run, annual sums, targets, drivers, NSR) measured 4.07 kB per draw against
#: 7.59 kB the usual way (bellekeno_only, the slope between 20000 and 100000 draws built by blocks
#: of 16384; 339 output values a draw; 6.30 kB before the NSR was settled in blocks and the annual
#: sums made once), so the usual margin (:data:`SIMULATE_COPIES` for 7.59 kB) scaled by 4.07 / 7.59;
#: what remains is the Dataset itself (2.6 kB) and the annual sums while they are made
SIMULATE_LEAN_COPIES = SIMULATE_COPIES * 4.07 / 7.59
#: draws turned into the Dataset at a time by a run built block by block
SIMULATE_BLOCK_DRAWS = 16384


def simulate_blocks(
    plan, draws: int, *, daily: bool = False, reruns: int = 1, what: str = "simulate"
) -> int | None:
    """Size a Monte Carlo run before work: None (run as usual) or the block size that fits.

    A run whose usual peak (the kernel's records held until the end, then the Dataset:
    :data:`SIMULATE_COPIES`) fits runs as before. One that does not, but fits when the
    Dataset is built every :data:`SIMULATE_BLOCK_DRAWS` draws into arrays allocated once
    and the NSR is settled as many draws at a time (:data:`SIMULATE_LEAN_COPIES`;
    :func:`kenomill.simulate.run` with ``block_draws``, in process or on dask; the same
    numbers bit for bit), is chunked to fit and says so. Reruns (``--attribution``) keep a
    year's figures per draw and one chunk's records at a time: they add time, and the
    records of one chunk of :data:`kenomill.simulate.DEFAULT_CHUNK` x 4 draws. Otherwise
    the run is refused in one line with the estimate, the memory available and what fits.
    """
    from kenomill.simulate import DEFAULT_CHUNK

    per_b, per_s = simulate_estimate(plan, draws, daily=daily, reruns=reruns)
    rerun_bytes = (reruns > 1) * min(draws, 4 * DEFAULT_CHUNK) * per_b
    avail = MEMORY_SHARE * available_memory()
    if BASE_BYTES + rerun_bytes + draws * per_b <= avail:
        check(what, draws, per_b, per_s, fixed_bytes=rerun_bytes)
        return None
    lean = per_b * SIMULATE_LEAN_COPIES / SIMULATE_COPIES
    block = min(SIMULATE_BLOCK_DRAWS, draws)
    fixed = block * per_b + rerun_bytes
    check(what, draws, lean, per_s, fixed_bytes=fixed, announce=False)
    from kenomill.progress import log

    log(
        f"{what}: {draws:,} draws need about {fmt_bytes(BASE_BYTES + draws * per_b)} held the usual way, "
        f"{fmt_bytes(avail / MEMORY_SHARE)} available: chunked to fit, the results built and the NSR "
        f"settled every {block:,} draws "
        f"(about {fmt_bytes(BASE_BYTES + draws * lean + fixed)}; same numbers); "
        f"estimated about {fmt_seconds(draws * per_s)}"
    )
    return block


#: wall time of the posterior sampler per walker and step [s]: bayes.sample of the default
#: model (18 unknowns, 38 walkers) took 7.68 s for 2000 steps and 21.09 s for 6000 at load 4
#: on 2 cores (slope 0.088 ms; the quarter density compiled by numba), rounded up for load;
#: the figure before (0.53 ms at load 6-8, before the numba density) said "about 2 min" for
#: 4000 steps, which take about 14 s (the command's default is now 8000)
POSTERIOR_SECONDS_PER_WALKER_STEP = 0.12e-3
#: emcee steps per walker of ``kenomill calibrate``'s posterior (its default): at 4000 the
#: default model's R-hat was 1.05-1.12 over three seeds and two starting points a rounding
#: apart (three of six over the 1.1 the sampler checks); at 8000, 1.03-1.05
POSTERIOR_STEPS = 8000
#: copies of the chain the sampler and its diagnostics hold (emcee's chain and log
#: probabilities, the kept half, ArviZ's view of it) [-]
POSTERIOR_COPIES = 3.0


def posterior_check(
    n_steps: int, n_walkers: int, n_dim: int, *, what: str = "calibrate", announce: bool = True
) -> tuple[float, float]:
    """Size the quarter-level posterior sampling (:func:`kenomill.bayes.sample`) before work.

    emcee keeps every step of every walker: ``n_steps x n_walkers x (n_dim + 1)`` float64,
    about :data:`POSTERIOR_COPIES` times over with the diagnostics. Refuses (one line) a
    chain that cannot fit; prints the estimate of a long run.
    """
    per_step = POSTERIOR_COPIES * 8.0 * n_walkers * (n_dim + 1)
    return check(
        what,
        n_steps,
        per_step,
        POSTERIOR_SECONDS_PER_WALKER_STEP * n_walkers,
        unit="steps",
        option="--posterior-steps",
        announce=announce,
    )


def size_posterior(model, data, n_steps: int, *, what: str = "calibrate", announce: bool = True) -> None:
    """:func:`posterior_check` for ``model`` on ``data`` with the sampler's default walkers
    (``2 d + 2``, :func:`kenomill.bayes.sample`); nothing for ``n_steps`` 0."""
    if not n_steps:
        return
    from kenomill import bayes

    d = bayes.LogPosterior(model, data).d
    posterior_check(n_steps, 2 * d + 2, d, what=what, announce=announce)


def report_check(
    plans, draws: int, whatif_plan, whatif_points: int, whatif_draws: int
) -> tuple[float, float]:
    """Size ``kenomill report`` before work: every scenario's draws are kept for the page.

    Memory: the sum over scenarios of a simulate run's peak per draw (the page keeps each
    scenario's Dataset) plus the what-if's per-draw figures; time: the Monte Carlo runs
    and the what-if grid (the model comparison, about half a minute, comes on top).
    """
    per_b = sum(simulate_estimate(p, draws)[0] for p in plans)
    per_s = sum(simulate_estimate(p, draws)[1] for p in plans)
    from kenomill.simulate import WHATIF_VARIABLES

    # the what-if's draws grow with the report's (draws / 5): counted per report draw
    share = whatif_draws / max(draws, 1)
    wi_b = share * 2 * 8.0 * (len(WHATIF_VARIABLES) + 2 * whatif_points)
    wi_s = share * whatif_points * simulate_estimate(whatif_plan, 1)[1]
    return check(
        "report",
        draws,
        per_b + wi_b,
        per_s + wi_s,
        fixed_bytes=CHUNK_DRAWS * _chunk_bytes_per_draw(whatif_plan),
        unit="draws",
    )
