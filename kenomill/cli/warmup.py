"""``kenomill warmup``: compile the numba kernels now, into numba's on-disk cache.

The first Monte Carlo run on a machine otherwise spends about half a minute compiling
before it starts (the kernels carry eager signatures and ``cache=True``: they compile
once per install and load from the cache afterwards). ``python3 dev.py run`` and
``python3 dev.py test`` call this right after installing, with a progress line; a user
may call it after ``pip install``.
"""

from __future__ import annotations

import time

import click

from kenomill.cli import guarded


def warm() -> float:
    """Import the compiled modules and run each kernel once on a tiny input (what compiles
    on first call compiles now): a 2-draw simulate, the packaged balance, 2-draw predictions
    with NSR. Returns the seconds it took. Afterwards predict, simulate, whatif and balance
    compile nothing more (checked on the numba dispatchers' signatures: tests/test_warmup.py)."""
    t0 = time.perf_counter()
    # the Monte Carlo and circuit kernels compile (or load from the cache) on import
    from kenomill import calibrate, scenario, simulate
    from kenomill.cli.simulate import DEFAULT_WHATIF_SCENARIO as sc_file

    plan = simulate.compile_plan(scenario.load(sc_file), base_dir=sc_file.parent)
    simulate.run(plan, 2, 0)
    from kenomill import balance, terms

    balance.balance_table()  # kenomill balance: circuit.forward's own kernel

    # with NSR: the settlement's response (recovery.respond_many) compiles too; one period and
    # two, because numba specialises on whether an array is read-only, which differs there
    # (a one-row broadcast stays a read-only view, a longer one is copied)
    nsr = (terms.prices_for(terms.read_prices(), "2012"), terms.packaged_terms())
    for n in (1, 2):
        feed = {
            "period": [f"warmup{i}" for i in range(n)],
            "ore_processed_t": [18000.0] * n,
            "head_ag_gpt": [800.0] * n,
            "head_pb_pct": [10.0] * n,
            "head_zn_pct": [6.0] * n,
            "tpd": [200.0] * n,
        }
        calibrate.predict(None, feed, n_draws=2, nsr=nsr)
    return time.perf_counter() - t0


@click.command()
@guarded
def warmup():
    """Compile the simulation kernels now (once per install, about 1-2 min), not on the first run."""
    from kenomill.cli.simulate import _kernels_cached
    from kenomill.progress import phase

    if _kernels_cached():
        click.echo("kenomill warmup: the kernels are compiled already (numba's cache)", err=True)
    with phase("compiling the simulation kernels, once per install, about 1-2 min"):
        dt = warm()
    click.echo(f"kenomill warmup: kernels ready in {dt:.1f} s", err=True)
