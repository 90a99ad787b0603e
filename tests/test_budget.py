"""Size before work: runs that do not fit chunk to fit where they can, with the same numbers.

The memory of the machine is replaced (``budget.available_memory``) so that a run lands
exactly between "fits the usual way", "fits only built block by block" and "does not fit".
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import xarray as xr
from click.testing import CliRunner

from kenomill import budget, scenario
from kenomill import simulate as sim
from kenomill.cli import main
from kenomill.errors import ValidationError

SCEN = Path(__file__).resolve().parents[1] / "scenarios" / "bellekeno_only.toml"


@pytest.fixture(scope="module")
def plan():
    return sim.compile_plan(scenario.load(SCEN), base_dir=SCEN.parent)


def test_runs_built_block_by_block_are_bit_identical(plan):
    a = sim.run(plan, 300, 7, chunk_size=64)
    b = sim.run(plan, 300, 7, chunk_size=64, block_draws=100)
    xr.testing.assert_identical(a, b)
    c = sim.run(plan, 40, 3, chunk_size=16, daily=True)
    d = sim.run(plan, 40, 3, chunk_size=16, daily=True, block_draws=20)
    xr.testing.assert_identical(c, d)


def _memory_between(plan, draws, monkeypatch, where: float):
    """Available memory placing the run's usual peak just above the limit (where=0.5: between
    the usual and the block-by-block estimates; 0: below even the blocks)."""
    per_b, _ = budget.simulate_estimate(plan, draws)
    lean = per_b * budget.SIMULATE_LEAN_COPIES / budget.SIMULATE_COPIES
    block = min(budget.SIMULATE_BLOCK_DRAWS, draws)
    usual = budget.BASE_BYTES + draws * per_b
    blocks = budget.BASE_BYTES + draws * lean + block * per_b
    assert blocks < usual
    limit = blocks + where * (usual - blocks) if where > 0 else blocks * 0.999
    monkeypatch.setattr(budget, "available_memory", lambda: limit / budget.MEMORY_SHARE)


def test_simulate_blocks_chooses_usual_blocks_or_refuses(plan, monkeypatch):
    monkeypatch.setattr(budget, "SIMULATE_BLOCK_DRAWS", 64)
    draws = 4000
    assert budget.simulate_blocks(plan, draws) is None  # this machine: fits the usual way
    _memory_between(plan, draws, monkeypatch, 0.5)
    assert budget.simulate_blocks(plan, draws) == 64
    _memory_between(plan, draws, monkeypatch, 0.0)
    with pytest.raises(ValidationError, match=r"--draws: 4,000 draws need about .* allowed here"):
        budget.simulate_blocks(plan, draws)


def test_attribution_chunks_to_fit_too(plan, monkeypatch):
    """--attribution (4 reruns): a year's figures per draw and one chunk of 4 x 1024 draws'
    records at a time, so it chunks to fit like a plain run; its shares are unchanged."""
    monkeypatch.setattr(budget, "SIMULATE_BLOCK_DRAWS", 64)
    draws = 20000
    per_b, _ = budget.simulate_estimate(plan, draws, reruns=4)
    lean = per_b * budget.SIMULATE_LEAN_COPIES / budget.SIMULATE_COPIES
    rerun = 4 * sim.DEFAULT_CHUNK * per_b
    usual = budget.BASE_BYTES + rerun + draws * per_b
    blocks = budget.BASE_BYTES + rerun + 64 * per_b + draws * lean
    limit = (usual + blocks) / 2
    monkeypatch.setattr(budget, "available_memory", lambda: limit / budget.MEMORY_SHARE)
    assert budget.simulate_blocks(plan, draws, reruns=4) == 64
    monkeypatch.setattr(budget, "available_memory", lambda: 0.999 * blocks / budget.MEMORY_SHARE)
    with pytest.raises(ValidationError, match=r"--draws: 20,000 draws need about .* allowed here"):
        budget.simulate_blocks(plan, draws, reruns=4)


def test_attribution_summed_chunk_by_chunk_matches_a_direct_count(plan):
    """The shares from the year's sums built per chunk against a direct computation from
    whole runs: 1 - var(without) / var(all) of the year's silver."""
    df = sim.spread_attribution(plan, 300, 4).set_index("group")
    base = sim.annual(sim.run(plan, 300, 4))
    year = int(df["year"].iloc[0])
    v_all = float(base["ag_oz"].sel(year=year).var())
    for group in df.index:
        w = sim.annual(sim.run(sim._without(plan, group), 300, 4))
        want = 1.0 - float(w["ag_oz"].sel(year=year).var()) / v_all
        assert df.loc[group, "ag_oz_share"] == pytest.approx(want, rel=1e-9, abs=1e-12)


def test_dask_runs_built_block_by_block_are_bit_identical(plan):
    from dask.distributed import Client, LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None) as cluster:
        with Client(cluster) as client:
            on_dask = sim.run(plan, 300, 7, chunk_size=32, scheduler=client, block_draws=100)
    xr.testing.assert_identical(sim.run(plan, 300, 7, chunk_size=64), on_dask)


def test_nsr_settled_in_blocks_equals_all_at_once(plan):
    from kenomill import value
    from kenomill.cli.simulate import settle_nsr

    ds = sim.run(plan, 250, 3)
    whole = value.simulation_nsr(ds, target_usd=1.5e8)
    blocks = settle_nsr(ds, None, 1.5e8, block=33)
    for v in ("nsr_year_usd", "nsr_year_usd_q", "p_target"):
        np.testing.assert_array_equal(blocks[v].values, whole[v].values)
    prices = value.price_draws(
        {"ag": 30.0, "pb": 0.95, "zn": 0.9, "usd_cad": 1.0}, 250, sd_log={"ag": 0.2, "pb": 0.2, "zn": 0.2}
    )
    whole = value.simulation_nsr(ds, prices=prices)
    np.testing.assert_array_equal(
        settle_nsr(ds, prices, None, 40)["nsr_year_usd"].values, whole["nsr_year_usd"].values
    )


def test_cli_simulate_chunks_to_fit_and_prints_the_same_numbers(plan, monkeypatch):
    usual = CliRunner().invoke(main, ["simulate", str(SCEN), "--draws", "400", "--seed", "5"])
    assert usual.exit_code == 0, usual.output
    monkeypatch.setattr(budget, "SIMULATE_BLOCK_DRAWS", 8)
    _memory_between(plan, 400, monkeypatch, 0.5)
    chunked = CliRunner().invoke(main, ["simulate", str(SCEN), "--draws", "400", "--seed", "5"])
    assert chunked.exit_code == 0, chunked.output
    assert "chunked to fit" in chunked.stderr
    assert chunked.stdout == usual.stdout


def test_posterior_and_report_sizes_refuse_what_cannot_fit(plan, monkeypatch):
    monkeypatch.setattr(budget, "available_memory", lambda: 1e9)
    # 38 walkers x 19 unknowns: 3 x 8 x 38 x 20 = 18,240 B a step; 10^6 steps = 18 GB
    with pytest.raises(ValidationError, match=r"--posterior-steps: 1,000,000 steps need about 18.5 GB"):
        budget.posterior_check(1_000_000, 38, 19)
    peak, secs = budget.posterior_check(10_000, 38, 19)
    assert peak == pytest.approx(budget.BASE_BYTES + 10_000 * 18_240)
    assert secs == pytest.approx(10_000 * 38 * budget.POSTERIOR_SECONDS_PER_WALKER_STEP)
    with pytest.raises(ValidationError, match="--draws"):
        budget.report_check([plan, plan], 10**6, plan, 36, 200)


def test_cli_report_too_many_draws_is_one_line_before_any_work(tmp_path):
    out = tmp_path / "r.html"
    res = CliRunner().invoke(main, ["report", "--draws", "100000000", "--out", str(out)])
    assert res.exit_code == 2
    lines = [ln for ln in res.stderr.splitlines() if ln.strip() and "compiling" not in ln]
    assert len(lines) == 1 and "--draws: 100,000,000 draws need about" in lines[0], res.stderr
    assert "allowed here: at most about" in lines[0] and not out.exists()


def test_cli_calibrate_posterior_that_cannot_fit_is_one_line_before_the_fit(tmp_path, monkeypatch):
    monkeypatch.setattr(budget, "available_memory", lambda: 400e6)  # 320 MB usable, 300 MB base
    out = tmp_path / "cal"
    res = CliRunner().invoke(main, ["calibrate", "--posterior-steps", "100000", "--out", str(out)])
    assert res.exit_code == 2, res.output
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "--posterior-steps: 100,000 steps need about" in lines[0], res.stderr
    assert "fitting" not in res.output and not (out / "calibration.json").exists()


def test_cli_calibrate_sizes_before_the_reconciliation_and_the_gross_error_screen(tmp_path, monkeypatch):
    """Refused before any work: neither the reconciled figures nor the gross-error screen are made."""
    from kenomill import calibrate as cal_mod
    from kenomill import reconcile as rec_mod

    def no_work(*a, **k):
        raise AssertionError("work started before the size check")

    # the gross-error screen (Study.fit_data(exclude_flagged=True) calls it) and the reconciliation
    monkeypatch.setattr(rec_mod, "flagged_figures", no_work)
    monkeypatch.setattr(rec_mod, "reconciled_periods", no_work)
    raw = cal_mod.fit_data
    monkeypatch.setattr(
        cal_mod, "fit_data", lambda data="raw", *a, **k: raw(data, *a, **k) if data == "raw" else no_work()
    )
    monkeypatch.setattr(budget, "available_memory", lambda: 400e6)
    args = ["calibrate", "--data", "reconciled", "--posterior-steps", "100000", "--out", str(tmp_path / "c")]
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 2, res.output
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    # 3 copies x 8 B x 38 walkers x 19 = 17,328 B a step; 100,000 steps: 1.73 GB + 300 MB base;
    # 100,000 x 38 x 0.12 ms = 456 s = 8 min
    assert len(lines) == 1 and "100,000 steps need about 2.0 GB" in lines[0], lines
    assert "about 8 min" in lines[0]


def test_posterior_time_estimate_of_the_default_run():
    """4000 steps x 38 walkers x 0.12 ms = 18.2 s (measured 14 s at load 4): not '2 min'."""
    _, secs = budget.posterior_check(4000, 38, 18, announce=False)
    assert secs == pytest.approx(18.24) and budget.fmt_seconds(secs) == "18 s"
